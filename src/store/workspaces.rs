//! Workspaces: made and removed from the command line, found by name for every request
//! when a base domain is set. Statements written once for both backends.
//!
//! A removed workspace keeps its row under a name no one can ask for (`#` and its id), so
//! that its id is never given to another workspace: a node that still has the old name
//! in its cache for a few seconds finds nothing under that id, never someone else's rows.

use crate::domain::workspace::Workspace;
use crate::domain::WorkspaceId;
use crate::store::driver::{first_int, first_text, Columns, Db, Stmt};
use crate::store::{Result, StoreError};
use crate::{args, stmt};

fn from_row(r: &dyn Columns) -> Result<Workspace> {
    Ok(Workspace {
        id: WorkspaceId(r.int(0)?),
        name: r.text(1)?,
        created_at: r.int(2)?,
    })
}

/// That workspace `?1` is not removed, as a condition. Rows that name no other row of
/// the workspace (users, groups, login failures) are added only under it: a node may
/// serve a removed workspace's name, and on SQLite a session of it, for a few seconds
/// after `remove` ran elsewhere, and what such a request added would outlive the
/// workspace. Every other row names a user of its workspace, whom the removal took.
pub const LIVE: &str =
    "EXISTS (SELECT 1 FROM workspaces w WHERE w.id = ?1 AND w.name NOT LIKE '#%')";

static INSERT: Stmt = stmt!(
    "INSERT INTO workspaces (id, name, created_at) \
     SELECT COALESCE(MAX(id), 0) + 1, ?1, ?2 FROM workspaces RETURNING id, name, created_at"
);
static BY_NAME: Stmt = stmt!("SELECT id FROM workspaces WHERE name = ?1");
static ALL: Stmt =
    stmt!("SELECT id, name, created_at FROM workspaces WHERE name NOT LIKE '#%' ORDER BY name");
static KEYS: Stmt = stmt!("SELECT storage_key FROM files WHERE workspace_id = ?1");
/// Children before what they name; projects and tasks cascade to their teams,
/// activities and file rows, and the rest goes table by table.
static EMPTY: [Stmt; 13] = [
    stmt!("DELETE FROM projects WHERE workspace_id = ?1"),
    stmt!("DELETE FROM tasks WHERE workspace_id = ?1"),
    stmt!("DELETE FROM activities WHERE workspace_id = ?1"),
    stmt!("DELETE FROM files WHERE workspace_id = ?1"),
    stmt!("DELETE FROM task_counts WHERE workspace_id = ?1"),
    stmt!("DELETE FROM own_task_counts WHERE workspace_id = ?1"),
    stmt!("DELETE FROM outbox WHERE workspace_id = ?1"),
    stmt!("DELETE FROM sessions WHERE workspace_id = ?1"),
    stmt!("DELETE FROM tokens WHERE workspace_id = ?1"),
    stmt!("DELETE FROM login_failures WHERE workspace_id = ?1"),
    stmt!("DELETE FROM project_groups WHERE workspace_id = ?1"),
    stmt!("DELETE FROM users WHERE workspace_id = ?1"),
    stmt!("UPDATE workspaces SET name = '#' || CAST(id AS TEXT) WHERE id = ?1"),
];

pub async fn add<D: Db>(db: &D, name: &str, now: i64) -> Result<Workspace> {
    db.one(&INSERT, &args![name, now], from_row)
        .await
        .map_err(|e| {
            if D::is_unique_violation(&e) {
                StoreError::DuplicateName
            } else {
                e
            }
        })
}

pub async fn by_name<D: Db>(db: &D, name: &str) -> Result<Option<WorkspaceId>> {
    Ok(db
        .row(&BY_NAME, &args![name], first_int)
        .await?
        .map(WorkspaceId))
}

pub async fn all<D: Db>(db: &D) -> Result<Vec<Workspace>> {
    db.rows(&ALL, &args![], from_row).await
}

/// Deletes every row of the workspace in one transaction; answers the storage keys of
/// its files, whose blobs go once this has committed.
pub async fn remove<D: Db>(db: &D, ws: WorkspaceId) -> Result<Vec<String>> {
    let keys = db.rows(&KEYS, &args![ws.0], first_text).await?;
    for stmt in &EMPTY {
        db.run(stmt, &args![ws.0]).await?;
    }
    Ok(keys)
}
