//! The steps every update and remove of a project, task or activity takes, written once:
//! find the object the caller sees, check they may edit it, check the version `If-Match`
//! names, apply the sent attributes, save (tried again when another writer came first),
//! answer. Each kind says only what is its own, in its [`Work`] implementation.

use std::future::Future;

use crate::api::{check_if_match, notify, required_id, retry_stale, Ctx, Validation};
use crate::domain::policy::Actor;
use crate::http::args::Obj;
use crate::http::error::ApiError;
use crate::http::response::{Output, Value};
use crate::store::Expected;

/// A project, task or activity, as its update and remove handlers see it.
pub trait Work: Clone + Send + Sync {
    /// Its argument object and its name in errors: `project`, `task`, `activity`.
    const KIND: &'static str;
    /// Its name in "not found" answers: `Project`.
    const TITLE: &'static str;
    /// Where it is, as its checks need it: its project, where an activity is posted.
    type Place: Send + Sync;

    fn version(&self) -> i64;

    /// The object with this id if the caller may see it; 404 otherwise.
    fn visible(
        ctx: &Ctx<'_>,
        actor: &Actor,
        id: i64,
    ) -> impl Future<Output = Result<(Self, Self::Place), ApiError>> + Send;

    fn can_edit(&self, actor: &Actor, place: &Self::Place) -> bool;

    /// Applies the attributes sent under `KIND[...]`.
    fn apply(&mut self, obj: &Obj<'_>, v: &mut Validation) -> Result<(), ApiError>;

    /// Refuses an update that moves the object where the caller may not put it.
    fn check_move(
        _ctx: &Ctx<'_>,
        _actor: &Actor,
        _current: &Self,
        _next: &Self,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Ok(()) }
    }

    /// Validates the updated object whole, saves it with the mail it causes, and answers
    /// it.
    fn save_update(
        ctx: &Ctx<'_>,
        actor: &Actor,
        next: Self,
        current: &Self,
        place: &Self::Place,
        v: Validation,
        notify_users: Vec<i64>,
    ) -> impl Future<Output = Result<Output, ApiError>> + Send;

    /// Removes the object and what hangs off it; the storage keys of the files that went
    /// with it, or `None` when it was already gone.
    fn remove_stored(
        ctx: &Ctx<'_>,
        id: i64,
        expected: Expected,
    ) -> impl Future<Output = Result<Option<Vec<String>>, ApiError>> + Send;
}

/// `KIND/update`: changes only the attributes sent.
pub async fn update<W: Work>(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let expected = ctx.if_match()?;
    retry_stale(expected, || update_once::<W>(ctx, expected)).await
}

/// One read-check-apply-write of an update (`retry_stale`).
async fn update_once<W: Work>(ctx: &Ctx<'_>, expected: Expected) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let obj = ctx.args.object(&[W::KIND]);
    let id = required_id(obj.field("id"))?;
    let (current, place) = W::visible(ctx, &actor, id).await?;
    if !current.can_edit(&actor, &place) {
        return Err(ApiError::forbidden(format!(
            "You may not edit {} {id}",
            W::KIND
        )));
    }
    check_if_match(expected, current.version())?;
    let mut v = Validation::default();
    let mut next = current.clone();
    next.apply(&obj, &mut v)?;
    W::check_move(ctx, &actor, &current, &next).await?;
    let notify_users = notify::notify_users(&obj)?;
    W::save_update(ctx, &actor, next, &current, &place, v, notify_users).await
}

/// `KIND/remove`: removes the object, and the files that went with it.
pub async fn remove<W: Work>(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    let (current, place) = W::visible(ctx, &actor, id).await?;
    if !current.can_edit(&actor, &place) {
        return Err(ApiError::forbidden(format!(
            "You may not remove {} {id}",
            W::KIND
        )));
    }
    let keys = W::remove_stored(ctx, id, ctx.if_match()?)
        .await?
        .ok_or_else(|| ApiError::not_found(W::TITLE, id))?;
    ctx.state.files.remove_all(&keys).await;
    Ok(Output::Scalar("id", Value::Id(id)))
}
