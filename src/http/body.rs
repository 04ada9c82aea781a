//! Reading a request's arguments from its query string and body into one [`Args`].

use axum::body::Body;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;

use crate::http::args::Args;
use crate::http::error::ApiError;

/// The largest body accepted by calls that take no upload.
pub const MAX_BODY: usize = 1024 * 1024;

/// Merges the query string and the body; a body value wins over the query string.
pub async fn read_args(parts: &Parts, body: Body) -> Result<Args, ApiError> {
    let mut args = Args::default();
    if let Some(q) = parts.uri.query() {
        args.insert_urlencoded(q.as_bytes())?;
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "multipart/form-data" {
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|_| ApiError::bad_request("multipart body without a boundary"))?;
        read_multipart(&mut args, body, boundary).await?;
        return Ok(args);
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Ok(args);
    }
    match mime.as_str() {
        "application/x-www-form-urlencoded" => args.insert_urlencoded(&bytes)?,
        "application/json" => {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
            args.insert_json(&value)?;
        }
        _ => return Err(ApiError::UnsupportedMediaType),
    }
    Ok(args)
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!("The request body is over {MAX_BODY} bytes"))
}

async fn read_multipart(args: &mut Args, body: Body, boundary: String) -> Result<(), ApiError> {
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_BODY as u64));
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let multipart_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large()
        }
        other => ApiError::bad_request(format!("malformed multipart body: {other}")),
    };
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        if field.file_name().is_some() {
            return Err(ApiError::bad_request(format!(
                "{name}: file uploads are accepted only by activity/attachFiles"
            )));
        }
        let text = field.text().await.map_err(multipart_error)?;
        args.insert(&name, &text)?;
    }
    Ok(())
}
