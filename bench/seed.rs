//! Seeds a running Vesper through its public API for the benchmark: 100 users across
//! the four roles, 10 projects, 10,000 tasks, 50,000 activities and one 1 MiB file; and,
//! for the web pages (issue 12), one big project of 10,000 tasks of its own, a tenth of
//! them top-level and the rest sub-tasks two levels deep, with one task of 5,000
//! activities. Prints a JSON object of what the workloads need (sessions and ids) on
//! stdout.
//!
//! Usage: seed BASE_URL ADMIN_EMAIL ADMIN_PASSWORD
//!
//! BENCH_TASKS and BENCH_ACTIVITIES change the counts of tasks and activities of the
//! ten projects (the activities are spread over the tasks in turn), for the run with
//! 1,000,000 tasks. BENCH_BIG_TASKS and BENCH_BIG_ACTIVITIES change the big project's
//! tasks and its big task's activities (defaults 10,000 and 5,000). The big project is
//! apart so that the API workloads, on the ten projects, measure what they always did.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

const USERS: usize = 100;
const PROJECTS: usize = 10;
const TASKS: usize = 10_000;
const ACTIVITIES: usize = 50_000;
const BIG_TASKS: usize = 10_000;
const BIG_ACTIVITIES: usize = 5_000;
/// The big project's tasks are made in blocks of ten, each block by one worker in turn:
/// its first task is top-level, the next five its sub-tasks, the last four sub-tasks of
/// those (two levels deep). So a page of 100 holds whole trees and sub-tasks whose
/// parent is on another page.
const BLOCK: usize = 10;
const CONCURRENCY: usize = 32;
const PASSWORD: &str = "bench-password-1";

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, call: &str, params: &[(&str, String)]) -> Value {
        let prefix = if call.ends_with("/add") || call.ends_with("/attachFiles") {
            "post"
        } else {
            "get"
        };
        let mut form: Vec<(&str, String)> = params.to_vec();
        form.push(("retType", "json".into()));
        for attempt in 0.. {
            let sent = self
                .client
                .post(format!("{}/api/v2/service/{prefix}/{call}", self.base))
                .form(&form)
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let body: Value = r.json().await.expect("a JSON answer");
                    assert_eq!(body["status"], "ok", "{call}: {body}");
                    return body;
                }
                Err(e) if attempt < 5 => eprintln!("retrying {call}: {e}"),
                Err(e) => panic!("{call}: {e}"),
            }
        }
        unreachable!()
    }

    async fn sign_in(&self, login: &str, password: &str) -> String {
        let r = self
            .call(
                "authentication/signIn",
                &[("login", login.into()), ("password", password.into())],
            )
            .await;
        r["sessionId"].as_str().unwrap().to_owned()
    }
}

fn id(v: &Value, kind: &str) -> i64 {
    v[kind]["id"].as_str().unwrap().parse().unwrap()
}

/// Runs `job(i)` for i in 0..n with CONCURRENCY requests in flight.
async fn parallel<F, Fut>(n: usize, job: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, job) = (next.clone(), job.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    job(i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (base, admin_email, admin_password) = (&args[1], &args[2], &args[3]);
    let mut client = reqwest::Client::builder().danger_accept_invalid_certs(true);
    // A workspace's host name (BENCH_BASE_DOMAIN) is this machine, as a wildcard DNS
    // entry would make it.
    let url = reqwest::Url::parse(base).expect("a base URL");
    if let Some(host) = url
        .host_str()
        .filter(|h| h.parse::<std::net::IpAddr>().is_err())
    {
        let port = url.port_or_known_default().unwrap_or(443);
        client = client.resolve(host, ([127, 0, 0, 1], port).into());
    }
    let api = Arc::new(Api {
        client: client.build().unwrap(),
        base: base.clone(),
    });
    let admin = api.sign_in(admin_email, admin_password).await;
    let count = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<usize>().expect("a count"))
            .unwrap_or(default)
    };
    let tasks = count("BENCH_TASKS", TASKS).max(1);
    let activities = count("BENCH_ACTIVITIES", ACTIVITIES);
    let big_tasks = count("BENCH_BIG_TASKS", BIG_TASKS).max(1);
    let big_activities = count("BENCH_BIG_ACTIVITIES", BIG_ACTIVITIES);

    // 100 users: a quarter of each role.
    let levels = [0, 100, 150, 200];
    let mut users = Vec::new();
    for i in 0..USERS {
        let level = levels[i % 4];
        let u = api
            .call(
                "users/add",
                &[
                    ("sessionId", admin.clone()),
                    ("user[email]", format!("bench{i}@example.com")),
                    ("user[password]", PASSWORD.into()),
                    ("user[securityLevel]", level.to_string()),
                    ("user[firstName]", format!("User {i}")),
                ],
            )
            .await;
        users.push((id(&u, "user"), level));
    }
    let client_user = users.iter().position(|(_, l)| *l == 200).unwrap();
    let external_user = users.iter().position(|(_, l)| *l == 150).unwrap();

    let mut projects = Vec::new();
    for p in 0..PROJECTS {
        let mut params = vec![
            ("sessionId", admin.clone()),
            ("project[name]", format!("Project {p}")),
            ("project[hidden]", (p % 3 == 0).to_string()),
        ];
        // Teams of ten; the first client is in every other project's team.
        for (k, (uid, _)) in users.iter().enumerate() {
            if k % PROJECTS == p || (k == client_user && p % 2 == 0) {
                params.push(("project[team][]", uid.to_string()));
            }
        }
        let r = api.call("projects/add", &params).await;
        projects.push(id(&r, "project"));
    }

    // The big project: a team of ten with the client and an external user in it, so that
    // their pages of it go through the access rules with everything visible to them.
    let big_project = {
        let mut params = vec![
            ("sessionId", admin.clone()),
            ("project[name]", "Big project".to_owned()),
        ];
        for (k, (uid, _)) in users.iter().enumerate() {
            if k % PROJECTS == 0 || k == client_user || k == external_user {
                params.push(("project[team][]", uid.to_string()));
            }
        }
        id(&api.call("projects/add", &params).await, "project")
    };

    let projects = Arc::new(projects);
    let external_id = users[external_user].0;
    let task_ids = Arc::new(std::sync::Mutex::new(vec![0i64; tasks]));
    {
        let (api, admin, projects, task_ids) = (
            api.clone(),
            admin.clone(),
            projects.clone(),
            task_ids.clone(),
        );
        parallel(tasks, move |i| {
            let (api, admin, projects, task_ids) = (
                api.clone(),
                admin.clone(),
                projects.clone(),
                task_ids.clone(),
            );
            async move {
                let mut params = vec![
                    ("sessionId", admin),
                    ("task[name]", format!("Task {i}")),
                    ("task[projectId]", projects[i % PROJECTS].to_string()),
                    ("task[progress]", (i % 100).to_string()),
                    (
                        "task[endDate]",
                        format!("2027-{:02}-{:02}", i % 12 + 1, i % 28 + 1),
                    ),
                ];
                // One task in a thousand, all in the listed project (1), has the
                // external user in its team: what it sees of a project it is not in.
                if i % 1000 == 1 {
                    params.push(("task[team][]", external_id.to_string()));
                }
                let r = api.call("tasks/add", &params).await;
                task_ids.lock().unwrap()[i] = id(&r, "task");
            }
        })
        .await;
    }
    let task_ids: Arc<Vec<i64>> = Arc::new(task_ids.lock().unwrap().clone());

    // The big project's tasks, a block of ten at a time by each worker (see BLOCK).
    let big_ids = Arc::new(std::sync::Mutex::new(vec![0i64; big_tasks]));
    {
        let (api, admin, big_ids) = (api.clone(), admin.clone(), big_ids.clone());
        parallel(big_tasks.div_ceil(BLOCK), move |b| {
            let (api, admin, big_ids) = (api.clone(), admin.clone(), big_ids.clone());
            async move {
                let mut block = [0i64; BLOCK];
                for j in 0..BLOCK.min(big_tasks - b * BLOCK) {
                    let i = b * BLOCK + j;
                    let mut params = vec![
                        ("sessionId", admin.clone()),
                        ("task[name]", format!("Big task {i}")),
                        ("task[projectId]", big_project.to_string()),
                        ("task[progress]", (i % 100).to_string()),
                        (
                            "task[endDate]",
                            format!("2027-{:02}-{:02}", i % 12 + 1, i % 28 + 1),
                        ),
                    ];
                    let parent = match j {
                        0 => None,
                        1..=5 => Some(block[0]),
                        _ => Some(block[j - 5]),
                    };
                    if let Some(p) = parent {
                        params.push(("task[parentId]", p.to_string()));
                    }
                    block[j] = id(&api.call("tasks/add", &params).await, "task");
                    big_ids.lock().unwrap()[i] = block[j];
                }
            }
        })
        .await;
    }
    let big_ids = big_ids.lock().unwrap().clone();
    // The big task: a top-level task of the big project, with five sub-tasks.
    let big_task = big_ids[(big_tasks / 2) / BLOCK * BLOCK];
    {
        let (api, admin) = (api.clone(), admin.clone());
        parallel(big_activities, move |i| {
            let (api, admin) = (api.clone(), admin.clone());
            async move {
                api.call(
                    "activity/add",
                    &[
                        ("sessionId", admin),
                        ("activity[taskId]", big_task.to_string()),
                        ("activity[text]", format!("Big note {i}")),
                        ("activity[hoursDone]", "0.5".into()),
                    ],
                )
                .await;
            }
        })
        .await;
    }
    {
        let (api, admin, task_ids) = (api.clone(), admin.clone(), task_ids.clone());
        parallel(activities, move |i| {
            let (api, admin, task_ids) = (api.clone(), admin.clone(), task_ids.clone());
            async move {
                api.call(
                    "activity/add",
                    &[
                        ("sessionId", admin),
                        ("activity[taskId]", task_ids[i % task_ids.len()].to_string()),
                        ("activity[text]", format!("Note {i}")),
                        ("activity[hoursDone]", "0.5".into()),
                    ],
                )
                .await;
            }
        })
        .await;
    }

    // One 1 MiB file.
    let first_task = task_ids[0];
    let a = api
        .call(
            "activity/add",
            &[
                ("sessionId", admin.clone()),
                ("activity[taskId]", first_task.to_string()),
                ("activity[text]", "file".into()),
            ],
        )
        .await;
    let bytes: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("sessionId", admin.clone())
        .text("activityId", id(&a, "activity").to_string())
        .text("retType", "json")
        .part(
            "files[1][content]",
            reqwest::multipart::Part::bytes(bytes).file_name("one-mebibyte.bin"),
        );
    let f: Value = api
        .client
        .post(format!(
            "{}/api/v2/service/post/activity/attachFiles",
            api.base
        ))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file_id = f["items"][0]["id"].as_str().unwrap().to_owned();

    let client_session = api
        .sign_in(&format!("bench{client_user}@example.com"), PASSWORD)
        .await;
    let external_session = api
        .sign_in(&format!("bench{external_user}@example.com"), PASSWORD)
        .await;
    // A user outside the listed project's team (bench1 is in it): sees its tasks by
    // their not being hidden.
    let user_outside = (0..USERS)
        .find(|&k| users[k].1 == 100 && k % PROJECTS != 1)
        .unwrap();
    let user_session = api
        .sign_in(&format!("bench{user_outside}@example.com"), PASSWORD)
        .await;
    println!(
        "{}",
        json!({
            "admin": admin,
            "client": client_session,
            "external": external_session,
            "user": user_session,
            "client_project": projects[2],
            "big_project": big_project,
            "big_task": big_task,
            "big_task_pages": big_activities.div_ceil(50).max(1),
            "task": task_ids[tasks / 2],
            // A task of the listed project (tasks go round the projects in turn).
            "listed_task": task_ids[(tasks / 2 + 1) % tasks],
            // The listed project: not hidden; the external user and the client are not
            // in its team. The client is in the team of client_project.
            "project": projects[1],
            "file": file_id,
            "login": format!("bench1@example.com"),
            "password": PASSWORD,
        })
    );
}
