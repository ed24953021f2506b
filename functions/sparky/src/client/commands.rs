//! The client commands. Each prints for people, or with `--json` puts the API's JSON on
//! stdout and nothing else there (a log then goes to stderr; with `--follow` the JSON
//! is the build as it ended). Failures go to stderr, and say themselves in the exit code.

use std::io::Write;

use anyhow::{Context as _, anyhow};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use sparky_core::{Config, api::encode_path};

use super::{ClientArgs, Exit, Failure, Server, Settings, follow::follow, show};

/// What a new build is asked with: `sparky build` and `sparky rebuild`.
#[derive(clap::Args, Debug)]
pub struct Request {
    /// A build parameter (for a rebuild: one to change); repeat for more.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A description for the build [rebuild's default: Rebuild of #ID].
    #[arg(short, long)]
    description: Option<String>,
    /// Stream the log until the build ends; exit 0 only if it succeeded.
    #[arg(short, long)]
    follow: bool,
}

impl Request {
    /// The API's request body: the parameters and description given, nothing else.
    fn body(self) -> Result<Value, Failure> {
        let mut body = Map::new();
        let params = parse_params(&self.params)?;
        if !params.is_empty() {
            body.insert("params".into(), Value::Object(params));
        }
        if let Some(description) = self.description {
            body.insert("description".into(), Value::String(description));
        }
        Ok(Value::Object(body))
    }
}

/// `sparky build PROJECT [-p NAME=VALUE]... [-d TEXT] [--follow]`
pub async fn build(
    config: &Config,
    args: &ClientArgs,
    project: &str,
    request: Request,
) -> Result<Exit, Failure> {
    let follow = request.follow;
    let body = request.body()?;
    let server = connect(config, args)?;
    let path = format!("/api/v1/projects/{}/builds", encode_path(project));
    let answer = server.post_json(&path, Some(&body)).await?;
    queued(&server, &answer, follow, args.json).await
}

/// `sparky rebuild ID [-p NAME=VALUE]... [-d TEXT] [--follow]`: the earlier build's
/// parameters, except those given.
pub async fn rebuild(config: &Config, args: &ClientArgs, id: i64, request: Request) -> Result<Exit, Failure> {
    let follow = request.follow;
    let body = request.body()?;
    let server = connect(config, args)?;
    let answer = server.post_json(&format!("/api/v1/builds/{id}/rebuild"), Some(&body)).await?;
    queued(&server, &answer, follow, args.json).await
}

/// `sparky cancel ID`
pub async fn cancel(config: &Config, args: &ClientArgs, id: i64) -> Result<Exit, Failure> {
    let server = connect(config, args)?;
    let answer = server.post_json(&format!("/api/v1/builds/{id}/cancel"), None).await?;
    if args.json {
        return print_json(&answer);
    }
    let text = match answer["status"].as_str() {
        Some("cancel_requested") => format!("build {id}: cancel requested; it stops within seconds\n"),
        Some(status) => format!("build {id}: {status}\n"),
        None => format!("build {id}: cancel asked\n"),
    };
    print(&text)
}

/// `sparky status ID`
pub async fn status(config: &Config, args: &ClientArgs, id: i64) -> Result<Exit, Failure> {
    let server = connect(config, args)?;
    let build = server.get_json(&format!("/api/v1/builds/{id}")).await?;
    if args.json {
        return print_json(&build);
    }
    print(&show::build(&build, &server.base))
}

/// `sparky list [PROJECT] [--limit N]`: every project with its last build, or a
/// project's recent builds.
pub async fn list(
    config: &Config,
    args: &ClientArgs,
    project: Option<&str>,
    limit: u32,
) -> Result<Exit, Failure> {
    let server = connect(config, args)?;
    let (answer, text): (Value, fn(&Value) -> String) = match project {
        None => (server.get_json("/api/v1/projects").await?, show::projects),
        Some(project) => {
            let path = format!("/api/v1/projects/{}/builds?limit={limit}", encode_path(project));
            (server.get_json(&path).await?, show::builds)
        }
    };
    if args.json {
        return print_json(&answer);
    }
    print(&text(&answer))
}

/// `sparky logs ID [--follow]`
pub async fn logs(config: &Config, args: &ClientArgs, id: i64, follow: bool) -> Result<Exit, Failure> {
    let server = connect(config, args)?;
    if follow {
        return watch(&server, id, args.json).await;
    }
    let response = server.get_raw(&format!("/builds/{id}/log")).await?;
    let mut body = response.bytes_stream();
    let mut out: Box<dyn Write> =
        if args.json { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout().lock()) };
    while let Some(piece) = body.next().await {
        out.write_all(&piece.context("reading the log").map_err(Failure::Unavailable)?)?;
    }
    out.flush()?;
    if args.json {
        return print_json(&server.get_json(&format!("/api/v1/builds/{id}")).await?);
    }
    Ok(Exit::Ok)
}

fn connect(config: &Config, args: &ClientArgs) -> Result<Server, Failure> {
    Ok(Server::new(Settings::resolve(config, args)?))
}

/// `-p NAME=VALUE` flags as the API's `params`.
fn parse_params(given: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut params = Map::new();
    for param in given {
        let Some((name, value)) = param.split_once('=') else {
            return Err(Failure::Usage(format!("-p {param:?}: expected NAME=VALUE")));
        };
        params.insert(name.to_string(), Value::String(value.to_string()));
    }
    Ok(params)
}

/// After a build was queued: its URL (or the API's answer), then with `--follow` its
/// log and how it ended.
async fn queued(server: &Server, answer: &Value, follow: bool, json: bool) -> Result<Exit, Failure> {
    let id = answer["id"]
        .as_i64()
        .ok_or_else(|| Failure::Unavailable(anyhow!("the server's answer has no build id")))?;
    if json && !follow {
        return print_json(answer);
    }
    if !json {
        print(&format!("{}/builds/{id}\n", server.base))?;
    }
    if !follow {
        return Ok(Exit::Ok);
    }
    watch(server, id, json).await
}

/// Follows build `id` until it ends: its log on stdout (stderr with `--json`, which
/// prints the build as it ended instead), how it ended on stderr.
async fn watch(server: &Server, id: i64, json: bool) -> Result<Exit, Failure> {
    let status = if json {
        follow(server, id, &mut std::io::stderr()).await?
    } else {
        follow(server, id, &mut std::io::stdout()).await?
    };
    eprintln!("build {id} {status}");
    if json {
        print_json(&server.get_json(&format!("/api/v1/builds/{id}")).await?)?;
    }
    Ok(if status == "succeeded" { Exit::Ok } else { Exit::BuildDidNotSucceed })
}

fn print(text: &str) -> Result<Exit, Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(Exit::Ok)
}

fn print_json(value: &Value) -> Result<Exit, Failure> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    print(&format!("{text}\n"))
}
