//! Activity adds gathered into shared transactions (group commit) on PostgreSQL.
//!
//! An add with hours locks its task's row (the `hoursDone` roll-up) until its commit is
//! flushed, so adds to one task ran one at a time however many connections sent them,
//! and slower the more waited (docs/performance.md). A node therefore gathers the adds
//! waiting at one moment into one transaction: their statements go out together on one
//! connection, their rows in a few multi-row `INSERT`s (`activities::add_together`), one
//! roll-up per task with the COMMIT, and each add is answered once that COMMIT is
//! durable. The task's row is locked and written once for all of them.
//!
//! When any add of a batch fails, the batch rolls back and each of its adds runs again
//! alone, so that a refusal is only ever its own add's. When the COMMIT's outcome is
//! unknown (its answer was lost), each add gets that error, as a lone write would.
//! Progress notes and edits run alone: their roll-ups read what the others write.
//!
//! An add whose request goes away once it is queued is still saved with its batch, as a
//! write whose answer was lost; before it is queued, nothing of it is.

use deadpool_postgres::Pool;
use futures_util::{stream, StreamExt};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};

use crate::domain::work::{Activity, ActivityType};
use crate::domain::WorkspaceId;
use crate::store::postgres::pool_error;
use crate::store::postgres::transaction::{CommitError, Transaction};
use crate::store::{activities, OutgoingMail, Result, StoreError};

/// The most adds one transaction carries.
const MOST: usize = 64;
/// Batches in flight at once: while some wait for their flush, the others run their
/// inserts. Their roll-ups lock task rows in one order (`Transaction::commit`), and the
/// `FOR KEY SHARE` locks of their foreign key checks (on projects at each INSERT, on
/// tasks at COMMIT) do not conflict with those (nor with an edit's `lock_values` of a
/// task). Four, not two: adds spread over many tasks went 3,567 - 3,877/s -> 4,182 -
/// 4,637/s on two cores, the CPU no longer idle while both batches waited for their
/// flush (docs/performance.md).
const GATHERERS: usize = 4;
/// How long a batch waits for any lock before it gives up and its adds run alone, its
/// COMMIT included. A batch's foreign key checks lock several tasks and projects in the
/// order its adds came, so a task or project removal cascading over them can close a
/// cycle with it; the batch gives way first.
const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '200ms'";
/// The adds of failed batches run alone this many at a time, all batches together,
/// leaving the pool's other connections to the rest of the node.
const ALONE_AT_ONCE: usize = 4;

/// The queue of adds waiting to be gathered.
pub struct ActivityAdds {
    queue: mpsc::Sender<Pending>,
}

struct Pending {
    ws: WorkspaceId,
    activity: Activity,
    mail: Vec<OutgoingMail>,
    now: i64,
    answer: oneshot::Sender<Result<Activity>>,
}

impl ActivityAdds {
    /// Starts gathering on `pool`; it stops when the queue is dropped with the store.
    pub fn spawn(pool: Pool) -> ActivityAdds {
        let (queue, waiting) = mpsc::channel(MOST * 4);
        let waiting = Arc::new(Mutex::new(waiting));
        let alone_at_once = Arc::new(Semaphore::new(ALONE_AT_ONCE));
        for _ in 0..GATHERERS {
            tokio::spawn(gather(pool.clone(), waiting.clone(), alone_at_once.clone()));
        }
        ActivityAdds { queue }
    }

    /// Whether a save of `a` is gathered with others: a new activity that is not a
    /// progress note.
    pub fn gathers(a: &Activity) -> bool {
        a.id == 0 && a.kind != ActivityType::Progress
    }

    pub async fn add(
        &self,
        ws: WorkspaceId,
        activity: Activity,
        mail: Vec<OutgoingMail>,
        now: i64,
    ) -> Result<Activity> {
        let _timer = crate::metrics::store_timer(crate::metrics::StoreOp::Write);
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            ws,
            activity,
            mail,
            now,
            answer,
        };
        self.queue.send(pending).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Internal(anyhow::anyhow!("the activity adds' queue stopped"))
}

/// Takes what waits, up to [`MOST`], runs it together, and answers; then again. Each
/// batch runs as a task of its own: a panic in one drops its answers (each caller gets
/// an error) and the gathering goes on.
async fn gather(
    pool: Pool,
    waiting: Arc<Mutex<mpsc::Receiver<Pending>>>,
    alone_at_once: Arc<Semaphore>,
) {
    loop {
        let mut batch = Vec::with_capacity(MOST);
        if waiting.lock().await.recv_many(&mut batch, MOST).await == 0 {
            return;
        }
        let _ = tokio::spawn(run(pool.clone(), batch, alone_at_once.clone())).await;
    }
}

async fn run(pool: Pool, mut batch: Vec<Pending>, alone_at_once: Arc<Semaphore>) {
    if batch.len() == 1 {
        return alone(&pool, batch.remove(0)).await;
    }
    match together(&pool, &batch).await {
        Together::Saved(saved) => {
            for (p, a) in batch.into_iter().zip(saved) {
                let _ = p.answer.send(Ok(a));
            }
        }
        Together::RolledBack => {
            stream::iter(batch)
                .for_each_concurrent(ALONE_AT_ONCE, |p| async {
                    // Closed never: the semaphore lives as long as the gatherers.
                    let _turn = alone_at_once.acquire().await;
                    alone(&pool, p).await
                })
                .await;
        }
        Together::Unknown(e) => {
            for p in batch {
                let _ = p.answer.send(Err(copy(&e)));
            }
        }
    }
}

enum Together {
    Saved(Vec<Activity>),
    RolledBack,
    Unknown(StoreError),
}

async fn together(pool: &Pool, batch: &[Pending]) -> Together {
    let Ok(tx) = begin(pool, LOCK_WAIT).await else {
        return Together::RolledBack;
    };
    let saved = {
        let db = &tx.db();
        let adds: Vec<activities::NewActivity<'_>> = batch
            .iter()
            .map(|p| (p.ws, &p.activity, &p.mail[..], p.now))
            .collect();
        activities::add_together(db, &adds).await
    };
    let Ok(saved) = saved else {
        tx.rollback().await;
        return Together::RolledBack;
    };
    match tx.commit().await {
        Ok(()) => Together::Saved(saved),
        Err(CommitError::RolledBack(_)) => Together::RolledBack,
        Err(CommitError::Unknown(e)) => Together::Unknown(e),
    }
}

/// One add in a transaction of its own, answered with its own outcome.
async fn alone(pool: &Pool, p: Pending) {
    let saved = async {
        let tx = begin(pool, "").await?;
        let saved = activities::save(&tx.db(), p.ws, &p.activity, &p.mail, p.now).await;
        tx.finish(saved).await
    }
    .await;
    let _ = p.answer.send(saved);
}

/// A transaction on a connection from `pool`, begun with `settings`.
async fn begin(pool: &Pool, settings: &str) -> Result<Transaction> {
    Transaction::begin_with(pool.get().await.map_err(pool_error)?, settings).await
}

/// One error told to every add of a batch.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(e) => StoreError::Unavailable(anyhow::anyhow!("{e:#}")),
        other => StoreError::Internal(anyhow::anyhow!("{other:#}")),
    }
}
