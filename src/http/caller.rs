//! Who is calling: a session id, or a login and password, checked on every request.
//!
//! Every login failure answers the same (`auth_failed`) after the same work: an unknown
//! login is checked against a dummy hash. Failures are counted in storage, so every node
//! sees them: per login and client address, and per client address, each refusing past
//! the limit; and per login from every address, which only slows the checks down, so
//! that nobody can lock another person out of their account.

use std::net::IpAddr;

use base64::Engine;
use http::HeaderMap;

use crate::domain::password;
use crate::domain::policy::Actor;
use crate::domain::user::User;
use crate::domain::{now, WorkspaceId};
use crate::http::args::Args;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::Attempt;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// Set when the caller came with a session (signOut ends it).
    pub session_hash: Option<Vec<u8>>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user.id,
            level: self.user.security_level,
            can_view_profiles: self.user.can_view_profiles,
        }
    }
}

/// Authenticates a request by session id or by login and password.
pub async fn authenticate(
    state: &AppState,
    ws: WorkspaceId,
    client: IpAddr,
    args: &Args,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    if let Some(session_id) = session_id(args, headers)? {
        return by_session(state, ws, &session_id).await;
    }
    match credentials(args, headers)? {
        Some((login, password)) => Ok(Caller {
            user: check_password(state, ws, client, &login, &password).await?,
            session_hash: None,
        }),
        None => Err(ApiError::AuthRequired),
    }
}

/// The session id from the `sessionId` argument, `X-Session-Id` or a Bearer token.
fn session_id(args: &Args, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(id) = args.scalar("sessionId").text()?.value() {
        return Ok(Some(id));
    }
    if let Some(id) = headers.get("x-session-id").and_then(|v| v.to_str().ok()) {
        return Ok(Some(id.trim().to_owned()));
    }
    let bearer = authorization(headers)
        .and_then(|v| strip_scheme(v, "bearer"))
        .map(|t| t.trim().to_owned());
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

async fn by_session(
    state: &AppState,
    ws: WorkspaceId,
    session_id: &str,
) -> Result<Caller, ApiError> {
    let hash = password::session_hash(session_id);
    let session = state
        .store
        .session(ws, hash.clone())
        .await?
        .ok_or(ApiError::AuthFailed)?;
    let now = now();
    let config = &state.config;
    if now - session.last_used_at > config.session_idle_secs
        || now - session.created_at > config.session_max_secs
    {
        state.store.remove_session(hash).await?;
        return Err(ApiError::SessionExpired);
    }
    // Recording every use would make every read a durable write; a coarse "last used"
    // (a tenth of the idle limit, at most a minute) keeps expiry honest and reads cheap.
    let touch_every = (config.session_idle_secs / 10).clamp(0, 60);
    if now - session.last_used_at >= touch_every {
        state.store.touch_session(hash.clone(), now).await?;
    }
    Ok(Caller {
        user: session.user,
        session_hash: Some(hash),
    })
}

/// Ends the login in a throttling subject; the subjects of one login, from every
/// address, sort from it to `LOGIN_RANGE_END`. (A control character: arguments refuse
/// them, so a login cannot hold it.)
const LOGIN_END: char = '\u{1}';
const LOGIN_RANGE_END: char = '\u{2}';
/// The wait before checking a login that failed the limit's number of times from any
/// address in the window.
const LOGIN_SLOWDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// The lock a slowed login's checks take in turn; logins share a few locks by hash, which
/// only makes two slowed logins wait for each other now and then.
fn slow_lane(login_key: &str) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    static LANES: [tokio::sync::Mutex<()>; 64] = [const { tokio::sync::Mutex::const_new(()) }; 64];
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    login_key.hash(&mut hasher);
    &LANES[(hasher.finish() % LANES.len() as u64) as usize]
}

/// Checks a login and password, with throttling; signIn and every endpoint use it.
pub async fn check_password(
    state: &AppState,
    ws: WorkspaceId,
    client: IpAddr,
    login: &str,
    password_given: &str,
) -> Result<User, ApiError> {
    let config = &state.config;
    let login_key = format!("login:{}{LOGIN_END}", login.trim().to_lowercase());
    let client = crate::http::transport::address_block(client);
    let subjects = [
        format!("{login_key}addr:{client}"),
        format!("addr:{client}"),
    ];
    // The attempt is recorded before the hash is checked, so a burst of concurrent
    // guesses (on any node) cannot slip past the limit; right passwords in such a burst
    // wait their turn instead of being refused.
    let records = loop {
        // Read afresh each time round: a pending record older than a minute (a check
        // that died) stops counting, so the wait always ends.
        let now = now();
        let since = now - config.login_failure_window_secs;
        match state
            .store
            .begin_attempt(
                ws,
                subjects.to_vec(),
                now,
                since,
                config.login_failure_limit,
            )
            .await?
        {
            Attempt::Admitted(records) => break records,
            Attempt::Throttled { oldest } => {
                let retry_after = oldest + config.login_failure_window_secs - now;
                return Err(ApiError::TooManyRequests {
                    retry_after: retry_after.max(1) as u64,
                });
            }
            Attempt::Busy => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    // A login that failed often from anywhere is checked slowly instead of refused: one
    // check at a time on this node, each after a wait, so a guesser spread over many
    // addresses gets about one guess a second, and the login's owner still signs in.
    let since = now() - config.login_failure_window_secs;
    let login_end = format!("{}{}", &login_key[..login_key.len() - 1], LOGIN_RANGE_END);
    let lane = slow_lane(&login_key);
    let failures = state
        .store
        .failures_between(ws, login_key, login_end, since)
        .await?;
    let _one_at_a_time = if failures >= config.login_failure_limit {
        let turn = lane.lock().await;
        tokio::time::sleep(LOGIN_SLOWDOWN).await;
        Some(turn)
    } else {
        None
    };
    let found = state.store.credentials(ws, login).await?;
    let hash = match &found {
        Some((_, hash)) => hash.clone(),
        None => password::dummy_hash().to_owned(),
    };
    let given = password_given.to_owned();
    let matches = state
        .hashing
        .run(move || password::verify(&hash, &given))
        .await?;
    match found {
        Some((user, _)) if matches => {
            state.store.end_attempt(records, false).await?;
            Ok(user)
        }
        _ => {
            state.store.end_attempt(records, true).await?;
            Err(ApiError::AuthFailed)
        }
    }
}

/// Hashes a new password on the hashing threads.
pub async fn hash_password(state: &AppState, password_given: &str) -> Result<String, ApiError> {
    let given = password_given.to_owned();
    state.hashing.run(move || password::hash(&given)).await
}

/// A few threads of their own for Argon2. Each hash takes 19 MiB; on the shared
/// blocking pool every thread that ever hashed would keep that much in its allocator
/// arena, so memory grew with the number of threads. Here it is bounded by the count,
/// and so is the CPU a burst of logins can take.
pub struct Hashing {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Hashing {
    pub fn new(threads: usize) -> std::io::Result<Hashing> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("vesper-argon2-{i}"))
                .spawn(move || loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(Hashing { jobs })
    }

    /// Runs `work` on a hashing thread and waits for its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(work());
            }))
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("the hashing threads stopped")))?;
        answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a hashing job failed")))
    }
}
