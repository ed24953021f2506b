//! What the process that runs jobs does to itself before it runs any: it makes itself
//! non-dumpable, so that a job running as the same user can't read its memory or its
//! environment (`/proc/<pid>/environ`, `/proc/<pid>/mem` and ptrace all need the
//! process to be dumpable, or the reader to hold `CAP_SYS_PTRACE`, as root does), and
//! it leaves no core dump. Jobs themselves are dumpable again: exec resets the flag.

use sparky_core::error::error_chain;

/// Makes this process non-dumpable; logs why if it can't.
pub fn harden() {
    match nix::sys::prctl::set_dumpable(false) {
        Ok(()) => tracing::debug!("non-dumpable: jobs can't read this process's memory or environment"),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "could not make this process non-dumpable")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hardened_process_is_not_dumpable() {
        // Process-wide; the other tests here don't mind.
        super::harden();
        assert!(!nix::sys::prctl::get_dumpable().expect("read the flag"));
    }
}
