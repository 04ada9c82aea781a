//! Hostile and concurrent writers (issue 10): uploads refused before a byte reaches
//! storage, no lost updates between concurrent writers, versions with `ETag` and
//! `If-Match`, and sessions ended by a new password or security level.
mod common;
use common::*;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::multipart::{Form, Part};

// ---- uploads ----------------------------------------------------------------------------

/// Bytes in every file under `dir`, at any depth.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Watches the files folder while a request runs: the most bytes it ever held.
struct Watch {
    most: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: std::thread::JoinHandle<()>,
}

impl Watch {
    fn start(s: &TestServer) -> Watch {
        let dir = s.dir.path().join("files");
        let most = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = std::thread::spawn({
            let (most, stop) = (most.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    most.fetch_max(bytes_under(&dir), Ordering::Relaxed);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                most.fetch_max(bytes_under(&dir), Ordering::Relaxed);
            }
        });
        Watch { most, stop, task }
    }

    /// The most bytes seen, and the bytes there now.
    fn finish(self, s: &TestServer) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.join().unwrap();
        (
            self.most.load(Ordering::Relaxed),
            bytes_under(&s.dir.path().join("files")),
        )
    }
}

const BIG: usize = 8 * 1024 * 1024;

fn big_file() -> Part {
    Part::bytes(vec![b'x'; BIG]).file_name("big.bin")
}

/// Sends an attachFiles form with extra headers: the answer, or `None` when the server
/// closed the connection before the client finished sending (it may, having answered).
async fn attach(s: &TestServer, form: Form, headers: &[(&str, &str)]) -> Option<Resp> {
    let mut req = s.client.post(s.api("activity/attachFiles")).multipart(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match req.send().await {
        Ok(r) => Some(read(r).await),
        Err(_) => None,
    }
}

/// A refused upload: answered `status` (when the answer arrived) with nothing written.
async fn assert_refused_unwritten(
    s: &TestServer,
    form: Form,
    headers: &[(&str, &str)],
    status: u16,
    code: &str,
) {
    let watch = Watch::start(s);
    let answer = attach(s, form, headers).await;
    let (most, now) = watch.finish(s);
    if let Some(r) = answer {
        r.assert_fail(status, code);
    }
    assert_eq!(most, 0, "bytes of a refused upload reached storage");
    assert_eq!(now, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_without_credentials_or_with_a_wrong_session_write_nothing() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (_, _, a) = s.as_caller(&admin).project_task_activity().await;
    let a = a.to_string();
    let form = || {
        Form::new()
            .text("activityId", a.clone())
            .text("retType", "json")
            .part("files[1]", big_file())
    };
    assert_refused_unwritten(&s, form(), &[], 401, "auth_required").await;
    assert_refused_unwritten(
        &s,
        form(),
        &[("X-Session-Id", "not-a-session")],
        401,
        "auth_failed",
    )
    .await;
    // Credentials that come only after the file part are too late.
    let late = Form::new()
        .text("activityId", a.clone())
        .text("retType", "json")
        .part("files[1]", big_file())
        .text("sessionId", admin.clone());
    assert_refused_unwritten(&s, late, &[], 401, "auth_required").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_by_a_caller_who_may_not_attach_write_nothing() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (_, _, a) = s.as_caller(&admin).project_task_activity().await;
    // A user who sees the activity (an admin's message in an open project) but may not
    // edit it.
    let (_, user) = s.user("ann@example.com", 100, false).await;
    let form = Form::new()
        .text("sessionId", user)
        .text("activityId", a.to_string())
        .text("retType", "json")
        .part("files[1]", big_file());
    let watch = Watch::start(&s);
    let answer = attach(&s, form, &[]).await;
    let (most, _) = watch.finish(&s);
    if let Some(r) = answer {
        assert!(r.status == 403 || r.status == 404, "{r:?}");
    }
    assert_eq!(most, 0, "bytes of a refused upload reached storage");
    // An activity that does not exist, and an activityId sent after the file.
    let form = Form::new()
        .text("sessionId", admin.clone())
        .text("activityId", "999999")
        .text("retType", "json")
        .part("files[1]", big_file());
    assert_refused_unwritten(&s, form, &[], 404, "not_found").await;
    let form = Form::new()
        .text("sessionId", admin.clone())
        .text("retType", "json")
        .part("files[1]", big_file())
        .text("activityId", a.to_string());
    assert_refused_unwritten(&s, form, &[], 400, "bad_request").await;
    // The admin's own upload still works, and stores the file.
    let form = Form::new()
        .text("sessionId", admin.clone())
        .text("activityId", a.to_string())
        .text("retType", "json")
        .part(
            "files[1]",
            Part::bytes(b"fine".to_vec()).file_name("fine.txt"),
        );
    attach(&s, form, &[]).await.unwrap().assert_ok();
    assert_eq!(bytes_under(&s.dir.path().join("files")), 4);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_file_is_refused_as_it_arrives_and_leaves_nothing() {
    let s = TestServer::start_with(|c| c.max_file_bytes = 1024 * 1024).await;
    let admin = s.admin().await;
    let (_, _, a) = s.as_caller(&admin).project_task_activity().await;
    let form = Form::new()
        .text("sessionId", admin.clone())
        .text("activityId", a.to_string())
        .text("retType", "json")
        .part("files[1]", big_file());
    let watch = Watch::start(&s);
    let answer = attach(&s, form, &[]).await;
    let (most, now) = watch.finish(&s);
    if let Some(r) = answer {
        r.assert_fail(413, "too_large");
    }
    assert!(most <= 1024 * 1024, "{most} bytes stored past the limit");
    assert_eq!(now, 0, "the refused file's bytes were left behind");
    s.stop().await;
}

// ---- no lost updates --------------------------------------------------------------------

/// Two clients update different attributes of one object `rounds` times each, at once.
/// Every answer must hold the other client's latest acknowledged value (or a newer one),
/// and the end state both clients' last values.
async fn concurrent_updates_lose_nothing(s: &TestServer, call: &str, kind: &'static str, id: i64) {
    const ROUNDS: i64 = 200;
    let sid = s.admin().await;
    // What each writer last had acknowledged: name, description.
    let acked = Arc::new([AtomicI64::new(-1), AtomicI64::new(-1)]);
    let attrs = ["name", "description"];
    let mut writers = Vec::new();
    for me in 0..2usize {
        let (client, url, sid, acked) = (s.client.clone(), s.api(call), sid.clone(), acked.clone());
        let (mine, theirs) = (attrs[me], attrs[1 - me]);
        let id = id.to_string();
        writers.push(tokio::spawn(async move {
            let mut stale = Vec::new();
            for round in 0..ROUNDS {
                let before = acked[1 - me].load(Ordering::SeqCst);
                let key = format!("{kind}[{mine}]");
                let id_key = format!("{kind}[id]");
                let value = format!("{mine}-{round}");
                let r = read(
                    client
                        .post(&url)
                        .form(&[
                            ("sessionId", sid.as_str()),
                            ("retType", "json"),
                            (id_key.as_str(), id.as_str()),
                            (key.as_str(), value.as_str()),
                        ])
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                r.assert_ok();
                let j = r.json();
                assert_eq!(j[kind][mine], value.as_str());
                let seen = j[kind][theirs].as_str().unwrap_or("").to_owned();
                let seen_round: i64 = seen
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(-1);
                if seen_round < before {
                    stale.push((round, seen, before));
                }
                acked[me].store(round, Ordering::SeqCst);
            }
            stale
        }));
    }
    for w in writers {
        let stale = w.await.unwrap();
        assert!(stale.is_empty(), "answers put back older values: {stale:?}");
    }
    let r = s
        .call_json(
            &format!("{}/getById", call.split('/').next().unwrap()),
            &[("sessionId", &sid), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    let j = r.json();
    assert_eq!(j[kind]["name"], format!("name-{}", ROUNDS - 1));
    assert_eq!(
        j[kind]["description"],
        format!("description-{}", ROUNDS - 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_different_task_attributes_both_survive() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (_, t, _) = s.as_caller(&admin).project_task_activity().await;
    concurrent_updates_lose_nothing(&s, "tasks/update", "task", t).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_different_project_attributes_both_survive() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (p, _, _) = s.as_caller(&admin).project_task_activity().await;
    concurrent_updates_lose_nothing(&s, "projects/update", "project", p).await;
    s.stop().await;
}

// ---- versions ---------------------------------------------------------------------------

fn etag(r: &Resp) -> String {
    r.headers
        .get("etag")
        .unwrap_or_else(|| panic!("no ETag: {r:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn post_with(s: &TestServer, call: &str, if_match: &str, params: &[(&str, &str)]) -> Resp {
    let mut all = params.to_vec();
    all.push(("retType", "json"));
    read(
        s.client
            .post(s.api(call))
            .header("If-Match", if_match)
            .form(&all)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// For one kind of object: getById carries an ETag; a write changes it; If-Match with
/// the old one is 412 and changes nothing; with the current one it writes; remove too.
async fn versions_guard_writes(s: &TestServer, service: &str, kind: &str, id: i64, attr: &str) {
    let sid = s.admin().await;
    let id = id.to_string();
    let get = || async {
        let r = s
            .call_json(
                &format!("{service}/getById"),
                &[("sessionId", &sid), ("id", &id)],
            )
            .await;
        r.assert_ok();
        r
    };
    let first = get().await;
    let old = etag(&first);
    let key = format!("{kind}[{attr}]");
    let id_key = format!("{kind}[id]");
    let r = post_with(
        s,
        &format!("{service}/update"),
        &old,
        &[("sessionId", &sid), (&id_key, &id), (&key, "Second")],
    )
    .await;
    r.assert_ok();
    let second = etag(&r);
    assert_ne!(second, old, "a write changes the ETag");
    assert_eq!(etag(&get().await), second);
    // A stale version: 412, nothing changed.
    let r = post_with(
        s,
        &format!("{service}/update"),
        &old,
        &[("sessionId", &sid), (&id_key, &id), (&key, "Third")],
    )
    .await;
    r.assert_fail(412, "precondition_failed");
    let now = get().await;
    assert_eq!(now.json()[kind][attr], "Second");
    assert_eq!(etag(&now), second);
    // A value that is no ETag of ours can match nothing.
    post_with(
        s,
        &format!("{service}/update"),
        "\"banana\"",
        &[("sessionId", &sid), (&id_key, &id), (&key, "Third")],
    )
    .await
    .assert_fail(412, "precondition_failed");
    // A weak form of the current tag, and `*`, match.
    let weak = format!("W/{second}");
    let r = post_with(
        s,
        &format!("{service}/update"),
        &weak,
        &[("sessionId", &sid), (&id_key, &id), (&key, "Third")],
    )
    .await;
    r.assert_ok();
    let third = etag(&r);
    post_with(
        s,
        &format!("{service}/update"),
        "*",
        &[("sessionId", &sid), (&id_key, &id), (&key, "Fourth")],
    )
    .await
    .assert_ok();
    // remove with a stale version: 412 and still there; with the current one: gone.
    post_with(
        s,
        &format!("{service}/remove"),
        &third,
        &[("sessionId", &sid), ("id", &id)],
    )
    .await
    .assert_fail(412, "precondition_failed");
    let current = etag(&get().await);
    post_with(
        s,
        &format!("{service}/remove"),
        &current,
        &[("sessionId", &sid), ("id", &id)],
    )
    .await
    .assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_object_carries_a_version_that_guards_its_writes() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (p, t, a) = s.as_caller(&admin).project_task_activity().await;
    versions_guard_writes(&s, "activity", "activity", a, "text").await;
    versions_guard_writes(&s, "tasks", "task", t, "name").await;
    versions_guard_writes(&s, "projects", "project", p, "name").await;
    let g = s.as_caller(&admin).group("First").await;
    versions_guard_writes(&s, "projectsgroups", "group", g, "name").await;
    let (u, _) = s.user("bob@example.com", 100, false).await;
    versions_guard_writes(&s, "users", "user", u, "firstName").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_changes_its_tasks_version() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (_, t, _) = s.as_caller(&admin).project_task_activity().await;
    let get = || async {
        let r = s
            .call_json(
                "tasks/getById",
                &[("sessionId", &admin), ("id", &t.to_string())],
            )
            .await;
        etag(&r)
    };
    let before = get().await;
    s.call_json(
        "activity/add",
        &[
            ("sessionId", &admin),
            ("activity[taskId]", &t.to_string()),
            ("activity[hoursDone]", "2"),
        ],
    )
    .await
    .assert_ok();
    assert_ne!(get().await, before, "hoursDone changed, so did the version");
    s.stop().await;
}

// ---- sessions after a new password or security level -----------------------------------

async fn authorized(s: &TestServer, sid: &str) -> u16 {
    s.call_json("authentication/getAuthorizedUser", &[("sessionId", sid)])
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_or_security_level_ends_the_users_other_sessions() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let email = "carol@example.com";
    let (id, first) = s.user(email, 100, false).await;
    let second = s.sign_in(email, &password_for(email)).await;
    // The admin sets a new password: both of the user's sessions end.
    s.call_json(
        "users/update",
        &[
            ("sessionId", &admin),
            ("user[id]", &id.to_string()),
            ("user[password]", "a-brand-new-password"),
        ],
    )
    .await
    .assert_ok();
    assert_eq!(authorized(&s, &first).await, 401);
    assert_eq!(authorized(&s, &second).await, 401);
    assert_eq!(authorized(&s, &admin).await, 200, "the admin's own stays");
    // The user changes their own password: the session that did it stays, the other ends.
    let own = s.sign_in(email, "a-brand-new-password").await;
    let other = s.sign_in(email, "a-brand-new-password").await;
    s.call_json(
        "users/update",
        &[
            ("sessionId", &own),
            ("user[id]", &id.to_string()),
            ("user[password]", "yet-another-password"),
        ],
    )
    .await
    .assert_ok();
    assert_eq!(authorized(&s, &own).await, 200);
    assert_eq!(authorized(&s, &other).await, 401);
    // A new security level ends every session of the user.
    s.call_json(
        "users/update",
        &[
            ("sessionId", &admin),
            ("user[id]", &id.to_string()),
            ("user[securityLevel]", "150"),
        ],
    )
    .await
    .assert_ok();
    assert_eq!(authorized(&s, &own).await, 401);
    // A profile change ends nothing.
    let again = s.sign_in(email, "yet-another-password").await;
    s.call_json(
        "users/update",
        &[
            ("sessionId", &admin),
            ("user[id]", &id.to_string()),
            ("user[firstName]", "Carol"),
        ],
    )
    .await
    .assert_ok();
    assert_eq!(authorized(&s, &again).await, 200);
    s.stop().await;
}
