//! Connections that keyed reads share: each carries the statements of many requests at
//! once. tokio-postgres sends a statement as soon as it is asked and matches the answers
//! in order, so the reads of concurrent requests travel together: PostgreSQL reads them
//! in one go, and both it and the node write and wake less for each. A read on a
//! connection of its own pays a round trip of wake-ups on both sides for one row.
//!
//! Only reads by key go here (`run_keyed_read!`): one slow statement would hold up every
//! answer queued behind it on its connection. Lists, snapshots and writes keep a pooled
//! connection to themselves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::{Object, Pool};

use crate::store::postgres::{pool_error, POOL_TIMEOUT};
use crate::store::{Result, StoreError};

type Connection = Arc<Object>;

/// One shared connection, or none yet (or a closed one).
#[derive(Default)]
struct Slot {
    held: Mutex<Option<Connection>>,
    /// Taken while the slot is filled, so that a burst of reads meeting an empty slot
    /// opens one connection, not one each.
    filling: tokio::sync::Mutex<()>,
}

impl Slot {
    fn live(&self) -> Option<Connection> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.as_ref().filter(|c| !c.is_closed()).cloned()
    }
}

pub struct Shared {
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Shared {
    /// One connection per two of the node's cores, at least one and at most `most`; they
    /// come out of the pool's own, so `most` leaves the rest of it to lists and writes.
    /// Measured on two cores (docs/performance.md): one shared connection served a
    /// user's task read at 14,350 – 18,748/s, two at 13,028 – 13,042/s, each statement
    /// on a connection of its own at 5,672 – 6,380/s.
    pub fn new(most: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Shared {
            slots: (0..cores.div_ceil(2).clamp(1, most.max(1)))
                .map(|_| Slot::default())
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// One of the shared connections, in turn. A closed one (PostgreSQL restarted, the
    /// peer gone) is replaced from the pool; it goes back to the pool, which drops it,
    /// once its last reader is done.
    pub async fn connection(&self, pool: &Pool) -> Result<Connection> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        if let Some(live) = slot.live() {
            return Ok(live);
        }
        // Within the pool's own wait in all: reads queued behind a fill that fails (the
        // database unreachable) must not each wait their turn to try again.
        let filled = tokio::time::timeout(POOL_TIMEOUT, async {
            let _filling = slot.filling.lock().await;
            if let Some(live) = slot.live() {
                return Ok(live);
            }
            let fresh = Arc::new(pool.get().await.map_err(pool_error)?);
            *slot.held.lock().unwrap_or_else(PoisonError::into_inner) = Some(fresh.clone());
            Ok(fresh)
        });
        filled.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(anyhow::anyhow!(
                "no connection for reads by key within {POOL_TIMEOUT:?}"
            )))
        })
    }
}
