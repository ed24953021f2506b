//! The command line. Settings come from the environment through
//! [`Config::from_env`]; flags given here win over it.
//!
//! The client commands (`build`, `rebuild`, `cancel`, `status`, `list`, `logs`) exit
//! with [`Exit`]: 0 done (with `--follow`: the build succeeded), 1 with `--follow` the
//! build did not succeed, 2 a usage or settings mistake, 3 the server refused (4xx),
//! 4 the server unreachable, failing (5xx) or not answering as the API does. `up` and
//! `serve` exit 2 when they can't start.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sparky_core::{Config, serve::init_tracing};

use crate::{
    client::{
        ClientArgs, Exit, Failure,
        commands::{self, Request},
    },
    local,
    service::{self, Function},
};

#[derive(Parser)]
#[command(
    name = "sparky",
    version,
    about = "A lightweight CI server for Kubernetes, or for one machine",
    after_help = CLIENT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `--help` says about the client commands after the list of commands.
const CLIENT_HELP: &str = "\
The client commands (build, rebuild, cancel, status, list, logs) exit 0 when done (with --follow: \
the build succeeded), 1 when a followed build did not succeed, 2 on a usage or settings mistake, \
3 when the server refused (4xx), 4 when it was unreachable or failed (5xx).
Their server and token: --server and --token, else SPARKY_SERVER (SPARKY_API inside a job) and \
SPARKY_TOKEN or SPARKY_API_TOKEN, else $XDG_CONFIG_HOME/sparky/cli.toml (~/.config/sparky/cli.toml) \
with `server = \"URL\"` and `token = \"TOKEN\"` lines.";

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: API, queue, runner, web UI.
    Up {
        /// Address to listen on [env: SPARKY_LISTEN] [default: 127.0.0.1:4000]
        #[arg(long)]
        listen: Option<String>,
        /// State folder [env: SPARKY_ROOT] [default: ./.sparky]
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Serve one function on $PORT, as a Knative service does.
    Serve {
        function: Function,
        /// Address to listen on [default: 0.0.0.0:$PORT]
        #[arg(long)]
        listen: Option<String>,
        /// State folder [env: SPARKY_ROOT]
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Trigger a build and print its URL; with --follow, stream its log.
    Build {
        project: String,
        #[command(flatten)]
        request: Request,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Queue a build again: the same project, commit and parameters, except those given.
    Rebuild {
        /// The build's number.
        build_id: i64,
        #[command(flatten)]
        request: Request,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a build: a queued one at once, a running one within seconds.
    Cancel {
        /// The build's number.
        build_id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a build: its status, times and parameters.
    Status {
        /// The build's number.
        build_id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the projects with their last build, or a project's recent builds.
    List {
        project: Option<String>,
        /// How many builds of the project, newest first.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a build's log; with --follow, stream it until the build ends.
    Logs {
        /// The build's number.
        build_id: i64,
        /// Stream the log until the build ends; exit 0 only if it succeeded.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Parses the command line, runs it, and turns the result into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sparky: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sparky: could not start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sparky: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        Command::Up { listen, root } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if let Some(root) = root {
                config.root = root;
            }
            local::up(
                config,
                sparky_core::serve::shutdown_on_signals().context("installing signal handlers")?,
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Serve { function, listen, root } => {
            if let Some(root) = root {
                config.root = root;
            }
            let listen = listen.unwrap_or_else(|| format!("0.0.0.0:{}", config.port));
            let shutdown = sparky_core::serve::shutdown_on_signals().context("installing signal handlers")?;
            service::serve(function, config, &listen, shutdown).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Build { project, request, client } => {
            commands::build(&config, &client, &project, request).await
        }
        Command::Rebuild { build_id, request, client } => {
            commands::rebuild(&config, &client, build_id, request).await
        }
        Command::Cancel { build_id, client } => commands::cancel(&config, &client, build_id).await,
        Command::Status { build_id, client } => commands::status(&config, &client, build_id).await,
        Command::List { project, limit, client } => {
            commands::list(&config, &client, project.as_deref(), limit).await
        }
        Command::Logs { build_id, follow, client } => {
            commands::logs(&config, &client, build_id, follow).await
        }
    };
    Ok(ended(outcome))
}

/// A client command's exit code; a failure is said on stderr first. A reader that
/// stopped reading (`sparky logs 7 | head`) is no failure.
fn ended(outcome: Result<Exit, Failure>) -> ExitCode {
    match outcome {
        Ok(exit) => exit.into(),
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok.into(),
        Err(failure) => {
            eprintln!("sparky: {failure}");
            failure.exit().into()
        }
    }
}
