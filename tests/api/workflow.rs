//! The support workflow of SPEC §11, through the API and the sockets: an
//! escalation is unassigned until a staff member replies (which assigns it
//! to them) or is assigned to someone who may take over; resolving hands
//! the conversation back to the AI and tells the visitor; a visitor who
//! writes again reopens it; the stats count unassigned and in-progress
//! escalations.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::Visitor;

async fn escalations(admin: &StaffClient) -> Value {
    admin.get("/api/sessions/stats").await.1["escalations"].clone()
}

#[tokio::test]
async fn an_escalation_is_taken_by_its_first_replier_resolved_back_to_the_ai_and_reopened_by_the_visitor() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let agnes = app.staff("agnes", "agent").await;
    let quinn = app.staff("quinn", "qa").await;

    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "I want a human please").await;
    let handover = visitor.next_message().await;
    assert_eq!(handover["role"], "ai");
    let session = visitor.session_id.clone().unwrap();
    assert_eq!(escalations(&admin).await, json!({"unassigned": 1, "in_progress": 0}));

    // Only someone who may take over can be assigned.
    let quinn_id = quinn.user["id"].as_str().unwrap();
    let (status, body) = admin.call("PUT", &format!("/api/sessions/{session}"), Some(json!({"assignee_id": quinn_id}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_assignee")), "{body}");

    // The first staff reply takes the unassigned escalation.
    let (status, body) = agnes.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "r1", "text": "Agnes here, how can I help?"}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(visitor.next_message().await["text"], "Agnes here, how can I help?");
    let (_, detail) = admin.get(&format!("/api/sessions/{session}")).await;
    assert_eq!((detail["session"]["assignee"].as_str(), detail["session"]["status"].as_str()), (Some("agnes"), Some("escalated")));
    assert_eq!(escalations(&admin).await, json!({"unassigned": 0, "in_progress": 1}));
    // A second replier does not take it from her.
    admin.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "r2", "text": "Admin too"}))).await;
    visitor.next_message().await;
    assert_eq!(admin.get(&format!("/api/sessions/{session}")).await.1["session"]["assignee"], "agnes");

    // Resolved: the visitor is told, and the AI is in charge again.
    let (status, _) = agnes.call("PUT", &format!("/api/sessions/{session}"), Some(json!({"status": "resolved"}))).await;
    assert_eq!(status, 200);
    let (frame, _) = visitor.recv_until("status").await;
    assert_eq!(frame["status"], "resolved");
    let (_, detail) = admin.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(detail["session"]["handler"], "ai");
    assert_eq!(escalations(&admin).await, json!({"unassigned": 0, "in_progress": 0}));

    // The visitor writes again: the conversation reopens and the AI answers.
    visitor.say("2", "One more question").await;
    let (frame, _) = visitor.recv_until("status").await;
    assert_eq!(frame["status"], "active");
    assert_eq!(visitor.next_message().await["role"], "ai");
    assert_eq!(admin.get(&format!("/api/sessions/{session}")).await.1["session"]["status"], "active");

    // Assigning to an agent by id works, and null unassigns.
    let agnes_id = agnes.user["id"].as_str().unwrap();
    let (status, summary) = admin.call("PUT", &format!("/api/sessions/{session}"), Some(json!({"assignee_id": agnes_id}))).await;
    assert_eq!((status, summary["assignee"].as_str()), (200, Some("agnes")));
    let (status, summary) = admin.call("PUT", &format!("/api/sessions/{session}"), Some(json!({"assignee_id": null}))).await;
    assert_eq!((status, summary["assignee"].is_null()), (200, true));
}
