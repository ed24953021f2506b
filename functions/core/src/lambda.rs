//! Serving a function through AWS Lambda: when `AWS_LAMBDA_RUNTIME_API` is set,
//! `sparky serve <function>` takes its requests from the Lambda Runtime API through
//! `lambda_http`, with the same router it serves on a port otherwise.
//!
//! Requests arrive as API Gateway HTTP API events (payload format 2.0), which Lambda
//! function URLs send too. Responses are buffered: a streamed one (run's heartbeats
//! while a build runs, render-ui's live log) reaches the caller whole when it ends, so
//! a build served this way must end within the function's Lambda timeout.

use axum::Router;

/// The Lambda runtime stopped: the Runtime API could not be reached, or answered
/// something the runtime could not use.
#[derive(Debug, thiserror::Error)]
#[error("the Lambda runtime stopped")]
pub struct LambdaError(#[source] lambda_http::Error);

/// Takes invocations from the Lambda Runtime API and answers each with `router`, one
/// at a time, until the runtime stops. Reads the `AWS_LAMBDA_*` variables Lambda sets.
pub async fn serve(router: Router) -> Result<(), LambdaError> {
    lambda_http::run(router).await.map_err(LambdaError)
}
