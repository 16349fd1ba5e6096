//! Fault injection: what an attack or a database restart must not break.
//! Each test here failed before its fix (issue #11): a conversation stuck on
//! a seq taken behind its back, relay ids colliding across conversations,
//! first-contact batches stored out of order, session rows made by bare
//! hellos, a login flood exhausting memory, and the private PostgreSQL left
//! dead after its postmaster was killed. The last test repeats PostgreSQL
//! crashes under 20 chatting visitors and checks every promise at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::{Event, Visitor};

const APP_SECRET: &str = "fault-app-secret";
const RELAY_KEY: &str = "relay-machine-key-0123456789";

/// Sends a message until it is acked, resending after `retry` errors.
async fn say_with_retries(visitor: &mut Visitor, id: &str, text: &str, within: Duration) -> Option<i64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        visitor.send(json!({"type": "message", "client_msg_id": id, "text": text})).await;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), visitor.recv()).await.ok()?;
            if frame["type"] == "ack" && frame["client_msg_id"] == id {
                return frame["seq"].as_i64();
            }
            if frame["type"] == "error" && frame["code"] == "retry" {
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
        }
    }
    None
}

/// Waits for the AI's answer to what the visitor last said.
async fn ai_answer(visitor: &mut Visitor) -> Value {
    loop {
        let message = visitor.next_message().await;
        if message["role"] == "ai" {
            return message;
        }
    }
}

/// The roles of a conversation's stored messages by seq, once `count` are stored.
async fn stored_roles(db: &tokio_postgres::Client, session: uuid::Uuid, count: usize) -> Vec<String> {
    let read = async || -> Vec<String> {
        let rows = db.query("SELECT seq, role FROM messages WHERE session_id = $1 ORDER BY seq", &[&session]).await.unwrap();
        assert!(rows.iter().enumerate().all(|(i, r)| r.get::<_, i64>(0) == i as i64 + 1), "seqs without gaps");
        rows.iter().map(|r| r.get(1)).collect()
    };
    eventually(Duration::from_secs(10), async || read().await.len() >= count).await;
    read().await
}

/// A conversation at seq 2 (the visitor's hello, the AI's answer) whose
/// seq 3 is then stored behind its actor's back, as by a COMMIT whose reply
/// was lost: a visitor message with `client_msg_id` and `text`.
async fn conversation_with_seq_3_stored_behind_its_back(
    app: &TestApp,
    client_msg_id: &str,
    text: &str,
) -> (Visitor, uuid::Uuid, tokio_postgres::Client) {
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    assert_eq!(visitor.say("m1", "hello").await, 1);
    assert_eq!(ai_answer(&mut visitor).await["seq"], 2);
    let session: uuid::Uuid = visitor.session_id.clone().unwrap().parse().unwrap();
    let db = app.db().await;
    db.execute(
        "INSERT INTO messages (session_id, seq, role, text, client_msg_id, channel) VALUES ($1, 3, 'visitor', $2, $3, 'web')",
        &[&session, &text, &client_msg_id],
    )
    .await
    .unwrap();
    db.execute("UPDATE sessions SET last_seq = 3 WHERE id = $1", &[&session]).await.unwrap();
    (visitor, session, db)
}

#[tokio::test]
async fn a_seq_taken_behind_the_actors_back_is_re_read_and_the_conversation_goes_on() {
    let app = TestApp::spawn().await;
    let (mut visitor, session, db) = conversation_with_seq_3_stored_behind_its_back(&app, "ghost", "ghost").await;
    // Before the fix every write reused seq 3 and failed for good.
    let seq = say_with_retries(&mut visitor, "m2", "Ada", Duration::from_secs(15)).await;
    assert_eq!(seq, Some(4), "the conversation continues after the stored seq");
    assert_eq!(stored_roles(&db, session, 5).await, ["visitor", "ai", "visitor", "visitor", "ai"], "seqs 1..5, the AI answering");
}

#[tokio::test]
async fn a_message_committed_without_its_reply_is_acked_as_stored_not_written_twice() {
    let app = TestApp::spawn().await;
    // The visitor's next message already committed, but the actor never knew.
    let (mut visitor, session, db) = conversation_with_seq_3_stored_behind_its_back(&app, "m2", "Ada").await;
    // Told to retry while the outcome is re-read; the resend is acked at the seq it was stored at.
    let seq = say_with_retries(&mut visitor, "m2", "Ada", Duration::from_secs(15)).await;
    assert_eq!(seq, Some(3), "acked where it was stored, not written twice");
    assert_eq!(stored_roles(&db, session, 4).await, ["visitor", "ai", "visitor", "ai"], "stored once, then answered");
}

#[tokio::test]
async fn an_answer_written_with_a_message_that_failed_is_dropped_and_the_resend_answered_once() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    for (id, text, seq) in [("m1", "hello", 1), ("m2", "Ada", 3)] {
        assert_eq!(visitor.say(id, text).await, seq);
        assert_eq!(ai_answer(&mut visitor).await["seq"], seq + 1);
    }
    let session: uuid::Uuid = visitor.session_id.clone().unwrap().parse().unwrap();
    let db = app.db().await;
    db.execute("INSERT INTO messages (session_id, seq, role, text, channel) VALUES ($1, 5, 'visitor', 'ghost', 'web')", &[&session])
        .await
        .unwrap();
    db.execute("UPDATE sessions SET last_seq = 5 WHERE id = $1", &[&session]).await.unwrap();
    // The next reply is a plain one (the email is invalid), written with the
    // message it answers; that write fails on the taken seq.
    let seq = say_with_retries(&mut visitor, "m3", "not-an-email", Duration::from_secs(15)).await;
    assert_eq!(seq, Some(6), "the resend is stored after the taken seq");
    assert!(ai_answer(&mut visitor).await["text"].as_str().unwrap().contains("valid email address"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roles = stored_roles(&db, session, 7).await;
    assert_eq!(roles, ["visitor", "ai", "visitor", "ai", "visitor", "visitor", "ai"], "the failed write's answer was not stored on its own");
}

#[tokio::test]
async fn relay_ids_are_kept_per_conversation_and_cannot_block_a_real_messenger_mid() {
    let app = TestApp::spawn_with(|c| {
        c.api_key = Some(RELAY_KEY.into());
        c.messenger_app_secret = Some(APP_SECRET.into());
    })
    .await;
    let relay = |body: Value| app.http.post(app.url("/api/messenger-sessions")).bearer_auth(RELAY_KEY).json(&body).send();
    for psid in ["PSID-A", "PSID-B"] {
        let response = relay(json!({"session_id": psid, "messages": [{"id": "1", "role": "visitor", "text": "hi"}]})).await.unwrap();
        assert_eq!(response.status(), 200, "relay id \"1\" in {psid}");
    }
    // The same id again in A is the same message.
    let again: Value = relay(json!({"session_id": "PSID-A", "messages": [{"id": "1", "role": "visitor", "text": "hi"}]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["seqs"], json!([1]));
    // A relay message whose id is a real mid cannot take it from Messenger.
    let squat = relay(json!({"session_id": "PSID-C", "messages": [{"id": "m_X", "role": "visitor", "text": "squat"}]})).await.unwrap();
    assert_eq!(squat.status(), 200);
    assert_eq!(messenger_webhook(&app, "PSID-REAL", "m_X", "real").await, 200);
    let db = app.db().await;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.external_id = 'PSID-REAL' AND m.role = 'visitor'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1, "the real Messenger message is stored");
    // NUL bytes are a 400, not a retryable 503.
    for body in [
        json!({"session_id": "PSID-\u{0}", "messages": []}),
        json!({"session_id": "PSID-D", "metadata": {"k": "v\u{0}"}, "messages": []}),
        json!({"session_id": "PSID-D", "messages": [{"id": "x\u{0}", "role": "visitor", "text": "hi"}]}),
    ] {
        assert_eq!(relay(body.clone()).await.unwrap().status(), 400, "{body}");
    }
}

/// Posts a signed Messenger webhook with one message; returns the status.
async fn messenger_webhook(app: &TestApp, psid: &str, mid: &str, text: &str) -> u16 {
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "timestamp": 1, "message": {"mid": mid, "text": text}}
    ]}]}))
    .unwrap();
    let signature = chathub::channels::sign(APP_SECRET, &body);
    let request = app.http.post(app.url("/webhooks/messenger")).header("content-type", "application/json");
    request.header("x-hub-signature-256", signature).body(body).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_channel_message_id_held_by_another_conversation_is_answered_at_once_never_with_a_retry() {
    let app = TestApp::spawn_with(|c| c.messenger_app_secret = Some(APP_SECRET.into())).await;
    assert_eq!(messenger_webhook(&app, "PSID-ONE", "m_same", "first").await, 200);
    // The same mid from another sender can never be stored: 200 (skipped and
    // logged) on the first delivery, not a 503 that Meta would retry for hours.
    assert_eq!(messenger_webhook(&app, "PSID-TWO", "m_same", "second").await, 200);
    let db = app.db().await;
    let texts: Vec<String> = db
        .query("SELECT text FROM messages WHERE external_id = 'm_same'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(texts, ["first"]);
    let logged: i64 = db.query_one("SELECT count(*) FROM errors WHERE source = 'webhook'", &[]).await.unwrap().get(0);
    assert_eq!(logged, 1, "the skipped message is in the errors view");
}

#[tokio::test]
async fn a_first_contact_batch_is_stored_in_the_order_meta_sent_it() {
    let app = TestApp::spawn_with(|c| c.messenger_app_secret = Some(APP_SECRET.into())).await;
    // Ten messages from a new sender, listed out of order: the timestamps say 0..9.
    let order = [3, 4, 6, 2, 9, 0, 7, 5, 8, 1];
    let events: Vec<Value> = order
        .iter()
        .map(|i| json!({"sender": {"id": "PSID-NEW"}, "recipient": {"id": "PAGE"}, "timestamp": 1_000 + i,
                        "message": {"mid": format!("m_{i}"), "text": format!("part {i}")}}))
        .collect();
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": events}]})).unwrap();
    let response = app
        .http
        .post(app.url("/webhooks/messenger"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", chathub::channels::sign(APP_SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let db = app.db().await;
    let texts: Vec<String> = db
        .query(
            "SELECT m.text FROM messages m JOIN sessions s ON s.id = m.session_id
             WHERE s.external_id = 'PSID-NEW' AND m.role = 'visitor' ORDER BY m.seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("part {i}")).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn bare_hellos_store_nothing_and_new_conversations_are_limited_per_ip() {
    let app = TestApp::spawn_with(|c| c.limits.new_conversations_per_hour = 3).await;
    for _ in 0..300 {
        let mut visitor = Visitor::connect(app.port).await;
        visitor.hello().await;
        visitor.close().await;
    }
    let db = app.db().await;
    let rows = || async { db.query_one("SELECT count(*) FROM sessions", &[]).await.unwrap().get::<_, i64>(0) };
    assert_eq!(rows().await, 0, "a hello alone stores no row");

    // A second tab resumes a conversation nobody wrote in yet; the first message stores it.
    let mut first = Visitor::connect(app.port).await;
    first.hello().await;
    let mut second = Visitor::connect(app.port).await;
    let welcome = second.resume(&first.token.clone().unwrap(), 0).await;
    assert_eq!(welcome["session_id"], first.session_id.clone().unwrap().as_str());
    assert_eq!(second.say("c1", "hello").await, 1);
    assert_eq!(rows().await, 1);

    // Two more new conversations are allowed from this IP; the fourth is refused.
    for n in 2..=3 {
        let mut visitor = Visitor::connect(app.port).await;
        visitor.hello().await;
        assert_eq!(visitor.say(&format!("c{n}"), "hello").await, 1);
    }
    let mut refused = Visitor::connect(app.port).await;
    refused.hello().await;
    refused.send(json!({"type": "message", "client_msg_id": "c4", "text": "hello"})).await;
    let (error, _) = refused.recv_until("error").await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert_eq!(error["client_msg_id"], "c4");
    assert_eq!(rows().await, 3);
    // Stored conversations keep working.
    assert_eq!(second.say("c1b", "still here").await, 3);
}

/// RSS of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_login_flood_from_many_addresses_keeps_memory_bounded_and_the_right_password_works() {
    let url = fresh_database().await;
    let server = ChildServer::start(&[("DATABASE_URL", url.as_str()), ("ADMIN_PASSWORD", ADMIN_PASSWORD)]);
    let base = server.url("");
    let before = rss_kib(server.pid());
    // 300 parallel wrong-password logins from 15 loopback addresses.
    let mut tasks = Vec::new();
    for source in 2..17u8 {
        let client = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, source])).build().unwrap();
        for i in 0..20 {
            let (client, base) = (client.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let body = json!({"username": format!("user{i}"), "password": "wrong password"});
                client.post(format!("{base}/api/auth/login")).header("origin", &base).json(&body).send().await.unwrap().status().as_u16()
            }));
        }
    }
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for task in tasks {
        *statuses.entry(task.await.unwrap()).or_default() += 1;
    }
    assert!(statuses.keys().all(|s| [401, 429, 503].contains(s)), "{statuses:?}");
    let after = rss_kib(server.pid());
    // Hashing is bounded to one 19 MiB block per core; before the fix this flood took GBs.
    assert!(after < before + 200 * 1024, "RSS grew from {before} KiB to {after} KiB: {statuses:?}");
    // The right password from yet another address still gets in at once.
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 30])).build().unwrap();
    let body = json!({"username": "admin", "password": ADMIN_PASSWORD});
    let response = client.post(format!("{base}/api/auth/login")).header("origin", &base).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_throttled_apart() {
    let app = TestApp::spawn_with(|c| c.trusted_proxies = chathub::client_ip::TrustedProxies::parse("127.0.0.1").unwrap()).await;
    let login = |client: &'static str, password: &'static str| {
        let body = json!({"username": "admin", "password": password});
        app.http.post(app.url("/api/auth/login")).header("origin", app.url("")).header("x-forwarded-for", client).json(&body).send()
    };
    let mut last = 0;
    for _ in 0..40 {
        last = login("198.51.100.1", "wrong password").await.unwrap().status().as_u16();
    }
    assert_eq!(last, 429, "the attacker behind the proxy is slowed down");
    // Another client of the same proxy is not (the account's own delay aside,
    // which a correct password waits out): a fresh account name shows it.
    let other = app
        .http
        .post(app.url("/api/auth/login"))
        .header("origin", app.url(""))
        .header("x-forwarded-for", "198.51.100.2")
        .json(&json!({"username": "nobody", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401, "a different client behind the proxy is judged on its own");
}

#[tokio::test]
async fn bad_input_is_a_400_never_a_500() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for path in [
        "/api/sessions?q=%00",
        "/api/sessions?site=%00",
        "/api/sessions?page=9223372036854775807",
        "/api/sessions/export?format=json&q=%00",
        "/api/errors?source=%00",
    ] {
        let (status, body) = admin.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn binary_frames_count_against_the_rate_limit() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    for _ in 0..500 {
        if !visitor.try_send_raw(tokio_tungstenite::tungstenite::Message::Binary(vec![1, 2, 3].into())).await {
            break;
        }
    }
    let mut rate_limited = 0;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), visitor.next_event()).await {
            Ok(Event::Frame(frame)) if frame["code"] == "rate_limited" => rate_limited += 1,
            Ok(Event::Frame(_)) => {}
            Ok(Event::Closed(code)) => break code,
            Err(_) => break None,
        }
    };
    assert!(rate_limited > 0, "binary frames were never rate limited");
    assert_eq!(closed, Some(4029), "a binary flood is closed like a text one");
}

// ---- PostgreSQL crashes under load ----------------------------------------

const CHATTERS: usize = 20;

/// What one chatting visitor had acked, by client_msg_id.
#[derive(Default)]
struct Acks {
    token: String,
    session_id: String,
    acked: HashMap<String, i64>,
}

/// Chats until `stop`: one message in flight, resent (same id) after a
/// `retry` error, a silence or a reconnect, so nothing is given up.
async fn chat_through_faults(port: u16, acks: Arc<Mutex<Acks>>, no: usize, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut visitor = Visitor::connect(port).await;
    visitor.hello().await;
    {
        let mut a = acks.lock().unwrap();
        a.token = visitor.token.clone().unwrap();
        a.session_id = visitor.session_id.clone().unwrap();
    }
    let mut next = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let id = format!("v{no}-m{next}");
        let frame = json!({"type": "message", "client_msg_id": id, "text": format!("message {next}")});
        if !visitor.try_send(frame).await {
            visitor = reconnect(port, &acks).await;
            continue;
        }
        let outcome = loop {
            match tokio::time::timeout(Duration::from_secs(10), visitor.next_event()).await {
                Ok(Event::Frame(f)) if f["type"] == "ack" && f["client_msg_id"] == id.as_str() => break Some(f["seq"].as_i64().unwrap()),
                Ok(Event::Frame(f)) if f["type"] == "error" => break None,
                Ok(Event::Frame(_)) => {}
                Ok(Event::Closed(_)) | Err(_) => {
                    visitor = reconnect(port, &acks).await;
                    break None;
                }
            }
        };
        match outcome {
            Some(seq) => {
                acks.lock().unwrap().acked.insert(id, seq);
                next += 1;
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn reconnect(port: u16, acks: &Mutex<Acks>) -> Visitor {
    let token = acks.lock().unwrap().token.clone();
    loop {
        let mut visitor = Visitor::connect(port).await;
        visitor.send(json!({"type": "hello", "token": token, "last_seq": 0})).await;
        if let Ok(frame) = tokio::time::timeout(Duration::from_secs(5), visitor.recv()).await {
            if frame["type"] == "welcome" {
                return visitor;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn postmaster_pid(cluster: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(cluster.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
}

async fn healthy(base: &str) -> bool {
    matches!(reqwest::get(format!("{base}/health")).await, Ok(r) if r.status() == 200)
}

#[tokio::test]
async fn repeated_postgres_crashes_under_load_lose_no_acked_message_and_leave_no_conversation_stuck() {
    let data = world_readable_tempdir();
    let data_dir = data.to_str().unwrap();
    let server = ChildServer::start(&[
        ("CHATHUB_DATA_DIR", data_dir),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("WS_RATE_PER_SEC", "100000"),
        ("WS_RATE_BURST", "100000"),
    ]);
    let base = server.url("");
    let cluster = data.join("postgres");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ledgers: Vec<Arc<Mutex<Acks>>> = (0..CHATTERS).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = ledgers
        .iter()
        .enumerate()
        .map(|(i, acks)| tokio::spawn(chat_through_faults(server.port, acks.clone(), i, stop.clone())))
        .collect();
    let acked_total = || ledgers.iter().map(|l| l.lock().unwrap().acked.len()).sum::<usize>();

    // Kill -9 the postmaster, then an immediate shutdown (what `pg_ctl -m
    // immediate stop` sends), twice each, each time under load.
    for (round, signal) in [nix::sys::signal::Signal::SIGKILL, nix::sys::signal::Signal::SIGQUIT].repeat(2).into_iter().enumerate() {
        let before = acked_total();
        assert!(eventually(Duration::from_secs(30), async || acked_total() >= before + 200).await, "round {round}: chats got going");
        let pid = postmaster_pid(&cluster).expect("a running postmaster");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
        // The launcher notices, clears what the dead postmaster left, and restarts it.
        assert!(
            eventually(Duration::from_secs(60), async || postmaster_pid(&cluster).is_some_and(|p| p != pid) && healthy(&base).await).await,
            "round {round}: PostgreSQL came back after {signal:?}"
        );
    }
    let before = acked_total();
    assert!(eventually(Duration::from_secs(30), async || acked_total() >= before + 200).await, "chats go on after the last crash");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("visitors stop").unwrap();
    }

    // No conversation is stuck: every visitor is acked again within seconds.
    for (i, acks) in ledgers.iter().enumerate() {
        let mut visitor = reconnect(server.port, acks).await;
        let seq = say_with_retries(&mut visitor, &format!("v{i}-after"), "after the faults", Duration::from_secs(15)).await;
        assert!(seq.is_some(), "visitor {i} is stuck after the faults");
    }
    // Staff replies work.
    let staff = staff_login(&base, &reqwest::Client::new(), "admin", ADMIN_PASSWORD).await;
    let session = ledgers[0].lock().unwrap().session_id.clone();
    let (status, body) = staff.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "staff-1", "text": "hello from staff"}))).await;
    assert_eq!(status, 201, "{body}");

    // Every acked message is stored once, at its acked seq; no seq gaps.
    let db = connect(&format!("host={} port=5432 user=postgres dbname=chathub", cluster.display())).await;
    for acks in &ledgers {
        let acks = acks.lock().unwrap();
        let session: uuid::Uuid = acks.session_id.parse().unwrap();
        let stored: HashMap<String, i64> = db
            .query("SELECT client_msg_id, seq FROM messages WHERE session_id = $1 AND client_msg_id IS NOT NULL", &[&session])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (id, seq) in &acks.acked {
            assert_eq!(stored.get(id), Some(seq), "acked {id} at {seq} is stored there");
        }
        let row = db.query_one("SELECT count(*), COALESCE(max(seq), 0) FROM messages WHERE session_id = $1", &[&session]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(1), "seqs of {session} have no gaps");
    }
    assert!(server.log_text().contains("restarting it"), "the launcher logged the restarts");
}

#[tokio::test]
async fn an_export_that_fails_midway_is_a_failed_download_not_a_short_file() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    db.batch_execute(
        "INSERT INTO sessions (id, channel, customer_name, last_seq, created_at)
           SELECT gen_random_uuid(), 'web', 'Customer ' || n, 1, now() - n * interval '1 second' FROM generate_series(1, 40000) n;
         INSERT INTO messages (session_id, seq, role, text, channel) SELECT id, 1, 'visitor', 'hi', 'web' FROM sessions;",
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let mut response = admin.request("GET", "/api/sessions/export?format=csv&include=messages").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some(), "the download started");
    // Far more is left than the server buffers ahead; PostgreSQL now drops
    // the export's connections.
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .unwrap();
    let mut outcome = Ok(());
    loop {
        match response.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    assert!(outcome.is_err(), "the body ended cleanly although rows are missing");
}
