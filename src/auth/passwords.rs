//! argon2id password hashing with the RustCrypto defaults (m = 19 MiB, t = 2,
//! p = 1: the OWASP minimum). Hashing costs ~tens of ms of CPU, so it always
//! runs on the blocking pool, never on an async worker.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    BadLength,
    #[error("hashing failed: {0}")]
    Hash(String),
}

pub fn validate(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(PasswordError::BadLength)
    }
}

/// Hashes a password to a PHC string (salt chosen by argon2).
pub async fn hash(password: String) -> Result<String, PasswordError> {
    validate(&password)?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Checks a password against a stored PHC string. With no stored hash (an
/// unknown user) it verifies against a fixed dummy hash, so the answer takes
/// the same time either way and does not reveal which usernames exist.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let ok = Argon2::default().verify_password(password.as_bytes(), phc.as_str()).is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, made once, for unknown-user timing parity.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(super::random_token(24).as_bytes())
            .expect("hashing a random password")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(phc.clone())).await);
        assert!(!verify("wrong horse!".into(), Some(phc)).await);
        assert!(!verify("correct horse".into(), None).await);
    }

    #[tokio::test]
    async fn short_passwords_are_refused() {
        assert!(matches!(hash("short".into()).await, Err(PasswordError::BadLength)));
    }
}
