//! Workspaces by host name (section 12 of the contract): with a base domain, each
//! `NAME.<base domain>` is its own workspace, and nothing crosses between them.
mod common;
use common::*;

use std::sync::Arc;

use vesper::store::Store;

const BASE: &str = "vesper.test";

/// A server with a base domain, and its store opened beside it, as `vesper workspace`
/// opens it.
async fn server() -> (TestServer, Arc<dyn Store>) {
    let s = TestServer::start_with(|c| c.base_domain = Some(BASE.into())).await;
    let store = vesper::store::open(s.database_url().as_deref(), s.dir.path())
        .await
        .unwrap();
    (s, store)
}

/// Makes workspace `name` whose admin has the default admin's email and password, and
/// answers the server as reached at its host.
async fn workspace(s: &TestServer, store: &dyn Store, name: &str) -> TestServer {
    vesper::commands::add_workspace(store, name, ADMIN_EMAIL, ADMIN_PASSWORD.into())
        .await
        .unwrap();
    s.at_host(&format!("{name}.{BASE}"))
}

#[tokio::test]
async fn a_host_that_names_no_workspace_is_unknown_workspace() {
    let (s, store) = server().await;
    let acme = workspace(&s, &*store, "acme").await;
    acme.admin().await;
    for host in [
        format!("nope.{BASE}"),
        BASE.to_owned(),
        format!("a.acme.{BASE}"),
        "localhost".to_owned(),
    ] {
        let other = s.at_host(&host);
        let r = other
            .call(
                "authentication/signIn",
                &[("login", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
            )
            .await;
        r.assert_fail(404, "unknown_workspace");
        let r = other.get("projects/getAll", &[]).await;
        r.assert_fail(404, "unknown_workspace");
        // The web page has no sign-in form there either.
        let page = other
            .client
            .get(other.https("/signin"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 404, "{host}");
        // The liveness check is the server's, not a workspace's.
        let health = other
            .client
            .get(other.https("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{host}");
    }
    // The address itself names no workspace once a base domain is set.
    s.get("projects/getAll", &[])
        .await
        .assert_fail(404, "unknown_workspace");
    // Any case, the default workspace by its name.
    s.at_host(&format!("ACME.{}", BASE.to_uppercase()))
        .admin()
        .await;
    s.at_host(&format!("default.{BASE}")).admin().await;
}

/// The README's block of workspace examples: the fenced `sh` block holding its marker.
fn readme_block() -> String {
    let readme = include_str!("../README.md");
    let marker = "# tested: tests/workspaces.rs";
    let at = readme
        .find(marker)
        .expect("the README's workspace examples");
    let start = readme[..at].rfind("```sh\n").expect("the block's opening") + "```sh\n".len();
    let end = at + readme[at..].find("```").expect("the block's end");
    readme[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_as_written() {
    let s = TestServer::start_with(|c| c.base_domain = Some("vesper.example".into())).await;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vesper"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // Every command must succeed; curl's answers are kept, each on its line.
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl -sS \"$@\"; echo; }}\n{}",
        readme_block()
    );
    let mut command = std::process::Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("PORT", s.addr.port().to_string())
        .env("VESPER_DATA_DIR", s.dir.path())
        .env_remove("VESPER_CONFIG")
        .env_remove("VESPER_DATABASE_URL");
    if let Some(url) = s.database_url() {
        command.env("VESPER_DATABASE_URL", url);
    }
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Created workspace acme"), "{stdout}");
    assert!(stdout.contains("acme\t"), "the list: {stdout}");
    assert!(
        stdout.contains("\"email\":\"ann@acme.example\""),
        "{stdout}"
    );
    assert!(stdout.contains("code=\"unknown_workspace\""), "{stdout}");
    assert!(stdout.contains("Removed workspace acme"), "{stdout}");
    // What the block left: the default workspace alone.
    let store = vesper::store::open(s.database_url().as_deref(), s.dir.path())
        .await
        .unwrap();
    let names: Vec<String> = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["default"]);
    s.stop().await;
}
