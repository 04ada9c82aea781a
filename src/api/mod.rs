//! The 5pm services, one module each, and the table of their endpoints
//! ([`endpoints`]). A handler reads its arguments, asks the policy and the store, and
//! returns an [`Output`](crate::http::response::Output); the HTTP layer does the rest.

pub mod activity;
pub mod authentication;
pub mod endpoints;
pub mod groups;
pub mod metainfo;
pub mod notify;
pub mod openapi;
pub mod projects;
pub mod tasks;
pub mod tokens;
pub mod users;
pub mod work;
pub mod workspace;

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::auth::{Authentication, Caller};
use crate::config::Config;
use crate::domain::policy::Actor;
use crate::domain::validate::Invalid;
use crate::domain::WorkspaceId;
use crate::http::args::{Args, Field, Given};
use crate::http::error::{ApiError, FieldError};
use crate::store::{Expected, Store};

/// What every request shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub files: crate::files::Blobs,
    /// Tells the mail worker that mail was queued.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// Sessions, login throttling and the password hashing threads.
    pub auth: Arc<Authentication>,
    /// Which workspace each request is for.
    pub workspaces: Arc<workspace::Workspaces>,
}

/// One request, as a handler sees it.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub ws: WorkspaceId,
    pub client: IpAddr,
    pub headers: &'a HeaderMap,
    /// Absent only for signIn.
    pub caller: Option<Caller>,
    pub args: &'a Args,
    /// The unread file parts of an attachFiles body, taken by its handler once the caller
    /// is allowed to attach.
    pub file_parts: std::sync::Mutex<Option<crate::http::body::FileParts>>,
}

impl Ctx<'_> {
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or(ApiError::AuthRequired)
    }

    /// The version `If-Match` names (`*` or none: any version). A value that is not one
    /// of our ETags can match no version: 412.
    pub fn if_match(&self) -> Result<Expected, ApiError> {
        let Some(value) = self.headers.get(http::header::IF_MATCH) else {
            return Ok(None);
        };
        let value = value.to_str().unwrap_or("").trim();
        if value == "*" {
            return Ok(None);
        }
        crate::http::response::parse_etag(value)
            .map(Some)
            .ok_or(ApiError::PreconditionFailed)
    }

    pub fn actor(&self) -> Result<Actor, ApiError> {
        Ok(self.caller()?.actor())
    }
}

/// How often an update is tried again after another writer changed its object first.
const STALE_RETRIES: usize = 32;

/// Runs a read-check-apply-write `attempt` again when another writer changed the object
/// between its read and its write (the store refuses such a write). An update changes only
/// the attributes it was sent, so applying them again to the newer object loses nobody's
/// change. With `If-Match` the caller named the version it meant, and a changed one is
/// its 412 instead.
pub async fn retry_stale<T, F, Fut>(expected: Expected, mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    if expected.is_some() {
        return attempt().await;
    }
    for _ in 0..STALE_RETRIES {
        match attempt().await {
            Err(ApiError::PreconditionFailed) => tokio::task::yield_now().await,
            done => return done,
        }
    }
    Err(ApiError::Unavailable)
}

/// 412 unless `current` is the version `expected` names.
pub fn check_if_match(expected: Expected, current: i64) -> Result<(), ApiError> {
    Ok(crate::store::check_version(expected, current)?)
}

/// Collects every field's validation failure, to answer them all in one 422.
#[derive(Default)]
pub struct Validation {
    errors: Vec<FieldError>,
}

impl Validation {
    /// Keeps the value, or records why it was refused.
    pub fn check<T>(&mut self, field: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(FieldError::new(field, e.code, e.message));
                None
            }
        }
    }

    pub fn fail(&mut self, field: &str, code: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, message));
    }

    /// 422 with every failure, if there was any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// An id the call cannot do without: missing or empty is 422, not a number is 400.
pub fn required_id(field: Field<'_>) -> Result<i64, ApiError> {
    match field.int()? {
        Given::Value(id) => Ok(id),
        _ => Err(ApiError::required(&field.name())),
    }
}

/// Sets a nullable attribute from what was sent: absent keeps, empty clears.
pub fn set_nullable<T>(slot: &mut Option<T>, given: Given<T>) {
    match given {
        Given::Absent => {}
        Given::Empty => *slot = None,
        Given::Value(v) => *slot = Some(v),
    }
}

/// Sets an attribute that cannot be empty: absent keeps, empty is a validation failure.
pub fn set_required<T>(slot: &mut T, given: Given<T>, field: &str, v: &mut Validation) {
    match given {
        Given::Absent => {}
        Given::Empty => v.fail(field, "required", "cannot be empty"),
        Given::Value(x) => *slot = x,
    }
}

/// Turns the domain's per-attribute problems into field errors under `object[...]`.
pub fn report(object: &str, problems: crate::domain::work::Problems, v: &mut Validation) {
    for (attr, invalid) in problems {
        v.check::<()>(&format!("{object}[{attr}]"), Err(invalid));
    }
}

/// The most rows one getList returns.
pub const MAX_COUNT: i64 = 1_000;
pub const DEFAULT_COUNT: i64 = 100;

/// Reads `filter[...]`, and `offset`/`count` when `paged`, refusing filters the list does
/// not know so that a typo never returns everything.
pub fn list_query(
    args: &Args,
    allowed: &[&str],
    paged: bool,
) -> Result<crate::store::ListQuery, ApiError> {
    use crate::store::Filter;
    let mut v = Validation::default();
    let filter = args.object(&["filter"]);
    let mut filters = Vec::new();
    for key in args.keys_of("filter")? {
        if !allowed.contains(&key) {
            v.fail(
                &format!("filter[{key}]"),
                "unknown_filter",
                format!("unknown filter; this list accepts: {}", allowed.join(", ")),
            );
            continue;
        }
        let field = filter.field(key);
        let id = |f: fn(i64) -> Filter| -> Result<Option<Filter>, ApiError> {
            Ok(field.int()?.value().map(f))
        };
        let date = |f: fn(i64) -> Filter| -> Result<Option<Filter>, ApiError> {
            Ok(field.date()?.value().map(f))
        };
        let parsed = match key {
            "projectId" => id(Filter::ProjectId)?,
            "taskId" => id(Filter::TaskId)?,
            "activityId" => id(Filter::ActivityId)?,
            "parentId" => id(Filter::ParentId)?,
            "groupId" => id(Filter::GroupId)?,
            "ownerId" => id(Filter::OwnerId)?,
            "assignedTo" => id(Filter::AssignedTo)?,
            "progressLessThan" => id(Filter::ProgressLessThan)?,
            "progressMoreThan" => id(Filter::ProgressMoreThan)?,
            "hide_old_object_period" | "hide_non_active" => match field.int()? {
                Given::Value(d) if d < 0 => {
                    v.fail(
                        &field.name(),
                        "invalid",
                        "must be a number of days, 0 or more",
                    );
                    None
                }
                g => g.value().map(Filter::HideOlderThanDays),
            },
            "name" => field.text()?.value().map(Filter::Name),
            "type" => field.text()?.value().map(Filter::Type),
            "active" => field.bool()?.value().filter(|a| *a).map(|_| Filter::Active),
            "startedFrom" => date(Filter::StartedFrom)?,
            "startedBefore" => date(Filter::StartedBefore)?,
            "deadlineFrom" => date(Filter::DeadlineFrom)?,
            "deadlineBefore" => date(Filter::DeadlineBefore)?,
            "createdFrom" => date(Filter::CreatedFrom)?,
            "createdBefore" => date(Filter::CreatedBefore)?,
            "updatedFrom" => date(Filter::UpdatedFrom)?,
            "updatedBefore" => date(Filter::UpdatedBefore)?,
            _ => None,
        };
        filters.extend(parsed);
    }
    let (mut offset, mut count) = (0, None);
    if paged {
        let offset_field = args.scalar("offset");
        offset = offset_field.int()?.value().unwrap_or(0);
        if offset < 0 {
            v.fail("offset", "invalid", "must be 0 or more");
        }
        let n = args.scalar("count").int()?.value().unwrap_or(DEFAULT_COUNT);
        if !(0..=MAX_COUNT).contains(&n) {
            v.fail("count", "invalid", format!("must be 0 to {MAX_COUNT}"));
        }
        count = Some(n);
    }
    v.finish()?;
    Ok(crate::store::ListQuery {
        filters,
        offset: offset.max(0),
        count,
    })
}

/// A boolean switch such as `loadTeam` or `withFiles`.
pub fn switch(args: &Args, name: &str) -> Result<bool, ApiError> {
    Ok(args.scalar(name).bool()?.value().unwrap_or(false))
}

/// Refuses owner and team members that are not active users of the workspace.
pub async fn check_users(
    ctx: &Ctx<'_>,
    object: &str,
    owner_id: i64,
    team: &[i64],
    v: &mut Validation,
) -> Result<(), ApiError> {
    let store = &ctx.state.store;
    if !store
        .missing_users(ctx.ws, vec![owner_id])
        .await?
        .is_empty()
    {
        v.fail(
            &format!("{object}[ownerId]"),
            "invalid",
            format!("user {owner_id} does not exist"),
        );
    }
    let missing = store.missing_users(ctx.ws, team.to_vec()).await?;
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(i64::to_string).collect();
        v.fail(
            &format!("{object}[team]"),
            "invalid",
            format!("no such users: {}", ids.join(", ")),
        );
    }
    Ok(())
}

/// Refuses a group that does not exist in the workspace.
pub async fn check_group(
    ctx: &Ctx<'_>,
    object: &str,
    group_id: Option<i64>,
    v: &mut Validation,
) -> Result<(), ApiError> {
    if let Some(g) = group_id {
        if ctx.state.store.group(ctx.ws, g).await?.is_none() {
            v.fail(
                &format!("{object}[groupId]"),
                "invalid",
                format!("group {g} does not exist"),
            );
        }
    }
    Ok(())
}

/// A team as sent: duplicates dropped, order kept.
pub fn team_of(given: Given<Vec<i64>>) -> Option<Vec<i64>> {
    given.value().map(|mut ids| {
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        ids
    })
}
