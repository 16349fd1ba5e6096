//! The route table: every HTTP route with its method, path, access rule and
//! one-line summary. It is the single source for mounting the routes, for
//! enforcing who may call them (`authorize`, below, wraps each
//! resource), for the OpenAPI document and for the docs' role matrix, so the
//! four cannot drift apart.

use std::collections::HashMap;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use actix_web::{Route, web};

use super::{ai_health, assets, attachments, auth, calls, replays, canned, deliveries, emails, errors, export, health, openapi, relay, sessions, settings, sites, users, webhooks};
use crate::auth::access::{ANY_STAFF, Access, Principal, authenticate, bearer, check_csrf, is_api_key};
use crate::error::ApiError;
use crate::state::AppState;
use crate::domain::role::{ADMINS, DEVELOPERS, HANDLERS, REVIEWERS};


pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    /// Also answer under `/api/messenger-sessions…` (the seeds' name).
    pub seed_alias: bool,
    pub handler: fn(Route) -> Route,
}

const SESSIONS: &str = "/api/sessions";
const SEED_SESSIONS: &str = "/api/messenger-sessions";

macro_rules! route {
    ($method:ident $path:literal, $access:expr, $summary:literal, $handler:path) => {
        route!(@ $method $path, $access, $summary, false, $handler)
    };
    ($method:ident $path:literal, $access:expr, $summary:literal, alias, $handler:path) => {
        route!(@ $method $path, $access, $summary, true, $handler)
    };
    (@ $method:ident $path:literal, $access:expr, $summary:literal, $alias:expr, $handler:path) => {
        RouteSpec {
            method: Method::$method,
            path: $path,
            access: $access,
            summary: $summary,
            seed_alias: $alias,
            handler: |r| r.to($handler),
        }
    };
}

/// Every route. Literal paths come before parameterised ones they overlap.
pub fn table() -> Vec<RouteSpec> {
    use Access::*;
    vec![
        route!(GET "/", Public, "The staff dashboard", assets::index),
        route!(GET "/static/{path:.*}", Public, "Dashboard scripts, styles and vendored libraries", assets::dashboard_file),
        route!(GET "/widget.js", Public, "The widget loader for customer sites", assets::widget_loader),
        route!(GET "/widget/{path:.*}", Public, "The widget's chat frame", assets::widget_file),
        route!(GET "/demo", Public, "A demo landing page embedding the widget", assets::demo),
        route!(GET "/health", Public, "Liveness and database reachability", health::health),
        route!(GET "/metrics", Public, "Prometheus metrics", health::metrics),
        route!(GET "/api/openapi.json", Public, "This API's OpenAPI document", openapi::document),
        route!(GET "/ws/chat", Public, "Visitor WebSocket (see docs/protocol.md)", crate::ws::visitor::visitor_socket),
        route!(GET "/ws/dashboard", Staff(ANY_STAFF), "Staff dashboard WebSocket (see docs/protocol.md)", crate::ws::dashboard::dashboard_socket),
        route!(GET "/api/sites/{key}/public", Public, "A site's public widget settings", sites::public_settings),
        // Channels (each POST checks Meta's signature itself).
        route!(GET "/webhooks/messenger", Public, "Messenger webhook verification (hub.challenge)", webhooks::messenger_verify),
        route!(POST "/webhooks/messenger", Public, "Messenger webhook events (X-Hub-Signature-256)", webhooks::messenger_event),
        route!(GET "/webhooks/whatsapp", Public, "WhatsApp webhook verification (hub.challenge)", webhooks::whatsapp_verify),
        route!(POST "/webhooks/whatsapp", Public, "WhatsApp webhook events (X-Hub-Signature-256)", webhooks::whatsapp_event),
        route!(POST "/webhooks/resend", Public, "Resend email events: sent, delivered, opened, clicked, bounced (Svix-signed)", webhooks::resend_event),
        // Staff login.
        route!(POST "/api/auth/login", Public, "Sign in; sets the session cookie", auth::login),
        route!(POST "/api/auth/logout", Staff(ANY_STAFF), "Sign out; ends the session", auth::logout),
        route!(GET "/api/auth/me", Staff(ANY_STAFF), "The signed-in user and the CSRF token", auth::me),
        route!(PUT "/api/auth/me", Staff(ANY_STAFF), "Set your own display name", auth::update_me),
        route!(GET "/api/staff", Staff(HANDLERS), "Who a conversation may be assigned to", users::assignable),
        // Sessions.
        route!(GET "/api/sessions", StaffOrMachine(ANY_STAFF), "List sessions with filters and pagination", alias, sessions::list),
        route!(POST "/api/sessions", StaffOrMachine(ADMINS), "Relay: create a session with messages, or append by external id", alias, relay::create),
        route!(GET "/api/sessions/stats", Staff(ANY_STAFF), "Counts, per-day series, completion rate, AI response time", alias, sessions::stats),
        route!(GET "/api/sessions/export", Staff(ANY_STAFF), "Export sessions as CSV or JSON (streamed)", alias, export::sessions),
        route!(POST "/api/sessions/bulk", Staff(HANDLERS), "Archive, unarchive or delete many sessions", alias, sessions::bulk),
        route!(GET "/api/sessions/{id}", StaffOrMachine(ANY_STAFF), "A session with its transcript (paged by seq) and QA history", alias, sessions::detail),
        route!(PUT "/api/sessions/{id}", Staff(HANDLERS), "Change status, priority or assignee", alias, sessions::update),
        route!(GET "/api/ai-health", Staff(ANY_STAFF), "The AI's replies, latency, timeouts, fallbacks, errors, loops and stuck typing over a window (this node)", ai_health::health),
        route!(GET "/api/ai-health/alerts", Staff(ANY_STAFF), "The AI-health alert thresholds", ai_health::alerts),
        route!(PUT "/api/ai-health/alerts", Staff(ADMINS), "Replace the AI-health alert thresholds", ai_health::set_alerts),
        route!(GET "/api/replays", Staff(ANY_STAFF), "Replays, newest first, with their summaries", replays::list),
        route!(POST "/api/replays", Staff(DEVELOPERS), "Replay sessions against the agent configured now (a sandbox)", replays::create),
        route!(GET "/api/replays/{id}", Staff(ANY_STAFF), "A replay: every turn's original and replayed answer, and the summary", replays::get),
        route!(GET "/api/calls/ice-servers", Conversation { roles: ANY_STAFF, machine: false }, "STUN/TURN servers for a video call, TURN with short-lived credentials", calls::ice_servers),
        route!(POST "/api/attachments", Conversation { roles: HANDLERS, machine: false }, "Upload a file (multipart `file`) into a conversation", attachments::upload),
        route!(GET "/api/attachments/{id}", Conversation { roles: ANY_STAFF, machine: true }, "A conversation's file: its visitor (token) or staff", attachments::download),
        route!(DELETE "/api/sessions/{id}", Staff(DEVELOPERS), "Delete a session and its messages", alias, sessions::delete),
        route!(PUT "/api/sessions/{id}/qa", Staff(REVIEWERS), "Set the QA status and notes", alias, sessions::qa),
        route!(PUT "/api/sessions/{id}/dev-feedback", Staff(DEVELOPERS), "Set developer feedback", alias, sessions::dev_feedback),
        route!(POST "/api/sessions/{id}/claim", Staff(HANDLERS), "Assign the session to yourself", alias, sessions::claim),
        route!(POST "/api/sessions/{id}/takeover", Staff(HANDLERS), "Pause (on) or resume (off) the AI for a session", alias, sessions::takeover),
        route!(POST "/api/sessions/{id}/reply", Staff(HANDLERS), "Answer the visitor as a staff member", alias, sessions::reply),
        route!(POST "/api/sessions/{id}/notes", Staff(ANY_STAFF), "Add a private note (staff only, never sent)", alias, sessions::add_note),
        route!(POST "/api/sessions/{id}/emails", Staff(HANDLERS), "Email the lead from a template or a subject and body", alias, emails::send),
        route!(POST "/api/sessions/{id}/messages", StaffOrMachine(ADMINS), "Relay: append one message (with its own id)", alias, relay::append),
        route!(GET "/api/escalations", Staff(ANY_STAFF), "Open escalations, most urgent first", sessions::escalations),
        // Errors.
        route!(POST "/api/errors", StaffOrMachine(ADMINS), "Record an automation error", errors::create),
        route!(GET "/api/errors", Staff(ANY_STAFF), "List recorded errors", errors::list),
        route!(GET "/api/deliveries", Staff(ANY_STAFF), "Outbox deliveries: status, attempts, last error", deliveries::list),
        route!(POST "/api/deliveries/{id}/retry", Staff(DEVELOPERS), "Send a dead, failed or skipped delivery again", deliveries::retry),
        // Users and API keys.
        route!(GET "/api/users", Staff(ADMINS), "List staff users", users::list),
        route!(POST "/api/users", Staff(ADMINS), "Create a staff user", users::create),
        route!(PUT "/api/users/{id}", Staff(ADMINS), "Change a user's role, name or email, disable them, or reset the password", users::update),
        route!(DELETE "/api/users/{id}", Staff(ADMINS), "Delete a user (their QA history and messages stay readable)", users::delete),
        route!(GET "/api/api-keys", Staff(ADMINS), "List API keys", users::list_keys),
        // Sites and completion rules.
        route!(GET "/api/sites", Staff(ADMINS), "List the sites the widget may run on", settings::list_sites),
        route!(POST "/api/sites", Staff(ADMINS), "Add a site (key, origins, greeting, colour, position, pre-chat form)", settings::create_site),
        route!(PUT "/api/sites/{key}", Staff(ADMINS), "Change a site", settings::update_site),
        route!(DELETE "/api/sites/{key}", Staff(ADMINS), "Delete a site (not the default one)", settings::delete_site),
        route!(GET "/api/canned-responses", Staff(ANY_STAFF), "Canned responses, and the server's template variables", canned::list),
        route!(POST "/api/canned-responses", Staff(ADMINS), "Add a canned response", canned::create),
        route!(PUT "/api/canned-responses/{id}", Staff(ADMINS), "Change a canned response", canned::update),
        route!(DELETE "/api/canned-responses/{id}", Staff(ADMINS), "Delete a canned response", canned::delete),
        route!(GET "/api/email-templates", Staff(ANY_STAFF), "Email templates with their variables, usage and open/click/bounce rates", emails::list),
        route!(POST "/api/email-templates", Staff(HANDLERS), "Add an email template", emails::create),
        route!(POST "/api/email-templates/preview", Staff(HANDLERS), "Render an email against a session or sample values", emails::preview),
        route!(PUT "/api/email-templates/{id}", Staff(HANDLERS), "Change an email template (its author or an admin)", emails::update),
        route!(DELETE "/api/email-templates/{id}", Staff(HANDLERS), "Delete an email template (its author or an admin)", emails::delete),
        route!(GET "/api/completion-rules", Staff(ADMINS), "List completion rules with how often each fired", settings::list_rules),
        route!(POST "/api/completion-rules", Staff(ADMINS), "Add a completion rule", settings::create_rule),
        route!(POST "/api/completion-rules/test", Staff(ADMINS), "Which rule fires for a text?", settings::test_rules),
        route!(PUT "/api/completion-rules/{id}", Staff(ADMINS), "Change, enable or disable a rule", settings::update_rule),
        route!(DELETE "/api/completion-rules/{id}", Staff(ADMINS), "Delete a rule", settings::delete_rule),
        route!(POST "/api/api-keys", Staff(ADMINS), "Create an API key (shown once)", users::create_key),
        route!(DELETE "/api/api-keys/{id}", Staff(ADMINS), "Revoke an API key", users::revoke_key),
    ]
}

/// Every (method, path) that is mounted, seed aliases included.
pub fn mounted() -> Vec<(Method, String, Access, &'static str)> {
    let mut all = Vec::new();
    for spec in table() {
        all.push((spec.method.clone(), spec.path.to_owned(), spec.access, spec.summary));
        if spec.seed_alias {
            let alias = spec.path.replacen(SESSIONS, SEED_SESSIONS, 1);
            all.push((spec.method.clone(), alias, spec.access, spec.summary));
        }
    }
    all
}

/// Mounts the table: one resource per path, all its methods on it, wrapped
/// in the authorisation middleware with that path's access rules.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let specs = table();
    let mut paths: Vec<String> = Vec::new();
    let mut by_path: HashMap<String, Vec<&RouteSpec>> = HashMap::new();
    for spec in &specs {
        let mut add = |path: String| {
            if !by_path.contains_key(&path) {
                paths.push(path.clone());
            }
            by_path.entry(path).or_default().push(spec);
        };
        add(spec.path.to_owned());
        if spec.seed_alias {
            add(spec.path.replacen(SESSIONS, SEED_SESSIONS, 1));
        }
    }
    for path in paths {
        let routes = &by_path[&path];
        let rules: HashMap<Method, Access> = routes.iter().map(|s| (s.method.clone(), s.access)).collect();
        let rules = Rc::new(rules);
        let mut resource = web::resource(path.as_str());
        for spec in routes {
            resource = resource.route((spec.handler)(web::method(spec.method.clone())));
        }
        resource = resource.default_service(web::to(super::method_not_allowed));
        cfg.service(resource.wrap(actix_web::middleware::from_fn(move |req, next| authorize(rules.clone(), req, next))));
    }
}

/// The route × role table for `docs/api.md` (kept true by a test; print it
/// with `chathub routes`).
pub fn markdown_matrix() -> String {
    use crate::domain::Role;
    let mut out = String::from("| method | path | summary | anonymous | API key |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|---|---|---|---|---|---|---|---|\n");
    let mark = |yes: bool| if yes { "✓" } else { "—" };
    for (method, path, access, summary) in mounted() {
        let (public, machine, roles): (bool, bool, &[Role]) = match access {
            Access::Public => (true, true, &Role::ALL),
            Access::Staff(roles) => (false, false, roles),
            Access::Machine => (false, true, &[]),
            Access::StaffOrMachine(roles) => (false, true, roles),
            Access::Conversation { roles, machine } => (false, machine, roles),
        };
        out.push_str(&format!("| {method} | `{path}` | {summary} | {} | {} |", mark(public), mark(machine)));
        for role in Role::ALL {
            out.push_str(&format!(" {} |", mark(roles.contains(&role))));
        }
        out.push('\n');
    }
    out
}

/// The per-resource middleware: `rules` maps each method of the resource to
/// its access rule.
pub async fn authorize(
    rules: Rc<HashMap<Method, Access>>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let access = rules.get(req.method()).copied();
    if let Some(access) = access.filter(|a| !matches!(a, Access::Public)) {
        let state = req.app_data::<web::Data<AppState>>().expect("app state is registered").clone();
        let principal = match access {
            // The handler answers a caller without a credential itself
            // (reading a file: 404, as for anyone else's).
            Access::Conversation { .. } => match conversation_caller(&req, &state).await? {
                Some(principal) => principal,
                None => return next.call(req).await,
            },
            _ => authenticate(req.request(), &state.db, &state.config).await?.ok_or(ApiError::Unauthenticated)?,
        };
        if !access.allows(&principal) {
            return Err(ApiError::Forbidden("your role may not do this").into());
        }
        if let Principal::Staff(user) = &principal {
            check_csrf(req.request(), user)?;
        }
        req.extensions_mut().insert(principal);
    }
    next.call(req).await
}

/// The caller of a `Conversation` route: a Bearer credential that is not an
/// API key is a visitor's conversation token (an unknown one is
/// unauthenticated); otherwise the usual API key or staff cookie.
async fn conversation_caller(req: &ServiceRequest, state: &AppState) -> Result<Option<Principal>, ApiError> {
    let credential = bearer(req.request()).map(str::to_owned);
    let is_machine = |c: &str| is_api_key(c) || state.config.api_key.as_deref() == Some(c);
    match credential {
        Some(token) if !is_machine(&token) => {
            let found = state.hub.find_by_visitor_token(&token).await.map_err(ApiError::Unavailable)?;
            Ok(found.map(|(session, _)| Principal::Visitor { session_id: session.0 }))
        }
        _ => authenticate(req.request(), &state.db, &state.config).await,
    }
}
