//! Several nodes (SPEC §15, docs/cluster.md): real chathub processes on one
//! PostgreSQL and a real `nats-server`. A visitor on node A is watched,
//! answered and taken over from node B; a webhook reaching B for a
//! conversation on A is stored and answered once; a rule added on B applies
//! on A at once; a node killed or paused mid-chat loses nothing acknowledged
//! and cannot write once its lease was taken, nor hold it up from the middle
//! of a write; NATS restarted, cross-node
//! updates resume; an email sent on one node and tracked through another
//! shows live on a dashboard of the first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::nodes::*;
use crate::ws_client::{Event, Visitor};

const APP_SECRET: &str = "meta-app-secret";

/// The next frame of `kind` (about `session`, for dashboard frames that name one).
async fn next_of(socket: &mut Visitor, kind: &str) -> Value {
    socket.recv_until(kind).await.0
}

#[tokio::test]
async fn a_visitor_on_one_node_is_watched_answered_and_taken_over_from_another() {
    let cluster = TestCluster::new().await;
    let a = cluster.node("a", &[]);
    let b = cluster.node("b", &[]);
    let health: Value = reqwest::get(b.url("/health")).await.unwrap().json().await.unwrap();
    assert_eq!((health["nats"].as_str(), health["node_id"].as_str()), (Some("connected"), Some("b")), "{health}");

    let admin = admin_on(&b).await;
    let mut dashboard = Visitor::dashboard(b.port, &admin.cookie, &admin.origin()).await;
    let mut visitor = Visitor::connect(a.port).await;
    visitor.hello().await;
    visitor.say("v1", "hello from node a").await;
    let greeting = visitor.next_message().await;
    assert_eq!(greeting["role"], "ai");
    let session = visitor.session_id.clone().unwrap();
    assert_eq!(lease_holder(&cluster.db().await, &session).await.as_deref(), Some("a"), "the conversation runs where its visitor is");

    // B's dashboard lists the new session and streams its messages live.
    loop {
        let frame = next_of(&mut dashboard, "session").await;
        if frame["session"]["id"] == session.as_str() {
            break;
        }
    }
    dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    let first = next_of(&mut dashboard, "message").await;
    assert_eq!((first["message"]["seq"].as_i64(), first["message"]["text"].as_str()), (Some(1), Some("hello from node a")));
    assert_eq!(next_of(&mut dashboard, "message").await["message"]["seq"], 2);
    visitor.say("v2", "Ada").await;
    let live = next_of(&mut dashboard, "message").await;
    assert_eq!((live["session_id"].as_str(), live["message"]["text"].as_str()), (Some(session.as_str()), Some("Ada")));
    visitor.next_message().await;

    // Typing, visitor → B's dashboard.
    visitor.send(json!({"type": "typing", "on": true})).await;
    let typing = next_of(&mut dashboard, "typing").await;
    assert_eq!((typing["role"].as_str(), typing["on"].as_bool()), (Some("visitor"), Some(true)));

    // B takes over and replies; the visitor on A sees both, and staff typing.
    dashboard.send(json!({"type": "takeover", "session_id": session, "on": true})).await;
    assert_eq!(next_of(&mut dashboard, "takeover").await["handler"], "human");
    let notice = visitor.next_message().await;
    assert_eq!(notice["role"], "system");
    dashboard.send(json!({"type": "typing", "session_id": session, "on": true})).await;
    let staff_typing = next_of(&mut visitor, "typing").await;
    assert_eq!((staff_typing["role"].as_str(), staff_typing["on"].as_bool()), (Some("agent"), Some(true)));
    dashboard.send(json!({"type": "say", "session_id": session, "client_msg_id": "staff-1", "text": "Hi, Agnes here"})).await;
    let ack = next_of(&mut dashboard, "ack").await;
    assert_eq!(ack["client_msg_id"], "staff-1");
    let reply = visitor.next_message().await;
    assert_eq!((reply["role"].as_str(), reply["text"].as_str(), &reply["seq"]), (Some("agent"), Some("Hi, Agnes here"), &ack["seq"]));

    // The same over HTTP on B.
    let (status, body) = admin.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "http-1", "text": "Following up"}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(visitor.next_message().await["text"], "Following up");
    // A file uploaded on B goes to the visitor on A with its reply, and A
    // serves it (the nodes share the attachment store).
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"%PDF-1.4\n%%EOF\n".to_vec()).file_name("quote.pdf"));
    let upload: Value = admin.request("POST", "/api/attachments").multipart(form).send().await.unwrap().json().await.unwrap();
    let file = upload["attachment"].clone();
    let (status, body) = admin.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "http-2", "text": "", "attachments": [file["id"]]}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(visitor.next_message().await["attachments"], json!([file]));
    let token = visitor.token.clone().unwrap();
    let bytes = reqwest::Client::new().get(a.url(file["url"].as_str().unwrap())).bearer_auth(&token).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), b"%PDF-1.4\n%%EOF\n");
    // The AI stayed quiet after the takeover; nothing was written twice.
    let db = cluster.db().await;
    let rows = db.query("SELECT seq, role FROM messages ORDER BY seq", &[]).await.unwrap();
    let roles: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(roles, ["visitor", "ai", "visitor", "ai", "system", "agent", "agent", "agent"]);
    assert!(metric(&b.url(""), "chathub_bus_messages_total{direction=\"sent\"}").await > 0.0);
}

fn messenger_body(psid: &str, mid: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "timestamp": 1, "message": {"mid": mid, "text": text}}
    ]}]}))
    .unwrap()
}

async fn post_messenger(node: &ChildServer, body: Vec<u8>) -> u16 {
    let signature = chathub::channels::sign(APP_SECRET, &body);
    reqwest::Client::new()
        .post(node.url("/webhooks/messenger"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sent_replies(graph: &MockServer) -> Vec<String> {
    graph
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["message"]["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_webhook_reaching_another_node_is_stored_and_answered_once_by_the_owner() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/me/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"recipient_id": "PSID-9", "message_id": "m.out"})))
        .mount(&graph)
        .await;
    let graph_url = format!("{}/v21.0", graph.uri());
    let cluster = TestCluster::new().await;
    let messenger = [
        ("MESSENGER_APP_SECRET", APP_SECRET),
        ("MESSENGER_PAGE_TOKEN", "page-token"),
        ("GRAPH_API_URL", graph_url.as_str()),
        ("NOTIFIER_RETRY_BASE_MS", "50"),
    ];
    let a = cluster.node("a", &messenger);
    let b = cluster.node("b", &messenger);
    assert_eq!(post_messenger(&a, messenger_body("PSID-9", "m.1", "hi")).await, 200);
    assert!(eventually(Duration::from_secs(10), async || sent_replies(&graph).await.len() == 1).await);
    let db = cluster.db().await;
    let session: uuid::Uuid = db.query_one("SELECT id FROM sessions", &[]).await.unwrap().get(0);
    assert_eq!(lease_holder(&db, &session.to_string()).await.as_deref(), Some("a"));

    // The next message reaches B, twice (Meta retries): stored once, on A.
    let body = messenger_body("PSID-9", "m.2", "Grace Hopper");
    let (first, again) = tokio::join!(post_messenger(&b, body.clone()), post_messenger(&b, body));
    assert_eq!((first, again), (200, 200));
    assert!(eventually(Duration::from_secs(10), async || sent_replies(&graph).await.len() == 2).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let replies = sent_replies(&graph).await;
    assert_eq!(replies.len(), 2, "one Send API call per answer: {replies:?}");
    assert!(replies[1].contains("Grace"), "the owner answered the second message: {replies:?}");
    let rows = db.query("SELECT role, text FROM messages ORDER BY seq", &[]).await.unwrap();
    let stored: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(stored[2], ("visitor".to_owned(), "Grace Hopper".to_owned()));
    assert_eq!(lease_holder(&db, &session.to_string()).await.as_deref(), Some("a"), "B forwarded instead of taking over");
}

#[tokio::test]
async fn reads_cross_nodes_both_ways() {
    let cluster = TestCluster::new().await;
    let a = cluster.node("a", &[]);
    let b = cluster.node("b", &[]);
    let admin = admin_on(&b).await;
    let mut visitor = Visitor::connect(a.port).await;
    visitor.hello().await;
    visitor.say("v1", "hello from node a").await;
    assert_eq!(visitor.next_message().await["seq"], 2);
    let session = visitor.session_id.clone().unwrap();
    let mut dashboard = Visitor::dashboard(b.port, &admin.cookie, &admin.origin()).await;
    dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    assert_eq!(next_of(&mut dashboard, "message").await["message"]["seq"], 1);
    assert_eq!(next_of(&mut dashboard, "message").await["message"]["seq"], 2);
    // The visitor on A reads: B's dashboard hears it.
    visitor.send(json!({"type": "read", "seq": 2})).await;
    let read = tokio::time::timeout(Duration::from_secs(5), next_of(&mut dashboard, "read")).await.expect("the read crossed the bus");
    assert_eq!((read["by"].as_str(), read["seq"].as_i64()), (Some("visitor"), Some(2)));
    // Staff on B read: the visitor on A, whose conversation runs on A, hears it.
    dashboard.send(json!({"type": "read", "session_id": session, "seq": 2})).await;
    let seen = tokio::time::timeout(Duration::from_secs(5), visitor.recv_until("read")).await.expect("the staff read crossed the bus").0;
    assert_eq!(seen, json!({"type": "read", "by": "agent", "seq": 2}));
}

#[tokio::test]
async fn an_email_tracked_through_another_node_shows_live_on_the_dashboard_watching_it() {
    const SECRET: &str = "whsec_Y2x1c3Rlci10ZXN0LXNlY3JldA==";
    let resend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "re-cluster-1"})))
        .mount(&resend)
        .await;
    let cluster = TestCluster::new().await;
    let url = resend.uri();
    let email = [("RESEND_API_URL", url.as_str()), ("RESEND_API_KEY", "re_cluster"), ("RESEND_WEBHOOK_SECRET", SECRET)];
    let a = cluster.node("a", &email);
    let b = cluster.node("b", &email);
    let db = cluster.db().await;
    let session = uuid::Uuid::new_v4();
    db.execute("INSERT INTO sessions (id, channel, customer_name, customer_email) VALUES ($1, 'web', 'Ada', 'ada@example.com')", &[&session])
        .await
        .unwrap();
    let admin_a = admin_on(&a).await;
    let mut dashboard = Visitor::dashboard(a.port, &admin_a.cookie, &admin_a.origin()).await;
    dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, sent) = admin_a
        .call("POST", &format!("/api/sessions/{session}/emails"), Some(json!({"subject": "Hello", "body": "Hi {{customer_name}}"})))
        .await;
    assert_eq!(status, 201, "{sent}");
    let mut seen = next_of(&mut dashboard, "email").await;
    while seen["email"]["status"] != "sent" {
        seen = next_of(&mut dashboard, "email").await;
    }
    // Resend reports the open to node B; A's dashboard sees it.
    let body = json!({"type": "email.opened", "created_at": "2026-12-02T10:00:00Z", "data": {"email_id": "re-cluster-1"}}).to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = standard_webhook_signature(SECRET, "msg_cluster", timestamp, body.as_bytes());
    let response = reqwest::Client::new()
        .post(b.url("/webhooks/resend"))
        .header("svix-id", "msg_cluster")
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let opened = tokio::time::timeout(Duration::from_secs(5), next_of(&mut dashboard, "email")).await.expect("the open crossed the bus");
    assert_eq!((opened["email"]["status"].as_str(), opened["email"]["open_count"].as_i64()), (Some("opened"), Some(1)));
}

#[tokio::test]
async fn a_rule_added_on_one_node_completes_a_conversation_on_another_at_once_and_notifies_once() {
    let n8n = MockServer::start().await;
    Mock::given(method("POST")).and(path("/leads")).respond_with(ResponseTemplate::new(200)).mount(&n8n).await;
    let n8n_url = format!("{}/leads", n8n.uri());
    let cluster = TestCluster::new().await;
    let settings = [("N8N_WEBHOOK_URL", n8n_url.as_str()), ("NOTIFIER_POLL_MS", "100")];
    let a = cluster.node("a", &settings);
    let b = cluster.node("b", &settings);
    let mut visitor = Visitor::connect(a.port).await;
    visitor.hello().await;
    visitor.say("1", "where is my order?").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();

    let admin_b = admin_on(&b).await;
    let rule = json!({"name": "order_confirmed", "kind": "regex", "pattern": "order #\\d{5}", "position": 1});
    assert_eq!(admin_b.call("POST", "/api/completion-rules", Some(rule)).await.0, 201);
    // Well inside the nodes' 5 s re-read: only the bus can have told A.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin_a = admin_on(&a).await;
    let started = Instant::now();
    let reply = json!({"client_msg_id": "r1", "text": "Your order #12345 ships today"});
    assert_eq!(admin_a.call("POST", &format!("/api/sessions/{session}/reply"), Some(reply)).await.0, 201);
    let status = next_of(&mut visitor, "status").await;
    assert_eq!(status["completion"], "complete");
    assert!(started.elapsed() < Duration::from_secs(1));
    let (_, detail) = admin_b.get(&format!("/api/sessions/{session}")).await;
    assert_eq!(detail["session"]["completion_rule"], "order_confirmed");

    // Two notifiers share the outbox: one delivery.
    assert!(eventually(Duration::from_secs(10), async || !n8n.received_requests().await.unwrap().is_empty()).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(n8n.received_requests().await.unwrap().len(), 1, "the lead went to n8n once");
}

/// A visitor that chats `count` messages through `ports`, moving on to the
/// next node whenever its socket closes, resending what was not acked with
/// the same id. Returns its session id and the seqs it was acked.
async fn chat_through_failover(ports: [u16; 2], name: usize, count: usize, killed: tokio::sync::watch::Receiver<bool>) -> (String, Vec<i64>) {
    let mut port = ports[0];
    let mut socket = Visitor::connect(port).await;
    socket.hello().await;
    let (session, token) = (socket.session_id.clone().unwrap(), socket.token.clone().unwrap());
    let mut last_seq = 0;
    let mut acked = Vec::new();
    let mut i = 1;
    while i <= count {
        // Pace the chat so the kill lands mid-conversation.
        if i == 3 {
            let mut killed = killed.clone();
            let _ = killed.wait_for(|k| *k).await;
        }
        let id = format!("v{name}-{i}");
        let sent = socket.try_send(json!({"type": "message", "client_msg_id": id, "text": format!("message {i}")})).await;
        let mut moved = !sent;
        while !moved {
            match socket.next_event().await {
                Event::Frame(frame) if frame["type"] == "ack" && frame["client_msg_id"] == id.as_str() => {
                    acked.push(frame["seq"].as_i64().unwrap());
                    last_seq = last_seq.max(frame["seq"].as_i64().unwrap());
                    i += 1;
                    break;
                }
                Event::Frame(frame) if frame["type"] == "message" => last_seq = last_seq.max(frame["message"]["seq"].as_i64().unwrap()),
                Event::Frame(frame) if frame["type"] == "error" => {
                    assert_eq!(frame["code"], "retry", "{frame}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
                Event::Frame(_) => {}
                Event::Closed(_) => moved = true,
            }
        }
        if moved {
            port = ports[1];
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                assert!(Instant::now() < deadline, "visitor {name} could not resume");
                socket = Visitor::connect(port).await;
                socket.send(json!({"type": "hello", "token": token, "last_seq": last_seq})).await;
                match socket.next_event().await {
                    Event::Frame(welcome) if welcome["type"] == "welcome" => {
                        for m in welcome["messages"].as_array().unwrap() {
                            last_seq = last_seq.max(m["seq"].as_i64().unwrap());
                        }
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }
    (session, acked)
}

#[tokio::test]
async fn killing_a_node_mid_chat_loses_no_acked_message_and_its_conversations_move_at_once() {
    let cluster = TestCluster::new().await;
    // Leases far longer than the test allows: the takeover cannot be a wait.
    let long = [("LEASE_TTL_SECS", "60")];
    let a = cluster.node("a", &long);
    let b = cluster.node("b", &long);
    let (kill, killed) = tokio::sync::watch::channel(false);
    let visitors: Vec<_> = (0..20).map(|n| tokio::spawn(chat_through_failover([a.port, b.port], n, 6, killed.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let db = cluster.db().await;
    let on_a: i64 = db.query_one("SELECT count(*) FROM conversation_leases WHERE node_id = 'a'", &[]).await.unwrap().get(0);
    assert_eq!(on_a, 20, "every conversation runs on A before the kill");
    a.kill_hard();
    let killed_at = Instant::now();
    kill.send(true).unwrap();
    let mut outcomes = Vec::new();
    for visitor in visitors {
        outcomes.push(tokio::time::timeout(Duration::from_secs(60), visitor).await.expect("visitors finish").unwrap());
    }
    assert!(killed_at.elapsed() < Duration::from_secs(30), "A's conversations ran on B within seconds");
    assert!(metric(&b.url(""), "chathub_lease_takeovers_total").await >= 20.0, "the leases were taken over, not waited out");
    for (session, acked) in outcomes {
        let id: uuid::Uuid = session.parse().unwrap();
        let rows = db.query("SELECT seq, client_msg_id FROM messages WHERE session_id = $1 ORDER BY seq", &[&id]).await.unwrap();
        let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gap-free seqs in {session}");
        let mut counts: HashMap<String, usize> = HashMap::new();
        for row in &rows {
            if let Some(id) = row.get::<_, Option<String>>(1) {
                *counts.entry(id).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), 6, "every message of {session} is stored: {counts:?}");
        assert!(counts.values().all(|&n| n == 1), "each stored once: {counts:?}");
        let stored: Vec<i64> = rows.iter().filter(|r| r.get::<_, Option<String>>(1).is_some()).map(|r| r.get(0)).collect();
        assert_eq!(acked, stored, "every ack names the seq that was stored");
        assert_eq!(lease_holder(&db, &session).await.as_deref(), Some("b"));
    }
}

/// Nodes A and B, and a visitor on A who has had one exchange. A renews
/// rarely: when it wakes from a pause, its first write comes before it could
/// learn from a renewal that the lease is gone, so only the fence stops it.
/// (B takes over because A does not answer, not by expiry.)
async fn a_conversation_on_a_node_that_renews_rarely(cluster: &TestCluster) -> (ChildServer, ChildServer, Visitor) {
    let a = cluster.node("a", &[("LEASE_RENEW_SECS", "30"), ("LEASE_TTL_SECS", "60")]);
    let b = cluster.node("b", &[]);
    let mut on_a = Visitor::connect(a.port).await;
    on_a.hello().await;
    on_a.say("1", "hello").await;
    on_a.next_message().await;
    (a, b, on_a)
}

#[tokio::test]
async fn a_paused_node_that_lost_its_lease_cannot_write_and_closes_its_sockets() {
    let cluster = TestCluster::new().await;
    let (a, b, mut on_a) = a_conversation_on_a_node_that_renews_rarely(&cluster).await;
    let (session, token) = (on_a.session_id.clone().unwrap(), on_a.token.clone().unwrap());

    let pid = nix::unistd::Pid::from_raw(a.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // Written to the paused node: it cannot answer.
    on_a.send(json!({"type": "message", "client_msg_id": "from-the-paused-node", "text": "are you there?"})).await;
    // The same visitor in another tab, on B: B takes the conversation over.
    let mut on_b = Visitor::connect(b.port).await;
    on_b.resume(&token, 2).await;
    on_b.say("2", "hello from b").await;
    assert_eq!(lease_holder(&cluster.db().await, &session).await.as_deref(), Some("b"));

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let code = loop {
        match on_a.next_event().await {
            Event::Closed(code) => break code,
            Event::Frame(frame) => assert_ne!(frame["type"], "ack", "the paused node acked after losing its lease: {frame}"),
        }
    };
    assert_eq!(code, Some(1012), "the paused node's socket is moved on");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = cluster.db().await;
    let id: uuid::Uuid = session.parse().unwrap();
    let ids: Vec<Option<String>> = db.query("SELECT client_msg_id FROM messages WHERE session_id = $1 ORDER BY seq", &[&id]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert!(!ids.contains(&Some("from-the-paused-node".into())), "the fenced node wrote: {ids:?}");
    let seqs: Vec<i64> = db.query("SELECT seq FROM messages WHERE session_id = $1 ORDER BY seq", &[&id]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    // B still runs it, and A now forwards to B.
    let mut again = Visitor::connect(a.port).await;
    again.resume(&token, 0).await;
    again.say("3", "back on a").await;
    assert_eq!(lease_holder(&db, &session).await.as_deref(), Some("b"));
}

const WAITING_FOR_A_LOCK: &str = "wait_event_type = 'Lock'";
const IDLE_IN_TRANSACTION: &str = "state = 'idle in transaction'";

/// How many of `node`'s connections meet `condition` (on `pg_stat_activity`).
async fn node_backends(db: &tokio_postgres::Client, node: &str, condition: &str) -> i64 {
    let name = chathub::postgres::node_application_name(node);
    db.query_one(
        &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND {condition}"),
        &[&name],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_node_paused_in_the_middle_of_a_write_does_not_hold_its_conversation_up() {
    let cluster = TestCluster::new().await;
    let (a, b, mut on_a) = a_conversation_on_a_node_that_renews_rarely(&cluster).await;
    let (session, token) = (on_a.session_id.clone().unwrap(), on_a.token.clone().unwrap());
    let id: uuid::Uuid = session.parse().unwrap();

    // A's next write waits for the session row, which the test holds; A
    // stops while it waits, and the row is let go: A's transaction is left
    // open, its lease row locked, with nobody to finish it.
    let db = cluster.db().await;
    let mut holder = cluster.db().await;
    let hold = holder.transaction().await.unwrap();
    hold.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", &[&id]).await.unwrap();
    on_a.send(json!({"type": "message", "client_msg_id": "mid-write", "text": "are you there?"})).await;
    assert!(eventually(Duration::from_secs(10), async || node_backends(&db, "a", WAITING_FOR_A_LOCK).await == 1).await, "A's write waits for the row");
    let pid = nix::unistd::Pid::from_raw(a.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    hold.commit().await.unwrap();
    assert!(eventually(Duration::from_secs(10), async || node_backends(&db, "a", IDLE_IN_TRANSACTION).await == 1).await);

    // B takes the conversation over all the same, and A's unfinished write
    // left nothing behind: B's message takes the next seq.
    let mut on_b = Visitor::connect(b.port).await;
    on_b.resume(&token, 2).await;
    assert_eq!(on_b.say("2", "hello from b").await, 3);
    assert_eq!(lease_holder(&db, &session).await.as_deref(), Some("b"));
    assert_eq!(node_backends(&db, "a", IDLE_IN_TRANSACTION).await, 0, "A's open transaction was ended");

    // A wakes: its write failed, so the visitor is told to resend; the
    // resend meets the fence, and the socket moves on.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let mut resends = 0;
    let code = loop {
        match on_a.next_event().await {
            Event::Closed(code) => break code,
            Event::Frame(frame) => {
                assert_ne!(frame["type"], "ack", "A acked after losing its lease: {frame}");
                if frame["type"] == "error" && frame["code"] == "retry" {
                    resends += 1;
                    assert!(resends <= 5, "A keeps refusing the resend instead of moving the socket on");
                    on_a.try_send(json!({"type": "message", "client_msg_id": "mid-write", "text": "are you there?"})).await;
                }
            }
        }
    };
    assert_eq!(code, Some(1012), "A's socket is moved on");
    let rows = db.query("SELECT seq, client_msg_id FROM messages WHERE session_id = $1 ORDER BY seq", &[&id]).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(!rows.iter().any(|r| r.get::<_, Option<&str>>(1) == Some("mid-write")), "A's write was never stored");
    // The visitor's resend, on B, is stored there once.
    on_b.say("mid-write", "are you there?").await;
}

#[tokio::test]
async fn nodes_keep_serving_through_a_nats_restart_and_cross_node_updates_resume() {
    let mut cluster = TestCluster::new().await;
    let a = cluster.node("a", &[]);
    let b = cluster.node("b", &[]);
    let mut visitor = Visitor::connect(a.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();
    let admin = admin_on(&b).await;
    let mut dashboard = Visitor::dashboard(b.port, &admin.cookie, &admin.origin()).await;

    cluster.nats.stop();
    // A keeps serving the conversation it runs: acked means stored.
    let seq = visitor.say("2", "still there?").await;
    visitor.next_message().await;
    assert_eq!(seq, 3);
    let health: Value = reqwest::get(a.url("/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health["nats"], "disconnected");

    cluster.nats.restart();
    // B's dashboards missed events meanwhile: they are told to reload.
    assert_eq!(dashboard.closed().await, Some(4008));
    let mut dashboard = Visitor::dashboard(b.port, &admin.cookie, &admin.origin()).await;
    dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    for expected in 1..=4 {
        assert_eq!(next_of(&mut dashboard, "message").await["message"]["seq"], expected);
    }
    visitor.say("3", "Ada").await;
    let live = next_of(&mut dashboard, "message").await;
    assert_eq!(live["message"]["text"], "Ada", "cross-node updates resumed without restarting a node");
}

#[test]
fn a_node_without_a_shared_database_is_refused_with_one_clear_line() {
    let output = chathub_command(&[("NATS_URL", "nats://127.0.0.1:4222")])
        .env("CHATHUB_DATA_DIR", world_readable_tempdir())
        .output()
        .expect("running chathub");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NATS_URL needs DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("creating the private PostgreSQL cluster"), "refused before starting anything: {stderr}");
}
