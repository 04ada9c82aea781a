mod common;
use common::*;

use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Asserts a filtered getList returns exactly these ids (and a total to match).
async fn assert_filter(server: &TestServer, sid: &str, params: &[(&str, &str)], expected: &[i64]) {
    let (ids, total) = server
        .as_caller(sid)
        .list(Kind::Project, params)
        .await
        .ids_total();
    assert_eq!(ids, expected, "filter {params:?}");
    assert_eq!(total, expected.len() as i64, "filter {params:?}");
}

/// POSTs a JSON body (with `retType=json`).
async fn post_json(server: &TestServer, call: &str, mut body: Value) -> Resp {
    body["retType"] = json!("json");
    read(
        server
            .client
            .post(server.api(call))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The team of a JSON project, as numbers.
fn team_of(p: &Value) -> Vec<i64> {
    p["team"]
        .as_array()
        .unwrap_or_else(|| panic!("no team: {p}"))
        .iter()
        .map(|u| u.as_i64().expect("team ids are numbers"))
        .collect()
}

/// The text of a direct child of an XML node.
fn child_text(node: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    node.children()
        .find(|c| c.has_tag_name(tag))
        .map(|c| c.text().unwrap_or("").to_owned())
}

/// The ids of the `project` elements of an XML answer.
fn xml_project_ids(r: &Resp) -> Vec<i64> {
    let doc = r.xml();
    doc.descendants()
        .filter(|n| n.has_tag_name("project"))
        .map(|p| child_text(p, "id").expect("an id").parse().unwrap())
        .collect()
}

/// The team of the first `project` element of an XML answer, if it has one.
fn xml_team(r: &Resp) -> Option<Vec<i64>> {
    let doc = r.xml();
    let project = doc
        .descendants()
        .find(|n| n.has_tag_name("project"))
        .expect("a project");
    let team = project.children().find(|c| c.has_tag_name("team"))?;
    Some(
        team.children()
            .filter(|c| c.has_tag_name("user"))
            .map(|u| u.text().unwrap().parse().unwrap())
            .collect(),
    )
}

/// Asserts a refused request: status, code, and the list of projects unchanged.
async fn assert_nothing_changed(server: &TestServer, admin: &str, before: &[Value]) {
    assert_eq!(
        server
            .as_caller(admin)
            .all(Kind::Project, &[("loadTeam", "1")])
            .await,
        before
    );
}

// ---------------------------------------------------------------------------------------
// Add, read, update, remove in XML and JSON
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_goes_through_add_get_update_list_and_remove_in_xml() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let ann_s = ann.to_string();

    let r = server
        .call(
            "projects/add",
            &[
                ("sessionId", &admin),
                ("project[name]", "  Site <&> "),
                ("project[description]", "The web site"),
                ("project[team][]", &ann_s),
                ("project[hidden]", "1"),
                ("project[startDate]", "2024-03-01"),
                ("project[endDate]", "2024-04-01 12:30:00"),
            ],
        )
        .await;
    r.assert_ok();
    assert!(r.body.starts_with("<?xml"), "{}", r.body);
    let id: i64 = r.xml_text("id").unwrap().parse().unwrap();
    assert_eq!(r.xml_text("name").unwrap(), "Site <&>");
    assert_eq!(r.xml_text("hidden").unwrap(), "1");
    assert_eq!(r.xml_text("flag").unwrap(), "0");
    assert_eq!(r.xml_text("startDate").unwrap(), "2024-03-01 00:00:00");
    assert_eq!(r.xml_text("endDate").unwrap(), "2024-04-01 12:30:00");
    assert_eq!(r.xml_text("groupId").unwrap(), "");
    assert_eq!(r.xml_text("can_edit").unwrap(), "1");
    assert_eq!(xml_team(&r), Some(vec![ann]));

    let r = server
        .call(
            "projects/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("description").unwrap(), "The web site");
    assert_eq!(xml_team(&r), Some(vec![ann]));

    let r = server
        .call(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &id.to_string()),
                ("project[priority]", "4"),
                ("project[hidden]", "false"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("priority").unwrap(), "4");
    assert_eq!(r.xml_text("hidden").unwrap(), "0");
    assert_eq!(r.xml_text("name").unwrap(), "Site <&>");

    let second = as_admin.add(Kind::Project, &[("name", "Second")]).await;
    for call in ["projects/getList", "projects/getAll"] {
        let r = server.call(call, &[("sessionId", &admin)]).await;
        r.assert_ok();
        let doc = r.xml();
        let items = doc
            .descendants()
            .find(|n| n.has_tag_name("items"))
            .expect("items");
        assert_eq!(items.attribute("count"), Some("2"), "{}", r.body);
        assert_eq!(items.attribute("total"), Some("2"), "{}", r.body);
        assert_eq!(items.attribute("offset"), Some("0"), "{}", r.body);
        assert_eq!(xml_project_ids(&r), [id, second], "{call}");
    }

    let r = server
        .call(
            "projects/remove",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id").unwrap(), id.to_string());
    let r = server
        .call(
            "projects/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_fail(404, "not_found");
    assert_eq!(
        as_admin.list(Kind::Project, &[]).await.ids_total(),
        (vec![second], 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_goes_through_add_get_update_list_and_remove_in_json() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let group = as_admin.group("Clients").await;

    let r = server
        .call_json(
            "projects/add",
            &[
                ("sessionId", &admin),
                ("project[name]", "Site"),
                ("project[tags]", " web , design ,, "),
                ("project[groupId]", &group.to_string()),
                ("project[team]", &ann.to_string()),
                ("project[flag]", "3"),
                ("project[notifyClient]", "yes"),
            ],
        )
        .await;
    r.assert_ok();
    let p = r.json()["project"].clone();
    let id = id_of(&p);
    assert_eq!(p["name"], "Site");
    assert_eq!(p["tags"], "web,design");
    assert_eq!(p["groupId"], json!(group), "references are numbers");
    assert_eq!(p["flag"], 3);
    assert_eq!(p["notifyClient"], true);
    assert_eq!(p["hidden"], false);
    assert_eq!(p["description"], Value::Null);
    assert_eq!(p["endDate"], Value::Null);
    assert_eq!(p["can_edit"], true);
    assert_eq!(team_of(&p), [ann]);
    let created = p["createdAt"].as_str().unwrap();
    assert_eq!(created.len(), 19, "YYYY-MM-DD HH:MM:SS: {created}");
    assert_eq!(&created[10..11], " ");

    assert_eq!(as_admin.get(Kind::Project, id).await, p);

    let updated = as_admin
        .update(Kind::Project, id, &[("status", "20")])
        .await;
    assert_eq!(updated["status"], 20);
    assert_eq!(updated["name"], "Site");
    assert_eq!(as_admin.get(Kind::Project, id).await, updated);

    let (ids, total) = as_admin.list(Kind::Project, &[]).await.ids_total();
    assert_eq!((ids, total), (vec![id], 1));
    let all = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    assert_eq!(all, [updated]);

    let r = server
        .call_json(
            "projects/remove",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], json!(id.to_string()));
    server
        .call_json(
            "projects/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await
        .assert_fail(404, "not_found");
    assert!(as_admin
        .all(Kind::Project, &[("loadTeam", "1")])
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_takes_the_defaults_and_the_caller_as_owner() {
    let server = TestServer::start().await;
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    let id = server
        .as_caller(&ann_s)
        .add(Kind::Project, &[("name", "Mine")])
        .await;
    let p = server.as_caller(&ann_s).get(Kind::Project, id).await;
    assert_eq!(p["priority"], 2);
    assert_eq!(p["status"], 10);
    assert_eq!(p["flag"], 0);
    assert_eq!(p["hidden"], false);
    assert_eq!(p["ownerId"], json!(ann));
    assert_eq!(p["groupId"], Value::Null);
    assert_eq!(p["description"], Value::Null);
    assert_eq!(p["tags"], Value::Null);
    assert_eq!(p["startDate"], Value::Null);
    assert_eq!(p["notifyProjectTeam"], false);
    assert_eq!(p["notifyClient"], false);
    assert_eq!(p["can_edit"], true);
    assert_eq!(team_of(&p), Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_and_read_only_attributes_given_on_add_are_ignored() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let first = as_admin.add(Kind::Project, &[("name", "First")]).await;
    let r = server
        .call_json(
            "projects/add",
            &[
                ("sessionId", &admin),
                ("project[id]", &first.to_string()),
                ("project[name]", "Second"),
                ("project[createdAt]", "2000-01-01 00:00:00"),
                ("project[can_edit]", "0"),
            ],
        )
        .await;
    r.assert_ok();
    let p = r.json()["project"].clone();
    assert_ne!(id_of(&p), first);
    assert_ne!(p["createdAt"], "2000-01-01 00:00:00");
    assert_eq!(p["can_edit"], true);
    assert_eq!(as_admin.get(Kind::Project, first).await["name"], "First");
}

// ---------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_is_read_from_brackets_indexes_a_comma_list_and_a_json_array() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let (bob, _) = server.user("bob@example.com", 150, false).await;
    let (a, b) = (ann.to_string(), bob.to_string());

    let brackets = as_admin
        .add(
            Kind::Project,
            &[("name", "Brackets"), ("team[]", &a), ("team[]", &b)],
        )
        .await;
    let indexes = as_admin
        .add(
            Kind::Project,
            &[("name", "Indexes"), ("team[0]", &a), ("team[1]", &b)],
        )
        .await;
    let comma = format!("{ann}, {bob}");
    let commas = as_admin
        .add(Kind::Project, &[("name", "Commas"), ("team", &comma)])
        .await;
    let r = post_json(
        &server,
        "projects/add",
        json!({"sessionId": admin, "project": {"name": "Json", "team": [ann, bob]}}),
    )
    .await;
    r.assert_ok();
    let from_json = id_of(&r.json()["project"]);
    assert_eq!(team_of(&r.json()["project"]), [ann, bob]);

    for id in [brackets, indexes, commas, from_json] {
        assert_eq!(
            team_of(&as_admin.get(Kind::Project, id).await),
            [ann, bob],
            "project {id}"
        );
    }

    // A duplicate is dropped; an update replaces the team; an empty value clears it.
    let p = as_admin
        .update(
            Kind::Project,
            brackets,
            &[("team", &format!("{bob},{bob}"))],
        )
        .await;
    assert_eq!(team_of(&p), [bob]);
    let p = as_admin
        .update(Kind::Project, brackets, &[("team", "")])
        .await;
    assert_eq!(team_of(&p), Vec::<i64>::new());
    assert_eq!(
        team_of(&as_admin.get(Kind::Project, brackets).await),
        Vec::<i64>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_by_id_always_includes_the_team_and_lists_only_with_load_team() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let id = as_admin
        .add(
            Kind::Project,
            &[("name", "Site"), ("team", &ann.to_string())],
        )
        .await;

    // getById, JSON and XML.
    assert_eq!(team_of(&as_admin.get(Kind::Project, id).await), [ann]);
    let r = server
        .call(
            "projects/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(xml_team(&r), Some(vec![ann]));

    for call in ["projects/getList", "projects/getAll"] {
        // Without loadTeam: no team, in either format.
        let r = server.call_json(call, &[("sessionId", &admin)]).await;
        r.assert_ok();
        let item = &r.json()["items"][0];
        assert_eq!(id_of(item), id);
        assert!(item.get("team").is_none(), "{call}: {}", r.body);
        let r = server.call(call, &[("sessionId", &admin)]).await;
        r.assert_ok();
        assert_eq!(xml_team(&r), None, "{call}: {}", r.body);

        // With loadTeam=1: the team, in either format.
        let r = server
            .call_json(call, &[("sessionId", &admin), ("loadTeam", "1")])
            .await;
        r.assert_ok();
        assert_eq!(team_of(&r.json()["items"][0]), [ann], "{call}");
        let r = server
            .call(call, &[("sessionId", &admin), ("loadTeam", "1")])
            .await;
        r.assert_ok();
        assert_eq!(xml_team(&r), Some(vec![ann]), "{call}: {}", r.body);
    }
}

// ---------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_update_keeps_every_attribute_not_sent() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let group = as_admin.group("G").await;
    let id = as_admin
        .add(
            Kind::Project,
            &[
                ("name", "Site"),
                ("description", "About"),
                ("tags", "a,b"),
                ("ownerId", &ann.to_string()),
                ("groupId", &group.to_string()),
                ("startDate", "2024-01-01"),
                ("endDate", "2024-02-01"),
                ("priority", "3"),
                ("status", "20"),
                ("hidden", "1"),
                ("flag", "2"),
                ("notifyProjectTeam", "1"),
                ("notifyClient", "1"),
                ("team[]", &ann.to_string()),
            ],
        )
        .await;
    let before = as_admin.get(Kind::Project, id).await;

    let after = as_admin
        .update(Kind::Project, id, &[("name", "Renamed")])
        .await;
    assert_eq!(after["name"], "Renamed");
    let mut expected = before.clone();
    expected["name"] = json!("Renamed");
    expected["updatedAt"] = after["updatedAt"].clone();
    assert_eq!(after, expected);
    assert_eq!(as_admin.get(Kind::Project, id).await, after);

    // Sending nothing but the id changes nothing either.
    let same = as_admin.update(Kind::Project, id, &[]).await;
    expected["updatedAt"] = same["updatedAt"].clone();
    assert_eq!(same, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_value_clears_the_description_the_tags_and_the_dates() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let group = as_admin.group("G").await;
    let id = as_admin
        .add(
            Kind::Project,
            &[
                ("name", "Site"),
                ("description", "About"),
                ("tags", "a"),
                ("groupId", &group.to_string()),
                ("startDate", "2024-01-01"),
                ("endDate", "2024-02-01"),
            ],
        )
        .await;
    let p = as_admin
        .update(Kind::Project, id, &[("description", ""), ("endDate", "")])
        .await;
    assert_eq!(p["description"], Value::Null);
    assert_eq!(p["endDate"], Value::Null);
    assert_eq!(p["startDate"], "2024-01-01 00:00:00");
    assert_eq!(p["tags"], "a");

    let p = as_admin
        .update(
            Kind::Project,
            id,
            &[("tags", ""), ("groupId", ""), ("startDate", "")],
        )
        .await;
    assert_eq!(p["tags"], Value::Null);
    assert_eq!(p["groupId"], Value::Null);
    assert_eq!(p["startDate"], Value::Null);
    let read = as_admin.get(Kind::Project, id).await;
    assert_eq!(read["description"], Value::Null);
    assert_eq!(read["endDate"], Value::Null);
    assert_eq!(read["groupId"], Value::Null);

    // The name is not nullable: emptying it is refused and keeps it.
    let r = server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &id.to_string()),
                ("project[name]", ""),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["project[name]"]);
    assert_eq!(as_admin.get(Kind::Project, id).await, read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_null_clears_a_nullable_attribute() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin
        .add(Kind::Project, &[("name", "Site"), ("description", "About")])
        .await;
    let r = post_json(
        &server,
        "projects/update",
        json!({"sessionId": admin, "project": {"id": id, "description": null}}),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["project"]["description"], Value::Null);
    assert_eq!(
        as_admin.get(Kind::Project, id).await["description"],
        Value::Null
    );
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_refuses_invalid_attributes_with_422_naming_each_field() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let existing = as_admin.add(Kind::Project, &[("name", "Existing")]).await;
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    let long_name = "x".repeat(256);
    let long_description = "d".repeat(100_001);
    let long_tags = "t".repeat(1_001);

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("project[description]", "no name")], "project[name]"),
        (vec![("project[name]", "   ")], "project[name]"),
        (vec![("project[name]", "")], "project[name]"),
        (vec![("project[name]", &long_name)], "project[name]"),
        (vec![("project[priority]", "5")], "project[priority]"),
        (vec![("project[priority]", "0")], "project[priority]"),
        (vec![("project[status]", "15")], "project[status]"),
        (vec![("project[flag]", "4")], "project[flag]"),
        (
            vec![
                ("project[startDate]", "2024-02-01"),
                ("project[endDate]", "2024-01-31 23:59:59"),
            ],
            "project[endDate]",
        ),
        (
            vec![("project[description]", &long_description)],
            "project[description]",
        ),
        (vec![("project[tags]", &long_tags)], "project[tags]"),
        (vec![("project[ownerId]", "9999")], "project[ownerId]"),
        (vec![("project[groupId]", "9999")], "project[groupId]"),
        (vec![("project[team]", "9999")], "project[team]"),
    ];
    for (params, field) in cases {
        let mut all = vec![("sessionId", admin.as_str())];
        if !params.iter().any(|(k, _)| *k == "project[name]") && field != "project[name]" {
            all.push(("project[name]", "Valid"));
        }
        all.extend(params.iter().copied());
        for xml in [false, true] {
            let r = if xml {
                server.call("projects/add", &all).await
            } else {
                server.call_json("projects/add", &all).await
            };
            r.assert_fail(422, "validation_failed");
            assert_eq!(r.error_fields(), [field], "{params:?}: {}", r.body);
        }
    }
    // Several failures come back together.
    let r = server
        .call_json(
            "projects/add",
            &[
                ("sessionId", &admin),
                ("project[priority]", "9"),
                ("project[flag]", "9"),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["project[flag]", "project[name]", "project[priority]"]
    );
    let j = r.json();
    let codes: Vec<&str> = j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"required"), "{}", r.body);

    assert_nothing_changed(&server, &admin, &before).await;
    assert_eq!(
        id_of(&as_admin.all(Kind::Project, &[("loadTeam", "1")]).await[0]),
        existing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_themselves_are_accepted() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let name = "é".repeat(255);
    let description = "d".repeat(100_000);
    let tags = "t".repeat(1_000);
    let r = server
        .call_json(
            "projects/add",
            &[
                ("sessionId", &admin),
                ("project[name]", &name),
                ("project[description]", &description),
                ("project[tags]", &tags),
                ("project[priority]", "4"),
                ("project[flag]", "3"),
                ("project[status]", "30"),
                ("project[startDate]", "2024-01-01 10:00:00"),
                ("project[endDate]", "2024-01-01 10:00:00"),
            ],
        )
        .await;
    r.assert_ok();
    let p = &r.json()["project"];
    assert_eq!(p["name"], json!(name));
    assert_eq!(p["description"].as_str().unwrap().len(), 100_000);
    assert_eq!(p["tags"].as_str().unwrap().len(), 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_refuses_invalid_attributes_and_keeps_the_project() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin
        .add(
            Kind::Project,
            &[("name", "Site"), ("startDate", "2024-02-01")],
        )
        .await;
    let before = as_admin.get(Kind::Project, id).await;
    let id_s = id.to_string();
    let cases: Vec<(&str, &str, &str)> = vec![
        ("project[priority]", "5", "project[priority]"),
        ("project[status]", "15", "project[status]"),
        ("project[flag]", "4", "project[flag]"),
        ("project[endDate]", "2024-01-01", "project[endDate]"),
        ("project[ownerId]", "9999", "project[ownerId]"),
        ("project[ownerId]", "", "project[ownerId]"),
        ("project[groupId]", "9999", "project[groupId]"),
        ("project[team][]", "9999", "project[team]"),
        ("project[priority]", "", "project[priority]"),
    ];
    for (key, value, field) in cases {
        let r = server
            .call_json(
                "projects/update",
                &[
                    ("sessionId", &admin),
                    ("project[id]", &id_s),
                    ("project[name]", "Changed"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{key}={value}: {}", r.body);
        assert_eq!(as_admin.get(Kind::Project, id).await, before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_the_wrong_type_is_400_invalid_argument_naming_the_field() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    let cases = [
        ("project[priority]", "high", "project[priority]"),
        ("project[hidden]", "maybe", "project[hidden]"),
        ("project[startDate]", "yesterday", "project[startDate]"),
        ("project[endDate]", "2024-13-01", "project[endDate]"),
        ("project[groupId]", "one", "project[groupId]"),
        ("project[team][]", "ann", "project[team]"),
        ("project[team]", "1,x", "project[team]"),
        ("project[flag]", "1.0", "project[flag]"),
    ];
    for (key, value, field) in cases {
        // On add.
        let r = server
            .call_json(
                "projects/add",
                &[
                    ("sessionId", &admin),
                    ("project[name]", "New"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], json!(field), "{}", r.body);
        // In XML the field is an attribute of the error.
        let r = server
            .call(
                "projects/add",
                &[
                    ("sessionId", &admin),
                    ("project[name]", "New"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        let doc = r.xml();
        let error = doc.descendants().find(|n| n.has_tag_name("error")).unwrap();
        assert_eq!(error.attribute("field"), Some(field), "{}", r.body);
        // On update.
        let r = server
            .call_json(
                "projects/update",
                &[
                    ("sessionId", &admin),
                    ("project[id]", &id.to_string()),
                    ("project[name]", "Changed"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], json!(field), "{}", r.body);
    }
    assert_nothing_changed(&server, &admin, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_project_is_404_for_every_call() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    let missing = (id + 100).to_string();
    server
        .call_json(
            "projects/getById",
            &[("sessionId", &admin), ("id", &missing)],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call(
            "projects/getById",
            &[("sessionId", &admin), ("id", &missing)],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &missing),
                ("project[name]", "X"),
            ],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call_json(
            "projects/remove",
            &[("sessionId", &admin), ("id", &missing)],
        )
        .await
        .assert_fail(404, "not_found");
    assert_nothing_changed(&server, &admin, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_remove_without_an_id_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    let r = server
        .call_json(
            "projects/update",
            &[("sessionId", &admin), ("project[name]", "X")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["project[id]"]);
    let r = server
        .call_json("projects/remove", &[("sessionId", &admin)])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["id"]);
    server
        .call_json("projects/remove", &[("sessionId", &admin), ("id", "abc")])
        .await
        .assert_fail(400, "invalid_argument");
    assert_nothing_changed(&server, &admin, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_with_get_are_405_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    let id_s = id.to_string();
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("projects/add", vec![("project[name]", "New")]),
        (
            "projects/update",
            vec![("project[id]", &id_s), ("project[name]", "Changed")],
        ),
        ("projects/remove", vec![("id", &id_s)]),
    ];
    for (call, params) in cases {
        let mut all = vec![("sessionId", admin.as_str()), ("retType", "json")];
        all.extend(params);
        let r = server.get(call, &all).await;
        r.assert_fail(405, "method_not_allowed");
        assert_eq!(
            r.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some("POST"),
            "{call}"
        );
    }
    assert_nothing_changed(&server, &admin, &before).await;

    // Reads take GET as well as POST.
    let r = server
        .get(
            "projects/getById",
            &[("sessionId", &admin), ("id", &id_s), ("retType", "json")],
        )
        .await;
    r.assert_ok();
    assert_eq!(id_of(&r.json()["project"]), id);
    let r = server
        .get(
            "projects/getList",
            &[("sessionId", &admin), ("retType", "json")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_users_and_clients_cannot_add_projects() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (_, external) = server.user("ext@example.com", 150, false).await;
    let (_, client) = server.user("client@example.com", 200, false).await;
    as_admin.add(Kind::Project, &[("name", "Existing")]).await;
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    for sid in [&external, &client] {
        server
            .call_json(
                "projects/add",
                &[("sessionId", sid), ("project[name]", "Mine")],
            )
            .await
            .assert_fail(403, "forbidden");
        server
            .call(
                "projects/add",
                &[("sessionId", sid), ("project[name]", "Mine")],
            )
            .await
            .assert_fail(403, "forbidden");
    }
    assert_nothing_changed(&server, &admin, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_nothing_is_added_or_read() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    let r = server
        .call_json("projects/add", &[("project[name]", "Anon")])
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = server
        .call_json("projects/getById", &[("id", &id.to_string())])
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = server
        .call_json(
            "projects/remove",
            &[("sessionId", "not-a-session"), ("id", &id.to_string())],
        )
        .await;
    r.assert_fail(401, "auth_failed");
    assert_nothing_changed(&server, &admin, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_and_edit_projects_by_the_visibility_rules() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    let (_, bob_s) = server.user("bob@example.com", 100, false).await;
    let (ext, ext_s) = server.user("ext@example.com", 150, false).await;
    let (client, client_s) = server.user("client@example.com", 200, false).await;

    let open = as_admin.add(Kind::Project, &[("name", "Open")]).await;
    let hidden = as_admin
        .add(
            Kind::Project,
            &[
                ("name", "Hidden"),
                ("hidden", "1"),
                ("team", &format!("{ann},{ext},{client}")),
            ],
        )
        .await;
    let hidden_alone = as_admin
        .add(Kind::Project, &[("name", "Hidden alone"), ("hidden", "1")])
        .await;

    assert_filter(&server, &admin, &[], &[open, hidden, hidden_alone]).await;
    assert_filter(&server, &ann_s, &[], &[open, hidden]).await;
    assert_filter(&server, &bob_s, &[], &[open]).await;
    assert_filter(&server, &ext_s, &[], &[hidden]).await;
    assert_filter(&server, &client_s, &[], &[hidden]).await;

    // Invisible is 404, even to remove; visible but not editable is 403.
    let before = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    for (sid, id) in [(&bob_s, hidden), (&ext_s, open), (&client_s, hidden_alone)] {
        server
            .call_json(
                "projects/getById",
                &[("sessionId", sid), ("id", &id.to_string())],
            )
            .await
            .assert_fail(404, "not_found");
        server
            .call_json(
                "projects/remove",
                &[("sessionId", sid), ("id", &id.to_string())],
            )
            .await
            .assert_fail(404, "not_found");
    }
    let p = server.as_caller(&bob_s).get(Kind::Project, open).await;
    assert_eq!(p["can_edit"], false);
    server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &bob_s),
                ("project[id]", &open.to_string()),
                ("project[name]", "Bob's"),
            ],
        )
        .await
        .assert_fail(403, "forbidden");
    for sid in [&ext_s, &client_s] {
        assert_eq!(
            server.as_caller(sid).get(Kind::Project, hidden).await["can_edit"],
            false
        );
        server
            .call_json(
                "projects/remove",
                &[("sessionId", sid), ("id", &hidden.to_string())],
            )
            .await
            .assert_fail(403, "forbidden");
    }
    assert_nothing_changed(&server, &admin, &before).await;

    // A team member who is a user edits.
    assert_eq!(
        server.as_caller(&ann_s).get(Kind::Project, hidden).await["can_edit"],
        true
    );
    let p = server
        .as_caller(&ann_s)
        .update(Kind::Project, hidden, &[("flag", "1")])
        .await;
    assert_eq!(p["flag"], 1);
}

// ---------------------------------------------------------------------------------------
// Status done and remove
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_done_records_the_closing_time_for_hide_old_object_period() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let open = as_admin.add(Kind::Project, &[("name", "Open")]).await;
    let done = as_admin.add(Kind::Project, &[("name", "Done")]).await;
    as_admin
        .update(Kind::Project, done, &[("status", "30")])
        .await;
    // Closed just now: kept by a period of one day, and even of zero days for now.
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "1")],
        &[open, done],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "1")],
        &[open, done],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "0")],
        &[open],
    )
    .await;
    // Another update keeps the closing time; reopening clears it.
    as_admin
        .update(Kind::Project, done, &[("name", "Done!")])
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "0")],
        &[open],
    )
    .await;
    as_admin
        .update(Kind::Project, done, &[("status", "10")])
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "0")],
        &[open, done],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_project_removes_its_tasks_and_their_activities() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let keep = server
        .as_caller(&admin)
        .add(Kind::Project, &[("name", "Keep")])
        .await;
    let gone = server
        .as_caller(&admin)
        .add(Kind::Project, &[("name", "Gone")])
        .await;

    let add_task = |project: i64, name: &'static str| {
        let server = &server;
        let admin = &admin;
        async move {
            let r = server
                .call_json(
                    "tasks/add",
                    &[
                        ("sessionId", admin),
                        ("task[name]", name),
                        ("task[projectId]", &project.to_string()),
                    ],
                )
                .await;
            r.assert_ok();
            id_of(&r.json()["task"])
        }
    };
    let task = add_task(gone, "Doomed").await;
    let kept_task = add_task(keep, "Kept").await;
    let mut activities = Vec::new();
    for (key, id) in [("activity[taskId]", task), ("activity[projectId]", gone)] {
        let r = server
            .call_json(
                "activity/add",
                &[
                    ("sessionId", &admin),
                    (key, &id.to_string()),
                    ("activity[type]", "msg"),
                    ("activity[text]", "hello"),
                ],
            )
            .await;
        r.assert_ok();
        activities.push(id_of(&r.json()["activity"]));
    }

    let r = server
        .call_json(
            "projects/remove",
            &[("sessionId", &admin), ("id", &gone.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], json!(gone.to_string()));

    for (call, id) in [
        ("projects/getById", gone),
        ("tasks/getById", task),
        ("activity/getById", activities[0]),
        ("activity/getById", activities[1]),
    ] {
        server
            .call_json(call, &[("sessionId", &admin), ("id", &id.to_string())])
            .await
            .assert_fail(404, "not_found");
    }
    // The other project and its task stay; removing again is 404.
    server.as_caller(&admin).get(Kind::Project, keep).await;
    server
        .call_json(
            "tasks/getById",
            &[("sessionId", &admin), ("id", &kept_task.to_string())],
        )
        .await
        .assert_ok();
    let r = server
        .call_json("tasks/getList", &[("sessionId", &admin)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["total"], 1, "{}", r.body);
    server
        .call_json(
            "projects/remove",
            &[("sessionId", &admin), ("id", &gone.to_string())],
        )
        .await
        .assert_fail(404, "not_found");
}

// ---------------------------------------------------------------------------------------
// Filters: one test each
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_id_filter_keeps_the_projects_of_that_group() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g1 = as_admin.group("One").await;
    let g2 = as_admin.group("Two").await;
    let a = as_admin
        .add(
            Kind::Project,
            &[("name", "A"), ("groupId", &g1.to_string())],
        )
        .await;
    as_admin
        .add(
            Kind::Project,
            &[("name", "B"), ("groupId", &g2.to_string())],
        )
        .await;
    as_admin.add(Kind::Project, &[("name", "C")]).await;
    let d = as_admin
        .add(
            Kind::Project,
            &[("name", "D"), ("groupId", &g1.to_string())],
        )
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[groupId]", &g1.to_string())],
        &[a, d],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_id_filter_keeps_the_projects_of_that_owner() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    as_admin.add(Kind::Project, &[("name", "Admin's")]).await;
    let by_ann = server
        .as_caller(&ann_s)
        .add(Kind::Project, &[("name", "Ann's")])
        .await;
    let given = as_admin
        .add(
            Kind::Project,
            &[("name", "Given"), ("ownerId", &ann.to_string())],
        )
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[ownerId]", &ann.to_string())],
        &[by_ann, given],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_filter_is_a_case_insensitive_substring() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let a = as_admin.add(Kind::Project, &[("name", "Alpha Site")]).await;
    as_admin.add(Kind::Project, &[("name", "Gamma")]).await;
    let b = as_admin.add(Kind::Project, &[("name", "beta SITE")]).await;
    let c = as_admin.add(Kind::Project, &[("name", "website")]).await;
    as_admin.add(Kind::Project, &[("name", "Sit")]).await;
    assert_filter(&server, &admin, &[("filter[name]", "site")], &[a, b, c]).await;
    // Wildcards are literal.
    let under = as_admin.add(Kind::Project, &[("name", "a_b")]).await;
    as_admin.add(Kind::Project, &[("name", "axb")]).await;
    let percent = as_admin.add(Kind::Project, &[("name", "100% done")]).await;
    as_admin.add(Kind::Project, &[("name", "100 done")]).await;
    assert_filter(&server, &admin, &[("filter[name]", "a_b")], &[under]).await;
    assert_filter(&server, &admin, &[("filter[name]", "0% ")], &[percent]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assigned_to_filter_keeps_projects_whose_team_holds_the_user() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    let (bob, _) = server.user("bob@example.com", 100, false).await;
    let with_ann = as_admin
        .add(Kind::Project, &[("name", "A"), ("team", &ann.to_string())])
        .await;
    as_admin
        .add(Kind::Project, &[("name", "B"), ("team", &bob.to_string())])
        .await;
    let both = as_admin
        .add(
            Kind::Project,
            &[("name", "AB"), ("team", &format!("{bob},{ann}"))],
        )
        .await;
    as_admin.add(Kind::Project, &[("name", "None")]).await;
    // Owning is not being assigned.
    server
        .as_caller(&ann_s)
        .add(Kind::Project, &[("name", "Owned by Ann")])
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[assignedTo]", &ann.to_string())],
        &[with_ann, both],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_filter_drops_done_projects() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let open = as_admin.add(Kind::Project, &[("name", "Open")]).await;
    let on_hold = as_admin
        .add(Kind::Project, &[("name", "On hold"), ("status", "20")])
        .await;
    as_admin
        .add(Kind::Project, &[("name", "Done"), ("status", "30")])
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[active]", "1")],
        &[open, on_hold],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hide_old_object_period_filter_drops_projects_closed_longer_ago() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let open = as_admin.add(Kind::Project, &[("name", "Open")]).await;
    let old = as_admin
        .add(Kind::Project, &[("name", "Done a while ago")])
        .await;
    as_admin
        .update(Kind::Project, old, &[("status", "30")])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let fresh = as_admin
        .add(Kind::Project, &[("name", "Done just now")])
        .await;
    let on_hold = as_admin
        .add(Kind::Project, &[("name", "On hold"), ("status", "20")])
        .await;
    // A period of 0 days keeps only what was closed this very second (dates are whole
    // seconds): the close and the lists must fall within one second of the clock, so a
    // round that straddles a second is done again (a loaded machine can take that long).
    for round in 0.. {
        let second = unix_now();
        as_admin
            .update(Kind::Project, fresh, &[("status", "30")])
            .await;
        let period = as_admin
            .list(Kind::Project, &[("filter[hide_old_object_period]", "0")])
            .await
            .ids_total();
        // hide_non_active is the same filter.
        let non_active = as_admin
            .list(Kind::Project, &[("filter[hide_non_active]", "0")])
            .await
            .ids_total();
        if unix_now() != second && round < 20 {
            as_admin
                .update(Kind::Project, fresh, &[("status", "10")])
                .await;
            continue;
        }
        assert_eq!(
            period,
            (vec![open, fresh, on_hold], 3),
            "hide_old_object_period=0"
        );
        assert_eq!(
            non_active,
            (vec![open, fresh, on_hold], 3),
            "hide_non_active=0"
        );
        break;
    }
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "1")],
        &[open, old, fresh, on_hold],
    )
    .await;
    // A negative period is refused.
    let r = server
        .call_json(
            "projects/getList",
            &[
                ("sessionId", &admin),
                ("filter[hide_old_object_period]", "-1"),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["filter[hide_old_object_period]"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_updated_filters_split_at_a_time_from_inclusive_before_exclusive() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let early = as_admin.add(Kind::Project, &[("name", "Early")]).await;
    let touched = as_admin
        .add(Kind::Project, &[("name", "Touched later")])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let late = as_admin.get(Kind::Project, touched).await;
    let p = as_admin
        .update(Kind::Project, touched, &[("flag", "1")])
        .await;
    let at = p["updatedAt"].as_str().unwrap().to_owned();
    assert_ne!(late["updatedAt"], json!(at), "an update moves updatedAt");
    let added = as_admin
        .add(Kind::Project, &[("name", "Added later")])
        .await;

    assert_filter(
        &server,
        &admin,
        &[("filter[updatedFrom]", &at)],
        &[touched, added],
    )
    .await;
    assert_filter(&server, &admin, &[("filter[updatedBefore]", &at)], &[early]).await;
    assert_filter(
        &server,
        &admin,
        &[("filter[updatedFrom]", &at), ("filter[updatedBefore]", &at)],
        &[],
    )
    .await;
    // A date alone is midnight UTC.
    assert_filter(
        &server,
        &admin,
        &[("filter[updatedBefore]", "2000-01-01")],
        &[],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[updatedFrom]", "2000-01-01")],
        &[early, touched, added],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_and_each_narrows_the_list() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g = as_admin.group("G").await;
    let g_s = g.to_string();
    let a = as_admin
        .add(Kind::Project, &[("name", "Site A"), ("groupId", &g_s)])
        .await;
    as_admin
        .add(
            Kind::Project,
            &[("name", "Site B"), ("groupId", &g_s), ("status", "30")],
        )
        .await;
    as_admin
        .add(Kind::Project, &[("name", "Other"), ("groupId", &g_s)])
        .await;
    as_admin.add(Kind::Project, &[("name", "Site C")]).await;
    assert_filter(
        &server,
        &admin,
        &[
            ("filter[groupId]", &g_s),
            ("filter[name]", "site"),
            ("filter[active]", "1"),
        ],
        &[a],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_filter_is_422_listing_the_allowed_ones() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server
        .as_caller(&admin)
        .add(Kind::Project, &[("name", "Site")])
        .await;
    for call in ["projects/getList", "projects/getAll"] {
        let r = server
            .call_json(call, &[("sessionId", &admin), ("filter[groupid]", "1")])
            .await;
        r.assert_fail(422, "validation_failed");
        let errors = r.json()["errors"].clone();
        assert_eq!(errors.as_array().unwrap().len(), 1, "{}", r.body);
        assert_eq!(errors[0]["field"], "filter[groupid]");
        assert_eq!(errors[0]["code"], "unknown_filter");
        let message = errors[0]["message"].as_str().unwrap();
        for allowed in ["groupId", "ownerId", "assignedTo", "hide_old_object_period"] {
            assert!(message.contains(allowed), "{message}");
        }
        // A filter of another list is unknown here too.
        let r = server
            .call(call, &[("sessionId", &admin), ("filter[projectId]", "1")])
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), ["filter[projectId]"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_of_the_wrong_type_is_400() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for (key, value) in [
        ("filter[groupId]", "g"),
        ("filter[active]", "maybe"),
        ("filter[updatedFrom]", "yesterday"),
    ] {
        let r = server
            .call_json("projects/getList", &[("sessionId", &admin), (key, value)])
            .await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], json!(key), "{}", r.body);
    }
}

// ---------------------------------------------------------------------------------------
// Paging and order
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_list_pages_with_offset_and_count_and_reports_the_total() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(
            as_admin
                .add(Kind::Project, &[("name", &format!("P{n}"))])
                .await,
        );
    }
    let r = server
        .call_json(
            "projects/getList",
            &[("sessionId", &admin), ("offset", "2"), ("count", "2")],
        )
        .await;
    r.assert_ok();
    let j = r.json();
    let page: Vec<i64> = j["items"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(page, [ids[2], ids[3]]);
    assert_eq!(j["count"], 2);
    assert_eq!(j["total"], 5);
    assert_eq!(j["offset"], 2);

    let r = server
        .call(
            "projects/getList",
            &[("sessionId", &admin), ("offset", "2"), ("count", "2")],
        )
        .await;
    r.assert_ok();
    assert_eq!(xml_project_ids(&r), [ids[2], ids[3]]);
    let doc = r.xml();
    let items = doc.descendants().find(|n| n.has_tag_name("items")).unwrap();
    assert_eq!(items.attribute("count"), Some("2"));
    assert_eq!(items.attribute("total"), Some("5"));
    assert_eq!(items.attribute("offset"), Some("2"));

    // Past the end: nothing, with the total. Count 0: nothing. The last partial page.
    assert_eq!(
        as_admin
            .list(Kind::Project, &[("offset", "10")])
            .await
            .ids_total(),
        (vec![], 5)
    );
    assert_eq!(
        as_admin
            .list(Kind::Project, &[("count", "0")])
            .await
            .ids_total(),
        (vec![], 5)
    );
    assert_eq!(
        as_admin
            .list(Kind::Project, &[("offset", "4"), ("count", "2")])
            .await
            .ids_total(),
        (vec![ids[4]], 5)
    );
    // The page is counted after filtering.
    assert_eq!(
        as_admin
            .list(
                Kind::Project,
                &[("filter[name]", "P"), ("offset", "1"), ("count", "1")]
            )
            .await
            .ids_total(),
        (vec![ids[1]], 5)
    );
    // The most allowed.
    assert_eq!(
        as_admin
            .list(Kind::Project, &[("count", "1000")])
            .await
            .ids_total(),
        (ids, 5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_over_1000_is_422_and_a_count_that_is_not_a_number_is_400() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server
        .as_caller(&admin)
        .add(Kind::Project, &[("name", "Site")])
        .await;
    let r = server
        .call_json(
            "projects/getList",
            &[("sessionId", &admin), ("count", "1001")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["count"]);
    let r = server
        .call_json(
            "projects/getList",
            &[("sessionId", &admin), ("count", "abc")],
        )
        .await;
    r.assert_fail(400, "invalid_argument");
    assert_eq!(r.json()["field"], "count");
    let r = server
        .call_json(
            "projects/getList",
            &[("sessionId", &admin), ("offset", "-1")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["offset"]);
    let r = server
        .call_json(
            "projects/getList",
            &[("sessionId", &admin), ("offset", "x")],
        )
        .await;
    r.assert_fail(400, "invalid_argument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_list_defaults_to_100_rows_and_get_all_returns_everything() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    for n in 0..101 {
        as_admin
            .add(Kind::Project, &[("name", &format!("P{n}"))])
            .await;
    }
    let (ids, total) = as_admin.list(Kind::Project, &[]).await.ids_total();
    assert_eq!(ids.len(), 100);
    assert_eq!(total, 101);
    let all = as_admin.all(Kind::Project, &[("loadTeam", "1")]).await;
    assert_eq!(all.len(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_ordered_by_id_ascending() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let mut ids = Vec::new();
    for name in ["Zulu", "alpha", "Mike", "Bravo"] {
        ids.push(as_admin.add(Kind::Project, &[("name", name)]).await);
    }
    // Updating the first does not move it to the end.
    as_admin
        .update(Kind::Project, ids[0], &[("name", "Yankee")])
        .await;
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "ids grow");
    assert_eq!(as_admin.list(Kind::Project, &[]).await.ids_total().0, ids);
    let all: Vec<i64> = as_admin
        .all(Kind::Project, &[("loadTeam", "1")])
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(all, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_left_without_its_removed_group_is_seen_by_updated_from() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g = as_admin.group("Doomed").await;
    let in_group = as_admin
        .add(
            Kind::Project,
            &[("name", "In group"), ("groupId", &g.to_string())],
        )
        .await;
    as_admin.add(Kind::Project, &[("name", "Elsewhere")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let now = server_now(&server, &admin).await;
    server
        .call_json(
            "projectsgroups/remove",
            &[("sessionId", &admin), ("id", &g.to_string())],
        )
        .await
        .assert_ok();
    assert_eq!(
        as_admin.get(Kind::Project, in_group).await["groupId"],
        Value::Null
    );
    // A client syncing with updatedFrom must learn that the project left its group.
    assert_filter(
        &server,
        &admin,
        &[("filter[updatedFrom]", &now)],
        &[in_group],
    )
    .await;
}

/// The server's current time, read from a throw-away project's createdAt (then removed).
async fn server_now(server: &TestServer, admin: &str) -> String {
    let r = server
        .call_json(
            "projects/add",
            &[("sessionId", admin), ("project[name]", "Clock")],
        )
        .await;
    r.assert_ok();
    let p = r.json()["project"].clone();
    server
        .call_json(
            "projects/remove",
            &[("sessionId", admin), ("id", p["id"].as_str().unwrap())],
        )
        .await
        .assert_ok();
    p["createdAt"].as_str().unwrap().to_owned()
}
