//! Wall-clock helpers: builds store times as Unix milliseconds and show them as RFC 3339.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A stored time as RFC 3339 (UTC, milliseconds), e.g. `2026-11-25T07:51:20.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    // Written out rather than through a format string, which is parsed on every call
    // (pages show hundreds of times).
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis()
    )
}

/// A stored time as people read it in UTC, e.g. `2026-11-25 07:51:20 UTC`.
pub fn utc_text(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A duration in milliseconds as people read it: `850ms`, `12s`, `3m 4s`, `1h 2m`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_durations() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_057_080_123), "2025-11-25T07:51:20.123Z");
        assert_eq!(rfc3339(1_764_057_080_007), "2025-11-25T07:51:20.007Z");
        assert_eq!(utc_text(1_764_057_080_123), "2025-11-25 07:51:20 UTC");
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(12_000), "12s");
        assert_eq!(human_duration(184_000), "3m 4s");
        assert_eq!(human_duration(3_720_000), "1h 2m");
    }
}
