//! Build logs as chunk objects: `.../log/{offset:016}` holds the log's bytes from
//! `offset` on. Chunks are whole objects, so a log grows on any object store without
//! append, readers can follow a running build, and a log of any size is read by
//! streaming chunk after chunk (ranged for the first).
//!
//! - [`writer`]: [`LogWriter`], which stores chunks in the background, retrying with
//!   backoff, so that a slow or absent store never stalls the job's output for long.
//! - [`mask`]: [`Masker`], which masks secret values in a log before it is stored.
//! - [`reader`]: [`StoredLog`], the contiguous chunks stored so far, read from any
//!   offset.

pub mod mask;
pub mod reader;
pub mod writer;

pub use mask::Masker;
pub use reader::StoredLog;
pub use writer::{LogEnd, LogWriter};

use super::{Key, ReportError};

/// Digits of a chunk's offset in its key, so that key order is offset order.
const OFFSET_DIGITS: usize = 16;

/// The key of the chunk starting at `offset` of the log under `prefix`.
fn chunk_key(prefix: &str, offset: u64) -> Result<Key, ReportError> {
    Key::new(format!("{prefix}{offset:0width$}", width = OFFSET_DIGITS))
}
