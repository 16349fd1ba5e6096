//! `users` and `api_keys`: staff accounts and machine keys. Passwords arrive
//! here already hashed (argon2id PHC strings) and keys as SHA-256 digests;
//! no secret in clear ever reaches a statement.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::domain::Role;
use crate::domain::role::HANDLERS;
use crate::postgres::Db;
use crate::protocol::{rfc3339, rfc3339_opt};

/// A staff account as admins see it (`GET /api/users`).
#[derive(Debug, Serialize)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    /// The name staff messages carry (the username unless set).
    pub display_name: String,
    pub role: String,
    pub disabled: bool,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_opt")]
    pub last_login_at: Option<DateTime<Utc>>,
    pub email: Option<String>,
}

const USER_COLUMNS: &str = "id, username, role, disabled, created_at, last_login_at, COALESCE(display_name, username), email";

impl UserRow {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get(0),
            username: row.get(1),
            role: row.get(2),
            disabled: row.get(3),
            created_at: row.get(4),
            last_login_at: row.get(5),
            display_name: row.get(6),
            email: row.get(7),
        }
    }
}

/// Every account, by username.
pub async fn list(db: &Db) -> Result<Vec<UserRow>, StoreError> {
    let rows = db.get().await?.query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"), &[]).await?;
    Ok(rows.iter().map(UserRow::from_row).collect())
}

pub async fn find(db: &Db, id: Uuid) -> Result<UserRow, StoreError> {
    let row = db.get().await?.query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"), &[&id]).await?;
    row.as_ref().map(UserRow::from_row).ok_or(StoreError::NotFound("user"))
}

/// Who a conversation can be assigned to: active users of a role that may
/// take conversations over (`HANDLERS`), with `$1` those roles.
const ASSIGNABLE: &str = "NOT disabled AND role = ANY($1)";

fn handler_roles() -> Vec<&'static str> {
    HANDLERS.iter().map(|r| r.as_str()).collect()
}

/// Everyone a conversation can be assigned to, by username.
pub async fn assignable(db: &Db) -> Result<Vec<UserRow>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(&format!("SELECT {USER_COLUMNS} FROM users WHERE {ASSIGNABLE} ORDER BY username"), &[&handler_roles()])
        .await?;
    Ok(rows.iter().map(UserRow::from_row).collect())
}

/// Whether a conversation can be assigned to `id`.
pub async fn is_assignable(db: &Db, id: Uuid) -> Result<bool, StoreError> {
    let row = db.get().await?.query_opt(&format!("SELECT 1 FROM users WHERE id = $2 AND {ASSIGNABLE}"), &[&handler_roles(), &id]).await?;
    Ok(row.is_some())
}

/// Stores a new account; `false` if the username is taken.
pub async fn insert(db: &Db, id: Uuid, username: &str, password_hash: &str, role: Role) -> Result<bool, StoreError> {
    let inserted = db
        .get()
        .await?
        .execute(
            "INSERT INTO users (id, username, password_hash, role) VALUES ($1, $2, $3, $4)
             ON CONFLICT (username) DO NOTHING",
            &[&id, &username, &password_hash, &role.as_str()],
        )
        .await?;
    Ok(inserted == 1)
}

/// Whether any account exists (the first admin is made only when none does).
pub async fn any(db: &Db) -> Result<bool, StoreError> {
    let count: i64 = db.get().await?.query_one("SELECT count(*) FROM users", &[]).await?.get(0);
    Ok(count > 0)
}

/// Stores the first admin only if there is still no account at all, so two
/// nodes starting together make it once; `true` if this call made it.
pub async fn insert_first_admin(db: &Db, username: &str, password_hash: &str) -> Result<bool, StoreError> {
    let inserted = db
        .get()
        .await?
        .execute(
            "INSERT INTO users (id, username, password_hash, role)
             SELECT $1, $2, $3, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users)
             ON CONFLICT (username) DO NOTHING",
            &[&Uuid::new_v4(), &username, &password_hash],
        )
        .await?;
    Ok(inserted == 1)
}

/// What a login checks: the account's id, password hash and role, if it
/// exists and is not disabled.
pub async fn login_candidate(db: &Db, username: &str) -> Result<Option<(Uuid, String, String)>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt("SELECT id, password_hash, role FROM users WHERE username = $1 AND NOT disabled", &[&username])
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// A change to an account; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
    /// A new display name (`Some("")`: back to the username).
    pub display_name: Option<String>,
    /// A new email (`Some(None)`: none).
    pub email: Option<Option<String>>,
}

/// Applies `change`, refusing (`Conflict`) to demote or disable the last
/// active admin. Admin changes are serialised so two requests cannot remove
/// the last two admins at once.
pub async fn update(db: &Db, id: Uuid, change: UserChange) -> Result<UserRow, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let current = tx
        .query_opt("SELECT role, disabled FROM users WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let (was_role, was_disabled): (String, bool) = (current.get(0), current.get(1));
    let stays_admin = change.role.map_or(was_role == "admin", |r| r == Role::Admin) && !change.disabled.unwrap_or(was_disabled);
    if was_role == "admin" && !was_disabled && !stays_admin {
        tx.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
        let other_admins: i64 = tx
            .query_one("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1", &[&id])
            .await?
            .get(0);
        if other_admins == 0 {
            return Err(StoreError::Conflict("this is the last active admin".into()));
        }
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled),
                    password_hash = COALESCE($4, password_hash),
                    display_name = CASE WHEN $5::text IS NULL THEN display_name ELSE NULLIF($5, '') END,
                    email = CASE WHEN $6 THEN $7 ELSE email END,
                    updated_at = now()
                 WHERE id = $1 RETURNING {USER_COLUMNS}"
            ),
            &[
                &id,
                &change.role.map(|r| r.as_str()),
                &change.disabled,
                &change.password_hash,
                &change.display_name,
                &change.email.is_some(),
                &change.email.clone().flatten(),
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(UserRow::from_row(&row))
}

/// Deletes an account and its logins. What the user did stays readable:
/// QA history keeps their username, their messages, notes and API keys lose
/// only the link to the account, their conversations become unassigned.
/// Refused (`Conflict`) for yourself and for the last active admin (two
/// admins deleting each other at once: the table lock orders them, and the
/// second finds itself the last).
pub async fn delete(db: &Db, id: Uuid, by: Uuid) -> Result<(), StoreError> {
    if id == by {
        return Err(StoreError::Conflict("you cannot delete yourself".into()));
    }
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    tx.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
    let row = tx.query_opt("SELECT role, disabled FROM users WHERE id = $1", &[&id]).await?.ok_or(StoreError::NotFound("user"))?;
    let (role, disabled): (String, bool) = (row.get(0), row.get(1));
    if role == "admin" && !disabled {
        let others: i64 = tx.query_one("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1", &[&id]).await?.get(0);
        if others == 0 {
            return Err(StoreError::Conflict("this is the last active admin".into()));
        }
    }
    tx.execute("DELETE FROM users WHERE id = $1", &[&id]).await?;
    tx.commit().await?;
    Ok(())
}

/// A machine key as admins see it (never the key itself).
#[derive(Debug, Serialize)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Every key, newest first.
pub async fn list_api_keys(db: &Db) -> Result<Vec<ApiKeyRow>, StoreError> {
    let rows = db
        .get()
        .await?
        .query("SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at DESC", &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| ApiKeyRow {
            id: r.get(0),
            name: r.get(1),
            prefix: r.get(2),
            created_at: r.get(3),
            last_used_at: r.get(4),
            revoked_at: r.get(5),
        })
        .collect())
}

/// Stores a key by its SHA-256 and display prefix.
pub async fn insert_api_key(db: &Db, id: Uuid, name: &str, prefix: &str, key_hash: &[u8], created_by: Option<Uuid>) -> Result<(), StoreError> {
    db.get()
        .await?
        .execute(
            "INSERT INTO api_keys (id, name, prefix, key_hash, created_by) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &name, &prefix, &key_hash, &created_by],
        )
        .await?;
    Ok(())
}

/// The live (unrevoked) key with this hash, marked as used now.
pub async fn use_api_key(db: &Db, key_hash: &[u8]) -> Result<Option<(Uuid, String)>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL RETURNING id, name",
            &[&key_hash],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Revokes a live key; `NotFound` if there is none with this id.
pub async fn revoke_api_key(db: &Db, id: Uuid) -> Result<(), StoreError> {
    let changed = db
        .get()
        .await?
        .execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id])
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("API key"));
    }
    Ok(())
}
