//! tasks: add, getById, getList; update and remove are the shared steps of
//! [`crate::api::work`].

use std::collections::HashMap;

use crate::api::work::Work;
use crate::api::{
    check_group, check_users, list_query, notify, projects, report, required_id, set_nullable,
    set_required, switch, team_of, Ctx, Validation,
};
use crate::domain::now;
use crate::domain::policy::{self, Actor, ProjectFacts, TaskFacts};
use crate::domain::work::{closed_at, normalize_tags, validate_task, Project, Task};
use crate::http::args::{Given, Obj};
use crate::http::error::ApiError;
use crate::http::response::{Output, Record, Value};
use crate::store::Expected;

/// The filters getList accepts (section 7 of the contract).
pub(crate) const FILTERS: &[&str] = &[
    "projectId",
    "parentId",
    "startedFrom",
    "startedBefore",
    "deadlineFrom",
    "deadlineBefore",
    "progressLessThan",
    "progressMoreThan",
    "createdFrom",
    "createdBefore",
    "updatedFrom",
    "updatedBefore",
    "groupId",
    "ownerId",
    "name",
    "assignedTo",
    "active",
    "hide_old_object_period",
    "hide_non_active",
];

/// What the policy needs to know of this task (and its project) for this caller.
pub fn facts(task: &Task, project: Option<&Project>, actor: &Actor) -> TaskFacts {
    facts_with(task, project.map(|p| projects::facts(p, actor)), actor)
}

/// The same, with the project's facts already known.
fn facts_with(task: &Task, project: Option<ProjectFacts>, actor: &Actor) -> TaskFacts {
    TaskFacts {
        hidden: task.hidden,
        is_owner: task.owner_id == actor.user_id,
        in_task_team: task.team.contains(&actor.user_id),
        project,
    }
}

fn date(d: Option<i64>) -> Value {
    d.map_or(Value::Null, Value::Date)
}

/// The one description of a task (which it takes, to move its texts into the answer).
pub fn record(t: Task, can_edit: bool, with_team: bool) -> Record {
    let mut r = Record::new("task")
        .versioned(t.version)
        .with("id", Value::Id(t.id))
        .with("name", t.name)
        .with("parentId", t.parent_id)
        .with("parentName", t.parent_name)
        .with("description", t.description)
        .with("tags", t.tags)
        .with("projectId", t.project_id)
        .with("ownerId", t.owner_id)
        .with("groupId", t.group_id)
        .with("startDate", date(t.start_date))
        .with("endDate", date(t.end_date))
        .with("priority", t.priority)
        .with("progress", t.progress)
        .with("status", t.status)
        .with("createdAt", Value::Date(t.created_at))
        .with("updatedAt", Value::Date(t.updated_at))
        .with("notifyProjectTeam", t.notify_project_team)
        .with("notifyTaskTeam", t.notify_task_team)
        .with("notifyClient", t.notify_client)
        .with("hidden", t.hidden)
        .with("flag", t.flag)
        .with("hoursDone", t.hours_done)
        .with(
            "estimatedTime",
            t.estimated_time.map_or(Value::Null, Value::Float),
        );
    if with_team {
        r = r.with("team", Value::Ids("user", t.team));
    }
    r.with("can_edit", can_edit)
}

/// A task the caller may see, with its project; 404 otherwise.
pub async fn visible(
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: i64,
) -> Result<(Task, Option<Project>), ApiError> {
    let found = ctx.state.store.task_with_project(ctx.ws, id).await?;
    let seen = found.filter(|(t, p)| policy::can_see_task(actor, &facts(t, p.as_ref(), actor)));
    seen.ok_or_else(|| ApiError::not_found("Task", id))
}

/// A task the caller may see, with what the rules ask of its project: all a read of the
/// task needs. An admin's rules ask nothing of the project, so it is not read at all.
async fn readable(ctx: &Ctx<'_>, actor: &Actor, id: i64) -> Result<(Task, TaskFacts), ApiError> {
    let store = &ctx.state.store;
    let found = if policy::task_needs_project(actor) {
        store
            .task_with_project_facts(ctx.ws, id, actor.user_id)
            .await?
    } else {
        store.task(ctx.ws, id).await?.map(|t| (t, None))
    };
    let seen = found
        .map(|(t, project)| {
            let facts = facts_with(&t, project, actor);
            (t, facts)
        })
        .filter(|(_, facts)| policy::can_see_task(actor, facts));
    seen.ok_or_else(|| ApiError::not_found("Task", id))
}

/// Applies the attributes sent under `task[...]`; `projectId` and `parentId` are
/// checked by the caller, `hoursDone` is derived and ignored.
fn apply(obj: &Obj<'_>, t: &mut Task, v: &mut Validation) -> Result<(), ApiError> {
    let f = |attr: &'static str| obj.field(attr);
    // An emptied name is left to validation, so that it is reported once ("required").
    let name = match f("name").text()? {
        Given::Empty => Given::Value(String::new()),
        given => given.map(|s| s.trim().to_owned()),
    };
    set_required(&mut t.name, name, "task[name]", v);
    set_nullable(&mut t.description, f("description").text()?);
    set_nullable(&mut t.tags, f("tags").text()?);
    t.tags = t.tags.as_deref().and_then(normalize_tags);
    set_nullable(&mut t.project_id, f("projectId").int()?);
    set_nullable(&mut t.parent_id, f("parentId").int()?);
    set_required(&mut t.owner_id, f("ownerId").int()?, "task[ownerId]", v);
    set_nullable(&mut t.group_id, f("groupId").int()?);
    set_nullable(&mut t.start_date, f("startDate").date()?);
    set_nullable(&mut t.end_date, f("endDate").date()?);
    set_required(&mut t.priority, f("priority").int()?, "task[priority]", v);
    set_required(&mut t.progress, f("progress").int()?, "task[progress]", v);
    set_required(&mut t.status, f("status").int()?, "task[status]", v);
    set_required(&mut t.hidden, f("hidden").bool()?, "task[hidden]", v);
    set_required(&mut t.flag, f("flag").int()?, "task[flag]", v);
    set_nullable(&mut t.estimated_time, f("estimatedTime").float()?);
    set_required(
        &mut t.notify_project_team,
        f("notifyProjectTeam").bool()?,
        "task[notifyProjectTeam]",
        v,
    );
    set_required(
        &mut t.notify_task_team,
        f("notifyTaskTeam").bool()?,
        "task[notifyTaskTeam]",
        v,
    );
    set_required(
        &mut t.notify_client,
        f("notifyClient").bool()?,
        "task[notifyClient]",
        v,
    );
    if let Some(team) = team_of(f("team").id_list()?) {
        t.team = team;
    }
    Ok(())
}

/// The caller may put a task into this project (or make it a single task).
async fn check_placement(
    ctx: &Ctx<'_>,
    actor: &Actor,
    project_id: Option<i64>,
) -> Result<(), ApiError> {
    match project_id {
        Some(pid) => {
            let project = projects::visible(ctx, actor, pid).await?;
            if !policy::can_create_task_in(actor, &projects::facts(&project, actor)) {
                return Err(ApiError::forbidden(format!(
                    "You may not add tasks to project {pid}"
                )));
            }
        }
        None => {
            if !policy::can_create_project(actor) {
                return Err(ApiError::forbidden(
                    "External users and clients cannot create single tasks",
                ));
            }
        }
    }
    Ok(())
}

/// Section 9: the parent is a task the caller sees, in the same project (or both
/// single), and not the task itself or one of its sub-tasks.
async fn check_parent(
    ctx: &Ctx<'_>,
    actor: &Actor,
    t: &Task,
    v: &mut Validation,
) -> Result<(), ApiError> {
    let Some(parent_id) = t.parent_id else {
        return Ok(());
    };
    let parent = match visible(ctx, actor, parent_id).await {
        Ok((parent, _)) => parent,
        Err(ApiError::NotFound(_)) => {
            v.fail(
                "task[parentId]",
                "invalid",
                format!("task {parent_id} does not exist"),
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if parent.project_id != t.project_id {
        v.fail(
            "task[parentId]",
            "invalid",
            "the parent must be in the same project",
        );
    }
    if t.id != 0
        && ctx
            .state
            .store
            .task_lineage(ctx.ws, parent_id)
            .await?
            .contains(&t.id)
    {
        v.fail(
            "task[parentId]",
            "cycle",
            "a task cannot be its own ancestor",
        );
    }
    Ok(())
}

async fn save(
    ctx: &Ctx<'_>,
    actor: &Actor,
    mut t: Task,
    previous: Option<&Task>,
    mut v: Validation,
    notify_users: Vec<i64>,
) -> Result<Output, ApiError> {
    check_parent(ctx, actor, &t, &mut v).await?;
    report("task", validate_task(&t), &mut v);
    check_users(ctx, "task", t.owner_id, &t.team, &mut v).await?;
    if t.project_id.is_none() {
        check_group(ctx, "task", t.group_id, &mut v).await?;
    }
    v.finish()?;
    let now = now();
    t.closed_at = match previous {
        Some(prev) => closed_at(prev.status, prev.closed_at, t.status, now),
        None => closed_at(0, None, t.status, now),
    };
    let project = match t.project_id {
        Some(pid) => ctx.state.store.project(ctx.ws, pid).await?,
        None => None,
    };
    let flags = notify::Flags {
        project_team: t.notify_project_team,
        task_team: t.notify_task_team,
        client: t.notify_client,
        users: notify_users,
    };
    let about = notify::About {
        kind: "task",
        action: if previous.is_some() {
            "updated"
        } else {
            "created"
        },
        project: project.as_ref(),
        task: Some(&t),
        text: t.description.as_deref(),
    };
    let may_see = |a: &Actor| policy::can_see_task(a, &facts(&t, project.as_ref(), a));
    let mail = notify::tell(ctx, &flags, about, may_see).await?;
    let saved = notify::save_with(ctx, mail, |mail| {
        ctx.state.store.save_task(ctx.ws, t, mail, now)
    })
    .await?;
    let can_edit = policy::can_edit_task(actor, &facts(&saved, project.as_ref(), actor));
    Ok(Output::Object(record(saved, can_edit, true)))
}

pub async fn add(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let mut v = Validation::default();
    let mut t = Task::new(actor.user_id);
    let obj = ctx.args.object(&["task"]);
    apply(&obj, &mut t, &mut v)?;
    check_placement(ctx, &actor, t.project_id).await?;
    save(ctx, &actor, t, None, v, notify::notify_users(&obj)?).await
}

impl Work for Task {
    const KIND: &'static str = "task";
    const TITLE: &'static str = "Task";
    /// The task's project, if it has one.
    type Place = Option<Project>;

    fn version(&self) -> i64 {
        self.version
    }

    async fn visible(
        ctx: &Ctx<'_>,
        actor: &Actor,
        id: i64,
    ) -> Result<(Task, Option<Project>), ApiError> {
        visible(ctx, actor, id).await
    }

    fn can_edit(&self, actor: &Actor, project: &Option<Project>) -> bool {
        policy::can_edit_task(actor, &facts(self, project.as_ref(), actor))
    }

    fn apply(&mut self, obj: &Obj<'_>, v: &mut Validation) -> Result<(), ApiError> {
        apply(obj, self, v)
    }

    async fn check_move(
        ctx: &Ctx<'_>,
        actor: &Actor,
        current: &Task,
        next: &Task,
    ) -> Result<(), ApiError> {
        if next.project_id != current.project_id {
            check_placement(ctx, actor, next.project_id).await?;
        }
        Ok(())
    }

    async fn save_update(
        ctx: &Ctx<'_>,
        actor: &Actor,
        next: Task,
        current: &Task,
        _: &Option<Project>,
        v: Validation,
        notify_users: Vec<i64>,
    ) -> Result<Output, ApiError> {
        save(ctx, actor, next, Some(current), v, notify_users).await
    }

    async fn remove_stored(
        ctx: &Ctx<'_>,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>, ApiError> {
        Ok(ctx.state.store.remove_task(ctx.ws, id, expected).await?)
    }
}

/// Drops the name of each task's parent that the caller may not see: a task can be
/// visible under a hidden parent (section 8), and `parentName` is the parent's own.
pub async fn hide_unseen_parents(
    ctx: &Ctx<'_>,
    actor: &Actor,
    tasks: &mut [Task],
) -> Result<(), ApiError> {
    // Most pages hold no sub-task: nothing to decide, no map to build.
    if policy::sees_every_task(actor) || tasks.iter().all(|t| t.parent_id.is_none()) {
        return Ok(());
    }
    let mut seen: HashMap<i64, bool> = tasks.iter().map(|t| (t.id, true)).collect();
    for t in tasks.iter_mut() {
        let Some(parent) = t.parent_id else { continue };
        let sees_parent = match seen.get(&parent) {
            Some(known) => *known,
            None => {
                let sees = match readable(ctx, actor, parent).await {
                    Ok(_) => true,
                    Err(ApiError::NotFound(_)) => false,
                    Err(e) => return Err(e),
                };
                seen.insert(parent, sees);
                sees
            }
        };
        if !sees_parent {
            t.parent_name = None;
        }
    }
    Ok(())
}

pub async fn get_by_id(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let (mut t, facts) = readable(ctx, &actor, id).await?;
    hide_unseen_parents(ctx, &actor, std::slice::from_mut(&mut t)).await?;
    let can_edit = policy::can_edit_task(&actor, &facts);
    Ok(Output::Object(record(t, can_edit, true)))
}

pub async fn get_list(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let query = list_query(ctx.args, FILTERS, true)?;
    let offset = query.offset;
    let with_team = switch(ctx.args, "loadTeam")?;
    let (mut page, projects) = ctx
        .state
        .store
        .tasks(ctx.ws, actor, query, with_team)
        .await?;
    hide_unseen_parents(ctx, &actor, &mut page.items).await?;
    let items = page
        .items
        .into_iter()
        .map(|t| {
            let project = t.project_id.and_then(|pid| {
                let at = projects.binary_search_by_key(&pid, |(id, _)| *id);
                at.ok().map(|i| projects[i].1)
            });
            let can_edit = policy::can_edit_task(&actor, &facts_with(&t, project, &actor));
            record(t, can_edit, with_team)
        })
        .collect();
    Ok(Output::List {
        kind: "task",
        items,
        total: page.total,
        offset,
    })
}
