//! SQLite as the shared storage code drives it: statements run from those kept on the
//! connection, values bound, and rows read by index.

use rusqlite::types::ValueRef;

use super::statements::{Row, Statements};
use crate::store::driver::{Arg, Columns, Db, Dialect, Map};
use crate::store::{Result, StoreError};

/// A reader connection or the writer's, in its transaction: the statements kept on it.
pub struct Lite<'a>(pub &'a Statements);

// Each column is read by matching its value in place: rusqlite's generic `get` cost
// about 170 instructions a column, a third of reading a task list's rows.
impl Columns for Row<'_> {
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.value(i)? {
            ValueRef::Integer(v) => Ok(Some(v)),
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        match self.value(i)? {
            ValueRef::Real(v) => Ok(Some(v)),
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.value(i)? {
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(t) => Ok(Some(t.to_owned())),
                Err(_) => Err(wrong_type(i, ValueRef::Text(t))),
            },
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn flag(&self, i: usize) -> Result<bool> {
        match self.value(i)? {
            ValueRef::Integer(v) => Ok(v != 0),
            other => Err(wrong_type(i, other)),
        }
    }
    fn opt_bool(&self, i: usize) -> Result<Option<bool>> {
        match self.value(i)? {
            ValueRef::Integer(v) => Ok(Some(v != 0)),
            ValueRef::Null => Ok(None),
            other => Err(wrong_type(i, other)),
        }
    }
    fn int(&self, i: usize) -> Result<i64> {
        match self.value(i)? {
            ValueRef::Integer(v) => Ok(v),
            other => Err(wrong_type(i, other)),
        }
    }
    fn real(&self, i: usize) -> Result<f64> {
        match self.value(i)? {
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
    fn width(&self) -> usize {
        Row::width(self)
    }
    /// A comma-separated list (group_concat), read in place.
    fn ids(&self, i: usize) -> Result<Vec<i64>> {
        let mut ids = match self.value(i)? {
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
        let mut running = self.0.run(sql, args)?;
        match running.next()? {
            Some(row) => Ok(Some(map(&row)?)),
            None => Ok(None),
        }
    }

    async fn rows_until<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Result<T>,
        expected: usize,
        mut full: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>> {
        let mut running = self.0.run(sql, args)?;
        let mut items = Vec::with_capacity(expected);
        while let Some(row) = running.next()? {
            let item = map(&row)?;
            let done = full(&item);
            items.push(item);
            if done {
                break;
            }
        }
        Ok(items)
    }

    async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        self.0.run(sql, args)?.finish()
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
