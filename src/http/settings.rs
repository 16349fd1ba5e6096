//! Admin settings: sites (`/api/sites…`: where the widget may run and how it
//! looks) and completion rules (`/api/completion-rules…`: list, add, edit,
//! disable, delete, and test a text against them). A rule change takes
//! effect at once: the live rule set is reloaded.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiError;
use crate::completion::{Rule, RuleSet};
use crate::sites::DEFAULT_SITE;
use crate::state::AppState;
use crate::protocol::rfc3339;

const SITE_COLUMNS: &str = "id, key, name, allowed_origins, greeting, color, position, prechat_form, created_at";
const MAX_ORIGINS: usize = 50;
const MAX_TEXT_CHARS: usize = 1000;

fn site_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, Uuid>(0), "key": r.get::<_, String>(1), "name": r.get::<_, String>(2),
        "allowed_origins": r.get::<_, Vec<String>>(3), "greeting": r.get::<_, Option<String>>(4),
        "color": r.get::<_, String>(5), "position": r.get::<_, String>(6), "prechat_form": r.get::<_, bool>(7),
        "created_at": rfc3339::format(&r.get(8)),
    })
}

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
    let rows = state.db.get().await?.query(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY key"), &[]).await?;
    Ok(HttpResponse::Ok().json(json!({ "sites": rows.iter().map(site_json).collect::<Vec<_>>() })))
}

pub async fn create_site(body: web::Json<SiteBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate_site(&body)?;
    let (Some(key), Some(name)) = (&body.key, &body.name) else {
        return Err(ApiError::invalid("missing_field", "key and name are required"));
    };
    let row = state
        .db
        .get()
        .await?
        .query_opt(
            &format!(
                "INSERT INTO sites (id, key, name, allowed_origins, greeting, color, position, prechat_form)
                 VALUES ($1, $2, $3, $4, $5, COALESCE($6, '#0d6efd'), COALESCE($7, 'right'), COALESCE($8, false))
                 ON CONFLICT (key) DO NOTHING RETURNING {SITE_COLUMNS}"
            ),
            &[&Uuid::new_v4(), key, name, &body.allowed_origins.clone().unwrap_or_default(), &body.greeting.clone().flatten(),
              &body.color, &body.position, &body.prechat_form],
        )
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("a site with key {key:?} exists")))?;
    Ok(HttpResponse::Created().json(site_json(&row)))
}

pub async fn update_site(key: web::Path<String>, body: web::Json<SiteBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.key.is_some() {
        return Err(ApiError::invalid("invalid_key", "a site's key cannot change (widgets use it)"));
    }
    validate_site(&body)?;
    let row = state
        .db
        .get()
        .await?
        .query_opt(
            &format!(
                "UPDATE sites SET name = COALESCE($2, name), allowed_origins = COALESCE($3, allowed_origins),
                    greeting = CASE WHEN $4 THEN $5 ELSE greeting END, color = COALESCE($6, color),
                    position = COALESCE($7, position), prechat_form = COALESCE($8, prechat_form), updated_at = now()
                 WHERE key = $1 RETURNING {SITE_COLUMNS}"
            ),
            &[&*key, &body.name, &body.allowed_origins, &body.greeting.is_some(), &body.greeting.clone().flatten(),
              &body.color, &body.position, &body.prechat_form],
        )
        .await?
        .ok_or(ApiError::NotFound("site"))?;
    Ok(HttpResponse::Ok().json(site_json(&row)))
}

pub async fn delete_site(key: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if key.as_str() == DEFAULT_SITE {
        return Err(ApiError::Conflict("the default site cannot be deleted".into()));
    }
    let deleted = state.db.get().await?.execute("DELETE FROM sites WHERE key = $1", &[&*key]).await?;
    if deleted == 0 {
        return Err(ApiError::NotFound("site"));
    }
    Ok(HttpResponse::NoContent().finish())
}

// ---- completion rules ------------------------------------------------------

const RULE_COLUMNS: &str = "id, name, kind, pattern, enabled, position, fire_count, last_fired_at";

fn rule_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, Uuid>(0), "name": r.get::<_, String>(1), "kind": r.get::<_, String>(2),
        "pattern": r.get::<_, String>(3), "enabled": r.get::<_, bool>(4), "position": r.get::<_, i32>(5),
        "fire_count": r.get::<_, i64>(6),
        "last_fired_at": rfc3339::format_opt(r.get(7)),
    })
}

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
    state.hub.rules.replace(RuleSet::load(&state.db, &state.config.booking_url).await?);
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
    let rows = state.db.get().await?.query(&format!("SELECT {RULE_COLUMNS} FROM completion_rules ORDER BY position, name"), &[]).await?;
    Ok(HttpResponse::Ok().json(json!({ "rules": rows.iter().map(rule_json).collect::<Vec<_>>(), "booking_url": state.config.booking_url })))
}

pub async fn create_rule(body: web::Json<RuleBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (Some(name), Some(kind), Some(pattern)) = (&body.name, &body.kind, &body.pattern) else {
        return Err(ApiError::invalid("missing_field", "name, kind and pattern are required"));
    };
    check_rule(name, kind, pattern, &state.config.booking_url)?;
    let row = state
        .db
        .get()
        .await?
        .query_opt(
            &format!(
                "INSERT INTO completion_rules (id, name, kind, pattern, enabled, position)
                 VALUES ($1, $2, $3, $4, COALESCE($5, true), COALESCE($6, 100))
                 ON CONFLICT (name) DO NOTHING RETURNING {RULE_COLUMNS}"
            ),
            &[&Uuid::new_v4(), name, kind, pattern, &body.enabled, &body.position],
        )
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("a rule named {name:?} exists")))?;
    reload(&state).await?;
    Ok(HttpResponse::Created().json(rule_json(&row)))
}

pub async fn update_rule(id: web::Path<Uuid>, body: web::Json<RuleBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let client = state.db.get().await?;
    let current = client
        .query_opt("SELECT name, kind, pattern FROM completion_rules WHERE id = $1", &[&*id])
        .await?
        .ok_or(ApiError::NotFound("rule"))?;
    let name = body.name.clone().unwrap_or_else(|| current.get(0));
    let kind = body.kind.clone().unwrap_or_else(|| current.get(1));
    let pattern = body.pattern.clone().unwrap_or_else(|| current.get(2));
    check_rule(&name, &kind, &pattern, &state.config.booking_url)?;
    let row = client
        .query_one(
            &format!(
                "UPDATE completion_rules SET name = $2, kind = $3, pattern = $4, enabled = COALESCE($5, enabled),
                    position = COALESCE($6, position), updated_at = now() WHERE id = $1 RETURNING {RULE_COLUMNS}"
            ),
            &[&*id, &name, &kind, &pattern, &body.enabled, &body.position],
        )
        .await
        .map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => ApiError::Conflict(format!("a rule named {name:?} exists")),
            _ => e.into(),
        })?;
    drop(client);
    reload(&state).await?;
    Ok(HttpResponse::Ok().json(rule_json(&row)))
}

pub async fn delete_rule(id: web::Path<Uuid>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let deleted = state.db.get().await?.execute("DELETE FROM completion_rules WHERE id = $1", &[&*id]).await?;
    if deleted == 0 {
        return Err(ApiError::NotFound("rule"));
    }
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
