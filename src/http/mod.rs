//! Transport and the API's HTTP shape: TLS, connections, argument parsing, body reading,
//! envelopes, status mapping. It knows nothing of the endpoints: the API's dispatcher,
//! which the crate's router puts on these routes, calls the plumbing below.

pub mod args;
pub mod body;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod request_id;
pub mod response;
pub mod tls;
pub mod transport;

use std::net::IpAddr;

use axum::extract::Request;
use axum::response::Response;
use http::request::Parts;
use http::Method;

use args::Args;
use error::ApiError;
use response::{fail_response, Format};
use transport::ClientInfo;

/// The trivial endpoint: what the HTTP stack alone can do (the benchmark's ceiling).
pub async fn health() -> &'static str {
    "ok"
}

/// Any path that is no call of the API.
pub async fn unknown(req: Request) -> Response {
    let res = fail_response(Format::of_request(&req), &ApiError::UnknownMethod);
    crate::metrics::METRICS.request(
        "unknown",
        "unknown",
        res.status().as_u16(),
        std::time::Duration::ZERO,
    );
    res
}

/// Writes require POST; reads take GET or POST.
pub fn check_verb(verb: &Method, write: bool) -> Result<(), ApiError> {
    if write {
        if verb != Method::POST {
            return Err(ApiError::MethodNotAllowed { allow: "POST" });
        }
    } else if verb != Method::GET && verb != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "GET, POST" });
    }
    Ok(())
}

/// The client's address, as transport found it.
pub fn client_addr(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ClientInfo>()
        .copied()
        .unwrap_or(ClientInfo {
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
        })
        .addr
}

/// The answer's format once the arguments are read: a `retType` argument overrides what
/// the query string and `Accept` said.
pub fn answer_format(format: Format, args: &Args, parts: &Parts) -> Result<Format, ApiError> {
    Ok(match args.scalar("retType").text()?.value() {
        Some(ret_type) => Format::choose(
            Some(&ret_type),
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        ),
        None => format,
    })
}
