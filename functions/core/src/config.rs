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
//! | `SPARKY_REPORTS` | report storage: a folder, or `s3://bucket/prefix` for S3 | `$SPARKY_ROOT/reports` |
//! | `SPARKY_S3_ENDPOINT` | S3-compatible store's URL (MinIO, Ceph RGW, ...) | AWS |
//! | `SPARKY_S3_PATH_STYLE` | `true`: `endpoint/bucket/key` URLs; `false`: `bucket.endpoint/key` | `true` |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | S3 credentials (the first two required with `s3://`) | none |
//! | `AWS_REGION`, else `AWS_DEFAULT_REGION` | S3 region | `us-east-1` |
//! | `SPARKY_REPORTS_TIMEOUT` | after a build's job ends, how long storing its log, artifacts and `report.json` is retried before the report is recorded incomplete | `60s` |
//! | `SPARKY_SECRETS` | the folder of job secrets: one file per secret, named by it (on Kubernetes a mounted Secret) | `$SPARKY_ROOT/secrets` |
//! | `SPARKY_WORK` | per-build working directories | `$SPARKY_ROOT/work` |
//! | `SPARKY_MAX_RUNNING` | builds running at once, all projects together | number of CPUs |
//! | `SPARKY_DISPATCH_URL` | where trigger and run poke dispatch (`serve` mode) | none |
//! | `SPARKY_RUN_URL` | where dispatch sends builds to run (`serve` mode) | none |
//! | `SPARKY_API_URL` | the trigger API as jobs see it (`$SPARKY_API`) | the listen address in `up` |
//! | `SPARKY_API_TOKEN` | when set, build-changing API calls need `Authorization: Bearer` | none |
//! | `SPARKY_INTERNAL_TOKEN` | shared by the functions only: dispatch serves its runner API (`/internal/v1/...`) to callers holding it, and `serve run` with it (and `SPARKY_DISPATCH_URL`) reaches Sparky's state through that API instead of opening the state folder | none: no runner API; run opens the state folder |
//! | `SPARKY_LEASE` | how long a dispatched or running build may go unrenewed | `30s` |
//! | `SPARKY_WEBHOOK_SECRET` | secret Git hosts sign webhooks with | none: webhooks refused |
//! | `SPARKY_WEBHOOK_SECRET_<NAME>` | a project's own secret (its `scm.secret_env`) | none |
//! | `SPARKY_SCM_TIMEOUT` | time limit of one `git ls-remote` or checkout fetch | `30s` |
//! | `SPARKY_TICK_WINDOW` | how far a delivered cron tick's time may be from the clock; a tick outside it queues nothing (`off`: any time) | `10m` |
//! | `SPARKY_PUBLIC_URL` | Sparky's URL as people and Git hosts reach it (shown in the UI) | none |
//! | `SPARKY_PRIVATE` | `true`: every page, log, live stream, artifact, badge and read API needs a session or a token (`SPARKY_API_TOKEN` required) | `false` |
//! | `SPARKY_SMTP` | the SMTP server email notifications go through: `smtp://HOST[:PORT]` (STARTTLS, required; port 587), `smtps://HOST[:PORT]` (TLS; 465) or `smtp+plain://HOST[:PORT]` (no TLS, for a relay next door; 25) | none: email notifications fail, saying so |
//! | `SPARKY_SMTP_FROM` | the mails' sender, `Name <address>` or an address (required with `SPARKY_SMTP`) | none |
//! | `SPARKY_SMTP_USER`, `SPARKY_SMTP_PASSWORD` | the SMTP login | none: no login |
//! | `SPARKY_SMTP_CA` | a PEM file of CA certificates the SMTP server's certificate may chain to, besides the system's | none |
//! | `SPARKY_SELF_TICK` | `true`: `serve dispatch` sweeps leases and `serve trigger` ticks cron, reads inboxes and polls on their own clocks (one machine, no PingSources) | `false` |
//! | `SPARKY_RUN_GRACE` | after SIGTERM, how long `serve run` lets its builds go on before it stops them and hands them back to the queue | none: until they end |
//! | `SPARKY_LOG_FORMAT` | `text` or `json` | `text` |
//! | `RUST_LOG` | log filter (read by the tracing subscriber) | `info` |
//! | `SPARKY_API`, `SPARKY_TOKEN` | inside a job: Sparky's URL and the build's job token, which the `sparky` command line uses when no `--server` and `--token` are given | none |
//! | `SPARKY_SERVER` | the `sparky` command line's server, ahead of `SPARKY_API` (its token: `SPARKY_TOKEN`, else `SPARKY_API_TOKEN`) | none |
//! | `XDG_CONFIG_HOME` | where the command line's settings file is: `$XDG_CONFIG_HOME/sparky/cli.toml` | `$HOME/.config` |
//! | `HOSTNAME` | names this instance in build leases | pid |
//! | `PATH`, `HOME`, `LANG`, `LC_*`, `TZ`, `USER`, `SHELL`, `TMPDIR` | passed on to jobs (the only variables of Sparky's own environment that are) | `PATH=/usr/local/bin:/usr/bin:/bin` |
//! | `AWS_LAMBDA_RUNTIME_API` | when set, `sparky serve` takes requests from this Lambda Runtime API instead of a port (`lambda_http` reads it and the other `AWS_LAMBDA_*` variables itself) | none |

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::Duration,
};

use crate::{outbox::email::SmtpSettings, reports::S3Settings, secrets::Secret, store::JournalMode};

/// The variables of Sparky's own environment that jobs get (with `LC_*`): what a
/// shell and its tools need, nothing of Sparky's configuration or credentials.
pub const JOB_ENV: [&str; 7] = ["PATH", "HOME", "LANG", "TZ", "USER", "SHELL", "TMPDIR"];

/// A job's `PATH` when Sparky's own environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Output format of Sparky's own logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
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
    /// `Some` when `SPARKY_REPORTS` is an `s3://` URL: reports go to S3, not a folder.
    pub s3: Option<S3Settings>,
    /// How long report writes are retried after a build's job ended.
    pub reports_timeout: Duration,
    /// `None`: `$root/work`.
    pub work: Option<PathBuf>,
    /// `None`: `$root/secrets`.
    pub secrets: Option<PathBuf>,
    pub max_running: usize,
    pub dispatch_url: Option<String>,
    pub run_url: Option<String>,
    pub api_url: Option<String>,
    pub api_token: Option<Secret>,
    /// The functions' own token: dispatch's runner API and run's way to it.
    pub internal_token: Option<Secret>,
    pub lease: Duration,
    pub log_format: LogFormat,
    pub instance: String,
    pub webhook_secret: Option<Secret>,
    /// `SPARKY_WEBHOOK_SECRET_<NAME>` variables, by full name.
    pub project_secrets: BTreeMap<String, Secret>,
    pub scm_timeout: Duration,
    /// `None`: a cron tick may stand for any minute.
    pub tick_window: Option<Duration>,
    pub public_url: Option<String>,
    /// `None`: a shutting-down `serve run` waits for its builds however long they take.
    pub run_grace: Option<Duration>,
    /// `serve dispatch` and `serve trigger` tick themselves instead of waiting for
    /// PingSources (`sparky up` always does).
    pub self_tick: bool,
    /// The command line's server and token when run inside a job (`SPARKY_API`,
    /// `SPARKY_TOKEN`).
    pub job_api: Option<String>,
    pub job_token: Option<Secret>,
    /// The command line's server (`SPARKY_SERVER`), ahead of `job_api`.
    pub cli_server: Option<String>,
    /// The command line's settings file, if there is a home to put it in.
    pub cli_settings: Option<PathBuf>,
    /// Reads need a session or a token too.
    pub private: bool,
    /// What of Sparky's own environment jobs get: [`JOB_ENV`] and `LC_*`, nothing else.
    pub job_env: BTreeMap<String, String>,
    /// `AWS_LAMBDA_RUNTIME_API`: serve through AWS Lambda rather than on a port.
    pub lambda_runtime_api: Option<String>,
    /// Where email notifications go out (`SPARKY_SMTP` and friends).
    pub smtp: Option<SmtpSettings>,
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
            s3: None,
            reports_timeout: Duration::from_secs(60),
            work: None,
            secrets: None,
            max_running: std::thread::available_parallelism().map_or(2, |n| n.get()),
            dispatch_url: None,
            run_url: None,
            api_url: None,
            api_token: None,
            internal_token: None,
            lease: Duration::from_secs(30),
            log_format: LogFormat::Text,
            instance: format!("pid{}", std::process::id()),
            webhook_secret: None,
            project_secrets: BTreeMap::new(),
            scm_timeout: Duration::from_secs(30),
            tick_window: Some(Duration::from_secs(600)),
            public_url: None,
            run_grace: None,
            self_tick: false,
            job_api: None,
            job_token: None,
            cli_server: None,
            cli_settings: None,
            private: false,
            job_env: [("PATH".to_string(), DEFAULT_PATH.to_string())].into(),
            lambda_runtime_api: None,
            smtp: None,
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
        match get("SPARKY_REPORTS") {
            Some(url) if url.starts_with("s3://") => config.s3 = Some(s3_settings(&url, &get)?),
            other => config.reports = other.map(PathBuf::from),
        }
        if let Some(limit) = get("SPARKY_REPORTS_TIMEOUT") {
            config.reports_timeout = parse("SPARKY_REPORTS_TIMEOUT", &limit, duration)?;
        }
        config.work = get("SPARKY_WORK").map(PathBuf::from);
        config.secrets = get("SPARKY_SECRETS").map(PathBuf::from);
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
        config.internal_token = get("SPARKY_INTERNAL_TOKEN").map(Secret::new);
        if let Some(lease) = get("SPARKY_LEASE") {
            config.lease = parse("SPARKY_LEASE", &lease, duration)?;
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
            config.scm_timeout = parse("SPARKY_SCM_TIMEOUT", &limit, duration)?;
        }
        if let Some(window) = get("SPARKY_TICK_WINDOW") {
            config.tick_window = parse("SPARKY_TICK_WINDOW", &window, |v| match v {
                "off" => Ok(None),
                v => duration(v).map(Some).map_err(|e| format!("{e}; or `off`")),
            })?;
        }
        config.public_url = get("SPARKY_PUBLIC_URL").map(trim_slash);
        if let Some(grace) = get("SPARKY_RUN_GRACE") {
            config.run_grace = Some(parse("SPARKY_RUN_GRACE", &grace, duration)?);
        }
        if let Some(on) = get("SPARKY_SELF_TICK") {
            config.self_tick = parse("SPARKY_SELF_TICK", &on, boolean)?;
        }
        if let Some(on) = get("SPARKY_PRIVATE") {
            config.private = parse("SPARKY_PRIVATE", &on, boolean)?;
            if config.private && config.api_token.is_none() {
                return Err(ConfigError {
                    variable: "SPARKY_PRIVATE",
                    value: on,
                    problem: "a private Sparky needs SPARKY_API_TOKEN: people log in with it".into(),
                });
            }
        }
        config.job_api = get("SPARKY_API").map(trim_slash);
        config.job_token = get("SPARKY_TOKEN").map(Secret::new);
        config.cli_server = get("SPARKY_SERVER").map(trim_slash);
        config.cli_settings = get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|home| PathBuf::from(home).join(".config")))
            .map(|dir| dir.join("sparky").join("cli.toml"));
        config.job_env.extend(
            vars.iter()
                .filter(|(k, v)| (JOB_ENV.contains(&k.as_str()) || k.starts_with("LC_")) && !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        config.lambda_runtime_api = get("AWS_LAMBDA_RUNTIME_API");
        if let Some(url) = get("SPARKY_SMTP") {
            let from = get("SPARKY_SMTP_FROM").ok_or_else(|| ConfigError {
                variable: "SPARKY_SMTP_FROM",
                value: String::new(),
                problem: "required with SPARKY_SMTP: the address mails come from".into(),
            })?;
            let settings = SmtpSettings::parse(
                &url,
                &from,
                get("SPARKY_SMTP_USER"),
                get("SPARKY_SMTP_PASSWORD").map(Secret::new),
                get("SPARKY_SMTP_CA").map(PathBuf::from),
            );
            config.smtp = Some(parse("SPARKY_SMTP", &url, |_| settings)?);
        }
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
    pub fn secrets_dir(&self) -> PathBuf {
        self.secrets.clone().unwrap_or_else(|| self.root.join("secrets"))
    }
    /// Everything one build keeps on disk: `workspace/` (its working directory),
    /// `artifacts/` and its script.
    pub fn build_work_dir(&self, build_id: i64) -> PathBuf {
        self.work_dir().join(build_id.to_string())
    }
}

/// The S3 backend's settings: the bucket and prefix from `url`, the rest from
/// `SPARKY_S3_*` and the standard AWS variables.
fn s3_settings(url: &str, get: &impl Fn(&str) -> Option<String>) -> Result<S3Settings, ConfigError> {
    let mut s3 = parse("SPARKY_REPORTS", url, S3Settings::from_url)?;
    s3.endpoint = get("SPARKY_S3_ENDPOINT").map(trim_slash);
    if let Some(endpoint) = &s3.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(ConfigError {
            variable: "SPARKY_S3_ENDPOINT",
            value: endpoint.clone(),
            problem: "expected an http:// or https:// URL".into(),
        });
    }
    if let Some(style) = get("SPARKY_S3_PATH_STYLE") {
        s3.path_style = parse("SPARKY_S3_PATH_STYLE", &style, boolean)?;
    }
    if let Some(region) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
        s3.region = region;
    }
    let missing = |variable| ConfigError {
        variable,
        value: String::new(),
        problem: format!("required when SPARKY_REPORTS={url} (S3 report storage)"),
    };
    s3.access_key_id = get("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?;
    s3.secret_access_key =
        Secret::new(get("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?);
    s3.session_token = get("AWS_SESSION_TOKEN").map(Secret::new);
    Ok(s3)
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected `true` or `false`".into()),
    }
}

fn trim_slash(url: String) -> String {
    url.trim_end_matches('/').to_string()
}

/// A duration like `30s`, `5m` or `1h 30m`.
fn duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| e.to_string())
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
            ("SPARKY_SELF_TICK", "true"),
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
        assert!(c.self_tick);
        assert_eq!(c.job_env.get("PATH").map(String::as_str), Some(DEFAULT_PATH));
        assert_eq!(c.reports_dir(), PathBuf::from("/srv/sparky/reports"));
        assert_eq!(c.secrets_dir(), PathBuf::from("/srv/sparky/secrets"));
        assert_eq!(c.cli_settings, None, "no home, no settings file");
        assert_eq!(c.listen, "127.0.0.1:4000");
    }

    #[test]
    fn jobs_get_only_the_allowlisted_variables() {
        let c = Config::from_vars(vars(&[
            ("PATH", "/opt/bin:/usr/bin"),
            ("HOME", "/home/ci"),
            ("LC_ALL", "C.UTF-8"),
            ("SPARKY_API_TOKEN", "admin"),
            ("AWS_SECRET_ACCESS_KEY", "key"),
            ("SPARKY_WEBHOOK_SECRET", "hook"),
        ]))
        .expect("valid config");
        let names: Vec<&str> = c.job_env.keys().map(String::as_str).collect();
        assert_eq!(names, ["HOME", "LC_ALL", "PATH"]);
        assert_eq!(c.job_env["PATH"], "/opt/bin:/usr/bin");
    }

    #[test]
    fn the_smtp_server_needs_a_sender_and_keeps_its_password_out_of_jobs() {
        let c = Config::from_vars(vars(&[
            ("SPARKY_SMTP", "smtps://mail.example.com"),
            ("SPARKY_SMTP_FROM", "Sparky <ci@example.com>"),
            ("SPARKY_SMTP_USER", "ci"),
            ("SPARKY_SMTP_PASSWORD", "hunter2"),
        ]))
        .expect("valid config");
        let smtp = c.smtp.as_ref().expect("smtp");
        assert_eq!((smtp.host.as_str(), smtp.port), ("mail.example.com", 465));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.job_env.keys().all(|k| !k.starts_with("SPARKY_SMTP")));
        let error = Config::from_vars(vars(&[("SPARKY_SMTP", "smtp://mail")])).expect_err("no sender");
        assert_eq!(error.variable, "SPARKY_SMTP_FROM");
        let error =
            Config::from_vars(vars(&[("SPARKY_SMTP", "mail:25"), ("SPARKY_SMTP_FROM", "ci@example.com")]))
                .expect_err("no scheme");
        assert_eq!(error.variable, "SPARKY_SMTP");
    }

    #[test]
    fn finds_the_command_lines_settings() {
        let c = Config::from_vars(vars(&[("HOME", "/home/ci"), ("SPARKY_SERVER", "https://ci.example/")]))
            .expect("valid config");
        assert_eq!(c.cli_settings, Some(PathBuf::from("/home/ci/.config/sparky/cli.toml")));
        assert_eq!(c.cli_server.as_deref(), Some("https://ci.example"));
        let c = Config::from_vars(vars(&[("HOME", "/home/ci"), ("XDG_CONFIG_HOME", "/etc/xdg")]))
            .expect("valid config");
        assert_eq!(c.cli_settings, Some(PathBuf::from("/etc/xdg/sparky/cli.toml")));
    }

    #[test]
    fn rejects_bad_values_naming_the_variable() {
        let err = Config::from_vars(vars(&[("SPARKY_MAX_RUNNING", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("SPARKY_MAX_RUNNING=\"0\""), "{err}");
        let err = Config::from_vars(vars(&[("SPARKY_SQLITE_JOURNAL", "memory")])).unwrap_err();
        assert!(err.to_string().contains("expected `wal` or `delete`"), "{err}");
    }

    #[test]
    fn reads_s3_settings() {
        let c = Config::from_vars(vars(&[
            ("SPARKY_REPORTS", "s3://ci-reports/sparky"),
            ("SPARKY_S3_ENDPOINT", "http://127.0.0.1:9000/"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "key"),
            ("SPARKY_REPORTS_TIMEOUT", "5s"),
        ]))
        .expect("valid config");
        let s3 = c.s3.expect("S3 backend");
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("ci-reports", "sparky"));
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region, "eu-west-1");
        assert!(s3.path_style);
        assert_eq!(s3.secret_access_key.expose(), "key");
        assert_eq!(c.reports, None);
        assert_eq!(c.reports_timeout, Duration::from_secs(5));

        let err = Config::from_vars(vars(&[("SPARKY_REPORTS", "s3://ci-reports")])).unwrap_err();
        assert!(err.to_string().starts_with("AWS_ACCESS_KEY_ID"), "{err}");
        let err = Config::from_vars(vars(&[("SPARKY_REPORTS", "s3://No_Such")])).unwrap_err();
        assert!(err.to_string().contains("not a bucket name"), "{err}");
        let folder = Config::from_vars(vars(&[("SPARKY_REPORTS", "/srv/reports")])).expect("folder");
        assert_eq!((folder.reports, folder.s3), (Some(PathBuf::from("/srv/reports")), None));
    }
}
