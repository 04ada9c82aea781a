//! Activities: their statements, written once for both backends, and how each write
//! brings its task's hours and progress up to date (section 9).

use crate::domain::policy::Actor;
use crate::domain::work::{
    apply_progress, closed_at, hours_on_grid, roll_up, Activity, ActivityType, HoursChange,
    HOURS_DECIMALS, HOURS_GRID,
};
use crate::domain::WorkspaceId;
use futures_util::future::try_join_all;
use std::collections::BTreeMap;

use crate::store::driver::{
    first_opt_int, first_text, page, written, Arg, Columns, Db, List, Stmt,
};
use crate::store::sql::activity_conditions;
use crate::store::{
    check_version, outbox, Expected, ListQuery, OutgoingMail, Page, Result, StoreError,
};
use crate::{args, stmt};

pub const COLUMNS: &str = "a.id, a.project_id, a.task_id, a.type, a.text, a.owner_id, \
    a.progress, a.hours_done, a.hide_from_clients, a.date, a.notify_project_team, \
    a.notify_task_team, a.notify_client, a.created_at, a.updated_at, a.version";
static COLUMN_LIST: Stmt = stmt!("{COLUMNS}");

pub fn from_row(r: &dyn Columns) -> Result<Activity> {
    Ok(Activity {
        id: r.int(0)?,
        project_id: r.opt_int(1)?,
        task_id: r.opt_int(2)?,
        kind: ActivityType::parse(&r.text(3)?).unwrap_or(ActivityType::Msg),
        text: r.opt_text(4)?,
        owner_id: r.int(5)?,
        progress: r.opt_int(6)?,
        hours_done: r.opt_real(7)?,
        hide_from_clients: r.flag(8)?,
        date: r.int(9)?,
        notify_project_team: r.flag(10)?,
        notify_task_team: r.flag(11)?,
        notify_client: r.flag(12)?,
        created_at: r.int(13)?,
        updated_at: r.int(14)?,
        version: r.int(15)?,
    })
}

static BY_ID: Stmt =
    stmt!("SELECT {COLUMNS} FROM activities a WHERE a.workspace_id = ?1 AND a.id = ?2");
/// `INSERT`s of 1, 2, 4, ... 64 new activities (`INSERTS[i]` of `1 << i`), each row's
/// values numbered as `values` lists them; a batch is cut into these few shapes, each
/// prepared once per connection.
static INSERTS: [Stmt; 7] = [
    Stmt::new(|| insert(1)),
    Stmt::new(|| insert(2)),
    Stmt::new(|| insert(4)),
    Stmt::new(|| insert(8)),
    Stmt::new(|| insert(16)),
    Stmt::new(|| insert(32)),
    Stmt::new(|| insert(64)),
];
/// The values of one row of an `INSERT`.
const INSERTED: usize = 14;

fn insert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let n: Vec<String> = (1..=INSERTED)
                .map(|k| format!("?{}", r * INSERTED + k))
                .collect();
            format!("({}, {})", n.join(", "), n[INSERTED - 1])
        })
        .collect();
    format!(
        "INSERT INTO activities (workspace_id, project_id, task_id, type, text, owner_id, \
         progress, hours_done, hide_from_clients, date, notify_project_team, \
         notify_task_team, notify_client, created_at, updated_at) VALUES {} RETURNING {}",
        values.join(", "),
        COLUMNS.replace("a.", "")
    )
}

/// A new activity's values for an `INSERT`, in its columns' order.
fn values<'a>(ws: WorkspaceId, a: &'a Activity, now: i64) -> [Arg<'a>; INSERTED] {
    #[rustfmt::skip]
    let values = args![
        ws.0, a.project_id, a.task_id, a.kind.as_str(), &a.text, a.owner_id, a.progress,
        a.hours_done, a.hide_from_clients, a.date, a.notify_project_team,
        a.notify_task_team, a.notify_client, now
    ];
    values
}
static UPDATE: Stmt = stmt!(
    "UPDATE activities SET text = ?3, progress = ?4, hours_done = ?5, \
     hide_from_clients = ?6, date = ?7, notify_project_team = ?8, \
     notify_task_team = ?9, notify_client = ?10, updated_at = ?11, \
     version = version + 1 WHERE workspace_id = ?1 AND id = ?2 RETURNING {}",
    COLUMNS.replace("a.", "")
);
static KEYS: Stmt = stmt!("SELECT storage_key FROM files WHERE activity_id = ?1");
static DELETE: Stmt = stmt!("DELETE FROM activities WHERE id = ?1");
/// Hours added to a task by `?4` adds (a version for each).
static ADD_HOURS: Stmt = stmt!(
    "UPDATE tasks SET hours_done = ROUND(CAST(hours_done + ?2 AS NUMERIC), ?3), \
     version = version + ?4 WHERE id = ?1"
);
static RESUM_HOURS: Stmt = stmt!(
    "UPDATE tasks SET hours_done = ROUND(CAST((SELECT COALESCE(SUM(hours_done), 0) \
     FROM activities WHERE task_id = ?1) AS NUMERIC), ?2), version = version + 1 WHERE id = ?1"
);
/// Served by the partial index activities_progress_notes.
static NEWEST_PROGRESS: Stmt = stmt!(
    "SELECT progress FROM activities WHERE task_id = ?1 AND type = 'progress' \
     ORDER BY date DESC, id DESC LIMIT 1"
);
static STATUS: Stmt = stmt!("SELECT status, closed_at FROM tasks WHERE id = ?1");
static SET_PROGRESS: Stmt = stmt!(
    "UPDATE tasks SET progress = ?2, status = ?3, closed_at = ?4, version = version + 1 \
     WHERE id = ?1"
);

pub async fn get<D: Db>(db: &D, ws: WorkspaceId, id: i64) -> Result<Option<Activity>> {
    db.row(&BY_ID, &args![ws.0, id], from_row).await
}

/// Brings a task's hoursDone and progress up to date after one of its activities was
/// written (section 9, `roll_up` says what changed): hours are the sum; the newest
/// progress note sets progress and, through it, status.
async fn roll_up_task<D: Db>(
    db: &D,
    task_id: i64,
    (hours, progress_note): (HoursChange, bool),
    now: i64,
) -> Result<()> {
    // Locked first where a value is read back from the activities, so that it is read
    // after every other write holding the task has committed (read committed takes each
    // statement's snapshot as it starts); a write that waited for the row would
    // otherwise write back what it read before.
    if progress_note || hours == HoursChange::Resum {
        db.lock_values("tasks", task_id).await?;
    }
    if progress_note {
        let newest = db
            .row(&NEWEST_PROGRESS, &args![task_id], first_opt_int)
            .await?;
        let status = db
            .row(&STATUS, &args![task_id], |r| Ok((r.int(0)?, r.opt_int(1)?)))
            .await?;
        // No task: it was removed after the caller's checks. Where the activity's task is
        // checked at COMMIT (PostgreSQL), the COMMIT refuses the write.
        if let (Some(progress), Some((status, closed))) = (newest.flatten(), status) {
            let next = apply_progress(status, progress);
            let closed = closed_at(status, closed, next, now);
            db.run(&SET_PROGRESS, &args![task_id, progress, next, closed])
                .await?;
        }
    }
    // Last, with the commit where the backend can: every other write to the task waits
    // for its row (docs/performance.md, activity adds to one task).
    match hours {
        HoursChange::Unchanged => Ok(()),
        HoursChange::Add(h) => {
            db.run_last(&ADD_HOURS, args![task_id, h, HOURS_DECIMALS, 1_i64].into())
                .await
        }
        HoursChange::Resum => {
            db.run_last(&RESUM_HOURS, args![task_id, HOURS_DECIMALS].into())
                .await
        }
    }
}

pub async fn save<D: Db>(
    db: &D,
    ws: WorkspaceId,
    a: &Activity,
    mail: &[OutgoingMail],
    now: i64,
) -> Result<Activity> {
    outbox::queue(db, ws, mail, now).await?;
    let before = if a.id == 0 {
        None
    } else {
        // Locked first: the roll-up reads what this write replaces.
        db.lock_row("activities", a.id).await?;
        let before = get(db, ws, a.id).await?;
        // Another writer came first (or removed it): the caller reads it again.
        check_version(Some(a.version), before.as_ref().map_or(0, |b| b.version))?;
        before
    };
    // The saved row as the database has it, from the write itself.
    let saved = if a.id == 0 {
        db.one(&INSERTS[0], &values(ws, a, now), from_row).await?
    } else {
        #[rustfmt::skip]
        let values = args![
            ws.0, a.id, &a.text, a.progress, a.hours_done, a.hide_from_clients, a.date,
            a.notify_project_team, a.notify_task_team, a.notify_client, now
        ];
        written(db.row(&UPDATE, &values, from_row).await?)?
    };
    // Last: the roll-up locks the task's row until the commit, and every other write to
    // the task waits for it.
    if let Some(task_id) = a.task_id {
        roll_up_task(db, task_id, roll_up(before.as_ref(), Some(a)), now).await?;
    }
    Ok(saved)
}

/// A new activity to save with others: its workspace, itself, its mail, and the time.
pub type NewActivity<'a> = (WorkspaceId, &'a Activity, &'a [OutgoingMail], i64);

/// New activities, none of them a progress note, saved in one transaction as each would
/// be alone (`save`), in fewer statements: the `INSERT`s carry up to 64 of them each,
/// sent together, and each task's hours are added once. The adds a PostgreSQL node
/// gathers (`postgres::activity_adds`).
pub async fn add_together<D: Db>(db: &D, adds: &[NewActivity<'_>]) -> Result<Vec<Activity>> {
    try_join_all(
        adds.iter()
            .map(|&(ws, _, mail, now)| outbox::queue(db, ws, mail, now)),
    )
    .await?;
    let mut chunks = Vec::new();
    let mut rest = adds;
    for (i, stmt) in INSERTS.iter().enumerate().rev() {
        let size = 1 << i;
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            let values: Vec<Arg<'_>> = chunk
                .iter()
                .flat_map(|&(ws, a, _, now)| values(ws, a, now))
                .collect();
            chunks.push((stmt, values));
            rest = tail;
        }
    }
    let inserted = try_join_all(chunks.iter().map(|(stmt, values)| async move {
        let mut rows = db.rows(stmt, values, from_row).await?;
        // The rows' ids come from the sequence as the rows are inserted, in the order
        // of their values.
        rows.sort_unstable_by_key(|a| a.id);
        Ok::<_, StoreError>(rows)
    }))
    .await?;
    let saved: Vec<Activity> = inserted.into_iter().flatten().collect();
    // Each answer must be its add's: otherwise the batch rolls back (its adds then run
    // alone) rather than answer one add with another's row.
    let own = |(&(_, a, _, _), s): (&NewActivity<'_>, &Activity)| {
        (a.task_id, a.owner_id, a.date, &a.text) == (s.task_id, s.owner_id, s.date, &s.text)
    };
    if saved.len() != adds.len() || !adds.iter().zip(&saved).all(own) {
        return Err(StoreError::Internal(anyhow::anyhow!(
            "{} activities inserted for {} adds, not in their order",
            saved.len(),
            adds.len()
        )));
    }
    // Last, as in `save`: the roll-ups lock their tasks' rows until the commit. A task's
    // hours on the grid go out as one UPDATE of their sum, so that a batch writes one new
    // version of the task's row, not one per add: every read of a busy task's row walked
    // the versions its adds had written (docs/performance.md, "Activity adds to one busy
    // task"). The sum gives what adding them one at a time gives while the task's hours
    // stay under 1,000,000 (beyond, PostgreSQL's 15 significant digits keep eight
    // decimals). Hours off the grid are added one at a time.
    let mut sums: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for &(_, a, _, now) in adds {
        let Some(task_id) = a.task_id else { continue };
        let change = roll_up(None, Some(a));
        let on_grid = match change {
            (HoursChange::Add(h), false) => hours_on_grid(h),
            _ => None,
        };
        match on_grid {
            Some(billionths) => {
                let sum = sums.entry(task_id).or_default();
                sum.0 += billionths;
                sum.1 += 1;
            }
            None => roll_up_task(db, task_id, change, now).await?,
        }
    }
    for (task_id, (billionths, added)) in sums {
        let hours = billionths as f64 / HOURS_GRID;
        let values = args![task_id, hours, HOURS_DECIMALS, added];
        db.run_last(&ADD_HOURS, values.into()).await?;
    }
    Ok(saved)
}

pub async fn remove<D: Db>(
    db: &D,
    ws: WorkspaceId,
    id: i64,
    expected: Expected,
) -> Result<Option<Vec<String>>> {
    db.lock_row("activities", id).await?;
    let Some(a) = get(db, ws, id).await? else {
        return Ok(None);
    };
    check_version(expected, a.version)?;
    let keys = db.rows(&KEYS, &args![id], first_text).await?;
    db.run(&DELETE, &args![id]).await?;
    if let Some(task_id) = a.task_id {
        roll_up_task(db, task_id, roll_up(Some(&a), None), crate::domain::now()).await?;
    }
    Ok(Some(keys))
}

pub async fn list<D: Db>(
    db: &D,
    ws: WorkspaceId,
    actor: &Actor,
    q: &ListQuery,
) -> Result<Page<Activity>> {
    let list = List::new("activities a", &COLUMN_LIST, actor);
    let conditions = || activity_conditions(actor, &q.filters);
    page(db, ws, list, conditions, q, from_row).await
}
