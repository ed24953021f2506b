//! `downstream: [names]`: after a successful build, each named project is queued with
//! trigger `downstream` and `SPARKY_PARENT_BUILD` set. A chain of downstream builds
//! never runs the same project twice — `a -> b -> a` stops before the second `a` — so
//! a cycle in the projects' configs can't loop. Each downstream build is queued once
//! per parent build, even if recording the parent is retried.

use sparky_core::{
    Ctx,
    error::error_chain,
    model::{Build, NewBuild, TriggerKind},
    project::ProjectConfig,
    reports::log::LogWriter,
};

/// Queues `config.downstream` after `build` succeeded, noting each in the log.
pub async fn queue(ctx: &Ctx, build: &Build, config: &ProjectConfig, log: &mut LogWriter) {
    if config.downstream.is_empty() {
        return;
    }
    let mut chain = build.chain.clone();
    chain.push(build.project.clone());
    for name in &config.downstream {
        let note = if chain.contains(name) {
            format!("downstream {name} skipped: the chain {} already ran it", chain.join(" -> "))
        } else {
            match ctx.projects.get(name).await {
                Ok(Some(project)) => match &project.config {
                    Ok(target) if target.disabled => format!("downstream {name} skipped: it is disabled"),
                    Ok(_) => {
                        let new = NewBuild {
                            project: name.clone(),
                            trigger: Some(TriggerKind::Downstream),
                            description: Some(format!("after build #{} of {}", build.id, build.project)),
                            parent_build: Some(build.id),
                            chain: chain.clone(),
                            idempotency_key: Some(format!("downstream:{}:{name}", build.id)),
                            ..NewBuild::default()
                        };
                        match ctx.queue_build(new).await {
                            Ok(inserted) => {
                                format!("queued downstream build #{} of {name}", inserted.build.id)
                            }
                            Err(error) => {
                                tracing::error!(error = %error_chain(&error), downstream = name, "could not queue a downstream build");
                                format!("downstream {name} could not be queued: {error}")
                            }
                        }
                    }
                    Err(e) => format!("downstream {name} skipped: its sparky.yaml is broken ({e})"),
                },
                Ok(None) => format!("downstream {name} skipped: there is no such project"),
                Err(error) => format!("downstream {name} skipped: {error}"),
            }
        };
        log.append(format!("[sparky] {note}\n").as_bytes());
    }
}
