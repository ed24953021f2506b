//! HTTPS for the requests Sparky makes (Git hosts' APIs, notification webhooks, the
//! functions' calls to each other): reqwest over rustls with ring — the crypto the AWS
//! SDK already brings — and the system's CA certificates. Every HTTP client is made
//! here, so that the provider is in place before one is.

use std::{
    ops::Deref,
    sync::{Arc, Once, OnceLock},
};

/// A client with Sparky's TLS settings.
pub fn client() -> reqwest::Client {
    builder().build().expect("an HTTP client with the default settings")
}

/// A client made on first use, shared by its clones. Making one reads and parses the
/// system's CA certificates, which a process that never calls out (or not yet) should
/// not pay for when it starts.
#[derive(Clone, Default)]
pub struct LazyClient(Arc<OnceLock<reqwest::Client>>);

impl Deref for LazyClient {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        self.0.get_or_init(client)
    }
}

/// A client builder with Sparky's TLS settings, for clients that need more.
pub fn builder() -> reqwest::ClientBuilder {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if another provider was installed first, which is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn https_urls_are_spoken() {
        // Nothing listens there: the request gets as far as connecting, which a client
        // without TLS refuses to try ("scheme is not http").
        let error = super::client().get("https://127.0.0.1:9/").send().await.expect_err("nothing listens");
        assert!(error.is_connect(), "{error:?}");
    }
}
