//! The mail outbox: mails queued with the change that causes them, claimed by the
//! delivery worker of any node. Statements written once for both backends.

use crate::domain::WorkspaceId;
use crate::store::driver::{first_int, Db, Stmt};
use crate::store::{OutgoingMail, QueuedMail, Result};
use crate::{args, stmt};

static QUEUE: Stmt = stmt!(
    "INSERT INTO outbox (workspace_id, recipient, subject, text_body, html_body, \
     created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
);
/// Rows another node is claiming right now are skipped, not waited for; the lease keeps
/// them from everyone once this statement commits.
static CLAIM: Stmt = stmt!(
    "UPDATE outbox SET locked_until = ?2 WHERE id IN (SELECT id FROM outbox \
     WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?1 \
     AND locked_until <= ?1 ORDER BY id LIMIT ?3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, recipient, subject, text_body, html_body, attempts"
);
static DEPTH: Stmt =
    stmt!("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL");
static PING: Stmt = stmt!("SELECT CAST(1 AS BIGINT)");
static SENT: Stmt = stmt!(
    "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, locked_until = 0 WHERE id = ?1"
);
static FAILED: Stmt = stmt!(
    "UPDATE outbox SET attempts = attempts + 1, locked_until = 0, last_error = ?3, \
     next_attempt_at = COALESCE(CAST(?4 AS BIGINT), next_attempt_at), \
     failed_at = CASE WHEN CAST(?4 AS BIGINT) IS NULL THEN CAST(?2 AS BIGINT) END WHERE id = ?1"
);

/// Queues mails inside a write transaction: they commit, or vanish, with the change.
pub async fn queue<D: Db>(db: &D, ws: WorkspaceId, mail: &[OutgoingMail], now: i64) -> Result<()> {
    for m in mail {
        #[rustfmt::skip]
        let values = args![
            ws.0, &m.recipient, &m.subject, &m.text_body, &m.html_body, now
        ];
        db.run(&QUEUE, &values).await?;
    }
    Ok(())
}

pub async fn claim<D: Db>(
    db: &D,
    now: i64,
    lease_secs: i64,
    limit: i64,
) -> Result<Vec<QueuedMail>> {
    let values = args![now, now + lease_secs, limit.max(0)];
    let mut claimed = db
        .rows(&CLAIM, &values, |r| {
            Ok(QueuedMail {
                id: r.int(0)?,
                mail: OutgoingMail {
                    recipient: r.text(1)?,
                    subject: r.text(2)?,
                    text_body: r.text(3)?,
                    html_body: r.text(4)?,
                },
                attempts: r.int(5)?,
            })
        })
        .await?;
    claimed.sort_by_key(|m| m.id);
    Ok(claimed)
}

pub async fn sent<D: Db>(db: &D, id: i64, now: i64) -> Result<()> {
    db.run(&SENT, &args![id, now]).await?;
    Ok(())
}

/// Records a failed attempt: retried at `retry_at`, or given up when `None`.
pub async fn failed<D: Db>(
    db: &D,
    id: i64,
    now: i64,
    error: &str,
    retry_at: Option<i64>,
) -> Result<()> {
    db.run(&FAILED, &args![id, now, error, retry_at]).await?;
    Ok(())
}

/// How many mails wait: queued, neither sent nor given up.
pub async fn depth<D: Db>(db: &D) -> Result<i64> {
    db.one(&DEPTH, &args![], first_int).await
}

/// The trivial query readiness asks for.
pub async fn ping<D: Db>(db: &D) -> Result<()> {
    db.one(&PING, &args![], first_int).await?;
    Ok(())
}
