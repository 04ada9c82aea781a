//! The PostgreSQL backend (tokio-postgres through a deadpool pool), chosen by a
//! `postgres://` or `postgresql://` database URL.
//!
//! Several nodes may share one database: sessions, login throttling and the mail outbox
//! live in it, so any node serves any request. Each method reproduces the SQLite
//! backend's results and errors; the visibility conditions and list filters are the
//! shared ones of [`crate::store::sql`], their `?` placeholders numbered for PostgreSQL.
//!
//! Connections are plain TCP without TLS: run PostgreSQL on the same machine, or reach it
//! over a private network only. Commits are durable before the answer
//! (`synchronous_commit` stays on). The database URL is never logged, since it may hold a
//! password. When PostgreSQL cannot be reached, every call fails fast with
//! [`StoreError::Unavailable`] and the pool reconnects by itself once it is back.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::domain::user::{NewUser, Profile, SecurityLevel, User, UserPatch};
use crate::domain::WorkspaceId;
use crate::store::sql::{self, Param};
use crate::store::{
    check_version, Attempt, Expected, Group, GroupStore, LoginThrottleStore, OutboxStore,
    OutgoingMail, QueuedMail, Result, Session, SessionStore, StoreError, UserScope, UserStore,
};

mod work;

/// Migrations in order; each runs once, recorded in `schema_migrations`. Never edit a
/// migration that has landed: add the next one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_foundation.sql"),
    include_str!("../../../migrations/postgres/0002_projects_tasks_activities.sql"),
    include_str!("../../../migrations/postgres/0003_outbox.sql"),
    include_str!("../../../migrations/postgres/0004_indexes_for_writes_and_lists.sql"),
    include_str!("../../../migrations/postgres/0005_versions.sql"),
];

/// Connections per node.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection (or to open one) before it answers
/// `Unavailable`: short, so that requests during an outage fail fast.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an unanswered connection is trusted before it counts as broken.
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(30);

type PgError = tokio_postgres::Error;
/// A value bound to a placeholder.
type Value<'a> = &'a (dyn ToSql + Sync);

pub struct Postgres {
    pool: Pool,
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(describe(e))
        } else {
            StoreError::Internal(describe(e))
        }
    }
}

/// The error with its cause in the message that gets logged: the server's message and
/// SQLSTATE, or the I/O error under a connection failure.
fn describe(e: PgError) -> anyhow::Error {
    let message = match (e.as_db_error(), std::error::Error::source(&e)) {
        (Some(db), _) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => return e.into(),
    };
    anyhow::Error::new(e).context(message)
}

/// Whether an error means the database cannot serve now (down, restarting, unreachable,
/// out of resources, or a transient conflict) rather than a mistake in a query.
fn is_unavailable(e: &PgError) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        // 08: connection exception; 25006: read-only transaction (a standby);
        // 40: transaction rollback (serialization failure, deadlock);
        // 53: insufficient resources; 57: operator intervention (shutdown, restart);
        // 58: system error (I/O).
        return ["08", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class))
            || code == "25006";
    }
    // Without a SQLSTATE: mistakes in our own code are internal; everything else is the
    // connection failing (I/O, timeouts, protocol desynchronisation, connect failures).
    let message = e.to_string();
    ![
        "error serializing",
        "error deserializing",
        "invalid column",
        "query returned an unexpected",
        "expected ",
        "invalid configuration",
        "invalid connection string",
    ]
    .iter()
    .any(|prefix| message.starts_with(prefix))
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => StoreError::Unavailable(describe(e)),
        other => StoreError::Unavailable(other.into()),
    }
}

fn is_unique_violation(e: &PgError) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn unique_as_duplicate_email(e: PgError) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::DuplicateEmail
    } else {
        e.into()
    }
}

/// Numbers the `?` placeholders of shared SQL as `$1..$n`, skipping quoted text.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Shared parameters as tokio-postgres binds them.
pub(crate) fn bind(values: &[Param]) -> Vec<Value<'_>> {
    values
        .iter()
        .map(|p| match p {
            Param::Int(i) => i as Value<'_>,
            Param::Text(t) => t as Value<'_>,
        })
        .collect()
}

/// A boolean as the 0/1 SMALLINT the schema stores.
pub(crate) fn int(b: bool) -> i16 {
    i16::from(b)
}

/// A 0/1 SMALLINT column as a boolean.
pub(crate) fn flag(r: &Row, i: usize) -> std::result::Result<bool, PgError> {
    Ok(r.try_get::<_, i16>(i)? != 0)
}

/// Takes a transaction-scoped advisory lock on a name: callers that take the same name
/// run one after the other, on every node.
async fn lock(c: &impl GenericClient, name: &str) -> Result<()> {
    c.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&name],
    )
    .await?;
    Ok(())
}

impl Postgres {
    /// Connects to the database the URL names and applies pending migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        // The error never quotes the URL, which may hold a password.
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| anyhow::anyhow!("the PostgreSQL database URL is not valid: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        // A peer that vanishes without closing the connection (a partition, a dead host)
        // fails the calls on it within half a minute instead of the kernel's quarter hour.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEAD_PEER_TIMEOUT);
        }
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(DEAD_PEER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("vesper");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .context("building the PostgreSQL connection pool")?;
        let store = Postgres { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations in one transaction, under an advisory lock so that
    /// nodes starting together apply each one once.
    async fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.conn().await.context("connecting to PostgreSQL")?;
        let tx = conn.transaction().await?;
        lock(&tx, "vesper:migrations").await?;
        let fresh: bool = tx
            .query_one("SELECT to_regclass('schema_migrations') IS NULL", &[])
            .await?
            .try_get(0)?;
        if fresh {
            tx.batch_execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, \
                 applied_at BIGINT NOT NULL)",
            )
            .await?;
        }
        let applied: Option<i32> = tx
            .query_one("SELECT MAX(version) FROM schema_migrations", &[])
            .await?
            .try_get(0)?;
        let applied = applied.unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i32 + 1;
            if version <= applied {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("PostgreSQL migration {version}"))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &crate::domain::now()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A connection from the pool.
    pub(crate) async fn conn(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

// ---- small query helpers (statements prepared once per connection) --------------------

async fn query(c: &impl GenericClient, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

async fn query_opt(c: &impl GenericClient, sql: &str, params: &[Value<'_>]) -> Result<Option<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, params).await?)
}

async fn query_one(c: &impl GenericClient, sql: &str, params: &[Value<'_>]) -> Result<Row> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_one(&stmt, params).await?)
}

async fn execute(c: &impl GenericClient, sql: &str, params: &[Value<'_>]) -> Result<u64> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, params).await?)
}

// ---- users -----------------------------------------------------------------------------

const USER_COLUMNS: &str = "id, email, title, first_name, last_name, address, work_phone, \
    cell_phone, company, comment, avatar, security_level, can_view_profiles, active, \
    created_at, updated_at, version";
/// How many columns `USER_COLUMNS` names: what a query selects after them starts here.
const USER_COLUMN_COUNT: usize = 17;

/// The users who share a project team or a task team with user `$2`.
fn user_from_row(r: &Row) -> std::result::Result<User, PgError> {
    let level: i64 = r.try_get(11)?;
    Ok(User {
        id: r.try_get(0)?,
        email: r.try_get(1)?,
        profile: Profile {
            title: r.try_get(2)?,
            first_name: r.try_get(3)?,
            last_name: r.try_get(4)?,
            address: r.try_get(5)?,
            work_phone: r.try_get(6)?,
            cell_phone: r.try_get(7)?,
            company: r.try_get(8)?,
            comment: r.try_get(9)?,
            avatar: r.try_get(10)?,
        },
        security_level: SecurityLevel::from_code(level).unwrap_or(SecurityLevel::Client),
        can_view_profiles: flag(r, 12)?,
        active: flag(r, 13)?,
        created_at: r.try_get(14)?,
        updated_at: r.try_get(15)?,
        version: r.try_get(16)?,
    })
}

async fn user_in(c: &impl GenericClient, ws: WorkspaceId, id: i64) -> Result<Option<User>> {
    let row = query_opt(
        c,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2"),
        &[&ws.0, &id],
    )
    .await?;
    Ok(row.as_ref().map(user_from_row).transpose()?)
}

/// Locks a user's row for the rest of the transaction and reads it.
async fn user_for_update(c: &impl GenericClient, ws: WorkspaceId, id: i64) -> Result<Option<User>> {
    let row = query_opt(
        c,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2 FOR UPDATE"),
        &[&ws.0, &id],
    )
    .await?;
    Ok(row.as_ref().map(user_from_row).transpose()?)
}

/// Active admins other than `id`; the last admin must stay. Callers hold the
/// workspace's admin lock, so that two demotions cannot both see the other admin.
async fn other_admins(c: &impl GenericClient, ws: WorkspaceId, id: i64) -> Result<i64> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM users WHERE workspace_id = $1 AND active = 1 \
         AND security_level = 0 AND id <> $2",
        &[&ws.0, &id],
    )
    .await?
    .try_get(0)?)
}

/// The lock that makes "is this the last admin?" and the change that follows atomic.
async fn lock_admins(c: &impl GenericClient, ws: WorkspaceId) -> Result<()> {
    lock(c, &format!("vesper:admins:{}", ws.0)).await
}

#[async_trait]
impl UserStore for Postgres {
    async fn count_users(&self, ws: WorkspaceId) -> Result<i64> {
        let c = self.conn().await?;
        Ok(query_one(
            &c,
            "SELECT COUNT(*) FROM users WHERE workspace_id = $1 AND active = 1",
            &[&ws.0],
        )
        .await?
        .try_get(0)?)
    }

    async fn add_user(&self, ws: WorkspaceId, user: NewUser, now: i64) -> Result<User> {
        let c = self.conn().await?;
        let p = &user.profile;
        let stmt = c
            .prepare_cached(&format!(
                "INSERT INTO users (workspace_id, email, email_key, password_hash, title, \
                 first_name, last_name, address, work_phone, cell_phone, company, comment, \
                 avatar, security_level, can_view_profiles, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 1, \
                 $16, $16) RETURNING {USER_COLUMNS}"
            ))
            .await?;
        let row = c
            .query_one(
                &stmt,
                &[
                    &ws.0,
                    &user.email,
                    &user.email.to_lowercase(),
                    &user.password_hash,
                    &p.title,
                    &p.first_name,
                    &p.last_name,
                    &p.address,
                    &p.work_phone,
                    &p.cell_phone,
                    &p.company,
                    &p.comment,
                    &p.avatar,
                    &user.security_level.code(),
                    &int(user.can_view_profiles),
                    &now,
                ],
            )
            .await
            .map_err(unique_as_duplicate_email)?;
        Ok(user_from_row(&row)?)
    }

    async fn update_user(
        &self,
        ws: WorkspaceId,
        id: i64,
        patch: UserPatch,
        expected: Expected,
        keep_session: Option<Vec<u8>>,
        now: i64,
    ) -> Result<Option<User>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        lock_admins(&tx, ws).await?;
        let Some(current) = user_for_update(&tx, ws, id).await? else {
            return Ok(None);
        };
        check_version(expected, current.version)?;
        let next = patch.apply(&current);
        let demoted = current.active
            && current.security_level == SecurityLevel::Admin
            && next.security_level != SecurityLevel::Admin;
        if demoted && other_admins(&tx, ws, id).await? == 0 {
            return Err(StoreError::LastAdmin);
        }
        let p = &next.profile;
        let stmt = tx
            .prepare_cached(
                "UPDATE users SET email = $3, email_key = $4, title = $5, first_name = $6, \
                 last_name = $7, address = $8, work_phone = $9, cell_phone = $10, company = $11, \
                 comment = $12, avatar = $13, security_level = $14, can_view_profiles = $15, \
                 updated_at = $16, version = version + 1 WHERE workspace_id = $1 AND id = $2",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &ws.0,
                &id,
                &next.email,
                &next.email.to_lowercase(),
                &p.title,
                &p.first_name,
                &p.last_name,
                &p.address,
                &p.work_phone,
                &p.cell_phone,
                &p.company,
                &p.comment,
                &p.avatar,
                &next.security_level.code(),
                &int(next.can_view_profiles),
                &now,
            ],
        )
        .await
        .map_err(unique_as_duplicate_email)?;
        if let Some(hash) = &patch.password_hash {
            execute(
                &tx,
                "UPDATE users SET password_hash = $3 WHERE workspace_id = $1 AND id = $2",
                &[&ws.0, &id, hash],
            )
            .await?;
        }
        if patch.ends_sessions(&current) {
            execute(
                &tx,
                "DELETE FROM sessions WHERE user_id = $1 AND token_hash IS DISTINCT FROM $2",
                &[&id, &keep_session],
            )
            .await?;
        }
        let user = user_in(&tx, ws, id).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn remove_user(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
        now: i64,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        lock_admins(&tx, ws).await?;
        let Some(current) = user_for_update(&tx, ws, id).await? else {
            return Ok(false);
        };
        check_version(expected, current.version)?;
        if !current.active {
            return Ok(true);
        }
        if current.security_level == SecurityLevel::Admin && other_admins(&tx, ws, id).await? == 0 {
            return Err(StoreError::LastAdmin);
        }
        execute(
            &tx,
            "UPDATE users SET active = 0, updated_at = $3, version = version + 1 \
             WHERE workspace_id = $1 AND id = $2",
            &[&ws.0, &id, &now],
        )
        .await?;
        execute(&tx, "DELETE FROM sessions WHERE user_id = $1", &[&id]).await?;
        // A removed user leaves every team but stays as owner and author; the teams'
        // projects and tasks change with it.
        execute(
            &tx,
            "UPDATE projects SET version = version + 1 \
             WHERE id IN (SELECT project_id FROM project_team WHERE user_id = $1)",
            &[&id],
        )
        .await?;
        execute(
            &tx,
            "UPDATE tasks SET version = version + 1 \
             WHERE id IN (SELECT task_id FROM task_team WHERE user_id = $1)",
            &[&id],
        )
        .await?;
        execute(&tx, "DELETE FROM project_team WHERE user_id = $1", &[&id]).await?;
        execute(&tx, "DELETE FROM task_team WHERE user_id = $1", &[&id]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn user(&self, ws: WorkspaceId, id: i64) -> Result<Option<User>> {
        let c = self.conn().await?;
        user_in(&c, ws, id).await
    }

    async fn user_by_email(&self, ws: WorkspaceId, email: &str) -> Result<Option<User>> {
        Ok(self.credentials(ws, email).await?.map(|(u, _)| u))
    }

    async fn credentials(&self, ws: WorkspaceId, email: &str) -> Result<Option<(User, String)>> {
        let key = email.trim().to_lowercase();
        let c = self.conn().await?;
        let row = query_opt(
            &c,
            &format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users \
                 WHERE workspace_id = $1 AND email_key = $2 AND active = 1"
            ),
            &[&ws.0, &key],
        )
        .await?;
        match row {
            Some(r) => Ok(Some((user_from_row(&r)?, r.try_get(USER_COLUMN_COUNT)?))),
            None => Ok(None),
        }
    }

    async fn users_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<User>> {
        let c = self.conn().await?;
        let rows = query(
            &c,
            &format!(
                "SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = ANY($2) \
                 AND active = 1"
            ),
            &[&ws.0, &ids],
        )
        .await?;
        let found = rows
            .iter()
            .map(user_from_row)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // In the order asked, as the SQLite backend answers.
        Ok(ids
            .iter()
            .filter_map(|id| found.iter().find(|u| u.id == *id).cloned())
            .collect())
    }

    async fn users(&self, ws: WorkspaceId, scope: UserScope) -> Result<Vec<User>> {
        let c = self.conn().await?;
        let rows = query(
            &c,
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE workspace_id = $1 AND active = 1 \
                 AND {} ORDER BY id",
                sql::users_in_scope(scope)
            ),
            &[&ws.0],
        )
        .await?;
        Ok(rows
            .iter()
            .map(user_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn are_team_mates(&self, _ws: WorkspaceId, a: i64, b: i64) -> Result<bool> {
        if a == b {
            return Ok(true);
        }
        let c = self.conn().await?;
        Ok(query_one(
            &c,
            &format!("SELECT $1::BIGINT IN ({})", sql::team_mates(a)),
            &[&b],
        )
        .await?
        .try_get(0)?)
    }
}

// ---- sessions --------------------------------------------------------------------------

#[async_trait]
impl SessionStore for Postgres {
    async fn add_session(
        &self,
        ws: WorkspaceId,
        token_hash: Vec<u8>,
        user_id: i64,
        now: i64,
    ) -> Result<()> {
        let c = self.conn().await?;
        execute(
            &c,
            "INSERT INTO sessions (token_hash, workspace_id, user_id, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $4)",
            &[&token_hash, &ws.0, &user_id, &now],
        )
        .await?;
        Ok(())
    }

    async fn session(&self, ws: WorkspaceId, token_hash: Vec<u8>) -> Result<Option<Session>> {
        let cols = USER_COLUMNS
            .split(", ")
            .map(|col| format!("u.{col}"))
            .collect::<Vec<_>>()
            .join(", ");
        let c = self.conn().await?;
        let row = query_opt(
            &c,
            &format!(
                "SELECT {cols}, s.created_at, s.last_used_at FROM sessions s \
                 JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.workspace_id = $2 AND u.active = 1"
            ),
            &[&token_hash, &ws.0],
        )
        .await?;
        match row {
            Some(r) => Ok(Some(Session {
                user: user_from_row(&r)?,
                created_at: r.try_get(USER_COLUMN_COUNT)?,
                last_used_at: r.try_get(USER_COLUMN_COUNT + 1)?,
            })),
            None => Ok(None),
        }
    }

    async fn touch_session(&self, token_hash: Vec<u8>, now: i64) -> Result<()> {
        let c = self.conn().await?;
        execute(
            &c,
            "UPDATE sessions SET last_used_at = $2 WHERE token_hash = $1",
            &[&token_hash, &now],
        )
        .await?;
        Ok(())
    }

    async fn remove_session(&self, token_hash: Vec<u8>) -> Result<()> {
        let c = self.conn().await?;
        execute(
            &c,
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
        Ok(())
    }

    async fn remove_stale_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let c = self.conn().await?;
        execute(
            &c,
            "DELETE FROM sessions WHERE last_used_at < $1 OR created_at < $2",
            &[&idle_before, &created_before],
        )
        .await
    }
}

// ---- login throttling ------------------------------------------------------------------

#[async_trait]
impl LoginThrottleStore for Postgres {
    async fn begin_attempt(
        &self,
        ws: WorkspaceId,
        subjects: Vec<String>,
        now: i64,
        window_start: i64,
        limit: i64,
    ) -> Result<Attempt> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // One attempt at a time per subject, on every node. The locks are taken in one
        // order (sorted keys, locked in array order), so that two attempts naming the
        // same subjects cannot deadlock.
        let mut keys: Vec<String> = subjects
            .iter()
            .map(|s| format!("vesper:login:{}:{s}", ws.0))
            .collect();
        keys.sort();
        keys.dedup();
        let lock_all = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) \
                 FROM unnest($1::TEXT[]) WITH ORDINALITY AS l(k, n) ORDER BY n",
            )
            .await?;
        let forget = tx
            .prepare_cached(
                "DELETE FROM login_failures WHERE workspace_id = $1 AND subject = ANY($2) \
                 AND failed_at < $3",
            )
            .await?;
        // A pending record older than a minute belongs to a crashed check.
        let tally = tx
            .prepare_cached(
                "SELECT s, COUNT(f.subject) FILTER (WHERE f.pending = 0), \
                 MIN(f.failed_at) FILTER (WHERE f.pending = 0), \
                 COUNT(f.subject) FILTER (WHERE f.pending = 1 AND f.failed_at >= $3) \
                 FROM (SELECT DISTINCT unnest($2::TEXT[])) AS u(s) LEFT JOIN login_failures f \
                 ON f.workspace_id = $1 AND f.subject = s GROUP BY s",
            )
            .await?;
        // The three run one after the other on the server but travel together, so the
        // locks are held for one round trip rather than one per statement.
        let stale = now - 60;
        let (_, _, counts) = futures_util::future::try_join3(
            tx.query(&lock_all, &[&keys]),
            tx.execute(&forget, &[&ws.0, &subjects, &window_start]),
            tx.query(&tally, &[&ws.0, &subjects, &stale]),
        )
        .await?;
        let mut verdict = None;
        for subject in &subjects {
            let (mut failed, mut oldest, mut pending) = (0i64, None::<i64>, 0i64);
            for row in &counts {
                if row.try_get::<_, &str>(0)? == subject {
                    (failed, oldest, pending) = (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                }
            }
            if failed >= limit {
                verdict = Some(Attempt::Throttled {
                    oldest: oldest.unwrap_or(now),
                });
                break;
            }
            if failed + pending >= limit {
                verdict = Some(Attempt::Busy);
                break;
            }
        }
        let verdict = match verdict {
            Some(refused) => refused,
            None => {
                let rows = query(
                    &tx,
                    "INSERT INTO login_failures (workspace_id, subject, failed_at, pending) \
                     SELECT $1, s, $3, 1 FROM unnest($2::TEXT[]) WITH ORDINALITY AS x(s, n) \
                     ORDER BY n RETURNING id",
                    &[&ws.0, &subjects, &now],
                )
                .await?;
                Attempt::Admitted(
                    rows.iter()
                        .map(|r| r.try_get(0))
                        .collect::<std::result::Result<_, PgError>>()?,
                )
            }
        };
        tx.commit().await?;
        Ok(verdict)
    }

    async fn forget_login_failures(&self, before: i64) -> Result<u64> {
        let c = self.conn().await?;
        execute(
            &c,
            "DELETE FROM login_failures WHERE failed_at < $1",
            &[&before],
        )
        .await
    }

    async fn failures_between(
        &self,
        ws: WorkspaceId,
        first: String,
        end: String,
        since: i64,
    ) -> Result<i64> {
        let c = self.conn().await?;
        // COLLATE "C": the range is of bytes, as the subjects were built, whatever the
        // database's collation.
        Ok(query_one(
            &c,
            "SELECT COUNT(*) FROM login_failures WHERE workspace_id = $1 \
             AND subject COLLATE \"C\" >= $2 AND subject COLLATE \"C\" < $3 \
             AND failed_at >= $4 AND pending = 0",
            &[&ws.0, &first, &end, &since],
        )
        .await?
        .try_get(0)?)
    }

    async fn end_attempt(&self, records: Vec<i64>, failed: bool) -> Result<()> {
        let sql = if failed {
            "UPDATE login_failures SET pending = 0 WHERE id = ANY($1)"
        } else {
            "DELETE FROM login_failures WHERE id = ANY($1)"
        };
        let c = self.conn().await?;
        execute(&c, sql, &[&records]).await?;
        Ok(())
    }
}

// ---- groups ----------------------------------------------------------------------------

const GROUP_COLUMNS: &str = "id, name, created_at, updated_at, version";

fn group_from_row(r: &Row) -> std::result::Result<Group, PgError> {
    Ok(Group {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        created_at: r.try_get(2)?,
        updated_at: r.try_get(3)?,
        version: r.try_get(4)?,
    })
}

/// Locks a group's row for the rest of the transaction and reads it.
async fn group_for_update(
    c: &impl GenericClient,
    ws: WorkspaceId,
    id: i64,
) -> Result<Option<Group>> {
    let row = query_opt(
        c,
        &format!(
            "SELECT {GROUP_COLUMNS} FROM project_groups WHERE workspace_id = $1 AND id = $2 \
             FOR UPDATE"
        ),
        &[&ws.0, &id],
    )
    .await?;
    Ok(row.as_ref().map(group_from_row).transpose()?)
}

#[async_trait]
impl GroupStore for Postgres {
    async fn add_group(&self, ws: WorkspaceId, name: String, now: i64) -> Result<Group> {
        let c = self.conn().await?;
        let row = query_one(
            &c,
            &format!(
                "INSERT INTO project_groups (workspace_id, name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3) RETURNING {GROUP_COLUMNS}"
            ),
            &[&ws.0, &name, &now],
        )
        .await?;
        Ok(group_from_row(&row)?)
    }

    async fn update_group(
        &self,
        ws: WorkspaceId,
        id: i64,
        name: Option<String>,
        expected: Expected,
        now: i64,
    ) -> Result<Option<Group>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some(current) = group_for_update(&tx, ws, id).await? else {
            return Ok(None);
        };
        check_version(expected, current.version)?;
        let row = query_one(
            &tx,
            &format!(
                "UPDATE project_groups SET name = COALESCE($3, name), updated_at = $4, \
                 version = version + 1 WHERE workspace_id = $1 AND id = $2 RETURNING {GROUP_COLUMNS}"
            ),
            &[&ws.0, &id, &name, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(group_from_row(&row)?))
    }

    async fn remove_group(&self, ws: WorkspaceId, id: i64, expected: Expected) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some(current) = group_for_update(&tx, ws, id).await? else {
            return Ok(false);
        };
        check_version(expected, current.version)?;
        // Its projects and tasks are left in no group, and say so to syncing clients.
        let now = crate::domain::now();
        for table in ["projects", "tasks"] {
            execute(
                &tx,
                &format!(
                    "UPDATE {table} SET group_id = NULL, updated_at = $3, version = version + 1 \
                     WHERE workspace_id = $1 AND group_id = $2"
                ),
                &[&ws.0, &id, &now],
            )
            .await?;
        }
        let removed = execute(
            &tx,
            "DELETE FROM project_groups WHERE workspace_id = $1 AND id = $2",
            &[&ws.0, &id],
        )
        .await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn group(&self, ws: WorkspaceId, id: i64) -> Result<Option<Group>> {
        let c = self.conn().await?;
        let row = query_opt(
            &c,
            &format!(
                "SELECT {GROUP_COLUMNS} FROM project_groups WHERE workspace_id = $1 AND id = $2"
            ),
            &[&ws.0, &id],
        )
        .await?;
        Ok(row.as_ref().map(group_from_row).transpose()?)
    }

    async fn groups(&self, ws: WorkspaceId) -> Result<Vec<Group>> {
        let c = self.conn().await?;
        let rows = query(
            &c,
            &format!(
                "SELECT {GROUP_COLUMNS} FROM project_groups WHERE workspace_id = $1 ORDER BY id"
            ),
            &[&ws.0],
        )
        .await?;
        Ok(rows
            .iter()
            .map(group_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }
}

// ---- the mail outbox -------------------------------------------------------------------

/// Queues mails inside a write transaction: they commit, or vanish, with the change.
pub(crate) async fn queue_mail(
    tx: &impl GenericClient,
    ws: WorkspaceId,
    mail: &[OutgoingMail],
    now: i64,
) -> Result<()> {
    if mail.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO outbox (workspace_id, recipient, subject, text_body, html_body, \
             created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .await?;
    for m in mail {
        tx.execute(
            &stmt,
            &[
                &ws.0,
                &m.recipient,
                &m.subject,
                &m.text_body,
                &m.html_body,
                &now,
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for Postgres {
    async fn claim_mail(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<QueuedMail>> {
        let c = self.conn().await?;
        // Rows another node is claiming right now are skipped, not waited for; the lease
        // keeps them from everyone once this statement commits.
        let rows = query(
            &c,
            "UPDATE outbox SET locked_until = $2 WHERE id IN (SELECT id FROM outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
             AND locked_until <= $1 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, recipient, subject, text_body, html_body, attempts",
            &[&now, &(now + lease_secs), &limit.max(0)],
        )
        .await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok(QueuedMail {
                    id: r.try_get(0)?,
                    mail: OutgoingMail {
                        recipient: r.try_get(1)?,
                        subject: r.try_get(2)?,
                        text_body: r.try_get(3)?,
                        html_body: r.try_get(4)?,
                    },
                    attempts: r.try_get(5)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, PgError>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn mail_sent(&self, id: i64, now: i64) -> Result<()> {
        let c = self.conn().await?;
        execute(
            &c,
            "UPDATE outbox SET sent_at = $2, attempts = attempts + 1, locked_until = 0 \
             WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        Ok(())
    }

    async fn mail_failed(
        &self,
        id: i64,
        now: i64,
        error: String,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let c = self.conn().await?;
        execute(
            &c,
            "UPDATE outbox SET attempts = attempts + 1, locked_until = 0, last_error = $3, \
             next_attempt_at = COALESCE($4::BIGINT, next_attempt_at), \
             failed_at = CASE WHEN $4::BIGINT IS NULL THEN $2::BIGINT END WHERE id = $1",
            &[&id, &now, &error, &retry_at],
        )
        .await?;
        Ok(())
    }
}

/// Ids of `ids` that are not in `found`, in order, as the SQLite backend answers.
pub(crate) fn absent(ids: &[i64], found: &HashSet<i64>) -> Vec<i64> {
    ids.iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_outside_quoted_text() {
        assert_eq!(
            numbered("a = ? AND b LIKE ? ESCAPE '\\' AND c = '?' AND d = ?"),
            "a = $1 AND b LIKE $2 ESCAPE '\\' AND c = '?' AND d = $3"
        );
    }
}
