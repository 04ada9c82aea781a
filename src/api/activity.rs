//! activity: add, getById, getList (update and remove are the shared steps of
//! [`crate::api::work`]), and the files of activities: attachFiles, getFilesList,
//! removeFile, downloadFile.

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, RANGE,
};
use http::{HeaderValue, StatusCode};

use crate::api::work::Work;
use crate::api::{
    list_query, notify, projects, report, required_id, set_nullable, set_required, switch, tasks,
    Ctx, Validation,
};
use crate::domain::now;
use crate::domain::policy::{self, ActivityFacts, Actor, Target};
use crate::domain::work::{validate_activity, Activity, ActivityType, FileMeta, Project, Task};
use crate::files::clean_name;
use crate::http::args::{Given, Obj};
use crate::http::error::ApiError;
use crate::http::response::{Output, Record, Value};
use crate::store::Expected;

pub(crate) const FILTERS: &[&str] = &[
    "projectId",
    "taskId",
    "type",
    "groupId",
    "assignedTo",
    "active",
    "hide_non_active",
    "hide_old_object_period",
    "updatedFrom",
    "updatedBefore",
];

pub(crate) const FILE_FILTERS: &[&str] = &[
    "projectId",
    "taskId",
    "activityId",
    "ownerId",
    "createdFrom",
    "createdBefore",
    "updatedFrom",
    "updatedBefore",
];

pub fn facts(a: &Activity, actor: &Actor) -> ActivityFacts {
    ActivityFacts {
        is_owner: a.owner_id == actor.user_id,
        is_message: a.kind == ActivityType::Msg,
        hide_from_clients: a.hide_from_clients,
    }
}

/// The one description of a file.
pub fn file_record(f: &FileMeta, actor: &Actor) -> Record {
    Record::new("file")
        .with("id", Value::Id(f.id))
        .with("activityId", f.activity_id)
        .with("taskId", f.task_id)
        .with("projectId", f.project_id)
        .with("name", f.name.as_str())
        .with("size", f.size)
        .with("mimeType", f.mime_type.as_str())
        .with("sha256", f.sha256.as_str())
        .with("ownerId", f.owner_id)
        .with("createdAt", Value::Date(f.created_at))
        .with(
            "can_edit",
            policy::can_edit_activity(actor, &file_facts(f, actor)),
        )
}

/// A file's rights follow its own owner and its activity's type.
fn file_facts(f: &FileMeta, actor: &Actor) -> ActivityFacts {
    ActivityFacts {
        is_owner: f.owner_id == actor.user_id,
        is_message: f.on_message,
        hide_from_clients: false,
    }
}

/// What an activity record may carry beyond its own attributes.
#[derive(Default)]
struct Extras {
    names: Option<(Option<String>, Option<String>)>,
    files: Option<Vec<Record>>,
}

/// The one description of an activity.
fn record(a: &Activity, actor: &Actor, extras: Extras) -> Record {
    let mut r = Record::new("activity")
        .versioned(a.version)
        .with("id", Value::Id(a.id))
        .with("taskId", a.task_id);
    let names = extras.names.clone();
    if let Some((task_name, _)) = &names {
        r = r.with("taskName", task_name.clone());
    }
    r = r.with("projectId", a.project_id);
    if let Some((_, project_name)) = &names {
        r = r.with("projectName", project_name.clone());
    }
    r = r
        .with("type", a.kind.as_str())
        .with("text", a.text.clone())
        .with("ownerId", a.owner_id)
        .with("progress", a.progress)
        .with("hoursDone", a.hours_done.map_or(Value::Null, Value::Float))
        .with("createdAt", Value::Date(a.created_at))
        .with("updatedAt", Value::Date(a.updated_at))
        .with("notifyProjectTeam", a.notify_project_team)
        .with("notifyTaskTeam", a.notify_task_team)
        .with("notifyClient", a.notify_client)
        .with("hideFromClients", a.hide_from_clients)
        .with("date", Value::Date(a.date));
    if let Some(files) = extras.files {
        r = r.with("files", Value::Records(files));
    }
    r.with(
        "can_edit",
        policy::can_edit_activity(actor, &facts(a, actor)),
    )
}

/// The task (with its project) or the project an activity is posted to.
pub struct Posted {
    task: Option<Task>,
    project: Option<Project>,
}

impl Posted {
    /// Where it is posted, as the policy sees it for one caller.
    pub fn target(&self, actor: &Actor) -> Target {
        match &self.task {
            Some(t) => Target::Task(tasks::facts(t, self.project.as_ref(), actor)),
            None => Target::Project(projects::facts(
                self.project
                    .as_ref()
                    .expect("an activity is posted to a task or a project"),
                actor,
            )),
        }
    }
}

/// Where an activity is (or will be) posted, if the caller sees it; 404 otherwise. The
/// project of a task's activity is the task's.
async fn posted(
    ctx: &Ctx<'_>,
    actor: &Actor,
    task_id: Option<i64>,
    project_id: Option<i64>,
) -> Result<Posted, ApiError> {
    if let Some(tid) = task_id {
        let (task, project) = tasks::visible(ctx, actor, tid).await?;
        return Ok(Posted {
            task: Some(task),
            project,
        });
    }
    if let Some(pid) = project_id {
        let project = projects::visible(ctx, actor, pid).await?;
        return Ok(Posted {
            task: None,
            project: Some(project),
        });
    }
    Err(ApiError::required("activity[taskId]"))
}

/// An activity the caller may see, with where it is posted; 404 otherwise.
pub async fn visible(
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: i64,
) -> Result<(Activity, Posted), ApiError> {
    let not_found = || ApiError::not_found("Activity", id);
    let a = ctx
        .state
        .store
        .activity(ctx.ws, id)
        .await?
        .ok_or_else(not_found)?;
    let posted = match posted(ctx, actor, a.task_id, a.project_id).await {
        Ok(p) => p,
        Err(ApiError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e),
    };
    if policy::can_see_activity(actor, &posted.target(actor), &facts(&a, actor)) {
        Ok((a, posted))
    } else {
        Err(not_found())
    }
}

fn apply(obj: &Obj<'_>, a: &mut Activity, v: &mut Validation) -> Result<(), ApiError> {
    let f = |attr: &'static str| obj.field(attr);
    set_nullable(&mut a.text, f("text").text()?);
    set_nullable(&mut a.progress, f("progress").int()?);
    set_nullable(&mut a.hours_done, f("hoursDone").float()?);
    set_required(
        &mut a.hide_from_clients,
        f("hideFromClients").bool()?,
        "activity[hideFromClients]",
        v,
    );
    set_required(&mut a.date, f("date").date()?, "activity[date]", v);
    set_required(
        &mut a.notify_project_team,
        f("notifyProjectTeam").bool()?,
        "activity[notifyProjectTeam]",
        v,
    );
    set_required(
        &mut a.notify_task_team,
        f("notifyTaskTeam").bool()?,
        "activity[notifyTaskTeam]",
        v,
    );
    set_required(
        &mut a.notify_client,
        f("notifyClient").bool()?,
        "activity[notifyClient]",
        v,
    );
    // Progress notes change the task's status, so clients always see them.
    if a.kind == ActivityType::Progress {
        a.hide_from_clients = false;
    }
    Ok(())
}

async fn save(
    ctx: &Ctx<'_>,
    actor: &Actor,
    a: Activity,
    posted: &Posted,
    mut v: Validation,
    notify_users: Vec<i64>,
    action: &str,
) -> Result<Output, ApiError> {
    report("activity", validate_activity(&a), &mut v);
    v.finish()?;
    let flags = notify::Flags {
        project_team: a.notify_project_team,
        task_team: a.notify_task_team,
        client: a.notify_client,
        users: notify_users,
    };
    let about = notify::About {
        kind: match a.kind {
            ActivityType::Msg => "message",
            ActivityType::Progress => "progress note",
            ActivityType::File => "file note",
            _ => "link",
        },
        action,
        project: posted.project.as_ref(),
        task: posted.task.as_ref(),
        text: a.text.as_deref(),
    };
    let may_see = |r: &Actor| policy::can_see_activity(r, &posted.target(r), &facts(&a, r));
    let mail = notify::tell(ctx, &flags, about, may_see).await?;
    let saved = notify::save_with(ctx, mail, |mail| {
        ctx.state.store.save_activity(ctx.ws, a, mail, now())
    })
    .await?;
    Ok(Output::Object(record(&saved, actor, Extras::default())))
}

pub async fn add(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let obj = ctx.args.object(&["activity"]);
    let mut v = Validation::default();
    let kind = match obj.field("type").text()? {
        Given::Value(t) => ActivityType::parse(t.trim()).unwrap_or_else(|| {
            v.fail(
                "activity[type]",
                "invalid",
                "must be msg, progress, file, googledocs, ss_boards or ff_boards",
            );
            ActivityType::Msg
        }),
        _ => ActivityType::Msg,
    };
    let task_id = obj.field("taskId").int()?.value();
    let project_id = obj.field("projectId").int()?.value();
    let posted = posted(ctx, &actor, task_id, project_id).await?;
    let target = posted.target(&actor);
    let derived_project = match &posted.task {
        Some(t) => t.project_id,
        None => project_id,
    };
    let allowed = match (&target, kind) {
        (Target::Task(t), ActivityType::Progress) => policy::can_post_progress(&actor, t),
        (Target::Project(_), ActivityType::Progress) => true, // refused as invalid below
        (t, _) => policy::can_post_message(&actor, t),
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "You may not post a progress note on this task",
        ));
    }
    let now = now();
    let mut a = Activity {
        id: 0,
        project_id: derived_project,
        task_id,
        kind,
        text: None,
        owner_id: actor.user_id,
        progress: None,
        hours_done: None,
        hide_from_clients: false,
        date: now,
        notify_project_team: false,
        notify_task_team: false,
        notify_client: false,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    apply(&obj, &mut a, &mut v)?;
    let notify_users = notify::notify_users(&obj)?;
    save(ctx, &actor, a, &posted, v, notify_users, "posted").await
}

impl Work for Activity {
    const KIND: &'static str = "activity";
    const TITLE: &'static str = "Activity";
    type Place = Posted;

    fn version(&self) -> i64 {
        self.version
    }

    async fn visible(
        ctx: &Ctx<'_>,
        actor: &Actor,
        id: i64,
    ) -> Result<(Activity, Posted), ApiError> {
        visible(ctx, actor, id).await
    }

    fn can_edit(&self, actor: &Actor, _: &Posted) -> bool {
        policy::can_edit_activity(actor, &facts(self, actor))
    }

    fn apply(&mut self, obj: &Obj<'_>, v: &mut Validation) -> Result<(), ApiError> {
        apply(obj, self, v)
    }

    async fn save_update(
        ctx: &Ctx<'_>,
        actor: &Actor,
        next: Activity,
        _: &Activity,
        posted: &Posted,
        v: Validation,
        notify_users: Vec<i64>,
    ) -> Result<Output, ApiError> {
        save(ctx, actor, next, posted, v, notify_users, "updated").await
    }

    async fn remove_stored(
        ctx: &Ctx<'_>,
        id: i64,
        expected: Expected,
    ) -> Result<Option<Vec<String>>, ApiError> {
        Ok(ctx
            .state
            .store
            .remove_activity(ctx.ws, id, expected)
            .await?)
    }
}

/// Task and project names, and files, for activities that asked for them.
async fn extras_for(
    ctx: &Ctx<'_>,
    actor: &Actor,
    list: &[Activity],
    with_names: bool,
    with_files: bool,
) -> Result<Vec<Extras>, ApiError> {
    let store = &ctx.state.store;
    let mut task_names = HashMap::new();
    let mut project_names = HashMap::new();
    if with_names {
        for a in list {
            if let Some(tid) = a.task_id {
                if let std::collections::hash_map::Entry::Vacant(e) = task_names.entry(tid) {
                    e.insert(store.task(ctx.ws, tid).await?.map(|t| t.name));
                }
            }
        }
        let mut ids: Vec<i64> = list.iter().filter_map(|a| a.project_id).collect();
        ids.sort_unstable();
        ids.dedup();
        // A task's activity is seen by who sees the task, and an external sees the tasks
        // of their task teams in projects they may not see: those are not named.
        for p in store.projects_by_ids(ctx.ws, ids).await? {
            if projects::sees(actor, &p) {
                project_names.insert(p.id, p.name);
            }
        }
    }
    let mut files: BTreeMap<i64, Vec<Record>> = BTreeMap::new();
    if with_files {
        let ids = list.iter().map(|a| a.id).collect();
        for f in store.files_of_activities(ctx.ws, ids).await? {
            files
                .entry(f.activity_id)
                .or_default()
                .push(file_record(&f, actor));
        }
    }
    Ok(list
        .iter()
        .map(|a| Extras {
            names: with_names.then(|| {
                (
                    a.task_id
                        .and_then(|t| task_names.get(&t).cloned().flatten()),
                    a.project_id.and_then(|p| project_names.get(&p).cloned()),
                )
            }),
            files: with_files.then(|| files.remove(&a.id).unwrap_or_default()),
        })
        .collect())
}

pub async fn get_by_id(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let (a, _) = visible(ctx, &actor, id).await?;
    let with_names = switch(ctx.args, "withNames")?;
    let with_files = switch(ctx.args, "withFiles")?;
    let extras = extras_for(
        ctx,
        &actor,
        std::slice::from_ref(&a),
        with_names,
        with_files,
    )
    .await?;
    let extra = extras.into_iter().next().unwrap_or_default();
    Ok(Output::Object(record(&a, &actor, extra)))
}

pub async fn get_list(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let query = list_query(ctx.args, FILTERS, true)?;
    let offset = query.offset;
    let with_names = switch(ctx.args, "withNames")?;
    let with_files = switch(ctx.args, "withFiles")?;
    let page = ctx.state.store.activities(ctx.ws, actor, query).await?;
    let extras = extras_for(ctx, &actor, &page.items, with_names, with_files).await?;
    Ok(Output::List {
        kind: "activity",
        items: page
            .items
            .iter()
            .zip(extras)
            .map(|(a, e)| record(a, &actor, e))
            .collect(),
        total: page.total,
        offset,
    })
}

/// One file of an attachFiles request, by its index `n` in `files[n]`.
struct Incoming {
    name: Option<String>,
    content_type: Option<String>,
    blob: crate::files::StagedBlob,
}

/// `files[1][content]` or `files[1]` → "1".
fn file_index(field: &str) -> Option<&str> {
    let rest = field.strip_prefix("files[")?;
    let (index, tail) = rest.split_once(']')?;
    (tail.is_empty() || tail == "[content]").then_some(index)
}

/// How the file parts of a body are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartNames {
    /// The API's: `files[n]` or `files[n][content]`.
    Indexed,
    /// A browser's `<input type="file" name="files" multiple>`: every part `files`,
    /// numbered in the order they come.
    InOrder,
}

pub async fn attach_files(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    attach(ctx, PartNames::Indexed).await
}

/// attachFiles, with the file parts named as `names` says.
pub async fn attach(ctx: &Ctx<'_>, names: PartNames) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let file_parts = ctx
        .file_parts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if file_parts.is_some() && ctx.args.scalar("activityId").text()?.is_absent() {
        return Err(ApiError::bad_request(
            "activityId, and the credentials, must come before the first file part",
        ));
    }
    let activity_id = required_id(ctx.args.scalar("activityId"))?;
    let (activity, _) = visible(ctx, &actor, activity_id).await?;
    if !policy::can_edit_activity(&actor, &facts(&activity, &actor)) {
        return Err(ApiError::forbidden(format!(
            "You may not attach files to activity {activity_id}"
        )));
    }
    // Only now, for a caller allowed to attach, is the rest of the body read.
    let mut args = ctx.args.clone();
    let uploads = match file_parts {
        Some(parts) => parts.read(&mut args).await?,
        None => Vec::new(),
    };
    let mut incoming: BTreeMap<String, Incoming> = BTreeMap::new();
    for (n, upload) in uploads.into_iter().enumerate() {
        let index = match names {
            PartNames::Indexed => file_index(&upload.field).map(str::to_owned),
            PartNames::InOrder => (upload.field == "files").then(|| format!("{n:06}")),
        };
        let Some(index) = index else {
            return Err(ApiError::bad_request(format!(
                "{}: file parts are named files[n][content] or files[n]",
                upload.field
            )));
        };
        incoming.insert(
            index,
            Incoming {
                name: upload.file_name,
                content_type: upload.content_type,
                blob: upload.blob,
            },
        );
    }
    // Small files may come base64-encoded in a form: files[n][content].
    for index in args.keys_of("files")? {
        if incoming.contains_key(index) {
            continue;
        }
        let Some(text) = args.nested_text("files", index, "content")? else {
            continue;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| {
                ApiError::invalid_argument(&format!("files[{index}][content]"), "expected base64")
            })?;
        if bytes.len() as u64 > ctx.state.config.max_file_bytes {
            return Err(ApiError::TooLarge(format!(
                "files[{index}]: the file is too large"
            )));
        }
        let storage_error = |e: std::io::Error| ApiError::Internal(e.into());
        let mut staging = ctx.state.files.stage().await.map_err(storage_error)?;
        staging.write(&bytes).await.map_err(storage_error)?;
        incoming.insert(
            index.to_owned(),
            Incoming {
                name: None,
                content_type: None,
                blob: staging.finish().await.map_err(storage_error)?,
            },
        );
    }
    if incoming.is_empty() {
        return Err(ApiError::required("files"));
    }
    if incoming.len() > ctx.state.config.max_files_per_request {
        return Err(ApiError::TooLarge(format!(
            "at most {} files per request",
            ctx.state.config.max_files_per_request
        )));
    }
    let mut metas = Vec::with_capacity(incoming.len());
    let mut blobs = Vec::with_capacity(incoming.len());
    for (index, file) in incoming {
        let name = args
            .nested_text("files", &index, "name")?
            .or(file.name)
            .unwrap_or_default();
        metas.push(FileMeta {
            id: 0,
            activity_id,
            task_id: activity.task_id,
            project_id: activity.project_id,
            name: clean_name(&name),
            size: file.blob.size as i64,
            mime_type: file
                .content_type
                .filter(|m| m.len() <= 255 && !m.contains(char::is_control))
                .unwrap_or_else(|| "application/octet-stream".into()),
            sha256: file.blob.sha256.clone(),
            storage_key: file.blob.key.clone(),
            owner_id: actor.user_id,
            created_at: 0,
            on_message: activity.kind == ActivityType::Msg,
        });
        blobs.push(file.blob);
    }
    // Blobs are durable under their keys before the rows that name them are committed.
    for blob in &mut blobs {
        blob.persist()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let keys: Vec<String> = blobs.iter().map(|b| b.key.clone()).collect();
    let saved = match ctx.state.store.add_files(ctx.ws, metas, now()).await {
        Ok(saved) => saved,
        Err(e) => {
            ctx.state.files.remove_all(&keys).await;
            // The activity removed by another request since it was checked: the rows
            // would name nothing (the foreign key refused them), so it is 404 as for
            // any activity that is gone, not a 500 (found by schemathesis).
            if ctx
                .state
                .store
                .activity(ctx.ws, activity_id)
                .await?
                .is_none()
            {
                return Err(ApiError::not_found("Activity", activity_id));
            }
            return Err(e.into());
        }
    };
    Ok(Output::all(
        "file",
        saved.iter().map(|f| file_record(f, &actor)).collect(),
    ))
}

pub async fn get_files_list(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let query = list_query(ctx.args, FILE_FILTERS, true)?;
    let offset = query.offset;
    let page = ctx.state.store.files(ctx.ws, actor, query).await?;
    Ok(Output::List {
        kind: "file",
        items: page.items.iter().map(|f| file_record(f, &actor)).collect(),
        total: page.total,
        offset,
    })
}

/// A file the caller may see (through its activity), with that activity; 404 otherwise.
async fn visible_file(
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: i64,
) -> Result<(FileMeta, Activity), ApiError> {
    let not_found = || ApiError::not_found("File", id);
    let file = ctx
        .state
        .store
        .file(ctx.ws, id)
        .await?
        .ok_or_else(not_found)?;
    match visible(ctx, actor, file.activity_id).await {
        Ok((activity, _)) => Ok((file, activity)),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e),
    }
}

pub async fn remove_file(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let (file, _) = visible_file(ctx, &actor, id).await?;
    if !policy::can_edit_activity(&actor, &file_facts(&file, &actor)) {
        return Err(ApiError::forbidden(format!("You may not remove file {id}")));
    }
    if let Some(key) = ctx.state.store.remove_file(ctx.ws, id).await? {
        ctx.state.files.remove_all(&[key]).await;
    }
    Ok(Output::Scalar("id", Value::Id(id)))
}

/// `attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266).
fn content_disposition(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// One `bytes=` range of a file of `size` bytes, as (first, last) inclusive.
/// `Err(())`: not satisfiable. Several ranges are answered whole.
fn byte_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let n: u64 = end.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let first: u64 = start.parse().ok()?;
        let last = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        if first >= size || last < first {
            return Some(Err(()));
        }
        (first, last)
    };
    Some(Ok(range))
}

pub async fn download_file(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let (file, _) = visible_file(ctx, &actor, id).await?;
    let etag = format!("\"{}\"", file.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.into()))?;
    let matches = ctx
        .headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == etag || t.trim() == "*" || t.trim() == format!("W/{etag}"))
        });
    if matches {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        res.headers_mut().insert(ETAG, etag_value);
        return Ok(Output::Download(res));
    }
    let size = file.size as u64;
    let range = ctx
        .headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| byte_range(r, size));
    let (status, first, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(Ok((first, last))) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        Some(Err(())) => {
            let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            res.headers_mut().insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(Output::Download(res));
        }
    };
    // Streamed from storage: a download is never whole in memory.
    let stream = ctx
        .state
        .files
        .read(&file.storage_key, first, len)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut res = Response::new(Body::from_stream(stream));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&file.mime_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(CONTENT_DISPOSITION, content_disposition(&file.name));
    h.insert(CONTENT_LENGTH, len.into());
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(ETAG, etag_value);
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {first}-{}/{size}", first + len - 1))
                .expect("ascii"),
        );
    }
    Ok(Output::Download(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(byte_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(byte_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
    }

    #[test]
    fn dispositions_are_safe() {
        let v = content_disposition("a\"b\\c résumé.txt");
        let s = v.to_str().unwrap();
        assert!(s.starts_with("attachment; filename=\"a_b_c r_sum_.txt\"; filename*=UTF-8''a%22b%5Cc%20r%C3%A9sum%C3%A9.txt"), "{s}");
    }

    #[test]
    fn file_part_names() {
        assert_eq!(file_index("files[1][content]"), Some("1"));
        assert_eq!(file_index("files[a]"), Some("a"));
        assert_eq!(file_index("files[1][name]"), None);
        assert_eq!(file_index("other"), None);
    }
}
