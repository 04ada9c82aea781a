//! Transport and the API's HTTP shape: routing, arguments, callers, envelopes.

pub mod args;
pub mod body;
pub mod caller;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod response;
pub mod tls;
pub mod transport;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use http::Method;

use crate::api::{self, Ctx, Endpoint};
use crate::config::Config;
use crate::domain::WorkspaceId;
use crate::store::Store;
use error::ApiError;
use response::{fail_response, ok_response, Format};
use transport::ClientInfo;

/// What every request shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub files: crate::files::Blobs,
    /// Tells the mail worker that mail was queued.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// Argon2 runs on its own few threads (see `caller::Hashing`).
    pub hashing: Arc<caller::Hashing>,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v2/service/{prefix}/{service}/{method}", any(dispatch))
        .route("/health", get(health))
        .fallback(unknown)
        .with_state(state)
}

/// The trivial endpoint: what the HTTP stack alone can do (the benchmark's ceiling).
async fn health() -> &'static str {
    "ok"
}

async fn unknown(req: Request) -> Response {
    fail_response(Format::of_request(&req), &ApiError::UnknownMethod)
}

/// Every API call: find the endpoint, check the verb, read the arguments, authenticate,
/// run the handler, answer in the requested format.
async fn dispatch(
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
    // The route and the caller, never the query string: it can hold passwords and
    // session ids.
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
    endpoint: Endpoint,
    req: Request,
    format: &mut Format,
    user: &mut Option<i64>,
) -> Result<Response, ApiError> {
    let verb = req.method().clone();
    if endpoint.is_write() {
        if verb != Method::POST {
            return Err(ApiError::MethodNotAllowed { allow: "POST" });
        }
    } else if verb != Method::GET && verb != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "GET, POST" });
    }
    let client = req
        .extensions()
        .get::<ClientInfo>()
        .copied()
        .unwrap_or(ClientInfo {
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
        });
    let (parts, body) = req.into_parts();
    let upload_limits = (endpoint == Endpoint::AttachFiles).then(|| body::UploadLimits {
        blobs: state.files.clone(),
        max_file_bytes: state.config.max_file_bytes,
        max_files: state.config.max_files_per_request,
    });
    let (args, file_parts) = body::read_args(&parts, body, upload_limits).await?;
    if let Some(ret_type) = args.scalar("retType").text()?.value() {
        *format = Format::choose(
            Some(&ret_type),
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
    }
    let ws = WorkspaceId::DEFAULT;
    let caller = if endpoint == Endpoint::SignIn {
        None
    } else {
        Some(caller::authenticate(state, ws, client.addr, &args, &parts.headers).await?)
    };
    *user = caller.as_ref().map(|c| c.user.id);
    let ctx = Ctx {
        state,
        ws,
        client: client.addr,
        headers: &parts.headers,
        caller,
        args: &args,
        file_parts: std::sync::Mutex::new(file_parts),
    };
    let output = api::call(endpoint, &ctx).await?;
    Ok(ok_response(*format, output))
}
