//! The session list at scale: word search in web-search syntax (through the
//! full-text index) and substring search of customer fields (through the
//! trigram index) give the same sessions as the plain substring scan they
//! replace; keyset cursors page without overlap or skip while sessions are
//! added, and refuse cursors they did not make.

use std::collections::BTreeSet;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

const WORDS: &[&str] = &["whitening", "invoice", "parking", "refund", "monday", "braces", "voucher", "deposit"];

/// `n` sessions with a customer each and three messages of vocabulary words,
/// one created per minute from minute `first`; returns their ids, oldest first.
async fn seed(db: &mut tokio_postgres::Client, first: usize, n: usize) -> Vec<Uuid> {
    // One transaction: a session is never seen without its messages (the
    // hub's own writes are atomic the same way).
    let db = db.transaction().await.unwrap();
    let mut ids = Vec::new();
    for i in first..first + n {
        let id = Uuid::new_v4();
        let created = "2026-11-01T00:00:00Z";
        db.execute(
            "INSERT INTO sessions (id, channel, created_at, customer_name, customer_email, customer_phone, last_seq, last_message_at)
             VALUES ($1, 'web', $2::text::timestamptz + make_interval(mins => $3), $4, $5, $6, 3, $2::text::timestamptz + make_interval(mins => $3))",
            &[&id, &created, &(i as i32), &format!("Customer {i}"), &format!("customer{i}@example.com"), &format!("+1555{i:07}")],
        )
        .await
        .unwrap();
        for seq in 1..=3i64 {
            let words: Vec<&str> = (0..4).map(|k| WORDS[(i * 7 + seq as usize * 3 + k * 5) % WORDS.len()]).collect();
            let text = format!("{} please", words.join(" "));
            db.execute(
                "INSERT INTO messages (session_id, seq, role, text, channel, created_at) VALUES ($1, $2, 'visitor', $3, 'web', now())",
                &[&id, &seq, &text],
            )
            .await
            .unwrap();
        }
        ids.push(id);
    }
    db.commit().await.unwrap();
    ids
}

/// The sessions the list found for `q`, all pages.
async fn found(admin: &StaffClient, q: &str) -> BTreeSet<String> {
    let (status, page) = admin.get(&format!("/api/sessions?per_page=200&q={}", urlencoding(q))).await;
    assert_eq!(status, 200, "{page}");
    page["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

fn urlencoding(q: &str) -> String {
    q.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// What the plain substring scan this search replaced finds.
async fn substring_scan(db: &tokio_postgres::Client, q: &str) -> BTreeSet<String> {
    let pattern = format!("%{q}%");
    db.query(
        "SELECT s.id::text FROM sessions s WHERE s.last_seq > 0 AND s.status <> 'archived' AND
           (s.customer_name ILIKE $1 OR s.customer_email ILIKE $1 OR s.customer_phone ILIKE $1 OR s.external_id ILIKE $1
            OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.text ILIKE $1))",
        &[&pattern],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn search_through_the_indexes_finds_what_the_substring_scan_found_and_speaks_web_search_syntax() {
    let app = TestApp::spawn().await;
    let mut db = app.db().await;
    seed(&mut db, 0, 60).await;
    search_matches_the_substring_scan(&app, &db).await;
}

/// The same searches when every search walks the list (what a common word
/// does at scale), over sessions with their words built by the backfill and
/// sessions without (stored after it ran): the same sessions found.
#[tokio::test]
async fn search_walking_the_list_finds_what_the_substring_scan_found() {
    let app = TestApp::spawn_with(|config| config.search_index_max_matches = 0).await;
    let mut db = app.db().await;
    seed(&mut db, 0, 40).await;
    let pool = chathub::postgres::pool(&app.database_url, 2).unwrap();
    assert_eq!(chathub::store::session_words::backfill(&pool).await.unwrap(), 40, "every seeded session got its words");
    seed(&mut db, 40, 20).await;
    search_matches_the_substring_scan(&app, &db).await;
    // A long conversation without the word is ruled out by its words: the
    // backfilled row has every word of its messages and none other.
    let words: String = db
        .query_one("SELECT w.words::text FROM session_words w JOIN sessions s ON s.id = w.session_id WHERE s.customer_name = 'Customer 3'", &[])
        .await
        .unwrap()
        .get(0);
    let texts: Vec<String> = db
        .query("SELECT m.text FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.customer_name = 'Customer 3'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: Vec<String> = texts.iter().flat_map(|t| t.split(' ')).map(|w| format!("'{w}'")).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(words, expected.join(" "));

    // A message the hub stores adds its words in the same transaction: the
    // next walk finds it, and a word it does not have still finds nothing.
    let mut visitor = crate::ws_client::Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("m1", "my zyzzyva arrived broken").await;
    let found_new = found(&app.admin().await, "zyzzyva").await;
    assert_eq!(found_new.len(), 1, "{found_new:?}");
    let id: Uuid = found_new.iter().next().unwrap().parse().unwrap();
    // Kept message by message, it is what building it afresh gives (read in
    // one statement: messages and words are written in one transaction).
    let row = db
        .query_one(
            "SELECT w.words::text, (SELECT strip(to_tsvector('simple', string_agg(text, ' ')))::text FROM messages WHERE session_id = $1)
             FROM session_words w WHERE w.session_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (kept, afresh): (String, String) = (row.get(0), row.get(1));
    assert_eq!(kept, afresh);
    assert!(kept.contains("'zyzzyva'") && kept.contains("'arrived'"), "{kept}");
    assert!(found(&app.admin().await, "zyzzyvas").await.is_empty());
}

/// Searches of every kind, compared with the plain substring scan search
/// replaced, over the sessions of `seed`.
async fn search_matches_the_substring_scan(app: &TestApp, db: &tokio_postgres::Client) {
    let admin = app.admin().await;
    // Whole words, names, emails, phone numbers, case-insensitively.
    for q in ["whitening", "Parking", "Customer 4", "customer17@example.com", "+15550000042", "5550000", "nosuchwordanywhere"] {
        let expected = substring_scan(db, q).await;
        assert_eq!(found(&admin, q).await, expected, "q={q:?}");
    }
    assert!(!found(&admin, "whitening").await.is_empty(), "the vocabulary is found at all");

    // Web-search syntax over the transcript: a phrase, an exclusion, or.
    // (The seeded messages have "refund whitening" in that order, never
    // "whitening refund".)
    let phrase = found(&admin, "\"refund whitening\"").await;
    assert!(!phrase.is_empty());
    assert_eq!(phrase, substring_scan(db, "refund whitening").await, "a quoted phrase matches the words in that order");
    assert!(found(&admin, "\"whitening refund\"").await.is_empty(), "and not in another order");
    let whitening = found(&admin, "whitening").await;
    let without_refund = found(&admin, "whitening -refund").await;
    assert!(!without_refund.is_empty() && without_refund.len() < whitening.len());
    // Every found session has a message with whitening and without refund.
    for id in &without_refund {
        let id: Uuid = id.parse().unwrap();
        let texts: Vec<String> = db.query("SELECT text FROM messages WHERE session_id = $1", &[&id]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert!(texts.iter().any(|t| t.contains("whitening") && !t.contains("refund")), "{texts:?}");
    }
    let either = found(&admin, "whitening or voucher").await;
    let union: BTreeSet<String> = whitening.union(&found(&admin, "voucher").await).cloned().collect();
    assert_eq!(either, union);
    // Each found session comes with its newest message that matched, for
    // the list to show instead of the last one.
    let (_, page) = admin.get("/api/sessions?per_page=200&q=whitening").await;
    let matches = page["matches"].as_array().unwrap();
    assert_eq!(matches.len(), whitening.len(), "one per session found by its words");
    for m in matches {
        let id: Uuid = m["session_id"].as_str().unwrap().parse().unwrap();
        let newest: (i64, String) = db
            .query_one("SELECT seq, text FROM messages WHERE session_id = $1 AND text LIKE '%whitening%' ORDER BY seq DESC LIMIT 1", &[&id])
            .await
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!((m["seq"].as_i64().unwrap(), m["text"].as_str().unwrap()), (newest.0, newest.1.as_str()));
    }
    // Hostile text is a search like any other.
    let (status, body) = admin.get("/api/sessions?q=%27%20%26%20%7C%20!%20%3A*%20(").await;
    assert_eq!((status, body["total"].as_i64()), (200, Some(0)), "{body}");
    // A list no longer than the sample is counted exactly either way.
    assert_eq!((page["total"].as_u64(), page["total_estimated"].as_bool()), (Some(whitening.len() as u64), Some(false)));
}

async fn list(admin: &StaffClient, query: &str) -> Value {
    let (status, page) = admin.get(&format!("/api/sessions?{query}")).await;
    assert_eq!(status, 200, "{page}");
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn cursors_page_without_overlap_or_skip_while_sessions_are_added() {
    let app = TestApp::spawn().await;
    let mut db = app.db().await;
    let seeded = seed(&mut db, 0, 45).await;
    let admin = app.admin().await;
    for sort in ["created", "activity"] {
        let mut seen = Vec::new();
        let mut page = list(&admin, &format!("sort={sort}&per_page=10")).await;
        let by_page = ids(&list(&admin, &format!("sort={sort}&per_page=10&page=2")).await);
        let mut first = true;
        loop {
            seen.extend(ids(&page));
            let Some(cursor) = page["next_cursor"].as_str().map(str::to_owned) else { break };
            if first {
                // Newer sessions added after the first page shift the pages
                // by offset, not the next page by cursor.
                first = false;
                seed(&mut db, 1000, 3).await;
                let next = list(&admin, &format!("sort={sort}&per_page=10&cursor={cursor}")).await;
                assert_eq!(ids(&next), by_page, "{sort}: the next page by cursor is what page 2 was");
                let shifted = list(&admin, &format!("sort={sort}&per_page=10&page=2")).await;
                assert_ne!(ids(&shifted), by_page, "{sort}: while page 2 by offset moved");
            }
            page = list(&admin, &format!("sort={sort}&per_page=10&cursor={cursor}")).await;
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (45, 45), "{sort}: every seeded session once, none added later");
        let mut expected: Vec<String> = seeded.iter().map(|id| id.to_string()).collect();
        expected.reverse();
        assert_eq!(seen, expected, "{sort}: newest first");
        db.execute("DELETE FROM sessions WHERE created_at > '2026-11-01T10:00:00Z'", &[]).await.unwrap();
    }
    // A cursor the server did not make, or one of another sort, is refused.
    let page = list(&admin, "per_page=10").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    for bad in [format!("sort=activity&cursor={cursor}"), "cursor=c12_nope".to_owned(), "cursor=x".to_owned()] {
        let (status, body) = admin.get(&format!("/api/sessions?{bad}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_cursor")), "{bad}");
    }
    assert!(list(&admin, "per_page=200").await["next_cursor"].is_null(), "the last page has none");
}

#[tokio::test]
async fn test_ai_chats_stay_out_of_the_list_stats_and_export_unless_asked_for() {
    let app = TestApp::spawn().await;
    let mut db = app.db().await;
    seed(&mut db, 0, 2).await;
    let test_chat = Uuid::new_v4();
    db.execute(
        "INSERT INTO sessions (id, channel, customer_name, last_seq, last_message_at) VALUES ($1, 'test', 'Staff trying the agent', 1, now())",
        &[&test_chat],
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    assert_eq!(list(&admin, "").await["total"], 2);
    assert_eq!(list(&admin, "status=all").await["total"], 2);
    assert_eq!(admin.get("/api/sessions/stats").await.1["total"], 2);
    let (_, csv) = admin.get("/api/sessions/export?format=csv").await;
    assert!(!csv.as_str().unwrap().contains("Staff trying the agent"));
    // Asked for, they are there.
    assert_eq!(ids(&list(&admin, "channel=test").await), [test_chat.to_string()]);
    assert_eq!(admin.get("/api/sessions/stats?channel=test").await.1["total"], 1);
    let (_, csv) = admin.get("/api/sessions/export?format=csv&channel=test").await;
    assert!(csv.as_str().unwrap().contains("Staff trying the agent"));
}

/// The deliveries and errors logs page by cursor too: every row once, newest
/// first (rows created in the same instant by id), a row added meanwhile not
/// shifting the next page; a cursor they did not make is refused.
#[tokio::test]
async fn the_logs_page_by_cursor_without_overlap_or_skip() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let admin = app.admin().await;
    // Five instants, five rows each: ties that only the id orders, split
    // across pages of 7.
    let add = |n: i32| {
        let db = &db;
        async move {
            db.execute(
                "INSERT INTO errors (source, message, created_at)
                 SELECT 'test', 'failure ' || i, '2026-11-01T00:00:00Z'::timestamptz + make_interval(mins => i / 5) FROM generate_series($1, $1 + 24) i",
                &[&n],
            )
            .await
            .unwrap();
            db.execute(
                "INSERT INTO outbox (event_type, payload, idempotency_key, status, created_at)
                 SELECT 'lead.completed', '{}', 'key-' || i, 'dead', '2026-11-01T00:00:00Z'::timestamptz + make_interval(mins => i / 5)
                 FROM generate_series($1, $1 + 24) i",
                &[&n],
            )
            .await
            .unwrap();
        }
    };
    add(0).await;
    for (list, table) in [("errors", "errors"), ("deliveries", "outbox")] {
        let expected: Vec<i64> =
            db.query(&format!("SELECT id FROM {table} ORDER BY created_at DESC, id DESC"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        let ids = |page: &Value| page[list].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>();
        let get = |query: String| {
            let admin = &admin;
            async move {
                let (status, page) = admin.get(&format!("/api/{list}?per_page=7{query}")).await;
                assert_eq!(status, 200, "{page}");
                page
            }
        };
        let mut seen = Vec::new();
        let mut page = get(String::new()).await;
        let page_two = ids(&get("&page=2".into()).await);
        let mut first = true;
        loop {
            seen.extend(ids(&page));
            let Some(cursor) = page["next_cursor"].as_str().map(str::to_owned) else { break };
            if first && list == "errors" {
                add(100).await;
                let next = get(format!("&cursor={cursor}")).await;
                assert_eq!(ids(&next), page_two, "{list}: the next page by cursor is what page 2 was");
            }
            first = false;
            page = get(format!("&cursor={cursor}")).await;
        }
        assert_eq!(seen, expected, "{list}: every row once, newest first");
        let (status, body) = admin.get(&format!("/api/{list}?cursor=c12_{}", Uuid::nil().simple())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_cursor")), "{list}");
    }
}

/// The words index's pending entries (GIN `fastupdate`) are moved into the
/// index out of band, so no conversation's write is the one that finds
/// the list full and merges it: a flush after new messages empties pages,
/// and a second one finds nothing left.
#[tokio::test]
async fn pending_index_entries_are_flushed_out_of_band() {
    let database_url = fresh_database().await;
    let mut db = connect(&database_url).await;
    seed(&mut db, 0, 40).await;
    let pool = chathub::postgres::pool(&database_url, 1).unwrap();
    let flushed = chathub::store::session_search::flush_pending_entries(&pool).await.unwrap();
    assert!(flushed > 0, "new messages' words wait in the pending list until flushed");
    assert_eq!(chathub::store::session_search::flush_pending_entries(&pool).await.unwrap(), 0);
    let hits = db
        .query_one("SELECT count(*) FROM messages WHERE to_tsvector('simple', text) @@ to_tsquery('simple', 'refund')", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(hits > 0, "the flushed words are still found");
}
