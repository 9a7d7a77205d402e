//! Server-rendered bar charts (SVG, no script): the geometry is computed here, pure and
//! unit-tested; `templates/chart.html` only writes it out, escaping every text.
//!
//! A chart is a row of time slots (hours or days, UTC). Each slot is one bar made of
//! segments — stacked (succeeded under failed attempts) or overlaid (p99 behind p50) —
//! and carries a `<title>`, so a screen reader or a hover tells its exact figures.

use crate::clock::rfc3339_seconds;
use crate::store::{histogram_percentile, AttemptBucket, LatencyCount};

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// The drawing's coordinate system (the SVG scales to the page width).
pub const WIDTH: f64 = 600.0;
pub const HEIGHT: f64 = 180.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 22.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 28.0;

#[derive(Debug, Clone)]
pub struct Chart {
    /// The element id, also the prefix of the ids its title and description use.
    pub id: &'static str,
    pub title: String,
    /// What the chart shows in one sentence, with its totals (the SVG's `<desc>`).
    pub summary: String,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    /// The value at the top of the plot, as a person reads it.
    pub top_label: String,
    pub legend: Vec<(&'static str, &'static str)>,
}

impl Chart {
    pub fn plot_top(&self) -> f64 {
        TOP
    }
    pub fn plot_bottom(&self) -> f64 {
        HEIGHT - BOTTOM
    }
    pub fn plot_left(&self) -> f64 {
        LEFT
    }
    pub fn plot_right(&self) -> f64 {
        WIDTH - RIGHT
    }
    pub fn tick_y(&self) -> f64 {
        HEIGHT - 8.0
    }
    pub fn view_box(&self) -> String {
        format!("0 0 {WIDTH} {HEIGHT}")
    }
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub title: String,
    pub x: f64,
    pub width: f64,
    /// No data in this slot.
    pub empty: bool,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub class: &'static str,
    pub y: f64,
    pub height: f64,
}

#[derive(Debug, Clone)]
pub struct Tick {
    pub x: f64,
    pub text: String,
}

/// The starts of the `n` buckets of `size` ms that end with the one holding `now`.
pub fn slots(now: i64, size: i64, n: usize) -> Vec<i64> {
    let last = now.div_euclid(size) * size;
    (0..n as i64).rev().map(|i| last - i * size).collect()
}

/// Succeeded and failed attempts per slot, stacked.
pub fn attempts_chart(
    id: &'static str,
    title: &str,
    buckets: &[AttemptBucket],
    slots: &[i64],
    size: i64,
) -> Chart {
    let per_slot: Vec<(i64, i64)> = slots
        .iter()
        .map(|start| {
            buckets
                .iter()
                .find(|b| b.start == *start)
                .map_or((0, 0), |b| (b.succeeded, b.failed))
        })
        .collect();
    let max = per_slot.iter().map(|(s, f)| s + f).max().unwrap_or(0);
    let scale = Scale::new(max as f64);
    let (ok, bad) = per_slot
        .iter()
        .fold((0, 0), |(a, b), (s, f)| (a + s, b + f));
    let bars = layout(slots.len())
        .zip(slots.iter().zip(&per_slot))
        .map(|((x, width), (start, (s, f)))| Bar {
            title: format!("{}: {s} succeeded, {f} failed", slot_name(*start, size)),
            x,
            width,
            empty: s + f == 0,
            segments: vec![
                scale.segment("ok", 0.0, *s as f64),
                scale.segment("bad", *s as f64, (s + f) as f64),
            ],
        })
        .collect();
    Chart {
        id,
        title: title.to_owned(),
        summary: format!(
            "{title}: {ok} succeeded and {bad} failed attempts in all; one bar per {}.",
            if size == DAY { "day" } else { "hour" }
        ),
        bars,
        ticks: ticks(slots, size),
        top_label: format!("{}", max),
        legend: vec![("ok", "succeeded"), ("bad", "failed")],
    }
}

/// Median and 99th percentile of `samples` (time ms, value ms) per slot, p99 behind p50.
pub fn latency_chart(
    id: &'static str,
    title: &str,
    samples: &[(i64, i64)],
    slots: &[i64],
    size: i64,
) -> Chart {
    let per_slot: Vec<Option<(i64, i64, usize)>> = slots
        .iter()
        .map(|start| {
            let mut values: Vec<i64> = samples
                .iter()
                .filter(|(t, _)| *t >= *start && *t < start + size)
                .map(|(_, v)| *v)
                .collect();
            values.sort_unstable();
            (!values.is_empty()).then(|| {
                (
                    percentile(&values, 50.0),
                    percentile(&values, 99.0),
                    values.len(),
                )
            })
        })
        .collect();
    percentiles_chart(id, title, &per_slot, slots, size)
}

/// The same chart from per-hour histograms (`store::activity::latency_bucket`): each
/// percentile is the middle of the bucket it falls in, exact below 16 ms and within 6.25 %
/// above.
pub fn latency_histogram_chart(
    id: &'static str,
    title: &str,
    counts: &[LatencyCount],
    slots: &[i64],
    size: i64,
) -> Chart {
    let per_slot: Vec<Option<(i64, i64, usize)>> = slots
        .iter()
        .map(|start| {
            let mut histogram: Vec<(i32, i64)> = counts
                .iter()
                .filter(|c| c.hour >= *start && c.hour < start + size && c.count > 0)
                .map(|c| (c.bucket, c.count))
                .collect();
            histogram.sort_unstable();
            let n: i64 = histogram.iter().map(|(_, n)| n).sum();
            (n > 0).then(|| {
                (
                    histogram_percentile(&histogram, 50.0),
                    histogram_percentile(&histogram, 99.0),
                    n as usize,
                )
            })
        })
        .collect();
    percentiles_chart(id, title, &per_slot, slots, size)
}

/// p50 and p99 bars, one per slot (`None`: nothing measured there).
fn percentiles_chart(
    id: &'static str,
    title: &str,
    per_slot: &[Option<(i64, i64, usize)>],
    slots: &[i64],
    size: i64,
) -> Chart {
    let max = per_slot
        .iter()
        .flatten()
        .map(|(_, p99, _)| *p99)
        .max()
        .unwrap_or(0);
    let scale = Scale::new(max as f64);
    let bars = layout(slots.len())
        .zip(slots.iter().zip(per_slot))
        .map(|((x, width), (start, figures))| match figures {
            Some((p50, p99, n)) => Bar {
                title: format!(
                    "{}: p50 {}, p99 {} ({n} measured)",
                    slot_name(*start, size),
                    millis(*p50),
                    millis(*p99)
                ),
                x,
                width,
                empty: false,
                segments: vec![
                    scale.segment("p99", 0.0, *p99 as f64),
                    scale.segment("p50", 0.0, *p50 as f64),
                ],
            },
            None => Bar {
                title: format!("{}: nothing measured", slot_name(*start, size)),
                x,
                width,
                empty: true,
                segments: Vec::new(),
            },
        })
        .collect();
    let measured: usize = per_slot.iter().flatten().map(|(_, _, n)| n).sum();
    Chart {
        id,
        title: title.to_owned(),
        summary: format!(
            "{title}: median (p50) and 99th percentile (p99) per hour, {measured} measured in all."
        ),
        bars,
        ticks: ticks(slots, size),
        top_label: millis(max),
        legend: vec![("p50", "p50"), ("p99", "p99")],
    }
}

/// Nearest-rank percentile of sorted, non-empty values.
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `850 ms`, `2.5 s`, `3.0 min`.
pub fn millis(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{:.1} min", ms as f64 / 60_000.0),
    }
}

/// Maps values onto the plot's height; rounded to tenths to keep the markup short.
struct Scale {
    max: f64,
}

impl Scale {
    fn new(max: f64) -> Scale {
        Scale { max: max.max(1.0) }
    }

    fn y(&self, value: f64) -> f64 {
        let bottom = HEIGHT - BOTTOM;
        round(bottom - (bottom - TOP) * value / self.max)
    }

    fn segment(&self, class: &'static str, from: f64, to: f64) -> Segment {
        let (y, y0) = (self.y(to), self.y(from));
        Segment {
            class,
            y,
            height: round(y0 - y),
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// (x, width) of `n` bars spread over the plot, with a gap between them.
fn layout(n: usize) -> impl Iterator<Item = (f64, f64)> {
    let slot = (WIDTH - LEFT - RIGHT) / n.max(1) as f64;
    (0..n).map(move |i| {
        (
            round(LEFT + slot * i as f64 + slot * 0.15),
            round(slot * 0.7),
        )
    })
}

/// Labels under the bars: every day, or every sixth hour.
fn ticks(slots: &[i64], size: i64) -> Vec<Tick> {
    let every = if size == DAY { 1 } else { 6 };
    let n = slots.len();
    layout(n)
        .zip(slots)
        .enumerate()
        .filter(|(i, _)| (n - 1 - i).is_multiple_of(every))
        .map(|(_, ((x, w), start))| Tick {
            x: round(x + w / 2.0),
            text: short_name(*start, size),
        })
        .collect()
}

/// `2026-11-29 14:00–15:00 UTC` or `2026-11-29 (UTC)`.
fn slot_name(start: i64, size: i64) -> String {
    let s = rfc3339_seconds(start);
    if size == DAY {
        format!("{} (UTC)", &s[..10])
    } else {
        let end = rfc3339_seconds(start + size);
        format!("{} {}–{} UTC", &s[..10], &s[11..16], &end[11..16])
    }
}

/// `14:00` or `11-29`.
fn short_name(start: i64, size: i64) -> String {
    let s = rfc3339_seconds(start);
    if size == DAY {
        s[5..10].to_owned()
    } else {
        s[11..16].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_453_600_000 + 25 * 60_000; // 2025-11-29 22:25 UTC

    #[test]
    fn slots_end_with_the_current_bucket() {
        let hours = slots(NOW, HOUR, 24);
        assert_eq!(hours.len(), 24);
        assert_eq!(*hours.last().unwrap(), NOW - 25 * 60_000);
        assert_eq!(hours[1] - hours[0], HOUR);
        let days = slots(NOW, DAY, 7);
        assert_eq!(days.len(), 7);
        assert_eq!(days.last().unwrap() % DAY, 0);
    }

    #[test]
    fn attempts_stack_succeeded_under_failed() {
        let hours = slots(NOW, HOUR, 24);
        let buckets = [
            AttemptBucket {
                start: hours[20],
                succeeded: 6,
                failed: 2,
            },
            AttemptBucket {
                start: hours[23],
                succeeded: 1,
                failed: 0,
            },
        ];
        let chart = attempts_chart("c", "Attempts", &buckets, &hours, HOUR);
        assert_eq!(chart.bars.len(), 24);
        assert_eq!(chart.bars.iter().filter(|b| !b.empty).count(), 2);
        let tallest = &chart.bars[20];
        let (ok, bad) = (&tallest.segments[0], &tallest.segments[1]);
        assert_eq!(ok.y + ok.height, chart.plot_bottom());
        assert_eq!(bad.y, chart.plot_top(), "the highest bar reaches the top");
        assert!(
            (bad.y + bad.height - ok.y).abs() < 0.2,
            "failed sits on succeeded"
        );
        assert!((ok.height - 3.0 * bad.height).abs() < 0.3);
        assert!(
            tallest.title.ends_with("6 succeeded, 2 failed"),
            "{}",
            tallest.title
        );
        assert!(
            tallest.title.contains("19:00–20:00 UTC"),
            "{}",
            tallest.title
        );
        assert_eq!(chart.top_label, "8");
        assert!(chart.summary.contains("7 succeeded and 2 failed"));
        assert_eq!(chart.ticks.len(), 4);
        assert_eq!(chart.ticks.last().unwrap().text, "22:00");
    }

    #[test]
    fn latency_shows_p50_in_front_of_p99() {
        let hours = slots(NOW, HOUR, 24);
        let samples: Vec<(i64, i64)> = (1..=100).map(|v| (hours[23] + v, v * 10)).collect();
        let chart = latency_chart("l", "Latency", &samples, &hours, HOUR);
        let bar = &chart.bars[23];
        assert_eq!(
            bar.title.split(": ").nth(1),
            Some("p50 500 ms, p99 990 ms (100 measured)")
        );
        assert!(bar.segments[0].height > bar.segments[1].height);
        assert_eq!(chart.bars.iter().filter(|b| b.empty).count(), 23);
        assert_eq!(chart.top_label, "990 ms");
    }

    #[test]
    fn percentiles_and_durations() {
        assert_eq!(percentile(&[5], 99.0), 5);
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 99.0), 4);
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(2_500), "2.5 s");
        assert_eq!(millis(180_000), "3.0 min");
    }
}
