//! Machine API keys: `chk_` + 256 random bits, shown once at creation; the
//! database keeps a SHA-256 of the key (enough for a secret this long) and an
//! 8-character prefix so admins can tell keys apart.

use anyhow::Context;
use uuid::Uuid;

use crate::postgres::Db;
use crate::store;

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

/// What a key name must be.
pub const NAME_RULE: &str = "a key name must be 1 to 100 characters";

pub fn valid_name(name: &str) -> bool {
    (1..=100).contains(&name.trim().chars().count())
}

/// Creates and stores a key.
pub async fn create(db: &Db, name: &str, created_by: Option<Uuid>) -> anyhow::Result<NewApiKey> {
    anyhow::ensure!(valid_name(name), NAME_RULE);
    let name = name.trim();
    let secret = format!("{KEY_PREFIX}{}", super::random_token(32));
    let prefix: String = secret.chars().take(KEY_PREFIX.len() + DISPLAY_PREFIX_CHARS).collect();
    let id = Uuid::new_v4();
    store::users::insert_api_key(db, id, name, &prefix, &super::sha256(&secret), created_by)
        .await
        .context("storing the API key")?;
    Ok(NewApiKey { id, name: name.to_owned(), prefix, secret })
}

/// The key's id and name if `secret` is a live (unrevoked) key. Only the
/// hash is looked up, so the comparison never touches the secret itself.
pub async fn verify(db: &Db, secret: &str) -> anyhow::Result<Option<(Uuid, String)>> {
    if !secret.starts_with(KEY_PREFIX) {
        return Ok(None);
    }
    Ok(store::users::use_api_key(db, &super::sha256(secret)).await?)
}
