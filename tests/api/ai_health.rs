//! The AI-health monitor (SPEC §16) against a real server and a webhook
//! agent standing in for n8n: timeouts and fallbacks counted as they
//! happen, a threshold crossed raising one `ai.alert` delivery (exact shape
//! checked) and a dashboard alert, the same answer three times in a row
//! counted as one loop, and the refusals of the thresholds API.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::ws_client::Visitor;

#[tokio::test]
async fn agent_timeouts_count_as_timeouts_and_fallbacks_and_a_crossed_threshold_alerts_once() {
    // An alert's window is wall-clock time (five minutes here): a crossing
    // still on when the next window starts alerts again, so the test must
    // not straddle a window's end (it takes well under a minute).
    let into_window = chrono::Utc::now().timestamp().rem_euclid(5 * 60);
    if into_window > 5 * 60 - 60 {
        tokio::time::sleep(Duration::from_secs((5 * 60 - into_window + 1) as u64)).await;
    }
    let agent = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/agent"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_json(json!({"reply": "too late"})))
        .mount(&agent)
        .await;
    let alerts = MockServer::start().await;
    Mock::given(method("POST")).and(path("/alerts")).respond_with(ResponseTemplate::new(204)).mount(&alerts).await;
    let (agent_url, alert_url) = (format!("{}/agent", agent.uri()), format!("{}/alerts", alerts.uri()));
    let app = TestApp::spawn_with(move |c| {
        c.agent = "webhook".into();
        c.agent_url = Some(agent_url);
        c.limits.agent_timeout_secs = 1;
        c.alert_webhook_url = Some(alert_url);
        c.alert_webhook_secret = Some("whsec_".to_owned() + "YWxlcnQtc2VjcmV0LWZvci10ZXN0cw==");
        c.ai_health_check_secs = 1;
    })
    .await;
    let admin = app.admin().await;
    let mut dashboard = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    for (i, text) in ["hello", "anyone there?"].iter().enumerate() {
        visitor.say(&format!("m{i}"), text).await;
        let fallback = visitor.next_message().await;
        assert_eq!(fallback["role"], "system", "{fallback}");
    }
    let health = admin.get("/api/ai-health?minutes=5").await.1;
    assert_eq!(
        (health["minutes"].as_i64(), health["timeouts"].as_i64(), health["fallbacks"].as_i64(), health["errors"].as_i64(), health["replies"].as_i64()),
        (Some(5), Some(2), Some(2), Some(0), Some(0)),
        "{health}"
    );
    // The health card reaches the dashboard without asking.
    let card = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (card, _) = dashboard.recv_until("ai_health").await;
            if card["health"]["timeouts"] == 2 {
                return card;
            }
        }
    })
    .await
    .expect("a card with both timeouts");
    assert_eq!(card["health"]["minutes"], 15);

    // Past a threshold: one alert, however many checks follow.
    let threshold = json!({"alerts": [{"metric": "timeouts", "max": 1, "minutes": 5}]});
    let (status, saved) = admin.call("PUT", "/api/ai-health/alerts", Some(threshold)).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["alerts"], json!([{"metric": "timeouts", "max": 1.0, "minutes": 5}]));
    let (alert, _) = dashboard.recv_until("ai_alert").await;
    assert_eq!(alert, json!({"type": "ai_alert", "metric": "timeouts", "value": 2.0, "max": 1.0, "minutes": 5}));
    assert!(eventually(Duration::from_secs(10), async || alerts.received_requests().await.unwrap().len() == 1).await, "the alert was delivered");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = alerts.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one alert per threshold and window");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["type"], "ai.alert");
    assert_eq!((body["data"]["metric"].as_str(), body["data"]["value"].as_f64(), body["data"]["max"].as_f64()), (Some("timeouts"), Some(2.0), Some(1.0)));
    assert_eq!(body["data"]["health"]["timeouts"], 2);
    let id = requests[0].headers["webhook-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("ai.alert/timeouts/"), "{id}");
    let timestamp: i64 = requests[0].headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    let signature = requests[0].headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signature, standard_webhook_signature("whsec_YWxlcnQtc2VjcmV0LWZvci10ZXN0cw==", &id, timestamp, &requests[0].body));
    let outbox: Vec<String> = app.db().await.query("SELECT status FROM outbox WHERE event_type = 'ai.alert'", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(outbox, ["delivered"]);
}

#[tokio::test]
async fn the_same_answer_three_times_in_a_row_is_one_loop() {
    let agent = MockServer::start().await;
    Mock::given(method("POST")).and(path("/agent")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"reply": "Could you rephrase that?"}))).mount(&agent).await;
    let agent_url = format!("{}/agent", agent.uri());
    let app = TestApp::spawn_with(move |c| {
        c.agent = "webhook".into();
        c.agent_url = Some(agent_url);
    })
    .await;
    let admin = app.admin().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let loops = async || admin.get("/api/ai-health?minutes=5").await.1["loops"].as_i64();
    for i in 0..4 {
        visitor.say(&format!("m{i}"), &format!("question {i}")).await;
        visitor.next_message().await;
        let expected = if i < 2 { 0 } else { 1 };
        assert_eq!(loops().await, Some(expected), "after answer {}", i + 1);
    }
    let health = admin.get("/api/ai-health").await.1;
    assert_eq!((health["minutes"].as_i64(), health["replies"].as_i64()), (Some(15), Some(4)));
    assert!(health["latency_p50_ms"].as_u64().is_some() && health["latency_p95_ms"].as_u64().is_some(), "{health}");
}

#[tokio::test]
async fn thresholds_are_checked_and_only_admins_set_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let agent = app.staff("ana", "agent").await;
    assert_eq!(agent.get("/api/ai-health").await.0, 200);
    assert_eq!(agent.get("/api/ai-health/alerts").await.1, json!({"alerts": [], "metrics": ["replies", "latency_p50_ms", "latency_p95_ms", "timeouts", "fallbacks", "errors", "loops", "stuck_typing"]}));
    let good = json!({"alerts": [{"metric": "errors", "max": 3, "minutes": 10}]});
    assert_eq!(agent.call("PUT", "/api/ai-health/alerts", Some(good.clone())).await.0, 403);
    for (bad, code) in [
        (json!({"alerts": [{"metric": "mood", "max": 1, "minutes": 5}]}), "invalid_metric"),
        (json!({"alerts": [{"metric": "errors", "max": -1, "minutes": 5}]}), "invalid_max"),
        (json!({"alerts": [{"metric": "errors", "max": 1, "minutes": 0}]}), "invalid_minutes"),
        (json!({"alerts": [{"metric": "errors", "max": 1, "minutes": 5}, {"metric": "errors", "max": 2, "minutes": 5}]}), "duplicate_metric"),
    ] {
        let (status, error) = admin.call("PUT", "/api/ai-health/alerts", Some(bad)).await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some(code)));
    }
    assert_eq!(admin.get("/api/ai-health/alerts").await.1["alerts"], json!([]), "refusals change nothing");
    assert_eq!(admin.call("PUT", "/api/ai-health/alerts", Some(good)).await.0, 200);
    assert_eq!(admin.get("/api/ai-health/alerts").await.1["alerts"], json!([{"metric": "errors", "max": 3.0, "minutes": 10}]));
    let (status, error) = admin.get("/api/ai-health?minutes=0").await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_minutes")));
}
