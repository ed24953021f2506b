//! Report keys: `/`-separated object paths, checked so that no key can name a place
//! outside its backend (no `..`, no absolute paths, no empty or hidden-temp segments).

use std::fmt;

use super::ReportError;

/// Segments starting with this are the folder backend's temporary files.
pub(crate) const TEMP_PREFIX: &str = ".sparky-tmp-";

/// A checked object key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Key, ReportError> {
        let key = key.into();
        check(&key)?;
        Ok(Key(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix under which all of one build's reports live, ending in `/`.
    pub fn build_prefix(project: &str, build_id: i64) -> String {
        format!("projects/{project}/builds/{build_id}/")
    }

    /// The prefix of a build's log chunks.
    pub fn log_prefix(project: &str, build_id: i64) -> String {
        format!("{}log/", Self::build_prefix(project, build_id))
    }

    /// The prefix of a build's artifacts; an artifact's key is this plus its path.
    pub fn artifacts_prefix(project: &str, build_id: i64) -> String {
        format!("{}artifacts/", Self::build_prefix(project, build_id))
    }

    /// A build's `report.json`.
    pub fn report(project: &str, build_id: i64) -> Result<Key, ReportError> {
        Key::new(format!("{}report.json", Self::build_prefix(project, build_id)))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check(key: &str) -> Result<(), ReportError> {
    let bad = |problem| Err(ReportError::InvalidKey { key: key.into(), problem });
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return bad("contains a control character or a backslash");
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("has an empty segment (leading, trailing or doubled `/`)"),
            "." | ".." => return bad("has a `.` or `..` segment"),
            s if s.starts_with(TEMP_PREFIX) => return bad("uses a reserved name"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_object_paths_and_refuses_tricks() {
        for good in ["a", "projects/x/builds/1/log/0000", "artifacts/with space/é.txt"] {
            assert!(Key::new(good).is_ok(), "{good}");
        }
        for bad in ["", "/abs", "a//b", "a/../b", "..", "a/", "a\\b", "a/.sparky-tmp-1", "a\nb", "a\0"] {
            assert!(Key::new(bad).is_err(), "{bad}");
        }
    }
}
