//! Read receipts on the web channel (SPEC §12), through real sockets: the
//! visitor's `read` reaches the watching dashboard and the summary
//! (`visitor_read_seq`); a dashboard's `read` reaches the visitor (also
//! after a resume) and clears `unread`; positions only move forward, are
//! stored once per advance, and bad frames get error frames.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::Visitor;

async fn summary(staff: &StaffClient, session: &str) -> Value {
    staff.get(&format!("/api/sessions/{session}")).await.1["session"].clone()
}

/// Frames that arrive within `wait` (none expected).
async fn quiet(socket: &mut Visitor, wait: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Ok(frame) = tokio::time::timeout(wait, socket.recv()).await {
        got.push(frame);
    }
    got
}

#[tokio::test]
async fn reads_travel_both_ways_only_forward_and_survive_a_resume() {
    let app = TestApp::spawn().await;
    let agent = app.staff("ana", "agent").await;
    assert_eq!(agent.call("PUT", "/api/auth/me", Some(json!({"display_name": "Ana"}))).await.0, 200);
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    assert_eq!(visitor.next_message().await["seq"], 2);
    let session = visitor.session_id.clone().unwrap();
    let before = summary(&agent, &session).await;
    assert_eq!((before["visitor_read_seq"].as_i64(), before["staff_read_seq"].as_i64(), before["unread"].as_i64()), (Some(0), Some(0), Some(1)));

    let mut dashboard = Visitor::dashboard(app.port, &agent.cookie, &agent.origin()).await;
    dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The visitor has seen the AI's answer.
    visitor.send(json!({"type": "read", "seq": 2})).await;
    let (read, _) = dashboard.recv_until("read").await;
    assert_eq!(read, json!({"type": "read", "session_id": session, "by": "visitor", "seq": 2}));
    assert!(eventually(Duration::from_secs(5), async || summary(&agent, &session).await["visitor_read_seq"] == 2).await);
    // The same again, an older one, one past the end: nothing moves, nothing is sent.
    let db = app.db().await;
    let stamp = async || -> chrono::DateTime<chrono::Utc> {
        db.query_one("SELECT updated_at FROM sessions WHERE id = $1::text::uuid", &[&session]).await.unwrap().get(0)
    };
    let at = stamp().await;
    for seq in [2, 1, 99] {
        visitor.send(json!({"type": "read", "seq": seq})).await;
    }
    let extra: Vec<Value> = quiet(&mut dashboard, Duration::from_millis(400)).await.into_iter().filter(|f| f["type"] == "read").collect();
    assert!(extra.is_empty(), "{extra:?}");
    assert_eq!(stamp().await, at, "no write when nothing moved");
    assert_eq!(summary(&agent, &session).await["visitor_read_seq"], 2);

    // Staff read the transcript: the visitor sees it, unread clears.
    dashboard.send(json!({"type": "read", "session_id": session, "seq": 2})).await;
    let (seen, _) = visitor.recv_until("read").await;
    assert_eq!(seen, json!({"type": "read", "by": "agent", "seq": 2}));
    assert!(eventually(Duration::from_secs(5), async || summary(&agent, &session).await["unread"] == 0).await);
    let after = summary(&agent, &session).await;
    assert_eq!((after["staff_read_seq"].as_i64(), after["staff_read_by"].as_str()), (Some(2), Some("Ana")));
    visitor.say("2", "one more thing").await;
    assert!(eventually(Duration::from_secs(5), async || summary(&agent, &session).await["unread"] == 1).await);

    // A resumed visitor learns how far staff read, right after the welcome.
    let token = visitor.token.clone().unwrap();
    visitor.close().await;
    let mut again = Visitor::connect(app.port).await;
    again.resume(&token, 0).await;
    let (seen, _) = again.recv_until("read").await;
    assert_eq!(seen["seq"], 2);

    // Bad frames: errors, and the sockets stay up.
    again.send(json!({"type": "read", "seq": -1})).await;
    assert_eq!(again.recv_until("error").await.0["code"], "invalid_frame");
    dashboard.send(json!({"type": "read", "session_id": session, "seq": "two"})).await;
    assert_eq!(dashboard.recv_until("error").await.0["code"], "invalid_frame");
    let mut fresh = Visitor::connect(app.port).await;
    fresh.send(json!({"type": "read", "seq": 1})).await;
    assert_eq!(fresh.recv().await["code"], "hello_required");
}
