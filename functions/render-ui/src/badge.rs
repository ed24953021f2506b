//! `GET /projects/{project}/badge.svg`: the status of a project's newest build as a
//! small SVG badge for READMEs and dashboards. Never cached, since it changes with
//! every build; an unknown project gets a grey `not found` badge with a 404.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use http::{StatusCode, header};
use serde::Serialize;
use sparky_core::{Ctx, api::ApiError, model::BuildStatus};

use crate::{pages::PageError, summary, templates::render};

#[derive(Serialize)]
struct Badge {
    label: &'static str,
    message: String,
    color: &'static str,
    label_width: u32,
    message_width: u32,
    width: u32,
    label_x: f32,
    message_x: f32,
}

/// The colour of a status, as on the pages.
fn color(status: Option<BuildStatus>) -> &'static str {
    match status {
        Some(BuildStatus::Succeeded) => "#2e8540",
        Some(BuildStatus::Failed | BuildStatus::TimedOut) => "#c62828",
        Some(BuildStatus::Running | BuildStatus::Dispatched) => "#1565c0",
        Some(BuildStatus::Queued) => "#6d6d6d",
        Some(BuildStatus::Canceled | BuildStatus::Lost) => "#8d6e00",
        None => "#9e9e9e",
    }
}

/// Roughly how wide Verdana 11px draws `text`: enough for a badge to fit its words.
fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * 7 + 10
}

impl Badge {
    fn new(message: String, color: &'static str) -> Badge {
        let label = "build";
        let label_width = text_width(label);
        let message_width = text_width(&message);
        Badge {
            label,
            color,
            label_width,
            message_width,
            width: label_width + message_width,
            label_x: label_width as f32 / 2.0,
            message_x: label_width as f32 + message_width as f32 / 2.0,
            message,
        }
    }
}

/// `GET /projects/{project}/badge.svg`
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn badge(State(ctx): State<Ctx>, Path(name): Path<String>) -> Result<Response, PageError> {
    let (code, badge) = match summary::find_project(&ctx, &name).await? {
        None => (StatusCode::NOT_FOUND, Badge::new("not found".into(), color(None))),
        Some((_, None)) => (StatusCode::OK, Badge::new("no builds".into(), color(None))),
        Some((_, Some(last))) => {
            (StatusCode::OK, Badge::new(last.status.as_str().replace('_', " "), color(Some(last.status))))
        }
    };
    let svg = render("badge.svg", &badge).map_err(|e| PageError(ApiError::internal(e)))?;
    Ok((code, [(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache, max-age=0")], svg)
        .into_response())
}
