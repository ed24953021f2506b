//! `notify:` in sparky.yaml: who hears how builds end.
//!
//! ```yaml
//! notify:
//!   - webhook: https://hooks.example.com/ci   # JSON, CloudEvents binary mode
//!     secret: HOOK_KEY         # optional: HMAC-SHA256 of the body, X-Sparky-Signature-256
//!     on: [failure, fixed]     # the default
//!   - slack: SLACK_HOOK_URL    # a secret holding a Slack-compatible incoming webhook's URL
//!     on: [always]             # (Mattermost and Rocket.Chat take the same)
//! ```
//!
//! Outcomes: `failure` (failed, timed out, lost), `fixed` (the first success after a
//! failure), `success`, `always` (every end, cancels included).

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
    on: Option<Vec<On>>,
}

/// Checks the entries as written; the problem, if any.
pub(super) fn check(raw: Vec<RawNotify>) -> Result<Vec<Notify>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let n = i + 1;
            let channel = match (entry.webhook, entry.slack) {
                (Some(url), None) => {
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
                (None, Some(name)) => {
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
                _ => return Err(format!("notify entry {n} needs exactly one of `webhook` or `slack`")),
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

impl Notify {
    /// The secrets the entry names.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.channel {
            Channel::Webhook { secret, .. } => secret.iter().map(String::as_str).collect(),
            Channel::Slack { url_secret } => vec![url_secret.as_str()],
        }
    }
}
