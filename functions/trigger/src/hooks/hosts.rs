//! What differs between Git hosts: which headers name the event and the delivery, how
//! a request proves it knows the secret, and which events are pushes.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`,
//!   `X-GitHub-Event` (`ping`, `push`, `pull_request`), `X-GitHub-Delivery`.
//! - GitLab: `X-Gitlab-Token: <secret>`, `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`,
//!   `Merge Request Hook`), `Idempotency-Key` or `X-Gitlab-Event-UUID`.
//! - Gitea and Forgejo: `X-Gitea-Signature` / `X-Forgejo-Signature: <hex HMAC-SHA256>`,
//!   `X-Gitea-Event` / `X-Forgejo-Event` (`push`, `pull_request`), `X-Gitea-Delivery` /
//!   `X-Forgejo-Delivery`.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use sparky_core::api::constant_time_eq;

/// A Git host's webhook dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    GitHub,
    GitLab,
    Gitea,
}

/// What the host says this request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Ping,
    Push,
    /// A pull request (GitLab: merge request) changed.
    PullRequest,
    /// Anything else: acknowledged, ignored.
    Other,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::GitHub => "github",
            Host::GitLab => "gitlab",
            Host::Gitea => "gitea",
        }
    }

    /// The event, and its name as sent (for the answer).
    pub fn event(self, headers: &HeaderMap) -> (Event, String) {
        let name = match self {
            Host::GitHub => header(headers, &["x-github-event"]),
            Host::GitLab => header(headers, &["x-gitlab-event"]),
            Host::Gitea => header(headers, &["x-gitea-event", "x-forgejo-event", "x-gogs-event"]),
        }
        .unwrap_or_default();
        let event = match (self, name.as_str()) {
            (Host::GitHub, "ping") => Event::Ping,
            (Host::GitHub | Host::Gitea, "push") => Event::Push,
            (Host::GitLab, "Push Hook" | "Tag Push Hook") => Event::Push,
            (Host::GitHub | Host::Gitea, "pull_request") => Event::PullRequest,
            (Host::GitLab, "Merge Request Hook") => Event::PullRequest,
            _ => Event::Other,
        };
        (event, name)
    }

    /// The delivery's id: the same when the host delivers the event again.
    pub fn delivery(self, headers: &HeaderMap) -> Option<String> {
        match self {
            Host::GitHub => header(headers, &["x-github-delivery"]),
            Host::GitLab => header(headers, &["idempotency-key", "x-gitlab-event-uuid"]),
            Host::Gitea => header(headers, &["x-gitea-delivery", "x-forgejo-delivery"]),
        }
    }

    /// Whether the request was made by someone who knows `secret`.
    pub fn verify(self, headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
        match self {
            Host::GitHub => header(headers, &["x-hub-signature-256"])
                .and_then(|v| v.strip_prefix("sha256=").map(str::to_string))
                .is_some_and(|hex| hmac_matches(secret, body, &hex)),
            Host::GitLab => header(headers, &["x-gitlab-token"])
                .is_some_and(|t| constant_time_eq(t.as_bytes(), secret.as_bytes())),
            Host::Gitea => header(headers, &["x-gitea-signature", "x-forgejo-signature"])
                .is_some_and(|hex| hmac_matches(secret, body, &hex)),
        }
    }

    /// How this host proves the secret, for error messages.
    pub fn proof(self) -> &'static str {
        match self {
            Host::GitHub => "X-Hub-Signature-256",
            Host::GitLab => "X-Gitlab-Token",
            Host::Gitea => "X-Gitea-Signature",
        }
    }
}

fn header(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| headers.get(*name)?.to_str().ok().map(|v| v.trim().to_string()))
}

/// Compares the hex HMAC-SHA256 a host sent with the body's, in constant time.
fn hmac_matches(secret: &str, body: &[u8], hex: &str) -> bool {
    let Some(sent) = decode_hex(hex) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&sent).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex HMAC-SHA256 of `body`, as a host sends it.
    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn verifies_each_hosts_proof() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign("s3cret", body);
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", format!("sha256={good}").parse().expect("header"));
        assert!(Host::GitHub.verify(&headers, body, "s3cret"));
        assert!(!Host::GitHub.verify(&headers, body, "other"));
        assert!(!Host::GitHub.verify(&headers, b"tampered", "s3cret"));
        let mut headers = HeaderMap::new();
        headers.insert("x-forgejo-signature", good.parse().expect("header"));
        assert!(Host::Gitea.verify(&headers, body, "s3cret"));
        let mut headers = HeaderMap::new();
        headers.insert("x-gitlab-token", "s3cret".parse().expect("header"));
        assert!(Host::GitLab.verify(&headers, body, "s3cret"));
        assert!(!Host::GitLab.verify(&headers, body, "s3cret!"));
        assert!(!Host::GitHub.verify(&HeaderMap::new(), body, "s3cret"));
    }
}
