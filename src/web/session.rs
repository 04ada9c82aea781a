//! Signing in and out of the web page: the API's own password check (with its
//! throttling) and sessions, the session id kept in an `HttpOnly` cookie.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::http::error::ApiError;
use crate::web::form::{read_body, Posted};
use crate::web::view::query_value;
use crate::web::{constant_time_eq, cookie, page, redirect, Visit, WebError, SESSION_COOKIE};

/// The cookie that holds the sign-in form's token before there is a session (the form
/// sends it back as `csrf`: a page of another site can do neither).
const SIGN_IN_COOKIE: &str = "__Host-vesper-signin";

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    csrf: String,
    next: String,
    login: String,
    problem: Option<String>,
    css: &'static str,
}

/// Where to go after signing in: a path of this site only, never another host. No
/// control character either: browsers drop tabs and newlines from a URL, so that
/// `/<tab>/evil.example` would be `//evil.example`, another host.
pub fn safe_next(next: Option<String>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n
        }
        _ => "/".into(),
    }
}

fn sign_in_form(
    status: StatusCode,
    next: String,
    login: String,
    problem: Option<String>,
) -> Result<Response, WebError> {
    let (token, _) = crate::domain::password::new_session_id();
    let html = SignInPage {
        csrf: token.clone(),
        next,
        login,
        problem,
        css: super::assets::css_url(),
    }
    .render()?;
    let mut res = page(status, html);
    let cookie = format!("{SIGN_IN_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /signin`
pub async fn sign_in_page(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, WebError> {
    let next = safe_next(query_value(req.uri().query(), "next"));
    // No form where no workspace is.
    state
        .workspaces
        .of_request(req.uri(), req.headers())
        .await?;
    // Already signed in: nothing to do here.
    if Visit::of(&state, &req).await.is_ok() {
        return Ok(redirect(&next));
    }
    sign_in_form(StatusCode::OK, next, String::new(), None)
}

/// `POST /signin`: the login and password as `authentication/signIn` checks them.
pub async fn sign_in(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let client = crate::http::client_addr(&req);
    let ws = state
        .workspaces
        .of_request(req.uri(), req.headers())
        .await?;
    let expected = cookie(req.headers(), SIGN_IN_COOKIE);
    let posted: Posted = read_body(req).await?;
    let given = posted.value("csrf").unwrap_or("");
    match &expected {
        Some(token) if constant_time_eq(token.as_bytes(), given.as_bytes()) => {}
        _ => return Err(WebError::Forgery),
    }
    let next = safe_next(posted.value("next").map(str::to_owned));
    let login = posted.value("login").unwrap_or("").trim().to_owned();
    let password = posted.value("password").unwrap_or("");
    let user = match state
        .auth
        .check_password(ws, client, &login, password)
        .await
    {
        Ok(user) => user,
        Err(ApiError::AuthFailed) => {
            return sign_in_form(
                StatusCode::UNAUTHORIZED,
                next,
                login,
                Some("Wrong email or password.".into()),
            )
        }
        Err(e @ ApiError::TooManyRequests { .. }) => {
            return sign_in_form(
                StatusCode::TOO_MANY_REQUESTS,
                next,
                login,
                Some(e.to_string()),
            )
        }
        Err(e) => return Err(e.into()),
    };
    let session_id = state.auth.start_session(ws, user.id).await?;
    let mut res = redirect(&next);
    let max_age = state.config.session_max_secs;
    let cookies = [
        format!(
            "{SESSION_COOKIE}={session_id}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
        ),
        format!("{SIGN_IN_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// `POST /signout`: ends the session at once, on every node.
pub async fn sign_out(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (visit, _) = super::form::read(&state, req).await?;
    state.auth.end_session(&visit.caller).await?;
    let mut res = redirect("/signin").into_response();
    let gone = format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        let next = |s: &str| safe_next(Some(s.to_owned()));
        assert_eq!(next("/projects/4?page=2"), "/projects/4?page=2");
        for off_site in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "evil",
            "",
        ] {
            assert_eq!(next(off_site), "/", "{off_site:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
