//! The OpenAPI 3.1 document (`/api/v2/openapi.json`, docs/openapi.md): public, made from
//! the endpoint table so that it names every call, valid by `openapi-spec-validator`,
//! and true of the server: schemathesis calls every operation with generated arguments
//! and checks that no answer is a server error and every JSON answer fits its schema.
//!
//! Needs `openapi-spec-validator` and `schemathesis` on the PATH (`.ci/run` installs them
//! with pip).
mod common;
use common::*;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use vesper::api::endpoints::ENDPOINTS;

const DOC: &str = "/api/v2/openapi.json";

/// Examples per operation and phase: enough to reach each argument, small enough that
/// a run stays within a couple of minutes on both backends. One worker, so that a run
/// is the same each time: two let schemathesis race requests against each other (it
/// found a 500 that way, see tests/files.rs), which is a hunt rather than a gate.
/// `VESPER_SCHEMATHESIS_EXAMPLES`, `_SEED` and `_WORKERS` change them for a hunt by hand.
const MAX_EXAMPLES: &str = "20";
const SEED: &str = "14";
const WORKERS: &str = "1";

fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn fetch_document(s: &TestServer) -> Value {
    let r = read(s.client.get(s.https(DOC)).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap().to_str().unwrap(),
        "application/json"
    );
    r.json()
}

#[tokio::test]
async fn the_document_names_every_endpoint_and_is_valid_openapi_3_1() {
    let s = TestServer::start().await;
    // No credentials: the description is public.
    let doc = fetch_document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for e in ENDPOINTS {
        let prefix = if e.is_write() { "post" } else { "get" };
        let path = format!("/api/v2/service/{prefix}/{}/{}", e.service, e.method);
        let item = paths
            .get(&path)
            .unwrap_or_else(|| panic!("{e:?} is not in the document at {path}"));
        let post = &item["post"];
        assert!(post.is_object(), "{e:?}: no POST");
        assert_eq!(post["summary"], e.summary, "{e:?}");
        assert!(post["requestBody"]["content"].is_object(), "{e:?}");
        operations += 1;
        if e.is_write() {
            assert!(item.get("get").is_none(), "{e:?}: a write takes POST only");
        } else {
            let get = &item["get"];
            assert!(get.is_object(), "{e:?}: a read takes GET");
            operations += 1;
            let names: Vec<&str> = get["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            for group in e.args {
                for a in *group {
                    assert!(names.contains(&a.name), "{e:?}: {} missing", a.name);
                }
            }
        }
    }
    assert_eq!(paths.len(), ENDPOINTS.len(), "one path per call, no other");
    assert!(operations > ENDPOINTS.len());
    // The multipart upload and a bracketed list argument, as described.
    let attach = &paths["/api/v2/service/post/activity/attachFiles"]["post"]["requestBody"];
    assert!(attach["content"]["multipart/form-data"].is_object());
    let project_add = &paths["/api/v2/service/post/projects/add"]["post"]["requestBody"];
    let form = &project_add["content"]["application/x-www-form-urlencoded"];
    assert_eq!(
        form["schema"]["properties"]["project[team][]"]["type"],
        "array"
    );
    assert_eq!(form["schema"]["required"][0], "project[name]");
    // The authentication forms.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in [
        "sessionHeader",
        "sessionArgument",
        "bearer",
        "basic",
        "login",
        "password",
    ] {
        assert!(schemes.contains_key(name), "{name}");
    }

    // A real validator of the OpenAPI 3.1 schema.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
        .expect("openapi-spec-validator (python3 -m pip install openapi-spec-validator)");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Objects of every kind, so that generated ids find some.
async fn seed(s: &TestServer, sid: &str) {
    let c = s.as_caller(sid);
    let (_, _, activity) = c.project_task_activity().await;
    c.group("seeded").await;
    c.attach(activity, "seed.txt", b"seeded file").await;
    let r = c
        .call(
            "tokens/add",
            &[("token[name]", "seed"), ("token[scope]", "read")],
        )
        .await;
    r.assert_ok();
    s.user("seed-user@example.com", 100, false).await;
}

/// Runs schemathesis against `s` with `sid` over the operations `filter` selects.
/// The command runs on a blocking thread: the server answers it from this runtime.
async fn schemathesis(s: &TestServer, sid: &str, work: &Path, filter: &[&str]) {
    let started = Instant::now();
    let base = s.https("");
    let mut cmd = Command::new("schemathesis");
    cmd.current_dir(work)
        .arg("run")
        .arg(s.https(DOC))
        .args(["--url", &base])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--header", &format!("X-Session-Id: {sid}")])
        .args(["--header", "Accept: application/json"])
        .args(["--tls-verify", "false"])
        .args([
            "--max-examples",
            &setting("VESPER_SCHEMATHESIS_EXAMPLES", MAX_EXAMPLES),
        ])
        .args(["--seed", &setting("VESPER_SCHEMATHESIS_SEED", SEED)])
        .args([
            "--workers",
            &setting("VESPER_SCHEMATHESIS_WORKERS", WORKERS),
        ])
        .args(["--no-shrink"])
        .args(filter)
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("schemathesis (python3 -m pip install schemathesis)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "schemathesis {filter:?}: {:.0?}\n{stdout}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures {filter:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every operation, JSON answers. Two run apart, on a server of their own with sessions
/// signed in before (the main run's failed signIns throttle signing in from this
/// address, and its users/update may end other sessions of the admin):
/// `authentication/signOut` ends the session it is sent with, and `users/remove` could
/// remove the user whose session the run uses once schemathesis has added another admin.
/// Nothing is left out.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    // The server's errors (RUST_LOG for more) beside schemathesis's report.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let work = tempfile::tempdir().unwrap();
    let apart = [
        "/api/v2/service/post/users/remove",
        "/api/v2/service/get/authentication/signOut",
    ];

    let s = TestServer::start().await;
    let admin = s.admin().await;
    seed(&s, &admin).await;
    let mut filter = Vec::new();
    for path in apart {
        filter.extend(["--exclude-path", path]);
    }
    schemathesis(&s, &admin, work.path(), &filter).await;

    let s = TestServer::start().await;
    let (first, second) = (s.admin().await, s.admin().await);
    seed(&s, &first).await;
    schemathesis(&s, &first, work.path(), &["--include-path", apart[0]]).await;
    schemathesis(&s, &second, work.path(), &["--include-path", apart[1]]).await;
}
