//! Stats from rollups (issue #20) answer exactly what counting every row
//! answered, for every filter the dashboard offers, while sessions change:
//! right after a change (the changed days are counted from the rows), once
//! the job has rewritten the rollups (the rollup table equals a recount),
//! across a DST change, on both sides of the incomplete threshold, and with
//! deletions. The AI's response time is read from its histogram within 1 %.
//! Dashboards that ask get the stats pushed when anything changes.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;
use crate::ws_client::Visitor;

/// New York leaves daylight saving at 02:00 on 2026-11-01 (UTC−4 → UTC−5).
const ZONE: &str = "America/New_York";

/// The stats of the sessions matching `condition` (over `sessions s`),
/// counted row by row: the queries the rollups replaced.
async fn counted_from_rows(db: &tokio_postgres::Client, condition: &str) -> Value {
    let base = format!("s.last_seq > 0 AND {condition}");
    let one = |sql: String| async move { db.query(&sql, &[]).await.unwrap() };
    let grouped = |column: &str, keys: &[&str]| {
        let sql = format!("SELECT {column}::text, count(*) FROM sessions s WHERE {base} GROUP BY 1");
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        async move {
            let mut map = serde_json::Map::new();
            for k in keys {
                map.insert(k, json!(0));
            }
            for row in db.query(&sql, &[]).await.unwrap() {
                if let Some(key) = row.get::<_, Option<String>>(0) {
                    map.insert(key, json!(row.get::<_, i64>(1)));
                }
            }
            Value::Object(map)
        }
    };
    let completion = "CASE WHEN s.completed_at IS NOT NULL THEN 'complete'
                           WHEN COALESCE(s.last_message_at, s.created_at) > now() - interval '1 hour' THEN 'in_progress'
                           ELSE 'incomplete' END";
    let totals = one(format!("SELECT count(*), COALESCE(avg(s.last_seq), 0)::float8 FROM sessions s WHERE {base}")).await;
    let days = one(format!(
        "WITH scoped AS (SELECT s.created_at, s.completed_at FROM sessions s WHERE {base}),
         created AS (SELECT to_char(created_at AT TIME ZONE '{ZONE}', 'YYYY-MM-DD') AS day, count(*) AS n FROM scoped GROUP BY 1),
         completed AS (SELECT to_char(completed_at AT TIME ZONE '{ZONE}', 'YYYY-MM-DD') AS day, count(*) AS n
                       FROM scoped WHERE completed_at IS NOT NULL GROUP BY 1)
         SELECT COALESCE(c.day, d.day), COALESCE(c.n, 0), COALESCE(d.n, 0) FROM created c FULL JOIN completed d ON d.day = c.day ORDER BY 1"
    ))
    .await;
    let per_day: Vec<Value> =
        days.iter().map(|r| json!({"day": r.get::<_, String>(0), "sessions": r.get::<_, i64>(1), "completions": r.get::<_, i64>(2)})).collect();
    json!({
        "total": totals[0].get::<_, i64>(0),
        "messages_per_session": totals[0].get::<_, f64>(1),
        "by_completion": grouped(completion, &["complete", "in_progress", "incomplete"]).await,
        "by_qa_status": grouped("s.qa_status", &["unchecked", "passed", "issue", "fixed"]).await,
        "by_channel": grouped("s.channel", &["web", "messenger", "whatsapp", "test"]).await,
        "by_status": grouped("s.status", &["active", "resolved", "escalated", "archived"]).await,
        "csat": grouped("s.csat_score", &["1", "2", "3", "4", "5"]).await,
        "per_day": per_day,
    })
}

/// The filters compared, as the API takes them and as SQL over the rows.
fn cases(site: Uuid) -> Vec<(String, String)> {
    let day = |d: &str| format!("('{d}'::date::timestamp AT TIME ZONE '{ZONE}')");
    let not_test = "s.channel <> 'test'";
    let recent = "COALESCE(s.last_message_at, s.created_at) > now() - interval '1 hour'";
    vec![
        (String::new(), not_test.into()),
        ("status=active".into(), format!("{not_test} AND s.status = 'active'")),
        ("status=archived".into(), format!("{not_test} AND s.status = 'archived'")),
        ("channel=messenger".into(), "s.channel = 'messenger'".into()),
        ("channel=test".into(), "s.channel = 'test'".into()),
        ("qa_status=issue".into(), format!("{not_test} AND s.qa_status = 'issue'")),
        ("csat=5".into(), format!("{not_test} AND s.csat_score = 5")),
        ("completion=complete".into(), format!("{not_test} AND s.completed_at IS NOT NULL")),
        ("completion=in_progress".into(), format!("{not_test} AND s.completed_at IS NULL AND {recent}")),
        ("completion=incomplete".into(), format!("{not_test} AND s.completed_at IS NULL AND NOT {recent}")),
        // Whole days across the DST change, and a range of partial days.
        (
            "from=2026-10-31&to=2026-11-02".into(),
            format!("{not_test} AND s.created_at >= {} AND s.created_at < {}", day("2026-10-31"), day("2026-11-03")),
        ),
        (
            "from=2026-10-31T15:00:00Z&to=2026-11-01T09:30:00Z".into(),
            format!("{not_test} AND s.created_at >= '2026-10-31T15:00:00Z' AND s.created_at < '2026-11-01T09:30:00Z'"),
        ),
        (
            "from=2026-11-01T03:00:00Z&to=2026-11-01T04:00:00Z".into(),
            format!("{not_test} AND s.created_at >= '2026-11-01T03:00:00Z' AND s.created_at < '2026-11-01T04:00:00Z'"),
        ),
        (format!("site=stats-site"), format!("{not_test} AND s.site_id = '{site}'")),
        (
            "channel=web&qa_status=passed&from=2026-10-28&status=resolved".into(),
            format!("s.channel = 'web' AND s.qa_status = 'passed' AND s.created_at >= {} AND s.status = 'resolved'", day("2026-10-28")),
        ),
    ]
}

/// The part of the API's stats the row count gives.
fn comparable(stats: &Value) -> Value {
    json!({
        "total": stats["total"],
        "messages_per_session": stats["messages_per_session"],
        "by_completion": stats["by_completion"],
        "by_qa_status": stats["by_qa_status"],
        "by_channel": stats["by_channel"],
        "by_status": stats["by_status"],
        "csat": stats["csat"]["distribution"],
        "per_day": stats["per_day"],
    })
}

async fn assert_same_as_rows(admin: &StaffClient, db: &tokio_postgres::Client, site: Uuid, when: &str) {
    for (query, condition) in cases(site) {
        let (status, stats) = admin.get(&format!("/api/sessions/stats?{query}")).await;
        assert_eq!(status, 200, "{query}: {stats}");
        let mut want = counted_from_rows(db, &condition).await;
        let mut got = comparable(&stats);
        // avg() and a Rust division may differ in the last bit.
        let (w, g) = (want["messages_per_session"].as_f64().unwrap(), got["messages_per_session"].as_f64().unwrap());
        assert!((w - g).abs() < 1e-9, "{when}, {query}: messages per session {g} vs {w}");
        want["messages_per_session"] = json!(0);
        got["messages_per_session"] = json!(0);
        assert_eq!(got, want, "{when}, {query}");
        // The list counts the same sessions (it leaves archived out unless asked).
        if !query.contains("status=") {
            let (_, list) = admin.get(&format!("/api/sessions?{query}&status=all&per_page=1")).await;
            assert_eq!(list["total"], want["total"], "{when}, list {query}");
        }
    }
}

/// The rollup table holds what a recount of every day gives.
async fn assert_rollups_are_current(db: &tokio_postgres::Client) {
    let recount = format!(
        "SELECT (created_at AT TIME ZONE '{ZONE}')::date AS day, site_id, channel, status, qa_status, csat_score,
                (completed_at AT TIME ZONE '{ZONE}')::date AS completed_day, count(*)::int8 AS sessions, sum(last_seq)::int8 AS messages
         FROM sessions WHERE last_seq > 0 GROUP BY 1, 2, 3, 4, 5, 6, 7"
    );
    let rolled = "SELECT day, site_id, channel, status, qa_status, csat_score, completed_day, sum(sessions)::int8, sum(messages)::int8
                  FROM session_rollups GROUP BY 1, 2, 3, 4, 5, 6, 7";
    let differ = format!("SELECT count(*) FROM (({recount} EXCEPT {rolled}) UNION ALL ({rolled} EXCEPT {recount})) d");
    let current = eventually(Duration::from_secs(10), async || db.query_one(&differ, &[]).await.unwrap().get::<_, i64>(0) == 0).await;
    assert!(current, "the rollups differ from a recount of the sessions");
}

/// Reads now come from the rollups alone: nothing looks recently changed.
async fn age_the_change_times(db: &tokio_postgres::Client) {
    db.execute("UPDATE sessions SET updated_at = created_at", &[]).await.unwrap();
}

/// `n` sessions over 2026-10-25 … 2026-11-05 (and a few active now),
/// with every dimension varied.
async fn seed(db: &tokio_postgres::Client, site: Uuid, n: i64) {
    db.execute(
        "INSERT INTO sessions (id, channel, status, qa_status, csat_score, site_id, created_at, last_seq, last_message_at, completed_at, completion_rule)
         SELECT gen_random_uuid(),
                (ARRAY['web', 'web', 'messenger', 'whatsapp', 'test'])[1 + i % 5],
                (ARRAY['active', 'resolved', 'escalated', 'archived'])[1 + (i / 5) % 4],
                (ARRAY['unchecked', 'passed', 'issue', 'fixed'])[1 + (i / 3) % 4],
                CASE WHEN i % 7 = 0 THEN NULL ELSE 1 + i % 5 END,
                CASE WHEN i % 4 = 0 THEN $1::uuid END,
                created, seqs, CASE WHEN seqs > 0 THEN created + interval '3 minutes' END,
                CASE WHEN i % 3 = 0 AND seqs > 0 THEN created + make_interval(hours => (i % 30)::int) END,
                CASE WHEN i % 3 = 0 AND seqs > 0 THEN 'booking_link' END
         FROM (SELECT i, (i % 9)::int8 AS seqs,
                      CASE WHEN i % 17 = 0 THEN now() - make_interval(mins => (i % 50)::int)
                           ELSE '2026-10-25T00:00:00Z'::timestamptz + make_interval(mins => ((i * 97) % (11 * 24 * 60))::int) END AS created
               FROM generate_series(1, $2::int8) AS i) g",
        &[&site, &n],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn stats_from_rollups_equal_counting_every_row_for_every_filter_while_sessions_change() {
    let app = TestApp::spawn_with(|c| {
        c.timezone = chrono_tz::America::New_York;
        c.inactive_after_hours = 1;
    })
    .await;
    let db = app.db().await;
    let admin = app.admin().await;
    let (status, _) = admin.call("POST", "/api/sites", Some(json!({"key": "stats-site", "name": "Stats"}))).await;
    assert_eq!(status, 201);
    let site: Uuid = db.query_one("SELECT id FROM sites WHERE key = 'stats-site'", &[]).await.unwrap().get(0);
    seed(&db, site, 1500).await;

    // Just written: the changed days are counted from the rows.
    assert_same_as_rows(&admin, &db, site, "right after the writes").await;
    // The job rewrites them within a second or two; then from the rollups alone.
    assert_rollups_are_current(&db).await;
    age_the_change_times(&db).await;
    assert_same_as_rows(&admin, &db, site, "from the rollups").await;

    // Staff change sessions through the API: QA, status, deletion.
    let ids: Vec<Uuid> =
        db.query("SELECT id FROM sessions WHERE last_seq > 0 ORDER BY created_at LIMIT 40", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    for id in &ids[..5] {
        let (status, body) = admin.call("PUT", &format!("/api/sessions/{id}/qa"), Some(json!({"qa_status": "issue", "qa_notes": "n"}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let bulk = |action: &str, ids: &[Uuid]| json!({"action": action, "ids": ids});
    assert_eq!(admin.call("POST", "/api/sessions/bulk", Some(bulk("archive", &ids[5..15]))).await.0, 200);
    assert_eq!(admin.call("POST", "/api/sessions/bulk", Some(bulk("delete", &ids[15..25]))).await.0, 200);
    assert_same_as_rows(&admin, &db, site, "right after staff changes").await;
    assert_rollups_are_current(&db).await;
    age_the_change_times(&db).await;
    assert_same_as_rows(&admin, &db, site, "after staff changes, from the rollups").await;

    // The incomplete threshold: in progress until an hour after the last
    // activity, then incomplete, with nothing written in between.
    let edge = Uuid::new_v4();
    db.execute(
        "INSERT INTO sessions (id, channel, created_at, last_seq, last_message_at)
         VALUES ($1, 'web', now() - interval '2 hours', 2, now() - interval '1 hour' + interval '3 seconds')",
        &[&edge],
    )
    .await
    .unwrap();
    let in_progress = |stats: &Value| stats["by_completion"]["in_progress"].as_i64().unwrap();
    let before = admin.get("/api/sessions/stats").await.1;
    assert_same_as_rows(&admin, &db, site, "just before the threshold").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = admin.get("/api/sessions/stats").await.1;
    assert_eq!(in_progress(&after), in_progress(&before) - 1, "the session crossed the threshold: {after}");
    assert_same_as_rows(&admin, &db, site, "just after the threshold").await;
}

#[tokio::test]
async fn response_times_come_from_the_histogram_within_one_percent() {
    let app = TestApp::spawn_with(|c| c.timezone = chrono_tz::America::New_York).await;
    let db = app.db().await;
    // Replies of many latencies over days, written behind the hub's back,
    // then counted by a rebuild.
    db.execute(
        "INSERT INTO sessions (id, channel, created_at, last_seq, last_message_at)
         SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 'web', '2026-10-25T00:00:00Z'::timestamptz + make_interval(hours => i), 2,
                '2026-10-25T00:00:00Z'::timestamptz + make_interval(hours => i)
         FROM generate_series(1, 300) i",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO messages (session_id, seq, role, text, channel, latency_ms, created_at)
         SELECT id, 2, 'ai', 'hello', 'web', (37 * row_number() OVER (ORDER BY id)) % 4000, created_at FROM sessions",
        &[],
    )
    .await
    .unwrap();
    rebuild_stats_rollups(&db).await;
    let admin = app.admin().await;
    for query in ["", "from=2026-10-30&to=2026-11-03", "from=2026-10-29T13:00:00Z&to=2026-11-02T07:00:00Z"] {
        let stats = admin.get(&format!("/api/sessions/stats?{query}")).await.1;
        let (from, to) = match query {
            "" => ("-infinity".to_owned(), "infinity".to_owned()),
            "from=2026-10-30&to=2026-11-03" => (
                "'2026-10-30'::date::timestamp AT TIME ZONE 'America/New_York'".to_owned(),
                "'2026-11-04'::date::timestamp AT TIME ZONE 'America/New_York'".to_owned(),
            ),
            _ => ("'2026-10-29T13:00:00Z'::timestamptz".to_owned(), "'2026-11-02T07:00:00Z'::timestamptz".to_owned()),
        };
        let from = if from == "-infinity" { "'-infinity'::timestamptz".to_owned() } else { from };
        let to = if to == "infinity" { "'infinity'::timestamptz".to_owned() } else { to };
        let exact = db
            .query_one(
                &format!(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_ms), count(*)
                     FROM messages WHERE role = 'ai' AND created_at >= {from} AND created_at < {to}"
                ),
                &[],
            )
            .await
            .unwrap();
        let latency = &stats["ai_response_ms"];
        assert_eq!(latency["replies"].as_i64(), Some(exact.get::<_, i64>(2)), "{query}: {stats}");
        for (field, want) in [("median", exact.get::<_, f64>(0)), ("p90", exact.get::<_, f64>(1))] {
            let got = latency[field].as_f64().unwrap();
            assert!((got - want).abs() <= want * 0.01 + 0.1, "{query}: {field} {got} vs exact {want}");
        }
    }

    // A reply the hub stores is counted as it is stored.
    let before = admin.get("/api/sessions/stats").await.1["ai_response_ms"]["replies"].as_i64().unwrap();
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("c1", "hello").await;
    let counted = eventually(Duration::from_secs(5), async || {
        admin.get("/api/sessions/stats").await.1["ai_response_ms"]["replies"].as_i64() == Some(before + 1)
    })
    .await;
    assert!(counted, "the demo agent's reply was not counted");
}

#[tokio::test]
async fn dashboards_get_the_stats_pushed_once_per_change_for_the_filters_they_asked() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut all = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    let mut web = Visitor::dashboard(app.port, &admin.cookie, &admin.origin()).await;
    all.send(json!({"type": "stats", "filters": {}})).await;
    web.send(json!({"type": "stats", "filters": {"channel": "messenger"}})).await;
    // A bad filter is refused with an error frame; the socket stays.
    web.send(json!({"type": "stats", "filters": {"channel": "fax"}})).await;
    let (error, _) = web.recv_until("error").await;
    assert_eq!(error["code"], "invalid_filter", "{error}");
    web.send(json!({"type": "stats", "filters": {"channel": "messenger"}})).await;

    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    visitor.say("c1", "hello").await;
    let pushed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (frame, _) = all.recv_until("stats").await;
            if frame["stats"]["total"] == 1 {
                return frame;
            }
        }
    })
    .await
    .expect("the new conversation's stats were pushed");
    assert_eq!(pushed["filters"], json!({}));
    let (_, fetched) = admin.get("/api/sessions/stats").await;
    assert_eq!(pushed["stats"]["by_channel"], fetched["by_channel"]);
    // The other dashboard's filter is its own: no web session counts there.
    let (frame, _) = tokio::time::timeout(Duration::from_secs(10), web.recv_until("stats")).await.expect("pushed too");
    assert_eq!(frame["filters"], json!({"channel": "messenger"}));
    assert_eq!(frame["stats"]["total"], 0);
}
