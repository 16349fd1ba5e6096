//! `AppState`: what every HTTP handler and socket shares. Built once by
//! `startup`, handed to actix-web as app data.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use uuid::Uuid;

use crate::actors::Hub;
use crate::attachments::AttachmentStore;
use crate::auth::throttle::LoginThrottle;
use crate::config::Config;
use crate::limits::{IpLimiter, NewConversations, PerHour};
use crate::postgres::Db;
use crate::sites::SiteCache;

/// What every handler can reach.
/// Uploads received at once, each up to `MAX_UPLOAD_BYTES` in memory (16 ×
/// 10 MiB by default); past it an upload is `503 busy` with `Retry-After`.
pub const MAX_UPLOADS_IN_FLIGHT: usize = 16;

pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    pub started_at: Instant,
    pub hub: Arc<Hub>,
    /// Open visitor sockets per client IP (`WS_MAX_CONNECTIONS_PER_IP`).
    pub visitor_ips: Arc<IpLimiter>,
    /// New web conversations per client IP (`VISITOR_NEW_CONVERSATIONS_PER_HOUR`).
    pub new_conversations: Arc<NewConversations>,
    /// Failed-login counters (per IP and per account).
    pub login_throttle: LoginThrottle,
    /// Sites read by every widget request and socket handshake.
    pub sites: SiteCache,
    /// Files sent in conversations (SPEC §12).
    pub attachments: Arc<AttachmentStore>,
    /// Uploads per client IP and per conversation (per hour).
    pub uploads_per_ip: Arc<PerHour<IpAddr>>,
    pub uploads_per_conversation: Arc<PerHour<Uuid>>,
    /// Uploads being received at once (each holds its file in memory).
    pub uploads_in_flight: Arc<tokio::sync::Semaphore>,
    /// Turns true when shutdown starts: every socket closes with 1001 so
    /// clients reconnect elsewhere instead of holding the drain open.
    pub shutting_down: watch::Receiver<bool>,
}

impl AppState {
    pub fn new(db: Db, config: &Arc<Config>, hub: Arc<Hub>, attachments: Arc<AttachmentStore>, shutting_down: watch::Receiver<bool>) -> Self {
        Self {
            db,
            config: config.clone(),
            metrics: crate::telemetry::metrics_handle(),
            started_at: Instant::now(),
            hub,
            visitor_ips: IpLimiter::new(config.limits.max_connections_per_ip),
            new_conversations: NewConversations::new(config.limits.new_conversations_per_hour),
            login_throttle: LoginThrottle::default(),
            sites: SiteCache::default(),
            attachments,
            uploads_per_ip: PerHour::new(config.attachments.per_ip_per_hour),
            uploads_per_conversation: PerHour::new(config.attachments.per_conversation_per_hour),
            uploads_in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_UPLOADS_IN_FLIGHT)),
            shutting_down,
        }
    }
}
