//! Where things are served, relative to the server's root.

/// The page of a build, relative to the server's root.
pub fn build_url(id: i64) -> String {
    format!("/builds/{id}")
}

/// Where artifact `path` of build `id` is downloaded.
pub fn artifact_url(id: i64, path: &str) -> String {
    format!("/builds/{id}/artifacts/{}", encode_path(path))
}

/// Percent-encodes a path for a URL, keeping `/` and unreserved characters.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_urls_are_percent_encoded() {
        assert_eq!(artifact_url(7, "a b/é#?.txt"), "/builds/7/artifacts/a%20b/%C3%A9%23%3F.txt");
    }
}
