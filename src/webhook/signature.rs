//! HMAC-SHA256 signatures over the exact raw body, and constant-time token comparison.
//!
//! Zoho: `X-Zoho-Signature: sha256=<hex>` (a bare hex is accepted too). Moodle: `X-Moodle-Signature: <hex>`
//! (a `sha256=` prefix is accepted too). Hex is case-insensitive. Comparison is constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error(
        "the signature header is not hex-encoded HMAC-SHA256 (expected `sha256=<64 hex digits>` or `<64 hex digits>`)"
    )]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The hex HMAC-SHA256 of `body` under `secret` (what a sender puts in the header).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Verifies a signature header value (`None` when the header is absent) against the body.
pub fn verify(secret: &Secret, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let value = header.map(str::trim).filter(|v| !v.is_empty()).ok_or(SignatureError::Missing)?;
    let hex_part = match value.split_once('=') {
        Some((algo, rest)) if algo.trim().eq_ignore_ascii_case("sha256") => rest.trim(),
        Some(_) => return Err(SignatureError::Malformed),
        None => value,
    };
    let given = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| SignatureError::Mismatch)
}

/// Compares a shared token (Zoho Notification API `token`) with the configured one in constant time.
/// Lengths may leak, contents do not.
pub fn token_matches(expected: &Secret, given: &str) -> bool {
    let (a, b) = (expected.expose().as_bytes(), given.as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"event_id":"e1","module":"BTEC_Students","record_id":"1"}"#;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn both_header_forms_and_any_case() {
        let s = Secret::new("k3y");
        let hex = sign("k3y", BODY);
        assert_eq!(verify(&s, BODY, Some(&hex)), Ok(()));
        assert_eq!(verify(&s, BODY, Some(&format!("sha256={hex}"))), Ok(()));
        assert_eq!(verify(&s, BODY, Some(&format!("SHA256={}", hex.to_uppercase()))), Ok(()));
        assert_eq!(verify(&s, BODY, Some(&format!("  {hex} "))), Ok(()));
    }

    #[test]
    fn wrong_absent_and_malformed() {
        let s = Secret::new("k3y");
        let other = sign("other", BODY);
        assert_eq!(verify(&s, BODY, Some(&other)), Err(SignatureError::Mismatch));
        assert_eq!(verify(&s, b"tampered", Some(&sign("k3y", BODY))), Err(SignatureError::Mismatch));
        assert_eq!(verify(&s, BODY, None), Err(SignatureError::Missing));
        assert_eq!(verify(&s, BODY, Some("")), Err(SignatureError::Missing));
        assert_eq!(verify(&s, BODY, Some("sha256=zz")), Err(SignatureError::Malformed));
        assert_eq!(verify(&s, BODY, Some("md5=abcd")), Err(SignatureError::Malformed));
        assert_eq!(verify(&s, BODY, Some(&sign("k3y", BODY)[..62])), Err(SignatureError::Malformed));
    }

    #[test]
    fn tokens() {
        let s = Secret::new("tok");
        assert!(token_matches(&s, "tok"));
        assert!(!token_matches(&s, "tok2"));
        assert!(!token_matches(&s, "tak"));
        assert!(!token_matches(&s, ""));
    }
}
