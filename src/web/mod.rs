//! The web application for people (docs/web.md): server-rendered pages on the same HTTPS
//! port as the API. A page decides nothing itself: it reads through the functions the
//! API's handlers use, and hands every form to the API's own handler for that call, found
//! in the endpoint table. This module holds what every page shares: the visit (the
//! caller from the session cookie), forgery tokens, the answer's headers and the error
//! pages.

mod assets;
mod form;
mod people;
mod projects;
mod session;
mod tasks;
mod view;

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use crate::api::endpoints::Endpoint;
use crate::api::{AppState, Ctx};
use crate::auth::Caller;
use crate::domain::policy::Actor;
use crate::domain::WorkspaceId;
use crate::http::args::Args;
use crate::http::error::ApiError;
use crate::http::response::Output;

pub use form::FormState;

/// The cookie that holds the API session id of a signed-in person.
const SESSION_COOKIE: &str = "__Host-vesper-session";

/// Every page and form of the web application.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(tasks::my_work))
        .route("/signin", get(session::sign_in_page).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/projects", get(projects::list))
        .route(
            "/projects/new",
            get(projects::new_page).post(projects::create),
        )
        .route("/projects/{id}", get(projects::show))
        .route(
            "/projects/{id}/edit",
            get(projects::edit_page).post(projects::update),
        )
        .route("/projects/{id}/remove", post(projects::remove))
        .route("/tasks/new", get(tasks::new_page).post(tasks::create))
        .route("/tasks/{id}", get(tasks::show))
        .route(
            "/tasks/{id}/edit",
            get(tasks::edit_page).post(tasks::update),
        )
        .route("/tasks/{id}/remove", post(tasks::remove))
        .route("/tasks/{id}/activities", post(tasks::post_activity))
        .route("/tasks/{id}/files", post(tasks::upload))
        .route(
            "/activities/{id}/edit",
            get(tasks::activity_edit_page).post(tasks::activity_update),
        )
        .route("/activities/{id}/remove", post(tasks::activity_remove))
        .route("/files/{id}", get(tasks::download))
        .route("/files/{id}/remove", post(tasks::file_remove))
        .route("/users", get(people::users))
        .route(
            "/users/new",
            get(people::user_new_page).post(people::user_create),
        )
        .route(
            "/users/{id}/edit",
            get(people::user_edit_page).post(people::user_update),
        )
        .route("/users/{id}/remove", post(people::user_remove))
        .route("/groups", get(people::groups))
        .route(
            "/groups/new",
            get(people::group_new_page).post(people::group_create),
        )
        .route(
            "/groups/{id}/edit",
            get(people::group_edit_page).post(people::group_update),
        )
        .route("/groups/{id}/remove", post(people::group_remove))
        .route("/assets/{name}", get(assets::serve))
}

/// One request of a signed-in person.
pub struct Visit {
    pub state: AppState,
    pub ws: WorkspaceId,
    pub client: IpAddr,
    pub caller: Caller,
    /// The forgery token every form of this session carries.
    pub csrf: String,
    /// What a read through the API's functions is given: no arguments, no headers.
    no_args: Args,
    no_headers: HeaderMap,
}

impl Visit {
    /// The signed-in caller of `req`, from the session cookie; a visitor without a live
    /// session is sent to the sign-in page, and back here afterwards. (The future holds
    /// what it needs of the request, not the request, whose body may not be shared.)
    pub fn of(
        state: &AppState,
        req: &Request,
    ) -> impl std::future::Future<Output = Result<Visit, WebError>> + Send + 'static {
        // Back to the page after signing in; a form's target is no page to go back to.
        let next = match *req.method() {
            axum::http::Method::GET => req
                .uri()
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_owned()),
            _ => "/".into(),
        };
        let session_id = cookie(req.headers(), SESSION_COOKIE);
        let client = crate::http::client_addr(req);
        let logged_caller = req.extensions().get::<LoggedCaller>().cloned();
        let state = state.clone();
        let requested = state.workspaces.requested(req.uri(), req.headers());
        async move {
            let ws = state.workspaces.find(requested).await?;
            let Some(session_id) = session_id else {
                return Err(WebError::SignIn { next });
            };
            let caller = match state.auth.session_caller(ws, &session_id).await {
                Ok(caller) => caller,
                Err(ApiError::AuthFailed | ApiError::SessionExpired) => {
                    return Err(WebError::SignIn { next })
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(logged) = logged_caller {
                logged.0.store(caller.user.id, Ordering::Relaxed);
            }
            Ok(Visit {
                csrf: csrf_token(&session_id),
                state,
                ws,
                client,
                caller,
                no_args: Args::default(),
                no_headers: HeaderMap::new(),
            })
        }
    }

    pub fn actor(&self) -> Actor {
        self.caller.actor()
    }

    /// A context for the API's functions, as if this visit were an API call with `args`.
    pub fn ctx<'a>(&'a self, args: &'a Args, headers: &'a HeaderMap) -> Ctx<'a> {
        Ctx {
            state: &self.state,
            ws: self.ws,
            client: self.client,
            headers,
            caller: Some(self.caller.clone()),
            args,
            file_parts: std::sync::Mutex::new(None),
        }
    }

    /// A context for the API's read functions (`visible` and the like).
    pub fn reader(&self) -> Ctx<'_> {
        self.ctx(&self.no_args, &self.no_headers)
    }

    /// Runs the API's own handler for `service/method` with the form's arguments. With a
    /// `version`, the call names it as `If-Match`: a form read at an older version comes
    /// back instead of overwriting what someone else changed meanwhile.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        args: &Args,
        version: Option<i64>,
    ) -> Result<Output, ApiError> {
        let endpoint = Endpoint::find(service, method).ok_or(ApiError::UnknownMethod)?;
        let mut headers = HeaderMap::new();
        if let Some(v) = version {
            headers.insert(header::IF_MATCH, crate::http::response::etag(v));
        }
        let ctx = self.ctx(args, &headers);
        (endpoint.handler)(&ctx).await
    }

    /// The users the caller may see, as users/getAll answers them.
    pub async fn people(&self) -> Result<Vec<crate::domain::user::User>, WebError> {
        let scope = crate::api::users::scope(&self.actor());
        Ok(self.state.store.users(self.ws, scope).await?)
    }

    /// The names of the users the caller may see, by id.
    pub async fn names(&self) -> Result<view::People, WebError> {
        Ok(view::People(
            self.people()
                .await?
                .iter()
                .map(|u| (u.id, u.display_name()))
                .collect(),
        ))
    }

    /// What every page's frame shows of the caller.
    pub fn nav(&self, current: &'static str) -> view::Nav {
        let user = &self.caller.user;
        view::Nav {
            user_id: user.id,
            name: user.display_name(),
            csrf: self.csrf.clone(),
            is_admin: self.actor().is_admin(),
            current,
        }
    }

    /// Refuses a form whose forgery token is not this session's.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), WebError> {
        match given {
            Some(token) if constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(WebError::Forgery),
        }
    }
}

/// The forgery token of a session: derived from its id with a label of its own, so
/// that it gives nothing of the id away, and needs no storage on any node.
fn csrf_token(session_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"vesper web form token\0");
    h.update(session_id.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of one cookie of the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// No live session: to the sign-in page, then back to `next`.
    SignIn {
        next: String,
    },
    /// A form without this session's forgery token.
    Forgery,
    Api(ApiError),
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::Api(e)
    }
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        WebError::Api(e.into())
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Api(ApiError::Internal(anyhow::anyhow!("rendering a page: {e}")))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::SignIn { next } => {
                return redirect(&format!("/signin?next={}", view::url_encode(&next)));
            }
            WebError::Forgery => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This form has expired or did not come from this site. Reload the page and \
                 try again."
                    .to_owned(),
            ),
            WebError::Api(e) => {
                let status = e.status();
                let title = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
                    s if s.is_server_error() => "Something went wrong",
                    _ => "Cannot do that",
                };
                let message = if status.is_server_error() {
                    tracing::error!(error = %e, "web page failed");
                    "The server could not answer. Try again in a moment.".to_owned()
                } else if status == StatusCode::NOT_FOUND {
                    "There is nothing here, or nothing you may see.".to_owned()
                } else {
                    e.to_string()
                };
                (status, title, message)
            }
        };
        match (ErrorPage { title, message }).render() {
            Ok(html) => page(status, html),
            Err(_) => status.into_response(),
        }
    }
}

/// The stylesheet's address, for pages without the frame (errors).
pub fn assets_css() -> &'static str {
    assets::css_url()
}

/// A rendered page with the headers every page carries.
pub fn page(status: StatusCode, html: String) -> Response {
    let mut res = (status, html).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// Renders a template as a 200 page.
pub fn render(t: &impl Template) -> Result<Response, WebError> {
    Ok(page(StatusCode::OK, t.render()?))
}

/// After a form: see the result at `to` (303, so a reload does not post again).
pub fn redirect(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Logs each page as the API logs each call: the route (never the query string, which
/// may hold anything typed), the status and the server's time.
/// Where a page's visit leaves its caller's user id for the page's log line (0: none).
#[derive(Debug, Clone, Default)]
struct LoggedCaller(Arc<AtomicI64>);

pub async fn log_page(mut req: Request, next: axum::middleware::Next) -> Response {
    let caller = LoggedCaller::default();
    req.extensions_mut().insert(caller.clone());
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("", |p| p.as_str())
        .to_owned();
    let res = next.run(req).await;
    let verb = match method.as_str() {
        v @ ("GET" | "POST" | "HEAD") => v,
        _ => "OTHER",
    };
    let page = if route.is_empty() {
        "unknown"
    } else {
        crate::metrics::label(&format!("{verb} {route}"))
    };
    crate::metrics::METRICS.request("web", page, res.status().as_u16(), started.elapsed());
    tracing::info!(
        service = %"web",
        page = %route,
        method = %method,
        status = res.status().as_u16(),
        user = caller.0.load(Ordering::Relaxed),
        micros = started.elapsed().as_micros() as u64,
        "page"
    );
    res
}

/// The security headers of every web answer (docs/web.md). Pages are never cached; the
/// assets say otherwise themselves.
pub async fn security_headers(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A numeric id from the path; anything else is a page that does not exist.
pub fn path_id(raw: &str) -> Result<i64, WebError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(WebError::Api(ApiError::NotFound(
            "There is no such page".into(),
        )))
}

/// The id of the object an `add` call answered.
pub fn created_id(out: &Output) -> Result<i64, WebError> {
    let id = match out {
        Output::Object(record) => record.fields.iter().find_map(|(name, value)| match value {
            crate::http::response::Value::Id(id) if *name == "id" => Some(*id),
            _ => None,
        }),
        _ => None,
    };
    id.ok_or_else(|| WebError::Api(ApiError::Internal(anyhow::anyhow!("an add answered no id"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_markup_and_show_bidirectional_controls_instead_of_obeying_them() {
        let html = ErrorPage {
            title: "t",
            message: "invoice\u{202E}fdp.exe <script>\"".into(),
        }
        .render()
        .unwrap();
        assert!(
            html.contains("invoice\u{FFFD}fdp.exe &#60;script&#62;&#34;"),
            "{html}"
        );
        assert!(!html.contains('\u{202E}'));
        // A form field keeps the text as stored, escaped.
        assert_eq!(view::form_value("a\u{202E}b\"<"), "a\u{202E}b&#34;&#60;");
    }
}
