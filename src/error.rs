//! The one JSON error shape, `{"error":{"code","message"}}`, and the mapping
//! from each failure kind to its HTTP status. Internal causes are logged with
//! their chain and never sent to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// A failed request, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the input was understood but is not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// 422: well-formed, but refers to something that does not exist (an
    /// unknown template variable).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 401: no valid session or API key.
    #[error("authentication required")]
    Unauthenticated,
    /// 401: wrong username or password (the same answer for both).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// 401: a webhook whose signature does not verify (or is stale).
    #[error("{0}")]
    BadSignature(String),
    /// 403: authenticated, but this role may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such resource (or route).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 408: the client sent its body too slowly (an upload past its time).
    #[error("{0}")]
    Timeout(String),
    /// 413
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// 415: an uploaded file whose bytes are not an accepted type.
    #[error("{0}")]
    UnsupportedFileType(String),
    /// 429, with the seconds after which a retry may succeed.
    #[error("too many requests; retry later")]
    RateLimited { retry_after_secs: u64 },
    /// 503: a dependency (the database) is unavailable; retrying may work.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 503 with `Retry-After`: a bounded resource (password hashing) is
    /// saturated right now; the same request may succeed after the delay.
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// 500: a bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::BadSignature(_) => "invalid_signature",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Timeout(_) => "request_timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UnsupportedFileType(_) => "unsupported_file_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Busy { .. } => "busy",
            Self::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated | Self::InvalidCredentials | Self::BadSignature(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType | Self::UnsupportedFileType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "dependency unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::RateLimited { retry_after_secs } | Self::Busy { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
        }
        response.json(json!({ "error": { "code": self.code(), "message": self.to_string() } }))
    }
}

/// Input the domain types refused is a 400 with their code.
impl From<crate::domain::InvalidInput> for ApiError {
    fn from(e: crate::domain::InvalidInput) -> Self {
        Self::Invalid { code: e.code, message: e.message }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(e.into())
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        // Text PostgreSQL cannot hold (a NUL byte) came from the request:
        // the client's mistake, and resending it can never work.
        if e.code().is_some_and(|c| *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *c == SqlState::UNTRANSLATABLE_CHARACTER) {
            return Self::invalid("invalid_text", "text must not contain NUL characters");
        }
        if e.is_closed() || e.code().is_none() && e.as_db_error().is_none() {
            Self::Unavailable(e.into())
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

/// Body, path and query extractor failures in the JSON shape. Mounted as the
/// extractors' error handlers in `startup`.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match &err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => {
            ApiError::PayloadTooLarge(*limit).into()
        }
        E::ContentType => ApiError::UnsupportedMediaType.into(),
        E::Deserialize(inner) => ApiError::invalid("invalid_json", inner.to_string()).into(),
        _ => ApiError::invalid("invalid_body", err.to_string()).into(),
    }
}

pub fn query_error(err: actix_web::error::QueryPayloadError) -> actix_web::Error {
    ApiError::invalid("invalid_query", err.to_string()).into()
}

pub fn path_error(err: actix_web::error::PathError) -> actix_web::Error {
    ApiError::invalid("invalid_path", err.to_string()).into()
}

pub fn payload_error(err: actix_web::error::PayloadError) -> actix_web::Error {
    match err {
        actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge(0).into(),
        other => ApiError::invalid("invalid_body", other.to_string()).into(),
    }
}
