//! `staff_sessions`: server-side staff logins, found by the SHA-256 of their
//! cookie token (the token itself is never stored).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;

/// A new login row.
pub struct NewLoginRow<'a> {
    pub token_hash: &'a [u8],
    pub user_id: Uuid,
    pub csrf_token: &'a str,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Stores a login and records the user's last login time.
pub async fn insert(db: &Db, login: NewLoginRow<'_>) -> Result<(), StoreError> {
    let client = db.get().await?;
    client
        .execute(
            "INSERT INTO staff_sessions (token_hash, user_id, csrf_token, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&login.token_hash, &login.user_id, &login.csrf_token, &login.expires_at, &login.ip, &login.user_agent],
        )
        .await?;
    client.execute("UPDATE users SET last_login_at = now() WHERE id = $1", &[&login.user_id]).await?;
    Ok(())
}

/// A valid login, with its user.
pub struct LoginRow {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub csrf_token: String,
    pub last_seen_at: DateTime<Utc>,
}

/// The login with this token hash, if it has not expired, has not been idle
/// longer than `idle_secs`, and its user is not disabled.
pub async fn find_valid(db: &Db, token_hash: &[u8], idle_secs: f64) -> Result<Option<LoginRow>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            "SELECT u.id, u.username, u.role, s.csrf_token, s.last_seen_at, COALESCE(u.display_name, u.username)
             FROM staff_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND NOT u.disabled AND s.expires_at > now()
               AND s.last_seen_at > now() - make_interval(secs => $2)",
            &[&token_hash, &idle_secs],
        )
        .await?;
    Ok(row.map(|r| LoginRow {
        user_id: r.get(0),
        username: r.get(1),
        role: r.get(2),
        csrf_token: r.get(3),
        last_seen_at: r.get(4),
        display_name: r.get(5),
    }))
}

/// The login was used now (keeps it from idling out).
pub async fn touch(db: &Db, token_hash: &[u8]) -> Result<(), StoreError> {
    db.get().await?.execute("UPDATE staff_sessions SET last_seen_at = now() WHERE token_hash = $1", &[&token_hash]).await?;
    Ok(())
}

/// Ends one login.
pub async fn delete(db: &Db, token_hash: &[u8]) -> Result<(), StoreError> {
    db.get().await?.execute("DELETE FROM staff_sessions WHERE token_hash = $1", &[&token_hash]).await?;
    Ok(())
}

/// Ends every login of a user; returns how many there were.
pub async fn delete_all_for(db: &Db, user_id: Uuid) -> Result<u64, StoreError> {
    Ok(db.get().await?.execute("DELETE FROM staff_sessions WHERE user_id = $1", &[&user_id]).await?)
}
