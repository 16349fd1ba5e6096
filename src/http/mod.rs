//! HTTP routes, one file per route group, mounted from the route table in
//! `routes`, and the JSON error shape they share.

pub mod ai_health;
pub mod assets;
pub mod attachments;
pub mod auth;
pub mod calls;
pub mod canned;
pub mod deliveries;
pub mod emails;
pub mod errors;
pub mod export;
pub mod health;
pub mod openapi;
pub mod relay;
pub mod replays;
pub mod routes;
pub mod sessions;
pub mod settings;
pub mod sites;
pub mod users;
pub mod webhooks;

use actix_web::HttpResponse;

pub use crate::error::ApiError;

/// For request fields where `null` means "clear it" and absence means
/// "leave it": `Some(None)` for null, `None` when absent (with `default`).
pub(crate) mod nullable {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Mounts every HTTP route (from the route table).
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    routes::configure(cfg);
}

/// Any path no route claims: a JSON 404.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}

/// A known path with a method it does not answer: a JSON 405.
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
