//! The access rules of section 8 decided in Rust (`domain::policy`) against the same rules
//! compiled to SQL (`store::sql`), on random small workspaces written straight to the
//! store (no HTTP, no Argon2): on SQLite always, and on PostgreSQL too when
//! `VESPER_TEST_DATABASE_URL` is set.
//!
//! For every caller and every object: the object is in the caller's unfiltered list
//! exactly when the rules, decided on the object as read by id (as the API decides 404),
//! let the caller see it; and every list's `total` is the number of rows the caller may
//! see, task lists filtered by one project and by being active included (the totals
//! taken from kept counts). `VESPER_ACCESS_SEED` replays a run; `VESPER_ACCESS_CASES`
//! changes the number of workspaces (500 by default).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vesper::domain::policy::{self, ActivityFacts, Actor, ProjectFacts, Target, TaskFacts};
use vesper::domain::user::{NewUser, Profile, SecurityLevel};
use vesper::domain::work::{
    Activity, ActivityType, FileMeta, Project, Task, STATUS_DONE, STATUS_ON_HOLD, STATUS_OPEN,
};
use vesper::domain::WorkspaceId;
use vesper::store::{Filter, ListQuery, Store, UserScope};

/// Workspaces checked at once: enough to keep both cores and the database busy.
const AT_ONCE: usize = 8;

fn cases() -> i64 {
    std::env::var("VESPER_ACCESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn base_seed() -> u64 {
    std::env::var("VESPER_ACCESS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_every_list_holds_what_the_rules_let_each_caller_see() {
    let dir = tempfile::tempdir().unwrap();
    let store = vesper::store::open(None, dir.path()).await.unwrap();
    let file = dir.path().join("vesper.sqlite3");
    let db = rusqlite::Connection::open(&file).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute_batch("BEGIN").unwrap();
    for id in 2..cases() + 2 {
        db.execute(
            "INSERT INTO workspaces (id, name, created_at) VALUES (?1, ?2, 0)",
            rusqlite::params![id, format!("w{id}")],
        )
        .unwrap();
    }
    db.execute_batch("COMMIT").unwrap();
    drop(db);
    check_workspaces("SQLite", store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_every_list_holds_what_the_rules_let_each_caller_see() {
    let Some(admin_url) = common::test_database_url() else {
        eprintln!("VESPER_TEST_DATABASE_URL is not set: PostgreSQL not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = common::TestDatabase::for_data_dir(&admin_url, dir.path(), true).await;
    let store = vesper::store::open(Some(&database.url()), dir.path())
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(&database.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO workspaces (id, name, created_at) \
             SELECT g, 'w' || g, 0 FROM generate_series(2::BIGINT, $1::BIGINT) g",
            &[&(cases() + 1)],
        )
        .await
        .unwrap();
    drop(client);
    let _ = connection.await;
    check_workspaces("PostgreSQL", store).await;
    drop(database);
}

/// Builds and checks `cases()` workspaces, a few at once.
async fn check_workspaces(backend: &'static str, store: Arc<dyn Store>) {
    let seed = base_seed();
    eprintln!("{backend}: seed {seed} (VESPER_ACCESS_SEED={seed} replays it)");
    let started = std::time::Instant::now();
    let mut running = tokio::task::JoinSet::new();
    let mut checked = 0;
    for case in 0..cases() {
        if running.len() >= AT_ONCE {
            running.join_next().await.unwrap().unwrap();
            checked += 1;
        }
        let store = store.clone();
        running.spawn(async move {
            let ws = WorkspaceId(case + 2);
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(case as u64));
            let workspace = Workspace::build(&*store, ws, &mut rng).await;
            let place = format!("{backend}, seed {seed}, case {case}");
            workspace.check(&*store, &place).await;
        });
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
        checked += 1;
    }
    eprintln!(
        "{backend}: {checked} workspaces checked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[derive(Debug, Clone, Copy)]
struct Member {
    id: i64,
    level: SecurityLevel,
    can_view_profiles: bool,
    active: bool,
}

impl Member {
    fn actor(&self) -> Actor {
        Actor {
            user_id: self.id,
            level: self.level,
            can_view_profiles: self.can_view_profiles,
        }
    }
}

/// One generated workspace, as read back from the store by id once written.
struct Workspace {
    ws: WorkspaceId,
    users: Vec<Member>,
    projects: Vec<Project>,
    tasks: Vec<Task>,
    activities: Vec<Activity>,
    files: Vec<FileMeta>,
}

fn some_of(rng: &mut StdRng, users: &[Member], p: f64) -> Vec<i64> {
    users
        .iter()
        .filter(|_| rng.gen_bool(p))
        .map(|u| u.id)
        .collect()
}

fn status(rng: &mut StdRng) -> i64 {
    [STATUS_OPEN, STATUS_ON_HOLD, STATUS_DONE][rng.gen_range(0..3)]
}

impl Workspace {
    async fn build(store: &dyn Store, ws: WorkspaceId, rng: &mut StdRng) -> Workspace {
        let now = 1_700_000_000;
        // Every role once, then a few more of any.
        let mut levels = SecurityLevel::ALL.to_vec();
        for _ in 0..rng.gen_range(0..=3) {
            levels.push(SecurityLevel::ALL[rng.gen_range(0..4)]);
        }
        let mut users = Vec::new();
        for (i, level) in levels.into_iter().enumerate() {
            let can_view_profiles = rng.gen_bool(0.3);
            let u = store
                .add_user(
                    ws,
                    NewUser {
                        email: format!("u{i}@w{}.test", ws.0),
                        password_hash: "not a hash".into(),
                        profile: Profile::default(),
                        security_level: level,
                        can_view_profiles,
                    },
                    now,
                )
                .await
                .unwrap();
            users.push(Member {
                id: u.id,
                level,
                can_view_profiles,
                active: true,
            });
        }
        let anyone = |rng: &mut StdRng| users[rng.gen_range(0..users.len())].id;

        let mut project_ids = Vec::new();
        for i in 0..rng.gen_range(0..=4) {
            let mut p = Project::new(anyone(rng));
            p.name = format!("project {i}");
            p.hidden = rng.gen_bool(0.5);
            p.status = status(rng);
            p.team = some_of(rng, &users, 0.35);
            project_ids.push(store.save_project(ws, p, vec![], now).await.unwrap().id);
        }

        // (id, project) of each task.
        let mut tasks: Vec<(i64, Option<i64>)> = Vec::new();
        for i in 0..rng.gen_range(0..=8) {
            let mut t = Task::new(anyone(rng));
            t.name = format!("task {i}");
            if !project_ids.is_empty() && rng.gen_bool(0.8) {
                t.project_id = Some(project_ids[rng.gen_range(0..project_ids.len())]);
            }
            // A sub-task of an earlier task of the same project (or single, of a single).
            let parents: Vec<i64> = tasks
                .iter()
                .filter(|(_, p)| *p == t.project_id)
                .map(|(id, _)| *id)
                .collect();
            if !parents.is_empty() && rng.gen_bool(0.4) {
                t.parent_id = Some(parents[rng.gen_range(0..parents.len())]);
            }
            t.hidden = rng.gen_bool(0.5);
            t.status = status(rng);
            t.team = some_of(rng, &users, 0.3);
            let project = t.project_id;
            tasks.push((
                store.save_task(ws, t, vec![], now).await.unwrap().id,
                project,
            ));
        }

        let mut activity_ids = Vec::new();
        let mut file_count = 0;
        for _ in 0..rng.gen_range(0..=8) {
            let (task_id, project_id) = if !tasks.is_empty() && rng.gen_bool(0.6) {
                let (id, project) = tasks[rng.gen_range(0..tasks.len())];
                (Some(id), project)
            } else if !project_ids.is_empty() {
                (None, Some(project_ids[rng.gen_range(0..project_ids.len())]))
            } else {
                continue;
            };
            let kind = if rng.gen_bool(0.5) {
                ActivityType::Msg
            } else {
                ActivityType::File
            };
            let a = Activity {
                id: 0,
                project_id,
                task_id,
                kind,
                text: Some("said".into()),
                owner_id: anyone(rng),
                progress: None,
                hours_done: None,
                hide_from_clients: rng.gen_bool(0.4),
                date: now,
                notify_project_team: false,
                notify_task_team: false,
                notify_client: false,
                created_at: now,
                updated_at: now,
                version: 0,
            };
            let a = store.save_activity(ws, a, vec![], now).await.unwrap();
            activity_ids.push(a.id);
            if rng.gen_bool(0.4) {
                let files: Vec<FileMeta> = (0..rng.gen_range(1..=2))
                    .map(|_| {
                        file_count += 1;
                        FileMeta {
                            id: 0,
                            activity_id: a.id,
                            task_id,
                            project_id,
                            name: "notes.txt".into(),
                            size: 1,
                            mime_type: "text/plain".into(),
                            sha256: "00".into(),
                            storage_key: format!("w{}-{file_count}", ws.0),
                            owner_id: anyone(rng),
                            on_message: kind == ActivityType::Msg,
                            created_at: now,
                        }
                    })
                    .collect();
                store.add_files(ws, files, now).await.unwrap();
            }
        }

        // Sometimes a user is removed: it leaves every team and sees nothing.
        if rng.gen_bool(0.25) {
            let i = rng.gen_range(1..users.len());
            assert!(store.remove_user(ws, users[i].id, None, now).await.unwrap());
            users[i].active = false;
        }

        // Read back by id, as the API reads an object before deciding 404.
        let mut workspace = Workspace {
            ws,
            users,
            projects: Vec::new(),
            tasks: Vec::new(),
            activities: Vec::new(),
            files: Vec::new(),
        };
        for id in project_ids {
            workspace
                .projects
                .push(store.project(ws, id).await.unwrap().unwrap());
        }
        for (id, _) in tasks {
            // A task removed with its parent would be gone; none is removed here.
            let (task, project) = store.task_with_project(ws, id).await.unwrap().unwrap();
            assert_eq!(task.project_id, project.as_ref().map(|p| p.id));
            workspace.tasks.push(task);
        }
        for id in activity_ids {
            let a = store.activity(ws, id).await.unwrap().unwrap();
            workspace
                .files
                .extend(store.files_of_activities(ws, vec![id]).await.unwrap());
            workspace.activities.push(a);
        }
        workspace
    }

    fn project(&self, id: i64) -> &Project {
        self.projects.iter().find(|p| p.id == id).unwrap()
    }

    fn project_facts(&self, p: &Project, a: &Actor) -> ProjectFacts {
        ProjectFacts {
            hidden: p.hidden,
            is_owner: p.owner_id == a.user_id,
            in_team: p.team.contains(&a.user_id),
        }
    }

    fn task_facts(&self, t: &Task, a: &Actor) -> TaskFacts {
        TaskFacts {
            hidden: t.hidden,
            is_owner: t.owner_id == a.user_id,
            in_task_team: t.team.contains(&a.user_id),
            project: t.project_id.map(|p| self.project_facts(self.project(p), a)),
        }
    }

    fn sees_activity(&self, act: &Activity, a: &Actor) -> bool {
        // A task's activity is posted to the task; the others to their project.
        let target = match act.task_id {
            Some(id) => {
                Target::Task(self.task_facts(self.tasks.iter().find(|t| t.id == id).unwrap(), a))
            }
            None => Target::Project(self.project_facts(self.project(act.project_id.unwrap()), a)),
        };
        let facts = ActivityFacts {
            is_owner: act.owner_id == a.user_id,
            is_message: act.kind == ActivityType::Msg,
            hide_from_clients: act.hide_from_clients,
        };
        policy::can_see_activity(a, &target, &facts)
    }

    fn team_mates(&self, a: i64, b: i64) -> bool {
        let teams = self
            .projects
            .iter()
            .map(|p| &p.team)
            .chain(self.tasks.iter().map(|t| &t.team));
        teams
            .into_iter()
            .any(|team| team.contains(&a) && team.contains(&b))
    }

    async fn check(&self, store: &dyn Store, place: &str) {
        let ws = self.ws;
        let all = |filters: Vec<Filter>| ListQuery {
            filters,
            offset: 0,
            count: Some(1000),
        };
        for caller in self.users.iter().filter(|u| u.active) {
            let actor = caller.actor();
            let who = format!(
                "{place}: {:?} {} (canViewProfiles {})",
                actor.level, actor.user_id, actor.can_view_profiles
            );

            let want: BTreeSet<i64> = self
                .projects
                .iter()
                .filter(|p| policy::can_see_project(&actor, &self.project_facts(p, &actor)))
                .map(|p| p.id)
                .collect();
            let page = store.projects(ws, actor, all(vec![])).await.unwrap();
            agree(
                &who,
                "projects",
                &want,
                page.items.iter().map(|p| p.id),
                page.total,
            );
            let census = store.project_census(ws, actor, vec![]).await.unwrap();
            assert_eq!(census.total, want.len() as i64, "{who}: project census");

            let seen: Vec<&Task> = self
                .tasks
                .iter()
                .filter(|t| policy::can_see_task(&actor, &self.task_facts(t, &actor)))
                .collect();
            let mut lists: Vec<Vec<Filter>> = vec![vec![], vec![Filter::Active]];
            for p in &self.projects {
                lists.push(vec![Filter::ProjectId(p.id)]);
                lists.push(vec![Filter::ProjectId(p.id), Filter::Active]);
                // The project's facts settled first, with a filter the kept counts do not
                // take (the total is counted).
                lists.push(vec![
                    Filter::ProjectId(p.id),
                    Filter::OwnerId(actor.user_id),
                ]);
            }
            for filters in lists {
                let want: BTreeSet<i64> = seen
                    .iter()
                    .filter(|t| {
                        filters.iter().all(|f| match f {
                            Filter::ProjectId(p) => t.project_id == Some(*p),
                            Filter::Active => t.status != STATUS_DONE,
                            Filter::OwnerId(u) => t.owner_id == *u,
                            _ => unreachable!(),
                        })
                    })
                    .map(|t| t.id)
                    .collect();
                let (page, _) = store
                    .tasks(ws, actor, all(filters.clone()), true)
                    .await
                    .unwrap();
                let list = format!("tasks {filters:?}");
                agree(
                    &who,
                    &list,
                    &want,
                    page.items.iter().map(|t| t.id),
                    page.total,
                );
            }

            let want: BTreeSet<i64> = self
                .activities
                .iter()
                .filter(|a| self.sees_activity(a, &actor))
                .map(|a| a.id)
                .collect();
            let page = store.activities(ws, actor, all(vec![])).await.unwrap();
            agree(
                &who,
                "activities",
                &want,
                page.items.iter().map(|a| a.id),
                page.total,
            );

            // A file is seen with its activity (the API reads the activity to decide).
            let want_files: BTreeSet<i64> = self
                .files
                .iter()
                .filter(|f| want.contains(&f.activity_id))
                .map(|f| f.id)
                .collect();
            let page = store.files(ws, actor, all(vec![])).await.unwrap();
            agree(
                &who,
                "files",
                &want_files,
                page.items.iter().map(|f| f.id),
                page.total,
            );

            let sees_all = policy::sees_all_users(&actor);
            let scope = if sees_all {
                UserScope::All
            } else {
                UserScope::SelfAndTeamMates(actor.user_id)
            };
            let mut want = BTreeSet::new();
            for u in self.users.iter().filter(|u| u.active) {
                let mate = self.team_mates(actor.user_id, u.id);
                if !sees_all {
                    // Asked by id, as the API asks before it decides 404.
                    let stored = store.are_team_mates(ws, actor.user_id, u.id).await.unwrap();
                    assert_eq!(
                        stored,
                        mate || u.id == actor.user_id,
                        "{who}: team-mate {}",
                        u.id
                    );
                }
                if policy::can_see_user(&actor, u.id, mate) {
                    want.insert(u.id);
                }
            }
            let users = store.users(ws, scope).await.unwrap();
            let got: BTreeSet<i64> = users.iter().map(|u| u.id).collect();
            assert_eq!(got, want, "{who}: users, SQL left, rules right");
        }
    }
}

/// The list holds exactly `want`, and its total counts them.
fn agree(who: &str, list: &str, want: &BTreeSet<i64>, got: impl Iterator<Item = i64>, total: i64) {
    let got: BTreeSet<i64> = got.collect();
    assert_eq!(&got, want, "{who}: {list}, SQL left, rules right");
    assert_eq!(total, want.len() as i64, "{who}: {list}, total");
}
