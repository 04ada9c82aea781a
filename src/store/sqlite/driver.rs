//! rusqlite as the shared storage code drives it: rows read by index, values bound, and
//! statements run from the prepared-statement cache.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params_from_iter, Connection, Row, ToSql};

use crate::store::driver::{Arg, Columns, Db, Dialect, Map};
use crate::store::{Result, StoreError};

/// A reader connection or the writer's transaction.
pub struct Lite<'a>(pub &'a Connection);

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(v)),
            Arg::Real(Some(v)) => ToSqlOutput::Owned(Value::Real(v)),
            Arg::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Arg::Int(None) | Arg::Real(None) | Arg::Text(None) => ToSqlOutput::Owned(Value::Null),
            Arg::Flag(b) => ToSqlOutput::Owned(Value::Integer(b.into())),
            Arg::Bytes(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Arg::Bytes(None) => ToSqlOutput::Owned(Value::Null),
            // Arrays travel as JSON arrays, read back by json_each.
            Arg::Ids(ids) => ToSqlOutput::Owned(Value::Text(
                serde_json::to_string(ids)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
            )),
            Arg::Texts(texts) => ToSqlOutput::Owned(Value::Text(
                serde_json::to_string(texts)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
            )),
        })
    }
}

// Each column is read by matching its value in place: rusqlite's generic `get` cost
// about 170 instructions a column, a third of reading a task list's rows.
impl Columns for Row<'_> {
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.get_ref(i)? {
            ValueRef::Integer(v) => Ok(Some(v)),
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        match self.get_ref(i)? {
            ValueRef::Real(v) => Ok(Some(v)),
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.get_ref(i)? {
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(t) => Ok(Some(t.to_owned())),
                Err(_) => Err(wrong_type(i, ValueRef::Text(t))),
            },
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn flag(&self, i: usize) -> Result<bool> {
        match self.get_ref(i)? {
            ValueRef::Integer(v) => Ok(v != 0),
            other => Err(wrong_type(i, other)),
        }
    }
    fn opt_bool(&self, i: usize) -> Result<Option<bool>> {
        match self.get_ref(i)? {
            ValueRef::Integer(v) => Ok(Some(v != 0)),
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn int(&self, i: usize) -> Result<i64> {
        match self.get_ref(i)? {
            ValueRef::Integer(v) => Ok(v),
            other => Err(wrong_type(i, other)),
        }
    }
    fn real(&self, i: usize) -> Result<f64> {
        match self.get_ref(i)? {
            ValueRef::Real(v) => Ok(v),
            ValueRef::Integer(v) => Ok(v as f64),
            other => Err(wrong_type(i, other)),
        }
    }
    fn text(&self, i: usize) -> Result<String> {
        match self.opt_text(i)? {
            Some(t) => Ok(t),
            None => Err(wrong_type(i, ValueRef::Null)),
        }
    }
    /// A comma-separated list (group_concat), read in place.
    fn ids(&self, i: usize) -> Result<Vec<i64>> {
        let mut ids = match self.get_ref(i)? {
            ValueRef::Null => Vec::new(),
            ValueRef::Integer(id) => vec![id],
            ValueRef::Text(list) => std::str::from_utf8(list)
                .ok()
                .into_iter()
                .flat_map(|list| list.split(','))
                .map(|id| {
                    id.parse().map_err(|_| {
                        crate::store::StoreError::Internal(anyhow::anyhow!("bad id list"))
                    })
                })
                .collect::<Result<Vec<i64>>>()?,
            _ => {
                return Err(crate::store::StoreError::Internal(anyhow::anyhow!(
                    "bad id list"
                )))
            }
        };
        ids.sort_unstable();
        Ok(ids)
    }
}

/// A column holding what its reader does not expect: a bug, reported as one.
#[cold]
fn wrong_type(i: usize, found: ValueRef<'_>) -> StoreError {
    StoreError::Internal(anyhow::anyhow!(
        "column {i} holds an unexpected {}",
        found.data_type()
    ))
}

impl Db for Lite<'_> {
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn query_row<T>(&self, sql: &str, args: &[Arg<'_>], map: Map<T>) -> Result<Option<T>> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        match rows.next()? {
            Some(row) => Ok(Some(map(row)?)),
            None => Ok(None),
        }
    }

    async fn rows_until<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
        expected: usize,
        mut full: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut items = Vec::with_capacity(expected);
        while let Some(row) = rows.next()? {
            let item = map(row)?;
            let done = full(&item);
            items.push(item);
            if done {
                break;
            }
        }
        Ok(items)
    }

    async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(self
            .0
            .prepare_cached(sql)?
            .execute(params_from_iter(args))? as u64)
    }

    /// Writes run one at a time on the writer: nothing to lock.
    async fn lock_row(&self, _table: &'static str, _id: i64) -> Result<()> {
        Ok(())
    }

    async fn lock_names(&self, _names: &[String]) -> Result<()> {
        Ok(())
    }

    fn is_unique_violation(e: &StoreError) -> bool {
        matches!(e, StoreError::Internal(e) if e.downcast_ref::<rusqlite::Error>().is_some_and(super::is_unique_violation))
    }
}
