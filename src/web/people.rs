//! The users and groups pages: everyone edits their own profile and password, admins
//! manage every user; admins and users manage project groups. Every change is the API's
//! own call (`users/*`, `projectsgroups/*`).

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::api::{users as api_users, AppState};
use crate::domain::policy;
use crate::domain::user::{SecurityLevel, User};
use crate::http::args::Args;
use crate::http::error::ApiError;
use crate::store::Group;
use crate::web::form::{self, FormState, Posted};
use crate::web::projects::bit;
use crate::web::view::{self, Nav};
use crate::web::{page, path_id, redirect, render, Visit, WebError};

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<(User, bool)>,
    can_add: bool,
}

/// `GET /users`: the users the caller sees (users/getAll's rule).
pub async fn users(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let actor = visit.actor();
    let users = visit
        .people()
        .await?
        .into_iter()
        .map(|u| {
            let editable = u.active && policy::can_edit_user(&actor, u.id);
            (u, editable)
        })
        .collect();
    render(&UsersPage {
        nav: visit.nav("users"),
        users,
        can_add: policy::can_manage_users(&actor),
    })
}

#[derive(Template)]
#[template(path = "user_form.html")]
struct UserForm {
    nav: Nav,
    /// `None` for a new user.
    user: Option<User>,
    form: FormState,
    /// Whether the form may set the security level and profile visibility (admins).
    manages: bool,
    levels: Vec<(String, String)>,
    is_self: bool,
}

fn values(u: &User) -> Vec<(String, String)> {
    let p = &u.profile;
    let text = |t: &Option<String>| t.clone().unwrap_or_default();
    [
        ("user[email]", u.email.clone()),
        ("user[firstName]", text(&p.first_name)),
        ("user[lastName]", text(&p.last_name)),
        ("user[title]", text(&p.title)),
        ("user[company]", text(&p.company)),
        ("user[workPhone]", text(&p.work_phone)),
        ("user[cellPhone]", text(&p.cell_phone)),
        ("user[address]", text(&p.address)),
        ("user[comment]", text(&p.comment)),
        ("user[securityLevel]", u.security_level.code().to_string()),
        ("user[canViewProfiles]", bit(u.can_view_profiles)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn user_form(
    visit: &Visit,
    user: Option<User>,
    form: FormState,
    status: StatusCode,
) -> Result<Response, WebError> {
    let is_self = user.as_ref().is_some_and(|u| u.id == visit.caller.user.id);
    let html = UserForm {
        nav: visit.nav(if is_self { "me" } else { "users" }),
        manages: policy::can_manage_users(&visit.actor()),
        levels: SecurityLevel::ALL
            .iter()
            .map(|l| (l.code().to_string(), view::level_name(l).to_owned()))
            .collect(),
        is_self,
        user,
        form,
    }
    .render()?;
    Ok(page(status, html))
}

/// The form's arguments without an empty password: on an edit form it means "keep".
fn arguments(posted: &Posted) -> Result<Args, WebError> {
    let mut args = Args::default();
    for (k, v) in &posted.pairs {
        if matches!(k.as_str(), "csrf" | "version") || (k == "user[password]" && v.is_empty()) {
            continue;
        }
        args.insert(k, v)?;
    }
    Ok(args)
}

/// `GET /users/new` (admins).
pub async fn user_new_page(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    if !policy::can_manage_users(&visit.actor()) {
        return Err(ApiError::forbidden("Only admins add users").into());
    }
    let form = FormState::with_values(vec![
        ("user[securityLevel]".into(), "100".into()),
        ("user[canViewProfiles]".into(), "1".into()),
    ]);
    user_form(&visit, None, form, StatusCode::OK).await
}

/// `POST /users/new`: `users/add`.
pub async fn user_create(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted) = form::read(&state, req).await?;
    match visit.call("users", "add", &posted.args, None).await {
        Ok(_) => Ok(redirect("/users")),
        Err(e) => {
            let form = FormState::refused(&posted, e)?;
            user_form(&visit, None, form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// The user of an edit page: one the caller sees and may edit.
async fn editable(visit: &Visit, id: i64) -> Result<User, WebError> {
    let actor = visit.actor();
    let user = api_users::visible(&visit.reader(), &actor, id).await?;
    if !policy::can_edit_user(&actor, id) {
        return Err(ApiError::forbidden("You may edit only your own profile").into());
    }
    if !user.active {
        return Err(ApiError::forbidden(format!("User {id} has been removed")).into());
    }
    Ok(user)
}

/// `GET /users/{id}/edit`
pub async fn user_edit_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let user = editable(&visit, path_id(&id)?).await?;
    let form = FormState::with_values(values(&user));
    user_form(&visit, Some(user), form, StatusCode::OK).await
}

/// `POST /users/{id}/edit`: `users/update`; an empty password keeps the current one.
pub async fn user_update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted) = form::read(&state, req).await?;
    let id = path_id(&id)?;
    let mut args = arguments(&posted)?;
    args.insert("user[id]", &id.to_string())?;
    match visit.call("users", "update", &args, posted.version()).await {
        Ok(_) if id == visit.caller.user.id => Ok(redirect(&format!("/users/{id}/edit"))),
        Ok(_) => Ok(redirect("/users")),
        Err(e) => {
            let user = editable(&visit, id).await?;
            let form = FormState::refused_edit(&posted, e, values(&user))?;
            user_form(&visit, Some(user), form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// `POST /users/{id}/remove`: `users/remove` (admins).
pub async fn user_remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "id").await?;
    match visit.call("users", "remove", &posted.args, None).await {
        Ok(_) => Ok(redirect("/users")),
        Err(e @ ApiError::Conflict { .. }) => {
            let user = editable(&visit, id).await?;
            let form = FormState::refused(&posted, e)?;
            let mut shown = FormState::with_values(values(&user));
            shown.problem = form.problem;
            user_form(&visit, Some(user), shown, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    nav: Nav,
    groups: Vec<Group>,
    can_write: bool,
}

/// `GET /groups`
pub async fn groups(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    render(&GroupsPage {
        nav: visit.nav("groups"),
        groups: state.store.groups(visit.ws).await?,
        can_write: policy::can_write_groups(&visit.actor()),
    })
}

#[derive(Template)]
#[template(path = "group_form.html")]
struct GroupForm {
    nav: Nav,
    group: Option<Group>,
    form: FormState,
}

async fn group_form(
    visit: &Visit,
    group: Option<Group>,
    form: FormState,
    status: StatusCode,
) -> Result<Response, WebError> {
    let html = GroupForm {
        nav: visit.nav("groups"),
        group,
        form,
    }
    .render()?;
    Ok(page(status, html))
}

fn may_write_groups(visit: &Visit) -> Result<(), WebError> {
    if policy::can_write_groups(&visit.actor()) {
        Ok(())
    } else {
        Err(ApiError::forbidden("Only admins and users may change groups").into())
    }
}

/// `GET /groups/new`
pub async fn group_new_page(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    may_write_groups(&visit)?;
    group_form(&visit, None, FormState::default(), StatusCode::OK).await
}

/// `POST /groups/new`: `projectsgroups/add`.
pub async fn group_create(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted) = form::read(&state, req).await?;
    match visit
        .call("projectsgroups", "add", &posted.args, None)
        .await
    {
        Ok(_) => Ok(redirect("/groups")),
        Err(e) => {
            let form = FormState::refused(&posted, e)?;
            group_form(&visit, None, form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn existing_group(visit: &Visit, id: i64) -> Result<Group, WebError> {
    Ok(visit
        .state
        .store
        .group(visit.ws, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Group", id))?)
}

/// `GET /groups/{id}/edit`
pub async fn group_edit_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let visit = Visit::of(&state, &req).await?;
    let group = existing_group(&visit, path_id(&id)?).await?;
    may_write_groups(&visit)?;
    let form = FormState::with_values(vec![("group[name]".into(), group.name.clone())]);
    group_form(&visit, Some(group), form, StatusCode::OK).await
}

/// `POST /groups/{id}/edit`: `projectsgroups/update`.
pub async fn group_update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, id) = form::read_for(&state, &id, req, "group[id]").await?;
    match visit
        .call("projectsgroups", "update", &posted.args, posted.version())
        .await
    {
        Ok(_) => Ok(redirect("/groups")),
        Err(e) => {
            let group = existing_group(&visit, id).await?;
            let current = vec![("group[name]".into(), group.name.clone())];
            let form = FormState::refused_edit(&posted, e, current)?;
            group_form(&visit, Some(group), form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// `POST /groups/{id}/remove`: `projectsgroups/remove`.
pub async fn group_remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let (visit, posted, _) = form::read_for(&state, &id, req, "id").await?;
    visit
        .call("projectsgroups", "remove", &posted.args, None)
        .await?;
    Ok(redirect("/groups"))
}
