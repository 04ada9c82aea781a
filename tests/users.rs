mod common;
use common::*;

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A user as the admin reads it (JSON), to compare before and after a refused request.
async fn read_user(server: &TestServer, sid: &str, id: i64) -> Value {
    let r = server.as_caller(sid).get_answer(Kind::User, id).await;
    r.assert_ok();
    assert_no_secrets(&r);
    r.json()["user"].clone()
}

/// The ids getAll returns to this session (JSON), checking count and total agree.
async fn visible_ids(server: &TestServer, sid: &str) -> Vec<i64> {
    let r = server
        .call_json("users/getAll", &[("sessionId", sid)])
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    let j = r.json();
    let items = j["items"].as_array().expect("items").clone();
    assert_eq!(j["count"], items.len(), "{}", r.body);
    assert_eq!(j["total"], items.len(), "{}", r.body);
    assert_eq!(j["offset"], 0, "{}", r.body);
    items
        .iter()
        .map(|u| u["id"].as_str().expect("id is a string").parse().unwrap())
        .collect()
}

/// The ids of the `user` elements of an XML answer.
fn xml_user_ids(r: &Resp) -> Vec<i64> {
    let doc = r.xml();
    doc.descendants()
        .filter(|n| n.has_tag_name("user"))
        .map(|u| {
            u.children()
                .find(|c| c.has_tag_name("id"))
                .and_then(|c| c.text())
                .expect("an id")
                .parse()
                .unwrap()
        })
        .collect()
}

/// No password, password hash or password-ish element in an answer.
fn assert_no_secrets(r: &Resp) {
    let lower = r.body.to_lowercase();
    assert!(
        !lower.contains("password"),
        "password in answer: {}",
        r.body
    );
    assert!(!lower.contains("hash"), "hash in answer: {}", r.body);
    assert!(
        !r.body.contains("$argon2"),
        "argon2 hash in answer: {}",
        r.body
    );
    assert!(
        !r.body.contains("pw-"),
        "a password value in answer: {}",
        r.body
    );
}

async fn assert_signs_in(server: &TestServer, login: &str, password: &str) {
    let r = server
        .call_json(
            "authentication/signIn",
            &[("login", login), ("password", password)],
        )
        .await;
    r.assert_ok();
}

async fn assert_sign_in_fails(server: &TestServer, login: &str, password: &str) {
    let r = server
        .call_json(
            "authentication/signIn",
            &[("login", login), ("password", password)],
        )
        .await;
    r.assert_fail(401, "auth_failed");
}

/// 401 with one of the authentication codes.
fn assert_unauthenticated(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.body);
    let j = r.json();
    assert_eq!(j["status"], "fail", "{}", r.body);
    let code = j["code"].as_str().unwrap();
    assert!(
        ["auth_required", "auth_failed", "session_expired"].contains(&code),
        "{}",
        r.body
    );
}

fn level_name(level: i64) -> &'static str {
    match level {
        100 => "user",
        150 => "external",
        200 => "client",
        _ => "admin",
    }
}

const NON_ADMIN_LEVELS: [i64; 3] = [100, 150, 200];

// ---------------------------------------------------------------------------------------
// Success in XML and JSON
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_user_and_reads_it_back_in_xml() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = server
        .call(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "ann@example.com"),
                ("user[password]", "pw-ann-secret"),
                ("user[firstName]", "Ann"),
                ("user[lastName]", "Lee & <Co>"),
                ("user[title]", "Dr"),
                ("user[securityLevel]", "150"),
                ("user[canViewProfiles]", "1"),
            ],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    assert!(r.headers["content-type"].to_str().unwrap().contains("xml"));
    let id: i64 = r.xml_text("id").unwrap().parse().unwrap();
    assert_eq!(r.xml_text("email").as_deref(), Some("ann@example.com"));
    assert_eq!(r.xml_text("firstName").as_deref(), Some("Ann"));
    assert_eq!(r.xml_text("lastName").as_deref(), Some("Lee & <Co>"));
    assert_eq!(r.xml_text("title").as_deref(), Some("Dr"));
    assert_eq!(r.xml_text("securityLevel").as_deref(), Some("150"));
    assert_eq!(r.xml_text("canViewProfiles").as_deref(), Some("1"));
    assert_eq!(r.xml_text("active").as_deref(), Some("1"));
    assert_eq!(
        r.xml_text("company").as_deref(),
        Some(""),
        "absent is an empty element"
    );

    // getById, over GET and over POST.
    let r = server
        .get(
            "users/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    assert_eq!(r.xml_text("id"), Some(id.to_string()));
    assert_eq!(r.xml_text("email").as_deref(), Some("ann@example.com"));
    assert_eq!(r.xml_text("securityLevel").as_deref(), Some("150"));
    assert_eq!(r.xml_text("canViewProfiles").as_deref(), Some("1"));
    let r = server
        .call(
            "users/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(id.to_string()));

    // getByEmail.
    let r = server
        .get(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "ann@example.com")],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    assert_eq!(r.xml_text("id"), Some(id.to_string()));

    // getAll: the admin and Ann, in id order, in an items list.
    let r = server.get("users/getAll", &[("sessionId", &admin)]).await;
    r.assert_ok();
    assert_no_secrets(&r);
    let doc = r.xml();
    let items = doc
        .descendants()
        .find(|n| n.has_tag_name("items"))
        .expect("items");
    assert_eq!(items.attribute("count"), Some("2"), "{}", r.body);
    assert_eq!(items.attribute("total"), Some("2"), "{}", r.body);
    assert_eq!(items.attribute("offset"), Some("0"), "{}", r.body);
    let ids = xml_user_ids(&r);
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    assert_eq!(ids[1], id);

    // The new user signs in with the password given.
    assert_signs_in(&server, "ann@example.com", "pw-ann-secret").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_user_and_reads_it_back_in_json() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "bob@example.com"),
                ("user[password]", "pw-bob-secret"),
                ("user[firstName]", "Bob"),
                ("user[securityLevel]", "200"),
                ("user[canViewProfiles]", "0"),
            ],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    assert!(r.headers["content-type"].to_str().unwrap().contains("json"));
    let user = r.json()["user"].clone();
    let id_text = user["id"]
        .as_str()
        .expect("id is a string in JSON")
        .to_owned();
    let id: i64 = id_text.parse().unwrap();
    assert_eq!(user["email"], "bob@example.com");
    assert_eq!(user["firstName"], "Bob");
    assert_eq!(user["lastName"], Value::Null, "absent is null in JSON");
    assert_eq!(user["securityLevel"], 200);
    assert!(user["securityLevel"].is_number());
    assert_eq!(user["canViewProfiles"], false);
    assert_eq!(user["active"], true);
    assert!(user.get("password").is_none());

    // Defaults: securityLevel 100 (user), canViewProfiles false.
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "dee@example.com"),
                ("user[password]", "pw-dee-secret"),
                ("user[canViewProfiles]", "true"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["canViewProfiles"], true);
    assert_eq!(r.json()["user"]["securityLevel"], 100);
    let dee: i64 = r.json()["user"]["id"].as_str().unwrap().parse().unwrap();

    let got = read_user(&server, &admin, id).await;
    assert_eq!(got["id"], id_text);
    assert_eq!(got["securityLevel"], 200);
    assert_eq!(got["canViewProfiles"], false);

    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "bob@example.com")],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    assert_eq!(r.json()["user"]["id"], id_text);

    let ids = visible_ids(&server, &admin).await;
    assert_eq!(ids.len(), 3);
    assert_eq!(&ids[1..], &[id, dee]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_remove_answer_in_xml_and_in_json() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("cat@example.com", 100, false).await;
    let sid = id.to_string();

    let r = server
        .call(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &sid),
                ("user[lastName]", "Xml"),
            ],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    assert_eq!(r.xml_text("id"), Some(sid.clone()));
    assert_eq!(r.xml_text("lastName").as_deref(), Some("Xml"));
    assert_eq!(r.xml_text("canViewProfiles").as_deref(), Some("0"));

    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &sid),
                ("user[lastName]", "Json"),
                ("user[canViewProfiles]", "yes"),
            ],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    let user = r.json()["user"].clone();
    assert_eq!(user["id"], sid);
    assert_eq!(user["lastName"], "Json");
    assert_eq!(user["canViewProfiles"], true);
    assert_eq!(user["securityLevel"], 100);
    assert_eq!(read_user(&server, &admin, id).await["lastName"], "Json");

    let (id2, _) = server.user("dan@example.com", 100, false).await;
    let r = server
        .call("users/remove", &[("sessionId", &admin), ("id", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(sid.clone()));
    let r = server
        .call_json(
            "users/remove",
            &[("sessionId", &admin), ("id", &id2.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], id2.to_string());
    assert_eq!(visible_ids(&server, &admin).await.len(), 1);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Verbs
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refuse_any_verb_but_post_with_405_and_allow_post() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("eve@example.com", 100, false).await;
    let sid = id.to_string();
    let before = read_user(&server, &admin, id).await;

    let writes: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "users/add",
            vec![
                ("sessionId", &admin),
                ("user[email]", "new@example.com"),
                ("user[password]", "pw-new-secret"),
            ],
        ),
        (
            "users/update",
            vec![
                ("sessionId", &admin),
                ("user[id]", &sid),
                ("user[lastName]", "Changed"),
            ],
        ),
        ("users/remove", vec![("sessionId", &admin), ("id", &sid)]),
    ];
    for (call, params) in &writes {
        // With the post prefix and with the get prefix: the verb decides.
        let get_prefixed = server.https(&format!("/api/v2/service/get/{call}"));
        for url in [server.api(call), get_prefixed] {
            let r = read(server.client.get(&url).query(params).send().await.unwrap()).await;
            r.assert_fail(405, "method_not_allowed");
            assert_eq!(r.headers["allow"], "POST", "{call}");
        }
        let r = read(
            server
                .client
                .put(server.api(call))
                .form(params)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_fail(405, "method_not_allowed");
        assert_eq!(r.headers["allow"], "POST", "{call}");
        let r = read(
            server
                .client
                .delete(server.api(call))
                .query(params)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_fail(405, "method_not_allowed");
        assert_eq!(r.headers["allow"], "POST", "{call}");
    }

    // Nothing was added, changed or removed.
    assert_eq!(read_user(&server, &admin, id).await, before);
    assert_eq!(visible_ids(&server, &admin).await.len(), 2);
    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "new@example.com")],
        )
        .await;
    r.assert_fail(404, "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_accept_get_and_post_under_either_prefix() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let reads: [(&str, Vec<(&str, &str)>); 3] = [
        ("users/getById", vec![("sessionId", &admin), ("id", "1")]),
        (
            "users/getByEmail",
            vec![("sessionId", &admin), ("email", ADMIN_EMAIL)],
        ),
        ("users/getAll", vec![("sessionId", &admin)]),
    ];
    for (call, params) in &reads {
        for prefix in ["get", "post"] {
            let url = server.https(&format!("/api/v2/service/{prefix}/{call}"));
            let r = read(server.client.get(&url).query(params).send().await.unwrap()).await;
            r.assert_ok();
            let r = read(server.client.post(&url).form(params).send().await.unwrap()).await;
            r.assert_ok();
        }
        let r = read(
            server
                .client
                .put(server.api(call))
                .form(params)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_fail(405, "method_not_allowed");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Missing and invalid arguments
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_without_email_and_password_is_422_naming_both_fields() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    let r = server
        .call_json(
            "users/add",
            &[("sessionId", &admin), ("user[firstName]", "Nobody")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    let fields = r.error_fields();
    assert!(fields.contains(&"user[email]".to_owned()), "{}", r.body);
    assert!(fields.contains(&"user[password]".to_owned()), "{}", r.body);
    for e in r.json()["errors"].as_array().unwrap() {
        assert_eq!(e["code"], "required", "{}", r.body);
        assert!(e["message"].is_string());
    }

    // Empty values count as missing, and the XML answer lists them too.
    let r = server
        .call(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", ""),
                ("user[password]", ""),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    let fields = r.error_fields();
    assert!(fields.contains(&"user[email]".to_owned()), "{}", r.body);
    assert!(fields.contains(&"user[password]".to_owned()), "{}", r.body);

    // Only one missing.
    let r = server
        .call_json(
            "users/add",
            &[("sessionId", &admin), ("user[email]", "solo@example.com")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["user[password]".to_owned()]);

    assert_eq!(
        visible_ids(&server, &admin).await.len(),
        1,
        "nothing was added"
    );
    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "solo@example.com")],
        )
        .await;
    r.assert_fail(404, "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_an_id_are_422_and_ids_that_are_not_numbers_are_400() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("fay@example.com", 100, false).await;
    let before = read_user(&server, &admin, id).await;

    let r = server
        .call_json(
            "users/update",
            &[("sessionId", &admin), ("user[lastName]", "Who")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["user[id]".to_owned()]);
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", ""),
                ("user[lastName]", "Who"),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");

    let r = server
        .call_json("users/remove", &[("sessionId", &admin)])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["id".to_owned()]);

    let r = server
        .call_json("users/getById", &[("sessionId", &admin)])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["id".to_owned()]);

    let r = server
        .call_json("users/getById", &[("sessionId", &admin), ("id", "abc")])
        .await;
    r.assert_fail(400, "invalid_argument");
    let r = server
        .call_json("users/remove", &[("sessionId", &admin), ("id", "abc")])
        .await;
    r.assert_fail(400, "invalid_argument");
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", "abc"),
                ("user[lastName]", "Who"),
            ],
        )
        .await;
    r.assert_fail(400, "invalid_argument");
    assert_eq!(r.json()["field"], "user[id]");

    assert_eq!(read_user(&server, &admin, id).await, before);
    assert_eq!(visible_ids(&server, &admin).await.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_with_a_bad_email_a_short_password_or_an_unknown_level_is_422() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let cases: [(&str, &str, &str, &str); 6] = [
        ("not-an-email", "pw-long-enough", "100", "user[email]"),
        (
            "two words@example.com",
            "pw-long-enough",
            "100",
            "user[email]",
        ),
        ("a@b@example.com", "pw-long-enough", "100", "user[email]"),
        ("ok1@example.com", "short", "100", "user[password]"),
        (
            "ok2@example.com",
            "pw-long-enough",
            "50",
            "user[securityLevel]",
        ),
        (
            "ok3@example.com",
            "pw-long-enough",
            "-1",
            "user[securityLevel]",
        ),
    ];
    for (email, password, level, field) in cases {
        let r = server
            .call_json(
                "users/add",
                &[
                    ("sessionId", &admin),
                    ("user[email]", email),
                    ("user[password]", password),
                    ("user[securityLevel]", level),
                ],
            )
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(
            r.error_fields(),
            vec![field.to_owned()],
            "{email} {password} {level}"
        );
    }
    // Several at once are all listed.
    let r = server
        .call(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "nope"),
                ("user[password]", "1234567"),
                ("user[securityLevel]", "50"),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["user[email]", "user[password]", "user[securityLevel]"]
    );

    assert_eq!(
        visible_ids(&server, &admin).await.len(),
        1,
        "nothing was added"
    );
    for email in ["ok1@example.com", "ok2@example.com", "ok3@example.com"] {
        let r = server
            .call_json(
                "users/getByEmail",
                &[("sessionId", &admin), ("email", email)],
            )
            .await;
        r.assert_fail(404, "not_found");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_with_a_bad_email_a_short_password_or_an_unknown_level_is_422_and_changes_nothing()
{
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("gil@example.com", 150, false).await;
    let sid = id.to_string();
    let before = read_user(&server, &admin, id).await;
    let cases: [(&str, &str, &str); 5] = [
        ("user[email]", "not-an-email", "user[email]"),
        ("user[email]", "", "user[email]"),
        ("user[password]", "short", "user[password]"),
        ("user[securityLevel]", "50", "user[securityLevel]"),
        ("user[securityLevel]", "", "user[securityLevel]"),
    ];
    for (key, value, field) in cases {
        let r = server
            .call_json(
                "users/update",
                &[
                    ("sessionId", &admin),
                    ("user[id]", &sid),
                    ("user[lastName]", "Should not stick"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), vec![field.to_owned()], "{key}={value}");
    }
    assert_eq!(read_user(&server, &admin, id).await, before);
    assert_signs_in(&server, "gil@example.com", &password_for("gil@example.com")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_level_or_flag_of_the_wrong_type_is_400_invalid_argument() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("hal@example.com", 100, false).await;
    let before = read_user(&server, &admin, id).await;

    for (key, value) in [
        ("user[securityLevel]", "abc"),
        ("user[canViewProfiles]", "maybe"),
    ] {
        let r = server
            .call_json(
                "users/add",
                &[
                    ("sessionId", &admin),
                    ("user[email]", "typed@example.com"),
                    ("user[password]", "pw-long-enough"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], key, "{}", r.body);

        let r = server
            .call(
                "users/update",
                &[
                    ("sessionId", &admin),
                    ("user[id]", &id.to_string()),
                    ("user[lastName]", "Should not stick"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
    }
    assert_eq!(read_user(&server, &admin, id).await, before);
    assert_eq!(visible_ids(&server, &admin).await.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_already_used_in_another_case_is_409_duplicate_email() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (ivy, _) = server.user("ivy@example.com", 100, false).await;
    let (jon, _) = server.user("jon@example.com", 100, false).await;
    let ivy_before = read_user(&server, &admin, ivy).await;
    let jon_before = read_user(&server, &admin, jon).await;

    for email in ["ivy@example.com", "IVY@Example.COM", "Admin@Example.com"] {
        let r = server
            .call_json(
                "users/add",
                &[
                    ("sessionId", &admin),
                    ("user[email]", email),
                    ("user[password]", "pw-other-secret"),
                ],
            )
            .await;
        r.assert_fail(409, "duplicate_email");
    }
    let r = server
        .call(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &jon.to_string()),
                ("user[email]", "Ivy@EXAMPLE.com"),
                ("user[lastName]", "Should not stick"),
            ],
        )
        .await;
    r.assert_fail(409, "duplicate_email");

    assert_eq!(read_user(&server, &admin, ivy).await, ivy_before);
    assert_eq!(read_user(&server, &admin, jon).await, jon_before);
    assert_eq!(visible_ids(&server, &admin).await.len(), 3);
    // Ivy still signs in with her own password.
    assert_signs_in(&server, "ivy@example.com", &password_for("ivy@example.com")).await;

    // Changing the case of one's own email is not a duplicate.
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &jon.to_string()),
                ("user[email]", "Jon@Example.com"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["email"], "Jon@Example.com");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_emails_are_404_not_found() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = server
        .call_json("users/getById", &[("sessionId", &admin), ("id", "9999")])
        .await;
    r.assert_fail(404, "not_found");
    let r = server
        .get("users/getById", &[("sessionId", &admin), ("id", "9999")])
        .await;
    r.assert_fail(404, "not_found");
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", "9999"),
                ("user[lastName]", "Ghost"),
            ],
        )
        .await;
    r.assert_fail(404, "not_found");
    let r = server
        .call_json("users/remove", &[("sessionId", &admin), ("id", "9999")])
        .await;
    r.assert_fail(404, "not_found");
    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "ghost@example.com")],
        )
        .await;
    r.assert_fail(404, "not_found");
    assert_eq!(visible_ids(&server, &admin).await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_credentials_are_401_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("kim@example.com", 100, false).await;
    let before = read_user(&server, &admin, id).await;
    let sid = id.to_string();
    let r = server
        .call_json(
            "users/add",
            &[
                ("user[email]", "anon@example.com"),
                ("user[password]", "pw-anon-secret"),
            ],
        )
        .await;
    r.assert_fail(401, "auth_required");
    let r = server
        .call_json(
            "users/update",
            &[("user[id]", &sid), ("user[lastName]", "Anon")],
        )
        .await;
    r.assert_fail(401, "auth_required");
    let r = server.call_json("users/remove", &[("id", &sid)]).await;
    r.assert_fail(401, "auth_required");
    let r = server
        .call_json("users/getAll", &[("sessionId", "not-a-session")])
        .await;
    r.assert_fail(401, "auth_failed");
    assert_eq!(read_user(&server, &admin, id).await, before);
    assert_eq!(visible_ids(&server, &admin).await.len(), 2);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Rights
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_externals_and_clients_cannot_add_users() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for level in NON_ADMIN_LEVELS {
        for cvp in [false, true] {
            let email = format!("{}-{cvp}@example.com", level_name(level));
            let (_, sid) = server.user(&email, level, cvp).await;
            for new_level in ["100", "0"] {
                let r = server
                    .call_json(
                        "users/add",
                        &[
                            ("sessionId", &sid),
                            ("user[email]", "intruder@example.com"),
                            ("user[password]", "pw-intruder-secret"),
                            ("user[securityLevel]", new_level),
                        ],
                    )
                    .await;
                r.assert_fail(403, "forbidden");
            }
        }
    }
    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "intruder@example.com")],
        )
        .await;
    r.assert_fail(404, "not_found");
    assert_eq!(
        visible_ids(&server, &admin).await.len(),
        7,
        "admin and six callers only"
    );
    assert_sign_in_fails(&server, "intruder@example.com", "pw-intruder-secret").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_externals_and_clients_cannot_remove_users() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let admin_id = id_of(&server.as_caller(&admin).user_by_email(ADMIN_EMAIL).await);
    let (target, _) = server.user("target@example.com", 100, false).await;
    for level in NON_ADMIN_LEVELS {
        // One who sees everyone: 403 on others, on the admin and on themself.
        let (seer, seer_sid) = server
            .user(
                &format!("{}-seer@example.com", level_name(level)),
                level,
                true,
            )
            .await;
        for id in [target, admin_id, seer] {
            let r = server
                .call_json(
                    "users/remove",
                    &[("sessionId", &seer_sid), ("id", &id.to_string())],
                )
                .await;
            r.assert_fail(403, "forbidden");
        }
        // One who sees only themself: 404 on others, 403 on themself.
        let (blind, blind_sid) = server
            .user(
                &format!("{}-blind@example.com", level_name(level)),
                level,
                false,
            )
            .await;
        for id in [target, admin_id] {
            let r = server
                .call(
                    "users/remove",
                    &[("sessionId", &blind_sid), ("id", &id.to_string())],
                )
                .await;
            r.assert_fail(404, "not_found");
        }
        let r = server
            .call(
                "users/remove",
                &[("sessionId", &blind_sid), ("id", &blind.to_string())],
            )
            .await;
        r.assert_fail(403, "forbidden");
        // Nobody was removed, and their sessions still work.
        for sid in [&seer_sid, &blind_sid] {
            server
                .call_json("users/getAll", &[("sessionId", sid)])
                .await
                .assert_ok();
        }
        assert_eq!(read_user(&server, &admin, seer).await["active"], true);
        assert_eq!(read_user(&server, &admin, blind).await["active"], true);
    }
    assert_eq!(read_user(&server, &admin, target).await["active"], true);
    assert_eq!(read_user(&server, &admin, admin_id).await["active"], true);
    assert_eq!(visible_ids(&server, &admin).await.len(), 8);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_externals_and_clients_cannot_edit_others() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let admin_id = id_of(&server.as_caller(&admin).user_by_email(ADMIN_EMAIL).await);
    let (target, _) = server.user("target@example.com", 100, false).await;
    let target_before = read_user(&server, &admin, target).await;
    let admin_before = read_user(&server, &admin, admin_id).await;
    for level in NON_ADMIN_LEVELS {
        let (_, seer_sid) = server
            .user(
                &format!("{}-seer@example.com", level_name(level)),
                level,
                true,
            )
            .await;
        let (_, blind_sid) = server
            .user(
                &format!("{}-blind@example.com", level_name(level)),
                level,
                false,
            )
            .await;
        for id in [target, admin_id] {
            let id = id.to_string();
            for (key, value) in [
                ("user[lastName]", "Hacked"),
                ("user[password]", "pw-hacked-secret"),
                ("user[securityLevel]", "200"),
                ("user[email]", "hacked@example.com"),
            ] {
                let params = [("user[id]", id.as_str()), (key, value)];
                let mut seen = params.to_vec();
                seen.push(("sessionId", &seer_sid));
                server
                    .call_json("users/update", &seen)
                    .await
                    .assert_fail(403, "forbidden");
                let mut unseen = params.to_vec();
                unseen.push(("sessionId", &blind_sid));
                server
                    .call("users/update", &unseen)
                    .await
                    .assert_fail(404, "not_found");
            }
        }
    }
    assert_eq!(read_user(&server, &admin, target).await, target_before);
    assert_eq!(read_user(&server, &admin, admin_id).await, admin_before);
    assert_signs_in(
        &server,
        "target@example.com",
        &password_for("target@example.com"),
    )
    .await;
    assert_signs_in(&server, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_edits_their_own_profile() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for level in NON_ADMIN_LEVELS {
        let email = format!("{}-self@example.com", level_name(level));
        let (id, sid) = server.user(&email, level, false).await;
        let r = server
            .call_json(
                "users/update",
                &[
                    ("sessionId", &sid),
                    ("user[id]", &id.to_string()),
                    ("user[firstName]", "Self"),
                    ("user[workPhone]", "+1 555 0100"),
                    ("user[comment]", "edited by myself"),
                ],
            )
            .await;
        r.assert_ok();
        assert_no_secrets(&r);
        let user = r.json()["user"].clone();
        assert_eq!(user["firstName"], "Self");
        assert_eq!(user["can_edit"], true);
        let stored = read_user(&server, &admin, id).await;
        assert_eq!(stored["firstName"], "Self");
        assert_eq!(stored["workPhone"], "+1 555 0100");
        assert_eq!(stored["comment"], "edited by myself");
        assert_eq!(stored["securityLevel"], level);
        assert_eq!(stored["canViewProfiles"], false);
        // Their own getById shows the change too.
        let r = server
            .call(
                "users/getById",
                &[("sessionId", &sid), ("id", &id.to_string())],
            )
            .await;
        r.assert_ok();
        assert_eq!(r.xml_text("firstName").as_deref(), Some("Self"));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_cannot_change_their_own_security_level_or_can_view_profiles() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for level in NON_ADMIN_LEVELS {
        for cvp in [false, true] {
            let email = format!("{}-{cvp}@example.com", level_name(level));
            let (id, sid) = server.user(&email, level, cvp).await;
            let before = read_user(&server, &admin, id).await;
            let other_level = if level == 100 { "150" } else { "100" };
            let flipped = if cvp { "0" } else { "1" };
            for (key, value) in [
                ("user[securityLevel]", "0"),
                ("user[securityLevel]", other_level),
                ("user[canViewProfiles]", flipped),
            ] {
                let r = server
                    .call_json(
                        "users/update",
                        &[
                            ("sessionId", &sid),
                            ("user[id]", &id.to_string()),
                            ("user[lastName]", "Should not stick"),
                            (key, value),
                        ],
                    )
                    .await;
                r.assert_fail(403, "forbidden");
            }
            assert_eq!(read_user(&server, &admin, id).await, before, "{email}");
            // Still not allowed to manage users.
            let r = server
                .call_json(
                    "users/add",
                    &[
                        ("sessionId", &sid),
                        ("user[email]", "x@example.com"),
                        ("user[password]", "pw-long-enough"),
                    ],
                )
                .await;
            r.assert_fail(403, "forbidden");
        }
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Visibility
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_can_view_profiles_sees_only_themself() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let admin_id = id_of(&server.as_caller(&admin).user_by_email(ADMIN_EMAIL).await);
    let (other, _) = server.user("other@example.com", 100, true).await;
    for level in NON_ADMIN_LEVELS {
        let email = format!("{}-blind@example.com", level_name(level));
        let (me, sid) = server.user(&email, level, false).await;

        assert_eq!(visible_ids(&server, &sid).await, vec![me]);
        let r = server.get("users/getAll", &[("sessionId", &sid)]).await;
        r.assert_ok();
        assert_eq!(xml_user_ids(&r), vec![me]);

        let r = server
            .call_json(
                "users/getById",
                &[("sessionId", &sid), ("id", &me.to_string())],
            )
            .await;
        r.assert_ok();
        assert_eq!(r.json()["user"]["can_edit"], true);
        let r = server
            .call_json(
                "users/getByEmail",
                &[("sessionId", &sid), ("email", &email)],
            )
            .await;
        r.assert_ok();

        for (id, email) in [(other, "other@example.com"), (admin_id, ADMIN_EMAIL)] {
            let r = server
                .call_json(
                    "users/getById",
                    &[("sessionId", &sid), ("id", &id.to_string())],
                )
                .await;
            r.assert_fail(404, "not_found");
            let r = server
                .call_json("users/getByEmail", &[("sessionId", &sid), ("email", email)])
                .await;
            r.assert_fail(404, "not_found");
        }
        // Not visible and absent answer the same.
        let hidden = server
            .call_json(
                "users/getById",
                &[("sessionId", &sid), ("id", &other.to_string())],
            )
            .await;
        let absent = server
            .call_json("users/getById", &[("sessionId", &sid), ("id", "9999")])
            .await;
        assert_eq!(hidden.json()["code"], absent.json()["code"]);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_can_view_profiles_sees_everyone() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let admin_id = id_of(&server.as_caller(&admin).user_by_email(ADMIN_EMAIL).await);
    let (other, _) = server.user("other@example.com", 200, false).await;
    let mut everyone = vec![admin_id, other];
    for level in NON_ADMIN_LEVELS {
        let email = format!("{}-seer@example.com", level_name(level));
        let (me, sid) = server.user(&email, level, true).await;
        everyone.push(me);

        let r = server
            .call_json("users/getAll", &[("sessionId", &sid)])
            .await;
        r.assert_ok();
        assert_no_secrets(&r);
        let items = r.json()["items"].as_array().unwrap().clone();
        let ids: Vec<i64> = items
            .iter()
            .map(|u| u["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(ids, everyone);
        for u in &items {
            let own = u["id"].as_str() == Some(me.to_string().as_str());
            assert_eq!(u["can_edit"], own, "{u}");
        }

        for (id, email) in [(other, "other@example.com"), (admin_id, ADMIN_EMAIL)] {
            let r = server
                .call_json(
                    "users/getById",
                    &[("sessionId", &sid), ("id", &id.to_string())],
                )
                .await;
            r.assert_ok();
            assert_eq!(r.json()["user"]["can_edit"], false);
            let r = server
                .get("users/getByEmail", &[("sessionId", &sid), ("email", email)])
                .await;
            r.assert_ok();
            assert_eq!(r.xml_text("id"), Some(id.to_string()));
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_and_may_edit_every_user() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let admin_id = id_of(&server.as_caller(&admin).user_by_email(ADMIN_EMAIL).await);
    let mut everyone = vec![admin_id];
    for level in NON_ADMIN_LEVELS {
        for cvp in [false, true] {
            let email = format!("{}-{cvp}@example.com", level_name(level));
            everyone.push(server.user(&email, level, cvp).await.0);
        }
    }
    let r = server
        .call_json("users/getAll", &[("sessionId", &admin)])
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    let items = r.json()["items"].as_array().unwrap().clone();
    let ids: Vec<i64> = items
        .iter()
        .map(|u| u["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, everyone);
    assert!(items.iter().all(|u| u["can_edit"] == true), "{}", r.body);
    let r = server.get("users/getAll", &[("sessionId", &admin)]).await;
    assert_eq!(xml_user_ids(&r), everyone);
    for id in &everyone[1..] {
        let r = server
            .call_json(
                "users/update",
                &[
                    ("sessionId", &admin),
                    ("user[id]", &id.to_string()),
                    ("user[company]", "Acme"),
                ],
            )
            .await;
        r.assert_ok();
        assert_eq!(r.json()["user"]["company"], "Acme");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// The last admin
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_cannot_be_removed_or_demoted_until_a_second_admin_exists() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let first = id_of(&server.as_caller(&admin).user_by_email(ADMIN_EMAIL).await);
    let first_s = first.to_string();
    let before = read_user(&server, &admin, first).await;

    let r = server
        .call_json("users/remove", &[("sessionId", &admin), ("id", &first_s)])
        .await;
    r.assert_fail(409, "last_admin");
    for level in ["100", "150", "200"] {
        let r = server
            .call(
                "users/update",
                &[
                    ("sessionId", &admin),
                    ("user[id]", &first_s),
                    ("user[securityLevel]", level),
                    ("user[lastName]", "Should not stick"),
                ],
            )
            .await;
        r.assert_fail(409, "last_admin");
    }
    assert_eq!(read_user(&server, &admin, first).await, before);
    // Re-stating the level is not a demotion.
    server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &first_s),
                ("user[securityLevel]", "0"),
            ],
        )
        .await
        .assert_ok();

    // A removed admin does not count as a second admin.
    let (gone, _) = server.user("gone-admin@example.com", 0, false).await;
    server
        .call_json(
            "users/remove",
            &[("sessionId", &admin), ("id", &gone.to_string())],
        )
        .await
        .assert_ok();
    let r = server
        .call_json("users/remove", &[("sessionId", &admin), ("id", &first_s)])
        .await;
    r.assert_fail(409, "last_admin");

    // With more admins, one can be removed and one demoted.
    let (second, second_sid) = server.user("second-admin@example.com", 0, false).await;
    let (third, third_sid) = server.user("third-admin@example.com", 0, false).await;
    server
        .call_json(
            "users/remove",
            &[("sessionId", &admin), ("id", &second.to_string())],
        )
        .await
        .assert_ok();
    assert_eq!(
        read_user(&server, &third_sid, second).await["active"],
        false
    );
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &third_sid),
                ("user[id]", &first_s),
                ("user[securityLevel]", "100"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["securityLevel"], 100);
    // The new level ended the demoted admin's session; signed in again, it has a user's
    // rights.
    server
        .call_json("authentication/getAuthorizedUser", &[("sessionId", &admin)])
        .await
        .assert_fail(401, "auth_failed");
    let admin = server.admin().await;
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "late@example.com"),
                ("user[password]", "pw-late-secret"),
            ],
        )
        .await;
    r.assert_fail(403, "forbidden");
    let _ = second_sid;

    // Now the third is the last admin.
    let third_s = third.to_string();
    let third_before = read_user(&server, &third_sid, third).await;
    let r = server
        .call_json(
            "users/remove",
            &[("sessionId", &third_sid), ("id", &third_s)],
        )
        .await;
    r.assert_fail(409, "last_admin");
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &third_sid),
                ("user[id]", &third_s),
                ("user[securityLevel]", "200"),
            ],
        )
        .await;
    r.assert_fail(409, "last_admin");
    assert_eq!(read_user(&server, &third_sid, third).await, third_before);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Removal
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_deactivates_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let email = "leo@example.com";
    let password = password_for(email);
    let (id, sid) = server.user(email, 100, true).await;
    let ids = id.to_string();
    server
        .call_json("users/getAll", &[("sessionId", &sid)])
        .await
        .assert_ok();

    let r = server
        .call_json("users/remove", &[("sessionId", &admin), ("id", &ids)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], ids);

    // It cannot sign in, by signIn or per request, and its session has ended.
    assert_sign_in_fails(&server, email, &password).await;
    let r = server
        .call_json("users/getAll", &[("login", email), ("password", &password)])
        .await;
    assert_unauthenticated(&r);
    let r = server
        .call_json("users/getAll", &[("sessionId", &sid)])
        .await;
    assert_unauthenticated(&r);
    let r = server
        .call_json("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await;
    assert_unauthenticated(&r);

    // Gone from getAll and getByEmail; getById still shows it, inactive.
    assert!(!visible_ids(&server, &admin).await.contains(&id));
    let r = server.get("users/getAll", &[("sessionId", &admin)]).await;
    assert!(!xml_user_ids(&r).contains(&id));
    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", email)],
        )
        .await;
    r.assert_fail(404, "not_found");
    let user = read_user(&server, &admin, id).await;
    assert_eq!(user["active"], false);
    assert_eq!(user["email"], email);
    assert_eq!(user["can_edit"], false);
    let r = server
        .get("users/getById", &[("sessionId", &admin), ("id", &ids)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("active").as_deref(), Some("0"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_email_can_be_used_by_a_new_user() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (old, _) = server.user("mia@example.com", 100, false).await;
    server
        .call_json(
            "users/remove",
            &[("sessionId", &admin), ("id", &old.to_string())],
        )
        .await
        .assert_ok();

    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "Mia@Example.com"),
                ("user[password]", "pw-new-mia-secret"),
                ("user[securityLevel]", "150"),
            ],
        )
        .await;
    r.assert_ok();
    let new: i64 = r.json()["user"]["id"].as_str().unwrap().parse().unwrap();
    assert_ne!(new, old);

    assert_signs_in(&server, "mia@example.com", "pw-new-mia-secret").await;
    assert_sign_in_fails(&server, "mia@example.com", &password_for("mia@example.com")).await;
    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "mia@example.com")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["id"], new.to_string());
    assert_eq!(r.json()["user"]["securityLevel"], 150);
    assert_eq!(read_user(&server, &admin, old).await["active"], false);

    // The new user now holds the email: a third is a duplicate.
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "mia@example.com"),
                ("user[password]", "pw-third-mia"),
            ],
        )
        .await;
    r.assert_fail(409, "duplicate_email");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Partial update, clearing, passwords
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_only_the_last_name_keeps_every_other_attribute() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "ned@example.com"),
                ("user[password]", "pw-ned-secret"),
                ("user[title]", "Mr"),
                ("user[firstName]", "Ned"),
                ("user[lastName]", "Old"),
                ("user[address]", "1 Main St"),
                ("user[workPhone]", "111"),
                ("user[cellPhone]", "222"),
                ("user[company]", "Acme"),
                ("user[comment]", "a comment"),
                ("user[avatar]", "https://example.com/a.png"),
                ("user[securityLevel]", "150"),
                ("user[canViewProfiles]", "1"),
            ],
        )
        .await;
    r.assert_ok();
    let before = r.json()["user"].clone();
    let id = before["id"].as_str().unwrap().to_owned();

    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &id),
                ("user[lastName]", "New"),
            ],
        )
        .await;
    r.assert_ok();
    let after = read_user(&server, &admin, id.parse().unwrap()).await;
    assert_eq!(after["lastName"], "New");
    let keys: Vec<String> = before.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        after
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    );
    for key in keys {
        if key == "lastName" || key == "updatedAt" {
            continue;
        }
        assert_eq!(before[&key], after[&key], "{key} changed");
    }
    assert_eq!(r.json()["user"], after, "update returns the saved object");
    assert_signs_in(&server, "ned@example.com", "pw-ned-secret").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_value_clears_a_nullable_attribute_and_keeps_the_others() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "ola@example.com"),
                ("user[password]", "pw-ola-secret"),
                ("user[title]", "Prof"),
                ("user[company]", "Acme"),
                ("user[firstName]", "Ola"),
            ],
        )
        .await;
    r.assert_ok();
    let before = r.json()["user"].clone();
    let id = before["id"].as_str().unwrap().to_owned();

    let r = server
        .call(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &id),
                ("user[title]", ""),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("title").as_deref(), Some(""));
    assert_eq!(r.xml_text("company").as_deref(), Some("Acme"));
    let after = read_user(&server, &admin, id.parse().unwrap()).await;
    assert_eq!(after["title"], Value::Null);
    assert_eq!(after["company"], "Acme");
    assert_eq!(after["firstName"], "Ola");
    assert_eq!(after["email"], "ola@example.com");
    assert_eq!(after["securityLevel"], before["securityLevel"]);

    // A JSON null clears as well.
    let r = server
        .client
        .post(server.api("users/update"))
        .json(&serde_json::json!({
            "sessionId": admin, "retType": "json",
            "user": {"id": id, "company": null}
        }))
        .send()
        .await
        .unwrap();
    let r = read(r).await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["company"], Value::Null);
    assert_eq!(r.json()["user"]["firstName"], "Ola");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_through_update_signs_in_and_the_old_one_does_not() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let email = "pat@example.com";
    let (id, sid) = server.user(email, 100, false).await;
    let ids = id.to_string();

    // By an admin.
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &ids),
                ("user[password]", "second-password"),
            ],
        )
        .await;
    r.assert_ok();
    assert_no_secrets(&r);
    assert!(!r.body.contains("second-password"));
    assert_signs_in(&server, email, "second-password").await;
    assert_sign_in_fails(&server, email, &password_for(email)).await;
    // The new password ended the session opened with the old one.
    server
        .call("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await
        .assert_fail(401, "auth_failed");

    // By the user themself.
    let sid = server.sign_in(email, "second-password").await;
    let r = server
        .call(
            "users/update",
            &[
                ("sessionId", &sid),
                ("user[id]", &ids),
                ("user[password]", "third-password"),
            ],
        )
        .await;
    r.assert_ok();
    assert!(!r.body.contains("third-password"));
    assert_signs_in(&server, email, "third-password").await;
    assert_sign_in_fails(&server, email, "second-password").await;

    // A refused new password leaves the current one.
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &sid),
                ("user[id]", &ids),
                ("user[password]", "short"),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["user[password]".to_owned()]);
    assert_signs_in(&server, email, "third-password").await;
    assert_sign_in_fails(&server, email, "short").await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// getByEmail
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_by_email_ignores_case_and_requires_an_email() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "Quinn.Smith@Example.com"),
                ("user[password]", "pw-quinn-secret"),
            ],
        )
        .await;
    r.assert_ok();
    let id = r.json()["user"]["id"].clone();
    for email in [
        "Quinn.Smith@Example.com",
        "quinn.smith@example.com",
        "QUINN.SMITH@EXAMPLE.COM",
    ] {
        let r = server
            .call_json(
                "users/getByEmail",
                &[("sessionId", &admin), ("email", email)],
            )
            .await;
        r.assert_ok();
        assert_eq!(r.json()["user"]["id"], id);
        assert_eq!(
            r.json()["user"]["email"],
            "Quinn.Smith@Example.com",
            "stored as given"
        );
    }
    assert_signs_in(&server, "QUINN.smith@example.com", "pw-quinn-secret").await;

    let r = server
        .call_json("users/getByEmail", &[("sessionId", &admin)])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["email".to_owned()]);
    let r = server
        .get("users/getByEmail", &[("sessionId", &admin), ("email", "")])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["email".to_owned()]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Text XML cannot carry; JSON bodies
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_xml_cannot_carry_is_400_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("ray@example.com", 100, false).await;
    let before = read_user(&server, &admin, id).await;

    for bad in ["\u{1}", "a\u{8}b", "x\u{FFFE}", "\u{1F}"] {
        let r = server
            .call_json(
                "users/add",
                &[
                    ("sessionId", &admin),
                    ("user[email]", "ctl@example.com"),
                    ("user[password]", "pw-ctl-secret"),
                    ("user[firstName]", bad),
                ],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        let r = server
            .call(
                "users/update",
                &[
                    ("sessionId", &admin),
                    ("user[id]", &id.to_string()),
                    ("user[lastName]", bad),
                ],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
    }
    // The same through a JSON body.
    let r = read(
        server
            .client
            .post(server.api("users/add"))
            .json(&serde_json::json!({
                "sessionId": admin, "retType": "json",
                "user": {"email": "ctl@example.com", "password": "pw-ctl-secret", "firstName": "\u{1}"}
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(400, "invalid_argument");

    // Tabs and newlines are fine.
    let r = server
        .call_json(
            "users/update",
            &[
                ("sessionId", &admin),
                ("user[id]", &id.to_string()),
                ("user[comment]", "a\tb\nc"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["comment"], "a\tb\nc");
    let mut after = read_user(&server, &admin, id).await;
    after["comment"] = before["comment"].clone();
    after["updatedAt"] = before["updatedAt"].clone();
    assert_eq!(after, before, "the refused updates changed nothing");

    let r = server
        .call_json(
            "users/getByEmail",
            &[("sessionId", &admin), ("email", "ctl@example.com")],
        )
        .await;
    r.assert_fail(404, "not_found");
    assert_eq!(visible_ids(&server, &admin).await.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_request_body_adds_a_user() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = read(
        server
            .client
            .post(server.api("users/add"))
            .header("Content-Type", "application/json")
            .body(
                serde_json::json!({
                    "sessionId": admin,
                    "retType": "json",
                    "user": {
                        "email": "sam@example.com",
                        "password": "pw-sam-secret",
                        "firstName": "Sam",
                        "securityLevel": 150,
                        "canViewProfiles": true,
                        "id": 4242
                    }
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_ok();
    assert_no_secrets(&r);
    let user = r.json()["user"].clone();
    assert_eq!(user["email"], "sam@example.com");
    assert_eq!(user["firstName"], "Sam");
    assert_eq!(user["securityLevel"], 150);
    assert_eq!(user["canViewProfiles"], true);
    assert_ne!(user["id"], "4242", "id is read-only on add");
    assert_signs_in(&server, "sam@example.com", "pw-sam-secret").await;

    // Without retType the answer is XML; a missing password is still a 422.
    let r = read(
        server
            .client
            .post(server.api("users/add"))
            .json(&serde_json::json!({"sessionId": admin, "user": {"email": "tom@example.com"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(422, "validation_failed");
    assert!(r.body.starts_with("<?xml"), "{}", r.body);
    assert_eq!(r.error_fields(), vec!["user[password]".to_owned()]);
    assert_eq!(visible_ids(&server, &admin).await.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_values_are_422_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let long_password = "p".repeat(1025);
    let long_name = "n".repeat(256);
    let long_email = format!("{}@example.com", "e".repeat(250));
    let cases: [(&str, &str, &str, &str); 3] = [
        (
            "u1@example.com",
            long_password.as_str(),
            "user[firstName]",
            "ok",
        ),
        (
            "u2@example.com",
            "pw-long-enough",
            "user[lastName]",
            long_name.as_str(),
        ),
        (long_email.as_str(), "pw-long-enough", "user[company]", "ok"),
    ];
    let expected = ["user[password]", "user[lastName]", "user[email]"];
    for ((email, password, key, value), field) in cases.into_iter().zip(expected) {
        let r = server
            .call_json(
                "users/add",
                &[
                    ("sessionId", &admin),
                    ("user[email]", email),
                    ("user[password]", password),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), vec![field.to_owned()]);
    }
    // The limits themselves are accepted.
    let r = server
        .call_json(
            "users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", "edge@example.com"),
                ("user[password]", &"p".repeat(1024)),
                ("user[lastName]", &"é".repeat(255)),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(
        visible_ids(&server, &admin).await.len(),
        2,
        "only the edge case was added"
    );
    assert_signs_in(&server, "edge@example.com", &"p".repeat(1024)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_view_profiles_accepts_every_boolean_spelling() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (id, _) = server.user("uma@example.com", 100, false).await;
    let ids = id.to_string();
    for (value, expected) in [
        ("TRUE", true),
        ("no", false),
        ("On", true),
        ("off", false),
        ("Yes", true),
        ("0", false),
        ("1", true),
        ("False", false),
    ] {
        let r = server
            .call_json(
                "users/update",
                &[
                    ("sessionId", &admin),
                    ("user[id]", &ids),
                    ("user[canViewProfiles]", value),
                ],
            )
            .await;
        r.assert_ok();
        assert_eq!(r.json()["user"]["canViewProfiles"], expected, "{value}");
        let r = server
            .get("users/getById", &[("sessionId", &admin), ("id", &ids)])
            .await;
        assert_eq!(
            r.xml_text("canViewProfiles").as_deref(),
            Some(if expected { "1" } else { "0" }),
            "{value}"
        );
    }
    server.stop().await;
}
