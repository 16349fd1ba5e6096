//! `AppState`: what every HTTP handler and socket shares. Built once by
//! `startup`, handed to actix-web as app data.

use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::actors::Hub;
use crate::auth::throttle::LoginThrottle;
use crate::config::Config;
use crate::postgres::Db;
use crate::limits::{IpLimiter, NewConversations};
use crate::sites::SiteCache;

/// What every handler can reach.
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
    /// Turns true when shutdown starts: every socket closes with 1001 so
    /// clients reconnect elsewhere instead of holding the drain open.
    pub shutting_down: watch::Receiver<bool>,
}

impl AppState {
    pub fn new(db: Db, config: &Arc<Config>, hub: Arc<Hub>, shutting_down: watch::Receiver<bool>) -> Self {
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
            shutting_down,
        }
    }
}
