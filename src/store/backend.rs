//! The storage traits (all but sessions', which only SQLite caches) implemented once for
//! both backends: each method names the shared operation it runs and how it runs. Tokens
//! are never cached: each look-up reads the token and its user as they are now.
//!
//! A backend invokes [`impl_store!`] after defining its runners, each taking
//! `(self, db => work)` and running `work`, shared code over `db`:
//! - `run_read!`: a read;
//! - `run_keyed_read!`: a read of rows by their keys, of bounded cost (PostgreSQL runs
//!   it on a connection shared with other requests' keyed reads);
//! - `run_list!`: reads that must see one snapshot (a task list that reads its
//!   project's facts before its page);
//! - `run_write!`: a write of several statements, in one transaction;
//! - `run_write_one!`: a write of one statement;
//! - `run_activity_save!`: an activity's save, `(self, ws, activity, mail, now)`;
//! - `run_write_users!`: a write that changes users (cached sessions carry them).

/// Implements the storage traits for `$backend` over its runners.
macro_rules! impl_store {
    ($backend:ident) => {
        mod shared_store {
        use super::*;
        use $crate::domain::policy::{Actor, ProjectFacts};
        use $crate::domain::token::{NewToken, Token};
        use $crate::domain::user::{NewUser, User, UserPatch};
        use $crate::domain::work::{Activity, FileMeta, Project, Task};
        use $crate::domain::WorkspaceId;
        use $crate::store::{
            activities, files, groups, outbox, projects, tasks, tokens, users, workspaces,
            Attempt, Census, Expected, Filter, Group, GroupStore, ListQuery,
            LoginThrottleStore, OpsStore, OutboxStore, OutgoingMail, Page, QueuedMail, Result,
            TokenStore, UserScope, UserStore, WorkStore, WorkspaceStore,
        };
        use $crate::domain::workspace::Workspace;

        #[async_trait::async_trait]
        impl WorkStore for $backend {
            async fn project(&self, ws: WorkspaceId, id: i64) -> Result<Option<Project>> {
                run_keyed_read!(self, db => projects::get(db, ws, id))
            }

            async fn projects_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<Project>> {
                run_read!(self, db => projects::by_ids(db, ws, &ids))
            }

            async fn save_project(&self, ws: WorkspaceId, p: Project, mail: Vec<OutgoingMail>, now: i64) -> Result<Project> {
                run_write!(self, db => projects::save(db, ws, &p, &mail, now))
            }

            async fn remove_project(&self, ws: WorkspaceId, id: i64, expected: Expected) -> Result<Option<Vec<String>>> {
                run_write!(self, db => projects::remove(db, ws, id, expected))
            }

            async fn projects(&self, ws: WorkspaceId, actor: Actor, q: ListQuery) -> Result<Page<Project>> {
                // One statement (`driver::page`): a snapshot of its own.
                run_read!(self, db => projects::list(db, ws, &actor, &q))
            }

            async fn project_census(&self, ws: WorkspaceId, actor: Actor, filters: Vec<Filter>) -> Result<Census> {
                run_read!(self, db => projects::census(db, ws, &actor, &filters))
            }

            async fn projects_after(&self, ws: WorkspaceId, actor: Actor, filters: Vec<Filter>, after: i64, last_id: i64, limit: i64) -> Result<Vec<Project>> {
                let window = (after, last_id, limit);
                run_read!(self, db => projects::after(db, ws, &actor, &filters, window))
            }

            async fn task(&self, ws: WorkspaceId, id: i64) -> Result<Option<Task>> {
                run_keyed_read!(self, db => tasks::get(db, ws, id))
            }

            /// One read for both: on SQLite the read lock is taken once; PostgreSQL pipelines
            /// them, one round trip on a shared connection.
            async fn task_with_project(&self, ws: WorkspaceId, id: i64) -> Result<Option<(Task, Option<Project>)>> {
                run_keyed_read!(self, db => tasks::with_project(db, ws, id))
            }

            async fn task_with_project_facts(&self, ws: WorkspaceId, id: i64, caller: i64) -> Result<Option<(Task, Option<ProjectFacts>)>> {
                run_keyed_read!(self, db => tasks::with_project_facts(db, ws, id, caller))
            }

            async fn save_task(&self, ws: WorkspaceId, t: Task, mail: Vec<OutgoingMail>, now: i64) -> Result<Task> {
                run_write!(self, db => tasks::save(db, ws, &t, &mail, now))
            }

            async fn remove_task(&self, ws: WorkspaceId, id: i64, expected: Expected) -> Result<Option<Vec<String>>> {
                run_write!(self, db => tasks::remove(db, ws, id, expected))
            }

            async fn tasks(&self, ws: WorkspaceId, actor: Actor, q: ListQuery, with_team: bool) -> Result<(Page<Task>, Vec<(i64, ProjectFacts)>)> {
                if tasks::list_reads_several(&actor, &q) {
                    run_list!(self, db => tasks::list(db, ws, &actor, &q, with_team))
                } else {
                    run_read!(self, db => tasks::list(db, ws, &actor, &q, with_team))
                }
            }

            async fn task_lineage(&self, ws: WorkspaceId, id: i64) -> Result<Vec<i64>> {
                run_read!(self, db => tasks::lineage(db, ws, id))
            }

            async fn activity(&self, ws: WorkspaceId, id: i64) -> Result<Option<Activity>> {
                run_keyed_read!(self, db => activities::get(db, ws, id))
            }

            async fn save_activity(&self, ws: WorkspaceId, a: Activity, mail: Vec<OutgoingMail>, now: i64) -> Result<Activity> {
                run_activity_save!(self, ws, a, mail, now)
            }

            async fn remove_activity(&self, ws: WorkspaceId, id: i64, expected: Expected) -> Result<Option<Vec<String>>> {
                run_write!(self, db => activities::remove(db, ws, id, expected))
            }

            async fn activities(&self, ws: WorkspaceId, actor: Actor, q: ListQuery) -> Result<Page<Activity>> {
                run_read!(self, db => activities::list(db, ws, &actor, &q))
            }

            async fn add_files(&self, ws: WorkspaceId, new: Vec<FileMeta>, now: i64) -> Result<Vec<FileMeta>> {
                run_write!(self, db => files::add(db, ws, new, now))
            }

            async fn file(&self, ws: WorkspaceId, id: i64) -> Result<Option<FileMeta>> {
                run_keyed_read!(self, db => files::get(db, ws, id))
            }

            async fn files_of_activities(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<FileMeta>> {
                run_read!(self, db => files::of_activities(db, ws, &ids))
            }

            async fn remove_file(&self, ws: WorkspaceId, id: i64) -> Result<Option<String>> {
                run_write_one!(self, db => files::remove(db, ws, id))
            }

            async fn files(&self, ws: WorkspaceId, actor: Actor, q: ListQuery) -> Result<Page<FileMeta>> {
                run_read!(self, db => files::list(db, ws, &actor, &q))
            }

            async fn storage_keys(&self) -> Result<Vec<String>> {
                run_read!(self, db => files::storage_keys(db))
            }

            async fn missing_users(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<i64>> {
                run_read!(self, db => files::missing_users(db, ws, &ids))
            }
        }

        #[async_trait::async_trait]
        impl UserStore for $backend {
            async fn count_users(&self, ws: WorkspaceId) -> Result<i64> {
                run_read!(self, db => users::count(db, ws))
            }

            async fn add_user(&self, ws: WorkspaceId, user: NewUser, now: i64) -> Result<User> {
                run_write_one!(self, db => users::add(db, ws, &user, now))
            }

            async fn update_user(&self, ws: WorkspaceId, id: i64, patch: UserPatch, expected: Expected, keep_session: Option<Vec<u8>>, now: i64) -> Result<Option<User>> {
                run_write_users!(self, db => users::update(db, ws, id, (&patch, expected), keep_session.as_deref(), now))
            }

            async fn remove_user(&self, ws: WorkspaceId, id: i64, expected: Expected, now: i64) -> Result<bool> {
                run_write_users!(self, db => users::remove(db, ws, id, expected, now))
            }

            async fn user(&self, ws: WorkspaceId, id: i64) -> Result<Option<User>> {
                run_keyed_read!(self, db => users::get(db, ws, id))
            }

            async fn user_by_email(&self, ws: WorkspaceId, email: &str) -> Result<Option<User>> {
                Ok(self.credentials(ws, email).await?.map(|(u, _)| u))
            }

            async fn credentials(&self, ws: WorkspaceId, email: &str) -> Result<Option<(User, String)>> {
                let email = email.to_owned();
                run_read!(self, db => users::credentials(db, ws, &email))
            }

            async fn users_by_ids(&self, ws: WorkspaceId, ids: Vec<i64>) -> Result<Vec<User>> {
                run_read!(self, db => users::by_ids(db, ws, &ids))
            }

            async fn users(&self, ws: WorkspaceId, scope: UserScope) -> Result<Vec<User>> {
                run_read!(self, db => users::in_scope(db, ws, scope))
            }

            async fn are_team_mates(&self, _ws: WorkspaceId, a: i64, b: i64) -> Result<bool> {
                run_read!(self, db => users::are_team_mates(db, a, b))
            }
        }

        #[async_trait::async_trait]
        impl TokenStore for $backend {
            async fn add_token(&self, ws: WorkspaceId, token: NewToken, limit: i64, now: i64) -> Result<Option<Token>> {
                run_write!(self, db => tokens::add(db, ws, &token, limit, now))
            }

            async fn tokens_of(&self, ws: WorkspaceId, user_id: i64) -> Result<Vec<Token>> {
                run_read!(self, db => tokens::of_user(db, ws, user_id))
            }

            async fn token(&self, ws: WorkspaceId, id: i64) -> Result<Option<Token>> {
                run_keyed_read!(self, db => tokens::get(db, ws, id))
            }

            async fn token_by_hash(&self, ws: WorkspaceId, token_hash: Vec<u8>) -> Result<Option<(User, Token)>> {
                run_keyed_read!(self, db => tokens::by_hash(db, ws, &token_hash))
            }

            async fn touch_token(&self, ws: WorkspaceId, id: i64, now: i64) -> Result<()> {
                run_write_one!(self, db => tokens::touch(db, ws, id, now))
            }

            async fn remove_token(&self, ws: WorkspaceId, id: i64) -> Result<bool> {
                run_write_one!(self, db => tokens::remove(db, ws, id))
            }
        }

        #[async_trait::async_trait]
        impl LoginThrottleStore for $backend {
            async fn begin_attempt(&self, ws: WorkspaceId, subjects: Vec<String>, now: i64, window_start: i64, limit: i64) -> Result<Attempt> {
                run_write!(self, db => users::begin_attempt(db, ws, &subjects, now, window_start, limit))
            }

            async fn forget_login_failures(&self, before: i64) -> Result<u64> {
                run_write_one!(self, db => users::forget_login_failures(db, before))
            }

            async fn failures_between(&self, ws: WorkspaceId, first: String, end: String, since: i64) -> Result<i64> {
                run_read!(self, db => users::failures_between(db, ws, (&first, &end), since))
            }

            async fn end_attempt(&self, records: Vec<i64>, failed: bool) -> Result<()> {
                run_write_one!(self, db => users::end_attempt(db, &records, failed))
            }
        }

        #[async_trait::async_trait]
        impl GroupStore for $backend {
            async fn add_group(&self, ws: WorkspaceId, name: String, now: i64) -> Result<Group> {
                run_write_one!(self, db => groups::add(db, ws, &name, now))
            }

            async fn update_group(&self, ws: WorkspaceId, id: i64, name: Option<String>, expected: Expected, now: i64) -> Result<Option<Group>> {
                run_write!(self, db => groups::update(db, ws, id, name.as_deref(), expected, now))
            }

            async fn remove_group(&self, ws: WorkspaceId, id: i64, expected: Expected) -> Result<bool> {
                run_write!(self, db => groups::remove(db, ws, id, expected))
            }

            async fn group(&self, ws: WorkspaceId, id: i64) -> Result<Option<Group>> {
                run_keyed_read!(self, db => groups::get(db, ws, id))
            }

            async fn groups(&self, ws: WorkspaceId) -> Result<Vec<Group>> {
                run_read!(self, db => groups::all(db, ws))
            }
        }

        #[async_trait::async_trait]
        impl OutboxStore for $backend {
            async fn claim_mail(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<QueuedMail>> {
                run_write_one!(self, db => outbox::claim(db, now, lease_secs, limit))
            }

            async fn mail_sent(&self, id: i64, now: i64) -> Result<()> {
                run_write_one!(self, db => outbox::sent(db, id, now))
            }

            async fn mail_failed(&self, id: i64, now: i64, error: String, retry_at: Option<i64>) -> Result<()> {
                run_write_one!(self, db => outbox::failed(db, id, now, &error, retry_at))
            }
        }

        #[async_trait::async_trait]
        impl OpsStore for $backend {
            /// A write's runner: on SQLite the writer thread, which a stuck write or a
            /// lock held from outside stalls, unlike the readers.
            async fn ping(&self) -> Result<()> {
                run_write_one!(self, db => outbox::ping(db))
            }

            async fn outbox_depth(&self) -> Result<i64> {
                run_read!(self, db => outbox::depth(db))
            }
        }

        #[async_trait::async_trait]
        impl WorkspaceStore for $backend {
            async fn add_workspace(&self, name: String, now: i64) -> Result<Workspace> {
                run_write_one!(self, db => workspaces::add(db, &name, now))
            }

            async fn workspace_by_name(&self, name: String) -> Result<Option<WorkspaceId>> {
                run_keyed_read!(self, db => workspaces::by_name(db, &name))
            }

            async fn workspaces(&self) -> Result<Vec<Workspace>> {
                run_read!(self, db => workspaces::all(db))
            }

            async fn remove_workspace(&self, ws: WorkspaceId) -> Result<Vec<String>> {
                run_write_users!(self, db => workspaces::remove(db, ws))
            }
        }
        }
    };
}

pub(crate) use impl_store;
