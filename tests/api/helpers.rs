//! The test harness: one throwaway PostgreSQL cluster per test binary, a fresh
//! database per test (a copy of a migrated template), and the server started
//! on port 0, either in-process (`TestApp`) or as the real binary
//! (`ChildServer`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chathub::config::Config;
use chathub::postgres::{self, LocalPostgres, LocalPostgresOptions};
use chathub::startup::Application;
use tokio_postgres::NoTls;

pub const ADMIN_PASSWORD: &str = "test-admin-password";
const TEMPLATE_DB: &str = "chathub_template";

/// The binary's shared cluster, with a migrated template database.
struct TestCluster {
    postgres: LocalPostgres,
}

fn cluster() -> &'static TestCluster {
    static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        chathub::telemetry::init_logging("text");
        let postgres = start_cluster("shared");
        let admin = postgres.connection_string("postgres");
        let template = postgres.connection_string(TEMPLATE_DB);
        // A runtime of its own: this may run inside a test's runtime.
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                postgres::ensure_database(&admin, TEMPLATE_DB).await.unwrap();
                postgres::migrate(&template).await.unwrap();
            })
        })
        .join()
        .expect("migrating the template database");
        TestCluster { postgres }
    })
}

/// Starts a throwaway cluster in a new temporary directory, removed by the
/// cluster's guardian when this process exits.
pub fn start_cluster(label: &str) -> LocalPostgres {
    let dir = world_readable_tempdir();
    let options = LocalPostgresOptions {
        ephemeral: true,
        remove_dir_on_exit: true,
        settings: vec![("max_connections".into(), "400".into())],
        bin_dir: None,
    };
    LocalPostgres::start(&dir.join(label), &options).expect("starting a test PostgreSQL cluster")
}

/// A temporary directory the `postgres` OS user can enter (tempdirs are 0700).
pub fn world_readable_tempdir() -> PathBuf {
    let dir = tempfile::Builder::new().prefix("chathub-test-").tempdir().unwrap().keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A new, migrated, empty database; returns its connection string.
pub async fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let client = connect(&cluster.postgres.connection_string("postgres")).await;
    client
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
        .await
        .expect("copying the template database");
    cluster.postgres.connection_string(&name)
}

/// An empty database with no migrations applied.
pub async fn empty_database() -> String {
    let cluster = cluster();
    let name = format!("e_{}", uuid::Uuid::new_v4().simple());
    let client = connect(&cluster.postgres.connection_string("postgres")).await;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    cluster.postgres.connection_string(&name)
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = postgres::parse_config(url).unwrap().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Test defaults: port 0, one worker, a known admin password, small limits.
pub fn test_config(database_url: Option<String>) -> Config {
    let mut config = Config::from_env().expect("default configuration");
    config.database_url = database_url;
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.workers = 1;
    config.db_pool_size = 4;
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.data_dir = world_readable_tempdir();
    config.limits.new_conversations_per_hour = 0;
    config
}

/// The server running in this process, on its own actix system thread.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub database_url: String,
    pub http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server on a fresh database after `adjust` has edited its config.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let database_url = fresh_database().await;
        let mut config = test_config(Some(database_url.clone()));
        adjust(&mut config);
        Self::spawn_config(config).await
    }

    pub async fn spawn_config(config: Config) -> Self {
        let database_url = config.database_url.clone().unwrap_or_default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(config).await {
                    Ok(app) => {
                        let _ = tx.send(Ok((app.port(), app.handle())));
                        app.run_until_stopped().await.unwrap();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            })
        });
        let (port, handle) = rx.await.unwrap().expect("the application starts");
        Self {
            address: format!("http://127.0.0.1:{port}"),
            port,
            database_url,
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command at once; the server thread winds down alone.
        let _ = self.handle.stop(false);
    }
}

/// The real `chathub` binary as a child process, its log captured.
pub struct ChildServer {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// How long a child server may take to print its listening line.
const CHILD_START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn chathub_command(envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chathub"));
    // Only what the test chooses: no stray DATABASE_URL or agent settings.
    command.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    // Tests start many conversations from 127.0.0.1; the per-IP allowance
    // has tests of its own.
    command.env("CHATHUB_BIND", "127.0.0.1:0").env("CHATHUB_WORKERS", "1").env("VISITOR_NEW_CONVERSATIONS_PER_HOUR", "0");
    // Its own data directory (uploads), never the checkout's `./data`.
    command.env("CHATHUB_DATA_DIR", world_readable_tempdir());
    command.envs(envs.iter().copied());
    command
}

impl ChildServer {
    pub fn start(envs: &[(&str, &str)]) -> Self {
        let mut child = chathub_command(envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the chathub binary");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let port = rest.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    let _ = port_tx.send(port);
                }
                eprintln!("[chathub] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let port = match port_rx.recv_timeout(CHILD_START_TIMEOUT) {
            Ok(Some(port)) => port,
            _ => {
                let _ = child.kill();
                panic!("chathub did not start; log:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        Self { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits for exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        wait_with_timeout(&mut self.child, Duration::from_secs(60)).map(|s| s.success()).unwrap_or(false)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Polls `check` until it holds or `timeout` passes.
/// Signs in as the first admin on a running server (`base` is its
/// `http://host:port`); returns the session cookie and the CSRF token.
pub async fn admin_login(base: &str) -> (String, String) {
    let login = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success(), "admin login: {}", login.status());
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    (cookie, csrf)
}

/// A metric's value from a running server's `/metrics` (0 when absent).
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Has `visitor` send 15 kB messages, 50 at a time, until the server has
/// cut off a slow consumer (a socket that stopped reading); returns how many
/// were sent. `who` names the stalled reader in the failure message.
pub async fn say_until_a_slow_consumer_is_cut_off(visitor: &mut crate::ws_client::Visitor, base: &str, who: &str) -> usize {
    let big = "y".repeat(15_000);
    let mut sent = 0;
    while metric(base, "chathub_ws_slow_consumer_closes_total").await == 0.0 {
        assert!(sent < 4000, "{who} should have been cut off by now");
        for _ in 0..50 {
            visitor.say(&format!("m{sent}"), &big).await;
            sent += 1;
        }
    }
    sent
}

pub async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn is_postmaster_running(cluster_dir: &Path) -> bool {
    std::fs::read_to_string(cluster_dir.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        .is_some_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}

/// A signed-in staff member's HTTP client: sends the session cookie, the
/// CSRF header and a same-origin `Origin`, as the dashboard does.
#[derive(Clone)]
pub struct StaffClient {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
    pub user: serde_json::Value,
}

impl StaffClient {
    pub fn origin(&self) -> String {
        self.base.clone()
    }

    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method.parse().unwrap(), format!("{}{}", self.base, path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header("origin", self.origin())
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call("GET", path, None).await
    }
}

impl TestApp {
    /// Signs in; panics if that fails.
    pub async fn login(&self, username: &str, password: &str) -> StaffClient {
        staff_login(&self.address, &self.http, username, password).await
    }
}

/// Signs in to the server at `base`; panics if that fails.
pub async fn staff_login(base: &str, http: &reqwest::Client, username: &str, password: &str) -> StaffClient {
    {
        let response = http
            .post(format!("{base}/api/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "login as {username}");
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("chathub_session="))
            .expect("a session cookie");
        let body: serde_json::Value = response.json().await.unwrap();
        StaffClient {
            base: base.to_owned(),
            http: http.clone(),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
            user: body["user"].clone(),
        }
    }
}

impl TestApp {
    pub async fn admin(&self) -> StaffClient {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates a user with `role` (password = "{username}-password") and signs in.
    pub async fn staff(&self, username: &str, role: &str) -> StaffClient {
        let admin = self.admin().await;
        let password = format!("{username}-password");
        let (status, body) = admin
            .call("POST", "/api/users", Some(serde_json::json!({"username": username, "password": password, "role": role})))
            .await;
        assert_eq!(status, 201, "{body}");
        self.login(username, &password).await
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with a `whsec_`
/// secret's decoded bytes: the Standard Webhooks (and Svix) signature,
/// computed here from the scheme rather than with the server's code.
pub fn standard_webhook_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Has the stats job rebuild its rollups (after rows were written straight
/// into the tables, as a hub never does) and waits until it has.
pub async fn rebuild_stats_rollups(db: &tokio_postgres::Client) {
    db.execute("UPDATE stats_rollup_state SET timezone = NULL", &[]).await.unwrap();
    let rebuilt = eventually(Duration::from_secs(10), async || {
        db.query_one("SELECT timezone IS NOT NULL FROM stats_rollup_state", &[]).await.unwrap().get::<_, bool>(0)
    })
    .await;
    assert!(rebuilt, "the stats rollups were not rebuilt");
}
