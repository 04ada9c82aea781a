//! PostgreSQL restarted under load: requests during the outage get 503 `unavailable`,
//! the node recovers by itself, no acknowledged write is lost, and reads by key (on the
//! connections they share) answer their own row or 503, never another's. Runs when the suites
//! run on PostgreSQL (scripts/test); it restarts the machine's PostgreSQL, so it is a
//! test binary of its own (cargo runs test binaries one after another).
mod common;
use common::*;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_load_loses_no_acknowledged_write() {
    if test_database_url().is_none() {
        eprintln!("skipped: needs PostgreSQL (run scripts/test)");
        return;
    }
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let client = server.client.clone();
    let url = server.api("projectsgroups/add");
    let stop_at = Instant::now() + Duration::from_secs(10);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, url, sid) = (client.clone(), url.clone(), sid.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut i = 0;
                while Instant::now() < stop_at {
                    let name = format!("w{w}-{i}");
                    i += 1;
                    let sent = client
                        .post(&url)
                        .form(&[
                            ("sessionId", sid.as_str()),
                            ("group[name]", name.as_str()),
                            ("retType", "json"),
                        ])
                        .send()
                        .await;
                    let outcome = match sent {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            (status, body["code"].as_str().unwrap_or("").to_owned())
                        }
                        Err(e) => panic!("the node dropped a request instead of answering: {e}"),
                    };
                    outcomes.push((name, outcome));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                outcomes
            })
        })
        .collect();
    let kept = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", "kept")],
        )
        .await;
    let kept_id = kept.assert_ok().json()["group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (client, sid, kept_id) = (client.clone(), sid.clone(), kept_id.clone());
            let url = server.api("projectsgroups/getById");
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while Instant::now() < stop_at {
                    let r = client
                        .post(&url)
                        .form(&[
                            ("sessionId", sid.as_str()),
                            ("id", &kept_id),
                            ("retType", "json"),
                        ])
                        .send()
                        .await
                        .expect("the node answers every read");
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    match status {
                        200 => assert_eq!(body["group"]["name"], "kept", "{body}"),
                        503 => assert_eq!(body["code"], "unavailable", "{body}"),
                        other => panic!("a read answered {other} during the outage: {body}"),
                    }
                    statuses.push(status);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let restarted = tokio::process::Command::new("pg_ctlcluster")
        .arg("--skip-systemctl-redirect")
        .arg(&version)
        .args(["main", "restart", "--", "-m", "immediate"])
        .status()
        .await
        .unwrap();
    assert!(restarted.success(), "pg_ctlcluster restart failed");

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for w in writers {
        for (name, (status, code)) in w.await.unwrap() {
            match status {
                200 => acknowledged.push(name),
                503 => {
                    assert_eq!(code, "unavailable");
                    refused += 1;
                }
                other => panic!("{name}: answered {other} {code} during the outage"),
            }
        }
    }
    let mut reads = (0, 0);
    for r in readers {
        for status in r.await.unwrap() {
            if status == 200 {
                reads.0 += 1;
            } else {
                reads.1 += 1;
            }
        }
    }
    eprintln!(
        "{} writes acknowledged, {refused} refused with 503; reads by key: {} answered, \
         {} refused with 503",
        acknowledged.len(),
        reads.0,
        reads.1
    );

    // The node recovers by itself, and every acknowledged write is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let all = loop {
        let r = server
            .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
            .await;
        if r.status == 200 {
            break r.json();
        }
        assert!(
            Instant::now() < deadline,
            "the node did not recover: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stored: std::collections::HashSet<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(*n))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(!acknowledged.is_empty());
}
