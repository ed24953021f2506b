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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: i64,
    pub project: String,
    pub status: BuildStatus,
    pub trigger: TriggerKind,
    pub params: Params,
    pub description: Option<String>,
    pub scm: ScmRef,
    pub parent_build: Option<i64>,
    /// How many times it was sent to a runner: the number of its current (or last)
    /// attempt, 0 while it never was.
    pub attempt: u32,
    /// How many of its `retries` it used: attempts that started and whose runner vanished.
    pub retries_used: u32,
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
    /// The pull (merge) request it builds, if it does.
    pub pull_request: Option<PullRequest>,
    /// Who or what asked for it, where known: a pusher's login, a crontab line, a
    /// trigger file, `API token`, `a person in the UI`.
    pub triggered_by: Option<String>,
    /// The message of the commit it builds (a pull request's title), where known.
    pub commit_message: Option<String>,
}

impl Build {
    /// Whether it builds a pull request from a fork: a stranger's code, which gets only
    /// the secrets marked `forks: true` and may start no other build.
    pub fn from_fork(&self) -> bool {
        self.pull_request.as_ref().is_some_and(|pull| pull.fork)
    }
}

/// A pull request (a merge request on GitLab) a build is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Its number on the host (GitLab's `iid`).
    pub number: u64,
    pub source_branch: String,
    pub target_branch: String,
    /// The ref its head commit is fetched from in the target repository
    /// (`refs/pull/N/head`, `refs/merge-requests/N/head`).
    pub head_ref: String,
    /// Whether it comes from another repository (a fork): its builds get only the
    /// secrets marked `forks: true`.
    pub fork: bool,
    /// Its page on the host, when the payload gives one.
    pub url: Option<String>,
}

/// Why a build's status changed, as the lifecycle's events record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Somebody or something asked for it (→ `queued`).
    Triggered,
    /// dispatch claimed it within the limits (→ `dispatched`).
    Claimed,
    /// A runner took it (→ `running`).
    Started,
    /// Its runner recorded how it ended (→ a terminal status).
    Finished,
    /// Somebody canceled it before it ran (→ `canceled`).
    Canceled,
    /// run could not be reached at all (→ `queued`, no retry used).
    DeliveryFailed,
    /// It was sent to a runner but never started before its lease ran out (→ `queued`,
    /// no retry used).
    DeliveryLost,
    /// It started and its runner stopped renewing its lease (→ `queued` while `retries`
    /// allow, else `lost`).
    RunnerVanished,
    /// Its runner shut down before the build ended and gave it back (→ `queued` while
    /// `retries` allow, else `lost`).
    HandedBack,
    /// The process that was to run it shut down before it started (→ `queued`).
    ShutDown,
    /// Its project's folder is gone (→ `canceled`).
    ProjectGone,
    /// Its project was disabled (→ `canceled`).
    ProjectDisabled,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Triggered,
        Reason::Claimed,
        Reason::Started,
        Reason::Finished,
        Reason::Canceled,
        Reason::DeliveryFailed,
        Reason::DeliveryLost,
        Reason::RunnerVanished,
        Reason::HandedBack,
        Reason::ShutDown,
        Reason::ProjectGone,
        Reason::ProjectDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Triggered => "triggered",
            Reason::Claimed => "claimed",
            Reason::Started => "started",
            Reason::Finished => "finished",
            Reason::Canceled => "canceled",
            Reason::DeliveryFailed => "delivery_failed",
            Reason::DeliveryLost => "delivery_lost",
            Reason::RunnerVanished => "runner_vanished",
            Reason::HandedBack => "handed_back",
            Reason::ShutDown => "shut_down",
            Reason::ProjectGone => "project_gone",
            Reason::ProjectDisabled => "project_disabled",
        }
    }

    /// How people read it (pages, `report.json`).
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Triggered => "triggered",
            Reason::Claimed => "sent to a runner",
            Reason::Started => "started",
            Reason::Finished => "finished",
            Reason::Canceled => "canceled",
            Reason::DeliveryFailed => "delivery failed: run could not be reached",
            Reason::DeliveryLost => "delivery lost: it never started",
            Reason::RunnerVanished => "runner vanished",
            Reason::HandedBack => "handed back: its runner shut down",
            Reason::ShutDown => "not started: Sparky shut down",
            Reason::ProjectGone => "its project no longer exists",
            Reason::ProjectDisabled => "its project was disabled",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| UnknownName { what: "reason", value: s.into() })
    }
}

/// One status change of one build, as the lifecycle recorded it. Event ids grow in
/// the order the changes were committed, across every process sharing the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub build_id: i64,
    pub project: String,
    /// `None` for the event that created the build.
    pub from: Option<BuildStatus>,
    pub to: BuildStatus,
    pub reason: Reason,
    /// The build's attempt when it changed (0 before it was first sent to a runner).
    pub attempt: u32,
    pub at: i64,
    /// What the process that recorded a start or an end read of its build in the same
    /// transaction (for its metrics); `None` for other changes and on an event read
    /// back from the store.
    #[serde(skip)]
    pub facts: Option<ChangeFacts>,
}

/// A build as one of its changes found it: what its metrics are labeled and timed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeFacts {
    pub trigger: TriggerKind,
    /// When it last entered the queue (for a start: how long it waited).
    pub queued_at: i64,
    /// When its latest attempt started running, if one did.
    pub started_at: Option<i64>,
}

/// One try at running a build: from being sent to a runner until it went back to the
/// queue or ended. Numbered from 1, the same in the API, `report.json` and the pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub dispatched_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// What it went to when it ended: `queued` (tried again) or a terminal status.
    pub outcome: Option<BuildStatus>,
    pub reason: Option<Reason>,
}

impl Attempt {
    /// The attempts of a build, from its events (oldest first).
    pub fn from_events(events: &[Event]) -> Vec<Attempt> {
        let mut attempts: Vec<Attempt> = Vec::new();
        for event in events {
            if event.to == BuildStatus::Dispatched {
                attempts.push(Attempt {
                    number: event.attempt,
                    dispatched_at: event.at,
                    started_at: None,
                    ended_at: None,
                    outcome: None,
                    reason: None,
                });
                continue;
            }
            let Some(current) = attempts.last_mut().filter(|a| a.ended_at.is_none()) else { continue };
            if event.to == BuildStatus::Running {
                current.started_at = Some(event.at);
            } else {
                current.ended_at = Some(event.at);
                current.outcome = Some(event.to);
                current.reason = Some(event.reason);
            }
        }
        attempts
    }
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
    pub pull_request: Option<PullRequest>,
    /// Who or what asked for it (see [`Build::triggered_by`]).
    pub triggered_by: Option<String>,
    /// The message of the commit it builds, where the host said.
    pub commit_message: Option<String>,
}

impl NewBuild {
    /// When `earlier` was queued with the same idempotency key: what this request asks
    /// for differently, if anything (a key names one request, not a slot to reuse).
    pub fn conflict_with(&self, earlier: &Build) -> Option<String> {
        let id = earlier.id;
        if self.project != earlier.project {
            return Some(format!(
                "this Idempotency-Key was already used for build {id} of project {}, not {}",
                earlier.project, self.project
            ));
        }
        if self.params != earlier.params {
            return Some(format!(
                "this Idempotency-Key was already used for build {id} with other params; \
                 send a new key for a new build"
            ));
        }
        if self.description != earlier.description {
            return Some(format!(
                "this Idempotency-Key was already used for build {id} with another description; \
                 send a new key for a new build"
            ));
        }
        None
    }
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
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>().ok(), Some(reason));
        }
    }

    #[test]
    fn attempts_come_from_events() {
        let event = |id, from, to, reason, attempt| Event {
            id,
            build_id: 1,
            project: "p".into(),
            from,
            to,
            reason,
            attempt,
            at: id * 10,
            facts: None,
        };
        use BuildStatus::*;
        let events = [
            event(1, None, Queued, Reason::Triggered, 0),
            event(2, Some(Queued), Dispatched, Reason::Claimed, 1),
            event(3, Some(Dispatched), Queued, Reason::DeliveryLost, 1),
            event(4, Some(Queued), Dispatched, Reason::Claimed, 2),
            event(5, Some(Dispatched), Running, Reason::Started, 2),
            event(6, Some(Running), Succeeded, Reason::Finished, 2),
        ];
        let attempts = Attempt::from_events(&events);
        assert_eq!(attempts.len(), 2);
        assert_eq!(
            (attempts[0].number, attempts[0].started_at, attempts[0].outcome, attempts[0].reason),
            (1, None, Some(Queued), Some(Reason::DeliveryLost))
        );
        assert_eq!(
            (attempts[1].number, attempts[1].started_at, attempts[1].ended_at, attempts[1].outcome),
            (2, Some(50), Some(60), Some(Succeeded))
        );
    }
}
