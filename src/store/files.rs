//! Files' rows (their blobs live in `crate::files`): statements written once for both
//! backends.

use crate::domain::policy::Actor;
use crate::domain::work::FileMeta;
use crate::domain::WorkspaceId;
use crate::store::driver::{first_int, first_text, page, Columns, Db, List, Stmt};
use crate::store::sql::file_conditions;
use crate::store::{ListQuery, Page, Result};
use crate::{args, stmt};

pub const COLUMNS: &str = "f.id, f.activity_id, f.task_id, f.project_id, f.name, f.size, \
    f.mime_type, f.sha256, f.storage_key, f.owner_id, f.created_at, \
    (SELECT m.type = 'msg' FROM activities m WHERE m.id = f.activity_id)";
static COLUMN_LIST: Stmt = stmt!("{COLUMNS}");

pub fn from_row(r: &dyn Columns) -> Result<FileMeta> {
    Ok(FileMeta {
        id: r.int(0)?,
        activity_id: r.int(1)?,
        task_id: r.opt_int(2)?,
        project_id: r.opt_int(3)?,
        name: r.text(4)?,
        size: r.int(5)?,
        mime_type: r.text(6)?,
        sha256: r.text(7)?,
        storage_key: r.text(8)?,
        owner_id: r.int(9)?,
        created_at: r.int(10)?,
        on_message: r.opt_bool(11)?.unwrap_or(false),
    })
}

static INSERT: Stmt = stmt!(
    "INSERT INTO files (workspace_id, activity_id, task_id, project_id, name, size, \
     mime_type, sha256, storage_key, owner_id, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id"
);
static BY_ID: Stmt = stmt!("SELECT {COLUMNS} FROM files f WHERE f.workspace_id = ?1 AND f.id = ?2");
static OF_ACTIVITIES: Stmt = stmt!(
    "SELECT {COLUMNS} FROM files f WHERE f.workspace_id = ?1 \
     AND f.activity_id = ANY(?2) ORDER BY f.id"
);
static DELETE: Stmt =
    stmt!("DELETE FROM files WHERE workspace_id = ?1 AND id = ?2 RETURNING storage_key");
static ALL_KEYS: Stmt = stmt!("SELECT storage_key FROM files");
static ACTIVE_USERS: Stmt =
    stmt!("SELECT id FROM users WHERE workspace_id = ?1 AND id = ANY(?2) AND active = 1");

/// Records files whose blobs are already durable.
pub async fn add<D: Db>(
    db: &D,
    ws: WorkspaceId,
    files: Vec<FileMeta>,
    now: i64,
) -> Result<Vec<FileMeta>> {
    let mut saved = Vec::with_capacity(files.len());
    for f in files {
        #[rustfmt::skip]
        let values = args![
            ws.0, f.activity_id, f.task_id, f.project_id, &f.name, f.size, &f.mime_type,
            &f.sha256, &f.storage_key, f.owner_id, now
        ];
        let id = db.one(&INSERT, &values, first_int).await?;
        saved.push(FileMeta {
            id,
            created_at: now,
            ..f
        });
    }
    Ok(saved)
}

pub async fn get<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<FileMeta>> {
    db.row(&BY_ID, &args![ws.0, id], from_row).await
}

pub async fn of_activities<D: Db>(db: &D, ws: WorkspaceId, ids: &[i64]) -> Result<Vec<FileMeta>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    db.rows(&OF_ACTIVITIES, &args![ws.0, ids], from_row).await
}

/// Removes one file's row and answers its storage key.
pub async fn remove<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<String>> {
    db.row(&DELETE, &args![ws.0, id], first_text).await
}

pub async fn list<D: Db>(
    db: &D,
    ws: WorkspaceId,
    actor: &Actor,
    q: &ListQuery,
) -> Result<Page<FileMeta>> {
    let list = List::new("files f", &COLUMN_LIST, actor);
    let conditions = || file_conditions(actor, &q.filters);
    page(db, ws, list, conditions, q, from_row).await
}

pub async fn storage_keys<D: Db>(db: &D) -> Result<Vec<String>> {
    db.rows(&ALL_KEYS, &[], first_text).await
}

/// Of these ids, those that are not active users of the workspace, in order.
pub async fn missing_users<D: Db>(db: &D, ws: WorkspaceId, ids: &[i64]) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = db.rows(&ACTIVE_USERS, &args![ws.0, ids], first_int).await?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect())
}
