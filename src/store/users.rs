//! Users, their sessions and login throttling: statements written once for both
//! backends, and how each write is carried out (the last admin stays, a removed user
//! leaves every team, concurrent guesses count before their hashes are checked).

use crate::domain::user::{takes_an_admin_away, NewUser, Profile, SecurityLevel, User, UserPatch};
use crate::domain::WorkspaceId;
use crate::store::driver::{first_int, Arg, Columns, Db, Stmt};
use crate::store::{check_version, Attempt, Expected, Result, Session, StoreError, UserScope};
use crate::store::{sql, workspaces};
use crate::{args, stmt};

pub const COLUMNS: &str = "id, email, title, first_name, last_name, address, work_phone, \
    cell_phone, company, comment, avatar, security_level, can_view_profiles, active, \
    created_at, updated_at, version";
/// How many columns `COLUMNS` names: what a query selects after them starts here.
pub(crate) const COLUMN_COUNT: usize = 17;

pub fn from_row(r: &dyn Columns) -> Result<User> {
    Ok(User {
        id: r.int(0)?,
        email: r.text(1)?,
        profile: Profile {
            title: r.opt_text(2)?,
            first_name: r.opt_text(3)?,
            last_name: r.opt_text(4)?,
            address: r.opt_text(5)?,
            work_phone: r.opt_text(6)?,
            cell_phone: r.opt_text(7)?,
            company: r.opt_text(8)?,
            comment: r.opt_text(9)?,
            avatar: r.opt_text(10)?,
        },
        security_level: SecurityLevel::from_code(r.int(11)?).unwrap_or(SecurityLevel::Client),
        can_view_profiles: r.flag(12)?,
        active: r.flag(13)?,
        created_at: r.int(14)?,
        updated_at: r.int(15)?,
        version: r.int(16)?,
    })
}

static COUNT: Stmt = stmt!("SELECT COUNT(*) FROM users WHERE workspace_id = ?1 AND active = 1");
/// Only into a live workspace (`store::workspaces::LIVE`): a node may still serve a removed
/// one's name, and a session of it, for a few seconds.
static INSERT: Stmt = stmt!(
    "INSERT INTO users (workspace_id, email, email_key, password_hash, title, first_name, \
     last_name, address, work_phone, cell_phone, company, comment, avatar, security_level, \
     can_view_profiles, active, created_at, updated_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, \
     ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 1, ?16, ?16 WHERE {} RETURNING {COLUMNS}",
    workspaces::LIVE
);
static BY_ID: Stmt = stmt!("SELECT {COLUMNS} FROM users WHERE workspace_id = ?1 AND id = ?2");
static FOR_UPDATE: Stmt =
    stmt!("SELECT {COLUMNS} FROM users WHERE workspace_id = ?1 AND id = ?2 FOR UPDATE");
/// Active admins other than `?2`.
static OTHER_ADMINS: Stmt = stmt!(
    "SELECT COUNT(*) FROM users WHERE workspace_id = ?1 AND active = 1 \
     AND security_level = 0 AND id <> ?2"
);
static UPDATE: Stmt = stmt!(
    "UPDATE users SET email = ?3, email_key = ?4, title = ?5, first_name = ?6, \
     last_name = ?7, address = ?8, work_phone = ?9, cell_phone = ?10, company = ?11, \
     comment = ?12, avatar = ?13, security_level = ?14, can_view_profiles = ?15, \
     updated_at = ?16, version = version + 1 WHERE workspace_id = ?1 AND id = ?2"
);
static SET_PASSWORD: Stmt =
    stmt!("UPDATE users SET password_hash = ?3 WHERE workspace_id = ?1 AND id = ?2");
static END_OTHER_SESSIONS: Stmt =
    stmt!("DELETE FROM sessions WHERE user_id = ?1 AND token_hash IS DISTINCT FROM ?2");
static DEACTIVATE: Stmt = stmt!(
    "UPDATE users SET active = 0, updated_at = ?3, version = version + 1 \
     WHERE workspace_id = ?1 AND id = ?2"
);
/// A removed user leaves every team but stays as owner and author; the teams' projects
/// and tasks change with it (`LEAVE_TASKS` for the tasks). Its sessions and API tokens
/// end with it.
static LEAVE: [Stmt; 4] = [
    stmt!("DELETE FROM sessions WHERE user_id = ?1"),
    stmt!("DELETE FROM tokens WHERE user_id = ?1"),
    stmt!(
        "UPDATE projects SET version = version + 1 \
         WHERE id IN (SELECT project_id FROM project_team WHERE user_id = ?1)"
    ),
    stmt!("DELETE FROM project_team WHERE user_id = ?1"),
];
/// The tasks whose teams the user is in, locked (and their version moved) before the
/// user's rows leave their teams, and only those: a team row's delete takes the task's
/// project, status and hidden for its kept count (`own_task_counts`), which only a lock
/// on the task keeps as read. On PostgreSQL a team row committed after the lock is not
/// among them; `remove` asks again until none is left.
static LOCK_TEAM_TASKS: Stmt = stmt!(
    "UPDATE tasks SET version = version + 1 \
     WHERE id IN (SELECT task_id FROM task_team WHERE user_id = ?1) RETURNING id"
);
static LEAVE_TASKS: Stmt = stmt!("DELETE FROM task_team WHERE user_id = ?1 AND task_id = ANY(?2)");
static CREDENTIALS: Stmt = stmt!(
    "SELECT {COLUMNS}, password_hash FROM users \
     WHERE workspace_id = ?1 AND email_key = ?2 AND active = 1"
);
static BY_IDS: Stmt =
    stmt!("SELECT {COLUMNS} FROM users WHERE workspace_id = ?1 AND id = ANY(?2) AND active = 1");
static ARE_TEAM_MATES: Stmt = stmt!("SELECT CAST(?1 AS BIGINT) IN ({})", sql::team_mates("?2"));

static ADD_SESSION: Stmt = stmt!(
    "INSERT INTO sessions (token_hash, workspace_id, user_id, created_at, last_used_at) \
     VALUES (?1, ?2, ?3, ?4, ?4)"
);
static SESSION: Stmt = stmt!(
    "SELECT {}, s.created_at, s.last_used_at FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = ?1 AND s.workspace_id = ?2 AND u.active = 1",
    COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
);
static TOUCH_SESSION: Stmt = stmt!("UPDATE sessions SET last_used_at = ?2 WHERE token_hash = ?1");
static REMOVE_SESSION: Stmt = stmt!("DELETE FROM sessions WHERE token_hash = ?1");
static STALE_SESSIONS: Stmt =
    stmt!("DELETE FROM sessions WHERE last_used_at < ?1 OR created_at < ?2");

static FORGET_SUBJECTS: Stmt = stmt!(
    "DELETE FROM login_failures WHERE workspace_id = ?1 AND subject = ANY(?2) \
     AND failed_at < ?3"
);
/// Per subject: failures, the oldest failure, checks under way (a pending record older
/// than `?3` belongs to a crashed check).
static TALLY: Stmt = stmt!(
    "SELECT s.value, COUNT(f.subject) FILTER (WHERE f.pending = 0), \
     MIN(f.failed_at) FILTER (WHERE f.pending = 0), \
     COUNT(f.subject) FILTER (WHERE f.pending = 1 AND f.failed_at >= ?3) \
     FROM (SELECT DISTINCT value FROM TEXTS(?2)) AS s LEFT JOIN login_failures f \
     ON f.workspace_id = ?1 AND f.subject = s.value GROUP BY s.value"
);
/// Only in a live workspace, as a user is added.
static ADMIT: Stmt = stmt!(
    "INSERT INTO login_failures (workspace_id, subject, failed_at, pending) \
     SELECT ?1, value, ?3, 1 FROM TEXTS(?2) WHERE {} ORDER BY key RETURNING ROWID",
    workspaces::LIVE
);
static FORGET_BEFORE: Stmt = stmt!("DELETE FROM login_failures WHERE failed_at < ?1");
/// COLLATE "C": the range is of bytes, as the subjects were built.
static FAILURES_BETWEEN: Stmt = stmt!(
    "SELECT COUNT(*) FROM login_failures WHERE workspace_id = ?1 \
     AND subject COLLATE \"C\" >= ?2 AND subject COLLATE \"C\" < ?3 \
     AND failed_at >= ?4 AND pending = 0"
);
static FAILED: Stmt = stmt!("UPDATE login_failures SET pending = 0 WHERE ROWID = ANY(?1)");
static SUCCEEDED: Stmt = stmt!("DELETE FROM login_failures WHERE ROWID = ANY(?1)");

/// A unique email, as the error callers expect.
fn duplicate_email<D: Db>(e: StoreError) -> StoreError {
    if D::is_unique_violation(&e) {
        StoreError::DuplicateEmail
    } else {
        e
    }
}

pub async fn count<D: Db>(db: &D, ws: WorkspaceId) -> Result<i64> {
    db.one(&COUNT, &args![ws.0], first_int).await
}

pub async fn add<D: Db>(db: &D, ws: WorkspaceId, user: &NewUser, now: i64) -> Result<User> {
    let p = &user.profile;
    let key = user.email.to_lowercase();
    #[rustfmt::skip]
    let values = args![
        ws.0, &user.email, &key, &user.password_hash, &p.title, &p.first_name, &p.last_name,
        &p.address, &p.work_phone, &p.cell_phone, &p.company, &p.comment, &p.avatar,
        user.security_level.code(), user.can_view_profiles, now
    ];
    db.row(&INSERT, &values, from_row)
        .await
        .map_err(duplicate_email::<D>)?
        .ok_or(StoreError::UnknownWorkspace)
}

pub async fn get<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<User>> {
    db.row(&BY_ID, &args![ws.0, id], from_row).await
}

/// Reads a user to change it: under the workspace's admin lock, so that two demotions
/// cannot both see the other admin, with its row locked.
async fn for_change<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<User>> {
    db.lock_names(&[format!("vesper:admins:{}", ws.0)]).await?;
    db.row(&FOR_UPDATE, &args![ws.0, id], from_row).await
}

/// Refuses a change that takes away the last active admin.
async fn keep_an_admin<D: Db>(
    db: &D,
    ws: WorkspaceId,
    current: &User,
    next: Option<&User>,
) -> Result<()> {
    if takes_an_admin_away(current, next)
        && db
            .one(&OTHER_ADMINS, &args![ws.0, current.id], first_int)
            .await?
            == 0
    {
        return Err(StoreError::LastAdmin);
    }
    Ok(())
}

pub async fn update<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
    (patch, expected): (&UserPatch, Expected),
    keep_session: Option<&[u8]>,
    now: i64,
) -> Result<Option<User>> {
    let Some(current) = for_change(db, ws, id).await? else {
        return Ok(None);
    };
    check_version(expected, current.version)?;
    let next = patch.apply(&current);
    keep_an_admin(db, ws, &current, Some(&next)).await?;
    let p = &next.profile;
    let key = next.email.to_lowercase();
    #[rustfmt::skip]
    let values = args![
        ws.0, id, &next.email, &key, &p.title, &p.first_name, &p.last_name, &p.address,
        &p.work_phone, &p.cell_phone, &p.company, &p.comment, &p.avatar,
        next.security_level.code(), next.can_view_profiles, now
    ];
    db.run(&UPDATE, &values)
        .await
        .map_err(duplicate_email::<D>)?;
    if let Some(hash) = &patch.password_hash {
        db.run(&SET_PASSWORD, &args![ws.0, id, hash]).await?;
    }
    if patch.ends_sessions(&current) {
        let keep = Arg::Bytes(keep_session);
        db.run(&END_OTHER_SESSIONS, &[Arg::from(id), keep]).await?;
    }
    get(db, ws, id).await
}

pub async fn remove<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
    expected: Expected,
    now: i64,
) -> Result<bool> {
    let Some(current) = for_change(db, ws, id).await? else {
        return Ok(false);
    };
    check_version(expected, current.version)?;
    if !current.active {
        return Ok(true);
    }
    keep_an_admin(db, ws, &current, None).await?;
    db.run(&DEACTIVATE, &args![ws.0, id, now]).await?;
    for stmt in &LEAVE {
        db.run(stmt, &args![id]).await?;
    }
    loop {
        let tasks = db.rows(&LOCK_TEAM_TASKS, &args![id], first_int).await?;
        if tasks.is_empty() {
            break;
        }
        db.run(&LEAVE_TASKS, &args![id, &tasks[..]]).await?;
    }
    Ok(true)
}

/// The active user with this email (any case) and its password hash.
pub async fn credentials<D: Db>(
    db: &D,
    ws: WorkspaceId,
    email: &str,
) -> Result<Option<(User, String)>> {
    let key = email.trim().to_lowercase();
    db.row(&CREDENTIALS, &args![ws.0, key.as_str()], |r| {
        Ok((from_row(r)?, r.text(COLUMN_COUNT)?))
    })
    .await
}

/// The active users among these ids, in the order asked.
pub async fn by_ids<D: Db>(db: &D, ws: WorkspaceId, ids: &[i64]) -> Result<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = db.rows(&BY_IDS, &args![ws.0, ids], from_row).await?;
    Ok(ids
        .iter()
        .filter_map(|id| found.iter().find(|u| u.id == *id).cloned())
        .collect())
}

pub async fn in_scope<D: Db>(db: &D, ws: WorkspaceId, scope: UserScope) -> Result<Vec<User>> {
    // The scope's condition comes from the access rules; its values (the scope's user)
    // follow the workspace.
    let caller = match scope {
        UserScope::All => 0,
        UserScope::SelfAndTeamMates(me) => me,
    };
    let (scope, scope_binds) = sql::users_in_scope(scope);
    let in_scope = format!(
        "SELECT {COLUMNS} FROM users u WHERE u.workspace_id = ? AND u.active = 1 AND {scope} \
         ORDER BY u.id"
    );
    let mut values = vec![Arg::Int(Some(ws.0))];
    let bindings = sql::Bindings {
        ws,
        caller,
        filters: &[],
    };
    let scope_values = bindings.values(&scope_binds)?;
    values.extend(scope_values.iter().map(Arg::from));
    db.rows_until_kept(
        &D::DIALECT.translate(&in_scope),
        &values,
        from_row,
        0,
        |_| false,
    )
    .await
}

pub async fn are_team_mates<D: Db>(db: &D, a: i64, b: i64) -> Result<bool> {
    if a == b {
        return Ok(true);
    }
    let found = db
        .row(&ARE_TEAM_MATES, &args![b, a], |r| r.opt_bool(0))
        .await?;
    Ok(found.flatten().unwrap_or(false))
}

pub async fn add_session<D: Db>(
    db: &D,
    ws: WorkspaceId,
    token_hash: &[u8],
    user_id: i64,
    now: i64,
) -> Result<()> {
    db.run(&ADD_SESSION, &args![token_hash, ws.0, user_id, now])
        .await?;
    Ok(())
}

pub async fn session<D: Db>(db: &D, ws: WorkspaceId, token_hash: &[u8]) -> Result<Option<Session>> {
    db.row(&SESSION, &args![token_hash, ws.0], |r| {
        Ok(Session {
            user: from_row(r)?,
            created_at: r.int(COLUMN_COUNT)?,
            last_used_at: r.int(COLUMN_COUNT + 1)?,
        })
    })
    .await
}

pub async fn touch_session<D: Db>(db: &D, token_hash: &[u8], now: i64) -> Result<()> {
    db.run(&TOUCH_SESSION, &args![token_hash, now]).await?;
    Ok(())
}

pub async fn remove_session<D: Db>(db: &D, token_hash: &[u8]) -> Result<()> {
    db.run(&REMOVE_SESSION, &args![token_hash]).await?;
    Ok(())
}

pub async fn remove_stale_sessions<D: Db>(
    db: &D,
    idle_before: i64,
    created_before: i64,
) -> Result<u64> {
    db.run(&STALE_SESSIONS, &args![idle_before, created_before])
        .await
}

/// One login attempt's start (see `LoginThrottleStore::begin_attempt`).
pub async fn begin_attempt<D: Db>(
    db: &D,
    ws: WorkspaceId,
    subjects: &[String],
    now: i64,
    window_start: i64,
    limit: i64,
) -> Result<Attempt> {
    // One attempt at a time per subject, on every node that shares the database.
    let locks: Vec<String> = subjects
        .iter()
        .map(|s| format!("vesper:login:{}:{s}", ws.0))
        .collect();
    // The three travel together: locks are held for one round trip, not one per statement.
    let forget = args![ws.0, subjects, window_start];
    let tally = args![ws.0, subjects, now - 60];
    let (_, _, counts) = futures_util::try_join!(
        db.lock_names(&locks),
        db.run(&FORGET_SUBJECTS, &forget),
        db.rows(&TALLY, &tally, |r| Ok((
            r.text(0)?,
            r.int(1)?,
            r.opt_int(2)?,
            r.int(3)?
        )))
    )?;
    for subject in subjects {
        let (failed, oldest, pending) = counts
            .iter()
            .find(|c| &c.0 == subject)
            .map_or((0, None, 0), |c| (c.1, c.2, c.3));
        if failed >= limit {
            return Ok(Attempt::Throttled {
                oldest: oldest.unwrap_or(now),
            });
        }
        if failed + pending >= limit {
            return Ok(Attempt::Busy);
        }
    }
    let records = db
        .rows(&ADMIT, &args![ws.0, subjects, now], first_int)
        .await?;
    if records.is_empty() && !subjects.is_empty() {
        return Err(StoreError::UnknownWorkspace);
    }
    Ok(Attempt::Admitted(records))
}

pub async fn end_attempt<D: Db>(db: &D, records: &[i64], failed: bool) -> Result<()> {
    db.run(if failed { &FAILED } else { &SUCCEEDED }, &args![records])
        .await?;
    Ok(())
}

pub async fn forget_login_failures<D: Db>(db: &D, before: i64) -> Result<u64> {
    db.run(&FORGET_BEFORE, &args![before]).await
}

pub async fn failures_between<D: Db>(
    db: &D,
    ws: WorkspaceId,
    (first, end): (&str, &str),
    since: i64,
) -> Result<i64> {
    db.one(
        &FAILURES_BETWEEN,
        &args![ws.0, first, end, since],
        first_int,
    )
    .await
}
