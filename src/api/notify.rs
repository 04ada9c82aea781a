//! Who is told about a write (section 11 of the contract): the notify flags pick the
//! candidates, `mail::mails_for` keeps those who may see the object.

use std::future::Future;

use crate::api::{projects, Ctx};
use crate::domain::policy::Actor;
use crate::domain::user::SecurityLevel;
use crate::domain::work::{Project, Task};
use crate::http::args::Obj;
use crate::http::error::ApiError;
use crate::mail::{mails_for, Notice};
use crate::store::{OutgoingMail, StoreError};

/// The notify flags of one write.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// The project team's members other than clients.
    pub project_team: bool,
    pub task_team: bool,
    /// The project team's clients.
    pub client: bool,
    /// `notifyUsers`: write-only, never stored.
    pub users: Vec<i64>,
}

/// The `notifyUsers` list of an object argument.
pub fn notify_users(obj: &Obj<'_>) -> Result<Vec<i64>, ApiError> {
    Ok(obj
        .field("notifyUsers")
        .id_list()?
        .value()
        .unwrap_or_default())
}

/// The mails a write causes, ready to be queued in the write's transaction.
async fn mails(
    ctx: &Ctx<'_>,
    flags: &Flags,
    project: Option<&Project>,
    task: Option<&Task>,
    may_see: impl Fn(&Actor) -> bool,
    notice: Notice<'_>,
) -> Result<Vec<OutgoingMail>, ApiError> {
    let project_team = project.map_or(&[][..], |p| p.team.as_slice());
    let task_team = task.map_or(&[][..], |t| t.team.as_slice());
    let mut ids: Vec<i64> = Vec::new();
    if flags.project_team || flags.client {
        ids.extend(project_team);
    }
    if flags.task_team {
        ids.extend(task_team);
    }
    ids.extend(&flags.users);
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let users = ctx.state.store.users_by_ids(ctx.ws, ids).await?;
    let candidates: Vec<_> = users
        .into_iter()
        .filter(|u| {
            let in_project = project_team.contains(&u.id);
            let is_client = u.security_level == SecurityLevel::Client;
            // Clients hear of project work through notifyClient, members through
            // notifyProjectTeam.
            let project_flag = if is_client {
                flags.client
            } else {
                flags.project_team
            };
            (in_project && project_flag)
                || (flags.task_team && task_team.contains(&u.id))
                || flags.users.contains(&u.id)
        })
        .collect();
    let author = &ctx.caller()?.user;
    let sees_project = |a: &Actor| project.is_none_or(|p| projects::sees(a, p));
    Ok(mails_for(
        &candidates,
        author.id,
        may_see,
        sees_project,
        &notice,
    ))
}

/// The caller's name, as notices show it.
fn author_name(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    Ok(ctx.caller()?.user.display_name())
}

/// Queues nothing itself: wakes the mail worker after a write that queued mail.
fn wake_if(ctx: &Ctx<'_>, queued: bool) {
    if queued {
        ctx.state.mail_wake.notify_one();
    }
}

/// What a write of a project, task or activity is about, for its notice.
pub struct About<'a> {
    /// "project", "task", "message", "progress note", ...
    pub kind: &'a str,
    /// "created", "updated", "posted".
    pub action: &'a str,
    /// The project the object is (or is in), whose team the flags may pick.
    pub project: Option<&'a Project>,
    /// The task the object is (or is posted to), whose team the flags may pick.
    pub task: Option<&'a Task>,
    pub text: Option<&'a str>,
}

/// The mail a write causes: `flags` pick the candidates, `may_see` keeps those who may
/// see the object, and the notice says what `about` says, signed by the caller.
pub async fn tell(
    ctx: &Ctx<'_>,
    flags: &Flags,
    about: About<'_>,
    may_see: impl Fn(&Actor) -> bool,
) -> Result<Vec<OutgoingMail>, ApiError> {
    let author = author_name(ctx)?;
    let notice = Notice {
        kind: about.kind,
        action: about.action,
        project: about.project.map(|p| p.name.as_str()),
        task: about.task.map(|t| t.name.as_str()),
        author: &author,
        text: about.text,
    };
    mails(ctx, flags, about.project, about.task, may_see, notice).await
}

/// Saves a write together with the mail it queues (`save` runs both in one
/// transaction), then wakes the mail worker if there was any.
pub async fn save_with<T, Saving>(
    ctx: &Ctx<'_>,
    mail: Vec<OutgoingMail>,
    save: impl FnOnce(Vec<OutgoingMail>) -> Saving,
) -> Result<T, ApiError>
where
    Saving: Future<Output = Result<T, StoreError>>,
{
    let queued = !mail.is_empty();
    // What the write names was checked, then removed by another request before the
    // write: 404, as if the removal had come first (it was a 500).
    let saved = save(mail).await.map_err(|e| {
        if crate::store::is_missing_reference(&e) {
            ApiError::NotFound("An object this write names was removed meanwhile".into())
        } else {
            e.into()
        }
    })?;
    wake_if(ctx, queued);
    Ok(saved)
}
