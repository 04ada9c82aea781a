//! The input parsers' fuzz target (issue 10): the argument tree (urlencoded, JSON and
//! direct names), the multipart reader and the value parsers, fed generated and
//! arbitrary input. None may panic; every error they return, rendered by the real
//! `fail_response`, is well-formed XML (and JSON) without control characters; and every
//! accepted text, rendered in a record by the real `ok_response`, is well-formed XML
//! that gives the text back.
//!
//! Cases in all: the `CASES` constants below, 105,000.

use std::sync::OnceLock;

use proptest::prelude::*;

use crate::http::args::{parse_bool, parse_date, parse_float, parse_int, Args, Given, MAX_DEPTH};
use crate::http::body::{read_multipart, MAX_BODY};
use crate::http::error::ApiError;
use crate::http::response::{fail_response, format_date, ok_response, Format, Output, Record};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fn body_text(res: axum::response::Response) -> String {
    let bytes = runtime()
        .block_on(axum::body::to_bytes(res.into_body(), usize::MAX))
        .expect("an answer's body");
    String::from_utf8(bytes.to_vec()).expect("answers are UTF-8")
}

fn printable(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}')
}

/// An error of a parser: a client error (never 500), whose answers in XML and JSON are
/// well-formed and quote nothing unprintable.
fn check_error(error: &ApiError) -> Result<(), TestCaseError> {
    prop_assert!(
        error.status().is_client_error(),
        "{error:?} is not a client error"
    );
    let xml = body_text(fail_response(Format::Xml, error));
    let doc = roxmltree::Document::parse(&xml)
        .map_err(|e| TestCaseError::fail(format!("not XML ({e}): {xml:?}")))?;
    let root = doc.root_element();
    prop_assert_eq!(root.attribute("status"), Some("fail"));
    let element = root
        .children()
        .find(|n| n.has_tag_name("error"))
        .ok_or_else(|| TestCaseError::fail(format!("no error element: {xml:?}")))?;
    prop_assert_eq!(element.attribute("code"), Some(error.code()));
    for node in doc.descendants() {
        let text = node.text().unwrap_or("");
        prop_assert!(printable(text), "unprintable text in {xml:?}");
        for a in node.attributes() {
            prop_assert!(printable(a.value()), "unprintable attribute in {xml:?}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&body_text(fail_response(Format::Json, error)))
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
    for key in ["error", "field"] {
        prop_assert!(printable(json[key].as_str().unwrap_or("")), "{json}");
    }
    Ok(())
}

/// Accepted text, as a project's name in XML: well-formed, and the same text read back.
fn check_record(text: &str) -> Result<(), TestCaseError> {
    let record = Record::new("project").with("name", text);
    let xml = body_text(ok_response(Format::Xml, Output::Object(record)));
    let doc = roxmltree::Document::parse(&xml)
        .map_err(|e| TestCaseError::fail(format!("not XML ({e}): {xml:?}")))?;
    let name = doc
        .descendants()
        .find(|n| n.has_tag_name("name"))
        .ok_or_else(|| TestCaseError::fail("no name".to_owned()))?;
    prop_assert_eq!(name.text().unwrap_or(""), text);
    Ok(())
}

/// Either the error is checked, or every attribute `names` may reach is read back through
/// the real accessors and its text rendered.
fn check_outcome(
    result: Result<(), ApiError>,
    args: &Args,
    names: &[String],
) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        return check_error(&e);
    }
    for name in names {
        let reads = [
            args.scalar(name).text(),
            args.object(&["p"]).field(name).text(),
        ];
        for read in reads {
            match read {
                Ok(Given::Value(text)) => check_record(&text)?,
                Ok(_) => {}
                Err(e) => check_error(&e)?,
            }
        }
        // Every typed read of the value answers or fails cleanly. Their errors differ
        // only in the expected type, so one of them is rendered.
        let field = args.scalar(name);
        let errors = [
            field.int().err(),
            field.float().err(),
            field.bool().err(),
            field.date().err(),
            field.id_list().err(),
            args.keys_of(name).err(),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            check_error(&e)?;
        }
    }
    Ok(())
}

/// Text made to reach the parsers' corners: brackets, `%` escapes (valid or not, of any
/// byte), `+`, `&`, `=`, control characters, non-ASCII, and anything else.
fn nasty() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => re("[a-z]{1,4}"),
        2 => Just("[".to_owned()),
        2 => Just("]".to_owned()),
        1 => Just("[]".to_owned()),
        2 => any::<u8>().prop_map(|b| format!("%{b:02X}")),
        1 => any::<u8>().prop_map(|b| format!("%{b:02x}")),
        1 => Just("%".to_owned()),
        1 => Just("%G1".to_owned()),
        1 => Just("+".to_owned()),
        1 => re("[\\x00-\\x1f\\x7f]"),
        1 => re("[é€😀\u{FFFD}\u{FFFE}\u{FFFF}\u{85}]"),
        1 => any_text(),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

/// A strategy for text matching `regex`, parsed once (a `&str` strategy parses its
/// regex again for every case).
fn re(regex: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(regex).expect("a valid regex")
}

/// A few characters of any kind (cheaper to draw than `any::<String>()`).
fn any_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter)
}

/// A PHP-style name: `p[attr]`, deeper, lists, or a malformed one.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (re("[a-z]{1,3}"), proptest::collection::vec(re("\\[[a-z0-9]{0,2}\\]"), 0..=MAX_DEPTH + 1))
            .prop_map(|(n, segs)| format!("{n}{}", segs.concat())),
        2 => nasty(),
    ]
}

/// One `key=value` pair list as urlencoded bytes, or arbitrary bytes.
fn urlencoded() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec((key(), nasty(), any::<bool>()), 0..8).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v, with_value)| if *with_value { format!("{k}={v}") } else { k.clone() })
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

/// The names a generated input may have set, to read them back.
fn names_in(input: &[u8]) -> Vec<String> {
    let mut names = vec!["p".to_owned()];
    for pair in String::from_utf8_lossy(input).split('&') {
        let name = pair.split(['=', '[']).next().unwrap_or("");
        if !name.is_empty() && names.len() < 4 {
            names.push(name.to_owned());
        }
    }
    names
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<f64>().prop_map(J::from),
        nasty().prop_map(J::String),
        any_text().prop_map(J::String),
    ];
    // Built once: the recursion calls its closure for every case.
    let member_name = prop_oneof![key(), any_text()].boxed();
    leaf.prop_recursive(6, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
            proptest::collection::vec((member_name.clone(), inner), 0..6)
                .prop_map(|members| J::Object(members.into_iter().collect())),
        ]
    })
}

/// One multipart part: its name and file name (raw header bytes, so possibly not
/// UTF-8), an optional content type, and its body.
#[derive(Debug, Clone)]
struct Part {
    name: Option<Vec<u8>>,
    file_name: Option<Vec<u8>>,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => key().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn part() -> impl Strategy<Value = Part> {
    (
        proptest::option::weighted(0.9, header_bytes()),
        proptest::option::weighted(0.1, header_bytes()),
        proptest::option::weighted(0.2, re("[a-z]{1,5}/[a-z]{1,5}(; charset=[a-z0-9-]{1,8})?")),
        prop_oneof![
            3 => nasty().prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..64),
        ],
    )
        .prop_map(|(name, file_name, content_type, body)| Part {
            name,
            file_name,
            content_type,
            body,
        })
}

fn boundary() -> impl Strategy<Value = String> {
    re("[A-Za-z0-9'()+_,./:=? -]{0,69}[A-Za-z0-9]")
}

fn multipart_body(boundary: &str, parts: &[Part], closed: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data").as_bytes());
        if let Some(name) = &p.name {
            out.extend_from_slice(b"; name=\"");
            out.extend_from_slice(name);
            out.push(b'"');
        }
        if let Some(file_name) = &p.file_name {
            out.extend_from_slice(b"; filename=\"");
            out.extend_from_slice(file_name);
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = &p.content_type {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.body);
        out.extend_from_slice(b"\r\n");
    }
    if closed {
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    out
}

/// Runs the real multipart reader (no uploads allowed) over `body` cut into chunks at
/// `cuts`, as HTTP/2 frames would.
fn read_parts(body: Vec<u8>, cuts: &[usize], boundary: &str) -> (Args, Result<(), ApiError>) {
    let mut chunks = Vec::new();
    let mut from = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts {
        chunks.push(Ok::<_, std::convert::Infallible>(
            bytes::Bytes::copy_from_slice(&body[from..cut.max(from)]),
        ));
        from = cut.max(from);
    }
    chunks.push(Ok(bytes::Bytes::copy_from_slice(&body[from..])));
    let mut args = Args::default();
    let result = runtime().block_on(read_multipart(
        &mut args,
        futures_util::stream::iter(chunks),
        boundary.to_owned(),
        MAX_BODY as u64,
        None,
    ));
    (
        args,
        result.map(|files| assert!(files.is_none(), "no uploads without limits")),
    )
}

/// `cases` cases, drawn with XorShift: the default ChaCha took most of the time in an
/// unoptimised build.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::with_cases(cases)
    }
}

const URLENCODED_CASES: u32 = 30_000;
const DIRECT_CASES: u32 = 15_000;
const JSON_CASES: u32 = 15_000;
const MULTIPART_CASES: u32 = 15_000;
const MULTIPART_BYTES_CASES: u32 = 10_000;
const VALUE_CASES: u32 = 20_000;

proptest! {
    #![proptest_config(config(URLENCODED_CASES))]

    /// Query strings and urlencoded bodies; what is accepted is what form_urlencoded
    /// reads, byte for byte (only invalid UTF-8, which it replaces, is refused here).
    #[test]
    fn urlencoded_arguments(input in urlencoded()) {
        let mut args = Args::default();
        let result = args.insert_urlencoded(&input);
        let mut lossy = Args::default();
        let lossy_result = form_urlencoded::parse(&input)
            .filter(|(k, _)| !k.is_empty())
            .try_for_each(|(k, v)| lossy.insert(&k, &v));
        if result.is_ok() {
            prop_assert!(lossy_result.is_ok());
            prop_assert_eq!(format!("{args:?}"), format!("{lossy:?}"));
        }
        check_outcome(result, &args, &names_in(&input))?;
    }
}

proptest! {
    #![proptest_config(config(DIRECT_CASES))]

    /// Names and values as decoded text: the key parser and the XML-text check.
    #[test]
    fn names_and_values(pairs in proptest::collection::vec((key(), nasty()), 1..4)) {
        let mut args = Args::default();
        let mut names = vec!["p".to_owned()];
        for (k, v) in &pairs {
            let result = args.insert(k, v);
            names.push(k.split('[').next().unwrap_or("").to_owned());
            if let Err(e) = result {
                check_error(&e)?;
            }
        }
        check_outcome(Ok(()), &args, &names)?;
    }
}

proptest! {
    #![proptest_config(config(JSON_CASES))]

    #[test]
    fn json_bodies(value in json_value()) {
        let mut args = Args::default();
        let result = args.insert_json(&value);
        let mut names = vec!["p".to_owned()];
        if let serde_json::Value::Object(map) = &value {
            names.extend(map.keys().take(3).cloned());
        }
        check_outcome(result, &args, &names)?;
    }
}

proptest! {
    #![proptest_config(config(MULTIPART_CASES))]

    /// Well-framed multipart bodies of generated parts, whole or cut anywhere, closed or
    /// not, under the body's boundary or another one.
    #[test]
    fn multipart_parts(
        boundary in boundary(),
        parts in proptest::collection::vec(part(), 0..6),
        closed in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
        other_boundary in proptest::option::weighted(0.1, boundary()),
    ) {
        let body = multipart_body(&boundary, &parts, closed);
        let read_under = other_boundary.as_deref().unwrap_or(&boundary);
        let (args, result) = read_parts(body, &cuts, read_under);
        // A closed body of text parts with UTF-8 names and values that do not hold the
        // boundary reads back exactly.
        let plain = closed && other_boundary.is_none() && parts.iter().all(|p| {
            p.file_name.is_none()
                && p.name.as_ref().is_some_and(|n| {
                    std::str::from_utf8(n).is_ok_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()))
                })
                && std::str::from_utf8(&p.body).is_ok_and(|b| {
                    printable(b) && !b.contains(&format!("--{boundary}"))
                })
        });
        if plain {
            prop_assert!(result.is_ok(), "{result:?}");
            if let Some(last) = parts.last() {
                let name = String::from_utf8_lossy(last.name.as_deref().unwrap_or_default());
                let value = String::from_utf8_lossy(&last.body).into_owned();
                let expected = if value.is_empty() { Given::Empty } else { Given::Value(value) };
                prop_assert_eq!(args.scalar(&name).text().ok(), Some(expected));
            }
        }
        let names: Vec<String> = parts
            .iter()
            .filter_map(|p| p.name.as_ref())
            .map(|n| String::from_utf8_lossy(n).split('[').next().unwrap_or("").to_owned())
            .take(3)
            .collect();
        check_outcome(result, &args, &names)?;
    }
}

proptest! {
    #![proptest_config(config(MULTIPART_BYTES_CASES))]

    /// Arbitrary bytes as a multipart body, bare or after an opening boundary line; and
    /// arbitrary Content-Type values looked at for a boundary.
    #[test]
    fn multipart_bytes(
        boundary in boundary(),
        opened in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(any::<usize>(), 0..3),
        content_type in prop_oneof![any_text(), re("multipart/form-data(; ?boundary=[^;]{0,20})?")],
    ) {
        let _ = multer::parse_boundary(&content_type);
        let mut body = Vec::new();
        if opened {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        }
        body.extend_from_slice(&bytes);
        let (args, result) = read_parts(body, &cuts, &boundary);
        check_outcome(result, &args, &["p".to_owned(), "a".to_owned()])?;
    }
}

proptest! {
    #![proptest_config(config(VALUE_CASES))]

    /// The value parsers: no panic on anything; dates stay in the years YYYY writes and
    /// read back from their own writing; numbers round-trip; floats are finite, never -0.
    #[test]
    fn value_parsers(
        text in prop_oneof![
            nasty(),
            re("[+-]?[0-9]{1,25}(\\.[0-9]{0,5})?([eE][+-]?[0-9]{1,4})?"),
            re("[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}( [0-9]{1,2}:[0-9]{2}:[0-9]{2})?"),
            re("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"),
            re("(?i)(true|false|yes|no|on|off|1|0|inf|nan|infinity)"),
        ],
        n in any::<i64>(),
        secs in -62_167_219_200i64..=253_402_300_799,
    ) {
        if let Some(d) = parse_date(&text) {
            prop_assert!((-62_167_219_200..=253_402_300_799).contains(&d), "{text} -> {d}");
        }
        if let Some(f) = parse_float(&text) {
            prop_assert!(f.is_finite() && !(f == 0.0 && f.is_sign_negative()), "{text} -> {f}");
        }
        let _ = parse_bool(&text);
        if let Some(i) = parse_int(&text) {
            let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
            prop_assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()), "{text}");
            prop_assert_eq!(text.parse::<i128>().ok(), Some(i128::from(i)));
        }
        prop_assert_eq!(parse_int(&n.to_string()), Some(n));
        prop_assert_eq!(parse_date(&format_date(secs)), Some(secs));
        // Through the typed accessors, as a handler reads them.
        let mut args = Args::default();
        if let Err(e) = args.insert("x", &text) {
            check_error(&e)?;
        }
        check_outcome(Ok(()), &args, &["x".to_owned()])?;
    }
}
