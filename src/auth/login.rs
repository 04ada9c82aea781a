//! Checking a login and password, with throttling: failures are counted in storage per
//! login and client address, and per client address, each refusing past the limit; and
//! per login from every address, which only slows the checks down.

use std::net::IpAddr;

use crate::auth::Authentication;
use crate::domain::password;
use crate::domain::user::User;
use crate::domain::{now, WorkspaceId};
use crate::http::error::ApiError;
use crate::http::transport::address_block;
use crate::store::Attempt;

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

impl Authentication {
    /// Checks a login and password, with throttling; signIn and every endpoint use it.
    pub async fn check_password(
        &self,
        ws: WorkspaceId,
        client: IpAddr,
        login: &str,
        password_given: &str,
    ) -> Result<User, ApiError> {
        let config = &self.config;
        let login_key = format!("login:{}{LOGIN_END}", login.trim().to_lowercase());
        let client = address_block(client);
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
            match self
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
        let failures = self
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
        let found = self.store.credentials(ws, login).await?;
        let hash = match &found {
            Some((_, hash)) => hash.clone(),
            None => password::dummy_hash().to_owned(),
        };
        let given = password_given.to_owned();
        let matches = self
            .hashing
            .run(move || password::verify(&hash, &given))
            .await?;
        match found {
            Some((user, _)) if matches => {
                self.store.end_attempt(records, false).await?;
                Ok(user)
            }
            _ => {
                self.store.end_attempt(records, true).await?;
                Err(ApiError::AuthFailed)
            }
        }
    }

    /// Hashes a new password on the hashing threads.
    pub async fn hash_password(&self, password_given: &str) -> Result<String, ApiError> {
        let given = password_given.to_owned();
        self.hashing.run(move || password::hash(&given)).await
    }
}
