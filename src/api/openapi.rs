//! The OpenAPI 3.1 description of the API, served at `/api/v2/openapi.json`.
//!
//! It is made from [`ENDPOINTS`], the one table of calls: each row carries its summary,
//! its arguments ([`Arg`], in groups shared between rows) and the shape of its answer
//! ([`Answer`]), so a call cannot be missing from the document or described apart from
//! its row. The object schemas below follow what `http::response` writes for each
//! record (`api::*::record`): ids are strings in JSON, references numbers, dates
//! `YYYY-MM-DD HH:MM:SS` strings, booleans `true`/`false`, absent values `null`.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::api::endpoints::{Access, Endpoint, ENDPOINTS};

/// Where the document is served.
pub const PATH: &str = "/api/v2/openapi.json";

/// The type of one argument, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    /// Text of 1 to this many characters, not blank: a name.
    Name(u32),
    /// 8 to 1,024 characters.
    Password,
    Email,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A whole number from the first to the second, inclusive.
    IntIn(i64, i64),
    /// One of these whole numbers.
    IntOf(&'static [i64]),
    /// A whole number (an id, a level, a code).
    Int,
    /// A decimal number (hours).
    Number,
    /// `1 0 true false yes no on off`.
    Bool,
    /// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339.
    Date,
    /// A list of user ids: `name[]=1&name[]=2` (the argument's name ends in `[]`).
    Ids,
    /// A file part of a multipart body.
    File,
}

/// One argument of a call, under its bracketed name.
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub description: &'static str,
}

/// What a successful call answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// One object under its type name: `{"status":"ok","project":{...}}`.
    Object(&'static str),
    /// A list of objects of this type: `count`, `total`, `offset`, `items`.
    List(&'static str),
    /// One value under its name: `sessionId`, `signOutState`, the removed `id`.
    Scalar(&'static str, Scalar),
    /// A file's bytes, outside the envelope.
    Download,
}

/// The type of a scalar answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Text,
    Bool,
    /// An object's id: a string in JSON.
    Id,
}

const fn req(name: &'static str, ty: Ty, description: &'static str) -> Arg {
    Arg {
        name,
        ty,
        required: true,
        description,
    }
}

const fn opt(name: &'static str, ty: Ty, description: &'static str) -> Arg {
    Arg {
        name,
        ty,
        required: false,
        description,
    }
}

/// The argument groups the rows of [`ENDPOINTS`] name.
pub mod args {
    use super::{opt, req, Arg, Ty};

    const ACTIVITY_TYPES: &[&str] = &[
        "msg",
        "progress",
        "file",
        "googledocs",
        "ss_boards",
        "ff_boards",
    ];
    const STATUSES: &[i64] = &[10, 20, 30];

    pub const NONE: &[Arg] = &[];
    pub const ID: &[Arg] = &[req("id", Ty::Int, "The object's id.")];
    pub const SIGN_IN: &[Arg] = &[
        opt(
            "login",
            Ty::Text,
            "The user's email (or HTTP Basic authentication).",
        ),
        opt("password", Ty::Text, "The user's password."),
    ];
    pub const PAGE: &[Arg] = &[
        opt(
            "offset",
            Ty::IntIn(0, i64::MAX),
            "Rows to skip (default 0).",
        ),
        opt(
            "count",
            Ty::IntIn(0, 1_000),
            "Rows to return: 0 to 1,000 (default 100; more is 422).",
        ),
    ];
    pub const LOAD_TEAM: &[Arg] = &[opt(
        "loadTeam",
        Ty::Bool,
        "Include each object's `team` (user ids).",
    )];
    pub const ACTIVITY_EXTRAS: &[Arg] = &[
        opt(
            "withNames",
            Ty::Bool,
            "Include `taskName` and `projectName`.",
        ),
        opt("withFiles", Ty::Bool, "Include the activity's `files`."),
    ];

    pub const PROJECT_FILTERS: &[Arg] = &[
        opt("filter[groupId]", Ty::Int, "Projects of this group."),
        opt("filter[ownerId]", Ty::Int, "Projects of this owner."),
        opt(
            "filter[name]",
            Ty::Text,
            "A case-insensitive substring of the name.",
        ),
        opt(
            "filter[assignedTo]",
            Ty::Int,
            "Projects whose team holds this user.",
        ),
        opt("filter[active]", Ty::Bool, "1: status is not done."),
        opt(
            "filter[hide_old_object_period]",
            Ty::Int,
            "Drop done objects closed more than N days ago.",
        ),
        opt(
            "filter[hide_non_active]",
            Ty::Int,
            "The same filter as hide_old_object_period.",
        ),
        opt(
            "filter[updatedFrom]",
            Ty::Date,
            "Changed at or after (inclusive).",
        ),
        opt(
            "filter[updatedBefore]",
            Ty::Date,
            "Changed before (exclusive).",
        ),
    ];
    pub const TASK_FILTERS: &[Arg] = &[
        opt("filter[projectId]", Ty::Int, "Tasks of this project."),
        opt("filter[parentId]", Ty::Int, "Sub-tasks of this task."),
        opt(
            "filter[startedFrom]",
            Ty::Date,
            "startDate at or after (inclusive).",
        ),
        opt(
            "filter[startedBefore]",
            Ty::Date,
            "startDate before (exclusive).",
        ),
        opt(
            "filter[deadlineFrom]",
            Ty::Date,
            "endDate at or after (inclusive).",
        ),
        opt(
            "filter[deadlineBefore]",
            Ty::Date,
            "endDate before (exclusive).",
        ),
        opt(
            "filter[progressLessThan]",
            Ty::Int,
            "progress below (strict).",
        ),
        opt(
            "filter[progressMoreThan]",
            Ty::Int,
            "progress above (strict).",
        ),
        opt(
            "filter[createdFrom]",
            Ty::Date,
            "Made at or after (inclusive).",
        ),
        opt(
            "filter[createdBefore]",
            Ty::Date,
            "Made before (exclusive).",
        ),
        opt(
            "filter[updatedFrom]",
            Ty::Date,
            "Changed at or after (inclusive).",
        ),
        opt(
            "filter[updatedBefore]",
            Ty::Date,
            "Changed before (exclusive).",
        ),
        opt("filter[groupId]", Ty::Int, "Tasks of this group."),
        opt("filter[ownerId]", Ty::Int, "Tasks of this owner."),
        opt(
            "filter[name]",
            Ty::Text,
            "A case-insensitive substring of the name.",
        ),
        opt(
            "filter[assignedTo]",
            Ty::Int,
            "Tasks whose team holds this user.",
        ),
        opt("filter[active]", Ty::Bool, "1: status is not done."),
        opt(
            "filter[hide_old_object_period]",
            Ty::Int,
            "Drop done tasks closed more than N days ago.",
        ),
        opt(
            "filter[hide_non_active]",
            Ty::Int,
            "The same filter as hide_old_object_period.",
        ),
    ];
    pub const ACTIVITY_FILTERS: &[Arg] = &[
        opt(
            "filter[projectId]",
            Ty::Int,
            "Activities posted to this project.",
        ),
        opt("filter[taskId]", Ty::Int, "Activities posted to this task."),
        opt(
            "filter[type]",
            Ty::Choice(ACTIVITY_TYPES),
            "msg, progress, file, googledocs, ss_boards or ff_boards.",
        ),
        opt(
            "filter[groupId]",
            Ty::Int,
            "Activities of this group's projects.",
        ),
        opt(
            "filter[assignedTo]",
            Ty::Int,
            "Activities of tasks or projects whose team holds this user.",
        ),
        opt(
            "filter[active]",
            Ty::Bool,
            "1: their task or project is not done.",
        ),
        opt(
            "filter[hide_non_active]",
            Ty::Int,
            "The same filter as hide_old_object_period.",
        ),
        opt(
            "filter[hide_old_object_period]",
            Ty::Int,
            "Drop activities of objects closed more than N days ago.",
        ),
        opt(
            "filter[updatedFrom]",
            Ty::Date,
            "Changed at or after (inclusive).",
        ),
        opt(
            "filter[updatedBefore]",
            Ty::Date,
            "Changed before (exclusive).",
        ),
    ];
    pub const FILE_FILTERS: &[Arg] = &[
        opt("filter[projectId]", Ty::Int, "Files of this project."),
        opt("filter[taskId]", Ty::Int, "Files of this task."),
        opt("filter[activityId]", Ty::Int, "Files of this activity."),
        opt("filter[ownerId]", Ty::Int, "Files of this uploader."),
        opt(
            "filter[createdFrom]",
            Ty::Date,
            "Attached at or after (inclusive).",
        ),
        opt(
            "filter[createdBefore]",
            Ty::Date,
            "Attached before (exclusive).",
        ),
        opt(
            "filter[updatedFrom]",
            Ty::Date,
            "As createdFrom (files never change).",
        ),
        opt(
            "filter[updatedBefore]",
            Ty::Date,
            "As createdBefore (files never change).",
        ),
    ];

    pub const USER_ADD: &[Arg] = &[
        req(
            "user[email]",
            Ty::Email,
            "The login; unique in the workspace.",
        ),
        req("user[password]", Ty::Password, "8 to 1,024 characters."),
    ];
    pub const USER_UPDATE: &[Arg] = &[
        req("user[id]", Ty::Int, "The user to change."),
        opt(
            "user[email]",
            Ty::Email,
            "The login; unique in the workspace.",
        ),
        opt(
            "user[password]",
            Ty::Password,
            "8 to 1,024 characters; not with an API token.",
        ),
    ];
    pub const USER_ATTRS: &[Arg] = &[
        opt(
            "user[securityLevel]",
            Ty::IntOf(&[0, 100, 150, 200]),
            "0 admin, 100 user, 150 external user, 200 client.",
        ),
        opt(
            "user[canViewProfiles]",
            Ty::Bool,
            "Whether the user sees every profile.",
        ),
        opt("user[title]", Ty::Text, "Up to 255 characters."),
        opt("user[firstName]", Ty::Text, "Up to 255 characters."),
        opt("user[lastName]", Ty::Text, "Up to 255 characters."),
        opt("user[address]", Ty::Text, "Up to 255 characters."),
        opt("user[workPhone]", Ty::Text, "Up to 255 characters."),
        opt("user[cellPhone]", Ty::Text, "Up to 255 characters."),
        opt("user[company]", Ty::Text, "Up to 255 characters."),
        opt("user[comment]", Ty::Text, "Up to 100,000 characters."),
        opt("user[avatar]", Ty::Text, "Up to 2,048 characters."),
    ];
    pub const EMAIL: &[Arg] = &[req("email", Ty::Email, "The user's email, any case.")];

    pub const GROUP_ADD: &[Arg] = &[req(
        "group[name]",
        Ty::Name(255),
        "1 to 255 characters. `projectsgroups[...]` is accepted as an alias of `group[...]`.",
    )];
    pub const GROUP_UPDATE: &[Arg] = &[
        req(
            "group[id]",
            Ty::Int,
            "The group to rename. `projectsgroups[...]` is accepted as an alias.",
        ),
        opt("group[name]", Ty::Name(255), "1 to 255 characters."),
    ];

    pub const PROJECT_NAME: &[Arg] = &[req("project[name]", Ty::Name(255), "1 to 255 characters.")];
    pub const PROJECT_UPDATE: &[Arg] = &[
        req("project[id]", Ty::Int, "The project to change."),
        opt("project[name]", Ty::Name(255), "1 to 255 characters."),
    ];
    pub const PROJECT_ATTRS: &[Arg] = &[
        opt(
            "project[description]",
            Ty::Text,
            "Up to 100,000 characters.",
        ),
        opt("project[tags]", Ty::Text, "Comma-separated, up to 1,000."),
        opt(
            "project[ownerId]",
            Ty::Int,
            "An active user (default: the caller).",
        ),
        opt("project[groupId]", Ty::Int, "An existing group."),
        opt("project[startDate]", Ty::Date, "Start."),
        opt("project[endDate]", Ty::Date, "End; not before startDate."),
        opt("project[priority]", Ty::IntIn(1, 4), "1 to 4 (default 2)."),
        opt(
            "project[status]",
            Ty::IntOf(STATUSES),
            "10 open, 20 on hold, 30 done (default 10).",
        ),
        opt("project[hidden]", Ty::Bool, "Hidden from non-members."),
        opt("project[flag]", Ty::IntIn(0, 3), "0 to 3."),
        opt(
            "project[notifyProjectTeam]",
            Ty::Bool,
            "Mail the project team on changes.",
        ),
        opt(
            "project[notifyClient]",
            Ty::Bool,
            "Mail the project's clients on changes.",
        ),
        opt("project[team][]", Ty::Ids, "The team: active user ids."),
        opt(
            "project[notifyUsers][]",
            Ty::Ids,
            "Users to mail about this write (not stored).",
        ),
    ];

    pub const TASK_NAME: &[Arg] = &[req("task[name]", Ty::Name(255), "1 to 255 characters.")];
    pub const TASK_UPDATE: &[Arg] = &[
        req("task[id]", Ty::Int, "The task to change."),
        opt("task[name]", Ty::Name(255), "1 to 255 characters."),
    ];
    pub const TASK_ATTRS: &[Arg] = &[
        opt("task[description]", Ty::Text, "Up to 100,000 characters."),
        opt("task[tags]", Ty::Text, "Comma-separated, up to 1,000."),
        opt(
            "task[projectId]",
            Ty::Int,
            "Its project; empty: a single task.",
        ),
        opt(
            "task[parentId]",
            Ty::Int,
            "Its parent task, in the same project.",
        ),
        opt(
            "task[ownerId]",
            Ty::Int,
            "An active user (default: the caller).",
        ),
        opt(
            "task[groupId]",
            Ty::Int,
            "A single task's group (a task in a project takes the project's).",
        ),
        opt("task[startDate]", Ty::Date, "Start."),
        opt(
            "task[endDate]",
            Ty::Date,
            "The deadline; not before startDate.",
        ),
        opt("task[priority]", Ty::IntIn(1, 4), "1 to 4 (default 2)."),
        opt("task[progress]", Ty::IntIn(0, 100), "0 to 100."),
        opt(
            "task[status]",
            Ty::IntOf(STATUSES),
            "10 open, 20 on hold, 30 done (default 10).",
        ),
        opt("task[hidden]", Ty::Bool, "Hidden from non-members."),
        opt("task[flag]", Ty::IntIn(0, 3), "0 to 3."),
        opt("task[estimatedTime]", Ty::Number, "Hours, 0 to 1,000,000."),
        opt(
            "task[notifyProjectTeam]",
            Ty::Bool,
            "Mail the project team on changes.",
        ),
        opt(
            "task[notifyTaskTeam]",
            Ty::Bool,
            "Mail the task team on changes.",
        ),
        opt(
            "task[notifyClient]",
            Ty::Bool,
            "Mail the project's clients on changes.",
        ),
        opt("task[team][]", Ty::Ids, "The task team: active user ids."),
        opt(
            "task[notifyUsers][]",
            Ty::Ids,
            "Users to mail about this write (not stored).",
        ),
    ];

    pub const ACTIVITY_ADD: &[Arg] = &[
        opt(
            "activity[type]",
            Ty::Choice(ACTIVITY_TYPES),
            "msg (default), progress, file, googledocs, ss_boards or ff_boards.",
        ),
        opt(
            "activity[taskId]",
            Ty::Int,
            "The task it is posted to (or projectId).",
        ),
        opt(
            "activity[projectId]",
            Ty::Int,
            "The project it is posted to, when no taskId.",
        ),
    ];
    pub const ACTIVITY_UPDATE: &[Arg] = &[req("activity[id]", Ty::Int, "The activity to change.")];
    pub const ACTIVITY_ATTRS: &[Arg] = &[
        opt(
            "activity[text]",
            Ty::Text,
            "The message, or the link of a board.",
        ),
        opt(
            "activity[progress]",
            Ty::IntIn(0, 100),
            "0 to 100, for a progress note.",
        ),
        opt("activity[hoursDone]", Ty::Number, "Hours, 0 to 1,000,000."),
        opt(
            "activity[hideFromClients]",
            Ty::Bool,
            "Hidden from the project's clients.",
        ),
        opt("activity[date]", Ty::Date, "When (default: now)."),
        opt(
            "activity[notifyProjectTeam]",
            Ty::Bool,
            "Mail the project team.",
        ),
        opt("activity[notifyTaskTeam]", Ty::Bool, "Mail the task team."),
        opt(
            "activity[notifyClient]",
            Ty::Bool,
            "Mail the project's clients.",
        ),
        opt(
            "activity[notifyUsers][]",
            Ty::Ids,
            "Users to mail about this write (not stored).",
        ),
    ];
    pub const ATTACH: &[Arg] = &[
        req(
            "activityId",
            Ty::Int,
            "The activity; before the first file part.",
        ),
        req(
            "files[0][content]",
            Ty::File,
            "A file; further files as files[1][content], ... (or files[n]), at most 20.",
        ),
        opt(
            "files[0][name]",
            Ty::Text,
            "The file's name (default: the part's file name).",
        ),
    ];

    pub const TOKEN_ADD: &[Arg] = &[
        req(
            "token[name]",
            Ty::Name(100),
            "1 to 100 characters, no control characters.",
        ),
        req(
            "token[scope]",
            Ty::Choice(&["read", "write"]),
            "read or write.",
        ),
        opt(
            "token[expiresAt]",
            Ty::Date,
            "A future date; empty: never expires.",
        ),
    ];
    pub const TOKEN_OWNER: &[Arg] = &[opt(
        "userId",
        Ty::Int,
        "Whose tokens (an admin may name any user; default: the caller).",
    )];
}

/// The document, made once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// `GET /api/v2/openapi.json`: public, no credentials.
pub async fn serve() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| document().to_string());
    (
        [
            (http::header::CONTENT_TYPE, "application/json"),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        text.as_str(),
    )
        .into_response()
}

/// The path of a call: reads under `get`, writes under `post`.
pub fn path_of(e: &Endpoint) -> String {
    let prefix = if e.is_write() { "post" } else { "get" };
    format!("/api/v2/service/{prefix}/{}/{}", e.service, e.method)
}

fn arg_schema(ty: Ty) -> Value {
    match ty {
        Ty::Text => json!({"type": "string"}),
        Ty::Name(max) => {
            json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S"})
        }
        Ty::Password => json!({"type": "string", "minLength": 8, "maxLength": 1024}),
        Ty::Email => json!({"type": "string", "format": "email", "maxLength": 254}),
        Ty::Choice(words) => json!({"type": "string", "enum": words}),
        Ty::IntIn(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
        Ty::IntOf(values) => json!({"type": "integer", "enum": values}),
        Ty::Int => json!({"type": "integer"}),
        Ty::Number => json!({"type": "number"}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Date => json!({
            "type": "string",
            "anyOf": [
                {"format": "date"},
                {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"},
                {"format": "date-time"},
            ],
            "description": "YYYY-MM-DD, YYYY-MM-DD HH:MM:SS (UTC) or RFC 3339 with an offset",
            "examples": ["2026-05-01", "2026-05-01 09:30:00"],
        }),
        Ty::Ids => json!({"type": "array", "items": {"type": "integer"}}),
        Ty::File => json!({"type": "string", "contentMediaType": "application/octet-stream"}),
    }
}

fn args_of(e: &Endpoint) -> impl Iterator<Item = &'static Arg> {
    e.args.iter().flat_map(|group| group.iter())
}

/// `retType`, which every call takes.
fn ret_type() -> Value {
    json!({"$ref": "#/components/parameters/retType"})
}

fn query_parameters(e: &Endpoint) -> Vec<Value> {
    let mut params: Vec<Value> = args_of(e)
        .map(|a| {
            let mut p = json!({
                "name": a.name,
                "in": "query",
                "required": a.required,
                "description": a.description,
                "schema": arg_schema(a.ty),
            });
            if a.ty == Ty::Ids {
                p["style"] = "form".into();
                p["explode"] = true.into();
            }
            p
        })
        .collect();
    params.push(ret_type());
    params
}

fn body_schema(e: &Endpoint) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for a in args_of(e) {
        let mut schema = arg_schema(a.ty);
        schema["description"] = a.description.into();
        properties.insert(a.name.to_owned(), schema);
        if a.required {
            required.push(a.name);
        }
    }
    properties.insert(
        "retType".into(),
        json!({"type": "string", "enum": ["xml", "json"], "description": "json: answer in JSON."}),
    );
    json!({"type": "object", "properties": properties, "required": required})
}

fn request_body(e: &Endpoint) -> Value {
    let schema = body_schema(e);
    let encoding: Map<String, Value> = args_of(e)
        .filter(|a| a.ty == Ty::Ids)
        .map(|a| (a.name.to_owned(), json!({"style": "form", "explode": true})))
        .collect();
    let media = if e.access == Access::Upload {
        "multipart/form-data"
    } else {
        "application/x-www-form-urlencoded"
    };
    let mut content = json!({ "schema": schema });
    if !encoding.is_empty() {
        content["encoding"] = Value::Object(encoding);
    }
    json!({
        "required": args_of(e).any(|a| a.required),
        "description": "The arguments, in bracket syntax. The same arguments may come in the \
            query string; a JSON body of the same shape is accepted too.",
        "content": { media: content },
    })
}

fn ok_schema(answer: Answer) -> Value {
    let object = |kind: &str| json!({"$ref": format!("#/components/schemas/{kind}")});
    match answer {
        Answer::Object(kind) => json!({
            "type": "object",
            "required": ["status", kind],
            "properties": {"status": {"const": "ok"}, kind: object(kind)},
        }),
        Answer::List(kind) => json!({
            "type": "object",
            "required": ["status", "count", "total", "offset", "items"],
            "properties": {
                "status": {"const": "ok"},
                "count": {"type": "integer", "minimum": 0},
                "total": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0},
                "items": {"type": "array", "items": object(kind)},
            },
        }),
        Answer::Scalar(name, ty) => {
            let schema = match ty {
                Scalar::Text => json!({"type": "string"}),
                Scalar::Bool => json!({"type": "boolean"}),
                Scalar::Id => json!({"$ref": "#/components/schemas/id"}),
            };
            json!({
                "type": "object",
                "required": ["status", name],
                "properties": {"status": {"const": "ok"}, name: schema},
            })
        }
        Answer::Download => json!({}),
    }
}

fn xml_example(answer: Answer) -> String {
    let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response status=\"ok\">";
    let body = match answer {
        Answer::Object(kind) => format!("<{kind}><id>42</id>...</{kind}>"),
        Answer::List(kind) => {
            format!("<items count=\"1\" total=\"1\" offset=\"0\"><{kind}><id>42</id>...</{kind}></items>")
        }
        Answer::Scalar(name, _) => format!("<{name}>...</{name}>"),
        Answer::Download => String::new(),
    };
    format!("{head}{body}</response>")
}

/// The kinds whose single-object answers carry their version as `ETag`.
const VERSIONED: &[&str] = &["project", "task", "activity", "user", "group"];

/// update and remove of a versioned object: a stale `If-Match` is 412.
fn takes_if_match(e: &Endpoint) -> bool {
    e.is_write() && matches!(e.method, "update" | "remove") && e.service != "tokens"
}

fn ok_response(e: &Endpoint) -> Value {
    if e.answer == Answer::Download {
        return json!({
            "description": "The file's bytes with its Content-Type, Content-Disposition, \
                Content-Length and ETag (206 for a Range, 304 for a matching If-None-Match, \
                416 for an unsatisfiable Range). Errors come in the envelope.",
            "content": {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}},
        });
    }
    let mut ok = json!({
        "description": "The answer: XML by default, JSON with retType=json or Accept: application/json.",
        "content": {
            "application/json": {"schema": ok_schema(e.answer)},
            "application/xml": {
                "schema": {"type": "string"},
                "example": xml_example(e.answer),
            },
        },
    });
    if matches!(e.answer, Answer::Object(kind) if VERSIONED.contains(&kind)) {
        ok["headers"] = json!({"ETag": {
            "description": "The object's version, as `\"7\"`: send it as If-Match to update or remove only that version.",
            "schema": {"type": "string"},
        }});
    }
    ok
}

fn responses(e: &Endpoint) -> Value {
    let mut r = Map::new();
    r.insert("200".into(), ok_response(e));
    let mut fails = vec![
        "400", "401", "404", "405", "413", "415", "429", "500", "503",
    ];
    if e.access != Access::SignIn {
        fails.push("403");
    }
    if e.is_write() {
        // duplicate_email, last_admin, too_many_tokens; a stale If-Match.
        fails.extend(["409", "412"]);
    }
    fails.push("422");
    fails.sort_unstable();
    for code in fails {
        r.insert(
            code.into(),
            json!({"$ref": format!("#/components/responses/fail{code}")}),
        );
    }
    Value::Object(r)
}

fn operation(e: &Endpoint, verb: &str) -> Value {
    let mut op = json!({
        "operationId": format!("{}_{}_{verb}", e.service, e.method),
        "tags": [e.service],
        "summary": e.summary,
        "responses": responses(e),
    });
    if verb == "get" {
        op["parameters"] = Value::Array(query_parameters(e));
    } else {
        op["parameters"] = json!([ret_type()]);
        op["requestBody"] = request_body(e);
    }
    if takes_if_match(e) {
        if let Some(params) = op["parameters"].as_array_mut() {
            params.push(json!({"$ref": "#/components/parameters/ifMatch"}));
        }
    }
    let access = match e.access {
        Access::Read => "A read: GET or POST.",
        Access::Write => "A write: POST only (other verbs 405). A `read` API token gets 403.",
        Access::Upload => {
            "A write: POST only, multipart/form-data; files streamed to storage. A `read` \
            API token gets 403."
        }
        Access::SignIn => "Takes login and password only (arguments or HTTP Basic); no session.",
    };
    op["description"] = access.into();
    if e.access == Access::SignIn {
        op["security"] = json!([{"basic": []}, {"login": [], "password": []}]);
    }
    op
}

fn error_codes() -> Vec<&'static str> {
    vec![
        "bad_request",
        "invalid_argument",
        "limit_exceeded",
        "https_required",
        "auth_required",
        "auth_failed",
        "session_expired",
        "forbidden",
        "not_found",
        "unknown_method",
        "unknown_workspace",
        "method_not_allowed",
        "duplicate_email",
        "last_admin",
        "too_many_tokens",
        "precondition_failed",
        "too_large",
        "unsupported_media_type",
        "validation_failed",
        "too_many_requests",
        "internal",
        "unavailable",
    ]
}

fn fail_responses() -> Value {
    let codes: &[(&str, &str)] = &[
        (
            "400",
            "bad_request, invalid_argument (with `field`), limit_exceeded, https_required",
        ),
        (
            "401",
            "auth_required, auth_failed, session_expired (WWW-Authenticate: Basic, Bearer)",
        ),
        (
            "403",
            "forbidden: visible but not allowed (or a read token on a write)",
        ),
        (
            "404",
            "not_found (missing or not visible), unknown_method, unknown_workspace",
        ),
        ("405", "method_not_allowed (Allow: POST or GET, POST)"),
        ("409", "duplicate_email, last_admin, too_many_tokens"),
        (
            "412",
            "precondition_failed: If-Match names an older version",
        ),
        ("413", "too_large: a body over 1 MiB, a file over the limit"),
        ("415", "unsupported_media_type"),
        (
            "422",
            "validation_failed, with one `errors` entry per field",
        ),
        (
            "429",
            "too_many_requests: too many failed logins (Retry-After)",
        ),
        ("500", "internal (no detail)"),
        ("503", "unavailable: storage is down"),
    ];
    let mut out = Map::new();
    for (status, description) in codes {
        out.insert(
            format!("fail{status}"),
            json!({
                "description": description,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/fail"}},
                    "application/xml": {
                        "schema": {"type": "string"},
                        "example": "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response status=\"fail\"><error code=\"not_found\">Project 42 not found</error></response>",
                    },
                },
            }),
        );
    }
    Value::Object(out)
}

/// A nullable value of a type.
fn null_or(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

fn date() -> Value {
    json!({"$ref": "#/components/schemas/date"})
}

fn null_or_date() -> Value {
    json!({"anyOf": [{"$ref": "#/components/schemas/date"}, {"type": "null"}]})
}

fn id() -> Value {
    json!({"$ref": "#/components/schemas/id"})
}

fn team() -> Value {
    json!({"type": "array", "items": {"type": "integer"}, "description": "User ids (with loadTeam=1 on lists; always on single objects)."})
}

/// An object schema: `fields` (name, schema, always present).
fn object(description: &str, fields: Vec<(&str, Value, bool)>) -> Value {
    let required: Vec<&str> = fields.iter().filter(|f| f.2).map(|f| f.0).collect();
    let properties: Map<String, Value> = fields
        .into_iter()
        .map(|(n, s, _)| (n.to_owned(), s))
        .collect();
    json!({
        "type": "object",
        "description": description,
        "required": required,
        "properties": properties,
    })
}

fn schemas() -> Value {
    let s = || json!({"type": "string"});
    let i = || json!({"type": "integer"});
    let b = || json!({"type": "boolean"});
    let file = object(
        "A file attached to an activity.",
        vec![
            ("id", id(), true),
            ("activityId", i(), true),
            ("taskId", null_or("integer"), true),
            ("projectId", null_or("integer"), true),
            ("name", s(), true),
            ("size", json!({"type": "integer", "minimum": 0}), true),
            ("mimeType", s(), true),
            ("sha256", s(), true),
            ("ownerId", i(), true),
            ("createdAt", date(), true),
            ("can_edit", b(), true),
        ],
    );
    json!({
        "id": {"type": "string", "pattern": "^-?[0-9]+$", "description": "An object's own id: a decimal string in JSON."},
        "date": {"type": "string", "pattern": "^-?[0-9]{4,}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", "description": "YYYY-MM-DD HH:MM:SS, UTC."},
        "fail": {
            "type": "object",
            "required": ["status", "code", "error"],
            "properties": {
                "status": {"const": "fail"},
                "code": {"type": "string", "examples": error_codes(), "description": "See docs/api-decisions.md, Errors."},
                "error": {"type": "string"},
                "field": {"type": "string", "description": "With invalid_argument: the argument."},
                "errors": {
                    "type": "array",
                    "description": "With validation_failed: one entry per field.",
                    "items": {
                        "type": "object",
                        "required": ["field", "code", "message"],
                        "properties": {"field": s(), "code": s(), "message": s()},
                    },
                },
            },
        },
        "status": object("A status: 10 open, 20 on hold, 30 done.", vec![("id", id(), true), ("name", s(), true)]),
        "priority": object("A priority: 1 low, 2 normal, 3 high, 4 urgent.", vec![("id", id(), true), ("name", s(), true)]),
        "group": object("A project group.", vec![
            ("id", id(), true),
            ("name", s(), true),
            ("createdAt", date(), true),
            ("updatedAt", date(), true),
            ("can_edit", b(), true),
        ]),
        "user": object("A user. Never a password.", vec![
            ("id", id(), true),
            ("title", null_or("string"), true),
            ("email", s(), true),
            ("firstName", null_or("string"), true),
            ("lastName", null_or("string"), true),
            ("address", null_or("string"), true),
            ("workPhone", null_or("string"), true),
            ("cellPhone", null_or("string"), true),
            ("company", null_or("string"), true),
            ("securityLevel", json!({"type": "integer", "enum": [0, 100, 150, 200]}), true),
            ("comment", null_or("string"), true),
            ("canViewProfiles", b(), true),
            ("avatar", null_or("string"), true),
            ("active", b(), true),
            ("createdAt", date(), true),
            ("updatedAt", date(), true),
            ("can_edit", b(), true),
        ]),
        "project": object("A project.", vec![
            ("id", id(), true),
            ("name", s(), true),
            ("description", null_or("string"), true),
            ("tags", null_or("string"), true),
            ("ownerId", i(), true),
            ("groupId", null_or("integer"), true),
            ("startDate", null_or_date(), true),
            ("endDate", null_or_date(), true),
            ("priority", i(), true),
            ("status", i(), true),
            ("createdAt", date(), true),
            ("updatedAt", date(), true),
            ("notifyProjectTeam", b(), true),
            ("notifyClient", b(), true),
            ("hidden", b(), true),
            ("flag", i(), true),
            ("team", team(), false),
            ("can_edit", b(), true),
        ]),
        "task": object("A task.", vec![
            ("id", id(), true),
            ("name", s(), true),
            ("parentId", null_or("integer"), true),
            ("parentName", null_or("string"), true),
            ("description", null_or("string"), true),
            ("tags", null_or("string"), true),
            ("projectId", null_or("integer"), true),
            ("ownerId", i(), true),
            ("groupId", null_or("integer"), true),
            ("startDate", null_or_date(), true),
            ("endDate", null_or_date(), true),
            ("priority", i(), true),
            ("progress", i(), true),
            ("status", i(), true),
            ("createdAt", date(), true),
            ("updatedAt", date(), true),
            ("notifyProjectTeam", b(), true),
            ("notifyTaskTeam", b(), true),
            ("notifyClient", b(), true),
            ("hidden", b(), true),
            ("flag", i(), true),
            ("hoursDone", json!({"type": "number"}), true),
            ("estimatedTime", null_or("number"), true),
            ("team", team(), false),
            ("can_edit", b(), true),
        ]),
        "activity": object("An activity: a message, a progress note, a file note or a board link.", vec![
            ("id", id(), true),
            ("taskId", null_or("integer"), true),
            ("taskName", json!({"type": ["string", "null"], "description": "With withNames=1."}), false),
            ("projectId", null_or("integer"), true),
            ("projectName", json!({"type": ["string", "null"], "description": "With withNames=1."}), false),
            ("type", json!({"type": "string", "enum": ["msg", "progress", "file", "googledocs", "ss_boards", "ff_boards"]}), true),
            ("text", null_or("string"), true),
            ("ownerId", i(), true),
            ("progress", null_or("integer"), true),
            ("hoursDone", null_or("number"), true),
            ("createdAt", date(), true),
            ("updatedAt", date(), true),
            ("notifyProjectTeam", b(), true),
            ("notifyTaskTeam", b(), true),
            ("notifyClient", b(), true),
            ("hideFromClients", b(), true),
            ("date", date(), true),
            ("files", json!({"type": "array", "items": {"$ref": "#/components/schemas/file"}, "description": "With withFiles=1."}), false),
            ("can_edit", b(), true),
        ]),
        "file": file,
        "token": object("A personal API token (Vesper extension, docs/tokens.md).", vec![
            ("id", id(), true),
            ("userId", i(), true),
            ("name", s(), true),
            ("scope", json!({"type": "string", "enum": ["read", "write"]}), true),
            ("createdAt", date(), true),
            ("lastUsedAt", null_or_date(), true),
            ("expiresAt", null_or_date(), true),
            ("secret", json!({"type": "string", "pattern": "^vsp_", "description": "Only in the answer of tokens/add, once."}), false),
        ]),
    })
}

const DESCRIPTION: &str = "The 5pm API v2 as Vesper serves it, with Vesper's `tokens` \
extension. Every call is `/api/v2/service/{get|post}/{service}/{method}`: reads take GET or \
POST, writes POST only (405 otherwise).\n\n\
**Arguments** come in the query string, an `application/x-www-form-urlencoded` body, a \
`multipart/form-data` body or an `application/json` body of the same shape (a body value \
wins). Names use PHP bracket syntax: `project[name]`, `filter[groupId]`, `files[1][name]`; \
lists as `team[]=1&team[]=2`, `team[0]=1&team[1]=2` or `team=1,2`. Limits: nesting depth 4, \
1,000 arguments, a non-upload body of 1 MiB (400 or 413). Booleans: 1 0 true false yes no on \
off. Dates: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339. An empty value clears a \
nullable attribute; unknown `filter[...]` keys are 422.\n\n\
**Answers** are XML by default; JSON with `retType=json` or `Accept: application/json`. \
`{\"status\":\"ok\", \"project\": {...}}`, lists `{\"status\":\"ok\",\"count\":..,\"total\":..,\
\"offset\":..,\"items\":[...]}`, failures `{\"status\":\"fail\",\"code\":\"not_found\",\
\"error\":\"...\"}` (XML: `<response status=\"ok|fail\">`). Ids are strings in JSON, \
references numbers, dates `YYYY-MM-DD HH:MM:SS` UTC, absent values null.\n\n\
**Authentication**: a session id from `authentication/signIn` as the `sessionId` argument, \
the `X-Session-Id` header or `Authorization: Bearer`; a personal API token (`vsp_...`) as \
`Authorization: Bearer` only; or `login` + `password` as arguments (query or body) or HTTP \
Basic. signIn takes login and password only. Sessions expire after 30 minutes idle.";

fn build() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let mut item = Map::new();
        if !e.is_write() {
            item.insert("get".into(), operation(e, "get"));
        }
        item.insert("post".into(), operation(e, "post"));
        paths.insert(path_of(e), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vesper: the 5pm API v2",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "tags": ENDPOINTS.iter().map(|e| e.service).fold(Vec::<&str>::new(), |mut v, s| {
            if !v.contains(&s) { v.push(s) }
            v
        }).into_iter().map(|s| json!({"name": s})).collect::<Vec<_>>(),
        "paths": paths,
        "security": [
            {"sessionHeader": []},
            {"sessionArgument": []},
            {"bearer": []},
            {"basic": []},
            {"login": [], "password": []},
        ],
        "components": {
            "securitySchemes": {
                "sessionHeader": {"type": "apiKey", "in": "header", "name": "X-Session-Id", "description": "A session id from signIn (not an API token)."},
                "sessionArgument": {"type": "apiKey", "in": "query", "name": "sessionId", "description": "A session id from signIn, as an argument (query string or body; not an API token)."},
                "bearer": {"type": "http", "scheme": "bearer", "description": "A session id, or a personal API token `vsp_...` (the only place a token is accepted)."},
                "basic": {"type": "http", "scheme": "basic", "description": "The login (email) and password."},
                "login": {"type": "apiKey", "in": "query", "name": "login", "description": "The login (email), with password; as an argument in the query string or the body."},
                "password": {"type": "apiKey", "in": "query", "name": "password", "description": "The password, with login."},
            },
            "parameters": {
                "ifMatch": {
                    "name": "If-Match",
                    "in": "header",
                    "required": false,
                    "description": "The version (ETag) the write is meant for: another version is 412 precondition_failed and nothing changes; `*` matches any.",
                    "schema": {"type": "string"},
                },
                "retType": {
                    "name": "retType",
                    "in": "query",
                    "required": false,
                    "description": "json: answer in JSON (else Accept: application/json; else XML).",
                    "schema": {"type": "string", "enum": ["xml", "json"]},
                },
            },
            "responses": fail_responses(),
            "schemas": schemas(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_a_path_and_a_summary() {
        let doc = document();
        for e in ENDPOINTS {
            assert!(!e.summary.is_empty(), "{e:?}");
            let item = &doc["paths"][path_of(e)];
            assert!(item["post"].is_object(), "{e:?}");
            assert_eq!(item["get"].is_object(), !e.is_write(), "{e:?}");
        }
    }

    #[test]
    fn documented_filters_are_the_ones_the_lists_take() {
        let filters = |e: &Endpoint| -> Vec<String> {
            let mut v: Vec<String> = args_of(e)
                .filter_map(|a| a.name.strip_prefix("filter[")?.strip_suffix(']'))
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        let sorted = |f: &[&str]| {
            let mut v: Vec<String> = f.iter().map(|s| (*s).to_owned()).collect();
            v.sort();
            v
        };
        let find = |s, m| Endpoint::find(s, m).unwrap();
        assert_eq!(
            filters(find("projects", "getList")),
            sorted(crate::api::projects::FILTERS)
        );
        assert_eq!(
            filters(find("projects", "getAll")),
            sorted(crate::api::projects::FILTERS)
        );
        assert_eq!(
            filters(find("tasks", "getList")),
            sorted(crate::api::tasks::FILTERS)
        );
        assert_eq!(
            filters(find("activity", "getList")),
            sorted(crate::api::activity::FILTERS)
        );
        assert_eq!(
            filters(find("activity", "getFilesList")),
            sorted(crate::api::activity::FILE_FILTERS)
        );
        assert_eq!(
            crate::api::MAX_COUNT,
            1_000,
            "the count description says 1,000"
        );
    }

    #[test]
    fn versioned_writes_take_if_match() {
        let doc = document();
        let params = |e: &Endpoint| doc["paths"][path_of(e)]["post"]["parameters"].to_string();
        for (service, method) in [
            ("projects", "update"),
            ("tasks", "remove"),
            ("users", "update"),
        ] {
            assert!(params(Endpoint::find(service, method).unwrap()).contains("ifMatch"));
        }
        assert!(!params(Endpoint::find("tokens", "remove").unwrap()).contains("ifMatch"));
        assert!(!params(Endpoint::find("projects", "add").unwrap()).contains("ifMatch"));
    }

    #[test]
    fn answers_name_the_schemas_of_their_objects() {
        let doc = document();
        for e in ENDPOINTS {
            if let Answer::Object(kind) | Answer::List(kind) = e.answer {
                assert!(
                    doc["components"]["schemas"][kind].is_object(),
                    "{e:?}: {kind}"
                );
            }
        }
    }
}
