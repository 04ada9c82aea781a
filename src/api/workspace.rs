//! Which workspace a request is for (section 12 of the contract): with a base domain, the
//! one its host names (`NAME.<base domain>`); without, the default one.
//!
//! Names found are kept for a few seconds, so a request costs a map lookup, not a
//! database read. A workspace made or removed by `vesper workspace` on any node is seen
//! within that time; a removed one's id is never reused (see `store::workspaces`), so a
//! name kept a moment too long finds nothing, never another workspace's rows.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, Uri};

use crate::domain::workspace::name_in_host;
use crate::domain::WorkspaceId;
use crate::http::error::ApiError;
use crate::store::Store;

/// How long a name found stays trusted.
const KEEP_FOUND: Duration = Duration::from_secs(5);
/// Past this many names the cache starts over (each costs a database read to refill).
const CAPACITY: usize = 10_000;

/// What a request's host asks for.
pub enum Requested {
    /// No base domain is set: the one default workspace.
    Default,
    /// A host that is not `NAME.<base domain>`.
    Nothing,
    Named(String),
}

/// Chooses each request's workspace.
pub struct Workspaces {
    /// Lower case, without a leading dot; `None` serves the default workspace alone.
    base_domain: Option<String>,
    store: Arc<dyn Store>,
    found: RwLock<HashMap<String, (WorkspaceId, Instant)>>,
}

impl Workspaces {
    pub fn new(base_domain: Option<String>, store: Arc<dyn Store>) -> Workspaces {
        Workspaces {
            base_domain,
            store,
            found: RwLock::default(),
        }
    }

    /// The workspace of a request, by its host: the HTTP/2 `:authority` (the URI's
    /// authority) or the HTTP/1.1 `Host` header. `UnknownWorkspace` when the host names
    /// none of this server's.
    pub async fn of_request(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<WorkspaceId, ApiError> {
        self.find(self.requested(uri, headers)).await
    }

    /// What a request's host asks for, taken apart from the request so that a future
    /// that finds it need not hold the request.
    pub fn requested(&self, uri: &Uri, headers: &HeaderMap) -> Requested {
        let Some(base_domain) = &self.base_domain else {
            return Requested::Default;
        };
        let host = uri.authority().map(|a| a.as_str()).or_else(|| {
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        match host.and_then(|h| name_in_host(h, base_domain)) {
            Some(name) => Requested::Named(name),
            None => Requested::Nothing,
        }
    }

    pub async fn find(&self, requested: Requested) -> Result<WorkspaceId, ApiError> {
        match requested {
            Requested::Default => Ok(WorkspaceId::DEFAULT),
            Requested::Nothing => Err(ApiError::UnknownWorkspace),
            Requested::Named(name) => self.by_name(name).await,
        }
    }

    async fn by_name(&self, name: String) -> Result<WorkspaceId, ApiError> {
        let now = Instant::now();
        if let Some((ws, at)) = self.read_cache().get(&name) {
            if now.duration_since(*at) < KEEP_FOUND {
                return Ok(*ws);
            }
        }
        let found = self.store.workspace_by_name(name.clone()).await?;
        let mut cache = self.found.write().unwrap_or_else(|p| p.into_inner());
        match found {
            Some(ws) => {
                if cache.len() >= CAPACITY {
                    cache.clear();
                }
                cache.insert(name, (ws, now));
                Ok(ws)
            }
            None => {
                cache.remove(&name);
                Err(ApiError::UnknownWorkspace)
            }
        }
    }

    fn read_cache(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, (WorkspaceId, Instant)>> {
        self.found.read().unwrap_or_else(|p| p.into_inner())
    }
}
