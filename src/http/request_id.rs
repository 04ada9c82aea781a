//! `X-Request-Id`: every answer carries one, and the request's log line names it. A
//! client's own id is kept when it is sane; otherwise the server makes one.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

/// The header, in requests and answers.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id kept from a client.
pub const MAX_LEN: usize = 128;

/// A request's id, as the request's extensions carry it to the handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Only ASCII letters, digits and `._-` are ever kept or made.
        self.0.to_str().unwrap_or("")
    }
}

/// The client's id when it is 1 to 128 characters of `[A-Za-z0-9._-]` (and the request
/// names exactly one); a new random one otherwise: 32 hexadecimal digits, 128 bits.
pub fn choose(headers: &HeaderMap) -> RequestId {
    let mut sent = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(value), None) = (sent.next(), sent.next()) {
        if is_sane(value.as_bytes()) {
            return RequestId(value.clone());
        }
    }
    RequestId(made())
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn made() -> HeaderValue {
    let id = hex::encode(rand::random::<u128>().to_be_bytes());
    HeaderValue::from_str(&id).expect("hexadecimal digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(values: &[&[u8]]) -> String {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(&X_REQUEST_ID, HeaderValue::from_bytes(v).unwrap());
        }
        choose(&headers).as_str().to_owned()
    }

    #[test]
    fn a_sane_id_is_kept_and_any_other_replaced() {
        assert_eq!(chosen(&[b"abc-123_X.y"]), "abc-123_X.y");
        let long = "a".repeat(MAX_LEN);
        assert_eq!(chosen(&[long.as_bytes()]), long);
        for insane in [
            "a".repeat(MAX_LEN + 1).as_bytes(),
            b"has space".as_slice(),
            b"tab\there",
            b"semi;colon",
            b"",
            "caf\u{e9}".as_bytes(),
        ] {
            let id = chosen(&[insane]);
            assert_eq!(id.len(), 32, "{insane:?} -> {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(chosen(&[b"one", b"two"]).len(), 32, "two ids: neither");
        assert_ne!(chosen(&[]), chosen(&[]));
    }
}
