//! Validation of the values the contract bounds (section 6).

/// Why a value was refused: a code for machines and a message for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
        }
    }
}

/// A name: 1 to 255 characters after trimming.
pub fn name(raw: &str) -> Result<String, Invalid> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new("required", "is required"));
    }
    max_chars(trimmed, 255)?;
    Ok(trimmed.to_owned())
}

/// Text of at most `max` characters.
pub fn max_chars(text: &str, max: usize) -> Result<(), Invalid> {
    if text.chars().count() > max {
        return Err(Invalid::new(
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Text without control characters (C0, DEL, C1, tabs and line breaks included).
pub fn no_control_chars(text: &str) -> Result<(), Invalid> {
    if text.chars().any(char::is_control) {
        return Err(Invalid::new(
            "invalid",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// An email address: trimmed, at most 254 characters, one `@` with text on both sides,
/// no spaces. Stored as given; compared case-insensitively.
pub fn email(raw: &str) -> Result<String, Invalid> {
    let e = raw.trim();
    if e.is_empty() {
        return Err(Invalid::new("required", "is required"));
    }
    let ok = e.chars().count() <= 254
        && !e.chars().any(char::is_whitespace)
        && matches!(e.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if !ok {
        return Err(Invalid::new("invalid", "is not a valid email address"));
    }
    Ok(e.to_owned())
}

/// A password: 8 to 1,024 characters.
pub fn password(raw: &str) -> Result<(), Invalid> {
    let n = raw.chars().count();
    if n < 8 {
        return Err(Invalid::new("too_short", "must be at least 8 characters"));
    }
    if n > 1024 {
        return Err(Invalid::new("too_long", "must be at most 1024 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Site ").unwrap(), "Site");
        assert_eq!(name("   ").unwrap_err().code, "required");
        assert!(name(&"é".repeat(255)).is_ok());
        assert_eq!(name(&"x".repeat(256)).unwrap_err().code, "too_long");
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Ann@Example.com ").unwrap(), "Ann@Example.com");
        for bad in ["ann", "@x.y", "ann@", "a b@c.d", "a@b@c", "a@.c", "a@c."] {
            assert_eq!(email(bad).unwrap_err().code, "invalid", "{bad}");
        }
        assert_eq!(email("").unwrap_err().code, "required");
    }

    #[test]
    fn passwords() {
        assert!(password("12345678").is_ok());
        assert!(password("1234567").is_err());
        assert!(password(&"p".repeat(1024)).is_ok());
        assert!(password(&"p".repeat(1025)).is_err());
    }
}
