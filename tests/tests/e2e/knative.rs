//! The `knative/` bundle: rendered with `kubectl kustomize`, checked against Knative's
//! rules, and run — the four functions started exactly as the manifests say, with the
//! Broker and PingSources played by the test (`sparky_tests::knative`).

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use sparky_tests::{
    alive, kill_groups,
    knative::{FUNCTIONS, KnativeCluster, iso8601_seconds},
    manifests::{Bundle, workspace},
    read_pids, write_project,
};

const RESERVED_ENV: [&str; 4] = ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];
const RESERVED_PORTS: [u64; 6] = [8012, 8013, 8022, 9090, 9091, 8008];
/// Pod fields Knative Serving accepts with its default feature flags (its field masks),
/// plus the Revision's own fields.
const POD_FIELDS: [&str; 9] = [
    "containers",
    "volumes",
    "serviceAccountName",
    "imagePullSecrets",
    "enableServiceLinks",
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
];
const CONTAINER_FIELDS: [&str; 16] = [
    "name",
    "args",
    "command",
    "env",
    "workingDir",
    "envFrom",
    "image",
    "imagePullPolicy",
    "livenessProbe",
    "ports",
    "readinessProbe",
    "resources",
    "securityContext",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "volumeMounts",
];
const SECURITY_FIELDS: [&str; 7] = [
    "capabilities",
    "readOnlyRootFilesystem",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "seccompProfile",
];
/// What each function needs configured to do its job in separate pods.
const NEEDS: [(&str, &[&str]); 4] = [
    (
        "trigger",
        &[
            "SPARKY_ROOT",
            "SPARKY_SQLITE_JOURNAL",
            "SPARKY_DISPATCH_URL",
            "SPARKY_API_TOKEN",
            "SPARKY_WEBHOOK_SECRET",
        ],
    ),
    (
        "dispatch",
        &[
            "SPARKY_ROOT",
            "SPARKY_SQLITE_JOURNAL",
            "SPARKY_RUN_URL",
            "SPARKY_MAX_RUNNING",
            "SPARKY_LEASE",
            "SPARKY_INTERNAL_TOKEN",
            "SPARKY_SECRETS",
        ],
    ),
    (
        "run",
        &[
            "SPARKY_ROOT",
            "SPARKY_DISPATCH_URL",
            "SPARKY_API_URL",
            "SPARKY_LEASE",
            "SPARKY_RUN_GRACE",
            "SPARKY_INTERNAL_TOKEN",
        ],
    ),
    ("render-ui", &["SPARKY_ROOT", "SPARKY_SQLITE_JOURNAL", "SPARKY_API_TOKEN"]),
];
/// What every function needs to reach the report storage.
const REPORTS: [&str; 4] =
    ["SPARKY_REPORTS", "SPARKY_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];
/// What of the functions' configuration a run pod, where jobs run, must not hold.
const NOT_FOR_RUN: [&str; 2] = ["SPARKY_API_TOKEN", "SPARKY_WEBHOOK_SECRET"];

fn keys(value: &Value) -> Vec<&str> {
    value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}

fn seconds(text: &str) -> u64 {
    humantime_seconds(text).unwrap_or_else(|| panic!("{text:?} is not a duration"))
}

fn humantime_seconds(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    Some(
        n * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return None,
        },
    )
}

#[test]
fn the_bundle_renders_and_follows_knatives_rules() {
    let bundle = Bundle::render(&workspace().join("knative")).expect("kubectl kustomize knative/");
    let cluster =
        Bundle::render(&workspace().join("knative/cluster")).expect("kubectl kustomize knative/cluster/");
    let features = &cluster.get("ConfigMap", "config-features").expect("config-features")["data"];
    let enabled = |flag: &str| features[flag] == "enabled";
    let config = &bundle.get("ConfigMap", "sparky-config").expect("sparky-config")["data"];
    let pvc = bundle.all("PersistentVolumeClaim").next().expect("a PersistentVolumeClaim");
    assert!(
        pvc["spec"]["accessModes"].as_array().is_some_and(|m| m.contains(&json!("ReadWriteMany"))),
        "{pvc}"
    );
    let claim = pvc["metadata"]["name"].as_str().expect("claim name");
    assert_eq!(config["SPARKY_SQLITE_JOURNAL"], "delete", "several pods share sparky.db: no WAL");

    let mut functions = Vec::new();
    let mut sparky_images = std::collections::BTreeSet::new();
    for (name, service) in bundle.services() {
        let template = &service["spec"]["template"];
        let pod = &template["spec"];
        for field in keys(pod) {
            assert!(POD_FIELDS.contains(&field), "{name}: Knative rejects pod field {field} by default");
        }
        let containers = pod["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "{name}: one container");
        let container = &containers[0];
        for field in keys(container) {
            assert!(CONTAINER_FIELDS.contains(&field), "{name}: Knative rejects container field {field}");
        }
        for field in keys(&container["securityContext"]) {
            assert!(SECURITY_FIELDS.contains(&field), "{name}: Knative rejects securityContext.{field}");
        }
        assert!(
            keys(&container["securityContext"]["capabilities"]).iter().all(|k| *k == "drop"),
            "{name}: only drops"
        );
        assert_eq!(container["securityContext"]["runAsNonRoot"], true, "{name}");
        let ports = container["ports"].as_array().expect("ports");
        assert_eq!(ports.len(), 1, "{name}: Knative routes to exactly one port");
        let port = ports[0]["containerPort"].as_u64().expect("containerPort");
        assert!(!RESERVED_PORTS.contains(&port), "{name}: port {port} is Knative's");
        for var in container["env"].as_array().into_iter().flatten() {
            let var = var["name"].as_str().unwrap_or_default();
            assert!(!RESERVED_ENV.contains(&var), "{name}: {var} is set by Knative");
        }
        for (var, _) in bundle.container_env(name).expect("env resolves") {
            assert!(!RESERVED_ENV.contains(&var.as_str()), "{name}: {var} (from envFrom) is set by Knative");
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{name}: {probe}");
        }
        for side in ["requests", "limits"] {
            assert!(container["resources"][side]["memory"].is_string(), "{name}: resources.{side}");
        }
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["autoscaling.knative.dev/min-scale"], "0", "{name}: scales to zero");
        assert!(annotations["autoscaling.knative.dev/max-scale"].is_string(), "{name}: max-scale");
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            let kinds = keys(volume);
            if kinds.contains(&"persistentVolumeClaim") {
                assert!(enabled("kubernetes.podspec-persistent-volume-claim"), "{name}: PVCs need the flag");
                assert_eq!(volume["persistentVolumeClaim"]["claimName"], claim, "{name}");
            }
            if kinds.contains(&"emptyDir") {
                assert!(enabled("kubernetes.podspec-volumes-emptydir"), "{name}: emptyDir needs the flag");
            }
        }
        let args: Vec<&str> =
            container["args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if let ["serve", function] = args[..] {
            functions.push(function.to_string());
            sparky_images.insert(container["image"].as_str().unwrap_or_default().to_string());
            assert_eq!(function, name, "Service {name} serves {function}");
            assert_eq!(
                service["metadata"]["labels"]["networking.knative.dev/visibility"], "cluster-local",
                "{name}"
            );
            let state = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["persistentVolumeClaim"].is_object());
            let mounts = container["volumeMounts"].as_array().cloned().unwrap_or_default();
            let env_of = |var: &str| {
                bundle
                    .container_env(name)
                    .expect("env")
                    .into_iter()
                    .rev()
                    .find(|(k, _)| k == var)
                    .map(|(_, v)| v)
            };
            if name == "run" {
                // Jobs run here: no shared state, only the pod's own disk.
                assert!(state.is_none(), "run must not mount the state volume: {pod}");
                let root = env_of("SPARKY_ROOT").expect("run's SPARKY_ROOT");
                let own =
                    mounts.iter().find(|m| m["mountPath"] == root.as_str()).expect("run's root is mounted");
                let volume =
                    pod["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == own["name"]);
                assert!(
                    volume.is_some_and(|v| v["emptyDir"].is_object()),
                    "run's root is an emptyDir: {pod}"
                );
                for var in NOT_FOR_RUN {
                    assert!(env_of(var).is_none(), "run must not hold {var}");
                }
                let secret_volumes =
                    pod["volumes"].as_array().into_iter().flatten().filter(|v| v["secret"].is_object());
                assert_eq!(secret_volumes.count(), 0, "run mounts no secrets: dispatch sends a build's own");
            } else {
                // These open (and migrate) sparky.db, so the volume is writable.
                let state = state.unwrap_or_else(|| panic!("{name}: the state volume is not mounted"));
                let mount = mounts.iter().find(|m| m["name"] == state["name"]);
                let mount = mount.unwrap_or_else(|| panic!("{name}: the state volume is not mounted"));
                assert_ne!(mount["readOnly"], true, "{name} writes to the state volume");
                assert!(enabled("kubernetes.podspec-persistent-volume-write"), "writable PVCs need the flag");
                assert_eq!(mount["mountPath"], config["SPARKY_ROOT"], "{name}: SPARKY_ROOT is the volume");
                // The job secrets are files where SPARKY_SECRETS says.
                let secrets = mounts.iter().find(|m| m["mountPath"] == config["SPARKY_SECRETS"]);
                let secrets = secrets.unwrap_or_else(|| panic!("{name}: the job secrets are not mounted"));
                let volume =
                    pod["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == secrets["name"]);
                let secret_name =
                    volume.and_then(|v| v["secret"]["secretName"].as_str()).expect("a Secret volume");
                assert!(bundle.get("Secret", secret_name).is_some(), "{name}: no Secret {secret_name}");
            }
            for var in REPORTS {
                assert!(env_of(var).is_some(), "{name} needs {var} for the reports");
            }
            let env: Vec<String> =
                bundle.container_env(name).expect("env").into_iter().map(|(k, _)| k).collect();
            let (_, needs) = NEEDS.iter().find(|(f, _)| *f == name).expect("a known function");
            for var in *needs {
                assert!(env.iter().any(|k| k == var), "{name} needs {var}");
            }
        }
    }
    functions.sort();
    let mut expected: Vec<String> = FUNCTIONS.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(functions, expected, "one Service per function");
    assert_eq!(sparky_images.len(), 1, "one image for all functions: {sparky_images:?}");
    let image = sparky_images.into_iter().next().unwrap_or_default();
    assert!(
        !image.starts_with("sparky") && image.contains(':'),
        "the kustomization names the image: {image}"
    );

    // run: one build per pod, for as long as the longest build, on as many pods as
    // dispatch may start builds.
    let run = &bundle.get("Service", "run").expect("run")["spec"]["template"];
    assert_eq!(run["spec"]["containerConcurrency"], 1);
    let timeout = run["spec"]["timeoutSeconds"].as_u64().expect("run's timeoutSeconds");
    let max_revision = cluster.get("ConfigMap", "config-defaults").expect("config-defaults")["data"]["max-revision-timeout-seconds"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(max_revision, Some(timeout), "the cluster must allow run's timeoutSeconds");
    assert_eq!(
        run["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"],
        config["SPARKY_MAX_RUNNING"]
    );
    let grace = seconds(config["SPARKY_RUN_GRACE"].as_str().expect("SPARKY_RUN_GRACE"));
    assert!(grace + 120 <= timeout, "hand builds back well before Knative's SIGKILL at {timeout}s: {grace}s");

    // Eventing: the Broker dispatch sends to delivers dev.sparky.build.run to run's route.
    let broker = bundle.all("Broker").next().expect("a Broker");
    let broker_name = broker["metadata"]["name"].as_str().expect("broker name");
    let namespace = broker["metadata"]["namespace"].as_str().expect("namespace");
    assert_eq!(
        config["SPARKY_RUN_URL"],
        format!("http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{broker_name}")
    );
    let trigger = bundle.all("Trigger").find(|t| t["spec"]["broker"] == broker_name).expect("a Trigger");
    assert_eq!(trigger["spec"]["filter"]["attributes"]["type"], "dev.sparky.build.run");
    assert_eq!(trigger["spec"]["subscriber"]["ref"]["name"], "run");
    assert_eq!(trigger["spec"]["subscriber"]["uri"], "/events/run");
    let delivery =
        iso8601_seconds(trigger["spec"]["delivery"]["timeout"].as_str().expect("delivery.timeout"));
    assert_eq!(delivery.expect("ISO 8601").as_secs(), timeout, "the Broker holds a build as long as run may");

    // PingSources tick every minute into routes of functions of this bundle.
    let sinks: Vec<(String, String)> = bundle
        .all("PingSource")
        .map(|p| {
            assert_eq!(p["spec"]["schedule"], "* * * * *", "{p}");
            let sink = &p["spec"]["sink"];
            assert_eq!(sink["ref"]["kind"], "Service");
            assert!(bundle.get("Service", sink["ref"]["name"].as_str().unwrap_or_default()).is_some(), "{p}");
            (
                sink["ref"]["name"].as_str().unwrap_or_default().into(),
                sink["uri"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert!(sinks.contains(&("trigger".into(), "/events/cron".into())), "{sinks:?}");
    assert!(sinks.contains(&("dispatch".into(), "/events/dispatch".into())), "{sinks:?}");
    for (_, service) in bundle.services() {
        let envs = service["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for env in envs.iter().filter_map(|e| e["valueFrom"]["secretKeyRef"].as_object()) {
            let secret = env["name"].as_str().unwrap_or_default();
            bundle
                .lookup("Secret", secret, env["key"].as_str().unwrap_or_default())
                .expect("the Secret has the key");
        }
    }

    // The public entry point: the only Service not cluster-local, routing writes and
    // webhooks to trigger, the rest to render-ui, and keeping /events inside.
    let public: Vec<&str> = bundle
        .services()
        .filter(|(_, s)| s["metadata"]["labels"]["networking.knative.dev/visibility"] != "cluster-local")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(public, ["sparky"]);
    let nginx = bundle.get("ConfigMap", "sparky-entrypoint").expect("entry point config")["data"]["default.conf.template"]
        .as_str()
        .expect("nginx template")
        .to_string();
    let location = |path: &str| {
        let start =
            nginx.find(&format!("location {path} {{")).unwrap_or_else(|| panic!("no location {path}"));
        nginx[start..].split('}').next().unwrap_or_default().to_string()
    };
    assert!(location("/hooks/").contains(&format!("trigger.{namespace}.svc.cluster.local")));
    assert!(location("/").contains(&format!("render-ui.{namespace}.svc.cluster.local")));
    assert!(location("/events/").contains("return 404"));
    assert!(
        nginx.contains(&format!("default trigger.{namespace}.svc.cluster.local")),
        "API writes go to trigger"
    );
    assert!(
        nginx.contains(&format!("GET     render-ui.{namespace}.svc.cluster.local")),
        "API reads go to render-ui"
    );
}

/// Bearer header with the bundle's (example) API token.
fn token(cluster: &KnativeCluster) -> String {
    format!("Bearer {}", cluster.launches["trigger"].get("SPARKY_API_TOKEN").unwrap_or_default())
}

async fn trigger_build(cluster: &KnativeCluster, project: &str) -> i64 {
    let api = cluster.api("trigger");
    let request = api
        .http
        .post(api.url(&format!("/api/v1/projects/{project}/builds")))
        .header("authorization", token(cluster))
        .json(&json!({}));
    let reply = api.send(request).await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    reply.json["id"].as_i64().expect("id")
}

#[tokio::test]
async fn functions_started_as_the_manifests_say_run_api_and_cron_builds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = KnativeCluster::start(dir.path(), |_| {}).await.expect("cluster");
    write_project(
        &cluster.state,
        "app",
        "crontab: '*/5 * * * *'\nscript: |\n  echo \"$SPARKY_TRIGGER build $SPARKY_BUILD_ID in $PWD\"\n  git --version >/dev/null\n  curl -fsS \"$SPARKY_API/healthz\"\n",
    );
    let ui = cluster.api("render-ui");

    // Without the Secret's token the API refuses; with it, a build runs through dispatch,
    // the Broker and run, in run's own working folder (an emptyDir), not on the volume.
    let refused = cluster.api("trigger").post_json("/api/v1/projects/app/builds", json!({})).await;
    assert_eq!(refused.status, 401, "{}", refused.json);
    let id = trigger_build(&cluster, "app").await;
    let build = ui.wait_for(id, None, Duration::from_secs(30)).await;
    assert_eq!(build["status"], "succeeded", "{build}\nrun: {}", cluster.processes["run"].log());
    let work = dir.path().join("run-work/work");
    assert_eq!(ui.log(id).await, format!("api build {id} in {}/{id}/workspace\nok\n", work.display()));
    let deliveries = cluster.broker.deliveries();
    let delivered =
        deliveries.iter().find(|d| d.body.contains(&format!("\"build_id\":{id}"))).expect("a delivery");
    assert_eq!(delivered.status, Some(200), "{delivered:?}");
    assert!(
        delivered.body.trim_end().ends_with(&format!("{{\"build_id\":{id},\"status\":\"succeeded\"}}")),
        "{delivered:?}"
    );

    // Cron, on the test's clock (within SPARKY_TICK_WINDOW of the real one): the
    // PingSource's tick for the last multiple of 5 minutes queues the project, the tick
    // a minute later nothing.
    let now = chrono::Utc::now().timestamp();
    let fifth = |offset: i64| {
        let at = now - now.rem_euclid(300) + offset;
        chrono::DateTime::from_timestamp(at, 0).expect("time").to_rfc3339()
    };
    let (status, reply) = cluster.ping("sparky-cron", &fifth(60)).await.expect("tick");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["cron"], json!([]), "{reply}");
    let (status, reply) = cluster.ping("sparky-cron", &fifth(0)).await.expect("tick");
    assert_eq!(status, 200, "{reply}");
    let cron_id = reply["cron"][0]["build_id"].as_i64().unwrap_or_else(|| panic!("no cron build: {reply}"));
    let build = ui.wait_for(cron_id, None, Duration::from_secs(30)).await;
    assert_eq!(
        (build["status"].as_str(), build["trigger"].as_str()),
        (Some("succeeded"), Some("cron")),
        "{build}"
    );
    assert!(ui.log(cron_id).await.starts_with(&format!("cron build {cron_id} ")));

    // The sweep PingSource reaches dispatch; every function answers its probes.
    let (status, swept) = cluster.ping("sparky-sweep", "2026-11-25T08:10:00Z").await.expect("sweep");
    assert_eq!((status, swept["swept"].clone()), (200, json!([])), "{swept}");
    for function in FUNCTIONS {
        let (status, body) = cluster.api(function).get_text("/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"), "{function}");
    }
    let header = std::fs::read(cluster.state.join("sparky.db")).expect("sparky.db on the volume");
    assert_eq!(&header[18..20], &[1, 1], "rollback journal on the shared volume");
}

#[tokio::test]
async fn sigterm_lets_a_running_build_finish_even_when_its_caller_hung_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = KnativeCluster::start(dir.path(), |_| {}).await.expect("cluster");
    let started = dir.path().join("started");
    write_project(
        &cluster.state,
        "slow",
        &format!("script: |\n  touch {s}\n  sleep 2\n  echo finished after SIGTERM\n", s = started.display()),
    );
    let id = trigger_build(&cluster, "slow").await;
    let ui = cluster.api("render-ui");
    ui.wait_for(id, Some("running"), Duration::from_secs(20)).await;
    while !started.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The Broker's request to run goes away mid-build; then the pod is told to stop.
    cluster.broker.hang_up();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let run = cluster.processes.get_mut("run").expect("run");
    run.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(run.pid().as_raw()), "run must not exit while its build runs");
    let status = run.wait_exit(Duration::from_secs(20)).expect("run exits once the build is done");
    assert!(status.success(), "{status:?}\n{}", run.log());
    let build = ui.build(id).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    assert_eq!(ui.log(id).await, "finished after SIGTERM\n");
}

#[tokio::test]
async fn sigterm_hands_builds_back_when_the_grace_period_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The bundle's SPARKY_RUN_GRACE is 55m; the test waits 1s instead.
    let mut cluster = KnativeCluster::start(dir.path(), |launch| {
        if launch.service == "run" {
            launch.set("SPARKY_RUN_GRACE", "1s");
        }
    })
    .await
    .expect("cluster");
    let pids = dir.path().join("pids");
    let marker = dir.path().join("first-attempt");
    write_project(
        &cluster.state,
        "endless",
        &format!("script: |\n  echo $$ >> {p}\n  echo started\n  sleep 300\n", p = pids.display()),
    );
    write_project(
        &cluster.state,
        "retried",
        &format!(
            "retries: 1\nscript: |\n  if [ ! -e {m} ]; then touch {m}; echo $$ >> {p}; sleep 300; fi\n  echo second attempt\n",
            m = marker.display(),
            p = pids.display()
        ),
    );
    let ui = cluster.api("render-ui");
    let endless = trigger_build(&cluster, "endless").await;
    let retried = trigger_build(&cluster, "retried").await;
    for id in [endless, retried] {
        ui.wait_for(id, Some("running"), Duration::from_secs(20)).await;
    }
    while read_pids(&pids).len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = cluster.processes.get_mut("run").expect("run");
    run.signal(Signal::SIGTERM);
    let status = run.wait_exit(Duration::from_secs(15)).expect("run exits after its grace period");
    assert!(status.success(), "{status:?}\n{}", run.log());
    let jobs = read_pids(&pids);
    assert!(jobs.iter().all(|pid| !alive(*pid)), "the handed-back jobs were stopped");
    kill_groups(&jobs);

    // Handed back, not left running: run poked dispatch, whose sweep settled each build
    // (the retried one is queued again); the next minute's sweep starts it on a new pod.
    cluster.start_function("run");
    let (status, reply) = cluster.ping("sparky-sweep", "2026-11-25T08:11:00Z").await.expect("sweep");
    assert_eq!(status, 200, "{reply}");
    let lost = ui.wait_for(endless, None, Duration::from_secs(30)).await;
    assert_eq!(lost["status"], "lost", "{lost}");
    assert!(ui.log(endless).await.contains("handed back"));
    assert_eq!(lost["attempts"][0]["reason"], "handed_back", "{lost}");
    let again = ui.wait_for(retried, None, Duration::from_secs(30)).await;
    assert_eq!(
        (again["status"].as_str(), again["attempt"].as_i64(), again["retries_used"].as_i64()),
        (Some("succeeded"), Some(2), Some(1)),
        "{again}"
    );
}
