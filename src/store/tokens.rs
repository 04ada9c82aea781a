//! Personal API tokens: statements written once for both backends. A token is found by
//! the hash of its secret within one workspace, joined to its user, so that every call
//! sees the user's current level and activity; nothing is cached, on any node.

use crate::domain::token::{NewToken, Scope, Token};
use crate::domain::user::User;
use crate::domain::WorkspaceId;
use crate::store::driver::{first_int, Columns, Db, Stmt};
use crate::store::{users, Result, StoreError};
use crate::{args, stmt};

const COLUMNS: &str = "id, user_id, name, scope, created_at, last_used_at, expires_at";

fn from_row_at(r: &dyn Columns, at: usize) -> Result<Token> {
    let scope = r.text(at + 3)?;
    Ok(Token {
        id: r.int(at)?,
        user_id: r.int(at + 1)?,
        name: r.text(at + 2)?,
        scope: Scope::from_name(&scope).ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("a token with an unknown scope: {scope}"))
        })?,
        created_at: r.int(at + 4)?,
        last_used_at: r.opt_int(at + 5)?,
        expires_at: r.opt_int(at + 6)?,
    })
}

fn from_row(r: &dyn Columns) -> Result<Token> {
    from_row_at(r, 0)
}

/// `COLUMNS` of `table` under its alias.
fn aliased(alias: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

static INSERT: Stmt = stmt!(
    "INSERT INTO tokens (workspace_id, user_id, name, scope, token_hash, created_at, \
     expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING {COLUMNS}"
);
static COUNT_OF_USER: Stmt =
    stmt!("SELECT COUNT(*) FROM tokens WHERE workspace_id = ?1 AND user_id = ?2");
static OF_USER: Stmt =
    stmt!("SELECT {COLUMNS} FROM tokens WHERE workspace_id = ?1 AND user_id = ?2 ORDER BY id");
static BY_ID: Stmt = stmt!("SELECT {COLUMNS} FROM tokens WHERE workspace_id = ?1 AND id = ?2");
/// The token and its user, if the user is active: the user's level and activity as they
/// are now.
static BY_HASH: Stmt = stmt!(
    "SELECT {}, {} FROM tokens t JOIN users u ON u.id = t.user_id \
     WHERE t.token_hash = ?1 AND t.workspace_id = ?2 AND u.workspace_id = ?2 \
     AND u.active = 1",
    aliased("u", users::COLUMNS),
    aliased("t", COLUMNS)
);
static TOUCH: Stmt =
    stmt!("UPDATE tokens SET last_used_at = ?3 WHERE workspace_id = ?1 AND id = ?2");
static DELETE: Stmt = stmt!("DELETE FROM tokens WHERE workspace_id = ?1 AND id = ?2");

/// Stores a token unless its user already holds `limit` (`Ok(None)`). Adds of one user
/// take turns, on every node, so that two at once cannot both pass the count.
pub async fn add<D: Db>(
    db: &D,
    ws: WorkspaceId,
    new: &NewToken,
    limit: i64,
    now: i64,
) -> Result<Option<Token>> {
    db.lock_names(&[format!("vesper:tokens:{}:{}", ws.0, new.user_id)])
        .await?;
    let held = db
        .one(&COUNT_OF_USER, &args![ws.0, new.user_id], first_int)
        .await?;
    if held >= limit {
        return Ok(None);
    }
    #[rustfmt::skip]
    let values = args![
        ws.0, new.user_id, new.name.as_str(), new.scope.name(), new.token_hash.as_slice(),
        now, new.expires_at
    ];
    db.one(&INSERT, &values, from_row).await.map(Some)
}

pub async fn of_user<D: Db>(db: &D, ws: WorkspaceId, user_id: i64) -> Result<Vec<Token>> {
    db.rows(&OF_USER, &args![ws.0, user_id], from_row).await
}

pub async fn get<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<Token>> {
    db.row(&BY_ID, &args![ws.0, id], from_row).await
}

/// The token whose secret hashes to `token_hash` in the workspace, and its active user.
pub async fn by_hash<D: Db>(
    db: &D,
    ws: WorkspaceId,
    token_hash: &[u8],
) -> Result<Option<(User, Token)>> {
    db.row(&BY_HASH, &args![token_hash, ws.0], |r| {
        Ok((users::from_row(r)?, from_row_at(r, users::COLUMN_COUNT)?))
    })
    .await
}

pub async fn touch<D: Db>(db: &D, ws: WorkspaceId, id: i64, now: i64) -> Result<()> {
    db.run(&TOUCH, &args![ws.0, id, now]).await?;
    Ok(())
}

/// `Ok(false)`: no such token in the workspace.
pub async fn remove<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<bool> {
    Ok(db.run(&DELETE, &args![ws.0, id]).await? > 0)
}
