//! The `vesper` binary as users run it: first start, `vesper user create`, SIGTERM, and
//! what reaches its log.
mod common;
use common::*;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    port: u16,
    // Output goes to files: a full pipe would block the server's logging.
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
}

fn serve(data_dir: &std::path::Path, envs: &[(&str, &str)]) -> Running {
    serve_with(data_dir, &[], envs)
}

/// `vesper serve` with more arguments.
fn serve_with(data_dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Running {
    let port = free_port();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let child = vesper_command()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    Running {
        child,
        port,
        out,
        err,
    }
}

impl Running {
    fn url(&self, call: &str) -> String {
        format!("https://127.0.0.1:{}/api/v2/service/{call}", self.port)
    }

    async fn wait_ready(&self) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client
                .get(format!("https://127.0.0.1:{}/health", self.port))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("vesper did not start");
    }

    /// Sends SIGTERM and returns (exit success, stdout, stderr).
    fn terminate(mut self) -> (bool, String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "vesper did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = std::fs::read_to_string(self.out.path()).unwrap();
        let err = std::fs::read_to_string(self.err.path()).unwrap();
        (exit.success(), out, err)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_holds_no_password_no_session_id_and_no_api_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "very-secret-admin-pw";
    let running = serve(
        dir.path(),
        &[("VESPER_ADMIN_PASSWORD", secret), ("VESPER_LOG", "trace")],
    );
    running.wait_ready().await;
    let c = client();
    // Sign in with the password in the query string, then use the session every way.
    let r = c
        .get(running.url("get/authentication/signIn"))
        .query(&[
            ("login", ADMIN_EMAIL),
            ("password", secret),
            ("retType", "json"),
        ])
        .send()
        .await
        .unwrap();
    let sid = r.json::<serde_json::Value>().await.unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = running.url("get/authentication/getAuthorizedUser");
    assert_eq!(
        c.get(&url)
            .query(&[("sessionId", &sid)])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(&url)
            .header("X-Session-Id", &sid)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(&url).bearer_auth(&sid).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(&url)
            .basic_auth(ADMIN_EMAIL, Some(secret))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.post(&url)
            .form(&[("login", ADMIN_EMAIL), ("password", secret)])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let wrong = "wrong-password-typed";
    assert_eq!(
        c.get(&url)
            .query(&[("login", ADMIN_EMAIL), ("password", wrong)])
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let new_user_pw = "new-user-password-1";
    let r = c
        .post(running.url("post/users/add"))
        .form(&[
            ("sessionId", sid.as_str()),
            ("user[email]", "u@example.com"),
            ("user[password]", new_user_pw),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An API token: made, used where it belongs, and sent where it does not.
    let r = c
        .post(running.url("post/tokens/add"))
        .form(&[
            ("sessionId", sid.as_str()),
            ("token[name]", "log test"),
            ("token[scope]", "write"),
            ("retType", "json"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<serde_json::Value>().await.unwrap()["token"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("vsp_"));
    assert_eq!(
        c.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let wrong_token = format!("{token}x");
    assert_eq!(
        c.get(&url)
            .bearer_auth(&wrong_token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for (name, value) in [("sessionId", &token), ("password", &token)] {
        let status = c
            .get(&url)
            .query(&[(name, value.as_str()), ("login", ADMIN_EMAIL)])
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 400 || status == 401, "{name}: {status}");
    }
    assert_eq!(
        c.get(&url)
            .header("X-Session-Id", &token)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let (clean, out, err) = running.terminate();
    assert!(clean, "exit 0 on SIGTERM");
    let log = format!("{out}\n{err}");
    assert!(log.contains("signIn"), "the log records requests: {log}");
    assert!(log.contains("tokens"), "the log records token calls: {log}");
    assert!(!log.contains("vsp_"), "the log holds an API token: {log}");
    let token_body = &token["vsp_".len()..];
    for secret_text in [secret, sid.as_str(), wrong, new_user_pw, token_body] {
        assert!(
            !log.contains(secret_text),
            "the log holds a secret: {secret_text}"
        );
    }
    assert!(!log.contains("sessionId="), "no query strings in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_generated_admin_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let running = serve(dir.path(), &[]);
    running.wait_ready().await;
    let (clean, out, err) = running.terminate();
    assert!(clean);
    let password = out
        .lines()
        .find_map(|l| l.split("password: ").nth(1))
        .unwrap_or_else(|| panic!("no generated password in: {out}"))
        .trim()
        .to_owned();
    assert!(password.len() >= 16);
    assert!(!err.contains(&password), "the password is not in the log");
    assert!(
        err.contains("sha256"),
        "the certificate fingerprint is logged"
    );

    // The second start keeps the admin and prints nothing.
    let running = serve(dir.path(), &[]);
    running.wait_ready().await;
    let r = client()
        .get(running.url("get/authentication/getAuthorizedUser"))
        .basic_auth(ADMIN_EMAIL, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, out, _) = running.terminate();
    assert!(!out.contains("password"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_reads_the_password_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let create = |email: &str, level: &str, password: &str| {
        let args = ["user", "create", "--email", email, "--level", level];
        run_with_input(dir.path(), &args, &format!("{password}\n"))
    };
    let (ok, _, err) = create("client@example.com", "client", "client-password");
    assert!(ok, "{err}");
    assert!(
        !create("client@example.com", "client", "client-password").0,
        "duplicate email"
    );
    assert!(
        !create("other@example.com", "root", "client-password").0,
        "bad level"
    );
    assert!(
        !create("other@example.com", "user", "short").0,
        "short password"
    );

    let running = serve(dir.path(), &[("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD)]);
    running.wait_ready().await;
    let r = client()
        .get(running.url("get/authentication/getAuthorizedUser"))
        .query(&[
            ("login", "client@example.com"),
            ("password", "client-password"),
            ("retType", "json"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["user"]["securityLevel"], 200);
    let (clean, _, _) = running.terminate();
    assert!(clean);
}

#[test]
fn bad_configuration_stops_with_a_clear_message() {
    let out = vesper_command()
        .args(["serve", "--tls-cert", "/nonexistent.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert and --tls-key go together"));
}

/// Runs `vesper ARGS --data-dir DIR` with `stdin` as standard input; (success, stdout,
/// stderr).
fn run_with_input(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = vesper_command()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_commands_make_list_and_remove_workspaces_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let list = || {
        let (ok, out, err) = run_with_input(d, &["workspace", "list"], "");
        assert!(ok, "{err}");
        out.lines()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let create = |name: &str, email: &str, password: &str| {
        run_with_input(
            d,
            &["workspace", "create", name, "--admin-email", email],
            &format!("{password}\n"),
        )
    };
    let (ok, out, err) = create("acme", "boss@acme.test", "acme-password-1");
    assert!(ok, "{err}");
    assert!(out.contains("Created workspace acme"), "{out}");
    // The folder is private from the first command that makes it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("vesper.sqlite3"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // Refused, and no workspace left behind by a refusal.
    for (name, email, password, why) in [
        ("acme", "x@acme.test", "acme-password-1", "exists"),
        ("Acme", "x@acme.test", "acme-password-1", "lower-case"),
        ("a.b", "x@acme.test", "acme-password-1", "lower-case"),
        ("bravo", "not-an-email", "acme-password-1", "--admin-email"),
        ("bravo", "x@bravo.test", "short", "password"),
    ] {
        let (ok, _, err) = create(name, email, password);
        assert!(!ok, "{name} {email}");
        assert!(err.contains(why), "{name}: {err}");
    }
    assert_eq!(list(), ["acme", "default"]);
    let user = |workspace: &str, email: &str| {
        run_with_input(
            d,
            &[
                "user",
                "create",
                "--email",
                email,
                "--level",
                "user",
                "--workspace",
                workspace,
            ],
            "user-password-1\n",
        )
    };
    let (ok, _, err) = user("acme", "worker@acme.test");
    assert!(ok, "{err}");
    let (ok, _, err) = user("nope", "worker@acme.test");
    assert!(!ok && err.contains("no workspace named nope"), "{err}");

    let running = serve(
        d,
        &[
            ("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("VESPER_BASE_DOMAIN", "vesper.test"),
        ],
    );
    running.wait_ready().await;
    let at = |name: &str| {
        let host = format!("{name}.vesper.test");
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve(&host, ([127, 0, 0, 1], running.port).into())
            .build()
            .unwrap();
        let url = format!(
            "https://{host}:{}/api/v2/service/get/authentication/getAuthorizedUser",
            running.port
        );
        async move {
            let r = client
                .get(url)
                .query(&[
                    ("login", "worker@acme.test"),
                    ("password", "user-password-1"),
                    ("retType", "json"),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    assert_eq!(at("acme").await.0, 200);
    // The user is acme's, not the default workspace's.
    assert_eq!(at("default").await.0, 401);

    let (ok, _, err) = run_with_input(d, &["workspace", "remove", "acme"], "");
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, _, err) = run_with_input(d, &["workspace", "remove", "default", "--yes"], "");
    assert!(!ok && err.contains("stays"), "{err}");
    assert_eq!(list(), ["acme", "default"]);
    let (ok, out, err) = run_with_input(d, &["workspace", "remove", "acme", "--yes"], "");
    assert!(ok, "{err}");
    assert!(out.contains("Removed workspace acme"), "{out}");
    assert_eq!(list(), ["default"]);
    // Its users are gone at once; its name within the server's few seconds of memory.
    let (status, body) = at("acme").await;
    assert!(
        status == 401 || body.contains("unknown_workspace"),
        "{status} {body}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = at("acme").await;
    assert_eq!(status, 404);
    assert!(body.contains("unknown_workspace"), "{body}");
    // A workspace made again under the name starts empty.
    let (ok, _, err) = create("acme", "boss@acme.test", "acme-password-1");
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(at("acme").await.0, 401);
    let (clean, _, _) = running.terminate();
    assert!(clean);
}

/// Calls getAuthorizedUser as the admin with this request id; answers the id sent back.
async fn call_with_request_id(running: &Running, id: &str) -> String {
    let r = client()
        .get(running.url("get/authentication/getAuthorizedUser"))
        .basic_auth(ADMIN_EMAIL, Some(ADMIN_PASSWORD))
        .header("X-Request-Id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_is_in_the_log_line_of_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let running = serve(dir.path(), &[("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD)]);
    running.wait_ready().await;
    let id = "binary-text-log-4711";
    assert_eq!(call_with_request_id(&running, id).await, id);
    // A page, with the session cookie of an API sign-in.
    let c = client();
    let sid = c
        .post(running.url("post/authentication/signIn"))
        .form(&[
            ("login", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("retType", "json"),
        ])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let page_id = "binary-page-log-4713";
    let page = c
        .get(format!("https://127.0.0.1:{}/projects", running.port))
        .header("Cookie", format!("{SESSION_COOKIE}={sid}"))
        .header("X-Request-Id", page_id)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-request-id"], page_id);
    let (clean, _, err) = running.terminate();
    assert!(clean);
    let line = err
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("no line names {id}: {err}"));
    for field in [
        "service=authentication",
        "method=getAuthorizedUser",
        "status=200",
        "user=1",
        "micros=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert_eq!(err.matches(id).count(), 1, "one line per request: {err}");
    let line = err
        .lines()
        .find(|l| l.contains(page_id))
        .unwrap_or_else(|| panic!("no line names {page_id}: {err}"));
    for field in [
        "service=web",
        "page=/projects",
        "method=GET",
        "status=200",
        "user=1",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(!err.contains(&sid), "no session id in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_json_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let running = serve_with(
        dir.path(),
        &["--log-format", "json"],
        &[("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    running.wait_ready().await;
    let id = "binary-json-log-4712";
    assert_eq!(call_with_request_id(&running, id).await, id);
    let (clean, _, err) = running.terminate();
    assert!(clean);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{err}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let request = lines
        .iter()
        .find(|l| l["span"]["request_id"] == id)
        .unwrap_or_else(|| panic!("no line names {id}: {err}"));
    assert_eq!(request["message"], "request", "{request}");
    assert_eq!(request["service"], "authentication", "{request}");
    assert_eq!(request["method"], "getAuthorizedUser", "{request}");
    assert_eq!(request["status"], 200, "{request}");
    assert_eq!(request["user"], 1, "{request}");
    assert!(request["micros"].is_u64(), "{request}");
    assert!(
        lines.iter().any(|l| l["message"] == "listening (HTTPS)"),
        "{err}"
    );
    // The environment variable chooses the same.
    let running = serve(dir.path(), &[("VESPER_LOG_FORMAT", "json")]);
    running.wait_ready().await;
    let (clean, _, err) = running.terminate();
    assert!(clean);
    for l in err.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}

/// The TCP ports the process listens on, from its sockets and the kernel's tables.
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        if let Ok(target) = std::fs::read_link(fd.unwrap().path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // local address, state (0A: listening), inode
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports.sort_unstable();
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_opens_a_second_port_and_nothing_else_listens_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let running = serve(dir.path(), &[]);
    running.wait_ready().await;
    assert_eq!(listening_ports(running.child.id()), [running.port]);
    running.terminate();

    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let running = serve(dir.path(), &[("VESPER_METRICS_LISTEN", &metrics)]);
    running.wait_ready().await;
    let mut expected = vec![running.port, metrics_port];
    expected.sort_unstable();
    assert_eq!(listening_ports(running.child.id()), expected);
    let r = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("# TYPE vesper_requests_total counter"),
        "{text}"
    );
    let (clean, _, err) = running.terminate();
    assert!(clean);
    assert!(err.contains("serving /metrics (plain HTTP)"), "{err}");
}
