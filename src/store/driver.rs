//! What each database driver supplies to the storage code that both backends share.
//!
//! The aggregate modules (`projects`, `tasks`, ...) hold every statement once, as a
//! [`Stmt`] in one dialect (`?N` placeholders), and carry out each operation once, over a
//! [`Db`]: a SQLite transaction on the writer or a reader thread, or a PostgreSQL
//! connection or transaction. Rows are read through [`Columns`], which both drivers'
//! rows implement, so each row mapper is written once.
//!
//! The dialect differences are named in [`Dialect::translate`]; anything else that
//! differs (connections, the writer thread, the pool, row locks) stays in the backends.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::mem::Discriminant;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

use crate::domain::policy::Actor;
use crate::domain::user::SecurityLevel;
use crate::domain::WorkspaceId;
use crate::store::sql::{list_sql, Bindings, Conditions, Piece, ProjectFacts};
use crate::store::{Filter, ListQuery, Page, Result, StoreError};

/// The two SQL dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The page sizes a PostgreSQL list's first page writes out (`Dialect::window`): the API's
/// default (100), the web pages' (50, 100, 200) and the sizes people commonly ask.
const WRITTEN_LIMITS: [i64; 8] = [0, 1, 10, 20, 25, 50, 100, 200];

impl Dialect {
    /// Shared conditions' `?` placeholders as this dialect takes them (made once per
    /// shape of list: `Shape`).
    pub fn numbered(self, sql: String) -> String {
        match self {
            Dialect::Sqlite => sql,
            Dialect::Postgres => dollars(&sql),
        }
    }

    /// A list's window, `LIMIT ? OFFSET ?`, and its values: SQLite takes -1 for no
    /// limit, PostgreSQL NULL, and neither of PostgreSQL's may be negative.
    ///
    /// PostgreSQL's first page of a usual size (`WRITTEN_LIMITS`) is written `LIMIT n`. A
    /// kept statement whose LIMIT or OFFSET is a placeholder is planned again at every
    /// run: its generic plan must guess them (a tenth of the rows), costs more than the
    /// plan for the values at hand, and is never chosen. Other sizes keep placeholders,
    /// so that a caller varying the size cannot make a connection prepare a statement
    /// per size.
    pub fn window(self, q: &ListQuery) -> (Cow<'static, str>, Vec<Arg<'static>>) {
        let (limit, offset) = match self {
            Dialect::Sqlite => (Some(q.count.unwrap_or(-1)), q.offset),
            Dialect::Postgres => match q.count.filter(|c| *c >= 0) {
                Some(n) if q.offset <= 0 && WRITTEN_LIMITS.contains(&n) => {
                    return (format!("LIMIT {n}").into(), Vec::new())
                }
                limit => (limit, q.offset.max(0)),
            },
        };
        let values = vec![Arg::Int(limit), Arg::Int(Some(offset))];
        ("LIMIT ? OFFSET ?".into(), values)
    }

    /// A statement written for both, as this dialect takes it. The differences:
    /// - placeholders: `?N` stays on SQLite and is `$N` on PostgreSQL;
    /// - arrays of ids or texts: `= ANY(?N)` and `IDS(?N)` / `TEXTS(?N)` (a table of `value`
    ///   and `key`, its position) are arrays on PostgreSQL and JSON arrays on SQLite;
    /// - a column of ids, `ARRAY(SELECT x.user_id ...)`: an array on PostgreSQL, a
    ///   comma-separated list on SQLite, whose `ORDER BY` is dropped (the list is sorted
    ///   as it is read, `Columns::ids`, and without it SQLite flattens the subquery);
    /// - row locks (`FOR UPDATE`, `SKIP LOCKED`): SQLite has one writer and needs none;
    /// - byte-wise comparison of text: `COLLATE "C"` on PostgreSQL, `BINARY` on SQLite;
    /// - `ROWID`: SQLite's login_failures has no id column but its rowid, which is
    ///   PostgreSQL's `id`.
    pub fn translate(self, sql: &str) -> String {
        match self {
            Dialect::Postgres => dollars(
                &sql.replace("ROWID", "id")
                    .replace("IDS(?", "unnest(?BIGINT")
                    .replace("TEXTS(?", "unnest(?TEXT"),
            ),
            Dialect::Sqlite => {
                let mut out = sql
                    .replace(" FOR UPDATE SKIP LOCKED", "")
                    .replace(" FOR UPDATE", "")
                    .replace("COLLATE \"C\"", "COLLATE BINARY")
                    .replace("= ANY(?", "IN (SELECT value FROM json_each(?")
                    .replace("IDS(?", "json_each(?")
                    .replace("TEXTS(?", "json_each(?");
                while let Some(at) = out.find("ARRAY(SELECT ") {
                    let inner = &out[at + 6..];
                    let end = at + 6 + closing(inner);
                    let select = &out[at + 6..end];
                    let select = select.split(" ORDER BY ").next().unwrap_or(select);
                    let list = format!("(SELECT group_concat(user_id) FROM ({select}))");
                    out.replace_range(at..=end, &list);
                }
                close_json_each(&out)
            }
        }
    }
}

/// The index in `s` (which starts inside a parenthesis) of the parenthesis closing it.
fn closing(s: &str) -> usize {
    let mut depth = 0;
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' if depth == 0 => return i,
            ')' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// `IN (SELECT value FROM json_each(?N)` needs one more parenthesis closed, and
/// `json_each(?N)` as a table its alias.
fn close_json_each(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find("json_each(?") {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let end = tail.find(')').unwrap_or(tail.len() - 1);
        out.push_str(&tail[..=end]);
        if head.ends_with("IN (SELECT value FROM ") {
            out.push(')');
        } else {
            out.push_str(" AS ids");
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `?N` as `$N`, `?` alone numbered in order (shared conditions), `?BIGINT N)` and
/// `?TEXT N)` as arrays unnested with their positions; quoted text is left alone.
fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let (mut n, mut quoted) = (0, false);
    let mut chars = sql.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => {
                let rest = &sql[i + 1..];
                let array = ["BIGINT", "TEXT"].into_iter().find(|t| rest.starts_with(t));
                if let Some(t) = array {
                    for _ in 0..t.len() {
                        chars.next();
                    }
                }
                let mut digits = String::new();
                while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    n += 1;
                    digits = n.to_string();
                }
                out.push('$');
                out.push_str(&digits);
                if let Some(t) = array {
                    chars.next(); // the closing parenthesis
                    out.push_str(&format!("::{t}[]) WITH ORDINALITY AS ids(value, key)"));
                }
            }
            _ => out.push(ch),
        }
    }
    out
}

/// One statement, written once; each dialect's text is made at its first use.
pub struct Stmt {
    template: fn() -> String,
    sqlite: OnceLock<String>,
    postgres: OnceLock<String>,
}

impl Stmt {
    pub const fn new(template: fn() -> String) -> Stmt {
        Stmt {
            template,
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    pub fn text(&self, dialect: Dialect) -> &str {
        let cell = match dialect {
            Dialect::Sqlite => &self.sqlite,
            Dialect::Postgres => &self.postgres,
        };
        cell.get_or_init(|| dialect.translate(&(self.template)()))
    }
}

/// A statement's template, with column lists and fragments spliced in by `format!`.
#[macro_export]
macro_rules! stmt {
    ($($t:tt)*) => {
        $crate::store::driver::Stmt::new(|| format!($($t)*))
    };
}

/// A value bound to a placeholder, borrowed from what it is written from.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
    /// Stored as a 0/1 integer (SMALLINT on PostgreSQL).
    Flag(bool),
    Bytes(Option<&'a [u8]>),
    Ids(&'a [i64]),
    Texts(&'a [String]),
}

/// The values of a statement, `args![a, b, ...]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        [$($crate::store::driver::Arg::from($v)),*]
    };
}

/// `Arg::from` for each kind of value the statements take.
macro_rules! arg_from {
    ($($t:ty => |$v:ident| $arg:expr;)*) => {
        $(impl<'a> From<$t> for Arg<'a> {
            fn from($v: $t) -> Self {
                $arg
            }
        })*
    };
}

arg_from! {
    i64 => |v| Arg::Int(Some(v));
    i32 => |v| Arg::Int(Some(v.into()));
    Option<i64> => |v| Arg::Int(v);
    f64 => |v| Arg::Real(Some(v));
    Option<f64> => |v| Arg::Real(v);
    bool => |v| Arg::Flag(v);
    &'a str => |v| Arg::Text(Some(v));
    &'a String => |v| Arg::Text(Some(v));
    &'a Option<String> => |v| Arg::Text(v.as_deref());
    Option<&'a str> => |v| Arg::Text(v);
    &'a [u8] => |v| Arg::Bytes(Some(v));
    &'a [i64] => |v| Arg::Ids(v);
    &'a Vec<i64> => |v| Arg::Ids(v);
    &'a [String] => |v| Arg::Texts(v);
}

impl<'a> From<&'a crate::store::sql::Param> for Arg<'a> {
    fn from(p: &'a crate::store::sql::Param) -> Self {
        match p {
            crate::store::sql::Param::Int(i) => Arg::Int(Some(*i)),
            crate::store::sql::Param::Text(t) => Arg::Text(Some(t)),
        }
    }
}

/// A row as the shared mappers read it, by column index.
pub trait Columns {
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn opt_real(&self, i: usize) -> Result<Option<f64>>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    /// A 0/1 integer column.
    fn flag(&self, i: usize) -> Result<bool>;
    /// A comparison computed by the query.
    fn opt_bool(&self, i: usize) -> Result<Option<bool>>;
    /// A column of ids, `ARRAY(SELECT ...)`, in ascending order.
    fn ids(&self, i: usize) -> Result<Vec<i64>>;
    /// How many columns the row has.
    fn width(&self) -> usize;

    fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| null(i))
    }
    fn real(&self, i: usize) -> Result<f64> {
        self.opt_real(i)?.ok_or_else(|| null(i))
    }
    fn bool(&self, i: usize) -> Result<bool> {
        self.opt_bool(i)?.ok_or_else(|| null(i))
    }
    fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| null(i))
    }
}

fn null(i: usize) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("column {i} is NULL"))
}

/// Maps one row.
pub type Map<T> = fn(&dyn Columns) -> Result<T>;

/// One connection or transaction of either backend, as the shared code drives it.
/// SQLite's futures are ready at once (see [`ready`]); PostgreSQL's statements sent
/// together (`try_join!`) travel together.
pub trait Db {
    const DIALECT: Dialect;

    /// The first row, mapped.
    fn query_row<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> impl Future<Output = Result<Option<T>>>;

    /// Rows mapped in order, until `full` says the last one filled what was asked;
    /// room for `expected` of them is made at once (a page's size: its rows are not
    /// moved as the list grows).
    fn rows_until<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Result<T>,
        expected: usize,
        full: impl FnMut(&T) -> bool,
    ) -> impl Future<Output = Result<Vec<T>>>;

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = Result<u64>>;

    /// Locks one row until the transaction ends, where rows can be locked.
    fn lock_row(&self, table: &'static str, id: i64) -> impl Future<Output = Result<()>>;

    /// Locks one row against other writers of its values until the transaction ends,
    /// while rows that name it may still be added (a task's activities, whose foreign key
    /// takes a share of the task's row): [`Db::lock_row`] would wait for each of those.
    fn lock_values(&self, table: &'static str, id: i64) -> impl Future<Output = Result<()>> {
        self.lock_row(table, id)
    }

    /// Serialises callers that take the same names until the transaction ends, on every
    /// node that shares the database; SQLite's single writer already does.
    fn lock_names(&self, names: &[String]) -> impl Future<Output = Result<()>>;

    /// Runs a write's last statement, which nothing after it in the transaction may read:
    /// where the backend can, it goes out with the COMMIT in one round trip, so that a
    /// row it locks is held only while the database runs the two (PostgreSQL). Anywhere
    /// else it runs at once.
    fn run_last(
        &self,
        stmt: &'static Stmt,
        args: Vec<Arg<'static>>,
    ) -> impl Future<Output = Result<()>> {
        async move { self.run(stmt, &args).await.map(drop) }
    }

    /// Runs the rest of the snapshot's statements with their generic plans, where the
    /// backend plans prepared statements (PostgreSQL) and a statement's best plan is the
    /// same for all its values. Only inside a snapshot (a list's `run_list!`): it ends with
    /// the snapshot.
    fn plan_generically(&self) -> impl Future<Output = Result<()>> {
        async { Ok(()) }
    }

    /// Whether a statement failed on a unique constraint.
    fn is_unique_violation(e: &StoreError) -> bool;

    /// [`Db::query_row`] for a statement written at run time (a list's, for its filters;
    /// the caller is a value, never part of the text): kept prepared as the fixed statements
    /// are, with its arguments' types given, where the driver would otherwise infer them
    /// from the text. A driver bounds how many such statements it keeps.
    fn query_row_kept<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> impl Future<Output = Result<Option<T>>> {
        self.query_row(sql, args, map)
    }

    /// [`Db::rows_until`] for a statement kept prepared, as [`Db::query_row_kept`].
    fn rows_until_kept<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Result<T>,
        expected: usize,
        full: impl FnMut(&T) -> bool,
    ) -> impl Future<Output = Result<Vec<T>>> {
        self.rows_until(sql, args, map, expected, full)
    }

    fn text(stmt: &Stmt) -> &str {
        stmt.text(Self::DIALECT)
    }

    fn row<T>(
        &self,
        stmt: &Stmt,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> impl Future<Output = Result<Option<T>>> {
        self.query_row(Self::text(stmt), args, map)
    }

    fn rows<T>(
        &self,
        stmt: &Stmt,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> impl Future<Output = Result<Vec<T>>> {
        self.rows_until(Self::text(stmt), args, map, 0, |_| false)
    }

    /// The first row, which must be there.
    fn one<T>(
        &self,
        stmt: &Stmt,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> impl Future<Output = Result<T>> {
        let found = self.query_row(Self::text(stmt), args, map);
        async move { found.await?.ok_or_else(|| no_row(stmt)) }
    }

    fn run(&self, stmt: &Stmt, args: &[Arg<'_>]) -> impl Future<Output = Result<u64>> {
        self.execute(Self::text(stmt), args)
    }
}

fn no_row(stmt: &Stmt) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("no row from {}", (stmt.template)()))
}

/// One list as `page` reads it, for one caller.
pub struct List<'a> {
    /// The table and its alias, `tasks t`.
    pub table_alias: &'static str,
    pub columns: &'static Stmt,
    pub actor: &'a Actor,
    /// What a task list learned of its project first (`sql::project_asked_first`).
    pub facts: Option<ProjectFacts>,
}

impl<'a> List<'a> {
    /// A list whose statements depend on no project's facts.
    pub fn new(table_alias: &'static str, columns: &'static Stmt, actor: &'a Actor) -> Self {
        List {
            table_alias,
            columns,
            actor,
            facts: None,
        }
    }
}

/// A page of one list, in `q`'s window, with the list's total. Its text is written by
/// `conditions` and `list_sql` once per shape of list (`Shape`) and kept; each call finds
/// its values again. One statement: the total comes with the rows, and is counted apart
/// only when a window past the first has none.
pub async fn page<D: Db, T>(
    db: &D,
    ws: WorkspaceId,
    list: List<'_>,
    conditions: impl FnOnce() -> Result<Conditions>,
    q: &ListQuery,
    map: Map<T>,
) -> Result<Page<T>> {
    // SQLite skips an OFFSET's rows before reading their columns; PostgreSQL does not.
    let ids_first = D::DIALECT == Dialect::Postgres && q.offset > 0;
    let (window, window_values) = D::DIALECT.window(q);
    let shape = Shape::of_list::<D>(&list, &q.filters, ids_first, window.clone());
    let statements = kept(&KEPT_LISTS, shape, || {
        let c = conditions()?;
        let columns = D::text(list.columns);
        let sql = list_sql(list.table_alias, columns, &c, ids_first, &window);
        let count_values = c.count_values().to_vec();
        let mut page_values = count_values.clone();
        page_values.extend_from_slice(&c.values);
        Ok(ListStatements {
            count: (D::DIALECT.numbered(sql.count), count_values),
            page: (D::DIALECT.numbered(sql.page), page_values),
            // A window of placeholders is guessed at by a generic plan (a tenth of the
            // rows; `Dialect::window`), which may then sort instead of walking in order.
            plan_fixed: c.plan_fixed && !window.contains('?'),
        })
    })?;
    let bindings = Bindings::new(ws, list.actor, &q.filters);
    let page_values = bindings.values(&statements.page.1)?;
    let mut args: Vec<Arg> = page_values.iter().map(Arg::from).collect();
    args.extend(window_values);
    // Sync, as the statement's future holds it across its awaits.
    let total = OnceLock::new();
    let with_total = |r: &dyn Columns| {
        if total.get().is_none() {
            let _ = total.set(r.int(r.width() - 1)?);
        }
        map(r)
    };
    let rows = db.rows_until_kept(
        &statements.page.0,
        &args,
        with_total,
        expected_rows(q),
        |_| false,
    );
    let items = if statements.plan_fixed {
        // In order: the settings go out ahead of the page, in the same write.
        futures_util::try_join!(db.plan_generically(), rows)?.1
    } else {
        rows.await?
    };
    let total = match total.get() {
        Some(&total) => total,
        // An empty first page of a list that may have rows: nothing matches.
        None if q.offset <= 0 && q.count != Some(0) => 0,
        // A window past the end: counted apart, in the same snapshot where the read has
        // one (`run_list!`), else in its own, as a later read would be.
        None => {
            let count_values = bindings.values(&statements.count.1)?;
            let count_args: Vec<Arg> = count_values.iter().map(Arg::from).collect();
            db.query_row_kept(&statements.count.0, &count_args, first_int)
                .await?
                .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("no count")))?
        }
    };
    Ok(Page { items, total })
}

/// A list's page (with its total) and count statements, in the backend's dialect.
struct ListStatements {
    page: Piece,
    count: Piece,
    /// Run with the generic plan (`Conditions::plan_fixed`).
    plan_fixed: bool,
}

/// What the text of a list's statements depends on: the caller's rules (their level and
/// whether they see every user's profile), what a task list learned of its project, the
/// kinds of its filters in order, and its window. Never the caller, the workspace or a
/// filter's value (`sql::Bind`; `sql::tests` checks it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    dialect: Dialect,
    statement: &'static str,
    /// The address of the column list's `Stmt`: one per list and choice of columns.
    columns: usize,
    level: SecurityLevel,
    can_view_profiles: bool,
    facts: Option<(bool, bool)>,
    filters: [Option<Discriminant<Filter>>; SHAPE_FILTERS],
    ids_first: bool,
    window: Cow<'static, str>,
}

/// Lists with more filters are written each time: they are rare, and a longer key would
/// cost every list.
const SHAPE_FILTERS: usize = 6;

/// The most shapes a thread keeps. Shapes are few (roles, facts, filter kinds in the
/// orders clients send them); a caller sending ever new combinations empties the memo
/// now and then but cannot grow it.
const KEPT_SHAPES: usize = 512;

impl Shape {
    /// `None` for a list of more than `SHAPE_FILTERS` filters.
    pub fn new(
        dialect: Dialect,
        statement: &'static str,
        columns: Option<&'static Stmt>,
        actor: &Actor,
        facts: Option<ProjectFacts>,
        filters: &[Filter],
    ) -> Option<Shape> {
        if filters.len() > SHAPE_FILTERS {
            return None;
        }
        let mut kinds = [None; SHAPE_FILTERS];
        for (kind, f) in kinds.iter_mut().zip(filters) {
            *kind = Some(std::mem::discriminant(f));
        }
        Some(Shape {
            dialect,
            statement,
            columns: columns.map_or(0, |c| std::ptr::from_ref(c) as usize),
            level: actor.level,
            can_view_profiles: actor.can_view_profiles,
            facts: facts.map(|f| (f.visible, f.in_team)),
            filters: kinds,
            ids_first: false,
            window: Cow::Borrowed(""),
        })
    }

    fn of_list<D: Db>(
        list: &List<'_>,
        filters: &[Filter],
        ids_first: bool,
        window: Cow<'static, str>,
    ) -> Option<Shape> {
        let shape = Shape::new(
            D::DIALECT,
            list.table_alias,
            Some(list.columns),
            list.actor,
            list.facts,
            filters,
        )?;
        Some(Shape {
            ids_first,
            window,
            ..shape
        })
    }
}

// Hashed with FxHash, a few instructions a word, not SipHash: a list looks up one or two
// shapes, and the keys are bounded (`KEPT_SHAPES`), so a caller choosing colliding
// shapes slows only the few lookups among those.
type Kept<T> = RefCell<FxHashMap<Shape, Arc<T>>>;

thread_local! {
    static KEPT_LISTS: Kept<ListStatements> = RefCell::default();
}

fn kept<T>(
    memo: &'static std::thread::LocalKey<Kept<T>>,
    shape: Option<Shape>,
    write: impl FnOnce() -> Result<T>,
) -> Result<Arc<T>> {
    let Some(shape) = shape else {
        return write().map(Arc::new);
    };
    if let Some(found) = memo.with_borrow(|m| m.get(&shape).cloned()) {
        return Ok(found);
    }
    let written = Arc::new(write()?);
    memo.with_borrow_mut(|m| {
        if m.len() >= KEPT_SHAPES {
            m.clear();
        }
        m.insert(shape, Arc::clone(&written));
    });
    Ok(written)
}

/// Room made at once for a page's rows: its size, up to 200. A larger page, or a getAll
/// (no count), grows as it reads: a size asked for is no promise of rows, and room for
/// 1,000 tasks would be a quarter of a megabyte a call.
fn expected_rows(q: &ListQuery) -> usize {
    q.count.map_or(0, |n| n.clamp(0, 200) as usize)
}

/// The first column as an integer.
pub fn first_int(r: &dyn Columns) -> Result<i64> {
    r.int(0)
}

/// The first column as an optional integer.
pub fn first_opt_int(r: &dyn Columns) -> Result<Option<i64>> {
    r.opt_int(0)
}

/// The first column as text.
pub fn first_text(r: &dyn Columns) -> Result<String> {
    r.text(0)
}

/// Runs shared code whose statements all run at once (SQLite's): its future is ready
/// the first time it is polled.
pub fn ready<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    let mut work = std::pin::pin!(work);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match work.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err(StoreError::Internal(anyhow::anyhow!(
            "SQLite work waited for something"
        ))),
    }
}

/// The row a write just made or changed; its absence is a bug, reported as one.
pub fn written<T>(found: Option<T>) -> Result<T> {
    found.ok_or_else(|| StoreError::Internal(anyhow::anyhow!("the row just written is missing")))
}

#[cfg(test)]
mod tests {
    use super::{Dialect, Shape, Stmt};
    use crate::domain::policy::Actor;
    use crate::domain::user::SecurityLevel;
    use crate::store::sql::ProjectFacts;
    use crate::store::Filter;

    /// Two lists share their statements' text only when everything it is written from is
    /// the same; the caller and the filters' values are not part of it.
    #[test]
    fn a_shape_is_what_the_statements_are_written_from() {
        static COLUMNS: Stmt = Stmt::new(|| "t.id".into());
        static OTHER_COLUMNS: Stmt = Stmt::new(|| "t.id, t.name".into());
        let actor = |user_id, level| Actor {
            user_id,
            level,
            can_view_profiles: false,
        };
        let user = actor(7, SecurityLevel::User);
        let facts = Some(ProjectFacts {
            visible: true,
            in_team: false,
        });
        let filters = [Filter::ProjectId(3), Filter::Active];
        let shape = |dialect, columns, a: &Actor, facts, f: &[Filter]| {
            Shape::new(dialect, "tasks t", Some(columns), a, facts, f)
        };
        let base = shape(Dialect::Sqlite, &COLUMNS, &user, facts, &filters);
        assert!(base.is_some());
        let same = shape(
            Dialect::Sqlite,
            &COLUMNS,
            &actor(8, SecurityLevel::User),
            facts,
            &[Filter::ProjectId(9), Filter::Active],
        );
        assert_eq!(base, same);
        let others = [
            shape(Dialect::Postgres, &COLUMNS, &user, facts, &filters),
            shape(Dialect::Sqlite, &OTHER_COLUMNS, &user, facts, &filters),
            shape(
                Dialect::Sqlite,
                &COLUMNS,
                &actor(7, SecurityLevel::External),
                facts,
                &filters,
            ),
            shape(Dialect::Sqlite, &COLUMNS, &user, None, &filters),
            shape(
                Dialect::Sqlite,
                &COLUMNS,
                &user,
                facts,
                &[Filter::Active, Filter::ProjectId(3)],
            ),
            shape(
                Dialect::Sqlite,
                &COLUMNS,
                &user,
                facts,
                &[Filter::ProjectId(3)],
            ),
            shape(
                Dialect::Sqlite,
                &COLUMNS,
                &Actor {
                    can_view_profiles: true,
                    ..user
                },
                facts,
                &filters,
            ),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        // More filters than a shape holds: written each time, never kept.
        let many = vec![Filter::Active; 7];
        assert_eq!(shape(Dialect::Sqlite, &COLUMNS, &user, facts, &many), None);
    }

    #[test]
    fn each_dialect_takes_the_shared_text_as_it_speaks() {
        let shared = "SELECT p.id, ARRAY(SELECT tm.user_id FROM t tm WHERE tm.p = p.id ORDER BY \
            tm.user_id) FROM p WHERE p.a = ?1 AND p.b LIKE 'x?' AND p.id = ANY(?2) FOR UPDATE";
        assert_eq!(
            Dialect::Postgres.translate(shared),
            "SELECT p.id, ARRAY(SELECT tm.user_id FROM t tm WHERE tm.p = p.id ORDER BY \
            tm.user_id) FROM p WHERE p.a = $1 AND p.b LIKE 'x?' AND p.id = ANY($2) FOR UPDATE"
        );
        assert_eq!(
            Dialect::Sqlite.translate(shared),
            "SELECT p.id, (SELECT group_concat(user_id) FROM (SELECT tm.user_id FROM t tm \
            WHERE tm.p = p.id)) FROM p WHERE p.a = ?1 AND p.b LIKE 'x?' \
            AND p.id IN (SELECT value FROM json_each(?2))"
        );
        assert_eq!(
            Dialect::Postgres.translate("INSERT INTO x SELECT ?1, value FROM TEXTS(?2) ORDER BY key"),
            "INSERT INTO x SELECT $1, value FROM unnest($2::TEXT[]) WITH ORDINALITY AS ids(value, key) ORDER BY key"
        );
        assert_eq!(
            Dialect::Sqlite.translate("INSERT INTO x SELECT ?1, value FROM IDS(?2) WHERE true"),
            "INSERT INTO x SELECT ?1, value FROM json_each(?2) AS ids WHERE true"
        );
    }
}
