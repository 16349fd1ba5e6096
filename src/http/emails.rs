//! Email to leads (SPEC §13): `/api/email-templates` (everyone on staff
//! reads them; handlers write them; a template is changed or deleted by
//! whoever created it or an admin), the preview, and
//! `POST /api/sessions/{id}/emails`, which renders a template (or a one-off
//! subject and body) against the session and queues it for the notifier.
//!
//! Variables: the server fills `customer_name`, `customer_email`,
//! `customer_phone`, `agent_name` (the sender's display name),
//! `booking_url` and `site_name`; the sender gives the rest (and may
//! override those) in `variables`. A send naming a variable without a
//! value, or giving one the text does not use, is refused with 422 naming
//! them, before anything is stored.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::auth::staff_sessions::StaffUser;
use crate::domain::{Role, SessionId};
use crate::email::render::{self, MAX_BODY_CHARS, MAX_SUBJECT_CHARS, RenderError};
use crate::email::{CATEGORIES, KNOWN_VARIABLES, valid_address};
use crate::state::AppState;
use crate::store;
use crate::store::email_templates::{TemplateFields, TemplateRow};
use crate::store::sessions::SessionSummary;
use crate::store::sites::SiteRow;

const MAX_NAME_CHARS: usize = 100;
/// Most variables one send may give, and the longest value.
const MAX_VARIABLES: usize = 50;
const MAX_VALUE_CHARS: usize = 2000;

fn refused(e: RenderError) -> ApiError {
    match e {
        RenderError::Syntax(message) => ApiError::invalid("invalid_template", message),
        RenderError::Missing(names) => ApiError::Unprocessable {
            code: "missing_variables",
            message: format!("no value for {}", names.iter().map(|n| format!("{{{{{n}}}}}")).collect::<Vec<_>>().join(", ")),
        },
        RenderError::TooLong => ApiError::invalid("too_long", e.to_string()),
    }
}

/// A template with the variables it uses.
fn with_variables(template: TemplateRow) -> serde_json::Value {
    let variables = render::variables(&template.subject, &template.body).unwrap_or_default();
    let mut value = serde_json::to_value(&template).expect("templates serialise");
    value["variables"] = json!(variables);
    value
}

#[derive(Deserialize)]
pub struct ListQuery {
    category: Option<String>,
    /// `true`: only active templates (what the send dialog offers).
    active: Option<bool>,
}

/// `GET /api/email-templates`
pub async fn list(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(category) = &query.category {
        check_category(category)?;
    }
    let templates = store::email_templates::list(&state.db, query.category.as_deref(), query.active.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "templates": templates.into_iter().map(with_variables).collect::<Vec<_>>(),
        "categories": CATEGORIES,
        "variables": KNOWN_VARIABLES,
    })))
}

fn check_category(category: &str) -> Result<(), ApiError> {
    if CATEGORIES.contains(&category) {
        Ok(())
    } else {
        Err(ApiError::invalid("invalid_category", format!("category must be one of {}", CATEGORIES.join(", "))))
    }
}

/// A template as created, or the fields of a change (absent: unchanged).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    name: Option<String>,
    category: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    active: Option<bool>,
}

/// Checks a template's fields (after merging a change into what is stored).
fn check(fields: &TemplateFields<'_>) -> Result<(), ApiError> {
    let name = fields.name;
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(ApiError::invalid("invalid_name", format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    check_category(fields.category)?;
    if fields.subject.is_empty() || fields.subject.chars().count() > MAX_SUBJECT_CHARS || fields.subject.contains(['\0', '\n', '\r']) {
        return Err(ApiError::invalid("invalid_subject", format!("subject must be one line of 1 to {MAX_SUBJECT_CHARS} characters")));
    }
    if fields.body.is_empty() || fields.body.chars().count() > MAX_BODY_CHARS || fields.body.contains('\0') {
        return Err(ApiError::invalid("invalid_body", format!("body must be 1 to {MAX_BODY_CHARS} characters")));
    }
    render::variables(fields.subject, fields.body).map_err(refused)?;
    Ok(())
}

/// `POST /api/email-templates`
pub async fn create(body: web::Json<TemplateBody>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (Some(name), Some(category), Some(subject), Some(text)) = (&body.name, &body.category, &body.subject, &body.body) else {
        return Err(ApiError::invalid("missing_field", "name, category, subject and body are required"));
    };
    let fields = TemplateFields { name: name.trim(), category, subject: subject.trim(), body: text.trim(), active: body.active.unwrap_or(true) };
    check(&fields)?;
    let template = store::email_templates::insert(&state.db, &fields, &user.username).await?;
    Ok(HttpResponse::Created().json(with_variables(template)))
}

/// Templates are changed by whoever created them, or an admin (the
/// out-of-the-box ones: admins).
fn may_change(template: &TemplateRow, user: &StaffUser) -> Result<(), ApiError> {
    if user.role == Role::Admin || template.created_by.as_deref() == Some(user.username.as_str()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only its author or an admin may change this template"))
    }
}

/// `PUT /api/email-templates/{id}`
pub async fn update(id: web::Path<Uuid>, body: web::Json<TemplateBody>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let current = store::email_templates::get(&state.db, *id).await?;
    may_change(&current, &user)?;
    let fields = TemplateFields {
        name: body.name.as_deref().map(str::trim).unwrap_or(&current.name),
        category: body.category.as_deref().unwrap_or(&current.category),
        subject: body.subject.as_deref().map(str::trim).unwrap_or(&current.subject),
        body: body.body.as_deref().map(str::trim).unwrap_or(&current.body),
        active: body.active.unwrap_or(current.active),
    };
    check(&fields)?;
    let template = store::email_templates::update(&state.db, *id, &fields).await?;
    Ok(HttpResponse::Ok().json(with_variables(template)))
}

/// `DELETE /api/email-templates/{id}`
pub async fn delete(id: web::Path<Uuid>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    may_change(&store::email_templates::get(&state.db, *id).await?, &user)?;
    store::email_templates::delete(&state.db, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What to render: a stored template, or a subject and body of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Composition {
    template_id: Option<Uuid>,
    subject: Option<String>,
    body: Option<String>,
    /// Preview only: whose values to fill in (the send takes it from the path).
    session_id: Option<Uuid>,
    to: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// The subject and body to render, and the template they came from.
async fn source(state: &AppState, c: &Composition) -> Result<(Option<Uuid>, String, String), ApiError> {
    match (c.template_id, &c.subject, &c.body) {
        (Some(id), None, None) => {
            let template = store::email_templates::get(&state.db, id).await?;
            if !template.active {
                return Err(ApiError::Conflict("this template is switched off".into()));
            }
            Ok((Some(id), template.subject, template.body))
        }
        (None, Some(subject), Some(body)) => {
            let (subject, body) = (subject.trim(), body.trim());
            if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS || body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
                return Err(ApiError::invalid("invalid_email", format!("subject must be 1 to {MAX_SUBJECT_CHARS} and body 1 to {MAX_BODY_CHARS} characters")));
            }
            Ok((None, subject.to_owned(), body.to_owned()))
        }
        _ => Err(ApiError::invalid("invalid_email", "give either template_id, or subject and body")),
    }
}

/// The site a session came from (the default site without one): its name
/// fills `site_name`, its sender sends the email.
async fn site_of(state: &AppState, session: Option<&SessionSummary>) -> Result<Option<SiteRow>, ApiError> {
    let key = session.and_then(|s| s.site.as_deref()).unwrap_or(crate::sites::DEFAULT_SITE);
    Ok(store::sites::find(&state.db, key).await?)
}

/// The values the server knows for a session, its site and a sender.
fn known_values(state: &AppState, session: Option<&SessionSummary>, site: Option<&SiteRow>, user: &StaffUser) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            values.insert(name.to_owned(), value.to_owned());
        }
    };
    put("agent_name", Some(&user.display_name));
    put("booking_url", Some(&state.config.booking_url));
    put("site_name", site.map(|s| s.name.as_str()));
    if let Some(session) = session {
        put("customer_name", session.customer.name.as_deref());
        put("customer_email", session.customer.email.as_deref());
        put("customer_phone", session.customer.phone.as_deref());
    }
    values
}

/// Checks the sender's values: only variables the text uses, bounded.
fn given_values(given: &BTreeMap<String, String>, used: &[String]) -> Result<(), ApiError> {
    if given.len() > MAX_VARIABLES || given.values().any(|v| v.chars().count() > MAX_VALUE_CHARS || v.contains('\0')) {
        return Err(ApiError::invalid("invalid_variables", format!("at most {MAX_VARIABLES} variables of at most {MAX_VALUE_CHARS} characters")));
    }
    let unknown: Vec<String> = given.keys().filter(|k| !used.contains(k)).map(|k| format!("{{{{{k}}}}}")).collect();
    if !unknown.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "unknown_variables",
            message: format!("the email does not use {}", unknown.join(", ")),
        });
    }
    Ok(())
}

/// `POST /api/email-templates/preview`: the email as it would go out, with
/// `{{name}}` left showing where a value is missing; and which variables it
/// uses, which the server filled, and which are missing.
pub async fn preview(body: web::Json<Composition>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (_, subject, text) = source(&state, &body).await?;
    let used = render::variables(&subject, &text).map_err(refused)?;
    given_values(&body.variables, &used)?;
    let session = match body.session_id {
        Some(id) => Some(store::sessions::summary(&state.db, id, state.config.inactive_after_hours).await?),
        None => None,
    };
    let site = site_of(&state, session.as_ref()).await?;
    let known = known_values(&state, session.as_ref(), site.as_ref(), &user);
    let mut values = known.clone();
    values.extend(body.variables.iter().filter(|(_, v)| !v.trim().is_empty()).map(|(k, v)| (k.clone(), v.clone())));
    let missing: Vec<&String> = used.iter().filter(|v| !values.contains_key(*v)).collect();
    for name in &missing {
        values.insert((*name).clone(), format!("{{{{{name}}}}}"));
    }
    let rendered = render::render(&subject, &text, &values).map_err(refused)?;
    let filled: BTreeMap<&String, &String> = known.iter().filter(|(k, _)| used.contains(k)).collect();
    Ok(HttpResponse::Ok().json(json!({
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "variables": used,
        "values": filled,
        "missing": missing,
        "to": session.as_ref().and_then(|s| s.customer.email.clone()),
    })))
}

/// `POST /api/sessions/{id}/emails`: renders and queues an email to the
/// lead. 201 with the email (`status: queued`) and, when the address bounced
/// or complained before, a `warning`.
pub async fn send(id: web::Path<Uuid>, body: web::Json<Composition>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.config.resend_api_key.is_none() {
        return Err(ApiError::Unprocessable { code: "email_not_configured", message: "email is not set up: RESEND_API_KEY is missing".into() });
    }
    if body.session_id.is_some_and(|s| s != *id) {
        return Err(ApiError::invalid("invalid_email", "session_id differs from the session in the path"));
    }
    let session = store::sessions::summary(&state.db, *id, state.config.inactive_after_hours).await?;
    let (template_id, subject, text) = source(&state, &body).await?;
    let used = render::variables(&subject, &text).map_err(refused)?;
    given_values(&body.variables, &used)?;
    let to = match body.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(to) => to.to_owned(),
        None => session.customer.email.clone().ok_or(ApiError::Unprocessable {
            code: "missing_recipient",
            message: "the lead has no email address: give \"to\"".into(),
        })?,
    };
    if !valid_address(&to) {
        return Err(ApiError::invalid("invalid_to", "to must be one email address"));
    }
    let site = site_of(&state, Some(&session)).await?;
    let mut values = known_values(&state, Some(&session), site.as_ref(), &user);
    values.extend(body.variables.clone());
    let rendered = render::render(&subject, &text, &values).map_err(refused)?;
    let from = site.and_then(|s| s.email_from).unwrap_or_else(|| state.config.email_from.clone());
    let email = store::emails::queue(
        &state.db,
        &store::emails::NewEmail {
            session_id: *id,
            template_id,
            to: &to,
            from: &from,
            subject: &rendered.subject,
            html: &rendered.html,
            text: &rendered.text,
            sent_by: &user.display_name,
        },
    )
    .await?;
    state.hub.notifier.wake();
    state.hub.email_changed(SessionId(*id), email.clone());
    let warning = store::emails::address_flag(&state.db, &to)
        .await?
        .map(|(reason, at)| format!("{to} {reason} on {}; this email may not arrive", at.format("%Y-%m-%d")));
    Ok(HttpResponse::Created().json(json!({ "email": email, "warning": warning })))
}
