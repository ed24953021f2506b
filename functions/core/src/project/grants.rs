//! `secrets:` in sparky.yaml: the secrets a project's jobs get, by name. Values live in
//! the secrets folder ([`crate::secrets::SecretsDir`]), never in sparky.yaml; a name
//! the folder doesn't have is an error of the project.
//!
//! ```yaml
//! secrets:
//!   - DEPLOY_TOKEN                          # builds of pull requests from forks don't get it
//!   - { name: NPM_READ_TOKEN, forks: true } # they do: it can't do harm in a stranger's hands
//! ```

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::secrets::valid_secret_name;

/// One secret granted to a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretGrant {
    pub name: String,
    /// Whether builds of pull requests from forks get it too (default: no, a fork's
    /// author wrote the code that would run with it).
    pub forks: bool,
}

/// A grant as written: a name, or `{name, forks}`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawGrant {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        forks: bool,
    },
}

/// Checks the grants as written; the problem, if any.
pub(super) fn check(raw: Vec<RawGrant>) -> Result<Vec<SecretGrant>, String> {
    let mut seen = BTreeSet::new();
    let mut grants = Vec::new();
    for grant in raw {
        let (name, forks) = match grant {
            RawGrant::Name(name) => (name, false),
            RawGrant::Full { name, forks } => (name, forks),
        };
        if !valid_secret_name(&name) {
            return Err(format!("secrets: {name:?} is not a secret name (letters, digits, `_`)"));
        }
        if !seen.insert(name.clone()) {
            return Err(format!("secrets: {name} is granted twice"));
        }
        grants.push(SecretGrant { name, forks });
    }
    Ok(grants)
}

/// The first granted name that `known` lacks, as a problem to show.
pub fn missing(grants: &[SecretGrant], known: &BTreeSet<String>) -> Option<String> {
    grants.iter().find(|g| !known.contains(&g.name)).map(|g| {
        format!("secrets: {} is not a secret Sparky has (no file {} in its secrets folder)", g.name, g.name)
    })
}

/// The names a build gets: all granted, or for a pull request from a fork only those
/// marked `forks: true`.
pub fn for_build(grants: &[SecretGrant], from_fork: bool) -> impl Iterator<Item = &str> {
    grants.iter().filter(move |g| !from_fork || g.forks).map(|g| g.name.as_str())
}
