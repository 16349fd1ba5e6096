//! Email to leads (SPEC §13) against a local Resend mock that checks each
//! request's shape: templates and their validation, sending from a session
//! (rendered, escaped, one request, idempotency key reused on retry, the
//! tag that links it back), refusals that queue nothing, and Resend's
//! Svix-signed webhook (signatures checked as a receiver would, events out
//! of order and duplicated, opens, clicks, bounces, template stats).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::ws_client::Visitor;

const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const FOLLOW_UP: &str = "00000000-0000-4000-8000-0000000000e1";
const REMINDER: &str = "00000000-0000-4000-8000-0000000000e4";

fn email_config(c: &mut chathub::config::Config, resend: String) {
    c.resend_api_url = resend;
    c.resend_api_key = Some("re_test_key".into());
    c.resend_webhook_secret = Some(WEBHOOK_SECRET.into());
    c.email_from = "Brightsmile <hello@brightsmile.example>".into();
    c.booking_url = "https://cal.example/brightsmile".into();
    c.notifier_retry_base_ms = 50;
}

async fn resend_accepting() -> MockServer {
    let resend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(header("authorization", "Bearer re_test_key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "re-email-1"})))
        .mount(&resend)
        .await;
    resend
}

/// A session whose lead has a (hostile) name and an email address.
async fn lead_session(app: &TestApp, name: &str, email: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    app.db()
        .await
        .execute("INSERT INTO sessions (id, channel, customer_name, customer_email) VALUES ($1, 'web', $2, $3)", &[&id, &name, &email])
        .await
        .unwrap();
    id
}

/// Signs a body the way Svix does, computed here from the scheme (not with
/// the server's code): HMAC-SHA256 over "{id}.{timestamp}.{body}" with the
/// base64-decoded secret.
fn svix_headers(id: &str, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
    let signature = standard_webhook_signature(WEBHOOK_SECRET, id, timestamp, body.as_bytes());
    vec![("svix-id", id.to_owned()), ("svix-timestamp", timestamp.to_string()), ("svix-signature", signature)]
}

async fn post_webhook(app: &TestApp, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut request = app.http.post(app.url("/webhooks/resend")).header("content-type", "application/json").body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn event(kind: &str, provider_id: &str, extra: Value) -> String {
    let mut data = json!({"email_id": provider_id, "to": ["ada@example.com"], "subject": "x", "created_at": "2026-12-02T10:00:00.000Z"});
    if let Value::Object(more) = extra {
        data.as_object_mut().unwrap().extend(more);
    }
    json!({"type": kind, "created_at": chrono::Utc::now().to_rfc3339(), "data": data}).to_string()
}

async fn send_signed(app: &TestApp, svix_id: &str, body: &str) -> (u16, Value) {
    post_webhook(app, &svix_headers(svix_id, chrono::Utc::now().timestamp(), body), body).await
}

async fn session_emails(staff: &StaffClient, session: Uuid) -> Vec<Value> {
    staff.get(&format!("/api/sessions/{session}")).await.1["emails"].as_array().unwrap().clone()
}

async fn count(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn templates_ship_four_defaults_and_are_validated_and_owned() {
    let resend = resend_accepting().await;
    let app = TestApp::spawn_with(|c| email_config(c, resend.uri())).await;
    let agent = app.staff("tara", "agent").await;
    let other = app.staff("omar", "agent").await;
    let qa = app.staff("quinn", "qa").await;

    let (status, list) = qa.get("/api/email-templates").await;
    assert_eq!(status, 200);
    let templates = list["templates"].as_array().unwrap();
    let names: Vec<&str> = templates.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(templates.len(), 4, "{names:?}");
    for name in ["First-contact follow-up", "Proposal sent", "Thank you for your first visit", "Appointment reminder"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let reminder = templates.iter().find(|t| t["id"] == REMINDER).unwrap();
    assert_eq!(reminder["category"], "reminder");
    assert_eq!(reminder["variables"], json!(["agent_name", "appointment_time", "booking_url", "customer_name", "site_name"]));
    assert_eq!(reminder["usage_count"], 0);
    assert_eq!(reminder["stats"]["sent"], 0);
    assert_eq!(reminder["stats"]["open_rate"], Value::Null);
    assert_eq!(list["categories"].as_array().unwrap().len(), 7);

    // QA reads but does not write.
    let new = json!({"name": "Price list", "category": "promotion", "subject": "Prices for {{ customer_name }}", "body": "See {{price_url}}"});
    assert_eq!(qa.call("POST", "/api/email-templates", Some(new.clone())).await.0, 403);
    let (status, created) = agent.call("POST", "/api/email-templates", Some(new)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["variables"], json!(["customer_name", "price_url"]));
    assert_eq!(created["created_by"], "tara");
    assert_eq!(created["active"], true);
    let id = created["id"].as_str().unwrap();

    for (body, code) in [
        (json!({"name": "x", "category": "spam", "subject": "s", "body": "b"}), "invalid_category"),
        (json!({"name": "x", "category": "general", "subject": "s", "body": "Hi {{ customer_name"}), "invalid_template"),
        (json!({"name": "x", "category": "general", "subject": "a\nBcc: x", "body": "b"}), "invalid_subject"),
        (json!({"name": "", "category": "general", "subject": "s", "body": "b"}), "invalid_name"),
        (json!({"name": "x", "category": "general", "subject": "s"}), "missing_field"),
    ] {
        let (status, error) = agent.call("POST", "/api/email-templates", Some(body)).await;
        assert_eq!((status, error["error"]["code"].as_str().unwrap()), (400, code), "{error}");
    }
    assert_eq!(agent.call("POST", "/api/email-templates", Some(json!({"name": "x", "category": "general", "subject": "s", "body": "b", "bcc": "x"}))).await.0, 400);

    // Only the author or an admin changes or deletes it.
    assert_eq!(other.call("PUT", &format!("/api/email-templates/{id}"), Some(json!({"active": false}))).await.0, 403);
    assert_eq!(other.call("PUT", &format!("/api/email-templates/{FOLLOW_UP}"), Some(json!({"active": false}))).await.0, 403);
    let (status, changed) = agent.call("PUT", &format!("/api/email-templates/{id}"), Some(json!({"active": false, "body": "Now {{ other }}"}))).await;
    assert_eq!(status, 200);
    assert_eq!((changed["active"].clone(), changed["variables"].clone(), changed["name"].clone()), (json!(false), json!(["customer_name", "other"]), json!("Price list")));
    let (_, active) = agent.get("/api/email-templates?active=true").await;
    assert_eq!(active["templates"].as_array().unwrap().len(), 4, "switched-off templates are not offered");
    let (_, reminders) = agent.get("/api/email-templates?category=reminder").await;
    assert_eq!(reminders["templates"].as_array().unwrap().len(), 1);
    assert_eq!(agent.get("/api/email-templates?category=nope").await.0, 400);
    assert_eq!(other.call("DELETE", &format!("/api/email-templates/{id}"), None).await.0, 403);
    assert_eq!(app.admin().await.call("DELETE", &format!("/api/email-templates/{id}"), None).await.0, 204);
    assert_eq!(agent.call("DELETE", &format!("/api/email-templates/{id}"), None).await.0, 404);
}

#[tokio::test]
async fn an_email_to_the_lead_is_rendered_escaped_and_sent_once_through_resend() {
    let resend = resend_accepting().await;
    let app = TestApp::spawn_with(|c| email_config(c, resend.uri())).await;
    let agent = app.staff("ana", "agent").await;
    let (status, _) = agent.call("PUT", "/api/auth/me", Some(json!({"display_name": "Ana"}))).await;
    assert_eq!(status, 200);
    let session = lead_session(&app, "<img src=x onerror=alert(1)>", Some("ada@example.com")).await;

    // A watching dashboard sees the email appear and move.
    let mut dashboard = Visitor::dashboard(app.port, &agent.cookie, &agent.origin()).await;
    dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The preview shows what the server fills and what is missing.
    let (status, preview) = agent
        .call("POST", "/api/email-templates/preview", Some(json!({"template_id": REMINDER, "session_id": session})))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["missing"], json!(["appointment_time"]));
    assert_eq!(preview["values"]["agent_name"], "Ana");
    assert_eq!(preview["values"]["site_name"], "Default site");
    assert_eq!(preview["to"], "ada@example.com");
    assert!(preview["subject"].as_str().unwrap().contains("{{appointment_time}}"), "{preview}");

    let (status, sent) = agent
        .call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"template_id": REMINDER, "variables": {"appointment_time": "Friday 10:00"}})))
        .await;
    assert_eq!(status, 201, "{sent}");
    let email = &sent["email"];
    assert_eq!(email["status"], "queued");
    assert_eq!(email["to"], "ada@example.com");
    assert_eq!(email["subject"], "Reminder: your appointment on Friday 10:00");
    assert_eq!(sent["warning"], Value::Null);
    let email_id = email["id"].as_str().unwrap().to_owned();

    let db = app.db().await;
    assert!(
        eventually(Duration::from_secs(20), async || session_emails(&agent, session).await[0]["status"] == "sent").await,
        "{:?}",
        session_emails(&agent, session).await
    );
    let requests = resend.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].headers["idempotency-key"].to_str().unwrap(), format!("email.send/{email_id}"));
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["from"], "Brightsmile <hello@brightsmile.example>");
    assert_eq!(body["to"], json!(["ada@example.com"]));
    assert_eq!(body["subject"], "Reminder: your appointment on Friday 10:00");
    assert_eq!(body["tags"], json!([{"name": "chathub_email_id", "value": email_id}]));
    let html = body["html"].as_str().unwrap();
    assert!(!html.contains("<img") && html.contains("Hi &lt;img src=x onerror=alert(1)&gt;,<br>"), "{html}");
    assert!(html.contains("<a href=\"https://cal.example/brightsmile\">https://cal.example/brightsmile</a>"), "{html}");
    assert!(html.contains("Ana"));
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("Hi <img src=x onerror=alert(1)>,\n\nThis is a friendly reminder of your appointment with Default site on Friday 10:00."), "{text}");
    assert!(text.contains("https://cal.example/brightsmile") && text.trim_end().ends_with("Ana"), "{text}");

    let stored = &session_emails(&agent, session).await[0];
    assert_eq!(stored["provider_id"], "re-email-1");
    assert_eq!(stored["sent_by"], "Ana");
    assert!(stored["sent_at"].is_string());
    let (_, list) = agent.get("/api/email-templates").await;
    let reminder = list["templates"].as_array().unwrap().iter().find(|t| t["id"] == REMINDER).unwrap().clone();
    assert_eq!(reminder["usage_count"], 1);
    assert_eq!(reminder["stats"]["sent"], 1);

    let (frame, _) = dashboard.recv_until("email").await;
    assert_eq!(frame["session_id"], session.to_string());
    assert_eq!(frame["email"]["status"], "queued");
    let (frame, _) = dashboard.recv_until("email").await;
    assert_eq!(frame["email"]["status"], "sent");

    // A one-off email (no template) to another address; the same outbox
    // path, from the sender the session's site sets.
    let admin = app.admin().await;
    let (status, site) = admin.call("PUT", "/api/sites/default", Some(json!({"email_from": "Ana at Brightsmile <ana@brightsmile.example>"}))).await;
    assert_eq!((status, site["email_from"].as_str()), (200, Some("Ana at Brightsmile <ana@brightsmile.example>")));
    let (status, refused) = admin.call("PUT", "/api/sites/default", Some(json!({"email_from": "a@b.example\r\nBcc: all@x.org"}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("invalid_email_from")));
    let (status, sent) = agent
        .call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"subject": "Quick note", "body": "Thanks, {{customer_name}}!", "to": "ops@example.com"})))
        .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["email"]["template_id"], Value::Null);
    assert!(eventually(Duration::from_secs(20), async || resend.received_requests().await.unwrap().len() == 2).await);
    let one_off: Value = serde_json::from_slice(&resend.received_requests().await.unwrap()[1].body).unwrap();
    assert_eq!(one_off["to"], json!(["ops@example.com"]));
    assert_eq!(one_off["from"], "Ana at Brightsmile <ana@brightsmile.example>");
    assert_eq!(count(&db, "emails").await, 2);
}

#[tokio::test]
async fn a_send_with_missing_or_unknown_variables_is_refused_and_queues_nothing() {
    let resend = resend_accepting().await;
    let app = TestApp::spawn_with(|c| email_config(c, resend.uri())).await;
    let agent = app.staff("ana", "agent").await;
    let qa = app.staff("quinn", "qa").await;
    let nameless = lead_session(&app, "", Some("ada@example.com")).await;
    let no_email = lead_session(&app, "Ada", None).await;
    let send = |session: Uuid, body: Value| {
        let agent = &agent;
        async move { agent.call("POST", &format!("/api/sessions/{session}/emails"), Some(body)).await }
    };

    let (status, error) = send(nameless, json!({"template_id": REMINDER})).await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "missing_variables");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("{{appointment_time}}") && message.contains("{{customer_name}}"), "{message}");
    assert!(!message.contains("booking_url"), "{message}");
    let (status, error) = send(nameless, json!({"template_id": REMINDER, "variables": {"appointment_time": "Fri", "customer_name": "Ada", "colour": "red"}})).await;
    assert_eq!((status, error["error"]["code"].as_str().unwrap()), (422, "unknown_variables"));
    assert!(error["error"]["message"].as_str().unwrap().contains("{{colour}}"));
    let (status, error) = send(no_email, json!({"template_id": FOLLOW_UP})).await;
    assert_eq!((status, error["error"]["code"].as_str().unwrap()), (422, "missing_recipient"));
    let (status, error) = send(no_email, json!({"template_id": FOLLOW_UP, "to": "Eve <eve@x.org>, all@x.org"})).await;
    assert_eq!((status, error["error"]["code"].as_str().unwrap()), (400, "invalid_to"));
    let (status, _) = send(no_email, json!({"template_id": FOLLOW_UP, "subject": "both"})).await;
    assert_eq!(status, 400);
    assert_eq!(send(Uuid::new_v4(), json!({"template_id": FOLLOW_UP, "to": "a@example.com"})).await.0, 404);
    assert_eq!(send(no_email, json!({"template_id": Uuid::new_v4(), "to": "a@example.com"})).await.0, 404);
    assert_eq!(qa.call("POST", &format!("/api/sessions/{nameless}/emails"), Some(json!({"template_id": FOLLOW_UP}))).await.0, 403);

    let db = app.db().await;
    assert_eq!((count(&db, "emails").await, count(&db, "outbox").await), (0, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(resend.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_resend_configured_a_send_is_refused_as_never_possible() {
    let app = TestApp::spawn_with(|c| c.resend_api_key = None).await;
    let agent = app.staff("ana", "agent").await;
    let session = lead_session(&app, "Ada", Some("ada@example.com")).await;
    let (status, error) = agent.call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"template_id": FOLLOW_UP}))).await;
    assert_eq!((status, error["error"]["code"].as_str().unwrap()), (422, "email_not_configured"));
    assert_eq!(count(&app.db().await, "emails").await, 0);
}

#[tokio::test]
async fn a_retried_delivery_reuses_its_idempotency_key_and_a_dead_one_marks_the_email_failed() {
    let resend = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).up_to_n_times(2).mount(&resend).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "re-2"}))).mount(&resend).await;
    let app = TestApp::spawn_with(|c| email_config(c, resend.uri())).await;
    let agent = app.staff("ana", "agent").await;
    let session = lead_session(&app, "Ada", Some("ada@example.com")).await;
    let (status, sent) = agent.call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"template_id": FOLLOW_UP}))).await;
    assert_eq!(status, 201);
    assert!(eventually(Duration::from_secs(20), async || session_emails(&agent, session).await[0]["status"] == "sent").await);
    // (wiremock pools its servers between tests: only this email's requests count.)
    let email_id = sent["email"]["id"].as_str().unwrap();
    let requests: Vec<_> = resend.received_requests().await.unwrap().into_iter().filter(|r| String::from_utf8_lossy(&r.body).contains(email_id)).collect();
    assert_eq!(requests.len(), 3);
    let keys: std::collections::HashSet<_> = requests.iter().map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned()).collect();
    assert_eq!(keys, std::collections::HashSet::from([format!("email.send/{email_id}")]), "every retry carries the same key");
    assert_eq!(session_emails(&agent, session).await[0]["provider_id"], "re-2");

    // A 422 from Resend can never succeed: dead-lettered, the email failed with the reason.
    let refusing = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(422).set_body_json(json!({"message": "Invalid `to` field"}))).mount(&refusing).await;
    let app = TestApp::spawn_with(|c| email_config(c, refusing.uri())).await;
    let agent = app.staff("ana", "agent").await;
    let session = lead_session(&app, "Ada", Some("ada@example.com")).await;
    agent.call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"template_id": FOLLOW_UP}))).await;
    assert!(eventually(Duration::from_secs(20), async || session_emails(&agent, session).await[0]["status"] == "failed").await);
    let failed = &session_emails(&agent, session).await[0];
    assert!(failed["error"].as_str().unwrap().contains("Invalid `to` field"), "{failed}");
    assert_eq!(refusing.received_requests().await.unwrap().len(), 1);
}

/// Sends one email and waits until Resend accepted it; returns its id.
async fn sent_email(app: &TestApp, agent: &StaffClient, session: Uuid) -> String {
    let (status, sent) = agent.call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"template_id": FOLLOW_UP}))).await;
    assert_eq!(status, 201, "{sent}");
    assert!(eventually(Duration::from_secs(20), async || session_emails(agent, session).await[0]["status"] == "sent").await);
    let _ = app;
    sent["email"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn resend_webhooks_are_verified_deduplicated_and_only_move_forward() {
    let resend = resend_accepting().await;
    let app = TestApp::spawn_with(|c| email_config(c, resend.uri())).await;
    let agent = app.staff("ana", "agent").await;
    let session = lead_session(&app, "Ada", Some("ada@example.com")).await;
    sent_email(&app, &agent, session).await;
    let db = app.db().await;
    let snapshot = async || session_emails(&agent, session).await[0].clone();
    let before = snapshot().await;

    // Refused: nothing changes.
    let opened = event("email.opened", "re-email-1", json!({}));
    let now = chrono::Utc::now().timestamp();
    let mut bad_signature = svix_headers("msg_1", now, &opened);
    bad_signature[2].1 = "v1,Zm9yZ2Vk".into();
    let tampered = svix_headers("msg_1", now, &opened.replace("opened", "clicked"));
    for (headers, why) in [
        (svix_headers("msg_1", now - 301, &opened), "expired"),
        (svix_headers("msg_1", now + 301, &opened), "from the future"),
        (bad_signature, "bad signature"),
        (tampered, "signed another body"),
        (svix_headers("msg_1", now, &opened)[1..].to_vec(), "no svix-id"),
        (Vec::new(), "no headers"),
    ] {
        let (status, body) = post_webhook(&app, &headers, &opened).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert_eq!(body["error"]["code"], "invalid_signature", "{why}");
    }
    assert_eq!(snapshot().await, before);
    assert_eq!(count(&db, "email_events").await, 0);

    // Out of order: opened before delivered; a duplicate counts once.
    assert_eq!(send_signed(&app, "msg_open_1", &opened).await, (200, json!({"status": "opened"})));
    assert_eq!(send_signed(&app, "msg_open_1", &opened).await.1, json!({"ignored": "already applied"}));
    let delivered = event("email.delivered", "re-email-1", json!({}));
    assert_eq!(send_signed(&app, "msg_delivered", &delivered).await.1, json!({"status": "opened"}), "delivered after opened does not move it back");
    assert_eq!(send_signed(&app, "msg_open_2", &event("email.opened", "re-email-1", json!({}))).await.0, 200);
    let click = |link: &str| event("email.clicked", "re-email-1", json!({"click": {"link": link, "ipAddress": "192.0.2.1", "timestamp": "2026-12-02T10:05:00Z"}}));
    assert_eq!(send_signed(&app, "msg_click_1", &click("https://cal.example/brightsmile")).await.1, json!({"status": "clicked"}));
    send_signed(&app, "msg_click_2", &click("https://cal.example/brightsmile")).await;
    send_signed(&app, "msg_click_3", &click("https://brightsmile.example/prices")).await;
    let email = snapshot().await;
    assert_eq!(email["status"], "clicked");
    assert_eq!((email["open_count"].as_i64(), email["click_count"].as_i64()), (Some(2), Some(3)));
    assert_eq!(email["clicked_links"], json!(["https://cal.example/brightsmile", "https://brightsmile.example/prices"]));
    assert!(email["delivered_at"].is_string() && email["opened_at"].is_string() && email["clicked_at"].is_string());

    // Unknown emails and untracked event types: 200, nothing stored.
    assert_eq!(send_signed(&app, "msg_other", &event("email.opened", "someone-elses", json!({}))).await, (200, json!({"ignored": "unknown email"})));
    assert_eq!(send_signed(&app, "msg_delay", &event("email.delivery_delayed", "re-email-1", json!({}))).await.0, 200);
    assert_eq!(count(&db, "email_events").await, 6);

    // The stats of the template it came from.
    let (_, list) = agent.get("/api/email-templates").await;
    let stats = list["templates"].as_array().unwrap().iter().find(|t| t["id"] == FOLLOW_UP).unwrap()["stats"].clone();
    assert_eq!(stats, json!({"sent": 1, "delivered": 1, "opened": 1, "clicked": 1, "bounced": 0, "open_rate": 1.0, "click_rate": 1.0, "bounce_rate": 0.0}));
}

#[tokio::test]
async fn a_bounce_flags_the_address_so_later_sends_warn_and_is_found_by_its_tag() {
    let resend = MockServer::start().await;
    // Resend answers without an id: the webhook still finds the email by our tag.
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(json!({}))).mount(&resend).await;
    let app = TestApp::spawn_with(|c| email_config(c, resend.uri())).await;
    let agent = app.staff("ana", "agent").await;
    let session = lead_session(&app, "Ada", Some("Ada@Example.com")).await;
    let first = sent_email(&app, &agent, session).await;
    let bounced = event("email.bounced", "re-from-webhook", json!({"tags": {"chathub_email_id": first}, "bounce": {"message": "mailbox full"}}));
    assert_eq!(send_signed(&app, "msg_bounce", &bounced).await, (200, json!({"status": "bounced"})));
    let email = &session_emails(&agent, session).await[0];
    assert_eq!((email["status"].as_str(), email["provider_id"].as_str()), (Some("bounced"), Some("re-from-webhook")));
    // A later open (a prefetching client) does not undo the bounce.
    send_signed(&app, "msg_late_open", &event("email.opened", "re-from-webhook", json!({}))).await;
    assert_eq!(session_emails(&agent, session).await[0]["status"], "bounced");

    let (_, detail) = agent.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(detail["email_flag"]["reason"], "bounced");
    let (status, sent) = agent.call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"template_id": FOLLOW_UP}))).await;
    assert_eq!(status, 201);
    assert!(sent["warning"].as_str().unwrap().contains("bounced"), "{sent}");
    let (_, list) = agent.get("/api/email-templates").await;
    let stats = list["templates"].as_array().unwrap().iter().find(|t| t["id"] == FOLLOW_UP).unwrap()["stats"].clone();
    assert_eq!(stats["bounced"], 1);
}
