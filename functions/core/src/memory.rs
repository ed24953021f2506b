//! How the process keeps its memory small with glibc's allocator: few arenas, and
//! freed memory handed back to the OS once the builds it ran have ended.
//!
//! glibc gives threads that allocate at the same time arenas of their own (up to
//! eight per core). Sparky's threads (tokio's workers, the blocking threads that run
//! SQLite calls and file I/O) each end up with one, and memory freed in one arena is
//! not reused by the others: a burst of builds leaves every arena holding its own
//! free pages. Two arenas are plenty for a server whose threads mostly wait. And glibc
//! only returns the top of a heap to the OS by itself; free pages in the middle stay
//! resident until `malloc_trim` gives them back.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Arenas the allocator may create: the main one and one more.
const ARENAS: i32 = 2;

/// Limits glibc's arenas. Call first thing in `main`, before any thread starts.
#[allow(unsafe_code)] // libc's allocator tunables have no safe wrapper.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Builds running in this process (`sparky up` or run).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Held while a build runs here ([`BuildRunning::begin`]). When the last running
/// build's guard drops, the memory its work freed goes back to the OS (on a blocking
/// thread: trimming walks the heaps).
pub struct BuildRunning(());

impl BuildRunning {
    pub fn begin() -> BuildRunning {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        BuildRunning(())
    }
}

impl Drop for BuildRunning {
    fn drop(&mut self) {
        if RUNNING.fetch_sub(1, Ordering::SeqCst) == 1
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn_blocking(release_free_memory);
        }
    }
}

/// Hands pages the allocator holds free back to the OS.
#[allow(unsafe_code)] // libc's allocator calls have no safe wrapper.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}
