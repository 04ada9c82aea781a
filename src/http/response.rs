//! The 5pm envelope in XML and JSON.
//!
//! Each object type is described once, as a [`Record`] (see `api::*::record`), and this
//! module writes any record in either format, so the two never drift apart.

use std::fmt::Write;

use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};

use crate::http::error::ApiError;

/// The answer's format, chosen by `retType` or `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    /// `retType=json` (any case) wins; otherwise `Accept: application/json`; else XML.
    pub fn choose(ret_type: Option<&str>, accept: Option<&str>) -> Format {
        if let Some(r) = ret_type {
            return if r.trim().eq_ignore_ascii_case("json") {
                Format::Json
            } else {
                Format::Xml
            };
        }
        match accept {
            Some(a) if a.to_ascii_lowercase().contains("application/json") => Format::Json,
            _ => Format::Xml,
        }
    }

    /// The `retType` of a raw query string, for answers given before the arguments
    /// are parsed (or when parsing them failed).
    pub fn from_query(query: Option<&str>, accept: Option<&str>) -> Format {
        let ret_type = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "retType")
                .last()
                .map(|(_, v)| v.into_owned())
        });
        Format::choose(ret_type.as_deref(), accept)
    }
}

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    /// An object's own id: a string in JSON.
    Id(i64),
    Float(f64),
    Bool(bool),
    /// Unix seconds, written `YYYY-MM-DD HH:MM:SS` UTC.
    Date(i64),
    Null,
    /// A list of ids; in XML each is an element of the given name.
    Ids(&'static str, Vec<i64>),
    /// Nested objects, such as an activity's files.
    Records(Vec<Record>),
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// One object, under its type name (`user`, `group`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, Value)>,
}

impl Record {
    pub fn new(kind: &'static str) -> Self {
        Record {
            kind,
            fields: Vec::with_capacity(20),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.fields.push((name, value.into()));
        self
    }
}

/// What a successful call answers.
pub enum Output {
    /// A file's bytes, with its headers: sent as they are, outside the envelope.
    Download(Response),
    Object(Record),
    List {
        kind: &'static str,
        items: Vec<Record>,
        total: i64,
        offset: i64,
    },
    Scalar(&'static str, Value),
    /// A whole list (getAll) written as its rows arrive from storage, never whole in
    /// memory. `total` rows follow.
    Stream {
        kind: &'static str,
        total: i64,
        items: futures_util::stream::BoxStream<'static, Result<Record, ApiError>>,
    },
}

impl Output {
    /// A whole list (getAll): every row, from offset 0.
    pub fn all(kind: &'static str, items: Vec<Record>) -> Output {
        let total = items.len() as i64;
        Output::List {
            kind,
            items,
            total,
            offset: 0,
        }
    }
}

const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Writes `text` escaped for XML element content and attributes.
fn xml_escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC. Written by hand: every date of every record passes
/// here, and a format string is many times slower.
pub fn format_date(secs: i64) -> String {
    use chrono::{Datelike, Timelike};
    let Some(d) = chrono::DateTime::from_timestamp(secs, 0) else {
        return String::new();
    };
    let mut out = String::with_capacity(19);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
    out
}

fn xml_value(out: &mut String, name: &str, value: &Value) {
    let _ = write!(out, "<{name}>");
    match value {
        Value::Text(s) => xml_escape(out, s),
        Value::Int(i) | Value::Id(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
        Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Value::Date(d) => out.push_str(&format_date(*d)),
        Value::Null => {}
        Value::Ids(elem, ids) => {
            for id in ids {
                let _ = write!(out, "<{elem}>{id}</{elem}>");
            }
        }
        Value::Records(records) => {
            for r in records {
                xml_record(out, r);
            }
        }
    }
    let _ = write!(out, "</{name}>");
}

fn xml_record(out: &mut String, record: &Record) {
    let _ = write!(out, "<{}>", record.kind);
    for (name, value) in &record.fields {
        xml_value(out, name, value);
    }
    let _ = write!(out, "</{}>", record.kind);
}

fn json_value(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Text(s) => J::String(s.clone()),
        Value::Int(i) => J::from(*i),
        Value::Id(i) => J::String(i.to_string()),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Bool(b) => J::Bool(*b),
        Value::Date(d) => J::String(format_date(*d)),
        Value::Null => J::Null,
        Value::Ids(_, ids) => J::from(ids.clone()),
        Value::Records(records) => J::Array(records.iter().map(json_record).collect()),
    }
}

fn json_record(record: &Record) -> serde_json::Value {
    let map = record
        .fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json_value(value)))
        .collect();
    serde_json::Value::Object(map)
}

/// The body of a successful answer.
pub fn encode_ok(format: Format, output: &Output) -> String {
    match format {
        Format::Xml => {
            let mut out = String::with_capacity(1024);
            out.push_str(XML_HEAD);
            out.push_str("<response status=\"ok\">");
            match output {
                Output::Object(r) => xml_record(&mut out, r),
                Output::List {
                    items,
                    total,
                    offset,
                    ..
                } => {
                    let _ = write!(
                        out,
                        "<items count=\"{}\" total=\"{total}\" offset=\"{offset}\">",
                        items.len()
                    );
                    for r in items {
                        xml_record(&mut out, r);
                    }
                    out.push_str("</items>");
                }
                Output::Scalar(name, value) => xml_value(&mut out, name, value),
                Output::Download(_) | Output::Stream { .. } => {
                    unreachable!("written by ok_response")
                }
            }
            out.push_str("</response>");
            out
        }
        Format::Json => {
            let mut map = serde_json::Map::new();
            map.insert("status".into(), "ok".into());
            match output {
                Output::Object(r) => {
                    map.insert(r.kind.into(), json_record(r));
                }
                Output::List {
                    items,
                    total,
                    offset,
                    ..
                } => {
                    map.insert("count".into(), items.len().into());
                    map.insert("total".into(), (*total).into());
                    map.insert("offset".into(), (*offset).into());
                    map.insert(
                        "items".into(),
                        serde_json::Value::Array(items.iter().map(json_record).collect()),
                    );
                }
                Output::Scalar(name, value) => {
                    map.insert((*name).into(), json_value(value));
                }
                Output::Download(_) | Output::Stream { .. } => {
                    unreachable!("written by ok_response")
                }
            }
            serde_json::Value::Object(map).to_string()
        }
    }
}

/// The body of a failure.
pub fn encode_fail(format: Format, error: &ApiError) -> String {
    let message = error.to_string();
    let field_errors = match error {
        ApiError::Validation(errors) => errors.as_slice(),
        _ => &[],
    };
    match format {
        Format::Xml => {
            let mut out = String::with_capacity(256);
            out.push_str(XML_HEAD);
            let _ = write!(
                out,
                "<response status=\"fail\"><error code=\"{}\"",
                error.code()
            );
            if let Some(field) = error.field() {
                out.push_str(" field=\"");
                xml_escape(&mut out, field);
                out.push('"');
            }
            out.push('>');
            xml_escape(&mut out, &message);
            out.push_str("</error>");
            if !field_errors.is_empty() {
                out.push_str("<errors>");
                for e in field_errors {
                    out.push_str("<error field=\"");
                    xml_escape(&mut out, &e.field);
                    let _ = write!(out, "\" code=\"{}\">", e.code);
                    xml_escape(&mut out, &e.message);
                    out.push_str("</error>");
                }
                out.push_str("</errors>");
            }
            out.push_str("</response>");
            out
        }
        Format::Json => {
            let mut body = serde_json::json!({
                "status": "fail",
                "code": error.code(),
                "error": message,
            });
            if let Some(field) = error.field() {
                body["field"] = field.into();
            }
            if !field_errors.is_empty() {
                body["errors"] = field_errors
                    .iter()
                    .map(|e| serde_json::json!({"field": e.field, "code": e.code, "message": e.message}))
                    .collect();
            }
            body.to_string()
        }
    }
}

fn content_type(format: Format) -> HeaderValue {
    HeaderValue::from_static(match format {
        Format::Xml => "application/xml; charset=utf-8",
        Format::Json => "application/json",
    })
}

/// A streamed list: the envelope's head, each record as it comes, the tail.
fn stream_response(
    format: Format,
    total: i64,
    items: futures_util::stream::BoxStream<'static, Result<Record, ApiError>>,
) -> Response {
    use futures_util::StreamExt;
    let (head, tail) = match format {
        Format::Xml => (
            format!("{XML_HEAD}<response status=\"ok\"><items count=\"{total}\" total=\"{total}\" offset=\"0\">"),
            "</items></response>",
        ),
        Format::Json => (
            format!("{{\"status\":\"ok\",\"count\":{total},\"total\":{total},\"offset\":0,\"items\":["),
            "]}",
        ),
    };
    let records = items.enumerate().map(move |(i, item)| match item {
        Ok(record) => Ok(match format {
            Format::Xml => {
                let mut out = String::with_capacity(512);
                xml_record(&mut out, &record);
                out
            }
            Format::Json => {
                let json = json_record(&record).to_string();
                if i == 0 {
                    json
                } else {
                    format!(",{json}")
                }
            }
        }),
        Err(e) => {
            // The status is sent already: cut the body short so the client sees a
            // broken answer rather than a complete-looking short list.
            tracing::error!(error = %e, "a streamed list failed");
            Err(std::io::Error::other("list stream failed"))
        }
    });
    let body = futures_util::stream::once(async move { Ok(head) })
        .chain(records)
        .chain(futures_util::stream::once(
            async move { Ok(tail.to_owned()) },
        ));
    (
        [(CONTENT_TYPE, content_type(format))],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

pub fn ok_response(format: Format, output: Output) -> Response {
    match output {
        Output::Download(response) => response,
        Output::Stream { total, items, .. } => stream_response(format, total, items),
        output => (
            [(CONTENT_TYPE, content_type(format))],
            encode_ok(format, &output),
        )
            .into_response(),
    }
}

/// The fail envelope with its status code and the headers some errors need.
pub fn fail_response(format: Format, error: &ApiError) -> Response {
    if let ApiError::Internal(cause) = error {
        // The detail goes to the log only; the caller sees `internal`.
        tracing::error!(error = ?cause, "internal error");
    }
    let mut res = (
        error.status(),
        [(CONTENT_TYPE, content_type(format))],
        encode_fail(format, error),
    )
        .into_response();
    match error {
        ApiError::MethodNotAllowed { allow } => {
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::TooManyRequests { retry_after } => {
            res.headers_mut().insert(RETRY_AFTER, (*retry_after).into());
        }
        ApiError::AuthRequired | ApiError::AuthFailed | ApiError::SessionExpired => {
            res.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"vesper\", Bearer"),
            );
        }
        _ => {}
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record::new("user")
            .with("id", Value::Id(3))
            .with("email", "a&b@c.d")
            .with("securityLevel", 100)
            .with("canViewProfiles", true)
            .with("avatar", Value::Null)
            .with("createdAt", Value::Date(0))
            .with("team", Value::Ids("user", vec![3, 5]))
    }

    #[test]
    fn one_record_two_formats() {
        let out = Output::Object(sample());
        let xml = encode_ok(Format::Xml, &out);
        assert!(xml.contains("<user><id>3</id><email>a&amp;b@c.d</email><securityLevel>100</securityLevel><canViewProfiles>1</canViewProfiles><avatar></avatar><createdAt>1970-01-01 00:00:00</createdAt><team><user>3</user><user>5</user></team></user>"), "{xml}");
        let json: serde_json::Value = serde_json::from_str(&encode_ok(Format::Json, &out)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status":"ok","user":{"id":"3","email":"a&b@c.d","securityLevel":100,
                "canViewProfiles":true,"avatar":null,"createdAt":"1970-01-01 00:00:00","team":[3,5]}})
        );
    }

    #[test]
    fn lists_report_count_total_offset() {
        let out = Output::List {
            kind: "user",
            items: vec![sample()],
            total: 7,
            offset: 2,
        };
        assert!(
            encode_ok(Format::Xml, &out).contains("<items count=\"1\" total=\"7\" offset=\"2\">")
        );
        let json: serde_json::Value = serde_json::from_str(&encode_ok(Format::Json, &out)).unwrap();
        assert_eq!(json["count"], 1);
        assert_eq!(json["total"], 7);
        assert_eq!(json["offset"], 2);
    }

    #[test]
    fn validation_failures_list_each_field() {
        let err = ApiError::Validation(vec![super::super::error::FieldError::new(
            "group[name]",
            "required",
            "is required",
        )]);
        let xml = encode_fail(Format::Xml, &err);
        assert!(xml.contains("<error code=\"validation_failed\">"));
        assert!(xml.contains(
            "<errors><error field=\"group[name]\" code=\"required\">is required</error></errors>"
        ));
        let json: serde_json::Value =
            serde_json::from_str(&encode_fail(Format::Json, &err)).unwrap();
        assert_eq!(json["errors"][0]["field"], "group[name]");
    }

    #[test]
    fn format_choice() {
        assert_eq!(Format::choose(Some("JSON"), None), Format::Json);
        assert_eq!(
            Format::choose(Some("xml"), Some("application/json")),
            Format::Xml
        );
        assert_eq!(Format::choose(None, Some("application/json")), Format::Json);
        assert_eq!(Format::choose(None, None), Format::Xml);
        assert_eq!(
            Format::from_query(Some("a=1&retType=json"), None),
            Format::Json
        );
    }
}
