//! Every setting of the hub, with its environment variable and default, in one
//! place. `clap` reads them from flags or the environment, so `chathub --help`
//! prints this table too. The README's configuration table mirrors it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// The hub's configuration. Field docs are the `--help` text.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL connection string. When unset, the hub runs its own private
    /// cluster under CHATHUB_DATA_DIR.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// NATS server(s) of a cluster (comma-separated `nats://host:port`).
    /// Unset: a single node. Set: this process is one node of a cluster
    /// sharing DATABASE_URL (required then) and exchanging live events over
    /// NATS (see docs/cluster.md).
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// This node's name in a cluster (default: a random one per start).
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Seconds between renewals of this node's conversation leases.
    #[arg(long, env = "LEASE_RENEW_SECS", default_value_t = 2)]
    pub lease_renew_secs: u64,

    /// Seconds a conversation lease lasts unless renewed. Another node takes
    /// a conversation over after this (at once when its owner is gone from NATS).
    #[arg(long, env = "LEASE_TTL_SECS", default_value_t = 10)]
    pub lease_ttl_secs: u64,

    /// Where the private PostgreSQL cluster lives (when DATABASE_URL is unset).
    #[arg(long, env = "CHATHUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Directory holding `initdb` and `postgres` for the private cluster
    /// (default: PATH, then the newest /usr/lib/postgresql/*/bin).
    #[arg(long, env = "CHATHUB_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// Address the HTTP/WebSocket server listens on. Port 0 picks a free port.
    #[arg(long, env = "CHATHUB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "CHATHUB_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "CHATHUB_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,

    /// Accepted for compatibility with the seeds' deployments, where it signed
    /// Flask cookies. chathub needs no signing secret: staff cookies and
    /// visitor tokens are random values stored only as SHA-256 hashes.
    #[arg(long, env = "SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,

    /// Password of the first admin (`admin`), used only when no user exists.
    /// When unset, a random password is printed once to the log.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// A machine key accepted as `Authorization: Bearer …` besides stored keys.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Which AI agent answers: demo, webhook or openai.
    #[arg(long, env = "AGENT", default_value = "demo")]
    pub agent: String,

    /// The webhook agent's URL (AGENT=webhook).
    #[arg(long, env = "AGENT_URL")]
    pub agent_url: Option<String>,

    /// Base URL of an OpenAI-compatible API (AGENT=openai).
    #[arg(long, env = "OPENAI_BASE_URL", default_value = "https://api.openai.com/v1")]
    pub openai_base_url: String,

    /// API key for the OpenAI-compatible API.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,

    /// Model name for the OpenAI-compatible API.
    #[arg(long, env = "OPENAI_MODEL", default_value = "gpt-4o-mini")]
    pub openai_model: String,

    /// The booking link the demo agent offers; `{BOOKING_URL}` in completion
    /// rules expands to it.
    #[arg(long, env = "BOOKING_URL", default_value = "https://cal.example.com/book")]
    pub booking_url: String,

    /// n8n webhook that receives completed leads.
    #[arg(long, env = "N8N_WEBHOOK_URL")]
    pub n8n_webhook_url: Option<String>,

    /// Standard Webhooks signing secret for the n8n webhook.
    #[arg(long, env = "N8N_WEBHOOK_SECRET", hide_env_values = true)]
    pub n8n_webhook_secret: Option<String>,

    /// Where `ai.alert` events go (AI-health thresholds crossed), signed
    /// the Standard Webhooks way with ALERT_WEBHOOK_SECRET if set. They also
    /// go to QA_ALERT_EMAILS when Resend is configured.
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,

    #[arg(long, env = "ALERT_WEBHOOK_SECRET", hide_env_values = true)]
    pub alert_webhook_secret: Option<String>,

    /// Seconds between checks of the AI-health alert thresholds (and pushes
    /// of the health card to dashboards).
    #[arg(long, env = "AI_HEALTH_CHECK_SECS", default_value_t = 15)]
    pub ai_health_check_secs: u64,

    /// Resend API key for QA alert emails and emails to leads.
    #[arg(long, env = "RESEND_API_KEY", hide_env_values = true)]
    pub resend_api_key: Option<String>,

    /// Resend API base URL.
    #[arg(long, env = "RESEND_API_URL", default_value = "https://api.resend.com")]
    pub resend_api_url: String,

    /// Signing secret (`whsec_…`) of the Resend webhook that reports opens,
    /// clicks and bounces to `POST /webhooks/resend`.
    #[arg(long, env = "RESEND_WEBHOOK_SECRET", hide_env_values = true)]
    pub resend_webhook_secret: Option<String>,

    /// Comma-separated recipients of QA alert emails.
    #[arg(long, env = "QA_ALERT_EMAILS")]
    pub qa_alert_emails: Option<String>,

    /// Sender of QA alert emails, and of emails to leads unless their site
    /// sets its own.
    #[arg(long, env = "EMAIL_FROM", default_value = "chathub <alerts@example.com>")]
    pub email_from: String,

    /// Messenger webhook verify token.
    #[arg(long, env = "MESSENGER_VERIFY_TOKEN", hide_env_values = true)]
    pub messenger_verify_token: Option<String>,

    /// Messenger app secret (X-Hub-Signature-256).
    #[arg(long, env = "MESSENGER_APP_SECRET", hide_env_values = true)]
    pub messenger_app_secret: Option<String>,

    /// Messenger page access token for the Send API.
    #[arg(long, env = "MESSENGER_PAGE_TOKEN", hide_env_values = true)]
    pub messenger_page_token: Option<String>,

    /// WhatsApp webhook verify token.
    #[arg(long, env = "WHATSAPP_VERIFY_TOKEN", hide_env_values = true)]
    pub whatsapp_verify_token: Option<String>,

    /// WhatsApp app secret (X-Hub-Signature-256).
    #[arg(long, env = "WHATSAPP_APP_SECRET", hide_env_values = true)]
    pub whatsapp_app_secret: Option<String>,

    /// WhatsApp Cloud API token.
    #[arg(long, env = "WHATSAPP_TOKEN", hide_env_values = true)]
    pub whatsapp_token: Option<String>,

    /// WhatsApp phone number id used in the messages endpoint.
    #[arg(long, env = "WHATSAPP_PHONE_NUMBER_ID")]
    pub whatsapp_phone_number_id: Option<String>,

    /// Meta Graph API base URL.
    #[arg(long, env = "GRAPH_API_URL", default_value = "https://graph.facebook.com/v21.0")]
    pub graph_api_url: String,

    /// IANA time zone for day boundaries in stats.
    #[arg(long, env = "TIMEZONE", default_value = "UTC")]
    pub timezone: chrono_tz::Tz,

    /// A conversation with no message for this many hours is `incomplete`.
    #[arg(long, env = "INACTIVE_AFTER_HOURS", default_value_t = 12)]
    pub inactive_after_hours: u32,

    /// A search whose words PostgreSQL expects in at most this many
    /// messages reads its matches through the full-text index; above it, the
    /// session list is walked newest first (`store::session_search`). Both
    /// find the same sessions; 0 walks every search.
    #[arg(long, env = "SEARCH_INDEX_MAX_MATCHES", default_value_t = 20_000)]
    pub search_index_max_matches: i64,

    /// Minutes a staff login may sit unused before it ends.
    #[arg(long, env = "STAFF_SESSION_IDLE_MINUTES", default_value_t = 12 * 60)]
    pub staff_session_idle_minutes: i64,

    /// Hours after which a staff login ends however active it is.
    #[arg(long, env = "STAFF_SESSION_MAX_HOURS", default_value_t = 7 * 24)]
    pub staff_session_max_hours: i64,

    /// The address staff reach the dashboard at, for links in emails.
    #[arg(long, env = "CHATHUB_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,

    /// Delivery attempts before an outbox row is dead-lettered.
    #[arg(long, env = "NOTIFIER_MAX_ATTEMPTS", default_value_t = 10)]
    pub notifier_max_attempts: i32,

    /// First retry delay in milliseconds (doubles each attempt, ±20 % jitter).
    #[arg(long, env = "NOTIFIER_RETRY_BASE_MS", default_value_t = 2000)]
    pub notifier_retry_base_ms: u64,

    /// Seconds one delivery request may take.
    #[arg(long, env = "NOTIFIER_TIMEOUT_SECS", default_value_t = 15)]
    pub notifier_timeout_secs: u64,

    /// Milliseconds between looks at the outbox (new rows also wake it at once).
    #[arg(long, env = "NOTIFIER_POLL_MS", default_value_t = 1000)]
    pub notifier_poll_ms: u64,

    /// Deliveries in flight at once.
    #[arg(long, env = "NOTIFIER_CONCURRENCY", default_value_t = 8)]
    pub notifier_concurrency: usize,

    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub attachments: AttachmentSettings,

    #[command(flatten)]
    pub calls: CallSettings,

    /// Reverse proxies (comma-separated IPs or CIDRs) whose X-Forwarded-For /
    /// Forwarded headers name the client for the per-IP limits. Empty: the
    /// TCP peer is the client and those headers are ignored.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = crate::client_ip::TrustedProxies::parse)]
    pub trusted_proxies: crate::client_ip::TrustedProxies,
}

/// Video calls (SPEC §14): ringing and reconnect times, and the ICE servers
/// browsers are given (chathub relays signaling only, never media).
#[derive(Debug, Clone, Args)]
pub struct CallSettings {
    /// STUN (or TURN without credentials) URLs, comma-separated, e.g.
    /// `stun:stun.example.com:3478`. Empty: host candidates only (a LAN).
    #[arg(long, env = "ICE_SERVERS", default_value = "")]
    pub ice_servers: String,

    /// TURN URLs (comma-separated, e.g. `turn:turn.example.com:3478?transport=udp`)
    /// given with short-lived credentials minted from TURN_SECRET.
    #[arg(long, env = "TURN_URLS", default_value = "")]
    pub turn_urls: String,

    /// coturn's `static-auth-secret` (its `use-auth-secret` REST scheme).
    #[arg(long, env = "TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Seconds a minted TURN credential is valid.
    #[arg(long, env = "TURN_TTL_SECS", default_value_t = 3600)]
    pub turn_ttl_secs: u64,

    /// Seconds a call rings before it is `missed`.
    #[arg(long, env = "CALL_RING_TIMEOUT_SECS", default_value_t = 30)]
    pub ring_timeout_secs: u64,

    /// Seconds a call survives a dropped socket (either side) before it ends.
    #[arg(long, env = "CALL_GRACE_SECS", default_value_t = 10)]
    pub grace_secs: u64,
}

/// Where files sent in conversations are kept, and what may be sent (SPEC §12).
#[derive(Debug, Clone, Args)]
pub struct AttachmentSettings {
    /// Object store for attachments: `s3://bucket/prefix` (any S3-compatible
    /// store; credentials, region and endpoint from the usual `AWS_*`
    /// variables, e.g. `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`) or `file:///dir`.
    /// Unset: the `attachments` directory under CHATHUB_DATA_DIR.
    #[arg(long, env = "ATTACHMENTS_URL")]
    pub url: Option<String>,

    /// Largest upload in bytes (413 above it, nothing stored).
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Content types accepted, sniffed from the bytes (comma-separated;
    /// known: image/png, image/jpeg, image/gif, image/webp, application/pdf,
    /// text/plain). Anything else is 415.
    #[arg(long, env = "ATTACHMENT_TYPES", default_value = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain")]
    pub types: String,

    /// Uploads one conversation may make per hour (a burst of this many,
    /// then one every hour/N; 429 past it). 0 = no limit.
    #[arg(long, env = "UPLOADS_PER_CONVERSATION_PER_HOUR", default_value_t = 30)]
    pub per_conversation_per_hour: u32,

    /// Uploads one client IP may make per hour (visitors and staff). 0 = no limit.
    #[arg(long, env = "UPLOADS_PER_IP_PER_HOUR", default_value_t = 120)]
    pub per_ip_per_hour: u32,

    /// Seconds an upload never sent in a message is kept before it is
    /// deleted (a day).
    #[arg(long, env = "ATTACHMENT_UNSENT_TTL_SECS", default_value_t = 24 * 3600)]
    pub unsent_ttl_secs: u64,
}

/// Limits and intervals of the real-time core. Each one bounds something a
/// remote peer could otherwise grow; the docs list the close code or error
/// frame a peer sees when it hits one.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Seconds a new visitor socket has to send `hello` (close 4001 after).
    #[arg(long, env = "WS_HELLO_TIMEOUT_SECS", default_value_t = 10)]
    pub hello_timeout_secs: u64,

    /// Seconds between server pings.
    #[arg(long, env = "WS_PING_INTERVAL_SECS", default_value_t = 20)]
    pub ping_interval_secs: u64,

    /// Seconds without any frame from the client before it is closed (4002).
    #[arg(long, env = "WS_IDLE_TIMEOUT_SECS", default_value_t = 45)]
    pub client_timeout_secs: u64,

    /// Largest accepted WebSocket frame in bytes (close 1009 above it).
    #[arg(long, env = "WS_MAX_FRAME_BYTES", default_value_t = 16 * 1024)]
    pub max_frame_bytes: usize,

    /// Longest chat message in characters (error frame `text_too_long`).
    #[arg(long, env = "MAX_MESSAGE_CHARS", default_value_t = 4000)]
    pub max_message_chars: usize,

    /// Frames a socket may queue for sending before it counts as a slow
    /// consumer and is closed (4008).
    #[arg(long, env = "WS_SEND_QUEUE", default_value_t = 256)]
    pub send_queue: usize,

    /// Messages per second a visitor socket may send (sustained).
    #[arg(long, env = "WS_RATE_PER_SEC", default_value_t = 10)]
    pub rate_per_sec: u32,

    /// Burst allowance above the sustained rate.
    #[arg(long, env = "WS_RATE_BURST", default_value_t = 20)]
    pub rate_burst: u32,

    /// Open visitor sockets allowed from one IP address (HTTP 429 above it).
    #[arg(long, env = "WS_MAX_CONNECTIONS_PER_IP", default_value_t = 50)]
    pub max_connections_per_ip: usize,

    /// New web conversations one IP address may start per hour (a burst of
    /// this many, then one every hour/N); past it the first message gets the
    /// error frame `rate_limited`. 0 = no limit (load tests).
    #[arg(long, env = "VISITOR_NEW_CONVERSATIONS_PER_HOUR", default_value_t = 30)]
    pub new_conversations_per_hour: u32,

    /// Seconds a conversation actor stays in memory with nobody connected.
    #[arg(long, env = "SESSION_IDLE_EVICT_SECS", default_value_t = 300)]
    pub session_idle_evict_secs: u64,

    /// Messages the persistence actor may hold waiting for a commit; beyond
    /// it, senders get a `retry` error frame.
    #[arg(long, env = "PERSIST_QUEUE", default_value_t = 10_000)]
    pub persist_queue: usize,

    /// Rows per group-commit transaction.
    #[arg(long, env = "PERSIST_BATCH", default_value_t = 1_000)]
    pub persist_batch: usize,

    /// Group-commit transactions running at once; 0 = one per core the
    /// process may run on, at most 2. Fewer means bigger batches and less
    /// CPU per message; two overlap one transaction's disk flush with the
    /// next one's work. On one core, one is better: chat at 1k msg/s, in
    /// each of four interleaved rounds, lower ack p99 and 6–16 % less CPU
    /// per message with one (docs/benchmarks.md).
    #[arg(long, env = "PERSIST_IN_FLIGHT", default_value_t = 0)]
    pub persist_in_flight: usize,

    /// Microseconds a group-commit transaction waits, while none runs and
    /// the last one carried several writes, so that writes arriving
    /// meanwhile share its commit; 0 = never waits. On one core, 2 ms cut
    /// CPU per message by a fifth to a third at 1k msg/s, their ack p99 no
    /// worse (docs/benchmarks.md).
    #[arg(long, env = "PERSIST_GATHER_US", default_value_t = 2_000)]
    pub persist_gather_us: u64,

    /// Seconds an agent call may take before the visitor gets the fallback.
    #[arg(long, env = "AGENT_TIMEOUT_SECS", default_value_t = 30)]
    pub agent_timeout_secs: u64,

    /// Largest HTTP JSON body in bytes (413 above it).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

impl Config {
    /// Reads the configuration from the environment alone (no flags).
    pub fn from_env() -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct EnvOnly {
            #[command(flatten)]
            config: Config,
        }
        <EnvOnly as clap::Parser>::try_parse_from(["chathub"]).map(|e| e.config)
    }

    /// A node of a cluster needs the shared database: the private embedded
    /// cluster belongs to one process.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.nats_url.is_some() && self.database_url.is_none() {
            anyhow::bail!("NATS_URL needs DATABASE_URL: the nodes of a cluster share one PostgreSQL (the private one is single-node only)");
        }
        if let Some(id) = &self.node_id {
            let valid = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                anyhow::bail!("NODE_ID must be 1 to 64 letters, digits, '-' or '_' (it names NATS subjects)");
            }
        }
        if self.lease_ttl_secs <= self.lease_renew_secs {
            anyhow::bail!("LEASE_TTL_SECS ({}) must be longer than LEASE_RENEW_SECS ({})", self.lease_ttl_secs, self.lease_renew_secs);
        }
        Ok(())
    }

    /// The QA alert recipients (`QA_ALERT_EMAILS`, comma-separated).
    pub fn qa_alert_recipients(&self) -> Vec<&str> {
        self.qa_alert_emails.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
    }

    /// QA and AI alerts can go out by email: Resend and a recipient are set.
    pub fn alert_emails_configured(&self) -> bool {
        self.resend_api_key.is_some() && !self.qa_alert_recipients().is_empty()
    }

    pub fn notifier_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.notifier_timeout_secs.max(1))
    }

    pub fn notifier_retry_base(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.notifier_retry_base_ms.max(1))
    }

    pub fn notifier_poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.notifier_poll_ms.max(10))
    }
}
