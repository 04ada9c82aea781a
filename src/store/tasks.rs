//! Tasks: their statements, written once for both backends, and how each read and write
//! of a task is carried out (its group, moving it with its sub-tasks, removing them).

use crate::domain::policy::{self, Actor};
use crate::domain::work::{moves_sub_tasks, task_group, Project, Task};
use crate::domain::WorkspaceId;
use crate::store::driver::{
    first_int, first_opt_int, first_text, page, written, Columns, Db, List, Stmt,
};
use crate::store::sql::{project_asked_first, task_conditions, ProjectFacts};
use crate::store::{
    check_version, outbox, project_ids_of, projects, Expected, Filter, ListQuery, OutgoingMail,
    Page, Result, StoreError,
};
use crate::{args, stmt};

// The parent's name only for a task that has a parent: most have none, and the
// subquery opens a cursor each time it runs.
const OWN_COLUMNS: &str = "t.id, t.project_id, t.parent_id, CASE WHEN t.parent_id IS NULL \
    THEN NULL ELSE (SELECT pa.name FROM tasks pa WHERE pa.id = t.parent_id) END, t.name, \
    t.description, t.tags, \
    t.owner_id, t.group_id, t.start_date, t.end_date, t.priority, t.progress, t.status, \
    t.closed_at, t.hidden, t.flag, t.hours_done, t.estimated_time, t.notify_project_team, \
    t.notify_task_team, t.notify_client, t.created_at, t.updated_at, t.version";
const TEAM: &str =
    "ARRAY(SELECT tm.user_id FROM task_team tm WHERE tm.task_id = t.id ORDER BY tm.user_id)";
pub static COLUMN_LIST: Stmt = stmt!("{OWN_COLUMNS}, {TEAM}");
// The team's subquery opens a cursor on `task_team` for every row: a tenth of an admin's
// list of 25 on SQLite, for a team the answer does not show unless asked (`loadTeam`).
// A NULL typed as the team's array, which PostgreSQL's reader takes as no team.
static COLUMN_LIST_NO_TEAM: Stmt = stmt!("{OWN_COLUMNS}, CAST(NULL AS BIGINT ARRAY)");

pub fn from_row(r: &dyn Columns) -> Result<Task> {
    Ok(Task {
        id: r.int(0)?,
        project_id: r.opt_int(1)?,
        parent_id: r.opt_int(2)?,
        parent_name: r.opt_text(3)?,
        name: r.text(4)?,
        description: r.opt_text(5)?,
        tags: r.opt_text(6)?,
        owner_id: r.int(7)?,
        group_id: r.opt_int(8)?,
        start_date: r.opt_int(9)?,
        end_date: r.opt_int(10)?,
        priority: r.int(11)?,
        progress: r.int(12)?,
        status: r.int(13)?,
        closed_at: r.opt_int(14)?,
        hidden: r.flag(15)?,
        flag: r.int(16)?,
        hours_done: r.real(17)?,
        estimated_time: r.opt_real(18)?,
        notify_project_team: r.flag(19)?,
        notify_task_team: r.flag(20)?,
        notify_client: r.flag(21)?,
        created_at: r.int(22)?,
        updated_at: r.int(23)?,
        version: r.int(24)?,
        team: r.ids(25)?,
    })
}

static BY_ID: Stmt =
    stmt!("SELECT {OWN_COLUMNS}, {TEAM} FROM tasks t WHERE t.workspace_id = ?1 AND t.id = ?2");
static GROUP_OF_PROJECT: Stmt = stmt!("SELECT group_id FROM projects WHERE id = ?1");
static PROJECT_OF_TASK: Stmt = stmt!("SELECT project_id FROM tasks WHERE id = ?1");
// One list of values for both: the update numbers its columns as the insert does and
// takes the id and version last.
static INSERT: Stmt = stmt!(
    "INSERT INTO tasks (workspace_id, project_id, parent_id, name, description, tags, \
     owner_id, group_id, start_date, end_date, priority, progress, status, closed_at, \
     hidden, flag, hours_done, estimated_time, notify_project_team, notify_task_team, \
     notify_client, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
     ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 0, ?17, ?18, ?19, ?20, ?21, ?21) RETURNING id"
);
static UPDATE: Stmt = stmt!(
    "UPDATE tasks SET project_id = ?2, parent_id = ?3, name = ?4, description = ?5, \
     tags = ?6, owner_id = ?7, group_id = ?8, start_date = ?9, end_date = ?10, \
     priority = ?11, progress = ?12, status = ?13, closed_at = ?14, hidden = ?15, \
     flag = ?16, estimated_time = ?17, notify_project_team = ?18, \
     notify_task_team = ?19, notify_client = ?20, updated_at = ?21, \
     version = version + 1 WHERE workspace_id = ?1 AND id = ?22 AND version = ?23"
);
/// The ids of task `?1`'s sub-tasks at every depth, as `d`, and with the task, as `m`.
const MOVED: &str = "WITH RECURSIVE d(id) AS (SELECT id FROM tasks WHERE parent_id = ?1 \
    UNION SELECT t.id FROM tasks t JOIN d ON t.parent_id = d.id), \
    m(id) AS (SELECT CAST(?1 AS BIGINT) UNION SELECT id FROM d)";
static MOVE_SUB_TASKS: Stmt = stmt!(
    "{MOVED} UPDATE tasks SET project_id = ?2, group_id = ?3, updated_at = ?4, \
     version = version + 1 WHERE id IN (SELECT id FROM d)"
);
static MOVE_ACTIVITIES: Stmt = stmt!(
    "{MOVED} UPDATE activities SET project_id = ?2, version = version + 1 \
     WHERE task_id IN (SELECT id FROM m)"
);
static MOVE_FILES: Stmt =
    stmt!("{MOVED} UPDATE files SET project_id = ?2 WHERE task_id IN (SELECT id FROM m)");
static KEYS: Stmt =
    stmt!("SELECT storage_key FROM files WHERE task_id IN ({MOVED} SELECT id FROM m)");
static DELETE: Stmt = stmt!("DELETE FROM tasks WHERE workspace_id = ?1 AND id = ?2");
static LINEAGE: Stmt = stmt!(
    "WITH RECURSIVE a(id, depth) AS (SELECT id, 0 FROM tasks WHERE id = ?1 \
     AND workspace_id = ?2 UNION SELECT t.parent_id, a.depth + 1 FROM tasks t \
     JOIN a ON t.id = a.id WHERE t.parent_id IS NOT NULL) SELECT id FROM a ORDER BY depth"
);
static TEAM_CLEAR: Stmt = stmt!("DELETE FROM task_team WHERE task_id = ?1");
static TEAM_ADD: Stmt = stmt!(
    "INSERT INTO task_team (task_id, user_id) SELECT ?1, value FROM IDS(?2) \
     WHERE true ON CONFLICT DO NOTHING"
);

pub async fn get<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<Task>> {
    db.row(&BY_ID, &args![ws.0, id], from_row).await
}

/// Both reads go out together (PostgreSQL pipelines them: one round trip).
pub async fn with_project<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
) -> Result<Option<(Task, Option<Project>)>> {
    let values = args![ws.0, id];
    let (task, project) = futures_util::try_join!(
        db.row(&BY_ID, &values, from_row),
        db.row(&projects::OF_TASK, &values, projects::from_row)
    )?;
    Ok(task.map(|t| (t, project)))
}

/// The task with what the rules ask of its project for `caller`, not the project itself:
/// a task read by a caller whose rules depend on the project. One round trip, as above.
pub async fn with_project_facts<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
    caller: i64,
) -> Result<Option<(Task, Option<policy::ProjectFacts>)>> {
    let (task_values, facts_values) = (args![ws.0, id], args![ws.0, id, caller]);
    let (task, facts) = futures_util::try_join!(
        db.row(&BY_ID, &task_values, from_row),
        db.row(
            &projects::FACTS_OF_TASK,
            &facts_values,
            projects::facts_from_row
        )
    )?;
    Ok(task.map(|t| (t, facts)))
}

pub async fn save<D: Db>(
    db: &D,
    ws: WorkspaceId,
    t: &Task,
    mail: &[OutgoingMail],
    now: i64,
) -> Result<Task> {
    outbox::queue(db, ws, mail, now).await?;
    let project_group = match t.project_id {
        Some(pid) => Some(
            db.row(&GROUP_OF_PROJECT, &args![pid], first_opt_int)
                .await?
                .flatten(),
        ),
        None => None,
    };
    let group_id = task_group(project_group, t.group_id);
    let previous_project = match t.id {
        0 => None,
        id => db.row(&PROJECT_OF_TASK, &args![id], first_opt_int).await?,
    };
    #[rustfmt::skip]
    let values = args![
        ws.0, t.project_id, t.parent_id, &t.name, &t.description, &t.tags, t.owner_id,
        group_id, t.start_date, t.end_date, t.priority, t.progress, t.status, t.closed_at,
        t.hidden, t.flag, t.estimated_time, t.notify_project_team, t.notify_task_team,
        t.notify_client, now, t.id, t.version
    ];
    let id = if t.id == 0 {
        db.one(&INSERT, &values[..21], first_int).await?
    } else {
        if db.run(&UPDATE, &values).await? == 0 {
            return Err(StoreError::VersionChanged);
        }
        if moves_sub_tasks(previous_project, t.project_id) {
            db.run(&MOVE_SUB_TASKS, &args![t.id, t.project_id, group_id, now])
                .await?;
            db.run(&MOVE_ACTIVITIES, &args![t.id, t.project_id]).await?;
            db.run(&MOVE_FILES, &args![t.id, t.project_id]).await?;
        }
        t.id
    };
    projects::set_team(db, (&TEAM_CLEAR, &TEAM_ADD), id, &t.team).await?;
    written(get(db, ws, id).await?)
}

pub async fn remove<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
    expected: Expected,
) -> Result<Option<Vec<String>>> {
    db.lock_row("tasks", id).await?;
    let Some(current) = get(db, ws, id).await? else {
        return Ok(None);
    };
    check_version(expected, current.version)?;
    let keys = db.rows(&KEYS, &args![id], first_text).await?;
    // Foreign keys cascade to sub-tasks, teams, activities and file rows.
    db.run(&DELETE, &args![ws.0, id]).await?;
    Ok(Some(keys))
}

/// A page of tasks with what the caller's rules ask of the projects they are in, when
/// they need it to decide `can_edit` (none for an admin). Each task's team is read when
/// `with_team` or when the caller's rules need it; otherwise it is left empty.
/// Whether a task list reads more than its page (its project's facts first, or the
/// page's projects after), reads that must then see one snapshot.
pub fn list_reads_several(actor: &Actor, q: &ListQuery) -> bool {
    project_asked_first(actor, &q.filters).is_some() || policy::task_needs_project(actor)
}

pub async fn list<D: Db>(
    db: &D,
    ws: WorkspaceId,
    actor: &Actor,
    q: &ListQuery,
    with_team: bool,
) -> Result<(Page<Task>, Vec<(i64, policy::ProjectFacts)>)> {
    // A list of one project whose facts the rules need reads them first: they settle
    // the statements, and they are all the page's tasks ask of their project.
    let first = match project_asked_first(actor, &q.filters).map(|i| &q.filters[i]) {
        Some(&Filter::ProjectId(project)) => {
            Some(projects::facts_by_ids(db, ws, &[project], actor.user_id).await?)
        }
        _ => None,
    };
    let facts = first.as_ref().map(|found| {
        let project = found.first().map(|(_, f)| f);
        ProjectFacts {
            visible: project.is_some_and(|f| policy::can_see_project(actor, f)),
            in_team: project.is_some_and(|f| f.in_team),
        }
    });
    let columns = if with_team || policy::task_needs_team(actor) {
        &COLUMN_LIST
    } else {
        &COLUMN_LIST_NO_TEAM
    };
    let list = List {
        table_alias: "tasks t",
        columns,
        actor,
        facts,
    };
    let conditions = || task_conditions(actor, &q.filters, facts, D::DIALECT);
    let page = page(db, ws, list, conditions, q, from_row).await?;
    let projects = match first {
        _ if !policy::task_needs_project(actor) || page.items.is_empty() => Vec::new(),
        Some(found) => found,
        None => {
            let ids = project_ids_of(&page.items);
            projects::facts_by_ids(db, ws, &ids, actor.user_id).await?
        }
    };
    Ok((page, projects))
}

pub async fn lineage<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Vec<i64>> {
    db.rows(&LINEAGE, &args![id, ws.0], first_int).await
}
