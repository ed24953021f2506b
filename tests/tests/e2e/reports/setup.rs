//! What the report tests share: Sparky started with its reports in a folder or in a
//! bucket of a real `moto_server`, an in-process view of the same storage to look at
//! the objects directly, and a small server-sent-events reader.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use sparky_core::reports::{FolderStore, ReportStore, S3Store};
use sparky_tests::{Api, Sparky, free_port, moto::Moto};

/// Where a test's Sparky keeps its reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Folder,
    S3,
}

/// Sparky on a temp root, as one process or as four.
pub struct Site {
    /// Build-changing calls go here.
    pub api: Api,
    /// Reads (pages, logs, events) go here.
    pub ui: Api,
    /// The same report storage Sparky uses.
    pub store: Arc<dyn ReportStore>,
    /// The process that runs builds.
    pub runner: i32,
    /// The bucket, on S3.
    pub bucket: Option<String>,
    _processes: Vec<Sparky>,
    /// The state folder; last, so that it is removed after the processes are stopped
    /// (fields drop in order) and none of them writes into it again.
    pub dir: tempfile::TempDir,
}

/// The environment for Sparky, a view of its storage, and the bucket on S3.
type Storage = (Vec<(String, String)>, Arc<dyn ReportStore>, Option<String>);

/// A new bucket's name.
fn bucket() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("sparky-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

impl Site {
    /// The environment and storage view for `backend` (S3: a new bucket on `moto`,
    /// or on the shared server).
    async fn storage(backend: Backend, dir: &std::path::Path, moto: Option<&Moto>) -> Storage {
        match backend {
            Backend::Folder => (Vec::new(), Arc::new(FolderStore::new(dir.join("reports"))), None),
            Backend::S3 => {
                let moto = moto.unwrap_or_else(|| Moto::shared());
                let bucket = bucket();
                moto.create_bucket(&bucket).await;
                let store = Arc::new(S3Store::new(&moto.settings(&bucket, "ci")));
                (moto.sparky_env(&bucket, "ci"), store, Some(bucket))
            }
        }
    }

    /// `sparky up`.
    pub async fn up(backend: Backend, moto: Option<&Moto>, extra: &[(&str, &str)]) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut envs, store, bucket) = Self::storage(backend, dir.path(), moto).await;
        envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sparky = Sparky::up(dir.path(), &env);
        let api = Api::new(&sparky.url);
        let runner = sparky.pid().as_raw();
        Site { ui: api.clone(), api, store, runner, bucket, dir, _processes: vec![sparky] }
    }

    /// The four functions as four processes, as on Kubernetes: the log is written by
    /// run and read by render-ui, which only learns of it by reading report storage.
    pub async fn four(backend: Backend, moto: Option<&Moto>) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut envs, store, bucket) = Self::storage(backend, dir.path(), moto).await;
        let ports = [free_port(), free_port(), free_port(), free_port()];
        envs.extend([
            ("SPARKY_SQLITE_JOURNAL".into(), "delete".into()),
            ("SPARKY_DISPATCH_URL".into(), format!("http://127.0.0.1:{}", ports[1])),
            ("SPARKY_RUN_URL".into(), format!("http://127.0.0.1:{}", ports[2])),
            ("SPARKY_API_URL".into(), format!("http://127.0.0.1:{}", ports[0])),
        ]);
        let env: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let functions = ["trigger", "dispatch", "run", "render-ui"];
        let processes: Vec<Sparky> =
            functions.iter().zip(ports).map(|(f, port)| Sparky::serve(f, port, dir.path(), &env)).collect();
        Site {
            api: Api::new(&processes[0].url),
            ui: Api::new(&processes[3].url),
            store,
            runner: processes[2].pid().as_raw(),
            bucket,
            dir,
            _processes: processes,
        }
    }

    /// Writes `projects/NAME/sparky.yaml`.
    pub fn project(&self, name: &str, yaml: &str) {
        sparky_tests::write_project(self.dir.path(), name, yaml);
    }

    /// The keys stored under `prefix`, looked at directly.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        self.store.list(prefix).await.expect("list reports").into_iter().map(|o| o.key).collect()
    }
}

/// One server-sent event.
#[derive(Debug, Default, Clone)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: serde_json::Value,
}

/// A live `GET /builds/{id}/events` stream.
pub struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    pub async fn open(api: &Api, id: i64, last_event_id: Option<&str>) -> Events {
        let mut request = api.http.get(api.url(&format!("/builds/{id}/events")));
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await.expect("events").error_for_status().expect("events answer 200");
        Events { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event (keepalive comments skipped); `None` when the stream ends or
    /// nothing comes for 30 s.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.into();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.into());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.into()));
                    }
                }
                if !event.event.is_empty() {
                    return Some(event);
                }
                continue;
            }
            let piece = tokio::time::timeout(Duration::from_secs(30), self.body.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&piece));
        }
    }
}
