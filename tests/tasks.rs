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
        .list(Kind::Task, params)
        .await
        .ids_total();
    assert_eq!(ids, expected, "filter {params:?}");
    assert_eq!(total, expected.len() as i64, "filter {params:?}");
}

fn team_of(t: &Value) -> Vec<i64> {
    t["team"]
        .as_array()
        .unwrap_or_else(|| panic!("no team: {t}"))
        .iter()
        .map(|u| u.as_i64().expect("team ids are numbers"))
        .collect()
}

fn child_text(node: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    node.children()
        .find(|c| c.has_tag_name(tag))
        .map(|c| c.text().unwrap_or("").to_owned())
}

fn xml_task_ids(r: &Resp) -> Vec<i64> {
    let doc = r.xml();
    doc.descendants()
        .filter(|n| n.has_tag_name("task"))
        .map(|t| child_text(t, "id").expect("an id").parse().unwrap())
        .collect()
}

/// The code of the one validation error on this field.
fn error_code(r: &Resp, field: &str) -> String {
    let j = r.json();
    let errors = j["errors"].as_array().expect("errors");
    let e = errors
        .iter()
        .find(|e| e["field"] == field)
        .unwrap_or_else(|| panic!("no error on {field}: {}", r.body));
    e["code"].as_str().unwrap().to_owned()
}

fn sleep_past_a_second() -> tokio::time::Sleep {
    tokio::time::sleep(std::time::Duration::from_millis(1_100))
}

// ---------------------------------------------------------------------------------------
// Add, read, update, remove in XML and JSON
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_goes_through_add_get_update_list_and_remove_in_xml() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let project = as_admin.add(Kind::Project, &[("name", "Site")]).await;

    let r = server
        .call(
            "tasks/add",
            &[
                ("sessionId", &admin),
                ("task[name]", " Write <copy> "),
                ("task[projectId]", &project.to_string()),
                ("task[team][]", &ann.to_string()),
                ("task[estimatedTime]", "2.5"),
                ("task[endDate]", "2024-05-01 17:00:00"),
                ("task[hidden]", "on"),
            ],
        )
        .await;
    r.assert_ok();
    assert!(r.body.starts_with("<?xml"), "{}", r.body);
    let id: i64 = r.xml_text("id").unwrap().parse().unwrap();
    assert_eq!(r.xml_text("name").unwrap(), "Write <copy>");
    assert_eq!(r.xml_text("projectId").unwrap(), project.to_string());
    assert_eq!(r.xml_text("parentId").unwrap(), "");
    assert_eq!(r.xml_text("estimatedTime").unwrap(), "2.5");
    assert_eq!(r.xml_text("endDate").unwrap(), "2024-05-01 17:00:00");
    assert_eq!(r.xml_text("hidden").unwrap(), "1");
    assert_eq!(r.xml_text("progress").unwrap(), "0");
    assert_eq!(r.xml_text("can_edit").unwrap(), "1");
    assert_eq!(r.xml_text("user").unwrap(), ann.to_string());

    let r = server
        .call(
            "tasks/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("name").unwrap(), "Write <copy>");
    assert_eq!(r.xml_text("user").unwrap(), ann.to_string());

    let r = server
        .call(
            "tasks/update",
            &[
                ("sessionId", &admin),
                ("task[id]", &id.to_string()),
                ("task[progress]", "40"),
                ("task[hidden]", "off"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("progress").unwrap(), "40");
    assert_eq!(r.xml_text("hidden").unwrap(), "0");
    assert_eq!(r.xml_text("name").unwrap(), "Write <copy>");

    let second = as_admin.add(Kind::Task, &[("name", "Second")]).await;
    let r = server.call("tasks/getList", &[("sessionId", &admin)]).await;
    r.assert_ok();
    let doc = r.xml();
    let items = doc
        .descendants()
        .find(|n| n.has_tag_name("items"))
        .expect("items");
    assert_eq!(items.attribute("count"), Some("2"), "{}", r.body);
    assert_eq!(items.attribute("total"), Some("2"), "{}", r.body);
    assert_eq!(items.attribute("offset"), Some("0"), "{}", r.body);
    assert_eq!(xml_task_ids(&r), [id, second]);

    let r = server
        .call(
            "tasks/remove",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id").unwrap(), id.to_string());
    let r = server
        .call(
            "tasks/getById",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_fail(404, "not_found");
    assert_eq!(
        as_admin.list(Kind::Task, &[]).await.ids_total(),
        (vec![second], 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_goes_through_add_get_update_list_and_remove_in_json() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let (bob, _) = server.user("bob@example.com", 100, false).await;
    let project = as_admin.add(Kind::Project, &[("name", "Site")]).await;

    let t = as_admin
        .try_add(
            Kind::Task,
            &[
                ("name", "Design"),
                ("projectId", &project.to_string()),
                ("team", &format!("{ann},{bob}")),
                ("tags", "x, y"),
                ("startDate", "2024-05-01"),
                ("priority", "3"),
            ],
        )
        .await
        .unwrap();
    let id = id_of(&t);
    assert_eq!(t["projectId"], json!(project), "references are numbers");
    assert_eq!(t["tags"], "x,y");
    assert_eq!(t["priority"], 3);
    assert_eq!(t["startDate"], "2024-05-01 00:00:00");
    assert_eq!(t["parentName"], Value::Null);
    assert_eq!(t["hidden"], false);
    assert_eq!(t["can_edit"], true);
    assert_eq!(team_of(&t), [ann, bob]);
    assert_eq!(as_admin.get(Kind::Task, id).await, t);

    let u = as_admin
        .update(
            Kind::Task,
            id,
            &[("status", "20"), ("team[0]", &bob.to_string())],
        )
        .await;
    assert_eq!(u["status"], 20);
    assert_eq!(u["name"], "Design");
    assert_eq!(u["priority"], 3);
    assert_eq!(team_of(&u), [bob]);
    assert_eq!(as_admin.get(Kind::Task, id).await, u);

    // getList has the team only with loadTeam=1.
    let r = server
        .call_json("tasks/getList", &[("sessionId", &admin)])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["total"], 1);
    assert!(r.json()["items"][0].get("team").is_none(), "{}", r.body);
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        [u]
    );

    let r = server
        .call_json(
            "tasks/remove",
            &[("sessionId", &admin), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], json!(id.to_string()));
    as_admin
        .try_get(Kind::Task, id)
        .await
        .unwrap_err()
        .assert(404, "not_found");
    assert!(as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_task_takes_the_defaults_and_the_caller_as_owner() {
    let server = TestServer::start().await;
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    let id = server
        .as_caller(&ann_s)
        .add(Kind::Task, &[("name", "Mine")])
        .await;
    let t = server.as_caller(&ann_s).get(Kind::Task, id).await;
    assert_eq!(t["priority"], 2);
    assert_eq!(t["status"], 10);
    assert_eq!(t["flag"], 0);
    assert_eq!(t["progress"], 0);
    assert_eq!(t["hidden"], false);
    assert_eq!(t["hoursDone"], 0.0);
    assert_eq!(t["estimatedTime"], Value::Null);
    assert_eq!(t["ownerId"], json!(ann));
    assert_eq!(t["projectId"], Value::Null);
    assert_eq!(t["parentId"], Value::Null);
    assert_eq!(t["groupId"], Value::Null);
    assert_eq!(t["notifyTaskTeam"], false);
    assert_eq!(t["can_edit"], true);
    assert_eq!(team_of(&t), Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_is_read_from_a_json_array_and_an_empty_value_clears_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let r = read(
        server
            .client
            .post(server.api("tasks/add"))
            .json(&json!({
                "sessionId": admin,
                "retType": "json",
                "task": {"name": "Json", "team": [ann], "description": null}
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_ok();
    let id = id_of(&r.json()["task"]);
    assert_eq!(team_of(&as_admin.get(Kind::Task, id).await), [ann]);
    let t = as_admin.update(Kind::Task, id, &[("team", "")]).await;
    assert_eq!(team_of(&t), Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_update_keeps_every_attribute_not_sent_and_empty_clears() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, _) = server.user("ann@example.com", 100, false).await;
    let project = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let parent = as_admin.task(project, &[("name", "Parent")]).await;
    let t = as_admin
        .try_add(
            Kind::Task,
            &[
                ("name", "Child"),
                ("projectId", &project.to_string()),
                ("parentId", &parent.to_string()),
                ("description", "About"),
                ("tags", "a"),
                ("ownerId", &ann.to_string()),
                ("startDate", "2024-01-01"),
                ("endDate", "2024-02-01"),
                ("priority", "4"),
                ("progress", "30"),
                ("status", "20"),
                ("hidden", "1"),
                ("flag", "1"),
                ("estimatedTime", "8"),
                ("notifyTaskTeam", "1"),
                ("team", &ann.to_string()),
            ],
        )
        .await
        .unwrap();
    let id = id_of(&t);
    let after = as_admin
        .update(Kind::Task, id, &[("name", "Renamed")])
        .await;
    let mut expected = t.clone();
    expected["name"] = json!("Renamed");
    expected["updatedAt"] = after["updatedAt"].clone();
    assert_eq!(after, expected);

    let cleared = as_admin
        .update(
            Kind::Task,
            id,
            &[
                ("description", ""),
                ("endDate", ""),
                ("estimatedTime", ""),
                ("parentId", ""),
            ],
        )
        .await;
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["endDate"], Value::Null);
    assert_eq!(cleared["estimatedTime"], Value::Null);
    assert_eq!(cleared["parentId"], Value::Null);
    assert_eq!(cleared["parentName"], Value::Null);
    assert_eq!(cleared["tags"], "a");
    assert_eq!(cleared["projectId"], json!(project));
    assert_eq!(as_admin.get(Kind::Task, id).await, cleared);
}

// ---------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_task_keeps_its_own_group() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g1 = as_admin.group("One").await;
    let g2 = as_admin.group("Two").await;
    let t = as_admin
        .try_add(
            Kind::Task,
            &[("name", "Single"), ("groupId", &g1.to_string())],
        )
        .await
        .unwrap();
    let id = id_of(&t);
    assert_eq!(t["groupId"], json!(g1));
    assert_eq!(t["projectId"], Value::Null);
    let t = as_admin
        .update(Kind::Task, id, &[("groupId", &g2.to_string())])
        .await;
    assert_eq!(t["groupId"], json!(g2));
    let t = as_admin.update(Kind::Task, id, &[("groupId", "")]).await;
    assert_eq!(t["groupId"], Value::Null);

    // An unknown group is refused and changes nothing.
    let before = as_admin.get(Kind::Task, id).await;
    let r = as_admin
        .update_answer(Kind::Task, id, &[("groupId", "999")])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["task[groupId]"]);
    assert_eq!(as_admin.get(Kind::Task, id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_a_project_takes_the_project_group_and_follows_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g1 = as_admin.group("One").await;
    let g2 = as_admin.group("Two").await;
    let project = as_admin
        .add(
            Kind::Project,
            &[("name", "Site"), ("groupId", &g1.to_string())],
        )
        .await;
    // Its own groupId is ignored, on add and on update.
    let t = as_admin
        .try_add(
            Kind::Task,
            &[
                ("name", "In project"),
                ("projectId", &project.to_string()),
                ("groupId", &g2.to_string()),
            ],
        )
        .await
        .unwrap();
    let id = id_of(&t);
    assert_eq!(t["groupId"], json!(g1));
    let sub = as_admin
        .task(project, &[("name", "Sub"), ("parentId", &id.to_string())])
        .await;
    let t = as_admin
        .update(Kind::Task, id, &[("groupId", &g2.to_string())])
        .await;
    assert_eq!(t["groupId"], json!(g1));

    // The project changes group: its tasks follow, sub-tasks too.
    let r = server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &project.to_string()),
                ("project[groupId]", &g2.to_string()),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(as_admin.get(Kind::Task, id).await["groupId"], json!(g2));
    assert_eq!(as_admin.get(Kind::Task, sub).await["groupId"], json!(g2));
    let r = server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &project.to_string()),
                ("project[groupId]", ""),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(as_admin.get(Kind::Task, id).await["groupId"], Value::Null);
    assert_eq!(as_admin.get(Kind::Task, sub).await["groupId"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_group_leaves_projects_and_single_tasks_in_no_group() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g = as_admin.group("Doomed").await;
    let other = as_admin.group("Other").await;
    let project = as_admin
        .add(
            Kind::Project,
            &[("name", "Site"), ("groupId", &g.to_string())],
        )
        .await;
    let in_project = as_admin.task(project, &[("name", "In project")]).await;
    let single = id_of(
        &as_admin
            .try_add(
                Kind::Task,
                &[("name", "Single"), ("groupId", &g.to_string())],
            )
            .await
            .unwrap(),
    );
    let elsewhere = id_of(
        &as_admin
            .try_add(
                Kind::Task,
                &[("name", "Elsewhere"), ("groupId", &other.to_string())],
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        as_admin.get(Kind::Task, in_project).await["groupId"],
        json!(g)
    );

    let r = server
        .call_json(
            "projectsgroups/remove",
            &[("sessionId", &admin), ("id", &g.to_string())],
        )
        .await;
    r.assert_ok();

    let r = server
        .call_json(
            "projects/getById",
            &[("sessionId", &admin), ("id", &project.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["project"]["groupId"], Value::Null);
    assert_eq!(
        as_admin.get(Kind::Task, single).await["groupId"],
        Value::Null
    );
    assert_eq!(
        as_admin.get(Kind::Task, in_project).await["groupId"],
        Value::Null
    );
    assert_eq!(
        as_admin.get(Kind::Task, elsewhere).await["groupId"],
        json!(other)
    );
    assert_filter(&server, &admin, &[("filter[groupId]", &g.to_string())], &[]).await;
}

// ---------------------------------------------------------------------------------------
// Sub-tasks
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_task_shows_its_parent_name() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let project = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let parent = as_admin.task(project, &[("name", "Parent")]).await;
    let child = as_admin
        .try_add(
            Kind::Task,
            &[
                ("name", "Child"),
                ("projectId", &project.to_string()),
                ("parentId", &parent.to_string()),
                ("parentName", "ignored"),
            ],
        )
        .await
        .unwrap();
    let child_id = id_of(&child);
    assert_eq!(child["parentId"], json!(parent));
    assert_eq!(child["parentName"], "Parent");
    assert_eq!(
        as_admin.get(Kind::Task, child_id).await["parentName"],
        "Parent"
    );

    // Single tasks can nest too.
    let single_parent = as_admin.add(Kind::Task, &[("name", "Single parent")]).await;
    let single_child = as_admin
        .try_add(
            Kind::Task,
            &[
                ("name", "Single child"),
                ("parentId", &single_parent.to_string()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(single_child["parentName"], "Single parent");

    // Renaming the parent shows in the child, in getList too (XML and JSON).
    as_admin
        .update(Kind::Task, parent, &[("name", "Renamed")])
        .await;
    let items = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;
    let listed = items.iter().find(|t| id_of(t) == child_id).unwrap();
    assert_eq!(listed["parentName"], "Renamed");
    let r = server
        .call(
            "tasks/getById",
            &[("sessionId", &admin), ("id", &child_id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("parentName").unwrap(), "Renamed");
    assert_eq!(r.xml_text("parentId").unwrap(), parent.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_in_another_project_or_missing_is_422_on_the_parent_id() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let p1 = as_admin.add(Kind::Project, &[("name", "One")]).await;
    let p2 = as_admin.add(Kind::Project, &[("name", "Two")]).await;
    let in_p1 = as_admin.task(p1, &[("name", "In one")]).await;
    let in_p2 = as_admin.task(p2, &[("name", "In two")]).await;
    let single = as_admin.add(Kind::Task, &[("name", "Single")]).await;
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;

    let cases: [(String, String); 4] = [
        (p2.to_string(), in_p1.to_string()),
        (p1.to_string(), single.to_string()),
        (String::new(), in_p1.to_string()),
        (p1.to_string(), "9999".to_string()),
    ];
    for (project, parent) in &cases {
        let mut params = vec![
            ("sessionId", admin.as_str()),
            ("task[name]", "Orphan"),
            ("task[parentId]", parent.as_str()),
        ];
        if !project.is_empty() {
            params.push(("task[projectId]", project.as_str()));
        }
        let r = server.call_json("tasks/add", &params).await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), ["task[parentId]"], "{project}/{parent}");
    }
    // On update too.
    let r = as_admin
        .update_answer(Kind::Task, in_p2, &[("parentId", &in_p1.to_string())])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["task[parentId]"]);
    // XML names the field as well.
    let r = server
        .call(
            "tasks/update",
            &[
                ("sessionId", &admin),
                ("task[id]", &single.to_string()),
                ("task[parentId]", &in_p1.to_string()),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["task[parentId]"]);
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_of_parents_is_422_with_code_cycle() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let project = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let a = as_admin.task(project, &[("name", "A")]).await;
    let b = as_admin
        .task(project, &[("name", "B"), ("parentId", &a.to_string())])
        .await;
    let c = as_admin
        .task(project, &[("name", "C"), ("parentId", &b.to_string())])
        .await;
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;

    for (task, parent) in [(a, b), (a, c), (a, a), (b, c)] {
        let r = as_admin
            .update_answer(Kind::Task, task, &[("parentId", &parent.to_string())])
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(
            r.error_fields(),
            ["task[parentId]"],
            "{task} under {parent}"
        );
        assert_eq!(error_code(&r, "task[parentId]"), "cycle");
    }
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );

    // Re-parenting without a cycle works.
    let t = as_admin
        .update(Kind::Task, c, &[("parentId", &a.to_string())])
        .await;
    assert_eq!(t["parentId"], json!(a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_task_to_another_project_moves_its_sub_tasks() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g = as_admin.group("Target group").await;
    let from = as_admin.add(Kind::Project, &[("name", "From")]).await;
    let to = as_admin
        .add(
            Kind::Project,
            &[("name", "To"), ("groupId", &g.to_string())],
        )
        .await;
    let top = as_admin.task(from, &[("name", "Top")]).await;
    let child = as_admin
        .task(from, &[("name", "Child"), ("parentId", &top.to_string())])
        .await;
    let grandchild = as_admin
        .task(
            from,
            &[("name", "Grandchild"), ("parentId", &child.to_string())],
        )
        .await;
    let stays = as_admin.task(from, &[("name", "Stays")]).await;
    let r = server
        .call_json(
            "activity/add",
            &[
                ("sessionId", &admin),
                ("activity[taskId]", &grandchild.to_string()),
                ("activity[type]", "msg"),
                ("activity[text]", "note"),
            ],
        )
        .await;
    r.assert_ok();
    let activity = id_of(&r.json()["activity"]);

    // A sub-task cannot leave alone while keeping its parent.
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;
    let r = as_admin
        .update_answer(Kind::Task, child, &[("projectId", &to.to_string())])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["task[parentId]"]);
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );

    let t = as_admin
        .update(Kind::Task, top, &[("projectId", &to.to_string())])
        .await;
    assert_eq!(t["projectId"], json!(to));
    assert_eq!(t["groupId"], json!(g));
    for id in [child, grandchild] {
        let t = as_admin.get(Kind::Task, id).await;
        assert_eq!(t["projectId"], json!(to), "task {id}");
        assert_eq!(t["groupId"], json!(g), "task {id}");
    }
    assert_eq!(
        as_admin.get(Kind::Task, child).await["parentId"],
        json!(top)
    );
    assert_eq!(
        as_admin.get(Kind::Task, stays).await["projectId"],
        json!(from)
    );
    assert_filter(
        &server,
        &admin,
        &[("filter[projectId]", &to.to_string())],
        &[top, child, grandchild],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[projectId]", &from.to_string())],
        &[stays],
    )
    .await;
    // The activity follows its task.
    let r = server
        .call_json(
            "activity/getById",
            &[("sessionId", &admin), ("id", &activity.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["projectId"], json!(to), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_task_removes_its_sub_tasks_and_their_activities() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let project = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let top = as_admin.task(project, &[("name", "Top")]).await;
    let child = as_admin
        .task(
            project,
            &[("name", "Child"), ("parentId", &top.to_string())],
        )
        .await;
    let grandchild = as_admin
        .task(
            project,
            &[("name", "Grandchild"), ("parentId", &child.to_string())],
        )
        .await;
    let sibling = as_admin.task(project, &[("name", "Sibling")]).await;
    let r = server
        .call_json(
            "activity/add",
            &[
                ("sessionId", &admin),
                ("activity[taskId]", &grandchild.to_string()),
                ("activity[text]", "note"),
            ],
        )
        .await;
    r.assert_ok();
    let activity = id_of(&r.json()["activity"]);

    let r = server
        .call_json(
            "tasks/remove",
            &[("sessionId", &admin), ("id", &top.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], json!(top.to_string()));
    for id in [top, child, grandchild] {
        as_admin
            .try_get(Kind::Task, id)
            .await
            .unwrap_err()
            .assert(404, "not_found");
    }
    server
        .call_json(
            "activity/getById",
            &[("sessionId", &admin), ("id", &activity.to_string())],
        )
        .await
        .assert_fail(404, "not_found");
    assert_filter(&server, &admin, &[], &[sibling]).await;
    server
        .call_json(
            "tasks/remove",
            &[("sessionId", &admin), ("id", &top.to_string())],
        )
        .await
        .assert_fail(404, "not_found");
}

// ---------------------------------------------------------------------------------------
// Validation and refusals
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_refuses_invalid_attributes_with_422_naming_each_field() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let existing = as_admin.add(Kind::Task, &[("name", "Existing")]).await;
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;
    let long_name = "n".repeat(256);
    let long_description = "d".repeat(100_001);
    let long_tags = "t".repeat(1_001);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("task[description]", "no name")], "task[name]"),
        (vec![("task[name]", "")], "task[name]"),
        (vec![("task[name]", " \t ")], "task[name]"),
        (vec![("task[name]", &long_name)], "task[name]"),
        (vec![("task[progress]", "101")], "task[progress]"),
        (vec![("task[progress]", "-1")], "task[progress]"),
        (vec![("task[estimatedTime]", "-1")], "task[estimatedTime]"),
        (vec![("task[priority]", "5")], "task[priority]"),
        (vec![("task[status]", "40")], "task[status]"),
        (vec![("task[flag]", "4")], "task[flag]"),
        (
            vec![
                ("task[startDate]", "2024-02-01"),
                ("task[endDate]", "2024-01-01"),
            ],
            "task[endDate]",
        ),
        (
            vec![("task[description]", &long_description)],
            "task[description]",
        ),
        (vec![("task[tags]", &long_tags)], "task[tags]"),
        (vec![("task[ownerId]", "9999")], "task[ownerId]"),
        (vec![("task[groupId]", "9999")], "task[groupId]"),
        (vec![("task[team][]", "9999")], "task[team]"),
    ];
    for (params, field) in cases {
        let mut all = vec![("sessionId", admin.as_str())];
        if field != "task[name]" {
            all.push(("task[name]", "Valid"));
        }
        all.extend(params.iter().copied());
        let r = server.call_json("tasks/add", &all).await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{params:?}: {}", r.body);
        let r = server.call("tasks/add", &all).await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{params:?}: {}", r.body);
    }
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );
    assert_eq!(id_of(&before[0]), existing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_refuses_progress_over_100_and_negative_hours_and_keeps_the_task() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = id_of(
        &as_admin
            .try_add(
                Kind::Task,
                &[("name", "Task"), ("progress", "50"), ("estimatedTime", "3")],
            )
            .await
            .unwrap(),
    );
    let before = as_admin.get(Kind::Task, id).await;
    for (key, value, field) in [
        ("task[progress]", "101", "task[progress]"),
        ("task[estimatedTime]", "-1", "task[estimatedTime]"),
        ("task[estimatedTime]", "-0.5", "task[estimatedTime]"),
        ("task[progress]", "", "task[progress]"),
        ("task[name]", "", "task[name]"),
    ] {
        let r = as_admin
            .call(
                "tasks/update",
                &[
                    ("task[id]", &id.to_string()),
                    ("task[flag]", "2"),
                    (key, value),
                ],
            )
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{key}={value}");
        assert_eq!(as_admin.get(Kind::Task, id).await, before);
    }
    // The bounds themselves are fine.
    let t = as_admin
        .update(
            Kind::Task,
            id,
            &[("progress", "100"), ("estimatedTime", "0")],
        )
        .await;
    assert_eq!(t["progress"], 100);
    assert_eq!(t["estimatedTime"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_done_given_in_input_is_ignored() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let t = as_admin
        .try_add(Kind::Task, &[("name", "Task"), ("hoursDone", "5")])
        .await
        .unwrap();
    assert_eq!(t["hoursDone"], 0.0);
    let id = id_of(&t);
    let t = as_admin.update(Kind::Task, id, &[("hoursDone", "7")]).await;
    assert_eq!(t["hoursDone"], 0.0);
    assert_eq!(as_admin.get(Kind::Task, id).await["hoursDone"], 0.0);
    // Even a value of the wrong type there is not read.
    let t = as_admin
        .update(Kind::Task, id, &[("hoursDone", "lots")])
        .await;
    assert_eq!(t["hoursDone"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_the_wrong_type_is_400_invalid_argument_naming_the_field() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin.add(Kind::Task, &[("name", "Task")]).await;
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;
    for (key, value) in [
        ("task[progress]", "half"),
        ("task[estimatedTime]", "two"),
        ("task[hidden]", "maybe"),
        ("task[startDate]", "yesterday"),
        ("task[projectId]", "p1"),
        ("task[parentId]", "1.5"),
    ] {
        let r = server
            .call_json(
                "tasks/add",
                &[("sessionId", &admin), ("task[name]", "New"), (key, value)],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], json!(key), "{}", r.body);
        let r = as_admin
            .call(
                "tasks/update",
                &[("task[id]", &id.to_string()), (key, value)],
            )
            .await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], json!(key), "{}", r.body);
    }
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_task_or_project_is_404() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin.add(Kind::Task, &[("name", "Task")]).await;
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;
    let missing = (id + 100).to_string();
    server
        .call_json("tasks/getById", &[("sessionId", &admin), ("id", &missing)])
        .await
        .assert_fail(404, "not_found");
    server
        .call("tasks/getById", &[("sessionId", &admin), ("id", &missing)])
        .await
        .assert_fail(404, "not_found");
    server
        .call_json(
            "tasks/update",
            &[
                ("sessionId", &admin),
                ("task[id]", &missing),
                ("task[name]", "X"),
            ],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call_json("tasks/remove", &[("sessionId", &admin), ("id", &missing)])
        .await
        .assert_fail(404, "not_found");
    // A task placed in a project that does not exist.
    server
        .call_json(
            "tasks/add",
            &[
                ("sessionId", &admin),
                ("task[name]", "Nowhere"),
                ("task[projectId]", "999"),
            ],
        )
        .await
        .assert_fail(404, "not_found");
    as_admin
        .update_answer(Kind::Task, id, &[("projectId", "999")])
        .await
        .assert_fail(404, "not_found");
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_with_get_are_405_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let id = as_admin.add(Kind::Task, &[("name", "Task")]).await;
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;
    let id_s = id.to_string();
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("tasks/add", vec![("task[name]", "New")]),
        (
            "tasks/update",
            vec![("task[id]", &id_s), ("task[name]", "Changed")],
        ),
        ("tasks/remove", vec![("id", &id_s)]),
    ];
    for (call, params) in cases {
        let mut all = vec![("sessionId", admin.as_str())];
        all.extend(params);
        let r = server.get(call, &all).await;
        r.assert_fail(405, "method_not_allowed");
        assert_eq!(
            r.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some("POST"),
            "{call}"
        );
    }
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );
    let r = server
        .get(
            "tasks/getList",
            &[("sessionId", &admin), ("retType", "json")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_add_tasks_follows_the_roles() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ext, ext_s) = server.user("ext@example.com", 150, false).await;
    let (client, client_s) = server.user("client@example.com", 200, false).await;
    let (_, user_s) = server.user("user@example.com", 100, false).await;
    let team = as_admin
        .add(
            Kind::Project,
            &[("name", "Team"), ("team", &format!("{ext},{client}"))],
        )
        .await;
    let outside = as_admin.add(Kind::Project, &[("name", "Outside")]).await;
    let before = as_admin
        .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
        .await
        .items;

    // Single tasks: not for external users and clients.
    for sid in [&ext_s, &client_s] {
        server
            .call_json("tasks/add", &[("sessionId", sid), ("task[name]", "Single")])
            .await
            .assert_fail(403, "forbidden");
    }
    // A client may not add to their own project; nobody outside sees `outside`.
    server
        .call_json(
            "tasks/add",
            &[
                ("sessionId", &client_s),
                ("task[name]", "T"),
                ("task[projectId]", &team.to_string()),
            ],
        )
        .await
        .assert_fail(403, "forbidden");
    for sid in [&ext_s, &client_s] {
        server
            .call_json(
                "tasks/add",
                &[
                    ("sessionId", sid),
                    ("task[name]", "T"),
                    ("task[projectId]", &outside.to_string()),
                ],
            )
            .await
            .assert_fail(404, "not_found");
    }
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items,
        before
    );

    // An external user in the team and a user may.
    let t = server
        .as_caller(&ext_s)
        .try_add(
            Kind::Task,
            &[("name", "By ext"), ("projectId", &team.to_string())],
        )
        .await
        .unwrap();
    assert_eq!(t["ownerId"], json!(ext));
    server
        .as_caller(&user_s)
        .try_add(
            Kind::Task,
            &[("name", "By user"), ("projectId", &outside.to_string())],
        )
        .await
        .unwrap();
    server
        .as_caller(&user_s)
        .add(Kind::Task, &[("name", "Single by user")])
        .await;
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("count", "1000"), ("loadTeam", "1")])
            .await
            .items
            .len(),
        3
    );

    // The client sees the team project's task but may not edit it.
    let ext_task = id_of(&t);
    assert_eq!(
        server.as_caller(&client_s).get(Kind::Task, ext_task).await["can_edit"],
        false
    );
    let before = as_admin.get(Kind::Task, ext_task).await;
    server
        .as_caller(&client_s)
        .update_answer(Kind::Task, ext_task, &[("name", "Client's")])
        .await
        .assert_fail(403, "forbidden");
    server
        .call_json(
            "tasks/remove",
            &[("sessionId", &client_s), ("id", &ext_task.to_string())],
        )
        .await
        .assert_fail(403, "forbidden");
    assert_eq!(as_admin.get(Kind::Task, ext_task).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_tasks_are_seen_only_by_their_owner_and_teams() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    let (_, bob_s) = server.user("bob@example.com", 100, false).await;
    let project = as_admin
        .add(Kind::Project, &[("name", "Open project")])
        .await;
    let open = as_admin.task(project, &[("name", "Open")]).await;
    let hidden = id_of(
        &as_admin
            .try_add(
                Kind::Task,
                &[
                    ("name", "Hidden"),
                    ("projectId", &project.to_string()),
                    ("hidden", "1"),
                    ("team", &ann.to_string()),
                ],
            )
            .await
            .unwrap(),
    );
    assert_filter(&server, &admin, &[], &[open, hidden]).await;
    assert_filter(&server, &ann_s, &[], &[open, hidden]).await;
    assert_filter(&server, &bob_s, &[], &[open]).await;
    server
        .call_json(
            "tasks/getById",
            &[("sessionId", &bob_s), ("id", &hidden.to_string())],
        )
        .await
        .assert_fail(404, "not_found");
    server
        .call_json(
            "tasks/remove",
            &[("sessionId", &bob_s), ("id", &hidden.to_string())],
        )
        .await
        .assert_fail(404, "not_found");
    assert_eq!(
        server.as_caller(&ann_s).get(Kind::Task, hidden).await["can_edit"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_under_a_hidden_parent_does_not_name_it_to_who_cannot_see_the_parent() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    let (bob, bob_s) = server.user("bob@example.com", 100, false).await;
    let project = as_admin
        .add(Kind::Project, &[("name", "Open project")])
        .await;
    let parent = id_of(
        &as_admin
            .try_add(
                Kind::Task,
                &[
                    ("name", "Secret parent"),
                    ("projectId", &project.to_string()),
                    ("hidden", "1"),
                    ("team", &ann.to_string()),
                ],
            )
            .await
            .unwrap(),
    );
    let child = as_admin
        .task(
            project,
            &[
                ("name", "Child"),
                ("parentId", &parent.to_string()),
                ("team", &format!("{ann},{bob}")),
            ],
        )
        .await;
    let filter = [("filter[projectId]", project.to_string())];
    let filter: Vec<(&str, &str)> = filter.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Who sees the parent reads its name, in getById and getList alike.
    for sid in [&admin, &ann_s] {
        let caller = server.as_caller(sid);
        assert_eq!(
            caller.get(Kind::Task, child).await["parentName"],
            "Secret parent"
        );
        let listed = caller.list(Kind::Task, &filter).await;
        let row = listed.items.iter().find(|t| id_of(t) == child).unwrap();
        assert_eq!(row["parentName"], "Secret parent");
    }
    // Bob sees the child but not its hidden parent: not its name either.
    let as_bob = server.as_caller(&bob_s);
    let got = as_bob.get(Kind::Task, child).await;
    assert_eq!(
        got["parentId"], parent,
        "the id is the child's own attribute"
    );
    assert!(got["parentName"].is_null(), "{got}");
    let listed = as_bob.list(Kind::Task, &filter).await;
    assert_eq!(listed.ids, vec![child]);
    assert!(
        listed.items[0]["parentName"].is_null(),
        "{}",
        listed.items[0]
    );
}

// ---------------------------------------------------------------------------------------
// Status done
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_done_records_the_closing_time_for_hide_old_object_period() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let open = as_admin.add(Kind::Task, &[("name", "Open")]).await;
    let done = as_admin.add(Kind::Task, &[("name", "Done")]).await;
    as_admin.update(Kind::Task, done, &[("status", "30")]).await;
    let added_done = id_of(
        &as_admin
            .try_add(Kind::Task, &[("name", "Added done"), ("status", "30")])
            .await
            .unwrap(),
    );
    let all = [open, done, added_done];
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "1")],
        &all,
    )
    .await;
    sleep_past_a_second().await;
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "1")],
        &all,
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "0")],
        &[open],
    )
    .await;
    // Reopening clears the closing time.
    as_admin.update(Kind::Task, done, &[("status", "20")]).await;
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "0")],
        &[open, done],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Filters: one test each
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_id_filter_keeps_the_tasks_of_that_project() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let p1 = as_admin.add(Kind::Project, &[("name", "One")]).await;
    let p2 = as_admin.add(Kind::Project, &[("name", "Two")]).await;
    let a = as_admin.task(p1, &[("name", "A")]).await;
    as_admin.task(p2, &[("name", "B")]).await;
    as_admin.add(Kind::Task, &[("name", "Single")]).await;
    let c = as_admin
        .task(p1, &[("name", "C"), ("parentId", &a.to_string())])
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[projectId]", &p1.to_string())],
        &[a, c],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_id_filter_keeps_the_direct_sub_tasks() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let p = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let a = as_admin.task(p, &[("name", "A")]).await;
    let b = as_admin
        .task(p, &[("name", "B"), ("parentId", &a.to_string())])
        .await;
    as_admin
        .task(p, &[("name", "D under B"), ("parentId", &b.to_string())])
        .await;
    as_admin.task(p, &[("name", "Top")]).await;
    let c = as_admin
        .task(p, &[("name", "C"), ("parentId", &a.to_string())])
        .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[parentId]", &a.to_string())],
        &[b, c],
    )
    .await;
}

/// Adds single tasks with these values of one date attribute; None leaves it unset.
async fn tasks_with(
    server: &TestServer,
    sid: &str,
    attr: &str,
    values: &[Option<&str>],
) -> Vec<i64> {
    let mut ids = Vec::new();
    for (n, value) in values.iter().enumerate() {
        let name = format!("T{n}");
        let mut params = vec![("name", name.as_str())];
        if let Some(v) = value {
            params.push((attr, v));
        }
        ids.push(server.as_caller(sid).add(Kind::Task, &params).await);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_started_filters_are_inclusive_from_and_exclusive_before() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = tasks_with(
        &server,
        &admin,
        "startDate",
        &[
            Some("2024-01-01"),
            Some("2024-01-10"),
            Some("2024-01-20"),
            None,
            Some("2024-01-09 23:59:59"),
        ],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[startedFrom]", "2024-01-10")],
        &[t[1], t[2]],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[startedBefore]", "2024-01-10")],
        &[t[0], t[4]],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[
            ("filter[startedFrom]", "2024-01-01"),
            ("filter[startedBefore]", "2024-01-20 00:00:00"),
        ],
        &[t[0], t[1], t[4]],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_filters_use_the_end_date_inclusive_from_and_exclusive_before() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = tasks_with(
        &server,
        &admin,
        "endDate",
        &[
            Some("2024-03-01 12:00:00"),
            Some("2024-03-02"),
            None,
            Some("2024-03-05"),
        ],
    )
    .await;
    // A start date alone does not count as a deadline.
    tasks_with(&server, &admin, "startDate", &[Some("2024-03-02")]).await;
    assert_filter(
        &server,
        &admin,
        &[("filter[deadlineFrom]", "2024-03-02")],
        &[t[1], t[3]],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[deadlineBefore]", "2024-03-02")],
        &[t[0]],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[
            ("filter[deadlineFrom]", "2024-03-01T12:00:00Z"),
            ("filter[deadlineBefore]", "2024-03-05"),
        ],
        &[t[0], t[1]],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_filters_are_strict() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let mut ids = Vec::new();
    for progress in ["0", "49", "50", "51", "100"] {
        ids.push(id_of(
            &server
                .as_caller(&admin)
                .try_add(Kind::Task, &[("name", "T"), ("progress", progress)])
                .await
                .unwrap(),
        ));
    }
    assert_filter(
        &server,
        &admin,
        &[("filter[progressLessThan]", "50")],
        &[ids[0], ids[1]],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[("filter[progressMoreThan]", "50")],
        &[ids[3], ids[4]],
    )
    .await;
    assert_filter(
        &server,
        &admin,
        &[
            ("filter[progressMoreThan]", "0"),
            ("filter[progressLessThan]", "100"),
        ],
        &[ids[1], ids[2], ids[3]],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_created_filters_split_at_a_creation_time() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let early = as_admin.add(Kind::Task, &[("name", "Early")]).await;
    sleep_past_a_second().await;
    let late = as_admin
        .try_add(Kind::Task, &[("name", "Late")])
        .await
        .unwrap();
    let at = late["createdAt"].as_str().unwrap().to_owned();
    // Updating the early task now does not make it created later.
    as_admin.update(Kind::Task, early, &[("flag", "1")]).await;
    let later = as_admin.add(Kind::Task, &[("name", "Later")]).await;
    assert_filter(
        &server,
        &admin,
        &[("filter[createdFrom]", &at)],
        &[id_of(&late), later],
    )
    .await;
    assert_filter(&server, &admin, &[("filter[createdBefore]", &at)], &[early]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_updated_filters_split_at_an_update_time() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let touched = as_admin.add(Kind::Task, &[("name", "Touched")]).await;
    let untouched = as_admin.add(Kind::Task, &[("name", "Untouched")]).await;
    sleep_past_a_second().await;
    let t = as_admin.update(Kind::Task, touched, &[("flag", "1")]).await;
    let at = t["updatedAt"].as_str().unwrap().to_owned();
    assert_ne!(t["createdAt"], t["updatedAt"]);
    assert_filter(&server, &admin, &[("filter[updatedFrom]", &at)], &[touched]).await;
    assert_filter(
        &server,
        &admin,
        &[("filter[updatedBefore]", &at)],
        &[untouched],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_id_filter_keeps_single_tasks_of_the_group_and_tasks_of_its_projects() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g1 = as_admin.group("One").await;
    let g2 = as_admin.group("Two").await;
    let (g1_s, g2_s) = (g1.to_string(), g2.to_string());
    let p1 = as_admin
        .add(Kind::Project, &[("name", "In one"), ("groupId", &g1_s)])
        .await;
    let p2 = as_admin
        .add(Kind::Project, &[("name", "In two"), ("groupId", &g2_s)])
        .await;
    let single = id_of(
        &as_admin
            .try_add(Kind::Task, &[("name", "Single one"), ("groupId", &g1_s)])
            .await
            .unwrap(),
    );
    as_admin
        .try_add(Kind::Task, &[("name", "Single two"), ("groupId", &g2_s)])
        .await
        .unwrap();
    let in_p1 = as_admin.task(p1, &[("name", "In p1")]).await;
    // Asks for g1 but its project is in g2.
    as_admin
        .try_add(
            Kind::Task,
            &[
                ("name", "In p2"),
                ("projectId", &p2.to_string()),
                ("groupId", &g1_s),
            ],
        )
        .await
        .unwrap();
    as_admin.add(Kind::Task, &[("name", "No group")]).await;
    assert_filter(
        &server,
        &admin,
        &[("filter[groupId]", &g1_s)],
        &[single, in_p1],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_id_filter_keeps_the_tasks_of_that_owner() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    as_admin.add(Kind::Task, &[("name", "Admin's")]).await;
    let by_ann = server
        .as_caller(&ann_s)
        .add(Kind::Task, &[("name", "Ann's")])
        .await;
    let given = id_of(
        &as_admin
            .try_add(
                Kind::Task,
                &[("name", "Given"), ("ownerId", &ann.to_string())],
            )
            .await
            .unwrap(),
    );
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
    let a = as_admin
        .add(Kind::Task, &[("name", "Fix LOGIN page")])
        .await;
    as_admin.add(Kind::Task, &[("name", "Log out")]).await;
    let b = as_admin.add(Kind::Task, &[("name", "relogin")]).await;
    as_admin.add(Kind::Task, &[("name", "Other")]).await;
    assert_filter(&server, &admin, &[("filter[name]", "Login")], &[a, b]).await;
    let under = as_admin.add(Kind::Task, &[("name", "x_y")]).await;
    as_admin.add(Kind::Task, &[("name", "xzy")]).await;
    assert_filter(&server, &admin, &[("filter[name]", "_")], &[under]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assigned_to_filter_keeps_tasks_whose_team_holds_the_user() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (ann, ann_s) = server.user("ann@example.com", 100, false).await;
    let (bob, _) = server.user("bob@example.com", 100, false).await;
    let with_ann = id_of(
        &as_admin
            .try_add(Kind::Task, &[("name", "A"), ("team", &ann.to_string())])
            .await
            .unwrap(),
    );
    as_admin
        .try_add(Kind::Task, &[("name", "B"), ("team", &bob.to_string())])
        .await
        .unwrap();
    let both = id_of(
        &as_admin
            .try_add(
                Kind::Task,
                &[("name", "AB"), ("team", &format!("{bob},{ann}"))],
            )
            .await
            .unwrap(),
    );
    // Owning is not being assigned, nor is being in the project's team.
    server
        .as_caller(&ann_s)
        .add(Kind::Task, &[("name", "Owned by Ann")])
        .await;
    let project = as_admin
        .add(Kind::Project, &[("name", "P"), ("team", &ann.to_string())])
        .await;
    as_admin
        .task(project, &[("name", "In Ann's project")])
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
async fn the_active_filter_drops_done_tasks() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let mut ids = Vec::new();
    for status in ["10", "30", "20", "30"] {
        ids.push(id_of(
            &server
                .as_caller(&admin)
                .try_add(Kind::Task, &[("name", "T"), ("status", status)])
                .await
                .unwrap(),
        ));
    }
    assert_filter(
        &server,
        &admin,
        &[("filter[active]", "1")],
        &[ids[0], ids[2]],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hide_old_object_period_filter_drops_tasks_closed_longer_ago() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let open = as_admin.add(Kind::Task, &[("name", "Open")]).await;
    let old = as_admin.add(Kind::Task, &[("name", "Old")]).await;
    as_admin.update(Kind::Task, old, &[("status", "30")]).await;
    sleep_past_a_second().await;
    let fresh = as_admin.add(Kind::Task, &[("name", "Fresh")]).await;
    // A period of 0 days keeps only what was closed this very second (dates are whole
    // seconds): the close and the lists must fall within one second of the clock, so a
    // round that straddles a second is done again (a loaded machine can take that long).
    for round in 0.. {
        let second = unix_now();
        as_admin
            .update(Kind::Task, fresh, &[("status", "30")])
            .await;
        let period = as_admin
            .list(Kind::Task, &[("filter[hide_old_object_period]", "0")])
            .await
            .ids_total();
        let non_active = as_admin
            .list(Kind::Task, &[("filter[hide_non_active]", "0")])
            .await
            .ids_total();
        if unix_now() != second && round < 20 {
            as_admin
                .update(Kind::Task, fresh, &[("status", "10")])
                .await;
            continue;
        }
        assert_eq!(period, (vec![open, fresh], 2), "hide_old_object_period=0");
        assert_eq!(non_active, (vec![open, fresh], 2), "hide_non_active=0");
        break;
    }
    assert_filter(
        &server,
        &admin,
        &[("filter[hide_old_object_period]", "1")],
        &[open, old, fresh],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_filter_is_422_listing_the_allowed_ones() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server
        .as_caller(&admin)
        .add(Kind::Task, &[("name", "Task")])
        .await;
    let r = server
        .call_json(
            "tasks/getList",
            &[
                ("sessionId", &admin),
                ("filter[projectid]", "1"),
                ("filter[name]", "Task"),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["filter[projectid]"]);
    assert_eq!(error_code(&r, "filter[projectid]"), "unknown_filter");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    for allowed in ["projectId", "parentId", "deadlineFrom", "progressLessThan"] {
        assert!(message.contains(allowed), "{message}");
    }
    let r = server
        .call(
            "tasks/getList",
            &[("sessionId", &admin), ("filter[taskId]", "1")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["filter[taskId]"]);
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
                .add(Kind::Task, &[("name", &format!("T{n}"))])
                .await,
        );
    }
    let r = server
        .call_json(
            "tasks/getList",
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
            "tasks/getList",
            &[("sessionId", &admin), ("offset", "2"), ("count", "2")],
        )
        .await;
    r.assert_ok();
    assert_eq!(xml_task_ids(&r), [ids[2], ids[3]]);
    let doc = r.xml();
    let items = doc.descendants().find(|n| n.has_tag_name("items")).unwrap();
    assert_eq!(items.attribute("count"), Some("2"));
    assert_eq!(items.attribute("total"), Some("5"));
    assert_eq!(items.attribute("offset"), Some("2"));

    assert_eq!(
        as_admin
            .list(Kind::Task, &[("offset", "5")])
            .await
            .ids_total(),
        (vec![], 5)
    );
    assert_eq!(
        as_admin
            .list(Kind::Task, &[("offset", "3"), ("count", "5")])
            .await
            .ids_total(),
        (vec![ids[3], ids[4]], 5)
    );

    let r = server
        .call_json("tasks/getList", &[("sessionId", &admin), ("count", "1001")])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["count"]);
    let r = server
        .call_json("tasks/getList", &[("sessionId", &admin), ("count", "abc")])
        .await;
    r.assert_fail(400, "invalid_argument");
    assert_eq!(r.json()["field"], "count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_ordered_by_id_ascending() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let p = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let a = as_admin.add(Kind::Task, &[("name", "Zed")]).await;
    let b = as_admin.task(p, &[("name", "Alpha")]).await;
    let c = as_admin
        .task(p, &[("name", "Mid"), ("parentId", &b.to_string())])
        .await;
    as_admin.update(Kind::Task, a, &[("name", "Renamed")]).await;
    assert!(a < b && b < c);
    assert_eq!(
        as_admin.list(Kind::Task, &[]).await.ids_total(),
        (vec![a, b, c], 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_follows_its_project_into_another_group_is_seen_by_updated_from() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let g = as_admin.group("G").await;
    let project = as_admin.add(Kind::Project, &[("name", "Site")]).await;
    let task = as_admin.task(project, &[("name", "Task")]).await;
    sleep_past_a_second().await;
    let r = server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &project.to_string()),
                ("project[groupId]", &g.to_string()),
            ],
        )
        .await;
    r.assert_ok();
    let at = r.json()["project"]["updatedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(as_admin.get(Kind::Task, task).await["groupId"], json!(g));
    // A client syncing with updatedFrom must learn of the task's new group.
    assert_filter(&server, &admin, &[("filter[updatedFrom]", &at)], &[task]).await;
}

/// An admin's list by project and activity takes its total from counts kept beside the
/// tasks (store/sql.rs, counted_task_total): every way tasks change must keep them true.
/// Listing without `count` returns every row, so the total must equal the rows returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_list_totals_follow_every_change_to_the_tasks() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let a = as_admin.add(Kind::Project, &[("name", "A")]).await;
    let b = as_admin.add(Kind::Project, &[("name", "B")]).await;
    let check = |step: &'static str| {
        let (server, admin) = (&server, admin.clone());
        async move {
            for project in [a, b] {
                for active in [false, true] {
                    let project = project.to_string();
                    let mut params = vec![("sessionId", admin.as_str()), ("retType", "json")];
                    params.push(("filter[projectId]", &project));
                    if active {
                        params.push(("filter[active]", "1"));
                    }
                    let r = server.get("tasks/getList", &params).await;
                    r.assert_ok();
                    let json = r.json();
                    let rows = json["items"].as_array().map_or(0, |i| i.len()) as i64;
                    assert_eq!(
                        json["total"], rows,
                        "{step}: project {project}, active {active}"
                    );
                }
            }
            let r = server
                .get(
                    "tasks/getList",
                    &[("sessionId", &admin), ("retType", "json")],
                )
                .await;
            let json = r.json();
            assert_eq!(
                json["total"],
                json["items"].as_array().map_or(0, |i| i.len()) as i64,
                "{step}: all tasks"
            );
        }
    };
    let parent = as_admin.task(a, &[("name", "parent")]).await;
    let child = as_admin
        .task(a, &[("name", "child"), ("parentId", &parent.to_string())])
        .await;
    as_admin
        .task(
            a,
            &[("name", "grandchild"), ("parentId", &child.to_string())],
        )
        .await;
    let done = as_admin.task(a, &[("name", "to be done")]).await;
    as_admin.task(b, &[("name", "in b")]).await;
    as_admin.add(Kind::Task, &[("name", "in no project")]).await;
    check("added").await;
    as_admin.update(Kind::Task, done, &[("status", "30")]).await;
    check("one done").await;
    server
        .call_json(
            "activity/add",
            &[
                ("sessionId", &admin),
                ("activity[taskId]", &done.to_string()),
                ("activity[type]", "progress"),
                ("activity[progress]", "50"),
            ],
        )
        .await
        .assert_ok();
    check("reopened by a progress note").await;
    let b_text = b.to_string();
    as_admin
        .update(
            Kind::Task,
            parent,
            &[("projectId", &b_text), ("parentId", "")],
        )
        .await;
    check("moved with its sub-tasks").await;
    server
        .call_json(
            "tasks/remove",
            &[("sessionId", &admin), ("id", &child.to_string())],
        )
        .await
        .assert_ok();
    check("sub-task removed with its own").await;
    server
        .call_json("projects/remove", &[("sessionId", &admin), ("id", &b_text)])
        .await
        .assert_ok();
    check("project removed").await;
    server.stop().await;
}

/// Every role's list of one project takes its total from the kept counts, by rules of
/// its own (store/sql.rs, counted_task_total); each must equal the rows the same list
/// returns, which come from the visibility conditions. Hidden tasks, owners, task and
/// project teams, done tasks and hidden projects all take part, before and after changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_roles_list_totals_match_the_rows_it_sees() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let as_admin = server.as_caller(&admin);
    let (u, user) = server.user("user@example.com", 100, true).await;
    let (_, teamed_user) = server.user("teamed@example.com", 100, true).await;
    let (e, external) = server.user("external@example.com", 150, true).await;
    let (c, client) = server.user("client@example.com", 200, true).await;
    let teamed_id = server
        .call_json(
            "authentication/getAuthorizedUser",
            &[("sessionId", &teamed_user)],
        )
        .await
        .json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (u, e, c) = (u.to_string(), e.to_string(), c.to_string());
    let a = as_admin
        .add(
            Kind::Project,
            &[
                ("name", "A"),
                ("team[]", &c),
                ("team[]", &teamed_id),
                ("team[]", &e),
            ],
        )
        .await;
    let h = as_admin
        .add(Kind::Project, &[("name", "H"), ("hidden", "1")])
        .await;
    let (a_text, h_text) = (a.to_string(), h.to_string());
    let in_a = |name: &'static str, extra: Vec<(&'static str, String)>| {
        let mut params = vec![("name", name.to_string()), ("projectId", a_text.clone())];
        params.extend(extra);
        params
    };
    let add = |sid: String, params: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.as_caller(&sid).add(Kind::Task, &params).await
        }
    };
    let plain = add(admin.clone(), in_a("plain", vec![])).await;
    let hidden = add(admin.clone(), in_a("hidden", vec![("hidden", "1".into())])).await;
    add(
        admin.clone(),
        in_a(
            "hidden, user in its team",
            vec![("hidden", "1".into()), ("team[]", u.clone())],
        ),
    )
    .await;
    add(admin.clone(), in_a("done", vec![("status", "30".into())])).await;
    add(
        admin.clone(),
        in_a(
            "hidden and done, external in its team",
            vec![
                ("hidden", "1".into()),
                ("status", "30".into()),
                ("team[]", e.clone()),
            ],
        ),
    )
    .await;
    add(
        user.clone(),
        in_a("hidden, the user's own", vec![("hidden", "1".into())]),
    )
    .await;
    add(external.clone(), in_a("the external's own", vec![])).await;
    // The external leaves the project's team but keeps owning its task.
    server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &a_text),
                ("project[team][]", &c),
                ("project[team][]", &teamed_id),
            ],
        )
        .await
        .assert_ok();
    for name in ["h1", "h2"] {
        add(
            admin.clone(),
            vec![("name", name.into()), ("projectId", h_text.clone())],
        )
        .await;
    }

    let sessions = [
        ("admin", admin.clone()),
        ("user", user.clone()),
        ("teamed user", teamed_user.clone()),
        ("external", external.clone()),
        ("client", client.clone()),
    ];
    let check = |step: &'static str| {
        let (server, sessions) = (&server, sessions.clone());
        async move {
            for (role, sid) in &sessions {
                for project in [a, h] {
                    for active in [false, true] {
                        let project = project.to_string();
                        let mut params = vec![
                            ("sessionId", sid.as_str()),
                            ("retType", "json"),
                            ("filter[projectId]", &project),
                        ];
                        if active {
                            params.push(("filter[active]", "1"));
                        }
                        let r = server.get("tasks/getList", &params).await;
                        r.assert_ok();
                        let json = r.json();
                        let rows = json["items"].as_array().map_or(0, |i| i.len()) as i64;
                        assert_eq!(
                            json["total"], rows,
                            "{step}: {role}, project {project}, active {active}: {}",
                            r.body
                        );
                    }
                }
            }
        }
    };
    check("set up").await;
    // Sanity: the rules give each role a different view of A.
    let seen = |sid: String| {
        let server = &server;
        let a = a_text.clone();
        async move {
            server
                .get(
                    "tasks/getList",
                    &[
                        ("sessionId", &sid),
                        ("retType", "json"),
                        ("filter[projectId]", &a),
                    ],
                )
                .await
                .json()["total"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(seen(admin.clone()).await, 7);
    assert_eq!(
        seen(user.clone()).await,
        5,
        "plain, done, the external's, two hidden of its own"
    );
    assert_eq!(seen(teamed_user.clone()).await, 7);
    assert_eq!(
        seen(external.clone()).await,
        2,
        "its own and the one it is in the team of"
    );
    assert_eq!(seen(client.clone()).await, 7);
    as_admin.update(Kind::Task, plain, &[("hidden", "1")]).await;
    as_admin
        .update(Kind::Task, hidden, &[("hidden", "0")])
        .await;
    check("hidden flags swapped").await;
    server
        .call_json(
            "projects/update",
            &[
                ("sessionId", &admin),
                ("project[id]", &a_text),
                ("project[team][]", &c),
                ("project[team][]", &teamed_id),
                ("project[team][]", &u),
            ],
        )
        .await
        .assert_ok();
    check("the user joined the project's team").await;
    assert_eq!(seen(user.clone()).await, 7);
    server.stop().await;
}
