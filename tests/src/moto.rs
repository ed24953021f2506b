//! A real S3-compatible server for the S3 tests: `moto_server` (PyPI `moto[server]`,
//! installed by `./scripts/test`), started as its own process on a free loopback port.
//!
//! It runs under a small bash guard in its own process group: the guard ends moto
//! when the test process is gone (so a shared server never outlives its tests), and
//! signalling the group reaches both. Tests can pause the server (SIGSTOP: requests
//! hang, as with a stuck store), resume it, kill it (connections refused) and start a
//! fresh one on the same port. Moto keeps objects in memory: a killed server loses them.

use std::{
    net::TcpStream,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};

use crate::free_port;

/// The access key moto accepts (any is fine; these are its documented test values).
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

/// A running `moto_server`; killed when dropped.
pub struct Moto {
    guard: Option<Child>,
    pub port: u16,
}

impl Moto {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Moto {
        Self::start_on(free_port())
    }

    /// Starts a server on `port` (e.g. again, after [`Moto::kill`]).
    pub fn start_on(port: u16) -> Moto {
        let mut moto = Moto { guard: None, port };
        moto.spawn();
        moto
    }

    /// One server for the whole test process (each test uses its own buckets).
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    fn spawn(&mut self) {
        let found = Command::new("bash").args(["-c", "command -v moto_server"]).output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "moto_server is not installed: run ./scripts/test, or `pip install 'moto[server]'`"
        );
        let guard = Command::new("bash")
            .args([
                "-c",
                r#"moto_server -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!
                   while kill -0 "$2" 2>/dev/null && kill -0 "$m" 2>/dev/null; do sleep 0.2; done
                   kill "$m" 2>/dev/null"#,
                "moto-guard",
                &self.port.to_string(),
                &std::process::id().to_string(),
            ])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start moto_server");
        self.guard = Some(guard);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = sparky_core::tls::client()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(response.status().is_success(), "create bucket {bucket}: {}", response.status());
    }

    /// What a `sparky` process needs to keep its reports in `bucket` (under `prefix`).
    pub fn sparky_env(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("SPARKY_REPORTS".into(), format!("s3://{bucket}/{prefix}")),
            ("SPARKY_S3_ENDPOINT".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// Settings for an in-process S3 store on this server.
    pub fn settings(&self, bucket: &str, prefix: &str) -> sparky_core::reports::S3Settings {
        let mut s3 = sparky_core::reports::S3Settings::from_url(&format!("s3://{bucket}/{prefix}"))
            .expect("valid bucket");
        s3.endpoint = Some(self.endpoint());
        s3.access_key_id = ACCESS_KEY.into();
        s3.secret_access_key = sparky_core::secrets::Secret::new(SECRET_KEY);
        s3
    }

    fn signal(&self, signal: Signal) {
        if let Some(guard) = &self.guard {
            let _ = killpg(Pid::from_raw(guard.id() as i32), signal);
        }
    }

    /// Stops the server's processes (SIGSTOP): connections are accepted, nothing answers.
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Kills the server: connections are refused, and its objects are gone.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.wait();
        }
        // The port is free once nothing listens on it any more.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a fresh (empty) server on the same port after [`Moto::kill`].
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.signal(Signal::SIGCONT);
        self.kill();
    }
}
