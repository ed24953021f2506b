//! Sparky as a container's PID 1.
//!
//! A container's first process has two duties no other process has: the kernel sends
//! it no signal it has not asked for, and every orphan in the container becomes its
//! child — and stays a zombie until it is reaped. Jobs leave orphans behind (a killed
//! process group's grandchildren, a daemon a script started), and tokio only reaps the
//! children it spawned. So when `sparky` finds itself PID 1, before anything else
//! starts, it runs itself again with the same arguments as its child, which does the
//! work as usual, and stays behind as a minimal init: it forwards termination signals
//! to the child, reaps every orphan, and exits with the child's status. The image's
//! `ENTRYPOINT ["sparky"]` needs nothing else in front of it.

use nix::{
    sys::{
        signal::{SigSet, Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::Pid,
};

/// The signals the init passes on to Sparky.
const FORWARDED: [Signal; 6] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// Returns at once unless this process is PID 1. As PID 1 it starts itself again as
/// its child and never returns.
///
/// Called first thing in `main`, before any thread could receive a signal.
pub fn become_init_if_pid1() {
    let mut watched = SigSet::empty();
    for signal in FORWARDED {
        watched.add(signal);
    }
    watched.add(Signal::SIGCHLD);
    if std::process::id() != 1 {
        // A signal mask is inherited: the init's child starts with these blocked, and
        // so may a process started by a careless parent. Sparky stops cleanly on them,
        // so they must come through.
        let _ = watched.thread_unblock();
        return;
    }
    // Blocked before the child starts, so that none slips through in between.
    if let Err(error) = watched.thread_block() {
        eprintln!("sparky: as PID 1, could not block signals ({error}); running without an init");
        return;
    }
    let started = std::env::current_exe()
        .and_then(|exe| std::process::Command::new(exe).args(std::env::args_os().skip(1)).spawn());
    match started {
        Ok(child) => supervise(Pid::from_raw(child.id() as i32), &watched),
        Err(error) => {
            let _ = watched.thread_unblock();
            eprintln!(
                "sparky: as PID 1, could not start itself as a child ({error}); running without an init"
            );
        }
    }
}

/// The init's loop: pass signals on to `child`, reap whatever exits, and end with the
/// child's status once it exits.
fn supervise(child: Pid, watched: &SigSet) -> ! {
    loop {
        match watched.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap(child) {
                    std::process::exit(code);
                }
            }
            Ok(signal) => {
                let _ = kill(child, signal);
            }
            Err(_) => {}
        }
    }
}

/// Reaps every child that has exited. Returns the exit code to end with if `child`
/// was one of them (128 + the signal's number when a signal ended it, as shells do).
fn reap(child: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, status)) if pid == child => code = Some(status),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => code = Some(128 + signal as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}
