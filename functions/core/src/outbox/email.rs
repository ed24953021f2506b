//! Email notifications over SMTP: the server Sparky sends through (`SPARKY_SMTP` and
//! friends, [`SmtpSettings`]), the mail a build's end makes ([`EmailPost`]), and
//! sending it, with the answer sorted as the outbox needs: sent, try again later
//! (the server unreachable, a 4xx reply), or failed for good (a 5xx reply: bad
//! credentials, an address refused).

use std::{path::PathBuf, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};
use serde::{Deserialize, Serialize};

use crate::{error::error_chain, secrets::Secret};

/// One SMTP conversation's time limit, per command.
const TIMEOUT: Duration = Duration::from_secs(15);

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp+plain://`: no TLS at all, for a relay on the same host or cluster.
    Plain,
}

/// The SMTP server that mails go through.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Login, with `password` (`SPARKY_SMTP_USER`, `SPARKY_SMTP_PASSWORD`).
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// The mails' sender (`SPARKY_SMTP_FROM`).
    pub from: Mailbox,
    /// A PEM file of CA certificates to trust besides the system's (`SPARKY_SMTP_CA`).
    pub ca: Option<PathBuf>,
}

impl SmtpSettings {
    /// Reads `smtp://host[:port]` (STARTTLS, port 587), `smtps://host[:port]` (TLS,
    /// 465) or `smtp+plain://host[:port]` (25), the sender's address and the login.
    pub fn parse(
        url: &str,
        from: &str,
        user: Option<String>,
        password: Option<Secret>,
        ca: Option<PathBuf>,
    ) -> Result<Self, String> {
        let (security, rest, port) = if let Some(rest) = url.strip_prefix("smtp://") {
            (SmtpSecurity::StartTls, rest, 587)
        } else if let Some(rest) = url.strip_prefix("smtps://") {
            (SmtpSecurity::Tls, rest, 465)
        } else if let Some(rest) = url.strip_prefix("smtp+plain://") {
            (SmtpSecurity::Plain, rest, 25)
        } else {
            return Err("expected smtp://HOST[:PORT] (STARTTLS), smtps://HOST[:PORT] (TLS) \
                        or smtp+plain://HOST[:PORT] (no TLS)"
                .into());
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains(['/', '@', '?']) {
            return Err(
                "only a host and a port: the login is SPARKY_SMTP_USER and SPARKY_SMTP_PASSWORD".into()
            );
        }
        // `[::1]:25`: an IPv6 address is bracketed.
        let (host, port_text) = match rest.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((host, after)) => (host, after.strip_prefix(':')),
                None => return Err("an unclosed `[`".into()),
            },
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        let port = match port_text {
            Some(text) => text.parse::<u16>().map_err(|_| format!("{text:?} is not a port"))?,
            None => port,
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        if user.is_some() != password.is_some() {
            return Err("SPARKY_SMTP_USER and SPARKY_SMTP_PASSWORD go together".into());
        }
        let from = from.parse::<Mailbox>().map_err(|e| format!("SPARKY_SMTP_FROM {from:?}: {e}"))?;
        Ok(SmtpSettings { host: host.into(), port, security, user, password, from, ca })
    }
}

/// A mail to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailPost {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub outcome: String,
}

/// Why a mail did not go.
pub enum NotSent {
    /// Worth trying again: the server unreachable or busy.
    Later(String),
    /// It will not go as it is: no server configured, a login or an address refused.
    Never(String),
}

/// Sends `post` through `smtp`; what the server said when it took it.
pub async fn send(smtp: Option<&SmtpSettings>, post: &EmailPost) -> Result<String, NotSent> {
    let Some(smtp) = smtp else {
        return Err(NotSent::Never("no SMTP server is configured (SPARKY_SMTP)".into()));
    };
    let message = message(smtp, post).map_err(NotSent::Never)?;
    let transport = transport(smtp).map_err(NotSent::Never)?;
    match transport.send(message).await {
        Ok(response) => Ok(format!("email sent to {} ({})", post.to.join(", "), response.code())),
        Err(error) => {
            let said = error_chain(&error);
            if error.is_permanent() {
                Err(NotSent::Never(format!("the SMTP server refused the mail: {said}")))
            } else {
                Err(NotSent::Later(format!("could not send through {}:{}: {said}", smtp.host, smtp.port)))
            }
        }
    }
}

fn message(smtp: &SmtpSettings, post: &EmailPost) -> Result<Message, String> {
    let mut builder = Message::builder().from(smtp.from.clone()).subject(&post.subject);
    for to in &post.to {
        builder = builder.to(to.parse::<Mailbox>().map_err(|e| format!("address {to:?}: {e}"))?);
    }
    builder.header(ContentType::TEXT_PLAIN).body(post.body.clone()).map_err(|e| e.to_string())
}

fn transport(smtp: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = match smtp.security {
        SmtpSecurity::Plain => Tls::None,
        SmtpSecurity::StartTls => Tls::Required(tls_parameters(smtp)?),
        SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(smtp)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
    }
    Ok(builder.build())
}

fn tls_parameters(smtp: &SmtpSettings) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca {
        let pem = std::fs::read(path).map_err(|e| format!("SPARKY_SMTP_CA {}: {e}", path.display()))?;
        let ca =
            Certificate::from_pem(&pem).map_err(|e| format!("SPARKY_SMTP_CA {}: {e}", path.display()))?;
        builder = builder.add_root_certificate(ca);
    }
    builder.build_rustls().map_err(|e| error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SmtpSettings, String> {
        SmtpSettings::parse(url, "Sparky <ci@example.com>", None, None, None)
    }

    #[test]
    fn the_server_is_a_url_whose_scheme_says_how_it_is_protected() {
        let s = parse("smtp://mail.example.com").expect("valid");
        assert_eq!((s.host.as_str(), s.port, s.security), ("mail.example.com", 587, SmtpSecurity::StartTls));
        let s = parse("smtps://mail.example.com:2465/").expect("valid");
        assert_eq!((s.port, s.security), (2465, SmtpSecurity::Tls));
        assert_eq!(parse("smtp://[::1]").expect("valid").host, "::1");
        let s = parse("smtp+plain://[::1]:25").expect("valid");
        assert_eq!((s.host.as_str(), s.security), ("::1", SmtpSecurity::Plain));
        assert_eq!(s.from.email.to_string(), "ci@example.com");
        for bad in ["http://mail", "smtp://", "smtp://me:pw@mail", "smtp://mail:port", "mail:587"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let no_password = SmtpSettings::parse("smtp://mail", "ci@example.com", Some("me".into()), None, None);
        assert!(no_password.is_err());
        assert!(SmtpSettings::parse("smtp://mail", "not an address", None, None, None).is_err());
    }
}
