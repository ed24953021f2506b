//! The translation table: crontab lines and the times they run next, weekdays and
//! daylight-saving changes included.

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("RFC 3339").with_timezone(&Utc)
}

fn next(expr: &str, tz: &str, after: &str, count: usize) -> Vec<String> {
    let crontab: Crontab = expr.parse().expect("valid crontab");
    let tz = parse_timezone(tz).expect("time zone");
    crontab.next_runs(at(after), tz, count).iter().map(|t| t.to_rfc3339()).collect()
}

/// After Wednesday 2026-11-25 08:00:30 UTC.
const NOW: &str = "2026-11-25T08:00:30Z";

/// 09:00 on the Saturdays and Sundays after [`NOW`].
const WEEKEND: &[&str] = &[
    "2026-11-28T09:00:00+00:00",
    "2026-11-29T09:00:00+00:00",
    "2026-12-05T09:00:00+00:00",
    "2026-12-06T09:00:00+00:00",
];

/// 09:00 on the Fridays, Saturdays and Sundays after [`NOW`].
const FRIDAY_TO_SUNDAY: &[&str] = &[
    "2026-11-27T09:00:00+00:00",
    "2026-11-28T09:00:00+00:00",
    "2026-11-29T09:00:00+00:00",
    "2026-12-04T09:00:00+00:00",
];

#[test]
fn next_runs_table() {
    let table: &[(&str, &str, &[&str])] = &[
        (
            "*/15 * * * *",
            "UTC",
            &["2026-11-25T08:15:00+00:00", "2026-11-25T08:30:00+00:00", "2026-11-25T08:45:00+00:00"],
        ),
        (
            "0 9 * * 1-5",
            "UTC",
            &[
                "2026-11-25T09:00:00+00:00",
                "2026-11-26T09:00:00+00:00",
                "2026-11-27T09:00:00+00:00",
                "2026-11-30T09:00:00+00:00",
            ],
        ),
        (
            "0 9 * * mon-fri",
            "UTC",
            &[
                "2026-11-25T09:00:00+00:00",
                "2026-11-26T09:00:00+00:00",
                "2026-11-27T09:00:00+00:00",
                "2026-11-30T09:00:00+00:00",
            ],
        ),
        // Sunday three ways: 0, 7 and its name.
        ("0 9 * * 0", "UTC", &["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"]),
        ("0 9 * * 7", "UTC", &["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"]),
        ("0 9 * * SUN", "UTC", &["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"]),
        (
            "0 9 * * 5-7",
            "UTC",
            &[
                "2026-11-27T09:00:00+00:00",
                "2026-11-28T09:00:00+00:00",
                "2026-11-29T09:00:00+00:00",
                "2026-12-04T09:00:00+00:00",
            ],
        ),
        // A range of weekdays may end on Sunday, by name or as 0 or 7: the weekend.
        ("0 9 * * sat-sun", "UTC", WEEKEND),
        ("0 9 * * Sat-Sun", "UTC", WEEKEND),
        ("0 9 * * 6-0", "UTC", WEEKEND),
        ("0 9 * * 6-7", "UTC", WEEKEND),
        ("0 9 * * fri-sun", "UTC", FRIDAY_TO_SUNDAY),
        ("0 9 * * 5-0", "UTC", FRIDAY_TO_SUNDAY),
        ("0 9 * * sun-sun", "UTC", &["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"]),
        (
            "15 10 * * 1,3",
            "UTC",
            &["2026-11-25T10:15:00+00:00", "2026-11-30T10:15:00+00:00", "2026-12-02T10:15:00+00:00"],
        ),
        // Both day fields restricted: either matches (the 1st, the 15th, or a Friday).
        (
            "30 4 1,15 * 5",
            "UTC",
            &[
                "2026-11-27T04:30:00+00:00",
                "2026-12-01T04:30:00+00:00",
                "2026-12-04T04:30:00+00:00",
                "2026-12-11T04:30:00+00:00",
            ],
        ),
        // A day field starting with `*` makes both necessary: odd days that are Mondays.
        (
            "0 0 */2 * 1",
            "UTC",
            &["2026-12-07T00:00:00+00:00", "2026-12-21T00:00:00+00:00", "2027-01-11T00:00:00+00:00"],
        ),
        ("0 12 * jan-mar mon", "UTC", &["2027-01-04T12:00:00+00:00", "2027-01-11T12:00:00+00:00"]),
        ("0 0 29 2 *", "UTC", &["2028-02-29T00:00:00+00:00"]),
        (
            "10-20/5 3 * * *",
            "UTC",
            &[
                "2026-11-26T03:10:00+00:00",
                "2026-11-26T03:15:00+00:00",
                "2026-11-26T03:20:00+00:00",
                "2026-11-27T03:10:00+00:00",
            ],
        ),
        // A step on a single value runs from it to the end of the field: `10-59/15`.
        (
            "10/15 * * * *",
            "UTC",
            &[
                "2026-11-25T08:10:00+00:00",
                "2026-11-25T08:25:00+00:00",
                "2026-11-25T08:40:00+00:00",
                "2026-11-25T08:55:00+00:00",
                "2026-11-25T09:10:00+00:00",
            ],
        ),
        (
            "0 20/3 * * *",
            "UTC",
            &["2026-11-25T20:00:00+00:00", "2026-11-25T23:00:00+00:00", "2026-11-26T20:00:00+00:00"],
        ),
        ("@hourly", "UTC", &["2026-11-25T09:00:00+00:00", "2026-11-25T10:00:00+00:00"]),
        ("@daily", "UTC", &["2026-11-26T00:00:00+00:00"]),
        ("@weekly", "UTC", &["2026-11-29T00:00:00+00:00"]),
        ("@monthly", "UTC", &["2026-12-01T00:00:00+00:00"]),
        ("@yearly", "UTC", &["2027-01-01T00:00:00+00:00"]),
        ("0 9 * * *", "America/New_York", &["2026-11-25T09:00:00-05:00", "2026-11-26T09:00:00-05:00"]),
        ("0 9 * * *", "Asia/Kolkata", &["2026-11-26T09:00:00+05:30"]),
    ];
    for (expr, tz, expected) in table {
        let got = next(expr, tz, NOW, expected.len().max(1));
        assert_eq!(&got, expected, "{expr} in {tz}");
    }
}

#[test]
fn spring_forward_runs_skipped_fixed_times_once_right_after_the_jump() {
    // Berlin, Sunday 2027-03-28: 02:00 CET jumps to 03:00 CEST.
    let after = "2027-03-27T12:00:00Z";
    assert_eq!(
        next("30 2 * * *", "Europe/Berlin", after, 2),
        ["2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"]
    );
    // By the wall clock, a half-hourly job simply has no 02:xx that night.
    assert_eq!(
        next("*/30 * * * *", "Europe/Berlin", "2027-03-28T00:20:00Z", 3),
        ["2027-03-28T01:30:00+01:00", "2027-03-28T03:00:00+02:00", "2027-03-28T03:30:00+02:00"]
    );
}

#[test]
fn fall_back_runs_fixed_times_once_and_wildcards_on_both_passes() {
    // Berlin, Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:xx happens twice.
    let after = "2026-10-24T12:00:00Z";
    assert_eq!(
        next("30 2 * * *", "Europe/Berlin", after, 2),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
    assert_eq!(
        next("*/30 2 * * *", "Europe/Berlin", after, 4),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00"
        ]
    );
}

#[test]
fn fires_at_agrees_with_the_minute_of_a_tick() {
    let crontab: Crontab = "*/5 * * * *".parse().expect("valid");
    assert!(crontab.fires_at(at("2026-11-25T08:05:00Z"), Tz::UTC));
    assert!(crontab.fires_at(at("2026-11-25T08:05:59Z"), Tz::UTC), "any second of the minute");
    assert!(!crontab.fires_at(at("2026-11-25T08:06:00Z"), Tz::UTC));
}

#[test]
fn errors_name_the_expression_and_the_field() {
    let cases = [
        ("61 * * * *", "minute field \"61\": 61 is outside 0-59"),
        ("* * * *", "expected 5 fields"),
        ("@reboot", "unknown shorthand @reboot"),
        ("0 0 * * 8", "8 is outside 0-7"),
        ("5-1 * * * *", "range 5-1 runs backwards"),
        // Only Sunday may end a range of weekdays below its start.
        ("0 0 * * sat-mon", "range sat-mon runs backwards"),
        ("0 0 * * 5-1", "range 5-1 runs backwards"),
        ("0 0 * 12-jan *", "range 12-jan runs backwards"),
        ("0 0 1-0 * *", "0 is outside 1-31"),
        ("*/0 * * * *", "a step must be at least 1"),
        ("0 0 * foo *", "\"foo\" is not a number or a name like jan"),
        ("0 0 31 4 *", "never fires"),
        ("0 0 30,31 feb *", "never fires"),
    ];
    for (expr, problem) in cases {
        let err = expr.parse::<Crontab>().unwrap_err().to_string();
        assert!(err.starts_with(&format!("crontab {expr:?}")) && err.contains(problem), "{expr}: {err}");
    }
    assert!(parse_timezone("Mars/Olympus").unwrap_err().contains("Mars/Olympus"));
    for rare in ["0 0 29 2 *", "0 0 31 4 mon", "0 0 31 4,5 *"] {
        assert!(rare.parse::<Crontab>().is_ok(), "{rare} fires, if rarely");
    }
}
