//! Admin only: staff users (`/api/users…`) and machine API keys
//! (`/api/api-keys…`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiError;
use crate::auth::staff_sessions::{self, StaffUser};
use crate::auth::users::{self, CreateUserError};
use crate::auth::{api_keys, passwords};
use crate::domain::Role;
use crate::state::AppState;
use crate::protocol::rfc3339;

fn role(value: &str) -> Result<Role, ApiError> {
    value.parse().map_err(|e: crate::domain::role::UnknownRole| ApiError::invalid("invalid_role", e.to_string()))
}

fn user_json(row: &tokio_postgres::Row) -> Value {
    json!({
        "id": row.get::<_, Uuid>(0),
        "username": row.get::<_, String>(1),
        "role": row.get::<_, String>(2),
        "disabled": row.get::<_, bool>(3),
        "created_at": rfc3339::format(&row.get(4)),
        "last_login_at": rfc3339::format_opt(row.get(5)),
    })
}

const USER_COLUMNS: &str = "id, username, role, disabled, created_at, last_login_at";

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = state.db.get().await?.query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"), &[]).await?;
    Ok(HttpResponse::Ok().json(json!({ "users": rows.iter().map(user_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    role: String,
}

pub async fn create(body: web::Json<NewUser>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let NewUser { username, password, role: role_name } = body.into_inner();
    let role = role(&role_name)?;
    let id = users::create(&state.db, &username, password, role).await.map_err(|e| match e {
        CreateUserError::BadUsername => ApiError::invalid("invalid_username", e.to_string()),
        CreateUserError::Password(p) => p.into(),
        CreateUserError::Exists(_) => ApiError::Conflict(e.to_string()),
        CreateUserError::Db(e) => ApiError::Internal(e),
    })?;
    let row = state.db.get().await?.query_one(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"), &[&id]).await?;
    Ok(HttpResponse::Created().json(user_json(&row)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    role: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
}

/// Changing the role, disabling, or resetting the password ends the user's
/// open logins at once. The last active admin cannot be demoted or disabled.
pub async fn update(id: web::Path<Uuid>, body: web::Json<UserUpdate>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let UserUpdate { role: role_name, disabled, password } = body.into_inner();
    let new_role = role_name.as_deref().map(role).transpose()?;
    if new_role.is_none() && disabled.is_none() && password.is_none() {
        return Err(ApiError::invalid("nothing_to_change", "give role, disabled or password"));
    }
    let hash = match password {
        Some(p) => Some(passwords::hash(p).await?),
        None => None,
    };
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let current = tx
        .query_opt("SELECT role, disabled FROM users WHERE id = $1 FOR UPDATE", &[&*id])
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let (was_role, was_disabled): (String, bool) = (current.get(0), current.get(1));
    let stays_admin = new_role.map_or(was_role == "admin", |r| r == Role::Admin) && !disabled.unwrap_or(was_disabled);
    if was_role == "admin" && !was_disabled && !stays_admin {
        // Serialise admin changes so two requests cannot remove the last two admins.
        tx.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
        let other_admins: i64 = tx
            .query_one("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1", &[&*id])
            .await?
            .get(0);
        if other_admins == 0 {
            return Err(ApiError::Conflict("this is the last active admin".into()));
        }
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled),
                    password_hash = COALESCE($4, password_hash), updated_at = now()
                 WHERE id = $1 RETURNING {USER_COLUMNS}"
            ),
            &[&*id, &new_role.map(|r| r.as_str()), &disabled, &hash],
        )
        .await?;
    tx.commit().await?;
    drop(client);
    // A changed role or password, or a disabled user, starts from a fresh login.
    // (Resetting your own password signs you out too, as it should.)
    staff_sessions::end_all_for(&state.db, *id).await?;
    Ok(HttpResponse::Ok().json(user_json(&row)))
}

pub async fn list_keys(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = state
        .db
        .get()
        .await?
        .query("SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at DESC", &[])
        .await?;
    let keys: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, Uuid>(0),
                "name": r.get::<_, String>(1),
                "prefix": r.get::<_, String>(2),
                "created_at": rfc3339::format(&r.get(3)),
                "last_used_at": rfc3339::format_opt(r.get(4)),
                "revoked_at": rfc3339::format_opt(r.get(5)),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "api_keys": keys })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
}

pub async fn create_key(body: web::Json<NewKey>, me: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let name = body.into_inner().name;
    if !api_keys::valid_name(&name) {
        return Err(ApiError::invalid("invalid_name", api_keys::NAME_RULE));
    }
    let key = api_keys::create(&state.db, &name, Some(me.user_id)).await?;
    Ok(HttpResponse::Created().json(json!({ "id": key.id, "name": key.name, "prefix": key.prefix, "key": key.secret })))
}

pub async fn revoke_key(id: web::Path<Uuid>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let changed = state
        .db
        .get()
        .await?
        .execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&*id])
        .await?;
    if changed == 0 {
        return Err(ApiError::NotFound("API key"));
    }
    Ok(HttpResponse::NoContent().finish())
}
