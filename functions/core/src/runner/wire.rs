//! dispatch's runner API, as both ends see it: a run pod without the state folder
//! starts a build, renews its lease, hears of a cancel, records its commit, queues
//! downstream projects, reads the build for its report and records the end — each a
//! JSON request to `/internal/v1/builds/{id}/...` with `Authorization: Bearer
//! <SPARKY_INTERNAL_TOKEN>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Assignment;
use crate::{
    model::{Build, Event},
    project::{ProjectSnapshot, snapshot::snapshot},
    secrets::Secret,
    store::Ending,
};

/// Where the runner API's routes start.
pub const PREFIX: &str = "/internal/v1/builds";

/// The path of `action` on build `build_id` (`""`: the build itself).
pub fn path(build_id: i64, action: &str) -> String {
    if action.is_empty() { format!("{PREFIX}/{build_id}") } else { format!("{PREFIX}/{build_id}/{action}") }
}

/// `start`, `renew`: which runner asks.
#[derive(Debug, Serialize, Deserialize)]
pub struct Owner {
    pub owner: String,
}

/// `finish`: which runner, and how the build ended.
#[derive(Debug, Serialize, Deserialize)]
pub struct Finish {
    pub owner: String,
    pub ending: Ending,
}

/// `hand-back`: which runner, and the project's `retries`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HandBack {
    pub owner: String,
    pub retries: u32,
}

/// The answer to `start`: `null` when there is nothing to run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Started {
    pub build: Build,
    pub token: String,
    pub project: Option<ProjectSnapshot>,
    pub secrets: Result<BTreeMap<String, String>, String>,
}

/// The answer to `GET` of a build: its row and its lifecycle events.
#[derive(Debug, Serialize, Deserialize)]
pub struct Current {
    pub build: Option<Build>,
    pub events: Vec<Event>,
}

impl Started {
    /// What dispatch sends for `assignment` (blocking: it reads the project's files).
    pub fn from_assignment(assignment: Assignment) -> Started {
        let Assignment { build, token, project, secrets } = assignment;
        Started {
            build,
            token: token.expose().to_string(),
            project: project.as_ref().map(snapshot),
            secrets: secrets.map(|values| {
                values.into_iter().map(|(name, value)| (name, value.expose().to_string())).collect()
            }),
        }
    }

    /// The secrets, as the runner keeps them.
    pub fn secret_values(
        secrets: Result<BTreeMap<String, String>, String>,
    ) -> Result<BTreeMap<String, Secret>, String> {
        secrets.map(|values| values.into_iter().map(|(name, value)| (name, Secret::new(value))).collect())
    }
}
