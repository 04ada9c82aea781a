//! users: add, update, remove, getById, getByEmail, getAll.
//!
//! Admins manage users; everyone edits their own profile (but not their own
//! securityLevel or canViewProfiles). Who sees whom follows `domain::policy`.

use crate::api::{required_id, Ctx, Validation};
use crate::domain::policy::{self, Actor};
use crate::domain::user::{NewUser, Profile, SecurityLevel, User, UserPatch};
use crate::domain::{now, validate};
use crate::http::args::{Given, Obj};
use crate::http::error::ApiError;
use crate::http::response::{Output, Record, Value};
use crate::store::UserScope;

/// The longest free-text attribute (comment) and the longest of the others.
const MAX_COMMENT: usize = 100_000;
const MAX_SHORT_TEXT: usize = 255;
const MAX_AVATAR: usize = 2_048;

/// The one description of a user. Never the password or its hash.
pub fn record(user: &User, actor: &Actor) -> Record {
    let p = &user.profile;
    Record::new("user")
        .versioned(user.version)
        .with("id", Value::Id(user.id))
        .with("title", p.title.clone())
        .with("email", user.email.as_str())
        .with("firstName", p.first_name.clone())
        .with("lastName", p.last_name.clone())
        .with("address", p.address.clone())
        .with("workPhone", p.work_phone.clone())
        .with("cellPhone", p.cell_phone.clone())
        .with("company", p.company.clone())
        .with("securityLevel", user.security_level.code())
        .with("comment", p.comment.clone())
        .with("canViewProfiles", user.can_view_profiles)
        .with("avatar", p.avatar.clone())
        .with("active", user.active)
        .with("createdAt", Value::Date(user.created_at))
        .with("updatedAt", Value::Date(user.updated_at))
        .with(
            "can_edit",
            user.active && policy::can_edit_user(actor, user.id),
        )
}

/// The user with this id if the caller may see them; otherwise 404, as if absent.
pub async fn visible(ctx: &Ctx<'_>, actor: &Actor, id: i64) -> Result<User, ApiError> {
    let not_found = || ApiError::not_found("User", id);
    let user = ctx
        .state
        .store
        .user(ctx.ws, id)
        .await?
        .ok_or_else(not_found)?;
    let team_mate = !policy::sees_all_users(actor)
        && ctx
            .state
            .store
            .are_team_mates(ctx.ws, actor.user_id, id)
            .await?;
    if policy::can_see_user(actor, id, team_mate) {
        Ok(user)
    } else {
        Err(not_found())
    }
}

/// Reads the free-text attributes; `None` for each one not sent.
struct ProfileInput {
    title: Option<Option<String>>,
    first_name: Option<Option<String>>,
    last_name: Option<Option<String>>,
    address: Option<Option<String>>,
    work_phone: Option<Option<String>>,
    cell_phone: Option<Option<String>>,
    company: Option<Option<String>>,
    comment: Option<Option<String>>,
    avatar: Option<Option<String>>,
}

fn optional_text(
    obj: &Obj<'_>,
    attr: &str,
    max: usize,
    v: &mut Validation,
) -> Result<Option<Option<String>>, ApiError> {
    let field = obj.field(attr);
    Ok(match field.text()? {
        Given::Absent => None,
        Given::Empty => Some(None),
        Given::Value(s) => {
            let s = s.trim().to_owned();
            v.check(&field.name(), validate::max_chars(&s, max))
                .map(|_| (!s.is_empty()).then_some(s))
        }
    })
}

fn profile_input(obj: &Obj<'_>, v: &mut Validation) -> Result<ProfileInput, ApiError> {
    Ok(ProfileInput {
        title: optional_text(obj, "title", MAX_SHORT_TEXT, v)?,
        first_name: optional_text(obj, "firstName", MAX_SHORT_TEXT, v)?,
        last_name: optional_text(obj, "lastName", MAX_SHORT_TEXT, v)?,
        address: optional_text(obj, "address", MAX_SHORT_TEXT, v)?,
        work_phone: optional_text(obj, "workPhone", MAX_SHORT_TEXT, v)?,
        cell_phone: optional_text(obj, "cellPhone", MAX_SHORT_TEXT, v)?,
        company: optional_text(obj, "company", MAX_SHORT_TEXT, v)?,
        comment: optional_text(obj, "comment", MAX_COMMENT, v)?,
        avatar: optional_text(obj, "avatar", MAX_AVATAR, v)?,
    })
}

fn security_level(obj: &Obj<'_>, v: &mut Validation) -> Result<Option<SecurityLevel>, ApiError> {
    let field = obj.field("securityLevel");
    Ok(match field.int()? {
        Given::Absent => None,
        Given::Empty => {
            v.fail(&field.name(), "required", "cannot be empty");
            None
        }
        Given::Value(code) => {
            let level = SecurityLevel::from_code(code);
            if level.is_none() {
                v.fail(&field.name(), "invalid", "must be 0, 100, 150 or 200");
            }
            level
        }
    })
}

pub async fn add(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    if !policy::can_manage_users(&actor) {
        return Err(ApiError::forbidden("Only admins may add users"));
    }
    let obj = ctx.args.object(&["user"]);
    let mut v = Validation::default();
    let email_field = obj.field("email");
    let email = match email_field.text()? {
        Given::Value(s) => v.check(&email_field.name(), validate::email(&s)),
        _ => {
            v.fail(&email_field.name(), "required", "is required");
            None
        }
    };
    let password_field = obj.field("password");
    let password = match password_field.text()? {
        Given::Value(s) => v
            .check(&password_field.name(), validate::password(&s))
            .map(|_| s),
        _ => {
            v.fail(&password_field.name(), "required", "is required");
            None
        }
    };
    let level = security_level(&obj, &mut v)?;
    let can_view_profiles = obj.field("canViewProfiles").bool()?.value();
    let p = profile_input(&obj, &mut v)?;
    v.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        unreachable!("validation passed");
    };
    let new = NewUser {
        email,
        password_hash: ctx.state.auth.hash_password(&password).await?,
        profile: Profile {
            title: p.title.flatten(),
            first_name: p.first_name.flatten(),
            last_name: p.last_name.flatten(),
            address: p.address.flatten(),
            work_phone: p.work_phone.flatten(),
            cell_phone: p.cell_phone.flatten(),
            company: p.company.flatten(),
            comment: p.comment.flatten(),
            avatar: p.avatar.flatten(),
        },
        security_level: level.unwrap_or(SecurityLevel::User),
        can_view_profiles: can_view_profiles.unwrap_or(false),
    };
    let user = ctx.state.store.add_user(ctx.ws, new, now()).await?;
    Ok(Output::Object(record(&user, &actor)))
}

pub async fn update(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let obj = ctx.args.object(&["user"]);
    let id = required_id(obj.field("id"))?;
    let mut v = Validation::default();
    let email_field = obj.field("email");
    let email = match email_field.text()? {
        Given::Absent => None,
        Given::Empty => v.check(&email_field.name(), validate::email("")),
        Given::Value(s) => v.check(&email_field.name(), validate::email(&s)),
    };
    let password_field = obj.field("password");
    let password = match password_field.text()? {
        Given::Absent => None,
        Given::Empty => v
            .check(&password_field.name(), validate::password(""))
            .map(|_| String::new()),
        Given::Value(s) => v
            .check(&password_field.name(), validate::password(&s))
            .map(|_| s),
    };
    let level = security_level(&obj, &mut v)?;
    let can_view_profiles = obj.field("canViewProfiles").bool()?.value();
    let p = profile_input(&obj, &mut v)?;

    let target = visible(ctx, &actor, id).await?;
    if !policy::can_edit_user(&actor, id) {
        return Err(ApiError::forbidden("You may edit only your own profile"));
    }
    if !target.active {
        return Err(ApiError::forbidden(format!("User {id} has been removed")));
    }
    let changes_rights = level.is_some_and(|l| l != target.security_level)
        || can_view_profiles.is_some_and(|c| c != target.can_view_profiles);
    if changes_rights && !policy::can_manage_users(&actor) {
        return Err(ApiError::forbidden(
            "Only an admin may change securityLevel or canViewProfiles",
        ));
    }
    // A token that could set a password could sign in with it, and a session makes
    // tokens: a leaked token would outlive its removal.
    if password.is_some() && ctx.caller()?.token.is_some() {
        return Err(ApiError::forbidden(
            "A password cannot be changed with an API token; sign in to change it",
        ));
    }
    v.finish()?;
    let password_hash = match password {
        Some(p) => Some(ctx.state.auth.hash_password(&p).await?),
        None => None,
    };
    let patch = UserPatch {
        email,
        password_hash,
        title: p.title,
        first_name: p.first_name,
        last_name: p.last_name,
        address: p.address,
        work_phone: p.work_phone,
        cell_phone: p.cell_phone,
        company: p.company,
        comment: p.comment,
        avatar: p.avatar,
        security_level: level,
        can_view_profiles,
    };
    let user = ctx
        .state
        .store
        .update_user(
            ctx.ws,
            id,
            patch,
            ctx.if_match()?,
            ctx.caller()?.session_hash.clone(),
            now(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("User", id))?;
    Ok(Output::Object(record(&user, &actor)))
}

pub async fn remove(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    visible(ctx, &actor, id).await?;
    if !policy::can_manage_users(&actor) {
        return Err(ApiError::forbidden("Only admins may remove users"));
    }
    if !ctx
        .state
        .store
        .remove_user(ctx.ws, id, ctx.if_match()?, now())
        .await?
    {
        return Err(ApiError::not_found("User", id));
    }
    Ok(Output::Scalar("id", Value::Id(id)))
}

pub async fn get_by_id(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let user = visible(ctx, &actor, id).await?;
    Ok(Output::Object(record(&user, &actor)))
}

pub async fn get_by_email(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let field = ctx.args.scalar("email");
    let Given::Value(email) = field.text()? else {
        return Err(ApiError::required("email"));
    };
    let not_found = || ApiError::NotFound("User not found".into());
    let found = ctx
        .state
        .store
        .user_by_email(ctx.ws, &email)
        .await?
        .ok_or_else(not_found)?;
    let user = visible(ctx, &actor, found.id)
        .await
        .map_err(|_| not_found())?;
    Ok(Output::Object(record(&user, &actor)))
}

/// Whom the caller sees: everyone, or themself and their team-mates.
pub fn scope(actor: &Actor) -> UserScope {
    if policy::sees_all_users(actor) {
        UserScope::All
    } else {
        UserScope::SelfAndTeamMates(actor.user_id)
    }
}

pub async fn get_all(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let users = ctx.state.store.users(ctx.ws, scope(&actor)).await?;
    Ok(Output::all(
        "user",
        users.iter().map(|u| record(u, &actor)).collect(),
    ))
}
