//! The 5pm services, one module each. A handler reads its arguments, asks the policy and
//! the store, and returns an [`Output`]; the HTTP layer does the rest.

pub mod authentication;
pub mod groups;
pub mod metainfo;
pub mod users;

use std::net::IpAddr;

use http::HeaderMap;

use crate::domain::policy::Actor;
use crate::domain::validate::Invalid;
use crate::domain::WorkspaceId;
use crate::http::args::{Args, Field, Given};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, FieldError};
use crate::http::response::Output;
use crate::http::AppState;

/// Every call of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    SignIn,
    SignOut,
    GetAuthorizedUser,
    GetStatuses,
    GetPriorities,
    UsersAdd,
    UsersUpdate,
    UsersRemove,
    UsersGetById,
    UsersGetByEmail,
    UsersGetAll,
    GroupsAdd,
    GroupsUpdate,
    GroupsRemove,
    GroupsGetById,
    GroupsGetAll,
}

impl Endpoint {
    /// The endpoint at `/api/v2/service/{get|post}/{service}/{method}`.
    pub fn find(service: &str, method: &str) -> Option<Endpoint> {
        use Endpoint::*;
        Some(match (service, method) {
            ("authentication", "signIn") => SignIn,
            ("authentication", "signOut") => SignOut,
            ("authentication", "getAuthorizedUser") => GetAuthorizedUser,
            ("metainfo", "getStatuses") => GetStatuses,
            ("metainfo", "getPriorities") => GetPriorities,
            ("users", "add") => UsersAdd,
            ("users", "update") => UsersUpdate,
            ("users", "remove") => UsersRemove,
            ("users", "getById") => UsersGetById,
            ("users", "getByEmail") => UsersGetByEmail,
            ("users", "getAll") => UsersGetAll,
            ("projectsgroups", "add") => GroupsAdd,
            ("projectsgroups", "update") => GroupsUpdate,
            ("projectsgroups", "remove") => GroupsRemove,
            ("projectsgroups", "getById") => GroupsGetById,
            ("projectsgroups", "getAll") => GroupsGetAll,
            _ => return None,
        })
    }

    /// Writes require POST; reads take GET or POST.
    pub fn is_write(self) -> bool {
        use Endpoint::*;
        matches!(
            self,
            UsersAdd | UsersUpdate | UsersRemove | GroupsAdd | GroupsUpdate | GroupsRemove
        )
    }
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
}

impl Ctx<'_> {
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or(ApiError::AuthRequired)
    }

    pub fn actor(&self) -> Result<Actor, ApiError> {
        Ok(self.caller()?.actor())
    }
}

/// Runs one call.
pub async fn call(endpoint: Endpoint, ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    use Endpoint::*;
    match endpoint {
        SignIn => authentication::sign_in(ctx).await,
        SignOut => authentication::sign_out(ctx).await,
        GetAuthorizedUser => authentication::get_authorized_user(ctx).await,
        GetStatuses => Ok(metainfo::statuses()),
        GetPriorities => Ok(metainfo::priorities()),
        UsersAdd => users::add(ctx).await,
        UsersUpdate => users::update(ctx).await,
        UsersRemove => users::remove(ctx).await,
        UsersGetById => users::get_by_id(ctx).await,
        UsersGetByEmail => users::get_by_email(ctx).await,
        UsersGetAll => users::get_all(ctx).await,
        GroupsAdd => groups::add(ctx).await,
        GroupsUpdate => groups::update(ctx).await,
        GroupsRemove => groups::remove(ctx).await,
        GroupsGetById => groups::get_by_id(ctx).await,
        GroupsGetAll => groups::get_all(ctx).await,
    }
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
        _ => Err(ApiError::required(field.name())),
    }
}
