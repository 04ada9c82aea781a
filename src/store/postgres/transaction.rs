//! A write transaction whose last statement travels with its COMMIT.
//!
//! tokio-postgres's own `Transaction` sends `COMMIT` on its own, after every statement has
//! been answered. A statement that locks a hot row (an activity's roll-up into its task)
//! then keeps that row locked for one more round trip, with every other writer of the row
//! queued behind it. Here the shared code hands that statement over
//! ([`Db::run_last`](crate::store::driver::Db::run_last)) and [`Transaction::commit`]
//! sends it and `COMMIT` together, so the row is held only while PostgreSQL runs the two.

use std::sync::{Mutex, PoisonError};

use deadpool_postgres::{GenericClient, Object};

use crate::store::driver::{Arg, Dialect, Stmt};
use crate::store::postgres::Pg;
use crate::store::{Result, StoreError};

/// The statement a write runs with its COMMIT, and its values.
pub type Last = (&'static Stmt, Vec<Arg<'static>>);

/// A transaction on a pooled connection. Dropped before it ends (the request went away
/// while it ran), it takes its connection out of the pool and closes it, and PostgreSQL
/// rolls back: the pool must never hand out a connection inside a transaction.
pub struct Transaction {
    conn: Option<Object>,
    last: Mutex<Option<Last>>,
}

impl Transaction {
    pub async fn begin(conn: Object) -> Result<Transaction> {
        let tx = Transaction {
            conn: Some(conn),
            last: Mutex::new(None),
        };
        tx.client().batch_execute("BEGIN").await?;
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

    /// Commits, with the statement handed over to run last, if any, in the same round
    /// trip. A COMMIT after a failed statement rolls back without an error of its own, so
    /// that statement's answer is checked too.
    pub async fn commit(mut self) -> Result<()> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let conn = self.client();
        let done = match last {
            None => conn.batch_execute("COMMIT").await.map_err(StoreError::from),
            Some((stmt, values)) => {
                // Prepared (once per connection) before the two go out together.
                let prepared = conn.prepare_cached(stmt.text(Dialect::Postgres)).await?;
                let (ran, committed) = tokio::join!(
                    conn.execute_raw(&prepared, &values),
                    conn.batch_execute("COMMIT")
                );
                ran.and(committed).map(drop).map_err(StoreError::from)
            }
        };
        // Either way the transaction has ended on the server (or the connection is
        // closed, which the pool notices): the connection may go back.
        self.conn.take();
        done
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
