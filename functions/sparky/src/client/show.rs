//! Builds and projects as text for people: aligned columns, times in UTC to the
//! second, durations as `3m 4s`. Everything comes from the API's JSON as it is.

use serde_json::Value;
use sparky_core::time::human_duration;

/// `sparky list`: each project with its last build.
pub fn projects(answer: &Value) -> String {
    let mut rows = vec![row(["PROJECT", "LAST", "STATUS", "WHEN", "NOTE"])];
    for project in list(answer, "projects") {
        let last = &project["last_build"];
        let note = if let Some(error) = project["error"].as_str() {
            format!("broken: {error}")
        } else if project["disabled"].as_bool() == Some(true) {
            "disabled".into()
        } else {
            text(&project["description"])
        };
        rows.push(vec![
            text(&project["name"]),
            build_number(last),
            or_dash(text(&last["status"])),
            when(last),
            note,
        ]);
    }
    table(&rows)
}

/// `sparky list PROJECT`: its recent builds, newest first.
pub fn builds(answer: &Value) -> String {
    let mut rows = vec![row(["BUILD", "STATUS", "TRIGGER", "CREATED", "DURATION", "DESCRIPTION"])];
    for build in list(answer, "builds") {
        rows.push(vec![
            build_number(build),
            text(&build["status"]),
            text(&build["trigger"]),
            time(&build["created_at"]),
            duration(build),
            text(&build["description"]),
        ]);
    }
    table(&rows)
}

/// `sparky status ID`: one build, field by field; `base` makes its URL absolute.
pub fn build(build: &Value, base: &str) -> String {
    let status = match build["exit_code"].as_i64() {
        Some(code) => format!("{} (exit code {code})", text(&build["status"])),
        None => text(&build["status"]),
    };
    let params = build["params"]
        .as_object()
        .map(|params| params.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let fields = [
        ("build", build_number(build)),
        ("project", text(&build["project"])),
        ("status", status),
        (
            "cancel",
            if build["cancel_requested"].as_bool() == Some(true) {
                "requested".into()
            } else {
                String::new()
            },
        ),
        ("trigger", text(&build["trigger"])),
        ("description", text(&build["description"])),
        ("params", params),
        ("commit", text(&build["scm_sha"])),
        ("created", time(&build["created_at"])),
        ("started", time(&build["started_at"])),
        ("finished", time(&build["finished_at"])),
        ("duration", duration(build)),
        ("attempt", attempt(build)),
        ("error", text(&build["error"])),
        ("url", format!("{base}{}", text(&build["url"]))),
    ];
    let rows: Vec<Vec<String>> = fields
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    table(&rows)
}

fn list<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    answer[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// A string field, a number as written, or empty.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

fn build_number(build: &Value) -> String {
    build["id"].as_i64().map_or_else(|| "-".into(), |id| format!("#{id}"))
}

/// When a build finished, else started, else was queued.
fn when(build: &Value) -> String {
    let at =
        ["finished_at", "started_at", "created_at"].into_iter().map(|k| &build[k]).find(|v| v.is_string());
    at.map_or_else(|| "-".into(), time)
}

/// `2025-11-25T07:51:20.123Z` as `2025-11-25 07:51:20`.
fn time(value: &Value) -> String {
    let text = text(value);
    match text.get(..19) {
        Some(seconds) => seconds.replacen('T', " ", 1),
        None => text,
    }
}

fn duration(build: &Value) -> String {
    build["duration_ms"].as_i64().map(human_duration).unwrap_or_default()
}

/// Only worth a line when there was more than one attempt.
fn attempt(build: &Value) -> String {
    match build["attempt"].as_u64() {
        Some(n) if n > 1 => format!("{n} ({} retries used)", build["retries_used"].as_u64().unwrap_or(0)),
        _ => String::new(),
    }
}

/// Rows in columns two spaces apart; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_up_builds_in_columns() {
        let answer = json!({"builds": [
            {"id": 12, "status": "succeeded", "trigger": "api", "created_at": "2025-11-25T07:51:20.123Z",
             "duration_ms": 3200, "description": "ship it"},
            {"id": 9, "status": "failed", "trigger": "cron", "created_at": "2025-11-24T01:00:00.000Z",
             "duration_ms": null, "description": null},
        ]});
        assert_eq!(
            builds(&answer),
            "BUILD  STATUS     TRIGGER  CREATED              DURATION  DESCRIPTION\n\
             #12    succeeded  api      2025-11-25 07:51:20  3s        ship it\n\
             #9     failed     cron     2025-11-24 01:00:00\n"
        );
    }

    #[test]
    fn shows_a_build_without_its_empty_fields() {
        let build = json!({"id": 3, "project": "app", "status": "failed", "exit_code": 5,
            "trigger": "rebuild", "params": {"target": "prod"}, "description": null,
            "created_at": "2025-11-25T07:51:20.123Z", "attempt": 1, "url": "/builds/3"});
        assert_eq!(
            self::build(&build, "http://ci:4000"),
            "build    #3\nproject  app\nstatus   failed (exit code 5)\ntrigger  rebuild\n\
             params   target=prod\ncreated  2025-11-25 07:51:20\nurl      http://ci:4000/builds/3\n"
        );
    }
}
