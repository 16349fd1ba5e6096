//! Standard Webhooks signatures (what Svix, and so Resend, sign with; our
//! n8n deliveries use the same scheme): `v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`. A secret of the form `whsec_<base64>` is
//! used as the standard says (the decoded bytes); any other secret as raw
//! bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a webhook's timestamp may be from our clock (replays older than
/// this are refused).
pub const TOLERANCE_SECS: i64 = 5 * 60;

pub fn secret_bytes(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// `v1,<signature>` of one message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret_bytes(secret)).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the svix-id, svix-timestamp or svix-signature header is missing")]
    MissingHeaders,
    #[error("the timestamp is not within 5 minutes of now")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Checks a delivery: the timestamp within `TOLERANCE_SECS` of `now`, and
/// any of the space-separated `v1,…` signatures matching (compared in
/// constant time; other versions are ignored, as the standard says).
pub fn verify(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &[u8], now: i64) -> Result<(), Refused> {
    if id.is_empty() || timestamp.is_empty() || signatures.is_empty() {
        return Err(Refused::MissingHeaders);
    }
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| Refused::Stale)?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(Refused::Stale);
    }
    let expected = sign(secret, id, timestamp, body);
    let matched = signatures
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .fold(false, |found, candidate| found | bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())));
    if matched { Ok(()) } else { Err(Refused::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signing_matches_the_standard_webhooks_test_vector() {
        assert_eq!(sign(SECRET, ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn verification_accepts_the_vector_among_several_and_refuses_the_rest() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(verify(SECRET, ID, &ts, SIGNATURE, BODY, TIMESTAMP), Ok(()));
        let several = format!("v2,abc v1,bm9wZQ== {SIGNATURE}");
        assert_eq!(verify(SECRET, ID, &ts, &several, BODY, TIMESTAMP + 299), Ok(()));
        assert_eq!(verify(SECRET, ID, &ts, SIGNATURE, BODY, TIMESTAMP + 301), Err(Refused::Stale));
        assert_eq!(verify(SECRET, ID, &ts, SIGNATURE, BODY, TIMESTAMP - 301), Err(Refused::Stale));
        assert_eq!(verify(SECRET, ID, &ts, SIGNATURE, br#"{"test": 1}"#, TIMESTAMP), Err(Refused::Mismatch));
        assert_eq!(verify(SECRET, "msg_other", &ts, SIGNATURE, BODY, TIMESTAMP), Err(Refused::Mismatch));
        assert_eq!(verify(SECRET, ID, &ts, "v1,g0hM9SsE", BODY, TIMESTAMP), Err(Refused::Mismatch));
        assert_eq!(verify(SECRET, ID, "", SIGNATURE, BODY, TIMESTAMP), Err(Refused::MissingHeaders));
        assert_eq!(verify(SECRET, ID, "soon", SIGNATURE, BODY, TIMESTAMP), Err(Refused::Stale));
    }
}
