//! `downstream: [names]`: after a successful build, each named project is queued with
//! trigger `downstream` and `SPARKY_PARENT_BUILD` set. A chain of downstream builds
//! never runs the same project twice — `a -> b -> a` stops before the second `a` — so
//! a cycle in the projects' configs can't loop. Each downstream build is queued once
//! per parent build (an idempotency key), even if asked again. A build of a pull
//! request from a fork queues none: a stranger's request may not start the builds
//! that hold the project's secrets.

use crate::{
    Ctx,
    error::error_chain,
    model::{Build, NewBuild, TriggerKind},
    project::params,
};

impl Ctx {
    /// Queues the `downstream:` projects of `build`'s project after it succeeded; one
    /// line for its log per project, saying what became of it.
    pub async fn queue_downstream(&self, build: &Build) -> Vec<String> {
        let downstream = match self.projects.get(&build.project).await {
            Ok(Some(project)) => match project.config {
                Ok(config) => config.downstream,
                Err(_) => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        if build.from_fork() {
            return downstream
                .iter()
                .map(|name| {
                    format!("downstream {name} skipped: a pull request from a fork starts no other builds")
                })
                .collect();
        }
        let mut chain = build.chain.clone();
        chain.push(build.project.clone());
        let mut notes = Vec::new();
        for name in &downstream {
            let note = if chain.contains(name) {
                format!("downstream {name} skipped: the chain {} already ran it", chain.join(" -> "))
            } else {
                self.queue_one_downstream(build, name, &chain).await
            };
            notes.push(note);
        }
        notes
    }

    async fn queue_one_downstream(&self, build: &Build, name: &str, chain: &[String]) -> String {
        match self.projects.get(name).await {
            Ok(Some(project)) => match &project.config {
                Ok(target) if target.disabled => format!("downstream {name} skipped: it is disabled"),
                Ok(target) => {
                    let new = NewBuild {
                        project: name.to_string(),
                        trigger: Some(TriggerKind::Downstream),
                        params: params::defaults(&target.vars),
                        description: Some(format!("after build #{} of {}", build.id, build.project)),
                        parent_build: Some(build.id),
                        chain: chain.to_vec(),
                        idempotency_key: Some(format!("downstream:{}:{name}", build.id)),
                        ..NewBuild::default()
                    };
                    match self.queue_build(new).await {
                        Ok(inserted) => format!("queued downstream build #{} of {name}", inserted.build.id),
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
    }
}
