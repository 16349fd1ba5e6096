//! `Application::build` turns a `Config` into a running hub: database (its own
//! cluster or `DATABASE_URL`), migrations, the first admin, the actors, and
//! the HTTP server bound to a port. `main` and the tests use this same path.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{IntoServiceFactory, map_config};
use actix_web::dev::{AppConfig, Server, ServerHandle, Service as _};
use actix_web::{App, web};
use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;


use crate::actors::Hub;
use crate::actors::HubActors;
use crate::actors::cluster::{Cluster, SettingsChange, serve};
use crate::bus::Bus;
use crate::completion::{RuleSet, Rules};
use crate::attachments::AttachmentStore;
use crate::config::Config;
use crate::ws::{self, OpenSockets};
use crate::http;
use crate::postgres::{self, LocalPostgres, LocalPostgresOptions};
use crate::state::AppState;

/// Name of the database the hub creates in its private cluster.
pub const LOCAL_DATABASE: &str = "chathub";
/// Seconds workers get to finish in-flight requests at shutdown.
const SHUTDOWN_GRACE_SECS: u64 = 10;
/// How long shutdown waits for the persistence actor to write what it holds.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A hub whose server is bound and running (once awaited).
pub struct Application {
    port: u16,
    server: Server,
    /// The private cluster we run, stopped after the server has drained.
    local_postgres: Option<LocalPostgres>,
    /// The hub-wide actors: the persistence actor is flushed at shutdown
    /// before the database goes away, then their thread stops.
    actors: HubActors,
    shutdown: watch::Sender<bool>,
    /// The WebSockets being served; shutdown waits for their closes.
    sockets: Arc<OpenSockets>,
    /// Several nodes: this node's part in the cluster (its leases are given
    /// back at shutdown, so other nodes take over at once).
    cluster: Option<ClusterNode>,
    /// SIGINT/SIGTERM, registered before the port is announced so a signal
    /// sent right after start is never lost to the default (kill) action.
    signals: ShutdownSignals,
}

/// The process signals that start a graceful shutdown.
struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    fn register() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("registering SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("registering SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

impl Application {
    /// Opens the database, starts the actors and binds the HTTP server (in
    /// the order shutdown undoes): one function, so the wiring reads top
    /// to bottom.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.check()?;
        let (url, local_postgres) = open_database(&config).await?;
        postgres::migrate(&url).await?;
        // Several nodes: this one's name, which its connections carry too.
        let node_id = config.nats_url.as_ref().map(|_| {
            config.node_id.clone().unwrap_or_else(|| format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]))
        });
        let db = postgres::pool_of(&url, config.db_pool_size, node_id.as_deref())?;
        // Before serving: stats read from the rollups once they exist.
        crate::store::stats_rollups::build(&db, config.timezone).await?;
        crate::auth::users::ensure_first_admin(&db, config.admin_password.as_deref()).await?;

        if config.nats_url.is_none() {
            // One node: a replay still marked running died with the last process.
            crate::store::replays::fail_running(&db).await?;
        }
        let config = Arc::new(config);
        let agent = crate::agents::from_config(&config)?;
        let rules = Rules::new(RuleSet::load(&db, &config.booking_url).await?);
        let cluster = join_cluster(&config, node_id, &db).await?;
        let attachments = Arc::new(AttachmentStore::open(&config)?);
        tracing::info!(store = attachments.kind, "attachments store opened");
        if config.nats_url.is_some() && config.attachments.url.is_none() {
            tracing::warn!("ATTACHMENTS_URL is not set: this node keeps uploads in its own data directory, where other nodes cannot read them; set a shared s3:// store");
        }
        let actors = HubActors::start(&db, &config, attachments.clone(), cluster.clone())?;
        let (shutdown, shutting_down) = watch::channel(false);
        let unsent_ttl = Duration::from_secs(config.attachments.unsent_ttl_secs.max(1));
        actix_web::rt::spawn(attachments.clone().sweep_unsent(db.clone(), unsent_ttl, shutting_down.clone()));
        let stop_keep_alive = shutting_down.clone();
        let open_sockets = Arc::new(OpenSockets::default());
        let sockets = open_sockets.clone();
        let (persistence, supervisor, notifier) = (actors.persistence.clone(), actors.supervisor.clone(), actors.notifier.clone());
        let hub = Arc::new(Hub::new(db.clone(), config.clone(), persistence, supervisor, notifier, agent, rules, cluster.clone())?);
        let check_every = Duration::from_secs(config.ai_health_check_secs.max(1));
        actix_web::rt::spawn(crate::actors::ai_watch::watch(hub.clone(), check_every, shutting_down.clone()));
        actix_web::rt::spawn(crate::actors::stats_watch::watch(hub.clone(), shutting_down.clone()));
        actix_web::rt::spawn(crate::actors::index_upkeep::watch(db.clone(), shutting_down.clone()));
        // Sessions from before `session_words` existed get theirs while the
        // hub serves (searches read their messages meanwhile).
        let words_db = db.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = crate::store::session_words::backfill(&words_db).await {
                tracing::warn!(error = %e, "building the sessions' words stopped; searches read those sessions' messages");
            }
        });
        let state = web::Data::new(AppState::new(db, &config, hub.clone(), attachments, shutting_down));
        let cluster = cluster.map(|cluster| ClusterNode::serve(cluster, hub, state.clone()));

        let listener = bind(config.bind).with_context(|| format!("binding {} (CHATHUB_BIND)", config.bind))?;
        let address = listener.local_addr()?;
        let max_body = config.limits.max_body_bytes;
        let workers = config.workers;
        let make_app = move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default().limit(max_body).error_handler(|e, _| crate::error::json_error(e)),
                )
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::QueryConfig::default().error_handler(|e, _| crate::error::query_error(e)))
                .app_data(web::PathConfig::default().error_handler(|e, _| crate::error::path_error(e)))
                .wrap_fn(|req, srv| {
                    let method = req.method().clone();
                    let path = req.path().to_owned();
                    let fut = srv.call(req);
                    async move {
                        let response = fut.await?;
                        let status = response.status().as_u16();
                        metrics::counter!("chathub_http_responses_total", "status" => status.to_string())
                            .increment(1);
                        tracing::debug!(%method, %path, status, "request");
                        Ok(response)
                    }
                })
                .configure(http::configure)
                .default_service(web::to(http::not_found))
        };
        // actix-web's `HttpServer` has no hook for upgrades, so the HTTP
        // service is assembled here the way it assembles it, plus the
        // upgrade service that hands sockets off (see `ws::handoff`).
        let mut server = Server::build()
            .shutdown_timeout(SHUTDOWN_GRACE_SECS)
            .disable_signals()
            .listen("chathub-http", listener, move || {
                let (stop_keep_alive, open_sockets) = (stop_keep_alive.clone(), open_sockets.clone());
                HttpService::build()
                    .local_addr(address)
                    // actix-web's `HttpServer` default: a second for a
                    // client to read the last response before the close.
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .graceful_shutdown_signal(move || {
                        let mut down = stop_keep_alive.clone();
                        async move {
                            let _ = down.wait_for(|&down| down).await;
                        }
                    })
                    .upgrade(ws::handoff::upgrade_service(make_app().into_factory(), open_sockets.clone()))
                    .finish(map_config(make_app().into_factory(), |_| AppConfig::default()))
                    .tcp()
            })?;
        if workers > 0 {
            server = server.workers(workers);
        }
        let signals = ShutdownSignals::register()?;
        let server = server.run();
        tracing::info!("chathub is listening on http://{address}");
        Ok(Self { port: address.port(), server, local_postgres, signals, actors, cluster, shutdown, sockets })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests; signals are handled by actix).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or `handle().stop`), then shuts down in
    /// order: stop accepting, drain requests, flush, stop the private cluster.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { server, local_postgres, mut signals, actors, cluster, shutdown, sockets, .. } = self;
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        tokio::select! {
            result = &mut server => result.context("HTTP server")?,
            signal = signals.recv() => {
                tracing::info!(signal, "shutting down: no new connections, closing sockets, draining requests");
                let _ = shutdown.send(true);
                if !sockets.wait_closed(Duration::from_secs(SHUTDOWN_GRACE_SECS)).await {
                    tracing::warn!(open = sockets.count(), "some sockets did not close in time");
                }
                // The stop command is carried out by the server future itself,
                // so send it and then drive the server to completion.
                let stopped = handle.stop(true);
                server.await.context("HTTP server")?;
                stopped.await;
            }
        }
        tracing::info!("server stopped; flushing queued writes");
        if tokio::time::timeout(DRAIN_TIMEOUT, actors.persistence.drain()).await.is_err() {
            tracing::warn!("queued writes did not flush in time");
        }
        if let Some(node) = cluster {
            node.leave().await;
        }
        actors.stop();
        if let Some(cluster) = local_postgres {
            tokio::task::spawn_blocking(move || cluster.stop()).await?;
        }
        Ok(())
    }
}

/// How long startup waits for the first connection to NATS.
const NATS_JOIN_WAIT: Duration = Duration::from_secs(5);

/// Several nodes: connects to NATS when `NATS_URL` is set.
async fn join_cluster(config: &Config, node_id: Option<String>, db: &postgres::Db) -> anyhow::Result<Option<Arc<Cluster>>> {
    let (Some(url), Some(node_id)) = (&config.nats_url, node_id) else { return Ok(None) };
    let bus = Bus::connect(url, &node_id).await.with_context(|| format!("connecting to NATS at {url} (NATS_URL)"))?;
    // A node that starts while NATS is up joins before it serves; one that
    // starts while NATS is away serves what it runs and joins when it can.
    let deadline = std::time::Instant::now() + NATS_JOIN_WAIT;
    while !bus.is_connected() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !bus.is_connected() {
        tracing::warn!(url, "NATS is not reachable yet; serving this node's own conversations until it is");
    }
    tracing::info!(node_id, "running as one node of a cluster");
    Ok(Some(Cluster::new(bus, db.clone(), config)))
}

/// This node's part in a cluster: the loops `serve` runs, and what a
/// change made elsewhere does here.
struct ClusterNode {
    cluster: Arc<Cluster>,
    serving: serve::Serving,
}

impl ClusterNode {
    fn serve(cluster: Arc<Cluster>, hub: Arc<Hub>, state: web::Data<AppState>) -> Self {
        let on_settings: serve::OnSettings = Arc::new(move |change| match change {
            SettingsChange::Rules => {
                let hub = state.hub.clone();
                tokio::spawn(async move {
                    if let Err(e) = hub.reload_rules().await {
                        tracing::warn!(error = %e, "could not reload the completion rules");
                    }
                });
            }
            SettingsChange::Site(key) => state.sites.forget(&key),
        });
        let serving = serve::Serving::start(hub, cluster.clone(), on_settings);
        Self { cluster, serving }
    }

    async fn leave(self) {
        self.cluster.release_all().await;
        self.serving.stop();
    }
}

/// Backlog of not-yet-accepted connections: a burst of visitors opening the
/// widget at once queues here instead of seeing refused or retried SYNs
/// (`std`'s `bind` uses 128).
const LISTEN_BACKLOG: u32 = 2048;

/// Binds the HTTP listener with `LISTEN_BACKLOG`.
fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let listener = socket.listen(LISTEN_BACKLOG)?.into_std()?;
    // actix-server registers the listener with its own poller.
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The database to use: `DATABASE_URL`, or the private cluster under
/// `CHATHUB_DATA_DIR`, started (and created) here.
pub async fn open_database(config: &Config) -> anyhow::Result<(String, Option<LocalPostgres>)> {
    if let Some(url) = &config.database_url {
        return Ok((url.clone(), None));
    }
    let dir = config.data_dir.join("postgres");
    let options = LocalPostgresOptions { bin_dir: config.pg_bin_dir.clone(), ..Default::default() };
    let cluster = tokio::task::spawn_blocking(move || LocalPostgres::start(&dir, &options))
    .await??;
    postgres::ensure_database(&cluster.connection_string("postgres"), LOCAL_DATABASE).await?;
    let url = cluster.connection_string(LOCAL_DATABASE);
    Ok((url, Some(cluster)))
}

