//! authentication: signIn, signOut, getAuthorizedUser.

use crate::api::{users, Ctx};
use crate::auth::credentials;
use crate::http::error::ApiError;
use crate::http::response::{Output, Value};

/// Takes login and password only, and answers a new session id.
pub async fn sign_in(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let (login, given) = credentials(ctx.args, ctx.headers)?.ok_or(ApiError::AuthRequired)?;
    let auth = &ctx.state.auth;
    let user = auth
        .check_password(ctx.ws, ctx.client, &login, &given)
        .await?;
    let session_id = auth.start_session(ctx.ws, user.id).await?;
    Ok(Output::Scalar("sessionId", Value::Text(session_id)))
}

/// Ends the caller's session at once; with login and password there is none to end.
pub async fn sign_out(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    ctx.state.auth.end_session(ctx.caller()?).await?;
    Ok(Output::Scalar("signOutState", Value::Bool(true)))
}

pub async fn get_authorized_user(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let caller = ctx.caller()?;
    Ok(Output::Object(users::record(&caller.user, &caller.actor())))
}
