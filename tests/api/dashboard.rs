//! The staff dashboard socket: origin and cookie checks, live session
//! summaries, watching a conversation (backlog then live, no gaps or
//! duplicates), a stalled dashboard cut off without hurting the other, and
//! takeover with a staff reply reaching the visitor.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::{Event, Visitor};

/// Reads frames until a `message` frame for `session` with `seq` arrives;
/// returns the seqs of that session's message frames seen on the way.
async fn read_messages_until(dashboard: &mut Visitor, session: &str, seq: i64) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let frame = dashboard.recv().await;
        if frame["type"] == "message" && frame["session_id"] == session {
            let s = frame["message"]["seq"].as_i64().unwrap();
            seqs.push(s);
            if s >= seq {
                return seqs;
            }
        }
    }
}

#[tokio::test]
async fn the_dashboard_socket_needs_a_staff_cookie_and_this_sites_origin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("{e}"),
    };
    let attempt = async |cookie: &str, origin: &str| {
        status(tokio_tungstenite::connect_async(Visitor::dashboard_request(app.port, cookie, origin)).await.map(|_| ()))
    };
    assert_eq!(attempt(&admin.cookie, "https://evil.example").await, 403, "a valid cookie from another origin");
    assert_eq!(attempt("chathub_session=forged", &admin.origin()).await, 401);
    assert_eq!(attempt(&admin.cookie, &admin.origin()).await, 101);
    // No Origin header at all is refused too.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{}/ws/dashboard", app.port).into_client_request().unwrap();
    request.headers_mut().insert("cookie", admin.cookie.parse().unwrap());
    assert_eq!(status(tokio_tungstenite::connect_async(request).await.map(|_| ())), 403);
}

#[tokio::test]
async fn dashboards_see_sessions_appear_and_watched_transcripts_stream_in_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut one = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    let mut two = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;

    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();
    // The new session shows up as a summary on every dashboard.
    for dashboard in [&mut one, &mut two] {
        loop {
            let frame = dashboard.recv().await;
            if frame["type"] == "session" && frame["session"]["id"] == session.as_str() {
                assert!(frame["session"]["message_count"].as_i64().unwrap() >= 1);
                break;
            }
        }
    }
    // Watching from seq 1: the backlog (seq 2), then live messages.
    one.send(json!({"type": "watch", "session_id": session, "last_seq": 1})).await;
    two.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    assert_eq!(read_messages_until(&mut one, &session, 2).await, vec![2]);
    assert_eq!(read_messages_until(&mut two, &session, 2).await, vec![1, 2]);
    visitor.say("2", "Ada").await;
    visitor.next_message().await;
    visitor.say("3", "ada@example.com").await;
    visitor.next_message().await;
    assert_eq!(read_messages_until(&mut one, &session, 6).await, vec![3, 4, 5, 6]);
    assert_eq!(read_messages_until(&mut two, &session, 6).await, vec![3, 4, 5, 6]);
    // The completion reaches the summaries.
    let complete = loop {
        let frame = one.recv().await;
        if frame["type"] == "session" && frame["session"]["completion"] == "complete" {
            break frame;
        }
    };
    assert_eq!(complete["session"]["customer"]["email"], "ada@example.com");
}

/// A server with 16-frame socket queues and room for big messages, a signed-in
/// admin, and a visitor who said hello: what the stalled-reader tests share.
struct StallSetup {
    server: ChildServer,
    base: String,
    cookie: String,
    visitor: Visitor,
    session: String,
}

async fn stall_setup(extra_env: &[(&str, &str)]) -> StallSetup {
    let url = fresh_database().await;
    let mut env = vec![
        ("DATABASE_URL", url.as_str()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("WS_SEND_QUEUE", "16"),
        ("WS_RATE_PER_SEC", "100000"),
        ("WS_RATE_BURST", "100000"),
        ("MAX_MESSAGE_CHARS", "16000"),
        ("WS_MAX_FRAME_BYTES", "65536"),
    ];
    env.extend_from_slice(extra_env);
    let server = ChildServer::start(&env);
    let base = format!("http://127.0.0.1:{}", server.port);
    let (cookie, _) = admin_login(&base).await;
    let mut visitor = Visitor::connect(server.port).await;
    visitor.hello().await;
    let session = visitor.session_id.clone().unwrap();
    StallSetup { server, base, cookie, visitor, session }
}

#[tokio::test]
async fn a_dashboard_that_stops_reading_is_cut_off_and_the_other_is_unaffected() {
    let StallSetup { server, base, cookie, mut visitor, session } = stall_setup(&[]).await;
    let mut reader = Visitor::dashboard(server.port, &cookie, &base).await;
    let mut stalled = Visitor::dashboard(server.port, &cookie, &base).await;
    for dashboard in [&mut reader, &mut stalled] {
        dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    }
    // The reader keeps up in the background and records every seq it sees.
    let reader_task = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            match reader.next_event().await {
                Event::Frame(frame) if frame["type"] == "message" => seqs.push(frame["message"]["seq"].as_i64().unwrap()),
                Event::Frame(_) => {}
                Event::Closed(code) => return (seqs, code),
            }
        }
    });
    say_until_a_slow_consumer_is_cut_off(&mut visitor, &base, "the stalled dashboard").await;
    let code = loop {
        if let Event::Closed(code) = stalled.next_event().await {
            break code;
        }
    };
    assert_eq!(code, Some(4008));
    // Chats go on, and the reader still sees every message, in order.
    visitor.say("last", "done").await;
    let last_seq = visitor.next_message().await["seq"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.terminate());
    let (seqs, _) = reader_task.await.unwrap();
    assert_eq!(seqs, (1..=last_seq).collect::<Vec<_>>(), "the reading dashboard missed nothing");
}

#[tokio::test]
async fn takeover_pauses_the_ai_and_the_visitor_sees_the_staff_reply() {
    let app = TestApp::spawn().await;
    let agent = app.staff("agnes", "agent").await;
    let qa = app.staff("quinn", "qa").await;
    let mut dashboard = Visitor::dashboard(app.port, &agent.cookie, &agent.origin()).await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();

    // A QA user may watch but not take over or reply.
    let mut reviewer = Visitor::dashboard(app.port, &qa.cookie, &qa.origin()).await;
    reviewer.send(json!({"type": "takeover", "session_id": session, "on": true})).await;
    let (error, _) = reviewer.recv_until("error").await;
    assert_eq!(error["code"], "forbidden");

    dashboard.send(json!({"type": "takeover", "session_id": session, "on": true})).await;
    let (takeover, _) = dashboard.recv_until("takeover").await;
    assert_eq!(takeover["handler"], "human");
    let notice = visitor.next_message().await;
    assert_eq!(notice["role"], "system");

    // The visitor writes; the AI stays quiet; the staff member answers.
    visitor.say("2", "is anyone there?").await;
    dashboard.send(json!({"type": "say", "session_id": session, "client_msg_id": "staff-1", "text": "Hi, I'm Agnes. How can I help?"})).await;
    let (ack, _) = dashboard.recv_until("ack").await;
    assert_eq!((ack["session_id"].as_str(), ack["client_msg_id"].as_str()), (Some(session.as_str()), Some("staff-1")));
    let reply = visitor.next_message().await;
    assert_eq!((reply["role"].as_str(), reply["text"].as_str()), (Some("agent"), Some("Hi, I'm Agnes. How can I help?")));
    assert_eq!(reply["seq"], ack["seq"]);
    let db = app.db().await;
    let ai_messages: i64 = db.query_one("SELECT count(*) FROM messages WHERE role = 'ai'", &[]).await.unwrap().get(0);
    assert_eq!(ai_messages, 1, "only the greeting before the takeover");
    let author: Option<uuid::Uuid> = db.query_one("SELECT author_id FROM messages WHERE role = 'agent'", &[]).await.unwrap().get(0);
    assert_eq!(author.map(|a| a.to_string()), agent.user["id"].as_str().map(str::to_owned));

    // A resend of the same staff message is stored once.
    dashboard.send(json!({"type": "say", "session_id": session, "client_msg_id": "staff-1", "text": "Hi, I'm Agnes. How can I help?"})).await;
    let (again, _) = dashboard.recv_until("ack").await;
    assert_eq!(again["seq"], ack["seq"]);

    // Handing back: the AI answers what the visitor said meanwhile.
    visitor.say("3", "Ada").await;
    dashboard.send(json!({"type": "takeover", "session_id": session, "on": false})).await;
    let back = visitor.next_message().await;
    assert_eq!(back["role"], "system");
    let answer = visitor.next_message().await;
    assert_eq!(answer["role"], "ai");

    // The same over HTTP.
    let (status, body) = agent.call("POST", &format!("/api/sessions/{session}/reply"), Some(json!({"client_msg_id": "http-1", "text": "Following up"}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(visitor.next_message().await["text"], "Following up");
    let unknown = uuid::Uuid::new_v4();
    dashboard.send(json!({"type": "say", "session_id": unknown, "client_msg_id": "x", "text": "hello?"})).await;
    let (error, _) = dashboard.recv_until("error").await;
    assert_eq!(error["code"], "unknown_session");
}

#[tokio::test]
async fn a_deleted_conversation_closes_the_visitor_with_4004_and_leaves_the_dashboards() {
    let app = TestApp::spawn().await;
    let developer = app.staff("devi", "developer").await;
    let mut dashboard = Visitor::dashboard(app.port, &developer.cookie, &developer.origin()).await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("1", "hello").await;
    let session = visitor.session_id.clone().unwrap();
    assert_eq!(developer.call("DELETE", &format!("/api/sessions/{session}"), None).await.0, 204);
    assert_eq!(visitor.closed().await, Some(4004));
    let deleted: Value = loop {
        let frame = dashboard.recv().await;
        if frame["type"] == "session_deleted" {
            break frame;
        }
    };
    assert_eq!(deleted["session_id"], session.as_str());
}

#[tokio::test]
async fn a_dashboard_that_never_reads_again_is_disconnected_and_forgotten() {
    let StallSetup { server, base, cookie, mut visitor, session } = stall_setup(&[("WS_IDLE_TIMEOUT_SECS", "2")]).await;
    // Watches, then never reads again (and never closes): a dead client.
    let mut dead = Visitor::dashboard(server.port, &cookie, &base).await;
    dead.send(json!({"type": "watch", "session_id": session, "last_seq": 0})).await;
    assert!(eventually(Duration::from_secs(5), async || metric(&base, "chathub_dashboard_sockets").await == 1.0).await);

    // Enough traffic to fill the kernel's buffers: the hub's writes to the
    // dead socket block and its queue overflows.
    let sent = say_until_a_slow_consumer_is_cut_off(&mut visitor, &base, "the dead dashboard").await;
    // A close frame cannot reach it; after the write deadline the hub drops
    // the connection and forgets the dashboard.
    assert!(
        eventually(Duration::from_secs(10), async || metric(&base, "chathub_dashboard_sockets").await == 0.0).await,
        "a socket nobody reads is not held forever"
    );
    assert!(visitor.say("after", "still chatting").await > sent as i64, "the conversation goes on");
    drop(dead);
    assert!(server.terminate());
}

#[tokio::test]
async fn a_busy_session_updates_the_list_once_a_second_while_its_messages_stream_live() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut dashboard = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("0", "hello").await;
    visitor.next_message().await;
    let session = visitor.session_id.clone().unwrap();
    dashboard.send(json!({"type": "watch", "session_id": session, "last_seq": 2})).await;

    // Ten more exchanges over about 1.5 s, then read what the dashboard got
    // until the summary shows all of them.
    let chat = async {
        for i in 1..=10 {
            visitor.say(&format!("m{i}"), &format!("message {i}")).await;
            visitor.next_message().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    };
    let read = async {
        let (mut summaries, mut messages, mut typing) = (0, Vec::new(), Vec::new());
        loop {
            let frame = dashboard.recv().await;
            match frame["type"].as_str().unwrap() {
                "session" if frame["session"]["id"] == session.as_str() => {
                    summaries += 1;
                    if frame["session"]["message_count"] == 22 {
                        return (summaries, messages, typing);
                    }
                }
                "message" => messages.push(frame["message"]["seq"].as_i64().unwrap()),
                "typing" => typing.push(frame["on"].as_bool().unwrap()),
                _ => {}
            }
        }
    };
    let ((), read) = tokio::join!(chat, tokio::time::timeout(Duration::from_secs(10), read));
    let (summaries, messages, typing) = read.expect("a summary with all 22 messages within 10 s");
    // Every message streamed live, in order; the list got at most one summary
    // a second (about 1.5 s of chat: ≤ 3), and the last one shows all 22.
    assert_eq!(messages, (3..=22).collect::<Vec<i64>>());
    assert!(summaries <= 3, "{summaries} summaries in about 1.5 s");
    // The demo agent answers at once: its typing indicator is held and
    // cancelled, never an `on` without its `off`.
    assert!(typing.iter().filter(|on| **on).count() <= 2, "typing frames: {typing:?}");
    assert_eq!(typing.iter().filter(|on| **on).count(), typing.iter().filter(|on| !**on).count());
}
