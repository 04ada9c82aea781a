//! The web page for people (docs/web.md), from the server's side: every page answers with
//! the API's own rules for the same caller and object, forms are refused without their
//! token, their session or their right, hostile text is escaped everywhere it is shown,
//! signing in and out, and the headers of pages and assets.

mod common;

use common::*;
use serde_json::Value;

const MISSING: i64 = 987_654;

// ---- the world: four roles and what each may see -------------------------------------

struct Role {
    name: &'static str,
    email: String,
    id: i64,
    sid: String,
}

/// A project whose team holds the user, the external user and the client, one whose team
/// does not, a hidden project, another client's project; a hidden task, activities hidden
/// from clients, files, a group. All made through the API.
struct World {
    roles: Vec<Role>,
    projects: Vec<(i64, String)>,
    tasks: Vec<(i64, String)>,
    activities: Vec<(i64, String)>,
    files: Vec<i64>,
    users: Vec<i64>,
    group: i64,
    /// The text of the activity hidden from clients.
    secret: &'static str,
}

const SECRET: &str = "Staff-only remark about the budget";

/// Who posts a form, where, with what, and the status it must get.
type Refusal<'a> = (&'a Browser<'a>, &'a str, &'a [(&'a str, &'a str)], u16);

/// The status `caller`'s add of `kind` gets from the API: 200 (and the object removed
/// again by `admin`), or the refusal's.
async fn add_status(
    caller: &Caller<'_>,
    admin: &Caller<'_>,
    kind: Kind,
    attrs: &[(&str, &str)],
) -> u16 {
    match caller.try_add(kind, attrs).await {
        Ok(object) => {
            admin.remove(kind, id_of(&object)).await;
            200
        }
        Err(f) => f.status,
    }
}

async fn attach(s: &TestServer, sid: &str, activity: i64, name: &str) -> i64 {
    let r = s
        .as_caller(sid)
        .call(
            "activity/attachFiles",
            &[
                ("activityId", &activity.to_string()),
                ("files[1][name]", name),
                ("files[1][content]", "ZGF0YQ=="),
            ],
        )
        .await;
    r.assert_ok();
    id_of(&r.json()["items"][0])
}

async fn world(s: &TestServer) -> World {
    let admin_sid = s.admin().await;
    let admin_id = id_of(&s.as_caller(&admin_sid).user_by_email(ADMIN_EMAIL).await);
    let mut roles = vec![Role {
        name: "admin",
        email: ADMIN_EMAIL.into(),
        id: admin_id,
        sid: admin_sid.clone(),
    }];
    for (name, level) in [("user", 100), ("external", 150), ("client", 200)] {
        let email = format!("{name}@example.com");
        let (id, sid) = s.user(&email, level, false).await;
        roles.push(Role {
            name,
            email,
            id,
            sid,
        });
    }
    let (other_client, _) = s.user("other-client@example.com", 200, false).await;
    let (u, e, c) = (roles[1].id, roles[2].id, roles[3].id);
    let admin = s.as_caller(&admin_sid);
    let group = admin.group("Group of the team").await;
    let (u, e, c, oc) = (
        u.to_string(),
        e.to_string(),
        c.to_string(),
        other_client.to_string(),
    );
    let g = group.to_string();

    let team = admin
        .project(&[
            ("name", "Team project"),
            ("groupId", &g),
            ("team[]", &u),
            ("team[]", &e),
            ("team[]", &c),
        ])
        .await;
    let outside = admin.project(&[("name", "Outside project")]).await;
    let hidden = admin
        .project(&[("name", "Hidden project"), ("hidden", "1")])
        .await;
    let others = admin
        .project(&[("name", "Other client project"), ("team[]", &oc)])
        .await;

    let t_team = admin.task(team, &[("name", "Team task")]).await;
    let t_team_hidden = admin
        .task(team, &[("name", "Hidden team task"), ("hidden", "1")])
        .await;
    let t_external = admin
        .task(team, &[("name", "External's task"), ("team[]", &e)])
        .await;
    let t_outside = admin.task(outside, &[("name", "Outside task")]).await;
    let t_outside_hidden = admin
        .task(outside, &[("name", "Hidden outside task"), ("hidden", "1")])
        .await;
    let t_hidden = admin.task(hidden, &[("name", "Task of hidden")]).await;
    let t_others = admin.task(others, &[("name", "Other client's task")]).await;

    let on = |t: i64| t.to_string();
    let a_msg = admin
        .activity(&[("taskId", &on(t_team)), ("text", "A message for all")])
        .await;
    let a_secret = admin
        .activity(&[
            ("taskId", &on(t_team)),
            ("text", SECRET),
            ("hideFromClients", "1"),
        ])
        .await;
    let a_user = s
        .as_caller(&roles[1].sid)
        .activity(&[("taskId", &on(t_team)), ("text", "The user's message")])
        .await;
    let a_client = s
        .as_caller(&roles[3].sid)
        .activity(&[("taskId", &on(t_team)), ("text", "The client's message")])
        .await;
    let a_outside = admin
        .activity(&[("taskId", &on(t_outside)), ("text", "Outside message")])
        .await;
    let a_hidden = admin
        .activity(&[("taskId", &on(t_hidden)), ("text", "Message in hidden")])
        .await;
    let a_others = admin
        .activity(&[
            ("taskId", &on(t_others)),
            ("text", "Other client's message"),
        ])
        .await;

    let files = vec![
        attach(s, &admin_sid, a_msg, "for-all.txt").await,
        attach(s, &admin_sid, a_secret, "staff-only.txt").await,
        attach(s, &roles[1].sid, a_user, "users-file.txt").await,
        attach(s, &roles[3].sid, a_client, "clients-file.txt").await,
        attach(s, &admin_sid, a_outside, "outside.txt").await,
        attach(s, &admin_sid, a_hidden, "hidden.txt").await,
        attach(s, &admin_sid, a_others, "others.txt").await,
    ];
    let mut users: Vec<i64> = roles.iter().map(|r| r.id).collect();
    users.push(other_client);
    World {
        roles,
        projects: vec![
            (team, "Team project".into()),
            (outside, "Outside project".into()),
            (hidden, "Hidden project".into()),
            (others, "Other client project".into()),
        ],
        tasks: vec![
            (t_team, "Team task".into()),
            (t_team_hidden, "Hidden team task".into()),
            (t_external, "External's task".into()),
            (t_outside, "Outside task".into()),
            (t_outside_hidden, "Hidden outside task".into()),
            (t_hidden, "Task of hidden".into()),
            (t_others, "Other client's task".into()),
        ],
        activities: vec![
            (a_msg, "A message for all".into()),
            (a_secret, SECRET.into()),
            (a_user, "The user's message".into()),
            (a_client, "The client's message".into()),
            (a_outside, "Outside message".into()),
            (a_hidden, "Message in hidden".into()),
            (a_others, "Other client's message".into()),
        ],
        files,
        users,
        group,
        secret: SECRET,
    }
}

/// What a page must answer, from the API's answer about the same object for the same
/// caller: 404 where the API does not show it; else 200 for a read, and for an edit page
/// 200 where the API says `can_edit`, 403 where it does not.
fn expected(api: &Result<Value, Fail>, edit: bool) -> u16 {
    match api {
        Err(f) => {
            assert_eq!(
                f.status, 404,
                "the API refused a read otherwise: {}",
                f.body
            );
            404
        }
        Ok(object) if !edit => {
            let _ = object;
            200
        }
        Ok(object) => match &object["can_edit"] {
            Value::Bool(true) => 200,
            Value::Bool(false) => 403,
            other => panic!("no can_edit ({other}) in {object}"),
        },
    }
}

/// The status the API answers `activity/downloadFile` of this file with, for a session.
async fn download_status(s: &TestServer, sid: &str, id: i64) -> u16 {
    s.client
        .get(s.api("activity/downloadFile"))
        .query(&[
            ("sessionId", sid),
            ("id", &id.to_string()),
            ("retType", "json"),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Whether a page holds a link or form aimed at this address.
fn links_to(html: &str, href: &str) -> bool {
    html.contains(&format!("href=\"{href}\"")) || html.contains(&format!("action=\"{href}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_with_the_apis_rules_for_every_role() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let admin = s.as_caller(&w.roles[0].sid);
    let mut wrong = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut check = |role: &str, path: &str, got: &Resp, want: u16| {
        if path.ends_with("/edit") {
            seen.insert((path.split('/').nth(1).unwrap_or("").to_owned(), want));
        }
        if path.starts_with("/tasks/new?project=") {
            seen.insert(("tasks/new".to_owned(), want));
        }
        if got.status != want {
            wrong.push(format!(
                "{role} {path}: {} (the API says {want})",
                got.status
            ));
        }
        if want == 404 && got.status == 404 {
            assert!(
                got.body.contains("Not found"),
                "{role} {path}: {}",
                got.body
            );
        }
        if want == 403 && got.status == 403 {
            assert!(
                got.body.contains("Not allowed"),
                "{role} {path}: {}",
                got.body
            );
        }
    };
    for role in &w.roles {
        let api = s.as_caller(&role.sid);
        let b = s.user_browser_or_admin(&role.email).await;
        for path in ["/", "/projects", "/users", "/groups"] {
            check(role.name, path, &b.get(path).await, 200);
        }

        let ids = w.projects.iter().map(|(id, _)| *id).chain([MISSING]);
        for id in ids.collect::<Vec<_>>() {
            let got = api.try_get(Kind::Project, id).await;
            let page = format!("/projects/{id}");
            check(role.name, &page, &b.get(&page).await, expected(&got, false));
            let edit = format!("/projects/{id}/edit");
            check(role.name, &edit, &b.get(&edit).await, expected(&got, true));
            // Adding a task: the page answers as tasks/add does (tried, then undone).
            let project_id = id.to_string();
            let probe = [("name", "Probe"), ("projectId", project_id.as_str())];
            let want = add_status(&api, &admin, Kind::Task, &probe).await;
            let new = format!("/tasks/new?project={id}");
            let page = b.get(&new).await;
            check(role.name, &new, &page, want);
            if let Ok(project) = &got {
                // The project's page: its actions where the API allows them, and the tasks
                // tasks/getList answers for this caller.
                let shown = b.get(&format!("/projects/{id}")).await;
                let can_edit = project["can_edit"] == Value::Bool(true);
                assert_eq!(
                    shown.body.contains(">Edit project</a>"),
                    can_edit,
                    "{} Edit project on {id}",
                    role.name
                );
                assert_eq!(
                    links_to(&shown.body, &format!("/projects/{id}/edit")),
                    can_edit
                );
                assert_eq!(
                    shown.body.contains(">Add a task</a>"),
                    want == 200,
                    "{} Add a task on {id}",
                    role.name
                );
                let tasks = api
                    .list(Kind::Task, &[("filter[projectId]", &id.to_string())])
                    .await;
                let mut listed = linked_ids(&shown.body, "/tasks/");
                listed.sort();
                assert_eq!(listed, tasks.ids, "{} tasks of project {id}", role.name);
                for (t, name) in &w.tasks {
                    if !tasks.ids.contains(t) {
                        assert!(
                            !shown.body.contains(name.as_str()),
                            "{} sees {name}",
                            role.name
                        );
                    }
                }
            }
        }
        // A new project: the page and the list's button answer as projects/add does.
        let want = add_status(&api, &admin, Kind::Project, &[("name", "Probe")]).await;
        check(
            role.name,
            "/projects/new",
            &b.get("/projects/new").await,
            want,
        );
        let list = b.get("/projects").await;
        assert_eq!(
            links_to(&list.body, "/projects/new"),
            want == 200,
            "{} New project",
            role.name
        );
        // A single task (no project): the page answers as tasks/add does.
        let want = add_status(&api, &admin, Kind::Task, &[("name", "Probe")]).await;
        check(role.name, "/tasks/new", &b.get("/tasks/new").await, want);

        let ids = w.tasks.iter().map(|(id, _)| *id).chain([MISSING]);
        for id in ids.collect::<Vec<_>>() {
            let got = api.try_get(Kind::Task, id).await;
            let page = format!("/tasks/{id}");
            let shown = b.get(&page).await;
            check(role.name, &page, &shown, expected(&got, false));
            let edit = format!("/tasks/{id}/edit");
            check(role.name, &edit, &b.get(&edit).await, expected(&got, true));
            let Ok(task) = &got else { continue };
            if shown.status != 200 {
                continue;
            }
            let can_edit = task["can_edit"] == Value::Bool(true);
            let body = &shown.body;
            assert_eq!(
                body.contains(">Edit task</a>"),
                can_edit,
                "{} task {id}",
                role.name
            );
            assert_eq!(
                links_to(body, &format!("/tasks/{id}/remove")),
                can_edit,
                "{} Remove on task {id}",
                role.name
            );
            // A progress note needs an editable task (section 8; clients never edit one).
            assert_eq!(
                body.contains("Post a progress note"),
                can_edit,
                "{} progress form on task {id}",
                role.name
            );
            assert!(body.contains("Post a message"), "{} task {id}", role.name);
            // The stream: what activity/getList answers, with its edit links and the files'
            // remove buttons where the API says can_edit.
            let stream = api
                .list(Kind::Activity, &[("filter[taskId]", &id.to_string())])
                .await;
            let mut shown_ids = Vec::new();
            let mut rest = body.as_str();
            while let Some(at) = rest.find("id=\"activity-") {
                rest = &rest[at + "id=\"activity-".len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                // Articles only, not the fields of the forms (`activity-text`).
                if !digits.is_empty() {
                    shown_ids.push(digits.parse::<i64>().unwrap());
                }
            }
            shown_ids.sort();
            assert_eq!(
                shown_ids, stream.ids,
                "{} activities of task {id}",
                role.name
            );
            for item in &stream.items {
                let a = id_of(item);
                assert_eq!(
                    links_to(body, &format!("/activities/{a}/edit")),
                    item["can_edit"] == Value::Bool(true),
                    "{} edit link of activity {a}",
                    role.name
                );
            }
            for (a, text) in &w.activities {
                if !stream.ids.contains(a) {
                    assert!(!body.contains(text.as_str()), "{} sees {text:?}", role.name);
                }
            }
            let files = api.files(&[("filter[taskId]", &id.to_string())]).await;
            for f in &files.items {
                let fid = id_of(f);
                assert!(
                    links_to(body, &format!("/files/{fid}")),
                    "{} file {fid}",
                    role.name
                );
                assert_eq!(
                    links_to(body, &format!("/files/{fid}/remove")),
                    f["can_edit"] == Value::Bool(true),
                    "{} file {fid}",
                    role.name
                );
            }
            assert_eq!(
                linked_ids(body, "/files/").len(),
                files.ids.len(),
                "{} files of task {id}",
                role.name
            );
        }

        let ids = w.activities.iter().map(|(id, _)| *id).chain([MISSING]);
        for id in ids.collect::<Vec<_>>() {
            let got = api.try_get(Kind::Activity, id).await;
            let edit = format!("/activities/{id}/edit");
            check(role.name, &edit, &b.get(&edit).await, expected(&got, true));
        }
        for id in w.files.iter().copied().chain([MISSING]) {
            let want = download_status(&s, &role.sid, id).await;
            let page = format!("/files/{id}");
            check(role.name, &page, &b.get(&page).await, want);
        }
        for id in w.users.iter().copied().chain([MISSING]) {
            let got = api.try_get(Kind::User, id).await;
            let edit = format!("/users/{id}/edit");
            check(role.name, &edit, &b.get(&edit).await, expected(&got, true));
        }
        // Adding users is for admins (section 8, "manage users").
        let want = if role.name == "admin" { 200 } else { 403 };
        check(role.name, "/users/new", &b.get("/users/new").await, want);
        for id in [w.group, MISSING] {
            let got = api.try_get(Kind::Group, id).await;
            let edit = format!("/groups/{id}/edit");
            check(role.name, &edit, &b.get(&edit).await, expected(&got, true));
        }
        let group = api.get(Kind::Group, w.group).await;
        let want = expected(&Ok(group), true);
        check(role.name, "/groups/new", &b.get("/groups/new").await, want);

        // The lists show what the API's lists answer.
        let projects = api.list(Kind::Project, &[]).await;
        let page = b.get("/projects").await;
        let mut listed = linked_ids(&page.body, "/projects/");
        listed.sort();
        assert_eq!(listed, projects.ids, "{} /projects", role.name);
        for (id, name) in &w.projects {
            assert_eq!(
                page.body.contains(&format!(">{name}</a>")),
                projects.ids.contains(id),
                "{} /projects shows {name}",
                role.name
            );
        }
        let users = api.all(Kind::User, &[]).await;
        let page = b.get("/users").await;
        for r in &w.roles {
            let listed = users.iter().any(|u| u["email"] == r.email.as_str());
            assert_eq!(
                page.body.contains(&format!("<td>{}</td>", r.email)),
                listed,
                "{} /users shows {}",
                role.name,
                r.email
            );
        }
        assert_eq!(
            page.body.contains("other-client@example.com"),
            users
                .iter()
                .any(|u| u["email"] == "other-client@example.com"),
            "{} /users",
            role.name
        );
        assert_eq!(
            page.body.contains("href=\"/users/new\""),
            role.name == "admin",
            "{} New user",
            role.name
        );
        let groups = b.get("/groups").await;
        assert!(groups.body.contains("Group of the team"), "{}", groups.body);
        let group = api.get(Kind::Group, w.group).await;
        assert_eq!(
            groups.body.contains("href=\"/groups/new\""),
            group["can_edit"] == Value::Bool(true),
            "{} New group",
            role.name
        );
        // A client never reads what is hidden from clients, anywhere; the others do.
        let stream = b.get(&format!("/tasks/{}", w.tasks[0].0)).await;
        assert_eq!(
            stream.body.contains(w.secret),
            role.name != "client",
            "{} and the activity hidden from clients",
            role.name
        );
        if role.name == "client" {
            for path in ["/", "/projects"]
                .into_iter()
                .map(str::to_owned)
                .chain(w.tasks.iter().map(|(t, _)| format!("/tasks/{t}")))
                .chain(w.projects.iter().map(|(p, _)| format!("/projects/{p}")))
            {
                let r = b.get(&path).await;
                assert!(
                    !r.body.contains(w.secret),
                    "client reads the secret on {path}"
                );
                assert!(
                    !r.body.contains("staff-only.txt"),
                    "client sees the file on {path}"
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "pages that disagree with the API:\n{}",
        wrong.join("\n")
    );
    // The world exercised every answer on each kind of edit page.
    for kind in [
        "projects",
        "tasks",
        "activities",
        "users",
        "groups",
        "tasks/new",
    ] {
        for status in [200, 403, 404] {
            assert!(
                seen.contains(&(kind.to_owned(), status)),
                "no {kind} page was expected to answer {status}: {seen:?}"
            );
        }
    }
    // And the API itself holds the table's rules for the cases that matter most.
    let as_role = |i: usize| s.as_caller(&w.roles[i].sid);
    let (team, outside, hidden, others) = (
        w.projects[0].0,
        w.projects[1].0,
        w.projects[2].0,
        w.projects[3].0,
    );
    assert!(as_role(1).try_get(Kind::Project, hidden).await.is_err());
    assert!(as_role(2).try_get(Kind::Project, outside).await.is_err());
    assert!(as_role(3).try_get(Kind::Project, others).await.is_err());
    assert!(as_role(3).try_get(Kind::Project, team).await.is_ok());
    assert!(as_role(3)
        .try_get(Kind::Activity, w.activities[1].0)
        .await
        .is_err());
    assert!(as_role(1).try_get(Kind::Task, w.tasks[4].0).await.is_err());
    s.stop().await;
}

impl TestServer {
    async fn user_browser_or_admin(&self, email: &str) -> Browser<'_> {
        if email == ADMIN_EMAIL {
            self.admin_browser().await
        } else {
            self.user_browser(email).await
        }
    }
}

// ---- forms that must be refused -------------------------------------------------------

/// The names of the projects the admin sees through the API.
async fn project_names(s: &TestServer, admin: &str) -> Vec<String> {
    s.as_caller(admin)
        .all(Kind::Project, &[])
        .await
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_their_token_session_or_right_change_nothing() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let (user, _) = s.user("user@example.com", 100, false).await;
    s.user("external@example.com", 150, false).await;
    let (client, client_sid) = s.user("client@example.com", 200, false).await;
    let mine = admin
        .project(&[
            ("name", "Original"),
            ("team[]", &user.to_string()),
            ("team[]", &client.to_string()),
        ])
        .await;
    let outside = admin.project(&[("name", "Outside")]).await;
    let hidden = admin.project(&[("name", "Hidden"), ("hidden", "1")]).await;
    let task = admin.task(mine, &[("name", "Task")]).await;
    let before = project_names(&s, &admin_sid).await;
    let unchanged = |what: &str| format!("{what} changed nothing");

    let b = s.admin_browser().await;
    let u = s.user_browser("user@example.com").await;
    let ext = s.user_browser("external@example.com").await;
    let cl = s.user_browser("client@example.com").await;

    // No token, an empty one, a made-up one, another session's.
    let other_token = u.csrf().await;
    let own_token = b.csrf().await;
    assert_ne!(other_token, own_token);
    for token in [
        None,
        Some(""),
        Some("0123456789abcdef0123456789abcdef"),
        Some(other_token.as_str()),
    ] {
        let mut pairs = vec![("project[name]", "Forged")];
        if let Some(t) = token {
            pairs.push(("csrf", t));
        }
        let r = b.post_raw("/projects/new", &pairs).await;
        assert_eq!(r.status, 403, "token {token:?}: {}", r.body);
        assert!(r.body.contains("Not allowed"), "{}", r.body);
        let edit = format!("/projects/{mine}/edit");
        let r = b.post_raw(&edit, &pairs).await;
        assert_eq!(r.status, 403, "token {token:?}: {}", r.body);
        let r = b
            .post_raw(&format!("/projects/{mine}/remove"), &pairs)
            .await;
        assert_eq!(r.status, 403, "token {token:?}: {}", r.body);
        let r = b
            .post_raw(
                &format!("/tasks/{task}/activities"),
                &[
                    ("activity[type]", "msg"),
                    ("activity[text]", "Forged message"),
                    ("csrf", token.unwrap_or("")),
                ],
            )
            .await;
        assert_eq!(r.status, 403, "token {token:?}: {}", r.body);
        let r = b.post_raw("/signout", &pairs).await;
        assert_eq!(
            r.status, 403,
            "signing out with token {token:?}: {}",
            r.body
        );
    }
    assert_eq!(
        project_names(&s, &admin_sid).await,
        before,
        "{}",
        unchanged("no token")
    );
    assert_eq!(admin.get(Kind::Project, mine).await["name"], "Original");
    assert_eq!(admin.list(Kind::Activity, &[]).await.total, 0);
    // The session is still alive: signing out needed the token.
    assert_eq!(b.get("/").await.status, 200);

    // No session: to the sign-in page, and nothing done.
    let nobody = s.browser();
    nobody.set_cookie(SIGN_IN_COOKIE, &own_token);
    for (path, pairs) in [
        (
            "/projects/new".to_owned(),
            vec![("project[name]", "Anonymous")],
        ),
        (
            format!("/projects/{mine}/edit"),
            vec![("project[name]", "Anonymous")],
        ),
        (format!("/projects/{mine}/remove"), vec![]),
        (format!("/tasks/{task}/remove"), vec![]),
        ("/groups/new".to_owned(), vec![("group[name]", "Anonymous")]),
    ] {
        let mut pairs = pairs;
        pairs.push(("csrf", own_token.as_str()));
        let r = nobody.post_raw(&path, &pairs).await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
        assert!(
            location(&r).starts_with("/signin?next="),
            "{path}: {}",
            location(&r)
        );
    }
    let r = nobody.get("/projects").await;
    assert_eq!(r.status, 303);
    assert_eq!(location(&r), "/signin?next=%2Fprojects");
    assert_eq!(
        project_names(&s, &admin_sid).await,
        before,
        "{}",
        unchanged("no session")
    );
    assert_eq!(admin.get(Kind::Task, task).await["name"], "Task");
    assert!(admin.all(Kind::Group, &[]).await.is_empty());

    // Without the right: 403 where the caller sees the object, 404 where not.
    let (outside_edit, outside_remove) = (
        format!("/projects/{outside}/edit"),
        format!("/projects/{outside}/remove"),
    );
    let (hidden_edit, hidden_remove) = (
        format!("/projects/{hidden}/edit"),
        format!("/projects/{hidden}/remove"),
    );
    let (task_edit, task_remove, task_post) = (
        format!("/tasks/{task}/edit"),
        format!("/tasks/{task}/remove"),
        format!("/tasks/{task}/activities"),
    );
    let refused: [Refusal; 10] = [
        (
            &ext,
            "/projects/new",
            &[("project[name]", "External's")],
            403,
        ),
        (&cl, "/groups/new", &[("group[name]", "Client's")], 403),
        (&u, &outside_edit, &[("project[name]", "Taken")], 403),
        (&u, &outside_remove, &[], 403),
        (&u, &hidden_edit, &[("project[name]", "Taken")], 404),
        (&u, &hidden_remove, &[], 404),
        (&cl, &task_edit, &[("task[name]", "Client's")], 403),
        (&cl, &task_remove, &[], 403),
        (
            &cl,
            &task_post,
            &[
                ("activity[type]", "progress"),
                ("activity[progress]", "100"),
            ],
            403,
        ),
        (
            &u,
            "/users/new",
            &[
                ("user[email]", "new@example.com"),
                ("user[password]", "long-enough-1"),
            ],
            403,
        ),
    ];
    for (who, path, fields, status) in refused {
        let r = who.post(path, fields).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
    }
    let r = u
        .post(
            &format!("/users/{client}/edit"),
            &[("user[firstName]", "Renamed")],
        )
        .await;
    assert!(r.status == 403 || r.status == 404, "{}", r.body);
    cl.post(
        &format!("/users/{client}/edit"),
        &[("user[securityLevel]", "0")],
    )
    .await;
    assert_eq!(
        s.as_caller(&client_sid).get(Kind::User, client).await["securityLevel"],
        200
    );
    assert_eq!(
        project_names(&s, &admin_sid).await,
        before,
        "{}",
        unchanged("no right")
    );
    assert_eq!(admin.get(Kind::Task, task).await["name"], "Task");
    assert_eq!(admin.get(Kind::Task, task).await["progress"], 0);
    assert!(admin.all(Kind::Group, &[]).await.is_empty());
    assert!(admin
        .all(Kind::User, &[])
        .await
        .iter()
        .all(|u| u["email"] != "new@example.com"));
    assert_ne!(admin.get(Kind::User, client).await["firstName"], "Renamed");

    // Wrong types and missing fields: 422, the error beside its field, what was typed kept.
    let r = b
        .post(
            "/projects/new",
            &[
                ("project[name]", "Typed name"),
                ("project[description]", "Typed description"),
                ("project[priority]", "abc"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("id=\"error-project-priority\""),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("class=\"field-error\" id=\"error-project-priority\""),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("aria-describedby=\"error-project-priority\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"Typed name\""), "{}", r.body);
    assert!(
        r.body.contains(">Typed description</textarea>"),
        "{}",
        r.body
    );
    let r = b
        .post(
            "/projects/new",
            &[
                ("project[name]", "  "),
                ("project[description]", "Kept text"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"error-project-name\""), "{}", r.body);
    assert!(r.body.contains(">Kept text</textarea>"), "{}", r.body);
    assert!(
        !r.body.contains("id=\"error-project-priority\""),
        "{}",
        r.body
    );
    let r = b
        .post(&format!("/projects/{mine}/edit"), &[("project[name]", "")])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"error-project-name\""), "{}", r.body);
    let r = b
        .post(
            "/tasks/new",
            &[
                ("task[projectId]", &mine.to_string()),
                ("task[name]", "T"),
                ("task[estimatedTime]", "lots"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("id=\"error-task-estimatedTime\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"lots\""), "{}", r.body);
    assert_eq!(
        project_names(&s, &admin_sid).await,
        before,
        "{}",
        unchanged("422")
    );
    assert_eq!(admin.list(Kind::Task, &[]).await.total, 1);

    // Ids that do not exist or are not numbers: the "Not found" page.
    for path in [
        format!("/projects/{MISSING}"),
        "/projects/abc".into(),
        "/projects/-1".into(),
        "/projects/0".into(),
        "/projects/1.5".into(),
        format!("/projects/{MISSING}/edit"),
        "/projects/abc/edit".into(),
        format!("/tasks/{MISSING}"),
        "/tasks/abc".into(),
        "/tasks/abc/edit".into(),
        "/tasks/new?project=abc".into(),
        format!("/tasks/new?project={MISSING}"),
        "/activities/abc/edit".into(),
        "/files/abc".into(),
        format!("/files/{MISSING}"),
        "/users/abc/edit".into(),
        "/groups/abc/edit".into(),
        "/projects/99999999999999999999999".into(),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.body.contains("Not found"), "{path}: {}", r.body);
    }
    for path in [
        "/projects/abc/edit".to_owned(),
        format!("/projects/{MISSING}/edit"),
        format!("/projects/{MISSING}/remove"),
        "/tasks/abc/remove".into(),
        format!("/tasks/{MISSING}/activities"),
        "/activities/abc/edit".into(),
        format!("/files/{MISSING}/remove"),
        format!("/groups/{MISSING}/edit"),
        format!("/users/{MISSING}/remove"),
    ] {
        let r = b
            .post(
                &path,
                &[("project[name]", "Nowhere"), ("activity[text]", "x")],
            )
            .await;
        assert_eq!(r.status, 404, "POST {path}: {}", r.body);
    }
    assert_eq!(
        project_names(&s, &admin_sid).await,
        before,
        "{}",
        unchanged("404")
    );

    // A body over 1 MiB is refused before anything is stored.
    let csrf = b.csrf().await;
    let big = "x".repeat(1024 * 1024 + 10);
    let body = format!("csrf={csrf}&project%5Bname%5D=Huge&project%5Bdescription%5D={big}");
    let r = b
        .post_body(
            "/projects/new",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(500)]);
    let body = format!("csrf={csrf}&activity%5Btype%5D=msg&activity%5Btext%5D={big}");
    let r = b
        .post_body(
            &format!("/tasks/{task}/activities"),
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(500)]);
    assert_eq!(
        project_names(&s, &admin_sid).await,
        before,
        "{}",
        unchanged("1 MiB")
    );
    assert_eq!(admin.list(Kind::Activity, &[]).await.total, 0);

    // And the same forms with their token, session and right do work.
    let r = b
        .post("/projects/new", &[("project[name]", "Made by form")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(project_names(&s, &admin_sid)
        .await
        .contains(&"Made by form".to_owned()));
    let r = u
        .post(
            &format!("/tasks/{task}/activities"),
            &[
                ("activity[type]", "msg"),
                ("activity[text]", "Posted by form"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(admin.list(Kind::Activity, &[]).await.total, 1);
    s.stop().await;
}

fn upload_form(csrf: Option<&str>, files: &[(&str, Vec<u8>)]) -> reqwest::multipart::Form {
    let mut f = reqwest::multipart::Form::new().text("text", "Files for you");
    if let Some(csrf) = csrf {
        f = f.text("csrf", csrf.to_owned());
    }
    for (name, bytes) in files {
        let part = reqwest::multipart::Part::bytes(bytes.clone())
            .file_name(name.to_string())
            .mime_str("application/octet-stream")
            .unwrap();
        f = f.part("files", part);
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_file_limit_is_refused_and_leaves_no_file_note() {
    let s = TestServer::start_with(|c| c.max_file_bytes = 1_000).await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let project = admin.project(&[("name", "Limits")]).await;
    let task = admin.task(project, &[("name", "Upload here")]).await;
    let b = s.admin_browser().await;
    let csrf = b.csrf().await;
    let r = b
        .post_multipart(
            &format!("/tasks/{task}/files"),
            upload_form(
                Some(&csrf),
                &[("small.txt", b"ok".to_vec()), ("big.bin", vec![7u8; 5_000])],
            ),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("class=\"form-error\""), "{}", r.body);
    // All or nothing: neither file, and no empty file note left behind.
    assert_eq!(admin.files(&[]).await.total, 0);
    assert_eq!(admin.list(Kind::Activity, &[]).await.total, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_uploads_need_their_token_session_and_right() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let (client, _) = s.user("client@example.com", 200, false).await;
    let outside = admin.project(&[("name", "Outside")]).await;
    let hidden_task = admin.task(outside, &[("name", "Not the client's")]).await;
    let team = admin
        .project(&[("name", "Team"), ("team[]", &client.to_string())])
        .await;
    let task = admin.task(team, &[("name", "Task")]).await;
    let b = s.admin_browser().await;
    let cl = s.user_browser("client@example.com").await;
    let path = format!("/tasks/{task}/files");
    let file = || vec![("a.txt", b"some bytes".to_vec())];
    let nothing = |what: &str| format!("{what} stored something");

    let other = cl.csrf().await;
    for csrf in [None, Some("bad"), Some(other.as_str())] {
        let r = b.post_multipart(&path, upload_form(csrf, &file())).await;
        assert_eq!(r.status, 403, "csrf {csrf:?}: {}", r.body);
    }
    let r = s
        .browser()
        .post_multipart(&path, upload_form(Some(&other), &file()))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(location(&r).starts_with("/signin"), "{}", location(&r));
    // A task the client does not see: the "Not found" page.
    let csrf = cl.csrf().await;
    let r = cl
        .post_multipart(
            &format!("/tasks/{hidden_task}/files"),
            upload_form(Some(&csrf), &file()),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // No file chosen: the form again, saying so.
    let csrf = b.csrf().await;
    let r = b.post_multipart(&path, upload_form(Some(&csrf), &[])).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        admin.files(&[]).await.total,
        0,
        "{}",
        nothing("a refused upload")
    );
    assert_eq!(
        admin.list(Kind::Activity, &[]).await.total,
        0,
        "{}",
        nothing("a refused upload")
    );

    // With all of them, the files are the API's.
    let r = b
        .post_multipart(
            &path,
            upload_form(
                Some(&csrf),
                &[("one.txt", b"1".to_vec()), ("two.txt", b"22".to_vec())],
            ),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let files = admin.files(&[]).await;
    assert_eq!(files.total, 2);
    let activities = admin.list(Kind::Activity, &[]).await.total;
    // A client may post messages but not attach files (a file note is not a message, and
    // a client edits only its messages): no upload form, and the upload is refused whole.
    let page = cl.get(&format!("/tasks/{task}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Post a message"), "{}", page.body);
    assert!(
        !links_to(&page.body, &path),
        "the client is offered an upload: {}",
        page.body
    );
    assert!(links_to(
        &b.get(&format!("/tasks/{task}")).await.body,
        &path
    ));
    let csrf = cl.csrf().await;
    let r = cl
        .post_multipart(&path, upload_form(Some(&csrf), &file()))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        admin.files(&[]).await.total,
        2,
        "{}",
        nothing("a client's upload")
    );
    assert_eq!(admin.list(Kind::Activity, &[]).await.total, activities);
    // The page lists them, downloadable.
    let page = b.get(&format!("/tasks/{task}")).await;
    for f in &files.items {
        let id = id_of(f);
        assert!(
            links_to(&page.body, &format!("/files/{id}")),
            "{}",
            page.body
        );
        let r = b.get(&format!("/files/{id}")).await;
        assert_eq!(r.status, 200);
    }
    // Removing a file: the back field may not lead off-site.
    let id = files.ids[0];
    let csrf = b.csrf().await;
    let r = b
        .post_raw(
            &format!("/files/{id}/remove"),
            &[("csrf", &csrf), ("back", "/\t/evil.example")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/");
    assert_eq!(admin.files(&[]).await.total, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projects_list_shows_fifty_a_page() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    for i in 0..51 {
        admin.project(&[("name", &format!("Project {i:02}"))]).await;
    }
    let b = s.admin_browser().await;
    let first = b.get("/projects").await;
    assert_eq!(
        linked_ids(&first.body, "/projects/").len(),
        50,
        "docs/web.md: 50 a page"
    );
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    let second = b.get("/projects?page=2").await;
    assert_eq!(linked_ids(&second.body, "/projects/").len(), 1);
    s.stop().await;
}

// ---- hostile text ----------------------------------------------------------------------

const SCRIPT: &str = "</textarea></title><script>alert(1)</script>";
const ATTR: &str = "\"'><img src=x onerror=alert(1)>";
const RTL: &str = "\u{202E}<b>gnp.exe</b>";

/// Text as the template engine escapes it (numeric references).
fn esc(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// A page with named references written as numeric ones, to compare with `esc`.
fn norm(html: &str) -> String {
    html.replace("&lt;", "&#60;")
        .replace("&gt;", "&#62;")
        .replace("&quot;", "&#34;")
        .replace("&#x27;", "&#39;")
        .replace("&amp;", "&#38;")
}

fn hostile(label: &str) -> String {
    format!("{label}{SCRIPT}{ATTR}{RTL}")
}

/// Asserts that no hostile markup came through unescaped, and that the escaped text is
/// there (the page did show the field).
fn assert_escaped(path: &str, html: &str) {
    for raw in [
        "<script>alert",
        "<img src=x",
        "<b>gnp",
        "\"'>",
        "'><",
        "</textarea></title>",
    ] {
        assert!(
            !html.contains(raw),
            "{path} holds {raw:?} unescaped:\n{html}"
        );
    }
    assert!(
        norm(html).contains(&esc("<script>alert(1)</script>")),
        "{path} does not show the hostile text:\n{html}"
    );
    // Every `<script` of the page is the one script file.
    for (i, _) in html.match_indices("<script") {
        assert!(
            html[i..].starts_with("<script src=\"/assets/"),
            "{path}: {}",
            &html[i..]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_escaped_in_every_page_that_shows_it() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let me = id_of(&admin.user_by_email(ADMIN_EMAIL).await);
    let me_s = me.to_string();
    let group = admin.add(Kind::Group, &[("name", &hostile("group"))]).await;
    let project = admin
        .project(&[
            ("name", &hostile("project")),
            ("description", &hostile("description")),
            ("tags", &hostile("tags")),
            ("groupId", &group.to_string()),
            ("team[]", &me_s),
        ])
        .await;
    let task = admin
        .task(
            project,
            &[
                ("name", &hostile("task")),
                ("description", &hostile("task description")),
                ("tags", &hostile("task tags")),
                ("team[]", &me_s),
            ],
        )
        .await;
    let sub = admin
        .add(
            Kind::Task,
            &[
                ("name", &hostile("sub-task")),
                ("projectId", &project.to_string()),
                ("parentId", &task.to_string()),
            ],
        )
        .await;
    let activity = admin
        .activity(&[
            ("taskId", &task.to_string()),
            ("text", &hostile("activity")),
        ])
        .await;
    // A file name keeps no folder: the hostile name has no slash.
    let file = attach(
        &s,
        &admin_sid,
        activity,
        &format!("file<script>alert(1)<script>{ATTR}\u{202E}<b>gnp.exe"),
    )
    .await;
    let file_name = admin.files(&[]).await.items[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        file_name.contains("<script>alert") || file_name.contains("<img"),
        "{file_name}"
    );
    let (user, _) = s.user("person@example.com", 100, true).await;
    admin
        .update(
            Kind::User,
            user,
            &[
                ("firstName", &hostile("first")),
                ("lastName", &hostile("last")),
                ("title", &hostile("title")),
                ("company", &hostile("company")),
                ("comment", &hostile("comment")),
                ("address", &hostile("address")),
            ],
        )
        .await;
    admin
        .update(Kind::User, me, &[("firstName", &hostile("admin"))])
        .await;
    // The API takes any email without whitespace: markup too. A person without a name is
    // shown by their email (in teams, owners, choices of people), so this one is in the
    // project's and the task's teams and has no name.
    let odd_email = "\"'><script>alert(1)</script>@example.com";
    let odd = admin
        .add(
            Kind::User,
            &[
                ("email", odd_email),
                ("password", "long-enough-1"),
                ("securityLevel", "100"),
            ],
        )
        .await;
    let odd_s = odd.to_string();
    admin
        .update(
            Kind::Project,
            project,
            &[("team[]", &me_s), ("team[]", &odd_s)],
        )
        .await;
    admin
        .update(Kind::Task, task, &[("team[]", &me_s), ("team[]", &odd_s)])
        .await;

    let b = s.admin_browser().await;
    let pages = [
        "/".to_owned(),
        "/projects".into(),
        format!("/projects/{project}"),
        format!("/projects/{project}/edit"),
        format!("/projects?q={}", urlencode(SCRIPT)),
        format!("/tasks/{task}"),
        format!("/tasks/{task}/edit"),
        format!("/tasks/{sub}"),
        format!("/tasks/{sub}/edit"),
        format!("/tasks/new?project={project}&parent={task}"),
        format!("/activities/{activity}/edit"),
        "/users".into(),
        format!("/users/{user}/edit"),
        format!("/users/{me}/edit"),
        "/groups".into(),
        format!("/groups/{group}/edit"),
    ];
    for path in &pages {
        let r = b.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_escaped(path, &r.body);
    }
    // Each field is on the pages that show it, escaped.
    let project_page = norm(&b.get(&format!("/projects/{project}")).await.body);
    for label in ["project", "description", "tags", "group", "task"] {
        assert!(
            project_page.contains(&esc(&format!("{label}</textarea>"))),
            "{label}"
        );
    }
    let task_page = norm(&b.get(&format!("/tasks/{task}")).await.body);
    for label in [
        "task description",
        "task tags",
        "activity",
        "sub-task",
        "project",
    ] {
        assert!(
            task_page.contains(&esc(&format!("{label}</textarea>"))),
            "{label}"
        );
    }
    assert!(task_page.contains(&format!("href=\"/files/{file}\"")));
    // Shown, its bidirectional override shown as U+FFFD rather than obeyed: the name
    // cannot pass for a .png (docs/web.md).
    assert!(
        task_page.contains(&esc(&file_name.replace('\u{202E}', "\u{FFFD}"))),
        "the file name {file_name:?}"
    );
    assert!(
        !task_page.contains('\u{202E}'),
        "no override reaches the task page's text"
    );
    let users = norm(&b.get("/users").await.body);
    for label in ["first", "last", "company"] {
        assert!(
            users.contains(&esc(&format!("{label}</textarea>"))),
            "{label}"
        );
    }
    let form = norm(&b.get(&format!("/users/{user}/edit")).await.body);
    for label in ["first", "last", "title", "company", "comment", "address"] {
        assert!(
            form.contains(&esc(&format!("{label}</textarea>"))),
            "{label}"
        );
    }
    // Attribute values are quoted and their quotes escaped.
    assert!(
        form.contains(&format!("value=\"{}\"", esc(&hostile("title")))),
        "{form}"
    );
    for path in [
        "/users".to_owned(),
        format!("/users/{odd}/edit"),
        format!("/projects/{project}"),
        format!("/projects/{project}/edit"),
        format!("/tasks/{task}"),
        format!("/tasks/{task}/edit"),
    ] {
        let page = b.get(&path).await.body;
        assert!(
            !page.contains(odd_email),
            "{path} shows the email unescaped"
        );
        assert!(norm(&page).contains(&esc(odd_email)), "{path}: {page}");
    }
    let r = b.get(&format!("/users/{odd}/edit")).await;
    assert_escaped("the odd user's form", &r.body);
    // What a refused form shows again is escaped too.
    let r = b
        .post(
            "/projects/new",
            &[
                ("project[name]", &hostile("typed")),
                ("project[description]", &hostile("typed")),
                ("project[priority]", &hostile("priority")),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_escaped("POST /projects/new", &r.body);
    let r = b
        .post(
            &format!("/tasks/{task}/activities"),
            &[
                ("activity[type]", "progress"),
                ("activity[progress]", &hostile("progress")),
                ("activity[text]", &hostile("note")),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_escaped("POST progress", &r.body);
    // The sign-in page escapes what it echoes (the login, the next page).
    let anon = s.browser();
    let r = anon
        .get(&format!("/signin?next=/{}", urlencode(ATTR)))
        .await;
    assert!(!r.body.contains("<img src=x"), "{}", r.body);
    assert!(!r.body.contains("\"'>"), "{}", r.body);
    let r = anon.sign_in(&hostile("login"), "wrong").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_escaped("POST /signin", &r.body);
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- signing in and out ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_and_out() {
    let s = TestServer::start().await;
    let b = s.browser();
    // A page without a session sends to the sign-in page, and back afterwards.
    let r = b.get("/projects?status=10").await;
    assert_eq!(r.status, 303);
    assert_eq!(location(&r), "/signin?next=%2Fprojects%3Fstatus%3D10");

    // A wrong password: 401, the form again, no session.
    let r = b.sign_in(ADMIN_EMAIL, "not-the-password").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("Wrong email or password"), "{}", r.body);
    assert!(
        r.body.contains(&format!("value=\"{ADMIN_EMAIL}\"")),
        "the login is kept"
    );
    assert!(
        !r.body.contains("not-the-password"),
        "the password is echoed"
    );
    assert!(
        set_cookie(&r, SESSION_COOKIE).is_none(),
        "{:?}",
        set_cookies(&r)
    );
    assert!(b.session_id().is_none());
    // An unknown login answers the same.
    let r = b.sign_in("nobody@example.com", "not-the-password").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("Wrong email or password"), "{}", r.body);

    // Without the sign-in cookie's token the form is refused, even with the password.
    let page = b.get("/signin").await;
    let token = csrf_of(&page.body).unwrap();
    let stranger = s.browser();
    let r = stranger
        .post_raw(
            "/signin",
            &[
                ("csrf", &token),
                ("login", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(set_cookie(&r, SESSION_COOKIE).is_none());

    // The right password: 303 and a cookie only the server reads, over HTTPS.
    let r = b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/");
    let cookie = set_cookie(&r, SESSION_COOKIE).expect("a session cookie");
    let attrs: Vec<String> = cookie
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["httponly", "secure", "samesite=lax", "path=/"] {
        assert!(
            attrs.iter().any(|a| a == want),
            "{want} missing from {cookie}"
        );
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain=")), "{cookie}");
    let sid = b.session_id().unwrap();
    assert!(
        b.cookie(SIGN_IN_COOKIE).is_none(),
        "the sign-in token is cleared"
    );
    let r = b.get("/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("My work"));
    // The sign-in page of a signed-in person goes on.
    let r = b.get("/signin?next=/projects").await;
    assert_eq!((r.status, location(&r)), (303, "/projects"));

    // The cookie is an API session id, but the API never reads the cookie.
    s.get("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await
        .assert_ok();
    let r = read(
        s.client
            .get(s.api("authentication/getAuthorizedUser"))
            .header("Cookie", format!("{SESSION_COOKIE}={sid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = read(
        s.client
            .post(s.api("projects/add"))
            .header("Cookie", format!("{SESSION_COOKIE}={sid}"))
            .form(&[("project[name]", "Through the cookie")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(s.as_caller(&sid).list(Kind::Project, &[]).await.total, 0);

    // Signing out ends the session at once, for the page and the API alike.
    let r = b.post("/signout", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/signin");
    let gone = set_cookie(&r, SESSION_COOKIE).expect("the cookie is cleared");
    assert!(gone.contains("Max-Age=0"), "{gone}");
    let old = s.browser();
    old.set_cookie(SESSION_COOKIE, &sid);
    let r = old.get("/").await;
    assert_eq!((r.status, location(&r)), (303, "/signin?next=%2F"));
    let r = old
        .post_raw("/projects/new", &[("project[name]", "After signing out")])
        .await;
    assert_eq!(r.status, 303);
    let r = s
        .get("authentication/getAuthorizedUser", &[("sessionId", &sid)])
        .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // `next` goes to a page of this site only.
    for (next, to) in [
        ("/projects", "/projects"),
        ("//evil.example", "/"),
        ("//evil.example/projects", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        // Browsers drop tabs and newlines from a URL: `/<tab>/evil.example` is
        // `//evil.example` to them.
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\r\n/evil.example", "/"),
    ] {
        let b = s.browser();
        let r = b
            .sign_in_next(ADMIN_EMAIL, ADMIN_PASSWORD, Some(next))
            .await;
        assert_eq!(r.status, 303, "{next}: {}", r.body);
        assert_eq!(location(&r), to, "next={next}");
        let r = b.get(&format!("/signin?next={}", urlencode(next))).await;
        assert_eq!(location(&r), to, "signed in, next={next}");
        // The sign-in form itself carries only a safe next.
        let fresh = s.browser();
        let page = fresh
            .get(&format!("/signin?next={}", urlencode(next)))
            .await;
        let carried = attribute_after(&page.body, "name=\"next\"", "value").unwrap();
        assert_eq!(carried, to, "the form's next for {next}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_is_throttled_as_the_api_is() {
    let s = TestServer::start().await;
    let (_, user_sid) = s.user("user@example.com", 100, false).await;
    let b = s.browser();
    // The API's limit: 10 failed logins in the window (section 4).
    for i in 0..10 {
        let r = b.sign_in("user@example.com", &format!("wrong-{i}")).await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
    }
    let r = b
        .sign_in("user@example.com", &password_for("user@example.com"))
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        set_cookie(&r, SESSION_COOKIE).is_none(),
        "{:?}",
        set_cookies(&r)
    );
    assert!(r.body.contains("Sign in"), "{}", r.body);
    // The same count as the API's: the API refuses this login too.
    s.call_json(
        "authentication/signIn",
        &[
            ("login", "user@example.com"),
            ("password", &password_for("user@example.com")),
        ],
    )
    .await
    .assert_fail(429, "too_many_requests");
    // A session from before still works.
    s.get(
        "authentication/getAuthorizedUser",
        &[("sessionId", &user_sid)],
    )
    .await
    .assert_ok();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_api_logins_count_for_the_sign_in_page() {
    let s = TestServer::start().await;
    for i in 0..10 {
        s.call_json(
            "authentication/signIn",
            &[("login", ADMIN_EMAIL), ("password", &format!("wrong-{i}"))],
        )
        .await
        .assert_fail(401, "auth_failed");
    }
    let r = s.browser().sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(set_cookie(&r, SESSION_COOKIE).is_none());
    s.stop().await;
}

// ---- headers ---------------------------------------------------------------------------

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn assert_page_headers(path: &str, r: &Resp) {
    assert_eq!(header(r, "content-security-policy"), CSP, "{path}");
    assert_eq!(header(r, "x-frame-options"), "DENY", "{path}");
    assert_eq!(header(r, "referrer-policy"), "same-origin", "{path}");
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header(r, "cache-control"), "no-store", "{path}");
    if !r.body.is_empty() {
        assert!(
            header(r, "content-type").starts_with("text/html"),
            "{path}: {}",
            header(r, "content-type")
        );
        let lower = r.body.to_ascii_lowercase();
        for (i, _) in lower.match_indices("<script") {
            let tag_end = i + lower[i..].find('>').unwrap();
            assert!(
                lower[i..tag_end].contains(" src=\"/assets/"),
                "{path}: inline script"
            );
            assert!(
                lower[tag_end..].starts_with("></script>"),
                "{path}: script with a body"
            );
        }
        assert!(!lower.contains("<style"), "{path}: a style element");
        assert!(!lower.contains(" style="), "{path}: a style attribute");
        assert!(
            !lower.contains(" onclick=") && !lower.contains(" onload="),
            "{path}: a handler"
        );
        assert!(!lower.contains("javascript:"), "{path}: a javascript: URL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_the_security_headers_and_no_inline_code() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let b = s.admin_browser().await;
    let cl = s.user_browser("client@example.com").await;
    let (p, t, a) = (w.projects[0].0, w.tasks[0].0, w.activities[0].0);
    let mut paths = vec![
        "/".to_owned(),
        "/projects".into(),
        "/projects?q=x&status=10&page=2".into(),
        "/projects/new".into(),
        format!("/projects/{p}"),
        format!("/projects/{p}/edit"),
        format!("/tasks/new?project={p}"),
        format!("/tasks/{t}"),
        format!("/tasks/{t}/edit"),
        format!("/activities/{a}/edit"),
        "/users".into(),
        "/users/new".into(),
        format!("/users/{}/edit", w.users[1]),
        "/groups".into(),
        "/groups/new".into(),
        format!("/groups/{}/edit", w.group),
        format!("/projects/{MISSING}"),
        "/tasks/abc".into(),
    ];
    paths.extend(w.files.iter().map(|f| format!("/files/{f}")));
    for path in &paths {
        let r = b.get(path).await;
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
        if path.starts_with("/files/") {
            // A download is the file, not a page: still no framing, sniffing or caching
            // by others.
            assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
            assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
            assert_eq!(header(&r, "content-security-policy"), CSP, "{path}");
            continue;
        }
        assert_page_headers(path, &r);
    }
    // Refusals, redirects and the sign-in page carry them too.
    for path in [
        format!("/projects/{p}/edit"),
        "/users/new".into(),
        format!("/tasks/{t}/edit"),
    ] {
        let r = cl.get(&path).await;
        assert_eq!(r.status, 403, "{path}");
        assert_page_headers(&path, &r);
    }
    let anon = s.browser();
    for path in ["/signin", "/", "/projects"] {
        let r = anon.get(path).await;
        assert_page_headers(path, &r);
    }
    let r = anon.sign_in(ADMIN_EMAIL, "wrong").await;
    assert_page_headers("POST /signin", &r);
    let r = b.post_raw("/projects/new", &[("project[name]", "x")]).await;
    assert_eq!(r.status, 403);
    assert_page_headers("POST without a token", &r);

    // The assets: at hashed names, cached for a year, revalidated by ETag.
    let page = b.get("/").await.body;
    let css = attribute_after(&page, "rel=\"stylesheet\"", "href").unwrap();
    let js = attribute_after(&page, "<script", "src").unwrap();
    for (url, kind) in [(&css, "text/css"), (&js, "text/javascript")] {
        let hash = url
            .strip_prefix("/assets/vesper.")
            .and_then(|r| r.split('.').next())
            .unwrap_or_else(|| panic!("{url}"));
        assert!(
            hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{url}"
        );
        let r = b.get(url).await;
        assert_eq!(r.status, 200, "{url}");
        assert!(header(&r, "content-type").starts_with(kind), "{url}");
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let etag = header(&r, "etag").to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{etag}"
        );
        assert!(!r.body.is_empty());
        let r = b.get_with(url, &[("If-None-Match", &etag)]).await;
        assert_eq!(r.status, 304, "{url}");
        assert!(r.body.is_empty());
        assert_eq!(header(&r, "etag"), etag);
        let r = b.get_with(url, &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(r.status, 200, "{url}");
        // Without a session too: the sign-in page needs the stylesheet.
        assert_eq!(anon.get(url).await.status, 200, "{url}");
    }
    for url in [
        "/assets/vesper.css",
        "/assets/vesper.0000000000000000.css",
        "/assets/vesper.js",
        "/assets/other.txt",
        "/assets/..%2Fsrc%2Fmain.rs",
    ] {
        let r = b.get(url).await;
        assert_eq!(r.status, 404, "{url}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_form_read_before_someone_elses_change_does_not_overwrite_it() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let project = admin.project(&[("name", "First")]).await;
    let b = s.admin_browser().await;
    let form = b.get(&format!("/projects/{project}/edit")).await;
    assert_eq!(form.status, 200);
    let version = attribute_after(&form.body, "name=\"version\"", "value").unwrap();
    let csrf = csrf_of(&form.body).unwrap();
    admin
        .update(Kind::Project, project, &[("name", "Changed meanwhile")])
        .await;
    let r = b
        .post_raw(
            &format!("/projects/{project}/edit"),
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("project[name]", "Mine"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("Someone else changed this meanwhile"),
        "{}",
        r.body
    );
    // The form comes back with the current values and version (docs/web.md): sending it
    // again, unread, cannot undo the other change either.
    let current = admin.get(Kind::Project, project).await;
    assert_eq!(current["name"], "Changed meanwhile");
    assert!(r.body.contains("value=\"Changed meanwhile\""), "{}", r.body);
    let returned_version = attribute_after(&r.body, "name=\"version\"", "value").unwrap();
    assert_ne!(returned_version, version, "the form names the new version");
    let resent = b
        .post_raw(
            &format!("/projects/{project}/edit"),
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("project[name]", "Mine"),
            ],
        )
        .await;
    assert_eq!(resent.status, 422, "the stale version is refused again");
    assert_eq!(
        admin.get(Kind::Project, project).await["name"],
        "Changed meanwhile"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_task_the_caller_does_not_see_is_not_named() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let (_, user_sid) = s.user("user@example.com", 100, false).await;
    let p = admin.project(&[("name", "Open project")]).await;
    let parent = admin
        .task(p, &[("name", "Secret parent"), ("hidden", "1")])
        .await;
    let sub = admin
        .add(
            Kind::Task,
            &[
                ("name", "Visible sub-task"),
                ("projectId", &p.to_string()),
                ("parentId", &parent.to_string()),
            ],
        )
        .await;
    // The user sees the sub-task, not its hidden parent.
    let user = s.as_caller(&user_sid);
    assert_eq!(
        user.try_get(Kind::Task, parent).await.unwrap_err().status,
        404
    );
    user.get(Kind::Task, sub).await;
    let b = s.user_browser("user@example.com").await;
    for path in [format!("/tasks/{sub}"), format!("/projects/{p}")] {
        let r = b.get(&path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.contains("Visible sub-task"), "{path}: {}", r.body);
        assert!(
            !r.body.contains("Secret parent"),
            "{path} names the hidden parent"
        );
    }
    // Who sees the parent sees its name.
    let a = s.admin_browser().await;
    let r = a.get(&format!("/tasks/{sub}")).await;
    assert!(r.body.contains("Secret parent"), "{}", r.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_work_names_each_project_to_whoever_may_see_it() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let (external, external_sid) = s.user("external@example.com", 150, false).await;
    let (user, _) = s.user("user@example.com", 100, false).await;
    let (e, u) = (external.to_string(), user.to_string());
    let closed = admin.project(&[("name", "Closed project")]).await;
    let open = admin
        .project(&[("name", "Open project"), ("team[]", &e)])
        .await;
    let mut tasks = Vec::new();
    for (p, name) in [(closed, "Task in the closed"), (open, "Task in the open")] {
        let t = admin
            .task(p, &[("name", name), ("team[]", &e), ("team[]", &u)])
            .await;
        tasks.push(t);
    }
    // The external sees both tasks (their task teams) but only the project whose team
    // they are in.
    let api = s.as_caller(&external_sid);
    assert_eq!(
        api.try_get(Kind::Project, closed).await.unwrap_err().status,
        404
    );
    api.get(Kind::Project, open).await;
    let all = [
        "Task in the closed",
        "Task in the open",
        "Closed project",
        "Open project",
    ];
    for (who, shown, unnamed) in [
        ("external@example.com", &all[..], Some("Closed project")),
        ("user@example.com", &all[..], None),
        // The admin owns both tasks; an admin's lists read no projects, the page does.
        (ADMIN_EMAIL, &all[..], None),
    ] {
        let r = s.user_browser_or_admin(who).await.get("/").await;
        assert_eq!(r.status, 200, "{who}");
        for text in shown.iter().filter(|t| Some(**t) != unnamed) {
            assert!(r.body.contains(text), "{who}: no {text} in {}", r.body);
        }
        if let Some(name) = unnamed {
            assert!(!r.body.contains(name), "{who} is shown {name}");
        }
        // Each task's own page and its edit form (the external edits the tasks of their
        // task teams) name its project to the same callers.
        let b = s.user_browser_or_admin(who).await;
        for (t, project) in tasks.iter().zip(["Closed project", "Open project"]) {
            for path in [format!("/tasks/{t}"), format!("/tasks/{t}/edit")] {
                let r = b.get(&path).await;
                assert_eq!(r.status, 200, "{who} {path}");
                assert_eq!(
                    r.body.contains(project),
                    Some(project) != unnamed,
                    "{who} {path} and {project}"
                );
                // A task in a project takes the project's group: no group to choose, even
                // where the project is not named.
                assert!(
                    !r.body.contains("name=\"task[groupId]\""),
                    "{who} {path} offers a group"
                );
            }
        }
    }
    s.stop().await;
}

/// What an edit form would send for its owner and team as shown: the selected owner and
/// the checked members.
fn owner_and_team_shown(html: &str, object: &str) -> (String, Vec<String>) {
    let select = format!("name=\"{object}[ownerId]\"");
    let at = html.find(&select).expect("an owner select");
    let options = &html[at..at + html[at..].find("</select>").expect("its end")];
    let owner = options
        .split("<option value=\"")
        .skip(1)
        .find(|o| o.contains("\" selected>"))
        .map(|o| o[..o.find('"').unwrap()].to_owned())
        .unwrap_or_default();
    let checkbox = format!("name=\"{object}[team][]\" value=\"");
    let team = html
        .split(checkbox.as_str())
        .skip(1)
        .filter(|c| c[..c.find('>').unwrap()].contains("checked"))
        .map(|c| c[..c.find('"').unwrap()].to_owned())
        .collect();
    (owner, team)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_form_keeps_an_owner_and_members_the_editor_may_not_see() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    // The editor sees only themself and their team-mates; the owner shares no team with
    // them, so users/getAll does not show the owner to them.
    let (editor, editor_sid) = s.user("editor@example.com", 100, false).await;
    let (owner, _) = s.user("owner@example.com", 100, false).await;
    let (o, e) = (owner.to_string(), editor.to_string());
    let p = admin.project(&[("name", "Shared"), ("team[]", &e)]).await;
    let t = admin
        .task(p, &[("name", "Owned"), ("ownerId", &o), ("team[]", &o)])
        .await;
    let other = admin
        .project(&[("name", "Owned too"), ("ownerId", &o), ("team[]", &e)])
        .await;
    let status = s.as_caller(&editor_sid).try_get(Kind::User, owner).await;
    assert_eq!(status.unwrap_err().status, 404, "the editor sees the owner");
    for (object, id, path) in [
        ("task", t, format!("/tasks/{t}/edit")),
        ("project", other, format!("/projects/{other}/edit")),
    ] {
        let b = s.user_browser("editor@example.com").await;
        let form = b.get(&path).await;
        assert_eq!(form.status, 200, "{path}: {}", form.body);
        let (shown_owner, shown_team) = owner_and_team_shown(&form.body, object);
        assert_eq!(shown_owner, o, "{path} shows another owner");
        if object == "task" {
            assert_eq!(shown_team, vec![o.clone()], "{path}");
        }
        assert!(
            form.body.contains(&format!("user {owner}")),
            "{path}: {}",
            form.body
        );
        // Saved as shown, with a new name: the owner and the team stay.
        let version = attribute_after(&form.body, "name=\"version\"", "value").unwrap();
        let csrf = csrf_of(&form.body).unwrap();
        let owner_field = format!("{object}[ownerId]");
        let team_field = format!("{object}[team][]");
        let name_field = format!("{object}[name]");
        let mut pairs = vec![
            ("csrf", csrf.as_str()),
            ("version", version.as_str()),
            (name_field.as_str(), "Renamed"),
            (owner_field.as_str(), shown_owner.as_str()),
            (team_field.as_str(), ""),
        ];
        pairs.extend(shown_team.iter().map(|m| (team_field.as_str(), m.as_str())));
        let r = b.post_raw(&path, &pairs).await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
        let kind = if object == "task" {
            Kind::Task
        } else {
            Kind::Project
        };
        let saved = admin.get(kind, id).await;
        assert_eq!(saved["name"], "Renamed", "{saved}");
        assert_eq!(saved["ownerId"].to_string().trim_matches('"'), o, "{saved}");
        let members: Vec<String> = saved["team"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.to_string().trim_matches('"').to_owned())
            .collect();
        assert_eq!(members, shown_team, "{saved}");
    }
    s.stop().await;
}

/// The project page names each task's team, to an admin too, whose rules never decide
/// by it (a task list leaves the team out unless asked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_page_names_each_tasks_team() {
    let s = TestServer::start().await;
    let admin_sid = s.admin().await;
    let admin = s.as_caller(&admin_sid);
    let (user, _) = s.user("user@example.com", 100, false).await;
    let p = admin.project(&[("name", "Teamed project")]).await;
    admin
        .task(p, &[("name", "Teamed task"), ("team[]", &user.to_string())])
        .await;
    admin.task(p, &[("name", "Lone task")]).await;
    let r = s
        .user_browser_or_admin(ADMIN_EMAIL)
        .await
        .get(&format!("/projects/{p}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body.matches("<span class=\"team\">").count(),
        1,
        "{}",
        r.body
    );
    s.stop().await;
}
