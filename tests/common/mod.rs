//! The end-to-end harness: the real server on a free port over HTTPS, with a temporary
//! data folder, driven by an HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::sync::oneshot;
use vesper::config::Config;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(vesper::launch(config, listener, async {
            let _ = stopped.await;
        }));
        let server = TestServer {
            addr,
            client: client(),
            dir,
            stop: Some(stop),
            task: Some(task),
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

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn https(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
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

pub fn password_for(email: &str) -> String {
    format!("pw-{email}")
}

fn is_write(call: &str) -> bool {
    ["/add", "/update", "/remove", "/attachFiles", "/removeFile"]
        .iter()
        .any(|w| call.ends_with(w))
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
