//! The customer's verdict (SPEC §16), through real sockets and webhooks: a
//! widget visitor rates with a `csat` frame (once; again within 24 h
//! replaces it; bad scores refused), the summary, stats, list filter and
//! export carry it; a WhatsApp customer is asked by text when staff resolve
//! the chat, and a reply of 1–5 is their rating, thanked, never answered
//! by the agent.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::ws_client::Visitor;

async fn summary(staff: &StaffClient, session: &str) -> Value {
    staff.get(&format!("/api/sessions/{session}")).await.1["session"].clone()
}

/// The error frame a `csat` frame gets, or `None` if none comes within a moment.
async fn csat_answer(socket: &mut Visitor, frame: Value) -> Option<Value> {
    socket.send(frame).await;
    while let Ok(answer) = tokio::time::timeout(Duration::from_millis(500), socket.recv()).await {
        if answer["type"] == "error" {
            return Some(answer);
        }
    }
    None
}

#[tokio::test]
async fn a_visitor_rates_once_may_change_it_for_a_day_and_bad_scores_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    // Nothing stored yet: nothing to rate.
    let early = csat_answer(&mut visitor, json!({"type": "csat", "score": 5})).await.expect("refused");
    assert_eq!(early["code"], "csat_closed");
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();

    for (frame, code) in [
        (json!({"type": "csat", "score": 0}), "invalid_csat"),
        (json!({"type": "csat", "score": 6}), "invalid_csat"),
        (json!({"type": "csat", "score": "five"}), "invalid_frame"),
        (json!({"type": "csat", "score": 3, "comment": "x".repeat(1001)}), "invalid_csat"),
    ] {
        let refused = csat_answer(&mut visitor, frame).await.expect("refused");
        assert_eq!(refused["code"], code, "{refused}");
    }
    assert_eq!(summary(&admin, &session).await["csat_score"], Value::Null, "nothing stored");

    assert_eq!(csat_answer(&mut visitor, json!({"type": "csat", "score": 4, "comment": "  Quick and kind  "})).await, None);
    let rated = summary(&admin, &session).await;
    assert_eq!((rated["csat_score"].as_i64(), rated["csat_comment"].as_str()), (Some(4), Some("Quick and kind")));
    // Within 24 h a second rating replaces the first.
    assert_eq!(csat_answer(&mut visitor, json!({"type": "csat", "score": 5})).await, None);
    let rated = summary(&admin, &session).await;
    assert_eq!((rated["csat_score"].as_i64(), &rated["csat_comment"]), (Some(5), &Value::Null));
    // After that it stands.
    let db = app.db().await;
    db.execute("UPDATE sessions SET csat_at = now() - interval '25 hours' WHERE id = $1::text::uuid", &[&session]).await.unwrap();
    let late = csat_answer(&mut visitor, json!({"type": "csat", "score": 1})).await.expect("refused");
    assert_eq!(late["code"], "csat_closed");
    assert_eq!(summary(&admin, &session).await["csat_score"], 5);

    // Stats, the list filter and the export carry it.
    let mut other = Visitor::connect(app.port).await;
    other.hello().await;
    other.say("1", "hi").await;
    other.next_message().await;
    assert_eq!(csat_answer(&mut other, json!({"type": "csat", "score": 2})).await, None);
    let stats = admin.get("/api/sessions/stats").await.1;
    assert_eq!(stats["csat"], json!({"responses": 2, "average": 3.5, "distribution": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}}));
    let fives = admin.get("/api/sessions?csat=5").await.1;
    let ids: Vec<&str> = fives["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![session.as_str()]);
    assert_eq!(admin.get("/api/sessions?csat=3").await.1["total"], 0);
    let (status, error) = admin.get("/api/sessions?csat=9").await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_filter")));
    let csv = admin.request("GET", "/api/sessions/export?format=csv").send().await.unwrap().text().await.unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|c| *c == "csat_score").expect("a csat_score column");
    let scores: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').nth(column).unwrap()).collect();
    assert_eq!({ let mut s = scores.clone(); s.sort(); s }, vec!["2", "5"]);
}

#[tokio::test]
async fn a_whatsapp_customer_is_asked_by_text_when_resolved_and_a_digit_is_their_rating() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/PNID/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.out"}]})))
        .mount(&graph)
        .await;
    let base = graph.uri();
    let app = TestApp::spawn_with(move |c| {
        c.whatsapp_app_secret = Some("meta-app-secret".into());
        c.whatsapp_token = Some("wa-token".into());
        c.whatsapp_phone_number_id = Some("PNID".into());
        c.graph_api_url = base;
        c.notifier_retry_base_ms = 50;
    })
    .await;
    let customer_says = async |id: &str, text: &str| {
        let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PNID"},
            "contacts": [{"profile": {"name": "Grace"}, "wa_id": "447700900002"}],
            "messages": [{"from": "447700900002", "id": id, "timestamp": "1", "type": "text", "text": {"body": text}}]}}]}]}))
        .unwrap();
        let signature = chathub::channels::sign("meta-app-secret", &body);
        let response = app.http.post(app.url("/webhooks/whatsapp")).header("x-hub-signature-256", signature).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    };
    let sent_texts = async || -> Vec<String> {
        graph.received_requests().await.unwrap().iter().filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok()).filter_map(|b| b["text"]["body"].as_str().map(str::to_owned)).collect()
    };
    customer_says("wamid.1", "Hi, I need a cleaning").await;
    assert!(eventually(Duration::from_secs(10), async || sent_texts().await.len() == 1).await, "the agent answered");
    let db = app.db().await;
    let session: String = db.query_one("SELECT id::text FROM sessions", &[]).await.unwrap().get(0);
    let agent = app.staff("ana", "agent").await;
    assert_eq!(agent.call("PUT", &format!("/api/sessions/{session}"), Some(json!({"status": "resolved"}))).await.0, 200);
    let asked = eventually(Duration::from_secs(10), async || sent_texts().await.iter().any(|t| t.starts_with("How did we do?"))).await;
    assert!(asked, "{:?}", sent_texts().await);
    // Asked once: resolving again asks nothing more.
    assert_eq!(agent.call("PUT", &format!("/api/sessions/{session}"), Some(json!({"status": "active"}))).await.0, 200);
    assert_eq!(agent.call("PUT", &format!("/api/sessions/{session}"), Some(json!({"status": "resolved"}))).await.0, 200);

    customer_says("wamid.2", " 4 ").await;
    let rated = summary(&agent, &session).await;
    assert_eq!(rated["csat_score"], 4);
    assert_eq!(rated["status"], "resolved", "a rating does not reopen the chat");
    assert!(eventually(Duration::from_secs(10), async || sent_texts().await.iter().any(|t| t == "Thank you for your rating!")).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts = sent_texts().await;
    assert_eq!(texts.iter().filter(|t| t.starts_with("How did we do?")).count(), 1, "{texts:?}");
    assert_eq!(texts.len(), 3, "the agent did not answer the rating: {texts:?}");
    let roles: Vec<String> = db.query("SELECT role FROM messages ORDER BY seq", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(roles, ["visitor", "ai", "system", "visitor", "system"]);
    // A later "5" is a message like any other (the rating was given).
    customer_says("wamid.3", "5").await;
    assert_eq!(summary(&agent, &session).await["csat_score"], 4);
}
