//! `sparky.yaml`: parsing and checking. Unknown keys are errors (a typo such as
//! `timout:` must not be silently ignored), and every error names the file, the line
//! where it can tell, and the problem. Texts that could make the YAML parser slow or
//! large (over [`MAX_CONFIG_BYTES`], nested past [`MAX_NESTING`], aliases expanding
//! past [`MAX_VALUES`]) are refused before it sees them.

use std::{collections::BTreeMap, fmt, time::Duration};

use chrono_tz::Tz;
use serde::Deserialize;

use super::{
    grants::{self, RawGrant, SecretGrant},
    notify::{self, Notify, RawNotify},
    params::{Var, VarKind},
    statuses::StatusConfig,
    yaml_guard::{self, MAX_NESTING, MAX_VALUES, Refusal},
};
use crate::cron::{Crontab, parse_timezone};

/// The largest sparky.yaml read, in bytes (256 KiB): a config is a page or two, and
/// anything larger is refused without being read whole.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Defaults (see the sparky.yaml reference in docs/configuration.md).
pub const DEFAULT_KEEP_BUILDS: u32 = 100;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Projects' own webhook secrets live in variables named with this prefix.
pub const SECRET_PREFIX: &str = "SPARKY_WEBHOOK_SECRET_";

/// What a project runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    /// A bash script from `script:`.
    Inline(String),
    /// The executable `job` file beside sparky.yaml.
    JobFile,
}

/// Where a project's code comes from, and what Git events build it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScmConfig {
    pub url: String,
    /// A glob on branch names; `None` means every branch.
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub poll: bool,
    #[serde(default)]
    pub tags: bool,
    /// The name of an environment variable (`SPARKY_WEBHOOK_SECRET_...`) holding this
    /// project's own webhook secret, instead of `SPARKY_WEBHOOK_SECRET`.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Commit statuses on the Git host.
    #[serde(default)]
    pub statuses: Option<StatusConfig>,
    /// Build pull (merge) requests whose target branch matches `branch`.
    #[serde(default)]
    pub pull_requests: bool,
    /// A new commit on a pull request cancels that request's older queued or running
    /// build.
    #[serde(default = "yes")]
    pub cancel_previous: bool,
}

fn yes() -> bool {
    true
}

/// A checked sparky.yaml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectConfig {
    pub description: Option<String>,
    pub script: Script,
    pub crontab: Option<Crontab>,
    /// The zone `crontab` is read in; UTC unless `timezone:` says otherwise.
    pub timezone: Tz,
    pub scm: Option<ScmConfig>,
    pub allow_manual_run: bool,
    pub disabled: bool,
    pub keep_builds: u32,
    pub timeout: Duration,
    pub concurrency: u32,
    pub retries: u32,
    pub env: BTreeMap<String, String>,
    pub vars: Vec<Var>,
    pub downstream: Vec<String>,
    /// Secrets its jobs get (`secrets:`), and the line they are granted on.
    pub secrets: Vec<SecretGrant>,
    pub secrets_line: Option<usize>,
    /// Who hears how its builds end.
    pub notify: Vec<Notify>,
}

/// What sits at `job` beside sparky.yaml, as far as running it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum JobFile {
    /// No `job`.
    #[default]
    Missing,
    /// A regular file with an execute bit.
    Executable,
    /// A regular file without one.
    NotExecutable,
    /// Something that can't be run as the job, and why (e.g. "not a regular file but
    /// a folder").
    Unusable(String),
}

impl From<Option<bool>> for JobFile {
    /// `None`: no job; `Some(executable)`: a regular file.
    fn from(job: Option<bool>) -> Self {
        match job {
            None => JobFile::Missing,
            Some(true) => JobFile::Executable,
            Some(false) => JobFile::NotExecutable,
        }
    }
}

/// A sparky.yaml that can't be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub struct ProjectError {
    /// The file, relative to the state root, e.g. `projects/app/sparky.yaml`.
    pub file: String,
    pub line: Option<usize>,
    pub problem: String,
}

impl ProjectError {
    /// The error for a config over [`MAX_CONFIG_BYTES`].
    pub fn too_large(file: &str) -> Self {
        ProjectError {
            file: file.into(),
            line: None,
            problem: format!("larger than the {} KiB limit", MAX_CONFIG_BYTES / 1024),
        }
    }

    /// The error for bytes that aren't UTF-8; `valid` is how many leading bytes are.
    pub fn not_utf8(file: &str, bytes: &[u8], valid: usize) -> Self {
        let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        ProjectError { file: file.into(), line: Some(line), problem: "not UTF-8 text".into() }
    }
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {line}: {}", self.file, self.problem),
            None => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    description: Option<String>,
    script: Option<String>,
    crontab: Option<String>,
    timezone: Option<String>,
    scm: Option<ScmConfig>,
    allow_manual_run: Option<bool>,
    #[serde(default)]
    disabled: bool,
    keep_builds: Option<u32>,
    timeout: Option<Scalar>,
    concurrency: Option<u32>,
    retries: Option<u32>,
    #[serde(default)]
    env: BTreeMap<String, Scalar>,
    #[serde(default)]
    vars: Vec<RawVar>,
    #[serde(default)]
    downstream: Vec<String>,
    #[serde(default)]
    secrets: Vec<RawGrant>,
    #[serde(default)]
    notify: Vec<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVar {
    name: String,
    #[serde(rename = "type", default)]
    kind: VarKind,
    description: Option<String>,
    #[serde(default)]
    values: Vec<Scalar>,
    default: Option<Scalar>,
}

/// A YAML scalar of any type, kept as the text a job would see.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

impl ProjectConfig {
    /// Parses and checks `source`, the text of `file`; `job` tells whether a `job`
    /// file sits beside it (`Some`) and whether it is executable.
    pub fn parse(file: &str, source: &str, job: Option<bool>) -> Result<ProjectConfig, ProjectError> {
        Self::parse_with_job(file, source, &JobFile::from(job))
    }

    /// Like [`parse`](Self::parse), with everything known about the `job` beside it.
    pub fn parse_with_job(file: &str, source: &str, job: &JobFile) -> Result<ProjectConfig, ProjectError> {
        if source.len() > MAX_CONFIG_BYTES {
            return Err(ProjectError::too_large(file));
        }
        yaml_guard::check(source).map_err(|refusal| {
            let (line, problem) = match refusal {
                Refusal::TooDeep { line } => (Some(line), format!("nested deeper than {MAX_NESTING} levels")),
                Refusal::TooManyValues => {
                    (None, format!("aliases expand it to more than {MAX_VALUES} values"))
                }
            };
            ProjectError { file: file.into(), line, problem }
        })?;
        let raw: Raw = if source.trim().is_empty() {
            serde_yaml_ng::from_str("{}")
        } else {
            serde_yaml_ng::from_str(source)
        }
        .map_err(|e| ProjectError {
            file: file.into(),
            line: e.location().map(|l| l.line()),
            problem: yaml_problem(&e),
        })?;
        let fail = |key: &str, problem: String| ProjectError {
            file: file.into(),
            line: line_of(source, key),
            problem,
        };

        let script = match (raw.script, job) {
            (Some(s), _) if !s.trim().is_empty() => Script::Inline(s),
            (_, JobFile::Executable) => Script::JobFile,
            (_, JobFile::NotExecutable) => {
                return Err(fail(
                    "script",
                    "nothing to run: the `job` file beside sparky.yaml is not executable (chmod +x it)"
                        .into(),
                ));
            }
            (_, JobFile::Unusable(why)) => {
                return Err(fail("script", format!("nothing to run: the `job` beside sparky.yaml is {why}")));
            }
            (_, JobFile::Missing) => {
                return Err(fail(
                    "script",
                    "nothing to run: add `script:` or an executable `job` file beside sparky.yaml".into(),
                ));
            }
        };
        let timeout = match raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(Scalar::Int(secs)) if secs > 0 => Duration::from_secs(secs as u64),
            Some(Scalar::Text(text)) => humantime::parse_duration(&text).map_err(|e| {
                fail("timeout", format!("timeout {text:?} is not a duration like 90s, 30m or 2h ({e})"))
            })?,
            Some(_) => {
                return Err(fail("timeout", "timeout must be a duration like 90s, 30m or 2h".into()));
            }
        };
        if timeout.is_zero() {
            return Err(fail("timeout", "timeout must be longer than zero".into()));
        }
        let concurrency = raw.concurrency.unwrap_or(1);
        if concurrency == 0 {
            return Err(fail("concurrency", "concurrency must be at least 1".into()));
        }
        let keep_builds = raw.keep_builds.unwrap_or(DEFAULT_KEEP_BUILDS);
        if keep_builds == 0 {
            return Err(fail("keep_builds", "keep_builds must be at least 1".into()));
        }
        let mut env = BTreeMap::new();
        for (name, value) in raw.env {
            if !valid_env_name(&name) {
                return Err(fail("env", format!("env: {name:?} is not a valid variable name")));
            }
            env.insert(name, value.into_text());
        }
        let vars = raw
            .vars
            .into_iter()
            .map(|var| check_var(var).map_err(|problem| fail("vars", problem)))
            .collect::<Result<Vec<_>, _>>()?;
        let secrets = grants::check(raw.secrets).map_err(|problem| fail("secrets", problem))?;
        let notify = notify::check(raw.notify).map_err(|problem| fail("notify", problem))?;
        for name in &raw.downstream {
            if !super::valid_name(name) {
                return Err(fail("downstream", format!("downstream: {name:?} is not a project name")));
            }
        }
        if let Some(scm) = &raw.scm {
            if scm.url.trim().is_empty() {
                return Err(fail("scm", "scm.url is empty".into()));
            }
            if let Some(name) = &scm.secret_env
                && !(name.starts_with(SECRET_PREFIX)
                    && name.len() > SECRET_PREFIX.len()
                    && valid_env_name(name))
            {
                return Err(fail(
                    "scm",
                    format!("scm.secret_env {name:?} must name a variable {SECRET_PREFIX}<NAME>"),
                ));
            }
            if let Some(statuses) = &scm.statuses {
                statuses.check(&scm.url).map_err(|problem| fail("statuses", problem))?;
            }
        }
        let crontab = raw
            .crontab
            .as_deref()
            .map(|text| text.parse::<Crontab>().map_err(|e| fail("crontab", e.to_string())))
            .transpose()?;
        let timezone = match raw.timezone.as_deref() {
            None => Tz::UTC,
            Some(name) => parse_timezone(name).map_err(|problem| fail("timezone", problem))?,
        };
        Ok(ProjectConfig {
            description: raw.description,
            script,
            crontab,
            timezone,
            scm: raw.scm,
            allow_manual_run: raw.allow_manual_run.unwrap_or(true),
            disabled: raw.disabled,
            keep_builds,
            timeout,
            concurrency,
            retries: raw.retries.unwrap_or(0),
            env,
            vars,
            downstream: raw.downstream,
            secrets,
            secrets_line: line_of(source, "secrets"),
            notify,
        })
    }
}

fn check_var(raw: RawVar) -> Result<Var, String> {
    let name = raw.name;
    if !valid_env_name(&name) {
        return Err(format!("vars: {name:?} is not a valid name (letters, digits, `_`; not first a digit)"));
    }
    let values: Vec<String> = raw.values.into_iter().map(Scalar::into_text).collect();
    let default = raw.default.map(Scalar::into_text);
    let default = match raw.kind {
        VarKind::Select => {
            if values.is_empty() {
                return Err(format!("vars: {name} is a select without `values`"));
            }
            match default {
                Some(d) if !values.contains(&d) => {
                    return Err(format!("vars: {name}'s default {d:?} is not one of its values"));
                }
                Some(d) => d,
                None => values[0].clone(),
            }
        }
        VarKind::Checkbox => match default.as_deref() {
            None | Some("false") => "false".into(),
            Some("true") => "true".into(),
            Some(other) => {
                return Err(format!("vars: {name}'s default {other:?} is not true or false"));
            }
        },
        VarKind::Text | VarKind::Textarea => default.unwrap_or_default(),
    };
    Ok(Var { name, kind: raw.kind, description: raw.description, values, default })
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name a shell can use as a variable.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// serde's message without the location suffix (the line is reported separately).
fn yaml_problem(e: &serde_yaml_ng::Error) -> String {
    // "PROBLEM at line L column C[, while parsing X at line L2 column C2]": the error's
    // own position is reported apart; the context (where an unclosed `[` opened, say)
    // stays.
    let text = e.to_string();
    let Some(at) = text.find(" at line ") else { return text };
    let rest = &text[at..];
    let position_end = rest.find(',').unwrap_or(rest.len());
    format!("{}{}", &text[..at], &rest[position_end..])
}

/// The 1-based line where top-level `key:` is written, if it is.
fn line_of(source: &str, key: &str) -> Option<usize> {
    source
        .lines()
        .position(|line| line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':')))
        .map(|i| i + 1)
}

impl ProjectConfig {
    /// The secrets it names besides those it grants its jobs: the statuses' token,
    /// notification secrets.
    pub fn named_secrets(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.scm.iter().filter_map(|s| s.statuses.as_ref()).map(|s| s.token.as_str()).collect();
        names.extend(self.notify.iter().flat_map(Notify::secrets));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "projects/app/sparky.yaml";

    #[test]
    fn parses_every_key_with_defaults() {
        let config = ProjectConfig::parse(
            FILE,
            "description: Build it\nscript: |\n  cargo test\ntimeout: 30m\nconcurrency: 2\n\
             env: { RUST_LOG: info, N: 3 }\nvars:\n  - { name: target, type: select, values: [staging, prod] }\n\
             downstream: [deploy]\ncrontab: '*/5 * * * *'\nscm: { url: 'https://x/y.git', branch: main }\n",
            None,
        )
        .expect("valid");
        assert_eq!(config.script, Script::Inline("cargo test\n".into()));
        assert_eq!(config.timeout, Duration::from_secs(1800));
        assert_eq!(config.concurrency, 2);
        assert_eq!(config.env.get("N").map(String::as_str), Some("3"));
        assert_eq!(config.vars[0].default, "staging");
        assert!(config.allow_manual_run);
        assert_eq!(config.keep_builds, 100);
        assert_eq!(config.retries, 0);
        assert_eq!(config.scm.map(|s| s.branch), Some(Some("main".into())));
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let err = ProjectError::to_string(
            &ProjectConfig::parse(FILE, "script: echo\ntimout: 5m\n", None).unwrap_err(),
        );
        assert!(err.starts_with("projects/app/sparky.yaml, line 2: unknown field `timout`"), "{err}");
        let err = ProjectConfig::parse(FILE, "script: echo\ntimeout: soon\n", None).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.problem.contains("\"soon\""), "{err}");
        let err =
            ProjectConfig::parse(FILE, "description: x\ndownstream: [a\nkeep_builds: 3\n", None).unwrap_err();
        assert!(err.problem.contains("while parsing a flow sequence at line 2"), "{err}");
        let err = ProjectConfig::parse(FILE, "script: [unclosed\n", None).unwrap_err();
        assert!(err.line.is_some(), "{err}");
        let err = ProjectConfig::parse(FILE, "script: echo\ncrontab: '0 25 * * *'\n", None).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.problem.contains("crontab \"0 25 * * *\": hour field"), "{err}");
        let err = ProjectConfig::parse(FILE, "script: echo\ntimezone: Mars/Base\n", None).unwrap_err();
        assert!(err.problem.contains("Mars/Base"), "{err}");
        let err = ProjectConfig::parse(FILE, "description: nothing\n", None).unwrap_err();
        assert!(err.problem.contains("nothing to run"), "{err}");
        assert!(ProjectConfig::parse(FILE, "", Some(true)).is_ok(), "a job file is enough");
        let err = ProjectConfig::parse_with_job(FILE, "", &JobFile::Unusable("a symlink that loops".into()));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("projects/app/sparky.yaml: nothing to run: the `job` beside sparky.yaml is a symlink that loops".into())
        );
        let err = ProjectConfig::parse(FILE, "", Some(false)).unwrap_err();
        assert!(err.problem.contains("not executable"), "{err}");
    }

    #[test]
    fn refuses_what_would_make_the_parser_slow_or_large() {
        let large = format!("script: echo\n{}", "#".repeat(MAX_CONFIG_BYTES));
        let err = ProjectConfig::parse(FILE, &large, None).unwrap_err();
        assert_eq!(err.to_string(), "projects/app/sparky.yaml: larger than the 256 KiB limit");

        let deep = format!("script: echo\nenv:\n  X: {}", "[".repeat(156 * 1024));
        let start = std::time::Instant::now();
        let err = ProjectConfig::parse(FILE, &deep, None).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(10), "{:?}", start.elapsed());
        assert_eq!(err.to_string(), "projects/app/sparky.yaml, line 3: nested deeper than 32 levels");

        // Billion laughs as usually written: serde_yaml_ng's own cap on alias jumps
        // stops this one.
        let mut laughs =
            String::from("script: echo\nenv:\n  A: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (name, prev) in
            ["b", "c", "d", "e", "f", "g", "h", "i"].into_iter().zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            laughs.push_str(&format!("  {name}: &{name} [{refs}]\n"));
        }
        let start = std::time::Instant::now();
        assert!(ProjectConfig::parse(FILE, &laughs, None).is_err());
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        // Padded so that it isn't: the count of values is.
        let padded = laughs.replacen("env:\n", &format!("downstream: [{}]\nenv:\n", "p, ".repeat(5000)), 1);
        let start = std::time::Instant::now();
        let err = ProjectConfig::parse(FILE, &padded, None).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        assert_eq!(err.to_string(), "projects/app/sparky.yaml: aliases expand it to more than 100000 values");

        let shared = "script: echo\nvars:\n  - { name: a, type: select, values: &envs [staging, prod] }\n  \
                      - { name: b, type: select, values: *envs }\n";
        let config = ProjectConfig::parse(FILE, shared, None).expect("a few aliases are fine");
        assert_eq!(config.vars[1].values, ["staging", "prod"]);
    }
}
