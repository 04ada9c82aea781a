//! The embedded SQLite backend (rusqlite).
//!
//! One writer connection and a few readers, all in WAL mode. `synchronous=FULL` makes
//! every commit durable before the answer goes out. Writes queue for the writer thread,
//! which runs every write waiting at that moment in one transaction (each in its own
//! savepoint, so one failing write undoes only itself) and answers them all after the
//! one commit: group commit keeps durability and shares the cost of the sync. Blocking calls run on tokio's
//! blocking pool so they never stall the executor.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, Transaction};

use crate::domain::user::{NewUser, Profile, SecurityLevel, User, UserPatch};
use crate::domain::WorkspaceId;
mod session_cache;
mod work;

use crate::store::{
    check_version, sql, Attempt, Expected, Group, GroupStore, LoginThrottleStore, OutboxStore,
    OutgoingMail, QueuedMail, Result, Session, SessionStore, StoreError, UserScope, UserStore,
};

/// Migrations in order; each runs once, recorded in `PRAGMA user_version`. Never edit a
/// migration that has landed: add the next one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_foundation.sql"),
    include_str!("../../../migrations/sqlite/0002_projects_tasks_activities.sql"),
    include_str!("../../../migrations/sqlite/0003_outbox.sql"),
    include_str!("../../../migrations/sqlite/0004_indexes_for_writes_and_lists.sql"),
    include_str!("../../../migrations/sqlite/0005_versions.sql"),
];

const READERS: usize = 4;

pub struct Sqlite {
    jobs: std::sync::mpsc::Sender<Job>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    sessions: session_cache::SessionCache,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        shared_error(&e)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Visibility makes list queries differ per caller: keep more of them prepared.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// SQLite counts every allocation it makes under one process-wide mutex unless told not
/// to; with reads on every core that mutex was a tenth of a list request's profile. The
/// setting is only taken before SQLite's first use in the process, so later calls (a
/// second store in the same test process) are refused and ignored.
#[allow(unsafe_code)]
fn skip_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a configuration call with its documented int argument, made once,
        // before any connection of this process is opened.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

/// Runs a read's statements in one read transaction: they see one snapshot (a task and
/// its team, a list and its total), and the WAL read lock is taken once instead of once
/// per statement (the lock's system calls were 7% of a list request's profile).
fn in_snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    if !conn.is_autocommit() {
        // A read that panicked midway left its transaction open.
        conn.execute_batch("ROLLBACK")?;
    }
    conn.prepare_cached("BEGIN")?.execute([])?;
    let out = f(conn);
    // Nothing was written: ending the transaction only lets the snapshot go.
    conn.prepare_cached("COMMIT")?.execute([])?;
    out
}

/// Creates the database file if needed and makes it, and the WAL and shared memory an
/// earlier run left, readable by the server's account alone: they hold every password
/// hash. SQLite gives the WAL and shared memory files it creates the database file's
/// mode, so those follow.
fn make_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(crate::files::PRIVATE_FILE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        match crate::files::correct_mode(file, crate::files::PRIVATE_FILE) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            done => done.with_context(|| format!("making {} private", file.display()))?,
        }
    }
    Ok(())
}

impl Sqlite {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        skip_memory_statistics();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_private_dir(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        make_private(path)?;
        let mut writer =
            Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let conn = Connection::open(path)?;
                configure(&conn)?;
                conn.pragma_update(None, "query_only", "ON")?;
                Ok(Mutex::new(conn))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Sqlite {
            jobs: spawn_writer(writer)?,
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            sessions: Default::default(),
        })
    }

    /// Runs a read on one of the reader connections.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        // Most reads are a few index lookups, shorter than a hop to another thread and
        // back: they run right here on a free reader. When every reader is busy, the
        // read waits for one on the blocking pool instead of stalling the executor.
        for reader in self.readers.iter() {
            if let Ok(conn) = reader.try_lock() {
                return in_snapshot(&conn, f);
            }
        }
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i].lock().unwrap_or_else(|p| p.into_inner());
            in_snapshot(&conn, f)
        })
        .await
        .map_err(|e| StoreError::Internal(e.into()))?
    }

    /// A write that changes users: cached sessions carry their user (level, activity,
    /// profile), so all are forgotten once it is committed.
    async fn write_users<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let done = self.write(f).await;
        self.sessions.forget_all();
        done
    }

    /// Runs `f` on the writer inside a transaction, and answers once that transaction
    /// is durably committed. An error from `f` undoes what `f` wrote, nothing else.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |tx| {
            let tx = match tx {
                Ok(tx) => tx,
                Err(e) => {
                    let _ = reply.send(Err(shared_error(e)));
                    return None;
                }
            };
            let out = f(tx);
            Some(Done {
                ok: out.is_ok(),
                finish: Box::new(move |committed| {
                    let _ = reply.send(match committed {
                        Ok(()) => out,
                        Err(e) => Err(shared_error(e)),
                    });
                }),
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the writer has stopped")))?;
        answer.await.map_err(|_| {
            StoreError::Internal(anyhow::anyhow!("a write failed inside the writer"))
        })?
    }
}

/// A write waiting for the writer: given the batch's transaction (or why there is none),
/// it runs and says how to answer once the commit is known.
type Job =
    Box<dyn FnOnce(std::result::Result<&Transaction, &rusqlite::Error>) -> Option<Done> + Send>;

/// How a write learns whether its batch committed.
type Committed<'a> = std::result::Result<(), &'a rusqlite::Error>;

/// A write that ran: whether it succeeded, and how to answer it after the commit.
struct Done {
    ok: bool,
    finish: Box<dyn for<'a> FnOnce(Committed<'a>) + Send>,
}

/// The most writes one transaction takes.
const MAX_BATCH: usize = 512;

/// Starts the writer thread that owns the write connection.
fn spawn_writer(mut conn: Connection) -> anyhow::Result<std::sync::mpsc::Sender<Job>> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("vesper-sqlite-writer".into())
        .spawn(move || {
            let mut wrote_since_checkpoint = false;
            loop {
                let first = match queue.recv_timeout(IDLE_CHECKPOINT_AFTER) {
                    Ok(job) => job,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if wrote_since_checkpoint {
                            checkpoint_when_idle(&conn);
                            wrote_since_checkpoint = false;
                        }
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                };
                wrote_since_checkpoint = true;
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                run_batch(&mut conn, batch);
            }
        })?;
    Ok(jobs)
}

/// How long the writer waits without work before it checkpoints the WAL.
const IDLE_CHECKPOINT_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// SQLite checkpoints as the WAL grows, but a checkpoint that runs while readers are busy
/// may leave the end of the WAL not yet copied into the database, and every read
/// transaction costs more until it is: after the benchmark's seeding, lists ran at 20,600
/// req/s, and at 33,800 once a checkpoint had been run by hand. So once writes pause,
/// the writer copies the rest.
fn checkpoint_when_idle(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "idle WAL checkpoint failed");
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            for job in batch {
                job(Err(&e));
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(e) = tx.execute_batch("SAVEPOINT job") {
            job(Err(&e));
            continue;
        }
        // A panicking write fails alone (its caller sees an internal error).
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&tx))));
        let (ok, finish) = match ran {
            Ok(Some(d)) => (d.ok, Some(d.finish)),
            Ok(None) | Err(_) => (false, None),
        };
        let closed = if ok {
            tx.execute_batch("RELEASE job")
        } else {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = closed {
            tracing::error!(error = %e, "could not close a write's savepoint");
        }
        done.extend(finish);
    }
    let committed = tx.commit();
    for finish in done {
        finish(committed.as_ref().map(|_| ()));
    }
}

/// The same storage error for every write of a batch.
fn shared_error(e: &rusqlite::Error) -> StoreError {
    let text = anyhow::anyhow!("{e}");
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly,
        ) => StoreError::Unavailable(text),
        _ => StoreError::Internal(text),
    }
}

const USER_COLUMNS: &str = "id, email, title, first_name, last_name, address, work_phone, \
    cell_phone, company, comment, avatar, security_level, can_view_profiles, active, \
    created_at, updated_at, version";
/// How many columns `USER_COLUMNS` names: what a query selects after them starts here.
const USER_COLUMN_COUNT: usize = 17;

/// The users who share a project team or a task team with user `?2`.
fn user_from_row(row: &Row) -> rusqlite::Result<User> {
    let level: i64 = row.get(11)?;
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        profile: Profile {
            title: row.get(2)?,
            first_name: row.get(3)?,
            last_name: row.get(4)?,
            address: row.get(5)?,
            work_phone: row.get(6)?,
            cell_phone: row.get(7)?,
            company: row.get(8)?,
            comment: row.get(9)?,
            avatar: row.get(10)?,
        },
        security_level: SecurityLevel::from_code(level).unwrap_or(SecurityLevel::Client),
        can_view_profiles: row.get(12)?,
        active: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
        version: row.get(16)?,
    })
}

fn user_in(conn: &Connection, ws: WorkspaceId, id: i64) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = ?1 AND id = ?2"),
        params![ws.0, id],
        user_from_row,
    )
    .optional()
}

/// Active admins other than `id`; the last admin must stay.
fn other_admins(conn: &Connection, ws: WorkspaceId, id: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM users WHERE workspace_id = ?1 AND active = 1 \
         AND security_level = 0 AND id <> ?2",
        params![ws.0, id],
        |r| r.get(0),
    )
}

fn unique_as_duplicate_email(e: rusqlite::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::DuplicateEmail
    } else {
        e.into()
    }
}

#[async_trait]
impl UserStore for Sqlite {
    async fn count_users(&self, ws: WorkspaceId) -> Result<i64> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM users WHERE workspace_id = ?1 AND active = 1",
                [ws.0],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn add_user(&self, ws: WorkspaceId, user: NewUser, now: i64) -> Result<User> {
        self.write(move |tx| {
            let p = &user.profile;
            tx.execute(
                "INSERT INTO users (workspace_id, email, email_key, password_hash, title, \
                 first_name, last_name, address, work_phone, cell_phone, company, comment, \
                 avatar, security_level, can_view_profiles, active, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 1, ?16, ?16)",
                params![
                    ws.0,
                    user.email,
                    user.email.to_lowercase(),
                    user.password_hash,
                    p.title,
                    p.first_name,
                    p.last_name,
                    p.address,
                    p.work_phone,
                    p.cell_phone,
                    p.company,
                    p.comment,
                    p.avatar,
                    user.security_level.code(),
                    user.can_view_profiles,
                    now
                ],
            )
            .map_err(unique_as_duplicate_email)?;
            let id = tx.last_insert_rowid();
            Ok(user_in(tx, ws, id)?.expect("the row just inserted"))
        })
        .await
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
        self.write_users(move |tx| {
            let Some(current) = user_in(tx, ws, id)? else {
                return Ok(None);
            };
            check_version(expected, current.version)?;
            let next = patch.apply(&current);
            let demoted = current.active
                && current.security_level == SecurityLevel::Admin
                && next.security_level != SecurityLevel::Admin;
            if demoted && other_admins(tx, ws, id)? == 0 {
                return Err(StoreError::LastAdmin);
            }
            let p = &next.profile;
            tx.execute(
                "UPDATE users SET email = ?3, email_key = ?4, title = ?5, first_name = ?6, \
                 last_name = ?7, address = ?8, work_phone = ?9, cell_phone = ?10, company = ?11, \
                 comment = ?12, avatar = ?13, security_level = ?14, can_view_profiles = ?15, \
                 updated_at = ?16, version = version + 1 WHERE workspace_id = ?1 AND id = ?2",
                params![
                    ws.0,
                    id,
                    next.email,
                    next.email.to_lowercase(),
                    p.title,
                    p.first_name,
                    p.last_name,
                    p.address,
                    p.work_phone,
                    p.cell_phone,
                    p.company,
                    p.comment,
                    p.avatar,
                    next.security_level.code(),
                    next.can_view_profiles,
                    now
                ],
            )
            .map_err(unique_as_duplicate_email)?;
            if let Some(hash) = &patch.password_hash {
                tx.execute(
                    "UPDATE users SET password_hash = ?3 WHERE workspace_id = ?1 AND id = ?2",
                    params![ws.0, id, hash],
                )?;
            }
            if patch.ends_sessions(&current) {
                tx.execute(
                    "DELETE FROM sessions WHERE user_id = ?1 AND token_hash IS NOT ?2",
                    params![id, keep_session],
                )?;
            }
            Ok(user_in(tx, ws, id)?)
        })
        .await
    }

    async fn remove_user(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
        now: i64,
    ) -> Result<bool> {
        self.write_users(move |tx| {
            let Some(current) = user_in(tx, ws, id)? else {
                return Ok(false);
            };
            check_version(expected, current.version)?;
            if !current.active {
                return Ok(true);
            }
            if current.security_level == SecurityLevel::Admin && other_admins(tx, ws, id)? == 0 {
                return Err(StoreError::LastAdmin);
            }
            tx.execute(
                "UPDATE users SET active = 0, updated_at = ?3, version = version + 1 \
                 WHERE workspace_id = ?1 AND id = ?2",
                params![ws.0, id, now],
            )?;
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            // A removed user leaves every team but stays as owner and author; the teams'
            // projects and tasks change with it.
            tx.execute(
                "UPDATE projects SET version = version + 1 \
                 WHERE id IN (SELECT project_id FROM project_team WHERE user_id = ?1)",
                [id],
            )?;
            tx.execute(
                "UPDATE tasks SET version = version + 1 \
                 WHERE id IN (SELECT task_id FROM task_team WHERE user_id = ?1)",
                [id],
            )?;
            tx.execute("DELETE FROM project_team WHERE user_id = ?1", [id])?;
            tx.execute("DELETE FROM task_team WHERE user_id = ?1", [id])?;
            Ok(true)
        })
        .await
    }

    async fn user(&self, ws: WorkspaceId, id: i64) -> Result<Option<User>> {
        self.read(move |c| Ok(user_in(c, ws, id)?)).await
    }

    async fn user_by_email(&self, ws: WorkspaceId, email: &str) -> Result<Option<User>> {
        Ok(self.credentials(ws, email).await?.map(|(u, _)| u))
    }

    async fn credentials(&self, ws: WorkspaceId, email: &str) -> Result<Option<(User, String)>> {
        let key = email.trim().to_lowercase();
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {USER_COLUMNS}, password_hash FROM users \
                     WHERE workspace_id = ?1 AND email_key = ?2 AND active = 1"
                ),
                params![ws.0, key],
                |r| Ok((user_from_row(r)?, r.get(USER_COLUMN_COUNT)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn users_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<User>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE workspace_id = ?1 AND id = ?2 AND active = 1"
            ))?;
            let mut users = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(u) = stmt.query_row(params![ws.0, id], user_from_row).optional()? {
                    users.push(u);
                }
            }
            Ok(users)
        })
        .await
    }

    async fn users(&self, ws: WorkspaceId, scope: UserScope) -> Result<Vec<User>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE workspace_id = ?1 AND active = 1 \
                 AND {} ORDER BY id",
                sql::users_in_scope(scope)
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![ws.0], user_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn are_team_mates(&self, _ws: WorkspaceId, a: i64, b: i64) -> Result<bool> {
        if a == b {
            return Ok(true);
        }
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT ?1 IN ({})", sql::team_mates(a)),
                params![b],
                |r| r.get(0),
            )?)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for Sqlite {
    async fn add_session(
        &self,
        ws: WorkspaceId,
        token_hash: Vec<u8>,
        user_id: i64,
        now: i64,
    ) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO sessions (token_hash, workspace_id, user_id, created_at, last_used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![token_hash, ws.0, user_id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, ws: WorkspaceId, token_hash: Vec<u8>) -> Result<Option<Session>> {
        let generation = match self.sessions.get(ws, &token_hash) {
            Ok(session) => return Ok(Some(session)),
            Err(generation) => generation,
        };
        let key = token_hash.clone();
        let found = self
            .read(move |c| {
                let cols = USER_COLUMNS
                    .split(", ")
                    .map(|col| format!("u.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {cols}, s.created_at, s.last_used_at FROM sessions s \
                 JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = ?1 AND s.workspace_id = ?2 AND u.active = 1"
                ))?;
                Ok(stmt
                    .query_row(params![token_hash, ws.0], |r| {
                        Ok(Session {
                            user: user_from_row(r)?,
                            created_at: r.get(USER_COLUMN_COUNT)?,
                            last_used_at: r.get(USER_COLUMN_COUNT + 1)?,
                        })
                    })
                    .optional()?)
            })
            .await?;
        if let Some(session) = &found {
            self.sessions.keep(generation, ws, key, session.clone());
        }
        Ok(found)
    }

    async fn touch_session(&self, token_hash: Vec<u8>, now: i64) -> Result<()> {
        let key = token_hash.clone();
        let done = self
            .write(move |tx| {
                tx.execute(
                    "UPDATE sessions SET last_used_at = ?2 WHERE token_hash = ?1",
                    params![token_hash, now],
                )?;
                Ok(())
            })
            .await;
        self.sessions.forget(&key);
        done
    }

    async fn remove_session(&self, token_hash: Vec<u8>) -> Result<()> {
        let key = token_hash.clone();
        let done = self
            .write(move |tx| {
                tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
                Ok(())
            })
            .await;
        self.sessions.forget(&key);
        done
    }

    async fn remove_stale_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let done = self
            .write(move |tx| {
                Ok(tx.execute(
                    "DELETE FROM sessions WHERE last_used_at < ?1 OR created_at < ?2",
                    params![idle_before, created_before],
                )? as u64)
            })
            .await;
        self.sessions.forget_all();
        done
    }
}

#[async_trait]
impl LoginThrottleStore for Sqlite {
    async fn begin_attempt(
        &self,
        ws: WorkspaceId,
        subjects: Vec<String>,
        now: i64,
        window_start: i64,
        limit: i64,
    ) -> Result<Attempt> {
        self.write(move |tx| {
            for subject in &subjects {
                tx.execute(
                    "DELETE FROM login_failures WHERE workspace_id = ?1 AND subject = ?2 AND failed_at < ?3",
                    params![ws.0, subject, window_start],
                )?;
                // A pending record older than a minute belongs to a crashed check.
                let (failed, oldest, pending): (i64, Option<i64>, i64) = tx.query_row(
                    "SELECT COALESCE(SUM(pending = 0), 0), MIN(CASE WHEN pending = 0 THEN failed_at END), \
                     COALESCE(SUM(pending = 1 AND failed_at >= ?3), 0) FROM login_failures \
                     WHERE workspace_id = ?1 AND subject = ?2",
                    params![ws.0, subject, now - 60],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                if failed >= limit {
                    return Ok(Attempt::Throttled {
                        oldest: oldest.unwrap_or(now),
                    });
                }
                if failed + pending >= limit {
                    return Ok(Attempt::Busy);
                }
            }
            let mut records = Vec::with_capacity(subjects.len());
            for subject in &subjects {
                tx.execute(
                    "INSERT INTO login_failures (workspace_id, subject, failed_at, pending) VALUES (?1, ?2, ?3, 1)",
                    params![ws.0, subject, now],
                )?;
                records.push(tx.last_insert_rowid());
            }
            Ok(Attempt::Admitted(records))
        })
        .await
    }

    async fn forget_login_failures(&self, before: i64) -> Result<u64> {
        self.write(move |tx| {
            Ok(tx.execute("DELETE FROM login_failures WHERE failed_at < ?1", [before])? as u64)
        })
        .await
    }

    async fn failures_between(
        &self,
        ws: WorkspaceId,
        first: String,
        end: String,
        since: i64,
    ) -> Result<i64> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT COUNT(*) FROM login_failures WHERE workspace_id = ?1 AND subject >= ?2 \
                 AND subject < ?3 AND failed_at >= ?4 AND pending = 0",
            )?
            .query_row(params![ws.0, first, end, since], |r| r.get(0))?)
        })
        .await
    }

    async fn end_attempt(&self, records: Vec<i64>, failed: bool) -> Result<()> {
        self.write(move |tx| {
            let sql = if failed {
                "UPDATE login_failures SET pending = 0 WHERE rowid = ?1"
            } else {
                "DELETE FROM login_failures WHERE rowid = ?1"
            };
            for id in records {
                tx.execute(sql, [id])?;
            }
            Ok(())
        })
        .await
    }
}

fn group_from_row(row: &Row) -> rusqlite::Result<Group> {
    Ok(Group {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
        version: row.get(4)?,
    })
}

fn group_in(conn: &Connection, ws: WorkspaceId, id: i64) -> rusqlite::Result<Option<Group>> {
    conn.query_row(
        "SELECT id, name, created_at, updated_at, version FROM project_groups WHERE workspace_id = ?1 AND id = ?2",
        params![ws.0, id],
        group_from_row,
    )
    .optional()
}

#[async_trait]
impl GroupStore for Sqlite {
    async fn add_group(&self, ws: WorkspaceId, name: String, now: i64) -> Result<Group> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO project_groups (workspace_id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![ws.0, name, now],
            )?;
            Ok(group_in(tx, ws, tx.last_insert_rowid())?.expect("the row just inserted"))
        })
        .await
    }

    async fn update_group(
        &self,
        ws: WorkspaceId,
        id: i64,
        name: Option<String>,
        expected: Expected,
        now: i64,
    ) -> Result<Option<Group>> {
        self.write(move |tx| {
            let Some(current) = group_in(tx, ws, id)? else {
                return Ok(None);
            };
            check_version(expected, current.version)?;
            tx.execute(
                "UPDATE project_groups SET name = COALESCE(?3, name), updated_at = ?4, \
                 version = version + 1 WHERE workspace_id = ?1 AND id = ?2",
                params![ws.0, id, name, now],
            )?;
            Ok(group_in(tx, ws, id)?)
        })
        .await
    }

    async fn remove_group(&self, ws: WorkspaceId, id: i64, expected: Expected) -> Result<bool> {
        self.write(move |tx| {
            let Some(current) = group_in(tx, ws, id)? else {
                return Ok(false);
            };
            check_version(expected, current.version)?;
            // Its projects and tasks are left in no group, and say so to syncing clients.
            let now = crate::domain::now();
            for table in ["projects", "tasks"] {
                tx.execute(
                    &format!("UPDATE {table} SET group_id = NULL, updated_at = ?3, version = version + 1 \
                     WHERE workspace_id = ?1 AND group_id = ?2"),
                    params![ws.0, id, now],
                )?;
            }
            Ok(tx.execute(
                "DELETE FROM project_groups WHERE workspace_id = ?1 AND id = ?2",
                params![ws.0, id],
            )? > 0)
        })
        .await
    }

    async fn group(&self, ws: WorkspaceId, id: i64) -> Result<Option<Group>> {
        self.read(move |c| Ok(group_in(c, ws, id)?)).await
    }

    async fn groups(&self, ws: WorkspaceId) -> Result<Vec<Group>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, created_at, updated_at, version FROM project_groups WHERE workspace_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([ws.0], group_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

/// Queues mails inside a write transaction: they commit, or vanish, with the change.
pub(crate) fn queue_mail(
    tx: &Transaction,
    ws: WorkspaceId,
    mail: &[OutgoingMail],
    now: i64,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (workspace_id, recipient, subject, text_body, html_body, created_at, \
         next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?;
    for m in mail {
        stmt.execute(params![
            ws.0,
            m.recipient,
            m.subject,
            m.text_body,
            m.html_body,
            now
        ])?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for Sqlite {
    async fn claim_mail(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<QueuedMail>> {
        self.write(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, recipient, subject, text_body, html_body, attempts FROM outbox \
                 WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?1 \
                 AND locked_until <= ?1 ORDER BY id LIMIT ?2",
            )?;
            let claimed = stmt
                .query_map(params![now, limit], |r| {
                    Ok(QueuedMail {
                        id: r.get(0)?,
                        mail: OutgoingMail {
                            recipient: r.get(1)?,
                            subject: r.get(2)?,
                            text_body: r.get(3)?,
                            html_body: r.get(4)?,
                        },
                        attempts: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for m in &claimed {
                tx.execute(
                    "UPDATE outbox SET locked_until = ?2 WHERE id = ?1",
                    params![m.id, now + lease_secs],
                )?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn mail_sent(&self, id: i64, now: i64) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, locked_until = 0 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn mail_failed(
        &self,
        id: i64,
        now: i64,
        error: String,
        retry_at: Option<i64>,
    ) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, locked_until = 0, last_error = ?3, \
                 next_attempt_at = COALESCE(?4, next_attempt_at), \
                 failed_at = CASE WHEN ?4 IS NULL THEN ?2 END WHERE id = ?1",
                params![id, now, error, retry_at],
            )?;
            Ok(())
        })
        .await
    }
}
