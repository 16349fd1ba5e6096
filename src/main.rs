//! The `chathub` binary: `serve` (the default), `migrate`, `user create`,
//! `api-key create`. Thin: parse, configure logging, hand over to the library.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use chathub::config::Config;
use chathub::domain::Role;
use chathub::startup::{self, Application};
use chathub::{auth, postgres, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chathub", version, about = "Real-time chat hub for AI agents and the staff who supervise them")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage staff users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage machine API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Print the HTTP routes with who may call each (the table in docs/api.md).
    Routes,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from stdin (or prompted for).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum)]
        role: Role,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        name: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(&cli.config.log_format);
    let result = actix_web::rt::System::new().block_on(run(cli));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chathub: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Application::build(cli.config).await?.run_until_stopped().await,
        Command::Routes => {
            print!("{}", chathub::http::routes::markdown_matrix());
            Ok(())
        }
        Command::Migrate => with_database(&cli.config, |_| async { Ok(()) }).await,
        Command::User(UserCommand::Create { username, role }) => {
            let password = read_password()?;
            with_database(&cli.config, |db| async move {
                auth::users::create(&db, &username, password, role).await?;
                println!("created user {username} ({role})");
                Ok(())
            })
            .await
        }
        Command::ApiKey(ApiKeyCommand::Create { name }) => {
            with_database(&cli.config, |db| async move {
                let key = auth::api_keys::create(&db, &name, None).await?;
                eprintln!("created API key {:?} ({}…); it is shown only this once:", key.name, key.prefix);
                println!("{}", key.secret);
                Ok(())
            })
            .await
        }
    }
}

/// Opens the database (starting the private cluster if needed), migrates it,
/// runs `job`, and stops the cluster again if this command started it.
async fn with_database<F, Fut>(config: &Config, job: F) -> anyhow::Result<()>
where
    F: FnOnce(postgres::Db) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let (url, cluster) = startup::open_database(config).await?;
    postgres::migrate(&url).await?;
    let db = postgres::pool(&url, 2)?;
    let outcome = job(db.clone()).await;
    db.close();
    if let Some(cluster) = cluster {
        tokio::task::spawn_blocking(move || cluster.stop()).await?;
    }
    outcome
}

/// A password from stdin: prompted for, without echo, on a terminal; the
/// first line otherwise (so scripts can pipe it in).
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        eprint!("Password: ");
        std::io::stderr().flush()?;
        let saved = tcgetattr(&stdin).context("reading terminal settings")?;
        let mut silent = saved.clone();
        silent.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &silent)?;
        let read = stdin.lock().read_line(&mut line);
        tcsetattr(&stdin, SetArg::TCSANOW, &saved)?;
        eprintln!();
        read?;
    } else {
        stdin.lock().read_line(&mut line).context("reading the password from stdin")?;
    }
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password given on stdin");
    Ok(password)
}
