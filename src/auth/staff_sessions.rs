//! Server-side staff login sessions. The cookie holds a random 256-bit
//! token; the database holds only its SHA-256, the user, a CSRF token and the
//! expiry clocks. A new session per login (no fixation), idle and absolute
//! expiry, and logout or disabling the user ends sessions at once (the row is
//! gone, so the next request is refused).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::Role;
use crate::postgres::Db;
use crate::store::staff_logins::{self, NewLoginRow};

/// Cookie name over plain HTTP (local use, tests).
pub const COOKIE: &str = "chathub_session";
/// Cookie name over HTTPS: the `__Host-` prefix pins it to this host and path.
pub const SECURE_COOKIE: &str = "__Host-chathub_session";
/// Header carrying the CSRF token on state-changing browser requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// `last_seen_at` is refreshed at most this often (saves a write per request).
const TOUCH_EVERY_SECS: i64 = 60;

/// A signed-in staff member.
#[derive(Debug, Clone)]
pub struct StaffUser {
    pub user_id: Uuid,
    pub username: String,
    /// What their messages are signed with (the username unless set).
    pub display_name: String,
    pub role: Role,
    pub csrf_token: String,
}

impl StaffUser {
    /// How their messages are signed.
    pub fn author(&self) -> crate::domain::Author {
        crate::domain::Author { id: self.user_id, name: self.display_name.clone() }
    }
}

/// A new login: the cookie value (shown once) and the CSRF token.
pub struct NewLogin {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Idle and absolute lifetimes of a login.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Lifetimes {
    /// `STAFF_SESSION_IDLE_MINUTES` and `STAFF_SESSION_MAX_HOURS` (at least 1 each).
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            idle: Duration::minutes(config.staff_session_idle_minutes.max(1)),
            absolute: Duration::hours(config.staff_session_max_hours.max(1)),
        }
    }
}

pub async fn create(
    db: &Db,
    user_id: Uuid,
    lifetimes: Lifetimes,
    ip: Option<String>,
    user_agent: Option<String>,
) -> anyhow::Result<NewLogin> {
    let token = super::random_token(32);
    let csrf_token = super::random_token(24);
    let expires_at = Utc::now() + lifetimes.absolute;
    let token_hash = super::sha256(&token);
    let row = NewLoginRow { token_hash: &token_hash, user_id, csrf_token: &csrf_token, expires_at, ip, user_agent };
    staff_logins::insert(db, row).await?;
    Ok(NewLogin { token, csrf_token, expires_at })
}

/// The user behind a cookie token, if the login is still valid: not expired
/// (absolute), not idle too long, user not disabled.
pub async fn lookup(db: &Db, token: &str, lifetimes: Lifetimes) -> anyhow::Result<Option<StaffUser>> {
    let hash = super::sha256(token);
    let Some(row) = staff_logins::find_valid(db, &hash, lifetimes.idle.num_seconds() as f64).await? else {
        return Ok(None);
    };
    if Utc::now() - row.last_seen_at > Duration::seconds(TOUCH_EVERY_SECS) {
        staff_logins::touch(db, &hash).await?;
    }
    Ok(Some(StaffUser {
        user_id: row.user_id,
        username: row.username,
        display_name: row.display_name,
        role: row.role.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        csrf_token: row.csrf_token,
    }))
}

/// Ends one login.
pub async fn end(db: &Db, token: &str) -> anyhow::Result<()> {
    Ok(staff_logins::delete(db, &super::sha256(token)).await?)
}

/// Ends every login of a user (disabled, role changed, password reset).
pub async fn end_all_for(db: &Db, user_id: Uuid) -> anyhow::Result<u64> {
    Ok(staff_logins::delete_all_for(db, user_id).await?)
}
