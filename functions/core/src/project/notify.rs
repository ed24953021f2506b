//! `notify:` in sparky.yaml: who hears how builds end.
//!
//! ```yaml
//! notify:
//!   - webhook: https://hooks.example.com/ci   # JSON, CloudEvents binary mode
//!     secret: HOOK_KEY         # optional: HMAC-SHA256 of the body, X-Sparky-Signature-256
//!     on: [failure, fixed]     # the default
//!   - slack: SLACK_HOOK_URL    # a secret holding a Slack-compatible incoming webhook's URL
//!     on: [always]             # (Mattermost and Rocket.Chat take the same)
//!   - email: [dev@example.com, ops@example.com]   # or one address; through the SMTP
//!     on: [failure]                               # server configured (`SPARKY_SMTP`)
//! ```
//!
//! Outcomes: `failure` (failed, timed out, lost), `fixed` (the first success after a
//! failure of the same branch, or of the same pull request), `success` (fixes
//! included), `always` (every end, cancels included).

use serde::Deserialize;

use crate::secrets::valid_secret_name;

/// When a target hears of a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum On {
    Failure,
    Fixed,
    Success,
    Always,
}

/// Where a notification goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A URL that gets the build as JSON, signed with the secret named, if any.
    Webhook { url: String, secret: Option<String> },
    /// The secret holding a Slack-compatible incoming webhook's URL.
    Slack { url_secret: String },
    /// Addresses that get a mail through the configured SMTP server.
    Email { to: Vec<String> },
}

/// One `notify:` entry, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    pub channel: Channel,
    pub on: Vec<On>,
}

/// An entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    webhook: Option<String>,
    secret: Option<String>,
    slack: Option<String>,
    email: Option<OneOrMany>,
    on: Option<Vec<On>>,
}

/// `email: a@example.com` or `email: [a@example.com, b@example.com]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Checks the entries as written; the problem, if any.
pub(super) fn check(raw: Vec<RawNotify>) -> Result<Vec<Notify>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let n = i + 1;
            let channel = match (entry.webhook, entry.slack, entry.email) {
                (Some(url), None, None) => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        return Err(format!("notify entry {n}: webhook {url:?} must be an http(s) URL"));
                    }
                    if let Some(name) = &entry.secret
                        && !valid_secret_name(name)
                    {
                        return Err(format!("notify entry {n}: secret {name:?} must name a secret"));
                    }
                    Channel::Webhook { url, secret: entry.secret }
                }
                (None, Some(name), None) => {
                    if entry.secret.is_some() {
                        return Err(format!(
                            "notify entry {n}: `secret` is for webhooks; Slack's URL is the secret"
                        ));
                    }
                    if !valid_secret_name(&name) {
                        return Err(format!(
                            "notify entry {n}: slack {name:?} must name the secret holding the URL"
                        ));
                    }
                    Channel::Slack { url_secret: name }
                }
                (None, None, Some(to)) => {
                    if entry.secret.is_some() {
                        return Err(format!("notify entry {n}: `secret` is for webhooks"));
                    }
                    Channel::Email { to: addresses(n, to)? }
                }
                _ => {
                    return Err(format!(
                        "notify entry {n} needs exactly one of `webhook`, `slack` or `email`"
                    ));
                }
            };
            let on = entry.on.unwrap_or_else(|| vec![On::Failure, On::Fixed]);
            if on.is_empty() {
                return Err(format!(
                    "notify entry {n}: `on` is empty; say when (failure, fixed, success, always)"
                ));
            }
            Ok(Notify { channel, on })
        })
        .collect()
}

/// The addresses of an `email` entry, each checked.
fn addresses(n: usize, to: OneOrMany) -> Result<Vec<String>, String> {
    let to = match to {
        OneOrMany::One(address) => vec![address],
        OneOrMany::Many(addresses) => addresses,
    };
    if to.is_empty() {
        return Err(format!("notify entry {n}: `email` lists no address"));
    }
    for address in &to {
        if address.parse::<lettre::Address>().is_err() {
            return Err(format!("notify entry {n}: {address:?} is not an email address"));
        }
    }
    Ok(to)
}

impl Notify {
    /// The secrets the entry names.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.channel {
            Channel::Webhook { secret, .. } => secret.iter().map(String::as_str).collect(),
            Channel::Slack { url_secret } => vec![url_secret.as_str()],
            Channel::Email { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(yaml: &str) -> Result<Vec<Notify>, String> {
        check(serde_yaml_ng::from_str::<Vec<RawNotify>>(yaml).map_err(|e| e.to_string())?)
    }

    #[test]
    fn email_takes_one_address_or_a_list_and_checks_each() {
        let one = entries("- email: dev@example.com").expect("valid");
        assert_eq!(one[0].channel, Channel::Email { to: vec!["dev@example.com".into()] });
        assert_eq!(one[0].on, [On::Failure, On::Fixed]);
        let many = entries("- email: [a@example.com, b@example.org]\n  on: [always]").expect("valid");
        assert_eq!(
            many[0].channel,
            Channel::Email { to: vec!["a@example.com".into(), "b@example.org".into()] }
        );
        assert!(many[0].secrets().is_empty());

        let problem = entries("- email: [a@example.com, not-an-address]").expect_err("invalid");
        assert!(problem.contains("\"not-an-address\" is not an email address"), "{problem}");
        let problem = entries("- email: []").expect_err("invalid");
        assert!(problem.contains("lists no address"), "{problem}");
        let problem = entries("- email: a@example.com\n  slack: HOOK").expect_err("invalid");
        assert!(problem.contains("exactly one of `webhook`, `slack` or `email`"), "{problem}");
        let problem = entries("- email: a@example.com\n  secret: KEY").expect_err("invalid");
        assert!(problem.contains("`secret` is for webhooks"), "{problem}");
    }
}
