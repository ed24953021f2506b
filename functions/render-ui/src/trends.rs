//! A project's trends: the durations of its last [`TREND_BUILDS`] finished builds as
//! bars coloured by status (an SVG the server draws, so it needs no script), and its
//! success rate over them.

use serde::Serialize;
use sparky_core::{model::BuildStatus, store::Recent, time::human_duration};

/// How many finished builds the trends look at.
pub const TREND_BUILDS: u32 = 50;

/// The chart's size in SVG units; the page scales it to its width.
const WIDTH: u32 = 600;
const HEIGHT: u32 = 120;
/// The least a bar shows, so that a build of no time (or that never ran) is still seen.
const MIN_BAR: u32 = 2;

/// One build's bar.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Bar {
    pub id: i64,
    pub status: &'static str,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// `#12 succeeded in 3m 4s`
    pub title: String,
}

/// What the project page draws.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Trends {
    pub width: u32,
    pub height: u32,
    /// Oldest first, left to right.
    pub bars: Vec<Bar>,
    /// The longest duration drawn, the top of the scale.
    pub longest: String,
    /// Succeeded out of those that ended on their own (canceled builds don't count).
    pub succeeded: usize,
    pub counted: usize,
    /// `succeeded / counted` in whole percent; `None` when nothing counts.
    pub success_rate: Option<u32>,
}

impl Trends {
    /// The trends of `recent` (newest first, as the store gives them); `None` when
    /// there is nothing to draw.
    pub fn new(recent: &[Recent]) -> Option<Trends> {
        if recent.is_empty() {
            return None;
        }
        let longest = recent.iter().filter_map(|r| r.duration_ms).max().unwrap_or(0).max(1);
        let slot = WIDTH / TREND_BUILDS;
        let bars = recent
            .iter()
            .rev()
            .enumerate()
            .map(|(i, r)| {
                let scaled = r.duration_ms.map_or(0, |d| (d.max(0) * i64::from(HEIGHT) / longest) as u32);
                let height = scaled.clamp(MIN_BAR, HEIGHT);
                let took =
                    r.duration_ms.map_or("never ran".to_string(), |d| format!("in {}", human_duration(d)));
                Bar {
                    id: r.id,
                    status: r.status.as_str(),
                    x: i as u32 * slot,
                    y: HEIGHT - height,
                    width: slot - 2,
                    height,
                    title: format!("#{} {} {took}", r.id, r.status),
                }
            })
            .collect();
        let counted = recent.iter().filter(|r| r.status != BuildStatus::Canceled).count();
        let succeeded = recent.iter().filter(|r| r.status == BuildStatus::Succeeded).count();
        let success_rate = (counted > 0).then(|| (succeeded * 100 / counted) as u32);
        Some(Trends {
            width: WIDTH,
            height: HEIGHT,
            bars,
            longest: human_duration(longest),
            succeeded,
            counted,
            success_rate,
        })
    }
}

/// A project's trends in the API (`GET /api/v1/projects/{project}`): the builds the
/// chart draws, newest first, and the success rate.
#[derive(Debug, Serialize)]
pub struct TrendsJson {
    pub builds: Vec<TrendBuild>,
    pub succeeded: usize,
    pub counted: usize,
    pub success_rate: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct TrendBuild {
    pub id: i64,
    pub status: &'static str,
    pub duration_ms: Option<i64>,
}

impl TrendsJson {
    pub fn new(recent: &[Recent]) -> TrendsJson {
        let (succeeded, counted, success_rate) =
            Trends::new(recent).map_or((0, 0, None), |t| (t.succeeded, t.counted, t.success_rate));
        TrendsJson {
            builds: recent
                .iter()
                .map(|r| TrendBuild { id: r.id, status: r.status.as_str(), duration_ms: r.duration_ms })
                .collect(),
            succeeded,
            counted,
            success_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent(id: i64, status: BuildStatus, duration_ms: Option<i64>) -> Recent {
        Recent { id, status, duration_ms }
    }

    #[test]
    fn bars_scale_to_the_longest_and_the_rate_leaves_out_canceled() {
        use BuildStatus::*;
        assert_eq!(Trends::new(&[]), None);
        let trends = Trends::new(&[
            recent(4, Canceled, None),
            recent(3, Failed, Some(60_000)),
            recent(2, Succeeded, Some(120_000)),
            recent(1, Succeeded, Some(0)),
        ])
        .expect("trends");
        let bars: Vec<(i64, &str, u32, u32)> =
            trends.bars.iter().map(|b| (b.id, b.status, b.x, b.height)).collect();
        assert_eq!(
            bars,
            [
                (1, "succeeded", 0, 2),
                (2, "succeeded", 12, 120),
                (3, "failed", 24, 60),
                (4, "canceled", 36, 2)
            ]
        );
        assert_eq!(trends.bars[1].y, 0);
        assert_eq!(trends.bars[1].title, "#2 succeeded in 2m 0s");
        assert_eq!(trends.bars[3].title, "#4 canceled never ran");
        assert_eq!(trends.longest, "2m 0s");
        assert_eq!((trends.succeeded, trends.counted, trends.success_rate), (2, 3, Some(66)));
        let only_canceled = Trends::new(&[recent(1, Canceled, None)]).expect("trends");
        assert_eq!(only_canceled.success_rate, None);
    }
}
