//! Workspaces (section 12 of the contract): what a workspace name may be, and which name
//! a request's host asks for under the base domain.

/// The name of the workspace made on first start, served when no base domain is set.
pub const DEFAULT_NAME: &str = "default";

/// A workspace as listed by `vesper workspace list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: super::WorkspaceId,
    pub name: String,
    pub created_at: i64,
}

/// A workspace name: lower-case letters, digits and hyphens, 1 to 63 characters (one DNS
/// label, so that `NAME.<base domain>` is a host name).
pub fn name(text: &str) -> Result<&str, &'static str> {
    if text.is_empty() || text.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may hold only lower-case letters, digits and hyphens");
    }
    Ok(text)
}

/// The workspace name a host asks for: `NAME.<base domain>`, with the port dropped, in any
/// case, and a trailing dot allowed. `base_domain` is lower case without a leading dot.
/// Anything else (the base domain alone, a deeper name, an address) asks for none.
pub fn name_in_host(host: &str, base_domain: &str) -> Option<String> {
    let host = without_port(host)?.trim_end_matches('.');
    let split = host.len().checked_sub(base_domain.len() + 1)?;
    let (label, rest) = host.split_at_checked(split)?;
    let rest = rest.strip_prefix('.')?;
    if !rest.eq_ignore_ascii_case(base_domain) {
        return None;
    }
    let label = label.to_ascii_lowercase();
    name(&label).ok()?;
    Some(label)
}

/// `host[:port]`; a bracketed IPv6 address has no workspace in it.
fn without_port(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        return None;
    }
    Some(host.split_once(':').map_or(host, |(h, _)| h))
}

/// A base domain as configured: lower case, without a leading or trailing dot.
pub fn base_domain(text: &str) -> Result<String, &'static str> {
    let domain = text.trim().trim_matches('.').to_ascii_lowercase();
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if domain.is_empty() || domain.len() > 253 - 64 || !labels_ok {
        return Err("must be a host name such as vesper.example.com");
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "acme", "acme-2", "0", &"x".repeat(63)] {
            assert_eq!(name(ok), Ok(ok), "{ok}");
        }
        for bad in ["", "Acme", "acme_2", "a.b", "ä", " a", &"x".repeat(64)] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        let base = "vesper.example";
        #[rustfmt::skip]
        let cases = [
            ("acme.vesper.example", Some("acme")),
            ("ACME.Vesper.Example:8443", Some("acme")),
            ("acme.vesper.example.", Some("acme")),
            ("acme-2.vesper.example:443", Some("acme-2")),
            ("vesper.example", None),
            (".vesper.example", None),
            ("a.b.vesper.example", None),
            ("acme.vesper.example.org", None),
            ("acmevesper.example", None),
            ("acme_x.vesper.example", None),
            ("127.0.0.1:8443", None),
            ("[::1]:8443", None),
            ("", None),
        ];
        for (host, want) in cases {
            assert_eq!(name_in_host(host, base).as_deref(), want, "{host}");
        }
    }

    #[test]
    fn base_domains() {
        assert_eq!(base_domain(" Vesper.Example. ").unwrap(), "vesper.example");
        for bad in ["", ".", "a..b", "a b", "a/b", "*.vesper.example"] {
            assert!(base_domain(bad).is_err(), "{bad}");
        }
    }
}
