//! Storage under attack (issue 10): a getAll whose client stops reading holds no database
//! snapshot, so the SQLite WAL can still be checkpointed and PostgreSQL keeps no old
//! snapshot; and the data folder is private to the server's account whatever the umask,
//! including folders left by earlier versions.
mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;

/// Projects seeded for the stalled getAll: several pages, and far more bytes than the
/// socket buffers between server and client hold, so the server is really left waiting.
const SEEDED: usize = 450;
/// A description of 90,000 characters: 450 of them make a 40 MB answer.
const LONG: usize = 90_000;
/// Writes made while the reader is stalled, each rewriting a long description: about
/// 90 MB of WAL frames if nothing can be checkpointed meanwhile.
const UPDATES: usize = 1000;

/// The tests of this file one at a time: the stalled reader's load (40 MB seeded, 90 MB
/// rewritten) would slow the other tests' servers, which have a few seconds to start.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn text(len: usize, seed: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|i| letters[(i * 7 + seed) % letters.len()] as char)
        .collect()
}

async fn add_project(s: &TestServer, sid: &str, i: usize) -> i64 {
    let name = format!("Seeded {i}");
    let description = text(LONG, i);
    s.as_caller(sid)
        .add(
            Kind::Project,
            &[("name", &name), ("description", &description)],
        )
        .await
}

/// Rewrites project descriptions `UPDATES` times, eight at a time.
async fn write_load(s: &TestServer, sid: &str, ids: &[i64]) {
    futures_util::stream::iter(0..UPDATES)
        .map(|i| async move {
            let description = text(LONG, i + 1);
            s.as_caller(sid)
                .update(
                    Kind::Project,
                    ids[i % ids.len()],
                    &[("description", &description)],
                )
                .await;
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

/// Stalled getAll readers opened to measure what each costs the server.
const MORE_READERS: usize = 50;

/// A getAll whose client reads the head of the answer and then nothing more.
async fn stalled_get_all(s: &TestServer, sid: &str) -> reqwest::Response {
    stalled_get_all_by(&s.client, s, sid).await
}

async fn stalled_get_all_by(
    client: &reqwest::Client,
    s: &TestServer,
    sid: &str,
) -> reqwest::Response {
    let mut r = client
        .get(s.api("projects/getAll"))
        .query(&[("sessionId", sid), ("retType", "json")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().expect("the head of the answer");
    assert!(first.starts_with(b"{\"status\":\"ok\""), "{first:?}");
    r
}

/// This process's resident memory (the server runs in it), in bytes.
fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// The name of the PostgreSQL database in a URL.
fn database_name(url: &str) -> String {
    let path = url.rsplit('/').next().unwrap();
    path.split('?').next().unwrap().to_owned()
}

/// PostgreSQL: the backends of `database` that hold a snapshot (a transaction open, or
/// an xmin that keeps old row versions from being vacuumed).
async fn backends_holding_snapshots(admin_url: &str, database: &str) -> i64 {
    let client = pg_client(admin_url).await;
    client
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 \
             AND pid <> pg_backend_pid() \
             AND (state LIKE 'idle in transaction%' OR backend_xmin IS NOT NULL)",
            &[&database],
        )
        .await
        .unwrap()
        .get(0)
}

/// PostgreSQL: how many backends of the server's database hold a snapshot, sampled until
/// none does or five seconds have passed. Other backends may be caught mid-statement: a
/// clear sample is what counts.
async fn backends_still_holding_snapshots(s: &TestServer) -> i64 {
    let admin_url = test_database_url().unwrap();
    let database = database_name(&s.database_url().unwrap());
    let mut holding = -1;
    for _ in 0..50 {
        holding = backends_holding_snapshots(&admin_url, &database).await;
        if holding == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    holding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_get_all_holds_no_database_snapshot() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let ids: Vec<i64> = futures_util::stream::iter(0..SEEDED)
        .map(|i| {
            let (s, sid) = (&s, &sid);
            async move { add_project(s, sid, i).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let db = s.dir.path().join("vesper.sqlite3");
    let wal = s.dir.path().join("vesper.sqlite3-wal");
    let sqlite = s.database_url().is_none();
    if sqlite {
        // The seeding's frames out of the way: what the WAL holds from here is the load's.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "the WAL could not be reset before the stall");
    }

    let stalled = stalled_get_all(&s, &sid).await;
    // Let the server fill every buffer up to the stalled client.
    tokio::time::sleep(Duration::from_millis(500)).await;
    write_load(&s, &sid, &ids).await;
    // The writer checkpoints after 200 ms without writes.
    tokio::time::sleep(Duration::from_millis(600)).await;

    if sqlite {
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(
            size < 64 * 1024 * 1024,
            "the WAL grew to {} MiB behind a stalled reader",
            size / (1024 * 1024)
        );
        // A full checkpoint waits for every reader of an older snapshot: it completes
        // only if the stalled answer holds none.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "a stalled reader blocks the checkpoint");
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    } else {
        let holding = backends_still_holding_snapshots(&s).await;
        assert_eq!(holding, 0, "a stalled reader holds a PostgreSQL snapshot");
    }

    // Each stalled answer costs the server at most a page and its connection's write
    // buffers (under 1 MiB with these 90 KB projects), not a database connection, a
    // thread and a queue of rows (about 8 MiB each before). One connection each, as
    // separate clients would have.
    let http1 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .build()
        .unwrap();
    let before = resident_bytes();
    let mut more = Vec::new();
    for _ in 0..MORE_READERS {
        more.push(stalled_get_all_by(&http1, &s, &sid).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = resident_bytes().saturating_sub(before);
    eprintln!(
        "{MORE_READERS} stalled getAll readers: resident memory grew by {} KiB each",
        grown / MORE_READERS / 1024
    );
    assert!(
        grown < MORE_READERS * 2 * 1024 * 1024,
        "{MORE_READERS} stalled readers took {} MiB",
        grown / (1024 * 1024)
    );
    drop(more);
    drop(stalled);

    // Read whole, the paged answer is every project once, by id, and its total.
    let r = s.call_json("projects/getAll", &[("sessionId", &sid)]).await;
    r.assert_ok();
    let j = r.json();
    let got: Vec<i64> = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let mut expected = ids.clone();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(j["total"].as_i64(), Some(SEEDED as i64));
    assert_eq!(j["count"].as_i64(), Some(SEEDED as i64));
}

// ---- the data folder's modes -------------------------------------------------------------

/// Every folder and file under `dir` (and `dir` itself) with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(
        dir.to_path_buf(),
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777,
    )];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(modes(&entry.path()));
        } else {
            out.push((entry.path(), meta.permissions().mode() & 0o7777));
        }
    }
    out
}

/// Asserts that every folder under `dir` is 0700 and every file 0600; answers how many
/// files there are.
fn assert_private(dir: &Path) -> usize {
    let all = modes(dir);
    for (path, mode) in &all {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            *mode,
            expected,
            "{} is {mode:o}, not {expected:o}",
            path.display()
        );
    }
    all.iter().filter(|(p, _)| p.is_file()).count()
}

/// The names of the files under `dir`, relative to it.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = modes(dir)
        .into_iter()
        .filter(|(p, _)| p.is_file())
        .map(|(p, _)| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

/// The usual umask of a shared machine: what it lets through is group- and
/// world-readable.
fn loose_umask() {
    // SAFETY: umask only changes the process's file creation mask.
    unsafe {
        libc::umask(0o022);
    }
}

/// Fills the data folder `data` of `s` with everything the server writes there: the
/// database with its WAL and shared memory (on SQLite), the self-signed certificate and
/// key, an attached file and a notification mail.
async fn use_every_store(s: &TestServer, data: &Path) {
    let sid = s.admin().await;
    let (member, _) = s.user("member@example.com", 100, false).await;
    let member = member.to_string();
    let r = s
        .call_json(
            "projects/add",
            &[
                ("sessionId", &sid),
                ("project[name]", "Private"),
                ("project[team][0]", &member),
                ("project[notifyProjectTeam]", "1"),
            ],
        )
        .await;
    r.assert_ok();
    let project = r.json()["project"]["id"].as_str().unwrap().to_owned();
    let r = s
        .call_json(
            "activity/add",
            &[
                ("sessionId", &sid),
                ("activity[projectId]", &project),
                ("activity[type]", "msg"),
                ("activity[text]", "See the file"),
            ],
        )
        .await;
    r.assert_ok();
    let activity = r.json()["activity"]["id"].as_str().unwrap().to_owned();
    let part = reqwest::multipart::Part::bytes(b"secret plans".to_vec())
        .file_name("plans.txt")
        .mime_str("text/plain")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.clone())
        .text("activityId", activity)
        .text("retType", "json")
        .part("files[1]", part);
    let r = read(
        s.client
            .post(s.api("activity/attachFiles"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_ok();
    // The notification lands in mail/ once the worker has run.
    for _ in 0..100 {
        if file_names(data).iter().any(|n| n.starts_with("mail/")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no notification mail in {}", data.display());
}

/// A server on the data folder `dir`, which the server creates (on SQLite).
async fn start_on_data(dir: &Path) -> TestServer {
    if test_database_url().is_some() && !dir.exists() {
        // The harness drops a PostgreSQL database that follows a data folder once the
        // folder is gone, so it must exist first: made as `mkdir` makes it under umask 022.
        std::fs::create_dir(dir).unwrap();
        assert_eq!(
            std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }
    let data = dir.to_path_buf();
    TestServer::start_with(move |c| c.data_dir = data).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_is_private_whatever_the_umask() {
    let _alone = ONE_AT_A_TIME.lock().await;
    loose_umask();
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let s = start_on_data(&data).await;
    use_every_store(&s, &data).await;
    let names = file_names(&data);
    let mut expected = vec!["tls/cert.pem", "tls/key.pem"];
    if s.database_url().is_none() {
        expected.extend(["vesper.sqlite3", "vesper.sqlite3-wal", "vesper.sqlite3-shm"]);
    }
    for expected in expected {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected}: {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("files/")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("mail/")), "{names:?}");
    assert_private(&data);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_left_open_by_an_earlier_version_is_made_private_at_start() {
    let _alone = ONE_AT_A_TIME.lock().await;
    loose_umask();
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let s = start_on_data(&data).await;
    use_every_store(&s, &data).await;
    s.stop().await;
    // As earlier versions left it: folders 0755, files 0644.
    for (path, _) in modes(&data) {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let s = start_on_data(&data).await;
    let files = assert_private(&data);
    assert!(files >= 4, "{:?}", file_names(&data));
    s.stop().await;
}

/// Lists of the project's tasks, `n` at once, each answering its total.
async fn list_totals(s: &TestServer, sid: &str, project: &str, n: usize) -> Vec<i64> {
    let caller = s.as_caller(sid);
    let args = [("filter[projectId]", project), ("count", "2")];
    let lists = (0..n).map(|_| caller.list(Kind::Task, &args));
    futures_util::future::join_all(lists)
        .await
        .into_iter()
        .map(|l| l.total)
        .collect()
}

/// A list of several reads (a user's: the project's facts, then the page) reads in a
/// snapshot whose BEGIN and COMMIT (on PostgreSQL) travel with its statements, the COMMIT
/// answered by no one. Neither a list answered nor one whose client went away mid-read may
/// leave its connection inside that snapshot: the next request on it would read the past.
/// Every list after a write sees it, on every pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_list_after_a_write_sees_it_even_after_lists_cut_short() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start().await;
    let admin = s.as_caller(&s.admin().await);
    let (member, sid) = s.user("member@example.com", 100, false).await;
    let project = admin
        .project(&[("team[]", member.to_string().as_str())])
        .await;
    for _ in 0..3 {
        admin.task(project, &[]).await;
    }
    let project = project.to_string();
    // More lists at once than the pool has connections, so that each is used.
    const AT_ONCE: usize = 48;
    assert_eq!(list_totals(&s, &sid, &project, AT_ONCE).await, [3; AT_ONCE]);

    // Clients that give up at once, mid-read or before.
    let impatient = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_millis(2))
        .build()
        .unwrap();
    let url = s.api("tasks/getList");
    for _ in 0..5 {
        let cut = (0..AT_ONCE).map(|_| {
            impatient
                .get(&url)
                .query(&[("sessionId", sid.as_str()), ("filter[projectId]", &project)])
                .send()
        });
        futures_util::future::join_all(cut).await;
    }

    admin.task(project.parse().unwrap(), &[]).await;
    assert_eq!(list_totals(&s, &sid, &project, AT_ONCE).await, [4; AT_ONCE]);

    if s.database_url().is_some() {
        let holding = backends_still_holding_snapshots(&s).await;
        assert_eq!(holding, 0, "a list left its snapshot open");
    }
}
