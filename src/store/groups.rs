//! Project groups: statements written once for both backends.

use crate::domain::WorkspaceId;
use crate::store::driver::{Columns, Db, Stmt};
use crate::store::{check_version, workspaces, Expected, Group, Result, StoreError};
use crate::{args, stmt};

const COLUMNS: &str = "id, name, created_at, updated_at, version";

fn from_row(r: &dyn Columns) -> Result<Group> {
    Ok(Group {
        id: r.int(0)?,
        name: r.text(1)?,
        created_at: r.int(2)?,
        updated_at: r.int(3)?,
        version: r.int(4)?,
    })
}

/// Only into a live workspace, as a user (`store::users`).
static INSERT: Stmt = stmt!(
    "INSERT INTO project_groups (workspace_id, name, created_at, updated_at) \
     SELECT ?1, ?2, ?3, ?3 WHERE {} RETURNING {COLUMNS}",
    workspaces::LIVE
);
static BY_ID: Stmt =
    stmt!("SELECT {COLUMNS} FROM project_groups WHERE workspace_id = ?1 AND id = ?2");
static FOR_UPDATE: Stmt =
    stmt!("SELECT {COLUMNS} FROM project_groups WHERE workspace_id = ?1 AND id = ?2 FOR UPDATE");
static ALL: Stmt =
    stmt!("SELECT {COLUMNS} FROM project_groups WHERE workspace_id = ?1 ORDER BY id");
static UPDATE: Stmt = stmt!(
    "UPDATE project_groups SET name = COALESCE(?3, name), updated_at = ?4, \
     version = version + 1 WHERE workspace_id = ?1 AND id = ?2 RETURNING {COLUMNS}"
);
/// Its projects and tasks are left in no group, and say so to syncing clients.
static UNGROUP: [Stmt; 2] = [
    stmt!(
        "UPDATE projects SET group_id = NULL, updated_at = ?3, version = version + 1 \
         WHERE workspace_id = ?1 AND group_id = ?2"
    ),
    stmt!(
        "UPDATE tasks SET group_id = NULL, updated_at = ?3, version = version + 1 \
         WHERE workspace_id = ?1 AND group_id = ?2"
    ),
];
static DELETE: Stmt = stmt!("DELETE FROM project_groups WHERE workspace_id = ?1 AND id = ?2");

pub async fn add<D: Db>(db: &D, ws: WorkspaceId, name: &str, now: i64) -> Result<Group> {
    db.row(&INSERT, &args![ws.0, name, now], from_row)
        .await?
        .ok_or(StoreError::UnknownWorkspace)
}

pub async fn update<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
    name: Option<&str>,
    expected: Expected,
    now: i64,
) -> Result<Option<Group>> {
    let Some(current) = db.row(&FOR_UPDATE, &args![ws.0, id], from_row).await? else {
        return Ok(None);
    };
    check_version(expected, current.version)?;
    db.row(&UPDATE, &args![ws.0, id, name, now], from_row).await
}

pub async fn remove<D: Db>(db: &D, ws: WorkspaceId, id: i64, expected: Expected) -> Result<bool> {
    let Some(current) = db.row(&FOR_UPDATE, &args![ws.0, id], from_row).await? else {
        return Ok(false);
    };
    check_version(expected, current.version)?;
    let now = crate::domain::now();
    for stmt in &UNGROUP {
        db.run(stmt, &args![ws.0, id, now]).await?;
    }
    Ok(db.run(&DELETE, &args![ws.0, id]).await? > 0)
}

pub async fn get<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<Group>> {
    db.row(&BY_ID, &args![ws.0, id], from_row).await
}

pub async fn all<D: Db>(db: &D, ws: WorkspaceId) -> Result<Vec<Group>> {
    db.rows(&ALL, &args![ws.0], from_row).await
}
