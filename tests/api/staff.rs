//! The staff side over HTTP: login and its defences, the role matrix, the
//! sessions API with its filters, QA, stats across a DST change, export,
//! errors, users and API keys, and the OpenAPI document.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;
use crate::ws_client::Visitor;

/// Inserts a session (fixture data) with messages; returns its id.
async fn insert_session(
    db: &tokio_postgres::Client,
    channel: &str,
    status: &str,
    qa: &str,
    created_at: &str,
    name: Option<&str>,
    messages: &[(&str, &str)],
) -> Uuid {
    let id = Uuid::new_v4();
    db.execute(
        "INSERT INTO sessions (id, channel, status, qa_status, created_at, customer_name, last_seq, last_message_at)
         VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6, $7::bigint, CASE WHEN $7::bigint > 0 THEN $5::text::timestamptz END)",
        &[&id, &channel, &status, &qa, &created_at, &name, &(messages.len() as i64)],
    )
    .await
    .unwrap();
    for (i, (role, text)) in messages.iter().enumerate() {
        db.execute(
            "INSERT INTO messages (session_id, seq, role, text, channel, created_at) VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz)",
            &[&id, &(i as i64 + 1), role, text, &channel, &created_at],
        )
        .await
        .unwrap();
    }
    id
}

#[tokio::test]
async fn login_sets_a_strict_httponly_cookie_and_logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("chathub_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not over plain http");

    let admin = app.admin().await;
    let (status, me) = admin.get("/api/auth/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["username"], "admin");
    assert_eq!(me["user"]["role"], "admin");
    let db = app.db().await;
    let stored: Vec<u8> = db.query_one("SELECT token_hash FROM staff_sessions LIMIT 1", &[]).await.unwrap().get(0);
    let token = admin.cookie.trim_start_matches("chathub_session=");
    assert_eq!(stored.len(), 32, "only a SHA-256 of the token is stored");
    assert_ne!(stored, token.as_bytes());

    let (status, _) = admin.call("POST", "/api/auth/logout", None).await;
    assert_eq!(status, 204);
    let (status, body) = admin.get("/api/auth/me").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_answer_and_are_throttled() {
    let app = TestApp::spawn().await;
    let attempt = async |user: &str, password: &str| {
        let response = app
            .http
            .post(app.url("/api/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (status, response.json::<Value>().await.unwrap(), retry)
    };
    // Another account, made before the admin gets throttled.
    app.staff("ana", "qa").await;
    let (s1, wrong, _) = attempt("admin", "not-the-password").await;
    let (s2, unknown, _) = attempt("nobody", "not-the-password").await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown, "the same body whether or not the user exists");
    for _ in 0..4 {
        attempt("admin", "not-the-password").await;
    }
    let (status, body, retry) = attempt("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some());
    // Another account from the same place is not locked out.
    assert_eq!(attempt("ana", "ana-password").await.0, 200);
    // And the real admin gets in after the delay.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(attempt("admin", ADMIN_PASSWORD).await.0, 200);
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_header_and_the_same_origin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let body = json!({"username": "csrf-victim", "password": "a-long-password", "role": "qa"});
    let without_header = app
        .http
        .post(app.url("/api/users"))
        .header("cookie", &admin.cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without_header.status().as_u16(), 403);
    let cross_origin = app
        .http
        .post(app.url("/api/users"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_origin.status().as_u16(), 403);
    let two_origins = admin.request("POST", "/api/users").header("origin", "https://evil.example").json(&body).send().await.unwrap();
    assert_eq!(two_origins.status().as_u16(), 403, "a second, foreign Origin header is refused too");
    let db = app.db().await;
    let users: i64 = db.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(users, 1, "nothing was created");
    assert_eq!(admin.call("POST", "/api/users", Some(body)).await.0, 201);
}

#[tokio::test]
async fn disabling_a_user_or_changing_their_role_ends_their_sessions_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let qa = app.staff("quinn", "qa").await;
    assert_eq!(qa.get("/api/auth/me").await.0, 200);
    let id = qa.user["id"].as_str().unwrap().to_owned();
    assert_eq!(admin.call("PUT", &format!("/api/users/{id}"), Some(json!({"disabled": true}))).await.0, 200);
    assert_eq!(qa.get("/api/auth/me").await.0, 401);
    let login = app.http.post(app.url("/api/auth/login")).json(&json!({"username": "quinn", "password": "quinn-password"})).send().await.unwrap();
    assert_eq!(login.status().as_u16(), 401, "a disabled user cannot sign in");

    // The last admin cannot be removed.
    let admin_id = admin.user["id"].as_str().unwrap().to_owned();
    let (status, body) = admin.call("PUT", &format!("/api/users/{admin_id}"), Some(json!({"role": "qa"}))).await;
    assert_eq!(status, 409, "{body}");
}

/// Requests every mounted route as every kind of caller; each forbidden pair
/// must be refused with 401/403 and change nothing.
#[tokio::test]
async fn every_route_refuses_every_caller_its_access_rule_does_not_allow() {
    use chathub::auth::access::Access;
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, key) = admin.call("POST", "/api/api-keys", Some(json!({"name": "matrix"}))).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let mut callers: Vec<(String, Option<StaffClient>, Option<String>)> = vec![("anonymous".into(), None, None), ("api key".into(), None, Some(key))];
    for role in ["qa", "agent", "developer"] {
        callers.push((role.into(), Some(app.staff(&format!("{role}-user"), role).await), None));
    }
    let db = app.db().await;
    let session = insert_session(&db, "web", "active", "unchecked", "2026-01-01T00:00:00Z", Some("Ada"), &[("visitor", "hi")]).await;
    let snapshot = async || -> Vec<i64> {
        let mut counts = Vec::new();
        for table in ["users", "sessions", "messages", "api_keys", "errors", "outbox", "qa_history"] {
            counts.push(db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0));
        }
        let qa: String = db.query_one("SELECT qa_status || status || COALESCE(dev_feedback, '') FROM sessions", &[]).await.unwrap().get(0);
        counts.push(qa.len() as i64);
        counts
    };
    let before = snapshot().await;
    let mut checked = 0;
    for (method, path, access, _) in chathub::http::routes::mounted() {
        let path = path.replace("{id}", &session.to_string()).replace("{key}", "default").replace("{path:.*}", "js/main.js");
        for (who, staff, key) in &callers {
            let allowed = match (&access, who.as_str(), staff) {
                (Access::Public, _, _) => true,
                (Access::Machine, "api key", _) => true,
                (Access::StaffOrMachine(_), "api key", _) => true,
                (Access::Conversation { machine, .. }, "api key", _) => *machine,
                (Access::Staff(roles) | Access::StaffOrMachine(roles) | Access::Conversation { roles, .. }, _, Some(s)) => {
                    roles.iter().any(|r| r.as_str() == s.user["role"].as_str().unwrap())
                }
                _ => false,
            };
            if allowed {
                continue;
            }
            let body = json!({"status": "archived", "qa_status": "issue", "dev_feedback": "x", "action": "delete", "ids": [session],
                              "username": "intruder", "password": "intruder-password", "role": "admin", "name": "k", "on": true,
                              "client_msg_id": "m", "text": "t", "source": "s", "message": "m"});
            let request = match (staff, key) {
                (Some(s), _) => s.request(method.as_str(), &path),
                (None, Some(k)) => app.http.request(method.as_str().parse().unwrap(), app.url(&path)).bearer_auth(k),
                (None, None) => app.http.request(method.as_str().parse().unwrap(), app.url(&path)),
            };
            let status = request.json(&body).send().await.unwrap().status().as_u16();
            // Reading a conversation's file without a credential is 404, as for anyone else's.
            let not_found = matches!(access, Access::Conversation { .. }) && method == actix_web::http::Method::GET && status == 404;
            assert!(status == 401 || status == 403 || not_found, "{who} {method} {path} → {status}");
            checked += 1;
        }
    }
    assert!(checked > 40, "the matrix covered {checked} forbidden pairs");
    assert_eq!(snapshot().await, before, "no forbidden request changed anything");
}

#[tokio::test]
async fn the_session_list_filters_searches_and_pages_stably() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    for i in 0..25 {
        let created = format!("2026-03-{:02}T10:00:00Z", i + 1);
        let channel = if i % 2 == 0 { "web" } else { "messenger" };
        let status = if i % 5 == 0 { "archived" } else { "active" };
        let qa = if i % 3 == 0 { "issue" } else { "unchecked" };
        insert_session(&db, channel, status, qa, &created, Some(&format!("Customer {i}")), &[("visitor", &format!("question number {i}"))]).await;
    }
    let special = insert_session(&db, "web", "active", "passed", "2026-03-28T10:00:00Z", Some("Zed O'Brien"), &[("visitor", "I need 100% of the refund_policy")]).await;
    let admin = app.admin().await;

    let (status, page) = admin.get("/api/sessions?per_page=10").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 21, "archived sessions are left out by default");
    assert_eq!((page["page"].as_i64(), page["per_page"].as_i64()), (Some(1), Some(10)));
    let mut seen = Vec::new();
    for n in 1..=3 {
        let (_, page) = admin.get(&format!("/api/sessions?per_page=10&page={n}")).await;
        seen.extend(page["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()));
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (21, 21), "pages neither overlap nor skip");
    assert_eq!(seen[0], special.to_string(), "newest first");

    assert_eq!(admin.get("/api/sessions?status=all").await.1["total"], 26);
    assert_eq!(admin.get("/api/sessions?status=archived").await.1["total"], 5);
    assert_eq!(admin.get("/api/sessions?channel=messenger&status=all").await.1["total"], 12);
    assert_eq!(admin.get("/api/sessions?qa_status=issue&status=all").await.1["total"], 9);
    assert_eq!(admin.get("/api/sessions?from=2026-03-10&to=2026-03-12&status=all").await.1["total"], 3);
    assert_eq!(admin.get("/api/sessions?q=number%2017").await.1["total"], 1, "transcript search");
    assert_eq!(admin.get("/api/sessions?q=customer%2017").await.1["total"], 1, "customer search");
    assert_eq!(admin.get("/api/sessions?q=100%25").await.1["total"], 1, "% is literal");
    assert_eq!(admin.get("/api/sessions?q=refund_policy").await.1["total"], 1);
    assert_eq!(admin.get("/api/sessions?q=o%27brien").await.1["total"], 1);
    let (status, body) = admin.get("/api/sessions?q=%27%3B%20DROP%20TABLE%20sessions%3B%20--").await;
    assert_eq!((status, body["total"].as_i64()), (200, Some(0)));
    assert_eq!(admin.get("/api/sessions?completion=incomplete&status=all").await.1["total"], 26);
    let summary = &admin.get("/api/sessions?q=Zed").await.1["sessions"][0];
    assert_eq!(summary["customer"]["name"], "Zed O'Brien");
    assert_eq!(summary["message_count"], 1);
    assert_eq!(summary["last_message_preview"], "I need 100% of the refund_policy");

    for bad in ["per_page=500", "page=0", "channel=fax", "qa_status=great", "status=deleted", "completion=maybe", "from=yesterday", "from=2026-03-05&to=2026-03-01", "sort=random"] {
        let (status, body) = admin.get(&format!("/api/sessions?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["code"].is_string());
    }
    // The seeds' path answers the same.
    assert_eq!(admin.get("/api/messenger-sessions?status=all").await.1["total"], 26);
}

#[tokio::test]
async fn detail_pages_the_transcript_by_seq() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let id = insert_session(&db, "web", "active", "unchecked", "2026-03-01T10:00:00Z", None, &[("visitor", "1"), ("ai", "2"), ("visitor", "3")]).await;
    let admin = app.admin().await;
    let (status, first) = admin.get(&format!("/api/sessions/{id}?limit=2")).await;
    assert_eq!(status, 200);
    assert_eq!(first["messages"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_after_seq"], 2);
    let (_, rest) = admin.get(&format!("/api/sessions/{id}?after_seq=2")).await;
    assert_eq!(rest["messages"][0]["seq"], 3);
    assert_eq!(rest["next_after_seq"], Value::Null);
    assert_eq!(admin.get(&format!("/api/sessions/{}", Uuid::new_v4())).await.0, 404);
    assert_eq!(admin.get("/api/sessions/not-a-uuid").await.0, 400);
    assert_eq!(admin.get(&format!("/api/sessions/{id}?limit=5000")).await.0, 400);
}

#[tokio::test]
async fn the_qa_workflow_keeps_history_and_an_issue_queues_exactly_one_email() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let id = insert_session(&db, "web", "active", "unchecked", "2026-03-01T10:00:00Z", Some("Ada"), &[("visitor", "hi")]).await;
    let qa = app.staff("quinn", "qa").await;
    let developer = app.staff("devi", "developer").await;
    let path = format!("/api/sessions/{id}/qa");

    let (status, body) = qa.call("PUT", &path, Some(json!({"qa_status": "fixed"}))).await;
    assert_eq!(status, 409, "fixed needs an issue first: {body}");
    let (status, summary) = qa.call("PUT", &path, Some(json!({"qa_status": "issue", "qa_notes": "The AI promised a refund"}))).await;
    assert_eq!(status, 200);
    assert_eq!((summary["qa_status"].as_str(), summary["qa_by"].as_str()), (Some("issue"), Some("quinn")));
    let outbox = db.query("SELECT event_type, payload, idempotency_key FROM outbox", &[]).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].get::<_, String>(0), "qa.issue");
    let payload: Value = outbox[0].get(1);
    assert_eq!((payload["qa_notes"].as_str(), payload["flagged_by"].as_str()), (Some("The AI promised a refund"), Some("quinn")));

    // QA may not give developer feedback, delete, or manage users.
    assert_eq!(qa.call("PUT", &format!("/api/sessions/{id}/dev-feedback"), Some(json!({"dev_feedback": "x"}))).await.0, 403);
    assert_eq!(qa.call("DELETE", &format!("/api/sessions/{id}"), None).await.0, 403);
    assert_eq!(qa.call("PUT", &format!("/api/users/{}", qa.user["id"].as_str().unwrap()), Some(json!({"role": "admin"}))).await.0, 403);

    let (status, summary) = developer.call("PUT", &format!("/api/sessions/{id}/dev-feedback"), Some(json!({"dev_feedback": "Prompt tightened"}))).await;
    assert_eq!(status, 200);
    assert_eq!((summary["dev_feedback"].as_str(), summary["dev_feedback_by"].as_str()), (Some("Prompt tightened"), Some("devi")));
    assert_eq!(developer.call("PUT", &path, Some(json!({"qa_status": "fixed"}))).await.0, 200);
    assert_eq!(qa.call("PUT", &path, Some(json!({"qa_status": "bogus"}))).await.0, 400);

    let (_, detail) = qa.get(&format!("/api/sessions/{id}")).await;
    let history: Vec<(String, String, String)> = detail["qa_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["from_status"].as_str().unwrap().into(), h["to_status"].as_str().unwrap().into(), h["by"].as_str().unwrap().into()))
        .collect();
    assert_eq!(history, vec![("unchecked".into(), "issue".into(), "quinn".into()), ("issue".into(), "fixed".into(), "devi".into())]);
    let emails: i64 = db.query_one("SELECT count(*) FROM outbox", &[]).await.unwrap().get(0);
    assert_eq!(emails, 1, "only the move to issue queues an email");
}

#[tokio::test]
async fn status_changes_bulk_actions_and_delete() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let ids: Vec<Uuid> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(insert_session(&db, "web", "active", "unchecked", &format!("2026-03-0{}T10:00:00Z", i + 1), None, &[("visitor", "hi")]).await);
        }
        ids
    };
    let agent = app.staff("agnes", "agent").await;
    let developer = app.staff("devi", "developer").await;
    let (status, summary) = agent.call("PUT", &format!("/api/sessions/{}", ids[0]), Some(json!({"status": "resolved", "priority": "high"}))).await;
    assert_eq!(status, 200);
    assert_eq!((summary["status"].as_str(), summary["priority"].as_str()), (Some("resolved"), Some("high")));
    assert_eq!(agent.call("PUT", &format!("/api/sessions/{}", ids[0]), Some(json!({"status": "gone"}))).await.0, 400);
    assert_eq!(agent.call("PUT", &format!("/api/sessions/{}", ids[0]), Some(json!({"colour": "red"}))).await.0, 400);

    let (status, body) = agent.call("POST", "/api/sessions/bulk", Some(json!({"action": "archive", "ids": ids}))).await;
    assert_eq!((status, body["affected"].as_i64()), (200, Some(3)));
    assert_eq!(agent.get("/api/sessions").await.1["total"], 0);
    let (_, body) = agent.call("POST", "/api/sessions/bulk", Some(json!({"action": "unarchive", "ids": [ids[1]]}))).await;
    assert_eq!(body["affected"], 1);
    assert_eq!(agent.call("POST", "/api/sessions/bulk", Some(json!({"action": "delete", "ids": ids}))).await.0, 403, "agents may not delete");
    assert_eq!(agent.call("POST", "/api/sessions/bulk", Some(json!({"action": "explode", "ids": ids}))).await.0, 400);
    assert_eq!(agent.call("POST", "/api/sessions/bulk", Some(json!({"action": "archive", "ids": []}))).await.0, 400);

    assert_eq!(developer.call("DELETE", &format!("/api/sessions/{}", ids[0]), None).await.0, 204);
    let left: i64 = db.query_one("SELECT count(*) FROM messages WHERE session_id = $1", &[&ids[0]]).await.unwrap().get(0);
    assert_eq!(left, 0, "messages go with their session");
    assert_eq!(developer.call("DELETE", &format!("/api/sessions/{}", ids[0]), None).await.0, 404);
    let (status, body) = developer.call("POST", "/api/sessions/bulk", Some(json!({"action": "delete", "ids": [ids[1], ids[2]]}))).await;
    assert_eq!((status, body["affected"].as_i64()), (200, Some(2)));
}

#[tokio::test]
async fn an_escalation_is_listed_counted_and_claimed() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "I want to talk to a human").await;
    visitor.recv_until("status").await;
    let agent = app.staff("agnes", "agent").await;
    let (_, escalations) = agent.get("/api/escalations").await;
    assert_eq!(escalations["count"], 1);
    assert_eq!((escalations["total"].clone(), escalations["page"].clone()), (json!(1), json!(1)), "the one pagination shape");
    let id = escalations["sessions"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(escalations["sessions"][0]["handler"], "human", "the AI is paused");
    let (status, claimed) = agent.call("POST", &format!("/api/sessions/{id}/claim"), None).await;
    assert_eq!(status, 200);
    assert_eq!(claimed["assignee"], "agnes");
    assert_eq!(agent.get("/api/sessions/stats").await.1["open_escalations"], 1);
    // Resolving it ends the escalation, and the visitor hears the new status.
    agent.call("PUT", &format!("/api/sessions/{id}"), Some(json!({"status": "resolved"}))).await;
    let (status_frame, _) = visitor.recv_until("status").await;
    assert_eq!(status_frame["status"], "resolved");
    assert_eq!(agent.get("/api/escalations").await.1["count"], 0);
}

#[tokio::test]
async fn escalations_page_most_urgent_first_then_longest_waiting() {
    let app = TestApp::spawn().await;
    let agent = app.staff("agnes", "agent").await;
    let mut ids = Vec::new();
    for priority in ["low", "urgent", "normal", "urgent"] {
        let mut visitor = Visitor::connect(app.port).await;
        let welcome = visitor.hello().await;
        visitor.say("1", "hello").await;
        let id = welcome["session_id"].as_str().unwrap().to_owned();
        let (status, _) = agent.call("PUT", &format!("/api/sessions/{id}"), Some(json!({"status": "escalated", "priority": priority}))).await;
        assert_eq!(status, 200);
        ids.push(id);
    }
    let order = |page: &Value| -> Vec<String> {
        page["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
    };
    let (_, all) = agent.get("/api/escalations").await;
    // Urgent first, the one escalated earlier before the later one; then normal, then low.
    assert_eq!(order(&all), vec![ids[1].clone(), ids[3].clone(), ids[2].clone(), ids[0].clone()]);
    assert_eq!((all["count"].clone(), all["per_page"].clone()), (json!(4), json!(200)));
    let (_, second) = agent.get("/api/escalations?page=2&per_page=3").await;
    assert_eq!(order(&second), vec![ids[0].clone()]);
    assert_eq!((second["total"].clone(), second["page"].clone(), second["per_page"].clone()), (json!(4), json!(2), json!(3)));
    let (status, body) = agent.get("/api/escalations?per_page=0").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_page")));
    let (status, _) = agent.call("PUT", &format!("/api/sessions/{}", ids[0]), Some(json!({"priority": "critical"}))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn stats_count_days_in_the_configured_zone_across_a_dst_change() {
    let app = TestApp::spawn_with(|c| c.timezone = chrono_tz::Australia::Sydney).await;
    let db = app.db().await;
    // Sydney leaves daylight saving at 03:00 on 2026-04-05 (UTC+11 → UTC+10).
    for (at, completed) in [
        ("2026-04-04T12:30:00Z", false), // 23:30 on the 4th (AEDT)
        ("2026-04-04T13:30:00Z", true),  // 00:30 on the 5th (AEDT)
        ("2026-04-05T13:30:00Z", false), // 23:30 on the 5th (AEST)
        ("2026-04-05T14:30:00Z", true),  // 00:30 on the 6th (AEST)
    ] {
        let id = insert_session(&db, "web", "active", "passed", at, None, &[("visitor", "hi"), ("ai", "hello")]).await;
        if completed {
            db.execute("UPDATE sessions SET completed_at = created_at, completion_rule = 'booking_link' WHERE id = $1", &[&id]).await.unwrap();
        }
        db.execute("UPDATE messages SET latency_ms = 100 * seq WHERE session_id = $1 AND role = 'ai'", &[&id]).await.unwrap();
    }
    // Rows written behind the hub's back (past days, latencies set by
    // hand): have the job rebuild the rollups from them.
    rebuild_stats_rollups(&db).await;
    let admin = app.admin().await;
    let (status, stats) = admin.get("/api/sessions/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["timezone"], "Australia/Sydney");
    assert_eq!(
        stats["per_day"],
        json!([
            {"day": "2026-04-04", "sessions": 1, "completions": 0},
            {"day": "2026-04-05", "sessions": 2, "completions": 1},
            {"day": "2026-04-06", "sessions": 1, "completions": 1},
        ])
    );
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["completion_rate"], 0.5);
    assert_eq!(stats["by_completion"]["complete"], 2);
    assert_eq!(stats["by_qa_status"]["passed"], 4);
    assert_eq!(stats["by_channel"]["web"], 4);
    // Response times are counted in 1 %-wide buckets.
    assert!((stats["ai_response_ms"]["median"].as_f64().unwrap() - 200.0).abs() <= 2.0, "{stats}");
    assert!(stats["ai_response_ms"]["replies"].as_i64().unwrap() > 0, "{stats}");
    assert_eq!(stats["messages_per_session"], 2.0);
    // The list's date filter uses the same day boundaries.
    assert_eq!(admin.get("/api/sessions?from=2026-04-05&to=2026-04-05").await.1["total"], 2);
}

#[tokio::test]
async fn export_streams_csv_and_json_with_or_without_transcripts() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    insert_session(&db, "web", "active", "unchecked", "2026-03-01T10:00:00Z", Some("=cmd|' /C calc'!A0"), &[("visitor", "hello, \"friend\""), ("ai", "hi\nthere")]).await;
    insert_session(&db, "messenger", "active", "issue", "2026-03-02T10:00:00Z", Some("Grace"), &[("visitor", "yo")]).await;
    let admin = app.admin().await;
    let response = admin.request("GET", "/api/sessions/export?format=csv").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("session_id,created_at,channel"));
    assert!(csv.contains("'=cmd"), "formula-looking cells are defused");

    let csv = admin.request("GET", "/api/sessions/export?format=csv&include=messages&channel=web").send().await.unwrap().text().await.unwrap();
    assert!(csv.contains("\"hello, \"\"friend\"\"\"") && csv.contains("\"hi\nthere\""), "{csv}");

    let json: Value = admin.request("GET", "/api/sessions/export?format=json&include=messages").send().await.unwrap().json().await.unwrap();
    let sessions = json.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let grace = sessions.iter().find(|s| s["customer"]["name"] == "Grace").unwrap();
    assert_eq!(grace["messages"][0]["text"], "yo");
    let filtered: Value = admin.request("GET", "/api/sessions/export?format=json&qa_status=issue").send().await.unwrap().json().await.unwrap();
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(admin.get("/api/sessions/export?format=xml").await.0, 400);
}

#[tokio::test]
async fn exporting_ten_thousand_sessions_streams_with_bounded_memory() {
    let url = fresh_database().await;
    let db = connect(&url).await;
    db.batch_execute(
        "INSERT INTO sessions (id, channel, customer_name, last_seq, created_at)
           SELECT gen_random_uuid(), 'web', 'Customer ' || n, 5, now() - n * interval '1 minute' FROM generate_series(1, 10000) n;
         INSERT INTO messages (session_id, seq, role, text, channel)
           SELECT s.id, k, 'visitor', repeat('lorem ipsum ', 30), 'web' FROM sessions s, generate_series(1, 5) k;",
    )
    .await
    .unwrap();
    let server = ChildServer::start(&[("DATABASE_URL", &url), ("ADMIN_PASSWORD", ADMIN_PASSWORD)]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::new();
    let (cookie, _) = admin_login(&base).await;
    let pid = server.child.id();
    let rss = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap().lines().find(|l| l.starts_with("VmRSS:")).unwrap()
            .split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    // Warm up (pool, prepared statements), then measure a full export.
    http.get(format!("{base}/api/sessions/export?format=csv&per_page=1")).header("cookie", &cookie).send().await.unwrap().bytes().await.unwrap();
    let before = rss();
    let mut response = http
        .get(format!("{base}/api/sessions/export?format=json&include=messages&status=all"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let (mut bytes, mut chunks, mut peak) = (0usize, 0usize, before);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        chunks += 1;
        if chunks % 50 == 0 {
            peak = peak.max(rss());
            // Read slowly: the server must wait for us rather than buffer everything.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(bytes > 20_000_000, "the export is large ({bytes} bytes)");
    assert!(chunks > 50, "it arrives as a stream ({chunks} chunks)");
    let growth_kib = peak.saturating_sub(before);
    assert!(growth_kib < 16 * 1024, "server memory grew by {growth_kib} KiB while streaming {bytes} bytes");
    assert!(server.terminate());
}

#[tokio::test]
async fn errors_are_reported_with_an_api_key_and_listed_for_staff() {
    let app = TestApp::spawn_with(|c| c.api_key = Some("env-machine-key-0123456789".into())).await;
    let admin = app.admin().await;
    let (_, key) = admin.call("POST", "/api/api-keys", Some(json!({"name": "n8n"}))).await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    let key = key["key"].as_str().unwrap().to_owned();
    let report = json!({"source": "n8n", "workflow": "lead-sync", "message": "HTTP 500 from CRM", "details": {"node": "CRM"}});
    let post = |bearer: &str| app.http.post(app.url("/api/errors")).bearer_auth(bearer).json(&report).send();
    assert_eq!(post(&key).await.unwrap().status().as_u16(), 201);
    assert_eq!(post("env-machine-key-0123456789").await.unwrap().status().as_u16(), 201, "the API_KEY env key works too");
    assert_eq!(post("chk_wrong").await.unwrap().status().as_u16(), 401);
    assert_eq!(app.http.post(app.url("/api/errors")).json(&report).send().await.unwrap().status().as_u16(), 401);
    let missing = app.http.post(app.url("/api/errors")).bearer_auth(&key).json(&json!({"source": "n8n"})).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 400);
    // Machines may not use staff routes.
    assert_eq!(app.http.get(app.url("/api/users")).bearer_auth(&key).send().await.unwrap().status().as_u16(), 403);

    assert_eq!(admin.call("DELETE", &format!("/api/api-keys/{key_id}"), None).await.0, 204);
    assert_eq!(post(&key).await.unwrap().status().as_u16(), 401, "a revoked key stops working");

    let qa = app.staff("quinn", "qa").await;
    let (status, list) = qa.get("/api/errors?per_page=1").await;
    assert_eq!(status, 200);
    assert_eq!((list["total"].as_i64(), list["errors"].as_array().unwrap().len()), (Some(2), 1));
    assert_eq!(list["errors"][0]["source"], "n8n");
    let (_, keys) = admin.get("/api/api-keys").await;
    assert!(keys["api_keys"][0]["revoked_at"].is_string());
    assert!(!keys.to_string().contains(&key), "keys are never shown again");
}

#[tokio::test]
async fn admins_manage_users_and_bad_input_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    assert_eq!(admin.call("POST", "/api/users", Some(json!({"username": "ana", "password": "ana-password", "role": "agent"}))).await.0, 201);
    assert_eq!(admin.call("POST", "/api/users", Some(json!({"username": "ana", "password": "ana-password", "role": "agent"}))).await.0, 409);
    assert_eq!(admin.call("POST", "/api/users", Some(json!({"username": "bo", "password": "bo-password", "role": "root"}))).await.0, 400);
    assert_eq!(admin.call("POST", "/api/users", Some(json!({"username": "bo", "password": "short", "role": "qa"}))).await.0, 400);
    assert_eq!(admin.call("POST", "/api/users", Some(json!({"username": "has space", "password": "long-enough", "role": "qa"}))).await.0, 400);
    let (_, users) = admin.get("/api/users").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    assert!(!users.to_string().contains("argon2"), "no password hashes in the API");

    // Malformed bodies: invalid JSON, invalid UTF-8, too large.
    let raw = |body: Vec<u8>| admin.request("POST", "/api/users").header("content-type", "application/json").body(body).send();
    assert_eq!(raw(b"{not json".to_vec()).await.unwrap().status().as_u16(), 400);
    assert_eq!(raw(vec![b'"', 0xff, 0xfe, b'"']).await.unwrap().status().as_u16(), 400);
    let huge = format!("{{\"username\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let response = raw(huge.into_bytes()).await.unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
    let (_, users) = admin.get("/api/users").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn users_have_an_optional_email_and_can_be_deleted_keeping_what_they_did() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, user) = admin
        .call("POST", "/api/users", Some(json!({"username": "quinn", "password": "quinn-password", "role": "qa", "email": "quinn@example.com"})))
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email"], "quinn@example.com");
    let id = user["id"].as_str().unwrap().to_owned();
    let bad = admin.call("POST", "/api/users", Some(json!({"username": "bo", "password": "bo-password", "role": "qa", "email": "not an email"}))).await;
    assert_eq!((bad.0, bad.1["error"]["code"].as_str()), (400, Some("invalid_email")));
    let (_, cleared) = admin.call("PUT", &format!("/api/users/{id}"), Some(json!({"email": null}))).await;
    assert_eq!(cleared["email"], Value::Null);
    assert_eq!(admin.call("PUT", &format!("/api/users/{id}"), Some(json!({"email": "q@example.com"}))).await.1["email"], "q@example.com");

    // Quinn reviews a conversation, then leaves.
    let session = Uuid::new_v4();
    let db = app.db().await;
    db.execute("INSERT INTO sessions (id, channel, last_seq) VALUES ($1, 'web', 0)", &[&session]).await.unwrap();
    let quinn = app.login("quinn", "quinn-password").await;
    assert_eq!(quinn.call("PUT", &format!("/api/sessions/{session}/qa"), Some(json!({"qa_status": "passed", "qa_notes": "fine"}))).await.0, 200);
    assert_eq!(quinn.call("POST", &format!("/api/sessions/{session}/notes"), Some(json!({"text": "looked at it"}))).await.0, 201);
    let me = admin.user["id"].as_str().unwrap().to_owned();
    assert_eq!(admin.call("DELETE", &format!("/api/users/{me}"), None).await.0, 409, "not yourself");
    assert_eq!(quinn.call("DELETE", &format!("/api/users/{me}"), None).await.0, 403);
    assert_eq!(admin.call("DELETE", &format!("/api/users/{id}"), None).await.0, 204);
    assert_eq!(admin.call("DELETE", &format!("/api/users/{id}"), None).await.0, 404);
    assert_eq!(quinn.get("/api/auth/me").await.0, 401, "their sign-in ended");
    let (status, detail) = admin.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["qa_history"][0]["by"], "quinn", "{detail}");
    assert_eq!(detail["notes"][0]["text"], "looked at it");
    assert_eq!(detail["notes"][0]["author"], Value::Null);
    let (_, users) = admin.get("/api/users").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_one_exists() {
    let app = TestApp::spawn().await;
    let doc: Value = reqwest::get(app.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mounted = chathub::http::routes::mounted();
    for (method, path, _, _) in &mounted {
        let path = path.replace(":.*}", "}");
        let operation = &paths[path.as_str()][method.as_str().to_lowercase()];
        assert!(operation["summary"].is_string(), "{method} {path} is documented");
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, mounted.len());
    // Every documented route answers (not the JSON 404 of an unknown route).
    for (path, operations) in paths {
        let concrete = path.replace("{id}", &Uuid::new_v4().to_string()).replace("{key}", "default").replace("{path}", "js/main.js");
        for method in operations.as_object().unwrap().keys() {
            let response = app.http.request(method.to_uppercase().parse().unwrap(), app.url(&concrete)).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unknown_route = status == 404 && body["error"]["message"] == "route not found";
            assert!(!unknown_route && status != 405, "{method} {path} is mounted ({status})");
        }
    }
}

#[test]
fn the_docs_route_table_matches_the_code() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let table = chathub::http::routes::markdown_matrix();
    assert!(docs.contains(&table), "docs/api.md is stale: regenerate the table with `chathub routes`");
}
