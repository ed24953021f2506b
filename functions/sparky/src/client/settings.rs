//! Where the server is and which token to send. Each comes from the first of:
//!
//! 1. the flags, `--server URL` and `--token TOKEN`;
//! 2. the environment: `SPARKY_SERVER`, else `SPARKY_API` (set inside a job); `SPARKY_TOKEN`
//!    (a job's token), else `SPARKY_API_TOKEN`;
//! 3. the settings file, `$XDG_CONFIG_HOME/sparky/cli.toml` (`~/.config/sparky/cli.toml`):
//!    `server = "URL"` and `token = "TOKEN"` lines, `#` comments (quotes optional);
//! 4. for the server, `http://$SPARKY_LISTEN` (`http://127.0.0.1:4000`), where `sparky
//!    up` listens.
//!
//! The environment is read by [`Config::from_env`]; only the settings file is read here.
//! A settings file holding a token that others may read gets a warning.

use std::path::Path;

use sparky_core::Config;

use super::Failure;

/// The flags every command that talks to a server takes.
#[derive(clap::Args, Debug, Default)]
pub struct ClientArgs {
    /// Sparky's URL [env: SPARKY_SERVER, or SPARKY_API inside a job] [settings file:
    /// server] [default: http://$SPARKY_LISTEN, i.e. http://127.0.0.1:4000]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// API token [env: SPARKY_TOKEN inside a job, else SPARKY_API_TOKEN] [settings file:
    /// token]
    #[arg(long)]
    pub token: Option<String>,
    /// Print the API's JSON on stdout instead of text (a log goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// The server and token a command uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// Without a trailing `/`.
    pub server: String,
    pub token: Option<String>,
}

impl Settings {
    /// The flags, else the environment, else the settings file, else the default.
    pub fn resolve(config: &Config, args: &ClientArgs) -> Result<Settings, Failure> {
        let file = match &config.cli_settings {
            Some(path) => read_file(path)?,
            None => SettingsFile::default(),
        };
        let server = args
            .server
            .clone()
            .or_else(|| config.cli_server.clone())
            .or_else(|| config.job_api.clone())
            .or(file.server)
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let token = args
            .token
            .clone()
            .or_else(|| {
                config.job_token.as_ref().or(config.api_token.as_ref()).map(|t| t.expose().to_string())
            })
            .or(file.token)
            .filter(|t| !t.is_empty());
        Ok(Settings { server: check_server(&server)?, token })
    }
}

fn check_server(url: &str) -> Result<String, Failure> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Failure::Usage(format!(
            "server {url:?}: expected a URL like http://127.0.0.1:4000 or https://ci.example.com"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// What a settings file says.
#[derive(Debug, Default, PartialEq, Eq)]
struct SettingsFile {
    server: Option<String>,
    token: Option<String>,
}

/// Reads the settings file at `path`; a missing one says nothing.
fn read_file(path: &Path) -> Result<SettingsFile, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SettingsFile::default()),
        Err(e) => return Err(Failure::Usage(format!("reading {}: {e}", path.display()))),
    };
    let file = parse(&text).map_err(|e| Failure::Usage(format!("{}, {e}", path.display())))?;
    if file.token.is_some() {
        warn_if_others_may_read(path);
    }
    Ok(file)
}

/// `key = value` lines (a small part of TOML); blank lines and `#` comments are skipped.
fn parse(text: &str) -> Result<SettingsFile, String> {
    let mut file = SettingsFile::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_no = n + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {line_no}: expected `key = value`"));
        };
        let value = unquote(value.trim()).to_string();
        match key.trim() {
            "server" => file.server = Some(value),
            "token" => file.token = Some(value),
            other => return Err(format!("line {line_no}: unknown key `{other}` (expected server or token)")),
        }
    }
    Ok(file)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

#[cfg(unix)]
fn warn_if_others_may_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!("sparky: warning: {} holds a token and others may read it; chmod 600 it", path.display());
    }
}

#[cfg(not(unix))]
fn warn_if_others_may_read(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use sparky_core::secrets::Secret;

    #[test]
    fn parses_key_value_lines() {
        let text = "# where\nserver = \"http://ci:4000\"\n\ntoken='abc=def'\n";
        let file = parse(text).expect("valid");
        assert_eq!(file.server.as_deref(), Some("http://ci:4000"));
        assert_eq!(file.token.as_deref(), Some("abc=def"));
        assert_eq!(parse("sever = x").unwrap_err(), "line 1: unknown key `sever` (expected server or token)");
        assert_eq!(parse("\nserver").unwrap_err(), "line 2: expected `key = value`");
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cli.toml");
        std::fs::write(&path, "server = http://file:1\ntoken = from-file\n").expect("write");
        let mut config = Config::for_root(dir.path());
        config.cli_settings = Some(path);
        let none = ClientArgs::default();
        let resolve = |config: &Config, args: &ClientArgs| Settings::resolve(config, args).expect("settings");
        assert_eq!(
            resolve(&config, &none),
            Settings { server: "http://file:1".into(), token: Some("from-file".into()) }
        );
        config.job_api = Some("http://job:2".into());
        config.api_token = Some(Secret::new("from-env"));
        assert_eq!(
            resolve(&config, &none),
            Settings { server: "http://job:2".into(), token: Some("from-env".into()) }
        );
        config.cli_server = Some("http://env:3".into());
        config.job_token = Some(Secret::new("job"));
        assert_eq!(
            resolve(&config, &none),
            Settings { server: "http://env:3".into(), token: Some("job".into()) }
        );
        let flags =
            ClientArgs { server: Some("http://flag:4/".into()), token: Some("flag".into()), json: false };
        assert_eq!(
            resolve(&config, &flags),
            Settings { server: "http://flag:4".into(), token: Some("flag".into()) }
        );

        let bare = Config::for_root(dir.path());
        assert_eq!(resolve(&bare, &none), Settings { server: "http://127.0.0.1:4000".into(), token: None });
        let https = ClientArgs { server: Some("https://ci/".into()), ..ClientArgs::default() };
        assert_eq!(resolve(&bare, &https).server, "https://ci");
        let ftp = ClientArgs { server: Some("ftp://ci".into()), ..ClientArgs::default() };
        assert!(matches!(Settings::resolve(&bare, &ftp), Err(Failure::Usage(_))));
    }
}
