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
use rusqlite::{Connection, ErrorCode};

use crate::domain::WorkspaceId;
mod driver;
pub mod snapshot;
mod statements;

use statements::Conn;

pub(crate) use driver::Lite;

use crate::store::driver::ready;
use crate::store::{users, Result, Session, SessionStore, StoreError};

/// Migrations in order; each runs once, recorded in `PRAGMA user_version`. Never edit a
/// migration that has landed: add the next one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_foundation.sql"),
    include_str!("../../../migrations/sqlite/0002_projects_tasks_activities.sql"),
    include_str!("../../../migrations/sqlite/0003_outbox.sql"),
    include_str!("../../../migrations/sqlite/0004_indexes_for_writes_and_lists.sql"),
    include_str!("../../../migrations/sqlite/0005_versions.sql"),
    include_str!("../../../migrations/sqlite/0006_indexes_for_pages.sql"),
    include_str!("../../../migrations/sqlite/0007_tokens.sql"),
    include_str!("../../../migrations/sqlite/0008_project_index_covers_the_rules.sql"),
    include_str!("../../../migrations/sqlite/0009_own_task_counts.sql"),
];

const READERS: usize = 4;

pub struct Sqlite {
    jobs: std::sync::mpsc::Sender<Job>,
    readers: Arc<Vec<Mutex<Conn>>>,
    next_reader: AtomicUsize,
    sessions: crate::store::session_cache::SessionCache,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match shared_error(&e) {
            // Kept whole, so that a unique violation can be told apart.
            StoreError::Internal(_) => StoreError::Internal(anyhow::Error::new(e)),
            unavailable => unavailable,
        }
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
fn in_snapshot<T>(conn: &Conn, f: impl FnOnce(&Lite) -> Result<T>) -> Result<T> {
    if !conn.is_autocommit() {
        // A read that panicked midway left its transaction open.
        conn.execute_batch("ROLLBACK")?;
    }
    let statements = conn.statements();
    statements.run("BEGIN", &[])?.finish()?;
    let out = f(&Lite(statements));
    // Nothing was written: ending the transaction only lets the snapshot go. A read's
    // own error comes first: SQLite may have ended the transaction for it.
    let ended = statements.run("COMMIT", &[]).and_then(|c| c.finish());
    let out = out?;
    ended?;
    Ok(out)
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
                Ok(Mutex::new(Conn::new(conn)))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Sqlite {
            jobs: spawn_writer(Conn::new(writer))?,
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            sessions: Default::default(),
        })
    }

    /// Runs a read on one of the reader connections.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Lite) -> Result<T> + Send + 'static,
    {
        let _timer = crate::metrics::store_timer(crate::metrics::StoreOp::Read);
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
        F: FnOnce(&Lite) -> Result<T> + Send + 'static,
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
        F: FnOnce(&Lite) -> Result<T> + Send + 'static,
    {
        let _timer = crate::metrics::store_timer(crate::metrics::StoreOp::Write);
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
        let queue = &crate::metrics::METRICS.sqlite_writer_queue;
        queue.add(1);
        if self.jobs.send(job).is_err() {
            queue.add(-1);
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "the writer has stopped"
            )));
        }
        answer.await.map_err(|_| {
            StoreError::Internal(anyhow::anyhow!("a write failed inside the writer"))
        })?
    }
}

/// A write waiting for the writer: given the batch's transaction (or why there is none),
/// it runs and says how to answer once the commit is known.
type Job = Box<dyn FnOnce(std::result::Result<&Lite, &rusqlite::Error>) -> Option<Done> + Send>;

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
fn spawn_writer(mut conn: Conn) -> anyhow::Result<std::sync::mpsc::Sender<Job>> {
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

fn run_batch(conn: &mut Conn, batch: Vec<Job>) {
    let (conn, statements) = conn.split();
    let metrics = &crate::metrics::METRICS;
    metrics.sqlite_writer_queue.add(-(batch.len() as i64));
    metrics.sqlite_group_size.observe(batch.len() as f64);
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
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&Lite(statements)))));
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

/// Runs shared work on a reader.
macro_rules! run_read {
    ($store:expr, $db:ident => $work:expr) => {
        $store.read(move |$db| ready($work)).await
    };
}

/// A read by key is a read like any other.
macro_rules! run_keyed_read {
    ($($t:tt)*) => { run_read!($($t)*) };
}

/// A list's reads: every read runs in one snapshot.
macro_rules! run_list {
    ($($t:tt)*) => { run_read!($($t)*) };
}

/// Runs shared work on the writer, in the batch's transaction.
macro_rules! run_write {
    ($store:expr, $db:ident => $work:expr) => {
        $store.write(move |$db| ready($work)).await
    };
}

/// An activity's save is a write like any other: the writer thread already commits the
/// writes waiting at one moment together.
macro_rules! run_activity_save {
    ($store:expr, $ws:expr, $a:expr, $mail:expr, $now:expr) => {
        run_write!($store, db => $crate::store::activities::save(db, $ws, &$a, &$mail, $now))
    };
}

/// One statement is a write like any other.
macro_rules! run_write_one {
    ($($t:tt)*) => { run_write!($($t)*) };
}

/// A write that changes users, after which cached sessions are forgotten.
macro_rules! run_write_users {
    ($store:expr, $db:ident => $work:expr) => {
        $store.write_users(move |$db| ready($work)).await
    };
}

crate::store::backend::impl_store!(Sqlite);

#[async_trait]
impl SessionStore for Sqlite {
    async fn add_session(
        &self,
        ws: WorkspaceId,
        token_hash: Vec<u8>,
        user_id: i64,
        now: i64,
    ) -> Result<()> {
        run_write!(self, db => users::add_session(db, ws, &token_hash, user_id, now))
    }

    async fn session(&self, ws: WorkspaceId, token_hash: Vec<u8>) -> Result<Option<Session>> {
        let hash = &token_hash;
        (self.sessions)
            .read_through(ws, hash, || async move {
                let token_hash = hash.clone();
                run_read!(self, db => users::session(db, ws, &token_hash))
            })
            .await
    }

    async fn touch_session(&self, token_hash: Vec<u8>, now: i64) -> Result<()> {
        let key = token_hash.clone();
        let done = self
            .write(move |db| ready(users::touch_session(db, &token_hash, now)))
            .await;
        self.sessions.forget(&key);
        done
    }

    async fn remove_session(&self, token_hash: Vec<u8>) -> Result<()> {
        let key = token_hash.clone();
        let done = self
            .write(move |db| ready(users::remove_session(db, &token_hash)))
            .await;
        self.sessions.forget(&key);
        done
    }

    async fn remove_stale_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let removed =
            run_write!(self, db => users::remove_stale_sessions(db, idle_before, created_before));
        if !matches!(removed, Ok(0)) {
            self.sessions.forget_all();
        }
        removed
    }
}
