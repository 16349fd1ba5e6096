//! `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::auth::access::{same_origin, session_cookie};
use crate::auth::staff_sessions::{self, COOKIE, SECURE_COOKIE, StaffUser};
use crate::auth::passwords;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

fn user_json(id: uuid::Uuid, username: &str, display_name: &str, role: &str) -> serde_json::Value {
    json!({ "id": id, "username": username, "display_name": display_name, "role": role })
}

/// Over HTTPS the cookie is `Secure` and `__Host-` prefixed.
fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

pub async fn login(req: HttpRequest, body: web::Json<Login>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !same_origin(&req) {
        return Err(ApiError::Forbidden("cross-origin login refused"));
    }
    let ip = state.config.trusted_proxies.of_request(&req).ok_or(ApiError::invalid("no_peer", "unknown peer address"))?;
    let Login { username, password } = body.into_inner();
    // Counted before any hashing, so parallel guesses cannot slip past the limit.
    let attempt = state.login_throttle.begin(ip, &username).map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    let row = match crate::store::users::login_candidate(&state.db, &username).await {
        Ok(row) => row,
        Err(e) => {
            state.login_throttle.abandoned(attempt);
            return Err(e.into());
        }
    };
    // Unknown users are checked against a dummy hash: same time, same answer.
    let stored = row.as_ref().map(|(_, phc, _)| phc.clone());
    match passwords::verify(password, stored).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::InvalidCredentials),
        Err(e) => {
            state.login_throttle.abandoned(attempt);
            return Err(e.into());
        }
    }
    let row = row.expect("verified users exist");
    state.login_throttle.succeeded(attempt);
    let (id, _, role) = row;
    let user_agent = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(300).collect());
    let login = staff_sessions::create(&state.db, id, staff_sessions::Lifetimes::of(&state.config), Some(ip.to_string()), user_agent).await?;
    let https = is_https(&req);
    let cookie = Cookie::build(if https { SECURE_COOKIE } else { COOKIE }, login.token)
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(staff_sessions::Lifetimes::of(&state.config).absolute.num_seconds()))
        .finish();
    tracing::info!(username = %username, "staff login");
    let display_name = crate::store::users::find(&state.db, id).await.map(|u| u.display_name).unwrap_or_else(|_| username.clone());
    Ok(HttpResponse::Ok().cookie(cookie).json(json!({
        "user": user_json(id, &username, &display_name, &role),
        "csrf_token": login.csrf_token,
        "expires_at": crate::protocol::rfc3339::format(&login.expires_at),
    })))
}

pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(token) = session_cookie(&req) {
        staff_sessions::end(&state.db, &token).await?;
    }
    let mut response = HttpResponse::NoContent().finish();
    for name in [COOKIE, SECURE_COOKIE] {
        let mut gone = Cookie::build(name, "").path("/").finish();
        gone.make_removal();
        let _ = response.add_removal_cookie(&gone);
    }
    Ok(response)
}

pub async fn me(user: StaffUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "user": user_json(user.user_id, &user.username, &user.display_name, user.role.as_str()),
        "csrf_token": user.csrf_token,
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyProfile {
    display_name: String,
}

/// `PUT /api/auth/me {"display_name"}`: anyone on staff names themselves
/// (empty: back to the username).
pub async fn update_me(user: StaffUser, body: web::Json<MyProfile>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let name = super::users::display_name(&body.display_name)?;
    let change = crate::store::users::UserChange { display_name: Some(name), ..Default::default() };
    let row = crate::store::users::update(&state.db, user.user_id, change).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": user_json(row.id, &row.username, &row.display_name, &row.role) })))
}
