//! `DELETE /api/v1/projects/{project}/builds`: deletes a project's history — every
//! finished build with its reports (log, artifacts, `report.json`, on whichever
//! backend), its working directory and its row. Builds still queued or running stay.
//! It needs the API token like every build-changing call (a job's token won't do); a
//! logged-in person's request also carries the session's form token, in the
//! `X-Sparky-Form-Token` header (there is no form to post it from). A project whose
//! folder is gone can still have its history deleted; a name with neither is a 404.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use http::HeaderMap;
use serde_json::json;
use sparky_core::{
    Ctx,
    api::{ApiError, Caller},
};

/// Where a logged-in person's request carries their session's form token.
const FORM_TOKEN: &str = "x-sparky-form-token";

/// `DELETE /api/v1/projects/{project}/builds`
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn delete(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = Caller::of(&ctx, &headers, None).await?;
    caller.may_change(&ctx)?;
    caller.check_form_token(headers.get(FORM_TOKEN).and_then(|v| v.to_str().ok()))?;
    let project = ctx.projects.get(&name).await?;
    let history = ctx.store.project_builds(&name, 1, None).await?;
    if project.is_none() && history.builds.is_empty() {
        return Err(ApiError::NotFound(format!("there is no project {name:?} and no builds of one")));
    }
    let (deleted, failed) = ctx.delete_history(&name).await?;
    let live = ctx.store.live_builds().await?.iter().filter(|b| b.project == name).count();
    if failed > 0 {
        return Err(ApiError::internal(std::io::Error::other(format!(
            "deleted {deleted} builds of {name}; the reports of {failed} more could not be deleted (retry)"
        ))));
    }
    Ok(Json(json!({ "project": name, "deleted": deleted, "kept_live": live })).into_response())
}
