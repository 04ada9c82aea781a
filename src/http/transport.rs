//! Connections: TLS with HTTP/1.1 and HTTP/2, the readable refusal of plain HTTP, the
//! trusted-proxy exception, and graceful shutdown.
//!
//! The first byte of a connection tells TLS (a handshake record, 0x16) from plain HTTP,
//! so one port serves both the API and the refusal.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::header::{HeaderValue, CONNECTION, STRICT_TRANSPORT_SECURITY};
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::http::error::ApiError;
use crate::http::response::{fail_response, Format};

/// How long a new connection may take to send its first byte and finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a request came from, as the handlers need it.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The client's address (the proxy's `X-Forwarded-For` client behind a trusted proxy).
    pub addr: IpAddr,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    trusted_proxies: Arc<Vec<IpAddr>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
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
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(
                    stream,
                    peer,
                    acceptor.clone(),
                    app.clone(),
                    trusted_proxies.clone(),
                    stop_rx.clone(),
                ));
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

/// Runs a connection to its end, or tells it to finish gracefully on shutdown. (A macro
/// because the TLS and plain connections are different types.)
macro_rules! drive {
    ($conn:ident, $stop:ident) => {{
        tokio::pin!($conn);
        tokio::select! {
            _ = $conn.as_mut() => return,
            _ = $stop.wait_for(|s| *s) => {}
        }
        $conn.as_mut().graceful_shutdown();
        let _ = $conn.await;
    }};
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    trusted_proxies: Arc<Vec<IpAddr>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if first[0] == 0x16 {
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            _ => return,
        };
        let client = ClientInfo { addr: peer.ip() };
        let service = hyper::service::service_fn(move |req| secure(app.clone(), client, req));
        let conn = builder.serve_connection(TokioIo::new(tls), service);
        drive!(conn, stop);
    } else {
        let service = hyper::service::service_fn(move |req| {
            plain(app.clone(), peer.ip(), trusted_proxies.clone(), req)
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        drive!(conn, stop);
    }
}

/// A request over TLS: the API, with HSTS on every answer.
async fn secure(
    app: Router,
    client: ClientInfo,
    mut req: Request<Incoming>,
) -> Result<axum::response::Response, Infallible> {
    req.extensions_mut().insert(client);
    let mut res = app.oneshot(req).await?;
    res.headers_mut().insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    Ok(res)
}

/// A plain-HTTP request: served only from a trusted proxy that says the client used
/// HTTPS; refused readably otherwise.
async fn plain(
    app: Router,
    peer: IpAddr,
    trusted_proxies: Arc<Vec<IpAddr>>,
    req: Request<Incoming>,
) -> Result<axum::response::Response, Infallible> {
    let forwarded_https = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if forwarded_https && trusted_proxies.contains(&peer) {
        let client = ClientInfo {
            addr: forwarded_client(&req).unwrap_or(peer),
        };
        return secure(app, client, req).await;
    }
    let format = Format::from_query(
        req.uri().query(),
        req.headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let mut res = fail_response(format, &ApiError::HttpsRequired);
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(res)
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
