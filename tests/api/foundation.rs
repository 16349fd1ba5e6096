//! Foundation: the server starts its own cluster or uses DATABASE_URL, survives
//! restarts and `kill -9`, reports health, and answers bad requests in the
//! JSON error shape. The CLI creates users and API keys.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn data_dir_env(dir: &std::path::Path) -> String {
    dir.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn first_start_creates_the_cluster_and_the_admin_and_a_restart_reuses_them() {
    let data = world_readable_tempdir().join("data");
    let data_env = data_dir_env(&data);
    let server = ChildServer::start(&[("CHATHUB_DATA_DIR", &data_env)]);

    let (status, body) = get_json(&server.url("/health")).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok", "database": "ok", "nats": "disabled", "node_id": null}));
    assert!(data.join("postgres/PG_VERSION").is_file(), "the cluster lives under the data dir");
    assert!(
        data.join("postgres/.s.PGSQL.5432").exists(),
        "the cluster listens on a Unix socket inside the data dir"
    );
    let first_log = server.log_text();
    assert!(
        first_log.contains("created the first admin with a random password"),
        "the random admin password is announced once: {first_log}"
    );
    assert!(server.terminate(), "SIGTERM shuts down cleanly with exit code 0");
    assert!(!is_postmaster_running(&data.join("postgres")), "the cluster is stopped on shutdown");

    // Second run: same cluster, no new admin.
    let server = ChildServer::start(&[("CHATHUB_DATA_DIR", &data_env)]);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    assert!(!server.log_text().contains("created the first admin"));
    assert!(server.terminate());

    // The admin from the first run is still there: the CLI refuses a duplicate.
    let output = run_cli(&data_env, &["user", "create", "--username", "admin", "--role", "admin"], "another-password\n");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
}

#[tokio::test]
async fn admin_password_from_the_environment_is_used_and_never_logged() {
    let data = world_readable_tempdir().join("data");
    let server = ChildServer::start(&[
        ("CHATHUB_DATA_DIR", &data_dir_env(&data)),
        ("ADMIN_PASSWORD", "a-chosen-secret-password"),
    ]);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    let log = server.log_text();
    assert!(log.contains("created the first admin from ADMIN_PASSWORD"));
    assert!(!log.contains("a-chosen-secret-password"), "the password must not reach the log");
    assert!(server.terminate());
}

#[tokio::test]
async fn a_kill_9_leaves_nothing_that_stops_the_next_start() {
    let data = world_readable_tempdir().join("data");
    let data_env = data_dir_env(&data);
    let server = ChildServer::start(&[("CHATHUB_DATA_DIR", &data_env)]);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    server.kill_hard();

    // Restart straight away, while the orphaned postmaster may still be
    // shutting down and its postmaster.pid is still on disk.
    let server = ChildServer::start(&[("CHATHUB_DATA_DIR", &data_env)]);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    assert!(server.terminate());
}

#[tokio::test]
async fn a_stale_postmaster_pid_with_a_reused_pid_is_cleared() {
    let data = world_readable_tempdir().join("data");
    let data_env = data_dir_env(&data);
    let server = ChildServer::start(&[("CHATHUB_DATA_DIR", &data_env)]);
    assert!(server.terminate());

    // A crash left a lock file naming a PID that now belongs to something else.
    let impostor = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let lock = data.join("postgres/postmaster.pid");
    std::fs::write(&lock, format!("{}\n{}\n0\n5432\n\n\n0 0\nready\n", impostor.id(), data.display())).unwrap();

    let server = ChildServer::start(&[("CHATHUB_DATA_DIR", &data_env)]);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    assert!(server.terminate());
    let mut impostor = impostor;
    let _ = impostor.kill();
}

#[tokio::test]
async fn with_database_url_the_server_uses_it_and_starts_no_cluster() {
    let url = empty_database().await;
    let data = world_readable_tempdir().join("data");
    let server = ChildServer::start(&[("DATABASE_URL", &url), ("CHATHUB_DATA_DIR", &data_dir_env(&data))]);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    assert!(!data.join("postgres").exists(), "no private cluster is made when DATABASE_URL is set");
    // The migrations ran in that database and the admin is there.
    let db = connect(&url).await;
    let admins: i64 = db.query_one("SELECT count(*) FROM users WHERE role = 'admin'", &[]).await.unwrap().get(0);
    assert_eq!(admins, 1);
    assert!(server.terminate());
}

#[tokio::test]
async fn missing_postgresql_binaries_give_one_clear_line() {
    let empty = world_readable_tempdir();
    let output = chathub_command(&[
        ("CHATHUB_DATA_DIR", &data_dir_env(&empty.join("data"))),
        ("CHATHUB_PG_BIN_DIR", &data_dir_env(&empty)),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[tokio::test]
async fn health_is_503_while_the_database_is_down_and_recovers_after() {
    let cluster = start_cluster("health");
    let admin = cluster.connection_string("postgres");
    chathub::postgres::ensure_database(&admin, "chathub").await.unwrap();
    let app = TestApp::spawn_config(test_config(Some(cluster.connection_string("chathub")))).await;
    assert_eq!(get_json(&app.url("/health")).await.0, 200);

    let dir = cluster.dir().to_path_buf();
    tokio::task::spawn_blocking(move || cluster.stop()).await.unwrap();
    let (status, body) = get_json(&app.url("/health")).await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "unreachable");

    // The same cluster comes back; the server recovers without a restart.
    let cluster = tokio::task::spawn_blocking(move || {
        chathub::postgres::LocalPostgres::start(
            &dir,
            &chathub::postgres::LocalPostgresOptions { ephemeral: true, ..Default::default() },
        )
        .unwrap()
    })
    .await
    .unwrap();
    let url = app.url("/health");
    assert!(eventually(Duration::from_secs(20), async || get_json(&url).await.0 == 200).await);
    tokio::task::spawn_blocking(move || cluster.stop()).await.unwrap();
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_json_error_shape() {
    let app = TestApp::spawn().await;
    for (method, path, status, code) in [
        ("GET", "/no/such/route", 404, "not_found"),
        ("POST", "/health", 405, "method_not_allowed"),
        ("DELETE", "/metrics", 405, "method_not_allowed"),
    ] {
        let response = app
            .http
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        assert!(body["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = TestApp::spawn().await;
    reqwest::get(app.url("/health")).await.unwrap();
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE chathub_http_responses_total counter"), "{text}");
}

#[tokio::test]
async fn migrations_are_safe_when_two_nodes_start_at_once() {
    let url = empty_database().await;
    let (a, b) = tokio::join!(chathub::postgres::migrate(&url), chathub::postgres::migrate(&url));
    a.unwrap();
    b.unwrap();
    let db = connect(&url).await;
    let applied: i64 = db
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql")).unwrap().count() as i64;
    assert_eq!(applied, files, "each migration applied exactly once");
    let sites: i64 = db.query_one("SELECT count(*) FROM sites", &[]).await.unwrap().get(0);
    assert_eq!(sites, 1, "seed rows inserted once");
}

/// Runs the CLI with `envs`, feeding `stdin`.
fn run_cli_with(envs: &[(&str, &str)], args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = chathub_command(envs)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command refused at argument parsing exits before reading: ignore the broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn run_cli(data_dir: &str, args: &[&str], stdin: &str) -> std::process::Output {
    run_cli_with(&[("CHATHUB_DATA_DIR", data_dir)], args, stdin)
}

fn run_cli_with_url(url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    run_cli_with(&[("DATABASE_URL", url)], args, stdin)
}

#[tokio::test]
async fn the_cli_creates_users_with_hashed_passwords() {
    let url = fresh_database().await;
    let output = run_cli_with_url(&url, &["user", "create", "--username", "qa1", "--role", "qa"], "qa-password-1\n");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let db = connect(&url).await;
    let row = db.query_one("SELECT role, password_hash FROM users WHERE username = 'qa1'", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "qa");
    let phc: String = row.get(1);
    assert!(phc.starts_with("$argon2id$") && !phc.contains("qa-password-1"));

    // Bad input changes nothing.
    let short = run_cli_with_url(&url, &["user", "create", "--username", "qa2", "--role", "qa"], "short\n");
    assert!(!short.status.success());
    let bad_role = run_cli_with_url(&url, &["user", "create", "--username", "qa3", "--role", "root"], "long-enough-1\n");
    assert!(!bad_role.status.success());
    let count: i64 = db.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_cli_prints_an_api_key_once_and_stores_only_its_hash() {
    let url = fresh_database().await;
    let output = run_cli_with_url(&url, &["api-key", "create", "--name", "n8n"], "");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("chk_") && key.len() > 40, "{key}");

    let db = connect(&url).await;
    let row = db.query_one("SELECT name, prefix, key_hash FROM api_keys", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "n8n");
    assert!(key.starts_with(&row.get::<_, String>(1)));
    let hash: Vec<u8> = row.get(2);
    assert_eq!(hash, chathub::auth::sha256(&key));
    let dump: String = db
        .query_one("SELECT string_agg(t::text, ' ') FROM api_keys t", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(&key), "the key itself is not stored");
}

#[tokio::test]
async fn the_migrate_command_prepares_an_empty_database() {
    let url = empty_database().await;
    let output = run_cli_with_url(&url, &["migrate"], "");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let db = connect(&url).await;
    let tables: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'
             AND table_name IN ('sessions','messages','users','outbox','qa_history','api_keys',
                                'staff_sessions','errors','sites','completion_rules')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 10);
}
