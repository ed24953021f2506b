//! Error chains for logs: an error and every cause below it, on one line. A leaf
//! module: every part of Sparky logs errors this way, and it imports nothing of theirs.

use std::fmt::Write as _;

/// `error: cause: cause ...`, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_cause() {
        let inner = std::io::Error::other("disk full");
        let outer = crate::reports::ReportError::Io { key: "k".into(), source: inner };
        assert_eq!(error_chain(&outer), "report storage failed on \"k\": disk full");
    }
}
