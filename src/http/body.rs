//! Reading a request's arguments from its query string and body into one [`Args`].

use axum::body::Body;
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;

use crate::files::{Blobs, StagedBlob};
use crate::http::args::{value_text, Args};
use crate::http::error::ApiError;

/// The largest body accepted by calls that take no upload.
pub const MAX_BODY: usize = 1024 * 1024;

/// A file part of a multipart body, already written to storage (not yet under its key).
#[derive(Debug)]
pub struct Upload {
    /// The part's field name, e.g. `files[1][content]`.
    pub field: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub blob: StagedBlob,
}

/// Where and how much a call that takes uploads may store.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    pub blobs: Blobs,
    pub max_file_bytes: u64,
    pub max_files: usize,
}

/// The file parts of an attachFiles body, not yet read: the body stops at the first file
/// part until the caller is known and allowed to attach (`FileParts::read`), so nothing
/// of a refused request reaches storage.
pub struct FileParts {
    multipart: multer::Multipart<'static>,
    first: multer::Field<'static>,
    limits: UploadLimits,
    /// Text bytes read before the first file part.
    text_bytes: usize,
}

impl std::fmt::Debug for FileParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileParts").finish_non_exhaustive()
    }
}

/// Merges the query string and the body; a body value wins over the query string. A
/// multipart body is read up to its first file part, which `uploads` allows (and answers
/// unread) or refuses.
pub async fn read_args(
    parts: &Parts,
    body: Body,
    uploads: Option<UploadLimits>,
) -> Result<(Args, Option<FileParts>), ApiError> {
    let mut args = Args::default();
    if let Some(q) = parts.uri.query() {
        args.insert_urlencoded(q.as_bytes())?;
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max_body = match &uploads {
        Some(u) => u
            .max_file_bytes
            .saturating_add(MAX_BODY as u64)
            .saturating_mul(u.max_files as u64 + 1),
        None => MAX_BODY as u64,
    };
    if declared.is_some_and(|n| n > max_body) {
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
        let files = match uploads {
            // Uploads stream through, never whole in memory.
            Some(limits) => {
                read_multipart(
                    &mut args,
                    body.into_data_stream(),
                    boundary,
                    max_body,
                    Some(limits),
                )
                .await?
            }
            // Text parts only: at most 1 MiB, read whole first and parsed as one chunk.
            None => {
                let bytes = axum::body::to_bytes(body, MAX_BODY)
                    .await
                    .map_err(|_| too_large())?;
                let whole =
                    futures_util::stream::once(
                        async move { Ok::<_, std::convert::Infallible>(bytes) },
                    );
                read_multipart(&mut args, whole, boundary, max_body, None).await?
            }
        };
        return Ok((args, files));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Ok((args, None));
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
    Ok((args, None))
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!("The request body is over {MAX_BODY} bytes"))
}

fn multipart_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large()
        }
        other => ApiError::bad_request(format!("malformed multipart body: {other}")),
    }
}

/// Adds a text part to `args`, keeping the text parts of one body within `MAX_BODY`:
/// counted as the bytes arrive, so an endless text part is refused at the limit instead
/// of being held whole first.
async fn read_text_part(
    args: &mut Args,
    name: &str,
    mut field: multer::Field<'static>,
    text_bytes: &mut usize,
) -> Result<(), ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        *text_bytes += chunk.len();
        if *text_bytes > MAX_BODY {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    // Bytes, not multer's `text()`, which would replace what is not UTF-8.
    args.insert(name, value_text(name, &bytes)?)
}

/// A part's name; `None` for a part without one (skipped). A name or file name that is
/// not UTF-8 is refused, as in a query string (multer would drop it without a word).
fn part_name(field: &multer::Field<'static>) -> Result<Option<String>, ApiError> {
    if field
        .headers()
        .get(CONTENT_DISPOSITION)
        .is_some_and(|v| std::str::from_utf8(v.as_bytes()).is_err())
    {
        return Err(ApiError::bad_request(
            "a multipart part's name or file name is not valid UTF-8",
        ));
    }
    Ok(field.name().map(str::to_owned))
}

/// Reads text parts into `args` up to the first file part, which it answers unread when
/// `uploads` allows files and refuses otherwise. Crate-visible for the parser's fuzz test.
pub(crate) async fn read_multipart<S, E>(
    args: &mut Args,
    body: S,
    boundary: String,
    max_body: u64,
    uploads: Option<UploadLimits>,
) -> Result<Option<FileParts>, ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    use futures_util::StreamExt;
    let body = body.map(|piece| piece.map_err(Into::<ReadError>::into));
    let body = with_first_delimiter(body, &boundary).await;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(max_body));
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut text_bytes = 0usize;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let Some(name) = part_name(&field)? else {
            continue;
        };
        if field.file_name().is_none() {
            read_text_part(args, &name, field, &mut text_bytes).await?;
            continue;
        }
        let Some(limits) = uploads else {
            return Err(ApiError::bad_request(format!(
                "{name}: file uploads are accepted only by activity/attachFiles"
            )));
        };
        return Ok(Some(FileParts {
            multipart,
            first: field,
            limits,
            text_bytes,
        }));
    }
    Ok(None)
}

/// Why a body stream could not be read, as multer takes it.
type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// The body again, its first piece holding the first delimiter (`--boundary`), or all of
/// a body that has none within `MAX_BODY` bytes.
///
/// multer looks for the first delimiter, reads the body again if it is not there yet, and
/// then takes the body's end for a truncated body without looking at what that second
/// read brought (rwf2/multer#70). A small body arriving whole between the two reads (as
/// HTTP/2 often delivers one under load) was refused with "incomplete multipart stream".
/// With the delimiter in the first piece, multer never makes that second read.
async fn with_first_delimiter<S>(
    body: S,
    boundary: &str,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, ReadError>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, ReadError>> + Send + 'static,
{
    use futures_util::StreamExt;
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut body = Box::pin(body);
    let mut first = Vec::new();
    // A read error goes to multer after the bytes before it, as it would have.
    let mut failed = None;
    loop {
        // Only where a delimiter could end that was not seen before: linear in the body.
        let from = first.len().saturating_sub(delimiter.len() - 1);
        if first.len() > MAX_BODY
            || first[from..]
                .windows(delimiter.len())
                .any(|w| w == delimiter)
        {
            break;
        }
        match body.next().await {
            Some(Ok(piece)) => {
                let from = first.len().saturating_sub(delimiter.len() - 1);
                first.extend_from_slice(&piece);
                if first[from..]
                    .windows(delimiter.len())
                    .any(|w| w == delimiter)
                {
                    break;
                }
            }
            Some(Err(e)) => {
                failed = Some(Err(e));
                break;
            }
            None => break,
        }
    }
    let head = std::iter::once(Ok(bytes::Bytes::from(first))).chain(failed);
    futures_util::stream::iter(head).chain(body)
}

impl FileParts {
    /// Reads the rest of the body: each file streamed to storage, its size checked as its
    /// bytes arrive, before they are written; text parts after the files go into `args`.
    pub async fn read(self, args: &mut Args) -> Result<Vec<Upload>, ApiError> {
        let FileParts {
            mut multipart,
            first,
            limits,
            mut text_bytes,
        } = self;
        let storage_error = |e: std::io::Error| ApiError::Internal(e.into());
        let mut files = Vec::new();
        let mut next = Some(first);
        while let Some(mut field) = match next.take() {
            Some(field) => Some(field),
            None => multipart.next_field().await.map_err(multipart_error)?,
        } {
            let Some(name) = part_name(&field)? else {
                continue;
            };
            if field.file_name().is_none() {
                read_text_part(args, &name, field, &mut text_bytes).await?;
                continue;
            }
            if files.len() >= limits.max_files {
                return Err(ApiError::TooLarge(format!(
                    "at most {} files per request",
                    limits.max_files
                )));
            }
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(|m| m.essence_str().to_owned());
            // Streamed chunk by chunk: an upload is never whole in memory.
            let mut staging = limits.blobs.stage().await.map_err(storage_error)?;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                if staging.size() + chunk.len() as u64 > limits.max_file_bytes {
                    return Err(ApiError::TooLarge(format!(
                        "{name}: a file may be at most {} bytes",
                        limits.max_file_bytes
                    )));
                }
                staging.write(&chunk).await.map_err(storage_error)?;
            }
            files.push(Upload {
                field: name,
                file_name,
                content_type,
                blob: staging.finish().await.map_err(storage_error)?,
            });
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    /// A body that is not there at the first read and then arrives whole, with its end,
    /// before the next: multer alone refused it as incomplete (rwf2/multer#70).
    #[tokio::test]
    async fn a_multipart_body_arriving_whole_after_a_first_wait_is_read() {
        let boundary = "b0d7";
        let whole = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"sessionId\"\r\n\r\nabc\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"retType\"\r\n\r\njson\r\n\
             --{boundary}--\r\n"
        );
        let mut pieces: Vec<bytes::Bytes> = whole
            .as_bytes()
            .chunks(7)
            .map(bytes::Bytes::copy_from_slice)
            .collect();
        pieces.reverse();
        let mut waited = false;
        let body = futures_util::stream::poll_fn(move |cx| {
            if !waited {
                waited = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(pieces.pop().map(Ok::<_, std::io::Error>))
        });
        let mut args = Args::default();
        let files = read_multipart(&mut args, body, boundary.into(), u64::MAX, None)
            .await
            .unwrap();
        assert!(files.is_none());
        assert_eq!(
            args.scalar("sessionId").text().unwrap().value().as_deref(),
            Some("abc")
        );
        assert_eq!(
            args.scalar("retType").text().unwrap().value().as_deref(),
            Some("json")
        );
    }
}
