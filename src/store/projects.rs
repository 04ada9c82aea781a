//! Projects: their statements, written once for both backends, and how each read and
//! write of a project is carried out.

use crate::domain::policy::{Actor, ProjectFacts};
use crate::domain::work::Project;
use crate::domain::WorkspaceId;
use crate::store::driver::{first_int, first_text, page, written, Arg, Columns, Db, List, Stmt};
use crate::store::sql::{keyset_sql, project_conditions, Bindings};
use crate::store::{
    check_version, outbox, page_full_with, Census, Expected, Filter, ListQuery, OutgoingMail, Page,
    Result, StoreError,
};
use crate::{args, stmt};

pub const COLUMNS: &str = "p.id, p.name, p.description, p.tags, p.owner_id, p.group_id, \
    p.start_date, p.end_date, p.priority, p.status, p.closed_at, p.hidden, p.flag, \
    p.notify_project_team, p.notify_client, p.created_at, p.updated_at, p.version, \
    ARRAY(SELECT tm.user_id FROM project_team tm WHERE tm.project_id = p.id ORDER BY tm.user_id)";
static COLUMN_LIST: Stmt = stmt!("{COLUMNS}");

pub fn from_row(r: &dyn Columns) -> Result<Project> {
    Ok(Project {
        id: r.int(0)?,
        name: r.text(1)?,
        description: r.opt_text(2)?,
        tags: r.opt_text(3)?,
        owner_id: r.int(4)?,
        group_id: r.opt_int(5)?,
        start_date: r.opt_int(6)?,
        end_date: r.opt_int(7)?,
        priority: r.int(8)?,
        status: r.int(9)?,
        closed_at: r.opt_int(10)?,
        hidden: r.flag(11)?,
        flag: r.int(12)?,
        notify_project_team: r.flag(13)?,
        notify_client: r.flag(14)?,
        created_at: r.int(15)?,
        updated_at: r.int(16)?,
        version: r.int(17)?,
        team: r.ids(18)?,
    })
}

static BY_ID: Stmt =
    stmt!("SELECT {COLUMNS} FROM projects p WHERE p.workspace_id = ?1 AND p.id = ?2");
static BY_IDS: Stmt = stmt!(
    "SELECT {COLUMNS} FROM projects p WHERE p.workspace_id = ?1 AND p.id = ANY(?2) ORDER BY p.id"
);
/// The project of task `?2`.
pub static OF_TASK: Stmt = stmt!(
    "SELECT {COLUMNS} FROM projects p WHERE p.workspace_id = ?1 \
     AND p.id = (SELECT t.project_id FROM tasks t WHERE t.workspace_id = ?1 AND t.id = ?2)"
);
/// What the rules ask of project `p` for caller `?3`: hidden, owner, in its team. Only
/// these, not the project's row and team: a read that decides but does not show.
const FACTS: &str = "p.hidden, p.owner_id = ?3, \
    EXISTS (SELECT 1 FROM project_team pt WHERE pt.project_id = p.id AND pt.user_id = ?3)";
/// The facts of task `?2`'s project.
pub static FACTS_OF_TASK: Stmt = stmt!(
    "SELECT {FACTS} FROM projects p WHERE p.workspace_id = ?1 \
     AND p.id = (SELECT t.project_id FROM tasks t WHERE t.workspace_id = ?1 AND t.id = ?2)"
);
// One project (a list of one project's tasks) by its key; several through an array,
// which SQLite reads as JSON into a table of its own for each statement.
static FACTS_BY_ID: Stmt =
    stmt!("SELECT {FACTS}, p.id FROM projects p WHERE p.workspace_id = ?1 AND p.id = ?2");
static FACTS_BY_IDS: Stmt = stmt!(
    "SELECT {FACTS}, p.id FROM projects p WHERE p.workspace_id = ?1 AND p.id = ANY(?2) \
     ORDER BY p.id"
);

/// A row of the facts statements.
pub fn facts_from_row(r: &dyn Columns) -> Result<ProjectFacts> {
    Ok(ProjectFacts {
        hidden: r.flag(0)?,
        is_owner: r.bool(1)?,
        in_team: r.bool(2)?,
    })
}

fn id_and_facts_from_row(r: &dyn Columns) -> Result<(i64, ProjectFacts)> {
    Ok((r.int(3)?, facts_from_row(r)?))
}

/// What the rules ask of each of projects `ids` for `caller`, in ascending order of id;
/// a project that does not exist in the workspace is left out.
pub async fn facts_by_ids<D: Db>(
    db: &D,
    ws: WorkspaceId,
    ids: &[i64],
    caller: i64,
) -> Result<Vec<(i64, ProjectFacts)>> {
    match ids {
        [] => Ok(Vec::new()),
        [id] => {
            let values = args![ws.0, *id, caller];
            db.rows(&FACTS_BY_ID, &values, id_and_facts_from_row).await
        }
        _ => {
            let values = args![ws.0, ids, caller];
            db.rows(&FACTS_BY_IDS, &values, id_and_facts_from_row).await
        }
    }
}

// One list of values for both: the update numbers its columns as the insert does and
// takes the id and version last.
static INSERT: Stmt = stmt!(
    "INSERT INTO projects (workspace_id, name, description, tags, owner_id, group_id, \
     start_date, end_date, priority, status, closed_at, hidden, flag, notify_project_team, \
     notify_client, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16) \
     RETURNING id"
);
static UPDATE: Stmt = stmt!(
    "UPDATE projects SET name = ?2, description = ?3, tags = ?4, owner_id = ?5, \
     group_id = ?6, start_date = ?7, end_date = ?8, priority = ?9, status = ?10, \
     closed_at = ?11, hidden = ?12, flag = ?13, notify_project_team = ?14, \
     notify_client = ?15, updated_at = ?16, version = version + 1 \
     WHERE workspace_id = ?1 AND id = ?17 AND version = ?18"
);
/// A task in a project takes the project's group (`domain::work::task_group`).
static GROUP_TO_TASKS: Stmt = stmt!(
    "UPDATE tasks SET group_id = ?2, updated_at = ?3, version = version + 1 \
     WHERE project_id = ?1 AND group_id IS DISTINCT FROM ?2"
);
static KEYS: Stmt = stmt!(
    "SELECT storage_key FROM files WHERE activity_id IN \
     (SELECT id FROM activities WHERE project_id = ?1)"
);
static DELETE: Stmt = stmt!("DELETE FROM projects WHERE workspace_id = ?1 AND id = ?2");
static TEAM_CLEAR: Stmt = stmt!("DELETE FROM project_team WHERE project_id = ?1");
static TEAM_ADD: Stmt = stmt!(
    "INSERT INTO project_team (project_id, user_id) SELECT ?1, value FROM IDS(?2) \
     WHERE true ON CONFLICT DO NOTHING"
);

pub async fn get<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<Project>> {
    db.row(&BY_ID, &args![ws.0, id], from_row).await
}

pub async fn by_ids<D: Db>(db: &D, ws: WorkspaceId, ids: &[i64]) -> Result<Vec<Project>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    db.rows(&BY_IDS, &args![ws.0, ids], from_row).await
}

/// Replaces the team of project or task `id`.
pub async fn set_team<D: Db>(
    db: &D,
    (clear, add): (&Stmt, &Stmt),
    id: i64,
    team: &[i64],
) -> Result<()> {
    db.run(clear, &args![id]).await?;
    if !team.is_empty() {
        db.run(add, &args![id, team]).await?;
    }
    Ok(())
}

pub async fn save<D: Db>(
    db: &D,
    ws: WorkspaceId,
    p: &Project,
    mail: &[OutgoingMail],
    now: i64,
) -> Result<Project> {
    outbox::queue(db, ws, mail, now).await?;
    #[rustfmt::skip]
    let values = args![
        ws.0, &p.name, &p.description, &p.tags, p.owner_id, p.group_id, p.start_date,
        p.end_date, p.priority, p.status, p.closed_at, p.hidden, p.flag,
        p.notify_project_team, p.notify_client, now, p.id, p.version
    ];
    let id = if p.id == 0 {
        db.one(&INSERT, &values[..16], first_int).await?
    } else {
        if db.run(&UPDATE, &values).await? == 0 {
            return Err(StoreError::VersionChanged);
        }
        db.run(&GROUP_TO_TASKS, &args![p.id, p.group_id, now])
            .await?;
        p.id
    };
    set_team(db, (&TEAM_CLEAR, &TEAM_ADD), id, &p.team).await?;
    written(get(db, ws, id).await?)
}

pub async fn remove<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
    expected: Expected,
) -> Result<Option<Vec<String>>> {
    db.lock_row("projects", id).await?;
    let Some(current) = get(db, ws, id).await? else {
        return Ok(None);
    };
    check_version(expected, current.version)?;
    let keys = db.rows(&KEYS, &args![id], first_text).await?;
    // Foreign keys cascade: tasks, their teams, activities and file rows.
    db.run(&DELETE, &args![ws.0, id]).await?;
    Ok(Some(keys))
}

pub async fn list<D: Db>(
    db: &D,
    ws: WorkspaceId,
    actor: &Actor,
    q: &ListQuery,
) -> Result<Page<Project>> {
    let list = List::new("projects p", &COLUMN_LIST, actor);
    let conditions = || project_conditions(actor, &q.filters);
    page(db, ws, list, conditions, q, from_row).await
}

pub async fn census<D: Db>(
    db: &D,
    ws: WorkspaceId,
    actor: &Actor,
    filters: &[Filter],
) -> Result<Census> {
    let c = project_conditions(actor, filters)?;
    let (census_sql, _) = keyset_sql("projects p", D::text(&COLUMN_LIST), &c);
    let values = Bindings::new(ws, actor, filters).values(&c.values)?;
    let values: Vec<Arg> = values.iter().map(Arg::from).collect();
    let census = db
        .query_row_kept(&D::DIALECT.numbered(census_sql), &values, |r| {
            Ok(Census {
                total: r.int(0)?,
                last_id: r.int(1)?,
            })
        })
        .await?;
    census.ok_or_else(|| StoreError::Internal(anyhow::anyhow!("a count answered no row")))
}

/// One statement: its snapshot ends with it.
pub async fn after<D: Db>(
    db: &D,
    ws: WorkspaceId,
    actor: &Actor,
    filters: &[Filter],
    (after, last_id, limit): (i64, i64, i64),
) -> Result<Vec<Project>> {
    let c = project_conditions(actor, filters)?;
    let (_, page_sql) = keyset_sql("projects p", D::text(&COLUMN_LIST), &c);
    let values = Bindings::new(ws, actor, filters).values(&c.values)?;
    let mut values: Vec<Arg> = values.iter().map(Arg::from).collect();
    values.extend(args![after, last_id, limit]);
    let mut bytes = 0;
    // As a list's page (driver::page): room for up to 200 at once.
    let expected = limit.clamp(0, 200) as usize;
    db.rows_until_kept(
        &D::DIALECT.numbered(page_sql),
        &values,
        from_row,
        expected,
        |p| page_full_with(p, &mut bytes),
    )
    .await
}
