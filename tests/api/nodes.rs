//! The several-nodes harness: a real `nats-server` started on a free port,
//! and chathub nodes as child processes of the real binary, all on one
//! fresh database of the shared test cluster.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// A `nats-server` child process.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
}

fn nats_binary() -> String {
    for candidate in ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if Command::new(candidate).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
            return candidate.to_owned();
        }
    }
    panic!("nats-server is required for the cluster tests (Debian: apt-get install nats-server; .ci/run installs it)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Nats {
    pub fn start() -> Self {
        let mut nats = Self { child: None, port: free_port() };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port; returns once it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster for one test: NATS, one database, and nodes started on demand.
pub struct TestCluster {
    pub nats: Nats,
    pub database_url: String,
    /// The attachment store every node shares (a directory standing in for S3).
    pub attachments_url: String,
}

impl TestCluster {
    pub async fn new() -> Self {
        let attachments_url = format!("file://{}", world_readable_tempdir().display());
        Self { nats: Nats::start(), database_url: fresh_database().await, attachments_url }
    }

    /// Starts node `id` with short lease timings and `extra` settings.
    pub fn node(&self, id: &str, extra: &[(&str, &str)]) -> ChildServer {
        let nats = self.nats.url();
        let mut envs: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", &self.database_url),
            ("NATS_URL", &nats),
            ("NODE_ID", id),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("LEASE_RENEW_SECS", "1"),
            ("LEASE_TTL_SECS", "3"),
            ("ATTACHMENTS_URL", &self.attachments_url),
        ];
        envs.extend_from_slice(extra);
        let node = ChildServer::start(&envs);
        node
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }
}

/// Which node holds a conversation's lease (`None`: nobody runs it).
pub async fn lease_holder(db: &tokio_postgres::Client, session: &str) -> Option<String> {
    let id: uuid::Uuid = session.parse().unwrap();
    db.query_opt("SELECT node_id FROM conversation_leases WHERE session_id = $1", &[&id]).await.unwrap().map(|r| r.get(0))
}

/// Signs in as the admin on `node`.
pub async fn admin_on(node: &ChildServer) -> StaffClient {
    staff_login(&node.url(""), &reqwest::Client::new(), "admin", ADMIN_PASSWORD).await
}
