//! authentication: signIn, signOut, getAuthorizedUser.

use crate::api::{users, Ctx};
use crate::domain::{now, password};
use crate::http::caller::{check_password, credentials};
use crate::http::error::ApiError;
use crate::http::response::{Output, Value};

/// Takes login and password only, and answers a new session id.
pub async fn sign_in(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let (login, given) = credentials(ctx.args, ctx.headers)?.ok_or(ApiError::AuthRequired)?;
    let user = check_password(ctx.state, ctx.ws, ctx.client, &login, &given).await?;
    let (session_id, hash) = password::new_session_id();
    ctx.state
        .store
        .add_session(ctx.ws, hash, user.id, now())
        .await?;
    Ok(Output::Scalar("sessionId", Value::Text(session_id)))
}

/// Ends the caller's session at once; with login and password there is none to end.
pub async fn sign_out(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    if let Some(hash) = &ctx.caller()?.session_hash {
        ctx.state.store.remove_session(hash.clone()).await?;
    }
    Ok(Output::Scalar("signOutState", Value::Bool(true)))
}

pub async fn get_authorized_user(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let caller = ctx.caller()?;
    Ok(Output::Object(users::record(&caller.user, &caller.actor())))
}
