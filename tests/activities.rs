//! Activities (sections 3, 5-9 of the contract): add, update, remove, getById and getList
//! in both formats, the six types, progress notes, the hoursDone roll-up, the list filters,
//! and who may see and edit what.
mod common;
use common::*;

use serde_json::Value;

/// The ids of every activity, as the admin lists them.
async fn all_ids(s: &TestServer) -> Vec<i64> {
    let admin = s.admin().await;
    s.as_caller(&admin).list(Kind::Activity, &[]).await.ids
}

// ---- the calls ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_is_added_read_updated_listed_and_removed_in_xml_and_json() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await;
    let (ts, ps) = (t.to_string(), p.to_string());

    // add in XML
    let r = s
        .call(
            "activity/add",
            &[
                ("sessionId", &sid),
                ("activity[taskId]", &ts),
                ("activity[type]", "msg"),
                ("activity[text]", "Hello <team> & all"),
            ],
        )
        .await;
    r.assert_ok();
    let id: i64 = r.xml_text("id").unwrap().parse().unwrap();
    assert_eq!(r.xml_text("taskId").as_deref(), Some(ts.as_str()));
    assert_eq!(r.xml_text("projectId").as_deref(), Some(ps.as_str()));
    assert_eq!(r.xml_text("type").as_deref(), Some("msg"));
    assert_eq!(r.xml_text("text").as_deref(), Some("Hello <team> & all"));
    assert_eq!(r.xml_text("ownerId").as_deref(), Some("1"));
    assert_eq!(r.xml_text("hideFromClients").as_deref(), Some("0"));
    assert_eq!(r.xml_text("can_edit").as_deref(), Some("1"));

    // getById in XML (GET) and JSON
    let r = s
        .get(
            "activity/getById",
            &[("sessionId", &sid), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert!(r.body.contains("<activity>"), "{}", r.body);
    assert_eq!(r.xml_text("text").as_deref(), Some("Hello <team> & all"));
    let r = as_admin.get_answer(Kind::Activity, id).await;
    r.assert_ok();
    let a = &r.json()["activity"];
    assert_eq!(a["id"], id.to_string());
    assert_eq!(a["taskId"], t);
    assert_eq!(a["projectId"], p);
    assert_eq!(a["hideFromClients"], false);
    assert_eq!(a["can_edit"], true);

    // update in JSON: partial
    let r = as_admin
        .update_answer(Kind::Activity, id, &[("text", "Changed")])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["text"], "Changed");
    assert_eq!(r.json()["activity"]["type"], "msg");
    assert_eq!(r.json()["activity"]["taskId"], t);
    let r = as_admin.get_answer(Kind::Activity, id).await;
    assert_eq!(r.json()["activity"]["text"], "Changed");

    // getList in XML and JSON
    let r = s.get("activity/getList", &[("sessionId", &sid)]).await;
    r.assert_ok();
    let doc = r.xml();
    let items = doc.descendants().find(|n| n.has_tag_name("items")).unwrap();
    assert_eq!(items.attribute("count"), Some("1"));
    assert_eq!(items.attribute("total"), Some("1"));
    assert_eq!(items.attribute("offset"), Some("0"));
    assert_eq!(
        items
            .children()
            .filter(|n| n.has_tag_name("activity"))
            .count(),
        1
    );
    let r = s
        .call_json("activity/getList", &[("sessionId", &sid)])
        .await;
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["count"], 1);
    assert_eq!(j["total"], 1);
    assert_eq!(j["offset"], 0);
    assert_eq!(j["items"][0]["id"], id.to_string());

    // remove in XML
    let r = s
        .call(
            "activity/remove",
            &[("sessionId", &sid), ("id", &id.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.xml_text("id"), Some(id.to_string()));
    as_admin
        .get_answer(Kind::Activity, id)
        .await
        .assert_fail(404, "not_found");
    assert_eq!(
        as_admin.list(Kind::Activity, &[]).await.total_ids(),
        (0, vec![])
    );
    s.call_json(
        "activity/remove",
        &[("sessionId", &sid), ("id", &id.to_string())],
    )
    .await
    .assert_fail(404, "not_found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_on_a_task_takes_the_tasks_project_and_one_on_a_project_has_no_task() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let other = as_admin.project(&[("name", "Other")]).await;
    let t = as_admin.task(p, &[]).await;
    // A projectId sent with a taskId is not believed: the task's project wins.
    let r = as_admin
        .add_answer(
            Kind::Activity,
            &[
                ("taskId", &t.to_string()),
                ("projectId", &other.to_string()),
                ("text", "on the task"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["projectId"], p);
    assert_eq!(r.json()["activity"]["taskId"], t);
    let r = as_admin
        .add_answer(
            Kind::Activity,
            &[
                ("projectId", &other.to_string()),
                ("text", "on the project"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["projectId"], other);
    assert_eq!(r.json()["activity"]["taskId"], Value::Null);
    // XML shows the absent task as an empty element.
    let id = id_of(&r.json()["activity"]);
    let r = s
        .call(
            "activity/getById",
            &[("sessionId", &sid), ("id", &id.to_string())],
        )
        .await;
    assert_eq!(r.xml_text("taskId").as_deref(), Some(""));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_posted_to_neither_a_task_nor_a_project_is_refused_with_422() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    as_admin.project(&[]).await;
    let r = as_admin
        .add_answer(Kind::Activity, &[("type", "msg"), ("text", "nowhere")])
        .await;
    r.assert_fail(422, "validation_failed");
    assert!(!r.error_fields().is_empty(), "{}", r.body);
    assert!(all_ids(&s).await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_of_the_six_types_is_accepted_and_an_unknown_type_is_refused() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await.to_string();
    for (kind, text, progress) in [
        ("msg", "a message", None),
        ("progress", "half way", Some("50")),
        ("file", "see the files", None),
        ("googledocs", "https://docs.example.com/d/1", None),
        ("ss_boards", "https://boards.example.com/s/2", None),
        ("ff_boards", "http://boards.example.com/f/3", None),
    ] {
        let mut attrs = vec![("taskId", t.as_str()), ("type", kind), ("text", text)];
        if let Some(p) = progress {
            attrs.push(("progress", p));
        }
        let r = as_admin.add_answer(Kind::Activity, &attrs).await;
        r.assert_ok();
        assert_eq!(r.json()["activity"]["type"], kind);
        assert_eq!(r.json()["activity"]["text"], text);
    }
    assert_eq!(all_ids(&s).await.len(), 6);
    let r = as_admin
        .add_answer(
            Kind::Activity,
            &[("taskId", &t), ("type", "tweet"), ("text", "x")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["activity[type]"]);
    assert_eq!(all_ids(&s).await.len(), 6, "nothing stored");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_types_need_an_http_link_in_their_text() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await.to_string();
    for kind in ["googledocs", "ss_boards", "ff_boards"] {
        for bad in [
            None,
            Some("not a link"),
            Some("ftp://files.example.com/x"),
            Some("javascript:alert(1)"),
            Some("https://"),
        ] {
            let mut attrs = vec![("projectId", p.as_str()), ("type", kind)];
            if let Some(text) = bad {
                attrs.push(("text", text));
            }
            let r = as_admin.add_answer(Kind::Activity, &attrs).await;
            r.assert_fail(422, "validation_failed");
            assert_eq!(r.error_fields(), ["activity[text]"], "{kind} {bad:?}");
        }
    }
    assert!(all_ids(&s).await.is_empty(), "nothing stored");
    let id = as_admin
        .activity(&[
            ("projectId", &p),
            ("type", "googledocs"),
            ("text", "https://docs.example.com/d/1"),
        ])
        .await;
    // An update cannot turn the link into plain text either.
    let r = as_admin
        .update_answer(Kind::Activity, id, &[("text", "no link")])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(
        as_admin.get_answer(Kind::Activity, id).await.json()["activity"]["text"],
        "https://docs.example.com/d/1"
    );
    s.stop().await;
}

// ---- progress notes and hours ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_note_needs_a_task_and_progress_from_0_to_100() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await;
    let (ps, ts) = (p.to_string(), t.to_string());
    let r = as_admin
        .add_answer(
            Kind::Activity,
            &[("projectId", &ps), ("type", "progress"), ("progress", "50")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["activity[taskId]"]);
    let r = as_admin
        .add_answer(Kind::Activity, &[("taskId", &ts), ("type", "progress")])
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["activity[progress]"]);
    for bad in ["101", "-1"] {
        let r = as_admin
            .add_answer(
                Kind::Activity,
                &[("taskId", &ts), ("type", "progress"), ("progress", bad)],
            )
            .await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), ["activity[progress]"]);
    }
    assert!(all_ids(&s).await.is_empty(), "nothing stored");
    let task_now = as_admin.get(Kind::Task, t).await;
    assert_eq!(task_now["progress"], 0);
    assert_eq!(task_now["status"], 10);
    for ok in ["0", "100"] {
        as_admin
            .add_answer(
                Kind::Activity,
                &[("taskId", &ts), ("type", "progress"), ("progress", ok)],
            )
            .await
            .assert_ok();
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_progress_note_sets_the_tasks_progress_and_100_closes_it_until_a_later_note_reopens_it(
) {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await;
    let ts = t.to_string();
    let note = |progress: &'static str| {
        let (s, sid, ts) = (&s, &sid, &ts);
        async move {
            s.as_caller(sid)
                .activity(&[("taskId", ts), ("type", "progress"), ("progress", progress)])
                .await
        }
    };
    note("40").await;
    let tk = as_admin.get(Kind::Task, t).await;
    assert_eq!(
        (tk["progress"].clone(), tk["status"].clone()),
        (40.into(), 10.into())
    );
    note("100").await;
    let tk = as_admin.get(Kind::Task, t).await;
    assert_eq!(
        (tk["progress"].clone(), tk["status"].clone()),
        (100.into(), 30.into())
    );
    note("60").await;
    let tk = as_admin.get(Kind::Task, t).await;
    assert_eq!(
        (tk["progress"].clone(), tk["status"].clone()),
        (60.into(), 10.into())
    );
    // A message does not touch progress.
    as_admin
        .activity(&[("taskId", &ts), ("text", "just talk")])
        .await;
    let tk = as_admin.get(Kind::Task, t).await;
    assert_eq!(
        (tk["progress"].clone(), tk["status"].clone()),
        (60.into(), 10.into())
    );
    // Updating the newest note moves the task with it.
    let newest = note("70").await;
    as_admin
        .update_answer(Kind::Activity, newest, &[("progress", "100")])
        .await
        .assert_ok();
    let tk = as_admin.get(Kind::Task, t).await;
    assert_eq!(
        (tk["progress"].clone(), tk["status"].clone()),
        (100.into(), 30.into())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_note_is_never_hidden_from_clients() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await.to_string();
    let r = as_admin
        .add_answer(
            Kind::Activity,
            &[
                ("taskId", &t),
                ("type", "progress"),
                ("progress", "10"),
                ("hideFromClients", "1"),
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["hideFromClients"], false);
    let id = id_of(&r.json()["activity"]);
    let r = as_admin
        .update_answer(Kind::Activity, id, &[("hideFromClients", "yes")])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["hideFromClients"], false);
    assert_eq!(
        as_admin.get_answer(Kind::Activity, id).await.json()["activity"]["hideFromClients"],
        false
    );
    // A message may be hidden.
    let r = as_admin
        .add_answer(Kind::Activity, &[("taskId", &t), ("hideFromClients", "1")])
        .await;
    assert_eq!(r.json()["activity"]["hideFromClients"], true);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_hours_done_is_the_sum_over_its_activities_on_add_update_and_remove() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await;
    let other = as_admin.task(p, &[("name", "Other")]).await;
    let ts = t.to_string();
    let hours = |task: Value| task["hoursDone"].as_f64().unwrap();
    assert_eq!(hours(as_admin.get(Kind::Task, t).await), 0.0);
    let a = as_admin
        .activity(&[("taskId", &ts), ("hoursDone", "1.5")])
        .await;
    let b = as_admin
        .activity(&[("taskId", &ts), ("hoursDone", "2.25")])
        .await;
    as_admin
        .activity(&[("taskId", &ts), ("text", "no hours")])
        .await;
    as_admin
        .activity(&[("taskId", &other.to_string()), ("hoursDone", "7")])
        .await;
    as_admin
        .activity(&[("projectId", &p.to_string()), ("hoursDone", "9")])
        .await;
    assert_eq!(hours(as_admin.get(Kind::Task, t).await), 3.75);
    as_admin
        .update_answer(Kind::Activity, a, &[("hoursDone", "0.5")])
        .await
        .assert_ok();
    assert_eq!(hours(as_admin.get(Kind::Task, t).await), 2.75);
    s.call_json(
        "activity/remove",
        &[("sessionId", &sid), ("id", &b.to_string())],
    )
    .await
    .assert_ok();
    assert_eq!(hours(as_admin.get(Kind::Task, t).await), 0.5);
    // Clearing the hours of an activity counts as none.
    as_admin
        .update_answer(Kind::Activity, a, &[("hoursDone", "")])
        .await
        .assert_ok();
    assert_eq!(hours(as_admin.get(Kind::Task, t).await), 0.0);
    assert_eq!(hours(as_admin.get(Kind::Task, other).await), 7.0);
    // Negative hours are refused and change nothing.
    as_admin
        .update_answer(Kind::Activity, a, &[("hoursDone", "-1")])
        .await
        .assert_fail(422, "validation_failed");
    assert_eq!(hours(as_admin.get(Kind::Task, t).await), 0.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_are_kept_to_nine_decimals_so_tenths_add_up_and_removals_leave_no_residue() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await;
    let ts = t.to_string();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(
            as_admin
                .activity(&[("taskId", &ts), ("hoursDone", "0.1")])
                .await,
        );
    }
    // Added one by one in binary floating point, ten tenths would read 0.9999999999999999.
    assert_eq!(as_admin.get(Kind::Task, t).await["hoursDone"], 1.0);
    as_admin
        .activity(&[("taskId", &ts), ("hoursDone", "0.2")])
        .await;
    s.call_json(
        "activity/remove",
        &[("sessionId", &sid), ("id", &ids[0].to_string())],
    )
    .await
    .assert_ok();
    assert_eq!(as_admin.get(Kind::Task, t).await["hoursDone"], 1.1);
    // A third of an hour keeps its nine decimals.
    as_admin
        .activity(&[("taskId", &ts), ("hoursDone", "0.3333333333333")])
        .await;
    assert_eq!(as_admin.get(Kind::Task, t).await["hoursDone"], 1.433333333);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_date_defaults_to_now_and_can_be_given() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await.to_string();
    let r = as_admin
        .add_answer(Kind::Activity, &[("projectId", &p)])
        .await;
    r.assert_ok();
    let a = &r.json()["activity"];
    let date = a["date"].as_str().unwrap().to_owned();
    assert_eq!(date.len(), 19, "{date}");
    // Within a second or so of creation.
    assert_eq!(date[..16], a["createdAt"].as_str().unwrap()[..16]);
    let r = as_admin
        .add_answer(
            Kind::Activity,
            &[("projectId", &p), ("date", "2024-03-04 05:06:07")],
        )
        .await;
    assert_eq!(r.json()["activity"]["date"], "2024-03-04 05:06:07");
    let r = as_admin
        .add_answer(
            Kind::Activity,
            &[("projectId", &p), ("date", "2024-03-04T07:06:07+02:00")],
        )
        .await;
    assert_eq!(r.json()["activity"]["date"], "2024-03-04 05:06:07");
    let id = id_of(&r.json()["activity"]);
    let r = as_admin
        .update_answer(Kind::Activity, id, &[("date", "2023-12-31")])
        .await;
    assert_eq!(r.json()["activity"]["date"], "2023-12-31 00:00:00");
    let r = as_admin
        .update_answer(Kind::Activity, id, &[("date", "yesterday")])
        .await;
    r.assert_fail(400, "invalid_argument");
    assert_eq!(
        as_admin.get_answer(Kind::Activity, id).await.json()["activity"]["date"],
        "2023-12-31 00:00:00"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_files_adds_the_files_and_with_names_adds_project_and_task_names() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[("name", "Launch")]).await;
    let t = as_admin.task(p, &[("name", "Write copy")]).await;
    let id = as_admin.activity(&[("taskId", &t.to_string())]).await;
    let on_project = as_admin.activity(&[("projectId", &p.to_string())]).await;
    let ids = id.to_string();
    s.call_json(
        "activity/attachFiles",
        &[
            ("sessionId", &sid),
            ("activityId", &ids),
            ("files[1][name]", "notes.txt"),
            ("files[1][content]", "aGVsbG8="),
        ],
    )
    .await
    .assert_ok();

    let plain = as_admin.get_answer(Kind::Activity, id).await.json()["activity"].clone();
    assert!(plain.get("files").is_none(), "{plain}");
    assert!(plain.get("projectName").is_none(), "{plain}");
    assert!(plain.get("taskName").is_none(), "{plain}");

    let r = s
        .call_json(
            "activity/getById",
            &[("sessionId", &sid), ("id", &ids), ("withFiles", "1")],
        )
        .await;
    let files = r.json()["activity"]["files"].clone();
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
    assert_eq!(files[0]["name"], "notes.txt");
    assert_eq!(files[0]["size"], 5);
    assert_eq!(files[0]["activityId"], id);
    let r = s
        .call(
            "activity/getById",
            &[("sessionId", &sid), ("id", &ids), ("withFiles", "1")],
        )
        .await;
    let doc = r.xml();
    let files_el = doc
        .descendants()
        .find(|n| n.has_tag_name("files"))
        .expect("a files element");
    let file_el = files_el
        .children()
        .find(|n| n.has_tag_name("file"))
        .expect("a file element");
    assert!(file_el
        .children()
        .any(|n| n.has_tag_name("name") && n.text() == Some("notes.txt")));

    let r = s
        .call_json(
            "activity/getById",
            &[("sessionId", &sid), ("id", &ids), ("withNames", "1")],
        )
        .await;
    let a = &r.json()["activity"];
    assert_eq!(a["projectName"], "Launch");
    assert_eq!(a["taskName"], "Write copy");
    assert!(a.get("files").is_none());

    let r = s
        .call_json(
            "activity/getList",
            &[("sessionId", &sid), ("withNames", "1"), ("withFiles", "1")],
        )
        .await;
    let items = r.json()["items"].clone();
    assert_eq!(items[0]["id"], ids);
    assert_eq!(items[0]["files"].as_array().unwrap().len(), 1);
    assert_eq!(items[0]["taskName"], "Write copy");
    assert_eq!(items[1]["id"], on_project.to_string());
    assert_eq!(items[1]["files"], serde_json::json!([]));
    assert_eq!(items[1]["projectName"], "Launch");
    assert_eq!(items[1]["taskName"], Value::Null);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_names_names_only_the_projects_the_caller_sees() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let admin = s.as_caller(&sid);
    let (external, external_sid) = s.user("external@example.com", 150, false).await;
    let e = external.to_string();
    let closed = admin.project(&[("name", "Closed")]).await;
    let open = admin.project(&[("name", "Open"), ("team[]", &e)]).await;
    let mut posted = Vec::new();
    for (p, name) in [(closed, "In the closed"), (open, "In the open")] {
        let t = admin.task(p, &[("name", name), ("team[]", &e)]).await;
        posted.push(admin.activity(&[("taskId", &t.to_string())]).await);
    }
    // The external sees both tasks' activities (their task teams), and only the project
    // whose team they are in.
    let external = s.as_caller(&external_sid);
    assert_eq!(
        external
            .try_get(Kind::Project, closed)
            .await
            .unwrap_err()
            .status,
        404
    );
    external.get(Kind::Project, open).await;
    let expected = [
        (posted[0], "In the closed", Value::Null, "Closed"),
        (posted[1], "In the open", Value::from("Open"), "Open"),
    ];
    for (caller, admin_sees) in [(&external_sid, false), (&sid, true)] {
        let r = s
            .call_json(
                "activity/getList",
                &[("sessionId", caller), ("withNames", "1")],
            )
            .await;
        let items = r.json()["items"].clone();
        for (id, task, project, name) in &expected {
            let project = if admin_sees {
                Value::from(*name)
            } else {
                project.clone()
            };
            let by_id = s
                .call_json(
                    "activity/getById",
                    &[
                        ("sessionId", caller),
                        ("id", &id.to_string()),
                        ("withNames", "1"),
                    ],
                )
                .await;
            let listed = items
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"].as_str() == Some(id.to_string().as_str()))
                .unwrap_or_else(|| panic!("{id} not listed: {items}"))
                .clone();
            for got in [&by_id.json()["activity"], &listed] {
                assert_eq!(got["taskName"], *task, "{got}");
                assert_eq!(got["projectName"], project, "admin {admin_sees}: {got}");
            }
        }
    }
    s.stop().await;
}

// ---- getList filters --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_filter_keeps_the_activities_of_that_project() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p1 = as_admin.project(&[]).await;
    let p2 = as_admin.project(&[]).await;
    let t1 = as_admin.task(p1, &[]).await;
    let a = as_admin.activity(&[("taskId", &t1.to_string())]).await;
    let b = as_admin.activity(&[("projectId", &p1.to_string())]).await;
    as_admin.activity(&[("projectId", &p2.to_string())]).await;
    let r = as_admin
        .list(Kind::Activity, &[("filter[projectId]", &p1.to_string())])
        .await
        .total_ids();
    assert_eq!(r, (2, vec![a, b]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_filter_keeps_the_activities_of_that_task() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t1 = as_admin.task(p, &[]).await;
    let t2 = as_admin.task(p, &[]).await;
    let a = as_admin.activity(&[("taskId", &t1.to_string())]).await;
    as_admin.activity(&[("taskId", &t2.to_string())]).await;
    as_admin.activity(&[("projectId", &p.to_string())]).await;
    let r = as_admin
        .list(Kind::Activity, &[("filter[taskId]", &t1.to_string())])
        .await
        .total_ids();
    assert_eq!(r, (1, vec![a]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_type_filter_keeps_activities_of_that_type() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let t = as_admin.task(p, &[]).await.to_string();
    as_admin.activity(&[("taskId", &t)]).await;
    let b = as_admin
        .activity(&[("taskId", &t), ("type", "progress"), ("progress", "5")])
        .await;
    as_admin.activity(&[("taskId", &t), ("type", "file")]).await;
    let r = as_admin
        .list(Kind::Activity, &[("filter[type]", "progress")])
        .await
        .total_ids();
    assert_eq!(r, (1, vec![b]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_filter_keeps_activities_whose_project_is_in_that_group() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let g = as_admin.group("Clients").await.to_string();
    let grouped = as_admin.project(&[("groupId", &g)]).await;
    let loose = as_admin.project(&[]).await;
    let t = as_admin.task(grouped, &[]).await;
    let a = as_admin.activity(&[("taskId", &t.to_string())]).await;
    let b = as_admin
        .activity(&[("projectId", &grouped.to_string())])
        .await;
    as_admin
        .activity(&[("projectId", &loose.to_string())])
        .await;
    as_admin
        .activity(&[("taskId", &as_admin.task(loose, &[]).await.to_string())])
        .await;
    let r = as_admin
        .list(Kind::Activity, &[("filter[groupId]", &g)])
        .await
        .total_ids();
    assert_eq!(r, (2, vec![a, b]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assigned_to_filter_keeps_activities_whose_task_or_project_team_holds_the_user() {
    let s = TestServer::start().await;
    let (u, _) = s.user("worker@example.com", 100, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let us = u.to_string();
    let p = as_admin.project(&[]).await;
    let team_project = as_admin.project(&[("team", &us)]).await;
    let on_team_task = as_admin.task(p, &[("team", &us)]).await;
    let off_team_task = as_admin.task(p, &[]).await;
    let a = as_admin
        .activity(&[("taskId", &on_team_task.to_string())])
        .await;
    as_admin
        .activity(&[("taskId", &off_team_task.to_string())])
        .await;
    as_admin.activity(&[("projectId", &p.to_string())]).await;
    let b = as_admin
        .activity(&[("projectId", &team_project.to_string())])
        .await;
    let r = as_admin
        .list(Kind::Activity, &[("filter[assignedTo]", &us)])
        .await
        .total_ids();
    assert_eq!(r, (2, vec![a, b]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_filter_drops_activities_of_done_tasks_and_projects() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let done_project = as_admin.project(&[("status", "30")]).await;
    let open = as_admin.task(p, &[]).await;
    let done = as_admin.task(p, &[("status", "30")]).await;
    let a = as_admin.activity(&[("taskId", &open.to_string())]).await;
    as_admin.activity(&[("taskId", &done.to_string())]).await;
    let b = as_admin.activity(&[("projectId", &p.to_string())]).await;
    as_admin
        .activity(&[("projectId", &done_project.to_string())])
        .await;
    assert_eq!(as_admin.list(Kind::Activity, &[]).await.total, 4);
    let r = as_admin
        .list(Kind::Activity, &[("filter[active]", "1")])
        .await
        .total_ids();
    assert_eq!(r, (2, vec![a, b]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hide_non_active_filter_drops_activities_of_tasks_closed_longer_ago() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let open = as_admin.task(p, &[]).await;
    let done = as_admin.task(p, &[]).await;
    let a = as_admin.activity(&[("taskId", &open.to_string())]).await;
    let b = as_admin.activity(&[("taskId", &done.to_string())]).await;
    s.call_json(
        "tasks/update",
        &[
            ("sessionId", &sid),
            ("task[id]", &done.to_string()),
            ("task[status]", "30"),
        ],
    )
    .await
    .assert_ok();
    // Closed within the last day: kept by a period of 1 day.
    let r = as_admin
        .list(Kind::Activity, &[("filter[hide_non_active]", "1")])
        .await
        .total_ids();
    assert_eq!(r, (2, vec![a, b]));
    // Closed more than 0 days ago once a second has passed: dropped.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = as_admin
        .list(Kind::Activity, &[("filter[hide_non_active]", "0")])
        .await
        .total_ids();
    assert_eq!(r, (1, vec![a]));
    let r = as_admin
        .list(Kind::Activity, &[("filter[hide_old_object_period]", "0")])
        .await
        .total_ids();
    assert_eq!(r, (1, vec![a]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_updated_from_and_updated_before_filters_split_activities_by_their_last_change() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await.to_string();
    let a = as_admin.activity(&[("projectId", &p)]).await;
    let b = as_admin.activity(&[("projectId", &p)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // An update moves `a` to the later side.
    let r = as_admin
        .update_answer(Kind::Activity, a, &[("text", "edited")])
        .await;
    let later = r.json()["activity"]["updatedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = as_admin.get_answer(Kind::Activity, b).await.json()["activity"]["updatedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first < later, "{first} {later}");
    assert_eq!(
        as_admin
            .list(Kind::Activity, &[("filter[updatedFrom]", &later)])
            .await
            .total_ids(),
        (1, vec![a])
    );
    assert_eq!(
        as_admin
            .list(Kind::Activity, &[("filter[updatedBefore]", &later)])
            .await
            .total_ids(),
        (1, vec![b])
    );
    assert_eq!(
        as_admin
            .list(Kind::Activity, &[("filter[updatedFrom]", &first)])
            .await
            .total_ids(),
        (2, vec![a, b])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_filter_is_refused_with_422_naming_it() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await.to_string();
    as_admin.activity(&[("projectId", &p)]).await;
    let r = s
        .call_json(
            "activity/getList",
            &[("sessionId", &sid), ("filter[projectID]", &p)],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["filter[projectID]"]);
    assert!(
        r.body.contains("projectId"),
        "lists the allowed: {}",
        r.body
    );
    s.stop().await;
}

// ---- who may see and do what ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_does_not_see_activities_hidden_from_clients() {
    let s = TestServer::start().await;
    let (c, client) = s.user("client@example.com", 200, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[("team", &c.to_string())]).await;
    let t = as_admin.task(p, &[]).await.to_string();
    let shown = as_admin
        .activity(&[("taskId", &t), ("text", "for all")])
        .await;
    let hidden = as_admin
        .activity(&[
            ("taskId", &t),
            ("text", "internal"),
            ("hideFromClients", "1"),
        ])
        .await;
    let hidden_on_project = as_admin
        .activity(&[("projectId", &p.to_string()), ("hideFromClients", "1")])
        .await;
    assert_eq!(as_admin.list(Kind::Activity, &[]).await.total, 3);
    assert_eq!(
        s.as_caller(&client)
            .list(Kind::Activity, &[])
            .await
            .total_ids(),
        (1, vec![shown])
    );
    assert_eq!(
        s.as_caller(&client)
            .list(Kind::Activity, &[("filter[taskId]", &t)])
            .await
            .total_ids(),
        (1, vec![shown])
    );
    s.as_caller(&client)
        .get_answer(Kind::Activity, shown)
        .await
        .assert_ok();
    for id in [hidden, hidden_on_project] {
        s.as_caller(&client)
            .get_answer(Kind::Activity, id)
            .await
            .assert_fail(404, "not_found");
    }
    // Hiding a visible message later hides it too.
    as_admin
        .update_answer(Kind::Activity, shown, &[("hideFromClients", "1")])
        .await
        .assert_ok();
    assert_eq!(
        s.as_caller(&client)
            .list(Kind::Activity, &[])
            .await
            .total_ids(),
        (0, vec![])
    );
    s.as_caller(&client)
        .get_answer(Kind::Activity, shown)
        .await
        .assert_fail(404, "not_found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_post_a_progress_note() {
    let s = TestServer::start().await;
    let (c, client) = s.user("client@example.com", 200, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[("team", &c.to_string())]).await;
    let t = as_admin.task(p, &[]).await;
    let r = s
        .as_caller(&client)
        .add_answer(
            Kind::Activity,
            &[
                ("taskId", &t.to_string()),
                ("type", "progress"),
                ("progress", "100"),
            ],
        )
        .await;
    r.assert_fail(403, "forbidden");
    assert!(all_ids(&s).await.is_empty(), "nothing stored");
    let tk = as_admin.get(Kind::Task, t).await;
    assert_eq!(
        (tk["progress"].clone(), tk["status"].clone()),
        (0.into(), 10.into())
    );
    // A message is fine.
    s.as_caller(&client)
        .add_answer(
            Kind::Activity,
            &[("taskId", &t.to_string()), ("text", "hi")],
        )
        .await
        .assert_ok();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_edit_and_remove_its_own_messages_only() {
    let s = TestServer::start().await;
    let (c, client) = s.user("client@example.com", 200, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[("team", &c.to_string())]).await;
    let ps = p.to_string();
    let r = s
        .as_caller(&client)
        .add_answer(Kind::Activity, &[("projectId", &ps), ("text", "question")])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["ownerId"], c);
    assert_eq!(r.json()["activity"]["can_edit"], true);
    let own = id_of(&r.json()["activity"]);
    let r = s
        .as_caller(&client)
        .update_answer(Kind::Activity, own, &[("text", "better question")])
        .await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["text"], "better question");
    // Not the admin's message.
    let admins = as_admin
        .activity(&[("projectId", &ps), ("text", "answer")])
        .await;
    let r = s
        .as_caller(&client)
        .get_answer(Kind::Activity, admins)
        .await;
    assert_eq!(r.json()["activity"]["can_edit"], false);
    s.as_caller(&client)
        .update_answer(Kind::Activity, admins, &[("text", "hacked")])
        .await
        .assert_fail(403, "forbidden");
    s.call_json(
        "activity/remove",
        &[("sessionId", &client), ("id", &admins.to_string())],
    )
    .await
    .assert_fail(403, "forbidden");
    assert_eq!(
        as_admin.get_answer(Kind::Activity, admins).await.json()["activity"]["text"],
        "answer"
    );
    // Its own non-message activity is not a message.
    let link = s
        .as_caller(&client)
        .activity(&[
            ("projectId", &ps),
            ("type", "googledocs"),
            ("text", "https://docs.example.com/d/1"),
        ])
        .await;
    s.as_caller(&client)
        .update_answer(
            Kind::Activity,
            link,
            &[("text", "https://docs.example.com/d/2")],
        )
        .await
        .assert_fail(403, "forbidden");
    s.call_json(
        "activity/remove",
        &[("sessionId", &client), ("id", &own.to_string())],
    )
    .await
    .assert_ok();
    assert_eq!(all_ids(&s).await, vec![admins, link]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_edit_or_remove_another_users_activity() {
    let s = TestServer::start().await;
    let (a, alice) = s.user("alice@example.com", 100, false).await;
    let (b, bob) = s.user("bob@example.com", 100, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let team = format!("{a},{b}");
    let p = as_admin.project(&[("team", &team)]).await;
    let t = as_admin.task(p, &[]).await;
    let id = s
        .as_caller(&alice)
        .activity(&[
            ("taskId", &t.to_string()),
            ("text", "mine"),
            ("hoursDone", "2"),
        ])
        .await;
    let r = s.as_caller(&bob).get_answer(Kind::Activity, id).await;
    r.assert_ok();
    assert_eq!(r.json()["activity"]["can_edit"], false);
    s.as_caller(&bob)
        .update_answer(
            Kind::Activity,
            id,
            &[("text", "bob's now"), ("hoursDone", "9")],
        )
        .await
        .assert_fail(403, "forbidden");
    s.call_json(
        "activity/remove",
        &[("sessionId", &bob), ("id", &id.to_string())],
    )
    .await
    .assert_fail(403, "forbidden");
    let a_now = as_admin.get_answer(Kind::Activity, id).await.json()["activity"].clone();
    assert_eq!(a_now["text"], "mine");
    assert_eq!(as_admin.get(Kind::Task, t).await["hoursDone"], 2.0);
    // The author and an admin may.
    s.as_caller(&alice)
        .update_answer(Kind::Activity, id, &[("text", "still mine")])
        .await
        .assert_ok();
    as_admin
        .update_answer(Kind::Activity, id, &[("text", "admin's edit")])
        .await
        .assert_ok();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_on_a_task_the_caller_cannot_see_is_not_found() {
    let s = TestServer::start().await;
    let (_, user) = s.user("outsider@example.com", 100, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[("hidden", "1")]).await;
    let t = as_admin.task(p, &[]).await;
    let ts = t.to_string();
    let id = as_admin
        .activity(&[("taskId", &ts), ("text", "secret")])
        .await;
    s.as_caller(&user)
        .get_answer(Kind::Activity, id)
        .await
        .assert_fail(404, "not_found");
    s.as_caller(&user)
        .update_answer(Kind::Activity, id, &[("text", "x")])
        .await
        .assert_fail(404, "not_found");
    s.call_json(
        "activity/remove",
        &[("sessionId", &user), ("id", &id.to_string())],
    )
    .await
    .assert_fail(404, "not_found");
    s.as_caller(&user)
        .add_answer(Kind::Activity, &[("taskId", &ts), ("text", "hello?")])
        .await
        .assert_fail(404, "not_found");
    s.as_caller(&user)
        .add_answer(
            Kind::Activity,
            &[("projectId", &p.to_string()), ("text", "hello?")],
        )
        .await
        .assert_fail(404, "not_found");
    assert_eq!(
        s.as_caller(&user)
            .list(Kind::Activity, &[])
            .await
            .total_ids(),
        (0, vec![])
    );
    assert_eq!(
        s.as_caller(&user)
            .list(Kind::Activity, &[("filter[taskId]", &ts)])
            .await
            .total_ids(),
        (0, vec![])
    );
    assert_eq!(all_ids(&s).await, vec![id], "nothing changed");
    assert_eq!(
        as_admin.get_answer(Kind::Activity, id).await.json()["activity"]["text"],
        "secret"
    );
    s.stop().await;
}

/// Messages posted at once to two tasks while one of them is removed: those to the
/// removed task, and progress notes to it, answer 200 (they came first) or 404, never 500
/// (their rows are refused by the task's foreign key, which PostgreSQL checks at COMMIT,
/// where a node gathers adds into one transaction); every message to the other task is
/// saved, its hoursDone is their exact sum, and its version rose once for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_posted_while_their_task_is_removed_are_404_and_the_others_all_land() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let admin = s.as_caller(&sid);
    let p = admin.project(&[]).await;
    let kept = admin.task(p, &[]).await;
    let version = |r: &Resp| -> i64 {
        let tag = r.headers.get("etag").expect("getById carries an ETag");
        tag.to_str().unwrap().trim_matches('"').parse().unwrap()
    };
    const EACH: usize = 16;
    for round in 1..=5 {
        let before = version(&admin.get_answer(Kind::Task, kept).await);
        let gone = admin.task(p, &[("name", "gone")]).await;
        // A message with hours, or a progress note.
        let post = |task: i64, fields: [(&'static str, &'static str); 2]| {
            let (task, sid) = (task.to_string(), sid.clone());
            let s = &s;
            async move {
                let mut form = vec![
                    ("sessionId", sid.as_str()),
                    ("activity[taskId]", task.as_str()),
                ];
                form.extend(fields);
                s.call_json("activity/add", &form).await
            }
        };
        let message = |hours| [("activity[text]", "late"), ("activity[hoursDone]", hours)];
        let to_kept = (0..EACH).map(|_| post(kept, message("0.25")));
        // Progress notes are never gathered: each runs alone and reads its task's status.
        let progress = [("activity[type]", "progress"), ("activity[progress]", "50")];
        let to_gone = (0..EACH)
            .map(|_| post(gone, message("0.5")))
            .chain((0..4).map(|_| post(gone, progress)));
        let (to_kept, to_gone) = (
            futures_util::future::join_all(to_kept),
            futures_util::future::join_all(to_gone),
        );
        let remove = [("sessionId", sid.as_str()), ("id", &gone.to_string())];
        // The removal a little after the posts, later each round, so that it lands
        // before, among and after their writes.
        let removal = async {
            tokio::time::sleep(std::time::Duration::from_millis(round as u64 * 3)).await;
            s.call_json("tasks/remove", &remove).await
        };
        let (kept_answers, gone_answers, removed) = tokio::join!(to_kept, to_gone, removal);
        assert_eq!(removed.status, 200, "{}", removed.body);
        for r in &kept_answers {
            assert_eq!(r.status, 200, "{}", r.body);
        }
        for r in &gone_answers {
            assert!(matches!(r.status, 200 | 404), "{} {}", r.status, r.body);
        }
        let task = admin.get_answer(Kind::Task, kept).await;
        assert_eq!(
            task.json()["task"]["hoursDone"].as_f64(),
            Some(0.25 * (EACH * round) as f64)
        );
        assert_eq!(version(&task), before + EACH as i64);
    }
    s.stop().await;
}

/// A task added to a project, and a message posted to a task of it, while another
/// request removes the project: each answers 200 (it came first) or 404, never 500
/// (the rows were refused by their foreign keys once the project and task were gone).
#[tokio::test]
async fn writes_naming_a_project_removed_meanwhile_are_404_not_500() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let admin = s.as_caller(&sid);
    for _ in 0..20 {
        let p = admin.project(&[]).await;
        let t = admin.task(p, &[]).await;
        let (p, t) = (p.to_string(), t.to_string());
        let sid = sid.as_str();
        let task = [
            ("sessionId", sid),
            ("task[name]", "late"),
            ("task[projectId]", p.as_str()),
        ];
        let message = [
            ("sessionId", sid),
            ("activity[taskId]", t.as_str()),
            ("activity[text]", "late"),
        ];
        let remove = [("sessionId", sid), ("id", p.as_str())];
        let (added, posted, removed) = tokio::join!(
            s.call_json("tasks/add", &task),
            s.call_json("activity/add", &message),
            s.call_json("projects/remove", &remove)
        );
        assert_eq!(removed.status, 200, "{}", removed.body);
        for r in [&added, &posted] {
            assert!(matches!(r.status, 200 | 404), "{} {}", r.status, r.body);
        }
    }
}
