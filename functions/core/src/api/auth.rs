//! Who is calling, and what they may do.
//!
//! - The **admin** holds `SPARKY_API_TOKEN` (sent as `Authorization: Bearer`): anything.
//! - A **job** holds its build's `SPARKY_TOKEN`, valid while that build runs: it may
//!   trigger builds (which become its children: `parent_build` is set by Sparky) and
//!   read, nothing else.
//! - **Anyone** else: with no API token configured the API is open and anyone may do
//!   what the admin may; with one, only reads (unless they are private).
//!
//! An unknown token, or the token of a build that ended, is a `401`, not "anyone".

use http::HeaderMap;

use super::{ApiError, bearer, constant_time_eq};
use crate::{
    Ctx,
    model::Build,
    secrets::{JOB_TOKEN_PREFIX, token_hash},
};

/// Who made a request.
#[derive(Debug)]
pub enum Caller {
    Admin,
    Job(Box<Build>),
    Anyone,
}

impl Caller {
    /// Reads the request's bearer token, or `given` (a form's token field) when it
    /// has none.
    pub async fn of(ctx: &Ctx, headers: &HeaderMap, given: Option<&str>) -> Result<Caller, ApiError> {
        let Some(token) = bearer(headers).or(given).filter(|t| !t.is_empty()) else {
            return Ok(Caller::Anyone);
        };
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

    /// Whether the API is open: no token configured, so anyone is the admin.
    fn open(ctx: &Ctx) -> bool {
        ctx.config.api_token.is_none()
    }

    /// Triggering a build: the admin, a job, or anyone when the API is open.
    pub fn may_trigger(&self, ctx: &Ctx) -> Result<(), ApiError> {
        match self {
            Caller::Admin | Caller::Job(_) => Ok(()),
            Caller::Anyone if Self::open(ctx) => Ok(()),
            Caller::Anyone => Err(ApiError::bad_token()),
        }
    }

    /// Every other change (cancel, rebuild, deleting history): the admin, or anyone
    /// when the API is open; never a job's token.
    pub fn may_change(&self, ctx: &Ctx) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Anyone if Self::open(ctx) => Ok(()),
            Caller::Anyone => Err(ApiError::bad_token()),
            Caller::Job(_) => Err(ApiError::Forbidden(
                "a job token may only trigger builds and read; this needs the API token".into(),
            )),
        }
    }

    /// The build whose job is calling, if a job is.
    pub fn job(&self) -> Option<&Build> {
        match self {
            Caller::Job(build) => Some(build),
            _ => None,
        }
    }
}
