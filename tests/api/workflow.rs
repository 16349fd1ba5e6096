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
    // The card follows the filters; the queue's badge does not.
    let (_, whatsapp) = admin.get("/api/sessions/stats?channel=whatsapp").await;
    assert_eq!((whatsapp["escalations"].clone(), whatsapp["open_escalations"].clone()), (json!({"unassigned": 0, "in_progress": 0}), json!(1)));

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

#[tokio::test]
async fn canned_responses_are_checked_when_saved_and_managed_by_admins_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let quinn = app.staff("quinn", "qa").await;
    let good = json!({"shortcut": "hours", "title": "Opening hours", "text": "Hi {{customer.name}}, see {{ booking_url }} — {{agent.name}}"});
    let (status, created) = admin.call("POST", "/api/canned-responses", Some(good.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(admin.call("POST", "/api/canned-responses", Some(good)).await.0, 409, "a shortcut is unique");
    let (status, body) = admin
        .call("POST", "/api/canned-responses", Some(json!({"shortcut": "x", "title": "X", "text": "{{customer.phone}} and {{nope}}"})))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("unknown_variables")));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("{{customer.phone}}") && message.contains("{{nope}}"), "{message}");
    for bad in [json!({"shortcut": "Hours", "title": "t", "text": "t"}), json!({"shortcut": "a b", "title": "t", "text": "t"}),
                json!({"shortcut": "x".repeat(33), "title": "t", "text": "t"}), json!({"shortcut": "ok", "title": "", "text": "t"}),
                json!({"shortcut": "ok", "title": "t", "text": "\u{0}"})] {
        assert_eq!(admin.call("POST", "/api/canned-responses", Some(bad.clone())).await.0, 400, "{bad}");
    }
    // Everyone on staff reads them, with the server's variables; only admins change them.
    let (status, list) = quinn.get("/api/canned-responses").await;
    assert_eq!(status, 200);
    assert_eq!(list["responses"][0]["shortcut"], "hours");
    assert!(list["variables"]["booking_url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(quinn.call("POST", "/api/canned-responses", Some(json!({"shortcut": "q", "title": "q", "text": "q"}))).await.0, 403);
    let id = created["id"].as_str().unwrap();
    let (status, changed) = admin.call("PUT", &format!("/api/canned-responses/{id}"), Some(json!({"shortcut": "open", "title": "Open", "text": "We open at 9."}))).await;
    assert_eq!((status, changed["shortcut"].as_str()), (200, Some("open")));
    assert_eq!(admin.call("DELETE", &format!("/api/canned-responses/{id}"), None).await.0, 204);
    assert_eq!(admin.call("DELETE", &format!("/api/canned-responses/{id}"), None).await.0, 404);
}

#[tokio::test]
async fn private_notes_are_for_staff_and_go_nowhere_else() {
    let app = TestApp::spawn().await;
    let quinn = app.staff("quinn", "qa").await;
    let admin = app.admin().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();

    let (status, note) = quinn.call("POST", &format!("/api/sessions/{session}/notes"), Some(json!({"text": "  Sounds like a returning patient  "}))).await;
    assert_eq!(status, 201, "{note}");
    assert_eq!((note["author"].as_str(), note["text"].as_str()), (Some("quinn"), Some("Sounds like a returning patient")));
    for bad in [json!({"text": ""}), json!({"text": "x".repeat(10_001)}), json!({"text": "a\u{0}b"})] {
        assert_eq!(quinn.call("POST", &format!("/api/sessions/{session}/notes"), Some(bad)).await.0, 400);
    }
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(quinn.call("POST", &format!("/api/sessions/{unknown}/notes"), Some(json!({"text": "x"}))).await.0, 404);

    let (_, detail) = admin.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(detail["notes"].as_array().unwrap().len(), 1);
    assert!(detail["messages"].as_array().unwrap().iter().all(|m| !m["text"].as_str().unwrap().contains("returning patient")));
    for export in ["/api/sessions/export?format=csv", "/api/sessions/export?format=json&include=messages"] {
        let (_, body) = admin.get(export).await;
        assert!(!body.to_string().contains("returning patient"), "{export}");
    }
    // The visitor's socket heard nothing of it.
    visitor.say("2", "still there?").await;
    let reply = visitor.next_message().await;
    assert!(!reply["text"].as_str().unwrap().contains("returning patient"));
}

#[tokio::test]
async fn staff_messages_carry_the_authors_display_name_which_they_and_admins_may_change() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let agnes = app.staff("agnes", "agent").await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();

    // By default the username; the user names herself; bad names are refused.
    assert_eq!(agnes.get("/api/auth/me").await.1["user"]["display_name"], "agnes");
    let (status, me) = agnes.call("PUT", "/api/auth/me", Some(json!({"display_name": "  Agnes Smith "}))).await;
    assert_eq!((status, me["user"]["display_name"].as_str()), (200, Some("Agnes Smith")));
    assert_eq!(agnes.call("PUT", "/api/auth/me", Some(json!({"display_name": "x".repeat(81)}))).await.0, 400);
    assert_eq!(agnes.call("PUT", "/api/auth/me", Some(json!({"display_name": "a\nb"}))).await.0, 400);

    agnes.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "r1", "text": "Hi there"}))).await;
    let live = visitor.next_message().await;
    assert_eq!((live["role"].as_str(), live["author"].as_str()), (Some("agent"), Some("Agnes Smith")));
    // Stored messages name their author too, with the current name.
    let agnes_id = agnes.user["id"].as_str().unwrap();
    let (status, _) = admin.call("PUT", &format!("/api/users/{agnes_id}"), Some(json!({"display_name": "Agnes S."}))).await;
    assert_eq!(status, 200);
    assert_eq!(agnes.get("/api/auth/me").await.0, 200, "a new display name does not end her login");
    let (_, detail) = admin.get(&format!("/api/sessions/{session}")).await;
    let messages = detail["messages"].as_array().unwrap();
    let staff: Vec<&Value> = messages.iter().filter(|m| m["role"] == "agent").collect();
    assert_eq!(staff[0]["author"], "Agnes S.");
    assert!(messages.iter().filter(|m| m["role"] != "agent").all(|m| m.get("author").is_none()), "only staff messages carry one");
    // Empty: back to the username.
    let (_, row) = admin.call("PUT", &format!("/api/users/{agnes_id}"), Some(json!({"display_name": ""}))).await;
    assert_eq!(row["display_name"], "agnes");
}

#[tokio::test]
async fn the_assignee_picker_lists_the_active_staff_who_may_take_over() {
    let app = TestApp::spawn().await;
    let agnes = app.staff("agnes", "agent").await;
    let quinn = app.staff("quinn", "qa").await;
    let (status, body) = agnes.get("/api/staff").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["staff"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "agnes"], "no QA user, no disabled user");
    assert_eq!(quinn.get("/api/staff").await.0, 403);
}

#[tokio::test]
async fn qa_notes_save_on_their_own_and_the_current_status_is_not_logged_again() {
    let app = TestApp::spawn().await;
    let quinn = app.staff("quinn", "qa").await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    let session = visitor.session_id.clone().unwrap();
    let path = format!("/api/sessions/{session}/qa");
    let (status, summary) = quinn.call("PUT", &path, Some(json!({"qa_notes": "first look"}))).await;
    assert_eq!((status, summary["qa_notes"].as_str(), summary["qa_status"].as_str()), (200, Some("first look"), Some("unchecked")), "{summary}");
    quinn.call("PUT", &path, Some(json!({"qa_status": "passed"}))).await;
    // The status it already has, with new notes: the notes, no history entry.
    let (_, summary) = quinn.call("PUT", &path, Some(json!({"qa_status": "passed", "qa_notes": "still fine"}))).await;
    assert_eq!(summary["qa_notes"], "still fine");
    let (_, detail) = quinn.get(&format!("/api/sessions/{session}")).await;
    let history: Vec<(&str, &str)> = detail["qa_history"].as_array().unwrap().iter().map(|h| (h["from_status"].as_str().unwrap(), h["to_status"].as_str().unwrap())).collect();
    assert_eq!(history, [("unchecked", "passed")], "no passed → passed");
    // Empty notes clear them; nothing at all is refused.
    let (_, summary) = quinn.call("PUT", &path, Some(json!({"qa_notes": ""}))).await;
    assert!(summary["qa_notes"].is_null());
    assert_eq!(quinn.call("PUT", &path, Some(json!({}))).await.0, 400);
}
