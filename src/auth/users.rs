//! Staff user records: creation (CLI, admin API, first start) and the first
//! admin made on an empty database.

use anyhow::Context;
use uuid::Uuid;

use super::passwords;
use crate::domain::Role;
use crate::postgres::Db;
use crate::store;

/// Username of the admin made on first start.
pub const FIRST_ADMIN: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username must be 1 to 64 characters of letters, digits, '.', '_', '-' or '@'")]
    BadUsername,
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Password(#[from] passwords::PasswordError),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

pub fn validate_username(username: &str) -> Result<(), CreateUserError> {
    let ok = (1..=64).contains(&username.len())
        && username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok { Ok(()) } else { Err(CreateUserError::BadUsername) }
}

/// Creates a user with a hashed password.
pub async fn create(db: &Db, username: &str, password: String, role: Role) -> Result<Uuid, CreateUserError> {
    validate_username(username)?;
    let phc = passwords::hash(password).await?;
    let id = Uuid::new_v4();
    let inserted = store::users::insert(db, id, username, &phc, role).await.context("storing the user")?;
    if !inserted {
        return Err(CreateUserError::Exists(username.to_owned()));
    }
    Ok(id)
}

/// On a database with no users, creates `admin` with `ADMIN_PASSWORD`, or with
/// a random password that is printed once (it is never stored in clear).
/// Two nodes starting together create it once: the insert is conditional.
pub async fn ensure_first_admin(db: &Db, admin_password: Option<&str>) -> anyhow::Result<()> {
    if store::users::any(db).await? {
        return Ok(());
    }
    let (password, generated) = match admin_password {
        Some(p) => (p.to_owned(), false),
        None => (super::random_token(18), true),
    };
    let phc = passwords::hash(password.clone())
        .await
        .context("ADMIN_PASSWORD is not acceptable")?;
    if store::users::insert_first_admin(db, FIRST_ADMIN, &phc).await? {
        if generated {
            // Deliberately the one place a secret reaches the log: there is no
            // other way to hand the first password to the operator. It is
            // printed once and works only until changed.
            tracing::warn!(
                username = FIRST_ADMIN,
                password = %password,
                "created the first admin with a random password (shown only this once; set ADMIN_PASSWORD to choose it)"
            );
        } else {
            tracing::info!(username = FIRST_ADMIN, "created the first admin from ADMIN_PASSWORD");
        }
    }
    Ok(())
}
