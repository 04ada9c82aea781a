//! Keeps each node's cached sessions true across nodes. Every write that changes a
//! session or a user announces it in its own transaction (`NOTIFY`, delivered when and
//! only if it commits); every node listens on a connection of its own and forgets what
//! others announce. While that connection is down the node caches nothing, and it starts
//! from empty once it listens again, so a notification missed in between cannot leave a
//! signed-out session or a removed user's level behind.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::store::session_cache::SessionCache;
use crate::store::Result;

/// What an announcement of "users, or many sessions, changed" carries; one session is
/// named by its token hash in hex.
pub const EVERYONE: &str = "*";

/// How often the listening connection is asked to answer, and how long it may take: a
/// connection that died without closing stops the cache within their sum.
const HEARTBEAT: Duration = Duration::from_secs(5);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// The wait before listening again after the connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// Announces, in the transaction `c`, that a session (`hex` of its hash) or everyone
/// (`EVERYONE`) changed.
pub async fn announce(c: &impl GenericClient, what: &str) -> Result<()> {
    let stmt = c
        .prepare_cached("SELECT pg_notify('vesper_sessions', $1)")
        .await?;
    c.execute(&stmt, &[&what]).await?;
    Ok(())
}

/// Listens for as long as the node runs, reconnecting when the connection fails.
pub fn spawn(mut config: Config, cache: Arc<SessionCache>) -> tokio::task::JoinHandle<()> {
    config.application_name("vesper listener");
    tokio::spawn(async move {
        // Logged when hearing stops and when it resumes, not at every retry of an outage.
        let mut deaf = false;
        loop {
            let heard = listen(&config, &cache, &mut deaf).await;
            cache.set_online(false);
            if !deaf {
                let e = heard.err().unwrap_or_else(|| anyhow::anyhow!("ended"));
                tracing::warn!(error = %e, "not hearing other nodes' session changes; caching none");
                deaf = true;
            }
            tokio::time::sleep(RETRY).await;
        }
    })
}

/// One listening connection, until it fails.
async fn listen(config: &Config, cache: &Arc<SessionCache>, deaf: &mut bool) -> anyhow::Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let heard = cache.clone();
    let mut messages = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(n) = message? {
                forget(&heard, n.payload());
            }
        }
        anyhow::Ok(())
    });
    let ended = tokio::select! {
        ended = &mut messages => ended.map_err(anyhow::Error::from).and_then(|r| r),
        failed = heartbeat(&client, cache, deaf) => failed,
    };
    messages.abort();
    ended.and(Err(anyhow::anyhow!("the listening connection closed")))
}

/// Listens, serves from the cache, then checks the connection now and then.
async fn heartbeat(
    client: &tokio_postgres::Client,
    cache: &SessionCache,
    deaf: &mut bool,
) -> anyhow::Result<()> {
    client.batch_execute("LISTEN vesper_sessions").await?;
    // Whatever changed before this point is read afresh.
    cache.set_online(true);
    if std::mem::take(deaf) {
        tracing::info!("hearing other nodes' session changes again");
    }
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        tokio::time::timeout(HEARTBEAT_TIMEOUT, client.batch_execute(""))
            .await
            .map_err(|_| anyhow::anyhow!("the listening connection did not answer"))??;
    }
}

fn forget(cache: &SessionCache, payload: &str) {
    match hex::decode(payload) {
        Ok(token_hash) if payload != EVERYONE => cache.forget(&token_hash),
        _ => cache.forget_all(),
    }
}
