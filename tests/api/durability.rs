//! What survives: `kill -9` in the middle of many visitors' streams, SIGTERM,
//! and a visitor that stops reading; and what one write batch stores.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::ws_client::{Event, Visitor};

/// What one visitor sent and which of its messages were acked before the crash.
#[derive(Default)]
struct Ledger {
    token: String,
    session_id: String,
    sent: Vec<String>,
    acked: HashMap<String, i64>,
}

const VISITORS: usize = 20;
/// Messages a visitor keeps in flight without an ack.
const WINDOW: usize = 4;

async fn stream_until_killed(port: u16, ledger: Arc<Mutex<Ledger>>, visitor_no: usize) {
    let mut visitor = Visitor::connect(port).await;
    visitor.hello().await;
    {
        let mut l = ledger.lock().unwrap();
        l.token = visitor.token.clone().unwrap();
        l.session_id = visitor.session_id.clone().unwrap();
    }
    let mut next = 0usize;
    let mut unacked = 0usize;
    loop {
        while unacked < WINDOW {
            let id = format!("v{visitor_no}-m{next}");
            ledger.lock().unwrap().sent.push(id.clone());
            let frame = json!({"type": "message", "client_msg_id": id, "text": format!("message {next}")});
            if !visitor.try_send(frame).await {
                return;
            }
            next += 1;
            unacked += 1;
        }
        match visitor.next_event().await {
            Event::Frame(frame) if frame["type"] == "ack" => {
                let id = frame["client_msg_id"].as_str().unwrap().to_owned();
                ledger.lock().unwrap().acked.insert(id, frame["seq"].as_i64().unwrap());
                unacked -= 1;
            }
            Event::Frame(frame) if frame["type"] == "error" => panic!("unexpected error frame {frame}"),
            Event::Frame(_) => {}
            Event::Closed(_) => return,
        }
    }
}

#[tokio::test]
async fn after_a_kill_9_every_acked_message_is_stored_once_and_resends_store_the_rest_once() {
    let url = fresh_database().await;
    let envs = [("DATABASE_URL", url.as_str()), ("WS_RATE_PER_SEC", "100000"), ("WS_RATE_BURST", "100000")];
    let server = ChildServer::start(&envs);
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..VISITORS).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = ledgers
        .iter()
        .enumerate()
        .map(|(i, ledger)| tokio::spawn(stream_until_killed(server.port, ledger.clone(), i)))
        .collect();
    // Let the streams run, then pull the plug mid-stream.
    let acked_total = || ledgers.iter().map(|l| l.lock().unwrap().acked.len()).sum::<usize>();
    assert!(eventually(Duration::from_secs(30), async || acked_total() >= 500).await, "the streams got going");
    server.kill_hard();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(20), task).await.expect("visitor notices the crash").unwrap();
    }

    let db = connect(&url).await;
    let mut unacked_stored = 0;
    for ledger in &ledgers {
        let ledger = ledger.lock().unwrap();
        let rows = db
            .query(
                "SELECT client_msg_id, seq FROM messages WHERE session_id = $1::text::uuid AND client_msg_id IS NOT NULL",
                &[&ledger.session_id],
            )
            .await
            .unwrap();
        let mut stored: HashMap<String, Vec<i64>> = HashMap::new();
        for row in &rows {
            stored.entry(row.get(0)).or_default().push(row.get(1));
        }
        for (id, seq) in &ledger.acked {
            assert_eq!(stored.get(id), Some(&vec![*seq]), "acked {id} is stored exactly once with its seq");
        }
        for id in ledger.sent.iter().filter(|id| !ledger.acked.contains_key(*id)) {
            let copies = stored.get(id).map_or(0, Vec::len);
            assert!(copies <= 1, "unacked {id} stored at most once");
            unacked_stored += copies;
        }
        // Gap-free seqs.
        let seqs: Vec<i64> = db
            .query("SELECT seq FROM messages WHERE session_id = $1::text::uuid ORDER BY seq", &[&ledger.session_id])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gaps");
    }
    eprintln!("crash test: {} acked, {unacked_stored} unacked-but-stored", acked_total());

    // Restart; each visitor resumes and resends everything that was not acked.
    let server = ChildServer::start(&envs);
    for ledger in &ledgers {
        let (token, pending): (String, Vec<String>) = {
            let l = ledger.lock().unwrap();
            (l.token.clone(), l.sent.iter().filter(|id| !l.acked.contains_key(*id)).cloned().collect())
        };
        let mut visitor = Visitor::connect(server.port).await;
        visitor.resume(&token, 0).await;
        for id in &pending {
            visitor.say(id, "resent").await;
        }
        visitor.close().await;
    }
    let all_sent: HashSet<String> = ledgers.iter().flat_map(|l| l.lock().unwrap().sent.clone()).collect();
    let counts = db
        .query("SELECT client_msg_id, count(*) FROM messages WHERE client_msg_id IS NOT NULL GROUP BY 1", &[])
        .await
        .unwrap();
    assert_eq!(counts.len(), all_sent.len(), "every message sent is stored");
    for row in counts {
        assert_eq!(row.get::<_, i64>(1), 1, "{} stored once", row.get::<_, String>(0));
    }
    assert!(server.terminate());
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_cleanly_with_everything_acked_stored() {
    let url = fresh_database().await;
    let server = ChildServer::start(&[("DATABASE_URL", &url)]);
    let mut visitors = Vec::new();
    let mut acked = Vec::new();
    for i in 0..5 {
        let mut visitor = Visitor::connect(server.port).await;
        visitor.hello().await;
        let id = format!("t{i}");
        acked.push((visitor.say(&id, "before shutdown").await, id));
        visitors.push(visitor);
    }
    let started = std::time::Instant::now();
    assert!(server.terminate(), "exit code 0");
    assert!(started.elapsed() < Duration::from_secs(8), "sockets do not hold the shutdown open");
    for mut visitor in visitors {
        assert_eq!(visitor.closed().await, Some(1001));
    }
    let db = connect(&url).await;
    for (seq, id) in acked {
        let stored: i64 = db.query_one("SELECT seq FROM messages WHERE client_msg_id = $1", &[&id]).await.unwrap().get(0);
        assert_eq!(stored, seq);
    }
}

#[tokio::test]
async fn a_visitor_tab_that_stops_reading_is_closed_with_4008_and_the_conversation_goes_on() {
    let url = fresh_database().await;
    let server = ChildServer::start(&[
        ("DATABASE_URL", &url),
        ("WS_SEND_QUEUE", "8"),
        ("WS_RATE_PER_SEC", "100000"),
        ("WS_RATE_BURST", "100000"),
        ("MAX_MESSAGE_CHARS", "16000"),
        ("WS_MAX_FRAME_BYTES", "65536"),
    ]);
    let mut writer = Visitor::connect(server.port).await;
    writer.hello().await;
    let token = writer.token.clone().unwrap();
    // A second tab of the same conversation that never reads.
    let mut stalled = Visitor::connect(server.port).await;
    stalled.resume(&token, 0).await;

    let base = server.url("");
    say_until_a_slow_consumer_is_cut_off(&mut writer, &base, "the stalled tab").await;
    // The stalled tab drains what the kernel buffered, then sees the close.
    let code = loop {
        match stalled.next_event().await {
            Event::Closed(code) => break code,
            Event::Frame(_) => {}
        }
    };
    assert_eq!(code, Some(4008));
    // The writer is unaffected.
    writer.say("after", "still here").await;
}

/// A new web session's row for `write_batch` tests.
fn new_session_row(now: chrono::DateTime<chrono::Utc>) -> chathub::store::conversation_writes::NewSessionRow {
    chathub::store::conversation_writes::NewSessionRow {
        channel: chathub::domain::Channel::Web,
        external_id: None,
        site_id: None,
        visitor_token_hash: None,
        customer: chathub::domain::Customer::default(),
        metadata: json!({}),
        created_at: now,
    }
}

/// A visitor's message `seq` for `write_batch` tests.
fn visitor_row(seq: i64, client_msg_id: String, at: chrono::DateTime<chrono::Utc>) -> chathub::store::conversation_writes::MessageRow {
    chathub::store::conversation_writes::MessageRow {
        seq,
        role: chathub::domain::MessageRole::Visitor,
        text: format!("message {seq}"),
        attachment_ids: Vec::new(),
        client_msg_id: Some(client_msg_id),
        external_id: None,
        author_id: None,
        latency_ms: None,
        created_at: at,
    }
}

/// A batch of new messages alone goes out as one pipeline with its BEGIN
/// and COMMIT. When one of its statements fails (here a seq already
/// stored), none of it is kept, and the connection comes back out of the
/// transaction: the next batch on it (a pool of one) is stored as usual.
#[tokio::test]
async fn a_pipelined_batch_that_fails_keeps_nothing_and_leaves_its_connection_usable() {
    use chathub::domain::SessionId;
    use chathub::store::conversation_writes::{MessageRow, SessionWrite, write_batch};
    let database_url = fresh_database().await;
    let pool = chathub::postgres::pool(&database_url, 1).unwrap();
    let message = |seq: i64| visitor_row(seq, format!("p{seq}"), chrono::Utc::now());
    let row = new_session_row(chrono::Utc::now());
    let (a, b) = (SessionId::new(), SessionId::new());
    let mut created = vec![SessionWrite::create_only(a, row.clone()), SessionWrite::create_only(b, row)];
    for w in &mut created {
        w.messages = vec![message(1)];
    }
    write_batch(&pool, &created, chrono_tz::UTC).await.unwrap();
    // Session a's new message is fine; b's reuses seq 1 and cannot be stored.
    let mut next = SessionWrite::create_only(a, created[0].create.clone().unwrap());
    next.create = None;
    next.messages = vec![message(2)];
    let mut clash = next.clone();
    clash.session_id = b;
    clash.messages = vec![MessageRow { client_msg_id: Some("other".into()), ..message(1) }];
    assert!(write_batch(&pool, &[next.clone(), clash], chrono_tz::UTC).await.is_err());
    let db = connect(&database_url).await;
    let counts = |id: SessionId| {
        let db = &db;
        async move {
            let row = db
                .query_one("SELECT last_seq, (SELECT count(*) FROM messages WHERE session_id = $1) FROM sessions WHERE id = $1", &[&id.0])
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        }
    };
    assert_eq!(counts(a).await, (1, 1), "nothing of the failed batch is kept, not even the good write");
    assert_eq!(counts(b).await, (1, 1));
    write_batch(&pool, &[next], chrono_tz::UTC).await.unwrap();
    assert_eq!(counts(a).await, (2, 2), "the same connection stores the next batch");
}

/// A batch has two forms (a few sessions: one pipelined INSERT and a
/// primary-key update each; many: COPY and one UPDATE): both leave every
/// session's `last_seq` at its last message and store every message. Its
/// `last_message_at` is the last message's too, unless that is less than
/// a second after the stored one, which then stays (the update stays HOT).
#[tokio::test]
async fn a_write_batch_advances_every_sessions_counters_whether_few_or_many() {
    use chathub::domain::SessionId;
    use chathub::store::conversation_writes::{SessionWrite, write_batch};
    let database_url = fresh_database().await;
    let pool = chathub::postgres::pool(&database_url, 2).unwrap();
    let write = |messages: i64, now: chrono::DateTime<chrono::Utc>| {
        let mut write = SessionWrite::create_only(SessionId::new(), new_session_row(now));
        write.messages = (1..=messages).map(|seq| visitor_row(seq, format!("c{seq}"), now + chrono::Duration::milliseconds(seq))).collect();
        write
    };
    let db = connect(&database_url).await;
    let stored = |id: uuid::Uuid| {
        let db = &db;
        async move {
            let row = db
                .query_one(
                    "SELECT last_seq, last_message_at, (SELECT count(*) FROM messages WHERE session_id = $1) FROM sessions WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, chrono::DateTime<chrono::Utc>>(1), row.get::<_, i64>(2))
        }
    };
    let later = |w: &SessionWrite, by: chrono::Duration| {
        let mut next = w.clone();
        next.create = None;
        let first = w.messages.last().unwrap().seq + 1;
        for (i, m) in next.messages.iter_mut().enumerate() {
            m.seq = first + i as i64;
            m.client_msg_id = Some(format!("c{}", m.seq));
            m.created_at += by;
        }
        next
    };
    for sessions in [3, 40] {
        let now = chrono::Utc::now();
        let first: Vec<SessionWrite> = (0..sessions).map(|i| write(1 + i % 4, now)).collect();
        // Within a second of the stored activity: the counter moves, the time stays.
        let soon: Vec<SessionWrite> = first.iter().map(|w| later(w, chrono::Duration::milliseconds(400))).collect();
        // A second or more after it: both move.
        let after: Vec<SessionWrite> = soon.iter().map(|w| later(w, chrono::Duration::milliseconds(1500))).collect();
        // Each batch in turn, with the batch whose last messages are then the stored activity.
        for (batch, activity) in [(&first, &first), (&soon, &first), (&after, &after)] {
            write_batch(&pool, batch, chrono_tz::UTC).await.unwrap();
            for (w, active) in batch.iter().zip(activity) {
                let (seq, at, count) = stored(w.session_id.0).await;
                assert_eq!(seq, w.messages.last().unwrap().seq, "{sessions} sessions in the batch");
                assert_eq!(at.timestamp_micros(), active.messages.last().unwrap().created_at.timestamp_micros());
                assert_eq!(count, seq);
            }
        }
    }
}
