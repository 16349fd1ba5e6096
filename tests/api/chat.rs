//! The live chat core, black-box: the visitor socket against the real server
//! and PostgreSQL — the demo conversation, acks after commit, idempotency,
//! resume, agents (demo, webhook, openai) and their failures, completion with
//! its outbox row, eviction, and a crash in the middle of a stream.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::ws_client::{Event, Visitor};

const BOOKING_URL: &str = "https://cal.example.com/book";

#[tokio::test]
async fn the_demo_conversation_runs_from_greeting_to_completion() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::connect(app.port).await;
    let welcome = visitor.hello().await;
    assert_eq!(welcome["messages"], json!([]));
    let status = visitor.recv().await;
    assert_eq!(status, json!({"type": "status", "completion": "in_progress", "status": "active"}));

    assert_eq!(visitor.say("c1", "Hi there").await, 1);
    let (ask_name, before) = visitor.recv_until("message").await;
    assert!(before.iter().any(|f| f["type"] == "typing" && f["role"] == "ai" && f["on"] == true), "typing before the reply: {before:?}");
    assert_eq!(ask_name["message"]["seq"], 2);
    assert_eq!(ask_name["message"]["role"], "ai");
    assert!(ask_name["message"]["text"].as_str().unwrap().contains("name"));
    assert!(ask_name["message"]["created_at"].as_str().unwrap().ends_with('Z'));

    assert_eq!(visitor.say("c2", "Ada Lovelace").await, 3);
    let ask_email = visitor.next_message().await;
    assert_eq!(ask_email["seq"], 4);
    assert!(ask_email["text"].as_str().unwrap().contains("email"));

    assert_eq!(visitor.say("c3", "ada@example.com").await, 5);
    let booking = visitor.next_message().await;
    assert_eq!(booking["seq"], 6);
    let text = booking["text"].as_str().unwrap();
    assert!(text.contains(BOOKING_URL) && text.contains("within 24 hours"), "{text}");
    let (status, _) = visitor.recv_until("status").await;
    assert_eq!(status["completion"], "complete");

    let db = app.db().await;
    let session = db
        .query_one(
            "SELECT completion_rule, completed_at IS NOT NULL, customer_name, customer_email, last_seq, last_message_at IS NOT NULL
             FROM sessions WHERE id = $1::text::uuid",
            &[&visitor.session_id.as_deref().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(session.get::<_, Option<String>>(0).as_deref(), Some("booking_link"));
    assert!(session.get::<_, bool>(1));
    assert_eq!(session.get::<_, Option<String>>(2).as_deref(), Some("Ada Lovelace"));
    assert_eq!(session.get::<_, Option<String>>(3).as_deref(), Some("ada@example.com"));
    assert_eq!((session.get::<_, i64>(4), session.get::<_, bool>(5)), (6, true));
    let seqs: Vec<i64> = db
        .query("SELECT seq FROM messages ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    let outbox = db.query("SELECT event_type, idempotency_key, payload FROM outbox", &[]).await.unwrap();
    assert_eq!(outbox.len(), 1, "exactly one lead.completed row");
    assert_eq!(outbox[0].get::<_, String>(0), "lead.completed");
    let payload: Value = outbox[0].get(2);
    assert_eq!(payload["customer"]["email"], "ada@example.com");
    assert_eq!(payload["rule"], "booking_link");
    let fired: i64 = db
        .query_one("SELECT fire_count FROM completion_rules WHERE name = 'booking_link'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(fired, 1);
}

#[tokio::test]
async fn an_invalid_email_is_asked_for_again_and_asking_for_a_human_escalates() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("a", "hello").await;
    visitor.next_message().await;
    visitor.say("b", "Grace").await;
    visitor.next_message().await;
    visitor.say("c", "grace-at-example").await;
    assert!(visitor.next_message().await["text"].as_str().unwrap().contains("valid email address"));

    visitor.say("d", "Can I talk to a real person?").await;
    let handover = visitor.next_message().await;
    assert!(handover["text"].as_str().unwrap().contains("team"));
    let (status, _) = visitor.recv_until("status").await;
    assert_eq!(status["status"], "escalated");
    let db = app.db().await;
    let row = db.query_one("SELECT status, handler, escalated_at IS NOT NULL FROM sessions", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, bool>(2)), ("escalated".into(), "human".into(), true));

    // The AI is paused now: a further message is stored but not answered.
    visitor.say("e", "hello?").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count: i64 = db.query_one("SELECT count(*) FROM messages", &[]).await.unwrap().get(0);
    assert_eq!(count, 9);
}

#[tokio::test]
async fn a_plain_demo_reply_commits_with_the_message_it_answers_and_one_that_learns_a_name_after_it() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let session = visitor.session_id.clone().unwrap();
    // Rows written by one transaction share its id (`xmin`).
    let transactions = async |seqs: [i64; 2]| -> i64 {
        let sql = "SELECT count(DISTINCT xmin::text) FROM messages WHERE session_id = $1::text::uuid AND seq = ANY($2)";
        db.query_one(sql, &[&session, &seqs.to_vec()]).await.unwrap().get(0)
    };
    for (id, text, seq, answered_in_one) in [("a", "hello", 1, true), ("b", "Grace", 3, false), ("c", "grace-at-example", 5, true)] {
        assert_eq!(visitor.say(id, text).await, seq);
        let (reply, before) = visitor.recv_until("message").await;
        assert_eq!(reply["message"]["seq"], seq + 1);
        let typing: Vec<&Value> = before.iter().filter(|f| f["type"] == "typing").collect();
        assert_eq!(typing, [&json!({"type": "typing", "role": "ai", "on": true}), &json!({"type": "typing", "role": "ai", "on": false})], "{text}");
        assert_eq!(transactions([seq, seq + 1]).await, if answered_in_one { 1 } else { 2 }, "{text}");
    }
    let name: Option<String> = db.query_one("SELECT customer_name FROM sessions", &[]).await.unwrap().get(0);
    assert_eq!(name.as_deref(), Some("Grace"), "the reply that learned the name stored it");
    let latencies: i64 = db.query_one("SELECT count(latency_ms) FROM messages WHERE role = 'ai'", &[]).await.unwrap().get(0);
    assert_eq!(latencies, 3, "every AI reply has its response time");
}

#[tokio::test]
async fn every_ack_is_for_a_committed_row() {
    // 21 frames in well under a second: past the default burst of 20.
    let app = TestApp::spawn_with(|c| c.limits.rate_burst = 100).await;
    let db = app.db().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let session = visitor.session_id.clone().unwrap();
    for i in 0..20 {
        let id = format!("m{i}");
        let seq = visitor.say(&id, "counting").await;
        // The ack has arrived: the row must already be visible to anyone.
        let stored: i64 = db
            .query_one(
                "SELECT seq FROM messages WHERE session_id = $1::text::uuid AND client_msg_id = $2",
                &[&session, &id],
            )
            .await
            .expect("acked message is stored")
            .get(0);
        assert_eq!(stored, seq);
    }
}

#[tokio::test]
async fn a_repeated_client_msg_id_is_stored_once_and_acked_with_the_same_seq() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let first = visitor.say("same-id", "hello").await;
    visitor.next_message().await;
    let again = visitor.say("same-id", "hello").await;
    assert_eq!(first, again);

    // Also from another socket of the same conversation (a reconnect).
    let token = visitor.token.clone().unwrap();
    visitor.close().await;
    let mut back = Visitor::connect(app.port).await;
    back.resume(&token, 2).await;
    assert_eq!(back.say("same-id", "hello").await, first);

    let db = app.db().await;
    let rows: i64 = db
        .query_one("SELECT count(*) FROM messages WHERE client_msg_id = 'same-id'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_resume_delivers_exactly_the_missed_messages_in_order() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hi").await;
    let token = visitor.token.clone().unwrap();
    let session_id = visitor.session_id.clone().unwrap();
    // Gone before reading the AI's reply.
    visitor.close().await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            db.query_one("SELECT count(*) FROM messages", &[]).await.unwrap().get::<_, i64>(0) == 2
        })
        .await
    );

    let mut back = Visitor::connect(app.port).await;
    let welcome = back.resume(&token, 1).await;
    assert_eq!(welcome["session_id"], session_id.as_str());
    let messages = welcome["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["seq"], 2);
    assert_eq!(messages[0]["role"], "ai");

    // From scratch: everything, in order.
    let mut fresh_tab = Visitor::connect(app.port).await;
    let all = fresh_tab.resume(&token, 0).await;
    let seqs: Vec<i64> = all["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(all["messages"][0]["text"], "hi");

    // Up to date: nothing.
    let mut current = Visitor::connect(app.port).await;
    assert_eq!(current.resume(&token, 2).await["messages"], json!([]));

    // The conversation continues where it was: the next step asks for the email.
    back.say("2", "Ada").await;
    let next = back.next_message().await;
    assert_eq!(next["seq"], 4);
    assert!(next["text"].as_str().unwrap().contains("email"));
    // The other tab of the same conversation sees the visitor's message and the reply.
    let echoed = fresh_tab.next_message().await;
    assert_eq!((echoed["seq"].as_i64(), echoed["role"].as_str()), (Some(3), Some("visitor")));
    assert_eq!(fresh_tab.next_message().await["seq"], 4);
}

#[tokio::test]
async fn an_evicted_conversation_is_rebuilt_from_postgres_on_resume() {
    let url = fresh_database().await;
    let server = ChildServer::start(&[("DATABASE_URL", &url), ("SESSION_IDLE_EVICT_SECS", "1")]);
    let base = server.url("");
    let live = async || metric(&base, "chathub_live_sessions").await;
    let mut visitor = Visitor::connect(server.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    visitor.say("2", "Ada").await;
    visitor.next_message().await;
    assert_eq!(live().await, 1.0);
    let token = visitor.token.clone().unwrap();
    visitor.close().await;
    assert!(eventually(Duration::from_secs(10), async || live().await == 0.0).await, "the idle actor is evicted");

    let mut back = Visitor::connect(server.port).await;
    let welcome = back.resume(&token, 0).await;
    assert_eq!(welcome["messages"].as_array().unwrap().len(), 4);
    assert_eq!(live().await, 1.0);
    // The rebuilt actor knows the script's state and the customer's name.
    assert_eq!(back.say("3", "ada@example.com").await, 5);
    let booking = back.next_message().await;
    assert!(booking["text"].as_str().unwrap().contains("Thanks, Ada!"), "{booking}");
    // And its duplicate detection survived eviction too.
    assert_eq!(back.say("1", "hello").await, 1);
}

#[tokio::test]
async fn when_postgres_is_down_visitors_are_told_to_retry_and_it_resumes_after() {
    let cluster = start_cluster("retry");
    chathub::postgres::ensure_database(&cluster.connection_string("postgres"), "chathub").await.unwrap();
    let app = TestApp::spawn_config(test_config(Some(cluster.connection_string("chathub")))).await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    assert_eq!(visitor.say("before", "hello").await, 1);
    visitor.next_message().await;

    let dir = cluster.dir().to_path_buf();
    tokio::task::spawn_blocking(move || cluster.stop()).await.unwrap();
    visitor.send(json!({"type": "message", "client_msg_id": "during", "text": "anyone?"})).await;
    let (error, before) = visitor.recv_until("error").await;
    assert!(before.iter().all(|f| f["type"] != "ack"), "no ack while the database is down: {before:?}");
    assert_eq!(error["code"], "retry");
    assert_eq!(error["client_msg_id"], "during");

    let cluster = tokio::task::spawn_blocking(move || {
        chathub::postgres::LocalPostgres::start(&dir, &chathub::postgres::LocalPostgresOptions { ephemeral: true, ..Default::default() })
            .unwrap()
    })
    .await
    .unwrap();
    // Resent with the same id once the database is back: stored once, next seq.
    let mut seq = None;
    for _ in 0..50 {
        visitor.send(json!({"type": "message", "client_msg_id": "during", "text": "anyone?"})).await;
        let frame = loop {
            let frame = visitor.recv().await;
            if frame["type"] == "ack" || frame["type"] == "error" {
                break frame;
            }
        };
        if frame["type"] == "ack" {
            seq = frame["seq"].as_i64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seq, Some(3));
    let db = connect(&cluster.connection_string("chathub")).await;
    let seqs: Vec<i64> = db.query("SELECT seq FROM messages ORDER BY seq", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(&seqs[..3], &[1, 2, 3], "no gap where the failed write was");
    tokio::task::spawn_blocking(move || cluster.stop()).await.unwrap();
}

#[tokio::test]
async fn the_webhook_agent_gets_the_conversation_and_its_reply_reaches_the_visitor() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/agent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"output": "Hello from the flow!"})))
        .expect(2)
        .mount(&mock)
        .await;
    let agent_url = format!("{}/agent", mock.uri());
    let app = TestApp::spawn_with(|c| {
        c.agent = "webhook".into();
        c.agent_url = Some(agent_url);
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello_with(json!({"type": "hello", "token": null, "last_seq": 0, "visitor": {"name": "Ada", "email": "ada@example.com"}})).await;
    visitor.say("1", "first question").await;
    assert_eq!(visitor.next_message().await["text"], "Hello from the flow!");
    visitor.say("2", "second question").await;
    assert_eq!(visitor.next_message().await["text"], "Hello from the flow!");

    let requests: Vec<Request> = mock.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["session_id"], visitor.session_id.as_deref().unwrap());
    assert_eq!(body["channel"], "web");
    assert_eq!(body["message"], "second question");
    assert_eq!(body["customer"], json!({"name": "Ada", "email": "ada@example.com", "phone": null}));
    let history: Vec<(String, String)> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["text"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        history,
        vec![
            ("visitor".into(), "first question".into()),
            ("ai".into(), "Hello from the flow!".into()),
            ("visitor".into(), "second question".into()),
        ]
    );
}

#[tokio::test]
async fn a_slow_agent_gives_the_fallback_and_an_error_row_and_the_session_stays_usable() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"reply": "too late"})).set_delay(Duration::from_secs(5)))
        .mount(&mock)
        .await;
    let agent_url = mock.uri();
    let app = TestApp::spawn_with(|c| {
        c.agent = "webhook".into();
        c.agent_url = Some(agent_url);
        c.limits.agent_timeout_secs = 1;
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello?").await;
    let fallback = visitor.next_message().await;
    assert_eq!(fallback["role"], "system");
    assert!(fallback["text"].as_str().unwrap().contains("trouble"));
    let db = app.db().await;
    assert!(
        eventually(Duration::from_secs(5), async || {
            db.query_one("SELECT count(*) FROM errors WHERE source = 'agent' AND session_id IS NOT NULL", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 1
        })
        .await
    );
    // Still usable: the next message is stored and answered (with the fallback again).
    assert_eq!(visitor.say("2", "still there?").await, 3);
    assert_eq!(visitor.next_message().await["seq"], 4);
}

#[tokio::test]
async fn an_agent_answering_garbage_or_5xx_gives_the_fallback() {
    let mock = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&mock).await;
    let agent_url = mock.uri();
    let app = TestApp::spawn_with(|c| {
        c.agent = "webhook".into();
        c.agent_url = Some(agent_url);
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello?").await;
    assert_eq!(visitor.next_message().await["role"], "system");
    // 503 is retried once before giving up.
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_openai_agent_streams_and_the_visitor_gets_typing_partials_and_one_message() {
    let mock = MockServer::start().await;
    let chunk = |text: &str| format!("data: {}\n\n", json!({"choices": [{"delta": {"content": text}}]}));
    let sse = format!("{}{}{}data: [DONE]\n\n", chunk("Hello"), chunk(", I am"), chunk(" streaming."));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer test-openai-key"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(sse))
        .expect(1)
        .mount(&mock)
        .await;
    let base = format!("{}/v1", mock.uri());
    let app = TestApp::spawn_with(|c| {
        c.agent = "openai".into();
        c.openai_base_url = base;
        c.openai_api_key = Some("test-openai-key".into());
        c.openai_model = "test-model".into();
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "Who are you?").await;
    let (message, before) = visitor.recv_until("message").await;
    assert_eq!(message["message"]["text"], "Hello, I am streaming.");
    let typing: Vec<bool> = before.iter().filter(|f| f["type"] == "typing").map(|f| f["on"] == true).collect();
    assert_eq!(typing, vec![true, false], "typing on while the tokens arrive, off before the message: {before:?}");
    for partial in before.iter().filter(|f| f["type"] == "partial") {
        assert!("Hello, I am streaming.".starts_with(partial["text"].as_str().unwrap()), "{partial}");
    }

    let request: Value = serde_json::from_slice(&mock.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(request["model"], "test-model");
    assert_eq!(request["stream"], true);
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][1], json!({"role": "user", "content": "Who are you?"}));
}

// ---- bad input ---------------------------------------------------------------

async fn error_code_for(visitor: &mut Visitor, frame: Message) -> String {
    visitor.send_raw(frame).await;
    let (error, _) = visitor.recv_until("error").await;
    error["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_store_nothing() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::connect(app.port).await;
    let text = |v: Value| Message::text(v.to_string());

    assert_eq!(error_code_for(&mut visitor, Message::text("{not json")).await, "invalid_json");
    assert_eq!(error_code_for(&mut visitor, text(json!({"type": "shout"}))).await, "unknown_type");
    assert_eq!(
        error_code_for(&mut visitor, text(json!({"type": "message", "client_msg_id": "x", "text": "early"}))).await,
        "hello_required"
    );
    assert_eq!(error_code_for(&mut visitor, text(json!({"type": "hello", "token": "forged-token", "last_seq": 0}))).await, "invalid_token");
    assert_eq!(error_code_for(&mut visitor, text(json!({"type": "hello", "token": null, "last_seq": -1}))).await, "invalid_last_seq");
    assert_eq!(error_code_for(&mut visitor, text(json!({"type": "hello", "token": null, "last_seq": 5}))).await, "invalid_last_seq");
    assert_eq!(
        error_code_for(&mut visitor, text(json!({"type": "hello", "visitor": {"email": "not-an-email"}}))).await,
        "invalid_visitor"
    );
    assert_eq!(error_code_for(&mut visitor, Message::binary(vec![1u8, 2, 3])).await, "binary_not_supported");

    // The socket survived all of that and can still start a conversation.
    visitor.hello().await;
    visitor.recv_until("status").await;
    let message = |id: &str, body: &str| text(json!({"type": "message", "client_msg_id": id, "text": body}));
    assert_eq!(error_code_for(&mut visitor, message("e1", "   ")).await, "empty_text");
    assert_eq!(error_code_for(&mut visitor, message("e2", &"x".repeat(4001))).await, "text_too_long");
    assert_eq!(error_code_for(&mut visitor, message(&"i".repeat(65), "hi")).await, "invalid_client_msg_id");
    assert_eq!(error_code_for(&mut visitor, message("", "hi")).await, "invalid_client_msg_id");
    assert_eq!(error_code_for(&mut visitor, text(json!({"type": "message", "text": "no id"}))).await, "invalid_frame");
    assert_eq!(error_code_for(&mut visitor, text(json!({"type": "hello"}))).await, "already_welcomed");

    let mut resumed = Visitor::connect(app.port).await;
    let token = visitor.token.clone().unwrap();
    assert_eq!(error_code_for(&mut resumed, text(json!({"type": "hello", "token": token, "last_seq": 1}))).await, "invalid_last_seq");

    let db = app.db().await;
    let stored: i64 = db.query_one("SELECT count(*) FROM messages", &[]).await.unwrap().get(0);
    assert_eq!(stored, 0, "nothing bad was stored");
    assert_eq!(visitor.say("ok", "a good message").await, 1);
}

#[tokio::test]
async fn a_token_from_another_site_does_not_resume_the_conversation() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    db.execute(
        "INSERT INTO sites (id, key, name, allowed_origins) VALUES (gen_random_uuid(), 'other', 'Other', '{*}')",
        &[],
    )
    .await
    .unwrap();
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let token = visitor.token.clone().unwrap();
    let mut elsewhere = Visitor::connect_path(app.port, "/ws/chat?site=other").await;
    let code = error_code_for(&mut elsewhere, Message::text(json!({"type": "hello", "token": token, "last_seq": 0}).to_string())).await;
    assert_eq!(code, "invalid_token");
}

#[tokio::test]
async fn no_hello_in_time_closes_with_4001() {
    let app = TestApp::spawn_with(|c| c.limits.hello_timeout_secs = 1).await;
    let mut visitor = Visitor::connect(app.port).await;
    assert_eq!(visitor.closed().await, Some(4001));
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_others_carry_on() {
    let app = TestApp::spawn_with(|c| c.limits.max_frame_bytes = 1024).await;
    let mut bystander = Visitor::connect(app.port).await;
    bystander.hello().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor
        .send(json!({"type": "message", "client_msg_id": "big", "text": "x".repeat(2000)}))
        .await;
    let code = loop {
        match visitor.next_event().await {
            Event::Closed(code) => break code,
            Event::Frame(_) => continue,
        }
    };
    assert_eq!(code, Some(1009));
    assert_eq!(bystander.say("1", "still fine").await, 1);
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_then_cut_off() {
    let app = TestApp::spawn_with(|c| {
        c.limits.rate_per_sec = 1;
        c.limits.rate_burst = 5;
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    for i in 0..200 {
        visitor.send(json!({"type": "typing", "on": i % 2 == 0})).await;
    }
    let mut limited = 0;
    let code = loop {
        match visitor.next_event().await {
            Event::Frame(f) if f["code"] == "rate_limited" => limited += 1,
            Event::Frame(_) => {}
            Event::Closed(code) => break code,
        }
    };
    assert!(limited >= 90, "rate-limited frames get error frames first ({limited})");
    assert_eq!(code, Some(4029));
}

#[tokio::test]
async fn connections_past_the_per_ip_cap_are_refused_with_429() {
    let app = TestApp::spawn_with(|c| c.limits.max_connections_per_ip = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Visitor::connect(app.port).await);
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws/chat", app.port)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 429),
        other => panic!("expected HTTP 429, got {other:?}"),
    }
    // A slot frees when a socket closes.
    open.pop().unwrap().close().await;
    let url = format!("ws://127.0.0.1:{}/ws/chat", app.port);
    assert!(eventually(Duration::from_secs(5), async || tokio_tungstenite::connect_async(url.as_str()).await.is_ok()).await);
}

#[tokio::test]
async fn unknown_sites_and_disallowed_origins_are_refused_before_the_upgrade() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    db.execute(
        "INSERT INTO sites (id, key, name, allowed_origins) VALUES (gen_random_uuid(), 'shop', 'Shop', '{https://shop.example.com}')",
        &[],
    )
    .await
    .unwrap();
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("{e}"),
    };
    let with_origin = |site: &str, origin: &str| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{}/ws/chat?site={site}", app.port).into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        request
    };
    assert_eq!(status(tokio_tungstenite::connect_async(with_origin("nope", "https://a.example")).await.map(|_| ())), 404);
    assert_eq!(status(tokio_tungstenite::connect_async(with_origin("shop", "https://evil.example")).await.map(|_| ())), 403);
    assert_eq!(status(tokio_tungstenite::connect_async(with_origin("shop", "https://shop.example.com")).await.map(|_| ())), 101);
    let public: Value = reqwest::get(app.url("/api/sites/shop/public")).await.unwrap().json().await.unwrap();
    assert_eq!(public["key"], "shop");
    assert!(public.get("allowed_origins").is_none());
}

/// Reads from a raw socket until `done` says the bytes so far are enough.
async fn read_until(stream: &mut tokio::net::TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while !done(&received) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.expect("bytes in time").unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    received
}

fn handshake(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

#[tokio::test]
async fn upgrade_requests_are_answered_by_the_route_table_and_an_early_frame_is_kept() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;

    // An upgrade to a route that is not a socket gets that route's own
    // answer (here: sign in first), as JSON, and the connection closes.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    raw.write_all(handshake("/api/sessions").as_bytes()).await.unwrap();
    let answer = String::from_utf8(read_until(&mut raw, |_| false).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");

    // A client that sends its hello in the same write as the handshake,
    // without waiting for the 101, is still understood.
    let hello = br#"{"type":"hello"}"#;
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut request = handshake("/ws/chat").into_bytes();
    request.extend_from_slice(&[0x81, 0x80 | hello.len() as u8]);
    request.extend_from_slice(&mask);
    request.extend(hello.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    raw.write_all(&request).await.unwrap();
    let received = read_until(&mut raw, |bytes| String::from_utf8_lossy(bytes).contains("\"welcome\"")).await;
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 101"), "{received}");
    assert!(received.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "the accept key of RFC 6455's example: {received}");
    assert!(received.contains("\"welcome\""), "{received}");
}

#[tokio::test]
async fn a_conversation_gets_its_actor_on_the_first_message_and_misses_nothing_written_before() {
    let url = fresh_database().await;
    let server = ChildServer::start(&[("DATABASE_URL", &url), ("ADMIN_PASSWORD", ADMIN_PASSWORD)]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let live = async || metric(&base, "chathub_live_sessions").await;
    let mut visitor = Visitor::connect(server.port).await;
    let welcome = visitor.hello().await;
    assert_eq!(welcome["messages"], json!([]));
    assert_eq!(visitor.recv().await, json!({"type": "status", "completion": "in_progress", "status": "active"}));
    assert_eq!(live().await, 0.0, "a visitor who has not written holds no conversation actor");

    // Staff write into the conversation before the visitor does (the API
    // allows it), which starts an actor the visitor's socket is not on.
    let session = visitor.session_id.clone().unwrap();
    let (cookie, csrf) = admin_login(&base).await;
    let reply = reqwest::Client::new()
        .post(format!("{base}/api/sessions/{session}/reply"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"client_msg_id": "s1", "text": "Hello from the team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    assert_eq!(live().await, 1.0);

    // The visitor's first message attaches the socket: it gets what it
    // missed, in order, before its own message is acknowledged after it.
    visitor.send(json!({"type": "message", "client_msg_id": "v1", "text": "Hi"})).await;
    let (ack, before) = visitor.recv_until("ack").await;
    let missed: Vec<&Value> = before.iter().filter(|f| f["type"] == "message").collect();
    assert_eq!(missed.len(), 1, "{before:?}");
    assert_eq!(missed[0]["message"]["seq"], 1);
    assert_eq!(missed[0]["message"]["text"], "Hello from the team");
    assert_eq!(ack["seq"], 2);
    assert_eq!(live().await, 1.0, "one actor: the socket joined the one staff started");
    assert!(server.terminate());
}
