//! Several stateless nodes on one PostgreSQL database and one shared files folder.
//! Runs when the suites run on PostgreSQL (scripts/test); on SQLite it has nothing to
//! test and says so.
mod common;
use common::*;

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The `.eml` files a node's mail worker wrote (no SMTP configured): outbox ids.
fn mailed(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.dir.path().join("mail"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_sessions_writes_files_and_the_outbox() {
    if test_database_url().is_none() {
        eprintln!("skipped: several nodes need PostgreSQL (run scripts/test)");
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    let files_url = format!("file://{}", shared.path().display());
    let a = TestServer::start_with({
        let files_url = files_url.clone();
        move |c| c.files_url = Some(files_url)
    })
    .await;
    let database = a.database_url().expect("node A runs on PostgreSQL");
    let b = TestServer::start_with(move |c| {
        c.files_url = Some(files_url);
        c.database_url = Some(database);
    })
    .await;

    // A session made on A works on B; signOut on B ends it on A at once.
    let sid = a.admin().await;
    b.call_json("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await
        .assert_ok();
    b.call_json("authentication/signOut", &[("sessionId", &sid)])
        .await
        .assert_ok();
    a.call_json("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await
        .assert_fail(401, "auth_failed");

    // A write on A is read on B.
    let sid = a.admin().await;
    let gid = a.as_caller(&sid).group("Shared").await;
    let shared = b.as_caller(&sid).get(Kind::Group, gid).await;
    assert_eq!(shared["name"], "Shared");

    // A file uploaded through A downloads through B.
    let (member, _) = a.user("member@example.com", 100, false).await;
    let member = member.to_string();
    let pid = a
        .as_caller(&sid)
        .project(&[("name", "Both"), ("team[]", &member)])
        .await
        .to_string();
    let aid = a
        .as_caller(&sid)
        .activity(&[("projectId", &pid), ("text", "x")])
        .await
        .to_string();
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.clone())
        .text("activityId", aid)
        .text("retType", "json")
        .part(
            "files[1][content]",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("both.bin"),
        );
    let up = read(
        a.client
            .post(a.api("activity/attachFiles"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    up.assert_ok();
    let fid = up.json()["items"][0]["id"].as_str().unwrap().to_owned();
    let down = b
        .client
        .get(b.api("activity/downloadFile"))
        .query(&[("sessionId", sid.as_str()), ("id", fid.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 200);
    assert_eq!(down.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Mail queued through both nodes goes out exactly once, whichever worker takes it.
    const MAILS: usize = 20;
    for i in 0..MAILS {
        let node = if i % 2 == 0 { &a } else { &b };
        node.as_caller(&sid)
            .activity(&[
                ("projectId", &pid),
                ("text", &format!("note {i}")),
                ("notifyProjectTeam", "1"),
            ])
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (on_a, on_b) = (mailed(&a), mailed(&b));
        let unique: HashSet<&String> = on_a.iter().chain(&on_b).collect();
        assert_eq!(
            unique.len(),
            on_a.len() + on_b.len(),
            "a mail went out twice"
        );
        if unique.len() == MAILS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {MAILS} mails went out",
            unique.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing more arrives late.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mailed(&a).len() + mailed(&b).len(), MAILS);
}
