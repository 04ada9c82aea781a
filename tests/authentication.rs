mod common;
use common::*;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use vesper::api::endpoints::ENDPOINTS;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const WHO_AM_I: &str = "authentication/getAuthorizedUser";

/// A client whose connections come from `ip` (any 127.x.y.z reaches the server on
/// 127.0.0.1), so that per-address counting can be told apart from per-login counting.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// signIn from a given client, as a form POST; the answer in XML.
async fn sign_in_from(
    server: &TestServer,
    client: &reqwest::Client,
    login: &str,
    password: &str,
) -> Resp {
    read(
        client
            .post(server.api("authentication/signIn"))
            .form(&[("login", login), ("password", password)])
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn send(req: reqwest::RequestBuilder) -> Resp {
    read(req.send().await.unwrap()).await
}

fn retry_after(r: &Resp) -> u64 {
    r.headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After header: {:?}", r.headers))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn assert_is_a_session_id(sid: &str) {
    assert!(sid.len() >= 43, "session id too short: {sid:?}");
    assert!(
        sid.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "session id not URL-safe: {sid:?}"
    );
}

// ---------------------------------------------------------------------------------------
// signIn
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_answers_a_url_safe_session_id_in_xml() {
    let server = TestServer::start().await;
    let r = server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_ok();
    assert!(r.body.starts_with("<?xml"), "{}", r.body);
    let sid = r.xml_text("sessionId").expect("a sessionId element");
    assert_is_a_session_id(&sid);
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_answers_a_url_safe_session_id_in_json() {
    let server = TestServer::start().await;
    let r = server
        .call_json(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_ok();
    let j = r.json();
    let sid = j["sessionId"].as_str().expect("sessionId is a string");
    assert_is_a_session_id(sid);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sign_in_gets_a_different_session_and_all_of_them_work() {
    let server = TestServer::start().await;
    let a = server.admin().await;
    let b = server.admin().await;
    assert_ne!(a, b);
    for sid in [&a, &b] {
        server
            .get(WHO_AM_I, &[("sessionId", sid)])
            .await
            .assert_ok();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_is_the_email_in_any_case() {
    let server = TestServer::start().await;
    let (_, _) = server.user("Mixed.Case@Example.com", 100, false).await;
    let password = password_for("Mixed.Case@Example.com");
    for login in [
        "mixed.case@example.com",
        "MIXED.CASE@EXAMPLE.COM",
        "Mixed.Case@Example.com",
    ] {
        let r = server
            .call_json(
                "authentication/signIn",
                &[("login", login), ("password", &password)],
            )
            .await;
        r.assert_ok();
        assert_is_a_session_id(r.json()["sessionId"].as_str().unwrap());
    }
    let r = server
        .call_json(
            "authentication/signIn",
            &[("login", "ADMIN@Example.COM"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_a_session_id_instead_of_login_and_password() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    server
        .call("authentication/signIn", &[("sessionId", &sid)])
        .await
        .assert_fail(401, "auth_required");
    server
        .call_json("authentication/signIn", &[("sessionId", &sid)])
        .await
        .assert_fail(401, "auth_required");
    let r = send(
        server
            .client
            .post(server.api("authentication/signIn"))
            .bearer_auth(&sid),
    )
    .await;
    r.assert_fail(401, "auth_required");
    assert!(!r.body.contains(&sid));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_nothing_is_auth_required() {
    let server = TestServer::start().await;
    server
        .call("authentication/signIn", &[])
        .await
        .assert_fail(401, "auth_required");
    server
        .call("authentication/signIn", &[("login", ADMIN_EMAIL)])
        .await
        .assert_fail(401, "auth_required");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_also_takes_http_basic() {
    let server = TestServer::start().await;
    let r = send(
        server
            .client
            .post(server.api("authentication/signIn"))
            .basic_auth(ADMIN_EMAIL, Some(ADMIN_PASSWORD))
            .query(&[("retType", "json")]),
    )
    .await;
    r.assert_ok();
    assert_is_a_session_id(r.json()["sessionId"].as_str().unwrap());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_login_get_byte_identical_answers() {
    let server = TestServer::start().await;
    let wrong = server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", "not-the-password")],
        )
        .await;
    let unknown = server
        .call(
            "authentication/signIn",
            &[
                ("login", "nobody@example.com"),
                ("password", "not-the-password"),
            ],
        )
        .await;
    wrong.assert_fail(401, "auth_failed");
    unknown.assert_fail(401, "auth_failed");
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(
        wrong.headers.get("content-type"),
        unknown.headers.get("content-type")
    );
    assert_eq!(
        wrong.headers.get("www-authenticate"),
        unknown.headers.get("www-authenticate")
    );

    let wrong = server
        .call_json(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", "not-the-password")],
        )
        .await;
    let unknown = server
        .call_json(
            "authentication/signIn",
            &[
                ("login", "nobody@example.com"),
                ("password", "not-the-password"),
            ],
        )
        .await;
    wrong.assert_fail(401, "auth_failed");
    unknown.assert_fail(401, "auth_failed");
    assert_eq!(wrong.body, unknown.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_answer_does_not_echo_the_login_or_password() {
    let server = TestServer::start().await;
    let r = server
        .call(
            "authentication/signIn",
            &[
                ("login", "ghost@example.com"),
                ("password", "secret-guess-123"),
            ],
        )
        .await;
    r.assert_fail(401, "auth_failed");
    assert!(!r.body.contains("ghost"), "{}", r.body);
    assert!(!r.body.contains("secret-guess-123"), "{}", r.body);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// signOut
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_answers_one_in_xml_and_the_session_then_fails() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call("authentication/signOut", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("signOutState").as_deref(), Some("1"));
    assert!(!r.body.contains(&sid));
    let after = server.get(WHO_AM_I, &[("sessionId", &sid)]).await;
    assert_eq!(after.status, 401, "{}", after.body);
    after.assert_fail(401, "auth_failed");
    // Signing out again with the dead session is refused too.
    let again = server
        .call("authentication/signOut", &[("sessionId", &sid)])
        .await;
    assert_eq!(again.status, 401, "{}", again.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_answers_true_in_json_and_the_session_then_fails() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call_json("authentication/signOut", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["signOutState"], serde_json::Value::Bool(true));
    server
        .call_json(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_fail(401, "auth_failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_ends_only_its_own_session() {
    let server = TestServer::start().await;
    let a = server.admin().await;
    let b = server.admin().await;
    server
        .call("authentication/signOut", &[("sessionId", &a)])
        .await
        .assert_ok();
    server
        .get(WHO_AM_I, &[("sessionId", &a)])
        .await
        .assert_fail(401, "auth_failed");
    server.get(WHO_AM_I, &[("sessionId", &b)]).await.assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_by_get_with_the_session_in_the_query_works() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .get("authentication/signOut", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("signOutState").as_deref(), Some("1"));
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_fail(401, "auth_failed");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// getAuthorizedUser and the ways to authenticate
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_authorized_user_describes_the_caller_in_xml() {
    let server = TestServer::start().await;
    let (id, sid) = server.user("ann@example.com", 150, true).await;
    let r = server.get(WHO_AM_I, &[("sessionId", &sid)]).await;
    r.assert_ok();
    let doc = r.xml();
    let user = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("user"))
        .expect("a user element");
    let text = |tag: &str| {
        user.children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(str::to_owned)
    };
    assert_eq!(text("id"), Some(id.to_string()));
    assert_eq!(text("email").as_deref(), Some("ann@example.com"));
    assert_eq!(text("securityLevel").as_deref(), Some("150"));
    assert_eq!(text("canViewProfiles").as_deref(), Some("1"));
    assert!(!r.body.contains("password"), "{}", r.body);
    assert!(!r.body.contains("$argon2"), "{}", r.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_authorized_user_describes_the_caller_in_json() {
    let server = TestServer::start().await;
    let (id, sid) = server.user("bob@example.com", 200, false).await;
    let r = server.call_json(WHO_AM_I, &[("sessionId", &sid)]).await;
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["user"]["id"], id.to_string());
    assert_eq!(j["user"]["email"], "bob@example.com");
    assert_eq!(j["user"]["securityLevel"], 200);
    assert_eq!(j["user"]["canViewProfiles"], false);
    assert!(!r.body.contains("password"), "{}", r.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_in_the_query_string_authenticates() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(
        server
            .client
            .get(server.api(WHO_AM_I))
            .query(&[("sessionId", sid.as_str())]),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.xml_text("email").as_deref(), Some(ADMIN_EMAIL));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_in_a_form_body_authenticates() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(
        server
            .client
            .post(server.api(WHO_AM_I))
            .form(&[("sessionId", sid.as_str())]),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.xml_text("email").as_deref(), Some(ADMIN_EMAIL));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_in_an_x_session_id_header_authenticates() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(
        server
            .client
            .get(server.api(WHO_AM_I))
            .header("X-Session-Id", &sid),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.xml_text("email").as_deref(), Some(ADMIN_EMAIL));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_as_a_bearer_token_authenticates() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(server.client.get(server.api(WHO_AM_I)).bearer_auth(&sid)).await;
    r.assert_ok();
    assert_eq!(r.xml_text("email").as_deref(), Some(ADMIN_EMAIL));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_password_arguments_authenticate_any_call() {
    let server = TestServer::start().await;
    let r = server
        .get(
            WHO_AM_I,
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("email").as_deref(), Some(ADMIN_EMAIL));
    let r = server
        .call_json(
            WHO_AM_I,
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["email"], ADMIN_EMAIL);
    // signOut with login and password has no session to end, but still succeeds.
    let r = server
        .call_json(
            "authentication/signOut",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["signOutState"], true);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_basic_authenticates_any_call() {
    let server = TestServer::start().await;
    let r = send(
        server
            .client
            .get(server.api(WHO_AM_I))
            .basic_auth(ADMIN_EMAIL, Some(ADMIN_PASSWORD)),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.xml_text("email").as_deref(), Some(ADMIN_EMAIL));
    // The same, hand-built.
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_EMAIL}:{ADMIN_PASSWORD}"));
    let r = send(
        server
            .client
            .get(server.api("metainfo/getStatuses"))
            .header("Authorization", format!("Basic {token}")),
    )
    .await;
    r.assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_basic_with_a_wrong_password_is_auth_failed() {
    let server = TestServer::start().await;
    let r = send(
        server
            .client
            .get(server.api(WHO_AM_I))
            .basic_auth(ADMIN_EMAIL, Some("wrong-password")),
    )
    .await;
    r.assert_fail(401, "auth_failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_at_all_is_auth_required() {
    let server = TestServer::start().await;
    let r = server.get(WHO_AM_I, &[]).await;
    r.assert_fail(401, "auth_required");
    assert!(
        r.headers.contains_key("www-authenticate"),
        "{:?}",
        r.headers
    );
    server
        .call_json(WHO_AM_I, &[])
        .await
        .assert_fail(401, "auth_required");
    server
        .get("metainfo/getStatuses", &[])
        .await
        .assert_fail(401, "auth_required");
    server
        .call("projectsgroups/add", &[("group[name]", "X")])
        .await
        .assert_fail(401, "auth_required");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_session_id_is_auth_failed() {
    let server = TestServer::start().await;
    let garbage = "this-is-not-a-session-id-at-all-0123456789abc";
    server
        .get(WHO_AM_I, &[("sessionId", garbage)])
        .await
        .assert_fail(401, "auth_failed");
    server
        .call_json(WHO_AM_I, &[("sessionId", garbage)])
        .await
        .assert_fail(401, "auth_failed");
    send(
        server
            .client
            .get(server.api(WHO_AM_I))
            .header("X-Session-Id", garbage),
    )
    .await
    .assert_fail(401, "auth_failed");
    send(server.client.get(server.api(WHO_AM_I)).bearer_auth(garbage))
        .await
        .assert_fail(401, "auth_failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_never_appears_in_any_answer_but_sign_in() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let answers = [
        server.get(WHO_AM_I, &[("sessionId", &sid)]).await,
        server.call_json(WHO_AM_I, &[("sessionId", &sid)]).await,
        send(server.client.get(server.api(WHO_AM_I)).bearer_auth(&sid)).await,
        server
            .get("metainfo/getStatuses", &[("sessionId", &sid)])
            .await,
        server
            .call_json("users/getAll", &[("sessionId", &sid)])
            .await,
        server
            .call_json(
                "projectsgroups/getById",
                &[("sessionId", &sid), ("id", "999")],
            )
            .await,
        server
            .call_json("authentication/signOut", &[("sessionId", &sid)])
            .await,
        server.get(WHO_AM_I, &[("sessionId", &sid)]).await,
    ];
    for r in &answers {
        assert!(!r.body.contains(&sid), "the session id leaked: {}", r.body);
        for (name, value) in &r.headers {
            assert!(
                !value.to_str().unwrap_or("").contains(&sid),
                "the session id leaked in header {name}"
            );
        }
    }
    answers[0].assert_ok();
    answers[1].assert_ok();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_unused_for_longer_than_the_idle_limit_expires() {
    let server = TestServer::start_with(|c| c.session_idle_secs = 2).await;
    let sid = server.admin().await;
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_ok();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_fail(401, "session_expired");
    // A new sign-in works.
    let fresh = server.admin().await;
    server
        .get(WHO_AM_I, &[("sessionId", &fresh)])
        .await
        .assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_use_is_not_idle() {
    let server = TestServer::start_with(|c| c.session_idle_secs = 3).await;
    let sid = server.admin().await;
    // Used every second for five seconds: never idle for more than three.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        server
            .get(WHO_AM_I, &[("sessionId", &sid)])
            .await
            .assert_ok();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_constant_use_still_expires_after_the_absolute_limit() {
    let server = TestServer::start_with(|c| c.session_max_secs = 2).await;
    let before = Instant::now();
    let sid = server.admin().await;
    let signed_in = Instant::now();
    // Kept in use about every second; whatever happens before two seconds have passed
    // since sign-in must succeed (timestamps are whole seconds).
    loop {
        tokio::time::sleep(Duration::from_millis(900)).await;
        if before.elapsed() >= Duration::from_millis(1900) {
            break;
        }
        server
            .get(WHO_AM_I, &[("sessionId", &sid)])
            .await
            .assert_ok();
    }
    while signed_in.elapsed() < Duration::from_millis(3100) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_fail(401, "session_expired");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_wrong_passwords_lock_the_login_even_for_the_right_password() {
    let server = TestServer::start().await;
    for i in 0..10 {
        let r = server
            .call(
                "authentication/signIn",
                &[("login", ADMIN_EMAIL), ("password", &format!("wrong-{i}"))],
            )
            .await;
        r.assert_fail(401, "auth_failed");
    }
    let r = server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_fail(429, "too_many_requests");
    let wait = retry_after(&r);
    assert!(wait > 0 && wait <= 15 * 60, "Retry-After {wait}");
    assert!(!r.body.contains("sessionId"), "{}", r.body);
    // JSON says the same.
    server
        .call_json(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await
        .assert_fail(429, "too_many_requests");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_login_still_works_with_an_earlier_session() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    for i in 0..10 {
        server
            .call(
                "authentication/signIn",
                &[("login", ADMIN_EMAIL), ("password", &format!("wrong-{i}"))],
            )
            .await
            .assert_fail(401, "auth_failed");
    }
    server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await
        .assert_fail(429, "too_many_requests");
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_does_not_lock_the_login_out_elsewhere() {
    let server = TestServer::start().await;
    // A stranger floods the admin's login from one address, past the limit.
    let stranger = client_from("127.0.0.2");
    for i in 0..12 {
        let r = sign_in_from(&server, &stranger, ADMIN_EMAIL, &format!("wrong-{i}")).await;
        assert!(r.status == 401 || r.status == 429, "{r:?}");
    }
    // The stranger's address is refused, even with the right password (in any case).
    let r = sign_in_from(
        &server,
        &stranger,
        &ADMIN_EMAIL.to_uppercase(),
        ADMIN_PASSWORD,
    )
    .await;
    r.assert_fail(429, "too_many_requests");
    assert!(retry_after(&r) > 0);
    // The flood goes on; the admin, from a second address meanwhile, signs in: slowed,
    // not refused.
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood = tokio::spawn({
        let (url, flooding) = (server.api("authentication/signIn"), flooding.clone());
        async move {
            let mut refused = 0;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let r = stranger
                    .post(&url)
                    .form(&[("login", ADMIN_EMAIL), ("password", "a-guess-123")])
                    .send()
                    .await
                    .unwrap();
                refused += usize::from(r.status() == 429);
            }
            refused
        }
    });
    let admin = client_from("127.0.0.3");
    for _ in 0..2 {
        let started = std::time::Instant::now();
        sign_in_from(&server, &admin, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .assert_ok();
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(900),
            "a login that failed past the limit is checked slowly"
        );
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(flood.await.unwrap() > 0, "the flood was refused meanwhile");
    // Wrong passwords from the second address are still only wrong, until that address
    // reaches the limit itself.
    sign_in_from(&server, &admin, ADMIN_EMAIL, "wrong-again")
        .await
        .assert_fail(401, "auth_failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_spread_over_addresses_slow_the_login_down_without_refusing_it() {
    let server = TestServer::start().await;
    // Five failures from each of two addresses: neither address reaches ten, the login does.
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let c = client_from(ip);
        for i in 0..5 {
            sign_in_from(&server, &c, ADMIN_EMAIL, &format!("wrong-{i}"))
                .await
                .assert_fail(401, "auth_failed");
        }
    }
    // The login counter is case-insensitive: the upper-case login is slowed too.
    let started = std::time::Instant::now();
    sign_in_from(
        &server,
        &client_from("127.0.0.4"),
        &ADMIN_EMAIL.to_uppercase(),
        ADMIN_PASSWORD,
    )
    .await
    .assert_ok();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_per_address_across_unknown_logins() {
    let server = TestServer::start().await;
    let attacker = client_from("127.0.0.5");
    for i in 0..10 {
        sign_in_from(
            &server,
            &attacker,
            &format!("nobody{i}@example.com"),
            "a-guess-123",
        )
        .await
        .assert_fail(401, "auth_failed");
    }
    // Even a right login and password from that address are refused now.
    let r = sign_in_from(&server, &attacker, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    r.assert_fail(429, "too_many_requests");
    assert!(retry_after(&r) > 0);
    // The admin, from another address, is not affected: its login has no failures.
    sign_in_from(
        &server,
        &client_from("127.0.0.6"),
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
    )
    .await
    .assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_the_default_client_over_many_logins_reach_429() {
    let server = TestServer::start().await;
    for i in 0..10 {
        server
            .call(
                "authentication/signIn",
                &[
                    ("login", &format!("u{i}@example.com")),
                    ("password", "wrong-pass"),
                ],
            )
            .await
            .assert_fail(401, "auth_failed");
    }
    let r = server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_fail(429, "too_many_requests");
    assert!(retry_after(&r) > 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_holds_for_login_and_password_on_any_endpoint() {
    let server = TestServer::start().await;
    for i in 0..10 {
        server
            .get(
                "metainfo/getStatuses",
                &[("login", ADMIN_EMAIL), ("password", &format!("wrong-{i}"))],
            )
            .await
            .assert_fail(401, "auth_failed");
    }
    let r = server
        .get(
            "metainfo/getStatuses",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    r.assert_fail(429, "too_many_requests");
    assert!(retry_after(&r) > 0);
    // And signIn sees the same counter.
    server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await
        .assert_fail(429, "too_many_requests");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_holds_for_http_basic() {
    let server = TestServer::start().await;
    for i in 0..10 {
        send(
            server
                .client
                .get(server.api(WHO_AM_I))
                .basic_auth(ADMIN_EMAIL, Some(format!("wrong-{i}"))),
        )
        .await
        .assert_fail(401, "auth_failed");
    }
    let r = send(
        server
            .client
            .get(server.api(WHO_AM_I))
            .basic_auth(ADMIN_EMAIL, Some(ADMIN_PASSWORD)),
    )
    .await;
    r.assert_fail(429, "too_many_requests");
    assert!(retry_after(&r) > 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_failures_do_not_lock_the_login() {
    let server = TestServer::start().await;
    for i in 0..9 {
        server
            .call(
                "authentication/signIn",
                &[("login", ADMIN_EMAIL), ("password", &format!("wrong-{i}"))],
            )
            .await
            .assert_fail(401, "auth_failed");
    }
    server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await
        .assert_ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_limit_is_configurable() {
    let server = TestServer::start_with(|c| c.login_failure_limit = 3).await;
    for i in 0..3 {
        server
            .call(
                "authentication/signIn",
                &[("login", ADMIN_EMAIL), ("password", &format!("wrong-{i}"))],
            )
            .await
            .assert_fail(401, "auth_failed");
    }
    server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await
        .assert_fail(429, "too_many_requests");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_callers_are_not_throttled_by_failed_logins() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    for i in 0..12 {
        let _ = server
            .call(
                "authentication/signIn",
                &[("login", ADMIN_EMAIL), ("password", &format!("wrong-{i}"))],
            )
            .await;
    }
    server
        .get("metainfo/getStatuses", &[("sessionId", &sid)])
        .await
        .assert_ok();
    send(server.client.get(server.api(WHO_AM_I)).bearer_auth(&sid))
        .await
        .assert_ok();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Routing: unknown methods and verbs
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_service_or_method_is_404_unknown_method() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    for path in [
        "/api/v2/service/get/nosuch/call",
        "/api/v2/service/get/users/fly",
        "/api/v2/service/post/projectsgroups/getList",
        "/api/v2/service/put/users/getAll",
        "/api/v2/service/get/authentication/signin",
        "/api/v2/service/get/users",
        "/api/v3/service/get/users/getAll",
    ] {
        let r = send(
            server
                .client
                .get(server.https(path))
                .query(&[("sessionId", sid.as_str())]),
        )
        .await;
        r.assert_fail(404, "unknown_method");
        let r = send(
            server
                .client
                .post(server.https(path))
                .form(&[("sessionId", sid.as_str()), ("retType", "json")]),
        )
        .await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        // Unauthenticated callers learn the same.
        let r = send(server.client.get(server.https(path))).await;
        r.assert_fail(404, "unknown_method");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_answers_json_when_asked() {
    let server = TestServer::start().await;
    let r = send(
        server
            .client
            .get(server.https("/api/v2/service/get/users/fly"))
            .query(&[("retType", "json")]),
    )
    .await;
    r.assert_fail(404, "unknown_method");
    assert_eq!(r.json()["code"], "unknown_method");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_prefix_works_for_every_method() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    for prefix in ["get", "post"] {
        let r = send(
            server
                .client
                .get(server.https(&format!(
                    "/api/v2/service/{prefix}/authentication/getAuthorizedUser"
                )))
                .query(&[("sessionId", sid.as_str())]),
        )
        .await;
        r.assert_ok();
        let r = send(
            server
                .client
                .post(server.https(&format!("/api/v2/service/{prefix}/projectsgroups/add")))
                .form(&[("sessionId", sid.as_str()), ("group[name]", prefix)]),
        )
        .await;
        r.assert_ok();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_delete_on_a_read_method_are_405() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    // Every read of the endpoint table.
    let reads = ENDPOINTS.iter().filter(|e| !e.is_write());
    for call in reads.map(|e| format!("{}/{}", e.service, e.method)) {
        let call = call.as_str();
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
        ] {
            let r = send(
                server
                    .client
                    .request(method.clone(), server.api(call))
                    .query(&[("sessionId", sid.as_str())]),
            )
            .await;
            r.assert_fail(405, "method_not_allowed");
            let allow = r
                .headers
                .get("allow")
                .unwrap_or_else(|| panic!("{method} {call}: no Allow header"))
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                allow.contains("GET") && allow.contains("POST"),
                "Allow: {allow}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_only_methods_refuse_get_with_allow_post() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    // Every write of the endpoint table.
    let writes = ENDPOINTS.iter().filter(|e| e.is_write());
    for call in writes.map(|e| format!("{}/{}", e.service, e.method)) {
        let call = call.as_str();
        for prefix in ["get", "post"] {
            let url = server.https(&format!("/api/v2/service/{prefix}/{call}"));
            let r = send(
                server
                    .client
                    .get(&url)
                    .query(&[("sessionId", sid.as_str()), ("group[name]", "Sneaky")]),
            )
            .await;
            r.assert_fail(405, "method_not_allowed");
            assert_eq!(
                r.headers.get("allow").and_then(|v| v.to_str().ok()),
                Some("POST"),
                "{call}"
            );
            let r = send(
                server
                    .client
                    .put(&url)
                    .form(&[("sessionId", sid.as_str()), ("group[name]", "Sneaky")]),
            )
            .await;
            r.assert_fail(405, "method_not_allowed");
            assert_eq!(
                r.headers.get("allow").and_then(|v| v.to_str().ok()),
                Some("POST")
            );
        }
    }
    // Nothing was created by the refused calls.
    let r = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["total"], 0, "{}", r.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_405_answer_is_in_json_when_asked() {
    let server = TestServer::start().await;
    let r = send(
        server
            .client
            .get(server.api("projectsgroups/add"))
            .query(&[("retType", "json")]),
    )
    .await;
    r.assert_fail(405, "method_not_allowed");
    assert!(r.body.starts_with('{'), "{}", r.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_wrong_passwords_gets_no_more_than_ten_guesses() {
    let server = TestServer::start().await;
    let attempts = (0..40).map(|i| {
        let server = &server;
        async move {
            server
                .call(
                    "authentication/signIn",
                    &[("login", ADMIN_EMAIL), ("password", &format!("guess-{i}"))],
                )
                .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    let throttled = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!(checked + throttled, answers.len(), "{answers:?}");
    assert!(
        checked <= 10,
        "{checked} passwords were checked in a burst; the limit is 10"
    );
    server
        .call(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await
        .assert_fail(429, "too_many_requests");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_right_passwords_all_succeed() {
    let server = TestServer::start().await;
    let attempts = (0..30).map(|_| {
        let server = &server;
        async move {
            server
                .call_json(
                    "authentication/signIn",
                    &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
                )
                .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut ids = std::collections::HashSet::new();
    for r in &answers {
        r.assert_ok();
        ids.insert(r.json()["sessionId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), answers.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_guesses_over_many_logins_gets_no_more_than_ten_from_one_address() {
    let server = TestServer::start().await;
    let attacker = client_from("127.0.0.7");
    let attempts =
        (0..40).map(|i| {
            let (server, attacker) = (&server, &attacker);
            async move {
                sign_in_from(server, attacker, &format!("x{i}@example.com"), "guess-123").await
            }
        });
    let answers = futures_util::future::join_all(attempts).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    let throttled = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!(checked + throttled, answers.len(), "{answers:?}");
    assert!(
        checked <= 10,
        "{checked} guesses were checked from one address"
    );
    server.stop().await;
}

/// Sessions may be cached by a node (the SQLite backend does): a change to the user or
/// the session must still count from the very next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_user_changes_count_from_the_next_call() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let email = "second-admin@example.com";
    let (id, sid) = server.user(email, 0, true).await;
    let id = id.to_string();
    let add = |sid: &String, n: &'static str| {
        let sid = sid.clone();
        let server = &server;
        async move {
            server
                .call(
                    "users/add",
                    &[
                        ("sessionId", &sid),
                        ("user[email]", n),
                        ("user[password]", "pw-long-enough-1"),
                    ],
                )
                .await
        }
    };
    add(&sid, "made-while-admin@example.com").await.assert_ok();
    server
        .call(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &id),
                ("user[securityLevel]", "100"),
            ],
        )
        .await
        .assert_ok();
    // A new security level ends the user's sessions, from the very next call.
    add(&sid, "made-after-demotion@example.com")
        .await
        .assert_fail(401, "auth_failed");
    // Signed in again, the user has the new level's rights.
    let sid = server.sign_in(email, &password_for(email)).await;
    add(&sid, "made-after-demotion@example.com")
        .await
        .assert_fail(403, "forbidden");
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_ok();
    server
        .call("users/remove", &[("sessionId", &admin), ("id", &id)])
        .await
        .assert_ok();
    server
        .get(WHO_AM_I, &[("sessionId", &sid)])
        .await
        .assert_fail(401, "auth_failed");
    server.stop().await;
}

// ---- several nodes on PostgreSQL -------------------------------------------------------

async fn who(s: &TestServer, sid: &str) -> Resp {
    s.get(WHO_AM_I, &[("sessionId", sid)]).await
}

/// Polls `s` until it refuses `sid`: another node's announcement reaches it
/// asynchronously, within a millisecond or so on this machine. Fails after two seconds.
async fn refused_soon(s: &TestServer, sid: &str) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let r = who(s, sid).await;
        if r.status == 401 {
            r.assert_fail(401, "auth_failed");
            return start.elapsed();
        }
        r.assert_ok();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still accepted after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until every node's session listener listens (`store::postgres::listener`).
async fn listening(db: &tokio_postgres::Client, nodes: i64) {
    for _ in 0..200 {
        let row = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'vesper listener' AND state = 'idle' \
                 AND query IN ('LISTEN vesper_sessions', '')",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == nodes {
            // The node starts serving from its cache right after LISTEN is answered.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the nodes' session listeners did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_cache_sessions_and_forget_what_another_node_changes() {
    if test_database_url().is_none() {
        eprintln!("skipped: several nodes need PostgreSQL (run scripts/test)");
        return;
    }
    let a = TestServer::start().await;
    let db = pg_client(&a.database_url().expect("node A runs on PostgreSQL")).await;
    let b = a.another_node().await;
    listening(&db, 2).await;

    // B keeps the session it read: removed behind every node's back (no announcement),
    // it still works on B, which no longer reads it, and not on A, which never read it.
    let admin = a.admin().await;
    who(&b, &admin).await.assert_ok();
    db.batch_execute("DELETE FROM sessions").await.unwrap();
    who(&b, &admin).await.assert_ok();
    who(&a, &admin).await.assert_fail(401, "auth_failed");
    // An announcement that everything changed: B reads again, and finds nothing, once
    // the announcement reaches B's listener (as for every announcement below: it travels
    // on its own connection, and a request can overtake it).
    db.batch_execute("NOTIFY vesper_sessions, '*'")
        .await
        .unwrap();
    refused_soon(&b, &admin).await;

    // Signed out on A: refused on B as soon as the announcement arrives, though B had it
    // cached.
    let admin = a.admin().await;
    who(&b, &admin).await.assert_ok();
    a.call("authentication/signOut", &[("sessionId", &admin)])
        .await
        .assert_ok();
    refused_soon(&b, &admin).await;

    // Demoted on A: a new level ends the user's sessions, on B too.
    let admin = a.admin().await;
    let (boss, boss_sid) = a.user("boss@example.com", 0, true).await;
    who(&b, &boss_sid).await.assert_ok();
    // Renamed on A: B answers with the new name, not the one it cached.
    a.as_caller(&admin)
        .update(Kind::User, boss, &[("firstName", "Renamed")])
        .await;
    let start = std::time::Instant::now();
    while !who(&b, &boss_sid).await.body.contains("Renamed") {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the old name after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.as_caller(&admin)
        .update(Kind::User, boss, &[("securityLevel", "200")])
        .await;
    refused_soon(&b, &boss_sid).await;
    // Removed on A: its session ends on B.
    let (gone, gone_sid) = a.user("gone@example.com", 0, true).await;
    who(&b, &gone_sid).await.assert_ok();
    a.as_caller(&admin).remove(Kind::User, gone).await;
    refused_soon(&b, &gone_sid).await;

    // While B cannot hear the others it caches nothing, and it starts from empty when it
    // hears them again: what was announced in between cannot stay stale on B.
    who(&b, &admin).await.assert_ok();
    db.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'vesper listener'",
    )
    .await
    .unwrap();
    // Missed: B cannot hear this, and drops what it cached once it notices its
    // listener is gone (at once for a closed connection, the heartbeat for a silent one).
    db.batch_execute("DELETE FROM sessions").await.unwrap();
    refused_soon(&b, &admin).await;
    listening(&db, 2).await;
    let admin = a.admin().await;
    who(&b, &admin).await.assert_ok();
    db.batch_execute("DELETE FROM sessions").await.unwrap();
    who(&b, &admin).await.assert_ok(); // cached again once B listens

    b.stop().await;
    a.stop().await;
}
