//! A real SMTP server for the email tests: `tests/smtp/server.py`, aiosmtpd (PyPI,
//! installed by `./scripts/test`) requiring STARTTLS and a login, with a certificate
//! from a test CA that clients trust through `SPARKY_SMTP_CA`. The mails it takes are
//! read back from its folder.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde::Deserialize;

use crate::free_port;

pub const USER: &str = "sparky-mailer";
pub const PASSWORD: &str = "mail-password-7";

/// A mail the server took.
#[derive(Clone, Debug, Deserialize)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message, headers and body.
    pub text: String,
    /// Whether it came over TLS (after STARTTLS).
    pub tls: bool,
    /// Who logged in to send it.
    pub login: Option<String>,
}

/// A running server; killed when dropped.
pub struct SmtpServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl SmtpServer {
    /// A server's place in `dir` and a port, not started yet (see [`SmtpServer::start`]).
    pub fn new(dir: &Path) -> SmtpServer {
        for sub in ["mails", "certs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("smtp folders");
        }
        SmtpServer { child: None, port: free_port(), dir: dir.to_path_buf() }
    }

    /// Starts it (again) and waits until it listens; the CA stays the same.
    pub fn start(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp/server.py");
        let dir = |sub: &str| self.dir.join(sub).display().to_string();
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &self.port.to_string(), "--parent", &std::process::id().to_string()])
            .args(["--mails", &dir("mails"), "--certs", &dir("certs")])
            .args(["--user", USER, "--password", PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 tests/smtp/server.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read the server's first line");
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP server did not start (is aiosmtpd installed? ./scripts/test installs it)"
        );
        self.child = Some(child);
    }

    /// Kills it: connections are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The CA certificate the server's certificate chains to.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("certs/ca.pem")
    }

    /// What a `sparky` process needs to send mail through it, logging in with `password`.
    pub fn sparky_env(&self, password: &str) -> Vec<(String, String)> {
        vec![
            ("SPARKY_SMTP".into(), format!("smtp://127.0.0.1:{}", self.port)),
            ("SPARKY_SMTP_FROM".into(), "Sparky CI <ci@sparky.test>".into()),
            ("SPARKY_SMTP_USER".into(), USER.into()),
            ("SPARKY_SMTP_PASSWORD".into(), password.into()),
            ("SPARKY_SMTP_CA".into(), self.ca().display().to_string()),
        ]
    }

    /// The mails taken so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.join("mails"))
            .expect("mails folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
            .filter(|(_, p)| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|(_, p)| serde_json::from_slice(&std::fs::read(p).expect("mail")).expect("mail JSON"))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
