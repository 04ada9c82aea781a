//! The 5pm envelope in XML and JSON.
//!
//! Each object type is described once, as a [`Record`] (see `api::*::record`), and this
//! module writes any record in either format, so the two never drift apart.

use std::cell::RefCell;
use std::fmt::Write;

use axum::response::{IntoResponse, Response};
use http::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_TYPE, ETAG, RETRY_AFTER};

use crate::http::error::{printable, ApiError};

/// The answer's format, chosen by `retType` or `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

/// Whether a raw query key could decode to `retType`: every character it has outside
/// its `%XX` escapes is one of that word's. A list's `filter%5B...%5D` keys are not
/// decoded twice for nothing.
fn may_spell_ret_type(key: &str) -> bool {
    let bytes = key.as_bytes();
    if key == "retType" || bytes.len() > 3 * "retType".len() {
        return key == "retType";
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            i += 3;
        } else if b"retTyp".contains(&bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
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
            Some(a)
                if a.as_bytes()
                    .windows(16)
                    .any(|w| w.eq_ignore_ascii_case(b"application/json")) =>
            {
                Format::Json
            }
            _ => Format::Xml,
        }
    }

    /// The `retType` of a raw query string, for answers given before the arguments
    /// are parsed (or when parsing them failed).
    pub fn from_query(query: Option<&str>, accept: Option<&str>) -> Format {
        // Every request passes here before its arguments are read: only a pair whose raw
        // key could spell `retType` (itself, or percent-encoded) is decoded.
        let ret_type = query.and_then(|q| {
            q.split('&')
                .filter(|pair| may_spell_ret_type(pair.split_once('=').map_or(*pair, |(k, _)| k)))
                .flat_map(|pair| form_urlencoded::parse(pair.as_bytes()))
                .filter(|(k, _)| k == "retType")
                .last()
                .map(|(_, v)| v.into_owned())
        });
        Format::choose(ret_type.as_deref(), accept)
    }

    /// The format a request asked for, from what is known before its body is read: the
    /// query string's `retType`, then `Accept`.
    pub fn of_request<B>(req: &http::Request<B>) -> Format {
        Format::from_query(
            req.uri().query(),
            req.headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        )
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
    /// The object's version: sent as the `ETag` of a single-object answer.
    pub version: Option<i64>,
}

/// Room for a record's fields: a task's 25, made at once, not grown and copied.
const FIELDS: usize = 32;

/// How many field lists a thread keeps for its next records (2 KiB each): all of a
/// list of 25's, and of most pages; a larger page frees the rest as before.
const SPARE_FIELD_LISTS: usize = 64;

thread_local! {
    // The field lists of records written and dropped, kept for the next ones. A record's
    // list (2 KiB) is past the blocks glibc keeps per thread (1,032 bytes, 7 of a size),
    // so each of a list's 25 records cost an allocation and a free on the arena's slow
    // path: about 12,000 instructions of a list of 25 tasks, against some 1,000 here.
    static SPARE_FIELDS: RefCell<Vec<Vec<(&'static str, Value)>>> =
        const { RefCell::new(Vec::new()) };
}

impl Record {
    pub fn new(kind: &'static str) -> Self {
        let spare = SPARE_FIELDS.with(|spare| spare.borrow_mut().pop());
        Record {
            kind,
            fields: spare.unwrap_or_else(|| Vec::with_capacity(FIELDS)),
            version: None,
        }
    }

    pub fn versioned(mut self, version: i64) -> Self {
        self.version = Some(version);
        self
    }

    // Inlined, a record built by a chain of `with` is written in place, not moved
    // from call to call.
    #[inline]
    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.fields.push((name, value.into()));
        self
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.fields.capacity() != FIELDS {
            return;
        }
        let mut fields = std::mem::take(&mut self.fields);
        // Each kind dropped by name: left to `clear`, the drop of every value went through
        // the enum's drop glue, which one build inlined and the next did not (+12,500
        // instructions a list of 25, docs/performance.md).
        for (_, value) in fields.drain(..) {
            match value {
                Value::Text(text) => drop(text),
                Value::Ids(_, ids) => drop(ids),
                Value::Records(records) => drop(records),
                Value::Int(_)
                | Value::Id(_)
                | Value::Float(_)
                | Value::Bool(_)
                | Value::Date(_)
                | Value::Null => {}
            }
        }
        // `try_with`: a record dropped as its thread ends is freed as any other.
        let _ = SPARE_FIELDS.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_FIELD_LISTS {
                spare.push(fields);
            }
        });
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

// The writers below push bytes and digits straight into the answer: a profile of a
// 25-record list spent a quarter of the server's CPU in `write!`, per-date Strings and
// a `serde_json::Value` tree.

fn push_int(out: &mut String, i: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(i));
}

/// Writes `text` escaped for XML element content and attributes.
fn xml_escape(out: &mut String, text: &str) {
    // Every escaped character is ASCII, so each run between them is whole UTF-8 and
    // goes in with one copy. The runs are found with memchr, several bytes an
    // instruction: a byte-by-byte scan was a tenth of a list of 25 tasks' answer.
    let bytes = text.as_bytes();
    let markup = |from: usize| memchr::memchr3(b'&', b'<', b'>', &bytes[from..]).map(|i| from + i);
    let quotes =
        |from: usize| memchr::memchr3(b'"', b'\'', b'\r', &bytes[from..]).map(|i| from + i);
    let (mut next_markup, mut next_quote) = (markup(0), quotes(0));
    let mut run = 0;
    loop {
        let at = match (next_markup, next_quote) {
            (None, None) => break,
            (Some(m), Some(q)) => m.min(q),
            (Some(at), None) | (None, Some(at)) => at,
        };
        let entity = match bytes[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            _ => "&#13;",
        };
        out.push_str(&text[run..at]);
        out.push_str(entity);
        run = at + 1;
        // Each search again only past the character it found, so that no byte is
        // scanned twice by the same search.
        if next_markup == Some(at) {
            next_markup = markup(run);
        } else {
            next_quote = quotes(run);
        }
    }
    out.push_str(&text[run..]);
}

/// `0000-01-01 00:00:00` and `9999-12-31 23:59:59` UTC: the dates written by hand.
const FAST_DATES: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// `YYYY-MM-DD HH:MM:SS` in UTC; nothing for a time chrono cannot represent.
pub fn format_date(secs: i64) -> String {
    let mut out = String::with_capacity(19);
    push_date(&mut out, secs);
    out
}

/// [`format_date`] into `out`. Years 0 to 9999 are computed here (every date of every
/// record passes by); any other goes through chrono, as all did before.
fn push_date(out: &mut String, secs: i64) {
    if !FAST_DATES.contains(&secs) {
        out.push_str(&format_date_chrono(secs));
        return;
    }
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut buf = *b"0000-00-00 00:00:00";
    // Two digits at a time from a table: a digit at a time was half a date's cost.
    let mut pair = |at: usize, n: i64| {
        let n = n as usize * 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[n..n + 2]);
    };
    pair(0, year / 100);
    pair(2, year % 100);
    pair(5, month);
    pair(8, day);
    pair(11, day_secs / 3600);
    pair(14, day_secs / 60 % 60);
    pair(17, day_secs % 60);
    out.push_str(std::str::from_utf8(&buf).expect("ASCII digits"));
}

/// "00" to "99", each two ASCII digits.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
///
/// Counts from 0000-03-01 in 400-year eras of 146097 days, so that the leap day falls
/// at the end of each (March-based) year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // 719468 days from 0000-03-01 to 1970-01-01.
    let from_march_0 = days + 719_468;
    let era = from_march_0.div_euclid(146_097);
    // 0..=146096.
    let day_of_era = from_march_0.rem_euclid(146_097);
    // Drop the era's leap days (every 4th year but every 100th, but the 400th) to
    // count its years of 365 days: 0..=399.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    // 0..=365.
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March run 31,30,31,30,31 days twice and then 31,29: 153 days each 5.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

/// The chrono formatting, for the dates outside [`FAST_DATES`].
fn format_date_chrono(secs: i64) -> String {
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

/// `f` as `Display` writes it: the shortest decimal that reads back as `f`. Hours and
/// estimates have at most three decimals, written here from an integer; `Display`'s
/// general algorithm cost 600 instructions a float.
fn push_float(out: &mut String, f: f64) {
    // Below 1e9 two texts of at most three decimals are 0.001 apart, far more than a
    // float's spacing there: the one that reads back as `f` is the only one.
    if f.abs() < 1e9 && !(f == 0.0 && f.is_sign_negative()) {
        let mut scale: i64 = 1;
        for decimals in 0..=3usize {
            let scaled = f * scale as f64;
            if scaled == scaled.trunc() && scaled / scale as f64 == f {
                let n = scaled.abs() as i64;
                if f < 0.0 {
                    out.push('-');
                }
                push_int(out, n / scale);
                let mut fraction = n % scale;
                if fraction != 0 {
                    out.push('.');
                    let mut digits = decimals;
                    // Leading zeros of the fraction, then its digits without the
                    // trailing zeros (a shorter text reads back as `f` too).
                    while fraction % 10 == 0 {
                        fraction /= 10;
                        digits -= 1;
                    }
                    let width = itoa::Buffer::new().format(fraction).len();
                    for _ in width..digits {
                        out.push('0');
                    }
                    push_int(out, fraction);
                }
                return;
            }
            scale *= 10;
        }
    }
    let _ = write!(out, "{f}");
}

fn xml_open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn xml_close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn xml_value(out: &mut String, name: &str, value: &Value) {
    xml_open(out, name);
    xml_content(out, value);
    xml_close(out, name);
}

/// What goes between a field's tags.
fn xml_content(out: &mut String, value: &Value) {
    match value {
        Value::Text(s) => xml_escape(out, s),
        Value::Int(i) | Value::Id(i) => push_int(out, *i),
        Value::Float(f) => push_float(out, *f),
        Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Value::Date(d) => push_date(out, *d),
        Value::Null => {}
        Value::Ids(elem, ids) => {
            for id in ids {
                xml_open(out, elem);
                push_int(out, *id);
                xml_close(out, elem);
            }
        }
        Value::Records(records) => {
            for r in records {
                xml_record(out, r);
            }
        }
    }
}

fn xml_record(out: &mut String, record: &Record) {
    xml_open(out, record.kind);
    for (name, value) in &record.fields {
        xml_value(out, name, value);
    }
    xml_close(out, record.kind);
}

/// The tags of a list's records, made from its first record: the record's opening tag
/// with its first field's, then each field's closing tag with the next one's opening,
/// then the last field's closing tag with the record's. A record of the same kind and
/// fields (the same names, by address: one function wrote them all) is written with
/// one copy of tags a field, instead of six pushes; a list of 25 tasks spent a tenth of
/// its instructions on tags. Any other record is written as `xml_record` writes it.
struct XmlTags {
    kind: &'static str,
    names: Vec<&'static str>,
    /// The joints, one after another in one text: a text each was 26 of the 28
    /// allocations of a 25-task list's answer. Joint `i` ends at `ends[i]`.
    joints: String,
    ends: Vec<usize>,
}

impl XmlTags {
    fn of(record: &Record) -> XmlTags {
        let names: Vec<&'static str> = record.fields.iter().map(|(n, _)| *n).collect();
        let tags_len: usize = names.iter().map(|n| 2 * n.len() + 5).sum();
        let mut joints = String::with_capacity(tags_len + 2 * record.kind.len() + 5);
        let mut ends = Vec::with_capacity(names.len() + 1);
        xml_open(&mut joints, record.kind);
        for name in &names {
            xml_open(&mut joints, name);
            ends.push(joints.len());
            xml_close(&mut joints, name);
        }
        xml_close(&mut joints, record.kind);
        ends.push(joints.len());
        XmlTags {
            kind: record.kind,
            names,
            joints,
            ends,
        }
    }

    fn fits(&self, record: &Record) -> bool {
        let same = |a: &str, b: &str| std::ptr::eq(a, b);
        same(self.kind, record.kind)
            && self.names.len() == record.fields.len()
            && (self.names.iter())
                .zip(&record.fields)
                .all(|(n, (m, _))| same(n, m))
    }

    fn write(&self, out: &mut String, record: &Record) {
        if !self.fits(record) {
            return xml_record(out, record);
        }
        let mut start = 0;
        for (&end, (_, value)) in self.ends.iter().zip(&record.fields) {
            out.push_str(&self.joints[start..end]);
            xml_content(out, value);
            start = end;
        }
        out.push_str(&self.joints[start..]);
    }
}

/// Writes `text` as a JSON string, escaped as serde_json does.
fn json_str(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    // As in `xml_escape`: only ASCII is escaped, so the runs between are whole UTF-8.
    let mut run = 0;
    for (i, b) in text.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[run..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(short);
        }
        run = i + 1;
    }
    out.push_str(&text[run..]);
    out.push('"');
}

/// An f64 exactly as serde_json writes it (`null` when not finite): its own float
/// formatting, into a stack buffer.
fn json_f64(out: &mut String, f: f64) {
    let mut buf = [0u8; 40];
    let written = {
        let mut rest = &mut buf[..];
        serde_json::to_writer(&mut rest, &f).map(|()| 40 - rest.len())
    };
    match written
        .ok()
        .and_then(|n| std::str::from_utf8(&buf[..n]).ok())
    {
        Some(text) => out.push_str(text),
        // Not expected (a float is at most 24 bytes), but never worth a wrong answer.
        None => out.push_str(&serde_json::to_string(&f).unwrap_or_else(|_| "null".into())),
    }
}

fn json_value(out: &mut String, value: &Value) {
    match value {
        Value::Text(s) => json_str(out, s),
        Value::Int(i) => push_int(out, *i),
        Value::Id(i) => {
            out.push('"');
            push_int(out, *i);
            out.push('"');
        }
        Value::Float(f) => json_f64(out, *f),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Date(d) => {
            out.push('"');
            push_date(out, *d);
            out.push('"');
        }
        Value::Null => out.push_str("null"),
        Value::Ids(_, ids) => {
            out.push('[');
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_int(out, *id);
            }
            out.push(']');
        }
        Value::Records(records) => json_records(out, records),
    }
}

/// `"name":` after the members before it.
fn json_key(out: &mut String, name: &str) {
    out.push(',');
    json_str(out, name);
    out.push(':');
}

fn json_record(out: &mut String, record: &Record) {
    out.push('{');
    for (i, (name, value)) in record.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, name);
        out.push(':');
        json_value(out, value);
    }
    out.push('}');
}

fn json_records(out: &mut String, records: &[Record]) {
    out.push('[');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let start = out.len();
        json_record(out, r);
        if i == 0 {
            let first = out.len() - start;
            reserve_for_rest(out, first, records.len());
        }
    }
    out.push(']');
}

/// Room for the records after the first of `count`, guessed from the first's size with
/// a quarter to spare: the guess made before any was written grew a list of 25 tasks
/// once, copying half of it.
fn reserve_for_rest(out: &mut String, first: usize, count: usize) {
    let rest = first.saturating_mul(count.saturating_sub(1));
    out.reserve(rest.saturating_add(rest / 4).saturating_add(64));
}

/// The room an answer starts with: an object's whole answer, or a list's envelope and
/// first record. The list's other records are made room for once the first is written
/// (`reserve_for_rest`): growing copies all the room held, not only what was written.
const ANSWER_START: usize = 2048;

/// The body of a successful answer.
pub fn encode_ok(format: Format, output: &Output) -> String {
    let mut out = String::with_capacity(ANSWER_START);
    match format {
        Format::Xml => {
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
                    out.push_str("<items count=\"");
                    push_int(&mut out, items.len());
                    out.push_str("\" total=\"");
                    push_int(&mut out, *total);
                    out.push_str("\" offset=\"");
                    push_int(&mut out, *offset);
                    out.push_str("\">");
                    if let Some(first) = items.first() {
                        let start = out.len();
                        xml_record(&mut out, first);
                        let size = out.len() - start;
                        reserve_for_rest(&mut out, size, items.len());
                        let tags = XmlTags::of(first);
                        for r in &items[1..] {
                            tags.write(&mut out, r);
                        }
                    }
                    out.push_str("</items>");
                }
                Output::Scalar(name, value) => xml_value(&mut out, name, value),
                Output::Download(_) | Output::Stream { .. } => {
                    unreachable!("written by ok_response")
                }
            }
            out.push_str("</response>");
        }
        Format::Json => {
            out.push_str("{\"status\":\"ok\"");
            match output {
                Output::Object(r) => {
                    json_key(&mut out, r.kind);
                    json_record(&mut out, r);
                }
                Output::List {
                    items,
                    total,
                    offset,
                    ..
                } => {
                    out.push_str(",\"count\":");
                    push_int(&mut out, items.len());
                    out.push_str(",\"total\":");
                    push_int(&mut out, *total);
                    out.push_str(",\"offset\":");
                    push_int(&mut out, *offset);
                    out.push_str(",\"items\":");
                    json_records(&mut out, items);
                }
                Output::Scalar(name, value) => {
                    json_key(&mut out, name);
                    json_value(&mut out, value);
                }
                Output::Download(_) | Output::Stream { .. } => {
                    unreachable!("written by ok_response")
                }
            }
            out.push('}');
        }
    }
    out
}

/// The body of a failure. Its message and field names may quote what the caller sent,
/// so they pass through [`printable`] in both formats.
pub fn encode_fail(format: Format, error: &ApiError) -> String {
    let message = error.to_string();
    let message = printable(&message);
    let field = error.field().map(printable);
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
            if let Some(field) = &field {
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
                    xml_escape(&mut out, &printable(&e.field));
                    let _ = write!(out, "\" code=\"{}\">", e.code);
                    xml_escape(&mut out, &printable(&e.message));
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
            if let Some(field) = field {
                body["field"] = field.into();
            }
            if !field_errors.is_empty() {
                body["errors"] = field_errors
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "field": printable(&e.field),
                            "code": e.code,
                            "message": printable(&e.message),
                        })
                    })
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

/// The text of the `i`th record of a streamed list.
fn stream_chunk(format: Format, i: usize, record: &Record) -> String {
    let mut out = String::with_capacity(512);
    match format {
        Format::Xml => xml_record(&mut out, record),
        Format::Json => {
            if i > 0 {
                out.push(',');
            }
            json_record(&mut out, record);
        }
    }
    out
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
        Ok(record) => Ok(stream_chunk(format, i, &record)),
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

/// How many headers an answer leaves with: its type, length and `ETag`, and the
/// transport's request id, `Strict-Transport-Security`, `Cache-Control`,
/// `X-Content-Type-Options` and `Date`. A map sized for them at once is not grown and
/// rehashed on the way out.
const ANSWER_HEADERS: usize = 8;

pub fn ok_response(format: Format, output: Output) -> Response {
    match output {
        Output::Download(response) => response,
        Output::Stream { total, items, .. } => stream_response(format, total, items),
        output => {
            let mut res = Response::new(axum::body::Body::from(encode_ok(format, &output)));
            *res.headers_mut() = HeaderMap::with_capacity(ANSWER_HEADERS);
            res.headers_mut().insert(CONTENT_TYPE, content_type(format));
            if let Output::Object(Record {
                version: Some(v), ..
            }) = output
            {
                res.headers_mut().insert(ETAG, etag(v));
            }
            res
        }
    }
}

/// A version as an `ETag`: a strong tag, the number quoted.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

/// The version an `ETag` we sent names (a weak `W/` prefix is accepted too).
pub fn parse_etag(tag: &str) -> Option<i64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
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
    use proptest::prelude::*;

    /// The encoders as they were before they wrote bytes directly: what the new ones
    /// must match.
    mod old {
        use super::super::*;

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

        pub fn format_date(secs: i64) -> String {
            format_date_chrono(secs)
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

        pub fn xml_record(out: &mut String, record: &Record) {
            let _ = write!(out, "<{}>", record.kind);
            for (name, value) in &record.fields {
                xml_value(out, name, value);
            }
            let _ = write!(out, "</{}>", record.kind);
        }

        pub fn json_value(value: &Value) -> serde_json::Value {
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

        pub fn json_record(record: &Record) -> serde_json::Value {
            let map = record
                .fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), json_value(value)))
                .collect();
            serde_json::Value::Object(map)
        }

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
                        Output::Download(_) | Output::Stream { .. } => unreachable!(),
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
                        Output::Download(_) | Output::Stream { .. } => unreachable!(),
                    }
                    serde_json::Value::Object(map).to_string()
                }
            }
        }
    }

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

    /// A record made from a dropped one's field list starts empty, and a record whose
    /// list grew is not kept: its list is freed as any other.
    #[test]
    fn records_reuse_dropped_field_lists_empty() {
        let big = (0..40).fold(Record::new("task"), |r, _| r.with("x", 1));
        drop((sample(), big));
        for _ in 0..3 {
            let r = Record::new("user");
            assert!(r.fields.is_empty());
            assert_eq!(r.fields.capacity(), FIELDS);
        }
        let out = Output::Object(Record::new("group").with("id", Value::Id(1)));
        assert!(encode_ok(Format::Xml, &out).ends_with("<group><id>1</id></group></response>"));
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

    /// A list's records written with the first one's tags, or, when their fields differ
    /// from its, as any record: the same answer as the old encoder's either way.
    #[test]
    fn list_records_written_with_the_first_ones_tags() {
        let other = |name: &'static str| {
            let mut r = sample();
            r.fields[1].0 = name;
            r
        };
        let nested = sample().with("files", Value::Records(vec![sample(), sample()]));
        let lists = [
            vec![sample(), sample(), sample()],
            vec![sample(), other("login"), sample()],
            vec![
                sample(),
                sample().with("more", 1),
                Record::new("group"),
                sample(),
            ],
            vec![nested.clone(), nested, sample()],
        ];
        for items in lists {
            let out = Output::List {
                kind: "user",
                items,
                total: 4,
                offset: 0,
            };
            assert_eq!(
                encode_ok(Format::Xml, &out),
                old::encode_ok(Format::Xml, &out)
            );
        }
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
        assert_eq!(
            Format::choose(None, Some("text/html, Application/JSON;q=0.9")),
            Format::Json
        );
        assert_eq!(Format::choose(None, Some("application/jso")), Format::Xml);
        assert_eq!(Format::choose(None, None), Format::Xml);
        assert_eq!(
            Format::from_query(Some("a=1&retType=json"), None),
            Format::Json
        );
    }

    #[test]
    fn ret_type_is_read_from_the_query_as_form_decoding_reads_it() {
        let queries = [
            "retType=json",
            "a=1&retType=json&b=2",
            "retType=json&retType=xml",
            "retType=xml&retType=json",
            "ret%54ype=json",
            "retType=js%6Fn",
            "retType=%20json+",
            "ret+Type=json",
            "retType",
            "&&retType=json&",
            "sessionId=abc%3D&retType=JSON",
            "retType=json&ret%54ype=xml",
            "%72%65%74%54%79%70%65=json",
            "filter%5BprojectId%5D=2&retType=json&filter%5Bactive%5D=1",
            "re%74Type=json&filter%5Bactive%5D=xml",
            "ret%54yp%65=json&retType=xml&%72etType=json",
            "",
        ];
        for q in queries {
            let decoded = form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "retType")
                .last()
                .map(|(_, v)| v.into_owned());
            assert_eq!(
                Format::from_query(Some(q), None),
                Format::choose(decoded.as_deref(), None),
                "{q}"
            );
        }
    }

    #[test]
    fn floats_as_display_writes_them() {
        for f in [
            0.0,
            -0.0,
            2.0,
            -2.0,
            1.5,
            0.1,
            0.05,
            0.001,
            -0.007,
            1.25,
            10.2,
            100.0,
            0.3,
            0.1 + 0.2,
            1e-4,
            999_999_999.999,
            1e9,
            1e21,
            123.456,
            5e-324,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut out = String::new();
            push_float(&mut out, f);
            assert_eq!(out, f.to_string(), "{f:?}");
        }
    }

    #[test]
    fn dates_at_fixed_points() {
        let cases = [
            (0, "1970-01-01 00:00:00"),
            (-1, "1969-12-31 23:59:59"),
            (-86_400, "1969-12-31 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"),
            (951_868_799, "2000-02-29 23:59:59"),
            (951_868_800, "2000-03-01 00:00:00"),
            (1_078_012_800, "2004-02-29 00:00:00"),
            (4_107_456_000, "2100-02-28 00:00:00"),
            (4_107_542_400, "2100-03-01 00:00:00"),
            (-2_203_977_600, "1900-02-28 00:00:00"),
            (-2_203_891_200, "1900-03-01 00:00:00"),
            (-62_162_121_600, "0000-02-29 00:00:00"),
            (-62_167_219_200, "0000-01-01 00:00:00"),
            (253_402_300_799, "9999-12-31 23:59:59"),
        ];
        for (secs, text) in cases {
            assert_eq!(format_date(secs), text, "{secs}");
            assert_eq!(old::format_date(secs), text, "{secs}");
        }
        // Outside years 0..=9999: chrono's answer, or nothing where it has none.
        for secs in [
            -62_167_219_201,
            253_402_300_800,
            i64::MIN,
            i64::MAX,
            -8_334_601_228_801,
            8_210_266_876_800,
        ] {
            assert_eq!(format_date(secs), old::format_date(secs), "{secs}");
        }
        assert_eq!(format_date(-62_167_219_201), "-001-12-31 23:59:59");
        assert_eq!(format_date(253_402_300_800), "10000-01-01 00:00:00");
        assert_eq!(format_date(i64::MAX), "");
    }

    /// Every day of years 0 to 9999, at a time of day that drifts a little each day.
    #[test]
    fn every_day_matches_chrono() {
        let mut secs = *FAST_DATES.start();
        while secs <= *FAST_DATES.end() {
            assert_eq!(format_date(secs), old::format_date(secs), "{secs}");
            secs += 86_400 + 7;
        }
        assert_eq!(format_date(*FAST_DATES.end()), "9999-12-31 23:59:59");
    }

    #[test]
    fn escapes_match_serde_json() {
        let text: String = (0u8..0x80).map(char::from).collect::<String>() + "é€😀\u{2028}";
        let mut out = String::new();
        json_str(&mut out, &text);
        assert_eq!(out, serde_json::Value::String(text.clone()).to_string());
        let mut xml = String::new();
        xml_escape(&mut xml, "a&b<c>d\"e'f\rg\n€");
        assert_eq!(xml, "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;g\n€");
    }

    /// Element names for the generated records (valid XML names; "status" also
    /// collides with the envelope's own JSON key).
    const NAMES: &[&str] = &[
        "id",
        "name",
        "a",
        "b",
        "status",
        "createdAt",
        "items",
        "größe",
    ];
    const KINDS: &[&str] = &["user", "task", "file"];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[&<>\"'\\r\\n\\t\\x00-\\x1f\\x7f\\\\/a-zé€😀\u{2028}\u{fffe}]{0,24}",
        ]
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            prop::sample::select(vec![
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
                -0.0,
                0.1,
                1e21,
                1e-7,
                f64::MAX,
                f64::MIN_POSITIVE,
                5e-324,
            ]),
            (-1e6..1e6f64),
            // Hours and estimates: at most three decimals, written by hand.
            (-1_000_000_000_000i64..1_000_000_000_000).prop_map(|n| n as f64 / 1000.0),
            (-100_000i64..100_000).prop_map(|n| n as f64 / 100.0),
        ]
    }

    fn date() -> impl Strategy<Value = i64> {
        prop_oneof![any::<i64>(), -70_000_000_000..260_000_000_000i64]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            text().prop_map(Value::Text),
            any::<i64>().prop_map(Value::Int),
            any::<i64>().prop_map(Value::Id),
            float().prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
            date().prop_map(Value::Date),
            Just(Value::Null),
            (
                prop::sample::select(KINDS),
                prop::collection::vec(any::<i64>(), 0..4)
            )
                .prop_map(|(elem, ids)| Value::Ids(elem, ids)),
        ]
    }

    fn record_of(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Record> {
        (
            prop::sample::select(KINDS),
            prop::collection::vec((prop::sample::select(NAMES), value), 0..10),
        )
            .prop_map(|(kind, fields)| Record {
                kind,
                fields,
                version: None,
            })
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                3 => scalar(),
                1 => prop::collection::vec(record_of(inner), 0..3).prop_map(Value::Records),
            ]
        })
    }

    fn record() -> impl Strategy<Value = Record> {
        record_of(value())
    }

    #[derive(Debug, Clone)]
    enum Shape {
        Object(Record),
        List(Vec<Record>, i64, i64),
        Scalar(&'static str, Value),
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            record().prop_map(Shape::Object),
            (
                prop::collection::vec(record(), 0..4),
                any::<i64>(),
                any::<i64>()
            )
                .prop_map(|(items, total, offset)| Shape::List(items, total, offset)),
            (prop::sample::select(NAMES), value()).prop_map(|(n, v)| Shape::Scalar(n, v)),
        ]
    }

    fn output(shape: Shape) -> Output {
        match shape {
            Shape::Object(r) => Output::Object(r),
            Shape::List(items, total, offset) => Output::List {
                kind: "user",
                items,
                total,
                offset,
            },
            Shape::Scalar(name, value) => Output::Scalar(name, value),
        }
    }

    /// Whether some object would have a key twice: the old map kept one of them, the
    /// new text both (the same value once parsed), so only then the bytes differ.
    fn repeats_a_key(shape: &Shape) -> bool {
        fn in_record(r: &Record) -> bool {
            r.fields
                .iter()
                .enumerate()
                .any(|(i, (n, _))| r.fields[..i].iter().any(|(m, _)| m == n))
                || r.fields.iter().any(|(_, v)| in_value(v))
        }
        fn in_value(v: &Value) -> bool {
            matches!(v, Value::Records(rs) if rs.iter().any(in_record))
        }
        match shape {
            Shape::Object(r) => r.kind == "status" || in_record(r),
            Shape::List(items, ..) => items.iter().any(in_record),
            Shape::Scalar(name, v) => *name == "status" || in_value(v),
        }
    }

    fn xml_chars_only(record: &Record) -> bool {
        let legal = |c: char| {
            matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
                || c >= '\u{10000}'
        };
        record.fields.iter().all(|(_, v)| match v {
            Value::Text(s) => s.chars().all(legal),
            Value::Records(rs) => rs.iter().all(xml_chars_only),
            _ => true,
        })
    }

    /// Checks a parsed `<kind>` element against its record.
    fn check_xml(node: roxmltree::Node, record: &Record) -> Result<(), TestCaseError> {
        prop_assert_eq!(node.tag_name().name(), record.kind);
        let children: Vec<_> = node.children().filter(|n| n.is_element()).collect();
        prop_assert_eq!(children.len(), record.fields.len());
        for (child, (name, value)) in children.into_iter().zip(&record.fields) {
            prop_assert_eq!(child.tag_name().name(), *name);
            let text = child.text().unwrap_or("");
            let elems: Vec<_> = child.children().filter(|n| n.is_element()).collect();
            match value {
                Value::Text(s) => prop_assert_eq!(text, s.as_str()),
                Value::Int(i) | Value::Id(i) => prop_assert_eq!(text, i.to_string()),
                Value::Float(f) => prop_assert_eq!(text, f.to_string()),
                Value::Bool(b) => prop_assert_eq!(text, if *b { "1" } else { "0" }),
                Value::Date(d) => prop_assert_eq!(text, old::format_date(*d)),
                Value::Null => prop_assert!(text.is_empty() && elems.is_empty()),
                Value::Ids(elem, ids) => {
                    prop_assert_eq!(elems.len(), ids.len());
                    for (e, id) in elems.iter().zip(ids) {
                        prop_assert_eq!(e.tag_name().name(), *elem);
                        prop_assert_eq!(e.text().unwrap_or(""), id.to_string());
                    }
                }
                Value::Records(rs) => {
                    prop_assert_eq!(elems.len(), rs.len());
                    for (e, r) in elems.into_iter().zip(rs) {
                        check_xml(e, r)?;
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn dates_match_chrono(secs in prop_oneof![
            any::<i64>(),
            -62_200_000_000..253_500_000_000i64,
            -100_000_000_000_000..100_000_000_000_000i64,
            (-62_167_219_200 - 100..-62_167_219_200 + 100i64),
            (253_402_300_799 - 100..253_402_300_799 + 100i64),
        ]) {
            prop_assert_eq!(format_date(secs), old::format_date(secs));
        }

        #[test]
        fn answers_match_the_old_encoders(shape in shape()) {
            let repeats = repeats_a_key(&shape);
            let out = output(shape.clone());

            let xml = encode_ok(Format::Xml, &out);
            prop_assert_eq!(&xml, &old::encode_ok(Format::Xml, &out));
            // A scalar answer is checked as a record: `<response>` with one field.
            let envelope = match &shape {
                Shape::Scalar(name, value) => Record {
                    kind: "response",
                    fields: vec![(name, value.clone())],
                    version: None,
                },
                _ => Record::new("response"),
            };
            let records: Vec<&Record> = match &shape {
                Shape::Object(r) => vec![r],
                Shape::List(items, ..) => items.iter().collect(),
                Shape::Scalar(..) => vec![&envelope],
            };
            if records.iter().all(|r| xml_chars_only(r)) {
                let doc = roxmltree::Document::parse(&xml).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let root = doc.root_element();
                prop_assert_eq!(root.attribute("status"), Some("ok"));
                let mut elems = root.children().filter(|n| n.is_element());
                match &shape {
                    Shape::Object(r) => check_xml(elems.next().unwrap(), r)?,
                    Shape::List(items, total, offset) => {
                        let list = elems.next().unwrap();
                        prop_assert_eq!(list.attribute("count").map(str::to_owned), Some(items.len().to_string()));
                        prop_assert_eq!(list.attribute("total").map(str::to_owned), Some(total.to_string()));
                        prop_assert_eq!(list.attribute("offset").map(str::to_owned), Some(offset.to_string()));
                        let got: Vec<_> = list.children().filter(|n| n.is_element()).collect();
                        prop_assert_eq!(got.len(), items.len());
                        for (e, r) in got.into_iter().zip(items) {
                            check_xml(e, r)?;
                        }
                    }
                    Shape::Scalar(..) => check_xml(root, &envelope)?,
                }
            }

            let json = encode_ok(Format::Json, &out);
            let old_json = old::encode_ok(Format::Json, &out);
            if !repeats {
                prop_assert_eq!(&json, &old_json);
            }
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            let old_parsed: serde_json::Value = serde_json::from_str(&old_json).unwrap();
            prop_assert_eq!(parsed, old_parsed);

            if let Shape::List(items, ..) = &shape {
                for (i, r) in items.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    let old_chunk = format!("{comma}{}", old::json_record(r));
                    let chunk = stream_chunk(Format::Json, i, r);
                    if !repeats {
                        prop_assert_eq!(&chunk, &old_chunk);
                    }
                    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s.trim_start_matches(','));
                    prop_assert_eq!(parse(&chunk).unwrap(), parse(&old_chunk).unwrap());
                    let mut old_xml = String::new();
                    old::xml_record(&mut old_xml, r);
                    prop_assert_eq!(stream_chunk(Format::Xml, i, r), old_xml);
                }
            }
        }
    }
}
