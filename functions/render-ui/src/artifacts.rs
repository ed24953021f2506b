//! A build's artifacts: the list its page shows (paths and sizes, from report storage,
//! so any process sees them), `GET /builds/{id}/artifacts/{path}` to download one
//! (streamed, with a content type from its name), and `GET /builds/{id}/report.json`.
//!
//! Artifacts are whatever a job wrote, served from Sparky's own origin, so every one
//! goes out with `Content-Security-Policy: sandbox` and `nosniff`: an HTML report can
//! be read in the browser but its scripts can't act as the user. Paths with `..`,
//! empty segments (`//`, a leading `/`) or control characters are refused with 400.

use axum::{
    body::Body,
    extract::{Path, State},
    response::Response,
};
use http::{HeaderValue, header};
use serde::Serialize;
use sparky_core::{
    Ctx,
    api::{ApiError, artifact_url, encode_path},
    reports::{Key, ReportError},
};

use crate::{query, view::human_size};

/// An artifact as the build page lists it.
#[derive(Debug, Serialize)]
pub struct ArtifactView {
    pub path: String,
    pub size: String,
    pub bytes: u64,
    /// Percent-encoded link.
    pub url: String,
}

/// The artifacts of build `id`, in path order.
pub async fn list(ctx: &Ctx, project: &str, id: i64) -> Result<Vec<ArtifactView>, ApiError> {
    let prefix = Key::artifacts_prefix(project, id);
    let objects = ctx.reports.list(&prefix).await?;
    Ok(objects
        .into_iter()
        .filter_map(|object| {
            let path = object.key.strip_prefix(&prefix)?.to_string();
            Some(ArtifactView {
                url: artifact_url(id, &path),
                size: human_size(object.size),
                bytes: object.size,
                path,
            })
        })
        .collect())
}

/// `GET /builds/{id}/artifacts/{path}`
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn download(
    State(ctx): State<Ctx>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = query::build_id(&id)?;
    let build = ctx.store.build(id).await?.ok_or_else(|| query::no_build(id))?;
    let key = artifact_key(&build.project, id, &path)?;
    let object = ctx
        .reports
        .get(&key, None)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("build {id} has no artifact {path:?}")))?;
    let kind = content_type(&path);
    let mut response = Response::new(Body::from_stream(object.body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.len));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    let name = path.rsplit('/').next().unwrap_or(&path);
    let disposition = if kind == OCTET_STREAM { "attachment" } else { "inline" };
    if let Ok(value) =
        HeaderValue::from_str(&format!("{disposition}; filename*=UTF-8''{}", encode_path(name)))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `GET /builds/{id}/artifacts/`: a download needs an artifact's path.
pub async fn no_path() -> ApiError {
    ApiError::BadRequest("give the artifact's path after /artifacts/; the build's page lists them".into())
}

/// `GET /builds/{id}/report.json`: the build's stored report (404 until it ends).
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn report(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = query::build_id(&id)?;
    let build = ctx.store.build(id).await?.ok_or_else(|| query::no_build(id))?;
    let object = ctx.reports.get(&Key::report(&build.project, id)?, None).await?.ok_or_else(|| {
        ApiError::NotFound(format!("build {id} has no report.json (yet: it is written when the build ends)"))
    })?;
    let mut response = Response::new(Body::from_stream(object.body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.len));
    Ok(response)
}

/// The key of artifact `path` of a build, or a 400 saying why there can't be one.
fn artifact_key(project: &str, id: i64, path: &str) -> Result<Key, ApiError> {
    if path.starts_with('/') {
        return Err(ApiError::BadRequest(format!("artifact path {path:?}: absolute paths are refused")));
    }
    Key::new(format!("{}{path}", Key::artifacts_prefix(project, id))).map_err(|e| match e {
        ReportError::InvalidKey { problem, .. } => {
            ApiError::BadRequest(format!("artifact path {path:?} is refused: it {problem}"))
        }
        other => ApiError::from(other),
    })
}

const OCTET_STREAM: &str = "application/octet-stream";

/// A content type from a file name's extension.
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if name.ends_with(".tar.gz") {
        return "application/gzip";
    }
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "txt" | "log" | "md" | "out" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        _ => OCTET_STREAM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_encoding_and_refusals() {
        assert_eq!(content_type("reports/junit.XML"), "application/xml");
        assert_eq!(content_type("app.tar.gz"), "application/gzip");
        assert_eq!(content_type("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("binary"), OCTET_STREAM);
        assert!(artifact_key("app", 1, "dir/file.txt").is_ok());
        for bad in ["../../sparky.db", "a/../../b", "/etc/passwd", "a//b", "a/./b"] {
            assert!(matches!(artifact_key("app", 1, bad), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }
}
