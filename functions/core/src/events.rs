//! CloudEvents, as Knative delivers them: binary mode (attributes in `ce-*` headers,
//! the data as the body) and structured mode (`application/cloudevents+json`).

use http::{HeaderMap, HeaderValue};
use serde_json::Value;

/// dispatch → run: run this build. Data: `{"build_id": N}`.
pub const BUILD_RUN: &str = "dev.sparky.build.run";
/// trigger/run → dispatch: something changed, look at the queue.
pub const DISPATCH_POKE: &str = "dev.sparky.dispatch.poke";
/// Knative PingSource ticks.
pub const PING: &str = "dev.knative.sources.ping";

/// The attributes Sparky reads, and the data.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub kind: String,
    pub time: Option<String>,
    pub data: Value,
}

/// A request that is not a CloudEvent Sparky can read.
#[derive(Debug, thiserror::Error)]
#[error("not a CloudEvent: {0}")]
pub struct EventError(pub String);

impl CloudEvent {
    pub fn new(kind: &str, source: &str, data: Value) -> Self {
        CloudEvent {
            id: format!("{}-{}", std::process::id(), crate::time::now_ms()),
            source: source.into(),
            kind: kind.into(),
            time: Some(chrono::Utc::now().to_rfc3339()),
            data,
        }
    }

    /// Reads an event in either content mode.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<CloudEvent, EventError> {
        let content_type = header(headers, "content-type").unwrap_or_default();
        if content_type.starts_with("application/cloudevents+json") {
            let mut doc: serde_json::Map<String, Value> = serde_json::from_slice(body)
                .map_err(|e| EventError(format!("structured event body is not a JSON object: {e}")))?;
            let mut take = |name: &str| match doc.remove(name) {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            let (id, source, kind, time) = (take("id"), take("source"), take("type"), take("time"));
            let data = match doc.remove("data") {
                Some(data) => data,
                None => match doc.remove("data_base64") {
                    Some(Value::String(b64)) => Value::String(b64),
                    _ => Value::Null,
                },
            };
            return Ok(CloudEvent {
                id: id.ok_or_else(|| EventError("missing `id`".into()))?,
                source: source.ok_or_else(|| EventError("missing `source`".into()))?,
                kind: kind.ok_or_else(|| EventError("missing `type`".into()))?,
                time,
                data,
            });
        }
        let need =
            |name: &str| header(headers, name).ok_or_else(|| EventError(format!("missing `{name}` header")));
        if need("ce-specversion")? != "1.0" {
            return Err(EventError("only CloudEvents 1.0 is understood".into()));
        }
        let data = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()))
        };
        Ok(CloudEvent {
            id: need("ce-id")?,
            source: need("ce-source")?,
            kind: need("ce-type")?,
            time: header(headers, "ce-time"),
            data,
        })
    }

    /// Binary-mode headers for sending this event (the body is `data` as JSON).
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("ce-specversion", "1.0");
        set("ce-id", &self.id);
        set("ce-source", &self.source);
        set("ce-type", &self.kind);
        if let Some(time) = &self.time {
            set("ce-time", time);
        }
        set("content-type", "application/json");
        headers
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_content_modes() {
        let sent = CloudEvent::new(BUILD_RUN, "/dispatch", serde_json::json!({"build_id": 7}));
        let body = serde_json::to_vec(&sent.data).expect("json");
        let got = CloudEvent::parse(&sent.headers(), &body).expect("binary");
        assert_eq!(got, sent);

        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/cloudevents+json"));
        let body = br#"{"specversion":"1.0","id":"1","source":"/ping","type":"dev.knative.sources.ping","time":"2026-11-25T08:00:00Z","data":{"x":1}}"#;
        let got = CloudEvent::parse(&headers, body).expect("structured");
        assert_eq!(got.kind, PING);
        assert_eq!(got.time.as_deref(), Some("2026-11-25T08:00:00Z"));
        assert_eq!(got.data, serde_json::json!({"x": 1}));

        assert!(CloudEvent::parse(&HeaderMap::new(), b"{}").is_err());
    }
}
