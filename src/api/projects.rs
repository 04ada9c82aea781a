//! projects: add, getById, getAll, getList; update and remove are the shared steps of
//! [`crate::api::work`].

use crate::api::work::Work;
use crate::api::{
    check_group, check_users, list_query, notify, report, required_id, set_nullable, set_required,
    switch, team_of, Ctx, Validation,
};
use crate::domain::now;
use crate::domain::policy::{self, Actor, ProjectFacts};
use crate::domain::work::{closed_at, normalize_tags, validate_project, Project};
use crate::http::args::{Given, Obj};
use crate::http::error::ApiError;
use crate::http::response::{Output, Record, Value};
use crate::store::Expected;

/// The filters getList accepts (section 7 of the contract).
pub(crate) const FILTERS: &[&str] = &[
    "groupId",
    "ownerId",
    "name",
    "assignedTo",
    "active",
    "hide_old_object_period",
    "hide_non_active",
    "updatedFrom",
    "updatedBefore",
];

/// What the policy needs to know of this project for this caller.
pub fn facts(project: &Project, actor: &Actor) -> ProjectFacts {
    ProjectFacts {
        hidden: project.hidden,
        is_owner: project.owner_id == actor.user_id,
        in_team: project.team.contains(&actor.user_id),
    }
}

/// Whether the caller may see this project: also whether a task's or an activity's
/// answer, page or mail may name it (an external sees the tasks of their task teams in
/// projects they may not see).
pub fn sees(actor: &Actor, project: &Project) -> bool {
    policy::can_see_project(actor, &facts(project, actor))
}

fn date(d: Option<i64>) -> Value {
    d.map_or(Value::Null, Value::Date)
}

/// The one description of a project.
pub fn record(p: &Project, actor: &Actor, with_team: bool) -> Record {
    let mut r = Record::new("project")
        .versioned(p.version)
        .with("id", Value::Id(p.id))
        .with("name", p.name.as_str())
        .with("description", p.description.clone())
        .with("tags", p.tags.clone())
        .with("ownerId", p.owner_id)
        .with("groupId", p.group_id)
        .with("startDate", date(p.start_date))
        .with("endDate", date(p.end_date))
        .with("priority", p.priority)
        .with("status", p.status)
        .with("createdAt", Value::Date(p.created_at))
        .with("updatedAt", Value::Date(p.updated_at))
        .with("notifyProjectTeam", p.notify_project_team)
        .with("notifyClient", p.notify_client)
        .with("hidden", p.hidden)
        .with("flag", p.flag);
    if with_team {
        r = r.with("team", Value::Ids("user", p.team.clone()));
    }
    r.with(
        "can_edit",
        policy::can_edit_project(actor, &facts(p, actor)),
    )
}

/// The project if the caller may see it; 404 otherwise, as if it did not exist.
pub async fn visible(ctx: &Ctx<'_>, actor: &Actor, id: i64) -> Result<Project, ApiError> {
    match ctx.state.store.project(ctx.ws, id).await? {
        Some(p) if sees(actor, &p) => Ok(p),
        _ => Err(ApiError::not_found("Project", id)),
    }
}

/// Applies the attributes sent under `project[...]` to `p`.
fn apply(obj: &Obj<'_>, p: &mut Project, v: &mut Validation) -> Result<(), ApiError> {
    let f = |attr: &'static str| obj.field(attr);
    // An emptied name is left to validation, so that it is reported once ("required").
    let name = match f("name").text()? {
        Given::Empty => Given::Value(String::new()),
        given => given.map(|s| s.trim().to_owned()),
    };
    set_required(&mut p.name, name, "project[name]", v);
    set_nullable(&mut p.description, f("description").text()?);
    set_nullable(&mut p.tags, f("tags").text()?);
    p.tags = p.tags.as_deref().and_then(normalize_tags);
    set_required(&mut p.owner_id, f("ownerId").int()?, "project[ownerId]", v);
    set_nullable(&mut p.group_id, f("groupId").int()?);
    set_nullable(&mut p.start_date, f("startDate").date()?);
    set_nullable(&mut p.end_date, f("endDate").date()?);
    set_required(
        &mut p.priority,
        f("priority").int()?,
        "project[priority]",
        v,
    );
    set_required(&mut p.status, f("status").int()?, "project[status]", v);
    set_required(&mut p.hidden, f("hidden").bool()?, "project[hidden]", v);
    set_required(&mut p.flag, f("flag").int()?, "project[flag]", v);
    set_required(
        &mut p.notify_project_team,
        f("notifyProjectTeam").bool()?,
        "project[notifyProjectTeam]",
        v,
    );
    set_required(
        &mut p.notify_client,
        f("notifyClient").bool()?,
        "project[notifyClient]",
        v,
    );
    if let Some(team) = team_of(f("team").id_list()?) {
        p.team = team;
    }
    Ok(())
}

/// Validates `p` whole, checks what it refers to, and saves it.
async fn save(
    ctx: &Ctx<'_>,
    actor: &Actor,
    mut p: Project,
    previous: Option<&Project>,
    mut v: Validation,
    notify_users: Vec<i64>,
) -> Result<Output, ApiError> {
    report("project", validate_project(&p), &mut v);
    check_users(ctx, "project", p.owner_id, &p.team, &mut v).await?;
    check_group(ctx, "project", p.group_id, &mut v).await?;
    v.finish()?;
    let now = now();
    p.closed_at = match previous {
        Some(prev) => closed_at(prev.status, prev.closed_at, p.status, now),
        None => closed_at(0, None, p.status, now),
    };
    let flags = notify::Flags {
        project_team: p.notify_project_team,
        task_team: false,
        client: p.notify_client,
        users: notify_users,
    };
    let about = notify::About {
        kind: "project",
        action: if previous.is_some() {
            "updated"
        } else {
            "created"
        },
        project: Some(&p),
        task: None,
        text: p.description.as_deref(),
    };
    let may_see = |a: &Actor| sees(a, &p);
    let mail = notify::tell(ctx, &flags, about, may_see).await?;
    let saved = notify::save_with(ctx, mail, |mail| {
        ctx.state.store.save_project(ctx.ws, p, mail, now)
    })
    .await?;
    Ok(Output::Object(record(&saved, actor, true)))
}

pub async fn add(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    if !policy::can_create_project(&actor) {
        return Err(ApiError::forbidden(
            "External users and clients cannot create projects",
        ));
    }
    let mut v = Validation::default();
    let mut p = Project::new(actor.user_id);
    let obj = ctx.args.object(&["project"]);
    apply(&obj, &mut p, &mut v)?;
    save(ctx, &actor, p, None, v, notify::notify_users(&obj)?).await
}

impl Work for Project {
    const KIND: &'static str = "project";
    const TITLE: &'static str = "Project";
    type Place = ();

    fn version(&self) -> i64 {
        self.version
    }

    async fn visible(ctx: &Ctx<'_>, actor: &Actor, id: i64) -> Result<(Project, ()), ApiError> {
        Ok((visible(ctx, actor, id).await?, ()))
    }

    fn can_edit(&self, actor: &Actor, _: &()) -> bool {
        policy::can_edit_project(actor, &facts(self, actor))
    }

    fn apply(&mut self, obj: &Obj<'_>, v: &mut Validation) -> Result<(), ApiError> {
        apply(obj, self, v)
    }

    async fn save_update(
        ctx: &Ctx<'_>,
        actor: &Actor,
        next: Project,
        current: &Project,
        _: &(),
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
        Ok(ctx.state.store.remove_project(ctx.ws, id, expected).await?)
    }
}

pub async fn get_by_id(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let p = visible(ctx, &actor, id).await?;
    Ok(Output::Object(record(&p, &actor, true)))
}

/// How many projects each read of a getAll takes at most (fewer when their text is large,
/// see `store::PAGE_TEXT_BYTES`). The answer is written as the client takes it, one page
/// read at a time: between reads nothing holds a database snapshot, and a stalled client
/// holds at most one page.
const GET_ALL_PAGE: i64 = 200;

/// getAll: every visible project, streamed page by page. The total is counted first; the
/// pages follow by id, up to the highest id counted, and never more rows than the total
/// (docs/api-decisions.md, "getAll reads page by page").
pub async fn get_all(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    use futures_util::{StreamExt, TryStreamExt};
    let actor = ctx.actor()?;
    let query = list_query(ctx.args, FILTERS, false)?;
    let with_team = switch(ctx.args, "loadTeam")?;
    let (store, ws, filters) = (ctx.state.store.clone(), ctx.ws, query.filters);
    let census = store.project_census(ws, actor, filters.clone()).await?;
    // The walk's state: the last id sent and how many rows the total still allows.
    let pages = futures_util::stream::try_unfold((0, census.total), move |(after, left)| {
        let (store, filters) = (store.clone(), filters.clone());
        async move {
            if left <= 0 {
                return Ok(None);
            }
            let limit = GET_ALL_PAGE.min(left);
            let page = store
                .projects_after(ws, actor, filters, after, census.last_id, limit)
                .await?;
            // A page ends early when its text is large: only an empty one is the last.
            let Some(last) = page.last() else {
                return Ok(None);
            };
            let next = (last.id, left - page.len() as i64);
            Ok::<_, ApiError>(Some((page, next)))
        }
    });
    let items = pages
        .map_ok(|page| futures_util::stream::iter(page.into_iter().map(Ok)))
        .try_flatten()
        .map_ok(move |p| record(&p, &actor, with_team))
        .boxed();
    Ok(Output::Stream {
        kind: "project",
        total: census.total,
        items,
    })
}

/// getList: one page of the visible projects.
pub async fn get_list(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let query = list_query(ctx.args, FILTERS, true)?;
    let offset = query.offset;
    let with_team = switch(ctx.args, "loadTeam")?;
    let page = ctx.state.store.projects(ctx.ws, actor, query).await?;
    Ok(Output::List {
        kind: "project",
        items: page
            .items
            .iter()
            .map(|p| record(p, &actor, with_team))
            .collect(),
        total: page.total,
        offset,
    })
}
