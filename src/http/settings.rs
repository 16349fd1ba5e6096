//! Admin settings: sites (`/api/sites…`: where the widget may run and how it
//! looks) and completion rules (`/api/completion-rules…`: list, add, edit,
//! disable, delete, and test a text against them). A rule change takes
//! effect at once: the live rule set is reloaded.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::actors::cluster::SettingsChange;
use crate::completion::Rule;
use crate::sites::DEFAULT_SITE;
use crate::state::AppState;
use crate::store;

const MAX_ORIGINS: usize = 50;
const MAX_TEXT_CHARS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    key: Option<String>,
    name: Option<String>,
    allowed_origins: Option<Vec<String>>,
    #[serde(default, with = "super::nullable")]
    greeting: Option<Option<String>>,
    color: Option<String>,
    position: Option<String>,
    prechat_form: Option<bool>,
    #[serde(default, with = "super::nullable")]
    email_from: Option<Option<String>>,
}

/// Checks the fields that are present.
fn validate_site(body: &SiteBody) -> Result<(), ApiError> {
    let bad = |code: &'static str, message: &str| Err(ApiError::invalid(code, message.to_owned()));
    if let Some(key) = &body.key {
        if key.is_empty() || key.len() > 64 || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return bad("invalid_key", "key must be 1 to 64 letters, digits, '_' or '-'");
        }
    }
    if body.name.as_ref().is_some_and(|n| n.trim().is_empty() || n.chars().count() > 200) {
        return bad("invalid_name", "name must be 1 to 200 characters");
    }
    if let Some(origins) = &body.allowed_origins {
        if origins.len() > MAX_ORIGINS {
            return bad("invalid_origins", "at most 50 origins");
        }
        for origin in origins {
            let valid = origin == "*"
                || ((origin.starts_with("https://") || origin.starts_with("http://"))
                    && !origin.trim_end_matches('/').split_once("://").is_some_and(|(_, rest)| rest.is_empty() || rest.contains('/')));
            if !valid {
                return bad("invalid_origins", "each origin must be \"*\" or scheme://host[:port], without a path");
            }
        }
    }
    if body.email_from.as_ref().and_then(|f| f.as_deref()).map(str::trim).is_some_and(|f| !f.is_empty() && !crate::email::valid_sender(f)) {
        return bad("invalid_email_from", "email_from must be an address, or a name and <address>");
    }
    if body.greeting.as_ref().and_then(|g| g.as_ref()).is_some_and(|g| g.chars().count() > MAX_TEXT_CHARS) {
        return bad("invalid_greeting", "greeting is too long");
    }
    if body.color.as_ref().is_some_and(|c| !(c.len() == 4 || c.len() == 7) || !c.starts_with('#') || !c[1..].chars().all(|h| h.is_ascii_hexdigit())) {
        return bad("invalid_color", "color must be #rgb or #rrggbb");
    }
    if body.position.as_ref().is_some_and(|p| p != "left" && p != "right") {
        return bad("invalid_position", "position must be left or right");
    }
    Ok(())
}

pub async fn list_sites(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({ "sites": store::sites::list(&state.db).await? })))
}

fn site_fields(body: SiteBody) -> store::sites::SiteFields {
    store::sites::SiteFields {
        name: body.name,
        allowed_origins: body.allowed_origins,
        greeting: body.greeting,
        color: body.color,
        position: body.position,
        prechat_form: body.prechat_form,
        email_from: body.email_from.map(|from| from.map(|f| f.trim().to_owned()).filter(|f| !f.is_empty())),
    }
}

pub async fn create_site(body: web::Json<SiteBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate_site(&body)?;
    let (Some(key), Some(name)) = (body.key.clone(), body.name.clone()) else {
        return Err(ApiError::invalid("missing_field", "key and name are required"));
    };
    let site = store::sites::insert(&state.db, &key, &name, &site_fields(body)).await?;
    Ok(HttpResponse::Created().json(site))
}

pub async fn update_site(key: web::Path<String>, body: web::Json<SiteBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.key.is_some() {
        return Err(ApiError::invalid("invalid_key", "a site's key cannot change (widgets use it)"));
    }
    validate_site(&body)?;
    let site = store::sites::update(&state.db, &key, &site_fields(body)).await?;
    state.sites.forget(&key);
    state.hub.settings_changed(SettingsChange::Site(key.clone()));
    Ok(HttpResponse::Ok().json(site))
}

pub async fn delete_site(key: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if key.as_str() == DEFAULT_SITE {
        return Err(ApiError::Conflict("the default site cannot be deleted".into()));
    }
    store::sites::delete(&state.db, &key).await?;
    state.sites.forget(&key);
    state.hub.settings_changed(SettingsChange::Site(key.clone()));
    Ok(HttpResponse::NoContent().finish())
}

// ---- completion rules ------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    name: Option<String>,
    kind: Option<String>,
    pattern: Option<String>,
    enabled: Option<bool>,
    position: Option<i32>,
}

/// Reloads the live rule set after a change.
async fn reload(state: &AppState) -> Result<(), ApiError> {
    state.hub.reload_rules().await?;
    state.hub.settings_changed(SettingsChange::Rules);
    Ok(())
}

fn check_rule(name: &str, kind: &str, pattern: &str, booking_url: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("invalid_name", "a rule name must be 1 to 100 characters"));
    }
    if pattern.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid("invalid_pattern", "the pattern is too long"));
    }
    Rule::compile(name, kind, pattern, booking_url).map(|_| ()).map_err(|e| ApiError::invalid("invalid_rule", e.to_string()))
}

pub async fn list_rules(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rules = store::rules::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(json!({ "rules": rules, "booking_url": state.config.booking_url })))
}

pub async fn create_rule(body: web::Json<RuleBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (Some(name), Some(kind), Some(pattern)) = (&body.name, &body.kind, &body.pattern) else {
        return Err(ApiError::invalid("missing_field", "name, kind and pattern are required"));
    };
    check_rule(name, kind, pattern, &state.config.booking_url)?;
    let fields = store::rules::RuleFields { name, kind, pattern, enabled: body.enabled, position: body.position };
    let rule = store::rules::insert(&state.db, &fields).await?;
    reload(&state).await?;
    Ok(HttpResponse::Created().json(rule))
}

pub async fn update_rule(id: web::Path<Uuid>, body: web::Json<RuleBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (name, kind, pattern) = store::rules::definition(&state.db, *id).await?;
    let name = body.name.clone().unwrap_or(name);
    let kind = body.kind.clone().unwrap_or(kind);
    let pattern = body.pattern.clone().unwrap_or(pattern);
    check_rule(&name, &kind, &pattern, &state.config.booking_url)?;
    let fields = store::rules::RuleFields { name: &name, kind: &kind, pattern: &pattern, enabled: body.enabled, position: body.position };
    let rule = store::rules::update(&state.db, *id, &fields).await?;
    reload(&state).await?;
    Ok(HttpResponse::Ok().json(rule))
}

pub async fn delete_rule(id: web::Path<Uuid>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    store::rules::delete(&state.db, *id).await?;
    reload(&state).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    text: String,
}

/// Which enabled rule would fire for this message?
pub async fn test_rules(body: web::Json<RuleTest>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if body.text.chars().count() > 10_000 {
        return Err(ApiError::invalid("text_too_long", "text is too long"));
    }
    let rules = state.hub.rules.current();
    Ok(HttpResponse::Ok().json(json!({ "rule": rules.first_match(&body.text) })))
}
