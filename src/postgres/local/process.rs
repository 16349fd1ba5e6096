//! The processes and files under the private cluster: finding `initdb` and
//! `postgres`, the OS account they run as, `initdb` itself, reading a
//! `postmaster.pid` left behind, the owner file, and the guardian process
//! that stops the postmaster when the hub dies.

use super::*;

/// Where `initdb` and `postgres` live.
#[derive(Debug, Clone)]
pub(super) struct Binaries {
    pub(super) initdb: PathBuf,
    pub(super) postgres: PathBuf,
}

impl Binaries {
    /// `initdb` on PATH first (with `postgres` beside it or on PATH), then the
    /// newest `/usr/lib/postgresql/*/bin`.
    pub(super) fn find(bin_dir: Option<&Path>) -> Result<Self, LocalPostgresError> {
        if let Some(dir) = bin_dir {
            let (initdb, postgres) = (dir.join("initdb"), dir.join("postgres"));
            return if initdb.is_file() && postgres.is_file() {
                Ok(Self { initdb, postgres })
            } else {
                Err(LocalPostgresError::BinariesNotFound)
            };
        }
        let on_path = |name: &str| -> Option<PathBuf> {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        };
        if let (Some(initdb), Some(postgres)) = (on_path("initdb"), on_path("postgres")) {
            return Ok(Self { initdb, postgres });
        }
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                    .then_some((version, bin))
            })
            .collect();
        versions.sort();
        let (_, bin) = versions.pop().ok_or(LocalPostgresError::BinariesNotFound)?;
        Ok(Self { initdb: bin.join("initdb"), postgres: bin.join("postgres") })
    }
}

/// The OS account the cluster runs as: `postgres` when we are root, else us.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunAs {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) switch_user: bool,
}

impl RunAs {
    pub(super) fn detect() -> Result<Self, LocalPostgresError> {
        if geteuid().is_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(LocalPostgresError::NoPostgresUser)?;
            Ok(Self { uid: user.uid.as_raw(), gid: user.gid.as_raw(), switch_user: true })
        } else {
            Ok(Self {
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                switch_user: false,
            })
        }
    }

    pub(super) fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if self.switch_user {
            command.uid(self.uid).gid(self.gid);
            // The postgres user cannot read root's home; keep its cwd neutral.
            command.current_dir("/");
            command.env("HOME", "/tmp");
        }
        command
    }
}

pub(super) fn absolute(dir: &Path) -> Result<PathBuf, LocalPostgresError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    Ok(std::env::current_dir().map_err(io_err("current directory"))?.join(dir))
}

pub(super) fn init_cluster(
    binaries: &Binaries,
    run_as: RunAs,
    dir: &Path,
    options: &LocalPostgresOptions,
) -> Result<(), LocalPostgresError> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    if run_as.switch_user {
        chown(dir, Some(run_as.uid), Some(run_as.gid))
            .map_err(io_err(format!("giving {} to the postgres user", dir.display())))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("restricting {}", dir.display())))?;

    tracing::info!(dir = %dir.display(), "creating the private PostgreSQL cluster");
    let mut command = run_as.command(&binaries.initdb);
    command
        .arg("-D")
        .arg(dir)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"]);
    if options.ephemeral {
        command.arg("--no-sync");
    }
    let output = command.output().map_err(io_err("running initdb"))?;
    if !output.status.success() {
        let mut log = String::from_utf8_lossy(&output.stderr).into_owned();
        if log.contains("Permission denied") && run_as.switch_user {
            log.push_str(" (the postgres user must be able to enter every parent directory)");
        }
        return Err(LocalPostgresError::CommandFailed { what: "initdb", log });
    }
    Ok(())
}

/// What a cluster's `postmaster.pid` says.
pub(super) enum PidFile {
    Absent,
    /// A PID that is dead, or alive but not a postgres process (reused).
    Stale,
    Starting(i32),
    Ready(i32),
    Stopping(i32),
}

pub(super) fn inspect_pid_file(dir: &Path) -> PidFile {
    let Ok(contents) = fs::read_to_string(dir.join("postmaster.pid")) else {
        return PidFile::Absent;
    };
    let lines: Vec<&str> = contents.lines().collect();
    let Some(pid) = lines.first().and_then(|l| l.trim().parse::<i32>().ok()) else {
        // Half-written by a postmaster that is just starting; treat it as starting.
        return PidFile::Starting(0);
    };
    if !is_postgres_process(pid) {
        return PidFile::Stale;
    }
    // Line 8 is the postmaster status (PostgreSQL 10+).
    match lines.get(7).map(|s| s.trim()) {
        Some("ready") => PidFile::Ready(pid),
        Some("stopping") => PidFile::Stopping(pid),
        _ => PidFile::Starting(pid),
    }
}

pub(super) fn is_postgres_process(pid: i32) -> bool {
    if pid <= 0 || kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("postgres"),
        // No /proc (not Linux): trust the live PID.
        Err(_) => true,
    }
}

/// The file naming the process that started (and will stop) the postmaster.
pub(super) fn owner_file(dir: &Path) -> PathBuf {
    dir.with_extension("owner")
}

/// Whether the process that started this cluster's postmaster still runs. A
/// cluster with no owner file (started some other way) is trusted as live.
pub(super) fn has_live_owner(dir: &Path) -> bool {
    match fs::read_to_string(owner_file(dir)).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
        Some(owner) => owner > 0 && kill(Pid::from_raw(owner), None).is_ok(),
        None => true,
    }
}

pub(super) fn wait_for_exit(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_postgres_process(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Starts the guardian: it blocks reading our pipe and, at EOF (we exited),
/// asks postgres for a fast shutdown, waits for it and optionally removes the
/// cluster directory.
pub(super) fn spawn_guardian(
    postgres_pid: i32,
    remove_dir: Option<&PathBuf>,
) -> Result<(Child, ChildStdin), LocalPostgresError> {
    const SCRIPT: &str = r#"cat >/dev/null
kill -INT "$1" 2>/dev/null
while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
if [ -n "$2" ]; then rm -rf "$2" "$2.log" "$2.owner"; fi"#;
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "chathub-pg-guardian", &postgres_pid.to_string()])
        .arg(remove_dir.map(|d| d.as_os_str()).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(io_err("starting the PostgreSQL guardian"))?;
    let stdin = child.stdin.take().expect("guardian stdin is piped");
    Ok((child, stdin))
}

pub(super) fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    format!("last lines of {}:\n{}", path.display(), lines[start..].join("\n"))
}
