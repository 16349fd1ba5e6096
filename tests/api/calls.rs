//! Video-call signaling (SPEC §14) through real sockets: ring → accept →
//! signals relayed both ways → hangup, stored with a transcript line;
//! decline; missed after the (short, configured) ring timeout; a dropped
//! visitor socket that comes back within the grace resumes the call, one
//! that does not ends it; third parties' frames refused; and the ICE
//! servers, with TURN credentials checked against coturn's HMAC-SHA1 scheme.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::Visitor;

/// A visitor with a stored conversation, and an agent's dashboard.
async fn parties(app: &TestApp) -> (Visitor, Visitor, StaffClient, String) {
    let agent = app.staff("ana", "agent").await;
    assert_eq!(agent.call("PUT", "/api/auth/me", Some(json!({"display_name": "Ana"}))).await.0, 200);
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();
    let dashboard = Visitor::dashboard(app.port, &agent.cookie, &agent.origin()).await;
    (visitor, dashboard, agent, session)
}

/// The next `call` frame with this action.
async fn call_frame(socket: &mut Visitor, action: &str) -> Value {
    loop {
        let (frame, _) = socket.recv_until("call").await;
        if frame["action"] == action {
            return frame;
        }
    }
}

async fn ring(dashboard: &mut Visitor, visitor: &mut Visitor, session: &str) -> String {
    dashboard.send(json!({"type": "call", "session_id": session, "action": "start"})).await;
    let ringing = call_frame(dashboard, "ringing").await;
    let call_id = ringing["call_id"].as_str().unwrap().to_owned();
    let ring = call_frame(visitor, "ring").await;
    assert_eq!(ring, json!({"type": "call", "call_id": call_id, "action": "ring", "from": "Ana"}));
    call_id
}

async fn stored_calls(agent: &StaffClient, session: &str) -> Vec<Value> {
    agent.get(&format!("/api/sessions/{session}")).await.1["calls"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_call_rings_connects_relays_signals_only_between_its_two_parties_and_is_recorded() {
    let app = TestApp::spawn().await;
    let (mut visitor, mut dashboard, agent, session) = parties(&app).await;
    let call_id = ring(&mut dashboard, &mut visitor, &session).await;
    // A second call in the same conversation is refused while one runs.
    dashboard.send(json!({"type": "call", "session_id": session, "action": "start"})).await;
    assert_eq!(dashboard.recv_until("error").await.0["code"], "call_refused");

    visitor.send(json!({"type": "call", "call_id": call_id, "action": "accept"})).await;
    assert_eq!(call_frame(&mut dashboard, "accepted").await["session_id"], session.as_str());
    // Signaling goes both ways, untouched.
    let offer = json!({"sdp": {"type": "offer", "sdp": "v=0 …"}});
    dashboard.send(json!({"type": "signal", "session_id": session, "call_id": call_id, "data": offer})).await;
    assert_eq!(visitor.recv_until("signal").await.0, json!({"type": "signal", "call_id": call_id, "data": offer}));
    let candidate = json!({"candidate": {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0"}});
    visitor.send(json!({"type": "signal", "call_id": call_id, "data": candidate})).await;
    assert_eq!(dashboard.recv_until("signal").await.0, json!({"type": "signal", "session_id": session, "call_id": call_id, "data": candidate}));

    // Third parties: another conversation's visitor, another staff socket.
    let mut stranger = Visitor::connect(app.port).await;
    stranger.hello().await;
    stranger.say("1", "hi").await;
    stranger.send(json!({"type": "signal", "call_id": call_id, "data": {"sdp": "evil"}})).await;
    assert_eq!(stranger.recv_until("error").await.0["code"], "call_refused");
    let admin = app.admin().await;
    let mut other_dashboard = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    other_dashboard.send(json!({"type": "signal", "session_id": session, "call_id": call_id, "data": {"sdp": "evil"}})).await;
    assert_eq!(other_dashboard.recv_until("error").await.0["code"], "call_refused");
    other_dashboard.send(json!({"type": "call", "session_id": session, "call_id": call_id, "action": "hangup"})).await;
    assert_eq!(other_dashboard.recv_until("error").await.0["code"], "call_refused");
    let quiet = tokio::time::timeout(Duration::from_millis(400), visitor.recv_until("signal")).await;
    assert!(quiet.is_err(), "nothing of theirs reached the visitor");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let quality = json!({"rtt_ms": 3, "packets_lost": 0});
    dashboard.send(json!({"type": "call", "session_id": session, "call_id": call_id, "action": "hangup", "quality": quality})).await;
    assert_eq!(call_frame(&mut visitor, "ended").await["call_id"], call_id.as_str());
    let line = visitor.next_message().await;
    assert_eq!(line["role"], "system");
    assert!(line["text"].as_str().unwrap().starts_with("Video call, 1 s"), "{line}");
    assert!(eventually(Duration::from_secs(5), async || stored_calls(&agent, &session).await.len() == 1).await);
    let call = &stored_calls(&agent, &session).await[0];
    assert_eq!((call["status"].as_str(), call["started_by_name"].as_str(), call["duration_secs"].as_i64()), (Some("ended"), Some("Ana"), Some(1)));
    assert_eq!(call["quality"], quality);
    assert!(call["answered_at"].is_string());
    let roles: Vec<&str> = call["participants"].as_array().unwrap().iter().map(|p| p["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["staff", "visitor"]);
}

#[tokio::test]
async fn a_call_is_declined_missed_or_refused_when_nobody_is_there() {
    let app = TestApp::spawn_with(|c| c.calls.ring_timeout_secs = 1).await;
    let (mut visitor, mut dashboard, agent, session) = parties(&app).await;
    let call_id = ring(&mut dashboard, &mut visitor, &session).await;
    visitor.send(json!({"type": "call", "call_id": call_id, "action": "decline"})).await;
    assert_eq!(call_frame(&mut dashboard, "declined").await["call_id"], call_id.as_str());
    assert_eq!(visitor.next_message().await["text"], "Video call declined");

    // Nobody answers: missed after the ring timeout, for both.
    let call_id = ring(&mut dashboard, &mut visitor, &session).await;
    assert_eq!(call_frame(&mut dashboard, "missed").await["call_id"], call_id.as_str());
    assert_eq!(call_frame(&mut visitor, "missed").await["call_id"], call_id.as_str());
    // An answer after that is refused.
    visitor.send(json!({"type": "call", "call_id": call_id, "action": "accept"})).await;
    assert_eq!(visitor.recv_until("error").await.0["code"], "call_refused");
    assert!(eventually(Duration::from_secs(5), async || stored_calls(&agent, &session).await.len() == 2).await);
    let statuses: Vec<String> = stored_calls(&agent, &session).await.iter().map(|c| c["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(statuses, ["declined", "missed"]);

    // The visitor left: nothing rings.
    visitor.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    dashboard.send(json!({"type": "call", "session_id": session, "action": "start"})).await;
    let refused = dashboard.recv_until("error").await.0;
    assert_eq!(refused["code"], "call_refused");
    assert!(refused["message"].as_str().unwrap().contains("not online"), "{refused}");
}

#[tokio::test]
async fn a_dropped_visitor_socket_resumes_the_call_within_the_grace_or_ends_it() {
    let app = TestApp::spawn_with(|c| c.calls.grace_secs = 2).await;
    let (mut visitor, mut dashboard, agent, session) = parties(&app).await;
    let token = visitor.token.clone().unwrap();
    let call_id = ring(&mut dashboard, &mut visitor, &session).await;
    visitor.send(json!({"type": "call", "call_id": call_id, "action": "accept"})).await;
    call_frame(&mut dashboard, "accepted").await;
    // The socket drops and comes back within the grace: the call carries on.
    visitor.close().await;
    let mut back = Visitor::connect(app.port).await;
    back.resume(&token, 0).await;
    assert_eq!(call_frame(&mut back, "resumed").await["call_id"], call_id.as_str());
    assert_eq!(call_frame(&mut dashboard, "resumed").await["call_id"], call_id.as_str());
    dashboard.send(json!({"type": "signal", "session_id": session, "call_id": call_id, "data": {"ice_restart": true}})).await;
    assert_eq!(back.recv_until("signal").await.0["data"], json!({"ice_restart": true}));
    // It drops again for good: the call ends after the grace.
    back.close().await;
    let ended = call_frame(&mut dashboard, "ended").await;
    assert!(ended["reason"].as_str().unwrap().contains("dropped"), "{ended}");
    assert!(eventually(Duration::from_secs(5), async || stored_calls(&agent, &session).await.len() == 1).await);
    assert_eq!(stored_calls(&agent, &session).await[0]["status"], "ended");
}

#[tokio::test]
async fn ice_servers_come_from_the_settings_and_turn_credentials_follow_coturns_scheme() {
    let plain = TestApp::spawn_with(|c| c.calls.ice_servers = "stun:stun.example.org:3478".into()).await;
    let agent = plain.staff("ana", "agent").await;
    assert_eq!(agent.get("/api/calls/ice-servers").await.1["ice_servers"], json!([{"urls": ["stun:stun.example.org:3478"]}]));
    assert_eq!(plain.http.get(plain.url("/api/calls/ice-servers")).send().await.unwrap().status(), 401);

    let app = TestApp::spawn_with(|c| {
        c.calls.ice_servers = "stun:stun.example.org:3478".into();
        c.calls.turn_urls = "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349".into();
        c.calls.turn_secret = Some("coturn-static-auth-secret".into());
        c.calls.turn_ttl_secs = 600;
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let token = visitor.token.clone().unwrap();
    let answer: Value = app.http.get(app.url("/api/calls/ice-servers")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let servers = answer["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    let turn = &servers[1];
    assert_eq!(turn["urls"], json!(["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]));
    let username = turn["username"].as_str().unwrap();
    let (expiry, who) = username.split_once(':').unwrap();
    let expiry: i64 = expiry.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now + 590..=now + 610).contains(&expiry), "{username}");
    assert_eq!(who, format!("visitor-{}", visitor.session_id.clone().unwrap()));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"coturn-static-auth-secret").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn["credential"], expected.as_str());
}
