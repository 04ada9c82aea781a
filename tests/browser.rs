//! The web page in a real browser: Debian's chromium, driven by playwright-core from
//! `tests/browser/web.test.mjs`, against a real test server (SQLite, or PostgreSQL when
//! `VESPER_TEST_DATABASE_URL` is set).
//!
//! This test makes the people and the data through the API, writes them to a JSON file
//! (the fixture), runs `node tests/browser/web.test.mjs` with `VESPER_BROWSER_FIXTURE`
//! naming it, and passes when node exits 0. Screenshots go to `<target>/browser-screenshots`.
//!
//! It needs `node` and `/usr/bin/chromium` (or `VESPER_CHROMIUM`): CI's `.ci/run` installs
//! chromium and runs `npm ci` in `tests/browser`; the test runs `npm ci` itself when
//! `tests/browser/node_modules` is missing. Without them it fails and says so: it is
//! never skipped.
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The longest the whole browser run may take (each step has its own, shorter, limit).
const NODE_DEADLINE: Duration = Duration::from_secs(15 * 60);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `<target>/browser-screenshots`, beside the target's `tmp` folder.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .join("browser-screenshots")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("VESPER_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails, with what to do, unless node, chromium and playwright-core are there; runs
/// `npm ci` when the node modules are missing.
fn check_prerequisites() {
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "the browser tests need Node.js (`node` on PATH, version 18 or later); \
             CI's .ci/run expects it on the machine"
        ),
    }
    let chromium = chromium_path();
    assert!(
        chromium.exists(),
        "the browser tests need chromium at {} (`apt-get install chromium`, as .ci/run does, \
         or set VESPER_CHROMIUM to another chromium)",
        chromium.display()
    );
    let dir = browser_dir();
    if !dir.join("node_modules/playwright-core").exists() {
        eprintln!("tests/browser/node_modules is missing: running npm ci");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("could not run npm ci in {}: {e}", dir.display()));
        assert!(
            status.success(),
            "npm ci in {} failed ({status}): the browser tests need playwright-core",
            dir.display()
        );
    }
}

/// Adds a user with a name through the API; answers its id.
async fn add_user(
    s: &TestServer,
    admin: &str,
    email: &str,
    (first, last): (&str, &str),
    level: i64,
    can_view_profiles: bool,
) -> i64 {
    let level = level.to_string();
    s.as_caller(admin)
        .add(
            Kind::User,
            &[
                ("email", email),
                ("firstName", first),
                ("lastName", last),
                ("password", &password_for(email)),
                ("securityLevel", &level),
                ("canViewProfiles", if can_view_profiles { "1" } else { "0" }),
            ],
        )
        .await
}

fn person(id: i64, login: &str, password: &str, name: &str, role: &str) -> Value {
    json!({ "id": id, "login": login, "password": password, "name": name, "role": role })
}

/// Runs node on the script with the fixture; answers its exit status and its output.
fn run_node(fixture: &Path, log: &Path) -> (Option<i32>, String) {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new("node")
        .arg("web.test.mjs")
        .current_dir(browser_dir())
        .env("VESPER_BROWSER_FIXTURE", fixture)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start node: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > NODE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_pages_work_in_a_real_browser() {
    check_prerequisites();
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let admin_id = id_of(&admin.user_by_email(ADMIN_EMAIL).await);

    // The people: one of each role, and a second client.
    let user = ("uma@example.com", ("Uma", "User"));
    let external = ("ezra@example.com", ("Ezra", "External"));
    let client = ("cleo@example.com", ("Cleo", "Client"));
    let client2 = ("carl@example.com", ("Carl", "Client"));
    let user_id = add_user(&s, &admin_sid, user.0, user.1, 100, true).await;
    let external_id = add_user(&s, &admin_sid, external.0, external.1, 150, false).await;
    let client_id = add_user(&s, &admin_sid, client.0, client.1, 200, false).await;
    let client2_id = add_user(&s, &admin_sid, client2.0, client2.1, 200, false).await;

    // The client's project, whose team holds the user, the external and the client, with a
    // task carrying one activity shown to clients and one hidden from them.
    let team = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let site_name = "Cleo's site";
    let site = admin
        .project(&[
            ("name", site_name),
            ("team", &team(&[user_id, external_id, client_id])),
        ])
        .await;
    let site_task_name = "Write the copy";
    let site_task = admin
        .task(
            site,
            &[
                ("name", site_task_name),
                ("team", &team(&[user_id, external_id])),
            ],
        )
        .await;
    let shown_text = "The draft is ready for review";
    let shown = admin
        .activity(&[("taskId", &site_task.to_string()), ("text", shown_text)])
        .await;
    let hidden_text = "Internal only: the margin on this job";
    let hidden = admin
        .activity(&[
            ("taskId", &site_task.to_string()),
            ("text", hidden_text),
            ("hideFromClients", "1"),
        ])
        .await;

    let shown_file = s
        .as_caller(&admin_sid)
        .attach(shown, "brief.txt", b"the brief\n")
        .await;
    let hidden_file = s
        .as_caller(&admin_sid)
        .attach(hidden, "margins.txt", b"the margins\n")
        .await;

    // The second client's project: the first client is not in its team.
    let shop_name = "Carl's shop";
    let shop = admin
        .project(&[("name", shop_name), ("team", &team(&[client2_id, user_id]))])
        .await;
    let shop_task = admin.task(shop, &[("name", "Stock the shelves")]).await;
    let shop_note = admin
        .activity(&[("taskId", &shop_task.to_string()), ("text", "Shelf plan")])
        .await;
    let shop_file = s
        .as_caller(&admin_sid)
        .attach(shop_note, "shelves.txt", b"the shelves\n")
        .await;

    // A project whose team does not hold the external user.
    let internal_name = "Internal tooling";
    let internal = admin
        .project(&[("name", internal_name), ("team", &team(&[user_id]))])
        .await;
    let internal_task = admin.task(internal, &[("name", "Upgrade the CI")]).await;

    // A group, for the groups page.
    let group = admin.group("Websites").await;

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let fixture = json!({
        "baseUrl": s.https(""),
        "chromium": chromium_path(),
        "screenshotDir": shots,
        "backend": if test_database_url().is_some() { "postgresql" } else { "sqlite" },
        "users": {
            "admin": person(admin_id, ADMIN_EMAIL, ADMIN_PASSWORD, "admin", "admin"),
            "user": person(user_id, user.0, &password_for(user.0), "Uma User", "user"),
            "external": person(external_id, external.0, &password_for(external.0), "Ezra External", "external"),
            "client": person(client_id, client.0, &password_for(client.0), "Cleo Client", "client"),
            "client2": person(client2_id, client2.0, &password_for(client2.0), "Carl Client", "client"),
        },
        "projects": {
            "clientSite": {
                "id": site, "name": site_name,
                "task": { "id": site_task, "name": site_task_name },
                "shownActivity": { "id": shown, "text": shown_text, "file": { "id": shown_file, "name": "brief.txt" } },
                "hiddenActivity": { "id": hidden, "text": hidden_text, "file": { "id": hidden_file, "name": "margins.txt" } },
            },
            "otherClient": {
                "id": shop, "name": shop_name, "task": { "id": shop_task },
                "file": { "id": shop_file, "name": "shelves.txt" },
            },
            "internal": { "id": internal, "name": internal_name, "task": { "id": internal_task } },
        },
        "groups": { "websites": { "id": group, "name": "Websites" } },
    });
    let fixture_path = s.dir.path().join("browser-fixture.json");
    std::fs::write(&fixture_path, serde_json::to_vec_pretty(&fixture).unwrap()).unwrap();

    let log = s.dir.path().join("browser.log");
    let (status, output) = tokio::task::spawn_blocking(move || run_node(&fixture_path, &log))
        .await
        .unwrap();
    println!("{output}");
    match status {
        Some(0) => {}
        Some(code) => panic!(
            "the browser tests failed (node exited {code}; its output is above): {}; \
             screenshots in {}",
            output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output"),
            shots.display()
        ),
        None => panic!(
            "the browser tests did not finish within {NODE_DEADLINE:?} (or node was killed):\n{output}"
        ),
    }
    s.stop().await;
}
