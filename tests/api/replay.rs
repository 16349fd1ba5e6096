//! Replays (SPEC §16) through the real server: a finished demo
//! conversation replayed against the demo agent is the same turn by turn;
//! against a webhook agent that now answers differently, every turn is
//! changed with both texts, and a failing agent marks turns failed, not
//! the replay. The original sessions, their messages and deliveries are
//! never touched; progress reaches the dashboards.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::ws_client::Visitor;

async fn finished(staff: &StaffClient, id: &str) -> Value {
    let mut replay = Value::Null;
    let done = eventually(Duration::from_secs(20), async || {
        replay = staff.get(&format!("/api/replays/{id}")).await.1["replay"].clone();
        replay["status"] == "done"
    })
    .await;
    assert!(done, "{replay}");
    replay
}

async fn counts(app: &TestApp) -> (i64, i64, i64) {
    let db = app.db().await;
    let count = async |table: &str| -> i64 { db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0) };
    (count("sessions").await, count("messages").await, count("outbox").await)
}

#[tokio::test]
async fn a_demo_conversation_replayed_against_the_demo_agent_is_the_same_and_nothing_else_moves() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    for (i, text) in ["Hi, I'd like an appointment", "Ada Lovelace", "ada@example.com", "+44 20 7946 0958"].iter().enumerate() {
        visitor.say(&format!("m{i}"), text).await;
        visitor.next_message().await;
    }
    let session = visitor.session_id.clone().unwrap();
    let before = counts(&app).await;
    let mut dashboard = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;

    let (status, started) = admin.call("POST", "/api/replays", Some(json!({"session_ids": [session], "note": "after the prompt change"}))).await;
    assert_eq!(status, 202, "{started}");
    let id = started["replay"]["id"].as_str().unwrap().to_owned();
    assert_eq!((started["replay"]["status"].as_str(), started["replay"]["created_by"].as_str()), (Some("running"), Some("admin")));
    let replay = finished(&admin, &id).await;
    let turns = replay["sessions"][0]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 4);
    assert!(turns.iter().all(|t| t["same"] == true && t["original"] == t["replayed"]), "{turns:?}");
    assert_eq!(turns[1]["visitor"], "Ada Lovelace");
    assert_eq!(replay["summary"], json!({"turns": 4, "same": 4, "changed": 0, "failed": 0}));
    assert_eq!(replay["note"], "after the prompt change");
    let (done, _) = dashboard.recv_until("replay").await;
    assert_eq!(done["id"], id.as_str());
    // A sandbox: no session, message or delivery more than before.
    assert_eq!(counts(&app).await, before);
    let listed = admin.get("/api/replays").await.1;
    assert_eq!(listed["replays"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_changed_agent_shows_changed_turns_and_a_failing_one_failed_turns() {
    let agent = MockServer::start().await;
    Mock::given(method("POST")).and(path("/agent")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"reply": "Our first answer"}))).up_to_n_times(2).mount(&agent).await;
    Mock::given(method("POST")).and(path("/agent")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"reply": "A better answer"}))).up_to_n_times(2).mount(&agent).await;
    Mock::given(method("POST")).and(path("/agent")).respond_with(ResponseTemplate::new(500)).mount(&agent).await;
    let agent_url = format!("{}/agent", agent.uri());
    let app = TestApp::spawn_with(move |c| {
        c.agent = "webhook".into();
        c.agent_url = Some(agent_url);
    })
    .await;
    let developer = app.staff("dev", "developer").await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    for (i, text) in ["hello", "what are your prices?"].iter().enumerate() {
        visitor.say(&format!("m{i}"), text).await;
        assert_eq!(visitor.next_message().await["text"], "Our first answer");
    }
    let session = visitor.session_id.clone().unwrap();
    let before = counts(&app).await;

    let (_, started) = developer.call("POST", "/api/replays", Some(json!({"session_ids": [session]}))).await;
    let replay = finished(&developer, started["replay"]["id"].as_str().unwrap()).await;
    let turns = replay["sessions"][0]["turns"].as_array().unwrap();
    assert_eq!(turns[1], json!({"visitor": "what are your prices?", "original": "Our first answer", "replayed": "A better answer", "same": false}));
    assert_eq!(replay["summary"], json!({"turns": 2, "same": 0, "changed": 2, "failed": 0}));
    // The agent saw a sandbox conversation, not the real one.
    let requests = agent.received_requests().await.unwrap();
    let ids: Vec<String> = requests.iter().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["session_id"].as_str().unwrap().to_owned()).collect();
    assert!(ids[..2].iter().all(|s| *s == session) && ids[2..].iter().all(|s| *s != session), "{ids:?}");

    // Now the agent fails: each turn says why; the replay finishes.
    let (_, started) = developer.call("POST", "/api/replays", Some(json!({"session_ids": [session]}))).await;
    let replay = finished(&developer, started["replay"]["id"].as_str().unwrap()).await;
    assert_eq!(replay["summary"], json!({"turns": 2, "same": 0, "changed": 0, "failed": 2}));
    let turn = &replay["sessions"][0]["turns"][0];
    assert_eq!((turn["replayed"].clone(), turn["error"].as_str()), (Value::Null, Some("the agent answered with HTTP 500")));
    assert_eq!(counts(&app).await, before, "replays store nothing in the conversation");
}

#[tokio::test]
async fn replays_are_refused_for_bad_input_and_roles_that_may_not() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let agent = app.staff("ana", "agent").await;
    let one = json!({"session_ids": [uuid::Uuid::new_v4()]});
    assert_eq!(agent.call("POST", "/api/replays", Some(one.clone())).await.0, 403);
    assert_eq!(admin.call("POST", "/api/replays", Some(one)).await.0, 404, "an unknown session");
    let (status, error) = admin.call("POST", "/api/replays", Some(json!({"session_ids": []}))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_session_ids")));
    let many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    assert_eq!(admin.call("POST", "/api/replays", Some(json!({"session_ids": many}))).await.0, 400);
    assert_eq!(admin.get(&format!("/api/replays/{}", uuid::Uuid::new_v4())).await.0, 404);
    assert_eq!(app.db().await.query_one("SELECT count(*) FROM replays", &[]).await.unwrap().get::<_, i64>(0), 0);
}
