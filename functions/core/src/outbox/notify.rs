//! Notifications: when a build ends, each `notify:` entry whose `on` matches how it
//! ended gets a delivery — a JSON webhook (CloudEvents binary mode, signed with
//! HMAC-SHA256 when a secret is named), a Slack-compatible message or a mail.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    Ctx,
    api::{BuildJson, build_url},
    model::{Build, BuildStatus, Event},
    project::{
        ProjectConfig,
        notify::{Channel, On},
    },
    time::{human_duration, rfc3339},
};

use super::{Payload, email::EmailPost};

/// The CloudEvent type of a notification.
pub const BUILD_ENDED: &str = "dev.sparky.build.ended";
/// The header with the body's signature: `sha256=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-sparky-signature-256";

/// A JSON webhook to call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPost {
    pub url: String,
    /// The secret to sign the body with, by name.
    pub secret: Option<String>,
    /// The body, exactly as sent (and signed).
    pub body: String,
    pub outcome: String,
    pub project: String,
    pub event_id: i64,
    pub time: String,
}

/// A Slack-compatible message to post.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackPost {
    /// The secret holding the incoming webhook's URL, by name.
    pub url_secret: String,
    pub text: String,
    pub outcome: String,
}

/// How a build ended, in `on:` words; `fixed` needs the previous ending of the same
/// branch or pull request ([`crate::store::Store::previous_ending`]). `None`: canceled.
fn outcome(status: BuildStatus, previous: Option<BuildStatus>) -> Option<(On, &'static str)> {
    match status {
        BuildStatus::Succeeded if previous.is_some_and(failed) => Some((On::Fixed, "fixed")),
        BuildStatus::Succeeded => Some((On::Success, "success")),
        status if failed(status) => Some((On::Failure, "failure")),
        _ => None,
    }
}

fn failed(status: BuildStatus) -> bool {
    matches!(status, BuildStatus::Failed | BuildStatus::TimedOut | BuildStatus::Lost)
}

/// Whether a target with `on` hears of a build that ended so (`None`: canceled): a fix
/// is a success too, and `always` hears of everything, cancels included.
fn wanted(on: &[On], ended: Option<On>) -> bool {
    on.contains(&On::Always)
        || ended.is_some_and(|ended| on.contains(&ended) || (ended == On::Fixed && on.contains(&On::Success)))
}

/// The notifications a terminal `event` of `build` makes, with their targets
/// (`notify:N`).
pub async fn derive(
    ctx: &Ctx,
    config: &ProjectConfig,
    build: &Build,
    event: &Event,
) -> Vec<(String, Payload)> {
    if !event.to.is_terminal() || config.notify.is_empty() {
        return Vec::new();
    }
    let previous = ctx.store.previous_ending(build).await.ok().flatten();
    let ended = outcome(build.status, previous);
    let words = ended.map_or("canceled", |(_, w)| w);
    let url = ctx.config.public_url.as_deref().map(|base| format!("{base}{}", build_url(build.id)));
    let mut made = Vec::new();
    for (i, notify) in config.notify.iter().enumerate() {
        if !wanted(&notify.on, ended.map(|(on, _)| on)) {
            continue;
        }
        let payload = match &notify.channel {
            Channel::Webhook { url: target, secret } => {
                let body =
                    serde_json::json!({ "outcome": words, "url": url, "build": BuildJson::from(build) });
                Payload::Webhook(WebhookPost {
                    url: target.clone(),
                    secret: secret.clone(),
                    body: body.to_string(),
                    outcome: words.into(),
                    project: build.project.clone(),
                    event_id: event.id,
                    time: rfc3339(event.at),
                })
            }
            Channel::Slack { url_secret } => {
                let link = url.as_ref().map_or(format!("#{}", build.id), |u| format!("<{u}|#{}>", build.id));
                let text = format!("Sparky: build {link} of {} {}: {words}", build.project, build.status);
                Payload::Slack(SlackPost { url_secret: url_secret.clone(), text, outcome: words.into() })
            }
            Channel::Email { to } => Payload::Email(mail(build, to, words, url.as_deref())),
        };
        made.push((format!("notify:{}", i + 1), payload));
    }
    made
}

/// The mail telling `to` how `build` ended (`words`), linking to its page at `url`.
fn mail(build: &Build, to: &[String], words: &str, url: Option<&str>) -> EmailPost {
    let status = build.status.to_string();
    let subject = if words == "fixed" {
        format!("[sparky] {} #{} fixed ({status})", build.project, build.id)
    } else {
        format!("[sparky] {} #{} {status}", build.project, build.id)
    };
    let mut lines = vec![format!("Build #{} of {} {status}.", build.id, build.project), String::new()];
    if let Some(url) = url {
        lines.push(format!("Build:       {url}"));
    }
    lines.push(format!("Trigger:     {}", build.trigger));
    if let Some(pull) = &build.pull_request {
        lines.push(format!(
            "Request:     #{} ({} into {})",
            pull.number, pull.source_branch, pull.target_branch
        ));
    } else if let Some(branch) = &build.scm.branch {
        lines.push(format!("Branch:      {branch}"));
    }
    if let Some(sha) = &build.scm.sha {
        lines.push(format!("Commit:      {sha}"));
    }
    if let Some(description) = &build.description {
        lines.push(format!("Description: {description}"));
    }
    if let (Some(start), Some(end)) = (build.started_at, build.finished_at) {
        lines.push(format!("Took:        {}", human_duration(end - start)));
    }
    if let Some(error) = &build.error {
        lines.push(format!("Why:         {error}"));
    }
    lines.extend([String::new(), "-- ".into(), "Sparky CI".into()]);
    EmailPost { to: to.to_vec(), subject, body: lines.join("\n") + "\n", outcome: words.into() }
}

/// `sha256=<hex HMAC-SHA256 of body with key>`.
pub fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_hears_the_endings_its_on_names() {
        use BuildStatus::*;
        let ended = |status, previous| outcome(status, previous).map(|(on, _)| on);
        assert_eq!(ended(Succeeded, None), Some(On::Success), "the first build");
        assert_eq!(ended(Succeeded, Some(Succeeded)), Some(On::Success));
        for before in [Failed, TimedOut, Lost] {
            assert_eq!(ended(Succeeded, Some(before)), Some(On::Fixed), "after {before}");
        }
        for status in [Failed, TimedOut, Lost] {
            assert_eq!(ended(status, Some(Failed)), Some(On::Failure), "{status}");
        }
        assert_eq!(ended(Canceled, Some(Failed)), None);

        let (success, fixed, failure, canceled) =
            (Some(On::Success), Some(On::Fixed), Some(On::Failure), None);
        let hears = |on: &[On]| [success, fixed, failure, canceled].map(|e| wanted(on, e));
        // success, fixed, failure, canceled
        assert_eq!(hears(&[On::Success]), [true, true, false, false], "a fix is a success");
        assert_eq!(hears(&[On::Failure, On::Fixed]), [false, true, true, false], "the default");
        assert_eq!(hears(&[On::Fixed]), [false, true, false, false]);
        assert_eq!(hears(&[On::Always]), [true, true, true, true], "cancels included");
        assert_eq!(hears(&[]), [false, false, false, false]);
    }
}
