//! Who may see and do what (section 8 of the contract), as pure functions.
//!
//! Every handler asks these functions; the SQL visibility conditions are built from the
//! same answers (see `store::UserScope`).

use crate::domain::user::SecurityLevel;

/// The signed-in caller, as the policy needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub level: SecurityLevel,
    pub can_view_profiles: bool,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.level == SecurityLevel::Admin
    }
}

/// Adding, removing and editing other users is for admins.
pub fn can_manage_users(actor: &Actor) -> bool {
    actor.is_admin()
}

/// Whether the caller sees every user, or only themself and their team-mates.
pub fn sees_all_users(actor: &Actor) -> bool {
    actor.is_admin() || actor.can_view_profiles
}

/// Whether the caller may see one user.
pub fn can_see_user(actor: &Actor, user_id: i64, is_team_mate: bool) -> bool {
    sees_all_users(actor) || actor.user_id == user_id || is_team_mate
}

/// `can_edit` on a user: admins edit everyone, others their own profile.
pub fn can_edit_user(actor: &Actor, user_id: i64) -> bool {
    actor.is_admin() || actor.user_id == user_id
}

/// Creating, renaming and removing project groups: admins and users.
pub fn can_write_groups(actor: &Actor) -> bool {
    matches!(actor.level, SecurityLevel::Admin | SecurityLevel::User)
}

/// What the policy needs to know about a project, for one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectFacts {
    pub hidden: bool,
    pub is_owner: bool,
    pub in_team: bool,
}

/// What the policy needs to know about a task, for one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskFacts {
    pub hidden: bool,
    pub is_owner: bool,
    pub in_task_team: bool,
    /// The task's project; `None` for a single task.
    pub project: Option<ProjectFacts>,
}

/// Where an activity was posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Task(TaskFacts),
    Project(ProjectFacts),
}

/// What the policy needs to know about an activity (or one of its files) beyond where
/// it was posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityFacts {
    pub is_owner: bool,
    pub is_message: bool,
    pub hide_from_clients: bool,
}

use SecurityLevel::{Admin, Client, External, User};

/// Section 8, "see projects".
pub fn can_see_project(a: &Actor, p: &ProjectFacts) -> bool {
    match a.level {
        Admin => true,
        User => !p.hidden || p.is_owner || p.in_team,
        External => p.is_owner || p.in_team,
        Client => p.in_team,
    }
}

/// Section 8, "edit/remove project" (of a project the caller sees).
pub fn can_edit_project(a: &Actor, p: &ProjectFacts) -> bool {
    match a.level {
        Admin => true,
        User => p.is_owner || p.in_team,
        External | Client => false,
    }
}

/// Section 8, "create project, group, single task".
pub fn can_create_project(a: &Actor) -> bool {
    matches!(a.level, Admin | User)
}

/// Section 8, "create task in a project".
pub fn can_create_task_in(a: &Actor, p: &ProjectFacts) -> bool {
    match a.level {
        Admin => true,
        User => can_see_project(a, p),
        External => p.in_team,
        Client => false,
    }
}

/// Section 8, "see tasks".
pub fn can_see_task(a: &Actor, t: &TaskFacts) -> bool {
    let in_project_team = t.project.is_some_and(|p| p.in_team);
    match a.level {
        Admin => true,
        User => {
            t.project.is_none_or(|p| can_see_project(a, &p))
                && (!t.hidden || t.is_owner || t.in_task_team || in_project_team)
        }
        External => t.is_owner || t.in_task_team || in_project_team,
        Client => in_project_team,
    }
}

/// Section 8, "edit/remove task" (of a task the caller sees).
pub fn can_edit_task(a: &Actor, t: &TaskFacts) -> bool {
    let in_project_team = t.project.is_some_and(|p| p.in_team);
    match a.level {
        Admin => true,
        User => t.is_owner || t.in_task_team || in_project_team,
        External => t.is_owner || t.in_task_team,
        Client => false,
    }
}

/// Whether the caller sees the task or project an activity is posted to.
pub fn can_see_target(a: &Actor, target: &Target) -> bool {
    match target {
        Target::Task(t) => can_see_task(a, t),
        Target::Project(p) => can_see_project(a, p),
    }
}

/// Section 8, "see activities, files".
pub fn can_see_activity(a: &Actor, target: &Target, act: &ActivityFacts) -> bool {
    can_see_target(a, target) && !(a.level == Client && act.hide_from_clients)
}

/// Section 8, "post a message": wherever the caller sees the target.
pub fn can_post_message(a: &Actor, target: &Target) -> bool {
    can_see_target(a, target)
}

/// Section 8, "post a progress note".
pub fn can_post_progress(a: &Actor, t: &TaskFacts) -> bool {
    match a.level {
        Admin => true,
        User | External => can_see_task(a, t) && can_edit_task(a, t),
        Client => false,
    }
}

/// Section 8, "edit/remove activity, file" (of one the caller sees).
pub fn can_edit_activity(a: &Actor, act: &ActivityFacts) -> bool {
    match a.level {
        Admin => true,
        User | External => act.is_owner,
        Client => act.is_owner && act.is_message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(level: SecurityLevel, can_view_profiles: bool) -> Actor {
        Actor {
            user_id: 1,
            level,
            can_view_profiles,
        }
    }

    fn project(hidden: bool, is_owner: bool, in_team: bool) -> ProjectFacts {
        ProjectFacts {
            hidden,
            is_owner,
            in_team,
        }
    }

    /// role, hidden, owner, team → see, edit, create a task in it.
    #[test]
    fn the_project_rules_as_a_table() {
        let table = [
            (Admin, true, false, false, true, true, true),
            (User, false, false, false, true, false, true),
            (User, true, false, false, false, false, false),
            (User, true, true, false, true, true, true),
            (User, true, false, true, true, true, true),
            (External, false, false, false, false, false, false),
            (External, true, true, false, true, false, false),
            (External, true, false, true, true, false, true),
            (Client, false, false, false, false, false, false),
            (Client, true, false, true, true, false, false),
        ];
        for (level, hidden, owner, team, see, edit, create_task) in table {
            let a = actor(level, false);
            let p = project(hidden, owner, team);
            let case = format!("{level:?} hidden={hidden} owner={owner} team={team}");
            assert_eq!(can_see_project(&a, &p), see, "{case}");
            assert_eq!(can_edit_project(&a, &p), edit, "{case}");
            assert_eq!(can_create_task_in(&a, &p), create_task, "{case}");
        }
    }

    /// role, task hidden, task owner, task team, project team → see, edit, post progress.
    #[test]
    fn the_task_rules_as_a_table() {
        let table = [
            (Admin, true, false, false, false, true, true, true),
            (User, false, false, false, false, true, false, false),
            (User, true, false, false, false, false, false, false),
            (User, true, false, false, true, true, true, true),
            (User, true, true, false, false, true, true, true),
            (External, false, false, false, false, false, false, false),
            (External, false, false, false, true, true, false, false),
            (External, true, false, true, false, true, true, true),
            (Client, true, false, false, true, true, false, false),
            (Client, false, true, true, false, false, false, false),
        ];
        for (level, hidden, owner, task_team, project_team, see, edit, progress) in table {
            let a = actor(level, false);
            let t = TaskFacts {
                hidden,
                is_owner: owner,
                in_task_team: task_team,
                project: Some(project(false, false, project_team)),
            };
            let case = format!("{level:?} hidden={hidden} owner={owner} taskTeam={task_team} projectTeam={project_team}");
            assert_eq!(can_see_task(&a, &t), see, "{case}");
            assert_eq!(can_edit_task(&a, &t), edit, "{case}");
            assert_eq!(can_post_progress(&a, &t), progress, "{case}");
        }
    }

    #[test]
    fn clients_do_not_see_activities_hidden_from_them_and_edit_only_their_messages() {
        let target = Target::Project(project(false, false, true));
        let act = |hide, owner, msg| ActivityFacts {
            is_owner: owner,
            is_message: msg,
            hide_from_clients: hide,
        };
        let client = actor(Client, false);
        assert!(can_see_activity(&client, &target, &act(false, false, true)));
        assert!(!can_see_activity(&client, &target, &act(true, false, true)));
        assert!(can_see_activity(
            &actor(User, false),
            &target,
            &act(true, false, true)
        ));
        let hidden_project = Target::Project(project(true, false, false));
        assert!(!can_see_activity(
            &actor(User, false),
            &hidden_project,
            &act(false, false, true)
        ));
        assert!(can_edit_activity(&client, &act(false, true, true)));
        assert!(!can_edit_activity(&client, &act(false, true, false)));
        assert!(can_edit_activity(
            &actor(External, false),
            &act(false, true, false)
        ));
        assert!(!can_edit_activity(
            &actor(User, false),
            &act(false, false, true)
        ));
    }

    /// role, canViewProfiles → manage users, see a stranger, edit a stranger, edit self,
    /// write groups.
    #[test]
    fn the_user_and_group_rules_as_a_table() {
        let table = [
            (Admin, false, true, true, true, true, true),
            (User, false, false, false, false, true, true),
            (User, true, false, true, false, true, true),
            (External, false, false, false, false, true, false),
            (External, true, false, true, false, true, false),
            (Client, false, false, false, false, true, false),
            (Client, true, false, true, false, true, false),
        ];
        for (level, cvp, manage, see, edit_other, edit_self, groups) in table {
            let a = actor(level, cvp);
            let case = format!("{level:?} canViewProfiles={cvp}");
            assert_eq!(can_manage_users(&a), manage, "{case}");
            assert_eq!(can_see_user(&a, 2, false), see, "{case}");
            assert!(can_see_user(&a, 1, false), "{case} sees self");
            assert!(can_see_user(&a, 2, true), "{case} sees team-mates");
            assert_eq!(can_edit_user(&a, 2), edit_other, "{case}");
            assert_eq!(can_edit_user(&a, 1), edit_self, "{case}");
            assert_eq!(can_write_groups(&a), groups, "{case}");
        }
    }
}
