//! Users and their security levels.

/// The four roles of 5pm, by their `securityLevel` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityLevel {
    Admin,
    User,
    External,
    Client,
}

impl SecurityLevel {
    pub const ALL: [SecurityLevel; 4] = [
        SecurityLevel::Admin,
        SecurityLevel::User,
        SecurityLevel::External,
        SecurityLevel::Client,
    ];

    pub fn code(self) -> i64 {
        match self {
            SecurityLevel::Admin => 0,
            SecurityLevel::User => 100,
            SecurityLevel::External => 150,
            SecurityLevel::Client => 200,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The names the command line uses: admin, user, external, client.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "admin" => Some(SecurityLevel::Admin),
            "user" => Some(SecurityLevel::User),
            "external" => Some(SecurityLevel::External),
            "client" => Some(SecurityLevel::Client),
            _ => None,
        }
    }
}

/// A user as stored, without its password hash.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub profile: Profile,
    pub security_level: SecurityLevel,
    pub can_view_profiles: bool,
    /// False once removed: it cannot sign in but stays as owner and author.
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Raised by every write; answers carry it as their ETag.
    pub version: i64,
}

impl User {
    /// The name mail and pages show: first and last name, else the email.
    pub fn display_name(&self) -> String {
        let name = [&self.profile.first_name, &self.profile.last_name]
            .iter()
            .filter_map(|p| p.as_deref())
            .collect::<Vec<_>>()
            .join(" ");
        if name.trim().is_empty() {
            self.email.clone()
        } else {
            name
        }
    }
}

/// The free-text attributes of a user, each optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub address: Option<String>,
    pub work_phone: Option<String>,
    pub cell_phone: Option<String>,
    pub company: Option<String>,
    pub comment: Option<String>,
    pub avatar: Option<String>,
}

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub profile: Profile,
    pub security_level: SecurityLevel,
    pub can_view_profiles: bool,
}

/// A partial update: `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub password_hash: Option<String>,
    /// Each attribute: `None` keeps, `Some(None)` clears, `Some(Some(v))` sets.
    pub title: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub address: Option<Option<String>>,
    pub work_phone: Option<Option<String>>,
    pub cell_phone: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub comment: Option<Option<String>>,
    pub avatar: Option<Option<String>>,
    pub security_level: Option<SecurityLevel>,
    pub can_view_profiles: Option<bool>,
}

impl UserPatch {
    /// A new password or security level ends the user's other sessions: they were opened
    /// under the old password, or grant what the old level allowed.
    pub fn ends_sessions(&self, current: &User) -> bool {
        self.password_hash.is_some()
            || self
                .security_level
                .is_some_and(|level| level != current.security_level)
    }

    /// Applies the patch to a copy of `user`, as the store will.
    pub fn apply(&self, user: &User) -> User {
        let mut u = user.clone();
        let p = &mut u.profile;
        let set = |slot: &mut Option<String>, v: &Option<Option<String>>| {
            if let Some(v) = v {
                *slot = v.clone();
            }
        };
        set(&mut p.title, &self.title);
        set(&mut p.first_name, &self.first_name);
        set(&mut p.last_name, &self.last_name);
        set(&mut p.address, &self.address);
        set(&mut p.work_phone, &self.work_phone);
        set(&mut p.cell_phone, &self.cell_phone);
        set(&mut p.company, &self.company);
        set(&mut p.comment, &self.comment);
        set(&mut p.avatar, &self.avatar);
        if let Some(e) = &self.email {
            u.email = e.clone();
        }
        if let Some(l) = self.security_level {
            u.security_level = l;
        }
        if let Some(c) = self.can_view_profiles {
            u.can_view_profiles = c;
        }
        u
    }
}

/// Whether changing `current` into `next` (`None`: removing it) takes an active admin
/// away: refused when no other active admin is left, so a workspace always keeps one.
pub fn takes_an_admin_away(current: &User, next: Option<&User>) -> bool {
    current.active
        && current.security_level == SecurityLevel::Admin
        && next.is_none_or(|n| n.security_level != SecurityLevel::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_codes_round_trip() {
        for l in SecurityLevel::ALL {
            assert_eq!(SecurityLevel::from_code(l.code()), Some(l));
        }
        assert_eq!(SecurityLevel::from_code(50), None);
        assert_eq!(
            SecurityLevel::from_name("External"),
            Some(SecurityLevel::External)
        );
        assert_eq!(SecurityLevel::from_name("root"), None);
    }

    #[test]
    fn only_demoting_or_removing_an_active_admin_takes_an_admin_away() {
        use SecurityLevel::{Admin, Client, External, User as Member};
        // (active, level now, level after or removed) -> takes an admin away
        let table = [
            (true, Admin, None, true),
            (true, Admin, Some(Member), true),
            (true, Admin, Some(Client), true),
            (true, Admin, Some(Admin), false),
            (false, Admin, None, false),
            (false, Admin, Some(Member), false),
            (true, Member, None, false),
            (true, Member, Some(Admin), false),
            (true, External, Some(Client), false),
        ];
        for (active, level, after, takes) in table {
            let current = super::User {
                id: 1,
                email: "a@b.c".into(),
                profile: Profile::default(),
                security_level: level,
                can_view_profiles: true,
                active,
                created_at: 0,
                updated_at: 0,
                version: 1,
            };
            let next = after.map(|l| super::User {
                security_level: l,
                ..current.clone()
            });
            assert_eq!(
                takes_an_admin_away(&current, next.as_ref()),
                takes,
                "{active} {level:?} {after:?}"
            );
        }
    }
}
