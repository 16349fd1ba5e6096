//! Integrations against local mocks that check each request's exact shape:
//! the n8n lead webhook (Standard Webhooks signature), the Resend QA email
//! (idempotency key, escaped templates), retries, Retry-After, dead letters,
//! manual retry, a crash with deliveries pending, the Messenger and WhatsApp
//! webhooks and send APIs, and the relay API.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::ws_client::Visitor;

const N8N_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const APP_SECRET: &str = "meta-app-secret";

/// Runs the demo script to completion; returns the session id.
async fn complete_demo_conversation(port: u16) -> String {
    let mut visitor = Visitor::connect(port).await;
    visitor.hello().await;
    for (id, text) in [("1", "hi"), ("2", "Ada Lovelace"), ("3", "ada@example.com")] {
        visitor.say(id, text).await;
        visitor.next_message().await;
    }
    visitor.session_id.clone().unwrap()
}

async fn outbox_statuses(db: &tokio_postgres::Client) -> Vec<(String, String, i32)> {
    db.query("SELECT event_type, status, attempts FROM outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn wait_for_status(db: &tokio_postgres::Client, status: &str) -> bool {
    eventually(Duration::from_secs(20), async || {
        let rows = outbox_statuses(db).await;
        !rows.is_empty() && rows.iter().all(|(_, s, _)| s == status)
    })
    .await
}

#[tokio::test]
async fn a_completed_lead_reaches_n8n_signed_the_standard_webhooks_way() {
    let n8n = MockServer::start().await;
    Mock::given(method("POST")).and(path("/webhook/leads")).respond_with(ResponseTemplate::new(200)).mount(&n8n).await;
    let url = format!("{}/webhook/leads", n8n.uri());
    let app = TestApp::spawn_with(|c| {
        c.n8n_webhook_url = Some(url);
        c.n8n_webhook_secret = Some(N8N_SECRET.into());
    })
    .await;
    let session = complete_demo_conversation(app.port).await;
    let db = app.db().await;
    assert!(wait_for_status(&db, "delivered").await, "{:?}", outbox_statuses(&db).await);

    let requests: Vec<Request> = n8n.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let id = request.headers["webhook-id"].to_str().unwrap();
    let timestamp = request.headers["webhook-timestamp"].to_str().unwrap();
    assert_eq!(id, format!("lead.completed/{session}"));
    assert!((chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap()).abs() < 60);
    // Verify as a receiver would: HMAC over "{id}.{timestamp}.{body}" with the decoded secret.
    let expected = standard_webhook_signature(N8N_SECRET, id, timestamp.parse().unwrap(), &request.body);
    assert_eq!(request.headers["webhook-signature"].to_str().unwrap(), expected);

    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["type"], "lead.completed");
    assert_eq!(body["data"]["session_id"], session.as_str());
    assert_eq!(body["data"]["customer"], json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": null}));
    assert_eq!(body["data"]["rule"], "booking_link");
    assert_eq!(body["data"]["transcript"].as_array().unwrap().len(), 6);
    assert_eq!(body["data"]["transcript"][4]["text"], "ada@example.com");
}

async fn qa_issue_on_new_session(app: &TestApp) -> String {
    let db = app.db().await;
    let id = uuid::Uuid::new_v4();
    db.execute("INSERT INTO sessions (id, channel, customer_name, last_seq) VALUES ($1, 'web', '<b>Eve</b>', 1)", &[&id]).await.unwrap();
    db.execute(
        "INSERT INTO messages (session_id, seq, role, text, channel) VALUES ($1, 1, 'visitor', '<img src=x onerror=alert(1)>', 'web')",
        &[&id],
    )
    .await
    .unwrap();
    let qa = app.staff(&format!("qa-{}", &id.to_string()[..8]), "qa").await;
    let (status, _) = qa.call("PUT", &format!("/api/sessions/{id}/qa"), Some(json!({"qa_status": "issue", "qa_notes": "Wrong & rude"}))).await;
    assert_eq!(status, 200);
    id.to_string()
}

fn resend_config(c: &mut chathub::config::Config, url: String) {
    c.resend_api_url = url;
    c.resend_api_key = Some("re_test_key".into());
    c.qa_alert_emails = Some("qa@example.com, lead@example.com".into());
    c.email_from = "chathub <alerts@example.com>".into();
    c.notifier_retry_base_ms = 50;
}

#[tokio::test]
async fn a_qa_issue_sends_one_escaped_email_through_resend_with_an_idempotency_key() {
    let resend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(header("authorization", "Bearer re_test_key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "email-1"})))
        .mount(&resend)
        .await;
    let url = resend.uri();
    let app = TestApp::spawn_with(|c| resend_config(c, url)).await;
    let session = qa_issue_on_new_session(&app).await;
    let db = app.db().await;
    assert!(wait_for_status(&db, "delivered").await);
    let requests = resend.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let key = requests[0].headers["idempotency-key"].to_str().unwrap();
    assert!(key.starts_with(&format!("qa.issue/{session}/")), "{key}");
    let email: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(email["from"], "chathub <alerts@example.com>");
    assert_eq!(email["to"], json!(["qa@example.com", "lead@example.com"]));
    assert!(email["subject"].as_str().unwrap().contains("QA issue"));
    let html = email["html"].as_str().unwrap();
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;") && !html.contains("<img"), "{html}");
    assert!(html.contains("&lt;b&gt;Eve&lt;/b&gt;") && html.contains("Wrong &amp; rude"));
    assert!(html.contains(&format!("#/sessions/{session}")));
    assert!(email["text"].as_str().unwrap().contains("Wrong & rude"));
}

#[tokio::test]
async fn failures_are_retried_with_backoff_until_delivered() {
    let resend = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).up_to_n_times(2).mount(&resend).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .mount(&resend)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&resend).await;
    let url = resend.uri();
    let app = TestApp::spawn_with(|c| {
        resend_config(c, url);
        c.notifier_timeout_secs = 1;
    })
    .await;
    qa_issue_on_new_session(&app).await;
    let db = app.db().await;
    assert!(wait_for_status(&db, "delivered").await, "{:?}", outbox_statuses(&db).await);
    assert_eq!(outbox_statuses(&db).await[0].2, 4, "two 500s and a timeout before success");
    let requests = resend.received_requests().await.unwrap();
    let keys: std::collections::HashSet<_> = requests.iter().map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned()).collect();
    assert_eq!(keys.len(), 1, "every retry carries the same idempotency key");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let resend = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .mount(&resend)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&resend).await;
    let url = resend.uri();
    let app = TestApp::spawn_with(|c| resend_config(c, url)).await;
    qa_issue_on_new_session(&app).await;
    let db = app.db().await;
    let started = Instant::now();
    assert!(wait_for_status(&db, "delivered").await);
    assert!(started.elapsed() >= Duration::from_millis(1900), "waited {:?}", started.elapsed());
    assert_eq!(resend.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_4xx_that_cannot_succeed_stops_at_once_and_can_be_retried_by_hand() {
    let resend = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(410)).up_to_n_times(1).mount(&resend).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&resend).await;
    let url = resend.uri();
    let app = TestApp::spawn_with(|c| resend_config(c, url)).await;
    qa_issue_on_new_session(&app).await;
    let db = app.db().await;
    assert!(wait_for_status(&db, "dead").await);
    assert_eq!(outbox_statuses(&db).await[0].2, 1, "no retries after a 410");

    let developer = app.staff("devi", "developer").await;
    let (_, list) = developer.get("/api/deliveries?status=dead").await;
    assert_eq!(list["total"], 1);
    let delivery = &list["deliveries"][0];
    assert_eq!((delivery["event_type"].as_str(), delivery["last_status_code"].as_i64()), (Some("qa.issue"), Some(410)));
    let qa = app.staff("quinn2", "qa").await;
    assert_eq!(qa.call("POST", &format!("/api/deliveries/{}/retry", delivery["id"]), None).await.0, 403);
    let (status, _) = developer.call("POST", &format!("/api/deliveries/{}/retry", delivery["id"]), None).await;
    assert_eq!(status, 202);
    assert!(wait_for_status(&db, "delivered").await);
    assert_eq!(developer.call("POST", &format!("/api/deliveries/{}/retry", delivery["id"]), None).await.0, 409);
}

#[tokio::test]
async fn repeated_failures_are_dead_lettered_after_the_maximum() {
    let resend = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&resend).await;
    let url = resend.uri();
    let app = TestApp::spawn_with(|c| {
        resend_config(c, url);
        c.notifier_max_attempts = 3;
    })
    .await;
    qa_issue_on_new_session(&app).await;
    let db = app.db().await;
    assert!(wait_for_status(&db, "dead").await, "{:?}", outbox_statuses(&db).await);
    assert_eq!(outbox_statuses(&db).await[0].2, 3);
    assert_eq!(resend.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn without_a_target_configured_events_are_kept_as_skipped() {
    let app = TestApp::spawn().await;
    complete_demo_conversation(app.port).await;
    let db = app.db().await;
    assert!(wait_for_status(&db, "skipped").await, "{:?}", outbox_statuses(&db).await);
    let error: String = db.query_one("SELECT last_error FROM outbox", &[]).await.unwrap().get(0);
    assert!(error.contains("N8N_WEBHOOK_URL"));
    // The log shows what would be sent; a retry says why it cannot be sent
    // rather than queueing it to be skipped again.
    let developer = app.staff("devi", "developer").await;
    let (_, list) = developer.get("/api/deliveries?status=skipped").await;
    let delivery = &list["deliveries"][0];
    assert_eq!(delivery["payload"]["rule"], "booking_link", "{delivery}");
    let (status, refused) = developer.call("POST", &format!("/api/deliveries/{}/retry", delivery["id"]), None).await;
    assert_eq!(status, 409);
    assert!(refused["error"]["message"].as_str().unwrap().contains("N8N_WEBHOOK_URL is not set"), "{refused}");
    assert_eq!(outbox_statuses(&db).await[0].1, "skipped", "nothing changed");
}

#[tokio::test]
async fn after_a_kill_9_pending_deliveries_are_delivered_and_no_event_is_sent_under_two_keys() {
    let resend = MockServer::start().await;
    // Slow at first, so some deliveries are in flight when the hub dies.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(3)
        .mount(&resend)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&resend).await;
    let url = fresh_database().await;
    let db = connect(&url).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let id = uuid::Uuid::new_v4();
        db.execute("INSERT INTO sessions (id, channel) VALUES ($1, 'web')", &[&id]).await.unwrap();
        sessions.push(id);
    }
    let envs = [
        ("DATABASE_URL", url.as_str()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("RESEND_API_URL", &resend.uri()),
        ("RESEND_API_KEY", "re_test_key"),
        ("QA_ALERT_EMAILS", "qa@example.com"),
        ("NOTIFIER_TIMEOUT_SECS", "2"),
        ("NOTIFIER_RETRY_BASE_MS", "50"),
    ];
    let resend_uri = resend.uri();
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, if *k == "RESEND_API_URL" { resend_uri.as_str() } else { *v })).collect();
    let server = ChildServer::start(&envs);
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::new();
    let (cookie, csrf) = admin_login(&base).await;
    for id in &sessions {
        let response = http
            .put(format!("{base}/api/sessions/{id}/qa"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({"qa_status": "issue", "qa_notes": "check"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    assert!(eventually(Duration::from_secs(10), async || !resend.received_requests().await.unwrap().is_empty()).await);
    server.kill_hard();

    let server = ChildServer::start(&envs);
    assert!(wait_for_status(&db, "delivered").await, "{:?}", outbox_statuses(&db).await);
    let requests = resend.received_requests().await.unwrap();
    let mut keys_per_session: std::collections::HashMap<String, std::collections::HashSet<String>> = Default::default();
    for request in &requests {
        let key = request.headers["idempotency-key"].to_str().unwrap().to_owned();
        let session = key.split('/').nth(1).unwrap().to_owned();
        keys_per_session.entry(session).or_default().insert(key);
    }
    assert_eq!(keys_per_session.len(), 3, "every event was delivered");
    assert!(keys_per_session.values().all(|keys| keys.len() == 1), "repeats carry the same key, so Resend sends once");
    assert!(server.terminate());
}

#[tokio::test]
async fn a_hanging_delivery_target_does_not_slow_chats() {
    let n8n = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).mount(&n8n).await;
    let url = n8n.uri();
    let app = TestApp::spawn_with(|c| {
        // 21 frames in well under a second: past the default burst of 20.
        c.limits.rate_burst = 100;
        c.n8n_webhook_url = Some(url);
        c.notifier_timeout_secs = 30;
    })
    .await;
    complete_demo_conversation(app.port).await;
    assert!(eventually(Duration::from_secs(10), async || !n8n.received_requests().await.unwrap().is_empty()).await);
    // The delivery now hangs; another visitor chats at full speed.
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        visitor.say(&format!("q{i}"), "still fast?").await;
        slowest = slowest.max(started.elapsed());
        visitor.next_message().await;
    }
    assert!(slowest < Duration::from_millis(500), "slowest ack took {slowest:?}");
}

// ---- Messenger -----------------------------------------------------------

fn messenger_config(c: &mut chathub::config::Config, graph: String) {
    c.messenger_verify_token = Some("verify-me".into());
    c.messenger_app_secret = Some(APP_SECRET.into());
    c.messenger_page_token = Some("page-token".into());
    c.graph_api_url = graph;
    c.notifier_retry_base_ms = 50;
}

fn messenger_body(psid: &str, mid: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "timestamp": 1, "message": {"mid": mid, "text": text}}
    ]}]}))
    .unwrap()
}

async fn post_webhook(app: &TestApp, path: &str, body: Vec<u8>, signature: Option<String>) -> u16 {
    let mut request = app.http.post(app.url(path)).header("content-type", "application/json").body(body);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_messenger_verification_handshake_checks_the_token() {
    let app = TestApp::spawn_with(|c| messenger_config(c, "http://127.0.0.1:9".into())).await;
    let good = reqwest::get(app.url("/webhooks/messenger?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444")).await.unwrap();
    assert_eq!(good.status().as_u16(), 200);
    assert_eq!(good.text().await.unwrap(), "1158201444");
    let bad = reqwest::get(app.url("/webhooks/messenger?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")).await.unwrap();
    assert_eq!(bad.status().as_u16(), 403);
    let unconfigured = reqwest::get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=&hub.challenge=1")).await.unwrap();
    assert_eq!(unconfigured.status().as_u16(), 403);
}

#[tokio::test]
async fn a_signed_messenger_message_starts_a_conversation_answered_through_the_send_api() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/me/messages"))
        .and(header("authorization", "Bearer page-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"recipient_id": "PSID-1", "message_id": "m.out"})))
        .mount(&graph)
        .await;
    let graph_url = format!("{}/v21.0", graph.uri());
    let app = TestApp::spawn_with(|c| messenger_config(c, graph_url)).await;
    let body = messenger_body("PSID-1", "m.in.1", "Hello from Messenger");
    let signature = chathub::channels::sign(APP_SECRET, &body);
    assert_eq!(post_webhook(&app, "/webhooks/messenger", body, Some(signature)).await, 200);
    let db = app.db().await;
    // Stored before the 200.
    let row = db.query_one("SELECT s.channel, s.external_id, m.text FROM sessions s JOIN messages m ON m.session_id = s.id WHERE m.seq = 1", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, String>(2)), ("messenger".into(), "PSID-1".into(), "Hello from Messenger".into()));
    assert!(
        eventually(Duration::from_secs(10), async || {
            graph.received_requests().await.unwrap().iter().any(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["message"]["text"].is_string())
        })
        .await
    );
    let requests = graph.received_requests().await.unwrap();
    let bodies: Vec<Value> = requests.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert!(bodies.iter().any(|b| *b == json!({"recipient": {"id": "PSID-1"}, "sender_action": "typing_on"})), "{bodies:?}");
    let reply = bodies.iter().find(|b| b["message"].is_object()).unwrap();
    assert_eq!(reply["recipient"], json!({"id": "PSID-1"}));
    assert_eq!(reply["messaging_type"], "RESPONSE");
    assert!(reply["message"]["text"].as_str().unwrap().contains("name"), "the demo agent's first question");
    assert!(wait_for_status(&db, "delivered").await);
}

#[tokio::test]
async fn bad_messenger_signatures_are_refused_and_store_nothing() {
    let app = TestApp::spawn_with(|c| messenger_config(c, "http://127.0.0.1:9".into())).await;
    let body = messenger_body("PSID-X", "m.bad", "hi");
    let good_signature = chathub::channels::sign(APP_SECRET, &body);
    let reserialised = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert_eq!(post_webhook(&app, "/webhooks/messenger", body.clone(), None).await, 403);
    assert_eq!(post_webhook(&app, "/webhooks/messenger", body.clone(), Some("sha256=00".into())).await, 403);
    assert_eq!(post_webhook(&app, "/webhooks/messenger", body.clone(), Some(chathub::channels::sign("wrong", &body))).await, 403);
    assert_eq!(post_webhook(&app, "/webhooks/messenger", reserialised, Some(good_signature)).await, 403, "re-serialised JSON");
    let db = app.db().await;
    let sessions: i64 = db.query_one("SELECT count(*) FROM sessions", &[]).await.unwrap().get(0);
    assert_eq!(sessions, 0);
    // Signed but malformed: 400, nothing stored.
    let junk = b"{\"object\":\"page\"}".to_vec();
    assert_eq!(post_webhook(&app, "/webhooks/messenger", junk.clone(), Some(chathub::channels::sign(APP_SECRET, &junk))).await, 400);
}

#[tokio::test]
async fn the_same_mid_posted_five_times_at_once_is_one_message_and_one_agent_call() {
    let agent = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"reply": "hello back"})).set_delay(Duration::from_millis(200)))
        .mount(&agent)
        .await;
    let agent_url = agent.uri();
    let app = TestApp::spawn_with(|c| {
        messenger_config(c, "http://127.0.0.1:9".into());
        c.agent = "webhook".into();
        c.agent_url = Some(agent_url);
    })
    .await;
    let body = messenger_body("PSID-5", "m.same", "once only");
    let signature = chathub::channels::sign(APP_SECRET, &body);
    let posts = (0..5).map(|_| post_webhook(&app, "/webhooks/messenger", body.clone(), Some(signature.clone())));
    let statuses = futures_util::future::join_all(posts).await;
    assert_eq!(statuses, vec![200; 5]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let db = app.db().await;
    let visitor_messages: i64 = db.query_one("SELECT count(*) FROM messages WHERE role = 'visitor'", &[]).await.unwrap().get(0);
    assert_eq!(visitor_messages, 1);
    assert_eq!(agent.received_requests().await.unwrap().len(), 1);
    let sessions: i64 = db.query_one("SELECT count(*) FROM sessions", &[]).await.unwrap().get(0);
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn a_failed_messenger_send_is_retried_through_the_outbox() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"messaging_type": "RESPONSE"})))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&graph)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&graph).await;
    let graph_url = graph.uri();
    let app = TestApp::spawn_with(|c| messenger_config(c, graph_url)).await;
    let body = messenger_body("PSID-R", "m.r", "hello");
    assert_eq!(post_webhook(&app, "/webhooks/messenger", body.clone(), Some(chathub::channels::sign(APP_SECRET, &body))).await, 200);
    let db = app.db().await;
    assert!(wait_for_status(&db, "delivered").await, "{:?}", outbox_statuses(&db).await);
    assert_eq!(outbox_statuses(&db).await[0], ("messenger.send".into(), "delivered".into(), 3));
}

// ---- WhatsApp ------------------------------------------------------------

#[tokio::test]
async fn a_signed_whatsapp_message_is_answered_through_the_cloud_api() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/PNID/messages"))
        .and(header("authorization", "Bearer wa-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.out"}]})))
        .mount(&graph)
        .await;
    let graph_url = graph.uri();
    let app = TestApp::spawn_with(|c| {
        c.whatsapp_verify_token = Some("wa-verify".into());
        c.whatsapp_app_secret = Some(APP_SECRET.into());
        c.whatsapp_token = Some("wa-token".into());
        c.whatsapp_phone_number_id = Some("PNID".into());
        c.graph_api_url = graph_url;
    })
    .await;
    let verify = reqwest::get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wa-verify&hub.challenge=42")).await.unwrap();
    assert_eq!(verify.text().await.unwrap(), "42");
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PNID"},
        "contacts": [{"profile": {"name": "Grace"}, "wa_id": "447700900000"}],
        "messages": [{"from": "447700900000", "id": "wamid.in.1", "timestamp": "1", "type": "text", "text": {"body": "Hi on WhatsApp"}}],
        "statuses": [{"id": "wamid.old", "status": "read"}]
    }}]}]}))
    .unwrap();
    assert_eq!(post_webhook(&app, "/webhooks/whatsapp", body.clone(), Some(chathub::channels::sign("other", &body))).await, 403);
    assert_eq!(post_webhook(&app, "/webhooks/whatsapp", body.clone(), Some(chathub::channels::sign(APP_SECRET, &body))).await, 200);
    // A retry of the same webhook stores nothing new.
    assert_eq!(post_webhook(&app, "/webhooks/whatsapp", body.clone(), Some(chathub::channels::sign(APP_SECRET, &body))).await, 200);
    let db = app.db().await;
    let row = db.query_one("SELECT channel, external_id, customer_name, customer_phone FROM sessions", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, Option<String>>(2)), ("whatsapp".into(), "447700900000".into(), Some("Grace".into())));
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("+447700900000"), "the contact's number is the session's phone");
    assert!(eventually(Duration::from_secs(10), async || !graph.received_requests().await.unwrap().is_empty()).await);
    let sent: Value = serde_json::from_slice(&graph.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["messaging_product"], "whatsapp");
    assert_eq!(sent["to"], "447700900000");
    assert_eq!(sent["type"], "text");
    // The contact's profile name is known, so the demo agent asks for the email next.
    let reply = sent["text"]["body"].as_str().unwrap();
    assert!(reply.contains("Grace") && reply.contains("email address"), "{reply}");
    let visitor_messages: i64 = db.query_one("SELECT count(*) FROM messages WHERE role = 'visitor'", &[]).await.unwrap().get(0);
    assert_eq!(visitor_messages, 1);
}

#[tokio::test]
async fn messenger_read_watermarks_and_whatsapp_statuses_move_the_customers_read_position_forward() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/me/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"recipient_id": "PSID-R", "message_id": "m.out.1"})))
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/PNID/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.OUT.1"}]})))
        .mount(&graph)
        .await;
    let graph_url = format!("{}/v21.0", graph.uri());
    let app = TestApp::spawn_with(|c| {
        messenger_config(c, graph_url);
        c.whatsapp_app_secret = Some(APP_SECRET.into());
        c.whatsapp_token = Some("wa-token".into());
        c.whatsapp_phone_number_id = Some("PNID".into());
    })
    .await;
    let admin = app.admin().await;
    let db = app.db().await;
    let signed = |body: Value| {
        let bytes = serde_json::to_vec(&body).unwrap();
        let signature = chathub::channels::sign(APP_SECRET, &bytes);
        (bytes, signature)
    };
    let session_of = async |channel: &str| -> String {
        let id: uuid::Uuid = db.query_one("SELECT id FROM sessions WHERE channel = $1", &[&channel]).await.unwrap().get(0);
        id.to_string()
    };
    let read_seq = async |session: &str| admin.get(&format!("/api/sessions/{session}")).await.1["session"]["visitor_read_seq"].clone();

    // Messenger: the reply goes out, then the customer's app reports a read watermark.
    let body = messenger_body("PSID-R", "m.in.r1", "hello");
    let signature = chathub::channels::sign(APP_SECRET, &body);
    assert_eq!(post_webhook(&app, "/webhooks/messenger", body, Some(signature)).await, 200);
    assert!(wait_for_status(&db, "delivered").await);
    let messenger = session_of("messenger").await;
    let mut dashboard = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    dashboard.send(json!({"type": "watch", "session_id": messenger, "last_seq": 0})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let watermark = chrono::Utc::now().timestamp_millis() + 1000;
    let (bytes, signature) = signed(json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
        {"sender": {"id": "PSID-R"}, "recipient": {"id": "PAGE"}, "timestamp": watermark, "read": {"watermark": watermark}}]}]}));
    assert_eq!(post_webhook(&app, "/webhooks/messenger", bytes, Some(signature)).await, 200);
    assert_eq!(read_seq(&messenger).await, 2, "the AI's answer (seq 2) was read");
    let (read, _) = dashboard.recv_until("read").await;
    assert_eq!((read["by"].as_str(), read["seq"].as_i64()), (Some("visitor"), Some(2)));
    // An older watermark moves nothing back.
    let (bytes, signature) = signed(json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
        {"sender": {"id": "PSID-R"}, "recipient": {"id": "PAGE"}, "timestamp": 1, "read": {"watermark": 1}}]}]}));
    assert_eq!(post_webhook(&app, "/webhooks/messenger", bytes, Some(signature)).await, 200);
    assert_eq!(read_seq(&messenger).await, 2);

    // WhatsApp: the reply's wamid comes back from the Cloud API; its statuses move it on.
    let wa_message = |id: &str, text: &str| json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PNID"},
        "messages": [{"from": "447700900001", "id": id, "timestamp": "1", "type": "text", "text": {"body": text}}]}}]}]});
    let wa_status = |id: &str, status: &str| json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PNID"},
        "statuses": [{"id": id, "status": status, "timestamp": "2", "recipient_id": "447700900001"}]}}]}]});
    let (bytes, signature) = signed(wa_message("wamid.IN.1", "hi"));
    assert_eq!(post_webhook(&app, "/webhooks/whatsapp", bytes, Some(signature)).await, 200);
    let whatsapp = session_of("whatsapp").await;
    let receipts = async || admin.get(&format!("/api/sessions/{whatsapp}")).await.1["channel_receipts"].clone();
    assert!(eventually(Duration::from_secs(10), async || receipts().await == json!([{"seq": 2, "status": "sent"}])).await, "{}", receipts().await);
    let mut watching = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    watching.send(json!({"type": "watch", "session_id": whatsapp, "last_seq": 0})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (bytes, signature) = signed(wa_status("wamid.OUT.1", "delivered"));
    assert_eq!(post_webhook(&app, "/webhooks/whatsapp", bytes, Some(signature)).await, 200);
    assert_eq!(receipts().await, json!([{"seq": 2, "status": "delivered"}]));
    // The session view shows it live.
    let (delivery, _) = watching.recv_until("delivery").await;
    assert_eq!(delivery, json!({"type": "delivery", "session_id": whatsapp, "seq": 2, "status": "delivered"}));
    assert_eq!(read_seq(&whatsapp).await, 0, "delivered is not read");
    let (bytes, signature) = signed(wa_status("wamid.OUT.1", "read"));
    assert_eq!(post_webhook(&app, "/webhooks/whatsapp", bytes, Some(signature)).await, 200);
    assert_eq!((receipts().await, read_seq(&whatsapp).await), (json!([{"seq": 2, "status": "read"}]), json!(2)));
    assert_eq!(watching.recv_until("delivery").await.0["status"], "read");
    // Late or repeated statuses never move it back; unknown ids change nothing.
    for (id, status) in [("wamid.OUT.1", "delivered"), ("wamid.OUT.1", "failed"), ("wamid.NOT.OURS", "read")] {
        let (bytes, signature) = signed(wa_status(id, status));
        assert_eq!(post_webhook(&app, "/webhooks/whatsapp", bytes, Some(signature)).await, 200);
    }
    assert_eq!((receipts().await, read_seq(&whatsapp).await), (json!([{"seq": 2, "status": "read"}]), json!(2)));
}

// ---- Relay API -----------------------------------------------------------

#[tokio::test]
async fn the_relay_api_creates_appends_and_never_stores_twice() {
    let app = TestApp::spawn_with(|c| c.api_key = Some("relay-machine-key-0123456789".into())).await;
    let admin = app.admin().await;
    let mut dashboard = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    let post = |body: Value| app.http.post(app.url("/api/messenger-sessions")).bearer_auth("relay-machine-key-0123456789").json(&body).send();
    let first = json!({
        "session_id": "PSID-relay",
        "customer_name": "Lin",
        "metadata": {"page": "Shoes"},
        "messages": [
            {"id": "r1", "role": "visitor", "text": "do you ship to Norway?"},
            {"id": "r2", "role": "ai", "text": "Yes! What's your email?"}
        ]
    });
    let response = post(first.clone()).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["seqs"], json!([1, 2]));
    assert_eq!(body["session"]["channel"], "messenger");
    assert_eq!(body["session"]["customer"]["name"], "Lin");
    assert_eq!(body["session"]["metadata"]["source"], "relay");
    let id = body["session"]["id"].as_str().unwrap().to_owned();
    // The same post again stores nothing.
    let again: Value = post(first).await.unwrap().json().await.unwrap();
    assert_eq!(again["seqs"], json!([1, 2]));
    // The relay bot's completing reply runs the completion rules.
    let appended = app
        .http
        .post(app.url(&format!("/api/sessions/{id}/messages")))
        .bearer_auth("relay-machine-key-0123456789")
        .json(&json!({"id": "r3", "role": "ai", "text": "Book here: https://cal.example.com/book/lin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status().as_u16(), 201);
    let db = app.db().await;
    let row = db.query_one("SELECT completion_rule, last_seq FROM sessions", &[]).await.unwrap();
    assert_eq!((row.get::<_, Option<String>>(0), row.get::<_, i64>(1)), (Some("booking_link".into()), 3));
    // Our agent never answers relayed conversations.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ai: i64 = db.query_one("SELECT count(*) FROM messages WHERE role = 'ai'", &[]).await.unwrap().get(0);
    assert_eq!(ai, 2);
    // Dashboards saw it live.
    let seen = loop {
        let frame = dashboard.recv().await;
        if frame["type"] == "session" && frame["session"]["id"] == id.as_str() && frame["session"]["completion"] == "complete" {
            break frame;
        }
    };
    assert_eq!(seen["session"]["message_count"], 3);
    // Bad input: unknown role, no key, stores nothing.
    let bad = post(json!({"session_id": "PSID-bad", "messages": [{"id": "x", "role": "robot", "text": "hi"}]})).await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let anonymous = app.http.post(app.url("/api/messenger-sessions")).json(&json!({"session_id": "x"})).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let sessions: i64 = db.query_one("SELECT count(*) FROM sessions", &[]).await.unwrap().get(0);
    assert_eq!(sessions, 1);
}
