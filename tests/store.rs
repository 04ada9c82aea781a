//! The storage suite: every method of the store's traits (`vesper::store`), called
//! directly, on SQLite and, with `VESPER_TEST_DATABASE_URL` set, on PostgreSQL too, each
//! time on a fresh database. No HTTP and no password hashing (a fixed fake hash), so it
//! runs in seconds. Beside the answers of the traits, it reads the tables themselves for
//! what the traits do not show: cascaded rows and the kept task counts.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use vesper::domain::policy::{Actor, ProjectFacts};
use vesper::domain::token::{NewToken, Scope};
use vesper::domain::user::{NewUser, Profile, SecurityLevel, User, UserPatch};
use vesper::domain::work::{
    Activity, ActivityType, FileMeta, Project, Task, STATUS_DONE, STATUS_ON_HOLD, STATUS_OPEN,
};
use vesper::domain::WorkspaceId;
use vesper::store::{self, Attempt, Filter, ListQuery, OutgoingMail, Store, StoreError, UserScope};

use common::{pg_client, TestDatabase};

const WS: WorkspaceId = WorkspaceId::DEFAULT;
/// What the store keeps as a password hash: it never reads it, so any text does.
const FAKE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZmFrZS1zYWx0$ZmFrZS1oYXNo";
const NOW: i64 = 1_700_000_000;

/// One backend on a fresh database, and a side door to its tables.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    tables: Tables,
    /// Dropped after the store: the database goes with the test.
    _database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

/// Direct reads of the tables, for what the traits do not answer.
enum Tables {
    Sqlite(PathBuf),
    Postgres(tokio_postgres::Client),
}

impl Tables {
    /// The rows of a query whose columns are all BIGINT (the SQL must read the same on
    /// both backends: cast what is not).
    async fn rows(&self, sql: &str) -> Vec<Vec<i64>> {
        match self {
            Tables::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                let mut stmt = c.prepare(sql).unwrap();
                let n = stmt.column_count();
                stmt.query_map([], |r| (0..n).map(|i| r.get::<_, i64>(i)).collect())
                    .unwrap()
                    .collect::<rusqlite::Result<Vec<Vec<i64>>>>()
                    .unwrap()
            }
            Tables::Postgres(client) => client
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get::<_, i64>(i)).collect())
                .collect(),
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        self.rows(sql).await[0][0]
    }
}

/// SQLite in a temporary folder, and PostgreSQL when the suites run on it.
async fn backends() -> Vec<Backend> {
    let mut all = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vesper.sqlite3");
    all.push(Backend {
        name: "sqlite",
        store: store::open(None, dir.path()).await.unwrap(),
        tables: Tables::Sqlite(path),
        _database: None,
        _dir: dir,
    });
    all.extend(postgres().await.map(|(b, _)| b));
    all
}

/// A connection of the test's own holding one row of `table`, locked `FOR {mode}`, until
/// it commits or rolls back.
async fn hold(url: &str, table: &str, id: i64, mode: &str) -> tokio_postgres::Client {
    let holder = pg_client(url).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM {table} WHERE id = {id} FOR {mode}"
        ))
        .await
        .unwrap();
    holder
}

/// PostgreSQL on a fresh database, with its URL for connections of a test's own; none
/// when the suites run on SQLite only.
async fn postgres() -> Option<(Backend, String)> {
    let admin_url = common::test_database_url()?;
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::for_data_dir(&admin_url, dir.path(), true).await;
    let url = database.url();
    let store = store::open(Some(&url), dir.path()).await.unwrap();
    let backend = Backend {
        name: "postgres",
        store,
        tables: Tables::Postgres(pg_client(&url).await),
        _database: Some(database),
        _dir: dir,
    };
    Some((backend, url))
}

// ---- building blocks ---------------------------------------------------------------------

impl Backend {
    async fn user(&self, email: &str, level: SecurityLevel) -> User {
        self.store
            .add_user(WS, new_user(email, level), NOW)
            .await
            .unwrap()
    }

    async fn project(&self, owner: &User, name: &str, team: &[i64]) -> Project {
        let mut p = Project::new(owner.id);
        p.name = name.into();
        p.team = team.to_vec();
        self.store.save_project(WS, p, vec![], NOW).await.unwrap()
    }

    async fn task(&self, owner: &User, project: Option<i64>, parent: Option<i64>) -> Task {
        let mut t = Task::new(owner.id);
        t.name = format!("task under {project:?}/{parent:?}");
        t.project_id = project;
        t.parent_id = parent;
        self.store.save_task(WS, t, vec![], NOW).await.unwrap()
    }

    async fn activity(&self, owner: &User, task: &Task, hours: Option<f64>) -> Activity {
        let mut a = message(owner.id, task);
        a.hours_done = hours;
        self.store.save_activity(WS, a, vec![], NOW).await.unwrap()
    }

    async fn progress_note(&self, owner: &User, task: &Task, progress: i64, date: i64) -> Activity {
        let mut a = message(owner.id, task);
        a.kind = ActivityType::Progress;
        a.progress = Some(progress);
        a.date = date;
        self.store.save_activity(WS, a, vec![], NOW).await.unwrap()
    }

    async fn file(&self, owner: &User, activity: &Activity, key: &str) -> FileMeta {
        let f = FileMeta {
            id: 0,
            activity_id: activity.id,
            task_id: activity.task_id,
            project_id: activity.project_id,
            name: format!("{key}.txt"),
            size: 3,
            mime_type: "text/plain".into(),
            sha256: "00".repeat(32),
            storage_key: key.into(),
            owner_id: owner.id,
            on_message: activity.kind == ActivityType::Msg,
            created_at: 0,
        };
        let mut added = self.store.add_files(WS, vec![f], NOW).await.unwrap();
        assert_eq!(added.len(), 1);
        added.remove(0)
    }

    async fn task_now(&self, id: i64) -> Task {
        self.store.task(WS, id).await.unwrap().expect("the task")
    }

    /// An admin, a project of theirs and a task in it.
    async fn admin_project_task(&self) -> (User, Project, Task) {
        let admin = self.user("admin@example.com", SecurityLevel::Admin).await;
        let p = self.project(&admin, "p", &[]).await;
        let t = self.task(&admin, Some(p.id), None).await;
        (admin, p, t)
    }

    /// How many rows of `table` match `condition`.
    async fn rows_where(&self, table: &str, condition: &str) -> i64 {
        self.tables
            .count(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE {condition}"
            ))
            .await
    }

    /// The kept task counts equal the tasks counted again, and none went below zero.
    async fn assert_kept_counts(&self, when: &str) {
        let kept = self
            .tables
            .rows(
                "SELECT CAST(project_id AS BIGINT), CAST(status AS BIGINT), \
                 CAST(hidden AS BIGINT), CAST(n AS BIGINT) FROM task_counts \
                 WHERE n <> 0 ORDER BY 1, 2, 3",
            )
            .await;
        let real = self
            .tables
            .rows(
                "SELECT CAST(COALESCE(project_id, 0) AS BIGINT) AS p, \
                 CAST(status AS BIGINT) AS s, CAST(hidden AS BIGINT) AS h, \
                 CAST(COUNT(*) AS BIGINT) FROM tasks GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            )
            .await;
        assert_eq!(kept, real, "{}: kept task counts {when}", self.name);
        let negative = self.rows_where("task_counts", "n < 0").await;
        assert_eq!(negative, 0, "{}: a negative kept count {when}", self.name);
        // Each user's tasks, owned or in the team of, each task once.
        let kept = self
            .tables
            .rows(
                "SELECT CAST(user_id AS BIGINT), CAST(project_id AS BIGINT), \
                 CAST(status AS BIGINT), CAST(hidden AS BIGINT), CAST(n AS BIGINT) \
                 FROM own_task_counts WHERE n <> 0 ORDER BY 1, 2, 3, 4",
            )
            .await;
        let real = self
            .tables
            .rows(
                "SELECT CAST(o.user_id AS BIGINT), CAST(COALESCE(t.project_id, 0) AS BIGINT), \
                 CAST(t.status AS BIGINT), CAST(t.hidden AS BIGINT), CAST(COUNT(*) AS BIGINT) \
                 FROM (SELECT id AS task_id, owner_id AS user_id FROM tasks \
                 UNION SELECT task_id, user_id FROM task_team) o JOIN tasks t ON t.id = o.task_id \
                 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            )
            .await;
        assert_eq!(kept, real, "{}: kept own task counts {when}", self.name);
        let negative = self.rows_where("own_task_counts", "n < 0").await;
        assert_eq!(negative, 0, "{}: a negative own count {when}", self.name);
    }

    /// The total of a caller's task list of one project (taken from the kept counts) and
    /// of its active tasks, against the rows.
    async fn assert_counted_totals(&self, caller: &User, project: i64) {
        for active in [false, true] {
            let mut filters = vec![Filter::ProjectId(project)];
            if active {
                filters.push(Filter::Active);
            }
            let (page, _) = self
                .store
                .tasks(WS, actor(caller), every(filters), true)
                .await
                .unwrap();
            assert_eq!(
                page.total,
                page.items.len() as i64,
                "{}: total of project {project}'s tasks for {} (active only: {active})",
                self.name,
                caller.email
            );
        }
    }
}

fn new_user(email: &str, level: SecurityLevel) -> NewUser {
    NewUser {
        email: email.into(),
        password_hash: FAKE_HASH.into(),
        profile: Profile {
            first_name: Some(format!("First {email}")),
            ..Profile::default()
        },
        security_level: level,
        can_view_profiles: false,
    }
}

fn actor(u: &User) -> Actor {
    Actor {
        user_id: u.id,
        level: u.security_level,
        can_view_profiles: u.can_view_profiles,
    }
}

/// Every row that matches.
fn every(filters: Vec<Filter>) -> ListQuery {
    ListQuery {
        filters,
        offset: 0,
        count: None,
    }
}

fn page(filters: Vec<Filter>, offset: i64, count: i64) -> ListQuery {
    ListQuery {
        filters,
        offset,
        count: Some(count),
    }
}

/// A message on a task (and its project), dated `NOW`.
fn message(owner: i64, task: &Task) -> Activity {
    Activity {
        id: 0,
        project_id: task.project_id,
        task_id: Some(task.id),
        kind: ActivityType::Msg,
        text: Some("a note".into()),
        owner_id: owner,
        progress: None,
        hours_done: None,
        hide_from_clients: false,
        date: NOW,
        notify_project_team: false,
        notify_task_team: false,
        notify_client: false,
        created_at: 0,
        updated_at: 0,
        version: 0,
    }
}

fn mail(to: &str) -> OutgoingMail {
    OutgoingMail {
        recipient: to.into(),
        subject: format!("to {to}"),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    let mut v: Vec<i64> = items.iter().map(id).collect();
    v.sort_unstable();
    v
}

fn is_version_changed<T: std::fmt::Debug>(r: store::Result<T>) -> bool {
    matches!(r, Err(StoreError::VersionChanged))
}

// ---- users and sessions ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_added_found_changed_and_removed() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        assert_eq!(s.count_users(WS).await.unwrap(), 0, "{n}");
        let admin = b.user("Admin@Example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        assert_eq!(s.count_users(WS).await.unwrap(), 2, "{n}");
        assert_eq!(admin.email, "Admin@Example.com", "{n}");
        assert!(admin.active, "{n}");
        assert_eq!(admin.created_at, NOW, "{n}");
        assert_eq!(
            ann.profile.first_name.as_deref(),
            Some("First ann@example.com")
        );

        // The email is unique among active users, in any case.
        assert!(
            matches!(
                s.add_user(WS, new_user("ANN@example.com", SecurityLevel::Client), NOW)
                    .await,
                Err(StoreError::DuplicateEmail)
            ),
            "{n}"
        );

        assert_eq!(s.user(WS, ann.id).await.unwrap(), Some(ann.clone()), "{n}");
        assert_eq!(s.user(WS, 999_999).await.unwrap(), None, "{n}");
        assert_eq!(
            s.user_by_email(WS, "admin@EXAMPLE.com").await.unwrap(),
            Some(admin.clone()),
            "{n}"
        );
        assert_eq!(
            s.user_by_email(WS, "nobody@example.com").await.unwrap(),
            None
        );
        let (found, hash) = s.credentials(WS, "ANN@example.com").await.unwrap().unwrap();
        assert_eq!((found.id, hash.as_str()), (ann.id, FAKE_HASH), "{n}");
        assert_eq!(
            ids(
                &s.users_by_ids(WS, vec![ann.id, admin.id, 999_999])
                    .await
                    .unwrap(),
                |u| u.id
            ),
            ids(&[admin.id, ann.id], |i| *i),
            "{n}"
        );

        // A patch changes what it names and raises the version; a stale version changes
        // nothing.
        let patch = UserPatch {
            first_name: Some(Some("Ann".into())),
            company: Some(Some("Acme".into())),
            can_view_profiles: Some(true),
            ..UserPatch::default()
        };
        assert!(
            is_version_changed(
                s.update_user(
                    WS,
                    ann.id,
                    patch.clone(),
                    Some(ann.version + 1),
                    None,
                    NOW + 1
                )
                .await
            ),
            "{n}"
        );
        let changed = s
            .update_user(WS, ann.id, patch, Some(ann.version), None, NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.profile.first_name.as_deref(), Some("Ann"), "{n}");
        assert_eq!(changed.profile.company.as_deref(), Some("Acme"), "{n}");
        assert!(changed.can_view_profiles, "{n}");
        assert_eq!(changed.email, ann.email, "{n}");
        assert_eq!(changed.updated_at, NOW + 1, "{n}");
        assert!(changed.version > ann.version, "{n}");
        assert_eq!(
            s.user(WS, ann.id).await.unwrap(),
            Some(changed.clone()),
            "{n}"
        );
        assert_eq!(
            s.update_user(WS, 999_999, UserPatch::default(), None, None, NOW)
                .await
                .unwrap(),
            None,
            "{n}"
        );
        // A new email must be free too.
        let taken = UserPatch {
            email: Some("admin@example.COM".into()),
            ..UserPatch::default()
        };
        assert!(
            matches!(
                s.update_user(WS, ann.id, taken, None, None, NOW).await,
                Err(StoreError::DuplicateEmail)
            ),
            "{n}"
        );

        // The last admin can be neither demoted nor removed.
        let demote = UserPatch {
            security_level: Some(SecurityLevel::User),
            ..UserPatch::default()
        };
        assert!(
            matches!(
                s.update_user(WS, admin.id, demote.clone(), None, None, NOW)
                    .await,
                Err(StoreError::LastAdmin)
            ),
            "{n}"
        );
        assert!(
            matches!(
                s.remove_user(WS, admin.id, None, NOW).await,
                Err(StoreError::LastAdmin)
            ),
            "{n}"
        );
        // With a second admin, the first may go.
        let second = b.user("second@example.com", SecurityLevel::Admin).await;
        let demoted = s
            .update_user(WS, admin.id, demote, None, None, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(demoted.security_level, SecurityLevel::User, "{n}");
        assert!(
            matches!(
                s.remove_user(WS, second.id, None, NOW).await,
                Err(StoreError::LastAdmin)
            ),
            "{n}"
        );

        // Removing: a stale version refuses, the user stays readable but inactive, its
        // email is free again.
        assert!(
            is_version_changed(
                s.remove_user(WS, ann.id, Some(changed.version - 1), NOW)
                    .await
            ),
            "{n}"
        );
        assert!(s
            .remove_user(WS, ann.id, Some(changed.version), NOW + 2)
            .await
            .unwrap());
        assert!(!s.remove_user(WS, 999_999, None, NOW).await.unwrap(), "{n}");
        let gone = s.user(WS, ann.id).await.unwrap().unwrap();
        assert!(!gone.active, "{n}");
        assert_eq!(s.user_by_email(WS, "ann@example.com").await.unwrap(), None);
        assert_eq!(s.credentials(WS, "ann@example.com").await.unwrap(), None);
        assert_eq!(
            s.users_by_ids(WS, vec![ann.id]).await.unwrap(),
            vec![],
            "{n}"
        );
        assert_eq!(s.count_users(WS).await.unwrap(), 2, "{n}");
        assert_eq!(
            s.missing_users(WS, vec![ann.id, second.id, 999_999])
                .await
                .unwrap(),
            vec![ann.id, 999_999],
            "{n}"
        );
        let again = b.user("ann@example.com", SecurityLevel::Client).await;
        assert_ne!(again.id, ann.id, "{n}");
        assert_eq!(
            ids(&s.users(WS, UserScope::All).await.unwrap(), |u| u.id),
            ids(&[admin.id, second.id, again.id], |i| *i),
            "{n}: the list holds active users only"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_mates_are_those_sharing_a_project_or_task_team() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let bob = b.user("bob@example.com", SecurityLevel::External).await;
        let cid = b.user("cid@example.com", SecurityLevel::Client).await;
        let dan = b.user("dan@example.com", SecurityLevel::User).await;
        // ann and bob share a project team; ann and cid a task team; dan nothing.
        let p = b.project(&admin, "shared", &[ann.id, bob.id]).await;
        let mut t = Task::new(admin.id);
        t.name = "single".into();
        t.team = vec![ann.id, cid.id];
        let t = s.save_task(WS, t, vec![], NOW).await.unwrap();
        assert_eq!(t.team.len(), 2, "{n}");
        for (x, y, mates) in [
            (ann.id, bob.id, true),
            (bob.id, ann.id, true),
            (ann.id, cid.id, true),
            (bob.id, cid.id, false),
            (dan.id, ann.id, false),
            (admin.id, ann.id, false),
        ] {
            assert_eq!(
                s.are_team_mates(WS, x, y).await.unwrap(),
                mates,
                "{n}: {x} {y}"
            );
        }
        let scope = |u: &User| UserScope::SelfAndTeamMates(u.id);
        let listed = |v: Vec<User>| ids(&v, |u| u.id);
        assert_eq!(
            listed(s.users(WS, scope(&ann)).await.unwrap()),
            ids(&[ann.id, bob.id, cid.id], |i| *i),
            "{n}"
        );
        assert_eq!(
            listed(s.users(WS, scope(&bob)).await.unwrap()),
            ids(&[ann.id, bob.id], |i| *i),
            "{n}"
        );
        assert_eq!(
            listed(s.users(WS, scope(&dan)).await.unwrap()),
            vec![dan.id]
        );
        assert_eq!(listed(s.users(WS, UserScope::All).await.unwrap()).len(), 5);

        // Removing a user takes it out of every team, and its teams' objects change.
        let before = b
            .rows_where("project_team", &format!("user_id = {}", bob.id))
            .await;
        assert_eq!(before, 1, "{n}");
        assert!(s.remove_user(WS, ann.id, None, NOW).await.unwrap());
        for table in ["project_team", "task_team"] {
            assert_eq!(
                b.rows_where(table, &format!("user_id = {}", ann.id)).await,
                0,
                "{n}: {table}"
            );
        }
        let p_after = s.project(WS, p.id).await.unwrap().unwrap();
        assert_eq!(p_after.team, vec![bob.id], "{n}");
        assert!(p_after.version > p.version, "{n}");
        let t_after = b.task_now(t.id).await;
        assert_eq!(t_after.team, vec![cid.id], "{n}");
        assert!(t_after.version > t.version, "{n}");
        assert!(!s.are_team_mates(WS, ann.id, bob.id).await.unwrap(), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_live_until_removed_stale_or_their_user_changes() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let token = |i: u8| vec![i; 32];
        s.add_session(WS, token(1), ann.id, NOW).await.unwrap();
        s.add_session(WS, token(2), ann.id, NOW).await.unwrap();
        s.add_session(WS, token(3), admin.id, NOW).await.unwrap();
        let one = s.session(WS, token(1)).await.unwrap().unwrap();
        assert_eq!(one.user, ann, "{n}");
        assert_eq!((one.created_at, one.last_used_at), (NOW, NOW), "{n}");
        assert!(s.session(WS, token(9)).await.unwrap().is_none(), "{n}");

        s.touch_session(token(1), NOW + 50).await.unwrap();
        assert_eq!(
            s.session(WS, token(1)).await.unwrap().unwrap().last_used_at,
            NOW + 50,
            "{n}"
        );
        s.remove_session(token(2)).await.unwrap();
        assert!(s.session(WS, token(2)).await.unwrap().is_none(), "{n}");

        // A new password ends the user's sessions but the one kept.
        s.add_session(WS, token(4), ann.id, NOW).await.unwrap();
        let password = UserPatch {
            password_hash: Some(format!("{FAKE_HASH}-2")),
            ..UserPatch::default()
        };
        s.update_user(WS, ann.id, password, None, Some(token(4)), NOW)
            .await
            .unwrap()
            .unwrap();
        assert!(s.session(WS, token(1)).await.unwrap().is_none(), "{n}");
        assert!(s.session(WS, token(4)).await.unwrap().is_some(), "{n}");
        assert_eq!(
            s.credentials(WS, "ann@example.com")
                .await
                .unwrap()
                .unwrap()
                .1,
            format!("{FAKE_HASH}-2"),
            "{n}"
        );
        // A profile change ends none.
        let profile = UserPatch {
            comment: Some(Some("hi".into())),
            ..UserPatch::default()
        };
        s.update_user(WS, ann.id, profile, None, None, NOW)
            .await
            .unwrap();
        assert!(s.session(WS, token(4)).await.unwrap().is_some(), "{n}");
        // A new security level ends them all when none is kept.
        let level = UserPatch {
            security_level: Some(SecurityLevel::External),
            ..UserPatch::default()
        };
        s.update_user(WS, ann.id, level, None, None, NOW)
            .await
            .unwrap();
        assert!(s.session(WS, token(4)).await.unwrap().is_none(), "{n}");

        // Stale: idle too long, or too old however busy.
        s.add_session(WS, token(5), ann.id, NOW + 100)
            .await
            .unwrap();
        s.add_session(WS, token(6), ann.id, NOW + 200)
            .await
            .unwrap();
        s.touch_session(token(3), NOW + 300).await.unwrap();
        let removed = s.remove_stale_sessions(NOW + 150, NOW - 1).await.unwrap();
        assert_eq!(removed, 1, "{n}: the idle one");
        assert!(s.session(WS, token(5)).await.unwrap().is_none(), "{n}");
        assert!(s.session(WS, token(3)).await.unwrap().is_some(), "{n}");
        let removed = s.remove_stale_sessions(0, NOW + 150).await.unwrap();
        assert_eq!(removed, 1, "{n}: the old one, used lately");
        assert!(s.session(WS, token(3)).await.unwrap().is_none(), "{n}");
        assert!(s.session(WS, token(6)).await.unwrap().is_some(), "{n}");

        // Removing a user ends its sessions.
        assert!(s.remove_user(WS, ann.id, None, NOW).await.unwrap());
        assert!(s.session(WS, token(6)).await.unwrap().is_none(), "{n}");
        assert_eq!(
            b.rows_where("sessions", &format!("user_id = {}", ann.id))
                .await,
            0,
            "{n}"
        );
    }
}

fn new_token(user: &User, name: &str, scope: Scope, hash: u8) -> NewToken {
    NewToken {
        user_id: user.id,
        name: name.into(),
        scope,
        token_hash: vec![hash; 32],
        expires_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_found_by_hash_with_their_user_as_it_is_now() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let _admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::Admin).await;
        let bob = b.user("bob@example.com", SecurityLevel::User).await;

        let mut first = new_token(&ann, "ci", Scope::Write, 1);
        first.expires_at = Some(NOW + 3600);
        let t1 = s.add_token(WS, first, 100, NOW).await.unwrap().unwrap();
        assert_eq!(
            (t1.user_id, t1.name.as_str(), t1.scope, t1.created_at),
            (ann.id, "ci", Scope::Write, NOW),
            "{n}"
        );
        assert_eq!(
            (t1.last_used_at, t1.expires_at),
            (None, Some(NOW + 3600)),
            "{n}"
        );
        let t2 = s
            .add_token(WS, new_token(&ann, "report", Scope::Read, 2), 100, NOW)
            .await
            .unwrap()
            .unwrap();
        let t3 = s
            .add_token(WS, new_token(&bob, "bob", Scope::Read, 3), 100, NOW)
            .await
            .unwrap()
            .unwrap();
        // The hash is what is stored, and unique.
        assert_eq!(
            b.rows_where(
                "tokens",
                &format!("id = {} AND length(token_hash) = 32", t1.id)
            )
            .await,
            1,
            "{n}"
        );
        let duplicate = s
            .add_token(WS, new_token(&bob, "again", Scope::Read, 3), 100, NOW)
            .await;
        assert!(duplicate.is_err(), "{n}: a second token with the same hash");

        // Lists are per user, by id; a single token by id, in its workspace only.
        let ids = |v: Vec<vesper::domain::token::Token>| v.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.tokens_of(WS, ann.id).await.unwrap()),
            [t1.id, t2.id],
            "{n}"
        );
        assert_eq!(ids(s.tokens_of(WS, bob.id).await.unwrap()), [t3.id], "{n}");
        assert_eq!(s.token(WS, t2.id).await.unwrap(), Some(t2.clone()), "{n}");
        let elsewhere = WorkspaceId(2);
        assert!(s.token(elsewhere, t2.id).await.unwrap().is_none(), "{n}");
        assert!(
            s.token_by_hash(elsewhere, vec![1; 32])
                .await
                .unwrap()
                .is_none(),
            "{n}"
        );
        assert!(!s.remove_token(elsewhere, t2.id).await.unwrap(), "{n}");

        // By hash: the token and its user.
        let (user, token) = s.token_by_hash(WS, vec![1; 32]).await.unwrap().unwrap();
        assert_eq!((user, token), (ann.clone(), t1.clone()), "{n}");
        assert!(
            s.token_by_hash(WS, vec![9; 32]).await.unwrap().is_none(),
            "{n}"
        );

        // Touched, then seen as touched.
        s.touch_token(WS, t1.id, NOW + 70).await.unwrap();
        let (_, token) = s.token_by_hash(WS, vec![1; 32]).await.unwrap().unwrap();
        assert_eq!(token.last_used_at, Some(NOW + 70), "{n}");

        // The user as it is now: a demotion shows at the next look-up.
        let demote = UserPatch {
            security_level: Some(SecurityLevel::Client),
            ..UserPatch::default()
        };
        s.update_user(WS, ann.id, demote, None, None, NOW)
            .await
            .unwrap();
        let (user, _) = s.token_by_hash(WS, vec![2; 32]).await.unwrap().unwrap();
        assert_eq!(user.security_level, SecurityLevel::Client, "{n}");

        // Removed: gone at once.
        assert!(s.remove_token(WS, t2.id).await.unwrap(), "{n}");
        assert!(!s.remove_token(WS, t2.id).await.unwrap(), "{n}");
        assert!(
            s.token_by_hash(WS, vec![2; 32]).await.unwrap().is_none(),
            "{n}"
        );

        // Removing the user removes its tokens with it, and only its.
        assert!(s.remove_user(WS, ann.id, None, NOW).await.unwrap());
        assert!(
            s.token_by_hash(WS, vec![1; 32]).await.unwrap().is_none(),
            "{n}"
        );
        assert_eq!(
            b.rows_where("tokens", &format!("user_id = {}", ann.id))
                .await,
            0,
            "{n}"
        );
        assert!(
            s.token_by_hash(WS, vec![3; 32]).await.unwrap().is_some(),
            "{n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_tokens_up_to_the_limit_even_when_adding_at_once() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let bob = b.user("bob@example.com", SecurityLevel::User).await;
        // Connections opened first (PostgreSQL's pool opens them as asked), so that the
        // adds overlap.
        let warm = (0..20).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.tokens_of(WS, 0).await.unwrap() })
        });
        for w in warm.collect::<Vec<_>>() {
            w.await.unwrap();
        }
        // Twenty adds at once against a limit of 5: five stored, whichever node or order.
        let adds = (0..20u8).map(|i| {
            let s = s.clone();
            let t = new_token(&ann, &format!("t{i}"), Scope::Read, 100 + i);
            tokio::spawn(async move { s.add_token(WS, t, 5, NOW).await.unwrap() })
        });
        let mut added = 0;
        for add in adds.collect::<Vec<_>>() {
            added += usize::from(add.await.unwrap().is_some());
        }
        assert_eq!(added, 5, "{n}");
        assert_eq!(s.tokens_of(WS, ann.id).await.unwrap().len(), 5, "{n}");
        // Another user's count is their own.
        let t = new_token(&bob, "bob", Scope::Write, 1);
        assert!(s.add_token(WS, t, 5, NOW).await.unwrap().is_some(), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_throttled_by_failures_and_checks_under_way() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let login = |who: &str| format!("login:{who}");
        let subjects = |who: &str, addr: &str| vec![login(who), format!("addr:{addr}")];
        let window = NOW - 100;
        // Two failures of ann from two addresses.
        for (at, addr) in [(NOW - 10, "1.1.1.1"), (NOW - 5, "2.2.2.2")] {
            let Attempt::Admitted(records) = s
                .begin_attempt(WS, subjects("ann", addr), at, window, 3)
                .await
                .unwrap()
            else {
                panic!("{n}: admitted");
            };
            assert_eq!(records.len(), 2, "{n}: one record per subject");
            s.end_attempt(records, true).await.unwrap();
        }
        assert_eq!(
            s.failures_between(WS, "login:ann".into(), "login:ann\u{10ffff}".into(), window)
                .await
                .unwrap(),
            2,
            "{n}"
        );
        // One check under way reaches the limit of 3 with the two failures: busy.
        let Attempt::Admitted(pending) = s
            .begin_attempt(WS, subjects("ann", "3.3.3.3"), NOW, window, 4)
            .await
            .unwrap()
        else {
            panic!("{n}: admitted");
        };
        assert_eq!(
            s.begin_attempt(WS, subjects("ann", "4.4.4.4"), NOW, window, 3)
                .await
                .unwrap(),
            Attempt::Busy,
            "{n}"
        );
        // A right password removes the check's records.
        s.end_attempt(pending, false).await.unwrap();
        assert_eq!(
            s.failures_between(WS, "login:ann".into(), "login:ano".into(), window)
                .await
                .unwrap(),
            2,
            "{n}"
        );
        // A third failure: throttled, naming the oldest failure in the window.
        let Attempt::Admitted(third) = s
            .begin_attempt(WS, subjects("ann", "1.1.1.1"), NOW, window, 3)
            .await
            .unwrap()
        else {
            panic!("{n}: admitted");
        };
        s.end_attempt(third, true).await.unwrap();
        assert_eq!(
            s.begin_attempt(WS, subjects("ann", "5.5.5.5"), NOW, window, 3)
                .await
                .unwrap(),
            Attempt::Throttled { oldest: NOW - 10 },
            "{n}"
        );
        // The address's failures throttle another login from it too.
        assert_eq!(
            s.begin_attempt(WS, subjects("bob", "1.1.1.1"), NOW, window, 2)
                .await
                .unwrap(),
            Attempt::Throttled { oldest: NOW - 10 },
            "{n}"
        );
        // Out of the window, failures no longer count, and the subjects' old ones go.
        assert!(matches!(
            s.begin_attempt(WS, subjects("ann", "5.5.5.5"), NOW + 200, NOW + 100, 3)
                .await
                .unwrap(),
            Attempt::Admitted(_)
        ));
        // Forgetting: failures and abandoned checks older than the time go.
        // Left: the two addresses' three failures and the last check's two records.
        let before = b.rows_where("login_failures", "1 = 1").await;
        assert_eq!(before, 5, "{n}");
        let forgotten = s.forget_login_failures(NOW + 1).await.unwrap();
        assert_eq!(
            forgotten as i64,
            before - 2,
            "{n}: all but the last check's two"
        );
        assert_eq!(
            s.failures_between(WS, "login:".into(), "login;".into(), 0)
                .await
                .unwrap(),
            0,
            "{n}"
        );
    }
}

// ---- groups ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_kept_and_their_projects_tasks_follow_them() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let g1 = s.add_group(WS, "One".into(), NOW).await.unwrap();
        let g2 = s.add_group(WS, "Two".into(), NOW).await.unwrap();
        assert_eq!((g1.name.as_str(), g1.created_at), ("One", NOW), "{n}");
        assert_eq!(s.group(WS, g1.id).await.unwrap(), Some(g1.clone()), "{n}");
        assert_eq!(s.group(WS, 999_999).await.unwrap(), None, "{n}");
        assert_eq!(
            s.groups(WS).await.unwrap(),
            vec![g1.clone(), g2.clone()],
            "{n}"
        );

        assert!(is_version_changed(
            s.update_group(WS, g1.id, Some("Uno".into()), Some(g1.version + 1), NOW)
                .await
        ));
        let renamed = s
            .update_group(WS, g1.id, Some("Uno".into()), Some(g1.version), NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renamed.name, "Uno", "{n}");
        assert_eq!(renamed.updated_at, NOW + 1, "{n}");
        assert!(renamed.version > g1.version, "{n}");
        assert_eq!(
            s.update_group(WS, 999_999, None, None, NOW).await.unwrap(),
            None,
            "{n}"
        );

        // A task in a project takes the project's group, when added and when the
        // project's group changes; a single task keeps its own.
        let mut p = Project::new(admin.id);
        p.name = "grouped".into();
        p.group_id = Some(g1.id);
        let p = s.save_project(WS, p, vec![], NOW).await.unwrap();
        let mut t = Task::new(admin.id);
        t.project_id = Some(p.id);
        t.group_id = Some(g2.id);
        let t = s.save_task(WS, t, vec![], NOW).await.unwrap();
        assert_eq!(t.group_id, Some(g1.id), "{n}");
        let mut single = Task::new(admin.id);
        single.group_id = Some(g2.id);
        let single = s.save_task(WS, single, vec![], NOW).await.unwrap();
        assert_eq!(single.group_id, Some(g2.id), "{n}");
        let mut regrouped = p.clone();
        regrouped.group_id = Some(g2.id);
        s.save_project(WS, regrouped, vec![], NOW).await.unwrap();
        let t_after = b.task_now(t.id).await;
        assert_eq!(t_after.group_id, Some(g2.id), "{n}");
        assert!(t_after.version > t.version, "{n}");

        // Removing a group leaves its projects and tasks in none, and changes them.
        let mut in_g1 = Project::new(admin.id);
        in_g1.name = "in one".into();
        in_g1.group_id = Some(g1.id);
        let in_g1 = s.save_project(WS, in_g1, vec![], NOW).await.unwrap();
        let mut t_in_g1 = Task::new(admin.id);
        t_in_g1.project_id = Some(in_g1.id);
        let t_in_g1 = s.save_task(WS, t_in_g1, vec![], NOW).await.unwrap();
        let mut single_in_g1 = Task::new(admin.id);
        single_in_g1.group_id = Some(g1.id);
        let single_in_g1 = s.save_task(WS, single_in_g1, vec![], NOW).await.unwrap();
        assert_eq!(t_in_g1.group_id, Some(g1.id), "{n}");
        assert!(is_version_changed(
            s.remove_group(WS, g1.id, Some(g1.version)).await
        ));
        assert!(s
            .remove_group(WS, g1.id, Some(renamed.version))
            .await
            .unwrap());
        assert!(!s.remove_group(WS, g1.id, None).await.unwrap(), "{n}");
        assert_eq!(s.groups(WS).await.unwrap(), vec![g2.clone()], "{n}");
        let p_after = s.project(WS, in_g1.id).await.unwrap().unwrap();
        assert_eq!(p_after.group_id, None, "{n}");
        assert!(p_after.version > in_g1.version, "{n}");
        for t in [&t_in_g1, &single_in_g1] {
            let after = b.task_now(t.id).await;
            assert_eq!(after.group_id, None, "{n}");
            assert!(after.version > t.version, "{n}");
        }
        // The other group's keep theirs.
        assert_eq!(b.task_now(single.id).await.group_id, Some(g2.id), "{n}");
    }
}

// ---- projects ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_are_saved_listed_and_paged() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let cid = b.user("cid@example.com", SecurityLevel::Client).await;

        let mut p = Project::new(ann.id);
        p.name = "Alpha".into();
        p.description = Some("about alpha".into());
        p.tags = Some("a,b".into());
        p.team = vec![cid.id, ann.id];
        p.start_date = Some(NOW - 86_400);
        let alpha = s.save_project(WS, p, vec![], NOW).await.unwrap();
        assert!(alpha.id > 0, "{n}");
        assert_eq!((alpha.created_at, alpha.updated_at), (NOW, NOW), "{n}");
        assert_eq!(ids(&alpha.team, |i| *i), ids(&[ann.id, cid.id], |i| *i));
        assert_eq!(s.project(WS, alpha.id).await.unwrap(), Some(alpha.clone()));
        assert_eq!(s.project(WS, 999_999).await.unwrap(), None, "{n}");

        // A replacement names the version it read.
        let mut edit = alpha.clone();
        edit.name = "Alpha 2".into();
        edit.team = vec![ann.id];
        let mut stale = edit.clone();
        stale.version += 1;
        assert!(is_version_changed(
            s.save_project(WS, stale, vec![], NOW + 1).await
        ));
        let alpha2 = s.save_project(WS, edit, vec![], NOW + 1).await.unwrap();
        assert_eq!(alpha2.name, "Alpha 2", "{n}");
        assert_eq!(alpha2.team, vec![ann.id], "{n}");
        assert_eq!(
            (alpha2.created_at, alpha2.updated_at),
            (NOW, NOW + 1),
            "{n}"
        );
        assert!(alpha2.version > alpha.version, "{n}");
        // The read version went by: writing it again is refused.
        assert!(is_version_changed(
            s.save_project(WS, alpha.clone(), vec![], NOW).await
        ));

        let mut hidden = Project::new(admin.id);
        hidden.name = "Hidden beta".into();
        hidden.hidden = true;
        let hidden = s.save_project(WS, hidden, vec![], NOW).await.unwrap();
        let mut done = Project::new(admin.id);
        done.name = "Gamma".into();
        done.status = STATUS_DONE;
        done.closed_at = Some(NOW);
        let done = s.save_project(WS, done, vec![], NOW).await.unwrap();
        let all = [alpha.id, hidden.id, done.id];

        assert_eq!(
            ids(
                &s.projects_by_ids(WS, vec![done.id, alpha.id, 999_999])
                    .await
                    .unwrap(),
                |p| p.id
            ),
            ids(&[alpha.id, done.id], |i| *i),
            "{n}"
        );

        // Lists: the admin sees all three, the user not the hidden one, the client only
        // its team's; totals count what each sees.
        let listed = |a: &User, q: ListQuery| {
            let a = actor(a);
            async move { s.projects(WS, a, q).await.unwrap() }
        };
        let seen = listed(&admin, every(vec![])).await;
        assert_eq!((ids(&seen.items, |p| p.id), seen.total), (all.to_vec(), 3));
        let seen = listed(&ann, every(vec![])).await;
        assert_eq!(
            (ids(&seen.items, |p| p.id), seen.total),
            (vec![alpha.id, done.id], 2),
            "{n}"
        );
        let seen = listed(&cid, every(vec![])).await;
        assert_eq!((ids(&seen.items, |p| p.id), seen.total), (vec![], 0), "{n}");
        let seen = listed(&admin, page(vec![], 1, 1)).await;
        assert_eq!((seen.items.len(), seen.total), (1, 3), "{n}");
        let seen = listed(&admin, every(vec![Filter::Name("ALPHA".into())])).await;
        assert_eq!(
            (ids(&seen.items, |p| p.id), seen.total),
            (vec![alpha.id], 1)
        );
        let seen = listed(&admin, every(vec![Filter::Active])).await;
        assert_eq!(seen.total, 2, "{n}");
        let seen = listed(&admin, every(vec![Filter::OwnerId(ann.id)])).await;
        assert_eq!(ids(&seen.items, |p| p.id), vec![alpha.id], "{n}");
        let seen = listed(&admin, every(vec![Filter::AssignedTo(ann.id)])).await;
        assert_eq!(ids(&seen.items, |p| p.id), vec![alpha.id], "{n}");

        // getAll: the census, then pages after an id up to the census's last.
        let census = s.project_census(WS, actor(&admin), vec![]).await.unwrap();
        assert_eq!((census.total, census.last_id), (3, done.id), "{n}");
        let census = s.project_census(WS, actor(&ann), vec![]).await.unwrap();
        assert_eq!((census.total, census.last_id), (2, done.id), "{n}");
        let first = s
            .projects_after(WS, actor(&admin), vec![], 0, done.id, 2)
            .await
            .unwrap();
        assert_eq!(ids(&first, |p| p.id), vec![alpha.id, hidden.id], "{n}");
        assert_eq!(first[0].team, vec![ann.id], "{n}: with their teams");
        let rest = s
            .projects_after(WS, actor(&admin), vec![], hidden.id, done.id, 2)
            .await
            .unwrap();
        assert_eq!(ids(&rest, |p| p.id), vec![done.id], "{n}");
        let later = b.project(&admin, "later", &[]).await;
        let capped = s
            .projects_after(WS, actor(&admin), vec![], hidden.id, done.id, 10)
            .await
            .unwrap();
        assert_eq!(
            ids(&capped, |p| p.id),
            vec![done.id],
            "{n}: not past last_id"
        );
        let ann_sees = s
            .projects_after(WS, actor(&ann), vec![], 0, later.id, 10)
            .await
            .unwrap();
        assert_eq!(ids(&ann_sees, |p| p.id), vec![alpha.id, done.id, later.id]);
        // A page ends early once its text is large.
        let mut big = Project::new(admin.id);
        big.name = "big".into();
        big.description = Some("x".repeat(store::PAGE_TEXT_BYTES));
        let big = s.save_project(WS, big, vec![], NOW).await.unwrap();
        let _after_big = b.project(&admin, "after big", &[]).await;
        let stopped = s
            .projects_after(WS, actor(&admin), vec![], later.id, i64::MAX, 10)
            .await
            .unwrap();
        assert_eq!(ids(&stopped, |p| p.id), vec![big.id], "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_project_removes_its_tasks_activities_files_and_team() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let p = b.project(&admin, "doomed", &[ann.id]).await;
        let other = b.project(&admin, "kept", &[ann.id]).await;
        let top = b.task(&admin, Some(p.id), None).await;
        let sub = b.task(&admin, Some(p.id), Some(top.id)).await;
        let mut teamed = sub.clone();
        teamed.team = vec![ann.id];
        s.save_task(WS, teamed, vec![], NOW).await.unwrap();
        let a1 = b.activity(&admin, &top, Some(1.0)).await;
        let a2 = b.activity(&admin, &sub, None).await;
        let mut on_project = message(admin.id, &top);
        on_project.task_id = None;
        let a3 = s.save_activity(WS, on_project, vec![], NOW).await.unwrap();
        b.file(&admin, &a1, "key-1").await;
        b.file(&admin, &a2, "key-2").await;
        b.file(&admin, &a3, "key-3").await;
        let kept_task = b.task(&admin, Some(other.id), None).await;
        let kept_activity = b.activity(&admin, &kept_task, None).await;
        b.file(&admin, &kept_activity, "key-kept").await;

        assert!(is_version_changed(
            s.remove_project(WS, p.id, Some(p.version + 1)).await
        ));
        let mut keys = s
            .remove_project(WS, p.id, Some(p.version))
            .await
            .unwrap()
            .unwrap();
        keys.sort();
        assert_eq!(keys, vec!["key-1", "key-2", "key-3"], "{n}");
        assert_eq!(s.remove_project(WS, p.id, None).await.unwrap(), None, "{n}");
        assert_eq!(s.project(WS, p.id).await.unwrap(), None, "{n}");
        for id in [top.id, sub.id] {
            assert_eq!(s.task(WS, id).await.unwrap(), None, "{n}");
        }
        for id in [a1.id, a2.id, a3.id] {
            assert_eq!(s.activity(WS, id).await.unwrap(), None, "{n}");
        }
        for (table, condition) in [
            ("tasks", format!("project_id = {}", p.id)),
            ("activities", format!("project_id = {}", p.id)),
            ("files", format!("project_id = {}", p.id)),
            ("project_team", format!("project_id = {}", p.id)),
            ("task_team", format!("task_id IN ({}, {})", top.id, sub.id)),
        ] {
            assert_eq!(b.rows_where(table, &condition).await, 0, "{n}: {table}");
        }
        // The other project keeps everything.
        assert!(s.task(WS, kept_task.id).await.unwrap().is_some(), "{n}");
        assert_eq!(
            s.storage_keys().await.unwrap(),
            vec!["key-kept".to_owned()],
            "{n}"
        );
        assert_eq!(b.rows_where("project_team", "1 = 1").await, 1, "{n}");
        b.assert_kept_counts("after a project's removal").await;
    }
}

// ---- tasks -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_saved_with_their_lineage_and_moved_with_their_subtasks() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let from = b.project(&admin, "from", &[]).await;
        let to = b.project(&admin, "to", &[]).await;
        let top = b.task(&admin, Some(from.id), None).await;
        let mid = b.task(&admin, Some(from.id), Some(top.id)).await;
        let leaf = b.task(&admin, Some(from.id), Some(mid.id)).await;
        assert_eq!(leaf.parent_name.as_deref(), Some(mid.name.as_str()), "{n}");
        assert_eq!(leaf.created_at, NOW, "{n}");
        assert_eq!(
            s.task_lineage(WS, leaf.id).await.unwrap(),
            vec![leaf.id, mid.id, top.id],
            "{n}"
        );
        assert_eq!(s.task_lineage(WS, top.id).await.unwrap(), vec![top.id]);
        let (t, p) = s.task_with_project(WS, mid.id).await.unwrap().unwrap();
        assert_eq!((t, p.map(|p| p.id)), (mid.clone(), Some(from.id)), "{n}");
        let single = b.task(&admin, None, None).await;
        let (t, p) = s.task_with_project(WS, single.id).await.unwrap().unwrap();
        assert_eq!((t.id, p), (single.id, None), "{n}");
        assert_eq!(s.task_with_project(WS, 999_999).await.unwrap(), None, "{n}");
        assert_eq!(s.task(WS, 999_999).await.unwrap(), None, "{n}");

        // A replacement names the version it read; the team is replaced.
        let mut edit = mid.clone();
        edit.name = "middle".into();
        edit.team = vec![ann.id];
        edit.estimated_time = Some(2.5);
        let mut stale = edit.clone();
        stale.version -= 1;
        assert!(is_version_changed(
            s.save_task(WS, stale, vec![], NOW).await
        ));
        let mid2 = s.save_task(WS, edit, vec![], NOW + 1).await.unwrap();
        assert_eq!(
            (mid2.name.as_str(), mid2.team.clone(), mid2.estimated_time),
            ("middle", vec![ann.id], Some(2.5)),
            "{n}"
        );
        assert!(mid2.version > mid.version, "{n}");
        assert_eq!(
            b.task_now(leaf.id).await.parent_name.as_deref(),
            Some("middle")
        );

        // Moving the middle task moves its sub-task and the activities and files of both,
        // but not its parent.
        let a_mid = b.activity(&admin, &mid2, None).await;
        let a_leaf = b.activity(&admin, &leaf, None).await;
        let f_leaf = b.file(&admin, &a_leaf, "leaf-file").await;
        let mut moved = mid2.clone();
        moved.project_id = Some(to.id);
        moved.parent_id = None;
        let moved = s.save_task(WS, moved, vec![], NOW + 2).await.unwrap();
        assert_eq!(moved.project_id, Some(to.id), "{n}");
        let leaf_after = b.task_now(leaf.id).await;
        assert_eq!(leaf_after.project_id, Some(to.id), "{n}");
        assert!(leaf_after.version > leaf.version, "{n}");
        assert_eq!(b.task_now(top.id).await.project_id, Some(from.id), "{n}");
        for a in [&a_mid, &a_leaf] {
            let after = s.activity(WS, a.id).await.unwrap().unwrap();
            assert_eq!(after.project_id, Some(to.id), "{n}");
            assert!(after.version > a.version, "{n}");
        }
        assert_eq!(
            s.file(WS, f_leaf.id).await.unwrap().unwrap().project_id,
            Some(to.id),
            "{n}"
        );
        assert_eq!(
            s.task_lineage(WS, leaf.id).await.unwrap(),
            vec![leaf.id, mid.id]
        );
        b.assert_kept_counts("after a move").await;

        // Lists carry what the caller's rules ask of the projects their tasks are in when
        // they need it to decide `can_edit`: a user's do; an admin's do not, and none are
        // read.
        for (caller, carried) in [(&ann, vec![to.id]), (&admin, vec![])] {
            let (listed, projects) = s
                .tasks(
                    WS,
                    actor(caller),
                    every(vec![Filter::ProjectId(to.id)]),
                    true,
                )
                .await
                .unwrap();
            assert_eq!(
                (ids(&listed.items, |t| t.id), listed.total),
                (vec![mid.id, leaf.id], 2),
                "{n}"
            );
            assert_eq!(ids(&projects, |p| p.0), carried, "{n}");
            if let Some((_, facts)) = projects.first() {
                let outside = ProjectFacts {
                    hidden: false,
                    is_owner: false,
                    in_team: false,
                };
                assert_eq!(*facts, outside, "{n}");
            }
        }
        let (listed, _) = s
            .tasks(
                WS,
                actor(&admin),
                every(vec![Filter::ParentId(mid.id)]),
                true,
            )
            .await
            .unwrap();
        assert_eq!(ids(&listed.items, |t| t.id), vec![leaf.id], "{n}");
        let (listed, projects) = s
            .tasks(WS, actor(&admin), page(vec![], 0, 2), true)
            .await
            .unwrap();
        assert_eq!((listed.items.len(), listed.total), (2, 4), "{n}");
        assert!(projects.is_empty(), "{n}");
        let (listed, projects) = s
            .tasks(WS, actor(&ann), page(vec![], 0, 2), true)
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 2, "{n}");
        assert!(!projects.is_empty(), "{n}");
        // Each task's team is read when the answer shows it, or when the caller's rules
        // need it (a user's do); an admin's list that does not show teams reads none.
        for (caller, with_team, team) in [
            (&admin, true, vec![ann.id]),
            (&ann, false, vec![ann.id]),
            (&admin, false, vec![]),
        ] {
            let (listed, _) = s
                .tasks(
                    WS,
                    actor(caller),
                    every(vec![Filter::AssignedTo(ann.id)]),
                    with_team,
                )
                .await
                .unwrap();
            assert_eq!(ids(&listed.items, |t| t.id), vec![mid.id], "{n}");
            assert_eq!(listed.items[0].team, team, "{n} {with_team}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_read_with_what_the_rules_ask_of_its_project() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let open = b.project(&admin, "open", &[]).await;
        let mid = b.task(&admin, Some(open.id), None).await;
        let single = b.task(&admin, None, None).await;
        // What the rules ask of the project, for each caller: owner, in its team, hidden.
        let facts = |hidden, is_owner, in_team| ProjectFacts {
            hidden,
            is_owner,
            in_team,
        };
        let of = |id, caller: &User| s.task_with_project_facts(WS, id, caller.id);
        let (t, f) = of(mid.id, &admin).await.unwrap().unwrap();
        assert_eq!(
            (t, f),
            (mid.clone(), Some(facts(false, true, false))),
            "{n}"
        );
        assert_eq!(
            of(mid.id, &ann).await.unwrap().unwrap().1,
            Some(facts(false, false, false)),
            "{n}"
        );
        let mut secret = b.project(&ann, "secret", &[admin.id]).await;
        secret.hidden = true;
        let secret = s.save_project(WS, secret, vec![], NOW).await.unwrap();
        let inside = b.task(&admin, Some(secret.id), None).await;
        assert_eq!(
            of(inside.id, &admin).await.unwrap().unwrap().1,
            Some(facts(true, false, true)),
            "{n}"
        );
        assert_eq!(
            of(inside.id, &ann).await.unwrap().unwrap().1,
            Some(facts(true, true, false)),
            "{n}"
        );
        assert_eq!(of(single.id, &ann).await.unwrap().unwrap().1, None, "{n}");
        assert_eq!(of(999_999, &ann).await.unwrap(), None, "{n}");
        // Another workspace's caller reads nothing of this one's task.
        assert_eq!(
            s.task_with_project_facts(WorkspaceId(WS.0 + 1), mid.id, ann.id)
                .await
                .unwrap(),
            None,
            "{n}"
        );

        // A list of tasks in several projects carries each project's facts once, by id.
        let (listed, projects) = s
            .tasks(WS, actor(&ann), every(vec![]), false)
            .await
            .unwrap();
        assert!(listed.items.iter().any(|t| t.id == inside.id), "{n}");
        assert_eq!(
            projects,
            vec![
                (open.id, facts(false, false, false)),
                (secret.id, facts(true, true, false))
            ],
            "{n}"
        );
    }
}

/// Keyed reads of many requests at once, PostgreSQL carrying them on shared connections
/// with the answers matched in order: each read gets its own rows, also when reads around
/// it are given up half way. Once the connections are cut from the server's side, a read
/// answers `Unavailable` or its own rows, and the reads come back by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_reads_at_once_each_get_their_own_rows() {
    use futures_util::future::join_all;
    use std::time::{Duration, Instant};

    for b in backends().await {
        let n = b.name;
        let (admin, p, _) = b.admin_project_task().await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let mut t = Task::new(if i % 2 == 0 { admin.id } else { ann.id });
            t.name = format!("task {i}");
            t.project_id = Some(p.id);
            t.team = vec![ann.id][..i % 2].to_vec();
            tasks.push(b.store.save_task(WS, t, vec![], NOW).await.unwrap());
        }
        let read_each = |given_up: bool| {
            join_all(tasks.iter().cycle().take(400).enumerate().map(|(i, t)| {
                let s = &b.store;
                async move {
                    let read = s.task_with_project_facts(WS, t.id, ann.id);
                    if given_up && i % 3 == 0 {
                        // Dropped before or after its statements went out.
                        let _ = tokio::time::timeout(Duration::from_micros(50), read).await;
                        return;
                    }
                    let (task, facts) = read.await.unwrap().unwrap();
                    assert_eq!(task, *t, "{n}: read {i}");
                    assert!(!facts.unwrap().is_owner, "{n}: read {i}");
                }
            }))
        };
        read_each(false).await;
        read_each(true).await;
        read_each(false).await;

        let Tables::Postgres(server) = &b.tables else {
            continue;
        };
        let cut = server
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert!(cut >= 1, "{n}: the store's connections were cut");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match b.store.task(WS, tasks[7].id).await {
                Ok(read) => {
                    assert_eq!(read.as_ref(), Some(&tasks[7]), "{n}");
                    break;
                }
                Err(StoreError::Unavailable(_)) => {}
                Err(e) => panic!("{n}: a cut connection answered {e:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "{n}: keyed reads did not come back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        read_each(false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_task_removes_its_subtasks_activities_and_files() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let p = b.project(&admin, "p", &[]).await;
        let top = b.task(&admin, Some(p.id), None).await;
        let mid = b.task(&admin, Some(p.id), Some(top.id)).await;
        let leaf = b.task(&admin, Some(p.id), Some(mid.id)).await;
        let sibling = b.task(&admin, Some(p.id), Some(top.id)).await;
        let mut teamed = leaf.clone();
        teamed.team = vec![ann.id];
        s.save_task(WS, teamed, vec![], NOW).await.unwrap();
        let a_mid = b.activity(&admin, &mid, None).await;
        let a_leaf = b.activity(&admin, &leaf, None).await;
        let a_sibling = b.activity(&admin, &sibling, None).await;
        b.file(&admin, &a_mid, "mid").await;
        b.file(&admin, &a_leaf, "leaf").await;
        b.file(&admin, &a_sibling, "sibling").await;

        assert!(is_version_changed(
            s.remove_task(WS, mid.id, Some(mid.version + 1)).await
        ));
        let mut keys = s
            .remove_task(WS, mid.id, Some(mid.version))
            .await
            .unwrap()
            .unwrap();
        keys.sort();
        assert_eq!(keys, vec!["leaf", "mid"], "{n}");
        assert_eq!(s.remove_task(WS, mid.id, None).await.unwrap(), None, "{n}");
        for id in [mid.id, leaf.id] {
            assert_eq!(s.task(WS, id).await.unwrap(), None, "{n}");
        }
        for id in [a_mid.id, a_leaf.id] {
            assert_eq!(s.activity(WS, id).await.unwrap(), None, "{n}");
        }
        assert_eq!(
            b.rows_where("task_team", &format!("task_id = {}", leaf.id))
                .await,
            0,
            "{n}"
        );
        assert!(s.task(WS, top.id).await.unwrap().is_some(), "{n}");
        assert!(s.task(WS, sibling.id).await.unwrap().is_some(), "{n}");
        assert_eq!(s.storage_keys().await.unwrap(), vec!["sibling".to_owned()]);
        assert_eq!(
            s.task_lineage(WS, leaf.id).await.unwrap(),
            Vec::<i64>::new()
        );
        b.assert_kept_counts("after a task's removal").await;
    }
}

// ---- activities and the roll-ups --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_roll_their_hours_and_progress_up_to_their_task() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let p = b.project(&admin, "p", &[]).await;
        let t = b.task(&admin, Some(p.id), None).await;
        assert_eq!(t.hours_done, 0.0, "{n}");

        // Hours add up, to nine decimals.
        let mut tenths = Vec::new();
        for _ in 0..10 {
            tenths.push(b.activity(&admin, &t, Some(0.1)).await);
        }
        assert_eq!(b.task_now(t.id).await.hours_done, 1.0, "{n}");
        let two = b.activity(&admin, &t, Some(2.0)).await;
        let before = b.task_now(t.id).await;
        assert_eq!(before.hours_done, 3.0, "{n}");
        assert!(before.version > t.version, "{n}: the task changed");
        // No hours: no change.
        b.activity(&admin, &t, None).await;
        assert_eq!(b.task_now(t.id).await.version, before.version, "{n}");

        // Edited hours are summed again; a stale version refuses.
        let mut edit = two.clone();
        edit.hours_done = Some(0.5);
        let mut stale = edit.clone();
        stale.version += 1;
        assert!(is_version_changed(
            s.save_activity(WS, stale, vec![], NOW).await
        ));
        let edited = s.save_activity(WS, edit, vec![], NOW + 1).await.unwrap();
        assert_eq!(edited.hours_done, Some(0.5), "{n}");
        assert!(edited.version > two.version, "{n}");
        assert_eq!(s.activity(WS, two.id).await.unwrap(), Some(edited.clone()));
        assert_eq!(b.task_now(t.id).await.hours_done, 1.5, "{n}");
        // A removed one leaves the sum.
        assert!(is_version_changed(
            s.remove_activity(WS, edited.id, Some(edited.version + 1))
                .await
        ));
        assert_eq!(
            s.remove_activity(WS, edited.id, Some(edited.version))
                .await
                .unwrap(),
            Some(vec![]),
            "{n}"
        );
        assert_eq!(s.remove_activity(WS, edited.id, None).await.unwrap(), None);
        assert_eq!(s.activity(WS, edited.id).await.unwrap(), None, "{n}");
        assert_eq!(b.task_now(t.id).await.hours_done, 1.0, "{n}");

        // The newest progress note sets the task's progress: 100 closes it, less reopens.
        b.progress_note(&admin, &t, 40, NOW).await;
        let at40 = b.task_now(t.id).await;
        assert_eq!((at40.progress, at40.status), (40, STATUS_OPEN), "{n}");
        b.assert_kept_counts("after progress 40").await;
        let full = b.progress_note(&admin, &t, 100, NOW + 10).await;
        let closed = b.task_now(t.id).await;
        assert_eq!((closed.progress, closed.status), (100, STATUS_DONE), "{n}");
        assert!(closed.closed_at.is_some(), "{n}");
        b.assert_kept_counts("after progress 100").await;
        b.assert_counted_totals(&admin, p.id).await;
        // An older note changes nothing: it is not the newest.
        b.progress_note(&admin, &t, 10, NOW - 10).await;
        assert_eq!(b.task_now(t.id).await.progress, 100, "{n}");
        // Removing the newest makes the one before it the newest: reopened.
        s.remove_activity(WS, full.id, None).await.unwrap().unwrap();
        let reopened = b.task_now(t.id).await;
        assert_eq!(
            (reopened.progress, reopened.status),
            (40, STATUS_OPEN),
            "{n}"
        );
        assert_eq!(reopened.closed_at, None, "{n}");
        b.assert_kept_counts("after reopening").await;
        b.assert_counted_totals(&admin, p.id).await;

        // Removing an activity removes its files.
        let with_file = b.activity(&admin, &t, None).await;
        b.file(&admin, &with_file, "attached").await;
        assert_eq!(
            s.remove_activity(WS, with_file.id, None).await.unwrap(),
            Some(vec!["attached".to_owned()]),
            "{n}"
        );
        assert_eq!(
            b.rows_where("files", &format!("activity_id = {}", with_file.id))
                .await,
            0,
            "{n}"
        );

        // Lists: by task, by type, hidden from clients.
        let cid = b.user("cid@example.com", SecurityLevel::Client).await;
        let mut team = s.project(WS, p.id).await.unwrap().unwrap();
        team.team = vec![cid.id];
        s.save_project(WS, team, vec![], NOW).await.unwrap();
        let mut hidden = message(admin.id, &t);
        hidden.hide_from_clients = true;
        let hidden = s.save_activity(WS, hidden, vec![], NOW).await.unwrap();
        let all = s
            .activities(WS, actor(&admin), every(vec![Filter::TaskId(t.id)]))
            .await
            .unwrap();
        assert_eq!(all.total, all.items.len() as i64, "{n}");
        assert!(all.items.iter().any(|a| a.id == hidden.id), "{n}");
        let clients = s
            .activities(WS, actor(&cid), every(vec![Filter::TaskId(t.id)]))
            .await
            .unwrap();
        assert_eq!(clients.total, all.total - 1, "{n}");
        assert!(clients.items.iter().all(|a| a.id != hidden.id), "{n}");
        let notes = s
            .activities(
                WS,
                actor(&admin),
                every(vec![Filter::Type("progress".into())]),
            )
            .await
            .unwrap();
        assert_eq!(notes.total, 2, "{n}");
        let one = s
            .activities(WS, actor(&admin), page(vec![Filter::TaskId(t.id)], 0, 1))
            .await
            .unwrap();
        assert_eq!((one.items.len(), one.total), (1, all.total), "{n}");
    }
}

// ---- files -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_recorded_listed_and_removed() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let ann = b.user("ann@example.com", SecurityLevel::User).await;
        let p = b.project(&admin, "p", &[ann.id]).await;
        let t = b.task(&admin, Some(p.id), None).await;
        let a = b.activity(&admin, &t, None).await;
        let other = b.activity(&admin, &t, None).await;
        let f1 = b.file(&admin, &a, "k1").await;
        assert!(f1.id > 0, "{n}");
        assert_eq!(f1.created_at, NOW, "{n}");
        assert!(f1.on_message, "{n}");
        assert_eq!(s.file(WS, f1.id).await.unwrap(), Some(f1.clone()), "{n}");
        assert_eq!(s.file(WS, 999_999).await.unwrap(), None, "{n}");

        // Several at once: all recorded.
        let template = FileMeta {
            storage_key: "k2".into(),
            name: "two.txt".into(),
            ..f1.clone()
        };
        let added = s
            .add_files(
                WS,
                vec![
                    FileMeta {
                        id: 0,
                        ..template.clone()
                    },
                    FileMeta {
                        id: 0,
                        activity_id: other.id,
                        storage_key: "k3".into(),
                        ..template
                    },
                ],
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(added.len(), 2, "{n}");
        assert_eq!(
            ids(&s.files_of_activities(WS, vec![a.id]).await.unwrap(), |f| f
                .id),
            vec![f1.id, added[0].id],
            "{n}"
        );
        assert_eq!(
            s.files_of_activities(WS, vec![a.id, other.id])
                .await
                .unwrap()
                .len(),
            3,
            "{n}"
        );
        let mut keys = s.storage_keys().await.unwrap();
        keys.sort();
        assert_eq!(keys, vec!["k1", "k2", "k3"], "{n}");

        let listed = s
            .files(WS, actor(&ann), every(vec![Filter::ActivityId(a.id)]))
            .await
            .unwrap();
        assert_eq!(
            (ids(&listed.items, |f| f.id), listed.total),
            (vec![f1.id, added[0].id], 2),
            "{n}"
        );
        let listed = s
            .files(WS, actor(&admin), page(vec![Filter::ProjectId(p.id)], 0, 1))
            .await
            .unwrap();
        assert_eq!((listed.items.len(), listed.total), (1, 3), "{n}");

        assert_eq!(
            s.remove_file(WS, f1.id).await.unwrap(),
            Some("k1".to_owned()),
            "{n}"
        );
        assert_eq!(s.remove_file(WS, f1.id).await.unwrap(), None, "{n}");
        assert_eq!(s.file(WS, f1.id).await.unwrap(), None, "{n}");
    }
}

// ---- kept counts -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_task_counts_follow_every_change_of_the_tasks() {
    for b in backends().await {
        let s = &b.store;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        let p1 = b.project(&admin, "one", &[]).await;
        let p2 = b.project(&admin, "two", &[]).await;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let project = if i % 3 == 2 { None } else { Some(p1.id) };
            tasks.push(b.task(&admin, project, None).await);
        }
        let sub = b.task(&admin, Some(p1.id), Some(tasks[0].id)).await;
        b.assert_kept_counts("after adds").await;

        // Teams and owners: a member who also owns the task counts once; owners change
        // to a member and to someone outside the team; members leave and join.
        let ann = b.user("ann@example.com", SecurityLevel::External).await;
        let bob = b.user("bob@example.com", SecurityLevel::User).await;
        for (i, owner, team) in [
            (0, admin.id, vec![ann.id, bob.id]),
            (1, ann.id, vec![ann.id, admin.id]),
            (3, admin.id, vec![bob.id]),
            (5, bob.id, vec![]),
        ] {
            let mut t = b.task_now(tasks[i].id).await;
            t.owner_id = owner;
            t.team = team;
            s.save_task(WS, t, vec![], NOW).await.unwrap();
        }
        let mut t = b.task_now(sub.id).await;
        t.team = vec![ann.id];
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        b.assert_kept_counts("after teams and owners").await;
        let mut t = b.task_now(tasks[1].id).await;
        t.owner_id = bob.id;
        t.team = vec![admin.id];
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        let mut t = b.task_now(tasks[3].id).await;
        t.owner_id = bob.id;
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        b.assert_kept_counts("after owners moved into and out of teams")
            .await;

        // Status and hidden changes.
        for (i, status, hidden) in [
            (0, STATUS_DONE, false),
            (1, STATUS_ON_HOLD, true),
            (2, STATUS_DONE, true),
        ] {
            let mut t = b.task_now(tasks[i].id).await;
            t.status = status;
            t.hidden = hidden;
            s.save_task(WS, t, vec![], NOW).await.unwrap();
        }
        b.assert_kept_counts("after status and hidden changes")
            .await;
        // An edit that changes neither.
        let mut t = b.task_now(tasks[3].id).await;
        t.name = "renamed".into();
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        b.assert_kept_counts("after a rename").await;

        // Moves: to another project (with a sub-task), out of any, into one.
        let mut t = b.task_now(tasks[0].id).await;
        t.project_id = Some(p2.id);
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        assert_eq!(b.task_now(sub.id).await.project_id, Some(p2.id));
        let mut t = b.task_now(tasks[1].id).await;
        t.project_id = None;
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        let mut t = b.task_now(tasks[2].id).await;
        t.project_id = Some(p2.id);
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        b.assert_kept_counts("after moves").await;
        // An admin's totals from `task_counts`; an external's and a user's outside the
        // projects' teams from `own_task_counts` (the user's not hidden tasks from both).
        for p in [p1.id, p2.id] {
            for caller in [&admin, &ann, &bob] {
                b.assert_counted_totals(caller, p).await;
            }
        }
        // The kept tables hold the tasks of no project (there are some) under project 0,
        // which a project filter of 0 does not name: no task, and a total of 0 also when
        // it is counted apart (an empty window).
        assert!(b.rows_where("tasks", "project_id IS NULL").await > 0);
        for caller in [&admin, &ann, &bob] {
            let q = ListQuery {
                filters: vec![Filter::ProjectId(0)],
                offset: 0,
                count: Some(0),
            };
            let (page, _) = s.tasks(WS, actor(caller), q, true).await.unwrap();
            assert_eq!(page.total, 0, "{}: project 0 for {}", b.name, caller.email);
        }

        // Progress notes close and reopen.
        b.progress_note(&admin, &b.task_now(tasks[4].id).await, 100, NOW)
            .await;
        b.assert_kept_counts("after a close by progress").await;

        // A removed user leaves every team.
        let cid = b.user("cid@example.com", SecurityLevel::User).await;
        let mut t = b.task_now(tasks[4].id).await;
        t.team = vec![cid.id, ann.id];
        s.save_task(WS, t, vec![], NOW).await.unwrap();
        assert!(s.remove_user(WS, cid.id, None, NOW).await.unwrap());
        b.assert_kept_counts("after a user's removal").await;

        // Removals: a task with its sub-task (both with teams), then a project with its
        // tasks.
        s.remove_task(WS, tasks[0].id, None).await.unwrap().unwrap();
        b.assert_kept_counts("after a task's removal").await;
        s.remove_project(WS, p1.id, None).await.unwrap().unwrap();
        b.assert_kept_counts("after a project's removal").await;
        for caller in [&admin, &ann, &bob] {
            b.assert_counted_totals(caller, p2.id).await;
            b.assert_counted_totals(caller, p1.id).await;
        }
    }
}

/// `n` tasks of project `p` written straight into PostgreSQL, as plans need many (the
/// triggers keep their counts): task `i` (from 1) owned by the SQL `owner` and hidden by
/// `hidden`, both over `i`; then `team`'s user in the team of the project's tasks that
/// meet its condition.
async fn insert_tasks(
    client: &tokio_postgres::Client,
    p: i64,
    n: i64,
    owner: &str,
    hidden: &str,
    (member, which): (i64, &str),
) {
    client
        .batch_execute(&format!(
            "INSERT INTO tasks (workspace_id, project_id, name, owner_id, priority, progress, \
             status, hidden, flag, notify_project_team, notify_task_team, notify_client, \
             created_at, updated_at) SELECT {ws}, {p}, 'task ' || i, {owner}, 2, 0, 10, \
             {hidden}, 0, 0, 0, 0, 0, 0 FROM generate_series(1, {n}) i; \
             INSERT INTO task_team (task_id, user_id) SELECT id, {member} FROM tasks \
             WHERE project_id = {p} AND {which}",
            ws = WS.0,
        ))
        .await
        .unwrap();
}

/// PostgreSQL's plan of an external's page: the set of their own tasks is an array, so
/// the primary key's index takes its ids in order and the page stops at its 25th task,
/// where `IN` looked up every one and sorted them (1,000 at 1,000,000 tasks: 4.9 ms
/// against 0.37).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_externals_page_on_postgres_stops_at_its_last_task() {
    use vesper::store::driver::Dialect;
    use vesper::store::sql::{list_sql, task_conditions, Bindings, Param, ProjectFacts};
    let Some((b, _)) = postgres().await else {
        return;
    };
    let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
    let external = b.user("ext@example.com", SecurityLevel::External).await;
    let p = b.project(&admin, "big", &[]).await;
    let Tables::Postgres(client) = &b.tables else {
        unreachable!("a PostgreSQL backend")
    };
    // 20,000 tasks; the external is in the team of every 20th (1,000).
    let owner = admin.id.to_string();
    insert_tasks(
        client,
        p.id,
        20_000,
        &owner,
        "0",
        (external.id, "id % 20 = 0"),
    )
    .await;
    // One at a time: VACUUM runs outside a transaction.
    for sql in ["VACUUM ANALYZE tasks", "VACUUM ANALYZE task_team"] {
        client.batch_execute(sql).await.unwrap();
    }
    let filters = [Filter::ProjectId(p.id), Filter::Active];
    let outside = Some(ProjectFacts {
        visible: true,
        in_team: false,
    });
    let c = task_conditions(&actor(&external), &filters, outside, Dialect::Postgres).unwrap();
    let columns = vesper::store::tasks::COLUMN_LIST.text(Dialect::Postgres);
    let page = list_sql("tasks t", columns, &c, false, "LIMIT 25").page;
    let bindings = Bindings {
        ws: WS,
        caller: external.id,
        filters: &filters,
    };
    let binds: Vec<_> = c.count_values().iter().chain(&c.values).cloned().collect();
    let values: Vec<i64> = bindings
        .values(&binds)
        .unwrap()
        .into_iter()
        .map(|v| match v {
            Param::Int(v) => v,
            Param::Text(t) => panic!("a text value {t}"),
        })
        .collect();
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let sql = Dialect::Postgres.numbered(page);
    let rows = client.query(&sql, &params).await.unwrap();
    assert_eq!(rows.len(), 25);
    let total: i64 = rows[0].get(rows[0].len() - 1);
    assert_eq!(total, 1_000, "the external's total");
    let plan: Vec<String> = client
        .query(
            &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"),
            &params,
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let plan = plan.join("\n");
    assert!(!plan.contains("Sort"), "a sort:\n{plan}");
    assert!(
        plan.contains("Index Scan using tasks_pkey on tasks t (actual rows=25 loops=1)")
            && plan.contains("Index Cond: (id = ANY ("),
        "not the 25 tasks from the primary key:\n{plan}"
    );
    // The generic plan the list runs (`GENERIC_PLANS`): every task here has one owner, so
    // PostgreSQL guesses the external's owned tasks at every row. Left to itself it read
    // the whole table for them; it must take them from the owner index, and the page's 25
    // from the primary key.
    assert!(c.plan_fixed, "the external's page keeps one plan");
    let literal: Vec<String> = values.iter().map(i64::to_string).collect();
    let types = vec!["bigint"; values.len()].join(", ");
    // Its guessed cost is below PostgreSQL's threshold for compiling a statement at this
    // size (at 1,000,000 tasks it is above): the threshold is lowered to match.
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL jit_above_cost = 0; {}; PREPARE page ({types}) AS {sql}",
            vesper::store::postgres::GENERIC_PLANS
        ))
        .await
        .unwrap();
    let generic: Vec<String> = client
        .query(
            &format!(
                // With its costs: PostgreSQL shows what it compiled only then.
                "EXPLAIN (ANALYZE, TIMING OFF) EXECUTE page ({})",
                literal.join(", ")
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    client.batch_execute("COMMIT").await.unwrap();
    let generic = generic.join("\n");
    assert!(
        !generic.contains("Sort") && !generic.contains("Seq Scan") && !generic.contains("JIT"),
        "a sort, a read of a whole table or a compilation:\n{generic}"
    );
    let page_from_the_key = generic.lines().any(|l| {
        l.contains("Index Scan using tasks_pkey on tasks t ")
            && l.contains("(actual rows=25 loops=1)")
    });
    assert!(
        page_from_the_key && generic.contains("Index Only Scan using tasks_owner on tasks x"),
        "not the owned tasks from their index and the page from the primary key:\n{generic}"
    );
}

/// A user's page of one project whose team they are not in is the project's tasks in id
/// order, each tested against the rule, and an external's their own tasks: PostgreSQL
/// runs their generic plans, for the list's snapshot alone, where it planned them at each
/// run. A later page, with placeholders in its window, and every statement after the
/// snapshot are still planned for their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_page_on_postgres_runs_its_generic_plan_in_its_snapshot_alone() {
    use vesper::store::postgres::Pg;
    let Some((b, url)) = postgres().await else {
        return;
    };
    let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
    let user = b.user("user@example.com", SecurityLevel::User).await;
    let external = b.user("ext@example.com", SecurityLevel::External).await;
    let p = b.project(&admin, "listed", &[]).await;
    let Tables::Postgres(client) = &b.tables else {
        unreachable!("a PostgreSQL backend")
    };
    // 100 tasks; every tenth hidden and owned by the user, every fifth in the
    // external's team.
    let owner = format!(
        "CASE WHEN i % 10 = 0 THEN {} ELSE {} END",
        user.id, admin.id
    );
    let hidden = "CASE WHEN i % 10 = 0 THEN 1 ELSE 0 END";
    insert_tasks(
        client,
        p.id,
        100,
        &owner,
        hidden,
        (external.id, "id % 5 = 0"),
    )
    .await;
    let manager = deadpool_postgres::Manager::new(url.parse().unwrap(), tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(1)
        .build()
        .unwrap();
    let conn = pool.get().await.unwrap();
    let q = page(vec![Filter::ProjectId(p.id), Filter::Active], 0, 25);
    // The plans each kind of page statement has run with on this connection.
    let plans = |marker: &'static str| {
        let conn = &conn;
        async move {
            let row = conn
                .query_one(
                    "SELECT COALESCE(SUM(generic_plans), 0)::BIGINT, \
                     COALESCE(SUM(custom_plans), 0)::BIGINT FROM pg_prepared_statements \
                     WHERE statement LIKE '%ORDER BY t.id LIMIT 25' AND statement LIKE $1",
                    &[&format!("%{marker}%")],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        }
    };
    let snapshot = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    let list = |who: &User| {
        let (conn, q, who) = (&conn, &q, actor(who));
        async move {
            conn.batch_execute(snapshot).await.unwrap();
            let (page, _) = vesper::store::tasks::list(&Pg::new(conn), WS, &who, q, false)
                .await
                .unwrap();
            conn.batch_execute("COMMIT").await.unwrap();
            page
        }
    };
    // The store runs such a list in a snapshot (`run_list!`), as this test does.
    assert!(vesper::store::tasks::list_reads_several(&actor(&user), &q));
    let show = |setting: &'static str| {
        let conn = &conn;
        async move {
            let row = conn
                .query_one(&format!("SHOW {setting}"), &[])
                .await
                .unwrap();
            row.get::<_, String>(0)
        }
    };
    let jit = show("jit").await;
    // Twice: the second time the page is prepared already, and the settings must still
    // go out ahead of it.
    for _ in 0..2 {
        let users = list(&user).await;
        // Not hidden, or hidden and the user's own: every task of the project.
        assert_eq!(users.total, 100, "the user's total");
        assert_eq!(users.items.len(), 25);
    }
    assert_eq!(
        plans("t.hidden = 0 OR").await,
        (2, 0),
        "the user's page: (generic, custom) plans"
    );
    for (setting, default) in [
        ("plan_cache_mode", "auto"),
        ("enable_seqscan", "on"),
        ("enable_bitmapscan", "on"),
        ("jit", jit.as_str()),
    ] {
        assert_eq!(
            show(setting).await,
            default,
            "the snapshot's {setting} outlived it"
        );
    }
    // The external's page, of their own tasks, the same way.
    let externals = list(&external).await;
    assert_eq!(externals.total, 20, "the external's total");
    assert_eq!(
        plans("ANY(ARRAY(").await,
        (1, 0),
        "the external's page: (generic, custom) plans"
    );
    // A page past the first has placeholders in its window, which a generic plan would
    // guess at: it is planned for its values.
    conn.batch_execute(snapshot).await.unwrap();
    let later = page(vec![Filter::ProjectId(p.id), Filter::Active], 25, 25);
    let (second, _) = vesper::store::tasks::list(&Pg::new(&conn), WS, &actor(&user), &later, false)
        .await
        .unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    assert_eq!(second.items.len(), 25);
    let row = conn
        .query_one(
            "SELECT COALESCE(SUM(generic_plans), 0)::BIGINT, \
             COALESCE(SUM(custom_plans), 0)::BIGINT FROM pg_prepared_statements \
             WHERE statement LIKE 'SELECT t.id%LIMIT $% OFFSET $%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (0, 1),
        "a later page: (generic, custom) plans"
    );
}

// ---- the outbox --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_leases_sends_retries_and_gives_up() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let admin = b.user("admin@example.com", SecurityLevel::Admin).await;
        // Mail queues with the change that causes it, whatever the change.
        let mut p = Project::new(admin.id);
        p.name = "mailing".into();
        let p = s
            .save_project(
                WS,
                p,
                vec![mail("a@example.com"), mail("b@example.com")],
                NOW,
            )
            .await
            .unwrap();
        let mut t = Task::new(admin.id);
        t.project_id = Some(p.id);
        let t = s
            .save_task(WS, t, vec![mail("c@example.com")], NOW)
            .await
            .unwrap();
        s.save_activity(WS, message(admin.id, &t), vec![mail("d@example.com")], NOW)
            .await
            .unwrap();
        // A refused write queues nothing.
        let mut stale = t.clone();
        stale.version += 1;
        assert!(is_version_changed(
            s.save_task(WS, stale, vec![mail("never@example.com")], NOW)
                .await
        ));

        // Claims take the due mails in order, up to the limit, for the lease.
        let first = s.claim_mail(NOW, 60, 3).await.unwrap();
        assert_eq!(
            first
                .iter()
                .map(|m| m.mail.recipient.as_str())
                .collect::<Vec<_>>(),
            vec!["a@example.com", "b@example.com", "c@example.com"],
            "{n}"
        );
        assert_eq!(first[0].mail, mail("a@example.com"), "{n}");
        assert!(first.iter().all(|m| m.attempts == 0), "{n}");
        let second = s.claim_mail(NOW + 1, 60, 10).await.unwrap();
        assert_eq!(
            second.len(),
            1,
            "{n}: the leased ones are not claimed again"
        );
        assert_eq!(second[0].mail.recipient, "d@example.com", "{n}");
        assert!(
            s.claim_mail(NOW + 59, 60, 10).await.unwrap().is_empty(),
            "{n}"
        );

        // Sent: never again. Failed with a retry: due again then, counted. Failed without
        // one: given up.
        s.mail_sent(first[0].id, NOW + 2).await.unwrap();
        s.mail_failed(first[1].id, NOW + 2, "busy".into(), Some(NOW + 500))
            .await
            .unwrap();
        s.mail_failed(first[2].id, NOW + 2, "no such mailbox".into(), None)
            .await
            .unwrap();
        // The lease of the fourth ran out: claimed again.
        let expired = s.claim_mail(NOW + 61, 60, 10).await.unwrap();
        assert_eq!(
            expired.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![second[0].id],
            "{n}"
        );
        assert_eq!(expired[0].attempts, 0, "{n}");
        s.mail_sent(second[0].id, NOW + 62).await.unwrap();
        let retried = s.claim_mail(NOW + 500, 60, 10).await.unwrap();
        assert_eq!(
            retried
                .iter()
                .map(|m| (m.id, m.attempts))
                .collect::<Vec<_>>(),
            vec![(first[1].id, 1)],
            "{n}"
        );
        s.mail_failed(first[1].id, NOW + 501, "busy".into(), None)
            .await
            .unwrap();
        assert!(s
            .claim_mail(NOW + 100_000, 60, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            b.rows_where("outbox", "sent_at IS NOT NULL").await,
            2,
            "{n}"
        );
        assert_eq!(
            b.rows_where("outbox", "failed_at IS NOT NULL AND attempts = 2")
                .await,
            1,
            "{n}"
        );
        assert_eq!(
            b.rows_where("outbox", "failed_at IS NOT NULL AND attempts = 1")
                .await,
            1,
            "{n}"
        );
        assert_eq!(b.rows_where("outbox", "1 = 1").await, 4, "{n}");
    }
}

// ---- a write's last statement ------------------------------------------------------------

impl Tables {
    /// Runs statements on the side door (DDL, locks).
    async fn execute(&self, sql: &str) {
        match self {
            Tables::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Tables::Postgres(client) => client.batch_execute(sql).await.unwrap(),
        }
    }
}

impl Backend {
    /// From now on the database refuses to raise a task's hours above `most`.
    async fn refuse_hours_above(&self, most: i64) {
        self.tables
            .execute(&match &self.tables {
                Tables::Sqlite(_) => format!(
                    "CREATE TRIGGER refuse_hours BEFORE UPDATE OF hours_done ON tasks \
                     WHEN NEW.hours_done > {most} BEGIN SELECT RAISE(ABORT, 'refused'); END;"
                ),
                Tables::Postgres(_) => format!(
                    "CREATE FUNCTION refuse_hours() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
                     CREATE TRIGGER refuse_hours BEFORE UPDATE ON tasks FOR EACH ROW \
                     WHEN (NEW.hours_done > {most}) EXECUTE FUNCTION refuse_hours();"
                ),
            })
            .await;
    }
}

/// The hours roll-up runs last, on PostgreSQL in the COMMIT's round trip; when it fails,
/// the write fails and nothing of it stays: not the activity, not its mail, not the hours.
#[tokio::test]
async fn a_write_whose_roll_up_fails_fails_whole() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let (admin, _, t) = b.admin_project_task().await;
        b.activity(&admin, &t, Some(1.0)).await;
        let before = b.task_now(t.id).await;
        b.refuse_hours_above(1000).await;

        let mut big = message(admin.id, &t);
        big.hours_done = Some(5000.0);
        let refused = s
            .save_activity(WS, big, vec![mail("refused@example.com")], NOW)
            .await;
        assert!(refused.is_err(), "{n}: {refused:?}");
        let task = &format!("task_id = {}", t.id);
        assert_eq!(b.rows_where("activities", task).await, 1, "{n}");
        assert_eq!(b.rows_where("outbox", "1 = 1").await, 0, "{n}");
        let after = b.task_now(t.id).await;
        assert_eq!(
            (after.hours_done, after.version),
            (before.hours_done, before.version),
            "{n}"
        );

        // The connection that ran it serves the next write, outside any transaction.
        b.activity(&admin, &t, Some(2.0)).await;
        assert_eq!(b.task_now(t.id).await.hours_done, 3.0, "{n}");
        assert_eq!(b.rows_where("activities", task).await, 2, "{n}");
    }
}

/// A write abandoned before its commit (the request went away) leaves nothing, and its
/// connection is not handed to the next write still inside the transaction, where that
/// write's COMMIT would commit it too.
#[tokio::test]
async fn a_write_abandoned_before_its_commit_leaves_nothing() {
    let Some((b, url)) = postgres().await else {
        return;
    };
    let (admin, _, t) = b.admin_project_task().await;
    let a = b.activity(&admin, &t, None).await;

    // Held elsewhere: the edit queues its mail, then waits for the activity's row.
    let holder = hold(&url, "activities", a.id, "UPDATE").await;
    let mut edit = a.clone();
    edit.text = Some("abandoned".into());
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        b.store
            .save_activity(WS, edit, vec![mail("abandoned@example.com")], NOW),
    )
    .await;
    assert!(abandoned.is_err(), "the edit waited: {abandoned:?}");
    holder.batch_execute("ROLLBACK").await.unwrap();

    // Writes enough to go through every pooled connection.
    for _ in 0..20 {
        b.store
            .save_activity(
                WS,
                message(admin.id, &t),
                vec![mail("next@example.com")],
                NOW,
            )
            .await
            .unwrap();
    }
    assert_eq!(b.rows_where("outbox", "1 = 1").await, 20);
    let now = b.store.activity(WS, a.id).await.unwrap().unwrap();
    assert_eq!(now.text, a.text);
}

/// Adds sent at once to one task (PostgreSQL gathers them into shared transactions) are
/// each answered with their own outcome: all saved, hours summed exactly, one mail each;
/// and when one of them is refused, only that one, with nothing of it stored.
#[tokio::test]
async fn adds_sent_at_once_to_one_task_each_get_their_own_outcome() {
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        let (admin, _, t) = b.admin_project_task().await;
        let (admin_id, task) = (admin.id, &t);
        let at_once = |round: &'static str, hours: fn(usize) -> f64| {
            futures_util::future::join_all((0..40).map(move |i| {
                let mut a = message(admin_id, task);
                a.hours_done = Some(hours(i));
                a.text = Some(format!("{round} {i}"));
                let to = format!("{round}{i}@example.com");
                async move { s.save_activity(WS, a, vec![mail(&to)], NOW).await }
            }))
        };

        let saved = at_once("first", |_| 0.25).await;
        let ids: std::collections::BTreeSet<i64> =
            saved.iter().map(|r| r.as_ref().unwrap().id).collect();
        assert_eq!(ids.len(), 40, "{n}");
        // Each add is answered with its own row, as stored.
        for (i, r) in saved.iter().enumerate() {
            let a = r.as_ref().unwrap();
            assert_eq!(
                a.text.as_deref(),
                Some(format!("first {i}").as_str()),
                "{n}"
            );
            assert_eq!(s.activity(WS, a.id).await.unwrap().as_ref(), Some(a), "{n}");
        }
        assert_eq!(b.task_now(t.id).await.hours_done, 10.0, "{n}");
        assert_eq!(b.rows_where("outbox", "1 = 1").await, 40, "{n}");
        if let Tables::Postgres(_) = b.tables {
            // Gathered: fewer transactions than adds.
            let transactions = b
                .tables
                .count("SELECT CAST(COUNT(DISTINCT xmin::text) AS BIGINT) FROM activities")
                .await;
            assert!(transactions < 40, "{n}: {transactions} transactions");
        }

        b.refuse_hours_above(100).await;
        let saved = at_once("second", |i| if i == 17 { 500.0 } else { 0.5 }).await;
        for (i, r) in saved.iter().enumerate() {
            assert_eq!(r.is_err(), i == 17, "{n}: add {i}: {r:?}");
        }
        assert_eq!(b.task_now(t.id).await.hours_done, 10.0 + 39.0 * 0.5, "{n}");
        assert_eq!(b.rows_where("activities", "1 = 1").await, 79, "{n}");
        assert_eq!(b.rows_where("outbox", "1 = 1").await, 79, "{n}");
        let refused = b
            .tables
            .count("SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE recipient = 'second17@example.com'")
            .await;
        assert_eq!(refused, 0, "{n}");
    }
}

/// Adds sent at once to several tasks, some with hours and some without (PostgreSQL
/// gathers them and cuts each batch into `INSERT`s of several sizes): each is answered
/// with its own row, and each task's hours are the exact sum of its own adds'.
#[tokio::test]
async fn adds_sent_at_once_to_many_tasks_each_roll_up_into_their_own() {
    for b in backends().await {
        let n = b.name;
        let (admin, p, _) = b.admin_project_task().await;
        let mut tasks = Vec::new();
        for _ in 0..7 {
            tasks.push(b.task(&admin, Some(p.id), None).await);
        }
        let hours = |i: usize| (!i.is_multiple_of(3)).then_some(0.25 * (i % 5) as f64);
        let saved = futures_util::future::join_all((0..101).map(|i| {
            let mut a = message(admin.id, &tasks[i % 7]);
            a.hours_done = hours(i);
            a.text = Some(format!("add {i}"));
            b.store.save_activity(WS, a, vec![], NOW)
        }))
        .await;
        for (i, r) in saved.iter().enumerate() {
            let a = r.as_ref().unwrap();
            assert_eq!(a.text.as_deref(), Some(format!("add {i}").as_str()), "{n}");
            assert_eq!(a.task_id, Some(tasks[i % 7].id), "{n}: add {i}");
            assert_eq!(a.hours_done, hours(i), "{n}: add {i}");
        }
        for (k, t) in tasks.iter().enumerate() {
            let sum: f64 = (0..101).filter(|i| i % 7 == k).filter_map(hours).sum();
            let now = b.task_now(t.id).await;
            assert_eq!(now.hours_done, sum, "{n}: task {k}");
            // One version for each add that changed its hours, however they were
            // gathered.
            let changed = (0..101)
                .filter(|i| i % 7 == k)
                .filter(|&i| hours(i).is_some_and(|h| h != 0.0))
                .count() as i64;
            assert_eq!(now.version, t.version + changed, "{n}: task {k}");
        }
        assert_eq!(b.rows_where("activities", "1 = 1").await, 101, "{n}");
    }
}

/// Hours with more than nine decimals, sent at once with others to one task, are rounded
/// after each add as a lone add's are (0.0000000007 adds 0.000000001), not after their sum:
/// PostgreSQL adds a batch's hours on the nine-decimal grid to their task in one sum, and
/// those off it one at a time.
#[tokio::test]
async fn hours_off_the_nine_decimal_grid_added_at_once_are_rounded_after_each_add() {
    for b in backends().await {
        let n = b.name;
        let (admin, _, t) = b.admin_project_task().await;
        let hours = |i: usize| {
            if i.is_multiple_of(2) {
                0.25
            } else {
                0.0000000007
            }
        };
        let saved = futures_util::future::join_all((0..40).map(|i| {
            let mut a = message(admin.id, &t);
            a.hours_done = Some(hours(i));
            b.store.save_activity(WS, a, vec![], NOW)
        }))
        .await;
        for r in &saved {
            assert!(r.is_ok(), "{n}: {r:?}");
        }
        let now = b.task_now(t.id).await;
        assert_eq!(now.hours_done, 20.0 * 0.25 + 20.0 * 0.000000001, "{n}");
        assert_eq!(now.version, t.version + 40, "{n}");
    }
}

/// On PostgreSQL an activity's task is checked at COMMIT (migration 0009): by then the
/// transaction holds the rows its roll-ups write, and the check's share lock is its own,
/// not a MultiXact with another batch's. A row naming a missing task is still refused,
/// at COMMIT, and nothing of it stays.
#[tokio::test]
async fn an_activitys_task_is_checked_at_commit_and_still_refused() {
    let Some((b, url)) = postgres().await else {
        return;
    };
    let (admin, p, _) = b.admin_project_task().await;
    let client = pg_client(&url).await;
    client.batch_execute("BEGIN").await.unwrap();
    let insert = format!(
        "INSERT INTO activities (workspace_id, project_id, task_id, type, owner_id, \
         hide_from_clients, date, notify_project_team, notify_task_team, notify_client, \
         created_at, updated_at) VALUES ({}, {}, 999999, 'msg', {}, 0, 1, 0, 0, 0, 1, 1)",
        WS.0, p.id, admin.id
    );
    client
        .batch_execute(&insert)
        .await
        .expect("the task is not checked at the INSERT");
    let refused = client.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION),
        "{refused}"
    );
    assert_eq!(b.rows_where("activities", "1 = 1").await, 0);
}

/// A batch of adds that waits too long for a lock (here a task row held elsewhere; in
/// life a removal cascading over its tasks) gives way: its adds run again alone and are
/// each saved once, when the lock is let go.
#[tokio::test]
async fn a_batch_that_waits_too_long_for_a_lock_gives_way_to_its_adds_alone() {
    let Some((b, url)) = postgres().await else {
        return;
    };
    let (admin, _, t) = b.admin_project_task().await;

    let holder = hold(&url, "tasks", t.id, "UPDATE").await;
    let adds = futures_util::future::join_all((0..10).map(|_| {
        let mut a = message(admin.id, &t);
        a.hours_done = Some(1.0);
        b.store.save_activity(WS, a, vec![], NOW)
    }));
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        holder.batch_execute("ROLLBACK").await.unwrap();
    };
    let (saved, ()) = tokio::join!(adds, release);
    for r in &saved {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(b.task_now(t.id).await.hours_done, 10.0);
    assert_eq!(b.rows_where("activities", "1 = 1").await, 10);
}

/// An edit's hours are summed again after every other write holding the task has
/// committed: one that waited for the task's row does not write back a sum read before.
#[tokio::test]
async fn an_edit_sums_hours_after_the_writes_it_waited_for() {
    let Some((b, url)) = postgres().await else {
        return;
    };
    let (admin, _, t) = b.admin_project_task().await;
    let edited = b.activity(&admin, &t, Some(1.0)).await;
    let other = b.activity(&admin, &t, Some(1.0)).await;

    // Another writer holds the task as an add's roll-up does, and changes the other
    // activity's hours.
    let holder = hold(&url, "tasks", t.id, "NO KEY UPDATE").await;
    let mut edit = edited.clone();
    edit.hours_done = Some(2.0);
    let save = b.store.save_activity(WS, edit, vec![], NOW);
    let other_writer = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        holder
            .batch_execute(&format!(
                "UPDATE activities SET hours_done = 5 WHERE id = {}; \
                 UPDATE tasks SET hours_done = 6 WHERE id = {}; COMMIT",
                other.id, t.id
            ))
            .await
            .unwrap();
    };
    let (saved, ()) = tokio::join!(save, other_writer);
    saved.unwrap();
    assert_eq!(b.task_now(t.id).await.hours_done, 7.0);
}

/// A progress note reads the newest note after every other write holding the task has
/// committed: one that waited for the task's row does not write back a progress read
/// before a newer note landed.
#[tokio::test]
async fn a_progress_note_reads_the_newest_after_the_writes_it_waited_for() {
    let Some((b, url)) = postgres().await else {
        return;
    };
    let (admin, p, t) = b.admin_project_task().await;

    // Another writer holds the task as an add's roll-up does, and adds a newer note.
    let holder = hold(&url, "tasks", t.id, "NO KEY UPDATE").await;
    let mut older = message(admin.id, &t);
    older.kind = ActivityType::Progress;
    older.progress = Some(10);
    older.date = NOW - 100;
    let save = b.store.save_activity(WS, older, vec![], NOW);
    let other_writer = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        holder
            .batch_execute(&format!(
                "INSERT INTO activities (workspace_id, project_id, task_id, type, text, \
                 owner_id, progress, hide_from_clients, date, notify_project_team, \
                 notify_task_team, notify_client, created_at, updated_at) \
                 VALUES ({ws}, {p}, {t}, 'progress', 'newer', {o}, 60, 0, {NOW}, 0, 0, 0, \
                 {NOW}, {NOW}); UPDATE tasks SET progress = 60 WHERE id = {t}; COMMIT",
                ws = WS.0,
                p = p.id,
                t = t.id,
                o = admin.id,
            ))
            .await
            .unwrap();
    };
    let (saved, ()) = tokio::join!(save, other_writer);
    saved.unwrap();
    assert_eq!(b.task_now(t.id).await.progress, 60);
}
