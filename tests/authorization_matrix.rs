//! The authorization matrix: section 8 of the contract ("Who may see and do what"), checked
//! call by call for the four roles against one fixture in one server.
//!
//! The admin builds the fixture: projects hidden and not, with the callers in their team and
//! not, one hidden project owned by each caller; tasks in each of them (hidden and not, with
//! the callers in the task team and not, one hidden task owned by each caller), single tasks;
//! messages (one hidden from clients), progress notes and files by another user, and a message
//! and a file by each caller. `MATRIX` says, for every object state and call, what each role
//! gets. Object descriptions are relative to the caller, so one row covers all four roles: for
//! the user, the hidden project the external user owns is just a "hidden project".
//!
//! Lists are checked first, on the fixture alone: every fixture object is present or absent
//! (with its can_edit) as the row of its description says, and `total` counts exactly the
//! objects expected. Then every other row runs; destructive rows act on a fresh copy of the
//! object, so rows stay independent. All disagreements are collected and reported together.
mod common;
use common::*;

use std::collections::HashMap;

use serde_json::Value;

/// Roles by securityLevel, in the column order of the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Admin,
    User,
    External,
    Client,
}

const ROLES: [Role; 4] = [Role::Admin, Role::User, Role::External, Role::Client];

impl Role {
    fn level(self) -> i64 {
        match self {
            Role::Admin => 0,
            Role::User => 100,
            Role::External => 150,
            Role::Client => 200,
        }
    }
}

/// What a call should answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Out {
    /// 200 with `can_edit` true; in a list: present with `can_edit` true.
    Edit,
    /// 200 with `can_edit` false; in a list: present with `can_edit` false.
    View,
    /// A write that succeeds: 200.
    Done,
    /// Visible but not allowed: 403 `forbidden`.
    Denied,
    /// Not visible: 404 `not_found`; absent from lists and not counted in `total`.
    Gone,
}

const E: Out = Out::Edit;
const V: Out = Out::View;
const Y: Out = Out::Done;
const F: Out = Out::Denied;
const N: Out = Out::Gone;

/// The calls of the matrix.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    ProjectGetById,
    ProjectGetList,
    ProjectGetAll,
    ProjectUpdate,
    /// On a fresh copy of the project.
    ProjectRemove,
    ProjectAdd,
    TaskGetById,
    TaskGetList,
    TaskUpdate,
    /// On a fresh copy of the task, in the same project.
    TaskRemove,
    /// tasks/add with `projectId` of the project.
    TaskAddInProject,
    /// tasks/add without a project.
    TaskAddSingle,
    ActivityGetById,
    ActivityGetList,
    /// A message posted to the project or task.
    ActivityAddMsg,
    /// A progress note posted to the task.
    ActivityAddProgress,
    ActivityUpdate,
    /// On a fresh copy of the activity, on the same project or task.
    ActivityRemove,
    FilesGetList,
    FileDownload,
    /// On a fresh copy of the file, on the same activity.
    FileRemove,
}

use Call::*;

/// The kinds of fixture objects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Project,
    Task,
    Activity,
    File,
}

impl Call {
    /// The kind of object the row's description names; `None` for calls on no object.
    fn object_kind(self) -> Option<Kind> {
        match self {
            ProjectGetById | ProjectGetList | ProjectGetAll | ProjectUpdate | ProjectRemove
            | TaskAddInProject => Some(Kind::Project),
            TaskGetById | TaskGetList | TaskUpdate | TaskRemove | ActivityAddProgress => {
                Some(Kind::Task)
            }
            ActivityGetById | ActivityGetList | ActivityUpdate | ActivityRemove => {
                Some(Kind::Activity)
            }
            FilesGetList | FileDownload | FileRemove => Some(Kind::File),
            // On a project or a task: the fixture is searched for either.
            ActivityAddMsg => None,
            ProjectAdd | TaskAddSingle => None,
        }
    }

    /// For list calls: the call, and whether it is paged.
    fn list(self) -> Option<(&'static str, bool)> {
        match self {
            ProjectGetList => Some(("projects/getList", true)),
            ProjectGetAll => Some(("projects/getAll", false)),
            TaskGetList => Some(("tasks/getList", true)),
            ActivityGetList => Some(("activity/getList", true)),
            FilesGetList => Some(("activity/getFilesList", true)),
            _ => None,
        }
    }
}

const LISTS: [Call; 5] = [
    ProjectGetList,
    ProjectGetAll,
    TaskGetList,
    ActivityGetList,
    FilesGetList,
];

/// One row: an object, described relative to the caller, a call, and the outcome for
/// admin (0), user (100), external user (150) and client (200).
type Row = (&'static str, Call, [Out; 4]);

/// Section 8 of the contract, row by row. Descriptions, relative to the caller:
///
/// - projects: `project` (not hidden, caller not in the team, someone else owns it),
///   `..., in team` (the caller is in the project team), `hidden ...`, `..., owned` (the
///   caller owns it and is not in its team);
/// - tasks: `<task> / <its project>`, where `in task team` means the caller is in the task
///   team, `owned` the caller owns the task, `no project` a single task;
/// - activities: `<activity> on <project or task>`; `msg` and `progress` are by someone
///   else, `own msg` by the caller. An `own msg on hidden project` was posted while the caller
///   was in the project team, which the caller has since left;
/// - files: `file of <activity>` (attached by someone else) and `own file of own msg`.
///
/// Outcomes: `E`/`V` 200 with can_edit true/false (lists: present with it), `Y` 200,
/// `F` 403 forbidden, `N` 404 not_found (lists: absent, not in `total`).
///
/// `-` is no object (creating without a parent). List rows (getList, getAll,
/// getFilesList) are checked for every fixture object of that description.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    // object                                                      call                  [admin, user, external, client]
    // Projects. "in team": the caller is in the project team; "owned": the caller owns it.
    ("project",                                                    ProjectGetById,       [E, V, N, N]),
    ("project",                                                    ProjectGetList,       [E, V, N, N]),
    ("project",                                                    ProjectGetAll,        [E, V, N, N]),
    ("project",                                                    ProjectUpdate,        [Y, F, N, N]),
    ("project",                                                    ProjectRemove,        [Y, F, N, N]),
    ("project",                                                    TaskAddInProject,     [Y, Y, N, N]),
    ("project",                                                    ActivityAddMsg,       [Y, Y, N, N]),

    ("project, in team",                                           ProjectGetById,       [E, E, V, V]),
    ("project, in team",                                           ProjectGetList,       [E, E, V, V]),
    ("project, in team",                                           ProjectGetAll,        [E, E, V, V]),
    ("project, in team",                                           ProjectUpdate,        [Y, Y, F, F]),
    ("project, in team",                                           ProjectRemove,        [Y, Y, F, F]),
    ("project, in team",                                           TaskAddInProject,     [Y, Y, Y, F]),
    ("project, in team",                                           ActivityAddMsg,       [Y, Y, Y, Y]),

    ("hidden project",                                             ProjectGetById,       [E, N, N, N]),
    ("hidden project",                                             ProjectGetList,       [E, N, N, N]),
    ("hidden project",                                             ProjectGetAll,        [E, N, N, N]),
    ("hidden project",                                             ProjectUpdate,        [Y, N, N, N]),
    ("hidden project",                                             ProjectRemove,        [Y, N, N, N]),
    ("hidden project",                                             TaskAddInProject,     [Y, N, N, N]),
    ("hidden project",                                             ActivityAddMsg,       [Y, N, N, N]),

    ("hidden project, in team",                                    ProjectGetById,       [E, E, V, V]),
    ("hidden project, in team",                                    ProjectGetList,       [E, E, V, V]),
    ("hidden project, in team",                                    ProjectGetAll,        [E, E, V, V]),
    ("hidden project, in team",                                    ProjectUpdate,        [Y, Y, F, F]),
    ("hidden project, in team",                                    ProjectRemove,        [Y, Y, F, F]),
    ("hidden project, in team",                                    TaskAddInProject,     [Y, Y, Y, F]),
    ("hidden project, in team",                                    ActivityAddMsg,       [Y, Y, Y, Y]),

    ("hidden project, owned",                                      ProjectGetById,       [E, E, V, N]),
    ("hidden project, owned",                                      ProjectGetList,       [E, E, V, N]),
    ("hidden project, owned",                                      ProjectGetAll,        [E, E, V, N]),
    ("hidden project, owned",                                      ProjectUpdate,        [Y, Y, F, N]),
    ("hidden project, owned",                                      ProjectRemove,        [Y, Y, F, N]),
    ("hidden project, owned",                                      TaskAddInProject,     [Y, Y, F, N]),
    ("hidden project, owned",                                      ActivityAddMsg,       [Y, Y, Y, N]),

    // Creating without a parent object.
    ("-",                                                          ProjectAdd,           [Y, Y, F, F]),
    ("-",                                                          TaskAddSingle,        [Y, Y, F, F]),

    // Tasks: "<task> / <its project>". "in task team": the caller is in the task team.
    ("task / project",                                             TaskGetById,          [E, V, N, N]),
    ("task / project",                                             TaskGetList,          [E, V, N, N]),
    ("task / project",                                             TaskUpdate,           [Y, F, N, N]),
    ("task / project",                                             TaskRemove,           [Y, F, N, N]),
    ("task / project",                                             ActivityAddMsg,       [Y, Y, N, N]),
    ("task / project",                                             ActivityAddProgress,  [Y, F, N, N]),

    ("hidden task / project",                                      TaskGetById,          [E, N, N, N]),
    ("hidden task / project",                                      TaskGetList,          [E, N, N, N]),
    ("hidden task / project",                                      TaskUpdate,           [Y, N, N, N]),
    ("hidden task / project",                                      TaskRemove,           [Y, N, N, N]),
    ("hidden task / project",                                      ActivityAddMsg,       [Y, N, N, N]),
    ("hidden task / project",                                      ActivityAddProgress,  [Y, N, N, N]),

    ("task, in task team / project",                               TaskGetById,          [E, E, E, N]),
    ("task, in task team / project",                               TaskGetList,          [E, E, E, N]),
    ("task, in task team / project",                               TaskUpdate,           [Y, Y, Y, N]),
    ("task, in task team / project",                               TaskRemove,           [Y, Y, Y, N]),
    ("task, in task team / project",                               ActivityAddMsg,       [Y, Y, Y, N]),
    ("task, in task team / project",                               ActivityAddProgress,  [Y, Y, Y, N]),

    ("hidden task, in task team / project",                        TaskGetById,          [E, E, E, N]),
    ("hidden task, in task team / project",                        TaskGetList,          [E, E, E, N]),
    ("hidden task, in task team / project",                        TaskUpdate,           [Y, Y, Y, N]),
    ("hidden task, in task team / project",                        TaskRemove,           [Y, Y, Y, N]),
    ("hidden task, in task team / project",                        ActivityAddMsg,       [Y, Y, Y, N]),
    ("hidden task, in task team / project",                        ActivityAddProgress,  [Y, Y, Y, N]),

    ("hidden task, owned / project",                               TaskGetById,          [E, E, E, N]),
    ("hidden task, owned / project",                               TaskGetList,          [E, E, E, N]),
    ("hidden task, owned / project",                               TaskUpdate,           [Y, Y, Y, N]),
    ("hidden task, owned / project",                               TaskRemove,           [Y, Y, Y, N]),
    ("hidden task, owned / project",                               ActivityAddMsg,       [Y, Y, Y, N]),
    ("hidden task, owned / project",                               ActivityAddProgress,  [Y, Y, Y, N]),

    ("task / project, in team",                                    TaskGetById,          [E, E, V, V]),
    ("task / project, in team",                                    TaskGetList,          [E, E, V, V]),
    ("task / project, in team",                                    TaskUpdate,           [Y, Y, F, F]),
    ("task / project, in team",                                    TaskRemove,           [Y, Y, F, F]),
    ("task / project, in team",                                    ActivityAddMsg,       [Y, Y, Y, Y]),
    ("task / project, in team",                                    ActivityAddProgress,  [Y, Y, F, F]),

    ("hidden task / project, in team",                             TaskGetById,          [E, E, V, V]),
    ("hidden task / project, in team",                             TaskGetList,          [E, E, V, V]),
    ("hidden task / project, in team",                             TaskUpdate,           [Y, Y, F, F]),
    ("hidden task / project, in team",                             TaskRemove,           [Y, Y, F, F]),
    ("hidden task / project, in team",                             ActivityAddMsg,       [Y, Y, Y, Y]),
    ("hidden task / project, in team",                             ActivityAddProgress,  [Y, Y, F, F]),

    ("task, in task team / project, in team",                      TaskGetById,          [E, E, E, V]),
    ("task, in task team / project, in team",                      TaskGetList,          [E, E, E, V]),
    ("task, in task team / project, in team",                      TaskUpdate,           [Y, Y, Y, F]),
    ("task, in task team / project, in team",                      TaskRemove,           [Y, Y, Y, F]),
    ("task, in task team / project, in team",                      ActivityAddMsg,       [Y, Y, Y, Y]),
    ("task, in task team / project, in team",                      ActivityAddProgress,  [Y, Y, Y, F]),

    ("hidden task, in task team / project, in team",               TaskGetById,          [E, E, E, V]),
    ("hidden task, in task team / project, in team",               TaskGetList,          [E, E, E, V]),
    ("hidden task, in task team / project, in team",               TaskUpdate,           [Y, Y, Y, F]),
    ("hidden task, in task team / project, in team",               TaskRemove,           [Y, Y, Y, F]),
    ("hidden task, in task team / project, in team",               ActivityAddMsg,       [Y, Y, Y, Y]),
    ("hidden task, in task team / project, in team",               ActivityAddProgress,  [Y, Y, Y, F]),

    ("task / hidden project",                                      TaskGetById,          [E, N, N, N]),
    ("task / hidden project",                                      TaskGetList,          [E, N, N, N]),
    ("task / hidden project",                                      TaskUpdate,           [Y, N, N, N]),
    ("task / hidden project",                                      TaskRemove,           [Y, N, N, N]),
    ("task / hidden project",                                      ActivityAddMsg,       [Y, N, N, N]),
    ("task / hidden project",                                      ActivityAddProgress,  [Y, N, N, N]),

    ("hidden task / hidden project",                               TaskGetById,          [E, N, N, N]),
    ("hidden task / hidden project",                               TaskGetList,          [E, N, N, N]),
    ("hidden task / hidden project",                               TaskUpdate,           [Y, N, N, N]),
    ("hidden task / hidden project",                               TaskRemove,           [Y, N, N, N]),
    ("hidden task / hidden project",                               ActivityAddMsg,       [Y, N, N, N]),
    ("hidden task / hidden project",                               ActivityAddProgress,  [Y, N, N, N]),

    ("task, in task team / hidden project",                        TaskGetById,          [E, N, E, N]),
    ("task, in task team / hidden project",                        TaskGetList,          [E, N, E, N]),
    ("task, in task team / hidden project",                        TaskUpdate,           [Y, N, Y, N]),
    ("task, in task team / hidden project",                        TaskRemove,           [Y, N, Y, N]),
    ("task, in task team / hidden project",                        ActivityAddMsg,       [Y, N, Y, N]),
    ("task, in task team / hidden project",                        ActivityAddProgress,  [Y, N, Y, N]),

    ("hidden task, in task team / hidden project",                 TaskGetById,          [E, N, E, N]),
    ("hidden task, in task team / hidden project",                 TaskGetList,          [E, N, E, N]),
    ("hidden task, in task team / hidden project",                 TaskUpdate,           [Y, N, Y, N]),
    ("hidden task, in task team / hidden project",                 TaskRemove,           [Y, N, Y, N]),
    ("hidden task, in task team / hidden project",                 ActivityAddMsg,       [Y, N, Y, N]),
    ("hidden task, in task team / hidden project",                 ActivityAddProgress,  [Y, N, Y, N]),

    ("hidden task, owned / hidden project",                        TaskGetById,          [E, N, E, N]),
    ("hidden task, owned / hidden project",                        TaskGetList,          [E, N, E, N]),
    ("hidden task, owned / hidden project",                        TaskUpdate,           [Y, N, Y, N]),
    ("hidden task, owned / hidden project",                        TaskRemove,           [Y, N, Y, N]),
    ("hidden task, owned / hidden project",                        ActivityAddMsg,       [Y, N, Y, N]),
    ("hidden task, owned / hidden project",                        ActivityAddProgress,  [Y, N, Y, N]),

    ("task / hidden project, in team",                             TaskGetById,          [E, E, V, V]),
    ("task / hidden project, in team",                             TaskGetList,          [E, E, V, V]),
    ("task / hidden project, in team",                             TaskUpdate,           [Y, Y, F, F]),
    ("task / hidden project, in team",                             TaskRemove,           [Y, Y, F, F]),
    ("task / hidden project, in team",                             ActivityAddMsg,       [Y, Y, Y, Y]),
    ("task / hidden project, in team",                             ActivityAddProgress,  [Y, Y, F, F]),

    ("hidden task / hidden project, in team",                      TaskGetById,          [E, E, V, V]),
    ("hidden task / hidden project, in team",                      TaskGetList,          [E, E, V, V]),
    ("hidden task / hidden project, in team",                      TaskUpdate,           [Y, Y, F, F]),
    ("hidden task / hidden project, in team",                      TaskRemove,           [Y, Y, F, F]),
    ("hidden task / hidden project, in team",                      ActivityAddMsg,       [Y, Y, Y, Y]),
    ("hidden task / hidden project, in team",                      ActivityAddProgress,  [Y, Y, F, F]),

    ("task, in task team / hidden project, in team",               TaskGetById,          [E, E, E, V]),
    ("task, in task team / hidden project, in team",               TaskGetList,          [E, E, E, V]),
    ("task, in task team / hidden project, in team",               TaskUpdate,           [Y, Y, Y, F]),
    ("task, in task team / hidden project, in team",               TaskRemove,           [Y, Y, Y, F]),
    ("task, in task team / hidden project, in team",               ActivityAddMsg,       [Y, Y, Y, Y]),
    ("task, in task team / hidden project, in team",               ActivityAddProgress,  [Y, Y, Y, F]),

    ("hidden task, in task team / hidden project, in team",        TaskGetById,          [E, E, E, V]),
    ("hidden task, in task team / hidden project, in team",        TaskGetList,          [E, E, E, V]),
    ("hidden task, in task team / hidden project, in team",        TaskUpdate,           [Y, Y, Y, F]),
    ("hidden task, in task team / hidden project, in team",        TaskRemove,           [Y, Y, Y, F]),
    ("hidden task, in task team / hidden project, in team",        ActivityAddMsg,       [Y, Y, Y, Y]),
    ("hidden task, in task team / hidden project, in team",        ActivityAddProgress,  [Y, Y, Y, F]),

    ("task / hidden project, owned",                               TaskGetById,          [E, V, N, N]),
    ("task / hidden project, owned",                               TaskGetList,          [E, V, N, N]),
    ("task / hidden project, owned",                               TaskUpdate,           [Y, F, N, N]),
    ("task / hidden project, owned",                               TaskRemove,           [Y, F, N, N]),
    ("task / hidden project, owned",                               ActivityAddMsg,       [Y, Y, N, N]),
    ("task / hidden project, owned",                               ActivityAddProgress,  [Y, F, N, N]),

    ("task / no project",                                          TaskGetById,          [E, V, N, N]),
    ("task / no project",                                          TaskGetList,          [E, V, N, N]),
    ("task / no project",                                          TaskUpdate,           [Y, F, N, N]),
    ("task / no project",                                          TaskRemove,           [Y, F, N, N]),
    ("task / no project",                                          ActivityAddMsg,       [Y, Y, N, N]),
    ("task / no project",                                          ActivityAddProgress,  [Y, F, N, N]),

    ("hidden task / no project",                                   TaskGetById,          [E, N, N, N]),
    ("hidden task / no project",                                   TaskGetList,          [E, N, N, N]),
    ("hidden task / no project",                                   TaskUpdate,           [Y, N, N, N]),
    ("hidden task / no project",                                   TaskRemove,           [Y, N, N, N]),
    ("hidden task / no project",                                   ActivityAddMsg,       [Y, N, N, N]),
    ("hidden task / no project",                                   ActivityAddProgress,  [Y, N, N, N]),

    ("hidden task, in task team / no project",                     TaskGetById,          [E, E, E, N]),
    ("hidden task, in task team / no project",                     TaskGetList,          [E, E, E, N]),
    ("hidden task, in task team / no project",                     TaskUpdate,           [Y, Y, Y, N]),
    ("hidden task, in task team / no project",                     TaskRemove,           [Y, Y, Y, N]),
    ("hidden task, in task team / no project",                     ActivityAddMsg,       [Y, Y, Y, N]),
    ("hidden task, in task team / no project",                     ActivityAddProgress,  [Y, Y, Y, N]),

    ("hidden task, owned / no project",                            TaskGetById,          [E, E, E, N]),
    ("hidden task, owned / no project",                            TaskGetList,          [E, E, E, N]),
    ("hidden task, owned / no project",                            TaskUpdate,           [Y, Y, Y, N]),
    ("hidden task, owned / no project",                            TaskRemove,           [Y, Y, Y, N]),
    ("hidden task, owned / no project",                            ActivityAddMsg,       [Y, Y, Y, N]),
    ("hidden task, owned / no project",                            ActivityAddProgress,  [Y, Y, Y, N]),

    // Activities: "<activity> on <where it is posted>". "msg" and "progress" are by someone else.
    ("msg on project",                                             ActivityGetById,      [E, V, N, N]),
    ("msg on project",                                             ActivityGetList,      [E, V, N, N]),
    ("msg on project",                                             ActivityUpdate,       [Y, F, N, N]),
    ("msg on project",                                             ActivityRemove,       [Y, F, N, N]),

    ("msg hideFromClients on project",                             ActivityGetById,      [E, V, N, N]),
    ("msg hideFromClients on project",                             ActivityGetList,      [E, V, N, N]),
    ("msg hideFromClients on project",                             ActivityUpdate,       [Y, F, N, N]),
    ("msg hideFromClients on project",                             ActivityRemove,       [Y, F, N, N]),

    ("msg on project, in team",                                    ActivityGetById,      [E, V, V, V]),
    ("msg on project, in team",                                    ActivityGetList,      [E, V, V, V]),
    ("msg on project, in team",                                    ActivityUpdate,       [Y, F, F, F]),
    ("msg on project, in team",                                    ActivityRemove,       [Y, F, F, F]),

    ("msg hideFromClients on project, in team",                    ActivityGetById,      [E, V, V, N]),
    ("msg hideFromClients on project, in team",                    ActivityGetList,      [E, V, V, N]),
    ("msg hideFromClients on project, in team",                    ActivityUpdate,       [Y, F, F, N]),
    ("msg hideFromClients on project, in team",                    ActivityRemove,       [Y, F, F, N]),

    ("msg on hidden project",                                      ActivityGetById,      [E, N, N, N]),
    ("msg on hidden project",                                      ActivityGetList,      [E, N, N, N]),
    ("msg on hidden project",                                      ActivityUpdate,       [Y, N, N, N]),
    ("msg on hidden project",                                      ActivityRemove,       [Y, N, N, N]),

    ("msg hideFromClients on hidden project",                      ActivityGetById,      [E, N, N, N]),
    ("msg hideFromClients on hidden project",                      ActivityGetList,      [E, N, N, N]),
    ("msg hideFromClients on hidden project",                      ActivityUpdate,       [Y, N, N, N]),
    ("msg hideFromClients on hidden project",                      ActivityRemove,       [Y, N, N, N]),

    ("msg on task / project",                                      ActivityGetById,      [E, V, N, N]),
    ("msg on task / project",                                      ActivityGetList,      [E, V, N, N]),
    ("msg on task / project",                                      ActivityUpdate,       [Y, F, N, N]),
    ("msg on task / project",                                      ActivityRemove,       [Y, F, N, N]),

    ("msg hideFromClients on task / project",                      ActivityGetById,      [E, V, N, N]),
    ("msg hideFromClients on task / project",                      ActivityGetList,      [E, V, N, N]),
    ("msg hideFromClients on task / project",                      ActivityUpdate,       [Y, F, N, N]),
    ("msg hideFromClients on task / project",                      ActivityRemove,       [Y, F, N, N]),

    ("progress on task / project",                                 ActivityGetById,      [E, V, N, N]),
    ("progress on task / project",                                 ActivityGetList,      [E, V, N, N]),
    ("progress on task / project",                                 ActivityUpdate,       [Y, F, N, N]),
    ("progress on task / project",                                 ActivityRemove,       [Y, F, N, N]),

    ("msg on task / project, in team",                             ActivityGetById,      [E, V, V, V]),
    ("msg on task / project, in team",                             ActivityGetList,      [E, V, V, V]),
    ("msg on task / project, in team",                             ActivityUpdate,       [Y, F, F, F]),
    ("msg on task / project, in team",                             ActivityRemove,       [Y, F, F, F]),

    ("msg hideFromClients on task / project, in team",             ActivityGetById,      [E, V, V, N]),
    ("msg hideFromClients on task / project, in team",             ActivityGetList,      [E, V, V, N]),
    ("msg hideFromClients on task / project, in team",             ActivityUpdate,       [Y, F, F, N]),
    ("msg hideFromClients on task / project, in team",             ActivityRemove,       [Y, F, F, N]),

    ("progress on task / project, in team",                        ActivityGetById,      [E, V, V, V]),
    ("progress on task / project, in team",                        ActivityGetList,      [E, V, V, V]),
    ("progress on task / project, in team",                        ActivityUpdate,       [Y, F, F, F]),
    ("progress on task / project, in team",                        ActivityRemove,       [Y, F, F, F]),

    ("msg on hidden task, in task team / hidden project",          ActivityGetById,      [E, N, V, N]),
    ("msg on hidden task, in task team / hidden project",          ActivityGetList,      [E, N, V, N]),
    ("msg on hidden task, in task team / hidden project",          ActivityUpdate,       [Y, N, F, N]),
    ("msg on hidden task, in task team / hidden project",          ActivityRemove,       [Y, N, F, N]),

    ("msg hideFromClients on hidden task, in task team / hidden project", ActivityGetById, [E, N, V, N]),
    ("msg hideFromClients on hidden task, in task team / hidden project", ActivityGetList, [E, N, V, N]),
    ("msg hideFromClients on hidden task, in task team / hidden project", ActivityUpdate, [Y, N, F, N]),
    ("msg hideFromClients on hidden task, in task team / hidden project", ActivityRemove, [Y, N, F, N]),

    ("progress on hidden task, in task team / hidden project",     ActivityGetById,      [E, N, V, N]),
    ("progress on hidden task, in task team / hidden project",     ActivityGetList,      [E, N, V, N]),
    ("progress on hidden task, in task team / hidden project",     ActivityUpdate,       [Y, N, F, N]),
    ("progress on hidden task, in task team / hidden project",     ActivityRemove,       [Y, N, F, N]),

    ("own msg on project, in team",                                ActivityGetById,      [E, E, E, E]),
    ("own msg on project, in team",                                ActivityGetList,      [E, E, E, E]),
    ("own msg on project, in team",                                ActivityUpdate,       [Y, Y, Y, Y]),
    ("own msg on project, in team",                                ActivityRemove,       [Y, Y, Y, Y]),

    ("own msg on task / project, in team",                         ActivityGetById,      [E, E, E, E]),
    ("own msg on task / project, in team",                         ActivityGetList,      [E, E, E, E]),
    ("own msg on task / project, in team",                         ActivityUpdate,       [Y, Y, Y, Y]),
    ("own msg on task / project, in team",                         ActivityRemove,       [Y, Y, Y, Y]),

    ("own msg on hidden project",                                  ActivityGetById,      [E, N, N, N]),
    ("own msg on hidden project",                                  ActivityGetList,      [E, N, N, N]),
    ("own msg on hidden project",                                  ActivityUpdate,       [Y, N, N, N]),
    ("own msg on hidden project",                                  ActivityRemove,       [Y, N, N, N]),

    // Files: "file of <activity>"; "own file" was attached by the caller.
    ("file of msg on project",                                     FilesGetList,         [E, V, N, N]),
    ("file of msg on project",                                     FileDownload,         [Y, Y, N, N]),
    ("file of msg on project",                                     FileRemove,           [Y, F, N, N]),

    ("file of msg on project, in team",                            FilesGetList,         [E, V, V, V]),
    ("file of msg on project, in team",                            FileDownload,         [Y, Y, Y, Y]),
    ("file of msg on project, in team",                            FileRemove,           [Y, F, F, F]),

    ("file of msg hideFromClients on project, in team",            FilesGetList,         [E, V, V, N]),
    ("file of msg hideFromClients on project, in team",            FileDownload,         [Y, Y, Y, N]),
    ("file of msg hideFromClients on project, in team",            FileRemove,           [Y, F, F, N]),

    ("file of msg on hidden project",                              FilesGetList,         [E, N, N, N]),
    ("file of msg on hidden project",                              FileDownload,         [Y, N, N, N]),
    ("file of msg on hidden project",                              FileRemove,           [Y, N, N, N]),

    ("own file of own msg on project, in team",                    FilesGetList,         [E, E, E, E]),
    ("own file of own msg on project, in team",                    FileDownload,         [Y, Y, Y, Y]),
    ("own file of own msg on project, in team",                    FileRemove,           [Y, Y, Y, Y]),
];

/// Who made an object: another user (who owns the shared fixture), or the caller of a role.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Other,
    Actor(Role),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ActKind {
    Msg,
    HiddenMsg,
    Progress,
}

/// How a fixture object is made. Parents are indexes into `Fixture::items`.
#[derive(Clone, Copy, Debug)]
enum Spec {
    /// `team`: every caller is in the team. `left`: callers post to it by joining its team
    /// for the moment (it stays without a team).
    Project {
        hidden: bool,
        team: bool,
        owner: Who,
        left: bool,
    },
    Task {
        project: Option<usize>,
        hidden: bool,
        team: bool,
        owner: Who,
    },
    Activity {
        target: usize,
        kind: ActKind,
        by: Who,
    },
    File {
        activity: usize,
        by: Who,
    },
}

impl Spec {
    fn kind(&self) -> Kind {
        match self {
            Spec::Project { .. } => Kind::Project,
            Spec::Task { .. } => Kind::Task,
            Spec::Activity { .. } => Kind::Activity,
            Spec::File { .. } => Kind::File,
        }
    }
}

struct Item {
    spec: Spec,
    id: i64,
}

struct Fixture<'a> {
    s: &'a TestServer,
    /// The admin's session; the admin is also the caller of role admin.
    admin: String,
    /// The other user (securityLevel 100) who owns the shared fixture.
    other: (i64, String),
    /// (id, session) by role, in `ROLES` order.
    actors: Vec<(i64, String)>,
    items: Vec<Item>,
}

fn ix(role: Role) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// The id of the object answered under `kind`.
fn id_of(r: &Resp, kind: &str) -> Result<i64, String> {
    if r.status != 200 {
        return Err(format!("{} {}", r.status, r.body));
    }
    r.json()[kind]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no {kind} id in {}", r.body))
}

/// The outcome of a call, in the words `want` uses.
fn got(r: &Resp, by_id: Option<&str>) -> String {
    if r.status == 200 {
        return match by_id {
            Some(kind) => format!("200, can_edit={}", r.json()[kind]["can_edit"]),
            None => "200".into(),
        };
    }
    match serde_json::from_str::<Value>(&r.body) {
        Ok(j) if j["code"].is_string() => format!("{} {}", r.status, j["code"].as_str().unwrap()),
        _ => format!("{} {}", r.status, r.body),
    }
}

fn want(out: Out) -> &'static str {
    match out {
        Out::Edit => "200, can_edit=true",
        Out::View => "200, can_edit=false",
        Out::Done => "200",
        Out::Denied => "403 forbidden",
        Out::Gone => "404 not_found",
    }
}

fn want_listed(out: Out) -> &'static str {
    match out {
        Out::Edit => "listed, can_edit=true",
        Out::View => "listed, can_edit=false",
        Out::Gone => "not listed",
        Out::Done | Out::Denied => "(not a list outcome)",
    }
}

fn row_for(object: &str, call: Call) -> Option<&'static Row> {
    MATRIX.iter().find(|(o, c, _)| *o == object && *c == call)
}

impl Fixture<'_> {
    fn session(&self, who: Who) -> &str {
        match who {
            Who::Other => &self.other.1,
            Who::Actor(role) => &self.actors[ix(role)].1,
        }
    }

    fn user_id(&self, who: Who) -> i64 {
        match who {
            Who::Other => self.other.0,
            Who::Actor(role) => self.actors[ix(role)].0,
        }
    }

    /// Every caller, as a team.
    fn everyone(&self) -> String {
        let ids: Vec<String> = self.actors.iter().map(|(id, _)| id.to_string()).collect();
        ids.join(",")
    }

    async fn set_team(&self, project: i64, team: &str) -> Result<(), String> {
        let id = project.to_string();
        let r = self
            .s
            .call_json(
                "projects/update",
                &[
                    ("sessionId", &self.admin),
                    ("project[id]", &id),
                    ("project[team]", team),
                ],
            )
            .await;
        id_of(&r, "project").map(|_| ())
    }

    /// Makes one object as `spec` says; returns its id.
    async fn build(&self, spec: Spec) -> Result<i64, String> {
        /// The new object's id, or the refusal in the words of the fixture's errors.
        async fn added(
            add: impl std::future::Future<Output = Result<Value, Fail>>,
        ) -> Result<i64, String> {
            add.await
                .map(|object| common::id_of(&object))
                .map_err(|f| format!("{} {}", f.status, f.body))
        }
        let s = self.s;
        match spec {
            Spec::Project {
                hidden,
                team,
                owner,
                ..
            } => {
                let owner = self.user_id(owner).to_string();
                let everyone = self.everyone();
                let mut p = vec![
                    ("name", "matrix project"),
                    ("hidden", if hidden { "1" } else { "0" }),
                    ("ownerId", &owner),
                ];
                if team {
                    p.push(("team", &everyone));
                }
                added(s.as_caller(&self.admin).try_add(common::Kind::Project, &p)).await
            }
            Spec::Task {
                project,
                hidden,
                team,
                owner,
            } => {
                let owner = self.user_id(owner).to_string();
                let everyone = self.everyone();
                let project = project.map(|p| self.items[p].id.to_string());
                let mut p = vec![
                    ("name", "matrix task"),
                    ("hidden", if hidden { "1" } else { "0" }),
                    ("ownerId", &owner),
                ];
                if let Some(project) = &project {
                    p.push(("projectId", project));
                }
                if team {
                    p.push(("team", &everyone));
                }
                added(s.as_caller(&self.admin).try_add(common::Kind::Task, &p)).await
            }
            Spec::Activity { target, kind, by } => {
                let target_id = self.items[target].id.to_string();
                let mut p = vec![("text", "matrix note")];
                p.push(match self.items[target].spec {
                    Spec::Task { .. } => ("taskId", &target_id),
                    _ => ("projectId", &target_id),
                });
                match kind {
                    ActKind::Msg => p.push(("type", "msg")),
                    ActKind::HiddenMsg => {
                        p.push(("type", "msg"));
                        p.push(("hideFromClients", "1"));
                    }
                    ActKind::Progress => {
                        p.push(("type", "progress"));
                        p.push(("progress", "30"));
                    }
                }
                let left = matches!(self.items[target].spec, Spec::Project { left: true, .. });
                if left {
                    self.set_team(self.items[target].id, &self.everyone())
                        .await?;
                }
                let by = s.as_caller(self.session(by));
                let posted = added(by.try_add(common::Kind::Activity, &p)).await;
                if left {
                    self.set_team(self.items[target].id, "").await?;
                }
                posted
            }
            Spec::File { activity, by } => {
                let activity = self.items[activity].id.to_string();
                let r = s
                    .call_json(
                        "activity/attachFiles",
                        &[
                            ("sessionId", self.session(by)),
                            ("activityId", &activity),
                            ("files[0][name]", "notes.txt"),
                            ("files[0][content]", "aGVsbG8="),
                        ],
                    )
                    .await;
                if r.status != 200 {
                    return Err(format!("{} {}", r.status, r.body));
                }
                r.json()["items"][0]["id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("no file id in {}", r.body))
            }
        }
    }

    /// Builds a fixture object and returns its index.
    async fn add(&mut self, spec: Spec) -> usize {
        let id = self
            .build(spec)
            .await
            .unwrap_or_else(|e| panic!("building the fixture ({spec:?}): {e}"));
        self.items.push(Item { spec, id });
        self.items.len() - 1
    }

    /// The description of an object for a caller of `role`, as the rows of `MATRIX` name it.
    fn describe(&self, i: usize, role: Role) -> String {
        let me = Who::Actor(role);
        match self.items[i].spec {
            Spec::Project {
                hidden,
                team,
                owner,
                ..
            } => {
                if owner == me {
                    assert!(hidden && !team, "owned projects are hidden, without a team");
                    return "hidden project, owned".into();
                }
                match (hidden, team) {
                    (false, false) => "project",
                    (false, true) => "project, in team",
                    (true, false) => "hidden project",
                    (true, true) => "hidden project, in team",
                }
                .into()
            }
            Spec::Task {
                project,
                hidden,
                team,
                owner,
            } => {
                let task = if owner == me {
                    assert!(hidden && !team, "owned tasks are hidden, without a team");
                    "hidden task, owned"
                } else {
                    match (hidden, team) {
                        (false, false) => "task",
                        (true, false) => "hidden task",
                        (false, true) => "task, in task team",
                        (true, true) => "hidden task, in task team",
                    }
                };
                let project = project.map_or("no project".into(), |p| self.describe(p, role));
                format!("{task} / {project}")
            }
            Spec::Activity { target, kind, by } => {
                let what = if by == me {
                    assert_eq!(kind, ActKind::Msg, "callers post messages only");
                    "own msg"
                } else {
                    match kind {
                        ActKind::Msg => "msg",
                        ActKind::HiddenMsg => "msg hideFromClients",
                        ActKind::Progress => "progress",
                    }
                };
                format!("{what} on {}", self.describe(target, role))
            }
            Spec::File { activity, by } => {
                let what = if by == me { "own file of" } else { "file of" };
                format!("{what} {}", self.describe(activity, role))
            }
        }
    }

    /// The first fixture object of one of these kinds with this description for `role`.
    fn find(&self, role: Role, kinds: &[Kind], object: &str) -> Option<usize> {
        (0..self.items.len()).find(|&i| {
            kinds.contains(&self.items[i].spec.kind()) && self.describe(i, role) == object
        })
    }

    /// One list call as `role`: what it says of each listed id, its `total` and `count`.
    async fn list(
        &self,
        role: Role,
        call: &str,
        count: Option<&str>,
    ) -> Result<(HashMap<i64, String>, i64, i64, usize), String> {
        let mut p = vec![("sessionId", self.session(Who::Actor(role)))];
        if let Some(count) = count {
            p.push(("count", count));
        }
        let r = self.s.call_json(call, &p).await;
        if r.status != 200 {
            return Err(got(&r, None));
        }
        let j = r.json();
        let items = j["items"].as_array().cloned().unwrap_or_default();
        let listed = items
            .iter()
            .map(|item| {
                let id = item["id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1);
                (id, format!("listed, can_edit={}", item["can_edit"]))
            })
            .collect();
        let total = j["total"].as_i64().unwrap_or(-1);
        let counted = j["count"].as_i64().unwrap_or(-1);
        Ok((listed, total, counted, items.len()))
    }

    /// The list rows, on the fixture alone: presence, can_edit and totals.
    async fn check_lists(&self, cases: &mut usize, mismatches: &mut Vec<String>) {
        for role in ROLES {
            for call in LISTS {
                let (path, paged) = call.list().unwrap();
                let kind = call.object_kind().unwrap();
                let (listed, total, counted, len) =
                    match self.list(role, path, paged.then_some("1000")).await {
                        Ok(answer) => answer,
                        Err(e) => {
                            mismatches.push(format!("{role:?} | {call:?}: the list failed: {e}"));
                            continue;
                        }
                    };
                let mut expected_total = 0;
                let mut fixture_ids = Vec::new();
                for (i, item) in self.items.iter().enumerate() {
                    if item.spec.kind() != kind {
                        continue;
                    }
                    fixture_ids.push(item.id);
                    let object = self.describe(i, role);
                    let Some((_, _, outs)) = row_for(&object, call) else {
                        mismatches.push(format!("{role:?} | {object} | {call:?}: no row"));
                        continue;
                    };
                    *cases += 1;
                    let expected = want_listed(outs[ix(role)]);
                    let answer = listed.get(&item.id).map_or("not listed", |s| s.as_str());
                    if answer != expected {
                        mismatches.push(format!(
                            "{role:?} | {object} (id {}) | {call:?}: expected {expected}, got {answer}",
                            item.id
                        ));
                    }
                    if outs[ix(role)] != N {
                        expected_total += 1;
                    }
                }
                for id in listed.keys() {
                    if !fixture_ids.contains(id) {
                        mismatches.push(format!(
                            "{role:?} | {call:?}: lists id {id}, which is no {kind:?} of the fixture"
                        ));
                    }
                }
                if total != expected_total || counted != len as i64 {
                    mismatches.push(format!(
                        "{role:?} | {call:?}: expected total {expected_total}, got total {total} \
                         (count {counted}, {len} items)"
                    ));
                }
                if paged {
                    match self.list(role, path, Some("1")).await {
                        Ok((_, total, _, len)) if total == expected_total && len <= 1 => {}
                        Ok((_, total, _, len)) => mismatches.push(format!(
                            "{role:?} | {call:?} with count=1: expected total {expected_total}, \
                             got total {total} ({len} items)"
                        )),
                        Err(e) => mismatches.push(format!("{role:?} | {call:?} with count=1: {e}")),
                    }
                }
            }
            // Every list row describes at least one fixture object for every role.
            for (object, call, _) in MATRIX.iter().filter(|(_, c, _)| c.list().is_some()) {
                if self
                    .find(role, &[call.object_kind().unwrap()], object)
                    .is_none()
                {
                    mismatches.push(format!(
                        "{role:?} | {object} | {call:?}: no fixture object has this description"
                    ));
                }
            }
        }
    }

    /// Runs one row that is not a list for one role; returns what it answered.
    async fn run(&self, role: Role, object: &str, call: Call) -> Result<String, String> {
        let s = self.s;
        let sid = self.session(Who::Actor(role));
        let kinds: &[Kind] = match call {
            ActivityAddMsg => &[Kind::Project, Kind::Task],
            _ => match call.object_kind() {
                Some(Kind::Project) => &[Kind::Project],
                Some(Kind::Task) => &[Kind::Task],
                Some(Kind::Activity) => &[Kind::Activity],
                Some(Kind::File) => &[Kind::File],
                None => &[],
            },
        };
        let item = if kinds.is_empty() {
            None
        } else {
            let i = self
                .find(role, kinds, object)
                .ok_or("no fixture object has this description")?;
            Some(&self.items[i])
        };
        let id = match (call, item) {
            // Destructive calls act on a fresh copy.
            (ProjectRemove | TaskRemove | ActivityRemove | FileRemove, Some(item)) => self
                .build(item.spec)
                .await
                .map_err(|e| format!("making the fresh copy failed: {e}"))?,
            (_, Some(item)) => item.id,
            (_, None) => 0,
        }
        .to_string();
        let id = id.as_str();
        let r = match call {
            ProjectGetById => {
                let r = s
                    .call_json("projects/getById", &[("sessionId", sid), ("id", id)])
                    .await;
                return Ok(got(&r, Some("project")));
            }
            TaskGetById => {
                let r = s
                    .call_json("tasks/getById", &[("sessionId", sid), ("id", id)])
                    .await;
                return Ok(got(&r, Some("task")));
            }
            ActivityGetById => {
                let r = s
                    .call_json("activity/getById", &[("sessionId", sid), ("id", id)])
                    .await;
                return Ok(got(&r, Some("activity")));
            }
            ProjectUpdate => {
                let p = [
                    ("sessionId", sid),
                    ("project[id]", id),
                    ("project[description]", "changed"),
                ];
                s.call_json("projects/update", &p).await
            }
            ProjectRemove => {
                s.call_json("projects/remove", &[("sessionId", sid), ("id", id)])
                    .await
            }
            ProjectAdd => {
                let p = [("sessionId", sid), ("project[name]", "new project")];
                s.call_json("projects/add", &p).await
            }
            TaskUpdate => {
                let p = [
                    ("sessionId", sid),
                    ("task[id]", id),
                    ("task[description]", "changed"),
                ];
                s.call_json("tasks/update", &p).await
            }
            TaskRemove => {
                s.call_json("tasks/remove", &[("sessionId", sid), ("id", id)])
                    .await
            }
            TaskAddInProject => {
                let p = [
                    ("sessionId", sid),
                    ("task[name]", "new task"),
                    ("task[projectId]", id),
                ];
                s.call_json("tasks/add", &p).await
            }
            TaskAddSingle => {
                let p = [("sessionId", sid), ("task[name]", "new single task")];
                s.call_json("tasks/add", &p).await
            }
            ActivityAddMsg => {
                let target = match item.map(|i| i.spec.kind()) {
                    Some(Kind::Task) => "activity[taskId]",
                    _ => "activity[projectId]",
                };
                let p = [
                    ("sessionId", sid),
                    ("activity[type]", "msg"),
                    ("activity[text]", "new message"),
                    (target, id),
                ];
                s.call_json("activity/add", &p).await
            }
            ActivityAddProgress => {
                let p = [
                    ("sessionId", sid),
                    ("activity[type]", "progress"),
                    ("activity[progress]", "50"),
                    ("activity[taskId]", id),
                ];
                s.call_json("activity/add", &p).await
            }
            ActivityUpdate => {
                let p = [
                    ("sessionId", sid),
                    ("activity[id]", id),
                    ("activity[text]", "changed"),
                ];
                s.call_json("activity/update", &p).await
            }
            ActivityRemove => {
                s.call_json("activity/remove", &[("sessionId", sid), ("id", id)])
                    .await
            }
            FileDownload => {
                s.call_json("activity/downloadFile", &[("sessionId", sid), ("id", id)])
                    .await
            }
            FileRemove => {
                s.call_json("activity/removeFile", &[("sessionId", sid), ("id", id)])
                    .await
            }
            ProjectGetList | ProjectGetAll | TaskGetList | ActivityGetList | FilesGetList => {
                unreachable!("list rows are checked by check_lists")
            }
        };
        Ok(got(&r, None))
    }
}

/// Builds the fixture described at the top of this file.
async fn fixture(s: &TestServer) -> Fixture<'_> {
    let admin = s.admin().await;
    let me = s
        .call_json("authentication/getAuthorizedUser", &[("sessionId", &admin)])
        .await;
    let admin_id = id_of(&me, "user").unwrap();
    let mut actors = vec![(admin_id, admin.clone())];
    for role in &ROLES[1..] {
        let email = format!("{role:?}@example.com").to_lowercase();
        actors.push(s.user(&email, role.level(), false).await);
    }
    let other = s.user("other@example.com", 100, false).await;
    let mut fx = Fixture {
        s,
        admin,
        other,
        actors,
        items: Vec::new(),
    };

    let project = |hidden, team| Spec::Project {
        hidden,
        team,
        owner: Who::Other,
        left: false,
    };
    let open = fx.add(project(false, false)).await;
    let open_team = fx.add(project(false, true)).await;
    let hidden = fx.add(project(true, false)).await;
    let hidden_team = fx.add(project(true, true)).await;
    let left = fx
        .add(Spec::Project {
            hidden: true,
            team: false,
            owner: Who::Other,
            left: true,
        })
        .await;
    let mut owned = Vec::new();
    for role in ROLES {
        let owner = Who::Actor(role);
        owned.push(
            fx.add(Spec::Project {
                hidden: true,
                team: false,
                owner,
                left: false,
            })
            .await,
        );
    }

    // Tasks by the other user: four in each shared project, one in each owned project.
    let task = |project, hidden, team| Spec::Task {
        project,
        hidden,
        team,
        owner: Who::Other,
    };
    let mut first_task = HashMap::new();
    let mut hidden_team_task = HashMap::new();
    for p in [open, open_team, hidden, hidden_team] {
        first_task.insert(p, fx.add(task(Some(p), false, false)).await);
        fx.add(task(Some(p), true, false)).await;
        fx.add(task(Some(p), false, true)).await;
        hidden_team_task.insert(p, fx.add(task(Some(p), true, true)).await);
    }
    for p in owned {
        fx.add(task(Some(p), false, false)).await;
    }
    // Single tasks, and a hidden task owned by each caller in two projects and alone.
    fx.add(task(None, false, false)).await;
    fx.add(task(None, true, false)).await;
    fx.add(task(None, true, true)).await;
    for role in ROLES {
        for project in [Some(open), Some(hidden), None] {
            let owner = Who::Actor(role);
            fx.add(Spec::Task {
                project,
                hidden: true,
                team: false,
                owner,
            })
            .await;
        }
    }

    // Activities by the other user, and files on some of them.
    let post = |target, kind| Spec::Activity {
        target,
        kind,
        by: Who::Other,
    };
    let file = |activity| Spec::File {
        activity,
        by: Who::Other,
    };
    for target in [open, open_team, hidden] {
        let msg = fx.add(post(target, ActKind::Msg)).await;
        let hidden_msg = fx.add(post(target, ActKind::HiddenMsg)).await;
        fx.add(file(msg)).await;
        if target == open_team {
            fx.add(file(hidden_msg)).await;
        }
    }
    for target in [
        first_task[&open],
        first_task[&open_team],
        hidden_team_task[&hidden],
    ] {
        fx.add(post(target, ActKind::Msg)).await;
        fx.add(post(target, ActKind::HiddenMsg)).await;
        fx.add(post(target, ActKind::Progress)).await;
    }
    // A message by each caller where all of them see, with a file, and one in the
    // project they leave.
    for role in ROLES {
        let by = Who::Actor(role);
        let msg = Spec::Activity {
            target: open_team,
            kind: ActKind::Msg,
            by,
        };
        let msg = fx.add(msg).await;
        fx.add(Spec::File { activity: msg, by }).await;
        for target in [first_task[&open_team], left] {
            fx.add(Spec::Activity {
                target,
                kind: ActKind::Msg,
                by,
            })
            .await;
        }
    }
    fx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_sees_and_does_what_section_8_says() {
    let server = TestServer::start().await;
    let fx = fixture(&server).await;
    let mut cases = 0;
    let mut mismatches = Vec::new();

    // The fixture alone is in the lists: check them before any row adds or removes.
    fx.check_lists(&mut cases, &mut mismatches).await;

    for (object, call, outs) in MATRIX {
        if call.list().is_some() {
            continue;
        }
        for role in ROLES {
            cases += 1;
            let expected = want(outs[ix(role)]);
            match fx.run(role, object, *call).await {
                Ok(answer) if answer == expected => {}
                Ok(answer) => mismatches.push(format!(
                    "{role:?} | {object} | {call:?}: expected {expected}, got {answer}"
                )),
                Err(e) => mismatches.push(format!("{role:?} | {object} | {call:?}: {e}")),
            }
        }
    }

    println!(
        "{} rows, {cases} cases checked, {} disagreements",
        MATRIX.len(),
        mismatches.len()
    );
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cases disagree with section 8:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    server.stop().await;
}
