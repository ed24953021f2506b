//! Reading a trigger request. The API sends JSON (`{"params": {...}, "description":
//! "..."}`, or no body at all); the UI's Run form sends `application/x-www-form-urlencoded`
//! fields, where `description`, `_token` and `_csrf` are special and every other field is a
//! parameter (the last value of a repeated field wins, so that a hidden `false` before
//! a checkbox stands when the box is unticked). A form-labelled body that opens with
//! `{` is read as JSON, because that is what `curl -d '{...}'` sends.

use std::collections::BTreeMap;

use axum::body::Body;
use http::{HeaderMap, header};
use serde::Deserialize;
use sparky_core::{
    api::{ApiError, read_body},
    project::params::ParamValue,
};

/// A request to build, however it arrived.
#[derive(Debug, Default)]
pub struct TriggerRequest {
    pub params: BTreeMap<String, ParamValue>,
    pub description: Option<String>,
    /// The API token, when a form carries it instead of a header.
    pub form_token: Option<String>,
    /// A logged-in person's form token (`_csrf`).
    pub form_csrf: Option<String>,
    /// Answer with a redirect to the build's page instead of JSON.
    pub from_form: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    #[serde(default)]
    params: BTreeMap<String, ParamValue>,
    description: Option<String>,
}

/// The longest description kept.
const MAX_DESCRIPTION: usize = 2000;

pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// Reads and parses the body of a trigger request.
pub async fn read(headers: &HeaderMap, body: Body) -> Result<TriggerRequest, ApiError> {
    let bytes = read_body(headers, body).await?;
    // `curl -d '{...}'` labels JSON as a form; a body that opens with `{` is JSON.
    let looks_like_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let mut request = if is_form(headers) && !looks_like_json {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed form body: {e}")))?;
        let mut request = TriggerRequest { from_form: true, ..TriggerRequest::default() };
        for (name, value) in fields {
            match name.as_str() {
                "description" => request.description = Some(value),
                "_token" => request.form_token = Some(value),
                "_csrf" => request.form_csrf = Some(value),
                _ => {
                    request.params.insert(name, ParamValue::Text(value));
                }
            }
        }
        request
    } else if bytes.iter().all(u8::is_ascii_whitespace) {
        TriggerRequest::default()
    } else {
        let body: JsonBody = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
        TriggerRequest { params: body.params, description: body.description, ..TriggerRequest::default() }
    };
    request.description = request
        .description
        .map(|d| d.trim().chars().take(MAX_DESCRIPTION).collect::<String>())
        .filter(|d| !d.is_empty());
    Ok(request)
}

/// The `Idempotency-Key` header, if any (at most 200 bytes of visible ASCII).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 200 => Ok(Some(key.to_string())),
        _ => Err(ApiError::BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters".into())),
    }
}
