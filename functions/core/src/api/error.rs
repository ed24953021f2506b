//! [`ApiError`]: everything a handler can fail with, mapped to a status code and a JSON
//! body a person can act on. The whole cause chain goes to the log; the client is told
//! nothing internal. A busy database is a `503` with `Retry-After`.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{StatusCode, header};

use crate::{error::error_chain, reports::ReportError, store::StoreError};

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the database is busy; retry in a moment")]
    Busy,
    #[error("internal error; the server log has the details")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A missing or wrong API token.
    pub fn bad_token() -> Self {
        ApiError::Unauthorized(
            "missing or wrong API token: send `Authorization: Bearer <token>` with the value of SPARKY_API_TOKEN".into(),
        )
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A build id from a path: a positive integer, else a 404 for a build that can't exist.
pub fn build_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| no_build(text))
}

/// The 404 for a build that does not exist.
pub fn no_build(id: impl std::fmt::Display) -> ApiError {
    ApiError::NotFound(format!("there is no build {id}"))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() { ApiError::Busy } else { ApiError::internal(e) }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        ApiError::internal(e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "request failed");
            }
            ApiError::Busy => tracing::warn!("database busy; answered 503"),
            _ => {}
        }
        let mut response = (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        response
    }
}
