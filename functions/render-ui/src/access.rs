//! Who is looking (see `sparky_core::api::auth`), worked out once per request before
//! any page or read: the pages' forms need a person's form token, or a login first
//! when the API is guarded; with `SPARKY_PRIVATE=true` this is also the gate that keeps
//! every page, log, live stream, artifact, badge and read API from anyone without a
//! session or a token (pages send them to the login page, the rest get `401`).

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use http::header;
use serde::Serialize;
use sparky_core::{Ctx, api::Caller};

/// The person (or program) a page is shown to, as the templates see it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Viewer {
    /// A person logged in to the UI.
    pub signed_in: bool,
    /// Their session's form token: every form of theirs posts it as `_csrf`.
    pub csrf: Option<String>,
    /// The API needs a token and this viewer has no session: forms need a login first.
    pub must_log_in: bool,
    /// Whether there is anything to log in with (`SPARKY_API_TOKEN` is set).
    pub guarded: bool,
}

impl Viewer {
    fn of(caller: &Caller, ctx: &Ctx) -> Viewer {
        let guarded = ctx.config.api_token.is_some();
        let can_change = matches!(caller, Caller::Admin | Caller::Person(_)) || !guarded;
        Viewer {
            signed_in: matches!(caller, Caller::Person(_)),
            csrf: caller.form_token().map(str::to_string),
            must_log_in: !can_change,
            guarded,
        }
    }
}

/// The middleware: works out the [`Viewer`] (in the request's extensions for the
/// pages), and when reads are private refuses those who may not read.
pub async fn gate(State(ctx): State<Ctx>, mut request: Request, next: Next) -> Response {
    let caller = match Caller::of(&ctx, request.headers(), None).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    // The login page, and what it needs, are for everyone.
    let path = request.uri().path();
    let open_path = path == "/login" || path == "/logout" || path.starts_with("/static/");
    if let Err(refused) = caller.may_read(&ctx)
        && !open_path
    {
        let wants_page = request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        if wants_page {
            let here = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let query = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
            return Redirect::to(&format!("/login?{query}")).into_response();
        }
        return refused.into_response();
    }
    request.extensions_mut().insert(Viewer::of(&caller, &ctx));
    next.run(request).await
}
