//! The 5pm domain: typed values, validation and the access policy. No I/O here.

pub mod password;
pub mod policy;
pub mod token;
pub mod user;
pub mod validate;
pub mod work;
pub mod workspace;

/// The workspace every row belongs to (section 12 of the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkspaceId(pub i64);

impl WorkspaceId {
    /// The one workspace used while no base domain is configured.
    pub const DEFAULT: WorkspaceId = WorkspaceId(1);
}

/// Seconds since the Unix epoch, UTC: how every date is stored.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
