//! tokens: add, getAll, remove — personal API tokens (docs/tokens.md), a Vesper
//! extension.
//!
//! A user makes tokens for themself from a password or a session, never from a token, so
//! that a leaked token cannot mint longer-lived ones. The secret is answered once, by
//! add. A user lists and removes their own tokens; an admin those of anyone in the
//! workspace.

use crate::api::{required_id, Ctx, Validation};
use crate::auth::Caller;
use crate::domain::now;
use crate::domain::policy;
use crate::domain::token::{self, NewToken, Scope, Token};
use crate::http::args::Given;
use crate::http::error::ApiError;
use crate::http::response::{Output, Record, Value};

/// The one description of a token. Never its secret or its hash.
pub fn record(token: &Token) -> Record {
    Record::new("token")
        .with("id", Value::Id(token.id))
        .with("userId", token.user_id)
        .with("name", token.name.as_str())
        .with("scope", token.scope.name())
        .with("createdAt", Value::Date(token.created_at))
        .with("lastUsedAt", token.last_used_at.map(Value::Date))
        .with("expiresAt", token.expires_at.map(Value::Date))
}

pub async fn add(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let caller = ctx.caller()?;
    if caller.token.is_some() {
        return Err(ApiError::forbidden(
            "API tokens are made with a password or a session, not with another token",
        ));
    }
    let obj = ctx.args.object(&["token"]);
    let mut v = Validation::default();
    let name_field = obj.field("name");
    let name = match name_field.text()? {
        Given::Value(s) => v.check(&name_field.name(), token::name(&s)),
        _ => {
            v.fail(&name_field.name(), "required", "is required");
            None
        }
    };
    let scope_field = obj.field("scope");
    let scope = match scope_field.text()? {
        Given::Value(s) => {
            let scope = Scope::from_name(s.trim());
            if scope.is_none() {
                v.fail(&scope_field.name(), "invalid", "must be read or write");
            }
            scope
        }
        _ => {
            v.fail(
                &scope_field.name(),
                "required",
                "is required: read or write",
            );
            None
        }
    };
    let expires_field = obj.field("expiresAt");
    let now = now();
    let expires_at = match expires_field.date()? {
        Given::Value(at) if at <= now => {
            v.fail(&expires_field.name(), "invalid", "must be in the future");
            None
        }
        given => given.value(),
    };
    v.finish()?;
    let (Some(name), Some(scope)) = (name, scope) else {
        unreachable!("validation passed");
    };
    let (secret, token_hash) = token::new_secret();
    let new = NewToken {
        user_id: caller.user.id,
        name,
        scope,
        token_hash,
        expires_at,
    };
    let token = ctx
        .state
        .store
        .add_token(ctx.ws, new, token::MAX_PER_USER, now)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            code: "too_many_tokens",
            message: format!(
                "A user holds at most {} API tokens; remove one first",
                token::MAX_PER_USER
            ),
        })?;
    Ok(Output::Object(
        record(&token).with("secret", Value::Text(secret)),
    ))
}

/// Whose tokens the caller names: their own, or (an admin) anyone's in the workspace.
async fn owner(ctx: &Ctx<'_>, caller: &Caller) -> Result<i64, ApiError> {
    let me = caller.user.id;
    let user_id = match ctx.args.scalar("userId").int()? {
        Given::Value(id) => id,
        _ => return Ok(me),
    };
    if user_id == me {
        return Ok(me);
    }
    if !policy::can_manage_users(&caller.actor()) {
        return Err(ApiError::forbidden(
            "Only admins may list another user's API tokens",
        ));
    }
    match ctx.state.store.user(ctx.ws, user_id).await? {
        Some(u) if u.active => Ok(user_id),
        _ => Err(ApiError::not_found("User", user_id)),
    }
}

pub async fn get_all(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let caller = ctx.caller()?;
    let user_id = owner(ctx, caller).await?;
    let tokens = ctx.state.store.tokens_of(ctx.ws, user_id).await?;
    Ok(Output::all("token", tokens.iter().map(record).collect()))
}

pub async fn remove(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let caller = ctx.caller()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let not_found = || ApiError::not_found("Token", id);
    let token = ctx
        .state
        .store
        .token(ctx.ws, id)
        .await?
        .ok_or_else(not_found)?;
    // Someone else's token is as absent as one that does not exist, but to an admin.
    if token.user_id != caller.user.id && !policy::can_manage_users(&caller.actor()) {
        return Err(not_found());
    }
    if !ctx.state.store.remove_token(ctx.ws, id).await? {
        return Err(not_found());
    }
    Ok(Output::Scalar("id", Value::Id(id)))
}
