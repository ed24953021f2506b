//! `sparky serve <function>` on AWS Lambda: with `AWS_LAMBDA_RUNTIME_API` set it takes
//! API Gateway HTTP API events from the Lambda Runtime API (a local endpoint following
//! AWS's runtime protocol) instead of listening on a port.

use std::{path::Path, process::Command, time::Duration};

use serde_json::Value;
use sparky_tests::{
    Sparky,
    lambda_runtime::{Answer, RuntimeApi, http_api_event},
    sparky_bin, write_project,
};

/// `sparky serve FUNCTION` with the variables Lambda sets for a function.
fn start_on_lambda(function: &str, api: &RuntimeApi, root: &Path) -> Sparky {
    let mut command = Command::new(sparky_bin());
    command
        .args(["serve", function])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SPARKY_ROOT", root)
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("sparky-{function}"))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/sparky-{function}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]0123456789abcdef")
        .env("AWS_REGION", "eu-west-1")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Sparky::spawn(command)
}

/// Invokes the function with an HTTP API event; returns the API Gateway response.
async fn call(api: &RuntimeApi, function: &Sparky, event: Value) -> Value {
    match api.invoke(event, Duration::from_secs(20)).await {
        Ok(Answer::Response(response)) => response,
        Ok(Answer::Error(error)) => panic!("the function reported an error: {error}\n{}", function.log()),
        Err(error) => panic!("{error:#}\n{}", function.log()),
    }
}

fn body_json(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn functions_answer_api_gateway_http_events_through_the_runtime_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo built\n");
    let trigger_api = RuntimeApi::start().await.expect("runtime API");
    let ui_api = RuntimeApi::start().await.expect("runtime API");
    let trigger = start_on_lambda("trigger", &trigger_api, dir.path());
    let ui = start_on_lambda("render-ui", &ui_api, dir.path());

    let health = call(&ui_api, &ui, http_api_event("GET", "/healthz", &[], None)).await;
    assert_eq!(
        (health["statusCode"].as_u64(), health["body"].as_str()),
        (Some(200), Some("ok\n")),
        "{health}"
    );

    // A build requested through API Gateway is queued, with its URL in Location...
    let request_build = |body: &'static str| {
        http_api_event(
            "POST",
            "/api/v1/projects/app/builds",
            &[("content-type", "application/json")],
            Some(body),
        )
    };
    let created = call(&trigger_api, &trigger, request_build(r#"{"description": "from Lambda"}"#)).await;
    assert_eq!(created["statusCode"].as_u64(), Some(201), "{created}");
    let build = body_json(&created);
    let id = build["id"].as_i64().expect("build id");
    assert_eq!(build["status"], "queued");
    assert_eq!(created["headers"]["location"], format!("/builds/{id}"), "{created}");

    // ...and readable through the other function, with the query string passed on.
    let read = call(&ui_api, &ui, http_api_event("GET", &format!("/api/v1/builds/{id}"), &[], None)).await;
    assert_eq!(read["statusCode"].as_u64(), Some(200), "{read}");
    assert_eq!(
        (body_json(&read)["project"].as_str(), body_json(&read)["description"].as_str()),
        (Some("app"), Some("from Lambda"))
    );
    let page =
        call(&ui_api, &ui, http_api_event("GET", "/api/v1/projects/app/builds?limit=1", &[], None)).await;
    assert_eq!(body_json(&page)["builds"].as_array().map(Vec::len), Some(1), "{page}");

    let missing = call(&ui_api, &ui, http_api_event("GET", "/api/v1/builds/999999", &[], None)).await;
    assert_eq!(missing["statusCode"].as_u64(), Some(404), "{missing}");
    let bad = call(&trigger_api, &trigger, request_build("{not json")).await;
    assert_eq!(bad["statusCode"].as_u64(), Some(400), "{bad}");
    assert!(body_json(&bad)["error"].is_string(), "{bad}");
}
