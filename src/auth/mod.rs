//! Authentication: who is calling, by a session id, a personal API token
//! (`Authorization: Bearer vsp_...`, docs/tokens.md) or a login and password checked on
//! every request; the sessions signIn starts and signOut ends; the throttling of login
//! failures ([`login`]); and the threads that hash passwords ([`hashing`]). It sits
//! below the API, which asks it for the caller, and above storage.
//!
//! Every login failure answers the same (`auth_failed`) after the same work: an unknown
//! login is checked against a dummy hash. Failures are counted in storage, so every node
//! sees them: per login and client address, and per client address, each refusing past
//! the limit; and per login from every address, which only slows the checks down, so
//! that nobody can lock another person out of their account.

mod hashing;
mod login;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::HeaderMap;

use crate::config::Config;
use crate::domain::password;
use crate::domain::policy::Actor;
use crate::domain::token::{self, Scope};
use crate::domain::user::User;
use crate::domain::{now, WorkspaceId};
use crate::http::args::Args;
use crate::http::error::ApiError;
use crate::store::Store;
use hashing::Hashing;

/// What authenticating needs: the sessions and login failures in storage, their limits,
/// and the hashing threads.
pub struct Authentication {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    hashing: Hashing,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// Set when the caller came with a session (signOut ends it).
    pub session_hash: Option<Vec<u8>>,
    /// Set when the caller came with a personal API token.
    pub token: Option<TokenGrant>,
}

/// The token a caller came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGrant {
    pub id: i64,
    pub scope: Scope,
}

impl Caller {
    /// Refuses a write to a caller whose token's scope is `read`, before anything runs.
    pub fn check_scope(&self, write: bool) -> Result<(), ApiError> {
        match self.token {
            Some(t) if write && t.scope == Scope::Read => Err(ApiError::forbidden(
                "This API token has the read scope: it cannot call methods that write",
            )),
            _ => Ok(()),
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user.id,
            level: self.user.security_level,
            can_view_profiles: self.user.can_view_profiles,
        }
    }
}

impl Authentication {
    /// Starts the hashing threads, `hashing_threads` of them.
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        hashing_threads: usize,
    ) -> std::io::Result<Authentication> {
        Ok(Authentication {
            store,
            config,
            hashing: Hashing::new(hashing_threads)?,
        })
    }

    /// Authenticates a request by session id, API token, or login and password. A token
    /// is taken from `Authorization: Bearer` only: one sent as a session id (in the
    /// query string, say, where logs and proxies keep it) is refused, 400.
    pub async fn authenticate(
        &self,
        ws: WorkspaceId,
        client: IpAddr,
        args: &Args,
        headers: &HeaderMap,
    ) -> Result<Caller, ApiError> {
        if let Some((credential, bearer)) = session_id(args, headers)? {
            if token::is_secret(&credential) {
                if !bearer {
                    return Err(ApiError::bad_request(
                        "An API token is accepted only in the Authorization: Bearer header",
                    ));
                }
                return self.by_token(ws, &credential).await;
            }
            return self.by_session(ws, &credential).await;
        }
        match credentials(args, headers)? {
            Some((login, password)) => Ok(Caller {
                user: self.check_password(ws, client, &login, &password).await?,
                session_hash: None,
                token: None,
            }),
            None => Err(ApiError::AuthRequired),
        }
    }

    /// Starts a session for `user_id`; answers its id, which only the caller ever holds
    /// (storage keeps its hash).
    pub async fn start_session(&self, ws: WorkspaceId, user_id: i64) -> Result<String, ApiError> {
        let (session_id, hash) = password::new_session_id();
        self.store.add_session(ws, hash, user_id, now()).await?;
        Ok(session_id)
    }

    /// Ends the caller's session at once; a caller with login and password has none.
    pub async fn end_session(&self, caller: &Caller) -> Result<(), ApiError> {
        if let Some(hash) = &caller.session_hash {
            self.store.remove_session(hash.clone()).await?;
        }
        Ok(())
    }

    /// The caller a session id names, as every request with a session is checked: the
    /// web page's cookie holds such an id.
    pub async fn session_caller(
        &self,
        ws: WorkspaceId,
        session_id: &str,
    ) -> Result<Caller, ApiError> {
        self.by_session(ws, session_id).await
    }

    async fn by_session(&self, ws: WorkspaceId, session_id: &str) -> Result<Caller, ApiError> {
        let hash = password::session_hash(session_id);
        let session = self
            .store
            .session(ws, hash.clone())
            .await?
            .ok_or(ApiError::AuthFailed)?;
        let now = now();
        let config = &self.config;
        if now - session.last_used_at > config.session_idle_secs
            || now - session.created_at > config.session_max_secs
        {
            self.store.remove_session(hash).await?;
            return Err(ApiError::SessionExpired);
        }
        // Recording every use would make every read a durable write; a coarse "last used"
        // (a tenth of the idle limit, at most a minute) keeps expiry honest and reads cheap.
        let touch_every = (config.session_idle_secs / 10).clamp(0, 60);
        if now - session.last_used_at >= touch_every {
            self.store.touch_session(hash.clone(), now).await?;
        }
        Ok(Caller {
            user: session.user,
            session_hash: Some(hash),
            token: None,
        })
    }

    /// The caller an API token names: its user as the user is now (level, activity), so
    /// that a removal or a demotion counts at the next call, on every node.
    async fn by_token(&self, ws: WorkspaceId, secret: &str) -> Result<Caller, ApiError> {
        let (user, token) = self
            .store
            .token_by_hash(ws, token::hash(secret))
            .await?
            .ok_or(ApiError::AuthFailed)?;
        let now = now();
        if token.is_expired(now) {
            return Err(ApiError::SessionExpired);
        }
        // As for sessions: a coarse "last used", at most once a minute, not a write per read.
        if token.last_used_at.is_none_or(|t| now - t >= 60) {
            self.store.touch_token(ws, token.id, now).await?;
        }
        Ok(Caller {
            user,
            session_hash: None,
            token: Some(TokenGrant {
                id: token.id,
                scope: token.scope,
            }),
        })
    }

    /// Deletes ended sessions, and login failures that left the window, now and then, so
    /// neither table grows without bound. Runs until dropped.
    pub async fn sweep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let now = now();
            let config = &self.config;
            match self
                .store
                .remove_stale_sessions(
                    now - config.session_idle_secs,
                    now - config.session_max_secs,
                )
                .await
            {
                Ok(n) if n > 0 => tracing::info!(removed = n, "swept ended sessions"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "session sweep failed"),
            }
            // Failures that left the window, of logins and addresses never tried again.
            let before = now - config.login_failure_window_secs.max(60);
            if let Err(e) = self.store.forget_login_failures(before).await {
                tracing::warn!(error = %e, "login failure sweep failed");
            }
        }
    }
}

/// The session id (or API token) from the `sessionId` argument, `X-Session-Id` or a
/// Bearer token, and whether it came as the Bearer token.
fn session_id(args: &Args, headers: &HeaderMap) -> Result<Option<(String, bool)>, ApiError> {
    if let Some(id) = args.scalar("sessionId").text()?.value() {
        return Ok(Some((id, false)));
    }
    if let Some(id) = headers.get("x-session-id").and_then(|v| v.to_str().ok()) {
        return Ok(Some((id.trim().to_owned(), false)));
    }
    let bearer = authorization(headers)
        .and_then(|v| strip_scheme(v, "bearer"))
        .map(|t| (t.trim().to_owned(), true));
    Ok(bearer)
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Login and password from the arguments or HTTP Basic.
pub fn credentials(args: &Args, headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let login = args.scalar("login").text()?.value();
    let password = args.scalar("password").text()?.value();
    if let (Some(l), Some(p)) = (login, password) {
        return Ok(Some((l, p)));
    }
    let basic = authorization(headers)
        .and_then(|v| strip_scheme(v, "basic"))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(l, p)| (l.to_owned(), p.to_owned()))
        });
    Ok(basic)
}
