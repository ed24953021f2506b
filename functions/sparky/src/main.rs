//! `sparky`: becomes a container's init if it is PID 1, then parses the command line
//! and hands over to [`sparky::cli::main`].

use std::process::ExitCode;

fn main() -> ExitCode {
    sparky::init::become_init_if_pid1();
    sparky::cli::main()
}
