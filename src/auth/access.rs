//! Who may call what. Every route declares an `Access` in the route table
//! (`http::routes`); the `authorize` middleware there, wrapped around every
//! resource built from that table, calls `authenticate`, `Access::allows`
//! and `check_csrf` from here, and leaves the `Principal` for the handler.
//! A route without a rule cannot be mounted, so access is denied by default.

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::staff_sessions::{self, COOKIE, CSRF_HEADER, SECURE_COOKIE, StaffUser};
use crate::domain::Role;
use crate::error::ApiError;
use crate::config::Config;
use crate::postgres::Db;

/// Every staff role.
pub const ANY_STAFF: &[Role] = &Role::ALL;

/// The rule for one route.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone (health, widget settings, webhooks that verify their own signature).
    Public,
    /// Signed-in staff with one of these roles (cookie).
    Staff(&'static [Role]),
    /// Machine clients with an API key (`Authorization: Bearer`).
    Machine,
    /// Either of the above.
    StaffOrMachine(&'static [Role]),
    /// A visitor with their conversation's token (`Authorization: Bearer`),
    /// staff with one of these roles, or (when `machine`) an API key. The
    /// handler decides what of the conversation the caller may touch (SPEC §12).
    Conversation { roles: &'static [Role], machine: bool },
}

impl Access {
    pub fn allows(self, principal: &Principal) -> bool {
        match (self, principal) {
            (Access::Public, _) => true,
            (Access::Staff(roles) | Access::StaffOrMachine(roles) | Access::Conversation { roles, .. }, Principal::Staff(user)) => {
                roles.contains(&user.role)
            }
            (Access::Machine | Access::StaffOrMachine(_), Principal::Machine { .. }) => true,
            (Access::Conversation { machine, .. }, Principal::Machine { .. }) => machine,
            (Access::Conversation { .. }, Principal::Visitor { .. }) => true,
            _ => false,
        }
    }

    /// Who may call, for the docs and the OpenAPI document.
    pub fn describe(self) -> String {
        let roles = |roles: &[Role]| roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
        match self {
            Access::Public => "public".into(),
            Access::Staff(r) => format!("staff: {}", roles(r)),
            Access::Machine => "API key".into(),
            Access::StaffOrMachine(r) => format!("API key, or staff: {}", roles(r)),
            Access::Conversation { roles: r, machine: true } => format!("conversation token, API key, or staff: {}", roles(r)),
            Access::Conversation { roles: r, machine: false } => format!("conversation token, or staff: {}", roles(r)),
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    Staff(StaffUser),
    /// An API key (`key_id` is `None` for the `API_KEY` environment key).
    Machine { key_id: Option<Uuid>, name: String },
    /// A visitor, by their conversation's token (only on `Conversation` routes).
    Visitor { session_id: Uuid },
}

impl Principal {
    /// The staff user, or 403 for a machine caller.
    pub fn staff(&self) -> Result<&StaffUser, ApiError> {
        match self {
            Principal::Staff(user) => Ok(user),
            Principal::Machine { .. } | Principal::Visitor { .. } => Err(ApiError::Forbidden("this action needs a signed-in staff member")),
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Principal>().cloned().ok_or(ApiError::Unauthenticated))
    }
}

/// The signed-in staff member of a cookie-authenticated request.
impl FromRequest for StaffUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let principal = req.extensions().get::<Principal>().cloned();
        std::future::ready(match principal {
            Some(Principal::Staff(user)) => Ok(user),
            Some(Principal::Machine { .. } | Principal::Visitor { .. }) => Err(ApiError::Forbidden("this action needs a signed-in staff member")),
            None => Err(ApiError::Unauthenticated),
        })
    }
}

/// The cookie token of a request, if any.
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(SECURE_COOKIE).or_else(|| req.cookie(COOKIE)).map(|c| c.value().to_owned())
}

/// Who is calling: an API key in `Authorization: Bearer`, else the staff
/// cookie. A presented but invalid credential is an error, never anonymous.
pub async fn authenticate(req: &HttpRequest, db: &Db, config: &Config) -> Result<Option<Principal>, ApiError> {
    if req.headers().contains_key("authorization") {
        let key = bearer(req).ok_or(ApiError::Unauthenticated)?;
        if let Some(env_key) = &config.api_key {
            if bool::from(env_key.as_bytes().ct_eq(key.as_bytes())) {
                return Ok(Some(Principal::Machine { key_id: None, name: "API_KEY".into() }));
            }
        }
        return match super::api_keys::verify(db, key).await? {
            Some((key_id, name)) => Ok(Some(Principal::Machine { key_id: Some(key_id), name })),
            None => Err(ApiError::Unauthenticated),
        };
    }
    let Some(token) = session_cookie(req) else { return Ok(None) };
    let user = staff_sessions::lookup(db, &token, staff_sessions::Lifetimes::of(config)).await?;
    Ok(user.map(Principal::Staff))
}

/// The `Authorization: Bearer` credential, if one is given.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Whether a Bearer credential is an API key (else, on `Conversation`
/// routes, it is a visitor's conversation token).
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(super::api_keys::KEY_PREFIX)
}

/// State-changing browser requests must carry the login's CSRF token in
/// `X-CSRF-Token` and, when the browser says where they come from, come from
/// this same host. (API keys carry no ambient cookie, so they are exempt.)
pub fn check_csrf(req: &HttpRequest, user: &StaffUser) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = req.headers().get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !bool::from(sent.ct_eq(user.csrf_token.as_bytes())) {
        return Err(ApiError::Forbidden("missing or wrong X-CSRF-Token header"));
    }
    if !same_origin(req) {
        return Err(ApiError::Forbidden("cross-origin request refused"));
    }
    Ok(())
}

/// True unless the browser reports another origin (`Origin` not matching the
/// `Host`, or `Sec-Fetch-Site: cross-site`).
pub fn same_origin(req: &HttpRequest) -> bool {
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    // Every Origin value must match: a request carrying two is not let
    // through on the strength of the first.
    for origin in req.headers().get_all("origin") {
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if !authority.eq_ignore_ascii_case(host) {
            return false;
        }
    }
    !matches!(
        req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        Some("cross-site") | Some("same-site")
    )
}
