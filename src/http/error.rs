//! The one error type of the API and its mapping to status codes and error codes.
//!
//! Handlers return [`ApiError`]; `http::response` turns it into the fail
//! envelope. Internal details are logged here and never sent.

use std::borrow::Cow;

use http::StatusCode;

use crate::store::StoreError;

/// One field's validation failure inside a 422 answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    InvalidArgument { field: String, message: String },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("Authentication required: send sessionId, or login and password")]
    AuthRequired,
    #[error("Login failed")]
    AuthFailed,
    #[error("The session has expired; sign in again")]
    SessionExpired,
    #[error("Too many failed logins; retry after {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("This method requires {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("Unknown service or method")]
    UnknownMethod,
    /// The request's host names no workspace of this server.
    #[error("No workspace is served at this host name; check the address")]
    UnknownWorkspace,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// `If-Match` named a version the object no longer has (or another writer came
    /// first): nothing was changed.
    #[error("The object has changed since the version given in If-Match; nothing was changed")]
    PreconditionFailed,
    #[error("{0}")]
    TooLarge(String),
    #[error("Unsupported body type; send application/x-www-form-urlencoded, multipart/form-data or application/json")]
    UnsupportedMediaType,
    #[error("Validation failed")]
    Validation(Vec<FieldError>),
    #[error("Plain HTTP is not accepted; use https://")]
    HttpsRequired,
    #[error("Storage is unavailable; try again shortly")]
    Unavailable,
    #[error("Internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn invalid_argument(field: &str, expected: &str) -> Self {
        ApiError::InvalidArgument {
            field: field.to_owned(),
            message: format!("Invalid value for {field}: {expected}"),
        }
    }

    pub fn limit(message: impl Into<String>) -> Self {
        ApiError::LimitExceeded(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    pub fn not_found(kind: &str, id: i64) -> Self {
        ApiError::NotFound(format!("{kind} {id} not found"))
    }

    /// A single required field that was missing or empty.
    pub fn required(field: &str) -> Self {
        ApiError::Validation(vec![FieldError::new(field, "required", "is required")])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::InvalidArgument { .. }
            | ApiError::LimitExceeded(_)
            | ApiError::HttpsRequired => StatusCode::BAD_REQUEST,
            ApiError::AuthRequired | ApiError::AuthFailed | ApiError::SessionExpired => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::UnknownMethod | ApiError::UnknownWorkspace => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code in the envelope.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidArgument { .. } => "invalid_argument",
            ApiError::LimitExceeded(_) => "limit_exceeded",
            ApiError::AuthRequired => "auth_required",
            ApiError::AuthFailed => "auth_failed",
            ApiError::SessionExpired => "session_expired",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::UnknownMethod => "unknown_method",
            ApiError::UnknownWorkspace => "unknown_workspace",
            ApiError::Conflict { code, .. } => code,
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::HttpsRequired => "https_required",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The field an `invalid_argument` error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::InvalidArgument { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Whether an answer may carry this character: not a control character (C0, DEL, C1,
/// tab and line breaks included) and not one XML 1.0 cannot carry.
fn printable_char(c: char) -> bool {
    !c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}'
}

/// Text an answer quotes (an error's message and field names, which may hold what the
/// caller sent) with every character it must not carry written as a `\u{..}` escape, so
/// every answer is printable and well-formed XML, and the caller still sees what was
/// wrong.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().all(printable_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if printable_char(c) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    Cow::Owned(out)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "storage unavailable");
                ApiError::Unavailable
            }
            StoreError::DuplicateEmail => ApiError::Conflict {
                code: "duplicate_email",
                message: "A user with this email already exists".into(),
            },
            StoreError::DuplicateName => ApiError::Conflict {
                code: "duplicate_name",
                message: "A workspace of this name exists".into(),
            },
            StoreError::LastAdmin => ApiError::Conflict {
                code: "last_admin",
                message: "The last admin cannot be removed or demoted".into(),
            },
            StoreError::VersionChanged => ApiError::PreconditionFailed,
            StoreError::UnknownWorkspace => ApiError::UnknownWorkspace,
            StoreError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_an_answer_must_not_carry() {
        assert!(matches!(printable("plain été ✓"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1}b"), "a\\u{1}b");
        assert_eq!(printable("t\tn\nr\r"), "t\\u{9}n\\u{a}r\\u{d}");
        assert_eq!(
            printable("\u{7f}\u{85}\u{FFFE}\u{FFFF}"),
            "\\u{7f}\\u{85}\\u{fffe}\\u{ffff}"
        );
    }
}
