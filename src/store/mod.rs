//! Storage: one trait per aggregate, one implementation per backend.
//!
//! Handlers see only `dyn Store`. The backend is chosen by the database URL's scheme;
//! SQLite (rusqlite) is the embedded default. Every operation that writes several rows
//! is one trait method and one transaction.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::user::{NewUser, User, UserPatch};
use crate::domain::WorkspaceId;

pub mod sqlite;

/// What storage can fail with, beyond "not found" (which is `Ok(None)` or `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(anyhow::Error),
    #[error("duplicate email")]
    DuplicateEmail,
    #[error("last admin")]
    LastAdmin,
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which users a caller's list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserScope {
    All,
    /// The user and those who share a project or task team with them.
    SelfAndTeamMates(i64),
}

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// A project group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// How many active users the workspace has.
    async fn count_users(&self, ws: WorkspaceId) -> Result<i64>;
    /// Fails with `DuplicateEmail` when an active user has the email (any case).
    async fn add_user(&self, ws: WorkspaceId, user: NewUser, now: i64) -> Result<User>;
    /// `Ok(None)`: no such user. Refuses to demote the last active admin.
    async fn update_user(
        &self,
        ws: WorkspaceId,
        id: i64,
        patch: UserPatch,
        now: i64,
    ) -> Result<Option<User>>;
    /// Deactivates the user and ends its sessions. `Ok(false)`: no such user.
    /// Refuses to remove the last active admin.
    async fn remove_user(&self, ws: WorkspaceId, id: i64, now: i64) -> Result<bool>;
    /// Any user, active or removed.
    async fn user(&self, ws: WorkspaceId, id: i64) -> Result<Option<User>>;
    /// The active user with this email, in any case.
    async fn user_by_email(&self, ws: WorkspaceId, email: &str) -> Result<Option<User>>;
    /// The active user with this email and its password hash.
    async fn credentials(&self, ws: WorkspaceId, email: &str) -> Result<Option<(User, String)>>;
    /// Active users in the scope, by id.
    async fn users(&self, ws: WorkspaceId, scope: UserScope) -> Result<Vec<User>>;
    /// Whether two users share a project or task team.
    async fn are_team_mates(&self, ws: WorkspaceId, a: i64, b: i64) -> Result<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn add_session(
        &self,
        ws: WorkspaceId,
        token_hash: Vec<u8>,
        user_id: i64,
        now: i64,
    ) -> Result<()>;
    async fn session(&self, ws: WorkspaceId, token_hash: Vec<u8>) -> Result<Option<Session>>;
    async fn touch_session(&self, token_hash: Vec<u8>, now: i64) -> Result<()>;
    async fn remove_session(&self, token_hash: Vec<u8>) -> Result<()>;
    /// Removes sessions idle since `idle_before` or created before `created_before`.
    async fn remove_stale_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64>;
}

#[async_trait]
pub trait LoginThrottleStore: Send + Sync {
    /// Failures recorded for `subject` since `since`: their count and the oldest time.
    async fn failures_since(
        &self,
        ws: WorkspaceId,
        subject: &str,
        since: i64,
    ) -> Result<(i64, Option<i64>)>;
    /// Records one failure for each subject and forgets failures older than
    /// `forget_before`.
    async fn add_failure(
        &self,
        ws: WorkspaceId,
        subjects: Vec<String>,
        now: i64,
        forget_before: i64,
    ) -> Result<()>;
}

#[async_trait]
pub trait GroupStore: Send + Sync {
    async fn add_group(&self, ws: WorkspaceId, name: String, now: i64) -> Result<Group>;
    /// `Ok(None)`: no such group.
    async fn update_group(
        &self,
        ws: WorkspaceId,
        id: i64,
        name: Option<String>,
        now: i64,
    ) -> Result<Option<Group>>;
    /// `Ok(false)`: no such group.
    async fn remove_group(&self, ws: WorkspaceId, id: i64) -> Result<bool>;
    async fn group(&self, ws: WorkspaceId, id: i64) -> Result<Option<Group>>;
    async fn groups(&self, ws: WorkspaceId) -> Result<Vec<Group>>;
}

/// Everything the server stores.
pub trait Store: UserStore + SessionStore + LoginThrottleStore + GroupStore {}
impl<T: UserStore + SessionStore + LoginThrottleStore + GroupStore> Store for T {}

/// Opens the store the URL names; an empty URL means SQLite in the data folder.
pub fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    match database_url {
        None | Some("") => Ok(Arc::new(sqlite::Sqlite::open(
            &data_dir.join("vesper.sqlite3"),
        )?)),
        Some(url) if url.starts_with("sqlite://") => Ok(Arc::new(sqlite::Sqlite::open(
            Path::new(url.trim_start_matches("sqlite://")),
        )?)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            anyhow::bail!("PostgreSQL is not supported by this build yet")
        }
        Some(_) => anyhow::bail!("unsupported database URL: use sqlite:///path or leave it empty"),
    }
}
