mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_and_reads_itself_in_xml_and_json() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .get("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("email").as_deref(), Some(ADMIN_EMAIL));
    assert_eq!(r.xml_text("securityLevel").as_deref(), Some("0"));
    let r = server
        .call_json("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["user"]["email"], ADMIN_EMAIL);
    assert_eq!(r.json()["user"]["id"], "1");
    server.stop().await;
}
