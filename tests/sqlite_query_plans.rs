//! The SQLite backend's list queries search indexes, whatever the filter and the caller
//! (moved here from `src/store/sqlite/work.rs`; the plans read by a helper since the
//! external's case was added).

use rusqlite::{params, params_from_iter, Connection};
use vesper::domain::policy::Actor;
use vesper::domain::user::SecurityLevel;
use vesper::domain::WorkspaceId;
use vesper::store::driver::{Arg, Dialect};
use vesper::store::sql::{list_sql, task_conditions, Bindings, Conditions, ProjectFacts};
use vesper::store::sqlite::Sqlite;
use vesper::store::{tasks, Filter};

/// Seeds 100,000 tasks and checks that each indexable filter's count and page
/// queries search an index rather than scan the table, for an admin and a user.
#[test]
fn filtered_task_lists_use_indexes_with_100k_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sqlite3");
    // Opening the store creates the schema.
    drop(Sqlite::open(&path).unwrap());
    let mut conn = Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION SELECT i + 1 FROM n WHERE i < 50) \
         INSERT INTO users (workspace_id, email, email_key, password_hash, security_level, \
         can_view_profiles, created_at, updated_at) SELECT 1, i || '@x.y', i || '@x.y', '', 100, 0, 0, 0 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION SELECT i + 1 FROM n WHERE i < 50) \
         INSERT INTO project_groups (workspace_id, name, created_at, updated_at) SELECT 1, 'g' || i, 0, 0 FROM n;",
    )
    .unwrap();
    for p in 0..10 {
        tx.execute(
            "INSERT INTO projects (workspace_id, name, owner_id, group_id, priority, status, hidden, flag, \
             notify_project_team, notify_client, created_at, updated_at) VALUES (1, ?1, 1, 1, 2, 10, ?2, 0, 0, 0, 0, 0)",
            params![format!("p{p}"), p % 2],
        )
        .unwrap();
    }
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO tasks (workspace_id, project_id, name, owner_id, group_id, start_date, end_date, \
                 priority, progress, status, hidden, flag, notify_project_team, notify_task_team, notify_client, \
                 created_at, updated_at) VALUES (1, ?1, ?2, ?6, ?6, ?3, ?3, 2, ?4, 10, ?5, 0, 0, 0, 0, ?3, ?3)",
            )
            .unwrap();
        for i in 0..100_000i64 {
            insert
                .execute(params![
                    i % 10 + 1,
                    format!("task {i}"),
                    i * 60,
                    i % 101,
                    i % 3 == 0,
                    i % 50 + 1
                ])
                .unwrap();
        }
    }
    tx.execute_batch(
        "UPDATE tasks SET parent_id = id - 1 WHERE id % 4 = 0;
         INSERT INTO task_team SELECT id, 1 FROM tasks WHERE id % 50 = 0; ANALYZE;",
    )
    .unwrap();
    tx.commit().unwrap();
    let filters = [
        Filter::ProjectId(3),
        Filter::ParentId(7),
        Filter::OwnerId(1),
        Filter::GroupId(1),
        Filter::AssignedTo(1),
        Filter::DeadlineFrom(5_999_000),
        Filter::DeadlineBefore(60_000),
        Filter::StartedFrom(5_999_000),
        Filter::CreatedBefore(60_000),
        Filter::UpdatedFrom(5_999_000),
    ];
    let actors = [
        Actor {
            user_id: 1,
            level: SecurityLevel::Admin,
            can_view_profiles: true,
        },
        Actor {
            user_id: 1,
            level: SecurityLevel::User,
            can_view_profiles: false,
        },
    ];
    for actor in &actors {
        for f in &filters {
            let one = std::slice::from_ref(f);
            let c = task_conditions(actor, one, None, Dialect::Sqlite).unwrap();
            for plan in plans(&conn, &c, one) {
                let outer = plan
                    .iter()
                    .find(|l| l.contains(" t ") || l.ends_with(" t") || l.contains(" task_counts "))
                    .cloned();
                let scans_table = plan
                    .iter()
                    .any(|l| l == "SCAN t" || l == "SCAN task_counts");
                assert!(
                    !scans_table,
                    "{:?} {f:?} scans the whole table:\n{}",
                    actor.level,
                    plan.join("\n")
                );
                assert!(
                    outer.is_some_and(|l| l.contains("INDEX") || l.contains("PRIMARY KEY")),
                    "{f:?}: {}",
                    plan.join("\n")
                );
            }
        }
    }

    // An external outside a project's team sees the tasks they own or whose team they are
    // in. The page starts from those, by id, not from the project's 10,000 tasks, and looks
    // each up by (project, id) in the project's index (migration 0008) before reading any
    // row; the total is the sum of their kept counts (migration 0009), no task read.
    let external = Actor {
        user_id: 1,
        level: SecurityLevel::External,
        can_view_profiles: false,
    };
    let outside = Some(ProjectFacts {
        visible: true,
        in_team: false,
    });
    for filters in [
        vec![Filter::ProjectId(3)],
        vec![Filter::ProjectId(3), Filter::Active],
    ] {
        let c = task_conditions(&external, &filters, outside, Dialect::Sqlite).unwrap();
        let [count, page] = plans(&conn, &c, &filters);
        let kept = "SEARCH own_task_counts USING PRIMARY KEY \
                    (workspace_id=? AND user_id=? AND project_id=?)";
        assert_eq!(
            count,
            ["SCAN CONSTANT ROW", "SCALAR SUBQUERY 1", kept],
            "{filters:?}: the count"
        );
        let tasks: Vec<&String> = page.iter().filter(|l| l.starts_with("SEARCH t ")).collect();
        assert!(
            !tasks.is_empty()
                && tasks.iter().all(|l| {
                    l.starts_with("SEARCH t USING INTEGER PRIMARY KEY")
                        || l.ends_with("tasks_project (project_id=? AND id=?)")
                }),
            "{filters:?}: the page\n{}",
            page.join("\n")
        );
        assert!(
            page.iter().any(|l| l == kept),
            "{filters:?}: the page's total\n{}",
            page.join("\n")
        );
    }
}

/// A value as the server binds it (arrays as JSON), for rusqlite.
fn sqlite_value(arg: &Arg) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match *arg {
        Arg::Int(Some(v)) => Value::Integer(v),
        Arg::Flag(b) => Value::Integer(b.into()),
        Arg::Real(Some(v)) => Value::Real(v),
        Arg::Text(Some(t)) => Value::Text(t.to_string()),
        Arg::Bytes(Some(b)) => Value::Blob(b.to_vec()),
        Arg::Ids(ids) => Value::Text(serde_json::to_string(ids).unwrap()),
        Arg::Texts(texts) => Value::Text(serde_json::to_string(texts).unwrap()),
        Arg::Int(None) | Arg::Real(None) | Arg::Text(None) | Arg::Bytes(None) => Value::Null,
    }
}

/// The query plans of a task list's count and page statements, one line per step.
fn plans(conn: &Connection, c: &Conditions, filters: &[Filter]) -> [Vec<String>; 2] {
    let bindings = Bindings {
        ws: WorkspaceId::DEFAULT,
        caller: 1,
        filters,
    };
    let sql = list_sql(
        "tasks t",
        tasks::COLUMN_LIST.text(Dialect::Sqlite),
        c,
        false,
        "LIMIT ? OFFSET ?",
    );
    // The page carries the total: its count's values come first.
    let page_values: Vec<_> = c.count_values().iter().chain(&c.values).cloned().collect();
    [
        (sql.count, c.count_values().to_vec(), 0),
        (sql.page, page_values, 2),
    ]
    .map(|(sql, base, extra)| {
        let base = bindings.values(&base).unwrap();
        let mut values: Vec<Arg> = base.iter().map(Arg::from).collect();
        values.extend((0..extra).map(|_| Arg::from(25i64)));
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(params_from_iter(values.iter().map(sqlite_value)), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    })
}

/// The bundled SQLite is built as `.cargo/config.toml` says: a page cache per connection
/// (no process-wide lock on every page) that starts empty (no 86 KB block per temporary
/// b-tree). Lost settings would not fail any other test, only slow the server.
#[test]
fn the_bundled_sqlite_keeps_a_page_cache_per_connection_that_starts_empty() {
    let conn = Connection::open_in_memory().unwrap();
    let options: Vec<String> = conn
        .prepare("PRAGMA compile_options")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "{options:?}"
    );
    assert!(
        options.iter().any(|o| o == "DEFAULT_PCACHE_INITSZ=0"),
        "{options:?}"
    );
}
