//! The page templates (minijinja) and the stylesheet, from the workspace's
//! `templates/` folder, embedded at build time so the binary needs no files beside it.
//! `.html` and `.svg` templates escape every value they print.
//!
//! The environment is built once per process: it holds only the embedded templates,
//! so it is a constant, not state.

use std::sync::LazyLock;

use axum::response::IntoResponse;
use http::header;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, syntax::SyntaxConfig, value::Serde};
use serde::Serialize;

/// `(name, source)` of every template.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    ("macros.html", include_str!("../../../templates/macros.html")),
    ("projects.html", include_str!("../../../templates/projects.html")),
    ("project.html", include_str!("../../../templates/project.html")),
    ("build.html", include_str!("../../../templates/build.html")),
    ("builds.html", include_str!("../../../templates/builds.html")),
    ("queue.html", include_str!("../../../templates/queue.html")),
    ("error.html", include_str!("../../../templates/error.html")),
    ("login.html", include_str!("../../../templates/login.html")),
    ("badge.svg", include_str!("../../../templates/badge.svg")),
];

/// The stylesheet, served at `/static/sparky.css`.
const STYLESHEET: &str = include_str!("../../../templates/sparky.css");

/// The stylesheet with the log's 256-colour palette classes.
static FULL_STYLESHEET: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{STYLESHEET}\n/* ANSI 256-colour palette */\n{}", crate::ansi::palette_css())
});
/// The build page's script (following the live log), served at `/static/build.js`:
/// pages carry no inline script, so their Content-Security-Policy can forbid it.
const BUILD_SCRIPT: &str = include_str!("../../../templates/build.js");
/// Every page's script (times in the viewer's zone), served at `/static/time.js`.
const TIME_SCRIPT: &str = include_str!("../../../templates/time.js");

static ENVIRONMENT: LazyLock<Result<Environment<'static>, minijinja::Error>> = LazyLock::new(environment);

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| match name.rsplit('.').next() {
        Some("html" | "svg") => AutoEscape::Html,
        _ => AutoEscape::None,
    });
    // Block tags on lines of their own leave no blank lines behind.
    env.set_syntax(SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
    // Printing a missing value is a bug in a page, not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// Renders template `name` with `context`.
pub fn render(name: &str, context: impl Serialize) -> Result<String, minijinja::Error> {
    let env = ENVIRONMENT.as_ref().map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("the templates did not compile: {e:#}"),
        )
    })?;
    env.get_template(name)?.render(Value::from(Serde(context)))
}

/// `GET /static/sparky.css`
pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        FULL_STYLESHEET.as_str(),
    )
}

/// `GET /static/build.js`
pub async fn build_script() -> impl IntoResponse {
    script(BUILD_SCRIPT)
}

/// `GET /static/time.js`
pub async fn time_script() -> impl IntoResponse {
    script(TIME_SCRIPT)
}

fn script(source: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        source,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let env = ENVIRONMENT.as_ref().expect("templates compile");
        for (name, _) in TEMPLATES {
            env.get_template(name).expect(name);
        }
    }
}
