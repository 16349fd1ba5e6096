//! Admin only: staff users (`/api/users…`) and machine API keys
//! (`/api/api-keys…`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::auth::staff_sessions::{self, StaffUser};
use crate::auth::users::{self, CreateUserError};
use crate::auth::{api_keys, passwords};
use crate::domain::Role;
use crate::state::AppState;
use crate::store;

fn role(value: &str) -> Result<Role, ApiError> {
    value.parse().map_err(|e: crate::domain::role::UnknownRole| ApiError::invalid("invalid_role", e.to_string()))
}

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let users = store::users::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    role: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// An optional email: trimmed, empty means none.
fn email(value: Option<&str>) -> Result<Option<String>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(address) if crate::email::valid_address(address) => Ok(Some(address.to_owned())),
        Some(_) => Err(ApiError::invalid("invalid_email", "email must be one address")),
    }
}

pub async fn create(body: web::Json<NewUser>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let NewUser { username, password, role: role_name, email: address, display_name: name } = body.into_inner();
    let role = role(&role_name)?;
    let address = email(address.as_deref())?;
    let name = name.as_deref().map(display_name).transpose()?;
    let id = users::create(&state.db, &username, password, role).await.map_err(|e| match e {
        CreateUserError::BadUsername => ApiError::invalid("invalid_username", e.to_string()),
        CreateUserError::Password(p) => p.into(),
        CreateUserError::Exists(_) => ApiError::Conflict(e.to_string()),
        CreateUserError::Db(e) => ApiError::Internal(e),
    })?;
    if address.is_some() || name.is_some() {
        let change = store::users::UserChange { display_name: name, email: Some(address), ..Default::default() };
        return Ok(HttpResponse::Created().json(store::users::update(&state.db, id, change).await?));
    }
    Ok(HttpResponse::Created().json(store::users::find(&state.db, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    role: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
    display_name: Option<String>,
    #[serde(default, with = "super::nullable")]
    email: Option<Option<String>>,
}

/// Longest display name.
const MAX_DISPLAY_NAME_CHARS: usize = 80;

/// A display name as given: trimmed; empty means "the username".
pub fn display_name(value: &str) -> Result<String, ApiError> {
    let name = value.trim();
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("invalid_display_name", format!("display_name must be at most {MAX_DISPLAY_NAME_CHARS} printable characters")));
    }
    Ok(name.to_owned())
}

/// Changing the role, disabling, or resetting the password ends the user's
/// open logins at once. The last active admin cannot be demoted or disabled
/// (409, checked in the store).
pub async fn update(id: web::Path<Uuid>, body: web::Json<UserUpdate>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let UserUpdate { role: role_name, disabled, password, display_name: name, email: address } = body.into_inner();
    let new_role = role_name.as_deref().map(role).transpose()?;
    let name = name.as_deref().map(display_name).transpose()?;
    let address = address.map(|a| email(a.as_deref())).transpose()?;
    if new_role.is_none() && disabled.is_none() && password.is_none() && name.is_none() && address.is_none() {
        return Err(ApiError::invalid("nothing_to_change", "give role, disabled, password, display_name or email"));
    }
    let ends_logins = new_role.is_some() || disabled.is_some() || password.is_some();
    let hash = match password {
        Some(p) => Some(passwords::hash(p).await?),
        None => None,
    };
    let change = store::users::UserChange { role: new_role, disabled, password_hash: hash, display_name: name, email: address };
    let user = store::users::update(&state.db, *id, change).await?;
    // A changed role or password, or a disabled user, starts from a fresh login.
    // (Resetting your own password signs you out too, as it should.)
    if ends_logins {
        staff_sessions::end_all_for(&state.db, *id).await?;
    }
    Ok(HttpResponse::Ok().json(user))
}

/// `DELETE /api/users/{id}`: the account goes, what they did stays
/// readable (see `store::users::delete`); not yourself, not the last admin.
pub async fn delete(id: web::Path<Uuid>, me: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    store::users::delete(&state.db, *id, me.user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/staff`: whom a conversation may be assigned to (for the picker).
pub async fn assignable(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let users = store::users::assignable(&state.db).await?;
    let staff: Vec<serde_json::Value> =
        users.iter().map(|u| serde_json::json!({ "id": u.id, "username": u.username, "display_name": u.display_name })).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "staff": staff })))
}

pub async fn list_keys(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({ "api_keys": store::users::list_api_keys(&state.db).await? })))
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
    store::users::revoke_api_key(&state.db, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}
