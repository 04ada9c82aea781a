//! HTTPS, the plain-HTTP refusal, the trusted-proxy mode, HTTP/2, HSTS, and the limits
//! of the argument parser as a client meets them.
mod common;
use common::*;

fn plain_client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_https_port_gets_a_readable_refusal() {
    let server = TestServer::start().await;
    let url = format!(
        "http://{}/api/v2/service/get/metainfo/getStatuses",
        server.addr
    );
    let r = read(plain_client().get(&url).send().await.unwrap()).await;
    r.assert_fail(400, "https_required");
    assert!(r.body.starts_with("<?xml"));
    let r = read(
        plain_client()
            .get(format!("{url}?retType=json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "https_required");
    let r = read(
        plain_client()
            .get(&url)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "https_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_claiming_https_from_an_untrusted_address_is_refused() {
    let server = TestServer::start().await;
    let url = format!(
        "http://{}/api/v2/service/get/metainfo/getStatuses",
        server.addr
    );
    let r = read(
        plain_client()
            .get(&url)
            .header("X-Forwarded-Proto", "https")
            .query(&[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "https_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_may_forward_https_requests_over_plain_http() {
    let server =
        TestServer::start_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let url = format!(
        "http://{}/api/v2/service/get/metainfo/getStatuses",
        server.addr
    );
    let creds = [("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)];
    let r = read(
        plain_client()
            .get(&url)
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-For", "203.0.113.9")
            .query(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_ok();
    assert!(r.headers.contains_key("strict-transport-security"));
    // Without the header, even the trusted proxy is refused.
    let r = read(plain_client().get(&url).query(&creds).send().await.unwrap()).await;
    r.assert_fail(400, "https_required");
    let r = read(
        plain_client()
            .get(&url)
            .header("X-Forwarded-Proto", "http")
            .query(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "https_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_carry_hsts_over_http1_and_http2() {
    let server = TestServer::start().await;
    let r = server
        .client
        .get(server.https("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let h1 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .build()
        .unwrap();
    let r = h1
        .get(server.api("metainfo/getPriorities"))
        .query(&[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert!(r.headers().contains_key("strict-transport-security"));
    assert_eq!(r.status(), 200);
    // Errors carry it too.
    let r = server
        .client
        .get(server.https("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("strict-transport-security"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_signed_certificate_is_made_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let server = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    let cert = data.join("tls/cert.pem");
    let first = std::fs::read(&cert).unwrap();
    assert!(String::from_utf8_lossy(&first).contains("BEGIN CERTIFICATE"));
    server.stop().await;
    let again = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    assert!(
        std::fs::read(&cert).unwrap() == first,
        "the same certificate after a restart"
    );
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_certificate_replaces_the_self_signed_one() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["vesper.test".into()]).unwrap();
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let server = TestServer::start_with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    assert!(!server.dir.path().join("tls/cert.pem").exists());
    // A client that trusts only the configured certificate connects.
    let strict = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap())
        .resolve("vesper.test", server.addr)
        .build()
        .unwrap();
    let r = strict
        .get(format!("https://vesper.test:{}/health", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_nested_too_deep_or_too_many_are_refused() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name][a][b][c]", "x")],
        )
        .await;
    r.assert_fail(400, "limit_exceeded");
    let keys: Vec<(String, String)> = (0..1_001).map(|i| (format!("k{i}"), "v".into())).collect();
    let mut form: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.push(("sessionId", &sid));
    form.push(("group[name]", "Too many"));
    let r = server.call("projectsgroups/add", &form).await;
    r.assert_fail(400, "limit_exceeded");
    let all = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    assert_eq!(all.json()["total"], 0, "nothing stored by refused requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_value_wins_over_the_query_string() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .client
        .post(format!(
            "{}?group[name]=FromQuery&retType=json",
            server.api("projectsgroups/add")
        ))
        .form(&[("sessionId", sid.as_str()), ("group[name]", "FromBody")])
        .send()
        .await
        .unwrap();
    let r = read(r).await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "FromBody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_clear_errors() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let url = format!("{}?sessionId={sid}", server.api("projectsgroups/add"));
    let r = read(
        server
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .body("{\"group\": {\"name\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "bad_request");
    let r = read(
        server
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .body("[1,2]")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "bad_request");
    let r = read(
        server
            .client
            .post(&url)
            .header("Content-Type", "application/xml")
            .body("<group/>")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(415, "unsupported_media_type");
    let r = read(
        server
            .client
            .post(&url)
            .header("Content-Type", "multipart/form-data")
            .body("--x\r\n")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "bad_request");
    let all = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    assert_eq!(all.json()["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_part_outside_attach_files_is_refused() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.clone())
        .text("group[name]", "With a file")
        .part(
            "files[1]",
            reqwest::multipart::Part::bytes(b"abc".to_vec()).file_name("a.txt"),
        );
    let r = read(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "bad_request");
    let all = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    assert_eq!(all.json()["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_multipart_body_is_refused() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.clone())
        .text("group[name]", "x".repeat(2 * 1024 * 1024));
    let r = read(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(413, "too_large");
    let all = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    assert_eq!(all.json()["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let server = TestServer::start().await;
    let client = server.client.clone();
    let url = server.api("authentication/signIn");
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .form(&[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    server.stop().await;
    for call in calls {
        if let Ok(status) = call.await.unwrap() {
            assert_eq!(
                status, 200,
                "a request that reached the server was finished"
            );
        }
    }
}
