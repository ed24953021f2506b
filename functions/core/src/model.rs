//! Builds, their statuses and what triggered them.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Where a build is in its life. The first three are live; the rest are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    Queued,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    Canceled,
    TimedOut,
    Lost,
}

impl BuildStatus {
    pub const ALL: [BuildStatus; 8] = [
        BuildStatus::Queued,
        BuildStatus::Dispatched,
        BuildStatus::Running,
        BuildStatus::Succeeded,
        BuildStatus::Failed,
        BuildStatus::Canceled,
        BuildStatus::TimedOut,
        BuildStatus::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Dispatched => "dispatched",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Canceled => "canceled",
            BuildStatus::TimedOut => "timed_out",
            BuildStatus::Lost => "lost",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, BuildStatus::Queued | BuildStatus::Dispatched | BuildStatus::Running)
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not one of the expected names.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
}

impl FromStr for BuildStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuildStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownName { what: "status", value: s.into() })
    }
}

/// What asked for a build; jobs see it as `SPARKY_TRIGGER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Api,
    Cron,
    Webhook,
    Scm,
    File,
    Downstream,
    Rebuild,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 7] = [
        TriggerKind::Api,
        TriggerKind::Cron,
        TriggerKind::Webhook,
        TriggerKind::Scm,
        TriggerKind::File,
        TriggerKind::Downstream,
        TriggerKind::Rebuild,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Api => "api",
            TriggerKind::Cron => "cron",
            TriggerKind::Webhook => "webhook",
            TriggerKind::Scm => "scm",
            TriggerKind::File => "file",
            TriggerKind::Downstream => "downstream",
            TriggerKind::Rebuild => "rebuild",
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TriggerKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TriggerKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownName { what: "trigger", value: s.into() })
    }
}

/// The commit a build is about, where known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScmRef {
    pub url: Option<String>,
    pub branch: Option<String>,
    pub sha: Option<String>,
}

/// Build parameters: name to value, as jobs see them in their environment.
pub type Params = BTreeMap<String, String>;

/// One build, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    pub id: i64,
    pub project: String,
    pub status: BuildStatus,
    pub trigger: TriggerKind,
    pub params: Params,
    pub description: Option<String>,
    pub scm: ScmRef,
    pub parent_build: Option<i64>,
    /// How many times it was handed back after its runner vanished.
    pub attempt: u32,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    /// Why it ended the way it did, when the log alone doesn't say.
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub log_size: Option<u64>,
    /// The projects of the downstream chain that led here, oldest first.
    pub chain: Vec<String>,
    /// Why its report (log, artifacts, `report.json`) is incomplete, if it is.
    pub report_error: Option<String>,
}

/// A build about to be queued.
#[derive(Clone, Debug, Default)]
pub struct NewBuild {
    pub project: String,
    pub trigger: Option<TriggerKind>,
    pub params: Params,
    pub description: Option<String>,
    pub scm: ScmRef,
    pub parent_build: Option<i64>,
    /// The same key again returns the build queued the first time.
    pub idempotency_key: Option<String>,
    /// For downstream builds: the projects of the chain so far.
    pub chain: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in BuildStatus::ALL {
            assert_eq!(status.as_str().parse::<BuildStatus>().ok(), Some(status));
        }
        for kind in TriggerKind::ALL {
            assert_eq!(kind.as_str().parse::<TriggerKind>().ok(), Some(kind));
        }
        assert!("done".parse::<BuildStatus>().is_err());
        assert!(BuildStatus::TimedOut.is_terminal());
        assert!(!BuildStatus::Dispatched.is_terminal());
    }
}
