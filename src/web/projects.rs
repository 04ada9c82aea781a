//! The projects pages: the list, one project with its tasks as a tree, and the forms
//! that add, edit and remove one (handed to `projects/add`, `projects/update`,
//! `projects/remove`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::api::metainfo::{PRIORITIES, STATUSES};
use crate::api::{projects as api_projects, tasks as api_tasks, AppState};
use crate::domain::policy;
use crate::domain::work::{Project, Task};
use crate::http::error::ApiError;
use crate::store::{Filter, ListQuery};
use crate::web::form::{self, FormState, Posted};
use crate::web::view::{self, Nav, Pager, People};
use crate::web::{page, path_id, redirect, render, Visit, WebError};

const PROJECTS_PER_PAGE: i64 = 50;
const TASKS_PER_PAGE: i64 = 100;

/// One row of the projects list.
pub struct ProjectRow {
    pub project: Project,
    pub tasks: i64,
    pub open_tasks: i64,
}

impl ProjectRow {
    /// Done tasks of all, in percent.
    pub fn progress(&self) -> i64 {
        if self.tasks == 0 {
            0
        } else {
            (self.tasks - self.open_tasks) * 100 / self.tasks
        }
    }
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    nav: Nav,
    rows: Vec<ProjectRow>,
    pager: Pager,
    groups: Vec<(String, String)>,
    statuses: Vec<(String, String)>,
    group: String,
    status: String,
    q: String,
    can_create: bool,
}

/// `GET /projects?group=&status=&q=&page=`
pub async fn list(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let actor = visit.actor();
    let query = req.uri().query();
    let group = view::query_value(query, "group").unwrap_or_default();
    let status = view::query_value(query, "status").unwrap_or_default();
    let q = view::query_value(query, "q").unwrap_or_default();
    let mut filters = Vec::new();
    if let Ok(g) = group.parse() {
        filters.push(Filter::GroupId(g));
    }
    if let Ok(s) = status.parse() {
        filters.push(Filter::Status(s));
    }
    if !q.trim().is_empty() {
        filters.push(Filter::Name(q.trim().to_owned()));
    }
    let page_no = view::page_number(query);
    let store = &state.store;
    let found = store
        .projects(
            visit.ws,
            actor,
            ListQuery {
                filters,
                offset: (page_no - 1) * PROJECTS_PER_PAGE,
                count: Some(PROJECTS_PER_PAGE),
            },
        )
        .await?;
    // The API's own totals: the tasks the caller sees in each project, and the open ones,
    // asked all at once (on PostgreSQL each is a round trip).
    let count = |project: i64, active: bool| {
        let mut filters = vec![Filter::ProjectId(project)];
        if active {
            filters.push(Filter::Active);
        }
        let query = ListQuery {
            filters,
            offset: 0,
            count: Some(0),
        };
        async move { Ok::<_, WebError>(store.tasks(visit.ws, actor, query, false).await?.0.total) }
    };
    let counts = futures_util::future::try_join_all(
        found
            .items
            .iter()
            .map(|p| futures_util::future::try_join(count(p.id, false), count(p.id, true))),
    )
    .await?;
    let rows: Vec<ProjectRow> = found
        .items
        .into_iter()
        .zip(counts)
        .map(|(project, (tasks, open_tasks))| ProjectRow {
            project,
            tasks,
            open_tasks,
        })
        .collect();
    let pager = Pager::new(
        page_no,
        PROJECTS_PER_PAGE,
        found.total,
        format!(
            "/projects?group={}&status={}&q={}&",
            view::url_encode(&group),
            view::url_encode(&status),
            view::url_encode(&q)
        ),
    );
    render(&ProjectsPage {
        nav: visit.nav("projects"),
        rows,
        pager,
        groups: group_options(&visit, "All groups").await?,
        statuses: options(&STATUSES, Some("Any status")),
        group,
        status,
        q,
        can_create: policy::can_create_project(&actor),
    })
}

/// A task on a project's page, placed in the tree of its page.
pub struct TaskRow {
    pub task: Task,
    pub depth: usize,
    pub can_edit: bool,
    pub overdue: bool,
    /// The parent's name when the parent is not on this page.
    pub parent_elsewhere: Option<String>,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    nav: Nav,
    project: Project,
    people: People,
    group: Option<String>,
    tasks: Vec<TaskRow>,
    pager: Pager,
    can_edit: bool,
    can_add_task: bool,
}

/// `GET /projects/{id}?page=`: the project and a page of its tasks as a tree.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let id = path_id(&id)?;
    let actor = visit.actor();
    let project = api_projects::visible(&visit.reader(), &actor, id).await?;
    let page_no = view::page_number(req.uri().query());
    let (found, _) = state
        .store
        .tasks(
            visit.ws,
            actor,
            ListQuery {
                filters: vec![Filter::ProjectId(id)],
                offset: (page_no - 1) * TASKS_PER_PAGE,
                count: Some(TASKS_PER_PAGE),
            },
            // The page names each task's team.
            true,
        )
        .await?;
    let mut items = found.items;
    api_tasks::hide_unseen_parents(&visit.reader(), &actor, &mut items).await?;
    let now = crate::domain::now();
    let tasks = tree(
        items,
        |t| policy::can_edit_task(&actor, &api_tasks::facts(t, Some(&project), &actor)),
        now,
    );
    let facts = api_projects::facts(&project, &actor);
    let group = match project.group_id {
        Some(g) => state.store.group(visit.ws, g).await?.map(|g| g.name),
        None => None,
    };
    render(&ProjectPage {
        nav: visit.nav("projects"),
        people: visit.names().await?,
        group,
        tasks,
        pager: Pager::new(
            page_no,
            TASKS_PER_PAGE,
            found.total,
            format!("/projects/{id}?"),
        ),
        can_edit: policy::can_edit_project(&actor, &facts),
        can_add_task: policy::can_create_task_in(&actor, &facts),
        project,
    })
}

/// Orders a page of tasks as a tree: each after its parent when the parent is on the
/// page too, one level deeper; the others at the top, with their parent named.
pub fn tree(tasks: Vec<Task>, can_edit: impl Fn(&Task) -> bool, now: i64) -> Vec<TaskRow> {
    let on_page: std::collections::HashSet<i64> = tasks.iter().map(|t| t.id).collect();
    let mut children: HashMap<i64, Vec<Task>> = HashMap::new();
    let mut roots = Vec::new();
    for t in tasks {
        match t.parent_id {
            Some(p) if on_page.contains(&p) => children.entry(p).or_default().push(t),
            _ => roots.push(t),
        }
    }
    let mut rows = Vec::with_capacity(on_page.len());
    let mut stack: Vec<(Task, usize)> = roots.into_iter().rev().map(|t| (t, 0)).collect();
    while let Some((task, depth)) = stack.pop() {
        if let Some(kids) = children.remove(&task.id) {
            stack.extend(kids.into_iter().rev().map(|k| (k, depth + 1)));
        }
        let parent_elsewhere = match (depth, task.parent_id) {
            (0, Some(_)) => task.parent_name.clone(),
            _ => None,
        };
        rows.push(TaskRow {
            can_edit: can_edit(&task),
            overdue: view::overdue(&task, now),
            depth,
            parent_elsewhere,
            task,
        });
    }
    rows
}

#[derive(Template)]
#[template(path = "project_form.html")]
struct ProjectForm {
    nav: Nav,
    /// `None` for a new project.
    project: Option<Project>,
    form: FormState,
    choices: Choices,
}

/// The fields of a project form, with a project's values.
fn values(p: &Project) -> Vec<(String, String)> {
    let mut v = vec![
        ("project[name]", p.name.clone()),
        (
            "project[description]",
            p.description.clone().unwrap_or_default(),
        ),
        ("project[tags]", p.tags.clone().unwrap_or_default()),
        ("project[ownerId]", p.owner_id.to_string()),
        (
            "project[groupId]",
            p.group_id.map(|g| g.to_string()).unwrap_or_default(),
        ),
        (
            "project[startDate]",
            p.start_date.as_ref().map(view::day).unwrap_or_default(),
        ),
        (
            "project[endDate]",
            p.end_date.as_ref().map(view::day).unwrap_or_default(),
        ),
        ("project[priority]", p.priority.to_string()),
        ("project[status]", p.status.to_string()),
        ("project[hidden]", bit(p.hidden)),
        ("project[flag]", p.flag.to_string()),
        ("project[notifyProjectTeam]", bit(p.notify_project_team)),
        ("project[notifyClient]", bit(p.notify_client)),
    ];
    for m in &p.team {
        v.push(("project[team][]", m.to_string()));
    }
    v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

pub fn bit(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

/// Select options from a fixed list, with an empty first choice when asked.
pub fn options(list: &[(i64, &str)], empty: Option<&str>) -> Vec<(String, String)> {
    empty
        .map(|e| (String::new(), e.to_owned()))
        .into_iter()
        .chain(list.iter().map(|(c, n)| (c.to_string(), (*n).to_owned())))
        .collect()
}

/// The project groups as select options, after an empty choice.
pub async fn group_options(visit: &Visit, empty: &str) -> Result<Vec<(String, String)>, WebError> {
    let groups = visit.state.store.groups(visit.ws).await?;
    Ok(std::iter::once((String::new(), empty.to_owned()))
        .chain(groups.into_iter().map(|g| (g.id.to_string(), g.name)))
        .collect())
}

/// What the selects of a project or task form offer.
pub struct Choices {
    /// The active users the caller sees: owners and team members.
    pub people: Vec<(String, String)>,
    pub groups: Vec<(String, String)>,
    pub statuses: Vec<(String, String)>,
    pub priorities: Vec<(String, String)>,
}

impl Choices {
    /// The choices of the form of an `object` (`project`, `task`). The owner and team
    /// members the form holds stay among them even when the caller may not see them, or
    /// they were removed: a select or a checkbox without them would drop them unseen at
    /// the next save. Such a person is shown by number only, as elsewhere on the pages.
    pub async fn of(visit: &Visit, form: &FormState, object: &str) -> Result<Choices, WebError> {
        let seen = visit.people().await?;
        let mut people: Vec<(String, String)> = seen
            .iter()
            .filter(|u| u.active)
            .map(|u| (u.id.to_string(), u.display_name()))
            .collect();
        let owner = format!("{object}[ownerId]");
        let team = format!("{object}[team][]");
        let held = std::iter::once(form.get(&owner)).chain(form.all(&team));
        for id in held.filter_map(|v| v.parse::<i64>().ok()) {
            if !people.iter().any(|(p, _)| *p == id.to_string()) {
                let name = seen.iter().find(|u| u.id == id).map_or_else(
                    || format!("user {id}"),
                    |u| format!("{} (removed)", u.display_name()),
                );
                people.push((id.to_string(), name));
            }
        }
        Ok(Choices {
            people,
            groups: group_options(visit, "No group").await?,
            statuses: options(&STATUSES, None),
            priorities: options(&PRIORITIES, None),
        })
    }
}

async fn project_form(
    visit: &Visit,
    project: Option<Project>,
    form: FormState,
    status: StatusCode,
) -> Result<Response, WebError> {
    let html = ProjectForm {
        nav: visit.nav("projects"),
        project,
        choices: Choices::of(visit, &form, "project").await?,
        form,
    }
    .render()?;
    Ok(page(status, html))
}

/// `GET /projects/new`
pub async fn new_page(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    if !policy::can_create_project(&visit.actor()) {
        return Err(
            ApiError::forbidden("External users and clients cannot create projects").into(),
        );
    }
    let mut fresh = Project::new(visit.caller.user.id);
    fresh.team = vec![visit.caller.user.id];
    project_form(
        &visit,
        None,
        FormState::with_values(values(&fresh)),
        StatusCode::OK,
    )
    .await
}

/// `POST /projects/new`: `projects/add`.
pub async fn create(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (visit, posted) = form::read(&state, req).await?;
    match visit.call("projects", "add", &posted.args, None).await {
        Ok(out) => Ok(redirect(&format!("/projects/{}", super::created_id(&out)?))),
        Err(e) => refused(&visit, None, &posted, e).await,
    }
}

async fn refused(
    visit: &Visit,
    project: Option<Project>,
    posted: &Posted,
    e: ApiError,
) -> Result<Response, WebError> {
    let form = match &project {
        Some(current) => FormState::refused_edit(posted, e, values(current))?,
        None => FormState::refused(posted, e)?,
    };
    project_form(visit, project, form, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// The project of an edit page, which the caller must see and may edit.
async fn editable(visit: &Visit, id: &str) -> Result<Project, WebError> {
    let id = path_id(id)?;
    let actor = visit.actor();
    let project = api_projects::visible(&visit.reader(), &actor, id).await?;
    if !policy::can_edit_project(&actor, &api_projects::facts(&project, &actor)) {
        return Err(ApiError::forbidden(format!("You may not edit project {id}")).into());
    }
    Ok(project)
}

/// `GET /projects/{id}/edit`
pub async fn edit_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let project = editable(&visit, &id).await?;
    let form = FormState::with_values(values(&project));
    project_form(&visit, Some(project), form, StatusCode::OK).await
}

/// `POST /projects/{id}/edit`: `projects/update` at the version the form was read at.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "project[id]").await?;
    match visit
        .call("projects", "update", &posted.args, posted.version())
        .await
    {
        Ok(_) => Ok(redirect(&format!("/projects/{id}"))),
        Err(e) => {
            let project = editable(&visit, &id.to_string()).await?;
            refused(&visit, Some(project), &posted, e).await
        }
    }
}

/// `POST /projects/{id}/remove`: `projects/remove`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, _) = form::read_for(&state, &id, req, "id").await?;
    visit.call("projects", "remove", &posted.args, None).await?;
    Ok(redirect("/projects"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: i64, parent: Option<i64>) -> Task {
        let mut t = Task::new(1);
        t.id = id;
        t.parent_id = parent;
        t.parent_name = parent.map(|p| format!("task {p}"));
        t
    }

    #[test]
    fn a_page_of_tasks_is_ordered_as_a_tree() {
        // 9's parent (8) is on another page; 5 comes before its parent 6.
        let page = vec![
            task(1, None),
            task(2, Some(1)),
            task(3, Some(2)),
            task(4, None),
            task(5, Some(6)),
            task(6, Some(1)),
            task(9, Some(8)),
        ];
        let rows = tree(page, |t| t.id % 2 == 0, 0);
        let shape: Vec<(i64, usize, Option<String>)> = rows
            .iter()
            .map(|r| (r.task.id, r.depth, r.parent_elsewhere.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (1, 0, None),
                (2, 1, None),
                (3, 2, None),
                (6, 1, None),
                (5, 2, None),
                (4, 0, None),
                (9, 0, Some("task 8".into())),
            ]
        );
        assert!(rows.iter().all(|r| r.can_edit == (r.task.id % 2 == 0)));
    }
}
