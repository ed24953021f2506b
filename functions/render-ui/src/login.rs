//! `GET /login`, `POST /login`, `POST /logout`: people log in to the UI with the API
//! token (`SPARKY_API_TOKEN`) and get a session cookie (`HttpOnly`, `SameSite=Lax`,
//! `Secure` when Sparky's public URL is HTTPS or a proxy says the request came so) that lasts [`SESSION_TTL`]; their forms
//! carry the session's form token instead of the API token. Logging out ends the
//! session. Who may call them: anyone (that is what a login is); a cross-site post is
//! refused before it gets here, and logging out needs the session's form token.

use std::time::Duration;

use axum::{
    Extension,
    body::Body,
    extract::{RawQuery, State},
    response::{IntoResponse, Redirect, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sparky_core::{
    Ctx,
    api::{
        ApiError, Caller,
        auth::{SESSION_COOKIE, cookie},
        constant_time_eq, read_body,
    },
    secrets::{random_hex, token_hash},
    store::Session,
    time::now_ms,
};

use crate::{
    access::Viewer,
    pages::{PageError, page},
};

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Serialize)]
struct LoginPage {
    next: String,
    /// Why the last try failed.
    problem: Option<&'static str>,
    open: bool,
}

/// Where to go after logging in: a path of this site only (never `//other.site`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\") => {
            path.into()
        }
        _ => "/".into(),
    }
}

/// `GET /login?next=PATH`
pub async fn form(
    State(ctx): State<Ctx>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let next: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let next = safe_next(next.iter().find(|(k, _)| k == "next").map(|(_, v)| v.as_str()));
    let open = ctx.config.api_token.is_none();
    page("login.html", &viewer, LoginPage { next, problem: None, open })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login` (form: `token`, `next`)
pub async fn login(
    State(ctx): State<Ctx>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let body = read_body(&headers, body).await?;
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::BadRequest(format!("the login form needs a `token` field ({e})")))?;
    let next = safe_next(form.next.as_deref());
    let Some(admin) = &ctx.config.api_token else {
        return page("login.html", &viewer, LoginPage { next, problem: None, open: true });
    };
    if !constant_time_eq(form.token.trim().as_bytes(), admin.expose().as_bytes()) {
        tracing::warn!("login with a wrong token refused");
        let mut response = page(
            "login.html",
            &viewer,
            LoginPage { next, problem: Some("That is not the API token."), open: false },
        )?;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let random =
        || random_hex().map_err(|e| PageError(ApiError::internal(std::io::Error::other(e.to_string()))));
    let id = random()?;
    let csrf = random()?;
    let now = now_ms();
    let session = Session {
        id_hash: token_hash(id.expose()),
        csrf: csrf.expose().to_string(),
        expires_at: now + SESSION_TTL.as_millis() as i64,
    };
    ctx.store.create_session(session, now).await?;
    tracing::info!("logged in");
    let forwarded_https = headers.get("x-forwarded-proto").is_some_and(|p| p == "https");
    let secure =
        forwarded_https || ctx.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        id.expose(),
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    Ok(with_cookie(Redirect::to(&next).into_response(), &cookie))
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /logout` (form: `_csrf`)
pub async fn logout(State(ctx): State<Ctx>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = read_body(&headers, body).await?;
    let form: LogoutForm = serde_urlencoded::from_bytes(&body).unwrap_or(LogoutForm { csrf: None });
    let caller = Caller::of(&ctx, &headers, None).await?;
    caller.check_form_token(form.csrf.as_deref())?;
    if let Caller::Person(session) = &caller {
        ctx.store.end_session(&session.id_hash).await?;
        tracing::info!("logged out");
    } else if cookie(&headers, SESSION_COOKIE).is_none() {
        return Err(ApiError::BadRequest("not logged in".into()));
    }
    let gone = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    Ok(with_cookie(Redirect::to("/login").into_response(), &gone))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
