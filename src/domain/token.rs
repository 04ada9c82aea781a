//! Personal API tokens (docs/tokens.md): what a token is, its scope, its secret and the
//! rules of its name. No I/O here.

use base64::Engine;
use rand::RngCore;

use crate::domain::password;
use crate::domain::validate::{self, Invalid};

/// What every token secret starts with, so that it can be told from a session id at the
/// door and recognised by secret scanners in the wild.
pub const PREFIX: &str = "vsp_";

/// The longest token name, in characters (after trimming).
pub const MAX_NAME: usize = 100;

/// The most tokens one user may hold at once.
pub const MAX_PER_USER: i64 = 100;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every read (and signOut); any write is 403.
    Read,
    /// Whatever its user may do, but make tokens.
    Write,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    /// `read` or `write`, exactly (lower case, as answered).
    pub fn from_name(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        }
    }
}

/// A token as stored, without its secret (which is never stored) or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub scope: Scope,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl Token {
    /// Whether the token no longer authenticates at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }
}

/// A token to store: everything but its id, and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub user_id: i64,
    pub name: String,
    pub scope: Scope,
    pub token_hash: Vec<u8>,
    pub expires_at: Option<i64>,
}

/// A new secret, `vsp_` and 256 random bits in base64url without padding, and the hash
/// that is stored for it (the SHA-256 sessions use).
pub fn new_secret() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash(&secret);
    (secret, hash)
}

/// What the store keeps of a secret, and looks it up by.
pub fn hash(secret: &str) -> Vec<u8> {
    password::session_hash(secret)
}

/// Whether a credential is a token's secret rather than a session id.
pub fn is_secret(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

/// A token's name: 1 to [`MAX_NAME`] characters after trimming, none of them a control
/// character (it is shown in lists, one per line).
pub fn name(raw: &str) -> Result<String, Invalid> {
    let trimmed = validate::name(raw)?;
    validate::max_chars(&trimmed, MAX_NAME)?;
    validate::no_control_chars(&trimmed)?;
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_long_random_and_hashed() {
        let (a, ha) = new_secret();
        let (b, _) = new_secret();
        assert_ne!(a, b);
        assert!(is_secret(&a));
        let body = a.strip_prefix(PREFIX).unwrap();
        assert_eq!(body.len(), 43, "256 bits in base64url without padding");
        assert!(body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(ha, hash(&a));
        assert_eq!(ha.len(), 32);
        assert!(!is_secret("AbCd"));
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(name("  ci deploy ").unwrap(), "ci deploy");
        assert_eq!(name(" ").unwrap_err().code, "required");
        assert!(name(&"é".repeat(100)).is_ok());
        assert_eq!(name(&"x".repeat(101)).unwrap_err().code, "too_long");
        assert_eq!(name("a\tb").unwrap_err().code, "invalid");
        assert_eq!(name("a\u{85}b").unwrap_err().code, "invalid");
    }

    #[test]
    fn scopes_are_read_or_write() {
        assert_eq!(Scope::from_name("read"), Some(Scope::Read));
        assert_eq!(Scope::from_name("write"), Some(Scope::Write));
        assert_eq!(Scope::from_name("admin"), None);
        assert_eq!(Scope::from_name("READ"), None);
        assert_eq!(Scope::Write.name(), "write");
    }
}
