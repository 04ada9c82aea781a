//! The PostgreSQL backend (tokio-postgres through a deadpool pool), chosen by a
//! `postgres://` or `postgresql://` database URL.
//!
//! Several nodes may share one database: sessions, login throttling and the mail outbox
//! live in it, so any node serves any request. Each node caches the sessions it reads,
//! and forgets those another node changes as soon as it announces the change
//! ([`listener`]). Each method reproduces the SQLite
//! backend's results and errors; the visibility conditions and list filters are the
//! shared ones of [`crate::store::sql`], their `?` placeholders numbered for PostgreSQL.
//!
//! Connections are plain TCP without TLS: run PostgreSQL on the same machine, or reach it
//! over a private network only. Commits are durable before the answer
//! (`synchronous_commit` stays on). The database URL is never logged, since it may hold a
//! password. When PostgreSQL cannot be reached, every call fails fast with
//! [`StoreError::Unavailable`] and the pool reconnects by itself once it is back.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;

use crate::domain::WorkspaceId;
use crate::store::session_cache::SessionCache;
use crate::store::{users, Result, Session, SessionStore, StoreError};

mod activity_adds;
mod driver;
mod listener;
mod shared;
mod transaction;

pub use driver::{Pg, GENERIC_PLANS};

/// Migrations in order; each runs once, recorded in `schema_migrations`. Never edit a
/// migration that has landed: add the next one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_foundation.sql"),
    include_str!("../../../migrations/postgres/0002_projects_tasks_activities.sql"),
    include_str!("../../../migrations/postgres/0003_outbox.sql"),
    include_str!("../../../migrations/postgres/0004_indexes_for_writes_and_lists.sql"),
    include_str!("../../../migrations/postgres/0005_versions.sql"),
    include_str!("../../../migrations/postgres/0006_indexes_for_pages.sql"),
    include_str!("../../../migrations/postgres/0007_tokens.sql"),
    include_str!("../../../migrations/postgres/0008_own_task_counts.sql"),
    include_str!("../../../migrations/postgres/0009_activity_task_checked_at_commit.sql"),
];

/// Connections per node.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection (or to open one) before it answers
/// `Unavailable`: short, so that requests during an outage fail fast.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an unanswered connection is trusted before it counts as broken.
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(30);

type PgError = tokio_postgres::Error;

pub struct Postgres {
    pool: Pool,
    shared: shared::Shared,
    activity_adds: activity_adds::ActivityAdds,
    sessions: Arc<SessionCache>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.listener.abort();
    }
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

pub(crate) fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => StoreError::Unavailable(describe(e)),
        other => StoreError::Unavailable(other.into()),
    }
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
            config.clone(),
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
        let sessions = Arc::new(SessionCache::offline());
        let store = Postgres {
            activity_adds: activity_adds::ActivityAdds::spawn(pool.clone()),
            pool,
            shared: shared::Shared::new(POOL_SIZE / 4),
            listener: listener::spawn(config, sessions.clone()),
            sessions,
        };
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

/// Runs shared work on a pooled connection, timed as a storage call of kind `$op`.
macro_rules! run_on_connection {
    ($op:ident, $store:expr, $db:ident => $work:expr) => {{
        let _timer = $crate::metrics::store_timer($crate::metrics::StoreOp::$op);
        let conn = $store.conn().await?;
        let $db = &Pg::new(&conn);
        $work.await
    }};
}

/// Runs shared work on a pooled connection.
macro_rules! run_read {
    ($($t:tt)*) => { run_on_connection!(Read, $($t)*) };
}

/// A read by key, on a connection that other requests' keyed reads share ([`shared`]).
macro_rules! run_keyed_read {
    ($store:expr, $db:ident => $work:expr) => {{
        let _timer = $crate::metrics::store_timer($crate::metrics::StoreOp::Read);
        let conn = $store.shared.connection(&$store.pool).await?;
        let $db = &Pg::new(&*conn);
        $work.await
    }};
}

/// One statement needs no transaction of its own.
macro_rules! run_write_one {
    ($($t:tt)*) => { run_on_connection!(Write, $($t)*) };
}

/// Runs shared work in a transaction, committed when it succeeds; with `announcing`,
/// the transaction tells every node which sessions it changed (`listener::announce`).
macro_rules! run_write {
    ($store:expr, $db:ident => $work:expr) => {
        run_write!($store, announcing None, $db => $work)
    };
    ($store:expr, announcing $what:expr, $db:ident => $work:expr) => {{
        let _timer = $crate::metrics::store_timer($crate::metrics::StoreOp::Write);
        let tx = transaction::Transaction::begin($store.conn().await?).await?;
        let done = {
            let $db = &tx.db();
            $work.await
        };
        let what: Option<&str> = $what;
        let done = match (done, what) {
            (Ok(done), Some(what)) => listener::announce(tx.client(), what).await.map(|_| done),
            (done, _) => done,
        };
        tx.finish(done).await
    }};
}

/// A write that changes users: cached sessions carry their user (level, activity,
/// profile), so every node forgets them all once it is committed. This node forgets
/// them even when the write failed: a commit whose answer was lost may have happened.
macro_rules! run_write_users {
    ($store:expr, $db:ident => $work:expr) => {{
        let done: Result<_> =
            async { run_write!($store, announcing Some(listener::EVERYONE), $db => $work) }
                .await;
        $store.sessions.forget_all();
        done
    }};
}

/// A new activity joins the others waiting ([`activity_adds`]); anything else is a write
/// of its own.
macro_rules! run_activity_save {
    ($store:expr, $ws:expr, $a:expr, $mail:expr, $now:expr) => {
        if activity_adds::ActivityAdds::gathers(&$a) {
            $store.activity_adds.add($ws, $a, $mail, $now).await
        } else {
            run_write!($store, db => $crate::store::activities::save(db, $ws, &$a, &$mail, $now))
        }
    };
}

/// Runs a list's reads in one read-only snapshot (the page and its total), whose BEGIN
/// and COMMIT travel with its statements (`transaction::Snapshot`).
macro_rules! run_list {
    ($store:expr, $db:ident => $work:expr) => {{
        let _timer = $crate::metrics::store_timer($crate::metrics::StoreOp::Read);
        let snapshot = transaction::Snapshot::new($store.conn().await?);
        let done = {
            let $db = &Pg::new(snapshot.client());
            // In order: the BEGIN is sent before the work's first statement.
            futures_util::try_join!(snapshot.begin(), $work)?.1
        };
        snapshot.end();
        Ok(done)
    }};
}

crate::store::backend::impl_store!(Postgres);

#[async_trait]
impl SessionStore for Postgres {
    async fn add_session(
        &self,
        ws: WorkspaceId,
        token_hash: Vec<u8>,
        user_id: i64,
        now: i64,
    ) -> Result<()> {
        run_write_one!(self, db => users::add_session(db, ws, &token_hash, user_id, now))
    }

    async fn session(&self, ws: WorkspaceId, token_hash: Vec<u8>) -> Result<Option<Session>> {
        (self.sessions)
            .read_through(ws, &token_hash, || async {
                run_keyed_read!(self, db => users::session(db, ws, &token_hash))
            })
            .await
    }

    // Forgotten here even when the write failed, as in `run_write_users!`.
    async fn touch_session(&self, token_hash: Vec<u8>, now: i64) -> Result<()> {
        let what = hex::encode(&token_hash);
        let done: Result<_> = async {
            run_write!(self, announcing Some(&what),
                db => users::touch_session(db, &token_hash, now))
        }
        .await;
        self.sessions.forget(&token_hash);
        done
    }

    async fn remove_session(&self, token_hash: Vec<u8>) -> Result<()> {
        let what = hex::encode(&token_hash);
        let done: Result<_> = async {
            run_write!(self, announcing Some(&what),
                db => users::remove_session(db, &token_hash))
        }
        .await;
        self.sessions.forget(&token_hash);
        done
    }

    /// Announced only when a session went: each announcement empties every node's cache.
    async fn remove_stale_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let removed: Result<u64> = async {
            run_write!(self, db => async {
                let n = users::remove_stale_sessions(db, idle_before, created_before).await?;
                if n > 0 {
                    listener::announce(db.client(), listener::EVERYONE).await?;
                }
                Ok::<_, StoreError>(n)
            })
        }
        .await;
        if !matches!(removed, Ok(0)) {
            self.sessions.forget_all();
        }
        removed
    }
}
