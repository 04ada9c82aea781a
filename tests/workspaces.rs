//! Workspaces by host name (section 12 of the contract): with a base domain, each
//! `NAME.<base domain>` is its own workspace, and nothing crosses between them.
mod common;
use common::*;

use std::sync::Arc;

use vesper::store::Store;

const BASE: &str = "vesper.test";

/// A server with a base domain, and its store opened beside it, as `vesper workspace`
/// opens it.
async fn server() -> (TestServer, Arc<dyn Store>) {
    let s = TestServer::start_with(|c| c.base_domain = Some(BASE.into())).await;
    let store = vesper::store::open(s.database_url().as_deref(), s.dir.path())
        .await
        .unwrap();
    (s, store)
}

/// Makes workspace `name` whose admin has the default admin's email and password, and
/// answers the server as reached at its host.
async fn workspace(s: &TestServer, store: &dyn Store, name: &str) -> TestServer {
    vesper::commands::add_workspace(store, name, ADMIN_EMAIL, ADMIN_PASSWORD.into())
        .await
        .unwrap();
    s.at_host(&format!("{name}.{BASE}"))
}

#[tokio::test]
async fn a_host_that_names_no_workspace_is_unknown_workspace() {
    let (s, store) = server().await;
    let acme = workspace(&s, &*store, "acme").await;
    acme.admin().await;
    for host in [
        format!("nope.{BASE}"),
        BASE.to_owned(),
        format!("a.acme.{BASE}"),
        "localhost".to_owned(),
    ] {
        let other = s.at_host(&host);
        let r = other
            .call(
                "authentication/signIn",
                &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
            )
            .await;
        r.assert_fail(404, "unknown_workspace");
        let r = other.get("projects/getAll", &[]).await;
        r.assert_fail(404, "unknown_workspace");
        // The web page has no sign-in form there either.
        let page = other
            .client
            .get(other.https("/signin"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 404, "{host}");
        // The liveness check is the server's, not a workspace's.
        let health = other
            .client
            .get(other.https("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{host}");
    }
    // The address itself names no workspace once a base domain is set.
    s.get("projects/getAll", &[])
        .await
        .assert_fail(404, "unknown_workspace");
    // Any case, the default workspace by its name.
    s.at_host(&format!("ACME.{}", BASE.to_uppercase()))
        .admin()
        .await;
    s.at_host(&format!("default.{BASE}")).admin().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_as_written() {
    let s = TestServer::start_with(|c| c.base_domain = Some("vesper.example".into())).await;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vesper"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // Every command must succeed; curl's answers are kept, each on its line.
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl -sS \"$@\"; echo; }}\n{}",
        sh_block(
            include_str!("../README.md"),
            "# tested: tests/workspaces.rs"
        )
    );
    let mut command = std::process::Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("PORT", s.addr.port().to_string())
        .env("VESPER_DATA_DIR", s.dir.path())
        .env_remove("VESPER_CONFIG")
        .env_remove("VESPER_DATABASE_URL");
    if let Some(url) = s.database_url() {
        command.env("VESPER_DATABASE_URL", url);
    }
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Created workspace acme"), "{stdout}");
    assert!(stdout.contains("acme\t"), "the list: {stdout}");
    assert!(
        stdout.contains("\"email\":\"ann@acme.example\""),
        "{stdout}"
    );
    assert!(stdout.contains("code=\"unknown_workspace\""), "{stdout}");
    assert!(stdout.contains("Removed workspace acme"), "{stdout}");
    // What the block left: the default workspace alone.
    let store = vesper::store::open(s.database_url().as_deref(), s.dir.path())
        .await
        .unwrap();
    let names: Vec<String> = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["default"]);
    s.stop().await;
}

// ---- isolation (issue 13) ----------------------------------------------------------------

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use vesper::api::endpoints::{Access, ENDPOINTS};

/// An id that exists in no workspace.
const NOWHERE: i64 = 2_000_000_000;

/// One server with workspaces acme and bravo, whose admins share email and password.
struct Two {
    s: TestServer,
    store: Arc<dyn Store>,
    acme: TestServer,
    bravo: TestServer,
}

async fn two() -> Two {
    let (s, store) = server().await;
    let acme = workspace(&s, &*store, "acme").await;
    let bravo = workspace(&s, &*store, "bravo").await;
    Two {
        s,
        store,
        acme,
        bravo,
    }
}

/// The id of the caller of this session.
async fn me(s: &TestServer, sid: &str) -> i64 {
    let r = s
        .as_caller(sid)
        .call("authentication/getAuthorizedUser", &[])
        .await;
    r.assert_ok();
    id_of(&r.json()["user"])
}

fn owned(args: &[(&str, &str)]) -> Vec<(String, String)> {
    args.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn call_owned(c: &Caller<'_>, call: &str, args: &[(String, String)]) -> Resp {
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    c.call(call, &args).await
}

/// The ids and total of a list or getAll answer.
fn ids_total(r: &Resp) -> (BTreeSet<i64>, i64) {
    r.assert_ok();
    let j = r.json();
    let items = j["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", r.body));
    let total = j["total"].as_i64().unwrap_or(items.len() as i64);
    (items.iter().map(id_of).collect(), total)
}

fn set(ids: &[i64]) -> BTreeSet<i64> {
    ids.iter().copied().collect()
}

/// The blobs in the data folder's file store, staged ones included.
fn blobs_in(dir: &std::path::Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for folder in [dir.join("files"), dir.join("files").join("tmp")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                found.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// `SELECT COUNT(*) ...` straight on the server's database.
async fn count_rows(s: &TestServer, sql: &str) -> i64 {
    match s.database_url() {
        Some(url) => {
            let client = pg_client(&url).await;
            client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
        }
        None => {
            let db = rusqlite::Connection::open(s.dir.path().join("vesper.sqlite3")).unwrap();
            db.query_row(sql, [], |r| r.get(0)).unwrap()
        }
    }
}

// ---- 1. sessions ---------------------------------------------------------------------

#[tokio::test]
async fn a_session_from_another_workspace_is_refused_by_every_call() {
    let w = two().await;
    let acme_sid = w.acme.admin().await;
    let bravo_sid = w.bravo.admin().await;
    // The same email and password are two users.
    let (acme_admin, bravo_admin) = (me(&w.acme, &acme_sid).await, me(&w.bravo, &bravo_sid).await);
    assert_ne!(acme_admin, bravo_admin);
    let mut checked = 0;
    for e in ENDPOINTS {
        if e.access == Access::SignIn {
            continue;
        }
        let call = format!("{}/{}", e.service, e.method);
        // As an argument, and in each header a session may come in.
        let r = w
            .bravo
            .call_json(&call, &[("sessionId", acme_sid.as_str())])
            .await;
        r.assert_fail(401, "auth_failed");
        for (header, value) in [
            ("x-session-id", acme_sid.clone()),
            ("authorization", format!("Bearer {acme_sid}")),
        ] {
            let r = read(
                w.bravo
                    .client
                    .post(w.bravo.api(&call))
                    .header(header, value)
                    .form(&[("retType", "json")])
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            r.assert_fail(401, "auth_failed");
        }
        // Bravo's own session passes the same door (signOut ends one of its own).
        let own = if e.method == "signOut" {
            w.bravo.admin().await
        } else {
            bravo_sid.clone()
        };
        let r = w
            .bravo
            .call_json(&call, &[("sessionId", own.as_str())])
            .await;
        assert_ne!(r.status, 401, "{call} with bravo's session: {}", r.body);
        checked += 1;
    }
    assert_eq!(checked, ENDPOINTS.len() - 1);
    // And the other way; neither session was harmed by the refusals.
    w.acme
        .call_json("projects/getAll", &[("sessionId", bravo_sid.as_str())])
        .await
        .assert_fail(401, "auth_failed");
    assert_eq!(me(&w.acme, &acme_sid).await, acme_admin);
    assert_eq!(me(&w.bravo, &bravo_sid).await, bravo_admin);
}

// ---- 2. ids --------------------------------------------------------------------------

/// What a probe refers to: acme's objects, or ids that exist nowhere.
#[derive(Clone)]
struct Refs {
    group: i64,
    project: i64,
    task: i64,
    sub_task: i64,
    activity: i64,
    file: i64,
    /// An API token of acme's admin.
    token: i64,
    /// Admin, user, external user, client.
    users: Vec<i64>,
    /// A login only acme has, and its password.
    email: String,
    password: String,
}

impl Refs {
    fn nowhere() -> Refs {
        Refs {
            group: NOWHERE,
            project: NOWHERE,
            task: NOWHERE,
            sub_task: NOWHERE,
            activity: NOWHERE,
            file: NOWHERE,
            token: NOWHERE,
            users: vec![NOWHERE; 4],
            email: "nobody@nowhere.test".into(),
            password: password_for("nobody@nowhere.test"),
        }
    }
}

/// Bravo's own objects that probes change with a reference into acme.
struct Own {
    project: i64,
    task: i64,
    single_task: i64,
}

/// What a probe must answer, with acme's ids as with ids that exist nowhere.
const NOT_FOUND: &str = "404 not_found";
const EMPTY: &str = "200 empty";
fn invalid(field: &str) -> String {
    format!("422 [{field:?}]")
}

/// One call with references: its arguments, and what it must answer.
type Probe = (Vec<(String, String)>, String);

/// Every endpoint's probes with these references, or why it takes none (`Err`): the
/// table the test walks. A new endpoint falls to the last arm until it has its probes.
fn probes(call: &str, r: &Refs, own: &Own) -> Result<Vec<Probe>, &'static str> {
    let id = |v: i64| v.to_string();
    let (group, project, task) = (id(r.group), id(r.project), id(r.task));
    let (activity, file) = (id(r.activity), id(r.file));
    let (bp, bt, bs) = (id(own.project), id(own.task), id(own.single_task));
    let p = |args: &[(&str, &str)], answer: &str| -> Probe { (owned(args), answer.to_owned()) };
    let per_user = |f: &dyn Fn(&str) -> Probe| -> Vec<Probe> {
        r.users.iter().map(|u| f(&u.to_string())).collect()
    };
    let filters = |names: &[&str], values: &[&String]| -> Vec<Probe> {
        names
            .iter()
            .zip(values)
            .map(|(n, v)| p(&[(&format!("filter[{n}]"), v)], EMPTY))
            .collect()
    };
    let user = id(r.users[1]);
    Ok(match call {
        "authentication/signIn" => vec![p(
            &[("login", &r.email), ("password", &r.password)],
            "401 auth_failed",
        )],
        "authentication/signOut" | "authentication/getAuthorizedUser" => {
            return Err("no id: the caller's own session (sessions test)")
        }
        "metainfo/getStatuses" | "metainfo/getPriorities" => return Err("no id: constants"),
        "users/add" | "projectsgroups/add" => {
            return Err("no id: adds to bravo alone (the lists test counts bravo's rows)")
        }
        "users/getAll" | "projectsgroups/getAll" => {
            return Err("no id: the lists test checks bravo's rows")
        }
        "users/update" => per_user(&|u| p(&[("user[id]", u), ("user[firstName]", "X")], NOT_FOUND)),
        "users/remove" | "users/getById" => per_user(&|u| p(&[("id", u)], NOT_FOUND)),
        "users/getByEmail" => vec![p(&[("email", &r.email)], NOT_FOUND)],
        "projectsgroups/update" => {
            vec![p(&[("group[id]", &group), ("group[name]", "X")], NOT_FOUND)]
        }
        "projectsgroups/remove" | "projectsgroups/getById" => vec![p(&[("id", &group)], NOT_FOUND)],
        "projects/add" => vec![
            p(
                &[("project[name]", "X"), ("project[groupId]", &group)],
                &invalid("project[groupId]"),
            ),
            p(
                &[("project[name]", "X"), ("project[team][]", &user)],
                &invalid("project[team]"),
            ),
            p(
                &[("project[name]", "X"), ("project[ownerId]", &user)],
                &invalid("project[ownerId]"),
            ),
        ],
        "projects/update" => vec![
            p(
                &[("project[id]", &project), ("project[name]", "X")],
                NOT_FOUND,
            ),
            p(
                &[("project[id]", &bp), ("project[groupId]", &group)],
                &invalid("project[groupId]"),
            ),
            p(
                &[("project[id]", &bp), ("project[team][]", &user)],
                &invalid("project[team]"),
            ),
            p(
                &[("project[id]", &bp), ("project[ownerId]", &user)],
                &invalid("project[ownerId]"),
            ),
        ],
        "projects/remove" | "projects/getById" => vec![p(&[("id", &project)], NOT_FOUND)],
        "projects/getAll" | "projects/getList" => filters(
            &["groupId", "ownerId", "assignedTo"],
            &[&group, &user, &user],
        ),
        "tasks/add" => vec![
            p(
                &[("task[name]", "X"), ("task[projectId]", &project)],
                NOT_FOUND,
            ),
            p(
                &[("task[name]", "X"), ("task[parentId]", &task)],
                &invalid("task[parentId]"),
            ),
            p(
                &[("task[name]", "X"), ("task[groupId]", &group)],
                &invalid("task[groupId]"),
            ),
            p(
                &[
                    ("task[name]", "X"),
                    ("task[projectId]", &bp),
                    ("task[team][]", &user),
                ],
                &invalid("task[team]"),
            ),
            p(
                &[
                    ("task[name]", "X"),
                    ("task[projectId]", &bp),
                    ("task[ownerId]", &user),
                ],
                &invalid("task[ownerId]"),
            ),
        ],
        "tasks/update" => vec![
            p(&[("task[id]", &task), ("task[name]", "X")], NOT_FOUND),
            p(
                &[("task[id]", &id(r.sub_task)), ("task[name]", "X")],
                NOT_FOUND,
            ),
            p(
                &[("task[id]", &bt), ("task[projectId]", &project)],
                NOT_FOUND,
            ),
            p(
                &[("task[id]", &bt), ("task[parentId]", &task)],
                &invalid("task[parentId]"),
            ),
            p(
                &[("task[id]", &bs), ("task[groupId]", &group)],
                &invalid("task[groupId]"),
            ),
            p(
                &[("task[id]", &bt), ("task[team][]", &user)],
                &invalid("task[team]"),
            ),
            p(
                &[("task[id]", &bt), ("task[ownerId]", &user)],
                &invalid("task[ownerId]"),
            ),
        ],
        "tasks/remove" | "tasks/getById" => vec![
            p(&[("id", &task)], NOT_FOUND),
            p(&[("id", &id(r.sub_task))], NOT_FOUND),
        ],
        "tasks/getList" => {
            let mut all = filters(
                &["projectId", "parentId", "groupId", "ownerId", "assignedTo"],
                &[&project, &task, &group, &user, &user],
            );
            // The kept counts of a project's tasks.
            all.push(p(
                &[("filter[projectId]", &project), ("filter[active]", "1")],
                EMPTY,
            ));
            all
        }
        "activity/add" => vec![
            p(
                &[("activity[taskId]", &task), ("activity[text]", "X")],
                NOT_FOUND,
            ),
            p(
                &[("activity[projectId]", &project), ("activity[text]", "X")],
                NOT_FOUND,
            ),
        ],
        "activity/update" => vec![p(
            &[("activity[id]", &activity), ("activity[text]", "X")],
            NOT_FOUND,
        )],
        "activity/remove" | "activity/getById" => vec![p(&[("id", &activity)], NOT_FOUND)],
        "activity/getList" => filters(
            &["projectId", "taskId", "groupId", "assignedTo"],
            &[&project, &task, &group, &user],
        ),
        "activity/attachFiles" => {
            let content = base64::engine::general_purpose::STANDARD.encode(b"refused");
            vec![p(
                &[("activityId", &activity), ("files[1][content]", &content)],
                NOT_FOUND,
            )]
        }
        "activity/getFilesList" => filters(
            &["projectId", "taskId", "activityId", "ownerId"],
            &[&project, &task, &activity, &user],
        ),
        "activity/removeFile" | "activity/downloadFile" => vec![p(&[("id", &file)], NOT_FOUND)],
        "tokens/add" => return Err("no id: makes a token of the caller, in bravo"),
        "tokens/getAll" => per_user(&|u| p(&[("userId", u)], NOT_FOUND)),
        "tokens/remove" => vec![p(&[("id", &r.token.to_string())], NOT_FOUND)],
        _ => panic!("{call} has no probe: say what it refers to, or why it takes no id"),
    })
}

/// What an answer says, as the probes' expectations are written.
fn answer_of(r: &Resp) -> String {
    if r.status == 200 {
        let j = r.json();
        let empty =
            j["items"].as_array().is_some_and(|i| i.is_empty()) && j["total"].as_i64() == Some(0);
        return if empty {
            EMPTY.into()
        } else {
            format!("200 {}", r.body)
        };
    }
    let j = r.json();
    if r.status == 422 {
        return format!("422 {:?}", r.error_fields());
    }
    format!("{} {}", r.status, j["code"].as_str().unwrap_or(""))
}

/// One of everything in acme, with its admin's session.
async fn fill_acme(acme: &TestServer) -> (String, Refs) {
    let sid = acme.admin().await;
    let admin = me(acme, &sid).await;
    let c = acme.as_caller(&sid);
    let mut users = vec![admin];
    for (email, level) in [
        ("user@acme.test", 100),
        ("external@acme.test", 150),
        ("client@acme.test", 200),
    ] {
        users.push(acme.user(email, level, false).await.0);
    }
    let group = c.group("acme-group").await;
    let team = users
        .iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let group_s = group.to_string();
    let project = c
        .project(&[
            ("name", "acme-project"),
            ("groupId", &group_s),
            ("team", &team),
        ])
        .await;
    let user_s = users[1].to_string();
    let task = c
        .task(project, &[("name", "acme-task"), ("team", &user_s)])
        .await;
    let task_s = task.to_string();
    let sub_task = c
        .task(project, &[("name", "acme-sub-task"), ("parentId", &task_s)])
        .await;
    let activity = c
        .activity(&[("taskId", &task_s), ("text", "acme-message")])
        .await;
    let file = c.attach(activity, "acme.txt", b"acme bytes").await;
    let made = c
        .call(
            "tokens/add",
            &[("token[name]", "acme-token"), ("token[scope]", "read")],
        )
        .await;
    made.assert_ok();
    let token = made.json()["token"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let refs = Refs {
        group,
        project,
        task,
        sub_task,
        activity,
        file,
        token,
        users,
        email: "user@acme.test".into(),
        password: password_for("user@acme.test"),
    };
    (sid, refs)
}

/// Everything acme's admin reads of acme, to compare before and after.
async fn acme_as_seen(acme: &TestServer, sid: &str, r: &Refs) -> Vec<(String, String)> {
    let c = acme.as_caller(sid);
    let mut reads: Vec<(String, Vec<(String, String)>)> = vec![
        (
            "projectsgroups/getById".into(),
            owned(&[("id", &r.group.to_string())]),
        ),
        (
            "projects/getById".into(),
            owned(&[("id", &r.project.to_string())]),
        ),
        (
            "tasks/getById".into(),
            owned(&[("id", &r.task.to_string())]),
        ),
        (
            "tasks/getById".into(),
            owned(&[("id", &r.sub_task.to_string())]),
        ),
        (
            "activity/getById".into(),
            owned(&[("id", &r.activity.to_string()), ("withFiles", "1")]),
        ),
        ("projects/getAll".into(), owned(&[("loadTeam", "1")])),
        ("projects/getList".into(), owned(&[("loadTeam", "1")])),
        ("tasks/getList".into(), owned(&[("loadTeam", "1")])),
        (
            "tasks/getList".into(),
            owned(&[("filter[projectId]", &r.project.to_string())]),
        ),
        ("activity/getList".into(), owned(&[("withFiles", "1")])),
        ("activity/getFilesList".into(), vec![]),
        ("users/getAll".into(), vec![]),
        ("projectsgroups/getAll".into(), vec![]),
    ];
    for u in &r.users {
        reads.push(("users/getById".into(), owned(&[("id", &u.to_string())])));
    }
    let mut seen = Vec::new();
    for (call, args) in reads {
        let resp = call_owned(&c, &call, &args).await;
        resp.assert_ok();
        seen.push((format!("{call} {args:?}"), resp.body));
    }
    let file = c
        .call("activity/downloadFile", &[("id", &r.file.to_string())])
        .await;
    assert_eq!(file.status, 200, "{}", file.body);
    seen.push(("the file's bytes".into(), file.body));
    seen
}

#[tokio::test]
async fn an_id_from_another_workspace_is_answered_as_one_that_exists_nowhere() {
    let w = two().await;
    let (acme_sid, refs) = fill_acme(&w.acme).await;
    let before = acme_as_seen(&w.acme, &acme_sid, &refs).await;

    let bravo_sid = w.bravo.admin().await;
    let b = w.bravo.as_caller(&bravo_sid);
    let own_project = b.project(&[("name", "bravo-project")]).await;
    let own = Own {
        project: own_project,
        task: b.task(own_project, &[("name", "bravo-task")]).await,
        single_task: b.add(Kind::Task, &[("name", "bravo-single")]).await,
    };
    let blobs_before = blobs_in(w.s.dir.path());
    let nowhere = Refs::nowhere();
    let mut without_id = Vec::new();
    for e in ENDPOINTS {
        let call = format!("{}/{}", e.service, e.method);
        let (with_acme, with_nowhere) =
            match (probes(&call, &refs, &own), probes(&call, &nowhere, &own)) {
                (Ok(a), Ok(n)) => (a, n),
                (Err(why), Err(_)) => {
                    without_id.push((call, why));
                    continue;
                }
                _ => unreachable!("the table's arms do not depend on the ids"),
            };
        assert!(!with_acme.is_empty(), "{call}");
        for ((acme_args, expected), (nowhere_args, _)) in with_acme.iter().zip(&with_nowhere) {
            let acme_answer = answer_of(&call_owned(&b, &call, acme_args).await);
            let nowhere_answer = answer_of(&call_owned(&b, &call, nowhere_args).await);
            assert_eq!(
                (&acme_answer, &nowhere_answer),
                (expected, expected),
                "{call} with acme's {acme_args:?} / with {nowhere_args:?}"
            );
        }
    }
    // Those without an id: what bravo reads there names nothing of acme.
    assert_eq!(without_id.len(), 9, "{without_id:?}");
    for call in [
        "authentication/getAuthorizedUser",
        "metainfo/getStatuses",
        "metainfo/getPriorities",
        "users/getAll",
        "projectsgroups/getAll",
        "tokens/getAll",
    ] {
        let r = b.call(call, &[]).await;
        r.assert_ok();
        assert!(!r.body.contains("acme"), "{call}: {}", r.body);
    }

    // An upload streamed as a client sends one is refused before its file is read.
    let part = reqwest::multipart::Part::bytes(b"refused".to_vec()).file_name("refused.txt");
    let form = reqwest::multipart::Form::new()
        .text("sessionId", bravo_sid.clone())
        .text("activityId", refs.activity.to_string())
        .text("retType", "json")
        .part("files[1]", part);
    let api = w.bravo.api("activity/attachFiles");
    let r = read(
        w.bravo
            .client
            .post(api)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_fail(404, "not_found");

    // Nothing of acme changed, and the refused uploads wrote no blob.
    assert_eq!(acme_as_seen(&w.acme, &acme_sid, &refs).await, before);
    assert_eq!(blobs_in(w.s.dir.path()), blobs_before);
}

// ---- 3. lists and totals ---------------------------------------------------------------

/// What one workspace holds, by kind, as made by `fill`.
struct Holdings {
    admin_sid: String,
    /// A user (100) who sees all profiles and is in every team: sees what the admin sees.
    member_sid: String,
    /// An external user (150) in no team, with their session: sees themself alone.
    outsider: (i64, String),
    users: Vec<i64>,
    groups: Vec<i64>,
    projects: Vec<i64>,
    /// By project (the last entry: single tasks).
    tasks: Vec<Vec<i64>>,
    activities: Vec<i64>,
    files: Vec<i64>,
}

/// `n` of each kind (n + 1 users, n groups, n projects of n tasks, one done, n single
/// tasks, an activity with a file on each task), named after the workspace.
async fn fill(s: &TestServer, name: &str, n: usize) -> Holdings {
    let admin_sid = s.admin().await;
    let admin = me(s, &admin_sid).await;
    let (member, member_sid) = s.user(&format!("member@{name}.test"), 100, true).await;
    let outsider = s.user(&format!("outsider@{name}.test"), 150, false).await;
    let mut users = vec![admin, member, outsider.0];
    for i in 2..n {
        users.push(s.user(&format!("u{i}@{name}.test"), 150, false).await.0);
    }
    let c = s.as_caller(&admin_sid);
    let team = format!("{admin},{member}");
    let mut groups = Vec::new();
    let mut projects = Vec::new();
    let mut tasks = Vec::new();
    let mut activities = Vec::new();
    let mut files = Vec::new();
    for i in 0..n {
        let group = c.group(&format!("{name}-group-{i}")).await;
        groups.push(group);
        let group = group.to_string();
        let project = c
            .project(&[
                ("name", &format!("{name}-project-{i}")),
                ("groupId", &group),
                ("team", &team),
            ])
            .await;
        projects.push(project);
        let mut in_project = Vec::new();
        for j in 0..n {
            let status = if j == 0 { "30" } else { "10" };
            in_project.push(
                c.task(
                    project,
                    &[
                        ("name", &format!("{name}-task-{i}-{j}")),
                        ("status", status),
                        ("team", &team),
                    ],
                )
                .await,
            );
        }
        tasks.push(in_project);
    }
    let mut single = Vec::new();
    for i in 0..n {
        single.push(
            c.add(
                Kind::Task,
                &[("name", &format!("{name}-single-{i}")), ("team", &team)],
            )
            .await,
        );
    }
    tasks.push(single);
    for t in tasks.iter().flatten() {
        let a = c
            .activity(&[
                ("taskId", &t.to_string()),
                ("text", &format!("{name} note")),
            ])
            .await;
        activities.push(a);
        files.push(c.attach(a, &format!("{name}.txt"), name.as_bytes()).await);
    }
    Holdings {
        admin_sid,
        member_sid,
        outsider,
        users,
        groups,
        projects,
        tasks,
        activities,
        files,
    }
}

/// A list call, its arguments, and the ids it must answer.
type ListCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<i64>);

/// Every list of the workspace as this caller reads it holds the workspace's rows alone,
/// and counts them.
async fn lists_hold_only(s: &TestServer, sid: &str, h: &Holdings, other: &Holdings) {
    let c = s.as_caller(sid);
    let all_tasks: Vec<i64> = h.tasks.iter().flatten().copied().collect();
    let first = h.projects[0].to_string();
    let first_tasks = &h.tasks[0];
    let active_first: Vec<i64> = first_tasks[1..].to_vec();
    let other_project = other.projects[0].to_string();
    let cases: Vec<ListCase> = vec![
        ("users/getAll", vec![], h.users.clone()),
        ("projectsgroups/getAll", vec![], h.groups.clone()),
        ("projects/getAll", vec![], h.projects.clone()),
        ("projects/getList", vec![], h.projects.clone()),
        (
            "projects/getList",
            vec![("filter[active]", "1")],
            h.projects.clone(),
        ),
        ("tasks/getList", vec![], all_tasks.clone()),
        (
            "tasks/getList",
            vec![("filter[projectId]", &first)],
            first_tasks.clone(),
        ),
        (
            "tasks/getList",
            vec![("filter[projectId]", &first), ("filter[active]", "1")],
            active_first,
        ),
        (
            "tasks/getList",
            vec![("filter[projectId]", &other_project)],
            vec![],
        ),
        (
            "tasks/getList",
            vec![
                ("filter[projectId]", &other_project),
                ("filter[active]", "1"),
            ],
            vec![],
        ),
        ("activity/getList", vec![], h.activities.clone()),
        ("activity/getFilesList", vec![], h.files.clone()),
    ];
    for (call, args, expected) in cases {
        let r = c.call(call, &args).await;
        let (ids, total) = ids_total(&r);
        assert_eq!(
            (ids, total),
            (set(&expected), expected.len() as i64),
            "{call} {args:?}"
        );
    }
}

#[tokio::test]
async fn lists_and_totals_hold_only_their_workspaces_rows() {
    let w = two().await;
    let acme = fill(&w.acme, "acme", 3).await;
    let bravo = fill(&w.bravo, "bravo", 2).await;
    for sid in [&bravo.admin_sid, &bravo.member_sid] {
        lists_hold_only(&w.bravo, sid, &bravo, &acme).await;
    }
    for sid in [&acme.admin_sid, &acme.member_sid] {
        lists_hold_only(&w.acme, sid, &acme, &bravo).await;
    }
    // One who sees only themself and their teams sees exactly that in each.
    for (s, h) in [(&w.acme, &acme), (&w.bravo, &bravo)] {
        let (id, sid) = &h.outsider;
        let c = s.as_caller(sid);
        for (call, expected) in [
            ("users/getAll", vec![*id]),
            ("projects/getList", vec![]),
            ("tasks/getList", vec![]),
            ("activity/getList", vec![]),
            ("activity/getFilesList", vec![]),
        ] {
            let (ids, total) = ids_total(&c.call(call, &[]).await);
            assert_eq!(
                (ids, total),
                (set(&expected), expected.len() as i64),
                "{call}"
            );
        }
    }
    // The default workspace, on its own host, holds its admin alone.
    let default = w.s.at_host(&format!("default.{BASE}"));
    let sid = default.admin().await;
    let c = default.as_caller(&sid);
    assert_eq!(c.all(Kind::User, &[]).await.len(), 1);
    assert_eq!(c.list(Kind::Task, &[]).await.total, 0);
    assert_eq!(c.list(Kind::Project, &[]).await.total, 0);
}

// ---- 4. login throttling ------------------------------------------------------------------

async fn sign_in(s: &TestServer, password: &str) -> Resp {
    s.call_json(
        "authentication/signIn",
        &[("login", ADMIN_EMAIL), ("password", password)],
    )
    .await
}

#[tokio::test]
async fn login_failures_count_in_their_workspace_alone() {
    let w = two().await;
    for _ in 0..10 {
        sign_in(&w.acme, "wrong-password-1")
            .await
            .assert_fail(401, "auth_failed");
    }
    // Acme refuses even the right password from this address now...
    sign_in(&w.acme, ADMIN_PASSWORD)
        .await
        .assert_fail(429, "too_many_requests");
    // ...while bravo, from the same address, counts nothing of it.
    sign_in(&w.bravo, ADMIN_PASSWORD).await.assert_ok();
    sign_in(&w.bravo, "wrong-password-1")
        .await
        .assert_fail(401, "auth_failed");
    sign_in(&w.bravo, ADMIN_PASSWORD).await.assert_ok();
}

// ---- 5. the web page -----------------------------------------------------------------------

#[tokio::test]
async fn a_web_session_is_honoured_only_in_its_workspace_and_shows_its_projects() {
    let w = two().await;
    let acme_sid = w.acme.admin().await;
    let bravo_sid = w.bravo.admin().await;
    let acme_projects = vec![
        w.acme
            .as_caller(&acme_sid)
            .project(&[("name", "acme-one")])
            .await,
        w.acme
            .as_caller(&acme_sid)
            .project(&[("name", "acme-two")])
            .await,
    ];
    let bravo_projects = vec![
        w.bravo
            .as_caller(&bravo_sid)
            .project(&[("name", "bravo-one")])
            .await,
    ];

    let at_acme = w.acme.admin_browser().await;
    let page = at_acme.get("/projects").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(linked_ids(&page.body, "/projects/"), acme_projects);
    assert!(!page.body.contains("bravo-one"));

    // Acme's cookie, taken to bravo's host by hand, leads to the sign-in page.
    let cookie = at_acme.session_id().unwrap();
    let at_bravo = w.bravo.browser();
    at_bravo.set_cookie(SESSION_COOKIE, &cookie);
    for path in [
        "/",
        "/projects",
        &format!("/projects/{}", bravo_projects[0]),
    ] {
        let r = at_bravo.get(path).await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
        assert!(
            location(&r).starts_with("/signin"),
            "{path}: {}",
            location(&r)
        );
    }
    // Nor does bravo's sign-in form take it for a signed-in visitor.
    let r = at_bravo.get("/signin").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Acme's project pages are not bravo's, even for bravo's own admin.
    let bravo_admin = w.bravo.admin_browser().await;
    let page = bravo_admin.get("/projects").await;
    assert_eq!(linked_ids(&page.body, "/projects/"), bravo_projects);
    let a = w.acme.as_caller(&acme_sid);
    let acme_task = a.task(acme_projects[0], &[("name", "acme-task")]).await;
    let acme_note = a
        .activity(&[("taskId", &acme_task.to_string()), ("text", "acme-note")])
        .await;
    let acme_file = a.attach(acme_note, "acme.txt", b"acme bytes").await;
    let (p, t, f) = (acme_projects[0], acme_task, acme_file);
    for path in [
        format!("/projects/{p}"),
        format!("/projects/{p}/edit"),
        format!("/tasks/{t}"),
        format!("/tasks/{t}/edit"),
        format!("/activities/{acme_note}/edit"),
        format!("/files/{f}"),
    ] {
        let r = bravo_admin.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let t_s = t.to_string();
    for (path, form) in [
        (format!("/projects/{p}/remove"), vec![]),
        (format!("/tasks/{t}/remove"), vec![]),
        (
            format!("/tasks/{t}/activities"),
            vec![
                ("activity[taskId]", t_s.as_str()),
                ("activity[text]", "from bravo"),
            ],
        ),
        (format!("/activities/{acme_note}/remove"), vec![]),
        (format!("/files/{f}/remove"), vec![]),
    ] {
        let r = bravo_admin.post(&path, &form).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    // All of it is still acme's.
    a.get(Kind::Project, p).await;
    a.get(Kind::Task, t).await;
    assert_eq!(a.files(&[]).await.ids, [f]);
    assert_eq!(a.list(Kind::Activity, &[]).await.ids, [acme_note]);
    // And acme's cookie still works at acme.
    assert_eq!(at_acme.get("/projects").await.status, 200);
}

// ---- 6. workspace remove ------------------------------------------------------------------

/// What bravo's admin reads of bravo's lists, to compare before and after.
async fn lists_of(s: &TestServer, sid: &str) -> Vec<String> {
    let c = s.as_caller(sid);
    let mut seen = Vec::new();
    for call in [
        "users/getAll",
        "projectsgroups/getAll",
        "projects/getAll",
        "tasks/getList",
        "activity/getList",
        "activity/getFilesList",
    ] {
        let r = c.call(call, &[]).await;
        r.assert_ok();
        seen.push(r.body);
    }
    seen
}

/// The tables with a workspace column, each checked by `count_rows`.
const TABLES: [&str; 11] = [
    "users",
    "sessions",
    "login_failures",
    "project_groups",
    "projects",
    "tasks",
    "activities",
    "files",
    "outbox",
    "task_counts",
    "own_task_counts",
];

#[tokio::test]
async fn removing_a_workspace_takes_all_of_it_and_nothing_of_the_other() {
    let w = two().await;
    let blobs_at_start = blobs_in(w.s.dir.path());
    let acme = fill(&w.acme, "acme", 2).await;
    let acme_blobs: BTreeSet<String> = blobs_in(w.s.dir.path())
        .difference(&blobs_at_start)
        .cloned()
        .collect();
    assert_eq!(acme_blobs.len(), acme.files.len());
    let before_bravo = blobs_in(w.s.dir.path());
    let bravo = fill(&w.bravo, "bravo", 2).await;
    let bravo_blobs: BTreeSet<String> = blobs_in(w.s.dir.path())
        .difference(&before_bravo)
        .cloned()
        .collect();
    assert_eq!(bravo_blobs.len(), bravo.files.len());
    // Mail queued and a login failure counted in acme, so that every table has its rows.
    let member = acme.users[1].to_string();
    w.acme
        .as_caller(&acme.admin_sid)
        .activity(&[
            ("taskId", &acme.tasks[0][0].to_string()),
            ("text", "to the outbox"),
            ("notifyUsers[]", &member),
        ])
        .await;
    sign_in(&w.acme, "wrong-password-1")
        .await
        .assert_fail(401, "auth_failed");
    let acme_ws = w
        .store
        .workspace_by_name("acme".into())
        .await
        .unwrap()
        .unwrap();
    let bravo_ws = w
        .store
        .workspace_by_name("bravo".into())
        .await
        .unwrap()
        .unwrap();
    let rows_of = |ws: vesper::domain::WorkspaceId| {
        let s = &w.s;
        async move {
            let mut counts = Vec::new();
            for table in TABLES {
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE workspace_id = {}", ws.0);
                counts.push((table, count_rows(s, &sql).await));
            }
            counts
        }
    };
    let acme_rows = rows_of(acme_ws).await;
    assert!(acme_rows.iter().all(|(_, n)| *n > 0), "{acme_rows:?}");
    let bravo_rows = rows_of(bravo_ws).await;
    let bravo_lists = lists_of(&w.bravo, &bravo.admin_sid).await;
    let acme_users = acme
        .users
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");

    let files = vesper::files::Blobs::open(None, w.s.dir.path()).unwrap();
    let removed = vesper::commands::take_workspace_away(&*w.store, &files, "acme")
        .await
        .unwrap();
    let removed_at = std::time::Instant::now();
    assert_eq!(removed, acme.files.len());

    // Every row of acme went, teams included; bravo's are all there.
    let gone = rows_of(acme_ws).await;
    assert!(gone.iter().all(|(_, n)| *n == 0), "{gone:?}");
    for team in ["project_team", "task_team"] {
        let sql = format!("SELECT COUNT(*) FROM {team} WHERE user_id IN ({acme_users})");
        assert_eq!(count_rows(&w.s, &sql).await, 0, "{team}");
    }
    assert_eq!(rows_of(bravo_ws).await, bravo_rows);
    // Acme's blobs went; bravo's stayed, and still download whole.
    let blobs = blobs_in(w.s.dir.path());
    assert!(blobs.is_disjoint(&acme_blobs), "{blobs:?}");
    assert!(blobs.is_superset(&bravo_blobs), "{blobs:?}");
    let b = w.bravo.as_caller(&bravo.admin_sid);
    for f in &bravo.files {
        let r = b
            .call("activity/downloadFile", &[("id", &f.to_string())])
            .await;
        assert_eq!((r.status, r.body.as_str()), (200, "bravo"));
    }
    // Bravo's sessions work and its lists are as they were.
    assert_eq!(lists_of(&w.bravo, &bravo.admin_sid).await, bravo_lists);
    w.bravo
        .as_caller(&bravo.member_sid)
        .list(Kind::Task, &[])
        .await;

    // Once the name is no longer trusted (5 s), acme's host is an unknown workspace.
    let trusted = Duration::from_secs(5) + Duration::from_millis(300);
    tokio::time::sleep(trusted.saturating_sub(removed_at.elapsed())).await;
    sign_in(&w.acme, ADMIN_PASSWORD)
        .await
        .assert_fail(404, "unknown_workspace");
    w.acme
        .call_json("projects/getAll", &[("sessionId", acme.admin_sid.as_str())])
        .await
        .assert_fail(404, "unknown_workspace");

    // A new acme starts empty.
    vesper::commands::add_workspace(&*w.store, "acme", ADMIN_EMAIL, ADMIN_PASSWORD.into())
        .await
        .unwrap();
    let sid = w.acme.admin().await;
    let c = w.acme.as_caller(&sid);
    assert_eq!(c.all(Kind::User, &[]).await.len(), 1);
    assert_eq!(c.all(Kind::Group, &[]).await.len(), 0);
    assert_eq!(c.all(Kind::Project, &[]).await.len(), 0);
    assert_eq!(c.list(Kind::Task, &[]).await.total, 0);
    assert_eq!(c.list(Kind::Activity, &[]).await.total, 0);
    assert_eq!(c.files(&[]).await.total, 0);
    // The old sessions name nothing there.
    w.acme
        .call_json("projects/getAll", &[("sessionId", acme.admin_sid.as_str())])
        .await
        .assert_fail(401, "auth_failed");
    let new_ws = w
        .store
        .workspace_by_name("acme".into())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(new_ws, acme_ws);

    // The default workspace cannot be removed, and stays served.
    assert!(
        vesper::commands::take_workspace_away(&*w.store, &files, "default")
            .await
            .is_err()
    );
    w.s.at_host(&format!("default.{BASE}")).admin().await;
}

// ---- 7. mail -----------------------------------------------------------------------------

/// The `To` address of each `.eml` file in the data folder whose text holds `marker`.
fn mailed(dir: &std::path::Path, marker: &str) -> Vec<String> {
    let mut to = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("mail")) else {
        return to;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let raw = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        if !raw.contains(marker) {
            continue;
        }
        let header = raw
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("to:"))
            .unwrap_or_else(|| panic!("no To in {raw}"));
        let address = header[3..].trim();
        let address = match (address.rfind('<'), address.rfind('>')) {
            (Some(a), Some(b)) if a < b => &address[a + 1..b],
            _ => address,
        };
        to.push(address.to_lowercase());
    }
    to.sort();
    to
}

#[tokio::test]
async fn mail_caused_in_a_workspace_goes_to_its_own_users_alone() {
    let w = two().await;
    let acme_sid = w.acme.admin().await;
    let bravo_sid = w.bravo.admin().await;
    let (acme_member, _) = w.acme.user("member@acme.test", 100, false).await;
    let (bravo_member, _) = w.bravo.user("member@bravo.test", 100, false).await;
    let bravo_admin = me(&w.bravo, &bravo_sid).await;
    let acme_admin = me(&w.acme, &acme_sid).await;
    let a = w.acme.as_caller(&acme_sid);
    let team = format!("{acme_admin},{acme_member}");
    let project = a
        .project(&[("name", "acmeproj"), ("team", &team)])
        .await
        .to_string();
    // Acme's post names bravo's users too: they are no users of acme.
    let (bm, ba) = (bravo_member.to_string(), bravo_admin.to_string());
    a.activity(&[
        ("projectId", &project),
        ("text", "acmemarker"),
        ("notifyProjectTeam", "1"),
        ("notifyUsers[]", &bm),
        ("notifyUsers[]", &ba),
    ])
    .await;
    // Bravo's own post to its member, after acme's: once it is out, acme's is too.
    let b = w.bravo.as_caller(&bravo_sid);
    let bravo_project = b.project(&[("name", "bravoproj")]).await.to_string();
    b.activity(&[
        ("projectId", &bravo_project),
        ("text", "bravomarker"),
        ("notifyUsers[]", &bm),
    ])
    .await;
    let dir = w.s.dir.path();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while mailed(dir, "bravomarker").is_empty() || mailed(dir, "acmemarker").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no mail came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mailed(dir, "acmemarker"), ["member@acme.test"]);
    assert_eq!(mailed(dir, "bravomarker"), ["member@bravo.test"]);
    assert!(mailed(dir, "bravoproj")
        .iter()
        .all(|to| to.ends_with("@bravo.test")));
    assert!(mailed(dir, "acmeproj")
        .iter()
        .all(|to| to.ends_with("@acme.test")));
}

/// The resolver trusts a name for a few seconds, and a node may still know a session of
/// the removed workspace (SQLite's session cache, when `vesper workspace remove` ran in
/// another process): what such a request writes must not outlive the workspace.
#[tokio::test]
async fn writes_in_the_moments_after_a_removal_leave_nothing_behind() {
    let w = two().await;
    let sid = w.acme.admin().await;
    let c = w.acme.as_caller(&sid);
    c.group("before").await;
    let acme_ws = w
        .store
        .workspace_by_name("acme".into())
        .await
        .unwrap()
        .unwrap();
    let files = vesper::files::Blobs::open(None, w.s.dir.path()).unwrap();
    vesper::commands::take_workspace_away(&*w.store, &files, "acme")
        .await
        .unwrap();
    let late = [
        ("projectsgroups/add", vec![("group[name]", "after")]),
        (
            "users/add",
            vec![
                ("user[email]", "late@acme.test"),
                ("user[password]", "late-password-1"),
            ],
        ),
        ("projects/add", vec![("project[name]", "late")]),
        ("tasks/add", vec![("task[name]", "late")]),
    ];
    for (call, args) in late {
        let r = c.call(call, &args).await;
        assert_ne!(r.status, 200, "{call}: {}", r.body);
        // Where the session was still honoured, the workspace is found gone.
        if r.status != 401 && matches!(call, "projectsgroups/add" | "users/add") {
            r.assert_fail(404, "unknown_workspace");
        }
    }
    // Signing in there counts no failure for a workspace that is gone.
    sign_in(&w.acme, ADMIN_PASSWORD)
        .await
        .assert_fail(404, "unknown_workspace");
    for table in TABLES {
        let sql = format!(
            "SELECT COUNT(*) FROM {table} WHERE workspace_id = {}",
            acme_ws.0
        );
        assert_eq!(count_rows(&w.s, &sql).await, 0, "{table}");
    }
}
