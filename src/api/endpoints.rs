//! The endpoint table, every call of the API listed once, and the dispatcher that runs
//! one: find the endpoint, check the verb, read the arguments, authenticate, run the
//! handler, answer in the requested format.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::response::Response;

use crate::api::openapi::{args, Answer, Arg, Scalar};
use crate::api::tokens;
use crate::api::{activity, authentication, groups, metainfo, projects, tasks, users, work};
use crate::api::{AppState, Ctx};
use crate::domain::work::{Activity, Project, Task};
use crate::http::body::{self, UploadLimits};
use crate::http::error::ApiError;
use crate::http::response::{fail_response, ok_response, Format, Output};
use crate::http::{answer_format, check_verb, client_addr};

/// The route every call comes in on: `/api/v2/service/{get|post}/{service}/{method}`.
pub const ROUTE: &str = "/api/v2/service/{prefix}/{service}/{method}";

/// What a call does, as far as the dispatcher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Takes GET or POST, from an authenticated caller.
    Read,
    /// Takes POST only, from an authenticated caller.
    Write,
    /// A write whose body may stream files, read once the handler allows the caller.
    Upload,
    /// A read that checks the credentials itself (signIn): no caller yet.
    SignIn,
}

/// A handler's answer, still to come.
pub type Pending<'a> = Pin<Box<dyn Future<Output = Result<Output, ApiError>> + Send + 'a>>;

/// Runs one call for one request.
pub type Handler = for<'a, 'b> fn(&'b Ctx<'a>) -> Pending<'b>;

/// One call of the API.
#[derive(Clone, Copy)]
pub struct Endpoint {
    /// The 5pm service, as in the path: `projectsgroups`.
    pub service: &'static str,
    /// The method, as in the path: `getById`.
    pub method: &'static str,
    pub access: Access,
    pub handler: Handler,
    /// One line for the OpenAPI document (`api::openapi`).
    pub summary: &'static str,
    /// The arguments it reads, in groups (`api::openapi::args`).
    pub args: &'static [&'static [Arg]],
    /// The shape of its answer.
    pub answer: Answer,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:?})", self.service, self.method, self.access)
    }
}

impl Endpoint {
    /// The endpoint at `/api/v2/service/{get|post}/{service}/{method}`.
    pub fn find(service: &str, method: &str) -> Option<&'static Endpoint> {
        ENDPOINTS
            .iter()
            .find(|e| e.service == service && e.method == method)
    }

    /// Writes require POST; reads take GET or POST.
    pub fn is_write(&self) -> bool {
        matches!(self.access, Access::Write | Access::Upload)
    }
}

/// Builds a table row; the handler is any `async fn(&Ctx) -> Result<Output, ApiError>`,
/// followed by what the OpenAPI document says of the call: a summary, its argument groups
/// and its answer.
macro_rules! endpoint {
    ($service:literal, $method:literal, $access:ident, $handler:expr,
     $summary:literal, [$($args:ident),*], $answer:expr) => {
        Endpoint {
            service: $service,
            method: $method,
            access: Access::$access,
            handler: |ctx| Box::pin($handler(ctx)),
            summary: $summary,
            args: &[$(args::$args),*],
            answer: $answer,
        }
    };
}

/// Every call of the API, once.
#[rustfmt::skip]
pub static ENDPOINTS: &[Endpoint] = &[
    endpoint!("authentication", "signIn",            SignIn, authentication::sign_in,
        "Signs in with login and password; answers a new session id",
        [SIGN_IN], Answer::Scalar("sessionId", Scalar::Text)),
    endpoint!("authentication", "signOut",           Read,   authentication::sign_out,
        "Ends the caller's session at once",
        [NONE], Answer::Scalar("signOutState", Scalar::Bool)),
    endpoint!("authentication", "getAuthorizedUser", Read,   authentication::get_authorized_user,
        "The signed-in user",
        [NONE], Answer::Object("user")),
    endpoint!("metainfo",       "getStatuses",       Read,   metainfo::statuses,
        "The statuses: 10 open, 20 on hold, 30 done",
        [NONE], Answer::List("status")),
    endpoint!("metainfo",       "getPriorities",     Read,   metainfo::priorities,
        "The priorities: 1 low to 4 urgent",
        [NONE], Answer::List("priority")),
    endpoint!("users",          "add",               Write,  users::add,
        "Adds a user (admins)",
        [USER_ADD, USER_ATTRS], Answer::Object("user")),
    endpoint!("users",          "update",            Write,  users::update,
        "Changes the attributes sent of a user",
        [USER_UPDATE, USER_ATTRS], Answer::Object("user")),
    endpoint!("users",          "remove",            Write,  users::remove,
        "Deactivates a user (admins); answers its id",
        [ID], Answer::Scalar("id", Scalar::Id)),
    endpoint!("users",          "getById",           Read,   users::get_by_id,
        "One user by id",
        [ID], Answer::Object("user")),
    endpoint!("users",          "getByEmail",        Read,   users::get_by_email,
        "One active user by email",
        [EMAIL], Answer::Object("user")),
    endpoint!("users",          "getAll",            Read,   users::get_all,
        "Every active user the caller sees",
        [NONE], Answer::List("user")),
    endpoint!("projectsgroups", "add",               Write,  groups::add,
        "Adds a project group",
        [GROUP_ADD], Answer::Object("group")),
    endpoint!("projectsgroups", "update",            Write,  groups::update,
        "Renames a project group",
        [GROUP_UPDATE], Answer::Object("group")),
    endpoint!("projectsgroups", "remove",            Write,  groups::remove,
        "Removes a project group; answers its id",
        [ID], Answer::Scalar("id", Scalar::Id)),
    endpoint!("projectsgroups", "getById",           Read,   groups::get_by_id,
        "One project group by id",
        [ID], Answer::Object("group")),
    endpoint!("projectsgroups", "getAll",            Read,   groups::get_all,
        "Every project group",
        [NONE], Answer::List("group")),
    endpoint!("projects",       "add",               Write,  projects::add,
        "Adds a project",
        [PROJECT_NAME, PROJECT_ATTRS], Answer::Object("project")),
    endpoint!("projects",       "update",            Write,  work::update::<Project>,
        "Changes the attributes sent of a project",
        [PROJECT_UPDATE, PROJECT_ATTRS], Answer::Object("project")),
    endpoint!("projects",       "remove",            Write,  work::remove::<Project>,
        "Removes a project with its tasks, activities and files; answers its id",
        [ID], Answer::Scalar("id", Scalar::Id)),
    endpoint!("projects",       "getById",           Read,   projects::get_by_id,
        "One project by id, with its team",
        [ID], Answer::Object("project")),
    endpoint!("projects",       "getAll",            Read,   projects::get_all,
        "Every visible project, streamed",
        [PROJECT_FILTERS, LOAD_TEAM], Answer::List("project")),
    endpoint!("projects",       "getList",           Read,   projects::get_list,
        "One page of the visible projects",
        [PAGE, PROJECT_FILTERS, LOAD_TEAM], Answer::List("project")),
    endpoint!("tasks",          "add",               Write,  tasks::add,
        "Adds a task, in a project or single",
        [TASK_NAME, TASK_ATTRS], Answer::Object("task")),
    endpoint!("tasks",          "update",            Write,  work::update::<Task>,
        "Changes the attributes sent of a task",
        [TASK_UPDATE, TASK_ATTRS], Answer::Object("task")),
    endpoint!("tasks",          "remove",            Write,  work::remove::<Task>,
        "Removes a task with its sub-tasks, activities and files; answers its id",
        [ID], Answer::Scalar("id", Scalar::Id)),
    endpoint!("tasks",          "getById",           Read,   tasks::get_by_id,
        "One task by id, with its team",
        [ID], Answer::Object("task")),
    endpoint!("tasks",          "getList",           Read,   tasks::get_list,
        "One page of the visible tasks",
        [PAGE, TASK_FILTERS, LOAD_TEAM], Answer::List("task")),
    endpoint!("activity",       "add",               Write,  activity::add,
        "Posts an activity to a task or a project",
        [ACTIVITY_ADD, ACTIVITY_ATTRS], Answer::Object("activity")),
    endpoint!("activity",       "update",            Write,  work::update::<Activity>,
        "Changes the attributes sent of an activity",
        [ACTIVITY_UPDATE, ACTIVITY_ATTRS], Answer::Object("activity")),
    endpoint!("activity",       "remove",            Write,  work::remove::<Activity>,
        "Removes an activity with its files; answers its id",
        [ID], Answer::Scalar("id", Scalar::Id)),
    endpoint!("activity",       "getById",           Read,   activity::get_by_id,
        "One activity by id",
        [ID, ACTIVITY_EXTRAS], Answer::Object("activity")),
    endpoint!("activity",       "getList",           Read,   activity::get_list,
        "One page of the visible activities",
        [PAGE, ACTIVITY_FILTERS, ACTIVITY_EXTRAS], Answer::List("activity")),
    endpoint!("activity",       "attachFiles",       Upload, activity::attach_files,
        "Attaches files to an activity; answers them",
        [ATTACH], Answer::List("file")),
    endpoint!("activity",       "getFilesList",      Read,   activity::get_files_list,
        "One page of the visible files",
        [PAGE, FILE_FILTERS], Answer::List("file")),
    endpoint!("activity",       "removeFile",        Write,  activity::remove_file,
        "Removes a file; answers its id",
        [ID], Answer::Scalar("id", Scalar::Id)),
    endpoint!("activity",       "downloadFile",      Read,   activity::download_file,
        "A file's bytes (Range and If-None-Match honoured)",
        [ID], Answer::Download),
    endpoint!("tokens",         "add",               Write,  tokens::add,
        "Makes a personal API token; answers it with its secret, once",
        [TOKEN_ADD], Answer::Object("token")),
    endpoint!("tokens",         "getAll",            Read,   tokens::get_all,
        "The caller's API tokens (an admin: any user's), never a secret",
        [TOKEN_OWNER], Answer::List("token")),
    endpoint!("tokens",         "remove",            Write,  tokens::remove,
        "Removes an API token; answers its id",
        [ID], Answer::Scalar("id", Scalar::Id)),
];

/// Every API call: find the endpoint, run it, log it.
pub async fn dispatch(
    State(state): State<AppState>,
    Path((prefix, service, method)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let mut format = Format::of_request(&req);
    let endpoint = if prefix == "get" || prefix == "post" {
        Endpoint::find(&service, &method)
    } else {
        None
    };
    let mut user = None;
    let outcome = match endpoint {
        None => Err(ApiError::UnknownMethod),
        Some(endpoint) => handle(&state, endpoint, req, &mut format, &mut user).await,
    };
    let response = match outcome {
        Ok(response) => response,
        Err(e) => fail_response(format, &e),
    };
    // Labels from the table alone: the path may hold anything.
    let (label_service, label_method) =
        endpoint.map_or(("unknown", "unknown"), |e| (e.service, e.method));
    crate::metrics::METRICS.request(
        label_service,
        label_method,
        response.status().as_u16(),
        started.elapsed(),
    );
    // The route and the caller, never the query string: it can hold passwords and
    // session ids. The request's span names its id.
    tracing::info!(
        service = %service,
        method = %method,
        status = response.status().as_u16(),
        user = user.unwrap_or_default(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn handle(
    state: &AppState,
    endpoint: &Endpoint,
    req: Request,
    format: &mut Format,
    user: &mut Option<i64>,
) -> Result<Response, ApiError> {
    check_verb(req.method(), endpoint.is_write())?;
    let client = client_addr(&req);
    let (parts, body) = req.into_parts();
    let ws = state
        .workspaces
        .of_request(&parts.uri, &parts.headers)
        .await?;
    let upload_limits = (endpoint.access == Access::Upload).then(|| UploadLimits {
        blobs: state.files.clone(),
        max_file_bytes: state.config.max_file_bytes,
        max_files: state.config.max_files_per_request,
    });
    let (args, file_parts) = body::read_args(&parts, body, upload_limits).await?;
    *format = answer_format(*format, &args, &parts)?;
    let caller = match endpoint.access {
        Access::SignIn => None,
        _ => Some(
            state
                .auth
                .authenticate(ws, client, &args, &parts.headers)
                .await?,
        ),
    };
    *user = caller.as_ref().map(|c| c.user.id);
    if let Some(caller) = &caller {
        caller.check_scope(endpoint.is_write())?;
    }
    let ctx = Ctx {
        state,
        ws,
        client,
        headers: &parts.headers,
        caller,
        args: &args,
        file_parts: std::sync::Mutex::new(file_parts),
    };
    let output = (endpoint.handler)(&ctx).await?;
    Ok(ok_response(*format, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_listed_once() {
        assert_eq!(ENDPOINTS.len(), 39);
        for (i, e) in ENDPOINTS.iter().enumerate() {
            let first = Endpoint::find(e.service, e.method).map(|f| f as *const Endpoint);
            assert_eq!(first, Some(&ENDPOINTS[i] as *const Endpoint), "{e:?}");
        }
    }
}
