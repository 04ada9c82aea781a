//! What templates show of the objects: names of statuses, priorities and levels, dates,
//! people's names. Only presentation: every decision was made before a template runs.

use std::collections::HashMap;

use crate::api::metainfo::{PRIORITIES, STATUSES};
use crate::domain::user::SecurityLevel;
use crate::domain::work::Task;
use crate::http::response::format_date;

/// The frame of every page: who is signed in, the form token, where we are.
pub struct Nav {
    pub user_id: i64,
    pub name: String,
    pub csrf: String,
    pub is_admin: bool,
    /// The navigation entry of this page: `work`, `projects`, `groups`, `users`, `me`.
    pub current: &'static str,
}

impl Nav {
    pub fn css(&self) -> &'static str {
        super::assets::css_url()
    }

    pub fn js(&self) -> &'static str {
        super::assets::js_url()
    }

    /// `aria-current` for the navigation entry of this page.
    pub fn here(&self, entry: &str) -> &'static str {
        if self.current == entry {
            "page"
        } else {
            "false"
        }
    }
}

pub fn status_name(code: &i64) -> &'static str {
    STATUSES
        .iter()
        .find(|(c, _)| c == code)
        .map_or("unknown", |(_, n)| n)
}

pub fn priority_name(code: &i64) -> &'static str {
    PRIORITIES
        .iter()
        .find(|(c, _)| c == code)
        .map_or("unknown", |(_, n)| n)
}

pub fn level_name(level: &SecurityLevel) -> &'static str {
    match *level {
        SecurityLevel::Admin => "admin",
        SecurityLevel::User => "user",
        SecurityLevel::External => "external",
        SecurityLevel::Client => "client",
    }
}

/// The people a page may name: those the caller may see (users/getAll's rule); anyone
/// else is shown by number only.
pub struct People(pub HashMap<i64, String>);

impl People {
    pub fn name(&self, id: &i64) -> String {
        self.0
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}"))
    }

    pub fn names(&self, ids: &[i64]) -> String {
        ids.iter()
            .map(|id| self.name(id))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A date for `<time datetime>`: UTC, as the API writes it, with a `Z`.
pub fn iso(secs: &i64) -> String {
    format!("{}Z", format_date(*secs).replace(' ', "T"))
}

/// A date as shown before the script puts it in the viewer's time zone.
pub fn shown(secs: &i64) -> String {
    format!("{} UTC", &format_date(*secs)[..16])
}

/// A day (a start or a deadline) for a date field and for show.
pub fn day(secs: &i64) -> String {
    format_date(*secs)[..10].to_owned()
}

/// Whether an open task's deadline has passed.
pub fn overdue(t: &Task, now: i64) -> bool {
    t.status != 30 && t.end_date.is_some_and(|d| d < now)
}

/// Hours as people write them: `1.5`, `2`.
pub fn hours(h: &f64) -> String {
    let s = format!("{h:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How pages write user text: escaped for HTML, and with the bidirectional embedding,
/// override and isolate controls (U+202A–U+202E, U+2066–U+2069) shown as U+FFFD instead
/// of obeyed, so that a name cannot reverse the text after it on the page or disguise a
/// file's extension. Form fields show the text as stored ([`form_value`]): inside a
/// field it can turn nothing else around, and saving the form keeps it unchanged.
#[derive(Debug, Clone, Copy)]
pub struct PageText;

/// The bidirectional controls [`PageText`] does not obey.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl askama::filters::Escaper for PageText {
    fn write_escaped_str<W: std::fmt::Write>(&self, dest: W, text: &str) -> std::fmt::Result {
        use askama::filters::Html;
        if !text.chars().any(is_bidi_control) {
            return Html.write_escaped_str(dest, text);
        }
        let shown: String = text
            .chars()
            .map(|c| if is_bidi_control(c) { '\u{FFFD}' } else { c })
            .collect();
        Html.write_escaped_str(dest, &shown)
    }
}

/// A form field's value: escaped for HTML, every character kept (for `|safe`).
pub fn form_value(text: &str) -> String {
    use askama::filters::{Escaper, Html};
    let mut out = String::with_capacity(text.len());
    let _ = Html.write_escaped_str(&mut out, text);
    out
}

/// A query-string value.
pub fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Page numbers of a paged list: the page shown, the last, and the links' query string
/// without the page.
pub struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    /// The list's address with its other parameters, ready for `page=N`: `/projects?q=x&`.
    pub base: String,
}

impl Pager {
    pub fn new(page: i64, per_page: i64, total: i64, base: String) -> Pager {
        Pager {
            page,
            pages: ((total + per_page - 1) / per_page).max(1),
            total,
            base,
        }
    }

    pub fn has_previous(&self) -> bool {
        self.page > 1
    }

    pub fn has_next(&self) -> bool {
        self.page < self.pages
    }

    pub fn previous(&self) -> i64 {
        self.page - 1
    }

    pub fn next(&self) -> i64 {
        self.page + 1
    }
}

/// The page number asked for in a query string; 1 when absent or not a number.
pub fn page_number(query: Option<&str>) -> i64 {
    query_value(query, "page")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1)
}

/// One parameter of a query string, decoded.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}
