//! The `knative/` bundle as the cluster would receive it (`kubectl kustomize`), read as
//! JSON values, and how to start a function exactly as its Knative Service says: the
//! image's environment, then the container's args and env with ConfigMap and Secret
//! references resolved, plus what Knative adds (`PORT`, `K_SERVICE`,
//! `K_CONFIGURATION`, `K_REVISION`). Volumes become local folders and in-cluster URLs
//! local addresses; everything else is taken as written.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use serde::Deserialize as _;
use serde_json::Value;

use crate::sparky_bin;

/// The repository's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Every object of a rendered kustomization.
pub struct Bundle {
    pub docs: Vec<Value>,
}

impl Bundle {
    /// `kubectl kustomize DIR`, parsed.
    pub fn render(dir: &Path) -> anyhow::Result<Bundle> {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .stderr(Stdio::piped())
            .output()
            .context("running kubectl kustomize (is kubectl installed?)")?;
        if !out.status.success() {
            bail!("kubectl kustomize {} failed: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8(out.stdout).context("kustomize output is not UTF-8")?;
        let mut docs = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).context("kustomize output is not YAML")?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        Ok(Bundle { docs })
    }

    /// The objects of one kind.
    pub fn all<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_string();
        self.docs.iter().filter(move |d| d["kind"] == kind.as_str())
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.all(kind).find(|d| d["metadata"]["name"] == name)
    }

    /// The Knative Services (`serving.knative.dev`), by name.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.all("Service")
            .filter(|d| d["apiVersion"].as_str().is_some_and(|v| v.starts_with("serving.knative.dev/")))
            .map(|d| (d["metadata"]["name"].as_str().unwrap_or_default(), d))
    }

    /// A ConfigMap's or Secret's value for `key`.
    pub fn lookup(&self, kind: &str, name: &str, key: &str) -> anyhow::Result<String> {
        let object = self.get(kind, name).with_context(|| format!("no {kind} {name} in the bundle"))?;
        if let Some(value) = object["data"][key].as_str().filter(|_| kind == "ConfigMap") {
            return Ok(value.to_string());
        }
        if let Some(value) = object["stringData"][key].as_str() {
            return Ok(value.to_string());
        }
        if object["data"][key].is_string() {
            bail!("{kind} {name}: base64 `data` is not read by this helper; the bundle uses stringData");
        }
        bail!("{kind} {name} has no key {key}")
    }

    /// The environment the container of Service `name` gets, in Kubernetes' order
    /// (`envFrom` first, then `env`), references resolved.
    pub fn container_env(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let service = self.get("Service", name).with_context(|| format!("no Service {name}"))?;
        let container = &service["spec"]["template"]["spec"]["containers"][0];
        let mut env: Vec<(String, String)> = Vec::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let (kind, reference) = if source["configMapRef"].is_object() {
                ("ConfigMap", &source["configMapRef"])
            } else {
                ("Secret", &source["secretRef"])
            };
            let object_name = reference["name"].as_str().unwrap_or_default();
            let object = match self.get(kind, object_name) {
                Some(object) => object,
                // As in Kubernetes: a missing optional source adds nothing.
                None if reference["optional"] == true => continue,
                None => bail!("no {kind} {object_name}"),
            };
            let keys = object["data"].as_object().into_iter().chain(object["stringData"].as_object());
            for key in keys.flat_map(|map| map.keys()) {
                env.push((key.clone(), self.lookup(kind, object_name, key)?));
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let var_name = var["name"].as_str().unwrap_or_default().to_string();
            let value = if let Some(value) = var["value"].as_str() {
                value.to_string()
            } else if let Some(r) = var["valueFrom"]["configMapKeyRef"].as_object() {
                self.lookup(
                    "ConfigMap",
                    r["name"].as_str().unwrap_or_default(),
                    r["key"].as_str().unwrap_or_default(),
                )?
            } else if let Some(r) = var["valueFrom"]["secretKeyRef"].as_object() {
                self.lookup(
                    "Secret",
                    r["name"].as_str().unwrap_or_default(),
                    r["key"].as_str().unwrap_or_default(),
                )?
            } else {
                bail!("{name}: env {var_name} has a source this helper does not know");
            };
            env.retain(|(k, _)| *k != var_name);
            env.push((var_name, value));
        }
        Ok(env)
    }
}

/// The `ENV` of `runtime-image/Dockerfile`: what every container starts with.
pub fn image_env() -> anyhow::Result<Vec<(String, String)>> {
    let path = workspace().join("runtime-image/Dockerfile");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let joined = text.replace("\\\n", " ");
    let mut env = vec![(
        "PATH".to_string(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    )];
    for line in joined.lines().filter_map(|l| l.trim().strip_prefix("ENV ")) {
        for pair in line.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                env.push((k.to_string(), v.to_string()));
            }
        }
    }
    Ok(env)
}

/// One function's process, as Knative would start it.
#[derive(Clone, Debug)]
pub struct Launch {
    pub service: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// Service `name` of `bundle` listening on `port`: the image's env, the container's
    /// env, then Knative's variables for revision 1.
    pub fn from_bundle(bundle: &Bundle, name: &str, port: u16) -> anyhow::Result<Launch> {
        let service = bundle.get("Service", name).with_context(|| format!("no Service {name}"))?;
        let container = &service["spec"]["template"]["spec"]["containers"][0];
        let args = container["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut launch = Launch { service: name.into(), args, env: image_env()? };
        for (k, v) in bundle.container_env(name)? {
            launch.set(&k, &v);
        }
        let revision = format!("{name}-00001");
        launch.set("PORT", &port.to_string());
        launch.set("K_SERVICE", name);
        launch.set("K_CONFIGURATION", name);
        launch.set("K_REVISION", &revision);
        launch.set("HOSTNAME", &format!("{revision}-deployment-7d9f8-x2k4q"));
        Ok(launch)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Replaces `from` at the start of every value (a mount path by a local folder, an
    /// in-cluster URL by a local one).
    pub fn map_prefix(&mut self, from: &str, to: &str) {
        for (_, value) in &mut self.env {
            if value == from || value.starts_with(&format!("{from}/")) {
                *value = format!("{to}{}", &value[from.len()..]);
            }
        }
    }

    /// The `sparky` command with exactly this environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(sparky_bin());
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}
