//! Projects: folders `projects/NAME/` holding `sparky.yaml` (and optionally an
//! executable `job`). An edited config applies to the next lookup without a restart;
//! parses are cached by file identity, so unchanged configs aren't parsed again. A
//! broken config, or anything else wrong in a project folder, is an error naming the
//! file, the line and the problem, kept beside the project so that the other projects
//! go on working.
//!
//! - [`config`]: the `sparky.yaml` keys and their checks.
//! - [`params`]: build parameters (`vars`) and how requests are checked against them.
//! - [`grants`]: `secrets:`, the secrets a project's jobs get.
//! - [`notify`]: `notify:`, who hears how builds end.
//! - [`catalog`]: finding projects on disk, the cache of parsed configs, and the
//!   example project.
//! - [`statuses`]: `scm.statuses`, commit statuses on the project's Git host.
//! - [`snapshot`]: a project's files as a runner without the state folder gets them.
//! - `files`: looking at a project's files without trusting them (types, symlinks,
//!   sizes).
//! - `yaml_guard`: refusing YAML that would make the parser slow or large.

pub mod catalog;
pub mod config;
mod files;
pub mod grants;
pub mod notify;
pub mod params;
pub mod snapshot;
pub mod statuses;
mod yaml_guard;

pub use catalog::{Project, Projects, RACY_WINDOW};
pub use config::{JobFile, MAX_CONFIG_BYTES, ProjectConfig, ProjectError, ScmConfig, Script};
pub use grants::SecretGrant;
pub use params::{ParamError, Var, VarKind};
pub use snapshot::ProjectSnapshot;
pub use yaml_guard::{MAX_NESTING, MAX_VALUES};

/// Whether `name` may name a project: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 100 bytes.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 100
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        for good in ["hello", "A1", "app.v2", "my_app-3"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "..", "a b", "é", &"x".repeat(101)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
