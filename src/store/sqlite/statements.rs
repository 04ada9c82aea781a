//! The statements of one connection, prepared once and kept, and run through SQLite's C
//! API: bound from [`Arg`]s, stepped, and their rows read in place.
//!
//! rusqlite reads a value with three calls into SQLite (the column count, the value's
//! type, then its getter), each entering and leaving the connection's checks: about 160
//! instructions a value, and a list of 25 tasks reads 650 values. Here a value is one
//! call for the column's value and two small reads of it.
//!
//! The crate's one module of unsafe code: each block says what keeps it sound.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;
use std::rc::Rc;

use hashlink::LruCache;
use rusqlite::ffi;
use rusqlite::types::ValueRef;
use rustc_hash::FxBuildHasher;

use crate::store::driver::Arg;
use crate::store::{Result, StoreError};

/// A connection and the statements kept prepared on it. The statements are declared
/// first, so that they are finalized before the connection closes: SQLite refuses to
/// close a connection that still has statements (and rusqlite ignores the refusal).
pub struct Conn {
    statements: Statements,
    connection: rusqlite::Connection,
}

impl Conn {
    pub fn new(connection: rusqlite::Connection) -> Conn {
        Conn {
            // SAFETY: the handle is the open connection's, and the statements are dropped
            // before it (field order above).
            statements: Statements {
                db: unsafe { connection.handle() },
                kept: RefCell::new(LruCache::with_hasher(KEPT, FxBuildHasher)),
            },
            connection,
        }
    }

    pub fn statements(&self) -> &Statements {
        &self.statements
    }

    /// The connection for what runs through rusqlite (transactions, pragmas), beside its
    /// statements.
    pub fn split(&mut self) -> (&mut rusqlite::Connection, &Statements) {
        (&mut self.connection, &self.statements)
    }
}

impl std::ops::Deref for Conn {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        &self.connection
    }
}

/// The most statements a connection keeps, as rusqlite's cache kept before: the fixed
/// statements a connection runs and the shapes of the lists read on it fit, and what a
/// caller sending ever new shapes makes cannot grow the memory past it. Past it, the
/// statement run longest ago is let go for each new one.
const KEPT: usize = 128;

/// The statements kept on one connection, by text.
pub struct Statements {
    db: *mut ffi::sqlite3,
    /// Each is shared with its run while it runs: one that is let go while running is
    /// finalized when the run ends.
    kept: RefCell<LruCache<Box<str>, Rc<Prepared>, FxBuildHasher>>,
}

// SAFETY: SQLite connections are opened by rusqlite in its multi-thread mode: a connection
// and its statements may be used from any thread, one thread at a time. `Conn` keeps the
// statements with their connection, behind the same lock or on the same thread, and the
// `Rc`s are shared only with runs, which borrow the statements and so never cross.
unsafe impl Send for Statements {}

/// A prepared statement, finalized when dropped.
struct Prepared(NonNull<ffi::sqlite3_stmt>);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared here and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

impl Statements {
    /// Statement `sql` bound to `args`, ready to step. A statement already running (a
    /// read inside a read of the same text) is not disturbed: a new one runs, and is
    /// finalized after.
    pub fn run(&self, sql: &str, args: &[Arg<'_>]) -> Result<Running<'_>> {
        let idle = (self.kept.borrow_mut().get(sql))
            .filter(|p| Rc::strong_count(p) == 1)
            .cloned();
        let prepared = match idle {
            Some(p) => p,
            None => {
                let p = Rc::new(self.prepare(sql)?);
                if !self.kept.borrow().contains_key(sql) {
                    self.keep(sql, p.clone());
                }
                p
            }
        };
        let running = Running {
            statements: self,
            prepared,
        };
        running.bind(args)?;
        Ok(running)
    }

    fn prepare(&self, sql: &str) -> Result<Prepared> {
        let mut stmt = std::ptr::null_mut();
        let len = c_int::try_from(sql.len())
            .map_err(|_| StoreError::Internal(anyhow::anyhow!("a statement too long")))?;
        // SAFETY: the text and its length are the str's; `stmt` is written by SQLite.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc));
        }
        NonNull::new(stmt)
            .map(Prepared)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("an empty statement")))
    }

    /// Past `KEPT`, the statement run longest ago is let go; if it is running, it is
    /// finalized when its run ends.
    fn keep(&self, sql: &str, prepared: Rc<Prepared>) {
        self.kept.borrow_mut().insert(sql.into(), prepared);
    }

    /// The connection's last error, as rusqlite reports it: the rest of the backend
    /// tells unique violations and unavailability apart on rusqlite's errors.
    fn error(&self, rc: c_int) -> StoreError {
        // SAFETY: the connection is open; its message is copied before any other call.
        let message = unsafe {
            let text = ffi::sqlite3_errmsg(self.db);
            (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
        };
        rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message).into()
    }
}

/// A statement bound and stepping; reset when dropped, so that it holds no read lock
/// and can run again, and its values cleared, so that no copy of a secret it was given
/// (a token's hash, a mail) stays in a kept statement.
pub struct Running<'a> {
    statements: &'a Statements,
    prepared: Rc<Prepared>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is alive while this run holds it.
        unsafe {
            ffi::sqlite3_reset(self.stmt());
            ffi::sqlite3_clear_bindings(self.stmt());
        }
    }
}

impl Running<'_> {
    fn stmt(&self) -> *mut ffi::sqlite3_stmt {
        self.prepared.0.as_ptr()
    }

    fn bind(&self, args: &[Arg<'_>]) -> Result<()> {
        let stmt = self.stmt();
        // SAFETY: the statement is alive; texts and blobs are copied by SQLite
        // (SQLITE_TRANSIENT) before each call returns.
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
        if usize::try_from(expected).ok() != Some(args.len()) {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "a statement of {expected} parameters given {} values",
                args.len()
            )));
        }
        for (i, arg) in args.iter().enumerate() {
            let at = i as c_int + 1;
            let text = |t: &[u8]| unsafe {
                ffi::sqlite3_bind_text64(
                    stmt,
                    at,
                    t.as_ptr().cast::<c_char>(),
                    t.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                )
            };
            let rc = match *arg {
                Arg::Int(Some(v)) => unsafe { ffi::sqlite3_bind_int64(stmt, at, v) },
                Arg::Flag(b) => unsafe { ffi::sqlite3_bind_int64(stmt, at, b.into()) },
                Arg::Real(Some(v)) => unsafe { ffi::sqlite3_bind_double(stmt, at, v) },
                Arg::Text(Some(t)) => text(t.as_bytes()),
                Arg::Bytes(Some(b)) => unsafe {
                    ffi::sqlite3_bind_blob64(
                        stmt,
                        at,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                    )
                },
                Arg::Int(None) | Arg::Real(None) | Arg::Text(None) | Arg::Bytes(None) => unsafe {
                    ffi::sqlite3_bind_null(stmt, at)
                },
                // Arrays travel as JSON arrays, read back by json_each.
                Arg::Ids(ids) => text(json(ids)?.as_bytes()),
                Arg::Texts(texts) => text(json(texts)?.as_bytes()),
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.statements.error(rc));
            }
        }
        Ok(())
    }

    /// The next row, or `None` once there are no more.
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        // SAFETY: the statement is alive and bound.
        let stmt = self.stmt();
        match unsafe { ffi::sqlite3_step(stmt) } {
            ffi::SQLITE_ROW => Ok(Some(Row {
                stmt,
                columns: unsafe { ffi::sqlite3_column_count(stmt) } as usize,
                _running: std::marker::PhantomData,
            })),
            ffi::SQLITE_DONE => Ok(None),
            rc => Err(self.statements.error(rc)),
        }
    }

    /// Runs a statement that answers no rows; how many rows it changed. One that answers
    /// rows is refused, as rusqlite refused it: the count would be an earlier statement's.
    pub fn finish(mut self) -> Result<u64> {
        if self.next()?.is_some() {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "a statement run for its changes answered rows"
            )));
        }
        // SAFETY: the connection is open.
        Ok(unsafe { ffi::sqlite3_changes64(self.statements.db) } as u64)
    }
}

fn json<T: serde::Serialize + ?Sized>(values: &T) -> Result<String> {
    serde_json::to_string(values).map_err(|e| StoreError::Internal(e.into()))
}

/// The row a statement stands on; its values are SQLite's until the next step.
pub struct Row<'a> {
    stmt: *mut ffi::sqlite3_stmt,
    columns: usize,
    _running: std::marker::PhantomData<&'a ()>,
}

impl Row<'_> {
    /// How many columns the row has.
    pub fn width(&self) -> usize {
        self.columns
    }

    /// Column `i`'s value, in place. Inlined into each reader of a column, its match on
    /// the type and the reader's on the value become one.
    #[inline(always)]
    pub fn value(&self, i: usize) -> Result<ValueRef<'_>> {
        if i >= self.columns {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "no column {i} in a row of {}",
                self.columns
            )));
        }
        // SAFETY: the statement stands on a row and `i` is one of its columns; the value
        // and the bytes it points to stay SQLite's until the next step, which needs the
        // `Running` this row borrows.
        unsafe {
            let value = ffi::sqlite3_column_value(self.stmt, i as c_int);
            Ok(match ffi::sqlite3_value_type(value) {
                ffi::SQLITE_INTEGER => ValueRef::Integer(ffi::sqlite3_value_int64(value)),
                ffi::SQLITE_FLOAT => ValueRef::Real(ffi::sqlite3_value_double(value)),
                ffi::SQLITE_TEXT => {
                    // The text first, then its length, as SQLite asks. No text is SQLite
                    // out of memory, never an empty text.
                    let text = ffi::sqlite3_value_text(value);
                    let len = ffi::sqlite3_value_bytes(value) as usize;
                    ValueRef::Text(bytes(text, len).ok_or_else(|| unreadable(i))?)
                }
                ffi::SQLITE_BLOB => {
                    let blob = ffi::sqlite3_value_blob(value).cast::<u8>();
                    let len = ffi::sqlite3_value_bytes(value) as usize;
                    // An empty blob may have no pointer.
                    let blob = if len == 0 {
                        Some(&[][..])
                    } else {
                        bytes(blob, len)
                    };
                    ValueRef::Blob(blob.ok_or_else(|| unreadable(i))?)
                }
                _ => ValueRef::Null,
            })
        }
    }
}

/// The `len` bytes at `ptr`; `None` for no pointer.
///
/// SAFETY: a pointer given points to `len` bytes, alive for `'a`.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    match ptr.is_null() {
        true => None,
        false if len == 0 => Some(&[]),
        false => Some(std::slice::from_raw_parts(ptr, len)),
    }
}

#[cold]
fn unreadable(i: usize) -> StoreError {
    StoreError::Internal(anyhow::anyhow!(
        "column {i} could not be read (out of memory)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::driver::Columns;

    fn open() -> (tempfile::TempDir, Conn) {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("t.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, weight REAL, data BLOB);
             INSERT INTO t VALUES (1, 'one', 1.5, x''), (2, 'zwei é', NULL, x'00ff'),
                                  (3, NULL, 3.0, NULL);",
        )
        .unwrap();
        (dir, Conn::new(conn))
    }

    fn names(s: &Statements, sql: &str, args: &[Arg<'_>]) -> Vec<Option<String>> {
        let mut running = s.run(sql, args).unwrap();
        let mut out = Vec::new();
        while let Some(row) = running.next().unwrap() {
            out.push(row.opt_text(0).unwrap());
        }
        out
    }

    #[test]
    fn values_read_in_place_as_stored() {
        let (_dir, conn) = open();
        let mut running = (conn.statements())
            .run(
                "SELECT id, name, weight, data FROM t WHERE id >= ?1 ORDER BY id",
                &[Arg::Int(Some(1))],
            )
            .unwrap();
        let row = running.next().unwrap().unwrap();
        assert_eq!(row.int(0).unwrap(), 1);
        assert_eq!(row.text(1).unwrap(), "one");
        assert_eq!(row.real(2).unwrap(), 1.5);
        assert!(matches!(row.value(3).unwrap(), ValueRef::Blob(b) if b.is_empty()));
        assert!(row.value(4).is_err(), "a column past the row's is an error");
        let row = running.next().unwrap().unwrap();
        assert_eq!(row.text(1).unwrap(), "zwei é");
        assert_eq!(row.opt_real(2).unwrap(), None);
        assert!(matches!(row.value(3).unwrap(), ValueRef::Blob(&[0, 0xff])));
        assert!(row.int(1).is_err(), "a text read as an integer is an error");
        let row = running.next().unwrap().unwrap();
        assert_eq!(row.opt_text(1).unwrap(), None);
        assert!(row.text(1).is_err());
        assert!(running.next().unwrap().is_none());
    }

    #[test]
    fn every_kind_of_value_is_bound() {
        let (_dir, conn) = open();
        let s = conn.statements();
        let sql = "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8";
        let ids = [3, 1];
        let texts = ["a\"b".to_string()];
        let args = [
            Arg::Int(Some(-7)),
            Arg::Flag(true),
            Arg::Real(Some(0.25)),
            Arg::Text(Some("nul\0inside")),
            Arg::Bytes(Some(&[1, 2])),
            Arg::Text(None),
            Arg::Ids(&ids),
            Arg::Texts(&texts),
        ];
        let mut running = s.run(sql, &args).unwrap();
        let row = running.next().unwrap().unwrap();
        assert_eq!(row.int(0).unwrap(), -7);
        assert!(row.flag(1).unwrap());
        assert_eq!(row.real(2).unwrap(), 0.25);
        assert_eq!(row.text(3).unwrap(), "nul\0inside");
        assert!(matches!(row.value(4).unwrap(), ValueRef::Blob(&[1, 2])));
        assert_eq!(row.opt_int(5).unwrap(), None);
        assert_eq!(row.text(6).unwrap(), "[3,1]");
        assert_eq!(row.text(7).unwrap(), r#"["a\"b"]"#);
    }

    #[test]
    fn a_statement_given_the_wrong_number_of_values_does_not_run() {
        let (_dir, conn) = open();
        let s = conn.statements();
        let insert = "INSERT INTO t (id, name) VALUES (?1, ?2)";
        assert!(s.run(insert, &[Arg::Int(Some(9))]).is_err());
        let three = [Arg::Int(Some(9)), Arg::Text(Some("x")), Arg::Int(Some(1))];
        assert!(s.run(insert, &three).is_err());
        assert_eq!(
            names(s, "SELECT name FROM t WHERE id = 9", &[]),
            Vec::<Option<String>>::new()
        );
        assert!(s.run("SELECT nothing FROM nowhere", &[]).is_err());
    }

    #[test]
    fn a_failed_write_reports_sqlites_error_and_the_statement_runs_again() {
        let (_dir, conn) = open();
        let s = conn.statements();
        let insert = "INSERT INTO t (id, name) VALUES (?1, ?2)";
        let e = s
            .run(insert, &[Arg::Int(Some(10)), Arg::Text(Some("one"))])
            .unwrap()
            .finish()
            .unwrap_err();
        let StoreError::Internal(e) = e else {
            panic!("a constraint is not unavailability: {e:?}")
        };
        assert!(super::super::is_unique_violation(
            e.downcast_ref::<rusqlite::Error>().unwrap()
        ));
        let changed = (s.run(insert, &[Arg::Int(Some(10)), Arg::Text(Some("ten"))]))
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(changed, 1);
        assert_eq!(
            names(s, "SELECT name FROM t WHERE id = ?1", &[Arg::Int(Some(10))]),
            [Some("ten".to_string())]
        );
    }

    #[test]
    fn a_read_inside_a_read_of_the_same_statement_runs_apart() {
        let (_dir, conn) = open();
        let s = conn.statements();
        let sql = "SELECT id FROM t WHERE id >= ?1 ORDER BY id";
        let mut outer = s.run(sql, &[Arg::Int(Some(1))]).unwrap();
        let mut seen = Vec::new();
        while let Some(row) = outer.next().unwrap() {
            let id = row.int(0).unwrap();
            let mut inner = s.run(sql, &[Arg::Int(Some(id))]).unwrap();
            let mut rest = 0;
            while inner.next().unwrap().is_some() {
                rest += 1;
            }
            seen.push((id, rest));
        }
        assert_eq!(seen, [(1, 3), (2, 2), (3, 1)]);
        assert_eq!(s.kept.borrow().len(), 1, "the inner run was not kept");
    }

    #[test]
    fn a_statement_let_go_while_it_runs_finishes_its_run() {
        let (_dir, conn) = open();
        let s = conn.statements();
        let sql = "SELECT id FROM t ORDER BY id";
        let mut running = s.run(sql, &[]).unwrap();
        assert_eq!(running.next().unwrap().unwrap().int(0).unwrap(), 1);
        // New statements past those kept, until the running one is let go.
        let mut n = 0;
        while s.kept.borrow().contains_key(sql) {
            assert_eq!(names(s, &format!("SELECT 'x{n}'"), &[]).len(), 1);
            assert!(s.kept.borrow().len() <= KEPT);
            n += 1;
            assert!(n < KEPT * 100, "never let go");
        }
        assert_eq!(running.next().unwrap().unwrap().int(0).unwrap(), 2);
        assert_eq!(running.next().unwrap().unwrap().int(0).unwrap(), 3);
        assert!(running.next().unwrap().is_none());
    }

    #[test]
    fn a_run_left_midway_leaves_the_statement_ready_and_its_values_cleared() {
        let (_dir, conn) = open();
        let s = conn.statements();
        let sql = "SELECT id FROM t WHERE name <> ?1 ORDER BY id";
        let mut running = s.run(sql, &[Arg::Text(Some("secret-token-hash"))]).unwrap();
        assert_eq!(running.next().unwrap().unwrap().int(0).unwrap(), 1);
        drop(running);
        let kept = s.kept.borrow_mut().get(sql).unwrap().0.as_ptr();
        // SAFETY: the kept statement is alive; the text is SQLite's, freed here.
        let expanded = unsafe {
            let text = ffi::sqlite3_expanded_sql(kept);
            let copy = CStr::from_ptr(text).to_string_lossy().into_owned();
            ffi::sqlite3_free(text.cast());
            copy
        };
        assert!(!expanded.contains("secret"), "{expanded}");
        assert!(expanded.contains("NULL"), "{expanded}");
        let ids: Vec<i64> = {
            let mut running = s.run(sql, &[Arg::Text(Some("one"))]).unwrap();
            std::iter::from_fn(|| running.next().unwrap().map(|r| r.int(0).unwrap())).collect()
        };
        assert_eq!(ids, [2], "the run starts again from its first row");
    }

    #[test]
    fn a_statement_run_for_its_changes_may_not_answer_rows() {
        let (_dir, conn) = open();
        let s = conn.statements();
        assert!(s.run("SELECT id FROM t", &[]).unwrap().finish().is_err());
        let changed = s.run("UPDATE t SET weight = 2 WHERE id < 3", &[]).unwrap();
        assert_eq!(changed.finish().unwrap(), 2);
    }
}
