//! The command line's client of the HTTP API: `sparky build`, `rebuild`, `cancel`,
//! `status`, `list` and `logs`. Each command makes one or two API calls and prints the
//! answer for people, or with `--json` the API's JSON as it came.
//!
//! # Layout
//! - [`settings`]: where the server and the token come from: flags, then the
//!   environment, then the settings file.
//! - [`commands`]: the commands.
//! - [`follow`]: following a build's log through its server-sent events.
//! - [`show`]: builds and projects as text for people.
//! - this file: talking to the server, and how a command ends ([`Exit`], [`Failure`]).

pub mod commands;
pub mod follow;
pub mod settings;
pub mod show;

use std::process::ExitCode;

use anyhow::anyhow;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

pub use settings::{ClientArgs, Settings};

/// How a command ended, as its exit code. docs/api.md lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; with `--follow`, the build succeeded.
    Ok = 0,
    /// With `--follow`: the build ended `failed`, `canceled`, `timed_out` or `lost`.
    BuildDidNotSucceed = 1,
    /// The command line or the settings file is wrong; nothing was asked of the server.
    Usage = 2,
    /// The server refused (a 4xx): no such build or project, a wrong token, a bad
    /// parameter, a build that already finished.
    Refused = 3,
    /// The server could not be reached, failed (a 5xx), or its answer was not the API's.
    Unavailable = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{status}: {message}")]
    Refused { status: StatusCode, message: String },
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Failure {
    pub fn exit(&self) -> Exit {
        match self {
            Failure::Usage(_) | Failure::Output(_) => Exit::Usage,
            Failure::Refused { .. } => Exit::Refused,
            Failure::Unavailable(_) => Exit::Unavailable,
        }
    }
}

/// One Sparky server, reached with the token if there is one.
pub struct Server {
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Server {
    pub fn new(settings: Settings) -> Self {
        Server { base: settings.server, token: settings.token, http: sparky_core::tls::client() }
    }

    /// A request to `path` (which starts with `/`), carrying the token.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; anything but a 2xx answer is a [`Failure`].
    async fn send(&self, request: RequestBuilder) -> Result<Response, Failure> {
        let response = request.send().await.map_err(|e| {
            Failure::Unavailable(anyhow!(e).context(format!("could not reach Sparky at {}", self.base)))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body.get("error").and_then(Value::as_str).unwrap_or("no details").to_string();
        if status.is_client_error() {
            Err(Failure::Refused { status, message })
        } else {
            Err(Failure::Unavailable(anyhow!("{status}: {message}")))
        }
    }

    /// `GET path`, answered with JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, Failure> {
        let response = self.send(self.request(Method::GET, path)).await?;
        self.json(response).await
    }

    /// `POST path` with `body` as JSON (or no body), answered with JSON.
    pub async fn post_json(&self, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let mut request = self.request(Method::POST, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        self.json(response).await
    }

    /// `GET path`, the answer as it comes (a log).
    pub async fn get_raw(&self, path: &str) -> Result<Response, Failure> {
        self.send(self.request(Method::GET, path)).await
    }

    async fn json(&self, response: Response) -> Result<Value, Failure> {
        response.json().await.map_err(|e| {
            Failure::Unavailable(
                anyhow!(e).context(format!("{} did not answer with the API's JSON", self.base)),
            )
        })
    }
}
