//! `/api/canned-responses`: the replies staff insert by typing `/shortcut`
//! in the reply box (SPEC §11). Everyone on staff reads them; admins manage
//! them. Text may use `{{customer.name}}`, `{{customer.email}}`,
//! `{{agent.name}}` and `{{booking_url}}`, expanded by the dashboard when it
//! inserts the text; any other variable is refused when saved (422).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::state::AppState;
use crate::store;
use crate::store::canned::CannedFields;

/// The variables a canned response may use.
pub const VARIABLES: &[&str] = &["customer.name", "customer.email", "agent.name", "booking_url"];
const MAX_TITLE_CHARS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedBody {
    shortcut: String,
    title: String,
    text: String,
}

/// The variables `text` uses that are not in `VARIABLES`, in order, once each.
fn unknown_variables(text: &str) -> Vec<String> {
    let mut unknown: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !VARIABLES.contains(&name) && !unknown.iter().any(|u| u == name) {
            unknown.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    unknown
}

fn check(body: &CannedBody, max_chars: usize) -> Result<CannedFields<'_>, ApiError> {
    let shortcut = body.shortcut.trim();
    let valid = (1..=32).contains(&shortcut.len()) && shortcut.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(ApiError::invalid("invalid_shortcut", "shortcut must be 1 to 32 of a-z, 0-9, _ and -"));
    }
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS || title.contains('\0') {
        return Err(ApiError::invalid("invalid_title", format!("title must be 1 to {MAX_TITLE_CHARS} characters")));
    }
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > max_chars || text.contains('\0') {
        return Err(ApiError::invalid("invalid_text", format!("text must be 1 to {max_chars} characters")));
    }
    let unknown = unknown_variables(text);
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|u| format!("{{{{{u}}}}}")).collect();
        return Err(ApiError::Unprocessable {
            code: "unknown_variables",
            message: format!("unknown variables: {} (known: {})", names.join(", "), VARIABLES.join(", ")),
        });
    }
    Ok(CannedFields { shortcut, title, text })
}

/// `GET`: every response, and the values of the variables the server knows.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let responses = store::canned::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(json!({ "responses": responses, "variables": { "booking_url": state.config.booking_url } })))
}

pub async fn create(body: web::Json<CannedBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let fields = check(&body, state.config.limits.max_message_chars)?;
    Ok(HttpResponse::Created().json(store::canned::insert(&state.db, &fields).await?))
}

pub async fn update(id: web::Path<Uuid>, body: web::Json<CannedBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let fields = check(&body, state.config.limits.max_message_chars)?;
    Ok(HttpResponse::Ok().json(store::canned::update(&state.db, *id, &fields).await?))
}

pub async fn delete(id: web::Path<Uuid>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    store::canned::delete(&state.db, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_variables_are_named_once_and_known_ones_pass() {
        assert!(unknown_variables("Hi {{customer.name}}, book at {{ booking_url }} — {{agent.name}}").is_empty());
        assert_eq!(unknown_variables("{{customer.phone}} {{x}} {{customer.phone}} {{ unclosed"), ["customer.phone", "x"]);
    }
}
