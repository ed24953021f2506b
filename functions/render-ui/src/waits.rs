//! Why each build in the queue waits, worked out the way dispatch claims: oldest first,
//! at most a project's `concurrency` at once and at most `SPARKY_MAX_RUNNING` in all.
//! Builds sent to a runner wait for it to start them; queued builds wait for their
//! project's limit, the global cap, earlier builds within either, or dispatch's next
//! pass.

use std::collections::HashMap;

use sparky_core::{
    Ctx,
    api::ApiError,
    model::{Build, BuildStatus},
};

/// What a project allows, as the queue needs it: `None` when it has no usable config
/// (removed, or its sparky.yaml is broken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectLimit {
    pub concurrency: u32,
    pub disabled: bool,
}

/// Why each of `live` (oldest first) is not running yet, by build id; running builds
/// have no entry.
pub fn reasons(
    live: &[Build],
    limits: &HashMap<String, ProjectLimit>,
    global: usize,
) -> HashMap<i64, String> {
    let active = |b: &&Build| matches!(b.status, BuildStatus::Dispatched | BuildStatus::Running);
    let mut active_by_project: HashMap<&str, Vec<i64>> = HashMap::new();
    for build in live.iter().filter(active) {
        active_by_project.entry(&build.project).or_default().push(build.id);
    }
    let active_total = live.iter().filter(active).count();
    // Queued builds that the next pass would start, by project and in all.
    let mut next_by_project: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut next_total = 0;
    let mut reasons = HashMap::new();
    for build in live {
        let why = match build.status {
            BuildStatus::Running => continue,
            BuildStatus::Dispatched => {
                format!("waiting for a runner to start it (attempt {})", build.attempt)
            }
            _ => {
                let project = build.project.as_str();
                let running = active_by_project.get(project).map_or(&[][..], Vec::as_slice);
                let ahead = next_by_project.get(project).map_or(&[][..], Vec::as_slice);
                match limits.get(project) {
                    None => "its project has no usable sparky.yaml: it starts once that is fixed".to_string(),
                    Some(limit) if limit.disabled => {
                        "its project is disabled: dispatch cancels it on its next pass".to_string()
                    }
                    Some(limit) if running.len() >= limit.concurrency as usize => format!(
                        "project's concurrency {} reached: {} running",
                        limit.concurrency,
                        ids(running)
                    ),
                    Some(limit) if running.len() + ahead.len() >= limit.concurrency as usize => format!(
                        "behind {} of the same project (concurrency {})",
                        ids(ahead),
                        limit.concurrency
                    ),
                    Some(_) if active_total >= global => {
                        format!("global cap {global} reached: {active_total} running")
                    }
                    Some(_) if active_total + next_total >= global => {
                        format!("behind earlier builds under the global cap {global}")
                    }
                    Some(_) => {
                        next_by_project.entry(project).or_default().push(build.id);
                        next_total += 1;
                        "waiting for dispatch: it starts on the next pass".to_string()
                    }
                }
            }
        };
        reasons.insert(build.id, why);
    }
    reasons
}

/// Why each of `live` waits, with the projects' limits as their folders say now.
pub async fn of_queue(ctx: &Ctx, live: &[Build]) -> Result<HashMap<i64, String>, ApiError> {
    let limits = ctx
        .projects
        .list()
        .await?
        .into_iter()
        .filter_map(|p| {
            let config = p.config.as_ref().ok()?;
            Some((
                p.name.clone(),
                ProjectLimit { concurrency: config.concurrency, disabled: config.disabled },
            ))
        })
        .collect();
    Ok(reasons(live, &limits, ctx.config.max_running))
}

fn ids(ids: &[i64]) -> String {
    ids.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(id: i64, project: &str, status: BuildStatus) -> Build {
        Build {
            id,
            project: project.into(),
            status,
            trigger: sparky_core::model::TriggerKind::Api,
            params: Default::default(),
            description: None,
            scm: Default::default(),
            parent_build: None,
            attempt: u32::from(status != BuildStatus::Queued),
            retries_used: 0,
            created_at: 0,
            started_at: None,
            finished_at: None,
            exit_code: None,
            error: None,
            cancel_requested: false,
            log_size: None,
            chain: Vec::new(),
            report_error: None,
            pull_request: None,
            triggered_by: None,
            commit_message: None,
        }
    }

    #[test]
    fn says_which_limit_holds_each_build() {
        use BuildStatus::*;
        let limit = |concurrency, disabled| ProjectLimit { concurrency, disabled };
        let limits: HashMap<String, ProjectLimit> = [
            ("app".to_string(), limit(1, false)),
            ("docs".to_string(), limit(2, false)),
            ("off".to_string(), limit(1, true)),
        ]
        .into();
        let live = [
            build(1, "app", Running),
            build(2, "docs", Dispatched),
            build(3, "app", Queued),
            build(4, "docs", Queued),
            build(5, "docs", Queued),
            build(6, "off", Queued),
            build(7, "gone", Queued),
        ];
        let why = reasons(&live, &limits, 10);
        assert!(!why.contains_key(&1), "running builds don't wait");
        assert_eq!(why[&2], "waiting for a runner to start it (attempt 1)");
        assert_eq!(why[&3], "project's concurrency 1 reached: #1 running");
        assert_eq!(why[&4], "waiting for dispatch: it starts on the next pass");
        assert_eq!(why[&5], "behind #4 of the same project (concurrency 2)");
        assert!(why[&6].contains("disabled"));
        assert!(why[&7].contains("no usable sparky.yaml"));

        let capped = reasons(&live, &limits, 2);
        assert_eq!(capped[&4], "global cap 2 reached: 2 running");
        let nearly = reasons(
            &live[..4],
            &[("app".into(), limit(5, false)), ("docs".into(), limit(5, false))].into(),
            3,
        );
        assert_eq!(nearly[&3], "waiting for dispatch: it starts on the next pass");
        assert_eq!(nearly[&4], "behind earlier builds under the global cap 3");
    }
}
