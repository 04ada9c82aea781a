//! Email notifications (section 11 of the contract), end to end: a real SMTP server
//! (Python's aiosmtpd) on loopback receives what the mail worker sends, and the tests read
//! its Maildir. Who gets mail for each notify flag; never the author, a removed user or one
//! who may not see the object (hidden and hideFromClients hold in mail too); mail waits out
//! an SMTP outage and survives a SIGKILL of the real binary, and is not sent twice; without
//! SMTP it lands as `.eml` files naming project, task, author and text, escaped in HTML.
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// How long one delivery may take: the worker wakes on each queued write and polls every
/// second; after a failed attempt it waits 2, 4, 8... seconds.
const DELIVERY: Duration = Duration::from_secs(15);

const MEMBER: &str = "member@example.com";
const CLIENT: &str = "client@example.com";
const EXTERNAL: &str = "external@example.com";
const TASKER: &str = "tasker@example.com";
const OUTSIDER: &str = "outsider@example.com";
const WITNESS: &str = "witness@example.com";

// ---------------------------------------------------------------------------------------
// Reading mail: a tiny MIME reader (headers, multipart, quoted-printable, base64).

/// One received mail, with its text and HTML parts decoded.
#[derive(Debug, Clone)]
struct Mail {
    headers: Vec<(String, String)>,
    text: String,
    html: String,
}

impl Mail {
    fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The address in `To`, lower-cased.
    fn to(&self) -> String {
        address(self.header("To").unwrap_or(""))
    }

    fn subject(&self) -> String {
        decode_words(self.header("Subject").unwrap_or(""))
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `Name <a@b>` or `a@b` to `a@b`.
fn address(header: &str) -> String {
    let h = header.trim();
    let inner = match (h.rfind('<'), h.rfind('>')) {
        (Some(a), Some(b)) if a < b => &h[a + 1..b],
        _ => h,
    };
    inner.trim().to_lowercase()
}

fn parse_mail(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (headers, body) = split_entity(&raw);
    let mut mail = Mail {
        headers: headers.clone(),
        text: String::new(),
        html: String::new(),
    };
    collect_parts(&headers, body, &mut mail);
    mail
}

/// Headers (unfolded) and body of a message or body part.
fn split_entity(s: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = if let Some(body) = s.strip_prefix('\n') {
        ("", body)
    } else {
        match s.find("\n\n") {
            Some(i) => (&s[..i], &s[i + 2..]),
            None => (s, ""),
        }
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn content_param(content_type: &str, name: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn collect_parts(headers: &[(String, String)], body: &str, mail: &mut Mail) {
    let content_type = find_header(headers, "Content-Type")
        .unwrap_or("text/plain")
        .to_owned();
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/") {
        let boundary = content_param(&content_type, "boundary").expect("a multipart boundary");
        for part in body.split(&format!("--{boundary}")).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part.strip_prefix('\n').unwrap_or(part);
            let part = part.strip_suffix('\n').unwrap_or(part);
            let (h, b) = split_entity(part);
            collect_parts(&h, b, mail);
        }
    } else {
        let encoding = find_header(headers, "Content-Transfer-Encoding").unwrap_or("7bit");
        let decoded = decode_body(body, encoding);
        if lower.starts_with("text/html") {
            mail.html.push_str(&decoded);
        } else if lower.starts_with("text/plain") {
            mail.text.push_str(&decoded);
        }
    }
}

fn decode_body(body: &str, encoding: &str) -> String {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("a base64 body");
            String::from_utf8(bytes).expect("a UTF-8 body")
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_owned(),
    }
}

fn quoted_printable(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            // A soft line break.
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 2047 encoded words (`=?utf-8?B?...?=`, `=?utf-8?Q?...?=`) in a header.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let parts: Vec<&str> = rest[start + 2..].splitn(4, '?').collect();
        if parts.len() == 4 && parts[3].starts_with('=') {
            let before = &rest[..start];
            // Whitespace between two encoded words is not part of the text.
            if !(after_word && before.trim().is_empty()) {
                out.push_str(before);
            }
            let bytes = if parts[1].eq_ignore_ascii_case("b") {
                base64::engine::general_purpose::STANDARD
                    .decode(parts[2])
                    .unwrap_or_default()
            } else {
                quoted_printable(&parts[2].replace('_', " ")).into_bytes()
            };
            out.push_str(&String::from_utf8_lossy(&bytes));
            rest = &parts[3][1..];
            after_word = true;
        } else {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            after_word = false;
        }
    }
    out.push_str(rest);
    out
}

/// Every mail file in a folder (a Maildir's `new/`, or the `.eml` folder), by name.
fn read_mails(dir: &Path, extension: Option<&str>) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| extension.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| parse_mail(&String::from_utf8_lossy(&std::fs::read(p).unwrap())))
        .collect()
}

/// The recipients of the mails whose text holds `marker`, sorted (duplicates kept). Also
/// checks that the envelope went where the `To` header says.
fn recipients(mails: &[Mail], marker: &str) -> Vec<String> {
    let mut to: Vec<String> = mails
        .iter()
        .filter(|m| m.text.contains(marker))
        .map(|m| {
            if let Some(rcpt) = m.header("X-RcptTo") {
                assert_eq!(address(rcpt), m.to(), "envelope and To differ: {m:#?}");
            }
            m.to()
        })
        .collect();
    to.sort();
    to
}

fn summary(mails: &[Mail]) -> Vec<String> {
    mails
        .iter()
        .map(|m| format!("to {} | {} | {:?}", m.to(), m.subject(), m.text))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The SMTP server.

/// aiosmtpd on a loopback port, keeping what it receives in a Maildir. Killed when dropped,
/// also when a test panics.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        Self::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("aiosmtpd.log")).unwrap();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // The Maildir handler creates the folder with its tmp/new/cur.
            .arg(dir.path().join("maildir"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        let mut smtp = SmtpServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return smtp;
            }
            if let Some(status) = smtp.child.try_wait().unwrap() {
                panic!("aiosmtpd stopped ({status}): {}", smtp.log());
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start: {}",
                smtp.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("aiosmtpd.log")).unwrap_or_default()
    }

    fn mails(&self) -> Vec<Mail> {
        read_mails(&self.dir.path().join("maildir").join("new"), None)
    }

    /// Polls the Maildir until `done` holds (or panics after `DELIVERY`).
    async fn wait_for(&self, what: &str, done: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        wait_for_mails(what, || self.mails(), done, || self.log()).await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_mails(
    what: &str,
    read: impl Fn() -> Vec<Mail>,
    done: impl Fn(&[Mail]) -> bool,
    log: impl Fn() -> String,
) -> Vec<Mail> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let mails = read();
        if done(&mails) {
            return mails;
        }
        if Instant::now() >= deadline {
            panic!(
                "no {what} within {DELIVERY:?}; received: {:#?}\n{}",
                summary(&mails),
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// API helpers.

/// Adds a user as the admin, without signing them in.
async fn add_user(s: &TestServer, admin: &str, email: &str, level: i64) -> i64 {
    let level = level.to_string();
    let password = password_for(email);
    s.as_caller(admin)
        .add(
            Kind::User,
            &[
                ("email", email),
                ("password", &password),
                ("securityLevel", &level),
            ],
        )
        .await
}

async fn user_id(s: &TestServer, sid: &str, email: &str) -> i64 {
    id_of(&s.as_caller(sid).user_by_email(email).await)
}

fn list(ids: &[i64]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn sorted(emails: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = emails.iter().map(|e| e.to_string()).collect();
    v.sort();
    v
}

/// A server mailing to its own aiosmtpd, with the admin (the author of every write) and:
/// project "Harbour" with team [admin, member (100), client (200), external (150)];
/// task "Pier" in it with team [admin, external, tasker (100)]; outsider (100) in no team;
/// witness (100) in no team, who only receives the sentinels.
struct Fixture {
    smtp: SmtpServer,
    s: TestServer,
    admin: String,
    admin_id: i64,
    member: i64,
    client: i64,
    external: i64,
    outsider: i64,
    witness: i64,
    project: i64,
    task: i64,
    sentinels: AtomicU32,
}

impl Fixture {
    async fn start() -> Fixture {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let s = TestServer::start_with(|c| c.smtp_url = Some(url)).await;
        let admin = s.admin().await;
        let admin_id = user_id(&s, &admin, ADMIN_EMAIL).await;
        let member = add_user(&s, &admin, MEMBER, 100).await;
        let client = add_user(&s, &admin, CLIENT, 200).await;
        let external = add_user(&s, &admin, EXTERNAL, 150).await;
        let tasker = add_user(&s, &admin, TASKER, 100).await;
        let outsider = add_user(&s, &admin, OUTSIDER, 100).await;
        let witness = add_user(&s, &admin, WITNESS, 100).await;
        let team = list(&[admin_id, member, client, external]);
        let project = s
            .as_caller(&admin)
            .add(Kind::Project, &[("name", "Harbour"), ("team", &team)])
            .await;
        let project_s = project.to_string();
        let task_team = list(&[admin_id, external, tasker]);
        let task = s
            .as_caller(&admin)
            .add(
                Kind::Task,
                &[
                    ("name", "Pier"),
                    ("projectId", &project_s),
                    ("team", &task_team),
                ],
            )
            .await;
        Fixture {
            smtp,
            s,
            admin,
            admin_id,
            member,
            client,
            external,
            outsider,
            witness,
            project,
            task,
            sentinels: AtomicU32::new(0),
        }
    }

    /// Posts a message as the admin to `("projectId" | "taskId", id)`.
    async fn post(&self, on: (&str, i64), text: &str, attrs: &[(&str, &str)]) -> i64 {
        let target = on.1.to_string();
        let mut all = vec![("type", "msg"), ("text", text), (on.0, target.as_str())];
        all.extend_from_slice(attrs);
        self.s
            .as_caller(&self.admin)
            .add(Kind::Activity, &all)
            .await
    }

    fn on_project(&self) -> (&'static str, i64) {
        ("projectId", self.project)
    }

    fn on_task(&self) -> (&'static str, i64) {
        ("taskId", self.task)
    }

    /// Queues a mail to the witness and waits for it. The worker delivers the outbox in
    /// order, so once it arrives every earlier mail has been delivered too: what has not
    /// arrived by then was never sent. Returns everything received; checks that nothing
    /// ever went to the author.
    async fn settle(&self) -> Vec<Mail> {
        let n = self.sentinels.fetch_add(1, Ordering::SeqCst);
        let marker = format!("sentinel-{n}-end");
        let witness = self.witness.to_string();
        self.post(self.on_project(), &marker, &[("notifyUsers[]", &witness)])
            .await;
        let mails = self
            .smtp
            .wait_for(&marker, |m| {
                m.iter()
                    .any(|m| m.to() == WITNESS && m.text.contains(&marker))
            })
            .await;
        assert!(
            mails.iter().all(|m| m.to() != ADMIN_EMAIL),
            "mail went to the author: {:#?}",
            summary(&mails)
        );
        assert_eq!(recipients(&mails, &marker), [WITNESS]);
        mails
    }
}

// ---------------------------------------------------------------------------------------
// Who gets mail.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_project_team_mails_the_team_but_not_its_clients_nor_the_author() {
    let f = Fixture::start().await;
    f.post(
        f.on_project(),
        "note-team-project",
        &[("notifyProjectTeam", "1")],
    )
    .await;
    f.post(f.on_task(), "note-team-task", &[("notifyProjectTeam", "1")])
        .await;
    f.post(f.on_task(), "note-no-flags", &[]).await;
    let mails = f.settle().await;
    assert_eq!(
        recipients(&mails, "note-team-project"),
        sorted(&[MEMBER, EXTERNAL])
    );
    assert_eq!(
        recipients(&mails, "note-team-task"),
        sorted(&[MEMBER, EXTERNAL])
    );
    assert!(recipients(&mails, "note-no-flags").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_client_mails_only_the_clients_of_the_project() {
    let f = Fixture::start().await;
    f.post(
        f.on_project(),
        "note-client-project",
        &[("notifyClient", "1")],
    )
    .await;
    f.post(f.on_task(), "note-client-task", &[("notifyClient", "1")])
        .await;
    let mails = f.settle().await;
    assert_eq!(recipients(&mails, "note-client-project"), [CLIENT]);
    assert_eq!(recipients(&mails, "note-client-task"), [CLIENT]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_task_team_mails_only_the_task_team_and_names_task_project_and_author() {
    let f = Fixture::start().await;
    f.post(
        f.on_task(),
        "note-task-team\nsecond line",
        &[("notifyTaskTeam", "1")],
    )
    .await;
    let mails = f.settle().await;
    assert_eq!(
        recipients(&mails, "note-task-team"),
        sorted(&[EXTERNAL, TASKER])
    );
    let mail = mails
        .iter()
        .find(|m| m.text.contains("note-task-team"))
        .unwrap();
    let subject = mail.subject();
    for expected in ["Pier", "Harbour", ADMIN_EMAIL, "message"] {
        assert!(subject.contains(expected), "{expected} not in {subject:?}");
    }
    for expected in [
        "Project: Harbour",
        "Task: Pier",
        ADMIN_EMAIL,
        "note-task-team\nsecond line",
    ] {
        assert!(
            mail.text.contains(expected),
            "{expected:?} not in {:?}",
            mail.text
        );
    }
    for expected in ["Harbour", "Pier", ADMIN_EMAIL, "note-task-team<br>"] {
        assert!(
            mail.html.contains(expected),
            "{expected:?} not in {:?}",
            mail.html
        );
    }
}

/// An external in a task's team but not its project's team sees the task, not the project
/// (section 8): their mail names the task, not the project; the others' name both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_names_the_project_only_to_whoever_may_see_it() {
    let f = Fixture::start().await;
    let outer = add_user(&f.s, &f.admin, "outer@example.com", 150).await;
    let admin = f.s.as_caller(&f.admin);
    let team = list(&[f.admin_id, f.external, outer]);
    admin.update(Kind::Task, f.task, &[("team", &team)]).await;
    f.post(f.on_task(), "note-outer", &[("notifyTaskTeam", "1")])
        .await;
    let mails = f.settle().await;
    assert_eq!(
        recipients(&mails, "note-outer"),
        sorted(&[EXTERNAL, "outer@example.com"])
    );
    for mail in mails.iter().filter(|m| m.text.contains("note-outer")) {
        let names_project = mail.to() == EXTERNAL;
        let subject = mail.subject();
        assert!(subject.contains("Pier"), "{subject:?}");
        for (part, text) in [
            ("subject", &subject),
            ("text", &mail.text),
            ("html", &mail.html),
        ] {
            assert_eq!(
                text.contains("Harbour"),
                names_project,
                "{} {part}: {text:?}",
                mail.to()
            );
        }
        assert!(mail.text.contains("Task: Pier"), "{:?}", mail.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_users_mails_the_listed_users_who_may_see_the_object_but_never_the_author() {
    let f = Fixture::start().await;
    // An external user outside every team may not see the project.
    let stranger = add_user(&f.s, &f.admin, "stranger@example.com", 150).await;
    let (outsider, author, stranger) = (
        f.outsider.to_string(),
        f.admin_id.to_string(),
        stranger.to_string(),
    );
    f.post(
        f.on_project(),
        "note-users-project",
        &[
            ("notifyUsers[]", &outsider),
            ("notifyUsers[]", &author),
            ("notifyUsers[]", &stranger),
        ],
    )
    .await;
    // The comma spelling of a list, on a task: the client sees every task of its project.
    let listed = list(&[f.client, f.outsider]);
    f.post(f.on_task(), "note-users-task", &[("notifyUsers", &listed)])
        .await;
    let mails = f.settle().await;
    assert_eq!(recipients(&mails, "note-users-project"), [OUTSIDER]);
    assert_eq!(
        recipients(&mails, "note-users-task"),
        sorted(&[CLIENT, OUTSIDER])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flag_together_mails_each_recipient_once() {
    let f = Fixture::start().await;
    let (member, outsider, author, external) = (
        f.member.to_string(),
        f.outsider.to_string(),
        f.admin_id.to_string(),
        f.external.to_string(),
    );
    f.post(
        f.on_task(),
        "note-everyone",
        &[
            ("notifyProjectTeam", "1"),
            ("notifyClient", "1"),
            ("notifyTaskTeam", "1"),
            ("notifyUsers[]", &member),
            ("notifyUsers[]", &outsider),
            ("notifyUsers[]", &author),
            ("notifyUsers[]", &external),
        ],
    )
    .await;
    let mails = f.settle().await;
    assert_eq!(
        recipients(&mails, "note-everyone"),
        sorted(&[CLIENT, EXTERNAL, MEMBER, OUTSIDER, TASKER])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_and_task_writes_mail_by_their_notify_flags() {
    let f = Fixture::start().await;
    let (project, task) = (f.project.to_string(), f.task.to_string());
    f.s.as_caller(&f.admin)
        .update(
            Kind::Project,
            project.parse().unwrap(),
            &[
                ("notifyClient", "1"),
                ("description", "write-project-client"),
            ],
        )
        .await;
    f.s.as_caller(&f.admin)
        .add(
            Kind::Task,
            &[
                ("name", "Quay"),
                ("projectId", &project),
                ("notifyProjectTeam", "1"),
                ("description", "write-task-added"),
            ],
        )
        .await;
    f.s.as_caller(&f.admin)
        .update(
            Kind::Task,
            task.parse().unwrap(),
            &[
                ("notifyTaskTeam", "1"),
                ("description", "write-task-updated"),
            ],
        )
        .await;
    let mails = f.settle().await;
    assert_eq!(recipients(&mails, "write-project-client"), [CLIENT]);
    assert_eq!(
        recipients(&mails, "write-task-added"),
        sorted(&[EXTERNAL, MEMBER])
    );
    assert_eq!(
        recipients(&mails, "write-task-updated"),
        sorted(&[EXTERNAL, TASKER])
    );
    let added = mails
        .iter()
        .find(|m| m.text.contains("write-task-added"))
        .unwrap();
    assert!(added.subject().contains("created task Quay (Harbour)"));
    let updated = mails
        .iter()
        .find(|m| m.text.contains("write-project-client"))
        .unwrap();
    assert!(updated.subject().contains("updated project Harbour"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_hidden_from_clients_is_never_mailed_to_a_client() {
    let f = Fixture::start().await;
    let client = f.client.to_string();
    let flags = [
        ("hideFromClients", "1"),
        ("notifyClient", "1"),
        ("notifyProjectTeam", "1"),
        ("notifyUsers[]", client.as_str()),
    ];
    let on_task = f.post(f.on_task(), "hidden-on-task", &flags).await;
    f.post(f.on_project(), "hidden-on-project", &flags).await;
    // An update keeps the stored flags and still leaves the client out.
    let on_task = on_task.to_string();
    f.s.as_caller(&f.admin)
        .update(
            Kind::Activity,
            on_task.parse().unwrap(),
            &[("text", "hidden-updated"), ("notifyUsers[]", &client)],
        )
        .await;
    // The same message, visible to clients, does reach the client.
    f.post(
        f.on_task(),
        "shown-to-clients",
        &[("notifyClient", "1"), ("notifyProjectTeam", "1")],
    )
    .await;
    let mails = f.settle().await;
    assert_eq!(
        recipients(&mails, "hidden-on-task"),
        sorted(&[EXTERNAL, MEMBER])
    );
    assert_eq!(
        recipients(&mails, "hidden-on-project"),
        sorted(&[EXTERNAL, MEMBER])
    );
    assert_eq!(
        recipients(&mails, "hidden-updated"),
        sorted(&[EXTERNAL, MEMBER])
    );
    assert_eq!(
        recipients(&mails, "shown-to-clients"),
        sorted(&[CLIENT, EXTERNAL, MEMBER])
    );
    assert!(
        mails
            .iter()
            .filter(|m| m.to() == CLIENT)
            .all(|m| m.text.contains("shown-to-clients")),
        "{:#?}",
        summary(&mails)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_task_is_mailed_to_its_project_clients_and_team_but_not_to_other_users() {
    let f = Fixture::start().await;
    let (project, outsider, member, client) = (
        f.project.to_string(),
        f.outsider.to_string(),
        f.member.to_string(),
        f.client.to_string(),
    );
    let hidden =
        f.s.as_caller(&f.admin)
            .add(
                Kind::Task,
                &[
                    ("name", "Vault"),
                    ("projectId", &project),
                    ("hidden", "1"),
                    ("notifyClient", "1"),
                    ("notifyUsers[]", &outsider),
                    ("notifyUsers[]", &member),
                    ("description", "hidden-task-added"),
                ],
            )
            .await;
    f.post(
        ("taskId", hidden),
        "hidden-task-note",
        &[("notifyUsers[]", &outsider), ("notifyUsers[]", &client)],
    )
    .await;
    let mails = f.settle().await;
    // Section 8: clients see every task of their projects, project team members too.
    assert_eq!(
        recipients(&mails, "hidden-task-added"),
        sorted(&[CLIENT, MEMBER])
    );
    assert_eq!(recipients(&mails, "hidden-task-note"), [CLIENT]);
    assert!(mails.iter().all(|m| m.to() != OUTSIDER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_user_gets_no_mail_even_when_listed() {
    let f = Fixture::start().await;
    for id in [f.outsider, f.member] {
        f.s.call_json(
            "users/remove",
            &[("sessionId", &f.admin), ("id", &id.to_string())],
        )
        .await
        .assert_ok();
    }
    let (outsider, member) = (f.outsider.to_string(), f.member.to_string());
    f.post(
        f.on_project(),
        "after-removal",
        &[
            ("notifyProjectTeam", "1"),
            ("notifyUsers[]", &outsider),
            ("notifyUsers[]", &member),
        ],
    )
    .await;
    let mails = f.settle().await;
    assert_eq!(recipients(&mails, "after-removal"), [EXTERNAL]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_see_a_hidden_project_gets_no_mail_about_it() {
    let f = Fixture::start().await;
    let team = f.member.to_string();
    let (outsider, external, client, member) = (
        f.outsider.to_string(),
        f.external.to_string(),
        f.client.to_string(),
        f.member.to_string(),
    );
    let hidden =
        f.s.as_caller(&f.admin)
            .add(
                Kind::Project,
                &[
                    ("name", "Cellar"),
                    ("hidden", "1"),
                    ("team", &team),
                    ("notifyProjectTeam", "1"),
                    ("notifyUsers[]", &outsider),
                    ("notifyUsers[]", &external),
                    ("description", "hidden-project-added"),
                ],
            )
            .await;
    f.post(
        ("projectId", hidden),
        "hidden-project-note",
        &[
            ("notifyClient", "1"),
            ("notifyUsers[]", &outsider),
            ("notifyUsers[]", &external),
            ("notifyUsers[]", &client),
            ("notifyUsers[]", &member),
        ],
    )
    .await;
    f.post(
        ("projectId", hidden),
        "hidden-project-nobody",
        &[("notifyUsers[]", &outsider), ("notifyUsers[]", &client)],
    )
    .await;
    let mails = f.settle().await;
    assert_eq!(recipients(&mails, "hidden-project-added"), [MEMBER]);
    assert_eq!(recipients(&mails, "hidden-project-note"), [MEMBER]);
    assert!(recipients(&mails, "hidden-project-nobody").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_non_ascii_text_arrives_intact_over_smtp() {
    let f = Fixture::start().await;
    let team = f.member.to_string();
    let project =
        f.s.as_caller(&f.admin)
            .add(Kind::Project, &[("name", "Hafen Größe ☂"), ("team", &team)])
            .await;
    // Long lines and non-ASCII text make the parts quoted-printable or base64.
    let text = format!(
        "Grüße aus Köln — {} <b>fett</b> & \"zitiert\" ünïcödé-end",
        "lang ".repeat(40)
    );
    f.post(("projectId", project), &text, &[("notifyProjectTeam", "1")])
        .await;
    let mails = f.settle().await;
    assert_eq!(recipients(&mails, "ünïcödé-end"), [MEMBER]);
    let mail = mails
        .iter()
        .find(|m| m.text.contains("ünïcödé-end"))
        .unwrap();
    assert!(mail.text.contains(&text), "{:?}", mail.text);
    assert!(
        mail.text.contains("Project: Hafen Größe ☂"),
        "{:?}",
        mail.text
    );
    assert!(
        mail.html
            .contains("&lt;b&gt;fett&lt;/b&gt; &amp; &quot;zitiert&quot; ünïcödé-end"),
        "{:?}",
        mail.html
    );
    let subject = mail.subject();
    assert!(subject.contains("Hafen Größe ☂"), "{subject:?}");
    assert!(subject.contains(ADMIN_EMAIL), "{subject:?}");
}

// ---------------------------------------------------------------------------------------
// What a mail says, without SMTP.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_mail_is_written_as_eml_files_naming_project_task_author_and_escaped_text() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let admin_id = user_id(&s, &admin, ADMIN_EMAIL).await;
    let admin_s = admin_id.to_string();
    s.as_caller(&admin)
        .update(
            Kind::User,
            admin_s.parse().unwrap(),
            &[("firstName", "Ada"), ("lastName", "Byron")],
        )
        .await;
    let member = add_user(&s, &admin, MEMBER, 100).await.to_string();
    let project = s
        .as_caller(&admin)
        .add(Kind::Project, &[("name", "Harbour & Sons")])
        .await
        .to_string();
    let task = s
        .as_caller(&admin)
        .add(Kind::Task, &[("name", "Pier <7>"), ("projectId", &project)])
        .await;
    let task = task.to_string();
    s.as_caller(&admin)
        .add(
            Kind::Activity,
            &[
                ("type", "msg"),
                ("taskId", &task),
                ("text", "<script>x</script>\nsecond \"line\""),
                ("notifyUsers[]", &member),
                ("notifyUsers[]", &admin_s),
            ],
        )
        .await;
    // A second mail queued later: once both files exist, nothing else is on its way.
    s.as_caller(&admin)
        .add(
            Kind::Activity,
            &[
                ("type", "msg"),
                ("taskId", &task),
                ("text", "sentinel"),
                ("notifyUsers[]", &member),
            ],
        )
        .await;
    let folder = s.dir.path().join("mail");
    let mails = wait_for_mails(
        "two .eml files",
        || read_mails(&folder, Some("eml")),
        |m| m.len() >= 2 && m.iter().any(|m| m.text.contains("sentinel")),
        String::new,
    )
    .await;
    assert_eq!(mails.len(), 2, "{:#?}", summary(&mails));
    assert!(
        mails.iter().all(|m| m.to() == MEMBER),
        "{:#?}",
        summary(&mails)
    );
    let mail = mails
        .iter()
        .find(|m| m.text.contains("<script>"))
        .expect("the message's mail");
    assert!(mail.header("From").unwrap().contains("vesper@localhost"));
    let subject = mail.subject();
    for expected in [
        "Ada Byron",
        "posted",
        "message",
        "Pier <7>",
        "Harbour & Sons",
    ] {
        assert!(subject.contains(expected), "{expected} not in {subject:?}");
    }
    for expected in [
        "Ada Byron posted a message.",
        "Project: Harbour & Sons",
        "Task: Pier <7>",
        "<script>x</script>\nsecond \"line\"",
    ] {
        assert!(
            mail.text.contains(expected),
            "{expected:?} not in {:?}",
            mail.text
        );
    }
    for expected in [
        "Ada Byron",
        "Project: Harbour &amp; Sons",
        "Task: Pier &lt;7&gt;",
        "&lt;script&gt;x&lt;/script&gt;<br>",
        "second &quot;line&quot;",
    ] {
        assert!(
            mail.html.contains(expected),
            "{expected:?} not in {:?}",
            mail.html
        );
    }
    assert!(!mail.html.contains("<script>"), "{:?}", mail.html);
    assert!(!mail.html.contains("Pier <7>"), "{:?}", mail.html);
}

// ---------------------------------------------------------------------------------------
// Delivery: an SMTP outage, and a SIGKILL of the real binary.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_smtp_server_stopped_mail_waits_and_is_delivered_once_it_is_back() {
    let port = free_port();
    let s = TestServer::start_with(|c| c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    let admin = s.admin().await;
    let member = add_user(&s, &admin, MEMBER, 100).await.to_string();
    let project = s
        .as_caller(&admin)
        .add(
            Kind::Project,
            &[
                ("name", "Harbour"),
                ("description", "written-while-down"),
                ("notifyUsers[]", &member),
            ],
        )
        .await
        .to_string();
    // Nothing listens yet: the first attempt fails and the mail waits for a retry.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let smtp = SmtpServer::start_on(port).await;
    smtp.wait_for("the mail written while SMTP was down", |m| {
        !recipients(m, "written-while-down").is_empty()
    })
    .await;
    // A later mail arriving proves the worker moved on; the first came only once.
    s.as_caller(&admin)
        .add(
            Kind::Activity,
            &[
                ("type", "msg"),
                ("projectId", &project),
                ("text", "written-after-return"),
                ("notifyUsers[]", &member),
            ],
        )
        .await;
    let mails = smtp
        .wait_for("the later mail", |m| {
            !recipients(m, "written-after-return").is_empty()
        })
        .await;
    assert_eq!(recipients(&mails, "written-while-down"), [MEMBER]);
    assert_eq!(recipients(&mails, "written-after-return"), [MEMBER]);
    assert_eq!(mails.len(), 2, "{:#?}", summary(&mails));
}

/// The real binary as a child process, logging into files; killed when dropped.
struct Vesper {
    child: Child,
    port: u16,
    err: tempfile::NamedTempFile,
    _out: tempfile::NamedTempFile,
}

impl Vesper {
    async fn start(data_dir: &Path, smtp_port: u16) -> Vesper {
        let port = free_port();
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vesper"))
            .env_remove("VESPER_ADMIN_EMAIL")
            .env_remove("VESPER_DATABASE_URL")
            .env_remove("VESPER_CONFIG")
            .env_remove("VESPER_SMTP_URL")
            .env_remove("VESPER_MAIL_FROM")
            .env("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--smtp-url", &format!("smtp://127.0.0.1:{smtp_port}")])
            .stdin(Stdio::null())
            .stdout(out.reopen().unwrap())
            .stderr(err.reopen().unwrap())
            .spawn()
            .unwrap();
        let vesper = Vesper {
            child,
            port,
            err,
            _out: out,
        };
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client
            .get(format!("https://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "vesper did not start: {}",
                vesper.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        vesper
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.err.path()).unwrap_or_default()
    }

    /// POSTs `path` (`get/...` or `post/...`) with `retType=json`.
    async fn call(&self, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let mut all = params.to_vec();
        all.push(("retType", "json"));
        let r = client()
            .post(format!(
                "https://127.0.0.1:{}/api/v2/service/{path}",
                self.port
            ))
            .form(&all)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// SIGKILL: no shutdown of any kind.
    fn kill(mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

impl Drop for Vesper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_queued_before_a_sigkill_is_delivered_once_after_the_restart() {
    let data = tempfile::tempdir().unwrap();
    // Nothing listens on the SMTP port while the first process runs.
    let smtp_port = free_port();
    let first = Vesper::start(data.path(), smtp_port).await;
    let admin = first
        .call(
            "get/authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let password = password_for(MEMBER);
    let member = first
        .call(
            "post/users/add",
            &[
                ("sessionId", &admin),
                ("user[email]", MEMBER),
                ("user[password]", &password),
                ("user[securityLevel]", "100"),
            ],
        )
        .await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = first
        .call(
            "post/projects/add",
            &[
                ("sessionId", &admin),
                ("project[name]", "Harbour"),
                ("project[team]", &member),
                ("project[notifyProjectTeam]", "1"),
                ("project[description]", "before-the-kill"),
            ],
        )
        .await["project"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Let the first attempt fail (it logs a warning) and be recorded, so that the mail is
    // not left leased to the dead process; its retry is due 2 s after that attempt.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.log().contains("mail delivery failed") {
        assert!(
            Instant::now() < deadline,
            "no failed attempt: {}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill();

    let smtp = SmtpServer::start_on(smtp_port).await;
    let second = Vesper::start(data.path(), smtp_port).await;
    let mails = smtp
        .wait_for("the mail queued before the kill", |m| {
            !recipients(m, "before-the-kill").is_empty()
        })
        .await;
    assert_eq!(recipients(&mails, "before-the-kill"), [MEMBER]);
    assert!(mails[0].subject().contains("created project Harbour"));
    // A later mail arriving means the outbox has moved past the first: it came once.
    let admin = second
        .call(
            "get/authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    second
        .call(
            "post/activity/add",
            &[
                ("sessionId", &admin),
                ("activity[projectId]", &project),
                ("activity[text]", "after-the-restart"),
                ("activity[notifyUsers][]", &member),
            ],
        )
        .await;
    let mails = smtp
        .wait_for("the mail written after the restart", |m| {
            !recipients(m, "after-the-restart").is_empty()
        })
        .await;
    assert_eq!(recipients(&mails, "before-the-kill"), [MEMBER]);
    assert_eq!(recipients(&mails, "after-the-restart"), [MEMBER]);
    assert_eq!(mails.len(), 2, "{:#?}", summary(&mails));
}
