//! `GET /api/calls/ice-servers` (SPEC §14): the STUN servers of
//! `ICE_SERVERS`, and TURN with credentials minted per request by coturn's
//! REST scheme (`use-auth-secret`): the username is `expiry:name` (Unix
//! seconds, then who it is for), the password base64 of HMAC-SHA1 over the
//! username keyed with `TURN_SECRET`. coturn checks both without a call to
//! chathub; the credential stops working at `expiry`.

use actix_web::{HttpResponse, web};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use super::ApiError;
use crate::auth::access::Principal;
use crate::state::AppState;

/// The TURN credential for `name`, valid until `expiry` (Unix seconds).
pub fn turn_credential(secret: &str, expiry: i64, name: &str) -> (String, String) {
    let username = format!("{expiry}:{name}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

fn urls(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

pub async fn ice_servers(principal: Option<Principal>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let name = match principal.ok_or(ApiError::Unauthenticated)? {
        Principal::Visitor { session_id } => format!("visitor-{session_id}"),
        Principal::Staff(user) => format!("staff-{}", user.user_id),
        Principal::Machine { .. } => return Err(ApiError::Forbidden("API keys do not make calls")),
    };
    let settings = &state.config.calls;
    let mut servers: Vec<Value> = Vec::new();
    let stun = urls(&settings.ice_servers);
    if !stun.is_empty() {
        servers.push(json!({ "urls": stun }));
    }
    let turn = urls(&settings.turn_urls);
    if let (false, Some(secret)) = (turn.is_empty(), settings.turn_secret.as_deref()) {
        let expiry = chrono::Utc::now().timestamp() + settings.turn_ttl_secs as i64;
        let (username, credential) = turn_credential(secret, expiry, &name);
        servers.push(json!({ "urls": turn, "username": username, "credential": credential }));
    }
    Ok(HttpResponse::Ok().json(json!({ "ice_servers": servers, "ttl": settings.turn_ttl_secs })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector computed independently:
    /// `printf '1700000000:staff-1' | openssl dgst -sha1 -hmac north -binary | base64`.
    #[test]
    fn credentials_follow_coturns_rest_scheme() {
        let (username, credential) = turn_credential("north", 1_700_000_000, "staff-1");
        assert_eq!(username, "1700000000:staff-1");
        assert_eq!(credential, "VC/ekIJn/9H+xL9famzqEyyPiRY=");
    }
}
