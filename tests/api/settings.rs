//! Admin settings: sites (where the widget may run, how it looks) and
//! completion rules (changes take effect in live conversations at once).

use serde_json::json;

use crate::helpers::*;
use crate::ws_client::Visitor;

#[tokio::test]
async fn admins_manage_sites_and_the_widget_and_socket_follow() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let shop = json!({"key": "shop", "name": "Shoe shop", "allowed_origins": ["https://shoes.example.com"],
                      "greeting": "Need help with sizes?", "color": "#ff6600", "position": "left", "prechat_form": true});
    let (status, site) = admin.call("POST", "/api/sites", Some(shop.clone())).await;
    assert_eq!(status, 201, "{site}");
    assert_eq!(admin.call("POST", "/api/sites", Some(shop)).await.0, 409);
    let public: serde_json::Value = reqwest::get(app.url("/api/sites/shop/public")).await.unwrap().json().await.unwrap();
    assert_eq!(
        (public["color"].as_str(), public["position"].as_str(), public["prechat_form"].as_bool(), public["greeting"].as_str()),
        (Some("#ff6600"), Some("left"), Some(true), Some("Need help with sizes?"))
    );
    // Only the allowed origin may open the shop's chat.
    let handshake = |origin: &'static str| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{}/ws/chat?site=shop", app.port).into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    assert!(handshake("https://shoes.example.com").await.is_ok());
    assert!(handshake("https://elsewhere.example").await.is_err());

    let (status, changed) = admin.call("PUT", "/api/sites/shop", Some(json!({"color": "#123456", "greeting": null}))).await;
    assert_eq!(status, 200);
    assert_eq!((changed["color"].as_str(), changed["greeting"].is_null()), (Some("#123456"), true));
    for bad in [
        json!({"color": "red"}),
        json!({"position": "top"}),
        json!({"allowed_origins": ["shoes.example.com"]}),
        json!({"allowed_origins": ["https://shoes.example.com/path"]}),
        json!({"key": "renamed"}),
    ] {
        assert_eq!(admin.call("PUT", "/api/sites/shop", Some(bad.clone())).await.0, 400, "{bad}");
    }
    assert_eq!(admin.call("DELETE", "/api/sites/default", None).await.0, 409);
    // Read (and so cached) just before it goes: the deletion still shows at once.
    assert_eq!(reqwest::get(app.url("/api/sites/shop/public")).await.unwrap().status().as_u16(), 200);
    assert_eq!(admin.call("DELETE", "/api/sites/shop", None).await.0, 204);
    assert_eq!(reqwest::get(app.url("/api/sites/shop/public")).await.unwrap().status().as_u16(), 404);
    let (_, sites) = admin.get("/api/sites").await;
    assert_eq!(sites["sites"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn completion_rules_are_data_that_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let agent = app.staff("agnes", "agent").await;
    let (_, rules) = admin.get("/api/completion-rules").await;
    let names: Vec<&str> = rules["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["booking_link", "callback_24h"]);

    let bad = json!({"name": "broken", "kind": "regex", "pattern": "(unclosed"});
    assert_eq!(admin.call("POST", "/api/completion-rules", Some(bad)).await.0, 400);
    assert_eq!(admin.call("POST", "/api/completion-rules", Some(json!({"name": "x", "kind": "glob", "pattern": "*"}))).await.0, 400);
    let (status, rule) = admin
        .call("POST", "/api/completion-rules", Some(json!({"name": "order_confirmed", "kind": "regex", "pattern": "order #\\d{5}", "position": 1})))
        .await;
    assert_eq!(status, 201, "{rule}");
    let (_, tested) = admin.call("POST", "/api/completion-rules/test", Some(json!({"text": "Your order #12345 is confirmed"}))).await;
    assert_eq!(tested["rule"], "order_confirmed");
    let (_, tested) = admin.call("POST", "/api/completion-rules/test", Some(json!({"text": "hello"}))).await;
    assert!(tested["rule"].is_null());

    // A staff reply in a live conversation completes it by the new rule.
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "where is my order?").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();
    let (status, _) = agent.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "r1", "text": "Your order #12345 ships today"}))).await;
    assert_eq!(status, 201);
    let (status_frame, _) = visitor.recv_until("status").await;
    assert_eq!(status_frame["completion"], "complete");
    let (_, detail) = admin.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(detail["session"]["completion_rule"], "order_confirmed");
    let (_, rules) = admin.get("/api/completion-rules").await;
    let fired = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "order_confirmed").unwrap().clone();
    assert_eq!(fired["fire_count"], 1);
    assert!(fired["last_fired_at"].is_string());

    // Disabled, it no longer fires.
    let id = rule["id"].as_str().unwrap();
    assert_eq!(admin.call("PUT", &format!("/api/completion-rules/{id}"), Some(json!({"enabled": false}))).await.0, 200);
    let (_, tested) = admin.call("POST", "/api/completion-rules/test", Some(json!({"text": "order #54321"}))).await;
    assert!(tested["rule"].is_null());
    assert_eq!(admin.call("PUT", &format!("/api/completion-rules/{id}"), Some(json!({"pattern": "("}))).await.0, 400);
    assert_eq!(admin.call("DELETE", &format!("/api/completion-rules/{id}"), None).await.0, 204);
    assert_eq!(agent.get("/api/completion-rules").await.0, 403);
}
