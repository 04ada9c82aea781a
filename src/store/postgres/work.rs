//! Projects, tasks, activities and files on PostgreSQL.
//!
//! Visibility (section 8) is part of every list query, from the same shared conditions as
//! the SQLite backend, so pages and totals count only what the caller may see. Teams are
//! read with their project or task, as an array column.

use std::collections::HashSet;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object};
use futures_util::TryStreamExt;
use tokio_postgres::{types::ToSql, IsolationLevel, Row};

use super::{
    absent, bind, execute, flag, int, numbered, query, query_one, query_opt, queue_mail, PgError,
    Postgres,
};
use crate::domain::policy::Actor;
use crate::domain::work::{
    apply_progress, closed_at, roll_up, Activity, ActivityType, FileMeta, HoursChange, Project,
    Task, HOURS_DECIMALS,
};
use crate::domain::WorkspaceId;
use crate::store::sql::{
    activity_conditions, file_conditions, keyset_sql, list_sql, project_conditions,
    task_conditions, Conditions,
};
use crate::store::{
    check_version, page_full_with, project_ids_of, Census, Expected, Filter, ListQuery,
    OutgoingMail, Page, Result, StoreError, WorkStore,
};

/// LIMIT and OFFSET as PostgreSQL takes them: no limit is NULL (SQLite's -1), and
/// neither may be negative.
fn limits(q: &ListQuery) -> (Option<i64>, i64) {
    (q.count.filter(|c| *c >= 0), q.offset.max(0))
}

/// Runs a count and a page of one list in one snapshot.
async fn page<T>(
    conn: &mut Object,
    table_alias: &str,
    columns: &str,
    c: &Conditions,
    q: &ListQuery,
    map: impl Fn(&Row) -> std::result::Result<T, PgError>,
) -> Result<Page<T>> {
    let (count_sql, page_sql) = list_sql(table_alias, columns, c);
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let total: i64 = tx
        .query_one(&numbered(&count_sql), &bind(c.count_values()))
        .await?
        .try_get(0)?;
    let mut values = bind(&c.values);
    let (limit, offset) = limits(q);
    values.push(&limit);
    values.push(&offset);
    let rows = tx.query(&numbered(&page_sql), &values).await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(map)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Page { items, total })
}

// ---- rows ------------------------------------------------------------------------------

const PROJECT_COLUMNS: &str = "p.id, p.name, p.description, p.tags, p.owner_id, p.group_id, \
    p.start_date, p.end_date, p.priority, p.status, p.closed_at, p.hidden, p.flag, \
    p.notify_project_team, p.notify_client, p.created_at, p.updated_at, p.version, \
    ARRAY(SELECT tm.user_id FROM project_team tm WHERE tm.project_id = p.id ORDER BY tm.user_id)";

fn project_from_row(r: &Row) -> std::result::Result<Project, PgError> {
    Ok(Project {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        description: r.try_get(2)?,
        tags: r.try_get(3)?,
        owner_id: r.try_get(4)?,
        group_id: r.try_get(5)?,
        start_date: r.try_get(6)?,
        end_date: r.try_get(7)?,
        priority: r.try_get(8)?,
        status: r.try_get(9)?,
        closed_at: r.try_get(10)?,
        hidden: flag(r, 11)?,
        flag: r.try_get(12)?,
        notify_project_team: flag(r, 13)?,
        notify_client: flag(r, 14)?,
        created_at: r.try_get(15)?,
        updated_at: r.try_get(16)?,
        version: r.try_get(17)?,
        team: r.try_get(18)?,
    })
}

const TASK_COLUMNS: &str = "t.id, t.project_id, t.parent_id, \
    (SELECT pa.name FROM tasks pa WHERE pa.id = t.parent_id), t.name, t.description, t.tags, \
    t.owner_id, t.group_id, t.start_date, t.end_date, t.priority, t.progress, t.status, \
    t.closed_at, t.hidden, t.flag, t.hours_done, t.estimated_time, t.notify_project_team, \
    t.notify_task_team, t.notify_client, t.created_at, t.updated_at, t.version, \
    ARRAY(SELECT tm.user_id FROM task_team tm WHERE tm.task_id = t.id ORDER BY tm.user_id)";

fn task_from_row(r: &Row) -> std::result::Result<Task, PgError> {
    Ok(Task {
        id: r.try_get(0)?,
        project_id: r.try_get(1)?,
        parent_id: r.try_get(2)?,
        parent_name: r.try_get(3)?,
        name: r.try_get(4)?,
        description: r.try_get(5)?,
        tags: r.try_get(6)?,
        owner_id: r.try_get(7)?,
        group_id: r.try_get(8)?,
        start_date: r.try_get(9)?,
        end_date: r.try_get(10)?,
        priority: r.try_get(11)?,
        progress: r.try_get(12)?,
        status: r.try_get(13)?,
        closed_at: r.try_get(14)?,
        hidden: flag(r, 15)?,
        flag: r.try_get(16)?,
        hours_done: r.try_get(17)?,
        estimated_time: r.try_get(18)?,
        notify_project_team: flag(r, 19)?,
        notify_task_team: flag(r, 20)?,
        notify_client: flag(r, 21)?,
        created_at: r.try_get(22)?,
        updated_at: r.try_get(23)?,
        version: r.try_get(24)?,
        team: r.try_get(25)?,
    })
}

const ACTIVITY_COLUMNS: &str = "a.id, a.project_id, a.task_id, a.type, a.text, a.owner_id, \
    a.progress, a.hours_done, a.hide_from_clients, a.date, a.notify_project_team, \
    a.notify_task_team, a.notify_client, a.created_at, a.updated_at, a.version";

fn activity_from_row(r: &Row) -> std::result::Result<Activity, PgError> {
    let kind: String = r.try_get(3)?;
    Ok(Activity {
        id: r.try_get(0)?,
        project_id: r.try_get(1)?,
        task_id: r.try_get(2)?,
        kind: ActivityType::parse(&kind).unwrap_or(ActivityType::Msg),
        text: r.try_get(4)?,
        owner_id: r.try_get(5)?,
        progress: r.try_get(6)?,
        hours_done: r.try_get(7)?,
        hide_from_clients: flag(r, 8)?,
        date: r.try_get(9)?,
        notify_project_team: flag(r, 10)?,
        notify_task_team: flag(r, 11)?,
        notify_client: flag(r, 12)?,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
        version: r.try_get(15)?,
    })
}

const FILE_COLUMNS: &str = "f.id, f.activity_id, f.task_id, f.project_id, f.name, f.size, \
    f.mime_type, f.sha256, f.storage_key, f.owner_id, f.created_at, \
    (SELECT m.type = 'msg' FROM activities m WHERE m.id = f.activity_id)";

fn file_from_row(r: &Row) -> std::result::Result<FileMeta, PgError> {
    Ok(FileMeta {
        id: r.try_get(0)?,
        activity_id: r.try_get(1)?,
        task_id: r.try_get(2)?,
        project_id: r.try_get(3)?,
        name: r.try_get(4)?,
        size: r.try_get(5)?,
        mime_type: r.try_get(6)?,
        sha256: r.try_get(7)?,
        storage_key: r.try_get(8)?,
        owner_id: r.try_get(9)?,
        created_at: r.try_get(10)?,
        on_message: r.try_get::<_, Option<bool>>(11)?.unwrap_or(false),
    })
}

fn all<T>(rows: &[Row], map: impl Fn(&Row) -> std::result::Result<T, PgError>) -> Result<Vec<T>> {
    Ok(rows
        .iter()
        .map(map)
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

async fn project_in(c: &impl GenericClient, ws: WorkspaceId, id: i64) -> Result<Option<Project>> {
    let row = query_opt(
        c,
        &format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.workspace_id = $1 AND p.id = $2"
        ),
        &[&ws.0, &id],
    )
    .await?;
    Ok(row.as_ref().map(project_from_row).transpose()?)
}

async fn projects_in(c: &impl GenericClient, ws: WorkspaceId, ids: &[i64]) -> Result<Vec<Project>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = query(
        c,
        &format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.workspace_id = $1 \
             AND p.id = ANY($2) ORDER BY p.id"
        ),
        &[&ws.0, &ids],
    )
    .await?;
    all(&rows, project_from_row)
}

async fn task_in(c: &impl GenericClient, ws: WorkspaceId, id: i64) -> Result<Option<Task>> {
    let row = query_opt(
        c,
        &format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.workspace_id = $1 AND t.id = $2"),
        &[&ws.0, &id],
    )
    .await?;
    Ok(row.as_ref().map(task_from_row).transpose()?)
}

async fn activity_in(c: &impl GenericClient, ws: WorkspaceId, id: i64) -> Result<Option<Activity>> {
    let row = query_opt(
        c,
        &format!(
            "SELECT {ACTIVITY_COLUMNS} FROM activities a WHERE a.workspace_id = $1 AND a.id = $2"
        ),
        &[&ws.0, &id],
    )
    .await?;
    Ok(row.as_ref().map(activity_from_row).transpose()?)
}

/// Locks one row of `table` until the transaction ends, so that what is read next stays
/// as read until the write (read committed reads the newest committed row after the lock).
async fn lock_row(tx: &impl GenericClient, table: &'static str, id: i64) -> Result<()> {
    execute(
        tx,
        &format!("SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE"),
        &[&id],
    )
    .await?;
    Ok(())
}

/// The row a write just made or changed; its absence is a bug, reported as one.
fn written<T>(found: Option<T>) -> Result<T> {
    found.ok_or_else(|| StoreError::Internal(anyhow::anyhow!("the row just written is missing")))
}

async fn set_team(
    tx: &impl GenericClient,
    table: &str,
    key: &str,
    id: i64,
    team: &[i64],
) -> Result<()> {
    execute(tx, &format!("DELETE FROM {table} WHERE {key} = $1"), &[&id]).await?;
    if !team.is_empty() {
        execute(
            tx,
            &format!(
                "INSERT INTO {table} ({key}, user_id) SELECT $1, u FROM UNNEST($2::BIGINT[]) u \
                 ON CONFLICT DO NOTHING"
            ),
            &[&id, &team],
        )
        .await?;
    }
    Ok(())
}

/// Storage keys of the files that a cascade is about to remove.
async fn keys_where(tx: &impl GenericClient, condition: &str, id: i64) -> Result<Vec<String>> {
    let rows = query(
        tx,
        &format!("SELECT storage_key FROM files WHERE {condition}"),
        &[&id],
    )
    .await?;
    all(&rows, |r| r.try_get(0))
}

/// The ids of a task's sub-tasks, at every depth.
const DESCENDANTS: &str = "WITH RECURSIVE d(id) AS (SELECT id FROM tasks WHERE parent_id = $1 \
    UNION SELECT t.id FROM tasks t JOIN d ON t.parent_id = d.id)";

/// The task `$1` and its sub-tasks at every depth, as `m`.
fn moved() -> String {
    format!("{DESCENDANTS}, m(id) AS (SELECT $1::BIGINT UNION SELECT id FROM d)")
}

/// Brings a task's hoursDone and progress up to date after one of its activities was
/// written (section 9, `roll_up` says what changed): hours are the sum; the newest
/// progress note sets progress and, through it, status.
async fn roll_up_task(
    tx: &impl GenericClient,
    task_id: i64,
    (hours, progress_note): (HoursChange, bool),
    now: i64,
) -> Result<()> {
    match hours {
        HoursChange::Unchanged => {}
        HoursChange::Add(h) => {
            execute(
                tx,
                "UPDATE tasks SET hours_done = round((hours_done + $2)::numeric, $3)::float8, \
                 version = version + 1 WHERE id = $1",
                &[&task_id, &h, &HOURS_DECIMALS],
            )
            .await?;
        }
        HoursChange::Resum => {
            execute(
                tx,
                "UPDATE tasks SET hours_done = round((SELECT COALESCE(SUM(hours_done), 0) \
                 FROM activities WHERE task_id = $1)::numeric, $2)::float8, \
                 version = version + 1 WHERE id = $1",
                &[&task_id, &HOURS_DECIMALS],
            )
            .await?;
        }
    }
    if !progress_note {
        return Ok(());
    }
    // Served by the partial index activities_progress_notes.
    let newest: Option<i64> = match query_opt(
        tx,
        "SELECT progress FROM activities WHERE task_id = $1 AND type = 'progress' \
         ORDER BY date DESC, id DESC LIMIT 1",
        &[&task_id],
    )
    .await?
    {
        Some(r) => r.try_get(0)?,
        None => None,
    };
    if let Some(progress) = newest {
        let row = query_one(
            tx,
            "SELECT status, closed_at FROM tasks WHERE id = $1",
            &[&task_id],
        )
        .await?;
        let status: i64 = row.try_get(0)?;
        let closed: Option<i64> = row.try_get(1)?;
        let next = apply_progress(status, progress);
        execute(
            tx,
            "UPDATE tasks SET progress = $2, status = $3, closed_at = $4, version = version + 1 \
             WHERE id = $1",
            &[
                &task_id,
                &progress,
                &next,
                &closed_at(status, closed, next, now),
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl WorkStore for Postgres {
    async fn project(&self, ws: WorkspaceId, id: i64) -> Result<Option<Project>> {
        let c = self.conn().await?;
        project_in(&c, ws, id).await
    }

    async fn projects_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<Project>> {
        let c = self.conn().await?;
        projects_in(&c, ws, &ids).await
    }

    async fn save_project(
        &self,
        ws: WorkspaceId,
        p: Project,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Project> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        queue_mail(&tx, ws, &mail, now).await?;
        // One list of values for both statements: the update numbers its columns as the
        // insert does and takes the id last.
        let (hidden, notify_project_team, notify_client) = (
            int(p.hidden),
            int(p.notify_project_team),
            int(p.notify_client),
        );
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![
            &ws.0,
            &p.name,
            &p.description,
            &p.tags,
            &p.owner_id,
            &p.group_id,
            &p.start_date,
            &p.end_date,
            &p.priority,
            &p.status,
            &p.closed_at,
            &hidden,
            &p.flag,
            &notify_project_team,
            &notify_client,
            &now,
        ];
        let id = if p.id == 0 {
            query_one(
                &tx,
                "INSERT INTO projects (workspace_id, name, description, tags, owner_id, group_id, \
                 start_date, end_date, priority, status, closed_at, hidden, flag, \
                 notify_project_team, notify_client, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
                 RETURNING id",
                &values,
            )
            .await?
            .try_get(0)?
        } else {
            values.push(&p.id);
            values.push(&p.version);
            let changed = execute(
                &tx,
                "UPDATE projects SET name = $2, description = $3, tags = $4, owner_id = $5, \
                 group_id = $6, start_date = $7, end_date = $8, priority = $9, status = $10, \
                 closed_at = $11, hidden = $12, flag = $13, notify_project_team = $14, \
                 notify_client = $15, updated_at = $16, version = version + 1 \
                 WHERE workspace_id = $1 AND id = $17 AND version = $18",
                &values,
            )
            .await?;
            if changed == 0 {
                return Err(StoreError::VersionChanged);
            }
            // A task in a project takes the project's group.
            execute(
                &tx,
                "UPDATE tasks SET group_id = $2, updated_at = $3, version = version + 1 \
                 WHERE project_id = $1 AND group_id IS DISTINCT FROM $2",
                &[&p.id, &p.group_id, &now],
            )
            .await?;
            p.id
        };
        set_team(&tx, "project_team", "project_id", id, &p.team).await?;
        let saved = written(project_in(&tx, ws, id).await?)?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn remove_project(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        lock_row(&tx, "projects", id).await?;
        let Some(current) = project_in(&tx, ws, id).await? else {
            return Ok(None);
        };
        check_version(expected, current.version)?;
        let keys = keys_where(
            &tx,
            "activity_id IN (SELECT id FROM activities WHERE project_id = $1)",
            id,
        )
        .await?;
        // Foreign keys cascade: tasks, their teams, activities and file rows.
        execute(
            &tx,
            "DELETE FROM projects WHERE workspace_id = $1 AND id = $2",
            &[&ws.0, &id],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(keys))
    }

    async fn projects(&self, ws: WorkspaceId, actor: Actor, q: ListQuery) -> Result<Page<Project>> {
        let c = project_conditions(ws, &actor, &q.filters)?;
        let mut conn = self.conn().await?;
        page(
            &mut conn,
            "projects p",
            PROJECT_COLUMNS,
            &c,
            &q,
            project_from_row,
        )
        .await
    }

    async fn project_census(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        filters: Vec<Filter>,
    ) -> Result<Census> {
        let c = project_conditions(ws, &actor, &filters)?;
        let (census_sql, _) = keyset_sql("projects p", PROJECT_COLUMNS, &c);
        let conn = self.conn().await?;
        let row = query_one(&conn, &numbered(&census_sql), &bind(&c.values)).await?;
        Ok(Census {
            total: row.try_get(0)?,
            last_id: row.try_get(1)?,
        })
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
        let c = project_conditions(ws, &actor, &filters)?;
        let (_, page_sql) = keyset_sql("projects p", PROJECT_COLUMNS, &c);
        let mut values = bind(&c.values);
        values.push(&after);
        values.push(&last_id);
        values.push(&limit);
        let conn = self.conn().await?;
        // One statement: its snapshot ends with it.
        let stmt = conn.prepare_cached(&numbered(&page_sql)).await?;
        let rows = conn.query_raw(&stmt, values).await?;
        let mut rows = std::pin::pin!(rows);
        let (mut items, mut bytes) = (Vec::new(), 0);
        while let Some(row) = rows.try_next().await? {
            let p = project_from_row(&row)?;
            let full = page_full_with(&p, &mut bytes);
            items.push(p);
            if full {
                break;
            }
        }
        Ok(items)
    }

    async fn task(&self, ws: WorkspaceId, id: i64) -> Result<Option<Task>> {
        let c = self.conn().await?;
        task_in(&c, ws, id).await
    }

    /// Both reads are sent together on one connection (tokio-postgres pipelines them):
    /// one round trip instead of two, and one connection taken from the pool.
    async fn task_with_project(
        &self,
        ws: WorkspaceId,
        id: i64,
    ) -> Result<Option<(Task, Option<Project>)>> {
        let c = self.conn().await?;
        let project_sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.workspace_id = $1 \
             AND p.id = (SELECT t.project_id FROM tasks t WHERE t.workspace_id = $1 AND t.id = $2)"
        );
        let params: [&(dyn ToSql + Sync); 2] = [&ws.0, &id];
        let (task, project) =
            futures_util::try_join!(task_in(&c, ws, id), query_opt(&c, &project_sql, &params),)?;
        let project = project.as_ref().map(project_from_row).transpose()?;
        Ok(task.map(|t| (t, project)))
    }

    async fn save_task(
        &self,
        ws: WorkspaceId,
        t: Task,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Task> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        queue_mail(&tx, ws, &mail, now).await?;
        // A task in a project takes the project's group; a single task keeps its own.
        let group_id: Option<i64> = match t.project_id {
            Some(pid) => {
                match query_opt(&tx, "SELECT group_id FROM projects WHERE id = $1", &[&pid]).await?
                {
                    Some(r) => r.try_get(0)?,
                    None => None,
                }
            }
            None => t.group_id,
        };
        let previous_project: Option<Option<i64>> = if t.id == 0 {
            None
        } else {
            match query_opt(&tx, "SELECT project_id FROM tasks WHERE id = $1", &[&t.id]).await? {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            }
        };
        // One list of values for both statements: the update numbers its columns as the
        // insert does and takes the id last.
        let (hidden, notify_project_team, notify_task_team, notify_client) = (
            int(t.hidden),
            int(t.notify_project_team),
            int(t.notify_task_team),
            int(t.notify_client),
        );
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![
            &ws.0,
            &t.project_id,
            &t.parent_id,
            &t.name,
            &t.description,
            &t.tags,
            &t.owner_id,
            &group_id,
            &t.start_date,
            &t.end_date,
            &t.priority,
            &t.progress,
            &t.status,
            &t.closed_at,
            &hidden,
            &t.flag,
            &t.estimated_time,
            &notify_project_team,
            &notify_task_team,
            &notify_client,
            &now,
        ];
        let id = if t.id == 0 {
            query_one(
                &tx,
                "INSERT INTO tasks (workspace_id, project_id, parent_id, name, description, tags, \
                 owner_id, group_id, start_date, end_date, priority, progress, status, closed_at, \
                 hidden, flag, hours_done, estimated_time, notify_project_team, notify_task_team, \
                 notify_client, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                 $9, $10, $11, $12, $13, $14, $15, $16, 0, $17, $18, $19, $20, $21, $21) \
                 RETURNING id",
                &values,
            )
            .await?
            .try_get(0)?
        } else {
            values.push(&t.id);
            values.push(&t.version);
            let changed = execute(
                &tx,
                "UPDATE tasks SET project_id = $2, parent_id = $3, name = $4, description = $5, \
                 tags = $6, owner_id = $7, group_id = $8, start_date = $9, end_date = $10, \
                 priority = $11, progress = $12, status = $13, closed_at = $14, hidden = $15, \
                 flag = $16, estimated_time = $17, notify_project_team = $18, \
                 notify_task_team = $19, notify_client = $20, updated_at = $21, \
                 version = version + 1 WHERE workspace_id = $1 AND id = $22 AND version = $23",
                &values,
            )
            .await?;
            if changed == 0 {
                return Err(StoreError::VersionChanged);
            }
            if previous_project.is_some_and(|p| p != t.project_id) {
                // Moving a task moves its sub-tasks, and the activities and files of all.
                execute(
                    &tx,
                    &format!(
                        "{DESCENDANTS} UPDATE tasks SET project_id = $2, group_id = $3, \
                         updated_at = $4, version = version + 1 WHERE id IN (SELECT id FROM d)"
                    ),
                    &[&t.id, &t.project_id, &group_id, &now],
                )
                .await?;
                let moved = moved();
                execute(
                    &tx,
                    &format!(
                        "{moved} UPDATE activities SET project_id = $2, version = version + 1 \
                         WHERE task_id IN (SELECT id FROM m)"
                    ),
                    &[&t.id, &t.project_id],
                )
                .await?;
                execute(
                    &tx,
                    &format!(
                        "{moved} UPDATE files SET project_id = $2 WHERE task_id IN (SELECT id FROM m)"
                    ),
                    &[&t.id, &t.project_id],
                )
                .await?;
            }
            t.id
        };
        set_team(&tx, "task_team", "task_id", id, &t.team).await?;
        let saved = written(task_in(&tx, ws, id).await?)?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn remove_task(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        lock_row(&tx, "tasks", id).await?;
        let Some(current) = task_in(&tx, ws, id).await? else {
            return Ok(None);
        };
        check_version(expected, current.version)?;
        let keys = keys_where(
            &tx,
            &format!("task_id IN ({} SELECT id FROM m)", moved()),
            id,
        )
        .await?;
        // Foreign keys cascade to sub-tasks, teams, activities and file rows.
        execute(
            &tx,
            "DELETE FROM tasks WHERE workspace_id = $1 AND id = $2",
            &[&ws.0, &id],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(keys))
    }

    async fn tasks(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        q: ListQuery,
    ) -> Result<(Page<Task>, Vec<Project>)> {
        let c = task_conditions(ws, &actor, &q.filters)?;
        let mut conn = self.conn().await?;
        let page = page(&mut conn, "tasks t", TASK_COLUMNS, &c, &q, task_from_row).await?;
        let projects = projects_in(&conn, ws, &project_ids_of(&page.items)).await?;
        Ok((page, projects))
    }

    async fn task_lineage(&self, ws: WorkspaceId, id: i64) -> Result<Vec<i64>> {
        let c = self.conn().await?;
        let rows = query(
            &c,
            "WITH RECURSIVE a(id, depth) AS (SELECT id, 0 FROM tasks WHERE id = $1 \
             AND workspace_id = $2 UNION SELECT t.parent_id, a.depth + 1 FROM tasks t \
             JOIN a ON t.id = a.id WHERE t.parent_id IS NOT NULL) SELECT id FROM a ORDER BY depth",
            &[&id, &ws.0],
        )
        .await?;
        all(&rows, |r| r.try_get(0))
    }

    async fn activity(&self, ws: WorkspaceId, id: i64) -> Result<Option<Activity>> {
        let c = self.conn().await?;
        activity_in(&c, ws, id).await
    }

    async fn save_activity(
        &self,
        ws: WorkspaceId,
        a: Activity,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Activity> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        queue_mail(&tx, ws, &mail, now).await?;
        let before = if a.id == 0 {
            None
        } else {
            // Locked first: the roll-up reads what this write replaces.
            lock_row(&tx, "activities", a.id).await?;
            let before = activity_in(&tx, ws, a.id).await?;
            // Another writer came first (or removed it): the caller reads it again.
            check_version(Some(a.version), before.as_ref().map_or(0, |b| b.version))?;
            before
        };
        let id = if a.id == 0 {
            query_one(
                &tx,
                "INSERT INTO activities (workspace_id, project_id, task_id, type, text, owner_id, \
                 progress, hours_done, hide_from_clients, date, notify_project_team, \
                 notify_task_team, notify_client, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
                 RETURNING id",
                &[
                    &ws.0,
                    &a.project_id,
                    &a.task_id,
                    &a.kind.as_str(),
                    &a.text,
                    &a.owner_id,
                    &a.progress,
                    &a.hours_done,
                    &int(a.hide_from_clients),
                    &a.date,
                    &int(a.notify_project_team),
                    &int(a.notify_task_team),
                    &int(a.notify_client),
                    &now,
                ],
            )
            .await?
            .try_get(0)?
        } else {
            execute(
                &tx,
                "UPDATE activities SET text = $3, progress = $4, hours_done = $5, \
                 hide_from_clients = $6, date = $7, notify_project_team = $8, \
                 notify_task_team = $9, notify_client = $10, updated_at = $11, \
                 version = version + 1 WHERE workspace_id = $1 AND id = $2",
                &[
                    &ws.0,
                    &a.id,
                    &a.text,
                    &a.progress,
                    &a.hours_done,
                    &int(a.hide_from_clients),
                    &a.date,
                    &int(a.notify_project_team),
                    &int(a.notify_task_team),
                    &int(a.notify_client),
                    &now,
                ],
            )
            .await?;
            a.id
        };
        if let Some(task_id) = a.task_id {
            roll_up_task(&tx, task_id, roll_up(before.as_ref(), Some(&a)), now).await?;
        }
        let saved = written(activity_in(&tx, ws, id).await?)?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn remove_activity(
        &self,
        ws: WorkspaceId,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        lock_row(&tx, "activities", id).await?;
        let Some(a) = activity_in(&tx, ws, id).await? else {
            return Ok(None);
        };
        check_version(expected, a.version)?;
        let keys = keys_where(&tx, "activity_id = $1", id).await?;
        execute(&tx, "DELETE FROM activities WHERE id = $1", &[&id]).await?;
        if let Some(task_id) = a.task_id {
            roll_up_task(&tx, task_id, roll_up(Some(&a), None), crate::domain::now()).await?;
        }
        tx.commit().await?;
        Ok(Some(keys))
    }

    async fn activities(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        q: ListQuery,
    ) -> Result<Page<Activity>> {
        let c = activity_conditions(ws, &actor, &q.filters)?;
        let mut conn = self.conn().await?;
        page(
            &mut conn,
            "activities a",
            ACTIVITY_COLUMNS,
            &c,
            &q,
            activity_from_row,
        )
        .await
    }

    async fn add_files(
        &self,
        ws: WorkspaceId,
        files: Vec<FileMeta>,
        now: i64,
    ) -> Result<Vec<FileMeta>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let mut saved = Vec::with_capacity(files.len());
        for f in files {
            let id: i64 = query_one(
                &tx,
                "INSERT INTO files (workspace_id, activity_id, task_id, project_id, name, size, \
                 mime_type, sha256, storage_key, owner_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                &[
                    &ws.0,
                    &f.activity_id,
                    &f.task_id,
                    &f.project_id,
                    &f.name,
                    &f.size,
                    &f.mime_type,
                    &f.sha256,
                    &f.storage_key,
                    &f.owner_id,
                    &now,
                ],
            )
            .await?
            .try_get(0)?;
            saved.push(FileMeta {
                id,
                created_at: now,
                ..f
            });
        }
        tx.commit().await?;
        Ok(saved)
    }

    async fn file(&self, ws: WorkspaceId, id: i64) -> Result<Option<FileMeta>> {
        let c = self.conn().await?;
        let row = query_opt(
            &c,
            &format!("SELECT {FILE_COLUMNS} FROM files f WHERE f.workspace_id = $1 AND f.id = $2"),
            &[&ws.0, &id],
        )
        .await?;
        Ok(row.as_ref().map(file_from_row).transpose()?)
    }

    async fn files_of_activities(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<FileMeta>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.conn().await?;
        let rows = query(
            &c,
            &format!(
                "SELECT {FILE_COLUMNS} FROM files f WHERE f.workspace_id = $1 \
                 AND f.activity_id = ANY($2) ORDER BY f.id"
            ),
            &[&ws.0, &ids],
        )
        .await?;
        all(&rows, file_from_row)
    }

    async fn remove_file(&self, ws: WorkspaceId, id: i64) -> Result<Option<String>> {
        let c = self.conn().await?;
        let row = query_opt(
            &c,
            "DELETE FROM files WHERE workspace_id = $1 AND id = $2 RETURNING storage_key",
            &[&ws.0, &id],
        )
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    async fn files(&self, ws: WorkspaceId, actor: Actor, q: ListQuery) -> Result<Page<FileMeta>> {
        let c = file_conditions(ws, &actor, &q.filters)?;
        let mut conn = self.conn().await?;
        page(&mut conn, "files f", FILE_COLUMNS, &c, &q, file_from_row).await
    }

    async fn storage_keys(&self) -> Result<Vec<String>> {
        let c = self.conn().await?;
        let rows = query(&c, "SELECT storage_key FROM files", &[]).await?;
        all(&rows, |r| r.try_get(0))
    }

    async fn missing_users(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.conn().await?;
        let rows = query(
            &c,
            "SELECT id FROM users WHERE workspace_id = $1 AND id = ANY($2) AND active = 1",
            &[&ws.0, &ids],
        )
        .await?;
        let found: HashSet<i64> = all(&rows, |r| r.try_get(0))?.into_iter().collect();
        Ok(absent(&ids, &found))
    }
}
