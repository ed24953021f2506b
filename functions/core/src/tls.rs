//! HTTPS for the requests Sparky makes (Git hosts' APIs, notification webhooks, the
//! functions' calls to each other): reqwest over rustls with ring — the crypto the AWS
//! SDK already brings — and the system's CA certificates. Every HTTP client is made
//! here, so that the provider is in place before one is.

use std::sync::Once;

/// A client with Sparky's TLS settings.
pub fn client() -> reqwest::Client {
    builder().build().expect("an HTTP client with the default settings")
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
