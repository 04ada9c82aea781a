//! The task pages: *My work*, one task with its sub-tasks and its activity stream, the
//! task forms, posting messages, progress notes and files, editing and removing
//! activities and files. Every change is the API's own call (`tasks/*`, `activity/*`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::api::activity::{self as api_activity, PartNames};
use crate::api::{projects as api_projects, tasks as api_tasks, AppState};
use crate::domain::policy::{self, Actor, Target};
use crate::domain::work::{Activity, ActivityType, FileMeta, Project, Task};
use crate::http::args::Args;
use crate::http::body::{self, UploadLimits};
use crate::http::error::ApiError;
use crate::http::response::Output;
use crate::store::{Filter, ListQuery};
use crate::web::form::{self, FormState};
use crate::web::projects::{bit, Choices};
use crate::web::view::{self, Nav, Pager, People};
use crate::web::{page, path_id, redirect, render, Visit, WebError};

const ACTIVITIES_PER_PAGE: i64 = 50;
const SUB_TASKS_SHOWN: i64 = 200;
/// My work reads at most this many of each kind (in a team, owned).
const MY_WORK_MAX: i64 = 200;

/// A task in a list, with its project's name.
pub struct TaskItem {
    pub task: Task,
    pub project: Option<(i64, String)>,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "my_work.html")]
struct MyWorkPage {
    nav: Nav,
    tasks: Vec<TaskItem>,
    more: bool,
}

/// `GET /`: the caller's open tasks, in their team or their own, overdue first, then by
/// deadline (those without one last).
pub async fn my_work(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let actor = visit.actor();
    let me = actor.user_id;
    let mut tasks: HashMap<i64, Task> = HashMap::new();
    let mut more = false;
    for mine in [Filter::AssignedTo(me), Filter::OwnerId(me)] {
        let (found, _) = state
            .store
            .tasks(
                visit.ws,
                actor,
                ListQuery {
                    filters: vec![mine, Filter::Active],
                    offset: 0,
                    count: Some(MY_WORK_MAX),
                },
                false,
            )
            .await?;
        more |= found.total > MY_WORK_MAX;
        tasks.extend(found.items.into_iter().map(|t| (t.id, t)));
    }
    // The page names each task's project, where the caller may see it.
    let mut ids: Vec<i64> = tasks.values().filter_map(|t| t.project_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let listed = if ids.is_empty() {
        Vec::new()
    } else {
        state.store.projects_by_ids(visit.ws, ids).await?
    };
    let projects: HashMap<i64, String> = listed
        .into_iter()
        .filter_map(|p| named(&actor, Some(p)))
        .map(|p| (p.id, p.name))
        .collect();
    let now = crate::domain::now();
    let mut tasks: Vec<TaskItem> = tasks
        .into_values()
        .map(|task| TaskItem {
            project: task
                .project_id
                .and_then(|p| projects.get(&p).map(|n| (p, n.clone()))),
            overdue: view::overdue(&task, now),
            task,
        })
        .collect();
    // Overdue tasks have the earliest deadlines: by deadline is overdue first.
    tasks.sort_by_key(|t| (t.task.end_date.is_none(), t.task.end_date, t.task.id));
    render(&MyWorkPage {
        nav: visit.nav("work"),
        tasks,
        more,
    })
}

/// An activity in a task's stream, with its files.
pub struct ActivityRow {
    pub activity: Activity,
    pub files: Vec<FileMeta>,
    pub can_edit: bool,
}

impl ActivityRow {
    pub fn kind(&self) -> &'static str {
        match self.activity.kind {
            ActivityType::Msg => "Message",
            ActivityType::Progress => "Progress note",
            ActivityType::File => "File note",
            _ => "Link",
        }
    }
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    nav: Nav,
    task: Task,
    project: Option<Project>,
    people: People,
    sub_tasks: Vec<Task>,
    activities: Vec<ActivityRow>,
    pager: Pager,
    can_edit: bool,
    can_add_sub_task: bool,
    can_post_message: bool,
    can_post_progress: bool,
    /// Whether the caller may attach files to a file note of its own (clients may not:
    /// they edit only their messages).
    can_upload: bool,
    message: FormState,
    progress: FormState,
    upload: FormState,
}

/// The forms of a task page, as they are shown again after a refusal.
#[derive(Default)]
struct TaskForms {
    message: FormState,
    progress: FormState,
    upload: FormState,
}

/// `GET /tasks/{id}?page=`
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let id = path_id(&id)?;
    let page_no = view::page_number(req.uri().query());
    task_page(&visit, id, page_no, TaskForms::default(), StatusCode::OK).await
}

async fn task_page(
    visit: &Visit,
    id: i64,
    page_no: i64,
    forms: TaskForms,
    status: StatusCode,
) -> Result<Response, WebError> {
    let actor = visit.actor();
    let (mut task, project) = api_tasks::visible(&visit.reader(), &actor, id).await?;
    api_tasks::hide_unseen_parents(&visit.reader(), &actor, std::slice::from_mut(&mut task))
        .await?;
    let store = &visit.state.store;
    let list = |filters: Vec<Filter>, offset: i64, count: i64| ListQuery {
        filters,
        offset,
        count: Some(count),
    };
    let (sub_tasks, _) = store
        .tasks(
            visit.ws,
            actor,
            list(vec![Filter::ParentId(id)], 0, SUB_TASKS_SHOWN),
            false,
        )
        .await?;
    let found = store
        .activities(
            visit.ws,
            actor,
            list(
                vec![Filter::TaskId(id)],
                (page_no - 1) * ACTIVITIES_PER_PAGE,
                ACTIVITIES_PER_PAGE,
            ),
        )
        .await?;
    let ids: Vec<i64> = found.items.iter().map(|a| a.id).collect();
    let mut files: HashMap<i64, Vec<FileMeta>> = HashMap::new();
    for f in store.files_of_activities(visit.ws, ids).await? {
        files.entry(f.activity_id).or_default().push(f);
    }
    let activities = found
        .items
        .into_iter()
        .map(|a| ActivityRow {
            files: files.remove(&a.id).unwrap_or_default(),
            can_edit: policy::can_edit_activity(&actor, &api_activity::facts(&a, &actor)),
            activity: a,
        })
        .collect();
    let facts = api_tasks::facts(&task, project.as_ref(), &actor);
    let can_add_sub_task = match &project {
        Some(p) => policy::can_create_task_in(&actor, &api_projects::facts(p, &actor)),
        None => policy::can_create_project(&actor),
    };
    let html = TaskPage {
        nav: visit.nav("projects"),
        people: visit.names().await?,
        sub_tasks: sub_tasks.items,
        activities,
        pager: Pager::new(
            page_no,
            ACTIVITIES_PER_PAGE,
            found.total,
            format!("/tasks/{id}?"),
        ),
        can_edit: policy::can_edit_task(&actor, &facts),
        can_add_sub_task,
        can_post_message: policy::can_post_message(&actor, &Target::Task(facts)),
        can_post_progress: policy::can_post_progress(&actor, &facts),
        can_upload: policy::can_post_message(&actor, &Target::Task(facts))
            && policy::can_edit_activity(
                &actor,
                &policy::ActivityFacts {
                    is_owner: true,
                    is_message: false,
                    hide_from_clients: false,
                },
            ),
        message: forms.message,
        progress: forms.progress,
        upload: forms.upload,
        task,
        project: named(&actor, project),
    }
    .render()?;
    Ok(page(status, html))
}

/// `POST /tasks/{id}/activities`: a message or a progress note, by `activity/add`.
pub async fn post_activity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "activity[taskId]").await?;
    let progress = posted.value("activity[type]") == Some("progress");
    match visit.call("activity", "add", &posted.args, None).await {
        Ok(_) => Ok(redirect(&format!("/tasks/{id}#activities"))),
        Err(e) => {
            let form = FormState::refused(&posted, e)?;
            let forms = if progress {
                TaskForms {
                    progress: form,
                    ..TaskForms::default()
                }
            } else {
                TaskForms {
                    message: form,
                    ..TaskForms::default()
                }
            };
            task_page(&visit, id, 1, forms, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// `POST /tasks/{id}/files`: a file note with the files of the form, by `activity/add`
/// and `attachFiles`. Nothing of the files is read before the caller is known, the
/// form's token checked and the note added: the body stops at the first file part.
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let id = path_id(&id)?;
    let (parts, body) = req.into_parts();
    let limits = UploadLimits {
        blobs: state.files.clone(),
        max_file_bytes: state.config.max_file_bytes,
        max_files: state.config.max_files_per_request,
    };
    let (mut args, file_parts) = body::read_args(&parts, body, Some(limits)).await?;
    visit.check_csrf(args.scalar("csrf").text()?.value().as_deref())?;
    let text = args.scalar("text").text()?.value();
    let refused = |message: &str| {
        let mut form = FormState::default();
        form.problem = Some(message.to_owned());
        TaskForms {
            upload: form,
            ..TaskForms::default()
        }
    };
    let Some(file_parts) = file_parts else {
        let forms = refused("Choose at least one file.");
        return task_page(&visit, id, 1, forms, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let mut note = Args::default();
    note.insert("activity[taskId]", &id.to_string())?;
    note.insert("activity[type]", "file")?;
    if let Some(text) = &text {
        note.insert("activity[text]", text)?;
    }
    let added = visit.call("activity", "add", &note, None).await?;
    let activity_id = super::created_id(&added)?;
    args.insert("activityId", &activity_id.to_string())?;
    let headers = HeaderMap::new();
    let mut ctx = visit.ctx(&args, &headers);
    ctx.file_parts = std::sync::Mutex::new(Some(file_parts));
    match api_activity::attach(&ctx, PartNames::InOrder).await {
        Ok(_) => Ok(redirect(&format!("/tasks/{id}#activity-{activity_id}"))),
        Err(e) => {
            // No file note without its files.
            let _ = state
                .store
                .remove_activity(visit.ws, activity_id, None)
                .await;
            match e {
                ApiError::TooLarge(m) | ApiError::BadRequest(m) => {
                    let forms = refused(&m);
                    task_page(&visit, id, 1, forms, StatusCode::UNPROCESSABLE_ENTITY).await
                }
                e => Err(e.into()),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "task_form.html")]
struct TaskForm {
    nav: Nav,
    /// `None` for a new task.
    task: Option<Task>,
    project: Option<Project>,
    form: FormState,
    choices: Choices,
}

fn values(t: &Task) -> Vec<(String, String)> {
    let some = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut v = vec![
        ("task[name]", t.name.clone()),
        (
            "task[description]",
            t.description.clone().unwrap_or_default(),
        ),
        ("task[tags]", t.tags.clone().unwrap_or_default()),
        ("task[projectId]", some(t.project_id)),
        ("task[parentId]", some(t.parent_id)),
        ("task[ownerId]", t.owner_id.to_string()),
        ("task[groupId]", some(t.group_id)),
        (
            "task[startDate]",
            t.start_date.as_ref().map(view::day).unwrap_or_default(),
        ),
        (
            "task[endDate]",
            t.end_date.as_ref().map(view::day).unwrap_or_default(),
        ),
        ("task[priority]", t.priority.to_string()),
        ("task[status]", t.status.to_string()),
        (
            "task[estimatedTime]",
            t.estimated_time
                .as_ref()
                .map(view::hours)
                .unwrap_or_default(),
        ),
        ("task[hidden]", bit(t.hidden)),
        ("task[flag]", t.flag.to_string()),
        ("task[notifyProjectTeam]", bit(t.notify_project_team)),
        ("task[notifyTaskTeam]", bit(t.notify_task_team)),
        ("task[notifyClient]", bit(t.notify_client)),
    ];
    for m in &t.team {
        v.push(("task[team][]", m.to_string()));
    }
    v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A task's project as its pages name it: only to who may see it, since an external sees
/// (and edits) the tasks of their task teams in projects they may not see.
fn named(actor: &Actor, project: Option<Project>) -> Option<Project> {
    project.filter(|p| api_projects::sees(actor, p))
}

async fn task_form(
    visit: &Visit,
    task: Option<Task>,
    project: Option<Project>,
    form: FormState,
    status: StatusCode,
) -> Result<Response, WebError> {
    let html = TaskForm {
        nav: visit.nav("projects"),
        task,
        project: named(&visit.actor(), project),
        choices: Choices::of(visit, &form, "task").await?,
        form,
    }
    .render()?;
    Ok(page(status, html))
}

/// The project a new task goes into, which the caller must see.
async fn project_of_new(visit: &Visit, query: Option<&str>) -> Result<Option<Project>, WebError> {
    let Some(id) = view::query_value(query, "project") else {
        return Ok(None);
    };
    let id = path_id(&id)?;
    let project = crate::api::projects::visible(&visit.reader(), &visit.actor(), id).await?;
    Ok(Some(project))
}

/// `GET /tasks/new?project=&parent=`
pub async fn new_page(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let actor = visit.actor();
    let project = project_of_new(&visit, req.uri().query()).await?;
    let allowed = match &project {
        Some(p) => policy::can_create_task_in(&actor, &api_projects::facts(p, &actor)),
        None => policy::can_create_project(&actor),
    };
    if !allowed {
        return Err(ApiError::forbidden("You may not add tasks here").into());
    }
    let mut fresh = Task::new(actor.user_id);
    fresh.project_id = project.as_ref().map(|p| p.id);
    fresh.parent_id = view::query_value(req.uri().query(), "parent").and_then(|p| p.parse().ok());
    fresh.team = vec![actor.user_id];
    let form = FormState::with_values(values(&fresh));
    task_form(&visit, None, project, form, StatusCode::OK).await
}

/// `POST /tasks/new`: `tasks/add`.
pub async fn create(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (visit, posted) = form::read(&state, req).await?;
    match visit.call("tasks", "add", &posted.args, None).await {
        Ok(out) => Ok(redirect(&format!("/tasks/{}", super::created_id(&out)?))),
        Err(e) => {
            let project = match posted.value("task[projectId]") {
                Some(p) if !p.is_empty() => {
                    project_of_new(&visit, Some(&format!("project={}", view::url_encode(p))))
                        .await?
                }
                _ => None,
            };
            let form = FormState::refused(&posted, e)?;
            task_form(
                &visit,
                None,
                project,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// The task of an edit page, which the caller must see and may edit.
async fn editable(visit: &Visit, id: i64) -> Result<(Task, Option<Project>), WebError> {
    let actor = visit.actor();
    let (task, project) = api_tasks::visible(&visit.reader(), &actor, id).await?;
    if !policy::can_edit_task(&actor, &api_tasks::facts(&task, project.as_ref(), &actor)) {
        return Err(ApiError::forbidden(format!("You may not edit task {id}")).into());
    }
    Ok((task, project))
}

/// `GET /tasks/{id}/edit`
pub async fn edit_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let (task, project) = editable(&visit, path_id(&id)?).await?;
    let form = FormState::with_values(values(&task));
    task_form(&visit, Some(task), project, form, StatusCode::OK).await
}

/// `POST /tasks/{id}/edit`: `tasks/update` at the version the form was read at.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "task[id]").await?;
    match visit
        .call("tasks", "update", &posted.args, posted.version())
        .await
    {
        Ok(_) => Ok(redirect(&format!("/tasks/{id}"))),
        Err(e) => {
            let (task, project) = editable(&visit, id).await?;
            let form = FormState::refused_edit(&posted, e, values(&task))?;
            task_form(
                &visit,
                Some(task),
                project,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// `POST /tasks/{id}/remove`: `tasks/remove`; back to its project.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "id").await?;
    let (task, _) = editable(&visit, id).await?;
    visit.call("tasks", "remove", &posted.args, None).await?;
    Ok(redirect(&match (task.parent_id, task.project_id) {
        (Some(parent), _) => format!("/tasks/{parent}"),
        (None, Some(project)) => format!("/projects/{project}"),
        (None, None) => "/".into(),
    }))
}

#[derive(Template)]
#[template(path = "activity_form.html")]
struct ActivityForm {
    nav: Nav,
    activity: Activity,
    form: FormState,
}

fn activity_values(a: &Activity) -> Vec<(String, String)> {
    let mut v = vec![
        ("activity[text]", a.text.clone().unwrap_or_default()),
        ("activity[hideFromClients]", bit(a.hide_from_clients)),
    ];
    if let Some(p) = a.progress {
        v.push(("activity[progress]", p.to_string()));
    }
    if let Some(h) = a.hours_done {
        v.push(("activity[hoursDone]", view::hours(&h)));
    }
    v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The activity of an edit page, which the caller must see and may edit.
async fn editable_activity(visit: &Visit, id: i64) -> Result<Activity, WebError> {
    let actor = visit.actor();
    let (activity, _) = api_activity::visible(&visit.reader(), &actor, id).await?;
    if !policy::can_edit_activity(&actor, &api_activity::facts(&activity, &actor)) {
        return Err(ApiError::forbidden(format!("You may not edit activity {id}")).into());
    }
    Ok(activity)
}

/// The page an activity is shown on, at `anchor`.
fn activity_home(a: &Activity, anchor: &str) -> String {
    match (a.task_id, a.project_id) {
        (Some(t), _) => format!("/tasks/{t}#{anchor}"),
        (None, Some(p)) => format!("/projects/{p}"),
        (None, None) => "/".into(),
    }
}

/// `GET /activities/{id}/edit`
pub async fn activity_edit_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let activity = editable_activity(&visit, path_id(&id)?).await?;
    render(&ActivityForm {
        nav: visit.nav("projects"),
        form: FormState::with_values(activity_values(&activity)),
        activity,
    })
}

/// `POST /activities/{id}/edit`: `activity/update`.
pub async fn activity_update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "activity[id]").await?;
    match visit
        .call("activity", "update", &posted.args, posted.version())
        .await
    {
        Ok(_) => {
            let activity = editable_activity(&visit, id).await?;
            Ok(redirect(&activity_home(
                &activity,
                &format!("activity-{id}"),
            )))
        }
        Err(e) => {
            let activity = editable_activity(&visit, id).await?;
            let html = ActivityForm {
                nav: visit.nav("projects"),
                form: FormState::refused_edit(&posted, e, activity_values(&activity))?,
                activity,
            }
            .render()?;
            Ok(page(StatusCode::UNPROCESSABLE_ENTITY, html))
        }
    }
}

/// `POST /activities/{id}/remove`: `activity/remove`.
pub async fn activity_remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "id").await?;
    let activity = editable_activity(&visit, id).await?;
    visit.call("activity", "remove", &posted.args, None).await?;
    Ok(redirect(&activity_home(&activity, "activities")))
}

/// `GET /files/{id}`: `activity/downloadFile`, with the request's `Range` and
/// `If-None-Match`.
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let id = path_id(&id)?;
    let mut args = Args::default();
    args.insert("id", &id.to_string())?;
    let ctx = visit.ctx(&args, req.headers());
    match api_activity::download_file(&ctx).await? {
        Output::Download(res) => Ok(res),
        _ => Err(ApiError::Internal(anyhow::anyhow!("downloadFile answered no file")).into()),
    }
}

/// `POST /files/{id}/remove`: `activity/removeFile`; back to the page the form was on.
pub async fn file_remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, _) = form::read_for(&state, &id, req, "id").await?;
    visit
        .call("activity", "removeFile", &posted.args, None)
        .await?;
    let back = super::session::safe_next(posted.value("back").map(str::to_owned));
    Ok(redirect(&back))
}
