//! Who is calling, and what they may do.
//!
//! - The **admin** holds `SPARKY_API_TOKEN` (sent as `Authorization: Bearer`): anything.
//! - A **person** logged in to the UI with that token holds a session cookie: the same,
//!   from the UI's forms, each of which carries the session's form token (CSRF).
//! - A **job** holds its build's `SPARKY_TOKEN`, valid while that build runs: it may
//!   trigger builds (which become its children: `parent_build` is set by Sparky) and
//!   read, nothing else.
//! - **Anyone** else: with no API token configured the API is open and anyone may do
//!   what the admin may; with one, only reads, and with `SPARKY_PRIVATE=true` nothing.
//!
//! An unknown token, or the token of a build that ended, is a `401`, not "anyone"; an
//! unknown or expired session cookie is simply no session.
//!
//! Browsers send cookies with requests other sites make them send: every request that
//! changes something is refused (`403`) when the browser says it comes from another
//! site ([`same_site`]), and a person's must carry the session's form token.

use http::{HeaderMap, header};

use super::{ApiError, bearer, constant_time_eq};
use crate::{
    Ctx,
    model::Build,
    secrets::{JOB_TOKEN_PREFIX, token_hash},
    store::Session,
    time::now_ms,
};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sparky_session";

/// Who made a request.
#[derive(Debug)]
pub enum Caller {
    Admin,
    Person(Session),
    Job(Box<Build>),
    Anyone,
}

impl Caller {
    /// Reads the request's bearer token (or `form_token`, a form's `_token` field, when
    /// it has none), else its session cookie.
    pub async fn of(ctx: &Ctx, headers: &HeaderMap, form_token: Option<&str>) -> Result<Caller, ApiError> {
        if let Some(token) = bearer(headers).or(form_token).filter(|t| !t.is_empty()) {
            return Self::of_token(ctx, token).await;
        }
        if let Some(cookie) = cookie(headers, SESSION_COOKIE)
            && let Some(session) = ctx.store.session(&token_hash(cookie), now_ms()).await?
        {
            return Ok(Caller::Person(session));
        }
        Ok(Caller::Anyone)
    }

    async fn of_token(ctx: &Ctx, token: &str) -> Result<Caller, ApiError> {
        if token.starts_with(JOB_TOKEN_PREFIX) {
            let build = ctx.store.running_build_by_token(&token_hash(token)).await?;
            return build.map(|b| Caller::Job(Box::new(b))).ok_or_else(|| {
                ApiError::Unauthorized(
                    "this job token is not valid: its build is not running (a job token lives as long as its build)"
                        .into(),
                )
            });
        }
        match &ctx.config.api_token {
            Some(admin) if constant_time_eq(token.as_bytes(), admin.expose().as_bytes()) => Ok(Caller::Admin),
            _ => Err(ApiError::bad_token()),
        }
    }

    /// Who this is, as a build's `triggered_by` records it (a job's builds name their
    /// parent build instead).
    pub fn who(&self) -> Option<String> {
        match self {
            Caller::Admin => Some("API token".into()),
            Caller::Person(_) => Some("a person in the UI".into()),
            Caller::Job(_) => None,
            Caller::Anyone => Some("anyone (open API)".into()),
        }
    }

    /// Whether the API is open: no token configured, so anyone is the admin.
    fn open(ctx: &Ctx) -> bool {
        ctx.config.api_token.is_none()
    }

    /// Triggering a build: the admin, a person, a job (not one of a pull request from a
    /// fork), or anyone when the API is open.
    pub fn may_trigger(&self, ctx: &Ctx) -> Result<(), ApiError> {
        match self {
            // A stranger's code may not start the builds that hold a project's secrets.
            Caller::Job(build) if build.from_fork() => Err(ApiError::Forbidden(
                "a job of a pull request from a fork may read builds, not trigger them".into(),
            )),
            Caller::Admin | Caller::Person(_) | Caller::Job(_) => Ok(()),
            Caller::Anyone if Self::open(ctx) => Ok(()),
            Caller::Anyone => Err(ApiError::bad_token()),
        }
    }

    /// Every other change (cancel, rebuild, deleting history): the admin, a person, or
    /// anyone when the API is open; never a job's token.
    pub fn may_change(&self, ctx: &Ctx) -> Result<(), ApiError> {
        match self {
            Caller::Admin | Caller::Person(_) => Ok(()),
            Caller::Anyone if Self::open(ctx) => Ok(()),
            Caller::Anyone => Err(ApiError::bad_token()),
            Caller::Job(_) => Err(ApiError::Forbidden(
                "a job token may only trigger builds and read; this needs the API token".into(),
            )),
        }
    }

    /// Reading: anyone, unless reads are private (`SPARKY_PRIVATE=true`).
    pub fn may_read(&self, ctx: &Ctx) -> Result<(), ApiError> {
        match self {
            Caller::Anyone if ctx.config.private => Err(ApiError::Unauthorized(
                "this Sparky is private: log in, or send `Authorization: Bearer <token>`".into(),
            )),
            _ => Ok(()),
        }
    }

    /// A person's form must carry their session's form token: one posted by another
    /// site (with the cookie the browser added) does not.
    pub fn check_form_token(&self, given: Option<&str>) -> Result<(), ApiError> {
        match self {
            Caller::Person(session)
                if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), session.csrf.as_bytes())) =>
            {
                Err(ApiError::Forbidden(
                    "this form is out of date or came from another site; reload the page and try again"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The build whose job is calling, if a job is.
    pub fn job(&self) -> Option<&Build> {
        match self {
            Caller::Job(build) => Some(build),
            _ => None,
        }
    }

    /// The session's form token, for the forms of a page, if a person is calling.
    pub fn form_token(&self) -> Option<&str> {
        match self {
            Caller::Person(session) => Some(&session.csrf),
            _ => None,
        }
    }
}

/// Refuses a request that changes something when the browser that sent it says another
/// site made it (`Sec-Fetch-Site`, else `Origin` against the `Host` it was sent to or
/// `SPARKY_PUBLIC_URL`). Requests without those headers (curl, Git hosts, other
/// programs) are not a browser's, and pass.
pub fn same_site(public_url: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let cross = || ApiError::Forbidden("refused: this request came from another site".into());
    if let Some(site) = text("sec-fetch-site") {
        return if matches!(site, "same-origin" | "none") { Ok(()) } else { Err(cross()) };
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else { return Ok(()) };
    let host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    // A proxy in front (the Knative entry point) says which host the browser asked for;
    // a browser can't set that header on a form another site posts.
    let ours = [text(header::HOST.as_str()), text("x-forwarded-host")]
        .into_iter()
        .flatten()
        .any(|h| h.eq_ignore_ascii_case(host))
        || public_url.is_some_and(|url| url.eq_ignore_ascii_case(origin));
    if ours { Ok(()) } else { Err(cross()) }
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().expect("header"));
        }
        headers
    }

    #[test]
    fn refuses_what_browsers_say_another_site_sent() {
        let ok =
            |pairs: &[(&'static str, &str)]| same_site(Some("https://ci.example"), &headers(pairs)).is_ok();
        assert!(ok(&[]), "curl, Git hosts: no browser headers");
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(ok(&[("sec-fetch-site", "none")]), "typed or bookmarked");
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]), "another port or subdomain is another origin");
        assert!(ok(&[("origin", "http://127.0.0.1:4000"), ("host", "127.0.0.1:4000")]));
        assert!(ok(&[("origin", "https://ci.example"), ("host", "sparky.internal:8080")]), "the public URL");
        assert!(ok(&[
            ("origin", "https://ci.example:8443"),
            ("host", "render-ui.local"),
            ("x-forwarded-host", "ci.example:8443")
        ]));
        assert!(!ok(&[("origin", "http://evil.example"), ("host", "127.0.0.1:4000")]));
        assert!(!ok(&[("origin", "null"), ("host", "127.0.0.1:4000")]));
        assert!(!ok(&[("origin", "http://127.0.0.1:4001"), ("host", "127.0.0.1:4000")]));
    }

    #[test]
    fn reads_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; sparky_session=abc; b=2".parse().expect("header"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
