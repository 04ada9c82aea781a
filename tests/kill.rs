//! The real binary killed with SIGKILL under write load, again and again: after each
//! restart on the same data folder every write that was answered 200 is there, the
//! SQLite file passes `PRAGMA integrity_check`, and at the end a task's `hoursDone` is
//! the sum over the activities that survived. On PostgreSQL (VESPER_TEST_DATABASE_URL)
//! the server runs on a fresh database of its own instead.
mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

const WRITERS: usize = 8;
const KILLS: usize = 24;
/// Write load between a restart and the next kill.
const LOAD_MS: std::ops::Range<u64> = 150..600;
const HOURS: f64 = 0.5;

/// One run of `vesper serve` on the data folder (and database, on PostgreSQL).
struct Server {
    child: Child,
    port: u16,
}

fn start(data_dir: &Path, database_url: Option<&str>, log: &Path) -> Server {
    let port = free_port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vesper"));
    cmd.env_remove("VESPER_DATABASE_URL")
        .env_remove("VESPER_CONFIG")
        .env("VESPER_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir);
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
    Server { child, port }
}

impl Server {
    fn base(&self) -> String {
        format!("https://127.0.0.1:{}/api/v2/service", self.port)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vesper exited at start: {status}");
            }
            let health = format!("https://127.0.0.1:{}/health", self.port);
            if client
                .get(health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("vesper did not start");
    }

    /// SIGKILL, and waits for the process to be gone.
    fn kill(self) {
        drop(self);
    }
}

// Also when a check fails: no server outlives the test.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Task,
    Activity,
}

/// A call's JSON answer, or `None` when the server was not there to answer.
async fn call(
    client: &reqwest::Client,
    base: &str,
    call: &str,
    params: &[(&str, &str)],
) -> Option<(u16, serde_json::Value)> {
    let response = client
        .post(format!("{base}/{call}"))
        .form(params)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.bytes().await.ok()?;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{call}: an answer that is not JSON ({e}): {body:?}"));
    Some((status, json))
}

fn id_of(answer: &serde_json::Value, kind: &str) -> i64 {
    answer[kind]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no {kind} id in {answer}"))
}

/// Every id a list holds under one filter, page by page.
async fn all_ids(
    client: &reqwest::Client,
    base: &str,
    sid: &str,
    list: &str,
    filter: (&str, &str),
) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    loop {
        let offset = ids.len().to_string();
        let (status, page) = call(
            client,
            base,
            list,
            &[
                ("sessionId", sid),
                (filter.0, filter.1),
                ("offset", &offset),
                ("count", "1000"),
                ("retType", "json"),
            ],
        )
        .await
        .expect("the restarted server answers");
        assert_eq!(status, 200, "{list}: {page}");
        let items = page["items"].as_array().unwrap();
        ids.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().unwrap().parse::<i64>().unwrap()),
        );
        if items.len() < 1000 {
            return ids;
        }
    }
}

/// `PRAGMA integrity_check` of the SQLite file as the kill left it, read only.
fn integrity(data_dir: &Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("vesper.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_write_load_loses_no_acknowledged_write() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("vesper.log");
    let database = match test_database_url() {
        Some(admin_url) => Some(TestDatabase::for_data_dir(&admin_url, &data_dir, true).await),
        None => None,
    };
    let database_url = database.as_ref().map(TestDatabase::url);
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let mut server = start(&data_dir, database_url.as_deref(), &log);
    server.wait_ready(&client).await;
    let base = server.base();
    let signed_in = call(
        &client,
        &base,
        "get/authentication/signIn",
        &[
            ("login", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("retType", "json"),
        ],
    )
    .await
    .unwrap();
    let sid = signed_in.1["sessionId"].as_str().unwrap().to_owned();
    let (_, project) = call(
        &client,
        &base,
        "post/projects/add",
        &[
            ("sessionId", &sid),
            ("project[name]", "Kill"),
            ("retType", "json"),
        ],
    )
    .await
    .unwrap();
    let project = id_of(&project, "project").to_string();
    let (_, task) = call(
        &client,
        &base,
        "post/tasks/add",
        &[
            ("sessionId", &sid),
            ("task[name]", "Hours"),
            ("task[projectId]", &project),
            ("retType", "json"),
        ],
    )
    .await
    .unwrap();
    let hours_task = id_of(&task, "task").to_string();

    // The writers follow the server from port to port; what was answered 200 is kept.
    let current = Arc::new(Mutex::new(base.clone()));
    let acknowledged = Arc::new(Mutex::new(Vec::<(Kind, i64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, current, acknowledged, stop, unanswered) = (
                client.clone(),
                current.clone(),
                acknowledged.clone(),
                stop.clone(),
                unanswered.clone(),
            );
            let (sid, project, hours_task) = (sid.clone(), project.clone(), hours_task.clone());
            let hours = HOURS.to_string();
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let base = current.lock().unwrap().clone();
                    let name = format!("w{w}-{i}");
                    let (kind, answer) = if (i + w as u64).is_multiple_of(2) {
                        let params = [
                            ("sessionId", sid.as_str()),
                            ("task[name]", name.as_str()),
                            ("task[projectId]", project.as_str()),
                            ("retType", "json"),
                        ];
                        (
                            Kind::Task,
                            call(&client, &base, "post/tasks/add", &params).await,
                        )
                    } else {
                        let params = [
                            ("sessionId", sid.as_str()),
                            ("activity[taskId]", hours_task.as_str()),
                            ("activity[text]", name.as_str()),
                            ("activity[hoursDone]", hours.as_str()),
                            ("retType", "json"),
                        ];
                        (
                            Kind::Activity,
                            call(&client, &base, "post/activity/add", &params).await,
                        )
                    };
                    match answer {
                        Some((200, body)) => {
                            let key = if kind == Kind::Task {
                                "task"
                            } else {
                                "activity"
                            };
                            acknowledged.lock().unwrap().push((kind, id_of(&body, key)));
                        }
                        // Every answer the server gives is a success: a kill only ever
                        // loses the connection.
                        Some((status, body)) => panic!("{kind:?} add answered {status}: {body}"),
                        None => {
                            unanswered.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        })
        .collect();

    let mut kills = 0;
    let mut checked = 0;
    while kills < KILLS {
        let load = rand::thread_rng().gen_range(LOAD_MS);
        tokio::time::sleep(Duration::from_millis(load)).await;
        server.kill();
        kills += 1;
        // What was answered before the kill; an answer still on its way to a writer is
        // checked after the next restart.
        let before_kill: Vec<(Kind, i64)> = acknowledged.lock().unwrap().clone();
        if database_url.is_none() {
            assert_eq!(integrity(&data_dir), "ok", "after kill {kills}");
        }
        server = start(&data_dir, database_url.as_deref(), &log);
        server.wait_ready(&client).await;
        let base = server.base();
        *current.lock().unwrap() = base.clone();
        let tasks = all_ids(
            &client,
            &base,
            &sid,
            "get/tasks/getList",
            ("filter[projectId]", &project),
        )
        .await;
        let activities = all_ids(
            &client,
            &base,
            &sid,
            "get/activity/getList",
            ("filter[taskId]", &hours_task),
        )
        .await;
        for (kind, id) in &before_kill {
            let present = match kind {
                Kind::Task => tasks.contains(id),
                Kind::Activity => activities.contains(id),
            };
            assert!(
                present,
                "{kind:?} {id} was answered 200 and lost by kill {kills}"
            );
        }
        checked = before_kill.len();
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // With the writers stopped, one last kill: the task's hoursDone is the sum over the
    // activities that are there, every acknowledged write is there, and getById finds
    // the last ones written.
    server.kill();
    if database_url.is_none() {
        assert_eq!(integrity(&data_dir), "ok", "after the last kill");
    }
    let mut server = start(&data_dir, database_url.as_deref(), &log);
    server.wait_ready(&client).await;
    let base = server.base();
    let all: Vec<(Kind, i64)> = acknowledged.lock().unwrap().clone();
    let tasks = all_ids(
        &client,
        &base,
        &sid,
        "get/tasks/getList",
        ("filter[projectId]", &project),
    )
    .await;
    let activities = all_ids(
        &client,
        &base,
        &sid,
        "get/activity/getList",
        ("filter[taskId]", &hours_task),
    )
    .await;
    for (kind, id) in &all {
        let present = match kind {
            Kind::Task => tasks.contains(id),
            Kind::Activity => activities.contains(id),
        };
        assert!(present, "{kind:?} {id} was answered 200 and lost");
    }
    for (kind, id) in all.iter().rev().take(16) {
        let (service, key) = match kind {
            Kind::Task => ("get/tasks/getById", "task"),
            Kind::Activity => ("get/activity/getById", "activity"),
        };
        let (status, body) = call(
            &client,
            &base,
            service,
            &[
                ("sessionId", &sid),
                ("id", &id.to_string()),
                ("retType", "json"),
            ],
        )
        .await
        .unwrap();
        assert_eq!((status, id_of(&body, key)), (200, *id), "{body}");
    }
    let (_, task) = call(
        &client,
        &base,
        "get/tasks/getById",
        &[
            ("sessionId", &sid),
            ("id", &hours_task),
            ("retType", "json"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        task["task"]["hoursDone"].as_f64(),
        Some(HOURS * activities.len() as f64),
        "hoursDone follows the {} activities that survived",
        activities.len()
    );
    server.kill();
    let acknowledged_tasks = all.iter().filter(|(k, _)| *k == Kind::Task).count();
    eprintln!(
        "{kills} kills (+1 at rest) in {:.1} s on {}: {} writes answered 200 ({} tasks, {} activities), all present; {} requests unanswered; last round checked {checked}",
        started.elapsed().as_secs_f64(),
        if database_url.is_some() { "PostgreSQL" } else { "SQLite" },
        all.len(),
        acknowledged_tasks,
        all.len() - acknowledged_tasks,
        unanswered.load(Ordering::Relaxed),
    );
    assert!(kills >= 20);
    drop(database);
}
