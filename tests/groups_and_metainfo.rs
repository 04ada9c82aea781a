mod common;
use common::*;

use serde_json::json;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

async fn send(req: reqwest::RequestBuilder) -> Resp {
    read(req.send().await.unwrap()).await
}

/// Every group's (id, name), read as the admin, in order.
async fn all_groups(server: &TestServer, sid: &str) -> Vec<(String, String)> {
    server
        .as_caller(sid)
        .all(Kind::Group, &[])
        .await
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_owned(),
                g["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The text of a direct child element.
fn child_text(node: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    node.children()
        .find(|n| n.has_tag_name(tag))
        .map(|n| n.text().unwrap_or("").to_owned())
}

/// Checks an XML list answer of (id, name) pairs under `element`.
fn assert_xml_id_name_list(r: &Resp, element: &str, expected: &[(i64, &str)]) {
    r.assert_ok();
    let doc = r.xml();
    let root = doc.root_element();
    assert!(root.has_tag_name("response"), "{}", r.body);
    let items = root
        .children()
        .find(|n| n.has_tag_name("items"))
        .unwrap_or_else(|| panic!("no items element: {}", r.body));
    let n = expected.len().to_string();
    assert_eq!(items.attribute("count"), Some(n.as_str()), "{}", r.body);
    assert_eq!(items.attribute("total"), Some(n.as_str()), "{}", r.body);
    assert_eq!(items.attribute("offset"), Some("0"), "{}", r.body);
    let elements: Vec<_> = items.children().filter(|n| n.is_element()).collect();
    assert_eq!(elements.len(), expected.len(), "{}", r.body);
    for (el, (id, name)) in elements.iter().zip(expected) {
        assert!(el.has_tag_name(element), "{}", r.body);
        assert_eq!(child_text(*el, "id"), Some(id.to_string()), "{}", r.body);
        assert_eq!(
            child_text(*el, "name").as_deref(),
            Some(*name),
            "{}",
            r.body
        );
    }
}

/// Checks a JSON list answer of (id, name) pairs.
fn assert_json_id_name_list(r: &Resp, expected: &[(i64, &str)]) {
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["count"], expected.len(), "{}", r.body);
    assert_eq!(j["total"], expected.len(), "{}", r.body);
    assert_eq!(j["offset"], 0, "{}", r.body);
    let items = j["items"].as_array().expect("items is a list");
    assert_eq!(items.len(), expected.len());
    for (item, (id, name)) in items.iter().zip(expected) {
        assert_eq!(item["id"], id.to_string(), "{}", r.body);
        assert_eq!(item["name"], *name, "{}", r.body);
    }
}

const STATUSES: [(i64, &str); 3] = [(10, "open"), (20, "on hold"), (30, "done")];
const PRIORITIES: [(i64, &str); 4] = [(1, "low"), (2, "normal"), (3, "high"), (4, "urgent")];

// ---------------------------------------------------------------------------------------
// metainfo
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_statuses_lists_open_on_hold_and_done_in_xml() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .get("metainfo/getStatuses", &[("sessionId", &sid)])
        .await;
    assert!(
        r.body.contains(r#"<items count="3" total="3" offset="0">"#),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<status><id>10</id><name>open</name></status>"),
        "{}",
        r.body
    );
    assert_xml_id_name_list(&r, "status", &STATUSES);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_statuses_lists_open_on_hold_and_done_in_json() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call_json("metainfo/getStatuses", &[("sessionId", &sid)])
        .await;
    assert_json_id_name_list(&r, &STATUSES);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_priorities_lists_low_to_urgent_in_xml() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .get("metainfo/getPriorities", &[("sessionId", &sid)])
        .await;
    assert!(
        r.body.contains(r#"<items count="4" total="4" offset="0">"#),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<priority><id>1</id><name>low</name></priority>"),
        "{}",
        r.body
    );
    assert_xml_id_name_list(&r, "priority", &PRIORITIES);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_priorities_lists_low_to_urgent_in_json() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call_json("metainfo/getPriorities", &[("sessionId", &sid)])
        .await;
    assert_json_id_name_list(&r, &PRIORITIES);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metainfo_is_readable_by_every_role_and_not_without_a_session() {
    let server = TestServer::start().await;
    for (email, level) in [
        ("u@example.com", 100),
        ("x@example.com", 150),
        ("c@example.com", 200),
    ] {
        let (_, sid) = server.user(email, level, false).await;
        assert_json_id_name_list(
            &server
                .call_json("metainfo/getStatuses", &[("sessionId", &sid)])
                .await,
            &STATUSES,
        );
        assert_json_id_name_list(
            &server
                .call_json("metainfo/getPriorities", &[("sessionId", &sid)])
                .await,
            &PRIORITIES,
        );
    }
    server
        .get("metainfo/getStatuses", &[])
        .await
        .assert_fail(401, "auth_required");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metainfo_answers_json_for_an_accept_header() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(
        server
            .client
            .get(server.api("metainfo/getStatuses"))
            .query(&[("sessionId", sid.as_str())])
            .header("Accept", "application/json"),
    )
    .await;
    assert_json_id_name_list(&r, &STATUSES);
    let r = send(
        server
            .client
            .get(server.api("metainfo/getPriorities"))
            .query(&[("sessionId", sid.as_str()), ("retType", "JSON")]),
    )
    .await;
    assert_json_id_name_list(&r, &PRIORITIES);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// projectsgroups: the round trip
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_go_through_add_get_update_and_remove_in_xml() {
    let server = TestServer::start().await;
    let sid = server.admin().await;

    let r = server
        .call(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", "Clients")],
        )
        .await;
    r.assert_ok();
    let doc = r.xml();
    let group = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("group"))
        .unwrap_or_else(|| panic!("no group element: {}", r.body));
    let id = child_text(group, "id").expect("an id");
    assert!(id.parse::<i64>().is_ok(), "{id}");
    assert_eq!(child_text(group, "name").as_deref(), Some("Clients"));
    assert_eq!(child_text(group, "can_edit").as_deref(), Some("1"));
    let created = child_text(group, "createdAt").unwrap();
    assert_eq!(created.len(), "YYYY-MM-DD HH:MM:SS".len(), "{created}");

    let r = server
        .get(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", &id)],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(id.clone()));
    assert_eq!(r.xml_text("name").as_deref(), Some("Clients"));

    let r = server
        .call(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", "Customers"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(id.clone()));
    assert_eq!(r.xml_text("name").as_deref(), Some("Customers"));

    let r = server
        .get("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert!(
        r.body.contains(r#"<items count="1" total="1" offset="0">"#),
        "{}",
        r.body
    );
    assert_eq!(r.xml_text("name").as_deref(), Some("Customers"));

    let r = server
        .call("projectsgroups/remove", &[("sessionId", &sid), ("id", &id)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(id.clone()));

    server
        .get(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", &id)],
        )
        .await
        .assert_fail(404, "not_found");
    let r = server
        .get("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    assert!(
        r.body.contains(r#"<items count="0" total="0" offset="0""#),
        "{}",
        r.body
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_go_through_add_get_update_and_remove_in_json() {
    let server = TestServer::start().await;
    let sid = server.admin().await;

    let r = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", "Alpha")],
        )
        .await;
    r.assert_ok();
    let j = r.json();
    let id = j["group"]["id"]
        .as_str()
        .expect("id is a string")
        .to_owned();
    assert_eq!(j["group"]["name"], "Alpha");
    assert_eq!(j["group"]["can_edit"], true);
    let second = server.as_caller(&sid).group("Beta").await.to_string();
    assert!(second.parse::<i64>().unwrap() > id.parse::<i64>().unwrap());

    let r = server
        .call_json(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", &id)],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["id"], id);
    assert_eq!(r.json()["group"]["name"], "Alpha");

    let r = server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", "Alpha 2"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Alpha 2");

    let r = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["count"], 2);
    assert_eq!(j["total"], 2);
    assert_eq!(j["offset"], 0);
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![
            (id.clone(), "Alpha 2".to_owned()),
            (second.clone(), "Beta".to_owned())
        ]
    );

    let r = server
        .call_json("projectsgroups/remove", &[("sessionId", &sid), ("id", &id)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], id);
    server
        .call_json(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", &id)],
        )
        .await
        .assert_fail(404, "not_found");
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(second, "Beta".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_update_example_with_the_projectsgroups_alias_works() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let id = server.as_caller(&sid).group("Old name").await.to_string();
    // The reference's own example: group[id]=N&projectsgroups[name]=X, in the query string.
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/update"))
            .query(&[
                ("group[id]", id.as_str()),
                ("projectsgroups[name]", "New name"),
                ("sessionId", sid.as_str()),
            ]),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(id.clone()));
    assert_eq!(r.xml_text("name").as_deref(), Some("New name"));
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id.clone(), "New name".to_owned())]
    );
    // Entirely under the alias, too.
    server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("projectsgroups[id]", &id),
                ("projectsgroups[name]", "Third name"),
            ],
        )
        .await
        .assert_ok();
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Third name".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_accepts_the_projectsgroups_alias() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("projectsgroups[name]", "Aliased")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Aliased");
    let id = r.json()["group"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Aliased".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_trimmed_on_add_and_update() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", "  \t Padded  \n")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Padded");
    let id = r.json()["group"]["id"].as_str().unwrap().to_owned();
    let r = server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", "   Inner  space  "),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Inner  space");
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Inner  space".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_update_without_a_name_keeps_the_name() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let id = server.as_caller(&sid).group("Keep me").await.to_string();
    let r = server
        .call_json(
            "projectsgroups/update",
            &[("sessionId", &sid), ("group[id]", &id)],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Keep me");
    // Read-only and unknown attributes are ignored.
    let r = server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[can_edit]", "0"),
                ("group[createdAt]", "2001-01-01 00:00:00"),
                ("group[colour]", "red"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Keep me");
    assert_ne!(r.json()["group"]["createdAt"], "2001-01-01 00:00:00");
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Keep me".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_given_on_add_is_ignored() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call_json(
            "projectsgroups/add",
            &[
                ("sessionId", &sid),
                ("group[id]", "777"),
                ("group[name]", "Fresh"),
            ],
        )
        .await;
    r.assert_ok();
    assert_ne!(r.json()["group"]["id"], "777");
    server
        .call_json(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", "777")],
        )
        .await
        .assert_fail(404, "not_found");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// projectsgroups: validation and bad arguments
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_without_a_name_is_422_naming_group_name() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call("projectsgroups/add", &[("sessionId", &sid)])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[name]".to_owned()]);
    let r = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", "")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[name]".to_owned()]);
    assert_eq!(r.json()["errors"][0]["code"], "required");
    // The field is named group[name] even when the alias was used.
    let r = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("projectsgroups[name]", "")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[name]".to_owned()]);
    assert!(all_groups(&server, &sid).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whitespace_only_name_is_422() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", "   \t  ")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[name]".to_owned()]);
    let id = server.as_caller(&sid).group("Solid").await.to_string();
    let r = server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", "    "),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[name]".to_owned()]);
    // Clearing the name with an empty value is refused the same way.
    let r = server
        .call_json(
            "projectsgroups/update",
            &[("sessionId", &sid), ("group[id]", &id), ("group[name]", "")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Solid".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_of_256_characters_is_422_and_255_is_fine() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let long = "n".repeat(256);
    let r = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", &long)],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[name]".to_owned()]);
    assert_eq!(r.json()["errors"][0]["code"], "too_long");
    // Characters, not bytes: 255 multi-byte characters are accepted.
    let just_right = "é".repeat(255);
    let id = server.as_caller(&sid).group(&just_right).await.to_string();
    let r = server
        .call(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", &"é".repeat(256)),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[name]".to_owned()]);
    assert_eq!(all_groups(&server, &sid).await, vec![(id, just_right)]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_id_is_422() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    server.as_caller(&sid).group("Untouched").await.to_string();
    let r = server
        .call_json(
            "projectsgroups/update",
            &[("sessionId", &sid), ("group[name]", "X")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["group[id]".to_owned()]);
    let r = server
        .call("projectsgroups/remove", &[("sessionId", &sid)])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["id".to_owned()]);
    server
        .call_json("projectsgroups/remove", &[("sessionId", &sid), ("id", "")])
        .await
        .assert_fail(422, "validation_failed");
    server
        .get("projectsgroups/getById", &[("sessionId", &sid)])
        .await
        .assert_fail(422, "validation_failed");
    assert_eq!(all_groups(&server, &sid).await.len(), 1);
    assert_eq!(all_groups(&server, &sid).await[0].1, "Untouched");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_numeric_id_is_400_invalid_argument() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = server
        .call_json(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", "abc")],
        )
        .await;
    r.assert_fail(400, "invalid_argument");
    assert!(
        r.json()["error"].as_str().unwrap().contains("id"),
        "{}",
        r.body
    );
    server
        .get(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", "abc")],
        )
        .await
        .assert_fail(400, "invalid_argument");
    server
        .call(
            "projectsgroups/remove",
            &[("sessionId", &sid), ("id", "abc")],
        )
        .await
        .assert_fail(400, "invalid_argument");
    server
        .call(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", "abc"),
                ("group[name]", "X"),
            ],
        )
        .await
        .assert_fail(400, "invalid_argument");
    server
        .call(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", "1.5")],
        )
        .await
        .assert_fail(400, "invalid_argument");
    assert!(all_groups(&server, &sid).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_404_not_found() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let id = server.as_caller(&sid).group("Real").await.to_string();
    server
        .get(
            "projectsgroups/getById",
            &[("sessionId", &sid), ("id", "9999")],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", "9999"),
                ("group[name]", "Ghost"),
            ],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call(
            "projectsgroups/remove",
            &[("sessionId", &sid), ("id", "9999")],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call(
            "projectsgroups/remove",
            &[("sessionId", &sid), ("id", "-1")],
        )
        .await
        .assert_fail(404, "not_found");
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Real".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_group_twice_is_404_the_second_time() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let id = server.as_caller(&sid).group("Once").await.to_string();
    let r = server
        .call("projectsgroups/remove", &[("sessionId", &sid), ("id", &id)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(id.clone()));
    server
        .call("projectsgroups/remove", &[("sessionId", &sid), ("id", &id)])
        .await
        .assert_fail(404, "not_found");
    server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", "Back"),
            ],
        )
        .await
        .assert_fail(404, "not_found");
    assert!(all_groups(&server, &sid).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_unsafe_characters_in_a_name_are_400_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    for bad in [
        "bell\u{7}",
        "nul\u{0}byte",
        "esc\u{1b}[0m",
        "\u{FFFE}",
        "\u{FFFF}x",
    ] {
        let r = server
            .call_json(
                "projectsgroups/add",
                &[("sessionId", &sid), ("group[name]", bad)],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        let r = server
            .call(
                "projectsgroups/add",
                &[("sessionId", &sid), ("group[name]", bad)],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
    }
    assert!(all_groups(&server, &sid).await.is_empty());
    let id = server.as_caller(&sid).group("Clean").await.to_string();
    server
        .call(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", "dirty\u{2}"),
            ],
        )
        .await
        .assert_fail(400, "invalid_argument");
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Clean".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_a_name_is_stored_and_escaped_in_xml() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let name = r#"<b>R&D</b> "quotes" 'apos' ünïcødé"#;
    let r = server
        .call(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", name)],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("name").as_deref(), Some(name));
    assert!(!r.body.contains("<b>"), "{}", r.body);
    let r = server
        .get("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("name").as_deref(), Some(name));
    let j = server
        .call_json("projectsgroups/getAll", &[("sessionId", &sid)])
        .await
        .json();
    assert_eq!(j["items"][0]["name"], name);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// projectsgroups: who may do what
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_may_add_update_and_remove_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, sid) = server.user("user@example.com", 100, false).await;
    let r = server
        .call_json(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", "Mine")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["can_edit"], true);
    let id = r.json()["group"]["id"].as_str().unwrap().to_owned();
    let r = server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &id),
                ("group[name]", "Still mine"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Still mine");
    // A user may change a group the admin made, too.
    let admins = server.as_caller(&admin).group("Admin's").await.to_string();
    server
        .call_json(
            "projectsgroups/update",
            &[
                ("sessionId", &sid),
                ("group[id]", &admins),
                ("group[name]", "Renamed"),
            ],
        )
        .await
        .assert_ok();
    let r = server
        .call_json("projectsgroups/remove", &[("sessionId", &sid), ("id", &id)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], id);
    assert_eq!(
        all_groups(&server, &admin).await,
        vec![(admins, "Renamed".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_users_and_clients_read_groups_but_cannot_change_them() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let id = server.as_caller(&admin).group("Fixed").await.to_string();
    for (email, level) in [("ext@example.com", 150), ("client@example.com", 200)] {
        let (_, sid) = server.user(email, level, true).await;

        let r = server
            .get("projectsgroups/getAll", &[("sessionId", &sid)])
            .await;
        r.assert_ok();
        assert_eq!(r.xml_text("name").as_deref(), Some("Fixed"));
        let r = server
            .call_json(
                "projectsgroups/getById",
                &[("sessionId", &sid), ("id", &id)],
            )
            .await;
        r.assert_ok();
        assert_eq!(r.json()["group"]["name"], "Fixed");

        server
            .call_json(
                "projectsgroups/add",
                &[("sessionId", &sid), ("group[name]", "Nope")],
            )
            .await
            .assert_fail(403, "forbidden");
        server
            .call(
                "projectsgroups/add",
                &[("sessionId", &sid), ("projectsgroups[name]", "Nope")],
            )
            .await
            .assert_fail(403, "forbidden");
        server
            .call_json(
                "projectsgroups/update",
                &[
                    ("sessionId", &sid),
                    ("group[id]", &id),
                    ("group[name]", "Hijacked"),
                ],
            )
            .await
            .assert_fail(403, "forbidden");
        server
            .call(
                "projectsgroups/update",
                &[
                    ("sessionId", &sid),
                    ("group[id]", &id),
                    ("projectsgroups[name]", "Hijacked"),
                ],
            )
            .await
            .assert_fail(403, "forbidden");
        server
            .call_json("projectsgroups/remove", &[("sessionId", &sid), ("id", &id)])
            .await
            .assert_fail(403, "forbidden");

        // Nothing changed.
        assert_eq!(
            all_groups(&server, &admin).await,
            vec![(id.clone(), "Fixed".to_owned())]
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_edit_is_one_for_admins_and_users_and_zero_for_externals_and_clients() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let id = server.as_caller(&admin).group("Shared").await.to_string();
    let (_, user) = server.user("user@example.com", 100, false).await;
    let (_, external) = server.user("ext@example.com", 150, false).await;
    let (_, client) = server.user("client@example.com", 200, false).await;
    for (sid, xml, json) in [
        (&admin, "1", true),
        (&user, "1", true),
        (&external, "0", false),
        (&client, "0", false),
    ] {
        let r = server
            .get("projectsgroups/getById", &[("sessionId", sid), ("id", &id)])
            .await;
        r.assert_ok();
        assert_eq!(r.xml_text("can_edit").as_deref(), Some(xml), "{}", r.body);
        let r = server
            .get("projectsgroups/getAll", &[("sessionId", sid)])
            .await;
        assert_eq!(r.xml_text("can_edit").as_deref(), Some(xml), "{}", r.body);
        let r = server
            .call_json("projectsgroups/getById", &[("sessionId", sid), ("id", &id)])
            .await;
        assert_eq!(r.json()["group"]["can_edit"], json, "{}", r.body);
        let r = server
            .call_json("projectsgroups/getAll", &[("sessionId", sid)])
            .await;
        assert_eq!(r.json()["items"][0]["can_edit"], json, "{}", r.body);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_need_a_caller() {
    let server = TestServer::start().await;
    server
        .get("projectsgroups/getAll", &[])
        .await
        .assert_fail(401, "auth_required");
    server
        .call("projectsgroups/add", &[("group[name]", "Anon")])
        .await
        .assert_fail(401, "auth_required");
    let admin = server.admin().await;
    assert!(all_groups(&server, &admin).await.is_empty());
    // login + password work as well as a session.
    let r = server
        .call_json(
            "projectsgroups/add",
            &[
                ("login", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("group[name]", "By password"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "By password");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// projectsgroups: body types and limits
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_body_over_one_mebibyte_is_413_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let padding = "p".repeat(1024 * 1024 + 10);
    let r = server
        .call_json(
            "projectsgroups/add",
            &[
                ("sessionId", &sid),
                ("group[name]", "Huge"),
                ("padding", &padding),
            ],
        )
        .await;
    r.assert_fail(413, "too_large");
    // A name alone over the limit, too.
    let r = server
        .call(
            "projectsgroups/add",
            &[("sessionId", &sid), ("group[name]", &padding)],
        )
        .await;
    r.assert_fail(413, "too_large");
    assert!(all_groups(&server, &sid).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_body_over_one_mebibyte_is_413_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.clone())
        .text("group[name]", "Huge")
        .text("padding", "p".repeat(1024 * 1024 + 10));
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .multipart(form),
    )
    .await;
    r.assert_fail(413, "too_large");
    assert!(all_groups(&server, &sid).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_plain_body_is_415() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .query(&[("sessionId", sid.as_str())])
            .header("Content-Type", "text/plain")
            .body("group[name]=Plain"),
    )
    .await;
    r.assert_fail(415, "unsupported_media_type");
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .query(&[("sessionId", sid.as_str()), ("retType", "json")])
            .header("Content-Type", "application/xml")
            .body("<group><name>X</name></group>"),
    )
    .await;
    r.assert_fail(415, "unsupported_media_type");
    assert!(all_groups(&server, &sid).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_works_for_add_and_update() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r =
        send(server.client.post(server.api("projectsgroups/add")).json(
            &json!({"sessionId": sid, "retType": "json", "group": {"name": "  From JSON "}}),
        ))
        .await;
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["group"]["name"], "From JSON");
    let id = j["group"]["id"].as_str().unwrap().to_owned();
    // The alias, and a numeric id, in JSON.
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/update"))
            .json(&json!({
                "sessionId": sid,
                "retType": "json",
                "group": {"id": id.parse::<i64>().unwrap()},
                "projectsgroups": {"name": "Renamed by JSON"}
            })),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "Renamed by JSON");
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "Renamed by JSON".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_json_body_is_400_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .query(&[("sessionId", sid.as_str())])
            .header("Content-Type", "application/json")
            .body(r#"{"group": {"name": "Broken"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .query(&[("sessionId", sid.as_str())])
            .json(&json!(["not", "an", "object"])),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(all_groups(&server, &sid).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_body_works_for_add() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let form = reqwest::multipart::Form::new()
        .text("sessionId", sid.clone())
        .text("retType", "json")
        .text("group[name]", "From multipart");
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .multipart(form),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "From multipart");
    let id = r.json()["group"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        all_groups(&server, &sid).await,
        vec![(id, "From multipart".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_value_wins_over_the_query_string() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let r = send(
        server
            .client
            .post(server.api("projectsgroups/add"))
            .query(&[("group[name]", "From query"), ("retType", "json")])
            .form(&[("sessionId", sid.as_str()), ("group[name]", "From body")]),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["group"]["name"], "From body");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_list_in_id_order() {
    let server = TestServer::start().await;
    let sid = server.admin().await;
    let mut ids = Vec::new();
    for name in ["Zulu", "Alpha", "Mike"] {
        ids.push(server.as_caller(&sid).group(name).await.to_string());
    }
    let got = all_groups(&server, &sid).await;
    assert_eq!(
        got,
        vec![
            (ids[0].clone(), "Zulu".to_owned()),
            (ids[1].clone(), "Alpha".to_owned()),
            (ids[2].clone(), "Mike".to_owned()),
        ]
    );
    let r = server
        .get("projectsgroups/getAll", &[("sessionId", &sid)])
        .await;
    assert!(
        r.body.contains(r#"<items count="3" total="3" offset="0">"#),
        "{}",
        r.body
    );
    server.stop().await;
}
