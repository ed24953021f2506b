//! The render-ui router, called in-process against a real store, real report storage
//! and real project folders in a temp directory.

mod api;
mod history;
mod live;
mod login;
mod pages;

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use sparky_core::{
    Config, Ctx,
    model::{BuildStatus, NewBuild, Params},
    reports::log::LogWriter,
    store::Ending,
    testing::TempCtx,
    time::now_ms,
};
use tower::ServiceExt;

pub struct Harness {
    temp: TempCtx,
    pub ctx: Ctx,
}

pub async fn harness(configure: impl FnOnce(&mut Config)) -> Harness {
    let temp = TempCtx::new(configure).await;
    Harness { ctx: temp.ctx.clone(), temp }
}

/// An answer, with its body as text.
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn content_type(&self) -> &str {
        self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

impl Harness {
    pub fn project(&self, name: &str, yaml: &str) {
        self.temp.project(name, yaml);
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.get_with(uri, &[]).await
    }

    /// Posts a form (`application/x-www-form-urlencoded`) with `headers`.
    pub async fn post_form(&self, uri: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut request =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body.to_string())).expect("request")).await
    }

    /// Logs in with `token`; the cookie to send (`sparky_session=...`).
    pub async fn log_in(&self, token: &str) -> String {
        let answer = self.post_form("/login", &[], &format!("token={token}&next=/")).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let set = answer.headers[header::SET_COOKIE].to_str().expect("cookie").to_string();
        set.split(';').next().expect("name=value").to_string()
    }

    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).expect("request")).await
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = crate::router(self.ctx.clone()).oneshot(request).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        Answer { status, headers, body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body") }
    }

    /// Queues a build of `project` with `params`; returns its id.
    pub async fn queue(&self, project: &str, params: &[(&str, &str)], description: Option<&str>) -> i64 {
        let params: Params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let new = NewBuild {
            project: project.into(),
            params,
            description: description.map(Into::into),
            ..NewBuild::default()
        };
        self.ctx.queue_build(new).await.expect("queue").build.id
    }

    /// Moves queued build `id` to `running`, as dispatch and run would.
    pub async fn start(&self, project: &str, id: i64) {
        sparky_core::testing::claim(&self.ctx, project).await;
        sparky_core::testing::start(&self.ctx, id, "test").await;
    }

    /// Ends running build `id` with `status`, recording `log_size` bytes of log.
    pub async fn finish(&self, id: i64, status: BuildStatus, exit_code: Option<i32>, log_size: u64) {
        let ending =
            Ending { status, exit_code, error: None, log_size, report_error: None, finished_at: now_ms() };
        let finished = self.ctx.finish_build(id, "test", ending).await.expect("finish");
        assert!(finished, "build {id} finished");
    }

    /// A project `app` and a build of it that has started, with its log writer.
    pub async fn running_app_build(&self) -> (i64, LogWriter) {
        self.project("app", "script: echo\n");
        let id = self.queue("app", &[], None).await;
        self.start("app", id).await;
        (id, self.log_writer("app", id))
    }

    /// A log writer for build `id`; each `put` stores one chunk.
    pub fn log_writer(&self, project: &str, id: i64) -> LogWriter {
        LogWriter::new(self.ctx.reports.clone(), project, id, None)
    }
}

/// Stores `bytes` as the next chunk of a log and tells followers.
pub async fn put(h: &Harness, log: &mut LogWriter, id: i64, bytes: &[u8]) {
    log.append(bytes);
    log.flush().await.expect("flush");
    h.ctx.hub.publish(sparky_core::hub::HubEvent::LogGrew(id));
}
