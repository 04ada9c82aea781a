//! Attached files on an S3-compatible bucket: moto's server on loopback, speaking the
//! real S3 protocol over HTTP.
mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "vesper-test";

/// A moto S3 server, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    // moto binds a port of its own choosing and says which: a port picked here and
    // released before moto binds it could be taken in between, by the other test's moto
    // among others, and one test would then talk to the other's server.
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moto_server (pip install 'moto[server]')");
    let stderr = child.stderr.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    // The reader keeps draining moto's request log, so that moto never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("Running on http://127.0.0.1:")
                .nth(1)
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                let _ = port_tx.send(port);
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("moto_server did not say which port it listens on");
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.put(moto.url(BUCKET)).send().await {
            if r.status().is_success() {
                return moto;
            }
        }
        assert!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Moto {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The keys in the bucket, by listing it over plain S3.
    async fn keys(&self) -> Vec<String> {
        let body = reqwest::get(self.url(&format!("{BUCKET}?list-type=2")))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

async fn server_on(moto: &Moto) -> TestServer {
    // object_store reads credentials from the environment; moto accepts any.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let url = format!(
        "s3://{BUCKET}/blobs?endpoint=http://127.0.0.1:{}&region=us-east-1&allow_http=true",
        moto.port
    );
    TestServer::start_with(move |c| {
        c.files_url = Some(url);
        c.max_file_bytes = 8 * 1024 * 1024;
    })
    .await
}

/// A project, a task and a message to attach files to: (session, activity id, project id).
async fn fixture(server: &TestServer) -> (String, String, String) {
    let sid = server.admin().await;
    let admin = server.as_caller(&sid);
    let pid = admin.project(&[("name", "P")]).await;
    let tid = admin.task(pid, &[("name", "T")]).await;
    let aid = admin
        .activity(&[("taskId", &tid.to_string()), ("text", "m")])
        .await;
    (sid, aid.to_string(), pid.to_string())
}

async fn attach(server: &TestServer, sid: &str, aid: &str, bytes: Vec<u8>) -> Resp {
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.to_owned())
        .text("activityId", aid.to_owned())
        .text("retType", "json")
        .part(
            "files[1][content]",
            reqwest::multipart::Part::bytes(bytes).file_name("data.bin"),
        );
    read(
        server
            .client
            .post(server.api("activity/attachFiles"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_through_an_s3_bucket_in_several_parts() {
    let moto = moto().await;
    let server = server_on(&moto).await;
    let (sid, aid, _) = fixture(&server).await;
    // Over 5 MiB: the upload goes in several multipart parts.
    let bytes = pattern(6 * 1024 * 1024 + 17);
    let r = attach(&server, &sid, &aid, bytes.clone()).await;
    r.assert_ok();
    let file = &r.json()["items"][0];
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(file["size"], bytes.len());
    assert_eq!(moto.keys().await.len(), 1, "one object under the prefix");
    assert!(moto.keys().await[0].starts_with("blobs/"));

    let got = server
        .client
        .get(server.api("activity/downloadFile"))
        .query(&[("sessionId", sid.as_str()), ("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let part = server
        .client
        .get(server.api("activity/downloadFile"))
        .query(&[("sessionId", sid.as_str()), ("id", id.as_str())])
        .header("Range", "bytes=5242870-5242889")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &bytes[5_242_870..5_242_890]
    );

    server
        .call("activity/removeFile", &[("sessionId", &sid), ("id", &id)])
        .await
        .assert_ok();
    assert!(moto.keys().await.is_empty(), "the object went with its row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_leaves_no_object_and_removing_a_project_removes_its_objects() {
    let moto = moto().await;
    let server = server_on(&moto).await;
    let (sid, aid, pid) = fixture(&server).await;
    let r = attach(&server, &sid, &aid, pattern(9 * 1024 * 1024)).await;
    r.assert_fail(413, "too_large");
    // The aborted upload's object (if any) is deleted in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !moto.keys().await.is_empty() {
        assert!(Instant::now() < deadline, "a refused upload left an object");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    attach(&server, &sid, &aid, pattern(1000)).await.assert_ok();
    attach(&server, &sid, &aid, pattern(2000)).await.assert_ok();
    assert_eq!(moto.keys().await.len(), 2);
    server
        .call("projects/remove", &[("sessionId", &sid), ("id", &pid)])
        .await
        .assert_ok();
    assert!(moto.keys().await.is_empty());
}
