//! `vesper backup` and `vesper restore` on the real binary: a backup taken while eight
//! clients write is consistent, holds every write answered before it started and the
//! bytes of every file it names, and restores to a server that answers as the original
//! did; restore refuses what it must, writing nothing; on PostgreSQL the pg_dump steps of
//! `docs/deploy.md` run as written.
mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use serde_json::Value;
use sha2::{Digest, Sha256};

const WRITERS: usize = 8;

fn vesper() -> Command {
    let mut cmd = vesper_command();
    cmd.env("VESPER_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD);
    cmd
}

/// Runs a `vesper` command to its end, off the runtime's threads.
async fn run(args: Vec<std::ffi::OsString>) -> Output {
    tokio::task::spawn_blocking(move || vesper().args(args).output().unwrap())
        .await
        .unwrap()
}

fn args(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<std::ffi::OsString> {
    parts.iter().map(|p| p.as_ref().to_owned()).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `vesper serve` on an SQLite data folder; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    async fn start(data_dir: &Path, log: &Path) -> Server {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = vesper()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Server { child, port };
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("vesper exited at start: {status}");
            }
            let health = format!("https://127.0.0.1:{port}/health");
            if client
                .get(health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return server;
            }
            assert!(Instant::now() < deadline, "vesper did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn base(&self) -> String {
        format!("https://127.0.0.1:{}/api/v2/service", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A call's status and JSON answer.
async fn call(
    client: &reqwest::Client,
    base: &str,
    call: &str,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let mut all = params.to_vec();
    all.push(("retType", "json"));
    let response = client
        .post(format!("{base}/{call}"))
        .form(&all)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{call}: {e}"));
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{call}: not JSON ({e}): {body:?}"));
    (status, json)
}

/// A call that must succeed: its answer.
async fn ok(client: &reqwest::Client, base: &str, name: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = call(client, base, name, params).await;
    assert_eq!(status, 200, "{name}: {body}");
    body
}

fn id_in(answer: &Value, key: &str) -> i64 {
    match &answer[key]["id"] {
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.as_i64().unwrap(),
        _ => panic!("no {key} id in {answer}"),
    }
}

async fn sign_in(client: &reqwest::Client, base: &str) -> String {
    let answer = ok(
        client,
        base,
        "get/authentication/signIn",
        &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
    )
    .await;
    answer["sessionId"].as_str().unwrap().to_owned()
}

/// `attachFiles` of one file to an activity, as a client sends it: the file's id.
async fn attach(
    client: &reqwest::Client,
    base: &str,
    sid: &str,
    activity: i64,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("data.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.to_owned())
        .text("activityId", activity.to_string())
        .text("retType", "json")
        .part("files[1]", part);
    let response = client
        .post(format!("{base}/post/activity/attachFiles"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Project,
    Task,
    Activity,
}

impl Kind {
    fn get(self) -> (&'static str, &'static str) {
        match self {
            Kind::Project => ("get/projects/getById", "project"),
            Kind::Task => ("get/tasks/getById", "task"),
            Kind::Activity => ("get/activity/getById", "activity"),
        }
    }
}

/// What the writers saw: each object with the moment its last write was answered, each
/// attached file with its sum, and every request's start and duration.
#[derive(Default)]
struct Seen {
    settled: Vec<(Kind, i64, Instant)>,
    files: Vec<(i64, i64, String, Instant)>,
    /// Activities whose files were removed: they change after they settled.
    changed: BTreeSet<i64>,
    requests: Vec<(Instant, Duration)>,
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_to_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let backup_dir = dir.path().join("backup");
    let restored_dir = dir.path().join("restored");
    let log = dir.path().join("vesper.log");
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let server = Server::start(&data_dir, &log).await;
    let base = server.base();
    let sid = sign_in(&client, &base).await;
    let project = id_in(
        &ok(
            &client,
            &base,
            "post/projects/add",
            &[("sessionId", &sid), ("project[name]", "Backup")],
        )
        .await,
        "project",
    )
    .to_string();
    let task = id_in(
        &ok(
            &client,
            &base,
            "post/tasks/add",
            &[
                ("sessionId", &sid),
                ("task[name]", "Base"),
                ("task[projectId]", &project),
            ],
        )
        .await,
        "task",
    )
    .to_string();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, base, seen, stop) =
                (client.clone(), base.clone(), seen.clone(), stop.clone());
            let (sid, project, task) = (sid.clone(), project.clone(), task.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                let mut attached: Vec<(i64, i64)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let name = format!("w{w}-{i}");
                    let started = Instant::now();
                    let timed = |seen: &Mutex<Seen>, started: Instant| {
                        seen.lock()
                            .unwrap()
                            .requests
                            .push((started, started.elapsed()));
                    };
                    match (i + w as u64) % 5 {
                        0 => {
                            let params = [("sessionId", sid.as_str()), ("project[name]", &name)];
                            let answer = ok(&client, &base, "post/projects/add", &params).await;
                            timed(&seen, started);
                            let id = id_in(&answer, "project");
                            seen.lock()
                                .unwrap()
                                .settled
                                .push((Kind::Project, id, Instant::now()));
                        }
                        1 => {
                            let params = [
                                ("sessionId", sid.as_str()),
                                ("task[name]", &name),
                                ("task[projectId]", &project),
                            ];
                            let answer = ok(&client, &base, "post/tasks/add", &params).await;
                            timed(&seen, started);
                            let id = id_in(&answer, "task");
                            seen.lock()
                                .unwrap()
                                .settled
                                .push((Kind::Task, id, Instant::now()));
                        }
                        2 => {
                            let params = [
                                ("sessionId", sid.as_str()),
                                ("activity[taskId]", &task),
                                ("activity[text]", &name),
                                ("activity[hoursDone]", "0.25"),
                            ];
                            let answer = ok(&client, &base, "post/activity/add", &params).await;
                            timed(&seen, started);
                            let id = id_in(&answer, "activity");
                            seen.lock()
                                .unwrap()
                                .settled
                                .push((Kind::Activity, id, Instant::now()));
                        }
                        3 => {
                            // A message with a file: settled once the file is attached.
                            let params = [
                                ("sessionId", sid.as_str()),
                                ("activity[taskId]", &task),
                                ("activity[text]", &name),
                            ];
                            let answer = ok(&client, &base, "post/activity/add", &params).await;
                            timed(&seen, started);
                            let activity = id_in(&answer, "activity");
                            let mut bytes = vec![0u8; rand::thread_rng().gen_range(1..256 * 1024)];
                            rand::thread_rng().fill_bytes(&mut bytes);
                            let sum = sha256_hex(&bytes);
                            let started = Instant::now();
                            let (status, answer) =
                                attach(&client, &base, &sid, activity, bytes).await;
                            assert_eq!(status, 200, "attachFiles: {answer}");
                            timed(&seen, started);
                            let file = id_in(&serde_json::json!({"f": answer["items"][0]}), "f");
                            let now = Instant::now();
                            let mut seen = seen.lock().unwrap();
                            seen.settled.push((Kind::Activity, activity, now));
                            seen.files.push((file, activity, sum, now));
                            attached.push((file, activity));
                        }
                        _ => {
                            // Now and then a file goes: its blob may vanish under a backup.
                            if attached.len() < 12 {
                                continue;
                            }
                            let (file, activity) = attached.swap_remove(0);
                            seen.lock().unwrap().changed.insert(activity);
                            let params = [("sessionId", sid.as_str()), ("id", &file.to_string())];
                            ok(&client, &base, "post/activity/removeFile", &params).await;
                            timed(&seen, started);
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let backup_started = Instant::now();
    let out = run(args(&[
        &"backup",
        &"--to",
        &backup_dir,
        &"--data-dir",
        &data_dir,
    ]))
    .await;
    let backup_ended = Instant::now();
    assert!(out.status.success(), "backup failed: {}", stderr(&out));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // The server kept answering: the writers' latency while the backup ran, against before.
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    let during: Vec<Duration> = seen
        .requests
        .iter()
        .filter(|(at, took)| *at + *took >= backup_started && *at <= backup_ended)
        .map(|(_, took)| *took)
        .collect();
    let before: Vec<Duration> = seen
        .requests
        .iter()
        .filter(|(at, took)| *at + *took < backup_started)
        .map(|(_, took)| *took)
        .collect();
    let vanished = stderr(&out).matches("taking a new snapshot").count();
    eprintln!(
        "backup took {:.0} ms under {WRITERS} writers; p99 of the writers' requests during it: {:.1} ms ({} requests), before it: {:.1} ms ({} requests); files removed under it: {vanished}",
        (backup_ended - backup_started).as_secs_f64() * 1000.0,
        p99(during.clone()).as_secs_f64() * 1000.0,
        during.len(),
        p99(before.clone()).as_secs_f64() * 1000.0,
        before.len(),
    );
    assert!(
        !during.is_empty(),
        "the writers were answered during the backup"
    );

    // The backup: private, its manifest right, the database sound, every file row's bytes.
    assert_eq!(mode(&backup_dir), 0o700);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "vesper-backup");
    let entries = manifest["files"].as_array().unwrap();
    assert_eq!(entries[0]["path"], "vesper.sqlite3");
    for entry in entries {
        let path = backup_dir.join(entry["path"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            bytes.len() as u64,
            entry["size"].as_u64().unwrap(),
            "{entry}"
        );
        assert_eq!(sha256_hex(&bytes), entry["sha256"], "{entry}");
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let db = rusqlite::Connection::open_with_flags(
        backup_dir.join("vesper.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let rows: Vec<(i64, String, String)> = db
        .prepare("SELECT id, storage_key, sha256 FROM files")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, key, sum) in &rows {
        let bytes = std::fs::read(backup_dir.join("files").join(key))
            .unwrap_or_else(|e| panic!("file {id}: no blob {key} in the backup: {e}"));
        assert_eq!(&sha256_hex(&bytes), sum, "file {id}");
    }
    assert_eq!(
        entries.len(),
        rows.len() + 1,
        "the manifest lists the database and the file rows' blobs alone"
    );
    drop(db);

    // Every write answered before the backup started is in it.
    let in_backup = |table: &str| -> BTreeSet<i64> {
        let db = rusqlite::Connection::open_with_flags(
            backup_dir.join("vesper.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let ids = db
            .prepare(&format!("SELECT id FROM {table}"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ids
    };
    let (projects, tasks, activities, files) = (
        in_backup("projects"),
        in_backup("tasks"),
        in_backup("activities"),
        in_backup("files"),
    );
    let settled_before: Vec<(Kind, i64)> = seen
        .settled
        .iter()
        .filter(|(_, _, at)| *at < backup_started)
        .map(|(k, id, _)| (*k, *id))
        .collect();
    for (kind, id) in &settled_before {
        let present = match kind {
            Kind::Project => projects.contains(id),
            Kind::Task => tasks.contains(id),
            Kind::Activity => activities.contains(id),
        };
        assert!(
            present,
            "{kind:?} {id} was answered before the backup and is not in it"
        );
    }
    let files_before: BTreeMap<i64, (i64, String)> = seen
        .files
        .iter()
        .filter(|(_, activity, _, at)| *at < backup_started && !seen.changed.contains(activity))
        .map(|(file, activity, sum, _)| (*file, (*activity, sum.clone())))
        .collect();
    for file in files_before.keys() {
        assert!(
            files.contains(file),
            "file {file} was attached before the backup and is not in it"
        );
    }

    // Restored, a server answers as the original does (now that no one writes).
    let out = run(args(&[
        &"restore",
        &"--from",
        &backup_dir,
        &"--data-dir",
        &restored_dir,
    ]))
    .await;
    assert!(out.status.success(), "restore failed: {}", stderr(&out));
    assert_eq!(mode(&restored_dir), 0o700);
    assert_eq!(mode(&restored_dir.join("vesper.sqlite3")), 0o600);
    assert_eq!(mode(&restored_dir.join("files")), 0o700);
    let restored = Server::start(&restored_dir, &log).await;
    let rbase = restored.base();
    let rsid = sign_in(&client, &rbase).await;
    let compared: Vec<&(Kind, i64)> = settled_before
        .iter()
        .filter(|(kind, id)| !(*kind == Kind::Activity && seen.changed.contains(id)))
        .collect();
    for (kind, id) in &compared {
        let (service, _) = kind.get();
        let id = id.to_string();
        let original = ok(&client, &base, service, &[("sessionId", &sid), ("id", &id)]).await;
        let copy = ok(
            &client,
            &rbase,
            service,
            &[("sessionId", &rsid), ("id", &id)],
        )
        .await;
        assert_eq!(original, copy, "{kind:?} {id}");
    }
    // The task list of the project: what the backup has, the original has alike.
    let list = |base: String, sid: String| {
        let client = client.clone();
        let project = project.clone();
        async move {
            let mut items = BTreeMap::new();
            loop {
                let offset = items.len().to_string();
                let params = [
                    ("sessionId", sid.as_str()),
                    ("filter[projectId]", &project),
                    ("offset", &offset),
                    ("count", "1000"),
                ];
                let page = ok(&client, &base, "get/tasks/getList", &params).await;
                let got = page["items"].as_array().unwrap().clone();
                for item in &got {
                    items.insert(
                        item["id"].as_str().unwrap().parse::<i64>().unwrap(),
                        item.clone(),
                    );
                }
                if got.len() < 1000 {
                    return items;
                }
            }
        }
    };
    let original_tasks = list(base.clone(), sid.clone()).await;
    let restored_tasks = list(rbase.clone(), rsid.clone()).await;
    for (id, item) in &restored_tasks {
        if id.to_string() != task {
            assert_eq!(Some(item), original_tasks.get(id), "task {id} in the lists");
        }
    }
    // Files: listed alike, and their bytes come back whole.
    for (file, (activity, sum)) in &files_before {
        let params = [
            ("sessionId", sid.as_str()),
            ("filter[activityId]", &activity.to_string()),
        ];
        let original = ok(&client, &base, "get/activity/getFilesList", &params).await;
        let params = [
            ("sessionId", rsid.as_str()),
            ("filter[activityId]", &activity.to_string()),
        ];
        let copy = ok(&client, &rbase, "get/activity/getFilesList", &params).await;
        assert_eq!(original, copy, "files of activity {activity}");
        let bytes = client
            .get(format!("{rbase}/get/activity/downloadFile"))
            .query(&[("sessionId", rsid.as_str()), ("id", &file.to_string())])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            &sha256_hex(&bytes),
            sum,
            "file {file} downloaded from the restored server"
        );
    }
    let bytes: u64 = entries.iter().map(|e| e["size"].as_u64().unwrap()).sum();
    eprintln!(
        "{} objects and {} files answered before the backup compared alike; the backup holds {} files, {} bytes with the database",
        compared.len(),
        files_before.len(),
        rows.len(),
        bytes
    );
    assert!(!files_before.is_empty() && compared.len() > 50);
    drop(restored);
    drop(server);
}

/// A small SQLite server in this process with a project, a task, a message and two
/// files, backed up by the binary: (server, backup folder, the files' sums).
async fn small_backup(parent: &Path) -> (TestServer, PathBuf) {
    let s = TestServer::start_with(|c| {
        c.database_url = Some(format!(
            "sqlite://{}",
            c.data_dir.join("vesper.sqlite3").display()
        ));
    })
    .await;
    let sid = s.admin().await;
    let admin = s.as_caller(&sid);
    let (_, _, activity) = admin.project_task_activity().await;
    admin.attach(activity, "one.txt", b"the first file").await;
    admin.attach(activity, "two.bin", &[7u8; 5000]).await;
    let to = parent.join("backup");
    let out = run(args(&[
        &"backup",
        &"--to",
        &to,
        &"--data-dir",
        &s.dir.path(),
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    (s, to)
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(list) => list
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return vec!["<missing>".into()],
    };
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_used_target_a_damaged_backup_and_a_folder_without_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (s, backup) = small_backup(dir.path()).await;
    assert_eq!(
        entries(&backup),
        ["files", "manifest.json", "vesper.sqlite3"]
    );
    assert_eq!(entries(&backup.join("files")).len(), 2);

    // A backup goes into a new or empty folder only.
    let used = dir.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("keep.txt"), "mine").unwrap();
    let out = run(args(&[
        &"backup",
        &"--to",
        &used,
        &"--data-dir",
        &s.dir.path(),
    ]))
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert_eq!(entries(&used), ["keep.txt"]);

    // Into a new folder; then not again without --overwrite; then with it.
    let target = dir.path().join("target");
    let restore = |from: &Path, to: &Path, overwrite: bool| {
        let mut a = args(&[&"restore", &"--from", &from, &"--data-dir", &to]);
        if overwrite {
            a.push("--overwrite".into());
        }
        run(a)
    };
    let out = restore(&backup, &target, false).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&target), ["files", "vesper.sqlite3"]);
    assert_eq!(entries(&target.join("files")).len(), 2);
    let out = restore(&backup, &target, false).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    // A stale WAL of the database replaced must not survive it.
    std::fs::write(target.join("vesper.sqlite3-wal"), "stale").unwrap();
    std::fs::write(target.join("files").join("0123abcd"), "an old blob").unwrap();
    let out = restore(&backup, &target, true).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&target), ["files", "vesper.sqlite3"]);
    assert_eq!(
        entries(&target.join("files")),
        entries(&backup.join("files"))
    );

    // One byte changed in a blob, or in the database: refused, nothing written.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    for victim in [
        manifest["files"][1]["path"].as_str().unwrap(),
        "vesper.sqlite3",
    ] {
        let damaged = dir
            .path()
            .join(format!("damaged-{}", victim.replace('/', "-")));
        copy_dir(&backup, &damaged);
        let path = damaged.join(victim);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let fresh = dir.path().join("fresh");
        let out = restore(&damaged, &fresh, false).await;
        assert!(!out.status.success(), "a damaged {victim} was restored");
        assert!(
            stderr(&out).contains("does not match the manifest"),
            "{}",
            stderr(&out)
        );
        assert!(
            !fresh.exists(),
            "a refused restore wrote {}",
            fresh.display()
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let out = restore(&damaged, &empty, false).await;
        assert!(!out.status.success());
        assert!(entries(&empty).is_empty());
        // Nor does --overwrite let it touch a data folder.
        let before = std::fs::read(target.join("vesper.sqlite3")).unwrap();
        let out = restore(&damaged, &target, true).await;
        assert!(!out.status.success());
        assert_eq!(
            std::fs::read(target.join("vesper.sqlite3")).unwrap(),
            before
        );
        assert_eq!(entries(&target), ["files", "vesper.sqlite3"]);
    }

    // Without its manifest (a backup cut short) a folder is no backup.
    let cut = dir.path().join("cut");
    copy_dir(&backup, &cut);
    std::fs::remove_file(cut.join("manifest.json")).unwrap();
    let fresh = dir.path().join("fresh");
    let out = restore(&cut, &fresh, false).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no manifest.json"),
        "{}",
        stderr(&out)
    );
    assert!(!fresh.exists());

    // The restored folder serves the same files.
    let sid = s.admin().await;
    let listed = s.as_caller(&sid).files(&[]).await;
    s.stop().await;
    let copy = TestServer::start_with(|c| {
        c.data_dir = target.clone();
        c.database_url = Some(format!(
            "sqlite://{}",
            target.join("vesper.sqlite3").display()
        ));
    })
    .await;
    let sid = copy.admin().await;
    assert_eq!(copy.as_caller(&sid).files(&[]).await, listed);
    copy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_postgresql_with_a_pointer_to_the_deploy_guide() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("backup");
    for command in [
        args(&[
            &"backup",
            &"--to",
            &to,
            &"--data-dir",
            &dir.path(),
            &"--database-url",
            &"postgres://vesper@127.0.0.1:1/vesper",
        ]),
        args(&[
            &"restore",
            &"--from",
            &dir.path(),
            &"--data-dir",
            &to,
            &"--database-url",
            &"postgres://vesper@127.0.0.1:1/vesper",
        ]),
    ] {
        let out = run(command).await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("docs/deploy.md"), "{}", stderr(&out));
        assert!(!to.exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_deploy_guide_steps_restore_the_same_answers() {
    let Some(admin_url) = test_database_url() else {
        eprintln!("VESPER_TEST_DATABASE_URL is not set: the pg_dump steps are not run");
        return;
    };
    let s = TestServer::start().await;
    let source_url = s.database_url().expect("the server runs on PostgreSQL");
    let sid = s.admin().await;
    let admin = s.as_caller(&sid);
    let (project, task, activity) = admin.project_task_activity().await;
    let second = admin.task(project, &[("name", "Second")]).await;
    let file_a = admin.attach(activity, "a.txt", b"bytes of a").await;
    let file_b = admin.attach(activity, "b.bin", &[42u8; 70_000]).await;

    // The guide's steps, run as written by bash, into a new database and data folder.
    let dir = tempfile::tempdir().unwrap();
    let new_data = dir.path().join("new-data");
    let new_database = TestDatabase::for_data_dir(&admin_url, &new_data, true).await;
    let script = format!(
        "set -euo pipefail\n{}",
        sh_block(
            include_str!("../docs/deploy.md"),
            "# tested: tests/backup.rs"
        )
    );
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .env("VESPER_DATABASE_URL", &source_url)
        .env("VESPER_DATA_DIR", s.dir.path())
        .env("BACKUP", dir.path().join("backup"))
        .env("NEW_DATABASE_URL", new_database.url())
        .env("NEW_DATA_DIR", &new_data);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert_eq!(mode(&new_data), 0o700);

    // `vesper backup` itself refuses PostgreSQL and points at the guide.
    let out = run(args(&[
        &"backup",
        &"--to",
        &dir.path().join("nope"),
        &"--database-url",
        &source_url,
    ]))
    .await;
    assert!(!out.status.success() && stderr(&out).contains("docs/deploy.md"));

    let copy = TestServer::start_with(|c| {
        c.data_dir = new_data.clone();
        c.database_url = Some(new_database.url());
    })
    .await;
    let csid = copy.admin().await;
    let again = copy.as_caller(&csid);
    for (kind, id) in [
        (common::Kind::Project, project),
        (common::Kind::Task, task),
        (common::Kind::Task, second),
        (common::Kind::Activity, activity),
    ] {
        assert_eq!(
            again.get(kind, id).await,
            admin.get(kind, id).await,
            "{kind:?} {id}"
        );
    }
    assert_eq!(
        again.list(common::Kind::Task, &[]).await,
        admin.list(common::Kind::Task, &[]).await
    );
    assert_eq!(again.files(&[]).await, admin.files(&[]).await);
    for (file, expected) in [
        (file_a, b"bytes of a".to_vec()),
        (file_b, vec![42u8; 70_000]),
    ] {
        let got = copy
            .client
            .get(copy.api("activity/downloadFile"))
            .query(&[("sessionId", csid.as_str()), ("id", &file.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().to_vec(), expected, "file {file}");
    }
    copy.stop().await;
    s.stop().await;
    drop(new_database);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_a_shared_folder_are_backed_up_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let files_url = format!("file://{}", shared.display());
    let url = files_url.clone();
    let s = TestServer::start_with(|c| {
        c.database_url = Some(format!(
            "sqlite://{}",
            c.data_dir.join("vesper.sqlite3").display()
        ));
        c.files_url = Some(url);
    })
    .await;
    let sid = s.admin().await;
    let admin = s.as_caller(&sid);
    let (_, _, activity) = admin.project_task_activity().await;
    let file = admin
        .attach(activity, "shared.txt", b"on the shared folder")
        .await;
    let to = dir.path().join("backup");
    let out = run(args(&[
        &"backup",
        &"--to",
        &to,
        &"--data-dir",
        &s.dir.path(),
        &"--files-url",
        &files_url,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&to.join("files")).len(), 1);
    let listed = admin.files(&[]).await;
    s.stop().await;

    // Restored, the blobs are in the data folder's files/.
    let target = dir.path().join("restored");
    let out = run(args(&[&"restore", &"--from", &to, &"--data-dir", &target])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = TestServer::start_with(|c| {
        c.data_dir = target.clone();
        c.database_url = Some(format!(
            "sqlite://{}",
            target.join("vesper.sqlite3").display()
        ));
    })
    .await;
    let sid = copy.admin().await;
    assert_eq!(copy.as_caller(&sid).files(&[]).await, listed);
    let got = copy
        .client
        .get(copy.api("activity/downloadFile"))
        .query(&[("sessionId", sid.as_str()), ("id", &file.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"on the shared folder");
    copy.stop().await;
}
