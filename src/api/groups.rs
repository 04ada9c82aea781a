//! projectsgroups: add, update, remove, getById, getAll.
//!
//! Every signed-in user reads groups; admins and users write them. The object is
//! `group[...]`, with `projectsgroups[...]` accepted as an alias.

use crate::api::{required_id, Ctx, Validation};
use crate::domain::policy::{self, Actor};
use crate::domain::{now, validate};
use crate::http::args::{Given, Obj};
use crate::http::error::ApiError;
use crate::http::response::{Output, Record, Value};
use crate::store::Group;

/// The one description of a group.
pub fn record(group: &Group, actor: &Actor) -> Record {
    Record::new("group")
        .versioned(group.version)
        .with("id", Value::Id(group.id))
        .with("name", group.name.as_str())
        .with("createdAt", Value::Date(group.created_at))
        .with("updatedAt", Value::Date(group.updated_at))
        .with("can_edit", policy::can_write_groups(actor))
}

fn group_arg<'a>(ctx: &'a Ctx<'_>) -> Obj<'a> {
    ctx.args.object(&["group", "projectsgroups"])
}

async fn existing(ctx: &Ctx<'_>, id: i64) -> Result<Group, ApiError> {
    ctx.state
        .store
        .group(ctx.ws, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Group", id))
}

fn may_write(actor: &Actor) -> Result<(), ApiError> {
    if policy::can_write_groups(actor) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Only admins and users may change groups",
        ))
    }
}

pub async fn add(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    may_write(&actor)?;
    let obj = group_arg(ctx);
    let name_field = obj.field("name");
    let mut v = Validation::default();
    let name = match name_field.text()? {
        Given::Value(s) => v.check(&name_field.name(), validate::name(&s)),
        _ => {
            v.fail(&name_field.name(), "required", "is required");
            None
        }
    };
    v.finish()?;
    let group = ctx
        .state
        .store
        .add_group(ctx.ws, name.expect("validated"), now())
        .await?;
    Ok(Output::Object(record(&group, &actor)))
}

pub async fn update(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let obj = group_arg(ctx);
    let id = required_id(obj.field("id"))?;
    let name_field = obj.field("name");
    let name = name_field.text()?;
    existing(ctx, id).await?;
    may_write(&actor)?;
    let mut v = Validation::default();
    let name = match name {
        Given::Absent => None,
        Given::Empty => v.check(&name_field.name(), validate::name("")),
        Given::Value(s) => v.check(&name_field.name(), validate::name(&s)),
    };
    v.finish()?;
    let group = ctx
        .state
        .store
        .update_group(ctx.ws, id, name, ctx.if_match()?, now())
        .await?
        .ok_or_else(|| ApiError::not_found("Group", id))?;
    Ok(Output::Object(record(&group, &actor)))
}

pub async fn remove(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    existing(ctx, id).await?;
    may_write(&actor)?;
    if !ctx
        .state
        .store
        .remove_group(ctx.ws, id, ctx.if_match()?)
        .await?
    {
        return Err(ApiError::not_found("Group", id));
    }
    Ok(Output::Scalar("id", Value::Id(id)))
}

pub async fn get_by_id(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let id = required_id(ctx.args.scalar("id"))?;
    Ok(Output::Object(record(&existing(ctx, id).await?, &actor)))
}

pub async fn get_all(ctx: &Ctx<'_>) -> Result<Output, ApiError> {
    let actor = ctx.actor()?;
    let groups = ctx.state.store.groups(ctx.ws).await?;
    Ok(Output::all(
        "group",
        groups.iter().map(|g| record(g, &actor)).collect(),
    ))
}
