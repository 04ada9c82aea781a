//! Projects, tasks, activities and files on SQLite.
//!
//! Visibility (section 8) is part of every list query, written from the same rules as
//! `domain::policy`, so pages and totals count only what the caller may see.

use async_trait::async_trait;
use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, Transaction};

use super::{queue_mail, Sqlite};
use crate::domain::policy::Actor;
use crate::domain::work::{
    apply_progress, closed_at, roll_up, Activity, ActivityType, FileMeta, HoursChange, Project,
    Task, HOURS_DECIMALS,
};
use crate::domain::WorkspaceId;
use crate::store::sql::{
    activity_conditions, file_conditions, keyset_sql, list_sql, project_conditions,
    task_conditions, Conditions, Param,
};
use crate::store::{
    check_version, page_full_with, project_ids_of, Census, Expected, Filter, ListQuery,
    OutgoingMail, Page, Result, StoreError, WorkStore,
};

/// Runs a count and a page of one list in one read transaction.
fn page<T>(
    conn: &Connection,
    table_alias: &str,
    columns: &str,
    c: &Conditions,
    q: &ListQuery,
    map: impl Fn(&Row) -> rusqlite::Result<T>,
) -> Result<Page<T>> {
    // The count and the page come from the same snapshot: `Sqlite::read` runs every
    // read in one transaction.
    let (count_sql, page_sql) = list_sql(table_alias, columns, c);
    let total: i64 = conn
        .prepare_cached(&count_sql)?
        .query_row(params_from_iter(c.count_values().iter().map(bind)), |r| {
            r.get(0)
        })?;
    let mut values: Vec<Sql> = c.values.iter().map(bind).collect();
    values.push(Sql::Integer(q.count.unwrap_or(-1)));
    values.push(Sql::Integer(q.offset));
    let items = conn
        .prepare_cached(&page_sql)?
        .query_map(params_from_iter(values.iter()), map)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Page { items, total })
}

/// A shared parameter as rusqlite binds it.
fn bind(p: &Param) -> Sql {
    match p {
        Param::Int(i) => Sql::Integer(*i),
        Param::Text(t) => Sql::Text(t.clone()),
    }
}

// ---- rows ------------------------------------------------------------------------------

const PROJECT_COLUMNS: &str = "p.id, p.name, p.description, p.tags, p.owner_id, p.group_id, \
    p.start_date, p.end_date, p.priority, p.status, p.closed_at, p.hidden, p.flag, \
    p.notify_project_team, p.notify_client, p.created_at, p.updated_at, p.version";

fn project_from_row(r: &Row) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        tags: r.get(3)?,
        owner_id: r.get(4)?,
        group_id: r.get(5)?,
        start_date: r.get(6)?,
        end_date: r.get(7)?,
        priority: r.get(8)?,
        status: r.get(9)?,
        closed_at: r.get(10)?,
        hidden: r.get(11)?,
        flag: r.get(12)?,
        notify_project_team: r.get(13)?,
        notify_client: r.get(14)?,
        team: Vec::new(),
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
        version: r.get(17)?,
    })
}

const TASK_COLUMNS: &str = "t.id, t.project_id, t.parent_id, \
    (SELECT pa.name FROM tasks pa WHERE pa.id = t.parent_id), t.name, t.description, t.tags, \
    t.owner_id, t.group_id, t.start_date, t.end_date, t.priority, t.progress, t.status, \
    t.closed_at, t.hidden, t.flag, t.hours_done, t.estimated_time, t.notify_project_team, \
    t.notify_task_team, t.notify_client, t.created_at, t.updated_at, t.version";

fn task_from_row(r: &Row) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        project_id: r.get(1)?,
        parent_id: r.get(2)?,
        parent_name: r.get(3)?,
        name: r.get(4)?,
        description: r.get(5)?,
        tags: r.get(6)?,
        owner_id: r.get(7)?,
        group_id: r.get(8)?,
        start_date: r.get(9)?,
        end_date: r.get(10)?,
        priority: r.get(11)?,
        progress: r.get(12)?,
        status: r.get(13)?,
        closed_at: r.get(14)?,
        hidden: r.get(15)?,
        flag: r.get(16)?,
        hours_done: r.get(17)?,
        estimated_time: r.get(18)?,
        notify_project_team: r.get(19)?,
        notify_task_team: r.get(20)?,
        notify_client: r.get(21)?,
        team: Vec::new(),
        created_at: r.get(22)?,
        updated_at: r.get(23)?,
        version: r.get(24)?,
    })
}

const ACTIVITY_COLUMNS: &str = "a.id, a.project_id, a.task_id, a.type, a.text, a.owner_id, \
    a.progress, a.hours_done, a.hide_from_clients, a.date, a.notify_project_team, \
    a.notify_task_team, a.notify_client, a.created_at, a.updated_at, a.version";

fn activity_from_row(r: &Row) -> rusqlite::Result<Activity> {
    let kind: String = r.get(3)?;
    Ok(Activity {
        id: r.get(0)?,
        project_id: r.get(1)?,
        task_id: r.get(2)?,
        kind: ActivityType::parse(&kind).unwrap_or(ActivityType::Msg),
        text: r.get(4)?,
        owner_id: r.get(5)?,
        progress: r.get(6)?,
        hours_done: r.get(7)?,
        hide_from_clients: r.get(8)?,
        date: r.get(9)?,
        notify_project_team: r.get(10)?,
        notify_task_team: r.get(11)?,
        notify_client: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        version: r.get(15)?,
    })
}

const FILE_COLUMNS: &str = "f.id, f.activity_id, f.task_id, f.project_id, f.name, f.size, \
    f.mime_type, f.sha256, f.storage_key, f.owner_id, f.created_at, \
    (SELECT m.type = 'msg' FROM activities m WHERE m.id = f.activity_id)";

fn file_from_row(r: &Row) -> rusqlite::Result<FileMeta> {
    Ok(FileMeta {
        id: r.get(0)?,
        activity_id: r.get(1)?,
        task_id: r.get(2)?,
        project_id: r.get(3)?,
        name: r.get(4)?,
        size: r.get(5)?,
        mime_type: r.get(6)?,
        sha256: r.get(7)?,
        storage_key: r.get(8)?,
        owner_id: r.get(9)?,
        created_at: r.get(10)?,
        on_message: r.get::<_, Option<bool>>(11)?.unwrap_or(false),
    })
}

/// Team members of each of these objects, from `project_team` or `task_team`.
fn teams(
    conn: &Connection,
    table: &str,
    key: &str,
    ids: &[i64],
) -> rusqlite::Result<Vec<(i64, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {key}, user_id FROM {table} WHERE {key} IN ({marks}) ORDER BY {key}, user_id"
    ))?;
    let rows = stmt.query_map(params_from_iter(ids.iter()), |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Something with a team: projects and tasks.
trait Teamed {
    /// The team table and its key column.
    const TEAM: (&'static str, &'static str);
    fn id(&self) -> i64;
    fn team(&mut self) -> &mut Vec<i64>;
}

impl Teamed for Project {
    const TEAM: (&'static str, &'static str) = ("project_team", "project_id");
    fn id(&self) -> i64 {
        self.id
    }
    fn team(&mut self) -> &mut Vec<i64> {
        &mut self.team
    }
}

impl Teamed for Task {
    const TEAM: (&'static str, &'static str) = ("task_team", "task_id");
    fn id(&self) -> i64 {
        self.id
    }
    fn team(&mut self) -> &mut Vec<i64> {
        &mut self.team
    }
}

/// Fills in the teams of these objects with one query.
fn fill_teams<T: Teamed>(conn: &Connection, items: &mut [T]) -> rusqlite::Result<()> {
    let ids: Vec<i64> = items.iter().map(Teamed::id).collect();
    let (table, key) = T::TEAM;
    for (id, user) in teams(conn, table, key, &ids)? {
        if let Some(item) = items.iter_mut().find(|i| i.id() == id) {
            item.team().push(user);
        }
    }
    Ok(())
}

/// One object with its team, if it exists.
fn with_team<T: Teamed>(conn: &Connection, found: Option<T>) -> rusqlite::Result<Option<T>> {
    let mut found: Vec<T> = found.into_iter().collect();
    fill_teams(conn, &mut found)?;
    Ok(found.pop())
}

fn project_in(conn: &Connection, ws: WorkspaceId, id: i64) -> rusqlite::Result<Option<Project>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.workspace_id = ?1 AND p.id = ?2"
        ))?
        .query_row(params![ws.0, id], project_from_row)
        .optional()?;
    with_team(conn, found)
}

fn projects_in(c: &Connection, ws: WorkspaceId, ids: &[i64]) -> rusqlite::Result<Vec<Project>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let mut values = vec![ws.0];
    values.extend(ids);
    let mut projects = c
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.workspace_id = ? AND p.id IN ({marks})"
        ))?
        .query_map(params_from_iter(values.iter()), project_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill_teams(c, &mut projects)?;
    Ok(projects)
}

fn task_in(conn: &Connection, ws: WorkspaceId, id: i64) -> rusqlite::Result<Option<Task>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.workspace_id = ?1 AND t.id = ?2"
        ))?
        .query_row(params![ws.0, id], task_from_row)
        .optional()?;
    with_team(conn, found)
}

fn activity_in(conn: &Connection, ws: WorkspaceId, id: i64) -> rusqlite::Result<Option<Activity>> {
    conn.prepare_cached(&format!(
        "SELECT {ACTIVITY_COLUMNS} FROM activities a WHERE a.workspace_id = ?1 AND a.id = ?2"
    ))?
    .query_row(params![ws.0, id], activity_from_row)
    .optional()
}

fn set_team(
    tx: &Transaction,
    table: &str,
    key: &str,
    id: i64,
    team: &[i64],
) -> rusqlite::Result<()> {
    tx.execute(&format!("DELETE FROM {table} WHERE {key} = ?1"), [id])?;
    let mut stmt = tx.prepare(&format!(
        "INSERT OR IGNORE INTO {table} ({key}, user_id) VALUES (?1, ?2)"
    ))?;
    for user in team {
        stmt.execute(params![id, user])?;
    }
    Ok(())
}

/// Storage keys of the files that a cascade is about to remove.
fn keys_where(tx: &Transaction, condition: &str, id: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare(&format!("SELECT storage_key FROM files WHERE {condition}"))?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

/// The ids of a task's sub-tasks, at every depth.
const DESCENDANTS: &str = "WITH RECURSIVE d(id) AS (SELECT id FROM tasks WHERE parent_id = ?1 \
    UNION SELECT t.id FROM tasks t JOIN d ON t.parent_id = d.id)";

/// Brings a task's hoursDone and progress up to date after one of its activities was
/// written (section 9, `roll_up` says what changed): hours are the sum; the newest
/// progress note sets progress and, through it, status.
fn roll_up_task(
    tx: &Transaction,
    task_id: i64,
    (hours, progress_note): (HoursChange, bool),
    now: i64,
) -> rusqlite::Result<()> {
    match hours {
        HoursChange::Unchanged => {}
        HoursChange::Add(h) => {
            tx.prepare_cached(
                "UPDATE tasks SET hours_done = ROUND(hours_done + ?2, ?3), version = version + 1 \
                 WHERE id = ?1",
            )?
            .execute(params![task_id, h, HOURS_DECIMALS])?;
        }
        HoursChange::Resum => {
            tx.prepare_cached(
                "UPDATE tasks SET hours_done = ROUND((SELECT COALESCE(SUM(hours_done), 0) \
                 FROM activities WHERE task_id = ?1), ?2), version = version + 1 WHERE id = ?1",
            )?
            .execute(params![task_id, HOURS_DECIMALS])?;
        }
    }
    if !progress_note {
        return Ok(());
    }
    // Served by the partial index activities_progress_notes.
    let newest: Option<i64> = tx
        .prepare_cached(
            "SELECT progress FROM activities WHERE task_id = ?1 AND type = 'progress' \
             ORDER BY date DESC, id DESC LIMIT 1",
        )?
        .query_row([task_id], |r| r.get(0))
        .optional()?
        .flatten();
    if let Some(progress) = newest {
        let (status, closed): (i64, Option<i64>) = tx.query_row(
            "SELECT status, closed_at FROM tasks WHERE id = ?1",
            [task_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let next = apply_progress(status, progress);
        tx.execute(
            "UPDATE tasks SET progress = ?2, status = ?3, closed_at = ?4, version = version + 1 \
             WHERE id = ?1",
            params![
                task_id,
                progress,
                next,
                closed_at(status, closed, next, now)
            ],
        )?;
    }
    Ok(())
}

#[async_trait]
impl WorkStore for Sqlite {
    async fn project(&self, ws: WorkspaceId, id: i64) -> Result<Option<Project>> {
        self.read(move |c| Ok(project_in(c, ws, id)?)).await
    }

    /// One read for both, so a task's getById takes the read lock once.
    async fn task_with_project(
        &self,
        ws: WorkspaceId,
        id: i64,
    ) -> Result<Option<(Task, Option<Project>)>> {
        self.read(move |c| {
            let Some(task) = task_in(c, ws, id)? else {
                return Ok(None);
            };
            let project = match task.project_id {
                Some(pid) => project_in(c, ws, pid)?,
                None => None,
            };
            Ok(Some((task, project)))
        })
        .await
    }

    async fn projects_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<Project>> {
        self.read(move |c| Ok(projects_in(c, ws, &ids)?)).await
    }

    async fn save_project(
        &self,
        ws: WorkspaceId,
        p: Project,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Project> {
        self.write(move |tx| {
            queue_mail(tx, ws, &mail, now)?;
            // One list of values for both statements: the update numbers its columns as
            // the insert does and takes the id last.
            let mut values = params![ws.0, p.name, p.description, p.tags, p.owner_id, p.group_id,
                p.start_date, p.end_date, p.priority, p.status, p.closed_at, p.hidden, p.flag,
                p.notify_project_team, p.notify_client, now].to_vec();
            let id = if p.id == 0 {
                tx.execute(
                    "INSERT INTO projects (workspace_id, name, description, tags, owner_id, group_id, \
                     start_date, end_date, priority, status, closed_at, hidden, flag, \
                     notify_project_team, notify_client, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
                    values.as_slice(),
                )?;
                tx.last_insert_rowid()
            } else {
                values.push(&p.id);
                values.push(&p.version);
                let changed = tx.execute(
                    "UPDATE projects SET name = ?2, description = ?3, tags = ?4, owner_id = ?5, \
                     group_id = ?6, start_date = ?7, end_date = ?8, priority = ?9, status = ?10, \
                     closed_at = ?11, hidden = ?12, flag = ?13, notify_project_team = ?14, \
                     notify_client = ?15, updated_at = ?16, version = version + 1 \
                     WHERE workspace_id = ?1 AND id = ?17 AND version = ?18",
                    values.as_slice(),
                )?;
                if changed == 0 {
                    return Err(StoreError::VersionChanged);
                }
                // A task in a project takes the project's group.
                tx.execute(
                    "UPDATE tasks SET group_id = ?2, updated_at = ?3, version = version + 1 \
                     WHERE project_id = ?1 AND group_id IS NOT ?2",
                    params![p.id, p.group_id, now],
                )?;
                p.id
            };
            set_team(tx, "project_team", "project_id", id, &p.team)?;
            Ok(project_in(tx, ws, id)?.expect("the row just written"))
        })
        .await
    }

    async fn remove_project(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>> {
        self.write(move |tx| {
            let Some(current) = project_in(tx, ws, id)? else {
                return Ok(None);
            };
            check_version(expected, current.version)?;
            let keys = keys_where(
                tx,
                "activity_id IN (SELECT id FROM activities WHERE project_id = ?1)",
                id,
            )?;
            // Foreign keys cascade: tasks, their teams, activities and file rows.
            tx.execute(
                "DELETE FROM projects WHERE workspace_id = ?1 AND id = ?2",
                params![ws.0, id],
            )?;
            Ok(Some(keys))
        })
        .await
    }

    async fn projects(&self, ws: WorkspaceId, actor: Actor, q: ListQuery) -> Result<Page<Project>> {
        self.read(move |conn| {
            let c = project_conditions(ws, &actor, &q.filters)?;
            let mut page = page(
                conn,
                "projects p",
                PROJECT_COLUMNS,
                &c,
                &q,
                project_from_row,
            )?;
            fill_teams(conn, &mut page.items)?;
            Ok(page)
        })
        .await
    }

    async fn project_census(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        filters: Vec<Filter>,
    ) -> Result<Census> {
        self.read(move |conn| {
            let c = project_conditions(ws, &actor, &filters)?;
            let (census_sql, _) = keyset_sql("projects p", PROJECT_COLUMNS, &c);
            let census = conn.prepare_cached(&census_sql)?.query_row(
                params_from_iter(c.values.iter().map(bind)),
                |r| {
                    Ok(Census {
                        total: r.get(0)?,
                        last_id: r.get(1)?,
                    })
                },
            )?;
            Ok(census)
        })
        .await
    }

    async fn projects_after(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        filters: Vec<Filter>,
        after: i64,
        last_id: i64,
        limit: i64,
    ) -> Result<Vec<Project>> {
        self.read(move |conn| {
            let c = project_conditions(ws, &actor, &filters)?;
            let (_, page_sql) = keyset_sql("projects p", PROJECT_COLUMNS, &c);
            let mut values: Vec<Sql> = c.values.iter().map(bind).collect();
            values.extend([
                Sql::Integer(after),
                Sql::Integer(last_id),
                Sql::Integer(limit),
            ]);
            let mut stmt = conn.prepare_cached(&page_sql)?;
            let mut rows = stmt.query(params_from_iter(values.iter()))?;
            let (mut items, mut bytes) = (Vec::new(), 0);
            while let Some(row) = rows.next()? {
                let p = project_from_row(row)?;
                let full = page_full_with(&p, &mut bytes);
                items.push(p);
                if full {
                    break;
                }
            }
            fill_teams(conn, &mut items)?;
            Ok(items)
        })
        .await
    }

    async fn task(&self, ws: WorkspaceId, id: i64) -> Result<Option<Task>> {
        self.read(move |c| Ok(task_in(c, ws, id)?)).await
    }

    async fn save_task(
        &self,
        ws: WorkspaceId,
        t: Task,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Task> {
        self.write(move |tx| {
            queue_mail(tx, ws, &mail, now)?;
            // A task in a project takes the project's group; a single task keeps its own.
            let group_id = match t.project_id {
                Some(pid) => tx
                    .query_row("SELECT group_id FROM projects WHERE id = ?1", [pid], |r| r.get(0))
                    .optional()?
                    .flatten(),
                None => t.group_id,
            };
            let previous_project = if t.id == 0 {
                None
            } else {
                tx.query_row("SELECT project_id FROM tasks WHERE id = ?1", [t.id], |r| {
                    r.get::<_, Option<i64>>(0)
                })
                .optional()?
            };
            // One list of values for both statements: the update numbers its columns as
            // the insert does and takes the id last.
            let mut values = params![ws.0, t.project_id, t.parent_id, t.name, t.description, t.tags,
                t.owner_id, group_id, t.start_date, t.end_date, t.priority, t.progress, t.status,
                t.closed_at, t.hidden, t.flag, t.estimated_time, t.notify_project_team,
                t.notify_task_team, t.notify_client, now].to_vec();
            let id = if t.id == 0 {
                tx.execute(
                    "INSERT INTO tasks (workspace_id, project_id, parent_id, name, description, tags, \
                     owner_id, group_id, start_date, end_date, priority, progress, status, closed_at, \
                     hidden, flag, hours_done, estimated_time, notify_project_team, notify_task_team, \
                     notify_client, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                     ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 0, ?17, ?18, ?19, ?20, ?21, ?21)",
                    values.as_slice(),
                )?;
                tx.last_insert_rowid()
            } else {
                values.push(&t.id);
                values.push(&t.version);
                let changed = tx.execute(
                    "UPDATE tasks SET project_id = ?2, parent_id = ?3, name = ?4, description = ?5, \
                     tags = ?6, owner_id = ?7, group_id = ?8, start_date = ?9, end_date = ?10, \
                     priority = ?11, progress = ?12, status = ?13, closed_at = ?14, hidden = ?15, \
                     flag = ?16, estimated_time = ?17, notify_project_team = ?18, \
                     notify_task_team = ?19, notify_client = ?20, updated_at = ?21, \
                     version = version + 1 WHERE workspace_id = ?1 AND id = ?22 AND version = ?23",
                    values.as_slice(),
                )?;
                if changed == 0 {
                    return Err(StoreError::VersionChanged);
                }
                if previous_project.is_some_and(|p| p != t.project_id) {
                    // Moving a task moves its sub-tasks, and the activities and files of all.
                    tx.execute(
                        &format!("{DESCENDANTS} UPDATE tasks SET project_id = ?2, group_id = ?3, updated_at = ?4, version = version + 1 WHERE id IN (SELECT id FROM d)"),
                        params![t.id, t.project_id, group_id, now],
                    )?;
                    let moved = format!("{DESCENDANTS}, m(id) AS (SELECT ?1 UNION SELECT id FROM d)");
                    tx.execute(
                        &format!("{moved} UPDATE activities SET project_id = ?2, version = version + 1 WHERE task_id IN (SELECT id FROM m)"),
                        params![t.id, t.project_id],
                    )?;
                    tx.execute(
                        &format!("{moved} UPDATE files SET project_id = ?2 WHERE task_id IN (SELECT id FROM m)"),
                        params![t.id, t.project_id],
                    )?;
                }
                t.id
            };
            set_team(tx, "task_team", "task_id", id, &t.team)?;
            Ok(task_in(tx, ws, id)?.expect("the row just written"))
        })
        .await
    }

    async fn remove_task(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>> {
        self.write(move |tx| {
            let Some(current) = task_in(tx, ws, id)? else {
                return Ok(None);
            };
            check_version(expected, current.version)?;
            let keys = keys_where(
                tx,
                &format!("task_id IN ({DESCENDANTS}, m(id) AS (SELECT ?1 UNION SELECT id FROM d) SELECT id FROM m)"),
                id,
            )?;
            // Foreign keys cascade to sub-tasks, teams, activities and file rows.
            tx.execute("DELETE FROM tasks WHERE workspace_id = ?1 AND id = ?2", params![ws.0, id])?;
            Ok(Some(keys))
        })
        .await
    }

    async fn tasks(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        q: ListQuery,
    ) -> Result<(Page<Task>, Vec<Project>)> {
        self.read(move |conn| {
            let c = task_conditions(ws, &actor, &q.filters)?;
            let mut page = page(conn, "tasks t", TASK_COLUMNS, &c, &q, task_from_row)?;
            fill_teams(conn, &mut page.items)?;
            let projects = projects_in(conn, ws, &project_ids_of(&page.items))?;
            Ok((page, projects))
        })
        .await
    }

    async fn task_lineage(&self, ws: WorkspaceId, id: i64) -> Result<Vec<i64>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "WITH RECURSIVE a(id, depth) AS (SELECT id, 0 FROM tasks WHERE id = ?1 AND workspace_id = ?2 \
                 UNION SELECT t.parent_id, a.depth + 1 FROM tasks t JOIN a ON t.id = a.id \
                 WHERE t.parent_id IS NOT NULL) SELECT id FROM a ORDER BY depth",
            )?;
            let rows = stmt.query_map(params![id, ws.0], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
        })
        .await
    }

    async fn activity(&self, ws: WorkspaceId, id: i64) -> Result<Option<Activity>> {
        self.read(move |c| Ok(activity_in(c, ws, id)?)).await
    }

    async fn save_activity(
        &self,
        ws: WorkspaceId,
        a: Activity,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Activity> {
        self.write(move |tx| {
            queue_mail(tx, ws, &mail, now)?;
            let before = if a.id == 0 { None } else { activity_in(tx, ws, a.id)? };
            if a.id != 0 {
                // Another writer came first (or removed it): the caller reads it again.
                check_version(Some(a.version), before.as_ref().map_or(0, |b| b.version))?;
            }
            let id = if a.id == 0 {
                tx.execute(
                    "INSERT INTO activities (workspace_id, project_id, task_id, type, text, owner_id, \
                     progress, hours_done, hide_from_clients, date, notify_project_team, \
                     notify_task_team, notify_client, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
                    params![ws.0, a.project_id, a.task_id, a.kind.as_str(), a.text, a.owner_id,
                        a.progress, a.hours_done, a.hide_from_clients, a.date, a.notify_project_team,
                        a.notify_task_team, a.notify_client, now],
                )?;
                tx.last_insert_rowid()
            } else {
                tx.execute(
                    "UPDATE activities SET text = ?3, progress = ?4, hours_done = ?5, \
                     hide_from_clients = ?6, date = ?7, notify_project_team = ?8, \
                     notify_task_team = ?9, notify_client = ?10, updated_at = ?11, \
                     version = version + 1 WHERE workspace_id = ?1 AND id = ?2",
                    params![ws.0, a.id, a.text, a.progress, a.hours_done, a.hide_from_clients, a.date,
                        a.notify_project_team, a.notify_task_team, a.notify_client, now],
                )?;
                a.id
            };
            if let Some(task_id) = a.task_id {
                roll_up_task(tx, task_id, roll_up(before.as_ref(), Some(&a)), now)?;
            }
            Ok(activity_in(tx, ws, id)?.expect("the row just written"))
        })
        .await
    }

    async fn remove_activity(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>> {
        self.write(move |tx| {
            let Some(a) = activity_in(tx, ws, id)? else {
                return Ok(None);
            };
            check_version(expected, a.version)?;
            let keys = keys_where(tx, "activity_id = ?1", id)?;
            tx.execute("DELETE FROM activities WHERE id = ?1", [id])?;
            if let Some(task_id) = a.task_id {
                roll_up_task(tx, task_id, roll_up(Some(&a), None), crate::domain::now())?;
            }
            Ok(Some(keys))
        })
        .await
    }

    async fn activities(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        q: ListQuery,
    ) -> Result<Page<Activity>> {
        self.read(move |conn| {
            let c = activity_conditions(ws, &actor, &q.filters)?;
            page(
                conn,
                "activities a",
                ACTIVITY_COLUMNS,
                &c,
                &q,
                activity_from_row,
            )
        })
        .await
    }

    async fn add_files(
        &self,
        ws: WorkspaceId,
        files: Vec<FileMeta>,
        now: i64,
    ) -> Result<Vec<FileMeta>> {
        self.write(move |tx| {
            let mut saved = Vec::with_capacity(files.len());
            for f in files {
                tx.execute(
                    "INSERT INTO files (workspace_id, activity_id, task_id, project_id, name, size, \
                     mime_type, sha256, storage_key, owner_id, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![ws.0, f.activity_id, f.task_id, f.project_id, f.name, f.size, f.mime_type,
                        f.sha256, f.storage_key, f.owner_id, now],
                )?;
                saved.push(FileMeta {
                    id: tx.last_insert_rowid(),
                    created_at: now,
                    ..f
                });
            }
            Ok(saved)
        })
        .await
    }

    async fn file(&self, ws: WorkspaceId, id: i64) -> Result<Option<FileMeta>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM files f WHERE f.workspace_id = ?1 AND f.id = ?2"
                ),
                params![ws.0, id],
                file_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn files_of_activities(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<FileMeta>> {
        self.read(move |c| {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let marks = vec!["?"; ids.len()].join(",");
            let mut values = vec![ws.0];
            values.extend(&ids);
            let mut stmt = c.prepare(&format!(
                "SELECT {FILE_COLUMNS} FROM files f WHERE f.workspace_id = ? AND f.activity_id IN ({marks}) ORDER BY f.id"
            ))?;
            let rows = stmt.query_map(params_from_iter(values.iter()), file_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn remove_file(&self, ws: WorkspaceId, id: i64) -> Result<Option<String>> {
        self.write(move |tx| {
            let key: Option<String> = tx
                .query_row(
                    "SELECT storage_key FROM files WHERE workspace_id = ?1 AND id = ?2",
                    params![ws.0, id],
                    |r| r.get(0),
                )
                .optional()?;
            if key.is_some() {
                tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
            }
            Ok(key)
        })
        .await
    }

    async fn files(&self, ws: WorkspaceId, actor: Actor, q: ListQuery) -> Result<Page<FileMeta>> {
        self.read(move |conn| {
            let c = file_conditions(ws, &actor, &q.filters)?;
            page(conn, "files f", FILE_COLUMNS, &c, &q, file_from_row)
        })
        .await
    }

    async fn storage_keys(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT storage_key FROM files")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn missing_users(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<i64>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT 1 FROM users WHERE workspace_id = ?1 AND id = ?2 AND active = 1",
            )?;
            let mut missing = Vec::new();
            for id in ids {
                if !stmt.exists(params![ws.0, id])? {
                    missing.push(id);
                }
            }
            Ok(missing)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::SecurityLevel;

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
                let c =
                    task_conditions(WorkspaceId::DEFAULT, actor, std::slice::from_ref(f)).unwrap();
                let (count_sql, page_sql) = list_sql("tasks t", TASK_COLUMNS, &c);
                for (sql, base, extra) in [
                    (count_sql, c.count_values(), 0),
                    (page_sql, &c.values[..], 2),
                ] {
                    let mut values: Vec<Sql> = base.iter().map(bind).collect();
                    values.extend((0..extra).map(|_| Sql::Integer(25)));
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                    let plan: Vec<String> = stmt
                        .query_map(params_from_iter(values.iter()), |r| r.get::<_, String>(3))
                        .unwrap()
                        .collect::<rusqlite::Result<_>>()
                        .unwrap();
                    let outer = plan
                        .iter()
                        .find(|l| {
                            l.contains(" t ") || l.ends_with(" t") || l.contains(" task_counts ")
                        })
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
    }
}
