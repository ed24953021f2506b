//! The command line. Settings come from the environment through
//! [`Config::from_env`]; flags given here win over it.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sparky_core::{Config, serve::init_tracing};

use crate::{
    client, local,
    service::{self, Function},
};

#[derive(Parser)]
#[command(name = "sparky", version, about = "A lightweight CI server for Kubernetes, or for one machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
        /// A build parameter; repeat for more.
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A description for the build.
        #[arg(short, long)]
        description: Option<String>,
        /// Stream the log until the build ends; exit 0 only if it succeeded.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Print a build's log; with --follow, stream it until the build ends.
    Logs {
        build_id: i64,
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        server: client::ServerArgs,
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
    match command {
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { function, listen, root } => {
            if let Some(root) = root {
                config.root = root;
            }
            let listen = listen.unwrap_or_else(|| format!("0.0.0.0:{}", config.port));
            let shutdown = sparky_core::serve::shutdown_on_signals().context("installing signal handlers")?;
            service::serve(function, config, &listen, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { project, params, description, follow, server } => {
            client::build(&config, &server, &project, &params, description, follow).await
        }
        Command::Logs { build_id, follow, server } => client::logs(&config, &server, build_id, follow).await,
    }
}
