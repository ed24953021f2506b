//! `sparky`: parses the command line and hands over to [`sparky::cli::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    sparky::cli::main()
}
