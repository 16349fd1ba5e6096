//! Staff identity and access: password hashing, server-side login sessions,
//! login throttling, API keys, users, and the access rules with the CSRF
//! defence that guard every route.

pub mod access;
pub mod api_keys;
pub mod passwords;
pub mod staff_sessions;
pub mod throttle;
pub mod users;

/// `n` random bytes from the OS CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a secret, for storing tokens and keys at rest.
pub fn sha256(secret: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes()).into()
}
