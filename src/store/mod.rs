//! Storage: one trait per aggregate, one implementation per backend.
//!
//! Handlers see only `dyn Store`. The backend is chosen by the database URL's scheme;
//! SQLite (rusqlite) is the embedded default. Every operation that writes several rows
//! is one trait method and one transaction.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::policy::{Actor, ProjectFacts};
use crate::domain::token::{NewToken, Token};
use crate::domain::user::{NewUser, User, UserPatch};
use crate::domain::work::{Activity, FileMeta, Project, Task};
use crate::domain::workspace::Workspace;
use crate::domain::WorkspaceId;

pub mod activities;
mod backend;
pub mod driver;
pub mod files;
pub mod groups;
pub mod outbox;
pub mod postgres;
pub mod projects;
mod session_cache;
pub mod sql;
pub mod sqlite;
pub mod tasks;
pub mod tokens;
pub mod users;
pub mod workspaces;

/// What storage can fail with, beyond "not found" (which is `Ok(None)` or `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(anyhow::Error),
    #[error("duplicate email")]
    DuplicateEmail,
    /// A workspace of that name exists.
    #[error("duplicate name")]
    DuplicateName,
    /// The workspace was removed (a node may still serve its name for a few seconds).
    #[error("no such workspace")]
    UnknownWorkspace,
    #[error("last admin")]
    LastAdmin,
    /// The object's version is not the one the write named: another writer came first.
    #[error("version changed")]
    VersionChanged,
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Whether a write was refused by a foreign key: a row it names (a project, a task, an
/// activity) was removed by another request between the caller's checks and the write.
pub fn is_missing_reference(e: &StoreError) -> bool {
    let StoreError::Internal(e) = e else {
        return false;
    };
    if let Some(e) = e.downcast_ref::<tokio_postgres::Error>() {
        return e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION);
    }
    e.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
        matches!(e, rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
    })
}

/// The version a write of one object requires (from `If-Match`): `None` writes whatever
/// the version is; `Some(v)` changes nothing unless it is `v` (`VersionChanged`).
pub type Expected = Option<i64>;

/// `VersionChanged` unless `current` is what `expected` asks for.
pub fn check_version(expected: Expected, current: i64) -> Result<()> {
    match expected {
        Some(v) if v != current => Err(StoreError::VersionChanged),
        _ => Ok(()),
    }
}

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
    /// Raised by every write; answers carry it as their ETag.
    pub version: i64,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// How many active users the workspace has.
    async fn count_users(&self, ws: WorkspaceId) -> Result<i64>;
    /// Fails with `DuplicateEmail` when an active user has the email (any case).
    async fn add_user(&self, ws: WorkspaceId, user: NewUser, now: i64) -> Result<User>;
    /// `Ok(None)`: no such user. Refuses to demote the last active admin. A new password
    /// or security level ends the user's sessions but `keep_session` (the caller's own).
    async fn update_user(
        &self,
        ws: WorkspaceId,
        id: i64,
        patch: UserPatch,
        expected: Expected,
        keep_session: Option<Vec<u8>>,
        now: i64,
    ) -> Result<Option<User>>;
    /// Deactivates the user and ends its sessions. `Ok(false)`: no such user.
    /// Refuses to remove the last active admin.
    async fn remove_user(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
        now: i64,
    ) -> Result<bool>;
    /// Any user, active or removed.
    async fn user(&self, ws: WorkspaceId, id: i64) -> Result<Option<User>>;
    /// The active user with this email, in any case.
    async fn user_by_email(&self, ws: WorkspaceId, email: &str) -> Result<Option<User>>;
    /// The active user with this email and its password hash.
    async fn credentials(&self, ws: WorkspaceId, email: &str) -> Result<Option<(User, String)>>;
    /// The active users among these ids.
    async fn users_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<User>>;
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

/// Personal API tokens (docs/tokens.md). Nothing here is cached: a removed token, and
/// its user's removal or new level, count on every node at the next call.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token, unless its user already holds `limit` tokens (`Ok(None)`).
    async fn add_token(
        &self,
        ws: WorkspaceId,
        token: NewToken,
        limit: i64,
        now: i64,
    ) -> Result<Option<Token>>;
    /// The user's tokens, by id.
    async fn tokens_of(&self, ws: WorkspaceId, user_id: i64) -> Result<Vec<Token>>;
    async fn token(&self, ws: WorkspaceId, id: i64) -> Result<Option<Token>>;
    /// The token whose secret hashes to `token_hash`, in this workspace only, with its
    /// user as the user is now; `None` when there is none or the user was removed.
    async fn token_by_hash(
        &self,
        ws: WorkspaceId,
        token_hash: Vec<u8>,
    ) -> Result<Option<(User, Token)>>;
    async fn touch_token(&self, ws: WorkspaceId, id: i64, now: i64) -> Result<()>;
    /// `Ok(false)`: no such token in the workspace.
    async fn remove_token(&self, ws: WorkspaceId, id: i64) -> Result<bool>;
}

/// The outcome of asking to check a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead; these records stand for the attempt until it ends.
    Admitted(Vec<i64>),
    /// Too many failures; the oldest one in the window happened at this time.
    Throttled { oldest: i64 },
    /// Failures and checks under way together reach the limit: ask again shortly.
    Busy,
}

#[async_trait]
pub trait LoginThrottleStore: Send + Sync {
    /// In one transaction: refuses when any subject has `limit` failures since
    /// `window_start`; answers `Busy` when failures plus checks under way reach it;
    /// otherwise records one pending attempt per subject, so that concurrent guesses, on
    /// any node, count before their hashes are checked. Failures older than the window
    /// are forgotten.
    async fn begin_attempt(
        &self,
        ws: WorkspaceId,
        subjects: Vec<String>,
        now: i64,
        window_start: i64,
        limit: i64,
    ) -> Result<Attempt>;
    /// Ends an attempt: a wrong password turns its records into failures, a right one
    /// removes them.
    async fn end_attempt(&self, records: Vec<i64>, failed: bool) -> Result<()>;
    /// Forgets failures and abandoned checks older than `before`, of every subject (those
    /// of a subject never tried again would stay otherwise). Answers how many went.
    async fn forget_login_failures(&self, before: i64) -> Result<u64>;
    /// Failures since `since` of the subjects from `first` (included) to `end` (excluded):
    /// one login's failures from every address.
    async fn failures_between(
        &self,
        ws: WorkspaceId,
        first: String,
        end: String,
        since: i64,
    ) -> Result<i64>;
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
        expected: Expected,
        now: i64,
    ) -> Result<Option<Group>>;
    /// `Ok(false)`: no such group.
    async fn remove_group(&self, ws: WorkspaceId, id: i64, expected: Expected) -> Result<bool>;
    async fn group(&self, ws: WorkspaceId, id: i64) -> Result<Option<Group>>;
    async fn groups(&self, ws: WorkspaceId) -> Result<Vec<Group>>;
}

/// One filter of a list call, already typed. Each list accepts its own subset (the API
/// layer refuses the others by name).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    ProjectId(i64),
    TaskId(i64),
    ActivityId(i64),
    ParentId(i64),
    GroupId(i64),
    OwnerId(i64),
    /// Case-insensitive substring of the name.
    Name(String),
    /// The object's team (for activities: their task's or project's) holds this user.
    AssignedTo(i64),
    /// Status is not done (for activities: their task's or project's).
    Active,
    /// Drops done objects closed more than this many days ago.
    HideOlderThanDays(i64),
    /// Activity type.
    Type(String),
    /// Exactly this status (the web page's project filter).
    Status(i64),
    StartedFrom(i64),
    StartedBefore(i64),
    DeadlineFrom(i64),
    DeadlineBefore(i64),
    ProgressLessThan(i64),
    ProgressMoreThan(i64),
    CreatedFrom(i64),
    CreatedBefore(i64),
    UpdatedFrom(i64),
    UpdatedBefore(i64),
}

/// A page of a list: which rows, from where, how many.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    pub offset: i64,
    /// `None`: every row (getAll).
    pub count: Option<i64>,
}

/// Where a list read page by page starts (getAll): how many rows match and the highest id
/// among them, counted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    pub total: i64,
    pub last_id: i64,
}

/// The most text a page read for getAll holds before it ends early (it holds at least one
/// project): a page is what a stalled client keeps in the server's memory, and one
/// description may be 100,000 characters.
pub const PAGE_TEXT_BYTES: usize = 64 * 1024;

/// Whether a page read for getAll is full once it holds `p`, `bytes` counting the text of
/// the projects before it (and `p`'s, on return).
pub(crate) fn page_full_with(p: &Project, bytes: &mut usize) -> bool {
    *bytes += p.name.len()
        + p.description.as_ref().map_or(0, String::len)
        + p.tags.as_ref().map_or(0, String::len);
    *bytes >= PAGE_TEXT_BYTES
}

/// Rows of one page and how many match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// Projects, tasks, activities and files. Lists take the caller, so that visibility is
/// part of the query and totals count only what the caller may see.
#[async_trait]
pub trait WorkStore: Send + Sync {
    async fn project(&self, ws: WorkspaceId, id: i64) -> Result<Option<Project>>;
    async fn projects_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<Project>>;
    /// Inserts (id 0) or replaces a project and its team, queuing `mail` in the same
    /// transaction; its tasks follow its group. A replacement names the version it was
    /// read at (`project.version`) and fails with `VersionChanged` when the row has
    /// another: another writer came first. The same holds for tasks and activities.
    async fn save_project(
        &self,
        ws: WorkspaceId,
        project: Project,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Project>;
    /// Removes the project with its tasks, activities and files; answers the storage keys
    /// of the removed files (`None`: no such project).
    async fn remove_project(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>>;
    async fn projects(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        query: ListQuery,
    ) -> Result<Page<Project>>;
    /// getAll's start: how many projects the caller sees, and the highest id among them.
    async fn project_census(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        filters: Vec<Filter>,
    ) -> Result<Census>;
    /// getAll's next page: up to `limit` visible projects with `after < id <= last_id`,
    /// by id, with their teams, and fewer once their text reaches [`PAGE_TEXT_BYTES`].
    /// Each page is a short read of its own: between pages nothing holds a snapshot,
    /// however slowly the client reads.
    async fn projects_after(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        filters: Vec<Filter>,
        after: i64,
        last_id: i64,
        limit: i64,
    ) -> Result<Vec<Project>>;

    async fn task(&self, ws: WorkspaceId, id: i64) -> Result<Option<Task>>;
    /// A task with its project, if it is in one: what deciding who may see it needs.
    async fn task_with_project(
        &self,
        ws: WorkspaceId,
        id: i64,
    ) -> Result<Option<(Task, Option<Project>)>>;
    /// A task with what the rules ask of its project for `caller` (none for a single
    /// task): a read that needs the project only to decide.
    async fn task_with_project_facts(
        &self,
        ws: WorkspaceId,
        id: i64,
        caller: i64,
    ) -> Result<Option<(Task, Option<ProjectFacts>)>>;
    /// Inserts (id 0) or replaces a task and its team. A task in a project takes the
    /// project's group; moving a task moves its sub-tasks and their activities.
    async fn save_task(
        &self,
        ws: WorkspaceId,
        task: Task,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Task>;
    /// Removes the task with its sub-tasks, activities and files.
    async fn remove_task(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>>;
    /// A page of tasks, with what the caller's rules ask of the projects they are in, in
    /// ascending order of project id: what deciding whether the caller may edit each
    /// needs (none when the caller's rules do not, or the page is empty). Each task's team
    /// is read when `with_team` or when the caller's rules need it, and is left empty
    /// otherwise.
    async fn tasks(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        query: ListQuery,
        with_team: bool,
    ) -> Result<(Page<Task>, Vec<(i64, ProjectFacts)>)>;
    /// The task and its ancestors, nearest first.
    async fn task_lineage(&self, ws: WorkspaceId, id: i64) -> Result<Vec<i64>>;

    async fn activity(&self, ws: WorkspaceId, id: i64) -> Result<Option<Activity>>;
    /// Inserts (id 0) or replaces an activity, then brings its task's hoursDone and
    /// progress up to date, all in one transaction.
    async fn save_activity(
        &self,
        ws: WorkspaceId,
        activity: Activity,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Activity>;
    async fn remove_activity(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>>;
    async fn activities(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        query: ListQuery,
    ) -> Result<Page<Activity>>;

    /// Records files whose blobs are already durable, all or none.
    async fn add_files(
        &self,
        ws: WorkspaceId,
        files: Vec<FileMeta>,
        now: i64,
    ) -> Result<Vec<FileMeta>>;
    async fn file(&self, ws: WorkspaceId, id: i64) -> Result<Option<FileMeta>>;
    async fn files_of_activities(
        &self,
        ws: WorkspaceId,
        activity_ids: Vec<i64>,
    ) -> Result<Vec<FileMeta>>;
    /// Removes one file's row and answers its storage key.
    async fn remove_file(&self, ws: WorkspaceId, id: i64) -> Result<Option<String>>;
    async fn files(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        query: ListQuery,
    ) -> Result<Page<FileMeta>>;
    /// Every storage key any row names (for the start-up sweep of orphans).
    async fn storage_keys(&self) -> Result<Vec<String>>;

    /// Of these ids, those that are not active users of the workspace.
    async fn missing_users(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<i64>>;
}

/// A mail to queue with a change.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMail {
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

/// A queued mail claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMail {
    pub id: i64,
    pub mail: OutgoingMail,
    /// Delivery attempts before this one.
    pub attempts: i64,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` due mails for `lease_secs`; no other worker gets them meanwhile.
    async fn claim_mail(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<QueuedMail>>;
    async fn mail_sent(&self, id: i64, now: i64) -> Result<()>;
    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    async fn mail_failed(
        &self,
        id: i64,
        now: i64,
        error: String,
        retry_at: Option<i64>,
    ) -> Result<()>;
}

/// What operations ask of storage: whether it answers, and the outbox's depth.
#[async_trait]
pub trait OpsStore: Send + Sync {
    /// Runs a trivial query where writes run (SQLite's writer thread, a pooled
    /// PostgreSQL connection): `Ok` when storage can serve.
    async fn ping(&self) -> Result<()>;
    /// Mails queued, neither sent nor given up (on every node that shares the database).
    async fn outbox_depth(&self) -> Result<i64>;
}

/// Workspaces, made and removed by `vesper workspace`, found by name per request.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// `DuplicateName` when the name is taken.
    async fn add_workspace(&self, name: String, now: i64) -> Result<Workspace>;
    async fn workspace_by_name(&self, name: String) -> Result<Option<WorkspaceId>>;
    /// Every workspace, by name.
    async fn workspaces(&self) -> Result<Vec<Workspace>>;
    /// Deletes every row of the workspace; answers the storage keys of its files.
    async fn remove_workspace(&self, ws: WorkspaceId) -> Result<Vec<String>>;
}

/// Everything the server stores.
pub trait Store:
    UserStore
    + SessionStore
    + TokenStore
    + LoginThrottleStore
    + GroupStore
    + WorkStore
    + OutboxStore
    + WorkspaceStore
    + OpsStore
{
}
impl<T> Store for T where
    T: UserStore
        + SessionStore
        + TokenStore
        + LoginThrottleStore
        + GroupStore
        + WorkStore
        + OutboxStore
        + WorkspaceStore
        + OpsStore
{
}

/// Opens the store the URL names; an empty URL means SQLite in the data folder.
/// `postgres://` and `postgresql://` URLs open the PostgreSQL backend.
pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    match database_url {
        None | Some("") => Ok(Arc::new(sqlite::Sqlite::open(
            &data_dir.join("vesper.sqlite3"),
        )?)),
        Some(url) if url.starts_with("sqlite://") => Ok(Arc::new(sqlite::Sqlite::open(
            Path::new(url.trim_start_matches("sqlite://")),
        )?)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::Postgres::open(url).await?))
        }
        Some(_) => anyhow::bail!(
            "unsupported database URL: use sqlite:///path, postgres://... or leave it empty"
        ),
    }
}

/// The ids of the projects `tasks` are in, each once.
pub(crate) fn project_ids_of(tasks: &[Task]) -> Vec<i64> {
    let mut ids: Vec<i64> = tasks.iter().filter_map(|t| t.project_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
