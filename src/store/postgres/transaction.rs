//! Transactions on a pooled connection that spend no round trip of their own.
//!
//! A write transaction's last statement travels with its COMMIT. tokio-postgres's own
//! `Transaction` sends `COMMIT` on its own, after every statement has been answered. A
//! statement that locks a hot row (an activity's roll-up into its task) then keeps that
//! row locked for one more round trip, with every other writer of the row queued behind
//! it. Here the shared code hands that statement over
//! ([`Db::run_last`](crate::store::driver::Db::run_last)) and [`Transaction::commit`]
//! sends it and `COMMIT` together, so the row is held only while PostgreSQL runs the two.
//!
//! A list's read-only [`Snapshot`] sends its BEGIN ahead of its first statement and its
//! COMMIT behind its last, answered by no one: PostgreSQL runs a connection's messages in
//! order, so whoever uses the connection next is served after the snapshot has ended.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use deadpool_postgres::{GenericClient, Object};
use futures_util::future::{join_all, maybe_done};
use futures_util::FutureExt;

use crate::store::driver::{Arg, Dialect, Stmt};
use crate::store::postgres::Pg;
use crate::store::{Result, StoreError};

/// A statement a write runs with its COMMIT, and its values.
pub type Last = (&'static Stmt, Vec<Arg<'static>>);

/// A commit that failed: rolled back for certain (a statement sent with it failed, and a
/// COMMIT after a failure rolls back), or with its outcome unknown (the COMMIT's own
/// answer was an error or was lost).
pub enum CommitError {
    RolledBack(StoreError),
    Unknown(StoreError),
}

impl From<CommitError> for StoreError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::RolledBack(e) | CommitError::Unknown(e) => e,
        }
    }
}

/// A transaction on a pooled connection. Dropped before it ends (the request went away
/// while it ran), it takes its connection out of the pool and closes it, and PostgreSQL
/// rolls back: the pool must never hand out a connection inside a transaction.
pub struct Transaction {
    conn: Option<Object>,
    last: Mutex<Vec<Last>>,
}

impl Transaction {
    pub async fn begin(conn: Object) -> Result<Transaction> {
        Transaction::begin_with(conn, "").await
    }

    /// Begins, with `settings` (`SET LOCAL ...;` statements) in the same round trip.
    pub async fn begin_with(conn: Object, settings: &str) -> Result<Transaction> {
        let tx = Transaction {
            conn: Some(conn),
            last: Mutex::new(Vec::new()),
        };
        tx.client()
            .batch_execute(&format!("BEGIN; {settings}"))
            .await?;
        Ok(tx)
    }

    pub fn client(&self) -> &Object {
        self.conn
            .as_ref()
            .expect("a transaction holds its connection until it ends")
    }

    /// The transaction as the shared code drives it.
    pub fn db(&self) -> Pg<'_, Object> {
        Pg::in_transaction(self.client(), &self.last)
    }

    /// Commits, with the statements handed over to run last in the same round trip. They
    /// go out ordered by their first value (a task's id), so that two transactions
    /// rolling up the same tasks lock their rows in one order.
    pub async fn commit(mut self) -> std::result::Result<(), CommitError> {
        let mut last =
            std::mem::take(&mut *self.last.lock().unwrap_or_else(PoisonError::into_inner));
        last.sort_by_key(|(_, values)| match values.first() {
            Some(Arg::Int(Some(id))) => *id,
            _ => i64::MIN,
        });
        let sent = {
            let conn = self.client();
            let mut prepared = Vec::with_capacity(last.len());
            for (stmt, _) in &last {
                // Prepared (once per connection) before they go out together.
                let p = conn.prepare_cached(stmt.text(Dialect::Postgres)).await;
                prepared.push(p.map_err(|e| CommitError::RolledBack(e.into()))?);
            }
            let mut runs: Vec<_> = prepared
                .iter()
                .zip(&last)
                .map(|(p, (_, values))| maybe_done(conn.execute_raw(p, values)))
                .collect();
            // A statement's first poll encodes and sends it. One that cannot be encoded is
            // never sent, and a COMMIT sent after it would commit without it: the COMMIT
            // goes out only once each has been sent, in order.
            let mut unsent = None;
            for run in &mut runs {
                let _ = futures_util::poll!(Pin::new(&mut *run));
                if let Some(Err(_)) = Pin::new(&mut *run).output_mut() {
                    unsent = Pin::new(run).take_output().and_then(|r| r.err());
                    break;
                }
            }
            match unsent {
                Some(e) => Err(e),
                None => {
                    let (_, committed) = tokio::join!(
                        join_all(runs.iter_mut().map(Pin::new)),
                        conn.batch_execute("COMMIT")
                    );
                    let ran: std::result::Result<Vec<u64>, _> = runs
                        .iter_mut()
                        .filter_map(|r| Pin::new(r).take_output())
                        .collect();
                    Ok((ran, committed))
                }
            }
        };
        let (ran, committed) = match sent {
            Ok(answers) => answers,
            Err(e) => {
                self.rollback().await;
                return Err(CommitError::RolledBack(e.into()));
            }
        };
        // Either way the transaction has ended on the server (or the connection is
        // closed, which the pool notices): the connection may go back.
        self.conn.take();
        match (ran, committed) {
            // The server refused a statement: the COMMIT after it rolled back.
            (Err(e), _) if e.as_db_error().is_some() => Err(CommitError::RolledBack(e.into())),
            // The server refused the COMMIT itself (an ERROR, not a FATAL that ends the
            // session): nothing committed.
            (Ok(_), Err(e)) if e.as_db_error().is_some_and(|d| d.severity() == "ERROR") => {
                Err(CommitError::RolledBack(e.into()))
            }
            // Anything else (the connection failed after sending) may have committed.
            (Err(e), _) | (Ok(_), Err(e)) => Err(CommitError::Unknown(e.into())),
            (Ok(_), Ok(())) => Ok(()),
        }
    }

    /// Commits after work that succeeded, rolls back after work that failed.
    pub async fn finish<T>(self, done: Result<T>) -> Result<T> {
        match done {
            Ok(done) => Ok(self.commit().await.map(|_| done)?),
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    /// Rolls back; a connection whose ROLLBACK fails is closed by `Drop`.
    pub async fn rollback(mut self) {
        if self.client().batch_execute("ROLLBACK").await.is_ok() {
            self.conn.take();
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

/// How a read-only snapshot begins: REPEATABLE READ, so that every statement of a list
/// (its page and its total) sees the same rows.
pub const BEGIN_SNAPSHOT: &str = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A read-only transaction on a pooled connection, begun by [`Snapshot::begin`] in the
/// same round trip as its first statement and ended by [`Snapshot::end`] (or by being
/// dropped) without waiting for the answer.
pub struct Snapshot {
    conn: Option<Object>,
}

impl Snapshot {
    pub fn new(conn: Object) -> Snapshot {
        Snapshot { conn: Some(conn) }
    }

    pub fn client(&self) -> &Object {
        self.conn
            .as_ref()
            .expect("a snapshot holds its connection until it ends")
    }

    /// The BEGIN. Its first poll sends it; polled before the first statement (first in a
    /// `try_join!`), it goes out ahead of that statement, in the same write.
    pub async fn begin(&self) -> Result<()> {
        Ok(self.client().batch_execute(BEGIN_SNAPSHOT).await?)
    }

    /// Ends the snapshot without waiting: nothing was written, so its outcome does not
    /// matter, only that it comes before the next user's statements.
    pub fn end(mut self) {
        self.send_end("COMMIT");
    }

    /// Sends `end` and gives the connection back. tokio-postgres 0.7's `batch_execute`
    /// sends its message on its first poll, before its first await, so one poll is
    /// enough (were that to change, `tests/hardening_storage.rs`,
    /// `every_list_after_a_write_sees_it_even_after_lists_cut_short`, fails on
    /// PostgreSQL). If it could not be sent the connection has failed, and it leaves the
    /// pool rather than go back inside a transaction.
    fn send_end(&mut self, end: &str) {
        if let Some(conn) = self.conn.take() {
            if let Some(Err(_)) = conn.batch_execute(end).now_or_never() {
                drop(Object::take(conn));
            }
        }
    }
}

impl Drop for Snapshot {
    /// Dropped before it ended (a statement failed, or the request went away).
    fn drop(&mut self) {
        self.send_end("ROLLBACK");
    }
}
