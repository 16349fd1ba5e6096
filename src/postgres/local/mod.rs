//! `LocalPostgres`: a private PostgreSQL cluster made and run from the
//! machine's own `initdb`/`postgres`, for `chathub` with no `DATABASE_URL` and
//! for the test harness.
//!
//! The cluster listens only on a Unix socket inside its own directory (no TCP
//! port to clash, nobody but its owner can connect). As root, the binaries run
//! as the `postgres` OS user, because PostgreSQL refuses to run as root.
//!
//! Lifecycle, and what happens when it goes wrong:
//! - the postmaster runs in its own process group, so a Ctrl-C in the terminal
//!   reaches the hub (which flushes and then stops the cluster), not the
//!   database underneath it;
//! - a tiny *guardian* process holds a pipe from the hub; when the hub dies,
//!   even by `kill -9`, the pipe closes and the guardian asks the postmaster
//!   for a fast shutdown, so no orphaned server is left holding the data;
//! - at start, a `postmaster.pid` left behind is inspected: a live postmaster
//!   that is ready and whose owner (recorded in `<dir>.owner`) still runs is
//!   attached to (a CLI command while the server runs); one whose owner died
//!   (an orphan the guardian is stopping) or that is stopping is waited for;
//!   a dead or reused PID is cleared, so a crash is never a dead end;
//! - a *watchdog* thread reaps the postmaster we started if it dies (a
//!   `kill -9`, an immediate stop, an OOM kill): it logs the exit, clears the
//!   stale `postmaster.pid`, and starts a new postmaster (with a new
//!   guardian) with backoff until one is ready. Clients see their
//!   connections fail and reconnect, as after any database restart.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, geteuid};

mod process;
use process::*;

/// The socket file name is `.s.PGSQL.<port>`; with no TCP listener the port
/// only names the socket.
const SOCKET_PORT: u16 = 5432;
/// How long a fresh postmaster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before it is escalated to an immediate one.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a postmaster that is already shutting down.
const STOPPING_WAIT: Duration = Duration::from_secs(30);
/// How often the watchdog checks that our postmaster still runs.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// First and longest pause between attempts to restart a dead postmaster
/// (its old backends may hold shared memory for a moment after it died).
const RESTART_BACKOFF_FIRST: Duration = Duration::from_millis(200);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LocalPostgresError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH or under \
         /usr/lib/postgresql/*/bin: install them (Debian/Ubuntu: `apt-get install postgresql`) \
         or set DATABASE_URL to an existing database"
    )]
    BinariesNotFound,
    #[error(
        "running as root needs the `postgres` OS user to own the private cluster \
         (Debian's `postgresql` package creates it), or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error("the cluster directory path {0} is too long for a Unix socket (max ~100 bytes)")]
    PathTooLong(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {log}")]
    CommandFailed { what: &'static str, log: String },
    #[error(
        "another PostgreSQL server (PID {0}) is using {1} and did not stop; stop it or choose \
         another CHATHUB_DATA_DIR"
    )]
    Busy(i32, PathBuf),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalPostgresError {
    let context = context.into();
    move |source| LocalPostgresError::Io { context, source }
}

/// Options that differ between a real installation and a test run.
#[derive(Debug, Clone, Default)]
pub struct LocalPostgresOptions {
    /// Trade durability for speed (fsync off): for throwaway test clusters only.
    pub ephemeral: bool,
    /// Remove the cluster directory once the guardian has stopped the server
    /// (test clusters, which no destructor would otherwise clean up).
    pub remove_dir_on_exit: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// Look for `initdb`/`postgres` only here (`CHATHUB_PG_BIN_DIR`).
    pub bin_dir: Option<PathBuf>,
}

/// A running (or attached) private cluster.
#[derive(Debug)]
pub struct LocalPostgres {
    /// The cluster directory (PGDATA), which also holds the socket.
    dir: PathBuf,
    /// The postmaster we started, shared with the watchdog that restarts
    /// it; `None` when we attached to one already running, which we then
    /// neither watch nor stop.
    running: Option<Arc<Mutex<Postmaster>>>,
    /// Set when we stop the cluster on purpose: the watchdog then stands down.
    stopping: Arc<AtomicBool>,
    watchdog: Option<JoinHandle<()>>,
}

/// A postmaster we started and its guardian.
#[derive(Debug)]
struct Postmaster {
    child: Child,
    /// The guardian's stdin: closing it (our exit, however abrupt) stops the cluster.
    guardian: Option<(Child, ChildStdin)>,
}

impl Postmaster {
    /// Stops the guardian first, so it cannot signal a PID that gets reused.
    fn drop_guardian(&mut self) {
        if let Some((mut guardian, stdin)) = self.guardian.take() {
            let _ = guardian.kill();
            drop(stdin);
            let _ = guardian.wait();
        }
    }
}

/// Everything needed to start a postmaster again.
#[derive(Debug, Clone)]
struct Launch {
    binaries: Binaries,
    run_as: RunAs,
    dir: PathBuf,
    options: LocalPostgresOptions,
}

impl LocalPostgres {
    /// Creates the cluster in `dir` if needed and makes sure a postmaster is
    /// serving it. Blocking: call before the async runtime or off its threads.
    pub fn start(dir: &Path, options: &LocalPostgresOptions) -> Result<Self, LocalPostgresError> {
        let binaries = Binaries::find(options.bin_dir.as_deref())?;
        let run_as = RunAs::detect()?;
        let dir = absolute(dir)?;
        if dir.join(format!(".s.PGSQL.{SOCKET_PORT}")).as_os_str().len() > 100 {
            return Err(LocalPostgresError::PathTooLong(dir));
        }

        if !dir.join("PG_VERSION").is_file() {
            init_cluster(&binaries, run_as, &dir, options)?;
        }

        match inspect_pid_file(&dir) {
            // A postmaster whose owner (a running hub or CLI) is alive is shared.
            PidFile::Ready(pid) if has_live_owner(&dir) => {
                tracing::info!(pid, dir = %dir.display(), "attaching to the running private PostgreSQL");
                return Ok(Self { dir, running: None, stopping: Arc::new(AtomicBool::new(false)), watchdog: None });
            }
            // An orphan: its hub died (kill -9). Its guardian is stopping it, but
            // the lock file may still say "ready" for a moment; attaching now
            // would meet "the database system is shutting down". Stop it (again)
            // and start afresh.
            PidFile::Ready(pid) => {
                tracing::info!(pid, "stopping the PostgreSQL orphaned by a crashed hub");
                let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
                if !wait_for_exit(pid, STOPPING_WAIT) {
                    return Err(LocalPostgresError::Busy(pid, dir));
                }
            }
            PidFile::Stopping(pid) | PidFile::Starting(pid) => {
                tracing::info!(pid, "waiting for the previous PostgreSQL of this data dir to finish");
                if !wait_for_exit(pid, STOPPING_WAIT) {
                    return Err(LocalPostgresError::Busy(pid, dir));
                }
            }
            PidFile::Stale => {
                tracing::warn!(dir = %dir.display(), "removing a stale postmaster.pid left by a crash");
                let _ = fs::remove_file(dir.join("postmaster.pid"));
            }
            PidFile::Absent => {}
        }

        let launch = Launch { binaries, run_as, dir: dir.clone(), options: options.clone() };
        let postmaster = Arc::new(Mutex::new(launch.start()?));
        let stopping = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (postmaster, stopping) = (postmaster.clone(), stopping.clone());
            std::thread::Builder::new()
                .name("chathub-pg-watchdog".into())
                .spawn(move || watch(&launch, &postmaster, &stopping))
                .map_err(io_err("starting the PostgreSQL watchdog"))?
        };
        Ok(Self { dir, running: Some(postmaster), stopping, watchdog: Some(watchdog) })
    }

    /// A libpq-style connection string for `database` over the Unix socket.
    pub fn connection_string(&self, database: &str) -> String {
        format!("host={} port={SOCKET_PORT} user=postgres dbname={database}", self.dir.display())
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fast shutdown of the postmaster we started (open transactions roll
    /// back, a checkpoint is written); an attached one is left running.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        let Some(running) = self.running.take() else { return };
        let mut postmaster = running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        postmaster.drop_guardian();
        let child = &mut postmaster.child;
        let _ = fs::remove_file(owner_file(&self.dir));
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                tracing::info!(dir = %self.dir.display(), "private PostgreSQL stopped");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!("PostgreSQL did not stop in time; asking for an immediate shutdown");
        let _ = kill(pid, Signal::SIGQUIT);
        let _ = child.wait();
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

impl Launch {
    /// Starts a postmaster (and its guardian) and waits until it is ready.
    fn start(&self) -> Result<Postmaster, LocalPostgresError> {
        let (dir, options) = (&self.dir, &self.options);
        let log_path = dir.with_extension("log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(format!("opening {}", log_path.display())))?;
        let mut command = self.run_as.command(&self.binaries.postgres);
        command
            .arg("-D")
            .arg(dir)
            .arg("-k")
            .arg(dir)
            .args(["-p", &SOCKET_PORT.to_string(), "-c", "listen_addresses="])
            .args(["-c", "unix_socket_permissions=0700"]);
        if options.ephemeral {
            command.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        for (name, value) in &options.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("log handle"))?)
            .stderr(log)
            // Its own process group: a terminal's Ctrl-C must reach the hub
            // first, so the hub can flush before the database goes away.
            .process_group(0);
        let child = command.spawn().map_err(io_err("starting postgres"))?;
        let pid = child.id() as i32;
        // Later starts attach to this postmaster only while we live.
        fs::write(owner_file(dir), std::process::id().to_string()).map_err(io_err("writing the owner file"))?;
        let guardian = spawn_guardian(pid, options.remove_dir_on_exit.then_some(&dir.to_path_buf()))?;
        let mut postmaster = Postmaster { child, guardian: Some(guardian) };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let PidFile::Ready(_) = inspect_pid_file(dir) {
                break;
            }
            if let Ok(Some(status)) = postmaster.child.try_wait() {
                postmaster.drop_guardian();
                return Err(LocalPostgresError::CommandFailed {
                    what: "postgres",
                    log: format!("exited with {status}; {}", log_tail(&log_path)),
                });
            }
            if Instant::now() > deadline {
                let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
                let _ = postmaster.child.wait();
                postmaster.drop_guardian();
                return Err(LocalPostgresError::CommandFailed {
                    what: "postgres start",
                    log: format!("not ready after {START_TIMEOUT:?}; {}", log_tail(&log_path)),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(pid, dir = %dir.display(), "private PostgreSQL is ready");
        Ok(postmaster)
    }
}

/// The watchdog: reaps our postmaster if it dies and starts a new one, with
/// backoff, until one is ready or we are stopping.
fn watch(launch: &Launch, postmaster: &Mutex<Postmaster>, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        std::thread::sleep(WATCH_INTERVAL);
        let mut current = postmaster.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let status = match current.child.try_wait() {
            Ok(Some(status)) => status,
            _ => continue,
        };
        tracing::error!(%status, dir = %launch.dir.display(), "the private PostgreSQL exited; restarting it");
        metrics::counter!("chathub_postgres_restarts_total").increment(1);
        current.drop_guardian();
        let mut backoff = RESTART_BACKOFF_FIRST;
        loop {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            if let PidFile::Stale = inspect_pid_file(&launch.dir) {
                let _ = fs::remove_file(launch.dir.join("postmaster.pid"));
            }
            match launch.start() {
                Ok(fresh) => {
                    *current = fresh;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "the private PostgreSQL did not restart yet");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
                }
            }
        }
    }
}
