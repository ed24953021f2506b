//! A small W3C WebDriver client (JSON over HTTP) driving headless Chromium through
//! `chromedriver`, for end-to-end tests of the web UI.

use std::{
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::free_port;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver; killed when dropped, with every browser it started (its
/// process group), even when a test failed before closing them.
pub struct Driver {
    process: Child,
    base: String,
    http: reqwest::Client,
    /// The browsers' profiles and temporary files; removed after the browsers are gone
    /// (fields drop after `Drop::drop`).
    profiles: tempfile::TempDir,
}

/// One browser session.
pub struct Browser {
    driver_base: String,
    session: String,
    http: reqwest::Client,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it is ready.
    pub async fn start() -> anyhow::Result<Driver> {
        let port = free_port();
        let profiles = tempfile::tempdir()?;
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // Chromium's own temporary files too go where the driver cleans up.
            .env("TMPDIR", profiles.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting chromedriver (Debian package chromium-driver)")?;
        let driver = Driver {
            process,
            base: format!("http://127.0.0.1:{port}"),
            http: sparky_core::tls::client(),
            profiles,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver.http.get(format!("{}/status", driver.base)).send().await
                && let Ok(status) = r.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless Chromium session; `javascript: false` turns scripts off.
    pub async fn browser(&self, javascript: bool) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir_in(self.profiles.path())?.keep();
        let mut options = json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        // The console's messages are kept for `console` (a page's CSP violations show there).
        let body = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": { "browser": "ALL" },
        } } });
        let reply: Value =
            self.http.post(format!("{}/session", self.base)).json(&body).send().await?.json().await?;
        let session = reply["value"]["sessionId"].as_str().with_context(|| format!("no session: {reply}"))?;
        Ok(Browser { driver_base: self.base.clone(), session: session.to_string(), http: self.http.clone() })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.process.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.process.wait();
    }
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.driver_base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request.send().await?.json().await?;
        if let Some(error) = reply["value"]["error"].as_str() {
            bail!("webdriver {path}: {error}: {}", reply["value"]["message"]);
        }
        Ok(reply["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await.map(drop)
    }

    /// Goes to `url` and waits until the browser shows it. A page that reloads itself (a
    /// live build page does as its build ends) can cancel a navigation begun just before;
    /// then this goes again.
    pub async fn open(&self, url: &str) -> anyhow::Result<()> {
        let wanted = url.split('#').next().unwrap_or(url);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.goto(url).await?;
            let shown = self.current_url().await?;
            if shown.split('#').next() == Some(wanted) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("went to {url}, the browser shows {shown}");
            }
        }
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        Ok(self.call(reqwest::Method::GET, "/url", None).await?.as_str().unwrap_or_default().to_string())
    }

    pub async fn source(&self) -> anyhow::Result<String> {
        Ok(self.call(reqwest::Method::GET, "/source", None).await?.as_str().unwrap_or_default().to_string())
    }

    pub async fn find(&self, css: &str) -> anyhow::Result<Element<'_>> {
        let found = self
            .call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css })))
            .await?;
        let id = found[ELEMENT].as_str().with_context(|| format!("no element {css}"))?;
        Ok(Element { browser: self, id: id.to_string() })
    }

    pub async fn execute(&self, script: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": [] }))).await
    }

    /// Runs `script` as an async function: it ends by calling its last argument.
    pub async fn execute_async(&self, script: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/execute/async", Some(json!({ "script": script, "args": [] })))
            .await
    }

    /// Sends a Chrome DevTools Protocol command (emulating a phone, dark mode, a time zone).
    pub async fn cdp(&self, command: &str, params: Value) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": command, "params": params })),
        )
        .await
    }

    /// What pages wrote to the console (and the browser's own errors about them, such as
    /// a Content-Security-Policy violation) since the last call: `LEVEL: message` each.
    pub async fn console(&self) -> anyhow::Result<Vec<String>> {
        let entries = self.call(reqwest::Method::POST, "/se/log", Some(json!({ "type": "browser" }))).await?;
        Ok(entries
            .as_array()
            .context("log entries")?
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or_default()
                )
            })
            .collect())
    }

    /// The page as it shows now, as PNG bytes.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let encoded = encoded.as_str().context("no screenshot")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(encoded)?)
    }

    /// Waits until the text of `css` satisfies `check`; returns that text.
    pub async fn wait_for_text(
        &self,
        css: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.find(css).await {
                last = element.text().await.unwrap_or_default();
                if check(&last) {
                    return Ok(last);
                }
            }
            if Instant::now() > deadline {
                bail!("{css} never matched within {limit:?}; last text: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn close(self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}{what}", self.id)
    }

    pub async fn click(&self) -> anyhow::Result<()> {
        self.browser.call(reqwest::Method::POST, &self.path("/click"), Some(json!({}))).await.map(drop)
    }

    pub async fn clear(&self) -> anyhow::Result<()> {
        self.browser.call(reqwest::Method::POST, &self.path("/clear"), Some(json!({}))).await.map(drop)
    }

    pub async fn type_text(&self, text: &str) -> anyhow::Result<()> {
        self.browser
            .call(reqwest::Method::POST, &self.path("/value"), Some(json!({ "text": text })))
            .await
            .map(drop)
    }

    pub async fn text(&self) -> anyhow::Result<String> {
        Ok(self
            .browser
            .call(reqwest::Method::GET, &self.path("/text"), None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
}
