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
