//! An S3-compatible store that rejects the AWS SDK's newer default request checksums,
//! as many do (older MinIO and Ceph RGW, other vendors' S3 APIs): a reverse proxy in
//! front of a real `moto_server` that answers `400 InvalidArgument` to any request
//! carrying flexible-checksum headers (`x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm`,
//! `x-amz-trailer`) or an `aws-chunked` body, and forwards everything else unchanged.
//! It counts what it refused, by method and query.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::StatusCode,
    response::Response,
};
use futures_util::TryStreamExt;

/// What the proxy refused: `METHOD ?query` per request.
pub type Refused = Arc<Mutex<Vec<String>>>;

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    refused: Refused,
}

/// A running proxy; stops when the test's runtime ends.
pub struct StrictS3 {
    pub endpoint: String,
    pub refused: Refused,
}

impl StrictS3 {
    /// Starts the proxy on a free port in front of `upstream` (e.g. a moto endpoint).
    pub async fn start(upstream: &str) -> StrictS3 {
        let refused = Refused::default();
        let state = Upstream {
            base: upstream.to_string(),
            http: sparky_core::tls::client(),
            refused: refused.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        // It serves as long as the test runs.
        let (endpoint, _serving) = crate::serve_site(app).await;
        StrictS3 { endpoint, refused }
    }
}

fn uses_new_checksums(request: &Request) -> bool {
    let headers = request.headers();
    headers.keys().any(|name| {
        let name = name.as_str();
        name.starts_with("x-amz-checksum-")
            || name == "x-amz-sdk-checksum-algorithm"
            || name == "x-amz-trailer"
    }) || headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("aws-chunked"))
}

async fn forward(State(up): State<Upstream>, request: Request) -> Response {
    if uses_new_checksums(&request) {
        let what = format!("{} ?{}", request.method(), request.uri().query().unwrap_or_default());
        if let Ok(mut refused) = up.refused.lock() {
            refused.push(what);
        }
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidArgument</Code>\
                    <Message>x-amz-checksum headers are not supported</Message></Error>";
        return answer(StatusCode::BAD_REQUEST, Vec::new(), Body::from(body));
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return answer(StatusCode::PAYLOAD_TOO_LARGE, Vec::new(), Body::empty());
    };
    let url = format!("{}{}", up.base, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let method =
        reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut outgoing = up.http.request(method, url).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    match outgoing.send().await {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let headers: Vec<(String, Vec<u8>)> = reply
                .headers()
                .iter()
                .filter(|(name, _)| name.as_str() != "transfer-encoding" && name.as_str() != "connection")
                .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                .collect();
            answer(status, headers, Body::from_stream(reply.bytes_stream().map_err(std::io::Error::other)))
        }
        Err(_) => answer(StatusCode::BAD_GATEWAY, Vec::new(), Body::empty()),
    }
}

fn answer(status: StatusCode, headers: Vec<(String, Vec<u8>)>, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), axum::http::HeaderValue::from_bytes(&value))
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
