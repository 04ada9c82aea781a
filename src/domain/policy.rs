//! Who may see and do what (section 8 of the contract), as data.
//!
//! Each role's rule for each kind of object and action is one [`Rule`] value, written in
//! [`rule`] and nowhere else. [`decide`] answers a rule for one object from its facts (the
//! `can_*` functions below go through it); `store::sql` compiles the same values to the
//! SQL conditions of lists and totals.

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

/// A condition on one object, for one caller: what a role may see or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Everything,
    Nothing,
    /// The caller owns the project, task or activity.
    Owner,
    /// The caller is in the team of the project, or of the task's project.
    InProjectTeam,
    /// The caller is in the task's team.
    InTaskTeam,
    /// The project or task is not hidden.
    NotHidden,
    /// The caller sees the task's project by the role's project rule (a single task has
    /// none, and passes); for a project, the project itself.
    ProjectVisible,
    /// The activity is not hidden from clients.
    NotHiddenFromClients,
    /// The caller sees the task or project the activity is posted to.
    TargetVisible,
    /// The activity is a message (type `msg`).
    Message,
    /// The user is the caller.
    Itself,
    /// The user shares a project or task team with the caller.
    TeamMate,
    And(&'static [Rule]),
    Or(&'static [Rule]),
}

impl Rule {
    /// Whether deciding the rule for a task needs the task's project: it names the
    /// project's visibility or team somewhere.
    pub fn needs_project(self) -> bool {
        match self {
            And(all) | Or(all) => all.iter().any(|r| r.needs_project()),
            ProjectVisible | InProjectTeam => true,
            _ => false,
        }
    }

    /// Whether deciding the rule for a task needs the task's team.
    pub fn needs_task_team(self) -> bool {
        match self {
            And(all) | Or(all) => all.iter().any(|r| r.needs_task_team()),
            InTaskTeam => true,
            _ => false,
        }
    }
}

/// What a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Project,
    Task,
    /// An activity, and the files attached to it.
    Activity,
    User,
}

/// What the caller wants to do with the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    See,
    /// Edit or remove.
    Edit,
    /// Create a task in the project.
    AddTask,
    /// Post a progress note to the task.
    PostProgress,
}

use Rule::{
    And, Everything, InProjectTeam, InTaskTeam, Itself, Message, NotHidden, NotHiddenFromClients,
    Nothing, Or, Owner, ProjectVisible, TargetVisible, TeamMate,
};
use SecurityLevel::{Admin, Client, External, User};

/// A user sees a project not hidden, or of which they are owner or in the team.
const USER_SEES_PROJECT: Rule = Or(&[NotHidden, Owner, InProjectTeam]);
const USER_SEES_TASK: Rule = And(&[
    ProjectVisible,
    Or(&[NotHidden, Owner, InTaskTeam, InProjectTeam]),
]);
const USER_EDITS_TASK: Rule = Or(&[Owner, InTaskTeam, InProjectTeam]);
const EXTERNAL_SEES_TASK: Rule = Or(&[Owner, InTaskTeam, InProjectTeam]);
const EXTERNAL_EDITS_TASK: Rule = Or(&[Owner, InTaskTeam]);

/// The users seen by a caller who does not see every user (see [`sees_all_users`]).
pub const SELF_AND_TEAM_MATES: Rule = Or(&[Itself, TeamMate]);

/// Section 8: the one place each rule is written. Roles on the left, actions across:
/// a rule not listed is `Nothing`.
pub fn rule(actor: &Actor, kind: Kind, action: Action) -> Rule {
    use Action::{AddTask, Edit, PostProgress, See};
    match (kind, action, actor.level) {
        (Kind::User, See, _) if sees_all_users(actor) => Everything,
        (Kind::User, See, _) => SELF_AND_TEAM_MATES,
        (Kind::User, Edit, Admin) => Everything,
        (Kind::User, Edit, _) => Itself,

        (_, _, Admin) => Everything,

        (Kind::Project, See, User) => USER_SEES_PROJECT,
        (Kind::Project, See, External) => Or(&[Owner, InProjectTeam]),
        (Kind::Project, See, Client) => InProjectTeam,
        (Kind::Project, Edit, User) => Or(&[Owner, InProjectTeam]),
        (Kind::Project, AddTask, User) => ProjectVisible,
        (Kind::Project, AddTask, External) => InProjectTeam,

        (Kind::Task, See, User) => USER_SEES_TASK,
        (Kind::Task, See, External) => EXTERNAL_SEES_TASK,
        (Kind::Task, See, Client) => InProjectTeam,
        (Kind::Task, Edit, User) => USER_EDITS_TASK,
        (Kind::Task, Edit, External) => EXTERNAL_EDITS_TASK,
        (Kind::Task, PostProgress, User) => And(&[USER_SEES_TASK, USER_EDITS_TASK]),
        (Kind::Task, PostProgress, External) => And(&[EXTERNAL_SEES_TASK, EXTERNAL_EDITS_TASK]),

        (Kind::Activity, See, User | External) => TargetVisible,
        (Kind::Activity, See, Client) => And(&[TargetVisible, NotHiddenFromClients]),
        (Kind::Activity, Edit, User | External) => Owner,
        (Kind::Activity, Edit, Client) => And(&[Owner, Message]),

        _ => Nothing,
    }
}

/// One object and what the policy knows of it, for one caller.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    Project(&'a ProjectFacts),
    Task(&'a TaskFacts),
    /// An activity (or a file, with the facts of its activity); `target` is where it is
    /// posted, when the rule needs it.
    Activity {
        target: Option<&'a Target>,
        facts: &'a ActivityFacts,
    },
    User(&'a UserFacts),
}

/// Whether `rule` holds for `object` and the caller. A condition that does not apply to
/// the kind of object (a task team for a project) does not hold, as in its SQL.
pub fn decide(actor: &Actor, rule: Rule, object: Object<'_>) -> bool {
    let see = |kind| self::rule(actor, kind, Action::See);
    match (rule, object) {
        (Everything, _) => true,
        (Nothing, _) => false,
        (And(all), _) => all.iter().all(|r| decide(actor, *r, object)),
        (Or(any), _) => any.iter().any(|r| decide(actor, *r, object)),

        (Owner, Object::Project(p)) => p.is_owner,
        (Owner, Object::Task(t)) => t.is_owner,
        (Owner, Object::Activity { facts, .. }) => facts.is_owner,
        (InProjectTeam, Object::Project(p)) => p.in_team,
        (InProjectTeam, Object::Task(t)) => t.project.is_some_and(|p| p.in_team),
        (InTaskTeam, Object::Task(t)) => t.in_task_team,
        (NotHidden, Object::Project(p)) => !p.hidden,
        (NotHidden, Object::Task(t)) => !t.hidden,
        (ProjectVisible, Object::Project(_)) => decide(actor, see(Kind::Project), object),
        (ProjectVisible, Object::Task(t)) => t
            .project
            .as_ref()
            .is_none_or(|p| decide(actor, see(Kind::Project), Object::Project(p))),
        (NotHiddenFromClients, Object::Activity { facts, .. }) => !facts.hide_from_clients,
        (Message, Object::Activity { facts, .. }) => facts.is_message,
        (TargetVisible, Object::Activity { target, .. }) => match target {
            Some(Target::Task(t)) => decide(actor, see(Kind::Task), Object::Task(t)),
            Some(Target::Project(p)) => decide(actor, see(Kind::Project), Object::Project(p)),
            None => false,
        },
        (Itself, Object::User(u)) => u.is_self,
        (TeamMate, Object::User(u)) => u.is_team_mate,
        _ => false,
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

/// What the policy needs to know about a user, for one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFacts {
    pub is_self: bool,
    pub is_team_mate: bool,
}

fn user_facts(actor: &Actor, user_id: i64, is_team_mate: bool) -> UserFacts {
    UserFacts {
        is_self: actor.user_id == user_id,
        is_team_mate,
    }
}

/// Whether the caller may see one user.
pub fn can_see_user(actor: &Actor, user_id: i64, is_team_mate: bool) -> bool {
    let u = user_facts(actor, user_id, is_team_mate);
    decide(
        actor,
        rule(actor, Kind::User, Action::See),
        Object::User(&u),
    )
}

/// `can_edit` on a user: admins edit everyone, others their own profile.
pub fn can_edit_user(actor: &Actor, user_id: i64) -> bool {
    let u = user_facts(actor, user_id, false);
    decide(
        actor,
        rule(actor, Kind::User, Action::Edit),
        Object::User(&u),
    )
}

/// Creating, renaming and removing project groups: admins and users.
pub fn can_write_groups(actor: &Actor) -> bool {
    matches!(actor.level, Admin | User)
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

/// Section 8, "see projects".
pub fn can_see_project(a: &Actor, p: &ProjectFacts) -> bool {
    decide(a, rule(a, Kind::Project, Action::See), Object::Project(p))
}

/// Section 8, "edit/remove project" (of a project the caller sees).
pub fn can_edit_project(a: &Actor, p: &ProjectFacts) -> bool {
    decide(a, rule(a, Kind::Project, Action::Edit), Object::Project(p))
}

/// Section 8, "create project, group, single task".
pub fn can_create_project(a: &Actor) -> bool {
    matches!(a.level, Admin | User)
}

/// Section 8, "create task in a project".
pub fn can_create_task_in(a: &Actor, p: &ProjectFacts) -> bool {
    decide(
        a,
        rule(a, Kind::Project, Action::AddTask),
        Object::Project(p),
    )
}

/// Whether the caller sees every task (an admin): nothing to check task by task.
pub fn sees_every_task(a: &Actor) -> bool {
    rule(a, Kind::Task, Action::See) == Everything
}

/// Whether seeing or editing a task, for this caller, depends on its project; when it
/// does not (an admin), the project need not be read.
pub fn task_needs_project(a: &Actor) -> bool {
    rule(a, Kind::Task, Action::See).needs_project()
        || rule(a, Kind::Task, Action::Edit).needs_project()
}

/// Whether deciding if the caller sees or edits a task needs the task's team.
pub fn task_needs_team(a: &Actor) -> bool {
    rule(a, Kind::Task, Action::See).needs_task_team()
        || rule(a, Kind::Task, Action::Edit).needs_task_team()
}

/// Section 8, "see tasks".
pub fn can_see_task(a: &Actor, t: &TaskFacts) -> bool {
    decide(a, rule(a, Kind::Task, Action::See), Object::Task(t))
}

/// Section 8, "edit/remove task" (of a task the caller sees).
pub fn can_edit_task(a: &Actor, t: &TaskFacts) -> bool {
    decide(a, rule(a, Kind::Task, Action::Edit), Object::Task(t))
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
    let object = Object::Activity {
        target: Some(target),
        facts: act,
    };
    decide(a, rule(a, Kind::Activity, Action::See), object)
}

/// Section 8, "post a message": wherever the caller sees the target.
pub fn can_post_message(a: &Actor, target: &Target) -> bool {
    can_see_target(a, target)
}

/// Section 8, "post a progress note".
pub fn can_post_progress(a: &Actor, t: &TaskFacts) -> bool {
    decide(
        a,
        rule(a, Kind::Task, Action::PostProgress),
        Object::Task(t),
    )
}

/// Section 8, "edit/remove activity, file" (of one the caller sees).
pub fn can_edit_activity(a: &Actor, act: &ActivityFacts) -> bool {
    let object = Object::Activity {
        target: None,
        facts: act,
    };
    decide(a, rule(a, Kind::Activity, Action::Edit), object)
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

    fn leaves(rule: Rule, out: &mut Vec<Rule>) {
        match rule {
            And(all) | Or(all) => all.iter().for_each(|r| leaves(*r, out)),
            leaf => out.push(leaf),
        }
    }

    fn every_rule() -> Vec<(Actor, Kind, Action, Rule)> {
        let mut out = Vec::new();
        for level in SecurityLevel::ALL {
            for cvp in [false, true] {
                let a = actor(level, cvp);
                for kind in [Kind::Project, Kind::Task, Kind::Activity, Kind::User] {
                    for action in [
                        Action::See,
                        Action::Edit,
                        Action::AddTask,
                        Action::PostProgress,
                    ] {
                        out.push((a, kind, action, rule(&a, kind, action)));
                    }
                }
            }
        }
        out
    }

    /// `decide` and the SQL compiler follow `ProjectVisible` and `TargetVisible` into the
    /// project and task rules: those must not lead back, and an activity's edit rule is
    /// decided without its target.
    #[test]
    fn rules_that_others_refer_to_do_not_refer_back() {
        for (a, kind, action, r) in every_rule() {
            let mut found = Vec::new();
            leaves(r, &mut found);
            let case = format!("{:?} {kind:?} {action:?}: {r:?}", a.level);
            if kind == Kind::Project && action == Action::See {
                assert!(!found.contains(&ProjectVisible), "{case}");
            }
            if matches!(kind, Kind::Project | Kind::Task) {
                assert!(!found.contains(&TargetVisible), "{case}");
            }
            if kind == Kind::Activity && action == Action::Edit {
                assert!(!found.contains(&TargetVisible), "{case}");
            }
        }
    }

    /// Each condition, on each kind of object: where it does not apply it does not hold.
    #[test]
    fn each_condition_on_each_kind_of_object() {
        let a = actor(User, false);
        let p = project(true, true, true);
        let shown = project(false, false, false);
        let t = TaskFacts {
            hidden: false,
            is_owner: true,
            in_task_team: true,
            project: Some(project(true, false, true)),
        };
        let single = TaskFacts {
            hidden: true,
            is_owner: false,
            in_task_team: false,
            project: None,
        };
        let act = ActivityFacts {
            is_owner: true,
            is_message: true,
            hide_from_clients: false,
        };
        let on_task = Target::Task(t);
        let u = UserFacts {
            is_self: true,
            is_team_mate: true,
        };
        let objects = [
            Object::Project(&p),
            Object::Project(&shown),
            Object::Task(&t),
            Object::Task(&single),
            Object::Activity {
                target: Some(&on_task),
                facts: &act,
            },
            Object::Activity {
                target: None,
                facts: &act,
            },
            Object::User(&u),
        ];
        // Project, shown project, task, single task, activity, activity without its
        // target, user.
        let table: [(Rule, [bool; 7]); 14] = [
            (Everything, [true; 7]),
            (Nothing, [false; 7]),
            (Owner, [true, false, true, false, true, true, false]),
            (
                InProjectTeam,
                [true, false, true, false, false, false, false],
            ),
            (InTaskTeam, [false, false, true, false, false, false, false]),
            (NotHidden, [false, true, true, false, false, false, false]),
            (
                ProjectVisible,
                [true, true, true, true, false, false, false],
            ),
            (
                NotHiddenFromClients,
                [false, false, false, false, true, true, false],
            ),
            (
                TargetVisible,
                [false, false, false, false, true, false, false],
            ),
            (Message, [false, false, false, false, true, true, false]),
            (Itself, [false, false, false, false, false, false, true]),
            (TeamMate, [false, false, false, false, false, false, true]),
            (
                And(&[Owner, NotHidden]),
                [false, false, true, false, false, false, false],
            ),
            (
                Or(&[Owner, NotHidden]),
                [true, true, true, false, true, true, false],
            ),
        ];
        for (r, expected) in table {
            for (object, want) in objects.iter().zip(expected) {
                assert_eq!(decide(&a, r, *object), want, "{r:?} on {object:?}");
            }
        }
    }

    #[test]
    fn single_tasks_follow_only_their_own_facts() {
        let single = |hidden, owner, team| TaskFacts {
            hidden,
            is_owner: owner,
            in_task_team: team,
            project: None,
        };
        assert!(can_see_task(
            &actor(User, false),
            &single(false, false, false)
        ));
        assert!(!can_see_task(
            &actor(User, false),
            &single(true, false, false)
        ));
        assert!(can_see_task(
            &actor(User, false),
            &single(true, false, true)
        ));
        assert!(!can_see_task(
            &actor(External, false),
            &single(false, false, false)
        ));
        assert!(can_see_task(
            &actor(External, false),
            &single(true, true, false)
        ));
        assert!(!can_see_task(
            &actor(Client, false),
            &single(false, true, true)
        ));
        assert!(can_see_task(
            &actor(Admin, false),
            &single(true, false, false)
        ));
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
