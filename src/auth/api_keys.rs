//! Machine API keys: `chk_` + 256 random bits, shown once at creation; the
//! database keeps a SHA-256 of the key (enough for a secret this long) and an
//! 8-character prefix so admins can tell keys apart.

use anyhow::Context;
use uuid::Uuid;

use crate::postgres::Db;

/// Marks a string as a chathub API key (also helps secret scanners).
pub const KEY_PREFIX: &str = "chk_";
/// Characters of the key kept in clear for display.
const DISPLAY_PREFIX_CHARS: usize = 8;

/// A freshly made key: `secret` is shown to the admin once and never stored.
pub struct NewApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub secret: String,
}

/// Creates and stores a key.
pub async fn create(db: &Db, name: &str, created_by: Option<Uuid>) -> anyhow::Result<NewApiKey> {
    let name = name.trim();
    anyhow::ensure!((1..=100).contains(&name.chars().count()), "a key name must be 1 to 100 characters");
    let secret = format!("{KEY_PREFIX}{}", super::random_token(32));
    let prefix: String = secret.chars().take(KEY_PREFIX.len() + DISPLAY_PREFIX_CHARS).collect();
    let id = Uuid::new_v4();
    db.get()
        .await?
        .execute(
            "INSERT INTO api_keys (id, name, prefix, key_hash, created_by) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &name, &prefix, &super::sha256(&secret), &created_by],
        )
        .await
        .context("storing the API key")?;
    Ok(NewApiKey { id, name: name.to_owned(), prefix, secret })
}
