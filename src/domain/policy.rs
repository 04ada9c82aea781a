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

#[cfg(test)]
mod tests {
    use super::*;
    use SecurityLevel::*;

    fn actor(level: SecurityLevel, can_view_profiles: bool) -> Actor {
        Actor {
            user_id: 1,
            level,
            can_view_profiles,
        }
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
