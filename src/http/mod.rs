//! HTTP routes, one file per route group, and the JSON error shape they share.

pub mod error;
pub mod health;
pub mod sites;

use actix_web::{HttpRequest, HttpResponse, web};

pub use error::ApiError;

/// Mounts every HTTP route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::health)
        .service(health::metrics)
        .service(sites::public_settings)
        .service(crate::ws::visitor::visitor_socket);
}

/// Any path no route claims: a JSON 404 (or 405 for a known path with the
/// wrong method, which actix reports through the same default service).
pub async fn not_found(_req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}
