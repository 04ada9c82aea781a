//! Personal API tokens (docs/tokens.md), end to end over HTTPS: the secret answered once
//! and stored only hashed, Bearer authentication as the user is now, the read scope, the
//! bounds of tokens/add, getAll and remove, and two nodes on one PostgreSQL database.
mod common;
use common::*;

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use vesper::api::endpoints::ENDPOINTS;

// ---- helpers ---------------------------------------------------------------------------

/// A call with the token in `Authorization: Bearer`, in JSON.
async fn by_token(s: &TestServer, token: &str, call: &str, args: &[(&str, &str)]) -> Resp {
    let mut all = args.to_vec();
    all.push(("retType", "json"));
    read(
        s.client
            .post(s.api(call))
            .bearer_auth(token)
            .form(&all)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// `tokens/add` by the session's user: the raw answer.
async fn add_answer(s: &TestServer, sid: &str, args: &[(&str, &str)]) -> Resp {
    s.as_caller(sid).call("tokens/add", args).await
}

/// Makes a token and answers (its id, its secret).
async fn make_token(s: &TestServer, sid: &str, name: &str, scope: &str) -> (i64, String) {
    let r = add_answer(s, sid, &[("token[name]", name), ("token[scope]", scope)]).await;
    r.assert_ok();
    let token = &r.json()["token"];
    (id_of(token), token["secret"].as_str().unwrap().to_owned())
}

/// The caller's tokens (or another user's, with `userId`).
async fn tokens_of(s: &TestServer, sid: &str, args: &[(&str, &str)]) -> Vec<Value> {
    s.as_caller(sid).list_by("tokens/getAll", args).await.items
}

fn fail(r: &Resp, status: u16, code: &str) {
    r.assert_fail(status, code);
}

/// Every row of the tokens table, with its hash, read beside the server.
async fn stored_tokens(s: &TestServer) -> Vec<(i64, Vec<u8>)> {
    match s.database_url() {
        Some(url) => {
            let client = pg_client(&url).await;
            client
                .query("SELECT id, token_hash FROM tokens ORDER BY id", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
        None => {
            let c = rusqlite::Connection::open(s.dir.path().join("vesper.sqlite3")).unwrap();
            let mut stmt = c
                .prepare("SELECT id, token_hash FROM tokens ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap()
        }
    }
}

/// Whether the database holds `text` anywhere: every byte of SQLite's files, or every
/// row of every table of PostgreSQL's, as text.
async fn database_holds(s: &TestServer, text: &str) -> bool {
    match s.database_url() {
        Some(url) => {
            let client = pg_client(&url).await;
            let tables: Vec<String> = client
                .query(
                    "SELECT tablename::TEXT FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            for table in tables {
                let sql = format!("SELECT COUNT(*) FROM \"{table}\" t WHERE t::TEXT LIKE $1");
                let n: i64 = client
                    .query_one(&sql, &[&format!("%{text}%")])
                    .await
                    .unwrap()
                    .get(0);
                if n > 0 {
                    return true;
                }
            }
            false
        }
        None => ["", "-wal", "-shm"].iter().any(|suffix| {
            let path = s.dir.path().join(format!("vesper.sqlite3{suffix}"));
            std::fs::read(path)
                .is_ok_and(|bytes| bytes.windows(text.len()).any(|w| w == text.as_bytes()))
        }),
    }
}

/// A date as the API writes it, `secs` from now.
fn date_from_now(secs: i64) -> String {
    let at = chrono::DateTime::from_timestamp(unix_now() as i64 + secs, 0).unwrap();
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

// ---- the secret ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_answers_the_secret_once_and_only_its_hash_is_stored() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let r = add_answer(
        &s,
        &sid,
        &[
            ("token[name]", "  deploy script "),
            ("token[scope]", "write"),
        ],
    )
    .await;
    r.assert_ok();
    let token = r.json()["token"].clone();
    let secret = token["secret"].as_str().unwrap().to_owned();
    let body = secret.strip_prefix("vsp_").expect("the vsp_ prefix");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("base64url without padding");
    assert!(raw.len() * 8 >= 128, "{} bits", raw.len() * 8);
    assert_eq!(raw.len(), 32, "256 random bits");
    assert_eq!(token["name"], "deploy script", "trimmed");
    assert_eq!(token["scope"], "write");
    assert!(token["id"].is_string(), "ids are strings in JSON: {token}");
    assert!(token["createdAt"].is_string());
    assert!(token["lastUsedAt"].is_null());
    assert!(token["expiresAt"].is_null());
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");

    // Never again: not in getAll, in either format.
    let listed = tokens_of(&s, &sid, &[]).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("secret").is_none(), "{}", listed[0]);
    let xml = s
        .call("tokens/getAll", &[("sessionId", sid.as_str())])
        .await;
    xml.assert_ok();
    assert!(!xml.body.contains(&secret) && !xml.body.contains("<secret"));
    assert_eq!(xml.xml_text("name").as_deref(), Some("deploy script"));

    // Stored: the SHA-256 of the secret, and the secret nowhere.
    let stored = stored_tokens(&s).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, id_of(&token));
    assert_eq!(stored[0].1, Sha256::digest(secret.as_bytes()).to_vec());
    assert!(!database_holds(&s, &secret).await, "the secret is stored");
    assert!(!database_holds(&s, body).await, "the secret is stored");

    // The XML answer of add carries it under the token too.
    let r = s
        .call(
            "tokens/add",
            &[
                ("sessionId", sid.as_str()),
                ("token[name]", "xml"),
                ("token[scope]", "read"),
            ],
        )
        .await;
    r.assert_ok();
    let doc = r.xml();
    let token = doc
        .descendants()
        .find(|n| n.has_tag_name("token"))
        .expect("a token element");
    let secret = token
        .children()
        .find(|n| n.has_tag_name("secret"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(secret.starts_with("vsp_"));
    by_token(&s, secret, "authentication/getAuthorizedUser", &[])
        .await
        .assert_ok();
    s.stop().await;
}

// ---- scopes ----------------------------------------------------------------------------

/// What the caller sees of everything a write could change.
async fn snapshot(s: &TestServer, sid: &str) -> Vec<String> {
    let c = s.as_caller(sid);
    let mut out = Vec::new();
    for call in [
        "projectsgroups/getAll",
        "projects/getAll",
        "users/getAll",
        "tokens/getAll",
    ] {
        out.push(c.call(call, &[]).await.body);
    }
    for call in ["tasks/getList", "activity/getList", "activity/getFilesList"] {
        out.push(c.call(call, &[]).await.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_token_reads_and_writes_and_a_read_token_only_reads() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let (_, write) = make_token(&s, &sid, "writer", "write").await;
    let (read_id, read) = make_token(&s, &sid, "reader", "read").await;

    // A write token is its user for reads and writes.
    let me = by_token(&s, &write, "authentication/getAuthorizedUser", &[]).await;
    me.assert_ok();
    assert_eq!(me.json()["user"]["email"], ADMIN_EMAIL);
    let r = by_token(
        &s,
        &write,
        "projectsgroups/add",
        &[("group[name]", "By token")],
    )
    .await;
    r.assert_ok();
    let gid = id_of(&r.json()["group"]).to_string();
    let r = by_token(&s, &write, "projects/add", &[("project[name]", "P")]).await;
    r.assert_ok();
    let pid = id_of(&r.json()["project"]).to_string();
    let (_, tid, aid) = s.as_caller(&sid).project_task_activity().await;
    let (tid, aid) = (tid.to_string(), aid.to_string());
    let fid = s
        .as_caller(&sid)
        .attach(aid.parse().unwrap(), "a.txt", b"abc")
        .await;
    let fid = fid.to_string();
    let (other_user, _) = s.user("other@example.com", 100, false).await;
    let other_user = other_user.to_string();

    // A read token reads everything its user may read.
    for call in [
        "authentication/getAuthorizedUser",
        "projectsgroups/getAll",
        "projects/getAll",
        "users/getAll",
        "tokens/getAll",
        "metainfo/getStatuses",
    ] {
        by_token(&s, &read, call, &[]).await.assert_ok();
    }
    by_token(&s, &read, "projects/getById", &[("id", &pid)])
        .await
        .assert_ok();

    // And every write of the endpoint table is 403, with what would succeed otherwise.
    let before = snapshot(&s, &sid).await;
    let read_id = read_id.to_string();
    let writes: Vec<_> = ENDPOINTS.iter().filter(|e| e.is_write()).collect();
    assert!(writes.len() >= 16, "{writes:?}");
    for e in writes {
        let id = match e.service {
            "projectsgroups" => gid.as_str(),
            "projects" => pid.as_str(),
            "tasks" => tid.as_str(),
            "activity" if e.method == "removeFile" => fid.as_str(),
            "activity" => aid.as_str(),
            "users" => other_user.as_str(),
            "tokens" => read_id.as_str(),
            other => panic!("a write of an unknown service: {other}"),
        };
        let args = [
            ("id", id),
            ("group[id]", id),
            ("group[name]", "Sneaky"),
            ("project[id]", id),
            ("project[name]", "Sneaky"),
            ("task[id]", id),
            ("task[name]", "Sneaky"),
            ("task[projectId]", pid.as_str()),
            ("activity[id]", id),
            ("activity[text]", "Sneaky"),
            ("activity[taskId]", tid.as_str()),
            ("activityId", aid.as_str()),
            ("user[id]", id),
            ("user[email]", "sneaky@example.com"),
            ("user[password]", "sneaky-password"),
            ("token[name]", "Sneaky"),
            ("token[scope]", "write"),
        ];
        let call = format!("{}/{}", e.service, e.method);
        let r = by_token(&s, &read, &call, &args).await;
        assert_eq!(r.status, 403, "{call}: {}", r.body);
        r.assert_fail(403, "forbidden");
        assert!(r.body.contains("read scope"), "{call}: {}", r.body);
    }
    assert_eq!(
        snapshot(&s, &sid).await,
        before,
        "a refused write changed something"
    );
    // The read token is still there, and still reads.
    by_token(&s, &read, "tokens/getAll", &[]).await.assert_ok();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_goes_only_in_the_bearer_header_and_mints_no_credentials() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let (_, write) = make_token(&s, &sid, "writer", "write").await;

    // Made with a login and password (HTTP Basic): allowed.
    let r = read(
        s.client
            .post(s.api("tokens/add"))
            .basic_auth(ADMIN_EMAIL, Some(ADMIN_PASSWORD))
            .form(&[
                ("token[name]", "basic"),
                ("token[scope]", "read"),
                ("retType", "json"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_ok();
    let basic_id = id_of(&r.json()["token"]);
    s.as_caller(&sid)
        .call("tokens/remove", &[("id", &basic_id.to_string())])
        .await
        .assert_ok();

    // Made by a token: refused, and nothing stored.
    let r = by_token(
        &s,
        &write,
        "tokens/add",
        &[("token[name]", "child"), ("token[scope]", "write")],
    )
    .await;
    fail(&r, 403, "forbidden");
    assert_eq!(tokens_of(&s, &sid, &[]).await.len(), 1);

    // Nor sets a password, which would sign in and make tokens; the rest of a profile
    // it may change.
    let me = s.as_caller(&sid).user_by_email(ADMIN_EMAIL).await;
    let me = id_of(&me).to_string();
    let r = by_token(
        &s,
        &write,
        "users/update",
        &[("user[id]", &me), ("user[password]", "taken-over-password")],
    )
    .await;
    fail(&r, 403, "forbidden");
    s.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    by_token(
        &s,
        &write,
        "users/update",
        &[("user[id]", &me), ("user[firstName]", "Ada")],
    )
    .await
    .assert_ok();

    // Sent as a session id: refused, whichever way.
    let r = s
        .call_json("authentication/getAuthorizedUser", &[("sessionId", &write)])
        .await;
    fail(&r, 400, "bad_request");
    assert!(r.body.contains("Authorization: Bearer"), "{}", r.body);
    let r = read(
        s.client
            .get(s.api("authentication/getAuthorizedUser"))
            .header("X-Session-Id", &write)
            .query(&[("retType", "json")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    fail(&r, 400, "bad_request");
    // An unknown token, and a session id in the Bearer header as before.
    let r = by_token(&s, "vsp_unknown", "authentication/getAuthorizedUser", &[]).await;
    fail(&r, 401, "auth_failed");
    by_token(&s, &sid, "authentication/getAuthorizedUser", &[])
        .await
        .assert_ok();
    s.stop().await;
}

// ---- ending tokens ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_removed_tokens_are_refused_at_once() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let soon = date_from_now(2);
    let r = add_answer(
        &s,
        &sid,
        &[
            ("token[name]", "short"),
            ("token[scope]", "read"),
            ("token[expiresAt]", &soon),
        ],
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["token"]["expiresAt"], soon.as_str());
    let short = r.json()["token"]["secret"].as_str().unwrap().to_owned();
    by_token(&s, &short, "authentication/getAuthorizedUser", &[])
        .await
        .assert_ok();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = by_token(&s, &short, "authentication/getAuthorizedUser", &[]).await;
    fail(&r, 401, "session_expired");
    // Still listed, with its expiry, until removed.
    assert_eq!(tokens_of(&s, &sid, &[]).await.len(), 1);

    let (id, secret) = make_token(&s, &sid, "long", "write").await;
    by_token(&s, &secret, "projectsgroups/getAll", &[])
        .await
        .assert_ok();
    s.as_caller(&sid)
        .call("tokens/remove", &[("id", &id.to_string())])
        .await
        .assert_ok();
    let r = by_token(&s, &secret, "projectsgroups/getAll", &[]).await;
    fail(&r, 401, "auth_failed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_is_recorded_coarsely() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let (_, secret) = make_token(&s, &sid, "t", "read").await;
    assert!(tokens_of(&s, &sid, &[]).await[0]["lastUsedAt"].is_null());
    by_token(&s, &secret, "metainfo/getStatuses", &[])
        .await
        .assert_ok();
    let first = tokens_of(&s, &sid, &[]).await[0]["lastUsedAt"].clone();
    assert!(first.is_string(), "{first}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    by_token(&s, &secret, "metainfo/getStatuses", &[])
        .await
        .assert_ok();
    assert_eq!(
        tokens_of(&s, &sid, &[]).await[0]["lastUsedAt"],
        first,
        "not touched again within the minute"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_its_user_as_the_user_is_now() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (boss, boss_sid) = s.user("boss@example.com", 0, true).await;
    let (_, secret) = make_token(&s, &boss_sid, "boss", "write").await;
    let add_user = |email: &'static str| {
        let secret = secret.clone();
        let s = &s;
        async move {
            by_token(
                s,
                &secret,
                "users/add",
                &[("user[email]", email), ("user[password]", "password-123")],
            )
            .await
        }
    };
    add_user("first@example.com").await.assert_ok();

    // Demoted to client: the token's admin calls are refused at the next call.
    s.as_caller(&admin)
        .update(Kind::User, boss, &[("securityLevel", "200")])
        .await;
    fail(&add_user("second@example.com").await, 403, "forbidden");
    let me = by_token(&s, &secret, "authentication/getAuthorizedUser", &[]).await;
    assert_eq!(me.json()["user"]["securityLevel"], 200);

    // Removed: the token ends with its user, and its row goes.
    let before = stored_tokens(&s).await.len();
    s.as_caller(&admin).remove(Kind::User, boss).await;
    let r = by_token(&s, &secret, "authentication/getAuthorizedUser", &[]).await;
    fail(&r, 401, "auth_failed");
    assert_eq!(stored_tokens(&s).await.len(), before - 1);
    s.stop().await;
}

// ---- bad inputs ------------------------------------------------------------------------

/// A call's arguments.
type Args<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_adds_are_refused_clearly_and_store_nothing() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let long = "x".repeat(101);
    let past = date_from_now(-60);
    let now = date_from_now(0);
    #[rustfmt::skip]
    let cases: Vec<(Args, u16, &str, Option<&str>)> = vec![
        (vec![("token[scope]", "read")], 422, "validation_failed", Some("token[name]")),
        (vec![("token[name]", ""), ("token[scope]", "read")], 422, "validation_failed", Some("token[name]")),
        (vec![("token[name]", "   "), ("token[scope]", "read")], 422, "validation_failed", Some("token[name]")),
        (vec![("token[name]", &long), ("token[scope]", "read")], 422, "validation_failed", Some("token[name]")),
        (vec![("token[name]", "a\tb"), ("token[scope]", "read")], 422, "validation_failed", Some("token[name]")),
        (vec![("token[name]", "a\u{85}b"), ("token[scope]", "read")], 422, "validation_failed", Some("token[name]")),
        (vec![("token[name]", "a\u{1}b"), ("token[scope]", "read")], 400, "invalid_argument", None),
        (vec![("token[name]", "n")], 422, "validation_failed", Some("token[scope]")),
        (vec![("token[name]", "n"), ("token[scope]", "")], 422, "validation_failed", Some("token[scope]")),
        (vec![("token[name]", "n"), ("token[scope]", "admin")], 422, "validation_failed", Some("token[scope]")),
        (vec![("token[name]", "n"), ("token[scope]", "READ")], 422, "validation_failed", Some("token[scope]")),
        (vec![("token[name]", "n"), ("token[scope]", "read"), ("token[expiresAt]", &past)], 422, "validation_failed", Some("token[expiresAt]")),
        (vec![("token[name]", "n"), ("token[scope]", "read"), ("token[expiresAt]", &now)], 422, "validation_failed", Some("token[expiresAt]")),
        (vec![("token[name]", "n"), ("token[scope]", "read"), ("token[expiresAt]", "tomorrow")], 400, "invalid_argument", None),
        (vec![("token[name][]", "n"), ("token[scope]", "read")], 400, "invalid_argument", None),
        (vec![("name", "n"), ("scope", "read")], 422, "validation_failed", Some("token[name]")),
    ];
    for (args, status, code, field) in &cases {
        let r = add_answer(&s, &sid, args).await;
        assert_eq!(r.status, *status, "{args:?}: {}", r.body);
        r.assert_fail(*status, code);
        if let Some(field) = field {
            assert!(
                r.error_fields().iter().any(|f| f == field),
                "{args:?}: {}",
                r.body
            );
        }
    }
    // Both fields at once are named at once.
    let r = add_answer(&s, &sid, &[]).await;
    assert_eq!(
        r.error_fields(),
        ["token[name]", "token[scope]"],
        "{}",
        r.body
    );
    assert!(tokens_of(&s, &sid, &[]).await.is_empty());
    assert!(stored_tokens(&s).await.is_empty());

    // The good ones, at the edges.
    let hundred = "é".repeat(100);
    let later = date_from_now(3600);
    let r = add_answer(
        &s,
        &sid,
        &[
            ("token[name]", &hundred),
            ("token[scope]", "read"),
            ("token[expiresAt]", &later),
        ],
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["token"]["expiresAt"], later.as_str());
    let r = add_answer(
        &s,
        &sid,
        &[
            ("token[name]", "rfc"),
            ("token[scope]", "write"),
            ("token[expiresAt]", "2999-01-01T00:00:00+02:00"),
        ],
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["token"]["expiresAt"], "2998-12-31 22:00:00");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_at_most_a_hundred_tokens() {
    let s = TestServer::start().await;
    let (_, sid) = s.user("many@example.com", 100, false).await;
    for i in 0..100 {
        make_token(&s, &sid, &format!("t{i}"), "read").await;
    }
    let r = add_answer(
        &s,
        &sid,
        &[("token[name]", "one more"), ("token[scope]", "read")],
    )
    .await;
    fail(&r, 409, "too_many_tokens");
    assert!(r.body.contains("100"), "{}", r.body);
    let all = tokens_of(&s, &sid, &[]).await;
    assert_eq!(all.len(), 100);
    // Removing one makes room.
    s.as_caller(&sid)
        .call("tokens/remove", &[("id", &id_of(&all[0]).to_string())])
        .await
        .assert_ok();
    make_token(&s, &sid, "room", "read").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_removes_are_the_owners_or_an_admins() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (ann, ann_sid) = s.user("ann@example.com", 100, true).await;
    let (bob, bob_sid) = s.user("bob@example.com", 100, true).await;
    let (ann_token, ann_secret) = make_token(&s, &ann_sid, "ann's", "write").await;
    let (bob_token, _) = make_token(&s, &bob_sid, "bob's", "read").await;
    let (admin_token, _) = make_token(&s, &admin, "admin's", "read").await;
    let (ann, bob) = (ann.to_string(), bob.to_string());
    let ids = |tokens: Vec<Value>| tokens.iter().map(id_of).collect::<Vec<_>>();

    // getAll: one's own by default; with userId, an admin's choice of user.
    assert_eq!(ids(tokens_of(&s, &ann_sid, &[]).await), [ann_token]);
    assert_eq!(
        ids(tokens_of(&s, &ann_sid, &[("userId", &ann)]).await),
        [ann_token]
    );
    assert_eq!(ids(tokens_of(&s, &admin, &[]).await), [admin_token]);
    assert_eq!(
        ids(tokens_of(&s, &admin, &[("userId", &bob)]).await),
        [bob_token]
    );
    let listed = &tokens_of(&s, &admin, &[("userId", &ann)]).await[0];
    assert_eq!(listed["userId"], ann.parse::<i64>().unwrap());
    assert_eq!(listed["name"], "ann's");
    let c = s.as_caller(&ann_sid);
    c.try_list_by("tokens/getAll", &[("userId", &bob)])
        .await
        .unwrap_err()
        .assert(403, "forbidden");
    c.try_list_by("tokens/getAll", &[("userId", "999999")])
        .await
        .unwrap_err()
        .assert(403, "forbidden");
    c.try_list_by("tokens/getAll", &[("userId", "bob")])
        .await
        .unwrap_err()
        .assert(400, "invalid_argument");
    s.as_caller(&admin)
        .try_list_by("tokens/getAll", &[("userId", "999999")])
        .await
        .unwrap_err()
        .assert(404, "not_found");

    // remove: someone else's token is as missing as one that never was, but to an admin.
    let remove = |sid: &str, id: &str| {
        let c = s.as_caller(sid);
        let id = id.to_owned();
        async move { c.call("tokens/remove", &[("id", &id)]).await }
    };
    fail(
        &remove(&ann_sid, &bob_token.to_string()).await,
        404,
        "not_found",
    );
    fail(&remove(&ann_sid, "999999").await, 404, "not_found");
    fail(&remove(&ann_sid, "x").await, 400, "invalid_argument");
    let r = s.as_caller(&ann_sid).call("tokens/remove", &[]).await;
    fail(&r, 422, "validation_failed");
    assert_eq!(r.error_fields(), ["id"]);
    assert_eq!(ids(tokens_of(&s, &bob_sid, &[]).await), [bob_token], "kept");

    // A write token may remove tokens (its own included), an admin anyone's.
    let r = by_token(
        &s,
        &ann_secret,
        "tokens/remove",
        &[("id", &ann_token.to_string())],
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], ann_token.to_string());
    fail(
        &by_token(&s, &ann_secret, "tokens/getAll", &[]).await,
        401,
        "auth_failed",
    );
    remove(&admin, &bob_token.to_string()).await.assert_ok();
    assert!(tokens_of(&s, &bob_sid, &[]).await.is_empty());
    fail(
        &remove(&admin, &bob_token.to_string()).await,
        404,
        "not_found",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_workspace_is_unknown_here() {
    use vesper::domain::token::{new_secret, NewToken, Scope};
    use vesper::domain::user::{NewUser, SecurityLevel};
    use vesper::domain::WorkspaceId;

    let s = TestServer::start().await;
    let admin = s.admin().await;
    // A second workspace with a user and a token, made beside the server in its database.
    let sql = "INSERT INTO workspaces (id, name, created_at) VALUES (2, 'other', 0)";
    match s.database_url() {
        Some(url) => {
            let client = pg_client(&url).await;
            client.batch_execute(sql).await.unwrap();
        }
        None => {
            let c = rusqlite::Connection::open(s.dir.path().join("vesper.sqlite3")).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            c.execute_batch(sql).unwrap();
        }
    }
    let store = vesper::store::open(s.database_url().as_deref(), s.dir.path())
        .await
        .unwrap();
    let other = WorkspaceId(2);
    let user = store
        .add_user(
            other,
            NewUser {
                email: ADMIN_EMAIL.into(),
                password_hash: "x".into(),
                profile: Default::default(),
                security_level: SecurityLevel::Admin,
                can_view_profiles: true,
            },
            0,
        )
        .await
        .unwrap();
    let (secret, token_hash) = new_secret();
    let token = NewToken {
        user_id: user.id,
        name: "elsewhere".into(),
        scope: Scope::Write,
        token_hash,
        expires_at: None,
    };
    let token = store
        .add_token(other, token, 100, 0)
        .await
        .unwrap()
        .unwrap();
    drop(store);

    // Here, it authenticates nobody, cannot be removed, and its user is unknown.
    let r = by_token(&s, &secret, "authentication/getAuthorizedUser", &[]).await;
    fail(&r, 401, "auth_failed");
    let r = s
        .as_caller(&admin)
        .call("tokens/remove", &[("id", &token.id.to_string())])
        .await;
    fail(&r, 404, "not_found");
    s.as_caller(&admin)
        .try_list_by("tokens/getAll", &[("userId", &user.id.to_string())])
        .await
        .unwrap_err()
        .assert(404, "not_found");
    assert!(tokens_of(&s, &admin, &[]).await.is_empty());
    assert_eq!(
        stored_tokens(&s).await.len(),
        1,
        "the other workspace's token stays"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_belongs_to_the_workspace_of_its_host_and_goes_with_it() {
    const BASE: &str = "vesper.test";
    let s = TestServer::start_with(|c| c.base_domain = Some(BASE.into())).await;
    let store = vesper::store::open(s.database_url().as_deref(), s.dir.path())
        .await
        .unwrap();
    for name in ["acme", "beta"] {
        vesper::commands::add_workspace(&*store, name, ADMIN_EMAIL, ADMIN_PASSWORD.into())
            .await
            .unwrap();
    }
    let acme = s.at_host(&format!("acme.{BASE}"));
    let beta = s.at_host(&format!("beta.{BASE}"));
    // The same admin email in both: the token is acme's admin, not beta's.
    let sid = acme.admin().await;
    let (_, secret) = make_token(&acme, &sid, "acme", "write").await;
    by_token(&acme, &secret, "authentication/getAuthorizedUser", &[])
        .await
        .assert_ok();
    let r = by_token(&beta, &secret, "authentication/getAuthorizedUser", &[]).await;
    fail(&r, 401, "auth_failed");
    let beta_sid = beta.admin().await;
    assert!(tokens_of(&beta, &beta_sid, &[]).await.is_empty());

    // Removing the workspace removes its tokens with every other row.
    let files = vesper::files::Blobs::open(None, s.dir.path()).unwrap();
    vesper::commands::take_workspace_away(&*store, &files, "acme")
        .await
        .unwrap();
    assert!(stored_tokens(&s).await.is_empty());
    // The server may still know the name for a few seconds: no workspace, or no token.
    let r = by_token(&acme, &secret, "authentication/getAuthorizedUser", &[]).await;
    assert!(matches!(r.status, 401 | 404), "{}", r.body);
    s.stop().await;
}

// ---- several nodes ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_a_removal_and_a_demotion_at_once() {
    if test_database_url().is_none() {
        eprintln!("skipped: several nodes need PostgreSQL (run scripts/test)");
        return;
    }
    let a = TestServer::start().await;
    let b = a.another_node().await;
    let admin = a.admin().await;
    let (boss, boss_sid) = a.user("boss@example.com", 0, true).await;
    let (id, secret) = make_token(&a, &boss_sid, "boss", "write").await;
    let (_, kept) = make_token(&a, &boss_sid, "kept", "write").await;

    // Made on A, used on B; removed on A, refused on B at once.
    by_token(&b, &secret, "users/getAll", &[]).await.assert_ok();
    a.as_caller(&admin)
        .call("tokens/remove", &[("id", &id.to_string())])
        .await
        .assert_ok();
    fail(
        &by_token(&b, &secret, "users/getAll", &[]).await,
        401,
        "auth_failed",
    );

    // Demoted on A: B refuses the admin's calls at once.
    let add = |email: &'static str| {
        let (b, kept) = (&b, kept.clone());
        async move {
            by_token(
                b,
                &kept,
                "users/add",
                &[("user[email]", email), ("user[password]", "password-123")],
            )
            .await
        }
    };
    add("first@example.com").await.assert_ok();
    a.as_caller(&admin)
        .update(Kind::User, boss, &[("securityLevel", "200")])
        .await;
    fail(&add("second@example.com").await, 403, "forbidden");
    // Removed on A: its tokens end on B.
    a.as_caller(&admin).remove(Kind::User, boss).await;
    fail(
        &by_token(&b, &kept, "users/getAll", &[]).await,
        401,
        "auth_failed",
    );
    b.stop().await;
    a.stop().await;
}

// ---- the README's examples -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_as_written() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    // Every curl of the block must succeed (a 4xx or 5xx stops the script), its answers
    // separated by new lines.
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl --fail-with-body -sS \"$@\"; echo; }}\n{}",
        sh_block(include_str!("../README.md"), "# tested: tests/tokens.rs")
    );
    let host = s.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("HOST", host)
            .env("SESSION", sid)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"name\":\"Release\""), "{stdout}");
    assert!(stdout.contains("\"name\":\"Dashboard\""), "{stdout}");

    // What the block left: the project, made by the token, and the write token alone.
    let sid = s.admin().await;
    let projects = s.as_caller(&sid).all(Kind::Project, &[]).await;
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0]["name"], "Release");
    let tokens = tokens_of(&s, &sid, &[]).await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["name"], "CI deploy");
    assert_eq!(tokens[0]["scope"], "write");
    assert!(tokens[0]["lastUsedAt"].is_string());
    // Midnight of the day 90 days ahead (UTC), as `date -u -d '+90 days' +%F` gives it.
    let day = &date_from_now(90 * 86_400)[..10];
    assert_eq!(tokens[0]["expiresAt"], format!("{day} 00:00:00"));
    s.stop().await;
}
