//! PostgreSQL: the connection pool, the migrations in `sql/`, and the private
//! cluster launcher (`local`). Every other module reaches the database through
//! the `Db` pool made here.

pub mod local;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use local::{LocalPostgres, LocalPostgresError, LocalPostgresOptions};

/// The shared pool. Cloning is cheap (an `Arc` inside).
pub type Db = Pool;

/// How long a request waits for a pooled connection before failing with 503.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

mod embedded {
    refinery::embed_migrations!("sql");
}

/// Any two chathub nodes migrating at once serialise on this advisory lock
/// (refinery takes none of its own). The value is arbitrary but fixed.
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_6875_62; // "chathub"

/// Parses a `postgres://` URL or a libpq key=value string.
pub fn parse_config(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL connection string: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("chathub");
    }
    Ok(config)
}

/// Builds the pool (connections open lazily).
///
/// Its sessions run with JIT compilation off: it pays off for long
/// analytical queries, but the hub's are short, and on the dashboard's
/// searches at 1M sessions its 15–20 ms of compiling was most of the time.
pub fn pool(url: &str, size: usize) -> anyhow::Result<Db> {
    pool_of(url, size, None)
}

/// The `application_name` of a cluster node's connections. A node taking a
/// conversation over from one that is gone finds by it the transactions the
/// gone node left open (`store::leases::take_over`), so it overrides any
/// `application_name` in `DATABASE_URL`.
pub fn node_application_name(node_id: &str) -> String {
    format!("chathub node {node_id}")
}

/// `pool`, for cluster node `node_id` when there is one
/// (`node_application_name`).
pub fn pool_of(url: &str, size: usize, node_id: Option<&str>) -> anyhow::Result<Db> {
    let mut config = parse_config(url)?;
    if let Some(node_id) = node_id {
        config.application_name(node_application_name(node_id));
    }
    let options = format!("{} -c jit=off", config.get_options().unwrap_or_default());
    config.options(options.trim_start());
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .context("building the PostgreSQL pool")
}

/// Applies the migrations in `sql/` that are not applied yet, holding an
/// advisory lock so concurrent starts apply each migration once.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    let (mut client, connection) = parse_config(url)?
        .connect(NoTls)
        .await
        .context("connecting to PostgreSQL to migrate")?;
    let connection = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    let report = report.context("applying migrations")?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    build_online_indexes(&client).await?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// The statements of `online_indexes.sql`.
const ONLINE_INDEXES: &str = include_str!("online_indexes.sql");
/// Held while building them, so two nodes starting at once build each once.
const INDEX_LOCK_KEY: i64 = MIGRATION_LOCK_KEY + 1;

/// The online indexes as (name, statement).
pub fn online_indexes() -> Vec<(&'static str, &'static str)> {
    ONLINE_INDEXES
        .lines()
        .filter(|line| line.starts_with("CREATE INDEX CONCURRENTLY IF NOT EXISTS "))
        .map(|line| {
            let name = line["CREATE INDEX CONCURRENTLY IF NOT EXISTS ".len()..].split_whitespace().next().unwrap_or_default();
            (name, line.trim_end_matches(';'))
        })
        .collect()
}

/// Builds the indexes of `online_indexes.sql` that do not exist yet with
/// `CREATE INDEX CONCURRENTLY` (writes go on meanwhile; on a large table it
/// takes minutes, and says so in the log). An index left invalid by an
/// interrupted build is dropped and built again. The lock is taken with
/// `pg_try_advisory_lock` in a loop: a session *waiting* for a lock holds a
/// snapshot, which a concurrent index build would wait for in turn.
async fn build_online_indexes(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    while !client.query_one("SELECT pg_try_advisory_lock($1)", &[&INDEX_LOCK_KEY]).await?.get::<_, bool>(0) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let built = async {
        for (name, statement) in online_indexes() {
            let state = client
                .query_opt("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1", &[&name])
                .await?
                .map(|row| row.get::<_, bool>(0));
            match state {
                Some(true) => continue,
                Some(false) => {
                    tracing::warn!(index = name, "an earlier build of this index was interrupted; building it again");
                    client.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}")).await?;
                }
                None => {}
            }
            let started = std::time::Instant::now();
            tracing::info!(index = name, "building an index concurrently (writes continue meanwhile)");
            client.batch_execute(statement).await.with_context(|| format!("building index {name}"))?;
            tracing::info!(index = name, seconds = started.elapsed().as_secs_f64(), "index built");
        }
        anyhow::Ok(())
    }
    .await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&INDEX_LOCK_KEY]).await;
    built
}

/// Creates `database` on the server `admin_url` points to, unless it exists.
pub async fn ensure_database(admin_url: &str, database: &str) -> anyhow::Result<()> {
    let (client, connection) = parse_config(admin_url)?
        .connect(NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
        match client.batch_execute(&sql).await {
            Ok(()) => tracing::info!(database, "created database"),
            // Another node created it between our check and our CREATE.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e).context("creating the database"),
        }
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}
