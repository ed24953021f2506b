//! Sending one delivery (a commit status, a webhook, a Slack message, a mail) and telling what
//! its answer means: sent, try again later
//! (failures on the way, rate limits), or failed for good (the host refused it).

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::{
    MAX_ATTEMPTS, Payload,
    email::{self, NotSent},
    notify::{BUILD_ENDED, SIGNATURE_HEADER, WebhookPost, signature},
    status::StatusPost,
};
use crate::{
    Ctx,
    error::error_chain,
    project::statuses::GitHost,
    secrets::Secret,
    store::{Delivery, Settle},
    time::now_ms,
};

/// One request's time limit; a request that takes longer is tried again (the host may
/// have taken it: a status posted twice is harmless, hosts keep the last per context).
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// The first wait before trying again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How much of a host's error message is kept.
const MAX_REASON: usize = 300;

/// What is being sent, for the outcomes' words.
struct Sending {
    /// `github`, `webhook`, `slack`...
    who: String,
    /// "the status", "the notification".
    what: &'static str,
    /// What was said when it went through: "github success posted".
    said: String,
    /// Where it goes, for "could not reach".
    to: String,
}

/// Sends `delivery` once and says how it went (and counts it in the metrics, by kind
/// and host).
pub async fn send(ctx: &Ctx, delivery: &Delivery) -> Settle {
    let (kind, host, settle) = match serde_json::from_str::<Payload>(&delivery.payload) {
        Ok(payload) => {
            let (kind, host) = target(ctx, &payload);
            (kind, host, deliver(ctx, delivery, &payload).await)
        }
        Err(e) => ("unknown", String::new(), Settle::Failed(format!("unreadable delivery ({e})"))),
    };
    ctx.metrics.delivered(kind, &host, &settle);
    settle
}

/// What a delivery is (`github`, `gitlab`, `gitea`, `webhook`, `slack`, `email`) and
/// the name of the host it goes to (the SMTP server for a mail; none for Slack: its URL
/// is a secret).
fn target(ctx: &Ctx, payload: &Payload) -> (&'static str, String) {
    let host = |url: &str| {
        reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
    };
    match payload {
        Payload::Status(post) => (post.host.as_str(), host(&post.api)),
        Payload::Webhook(post) => ("webhook", host(&post.url)),
        Payload::Slack(_) => ("slack", String::new()),
        Payload::Email(_) => {
            ("email", ctx.config.smtp.as_ref().map(|smtp| smtp.host.clone()).unwrap_or_default())
        }
    }
}

/// Sends `payload` once and says how it went.
async fn deliver(ctx: &Ctx, delivery: &Delivery, payload: &Payload) -> Settle {
    let prepared = match payload {
        Payload::Status(post) => secret(ctx, &post.token).map(|token| {
            let sending = Sending {
                who: post.host.as_str().into(),
                what: "the status",
                said: format!("{} {} posted", post.host.as_str(), post.state),
                to: post.api.clone(),
            };
            (request(ctx, post, token.expose()), sending)
        }),
        Payload::Webhook(post) => {
            let key = match &post.secret {
                Some(name) => secret(ctx, name).map(Some),
                None => Ok(None),
            };
            key.map(|key| {
                let sending = Sending {
                    who: "webhook".into(),
                    what: "the notification",
                    said: format!("webhook notified ({})", post.outcome),
                    to: post.url.clone(),
                };
                (webhook(ctx, post, key.as_ref().map(Secret::expose)), sending)
            })
        }
        Payload::Email(post) => {
            return match email::send(ctx.config.smtp.as_ref(), post).await {
                Ok(said) => Settle::Sent(said),
                Err(NotSent::Later(outcome)) => retry(delivery, outcome),
                Err(NotSent::Never(outcome)) => Settle::Failed(outcome),
            };
        }
        Payload::Slack(post) => secret(ctx, &post.url_secret).map(|url| {
            let sending = Sending {
                who: "slack".into(),
                what: "the message",
                said: format!("slack notified ({})", post.outcome),
                to: "the Slack webhook".into(),
            };
            (ctx.http.post(url.expose()).json(&json!({ "text": post.text })), sending)
        }),
    };
    let (request, sending) = match prepared {
        Ok(prepared) => prepared,
        Err(settle) => return settle,
    };
    let response = match request.timeout(TIMEOUT).send().await {
        Ok(response) => response,
        // The URL may hold a secret (Slack's): the error names `to`, not the request's URL.
        Err(error) => {
            return retry(
                delivery,
                format!("could not reach {}: {}", sending.to, error_chain(&error.without_url())),
            );
        }
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    let said = format!("{status}{}", reason(&body).map(|r| format!(": {r}")).unwrap_or_default());
    if status.is_success() {
        return Settle::Sent(format!("{} ({status})", sending.said));
    }
    if let Some(until) = rate_limited(status, &headers) {
        return Settle::Held {
            until,
            outcome: format!("rate limited ({said}); waiting until the host allows"),
        };
    }
    if status.is_client_error() {
        return Settle::Failed(format!("{} refused {}: {said}", sending.who, sending.what));
    }
    retry(delivery, format!("{} answered {said}", sending.who))
}

/// Another try later, with backoff, or the end of trying.
fn retry(delivery: &Delivery, outcome: String) -> Settle {
    if delivery.attempts + 1 >= MAX_ATTEMPTS {
        Settle::Failed(format!("gave up after {MAX_ATTEMPTS} tries; the last: {outcome}"))
    } else {
        let wait = FIRST_BACKOFF.saturating_mul(1 << delivery.attempts.min(16)).min(MAX_BACKOFF);
        Settle::Retry { at: now_ms() + wait.as_millis() as i64, outcome }
    }
}

/// The value of the secret `name`, or the delivery's failure.
fn secret(ctx: &Ctx, name: &str) -> Result<Secret, Settle> {
    match ctx.projects.secrets().map(|dir| dir.values([name])) {
        Some(Ok(mut values)) => values.remove(name),
        _ => None,
    }
    .ok_or_else(|| Settle::Failed(format!("the secret {name} is missing from the secrets folder")))
}

/// A notification webhook: the build as JSON, a CloudEvent in binary mode, signed.
fn webhook(ctx: &Ctx, post: &WebhookPost, key: Option<&str>) -> reqwest::RequestBuilder {
    let mut request = ctx
        .http
        .post(&post.url)
        .header("content-type", "application/json")
        .header("user-agent", "sparky-ci")
        .header("ce-specversion", "1.0")
        .header("ce-type", BUILD_ENDED)
        .header("ce-source", format!("/sparky/projects/{}", post.project))
        .header("ce-id", format!("sparky-event-{}", post.event_id))
        .header("ce-time", &post.time);
    if let Some(key) = key {
        request = request.header(SIGNATURE_HEADER, signature(key, post.body.as_bytes()));
    }
    request.body(post.body.clone())
}

/// The request that posts `post` on its host.
fn request(ctx: &Ctx, post: &StatusPost, token: &str) -> reqwest::RequestBuilder {
    let http = &ctx.http;
    match post.host {
        GitHost::Github => http
            .post(format!("{}/repos/{}/statuses/{}", post.api, post.repo, post.sha))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", "sparky-ci")
            .json(&json!({
                "state": post.state,
                "target_url": post.target_url,
                "description": post.description,
                "context": post.context,
            })),
        GitHost::Gitlab => http
            .post(format!("{}/projects/{}/statuses/{}", post.api, encode_component(&post.repo), post.sha))
            .header("private-token", token)
            .json(&json!({
                "state": post.state,
                "name": post.context,
                "target_url": post.target_url,
                "description": post.description,
            })),
        GitHost::Gitea => http
            .post(format!("{}/repos/{}/statuses/{}", post.api, post.repo, post.sha))
            .header("authorization", format!("token {token}"))
            .json(&json!({
                "state": post.state,
                "target_url": post.target_url,
                "description": post.description,
                "context": post.context,
            })),
    }
}

/// When a rate-limited host allows the next request: `Retry-After` (seconds), else the
/// reset time (`X-RateLimit-Reset` on GitHub and Gitea, `RateLimit-Reset` on GitLab,
/// Unix seconds); `None` when the answer is not a rate limit.
fn rate_limited(status: StatusCode, headers: &HeaderMap) -> Option<i64> {
    let number = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok())
    };
    let exhausted = number("x-ratelimit-remaining") == Some(0) || number("ratelimit-remaining") == Some(0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (exhausted || headers.contains_key("retry-after")));
    if !limited {
        return None;
    }
    let now = now_ms();
    let at = if let Some(seconds) = number("retry-after") {
        now + seconds.max(1) * 1000
    } else if let Some(reset) = number("x-ratelimit-reset").or_else(|| number("ratelimit-reset")) {
        (reset * 1000).max(now + 1000)
    } else {
        now + 60_000
    };
    Some(at)
}

/// What the host said, from its JSON error (`message`, `error`) or its text, short.
fn reason(body: &str) -> Option<String> {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(value) => {
            let field = |name: &str| {
                value.get(name).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            };
            field("message").or_else(|| field("error"))?
        }
        Err(_) => body.trim().to_string(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).take(MAX_REASON).collect();
    (!text.is_empty()).then_some(text)
}

/// Percent-encodes a path segment (GitLab names a project by its encoded path).
fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_waited_out_and_other_refusals_are_not() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, v.parse().expect("value"));
            }
            map
        };
        let now = now_ms();
        let at =
            rate_limited(StatusCode::TOO_MANY_REQUESTS, &headers(&[("retry-after", "3")])).expect("limited");
        assert!((now + 2_900..now + 4_000).contains(&at), "{at} vs {now}");
        let reset = (now / 1000) + 120;
        let at = rate_limited(
            StatusCode::FORBIDDEN,
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset.to_string())]),
        );
        assert_eq!(at, Some(reset * 1000));
        assert_eq!(rate_limited(StatusCode::FORBIDDEN, &headers(&[])), None, "a plain 403 is a refusal");
        assert_eq!(rate_limited(StatusCode::UNAUTHORIZED, &headers(&[("retry-after", "3")])), None);
        assert_eq!(encode_component("group/sub/app"), "group%2Fsub%2Fapp");
        assert_eq!(reason(r#"{"message":"Bad credentials"}"#).as_deref(), Some("Bad credentials"));
    }
}
