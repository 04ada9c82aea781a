//! The 5pm argument tree.
//!
//! 5pm clients send arguments PHP-style: `project[name]=x`, `task[team][]=3`,
//! `files[1][name]=a.txt`. Whatever the transport (query string, urlencoded body,
//! multipart text parts, JSON body), every argument ends up in one [`Args`] tree, and the
//! handlers read typed values from it through accessors that name the offending field
//! when a value has the wrong type.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

use crate::http::error::ApiError;

/// Deepest nesting accepted: `a[b][c][d]` has depth 4.
pub const MAX_DEPTH: usize = 4;
/// Most key/value pairs accepted in one request, over every source together.
pub const MAX_KEYS: usize = 1_000;

/// One node of the argument tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf(String),
    /// Children in the order they arrived; list items have the keys "0", "1", ...
    Branch(Vec<(String, Node)>),
}

impl Node {
    fn child(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Branch(children) => children.iter().find(|(k, _)| k == key).map(|(_, n)| n),
            Node::Leaf(_) => None,
        }
    }
}

/// The merged arguments of one request.
#[derive(Debug, Clone, Default)]
pub struct Args {
    root: Vec<(String, Node)>,
    pairs: usize,
}

impl Args {
    /// Adds one `key=value` pair, applying the limits. A later pair replaces an earlier
    /// one at the same path, so a body sent after the query string wins.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        self.pairs += 1;
        if self.pairs > MAX_KEYS {
            return Err(ApiError::limit(format!("more than {MAX_KEYS} arguments")));
        }
        check_xml_text(key, key)?;
        let path = parse_key(key)?;
        check_xml_text(key, value)?;
        let mut level = &mut self.root;
        for (i, segment) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let appended;
            let key = match segment {
                Some(k) => *k,
                // `[]` appends: the next free list index.
                None => {
                    appended = level.len().to_string();
                    &appended
                }
            };
            let pos = match level.iter().position(|(k, _)| k == key) {
                Some(pos) => pos,
                None => {
                    level.push((key.to_owned(), Node::Branch(Vec::new())));
                    level.len() - 1
                }
            };
            if last {
                level[pos].1 = Node::Leaf(value.to_owned());
                return Ok(());
            }
            if matches!(level[pos].1, Node::Leaf(_)) {
                level[pos].1 = Node::Branch(Vec::new());
            }
            level = match &mut level[pos].1 {
                Node::Branch(children) => children,
                Node::Leaf(_) => unreachable!("replaced by a branch above"),
            };
        }
        Ok(())
    }

    /// Adds every pair of an `application/x-www-form-urlencoded` string (a query string
    /// or a body). Names and values that are not UTF-8 once decoded are refused, never
    /// replaced: what was stored would not be what was sent.
    pub fn insert_urlencoded(&mut self, input: &[u8]) -> Result<(), ApiError> {
        for pair in input.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let key = form_decode(key);
            let key = name_text(&key)?;
            if key.is_empty() {
                continue;
            }
            let value = form_decode(value);
            self.insert(key, value_text(key, &value)?)?;
        }
        Ok(())
    }

    /// Adds a JSON object body: nested objects and arrays become branches, scalars leaves.
    pub fn insert_json(&mut self, value: &serde_json::Value) -> Result<(), ApiError> {
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::bad_request("the JSON body must be an object"));
        };
        for (k, v) in map {
            self.insert_json_at(escape_segment(k), v, 1)?;
        }
        Ok(())
    }

    fn insert_json_at(
        &mut self,
        key: String,
        value: &serde_json::Value,
        depth: usize,
    ) -> Result<(), ApiError> {
        use serde_json::Value as J;
        if depth > MAX_DEPTH {
            return Err(ApiError::limit(format!(
                "arguments nested deeper than {MAX_DEPTH} levels"
            )));
        }
        match value {
            J::Object(map) => {
                for (k, v) in map {
                    self.insert_json_at(format!("{key}[{}]", escape_segment(k)), v, depth + 1)?;
                }
                Ok(())
            }
            J::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.insert_json_at(format!("{key}[{i}]"), v, depth + 1)?;
                }
                Ok(())
            }
            J::Null => self.insert(&key, ""),
            J::Bool(b) => self.insert(&key, if *b { "1" } else { "0" }),
            J::Number(n) => self.insert(&key, &n.to_string()),
            J::String(s) => self.insert(&key, s),
        }
    }

    /// How many pairs were given.
    pub fn len(&self) -> usize {
        self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }

    /// The attribute names given under a top-level object argument (e.g. `filter`), or
    /// an error when it was given as a single value.
    pub fn keys_of(&self, name: &str) -> Result<Vec<&str>, ApiError> {
        match self.top(name) {
            None => Ok(Vec::new()),
            Some(Node::Leaf(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Node::Leaf(_)) => Err(ApiError::invalid_argument(
                name,
                "expected attributes such as name[attribute]=value",
            )),
            Some(Node::Branch(children)) => Ok(children.iter().map(|(k, _)| k.as_str()).collect()),
        }
    }

    /// `name[index][attr]` as text, e.g. `files[1][name]`.
    pub fn nested_text(
        &self,
        name: &str,
        index: &str,
        attr: &str,
    ) -> Result<Option<String>, ApiError> {
        let node = self
            .top(name)
            .and_then(|n| n.child(index))
            .and_then(|n| n.child(attr));
        match node {
            None => Ok(None),
            Some(Node::Leaf(s)) if s.is_empty() => Ok(None),
            Some(Node::Leaf(s)) => Ok(Some(s.clone())),
            Some(Node::Branch(_)) => Err(ApiError::invalid_argument(
                &format!("{name}[{index}][{attr}]"),
                "expected a single value",
            )),
        }
    }

    fn top(&self, key: &str) -> Option<&Node> {
        self.root.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    /// A top-level scalar argument, such as `id` or `sessionId`.
    pub fn scalar<'a>(&'a self, key: &'a str) -> Field<'a> {
        Field {
            object: None,
            key,
            node: self.top(key),
        }
    }

    /// An object argument such as `user[...]`; later names are aliases read when the
    /// first one lacks an attribute (`group[...]` and `projectsgroups[...]`).
    pub fn object(&self, names: &[&'static str]) -> Obj<'_> {
        Obj {
            name: names[0],
            nodes: names.iter().filter_map(|n| self.top(n)).collect(),
        }
    }
}

/// One side of a urlencoded pair as bytes: `+` is a space, `%XY` the byte XY, anything
/// else (a `%` without two hex digits included) itself, as browsers and PHP read them.
/// Decodes `+` and `%XX`; borrowed when there is nothing to decode, as in most names and
/// values (ids, session ids).
fn form_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|b| matches!(b, b'+' | b'%')) {
        return Cow::Borrowed(input);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).and_then(|b| hex(*b)),
                input.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// An argument's value as text; bytes that are not UTF-8 are refused, naming the field.
pub fn value_text<'a>(field: &str, bytes: &'a [u8]) -> Result<&'a str, ApiError> {
    std::str::from_utf8(bytes)
        .map_err(|_| ApiError::invalid_argument(field, "not valid UTF-8 text"))
}

/// An argument's name as text; a name that is not UTF-8 is refused, quoted with the
/// replacement character where its bytes were not.
fn name_text(bytes: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(bytes).map_err(|_| {
        ApiError::invalid_argument(
            &String::from_utf8_lossy(bytes),
            "the argument name is not valid UTF-8",
        )
    })
}

/// Brackets inside a JSON key would be read as nesting; keep them literal by refusing.
fn escape_segment(k: &str) -> String {
    k.replace(['[', ']'], "")
}

/// Splits `a[b][]` into `[Some("a"), Some("b"), None]`.
fn parse_key(key: &str) -> Result<Vec<Option<&str>>, ApiError> {
    let malformed = || ApiError::invalid_argument(key, "malformed argument name");
    let (name, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if name.is_empty() {
        return Err(malformed());
    }
    let mut path = vec![Some(name)];
    while !rest.is_empty() {
        if !rest.starts_with('[') {
            return Err(malformed());
        }
        let close = rest.find(']').ok_or_else(malformed)?;
        let segment = &rest[1..close];
        if segment.contains('[') {
            return Err(malformed());
        }
        path.push(if segment.is_empty() {
            None
        } else {
            Some(segment)
        });
        if path.len() > MAX_DEPTH {
            return Err(ApiError::limit(format!(
                "arguments nested deeper than {MAX_DEPTH} levels"
            )));
        }
        rest = &rest[close + 1..];
    }
    Ok(path)
}

/// Text that XML 1.0 cannot carry is refused at the door, so every stored value can be
/// returned as well-formed XML.
fn check_xml_text(field: &str, text: &str) -> Result<(), ApiError> {
    // By bytes: a control character is one byte below 0x20, and U+FFFE and U+FFFF are
    // EF BF BE and EF BF BF, whose bytes no other character's UTF-8 ends with.
    let bytes = text.as_bytes();
    let bad = bytes.iter().enumerate().any(|(i, &b)| match b {
        0x09 | 0x0A | 0x0D => false,
        0x00..=0x1F => true,
        0xBE | 0xBF => i >= 2 && bytes[i - 2] == 0xEF && bytes[i - 1] == 0xBF,
        _ => false,
    });
    if bad {
        return Err(ApiError::invalid_argument(
            field,
            "contains characters that XML cannot carry",
        ));
    }
    Ok(())
}

/// An object argument (`user[...]`), possibly absent.
pub struct Obj<'a> {
    name: &'static str,
    nodes: Vec<&'a Node>,
}

impl<'a> Obj<'a> {
    pub fn is_present(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// One attribute of the object.
    pub fn field(&self, attr: &'a str) -> Field<'a> {
        Field {
            object: Some(self.name),
            key: attr,
            node: self.nodes.iter().find_map(|n| n.child(attr)),
        }
    }
}

/// What was said about one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Given<T> {
    /// The field was not sent: keep what is there.
    Absent,
    /// The field was sent empty: clear it.
    Empty,
    Value(T),
}

impl<T> Given<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Given::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Given::Absent)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Given<U> {
        match self {
            Given::Absent => Given::Absent,
            Given::Empty => Given::Empty,
            Given::Value(v) => Given::Value(f(v)),
        }
    }
}

/// One named argument, ready to be read as a type. Its name is kept in its parts and
/// written out (`user[email]`) only for an error: written for every field read, it was
/// two of a list's seven `format!`s.
pub struct Field<'a> {
    /// The object's name (`user` of `user[email]`); none for a scalar argument.
    object: Option<&'static str>,
    key: &'a str,
    node: Option<&'a Node>,
}

impl<'a> Field<'a> {
    /// The field's full name as the caller wrote it, e.g. `user[email]`.
    pub fn name(&self) -> Cow<'a, str> {
        match self.object {
            None => Cow::Borrowed(self.key),
            Some(object) => Cow::Owned(format!("{object}[{}]", self.key)),
        }
    }

    fn leaf(&self) -> Result<Option<&'a str>, ApiError> {
        match self.node {
            None => Ok(None),
            Some(Node::Leaf(s)) => Ok(Some(s.as_str())),
            Some(Node::Branch(_)) => Err(ApiError::invalid_argument(
                &self.name(),
                "expected a single value, not a list or object",
            )),
        }
    }

    /// Reads the field with `parse`; an empty value is [`Given::Empty`].
    fn parsed<T>(
        &self,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Given<T>, ApiError> {
        match self.leaf()? {
            None => Ok(Given::Absent),
            Some(s) if s.trim().is_empty() => Ok(Given::Empty),
            Some(s) => parse(s.trim())
                .map(Given::Value)
                .ok_or_else(|| ApiError::invalid_argument(&self.name(), expected)),
        }
    }

    /// Text as sent (not trimmed).
    pub fn text(&self) -> Result<Given<String>, ApiError> {
        match self.leaf()? {
            None => Ok(Given::Absent),
            Some("") => Ok(Given::Empty),
            Some(s) => Ok(Given::Value(s.to_owned())),
        }
    }

    pub fn int(&self) -> Result<Given<i64>, ApiError> {
        self.parsed("expected a whole decimal number", parse_int)
    }

    pub fn float(&self) -> Result<Given<f64>, ApiError> {
        self.parsed("expected a finite decimal number", parse_float)
    }

    pub fn bool(&self) -> Result<Given<bool>, ApiError> {
        self.parsed(
            "expected a boolean (1, 0, true, false, yes, no, on, off)",
            parse_bool,
        )
    }

    /// A date, as unix seconds (UTC).
    pub fn date(&self) -> Result<Given<i64>, ApiError> {
        self.parsed(
            "expected a date: YYYY-MM-DD, YYYY-MM-DD HH:MM:SS (UTC) or RFC 3339",
            parse_date,
        )
    }

    /// A list of ids, given as `x[]=1&x[]=2`, `x[0]=1&x[1]=2` or `x=1,2`.
    pub fn id_list(&self) -> Result<Given<Vec<i64>>, ApiError> {
        let bad = || ApiError::invalid_argument(&self.name(), "expected a list of whole numbers");
        match self.node {
            None => Ok(Given::Absent),
            Some(Node::Leaf(s)) if s.trim().is_empty() => Ok(Given::Value(Vec::new())),
            Some(Node::Leaf(s)) => s
                .split(',')
                .map(|p| parse_int(p.trim()).ok_or_else(bad))
                .collect::<Result<_, _>>()
                .map(Given::Value),
            Some(Node::Branch(items)) => items
                .iter()
                .filter(|(_, n)| !matches!(n, Node::Leaf(s) if s.trim().is_empty()))
                .map(|(_, n)| match n {
                    Node::Leaf(s) => parse_int(s.trim()).ok_or_else(bad),
                    Node::Branch(_) => Err(bad()),
                })
                .collect::<Result<_, _>>()
                .map(Given::Value),
        }
    }
}

pub fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A finite decimal number; `-0` is 0, so that it is never written back as `-0`.
pub fn parse_float(s: &str) -> Option<f64> {
    // Adding 0.0 turns -0.0 into 0.0 and leaves every other value as it is.
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| f + 0.0)
}

/// The boolean spellings the contract accepts, in any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339 with an offset, in the years
/// 0000 to 9999 (UTC): the ones `YYYY` can write back.
pub fn parse_date(s: &str) -> Option<i64> {
    let utc = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)?.and_utc()
    } else if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        dt.and_utc()
    } else {
        DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc)
    };
    (0..=9999).contains(&utc.year()).then(|| utc.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(q: &str) -> Args {
        let mut a = Args::default();
        a.insert_urlencoded(q.as_bytes()).unwrap();
        a
    }

    #[test]
    fn brackets_build_objects() {
        let a = args("project[name]=Site&project[id]=4&sessionId=abc");
        let p = a.object(&["project"]);
        assert_eq!(p.field("name").text().unwrap(), Given::Value("Site".into()));
        assert_eq!(p.field("id").int().unwrap(), Given::Value(4));
        assert_eq!(
            a.scalar("sessionId").text().unwrap(),
            Given::Value("abc".into())
        );
        assert!(p.field("tags").text().unwrap().is_absent());
    }

    #[test]
    fn the_three_list_spellings_agree() {
        for q in [
            "task[team][]=1&task[team][]=2",
            "task[team][0]=1&task[team][1]=2",
            "task[team]=1,2",
        ] {
            let a = args(q);
            assert_eq!(
                a.object(&["task"]).field("team").id_list().unwrap(),
                Given::Value(vec![1, 2]),
                "{q}"
            );
        }
    }

    #[test]
    fn later_pairs_win() {
        let a = args("id=1&id=2");
        assert_eq!(a.scalar("id").int().unwrap(), Given::Value(2));
    }

    #[test]
    fn alias_objects_are_read_after_the_canonical_name() {
        let a = args("group[id]=3&projectsgroups[name]=New");
        let g = a.object(&["group", "projectsgroups"]);
        assert_eq!(g.field("id").int().unwrap(), Given::Value(3));
        assert_eq!(g.field("name").text().unwrap(), Given::Value("New".into()));
        assert_eq!(g.field("name").name(), "group[name]");
    }

    #[test]
    fn depth_over_four_is_refused() {
        let mut a = Args::default();
        assert!(a.insert("a[b][c][d]", "1").is_ok());
        let err = a.insert("a[b][c][d][e]", "1").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn more_than_a_thousand_keys_is_refused() {
        let mut a = Args::default();
        for i in 0..MAX_KEYS {
            a.insert(&format!("k{i}"), "v").unwrap();
        }
        assert!(a.insert("one_more", "v").is_err());
    }

    #[test]
    fn malformed_names_are_refused() {
        for key in ["[a]", "a[b", "a[b]c", "a[[b]]"] {
            assert!(Args::default().insert(key, "1").is_err(), "{key}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(Args::default().insert("name", "a\u{1}b").is_err());
        assert!(Args::default().insert("name", "tab\tand\nnewline").is_ok());
        for bad in ["\u{FFFE}", "x\u{FFFF}", "\u{0}", "\u{1F}", "a\u{FFFE}b"] {
            assert!(check_xml_text("f", bad).is_err(), "{bad:?}");
        }
        for good in [
            "\u{FFFD}",
            "\u{FFBE}",
            "\u{EFBF}",
            "\u{10FFFF}",
            "\u{7F}",
            "\r",
        ] {
            assert!(check_xml_text("f", good).is_ok(), "{good:?}");
        }
    }

    /// The rule as characters: what the byte scan must decide for every text.
    fn xml_cannot_carry(text: &str) -> bool {
        text.chars().any(|c| {
            let c = c as u32;
            (c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) || c == 0xFFFE || c == 0xFFFF
        })
    }

    proptest! {
        #[test]
        fn xml_text_is_checked_by_bytes_as_by_characters(
            text in "[\\x00-\\x20a\u{FFF0}-\u{FFFF}\u{EFBE}-\u{EFBF}\u{BF00}-\u{BFFF}\u{10000}-\u{10010}]{0,12}"
        ) {
            prop_assert_eq!(check_xml_text("f", &text).is_err(), xml_cannot_carry(&text));
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_not_replaced() {
        for (input, field) in [
            ("project[name]=a%FFb", "project[name]"),
            ("a=1&b=%C3%28", "b"),
            ("na%FFme=1", "na\u{FFFD}me"),
        ] {
            let err = Args::default()
                .insert_urlencoded(input.as_bytes())
                .unwrap_err();
            assert_eq!(err.field(), Some(field), "{input}");
        }
        let a = args("name=%EF%BF%BD+x%2By%&bare&=ignored");
        assert_eq!(
            a.scalar("name").text().unwrap(),
            Given::Value("\u{FFFD} x+y%".into())
        );
        assert_eq!(a.scalar("bare").text().unwrap(), Given::Empty);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn booleans_numbers_and_dates() {
        for (s, b) in [("1", true), ("TRUE", true), ("Yes", true), ("on", true)] {
            assert_eq!(parse_bool(s), Some(b));
        }
        for s in ["0", "false", "NO", "Off"] {
            assert_eq!(parse_bool(s), Some(false));
        }
        assert_eq!(parse_bool("2"), None);
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-7"), Some(-7));
        for s in ["4.0", "0x10", "", "-", "1e3", "99999999999999999999"] {
            assert_eq!(parse_int(s), None, "{s}");
        }
        assert_eq!(parse_date("1970-01-02"), Some(86_400));
        assert_eq!(parse_date("1970-01-01 01:00:00"), Some(3_600));
        assert_eq!(parse_date("1970-01-01T02:00:00+01:00"), Some(3_600));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("0000-01-01"), Some(-62_167_219_200));
        assert_eq!(parse_date("9999-12-31 23:59:59"), Some(253_402_300_799));
        for s in ["+10000-01-01", "-0001-01-01", "0000-01-01T00:00:00+01:00"] {
            assert_eq!(parse_date(s), None, "{s}");
        }
        assert_eq!(parse_float("-0").map(f64::is_sign_negative), Some(false));
        assert_eq!(parse_float("1e400"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let a = args("user[securityLevel]=high&user[team][a]=1");
        let err = a
            .object(&["user"])
            .field("securityLevel")
            .int()
            .unwrap_err();
        assert_eq!(err.field(), Some("user[securityLevel]"));
        assert!(a.object(&["user"]).field("team").int().is_err());
    }

    #[test]
    fn empty_values_mean_clear() {
        let a = args("task[endDate]=&task[team]=");
        let t = a.object(&["task"]);
        assert_eq!(t.field("endDate").date().unwrap(), Given::Empty);
        assert_eq!(t.field("team").id_list().unwrap(), Given::Value(vec![]));
    }

    #[test]
    fn json_bodies_take_the_same_shape() {
        let mut a = Args::default();
        a.insert_json(&serde_json::json!({
            "user": {"email": "a@b.c", "canViewProfiles": true, "team": [3, 5]},
            "id": 9
        }))
        .unwrap();
        let u = a.object(&["user"]);
        assert_eq!(
            u.field("email").text().unwrap(),
            Given::Value("a@b.c".into())
        );
        assert_eq!(
            u.field("canViewProfiles").bool().unwrap(),
            Given::Value(true)
        );
        assert_eq!(u.field("team").id_list().unwrap(), Given::Value(vec![3, 5]));
        assert_eq!(a.scalar("id").int().unwrap(), Given::Value(9));
        let deep = serde_json::json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        assert!(Args::default().insert_json(&deep).is_err());
        assert!(Args::default()
            .insert_json(&serde_json::json!([1, 2]))
            .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// No query string, however odd, panics the parser or slips past its limits.
        #[test]
        fn any_query_string_is_parsed_or_refused(input in "[a-z\\[\\]=&%0-9,]{0,300}") {
            let mut a = Args::default();
            if a.insert_urlencoded(input.as_bytes()).is_ok() {
                prop_assert!(a.len() <= MAX_KEYS);
                fn depth(n: &Node) -> usize {
                    match n {
                        Node::Leaf(_) => 0,
                        Node::Branch(c) => 1 + c.iter().map(|(_, n)| depth(n)).max().unwrap_or(0),
                    }
                }
                for (_, n) in &a.root {
                    prop_assert!(depth(n) < MAX_DEPTH);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut a = Args::default();
            let _ = a.insert_urlencoded(&input);
            let _ = a.object(&["a"]).field("b").id_list();
            let _ = a.scalar("a").int();
        }

        #[test]
        fn integers_round_trip(n in any::<i64>()) {
            let a = args(&format!("id={n}"));
            prop_assert_eq!(a.scalar("id").int().unwrap(), Given::Value(n));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn many_appends_stay_bounded(n in 0usize..3_000) {
            let mut a = Args::default();
            let body = "x[]=1&".repeat(n);
            let res = a.insert_urlencoded(body.as_bytes());
            prop_assert_eq!(res.is_ok(), n <= MAX_KEYS);
        }
    }
}
