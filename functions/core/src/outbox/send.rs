//! Sending one delivery and telling what its answer means: sent, try again later
//! (failures on the way, rate limits), or failed for good (the host refused it).

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::{MAX_ATTEMPTS, status::StatusPost};
use crate::{
    Ctx,
    error::error_chain,
    project::statuses::GitHost,
    store::{Delivery, Settle},
    time::now_ms,
};

/// One request's time limit.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The first wait before trying again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How much of a host's error message is kept.
const MAX_REASON: usize = 300;

/// Sends `delivery` once and says how it went.
pub async fn send(ctx: &Ctx, delivery: &Delivery) -> Settle {
    let post: StatusPost = match serde_json::from_str(&delivery.payload) {
        Ok(post) => post,
        Err(e) => return Settle::Failed(format!("unreadable delivery ({e})")),
    };
    let token = match ctx.projects.secrets().map(|dir| dir.values([post.token.as_str()])) {
        Some(Ok(mut values)) => values.remove(&post.token),
        _ => None,
    };
    let Some(token) = token else {
        return Settle::Failed(format!("the token secret {} is missing from the secrets folder", post.token));
    };
    let request = request(ctx, &post, token.expose()).timeout(TIMEOUT);
    let retry = |outcome: String| {
        if delivery.attempts + 1 >= MAX_ATTEMPTS {
            Settle::Failed(format!("gave up after {MAX_ATTEMPTS} tries; the last: {outcome}"))
        } else {
            let wait = FIRST_BACKOFF.saturating_mul(1 << delivery.attempts.min(16)).min(MAX_BACKOFF);
            Settle::Retry { at: now_ms() + wait.as_millis() as i64, outcome }
        }
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return retry(format!("could not reach {}: {}", post.api, error_chain(&error))),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    let said = format!("{status}{}", reason(&body).map(|r| format!(": {r}")).unwrap_or_default());
    if status.is_success() {
        return Settle::Sent(format!("{} {} posted ({status})", post.host.as_str(), post.state));
    }
    if let Some(until) = rate_limited(status, &headers) {
        return Settle::Held {
            until,
            outcome: format!("rate limited ({said}); waiting until the host allows"),
        };
    }
    if status.is_client_error() {
        return Settle::Failed(format!("{} refused the status: {said}", post.host.as_str()));
    }
    retry(format!("{} answered {said}", post.host.as_str()))
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
