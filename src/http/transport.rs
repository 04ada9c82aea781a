//! Connections: TLS with HTTP/1.1 and HTTP/2, the readable refusal of plain HTTP, the
//! trusted-proxy exception, the limits on connections and on the time every read and
//! write of the network may take, and graceful shutdown.
//!
//! The first byte of a connection tells TLS (a handshake record, 0x16) from plain HTTP,
//! so one port serves both the API and the refusal.

mod admission;
mod timing;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::header::{
    HeaderValue, ACCEPT, CACHE_CONTROL, CONNECTION, EXPECT, STRICT_TRANSPORT_SECURITY,
    TRANSFER_ENCODING, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::Instrument;

pub use admission::{address_block, open_file_limit, raise_open_file_limit};
use admission::{Admission, Admitted, Refusal, Throttled};
use timing::{Activity, Answer, Arriving, BodyPace, InFlight};

use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::request_id;
use crate::http::response::{fail_response, Format};

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// At most one warning of a kind (failed accepts, refused connections) this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// HTTP/2 streams open at once on one connection (hyper's default is 200): each may
/// hold a request body, an answer in flight and a database read.
const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// Where a request came from, as the handlers need it.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The client's address (the proxy's `X-Forwarded-For` client behind a trusted proxy).
    pub addr: IpAddr,
}

/// The time limits of a connection (see [`Config`]).
#[derive(Debug, Clone, Copy)]
struct Limits {
    handshake: Duration,
    idle: Duration,
    write: Duration,
    body: BodyPace,
}

/// What every connection shares.
struct Site {
    app: Router,
    trusted_proxies: Arc<Vec<IpAddr>>,
    acceptor: TlsAcceptor,
    builder: Builder<TokioExecutor>,
    limits: Limits,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper starts the head's clock when it waits for a request, so on HTTP/1.1 this
    // also bounds the wait for the next request of a kept-alive connection.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.request_head_timeout);
    // A peer that does not answer a ping is gone: within the head's time, but never
    // sooner than an answer may wait for a slow reader (a pong can queue behind it).
    // Streams at once per connection are bounded like connections per address.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(config.request_head_timeout)
        .keep_alive_timeout(config.request_head_timeout.max(config.write_timeout));
    let site = Arc::new(Site {
        app,
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        acceptor: TlsAcceptor::from(tls),
        builder,
        limits: Limits {
            handshake: config.handshake_timeout,
            idle: config.idle_timeout,
            write: config.write_timeout,
            body: BodyPace {
                timeout: config.body_read_timeout,
                min_bytes_per_sec: config.min_body_bytes_per_sec,
            },
        },
    });
    let admission = Admission::new(
        config.max_connections,
        config.max_connections_per_address,
        config.trusted_proxies.clone(),
    );
    tracing::info!(
        max_connections = admission.max_total(),
        max_connections_per_address = config.max_connections_per_address,
        open_files = open_file_limit(),
        "connection limits"
    );
    let mut accept_warning = Throttled::new(WARNING_INTERVAL);
    let mut refusal_warning = Throttled::new(WARNING_INTERVAL);
    // Every connection holds a receiver; shutdown is told through it, and waits until
    // every receiver is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors and the like: wait instead of spinning.
                        if let Some(left_out) = accept_warning.allow() {
                            tracing::warn!(error = %e, left_out, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let admitted = match admission.admit(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(refusal) => {
                        // Closed at once, before any TLS work.
                        drop(stream);
                        if let Some(left_out) = refusal_warning.allow() {
                            let cap = match refusal {
                                Refusal::TooManyInAll => "connections in all",
                                Refusal::TooManyFromAddress => "connections from one address",
                            };
                            tracing::warn!(client = %peer.ip(), cap, left_out, "connection refused: over the cap");
                        }
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, site.clone(), admitted, stop_rx.clone()));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(stop_rx);
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout passed; closing remaining connections");
    }
}

/// Runs a connection to its end, closes it when its watchdog says so, or tells it to
/// finish gracefully on shutdown.
async fn drive<C: GracefulConnection>(
    conn: C,
    activity: &Activity,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let watchdog = activity.watchdog(limits.idle, limits.write);
    tokio::pin!(conn, watchdog);
    tokio::select! {
        _ = conn.as_mut() => return,
        reason = watchdog.as_mut() => {
            tracing::debug!(reason, "connection closed");
            return;
        }
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn => {}
        _ = watchdog => {}
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    site: Arc<Site>,
    _admitted: Admitted,
    stop: watch::Receiver<bool>,
) {
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == 0x16 => site.acceptor.accept(stream).await.ok().map(Ok),
            Ok(1) => Some(Err(stream)),
            _ => None,
        }
    };
    let _open = crate::metrics::METRICS.open_connections.track();
    let Ok(Some(opened)) = tokio::time::timeout(site.limits.handshake, handshake).await else {
        return;
    };
    let activity = Activity::new();
    let service = {
        let (site, activity) = (site.clone(), activity.clone());
        let tls = opened.is_ok();
        hyper::service::service_fn(move |req| {
            answer(site.clone(), activity.clone(), peer.ip(), tls, req)
        })
    };
    match opened {
        Ok(tls) => {
            let conn = site.builder.serve_connection(TokioIo::new(tls), service);
            drive(conn, &activity, site.limits, stop).await;
        }
        Err(plain) => {
            let conn = site.builder.serve_connection(TokioIo::new(plain), service);
            drive(conn, &activity, site.limits, stop).await;
        }
    }
}

/// Every request: counted in flight until its answer is sent, logged within a span that
/// names its request id, and answered with the headers every answer carries.
async fn answer(
    site: Arc<Site>,
    activity: Arc<Activity>,
    peer: IpAddr,
    tls: bool,
    mut req: Request<Incoming>,
) -> Result<Response<Answer>, Infallible> {
    let in_flight: InFlight = activity.request_started();
    let id = request_id::choose(req.headers());
    let span = tracing::info_span!("request", request_id = id.as_str());
    req.extensions_mut().insert(id.clone());
    let mut res = async {
        if tls {
            secure(&site, ClientInfo { addr: peer }, req).await
        } else {
            plain(&site, peer, req).await
        }
    }
    .instrument(span)
    .await;
    let headers = res.headers_mut();
    let mut id = id.0;
    // Never indexed by HPACK (RFC 7541, 6.2.3): an id does not come back, so indexing it
    // filled the connection's table with ids, and every answer's encoder compared its id
    // with all of them (about 50 comparisons an answer).
    id.set_sensitive(true);
    headers.insert(request_id::X_REQUEST_ID.clone(), id);
    // Nothing this server sends may be cached (answers carry session ids and private
    // data), nor read as another type than it says; a handler's own choice stands.
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !headers.contains_key(X_CONTENT_TYPE_OPTIONS) {
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    Ok(res.map(|body| Answer::new(body, in_flight)))
}

/// `Transfer-Encoding` may only be `chunked`, alone: any other list (`identity,
/// chunked`, `gzip, chunked`) is read differently by different servers and proxies, the
/// stuff of request smuggling.
fn check_transfer_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .peekable();
    if codings.peek().is_none() {
        return Ok(());
    }
    let chunked_alone = codings
        .next()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none();
    if chunked_alone {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "Unsupported Transfer-Encoding: only chunked is accepted",
        ))
    }
}

/// Asks an HTTP/1.1 client to close the connection after this answer (HTTP/2 has no such
/// header: hyper would drop it).
fn close_after(res: &mut axum::response::Response, version: Version) {
    if version < Version::HTTP_2 {
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// A request over TLS (or from a trusted proxy): the API, with HSTS on every answer.
async fn secure(
    site: &Site,
    client: ClientInfo,
    req: Request<Incoming>,
) -> axum::response::Response {
    let version = req.version();
    let mut res = match check_transfer_encoding(req.headers()) {
        Err(e) => {
            // Where such a body ends is in doubt: the connection carries nothing more.
            let mut res = fail_response(Format::of_request(&req), &e);
            close_after(&mut res, version);
            res
        }
        Ok(()) => {
            // A client waiting for `100 Continue` sends no body unless asked to: there
            // is nothing to drain.
            // HTTP/2 resets an unread stream without closing the connection: nothing to
            // drain there.
            let drain = !req.headers().contains_key(EXPECT) && version < http::Version::HTTP_2;
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(client);
            // Where a stalled body's answer finds its format. It is read only then: read
            // for every request, it cost about 1,700 instructions each.
            let asked = (parts.uri.clone(), parts.headers.get(ACCEPT).cloned());
            let body = Arriving::new(body, site.limits.body, drain);
            let stalled = body.stall_flag();
            let res = match site
                .app
                .clone()
                .oneshot(Request::from_parts(parts, body))
                .await
            {
                Ok(res) => res,
                Err(never) => match never {},
            };
            if stalled.load(Ordering::Relaxed) {
                // Whatever the handler made of a body that stopped coming.
                let (uri, accept) = asked;
                let format =
                    Format::from_query(uri.query(), accept.as_ref().and_then(|a| a.to_str().ok()));
                let mut res = fail_response(
                    format,
                    &ApiError::bad_request(format!(
                        "The request body stalled (nothing for {} s, or under {} bytes a second)",
                        site.limits.body.timeout.as_secs(),
                        site.limits.body.min_bytes_per_sec
                    )),
                );
                *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
                close_after(&mut res, version);
                res
            } else {
                res
            }
        }
    };
    res.headers_mut().insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    res
}

/// A plain-HTTP request: served only from a trusted proxy that says the client used
/// HTTPS; refused readably otherwise.
async fn plain(site: &Site, peer: IpAddr, req: Request<Incoming>) -> axum::response::Response {
    let forwarded_https = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if forwarded_https && site.trusted_proxies.contains(&peer) {
        let client = ClientInfo {
            addr: forwarded_client(&req).unwrap_or(peer),
        };
        return secure(site, client, req).await;
    }
    let mut res = fail_response(Format::of_request(&req), &ApiError::HttpsRequired);
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The client the proxy saw: the last address of `X-Forwarded-For`.
fn forwarded_client(req: &Request<Incoming>) -> Option<IpAddr> {
    req.headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .and_then(|a| a.trim().parse().ok())
}
