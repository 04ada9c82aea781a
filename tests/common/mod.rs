//! The end-to-end harness: the real server on a free port over HTTPS, with a temporary
//! data folder, driven by an HTTP client.
//!
//! With `VESPER_TEST_DATABASE_URL` set (a PostgreSQL URL the tests may create databases
//! through, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), each server runs on a
//! fresh PostgreSQL database of its own, dropped afterwards; otherwise on SQLite in its
//! data folder.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use vesper::config::Config;

mod client;
#[allow(unused_imports)]
pub use client::*;
mod web;
#[allow(unused_imports)]
pub use web::*;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: Arc<tempfile::TempDir>,
    /// The host name requests name (resolved to `addr`); none: the address itself.
    pub host: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Declared last: dropped after the server has been told to stop.
    database: Option<Arc<TestDatabase>>,
}

/// One answer: status, headers and body text.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` has changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            admin_email: ADMIN_EMAIL.into(),
            admin_password: Some(ADMIN_PASSWORD.into()),
            ..Config::default()
        };
        adjust(&mut config);
        let database = match test_database_url() {
            Some(admin_url) if config.database_url.is_none() => {
                let own_dir = config.data_dir == dir.path();
                let db = TestDatabase::for_data_dir(&admin_url, &config.data_dir, own_dir).await;
                config.database_url = Some(db.url());
                Some(db)
            }
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(vesper::launch(config, listener, async {
            let _ = stopped.await;
        }));
        let server = TestServer {
            addr,
            client: client(),
            dir: Arc::new(dir),
            host: None,
            stop: Some(stop),
            task: Some(task),
            database: database.map(Arc::new),
        };
        // Ready when the trivial endpoint answers.
        for _ in 0..200 {
            if let Ok(r) = server.client.get(server.https("/health")).send().await {
                if r.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server did not start");
    }

    /// The same server reached as `host` (resolved to its address, as a wildcard DNS
    /// entry would): with a base domain, `NAME.<base domain>` is workspace NAME. The view
    /// shares the server, its folder and database; dropping it stops nothing.
    pub fn at_host(&self, host: &str) -> TestServer {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve(host, self.addr)
            .build()
            .unwrap();
        TestServer {
            addr: self.addr,
            client,
            dir: self.dir.clone(),
            host: Some(host.to_owned()),
            stop: None,
            task: None,
            database: self.database.clone(),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// The PostgreSQL database this server runs on, when the suites run on PostgreSQL:
    /// a second node started with it shares everything with this one.
    pub fn database_url(&self) -> Option<String> {
        self.database.as_deref().map(TestDatabase::url)
    }

    /// A second node on this one's PostgreSQL database.
    pub async fn another_node(&self) -> TestServer {
        let url = self
            .database_url()
            .expect("several nodes run on PostgreSQL");
        TestServer::start_with(move |c| c.database_url = Some(url)).await
    }

    pub fn https(&self, path: &str) -> String {
        match &self.host {
            Some(host) => format!("https://{host}:{}{path}", self.addr.port()),
            None => format!("https://{}{path}", self.addr),
        }
    }

    /// The URL of a call, e.g. `users/add`.
    pub fn api(&self, call: &str) -> String {
        let prefix = if is_write(call) { "post" } else { "get" };
        self.https(&format!("/api/v2/service/{prefix}/{call}"))
    }

    /// POSTs a form-encoded call; the answer in XML.
    pub async fn call(&self, call: &str, params: &[(&str, &str)]) -> Resp {
        read(
            self.client
                .post(self.api(call))
                .form(params)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POSTs a form-encoded call with `retType=json`.
    pub async fn call_json(&self, call: &str, params: &[(&str, &str)]) -> Resp {
        let mut all = params.to_vec();
        all.push(("retType", "json"));
        self.call(call, &all).await
    }

    /// GETs a call with the parameters in the query string.
    pub async fn get(&self, call: &str, params: &[(&str, &str)]) -> Resp {
        read(
            self.client
                .get(self.api(call))
                .query(params)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn sign_in(&self, login: &str, password: &str) -> String {
        let r = self
            .call_json(
                "authentication/signIn",
                &[("login", login), ("password", password)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["sessionId"].as_str().unwrap().to_owned()
    }

    pub async fn admin(&self) -> String {
        self.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a user as the admin, signs them in, and returns (id, session id).
    /// The password is `password_for(email)`.
    pub async fn user(&self, email: &str, level: i64, can_view_profiles: bool) -> (i64, String) {
        let admin = self.admin().await;
        let level = level.to_string();
        let password = password_for(email);
        let r = self
            .call_json(
                "users/add",
                &[
                    ("sessionId", &admin),
                    ("user[email]", email),
                    ("user[password]", &password),
                    ("user[securityLevel]", &level),
                    (
                        "user[canViewProfiles]",
                        if can_view_profiles { "1" } else { "0" },
                    ),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.json()["user"]["id"].as_str().unwrap().parse().unwrap();
        (id, self.sign_in(email, &password).await)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---- PostgreSQL test databases -----------------------------------------------------------

/// The PostgreSQL URL to create test databases through, when the suites run on PostgreSQL.
pub fn test_database_url() -> Option<String> {
    std::env::var("VESPER_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// A database made for one test server, dropped (WITH (FORCE)) with it.
///
/// A test that restarts a server on a data folder of its own gets the same database back,
/// as the data folder keeps its SQLite file; that database is dropped once the folder is
/// gone. Databases left by test processes that died are dropped at the next run.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// Dropped with the server (false: it follows a caller's data folder).
    owned: bool,
}

/// Databases that follow a caller's data folder, by folder.
static FOLLOWING: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
static LEFTOVERS_SWEPT: std::sync::Once = std::sync::Once::new();

impl TestDatabase {
    pub async fn for_data_dir(admin_url: &str, data_dir: &Path, own_dir: bool) -> TestDatabase {
        let admin_url = admin_url.to_owned();
        if !own_dir {
            let following = FOLLOWING.lock().unwrap();
            if let Some((_, name)) = following.iter().find(|(d, _)| d == data_dir) {
                return TestDatabase {
                    admin_url,
                    name: name.clone(),
                    owned: false,
                };
            }
        }
        if !LEFTOVERS_SWEPT.is_completed() {
            let url = admin_url.clone();
            run_blocking(move || sweep_leftovers(&url));
            LEFTOVERS_SWEPT.call_once(|| {});
        }
        let name = format!(
            "vesper_test_{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let client = pg_client(&admin_url).await;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        if !own_dir {
            FOLLOWING
                .lock()
                .unwrap()
                .push((data_dir.to_path_buf(), name.clone()));
            // Dropped once the caller's data folder is gone (the test's end).
            let (url, db, dir) = (admin_url.clone(), name.clone(), data_dir.to_path_buf());
            std::thread::spawn(move || {
                while dir.exists() {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                drop_database(&url, &db);
                FOLLOWING.lock().unwrap().retain(|(d, _)| *d != dir);
            });
        }
        TestDatabase {
            admin_url,
            name,
            owned: own_dir,
        }
    }

    /// The URL of this database: the admin URL with its database name replaced.
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.owned {
            let (url, name) = (self.admin_url.clone(), self.name.clone());
            run_blocking(move || drop_database(&url, &name));
        }
    }
}

/// Replaces the database name of a `postgres://user@host:port/name?options` URL.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A connection to a PostgreSQL database (a test server's `database_url()`), to look at
/// or change what it stores behind the server's back.
pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to VESPER_TEST_DATABASE_URL: {e}"));
    tokio::spawn(connection);
    client
}

/// Runs `f` on a thread of its own with a small runtime of its own: callable from `Drop`
/// and from inside another runtime alike.
fn run_blocking(f: impl FnOnce() + Send + 'static) {
    let _ = std::thread::spawn(f).join();
}

fn on_own_runtime<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn drop_database(admin_url: &str, name: &str) {
    on_own_runtime(async {
        let client = pg_client(admin_url).await;
        if let Err(e) = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
        {
            eprintln!("could not drop the test database {name}: {e}");
        }
    });
}

/// Drops test databases whose test process is gone (a run that was killed).
fn sweep_leftovers(admin_url: &str) {
    on_own_runtime(async {
        let client = pg_client(admin_url).await;
        let Ok(rows) = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'vesper\\_test\\_%'",
                &[],
            )
            .await
        else {
            return;
        };
        for row in rows {
            let name: String = row.get(0);
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        }
    });
}

/// The clock in whole seconds, as the server stores dates.
/// A port nothing listens on now, for a server started as its own process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `vesper` binary, with none of the caller's `VESPER_` settings.
pub fn vesper_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vesper"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VESPER_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The fenced `sh` block of a document (`include_str!`) that holds `marker`: the
/// examples a test runs as they are written, so that they cannot rot.
pub fn sh_block(doc: &str, marker: &str) -> String {
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("no block marked {marker}"));
    let start = doc[..at].rfind("```sh\n").expect("the block's opening") + "```sh\n".len();
    let end = at + doc[at..].find("```").expect("the block's end");
    doc[start..end].to_owned()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn password_for(email: &str) -> String {
    format!("pw-{email}")
}

/// Whether the endpoint table lists `call` (`service/method`) as a write.
fn is_write(call: &str) -> bool {
    let (service, method) = call.split_once('/').unwrap_or((call, ""));
    vesper::api::endpoints::Endpoint::find(service, method).is_some_and(|e| e.is_write())
}

pub async fn read(r: reqwest::Response) -> Resp {
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The answer parsed as XML (which also checks it is well-formed).
    pub fn xml(&self) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(&self.body)
            .unwrap_or_else(|e| panic!("not XML ({e}): {}", self.body))
    }

    /// The text of the first element with this tag name.
    pub fn xml_text(&self, tag: &str) -> Option<String> {
        let doc = self.xml();
        let node = doc.descendants().find(|n| n.has_tag_name(tag))?;
        Some(node.text().unwrap_or("").to_owned())
    }

    /// Asserts a successful envelope, in whichever format came back.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.status, 200, "{}", self.body);
        if self.body.starts_with('{') {
            assert_eq!(self.json()["status"], "ok", "{}", self.body);
        } else {
            let doc = self.xml();
            assert_eq!(
                doc.root_element().attribute("status"),
                Some("ok"),
                "{}",
                self.body
            );
        }
        self
    }

    /// Asserts a fail envelope with this status and code, in whichever format came back.
    pub fn assert_fail(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "{}", self.body);
        if self.body.starts_with('{') {
            let j = self.json();
            assert_eq!(j["status"], "fail", "{}", self.body);
            assert_eq!(j["code"], code, "{}", self.body);
        } else {
            let doc = self.xml();
            let root = doc.root_element();
            assert_eq!(root.attribute("status"), Some("fail"), "{}", self.body);
            let error = root
                .children()
                .find(|n| n.has_tag_name("error"))
                .expect("an error element");
            assert_eq!(error.attribute("code"), Some(code), "{}", self.body);
        }
        self
    }

    /// The field names of a 422 answer.
    pub fn error_fields(&self) -> Vec<String> {
        if self.body.starts_with('{') {
            self.json()["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| e["field"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            let doc = self.xml();
            doc.descendants()
                .filter(|n| {
                    n.has_tag_name("error") && n.parent().is_some_and(|p| p.has_tag_name("errors"))
                })
                .map(|n| n.attribute("field").unwrap().to_owned())
                .collect()
        }
    }
}
