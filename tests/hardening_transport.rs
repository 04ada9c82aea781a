//! The transport against slow, idle and greedy clients (issue 10): time limits on every
//! read and write of the network, the connection caps, `Transfer-Encoding`, the 413
//! that reaches a client still sending, and the headers every answer carries.
mod common;
use common::*;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use vesper::config::Config;

/// The limits of these tests: the handshake, a request head, a body's wait, an
/// answer's wait for its reader.
const LIMIT: Duration = Duration::from_secs(2);
/// A connection with no request in flight (longer, to tell it from the head's limit).
const IDLE: Duration = Duration::from_secs(3);
/// How late after its limit a connection may close: the watchdog looks again every
/// quarter of a limit, and the machine is busy.
const MARGIN: Duration = Duration::from_millis(1500);

fn short_limits(c: &mut Config) {
    c.handshake_timeout = LIMIT;
    c.request_head_timeout = LIMIT;
    c.body_read_timeout = LIMIT;
    c.idle_timeout = IDLE;
    c.write_timeout = LIMIT;
}

/// A TLS client trusting only this server's self-signed certificate, offering `alpn`.
fn tls_connector(server: &TestServer, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(server.dir.path().join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls(server: &TestServer, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    tls_over(server, alpn, tcp).await
}

async fn tls_over(
    server: &TestServer,
    alpn: &[u8],
    tcp: TcpStream,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tls_connector(server, alpn)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes (an end or a reset), at most until `since + within`;
/// returns what came and when the end came, counted from `since`.
async fn read_until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
    since: Instant,
    within: Duration,
) -> (Vec<u8>, Duration) {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout_at(since + within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection was still open {within:?} later ({} bytes read)",
        all.len()
    );
    (all, since.elapsed())
}

/// The status, head and body of a raw HTTP/1.1 answer (with a Content-Length).
fn parse_answer(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(body.len());
    (status, head.to_ascii_lowercase(), body[..length].to_owned())
}

/// Sends a raw HTTP/1.1 request over TLS and reads the answer up to the close.
async fn raw_exchange(server: &TestServer, request: &str) -> (u16, String, String) {
    let mut stream = tls(server, b"http/1.1").await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let (raw, _) = read_until_closed(&mut stream, Instant::now(), Duration::from_secs(10)).await;
    parse_answer(&raw)
}

// ---- slow and idle connections -----------------------------------------------------------

/// Sends a request head a byte every half second, never ending it; returns when the
/// server closed, counted from the first byte.
async fn trickle_head<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Duration {
    let started = Instant::now();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let write = async {
        for b in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*b]).await.is_err() || writer.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        (_, closed) = read_until_closed(&mut reader, started, LIMIT + MARGIN) => closed,
        _ = write => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_while_other_clients_are_served() {
    // 500 connections and their 500 server ends in one process.
    vesper::http::transport::raise_open_file_limit().unwrap();
    let server = TestServer::start_with(|c| {
        short_limits(c);
        c.max_connections_per_address = 1_000;
    })
    .await;
    // Every tenth over TLS, the rest plain (the readable refusal's path, same limits).
    let mut slow = Vec::new();
    for i in 0..500 {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        if i % 10 == 0 {
            let stream = tls_over(&server, b"http/1.1", tcp).await;
            slow.push(tokio::spawn(trickle_head(stream)));
        } else {
            slow.push(tokio::spawn(trickle_head(tcp)));
        }
    }
    // Meanwhile, new clients (a connection and handshake each) are answered at once.
    let started = Instant::now();
    while started.elapsed() < LIMIT {
        let asked = Instant::now();
        let r = read(
            client()
                .get(server.api("metainfo/getStatuses"))
                .query(&[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_ok();
        let health = client().get(server.https("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "answered in {:?} beside the slow connections",
            asked.elapsed()
        );
    }
    let mut slowest = Duration::ZERO;
    for task in slow {
        let closed = task.await.unwrap();
        assert!(
            closed >= LIMIT - Duration::from_millis(600),
            "closed early: {closed:?}"
        );
        slowest = slowest.max(closed);
    }
    eprintln!("500 slow heads, the last closed after {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_connections_than_its_cap() {
    // A long handshake limit: the held connections send nothing and must stay.
    let server = TestServer::start_with(|c| {
        c.handshake_timeout = Duration::from_secs(30);
        c.max_connections_per_address = 20;
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..25 {
        streams.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let open = still_open(&mut streams).await;
    // The test client's own pooled connection may hold one place.
    let admitted = open.iter().take_while(|o| **o).count();
    assert!(
        (19..=20).contains(&admitted),
        "{admitted} admitted of 25: {open:?}"
    );
    assert!(
        open[admitted..].iter().all(|o| !o),
        "every connection over the cap is closed at once: {open:?}"
    );
    // Places freed are taken again.
    streams.truncate(admitted - 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client().get(server.https("/health")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a new client is served once places are free"
    );
    let mut more = Vec::new();
    for _ in 0..4 {
        more.push(TcpStream::connect(server.addr).await.unwrap());
    }
    assert!(still_open(&mut more).await.iter().all(|o| *o));
}

/// Which of these connections the server has not closed within half a second.
async fn still_open(streams: &mut [TcpStream]) -> Vec<bool> {
    let checks = streams.iter_mut().map(|s| async move {
        let mut buf = [0u8; 1];
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf))
            .await
            .is_err()
    });
    futures_util::future::join_all(checks).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_stay_silent_are_closed() {
    let server = TestServer::start_with(short_limits).await;
    let silent_tcp = async {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        read_until_closed(&mut tcp, started, LIMIT + MARGIN).await.1
    };
    // After the handshake, with no request begun: the idle limit. (hyper's clock for an
    // HTTP/1.1 head starts only once the first bytes chose the protocol.)
    let silent = |alpn: &'static [u8]| {
        let server = &server;
        async move {
            let mut stream = tls(server, alpn).await;
            read_until_closed(&mut stream, Instant::now(), IDLE + MARGIN)
                .await
                .1
        }
    };
    let (tcp, h2, h1) = tokio::join!(silent_tcp, silent(b"h2"), silent(b"http/1.1"));
    assert!(
        tcp >= LIMIT - Duration::from_millis(300),
        "TCP closed at {tcp:?}"
    );
    for closed in [h2, h1] {
        assert!(
            closed >= IDLE - Duration::from_millis(300),
            "closed at {closed:?}"
        );
    }
    eprintln!("silent: TCP {tcp:?}, HTTP/2 {h2:?}, HTTP/1.1 {h1:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_are_closed_when_idle() {
    let server = TestServer::start_with(short_limits).await;
    let h2 = async {
        let stream = tls(&server, b"h2").await;
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let res = send.send_request(health_request()).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
        let answered = Instant::now();
        tokio::time::timeout(IDLE + MARGIN, conn)
            .await
            .expect("the idle HTTP/2 connection is closed")
            .unwrap()
            .ok();
        answered.elapsed()
    };
    let h1 = async {
        let stream = tls(&server, b"http/1.1").await;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let res = send.send_request(health_request()).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
        let answered = Instant::now();
        // HTTP/1.1's wait for the next head is bounded by the head's limit.
        tokio::time::timeout(LIMIT + MARGIN, conn)
            .await
            .expect("the idle HTTP/1.1 connection is closed")
            .unwrap()
            .ok();
        answered.elapsed()
    };
    let (h2, h1) = tokio::join!(h2, h1);
    assert!(
        h2 >= IDLE - Duration::from_millis(300),
        "HTTP/2 closed at {h2:?}"
    );
    eprintln!("idle after an answer: HTTP/2 {h2:?}, HTTP/1.1 {h1:?}");
}

fn health_request() -> http::Request<http_body_util::Empty<Bytes>> {
    http::Request::get("https://localhost/health")
        .body(http_body_util::Empty::new())
        .unwrap()
}

/// A form POST over raw HTTP/1.1 declaring `length` bytes of body.
fn form_head(call: &str, length: usize) -> String {
    format!(
        "POST /api/v2/service/post/{call} HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_coming_gets_a_408_and_the_connection_closes() {
    let server = TestServer::start_with(short_limits).await;
    let sid = server.admin().await;
    // Part of the declared body, then nothing.
    let mut stream = tls(&server, b"http/1.1").await;
    let body = format!("sessionId={sid}&group[name]=");
    stream
        .write_all(form_head("projectsgroups/add", 1_000).as_bytes())
        .await
        .unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (raw, closed) = read_until_closed(&mut stream, started, LIMIT + MARGIN).await;
    let (status, _, text) = parse_answer(&raw);
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("stalled"), "{text}");
    // In the format the request asked for (`Accept: application/json`), read only now.
    assert!(text.trim_start().starts_with('{'), "{text}");
    assert!(closed >= LIMIT - Duration::from_millis(300), "{closed:?}");
    // The same over HTTP/2: the stream gets the 408.
    let stream = tls(&server, b"h2").await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let first = futures_util::stream::once(async move {
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(body)))
    });
    let stalled = Box::pin(futures_util::StreamExt::chain(
        first,
        futures_util::stream::pending(),
    ));
    let req = http::Request::post(
        "https://localhost/api/v2/service/post/projectsgroups/add?retType=json",
    )
    .header("content-type", "application/x-www-form-urlencoded")
    .header("content-length", "1000")
    .body(StreamBody::new(stalled))
    .unwrap();
    let started = Instant::now();
    let res = tokio::time::timeout(LIMIT + MARGIN, send.send_request(req))
        .await
        .expect("an answer within the limit")
        .unwrap();
    assert_eq!(res.status(), 408);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "fail");
    assert!(started.elapsed() >= LIMIT - Duration::from_millis(300));
    let all = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    assert_eq!(all.json()["total"], 0, "nothing stored from a stalled body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_under_the_minimum_rate_gets_a_408() {
    let server = TestServer::start_with(short_limits).await;
    let mut stream = tls(&server, b"http/1.1").await;
    stream
        .write_all(form_head("projectsgroups/add", 100_000).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = tokio::io::split(stream);
    // A byte every 100 ms: never a wait as long as the limit, far under 500 bytes a second.
    let trickle = async {
        loop {
            if writer.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    let (raw, closed) = tokio::select! {
        read = read_until_closed(&mut reader, started, LIMIT + MARGIN) => read,
        _ = trickle => unreachable!(),
    };
    let (status, _, text) = parse_answer(&raw);
    assert_eq!(status, 408, "{text}");
    eprintln!("a trickling body was cut after {closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_an_answer_is_disconnected() {
    let server = TestServer::start_with(short_limits).await;
    let sid = server.admin().await;
    let project = server
        .call_json(
            "projects/add",
            &[("sessionId", &sid), ("project[name]", "Site")],
        )
        .await;
    let project = project.json()["project"]["id"].as_str().unwrap().to_owned();
    let task = server
        .call_json(
            "tasks/add",
            &[
                ("sessionId", &sid),
                ("task[name]", "Build"),
                ("task[projectId]", &project),
            ],
        )
        .await;
    let task = task.json()["task"]["id"].as_str().unwrap().to_owned();
    let activity = server
        .call_json(
            "activity/add",
            &[("sessionId", &sid), ("activity[taskId]", &task)],
        )
        .await;
    let activity = activity.json()["activity"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    const SIZE: usize = 8 * 1024 * 1024;
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.clone())
        .text("activityId", activity)
        .text("retType", "json")
        .part(
            "files[1]",
            reqwest::multipart::Part::bytes(vec![7u8; SIZE]).file_name("big.bin"),
        );
    let r = read(
        server
            .client
            .post(server.api("activity/attachFiles"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_ok();
    let file = r.json()["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v2/service/get/activity/downloadFile?sessionId={sid}&id={file}");

    // HTTP/1.1 with a small receive window: the server's writes block.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let mut stream = tls_over(&server, b"http/1.1", tcp).await;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // HTTP/2: the answer's stream window runs out while the body is not read.
    let h2 = tls(&server, b"h2").await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2))
            .await
            .unwrap();
    tokio::spawn(conn);
    let res = send
        .send_request(
            http::Request::get(format!("https://localhost{path}"))
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    tokio::time::sleep(LIMIT + MARGIN + Duration::from_secs(1)).await;
    let (raw, _) = read_until_closed(&mut stream, Instant::now(), Duration::from_secs(5)).await;
    assert!(
        raw.len() < SIZE,
        "HTTP/1.1: the download was cut short, {} bytes came",
        raw.len()
    );
    let mut body = res.into_body();
    let mut received = 0;
    let cut = loop {
        match body.frame().await {
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(
        cut && received < SIZE,
        "HTTP/2: the download was cut short, {received} bytes came"
    );
    // The server is fine.
    server
        .get("metainfo/getStatuses", &[("sessionId", &sid)])
        .await
        .assert_ok();
}

// ---- request framing ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_other_than_chunked_alone_is_refused() {
    let server = TestServer::start().await;
    let target = format!(
        "/api/v2/service/get/metainfo/getStatuses?login={ADMIN_EMAIL}&password={ADMIN_PASSWORD}"
    );
    let request = |encoding: &str, ret: &str| {
        format!(
            "POST {target}{ret} HTTP/1.1\r\nHost: localhost\r\n{encoding}\
             Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n\
             3\r\na=b\r\n0\r\n\r\n"
        )
    };
    for encoding in [
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
    ] {
        let (status, head, body) = raw_exchange(&server, &request(encoding, "&retType=json")).await;
        assert_eq!(status, 400, "{encoding}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["code"], "bad_request", "{body}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("Transfer-Encoding"),
            "{body}"
        );
        assert!(head.contains("cache-control: no-store"), "{head}");
        let (status, _, body) = raw_exchange(&server, &request(encoding, "")).await;
        assert_eq!(status, 400);
        let r = Resp {
            status,
            headers: Default::default(),
            body,
        };
        r.assert_fail(400, "bad_request");
    }
    let (status, _, body) = raw_exchange(
        &server,
        &request("Transfer-Encoding: chunked\r\n", "&retType=json"),
    )
    .await;
    assert_eq!(status, 200, "chunked alone is read: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_form_gets_its_413_over_http1_and_http2() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let h1 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .build()
        .unwrap();
    for (client, version) in [
        (&server.client, reqwest::Version::HTTP_2),
        (&h1, reqwest::Version::HTTP_11),
    ] {
        for mib in [2, 8] {
            let name = "x".repeat(mib * 1024 * 1024);
            let r = client
                .post(server.api("projectsgroups/add"))
                .form(&[("sessionId", sid.as_str()), ("group[name]", &name)])
                .send()
                .await
                .unwrap_or_else(|e| panic!("{version:?}, {mib} MiB: no answer: {e:?}"));
            assert_eq!(r.version(), version);
            let r = read(r).await;
            r.assert_fail(413, "too_large");
        }
    }
    // The connections still serve.
    for client in [&server.client, &h1] {
        let r = read(
            client
                .get(server.api("metainfo/getStatuses"))
                .query(&[("sessionId", sid.as_str())])
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_ok();
    }
}

// ---- headers ---------------------------------------------------------------------------

fn assert_not_stored_nor_sniffed(r: &Resp, what: &str) {
    assert_eq!(
        r.headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(
        r.headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_says_no_store_and_nosniff() {
    let server = TestServer::start().await;
    let r = server
        .call_json(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_ok();
    assert_not_stored_nor_sniffed(&r, "signIn");
    let r = server
        .call_json(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", "wrong-password")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_not_stored_nor_sniffed(&r, "a failed signIn");
    let r = read(
        server
            .client
            .get(server.https("/nowhere"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_not_stored_nor_sniffed(&r, "an unknown path");
    let r = read(
        server
            .client
            .get(server.https("/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_not_stored_nor_sniffed(&r, "/health");
    let r = read(
        reqwest::Client::new()
            .get(format!(
                "http://{}/api/v2/service/get/metainfo/getStatuses",
                server.addr
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "https_required");
    assert_not_stored_nor_sniffed(&r, "the plain-HTTP refusal");
}
