//! tokio-postgres as the shared storage code drives it: rows read by index, values
//! bound, and statements prepared once per connection.

use std::error::Error;
use std::sync::{Mutex, PoisonError};

use bytes::BytesMut;
use deadpool_postgres::{GenericClient, StatementCache};
use futures_util::TryStreamExt;
use tokio_postgres::types::{IsNull, ToSql, Type, WrongType};
use tokio_postgres::{Row, Statement};

use crate::store::driver::{Arg, Columns, Db, Dialect, Map, Stmt};
use crate::store::postgres::transaction::Last;
use crate::store::{Result, StoreError};

/// How a snapshot runs the rest of its statements with their generic plans
/// (`Db::plan_generically`), each setting until the snapshot ends. Those statements are
/// walks of an index by construction (`sql::Conditions::plan_fixed`); a generic plan
/// guesses its values' rows from the columns' statistics, and where one user owns or is
/// in the team of nearly every task it guesses them at every row: it would then read the
/// whole table (214 ms for an external's page at 1,000,000 tasks) or compile the
/// statement to machine code at each run (JIT, 14 - 176 ms), so neither is left to it.
pub const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan; \
    SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off";

/// A pooled connection or a transaction on one.
pub struct Pg<'a, C> {
    client: &'a C,
    /// In a write transaction: where the statements to run with its COMMIT wait.
    last: Option<&'a Mutex<Vec<Last>>>,
}

impl<'a, C> Pg<'a, C> {
    pub fn new(client: &'a C) -> Self {
        Pg { client, last: None }
    }

    pub fn in_transaction(client: &'a C, last: &'a Mutex<Vec<Last>>) -> Self {
        Pg {
            client,
            last: Some(last),
        }
    }

    pub fn client(&self) -> &'a C {
        self.client
    }
}

impl<C: GenericClient + Wrapped> Pg<'_, C> {
    /// Locks one row of `table` `FOR {mode}` until the transaction ends.
    async fn lock(&self, table: &'static str, id: i64, mode: &str) -> Result<()> {
        let sql = format!("SELECT 1 FROM {table} WHERE id = $1 FOR {mode}");
        self.execute(&sql, &[Arg::Int(Some(id))]).await?;
        Ok(())
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match *self {
            Arg::Int(None) | Arg::Real(None) | Arg::Text(None) | Arg::Bytes(None) => {
                Ok(IsNull::Yes)
            }
            Arg::Int(Some(v)) => match *ty {
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Arg::Real(Some(v)) => v.to_sql(ty, out),
            Arg::Text(Some(v)) => v.to_sql(ty, out),
            // 0/1 SMALLINT columns.
            Arg::Flag(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            Arg::Flag(b) => i16::from(b).to_sql(ty, out),
            Arg::Bytes(Some(v)) => v.to_sql(ty, out),
            Arg::Ids(v) => v.to_sql(ty, out),
            Arg::Texts(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, BoxError> {
        let fits = match self {
            Arg::Int(_) => matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8),
            Arg::Real(_) => *ty == Type::FLOAT8,
            Arg::Text(_) => <&str as ToSql>::accepts(ty),
            Arg::Flag(_) => matches!(*ty, Type::INT2 | Type::BOOL),
            Arg::Bytes(_) => <&[u8] as ToSql>::accepts(ty),
            Arg::Ids(_) => <&[i64] as ToSql>::accepts(ty),
            Arg::Texts(_) => <&[String] as ToSql>::accepts(ty),
        };
        if !fits {
            return Err(Box::new(WrongType::new::<Self>(ty.clone())));
        }
        self.to_sql(ty, out)
    }
}

impl Columns for Row {
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(match *self.columns()[i].type_() {
            Type::INT4 => self.try_get::<_, Option<i32>>(i)?.map(i64::from),
            Type::INT2 => self.try_get::<_, Option<i16>>(i)?.map(i64::from),
            _ => self.try_get(i)?,
        })
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.try_get::<_, i16>(i)? != 0)
    }
    fn opt_bool(&self, i: usize) -> Result<Option<bool>> {
        Ok(self.try_get(i)?)
    }
    /// An array of ids; a NULL one (a column not read, `CAST(NULL AS BIGINT ARRAY)`) is
    /// empty, as SQLite's NULL list is.
    fn ids(&self, i: usize) -> Result<Vec<i64>> {
        Ok(self.try_get::<_, Option<Vec<i64>>>(i)?.unwrap_or_default())
    }
    fn width(&self) -> usize {
        self.len()
    }
}

/// deadpool's two clients (a connection and a transaction on one), with the prepared
/// statements of their connection.
pub trait Wrapped {
    fn statements(&self) -> &StatementCache;
}

impl Wrapped for deadpool_postgres::Client {
    fn statements(&self) -> &StatementCache {
        &self.statement_cache
    }
}

impl Wrapped for deadpool_postgres::Transaction<'_> {
    fn statements(&self) -> &StatementCache {
        &self.statement_cache
    }
}

/// How many statements a connection keeps prepared before it forgets them all. The fixed
/// statements of the code are about 110; a list's statements are kept per filters, role,
/// facts and the few page sizes written out (`Dialect::window`): a bounded set, but one a
/// caller could make large by combining filters. Forgetting them all re-prepares the
/// fixed ones as they are next used. A prepare whose request goes away before its answer
/// leaves its statement on the server until the connection closes (tokio-postgres names
/// it before the answer): with the statements kept, that happens at most once per text
/// and connection between two clears.
const KEPT_STATEMENTS: usize = 256;

impl<C: GenericClient + Wrapped> Pg<'_, C> {
    /// A list's statement, prepared once per connection with its arguments' types.
    async fn prepare_kept(&self, sql: &str, args: &[Arg<'_>]) -> Result<Statement> {
        let statements = self.client.statements();
        if statements.size() >= KEPT_STATEMENTS {
            statements.clear();
        }
        let types: Vec<Type> = typed(args).map(|(_, ty)| ty).collect();
        Ok(self.client.prepare_typed_cached(sql, &types).await?)
    }
}

/// Each argument with the type PostgreSQL is told it has; the database converts where a
/// column is narrower (an `INT8` compared with a `SMALLINT` column uses its index).
fn typed<'a>(args: &'a [Arg<'a>]) -> impl Iterator<Item = (&'a Arg<'a>, Type)> {
    args.iter().map(|a| {
        let ty = match a {
            Arg::Int(_) => Type::INT8,
            Arg::Real(_) => Type::FLOAT8,
            Arg::Text(_) => Type::TEXT,
            Arg::Flag(_) => Type::INT2,
            Arg::Bytes(_) => Type::BYTEA,
            Arg::Ids(_) => Type::INT8_ARRAY,
            Arg::Texts(_) => Type::TEXT_ARRAY,
        };
        (a, ty)
    })
}

/// The first row of an answer, mapped.
async fn first<T>(rows: tokio_postgres::RowStream, map: Map<T>) -> Result<Option<T>> {
    let mut rows = std::pin::pin!(rows);
    match rows.try_next().await? {
        Some(row) => Ok(Some(map(&row)?)),
        None => Ok(None),
    }
}

/// An answer's rows mapped in order, until `full` says the last one filled what was asked.
async fn until<T>(
    rows: tokio_postgres::RowStream,
    map: impl Fn(&dyn Columns) -> Result<T>,
    expected: usize,
    mut full: impl FnMut(&T) -> bool,
) -> Result<Vec<T>> {
    let mut rows = std::pin::pin!(rows);
    let mut items = Vec::with_capacity(expected);
    while let Some(row) = rows.try_next().await? {
        let item = map(&row)?;
        let done = full(&item);
        items.push(item);
        if done {
            break;
        }
    }
    Ok(items)
}

impl<C: GenericClient + Wrapped> Db for Pg<'_, C> {
    const DIALECT: Dialect = Dialect::Postgres;

    async fn query_row<T>(&self, sql: &str, args: &[Arg<'_>], map: Map<T>) -> Result<Option<T>> {
        let stmt = self.client.prepare_cached(sql).await?;
        first(self.client.query_raw(&stmt, args).await?, map).await
    }

    async fn rows_until<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Result<T>,
        expected: usize,
        full: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>> {
        let stmt = self.client.prepare_cached(sql).await?;
        until(
            self.client.query_raw(&stmt, args).await?,
            map,
            expected,
            full,
        )
        .await
    }

    async fn query_row_kept<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Option<T>> {
        let stmt = self.prepare_kept(sql, args).await?;
        first(self.client.query_raw(&stmt, args).await?, map).await
    }

    async fn rows_until_kept<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Result<T>,
        expected: usize,
        full: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>> {
        let stmt = self.prepare_kept(sql, args).await?;
        until(
            self.client.query_raw(&stmt, args).await?,
            map,
            expected,
            full,
        )
        .await
    }

    async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let stmt = self.client.prepare_cached(sql).await?;
        Ok(self.client.execute_raw(&stmt, args).await?)
    }

    /// Locks one row of `table` until the transaction ends, so that what is read next
    /// stays as read until the write (read committed reads the newest committed row
    /// after the lock).
    async fn lock_row(&self, table: &'static str, id: i64) -> Result<()> {
        self.lock(table, id, "UPDATE").await
    }

    async fn plan_generically(&self) -> Result<()> {
        Ok(self.client.batch_execute(GENERIC_PLANS).await?)
    }

    async fn lock_values(&self, table: &'static str, id: i64) -> Result<()> {
        self.lock(table, id, "NO KEY UPDATE").await
    }

    /// Advisory locks, taken in one order (sorted, locked in array order) so that two
    /// callers naming the same names cannot deadlock.
    async fn lock_names(&self, names: &[String]) -> Result<()> {
        let mut names = names.to_vec();
        names.sort();
        names.dedup();
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) \
             FROM unnest($1::TEXT[]) WITH ORDINALITY AS l(k, n) ORDER BY n",
            &[Arg::Texts(&names)],
        )
        .await?;
        Ok(())
    }

    /// In a write transaction, kept for [`Transaction::commit`] to send with the COMMIT.
    ///
    /// [`Transaction::commit`]: crate::store::postgres::transaction::Transaction::commit
    async fn run_last(&self, stmt: &'static Stmt, args: Vec<Arg<'static>>) -> Result<()> {
        match self.last {
            Some(last) => {
                let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
                last.push((stmt, args));
                Ok(())
            }
            None => self.run(stmt, &args).await.map(drop),
        }
    }

    fn is_unique_violation(e: &StoreError) -> bool {
        matches!(e, StoreError::Internal(e) if e.downcast_ref::<tokio_postgres::Error>()
            .is_some_and(|e| e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)))
    }
}
