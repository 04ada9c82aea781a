//! Sessions as last read, so that most calls find their caller without a database read
//! (the session read was a sixth of a getById's profile on SQLite, and a whole round trip
//! on PostgreSQL).
//!
//! Every write that can change a session or its user forgets what it changed once it is
//! committed. On SQLite that is every such write, since the database belongs to one
//! process. Nodes on PostgreSQL also forget what other nodes announce
//! (`store::postgres::listener`), and cache nothing while they cannot hear them
//! (`set_online`).
//!
//! A read that raced a write must not put back what the write just changed: every
//! change bumps a generation, and a read's answer is kept only if the generation is
//! the one seen before the read started.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::domain::WorkspaceId;
use crate::store::{Result, Session};

/// Past this many sessions the cache starts over rather than choosing what to evict.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct SessionCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    /// Nothing is served or kept (a PostgreSQL node that cannot hear the others).
    offline: bool,
    /// By token hash (256 random bits, unique across workspaces), with the workspace.
    sessions: HashMap<Vec<u8>, (i64, Session)>,
}

impl SessionCache {
    /// A cache that serves nothing until `set_online(true)`.
    pub fn offline() -> Self {
        let cache = SessionCache::default();
        cache.lock().offline = true;
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached session, or the generation to hand to `keep` after reading it.
    pub fn get(&self, ws: WorkspaceId, token_hash: &[u8]) -> std::result::Result<Session, u64> {
        let inner = self.lock();
        match inner.sessions.get(token_hash) {
            Some((in_ws, s)) if *in_ws == ws.0 && !inner.offline => Ok(s.clone()),
            _ => Err(inner.generation),
        }
    }

    /// Keeps a session read from the database, unless something changed since
    /// `generation` was taken.
    pub fn keep(&self, generation: u64, ws: WorkspaceId, token_hash: Vec<u8>, session: Session) {
        let mut inner = self.lock();
        if inner.generation != generation || inner.offline {
            return;
        }
        if inner.sessions.len() >= CAPACITY {
            inner.sessions.clear();
        }
        inner.sessions.insert(token_hash, (ws.0, session));
    }

    /// One session changed (used, or signed out).
    pub fn forget(&self, token_hash: &[u8]) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.sessions.remove(token_hash);
    }

    /// Users or many sessions changed.
    pub fn forget_all(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.sessions.clear();
    }

    /// Starts serving (from empty), or stops serving and forgets everything.
    pub fn set_online(&self, online: bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.sessions.clear();
        inner.offline = !online;
    }

    /// The session from the cache, or from `read` (kept when nothing changed meanwhile).
    pub async fn read_through<F>(
        &self,
        ws: WorkspaceId,
        token_hash: &[u8],
        read: impl FnOnce() -> F,
    ) -> Result<Option<Session>>
    where
        F: Future<Output = Result<Option<Session>>>,
    {
        let generation = match self.get(ws, token_hash) {
            Ok(session) => return Ok(Some(session)),
            Err(generation) => generation,
        };
        let found = read().await?;
        if let Some(session) = &found {
            self.keep(generation, ws, token_hash.to_vec(), session.clone());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::{Profile, SecurityLevel, User};

    fn session(last_used_at: i64) -> Session {
        Session {
            user: User {
                id: 1,
                email: "a@b.c".into(),
                security_level: SecurityLevel::Admin,
                can_view_profiles: true,
                active: true,
                profile: Profile::default(),
                created_at: 0,
                updated_at: 0,
                version: 1,
            },
            created_at: 0,
            last_used_at,
        }
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = SessionCache::default();
        let ws = WorkspaceId(1);
        let generation = cache.get(ws, b"k").unwrap_err();
        cache.forget(b"k"); // a sign-out committed while the read ran
        cache.keep(generation, ws, b"k".to_vec(), session(5));
        assert!(cache.get(ws, b"k").is_err());

        let generation = cache.get(ws, b"k").unwrap_err();
        cache.keep(generation, ws, b"k".to_vec(), session(6));
        assert_eq!(cache.get(ws, b"k").unwrap().last_used_at, 6);
        assert!(cache.get(WorkspaceId(2), b"k").is_err(), "workspaces apart");
        cache.forget_all();
        assert!(cache.get(ws, b"k").is_err());
    }

    #[test]
    fn an_offline_cache_serves_and_keeps_nothing() {
        let cache = SessionCache::offline();
        let ws = WorkspaceId(1);
        let generation = cache.get(ws, b"k").unwrap_err();
        cache.keep(generation, ws, b"k".to_vec(), session(5));
        assert!(cache.get(ws, b"k").is_err(), "kept while offline");

        cache.set_online(true);
        let generation = cache.get(ws, b"k").unwrap_err();
        cache.keep(generation, ws, b"k".to_vec(), session(6));
        assert_eq!(cache.get(ws, b"k").unwrap().last_used_at, 6);
        // Going offline forgets: a notification missed while offline cannot leave it stale.
        cache.set_online(false);
        cache.set_online(true);
        assert!(cache.get(ws, b"k").is_err());
    }
}
