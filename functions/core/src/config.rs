//! Sparky's configuration: every environment variable is read here, once, by
//! [`Config::from_env`], called from `main`. Tests build a [`Config`] with
//! [`Config::for_root`] and change fields directly.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SPARKY_ROOT` | state folder: `sparky.db`, `projects/`, `reports/`, `work/` | `./.sparky` |
//! | `SPARKY_LISTEN` | address `sparky up` listens on | `127.0.0.1:4000` |
//! | `PORT` | port `sparky serve` listens on (set by Knative) | `8080` |
//! | `SPARKY_SQLITE_JOURNAL` | `wal` (one host) or `delete` (shared volume) | `wal` for `up`, `delete` for `serve` |
//! | `SPARKY_REPORTS` | report storage: a folder | `$SPARKY_ROOT/reports` |
//! | `SPARKY_WORK` | per-build working directories | `$SPARKY_ROOT/work` |
//! | `SPARKY_MAX_RUNNING` | builds running at once, all projects together | number of CPUs |
//! | `SPARKY_DISPATCH_URL` | where trigger and run poke dispatch (`serve` mode) | none |
//! | `SPARKY_RUN_URL` | where dispatch sends builds to run (`serve` mode) | none |
//! | `SPARKY_API_URL` | the trigger API as jobs see it (`$SPARKY_API`) | the listen address in `up` |
//! | `SPARKY_API_TOKEN` | when set, build-changing API calls need `Authorization: Bearer` | none |
//! | `SPARKY_LEASE` | how long a dispatched or running build may go unrenewed | `30s` |
//! | `SPARKY_WEBHOOK_SECRET` | secret Git hosts sign webhooks with | none: webhooks refused |
//! | `SPARKY_WEBHOOK_SECRET_<NAME>` | a project's own secret (its `scm.secret_env`) | none |
//! | `SPARKY_SCM_TIMEOUT` | time limit of one `git ls-remote` or checkout fetch | `30s` |
//! | `SPARKY_PUBLIC_URL` | Sparky's URL as people and Git hosts reach it (shown in the UI) | none |
//! | `SPARKY_RUN_GRACE` | after SIGTERM, how long `serve run` lets its builds go on before it stops them and hands them back to the queue | none: until they end |
//! | `SPARKY_LOG_FORMAT` | `text` or `json` | `text` |
//! | `RUST_LOG` | log filter (read by the tracing subscriber) | `info` |
//! | `HOSTNAME` | names this instance in build leases | pid |
//! | `AWS_LAMBDA_RUNTIME_API` | when set, `sparky serve` takes requests from this Lambda Runtime API instead of a port (`lambda_http` reads it and the other `AWS_LAMBDA_*` variables itself) | none |

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::PathBuf,
    time::Duration,
};

/// How SQLite journals writes. WAL needs shared memory on one host, so a volume
/// shared by several pods must use the rollback journal (`delete`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalMode {
    Wal,
    Delete,
}

/// Output format of Sparky's own logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

/// Everything Sparky is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    pub root: PathBuf,
    pub listen: String,
    pub port: u16,
    /// `None`: the mode's default (`wal` for `up`, `delete` for `serve`).
    pub journal: Option<JournalMode>,
    /// `None`: `$root/reports`.
    pub reports: Option<PathBuf>,
    /// `None`: `$root/work`.
    pub work: Option<PathBuf>,
    pub max_running: usize,
    pub dispatch_url: Option<String>,
    pub run_url: Option<String>,
    pub api_url: Option<String>,
    pub api_token: Option<Secret>,
    pub lease: Duration,
    pub log_format: LogFormat,
    pub instance: String,
    pub webhook_secret: Option<Secret>,
    /// `SPARKY_WEBHOOK_SECRET_<NAME>` variables, by full name.
    pub project_secrets: BTreeMap<String, Secret>,
    pub scm_timeout: Duration,
    pub public_url: Option<String>,
    /// `None`: a shutting-down `serve run` waits for its builds however long they take.
    pub run_grace: Option<Duration>,
    /// `AWS_LAMBDA_RUNTIME_API`: serve through AWS Lambda rather than on a port.
    pub lambda_runtime_api: Option<String>,
}

impl Config {
    /// Defaults for a state folder; nothing is read from the environment.
    pub fn for_root(root: impl Into<PathBuf>) -> Self {
        Config {
            root: root.into(),
            listen: "127.0.0.1:4000".into(),
            port: 8080,
            journal: None,
            reports: None,
            work: None,
            max_running: std::thread::available_parallelism().map_or(2, |n| n.get()),
            dispatch_url: None,
            run_url: None,
            api_url: None,
            api_token: None,
            lease: Duration::from_secs(30),
            log_format: LogFormat::Text,
            instance: format!("pid{}", std::process::id()),
            webhook_secret: None,
            project_secrets: BTreeMap::new(),
            scm_timeout: Duration::from_secs(30),
            public_url: None,
            run_grace: None,
            lambda_runtime_api: None,
        }
    }

    /// Reads the variables in the table above from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads the variables in the table above from `vars`.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let mut config = Config::for_root(get("SPARKY_ROOT").unwrap_or_else(|| "./.sparky".into()));
        if let Some(listen) = get("SPARKY_LISTEN") {
            config.listen = listen;
        }
        if let Some(port) = get("PORT") {
            config.port = parse("PORT", &port, |v| v.parse::<u16>().map_err(|e| e.to_string()))?;
        }
        if let Some(mode) = get("SPARKY_SQLITE_JOURNAL") {
            config.journal =
                Some(parse("SPARKY_SQLITE_JOURNAL", &mode, |v| match v.to_ascii_lowercase().as_str() {
                    "wal" => Ok(JournalMode::Wal),
                    "delete" => Ok(JournalMode::Delete),
                    _ => Err("expected `wal` or `delete`".into()),
                })?);
        }
        config.reports = get("SPARKY_REPORTS").map(PathBuf::from);
        config.work = get("SPARKY_WORK").map(PathBuf::from);
        if let Some(n) = get("SPARKY_MAX_RUNNING") {
            config.max_running = parse("SPARKY_MAX_RUNNING", &n, |v| match v.parse::<usize>() {
                Ok(0) => Err("must be at least 1".into()),
                Ok(n) => Ok(n),
                Err(e) => Err(e.to_string()),
            })?;
        }
        config.dispatch_url = get("SPARKY_DISPATCH_URL").map(trim_slash);
        config.run_url = get("SPARKY_RUN_URL").map(trim_slash);
        config.api_url = get("SPARKY_API_URL").map(trim_slash);
        config.api_token = get("SPARKY_API_TOKEN").map(Secret::new);
        if let Some(lease) = get("SPARKY_LEASE") {
            config.lease =
                parse("SPARKY_LEASE", &lease, |v| humantime::parse_duration(v).map_err(|e| e.to_string()))?;
        }
        if let Some(format) = get("SPARKY_LOG_FORMAT") {
            config.log_format = parse("SPARKY_LOG_FORMAT", &format, |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected `text` or `json`".into()),
            })?;
        }
        config.webhook_secret = get("SPARKY_WEBHOOK_SECRET").map(Secret::new);
        config.project_secrets = vars
            .iter()
            .filter(|(k, v)| k.starts_with(crate::project::config::SECRET_PREFIX) && !v.is_empty())
            .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
            .collect();
        if let Some(limit) = get("SPARKY_SCM_TIMEOUT") {
            config.scm_timeout = parse("SPARKY_SCM_TIMEOUT", &limit, |v| {
                humantime::parse_duration(v).map_err(|e| e.to_string())
            })?;
        }
        config.public_url = get("SPARKY_PUBLIC_URL").map(trim_slash);
        if let Some(grace) = get("SPARKY_RUN_GRACE") {
            config.run_grace = Some(parse("SPARKY_RUN_GRACE", &grace, |v| {
                humantime::parse_duration(v).map_err(|e| e.to_string())
            })?);
        }
        config.lambda_runtime_api = get("AWS_LAMBDA_RUNTIME_API");
        if let Some(host) = get("HOSTNAME") {
            config.instance = format!("{host}-{}", std::process::id());
        }
        Ok(config)
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("sparky.db")
    }
    pub fn projects_dir(&self) -> PathBuf {
        self.root.join("projects")
    }
    pub fn reports_dir(&self) -> PathBuf {
        self.reports.clone().unwrap_or_else(|| self.root.join("reports"))
    }
    pub fn work_dir(&self) -> PathBuf {
        self.work.clone().unwrap_or_else(|| self.root.join("work"))
    }
    /// Everything one build keeps on disk: `workspace/` (its working directory),
    /// `artifacts/` and its script.
    pub fn build_work_dir(&self, build_id: i64) -> PathBuf {
        self.work_dir().join(build_id.to_string())
    }
}

fn trim_slash(url: String) -> String {
    url.trim_end_matches('/').to_string()
}

fn parse<T>(
    variable: &'static str,
    value: &str,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    f(value).map_err(|problem| ConfigError { variable, value: value.into(), problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_variables_and_defaults() {
        let c = Config::from_vars(vars(&[
            ("SPARKY_ROOT", "/srv/sparky"),
            ("SPARKY_SQLITE_JOURNAL", "DELETE"),
            ("SPARKY_MAX_RUNNING", "3"),
            ("SPARKY_RUN_URL", "http://run/"),
            ("SPARKY_LEASE", "5s"),
            ("SPARKY_RUN_GRACE", "55m"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ]))
        .expect("valid config");
        assert_eq!(c.root, PathBuf::from("/srv/sparky"));
        assert_eq!(c.journal, Some(JournalMode::Delete));
        assert_eq!(c.max_running, 3);
        assert_eq!(c.run_url.as_deref(), Some("http://run"));
        assert_eq!(c.lease, Duration::from_secs(5));
        assert_eq!(c.run_grace, Some(Duration::from_secs(55 * 60)));
        assert_eq!(c.lambda_runtime_api.as_deref(), Some("127.0.0.1:9001"));
        assert_eq!(c.reports_dir(), PathBuf::from("/srv/sparky/reports"));
        assert_eq!(c.listen, "127.0.0.1:4000");
    }

    #[test]
    fn rejects_bad_values_naming_the_variable() {
        let err = Config::from_vars(vars(&[("SPARKY_MAX_RUNNING", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("SPARKY_MAX_RUNNING=\"0\""), "{err}");
        let err = Config::from_vars(vars(&[("SPARKY_SQLITE_JOURNAL", "memory")])).unwrap_err();
        assert!(err.to_string().contains("expected `wal` or `delete`"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
