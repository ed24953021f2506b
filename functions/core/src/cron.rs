//! Crontab lines, as Linux cron (Vixie cron, cronie) reads them, in a project's time
//! zone.
//!
//! Five fields — minute, hour, day of month, month, day of week — each `*`, a number, a
//! name (`jan`..`dec`, `sun`..`sat`), a range `a-b`, a step `*/n` or `a-b/n`, or a list
//! of those; `0` and `7` are both Sunday, so a range of weekdays may end on it
//! (`sat-sun`, `5-0`, `5-7`), while any other range must not run backwards; `@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly` stand for their usual lines. As in cron,
//! when both day fields are restricted (neither starts with `*`) a day matches if
//! EITHER does.
//!
//! One extension: a step on a single value, `a/n`, runs from `a` to the end of the
//! field (`10/15` is `10-59/15`), as most schedulers read it; cronie refuses the line.
//!
//! Daylight-saving changes follow cron's rule: a job whose minute and hour are fixed
//! runs once per day — a time that happens twice runs at the first, and a time skipped
//! by the clock jumping forward runs right after the jump — while a job with `*` in its
//! minute or hour keeps running by the wall clock.
//!
//! (The `cron` crate is not used: it wants a seconds field, numbers weekdays 1–7 from
//! Sunday, and requires both day fields to match, so translating lines into it would
//! change their meaning in several places.)

use std::{fmt, str::FromStr};

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A crontab line that can't be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("crontab {expression:?}: {problem}")]
pub struct CronError {
    pub expression: String,
    pub problem: String,
}

/// A parsed crontab line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crontab {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// The day-of-month field starts with `*`.
    days_star: bool,
    /// The day-of-week field starts with `*`.
    weekdays_star: bool,
    /// The minute or hour field starts with `*`: runs by the wall clock across DST.
    wildcard: bool,
}

const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value the first name stands for.
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[], names_from: 0 },
    Field { name: "hour", min: 0, max: 23, names: &[], names_from: 0 },
    Field { name: "day of month", min: 1, max: 31, names: &[], names_from: 1 },
    Field { name: "month", min: 1, max: 12, names: &MONTHS, names_from: 1 },
    Field { name: "day of week", min: 0, max: 7, names: &WEEKDAYS, names_from: 0 },
];

impl FromStr for Crontab {
    type Err = CronError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let fail = |problem: String| CronError { expression: expression.into(), problem };
        let trimmed = expression.trim();
        let line = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(fail(format!(
                    "unknown shorthand {other}; use @hourly, @daily, @weekly, @monthly or @yearly"
                )));
            }
            _ => trimmed,
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(fail(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                parts.len()
            )));
        }
        let mut sets = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            sets[i] =
                parse_field(part, field).map_err(|p| fail(format!("{} field {part:?}: {p}", field.name)))?;
        }
        // 7 is Sunday, like 0.
        if sets[4] & (1 << 7) != 0 {
            sets[4] = (sets[4] | 1) & !(1 << 7);
        }
        // With the day of week `*`, only the days of month count: at least one of them
        // must exist in one of the months (February has a 29th in leap years).
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let possible =
            (1..=12u32).any(|m| has(sets[3], m) && (1..=LONGEST[m as usize - 1]).any(|d| has(sets[2], d)));
        if parts[4].starts_with('*') && !possible {
            return Err(fail("never fires: none of its months has such a day".into()));
        }
        Ok(Crontab {
            text: trimmed.to_string(),
            minutes: sets[0],
            hours: sets[1],
            days: sets[2],
            months: sets[3],
            weekdays: sets[4],
            days_star: parts[2].starts_with('*'),
            weekdays_star: parts[4].starts_with('*'),
            wildcard: parts[0].starts_with('*') || parts[1].starts_with('*'),
        })
    }
}

fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| format!("step {step:?} is not a number"))?;
                if step == 0 {
                    return Err("a step must be at least 1".into());
                }
                (range, step)
            }
            None => (item, 1),
        };
        let (from, to) = if range == "*" {
            (field.min, if field.max == 7 { 6 } else { field.max })
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, mut b) = (value(a, field)?, value(b, field)?);
            // Sunday, as `sun` or `0`, ends a range of later weekdays as 7 does
            // (`fri-sun`); `sun-sun` stays Sunday alone.
            if field.max == 7 && b == 0 && a > 0 {
                b = 7;
            }
            if a > b {
                return Err(format!("range {range} runs backwards"));
            }
            (a, b)
        } else {
            let a = value(range, field)?;
            // `a/n` means from a to the end, every n.
            (a, if item.contains('/') { field.max } else { a })
        };
        for v in (from..=to).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        return Ok(field.names_from + i as u32);
    }
    let v: u32 = text.parse().map_err(|_| {
        if field.names.is_empty() {
            format!("{text:?} is not a number")
        } else {
            format!("{text:?} is not a number or a name like {}", field.names[0])
        }
    })?;
    if v < field.min || v > field.max {
        return Err(format!("{v} is outside {}-{}", field.min, field.max));
    }
    Ok(v)
}

impl fmt::Display for Crontab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn has(set: u64, v: u32) -> bool {
    set & (1 << v) != 0
}

impl Crontab {
    /// Whether the line matches a wall-clock minute.
    pub fn matches(&self, local: NaiveDateTime) -> bool {
        has(self.minutes, local.minute()) && has(self.hours, local.hour()) && self.matches_day(local)
    }

    fn matches_day(&self, local: NaiveDateTime) -> bool {
        if !has(self.months, local.month()) {
            return false;
        }
        let day = has(self.days, local.day());
        let weekday = has(self.weekdays, local.weekday().num_days_from_sunday());
        if self.days_star || self.weekdays_star { day && weekday } else { day || weekday }
    }

    /// Whether the job runs at the minute starting at `minute` (UTC), in `tz`.
    pub fn fires_at(&self, minute: DateTime<Utc>, tz: Tz) -> bool {
        let minute = truncate_to_minute(minute);
        let local = minute.with_timezone(&tz).naive_local();
        let before = (minute - Duration::minutes(1)).with_timezone(&tz).naive_local();
        if self.matches(local) {
            // A wall-clock time that happens twice runs once, unless the job runs by
            // the wall clock anyway.
            return self.wildcard
                || !matches!(tz.from_local_datetime(&local), LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) != minute);
        }
        // The clock jumped forward: a fixed-time job due in the gap runs now.
        if !self.wildcard && local - before > Duration::minutes(1) {
            let mut skipped = before + Duration::minutes(1);
            while skipped < local {
                if self.matches(skipped) {
                    return true;
                }
                skipped += Duration::minutes(1);
            }
        }
        false
    }

    /// The next `count` times the job runs after `after`, in `tz`; searches up to five
    /// years ahead (a line such as `0 0 30 2 *` never runs).
    pub fn next_runs(&self, after: DateTime<Utc>, tz: Tz, count: usize) -> Vec<DateTime<Tz>> {
        let mut found = Vec::with_capacity(count);
        let mut minute = truncate_to_minute(after) + Duration::minutes(1);
        let end = after + Duration::days(5 * 366);
        while found.len() < count && minute < end {
            let local = minute.with_timezone(&tz).naive_local();
            // Skip ahead over whole days or hours that can't match, unless the UTC
            // offset changes on the way or just changed (the DST rules above need
            // those minutes one by one).
            let skip = if !self.matches_day(local) {
                i64::from(1440 - local.hour() * 60 - local.minute())
            } else if !has(self.hours, local.hour()) {
                i64::from(60 - local.minute())
            } else {
                1
            };
            let next = minute + Duration::minutes(skip);
            let steady = offset(minute - Duration::minutes(1), tz) == offset(minute, tz)
                && offset(minute, tz) == offset(next, tz);
            if skip > 1 && steady {
                minute = next;
                continue;
            }
            if self.fires_at(minute, tz) {
                found.push(minute.with_timezone(&tz));
            }
            minute += Duration::minutes(1);
        }
        found
    }
}

fn offset(at: DateTime<Utc>, tz: Tz) -> i64 {
    let local = at.with_timezone(&tz).naive_local();
    (local - at.naive_utc()).num_minutes()
}

/// The start of the minute `at` falls in.
pub fn truncate_to_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(at)
}

/// An IANA time zone name such as `Europe/Berlin`.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}; use an IANA name such as Europe/Berlin"))
}

#[cfg(test)]
mod tests;
