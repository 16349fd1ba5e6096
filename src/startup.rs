//! `Application::build` turns a `Config` into a running hub: database (its own
//! cluster or `DATABASE_URL`), migrations, the first admin, the actors, and
//! the HTTP server bound to a port. `main` and the tests use this same path.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::http;
use crate::postgres::{self, Db, LocalPostgres, LocalPostgresOptions};

/// Name of the database the hub creates in its private cluster.
pub const LOCAL_DATABASE: &str = "chathub";
/// Seconds workers get to finish in-flight requests at shutdown.
const SHUTDOWN_GRACE_SECS: u64 = 10;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    pub started_at: Instant,
}

/// A hub whose server is bound and running (once awaited).
pub struct Application {
    port: u16,
    server: Server,
    /// The private cluster we run, stopped after the server has drained.
    local_postgres: Option<LocalPostgres>,
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
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (url, local_postgres) = open_database(&config).await?;
        postgres::migrate(&url).await?;
        let db = postgres::pool(&url, config.db_pool_size)?;
        crate::auth::users::ensure_first_admin(&db, config.admin_password.as_deref()).await?;

        let state = web::Data::new(AppState {
            db,
            config: Arc::new(config.clone()),
            metrics: crate::telemetry::metrics_handle(),
            started_at: Instant::now(),
        });

        let listener = TcpListener::bind(config.bind)
            .with_context(|| format!("binding {} (CHATHUB_BIND)", config.bind))?;
        let address = listener.local_addr()?;
        let max_body = config.limits.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default().limit(max_body).error_handler(|e, _| http::error::json_error(e)),
                )
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::QueryConfig::default().error_handler(|e, _| http::error::query_error(e)))
                .app_data(web::PathConfig::default().error_handler(|e, _| http::error::path_error(e)))
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
        })
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        .disable_signals()
        .listen(listener)?;
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        let signals = ShutdownSignals::register()?;
        let server = server.run();
        tracing::info!("chathub is listening on http://{address}");
        Ok(Self { port: address.port(), server, local_postgres, signals })
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
        let Self { server, local_postgres, mut signals, .. } = self;
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        tokio::select! {
            result = &mut server => result.context("HTTP server")?,
            signal = signals.recv() => {
                tracing::info!(signal, "shutting down: no new connections, draining requests");
                // The stop command is carried out by the server future itself,
                // so send it and then drive the server to completion.
                let stopped = handle.stop(true);
                server.await.context("HTTP server")?;
                stopped.await;
            }
        }
        tracing::info!("server stopped; shutting down");
        if let Some(cluster) = local_postgres {
            tokio::task::spawn_blocking(move || cluster.stop()).await?;
        }
        Ok(())
    }
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

