//! Prometheus metrics (`/metrics`), kept with the `prometheus-client` crate.
//!
//! Two kinds of figures:
//! - what the engine counts as it works, in memory (`Metrics::attempt`): attempts by outcome
//!   and status class, attempt durations, publish → first-attempt latency, requests in
//!   flight. Counting costs a few atomic adds per attempt and no database read.
//! - levels read from the store at scrape time (`Metrics::render`): the queue and the
//!   endpoints by status. Those reads go through indexes (`Activity::gauges`), so a scrape
//!   never scans the delivery history.
//!
//! Two encodings of the same figures (`Format`): OpenMetrics, what the crate writes and what
//! Prometheus asks for in its `Accept`; and the classic text format 0.0.4, for everyone
//! else (curl, `promtool check metrics`). They differ for counters only: OpenMetrics names
//! the family `herald_attempts` and its samples `herald_attempts_total`, while the classic
//! format wants the HELP and TYPE lines on the sample name itself, so a classic reader saw
//! `herald_attempts_total` as a family without help.
//!
//! Labels are bounded: an outcome (3 values), a status class (6), an endpoint status (3).
//! Nothing is labelled per event, endpoint, URL or tenant.

use std::sync::atomic::AtomicI64;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::{AttemptRecord, Claimed, Gauges, Verdict, WriterStats};

type Labels = [(&'static str, &'static str); 2];
type Label = [(&'static str, &'static str); 1];

/// Attempt durations: from a fast local receiver to the default 15 s request timeout.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];
/// Publish → first attempt: milliseconds when the queue is empty, minutes in a backlog.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

pub struct Metrics {
    registry: Registry,
    attempts: Family<Labels, Counter>,
    attempt_duration: Histogram,
    first_attempt_latency: Histogram,
    in_flight: Gauge<i64, AtomicI64>,
    pending: Gauge<i64, AtomicI64>,
    endpoints: Family<Label, Gauge<i64, AtomicI64>>,
    endpoints_failing: Gauge<i64, AtomicI64>,
    circuits_open: Gauge<i64, AtomicI64>,
    commits: Counter,
    write_jobs: Counter,
    checkpoint_failures: Counter,
    wal_bytes: Gauge<i64, AtomicI64>,
    record_failures: Counter,
    /// One scrape at a time: the store-fed figures are set, then encoded.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("herald");
        let attempts = Family::<Labels, Counter>::default();
        // Every possible series exists from the start at 0, so a dashboard's rate() sees
        // the first failure instead of a series appearing out of nothing.
        let _ = attempts.get_or_create(&[("outcome", "succeeded"), ("status_class", "2xx")]);
        for outcome in ["retried", "failed"] {
            for class in ["3xx", "4xx", "5xx", "none", "other"] {
                let _ = attempts.get_or_create(&[("outcome", outcome), ("status_class", class)]);
            }
        }
        registry.register(
            "attempts",
            "HTTP attempts since start, by outcome (succeeded; retried: failed, another \
             attempt is scheduled; failed: failed, the delivery failed for good) and status \
             class (2xx..5xx, or none when no response came)",
            attempts.clone(),
        );
        let attempt_duration = Histogram::new(DURATION_BUCKETS);
        registry.register(
            "attempt_duration_seconds",
            "How long one HTTP attempt took, connect to response",
            attempt_duration.clone(),
        );
        let first_attempt_latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "first_attempt_latency_seconds",
            "From the publish to the start of a delivery's first attempt",
            first_attempt_latency.clone(),
        );
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "attempts_in_flight",
            "HTTP attempts under way now",
            in_flight.clone(),
        );
        let pending = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "deliveries_pending",
            "Deliveries waiting to be sent (due now or scheduled for a retry)",
            pending.clone(),
        );
        let endpoints = Family::<Label, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "endpoints",
            "Endpoints by status (active, paused, disabled)",
            endpoints.clone(),
        );
        let endpoints_failing = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "endpoints_failing",
            "Active or paused endpoints whose deliveries fail with no success since",
            endpoints_failing.clone(),
        );
        let circuits_open = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "endpoints_circuit_open",
            "Endpoints whose circuit is open: deliveries wait for a probe",
            circuits_open.clone(),
        );
        let commits = Counter::default();
        registry.register(
            "store_commits",
            "Write transactions committed (group commits)",
            commits.clone(),
        );
        let write_jobs = Counter::default();
        registry.register(
            "store_write_jobs",
            "Write jobs committed; jobs/commits is the group-commit factor",
            write_jobs.clone(),
        );
        let checkpoint_failures = Counter::default();
        registry.register(
            "store_checkpoint_failures",
            "SQLite WAL checkpoints that failed (the WAL keeps every commit, but grows)",
            checkpoint_failures.clone(),
        );
        let wal_bytes = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "store_wal_bytes",
            "The size of SQLite's write-ahead log at the last checkpoint",
            wal_bytes.clone(),
        );
        let record_failures = Counter::default();
        registry.register(
            "record_failures",
            "Batches of attempt outcomes the store refused; they are kept and written again",
            record_failures.clone(),
        );
        Metrics {
            registry,
            checkpoint_failures,
            wal_bytes,
            record_failures,
            attempts,
            attempt_duration,
            first_attempt_latency,
            in_flight,
            pending,
            endpoints,
            endpoints_failing,
            circuits_open,
            commits,
            write_jobs,
            scrape: Mutex::new(()),
        }
    }

    /// The recorder could not write a batch of outcomes.
    pub fn record_failed(&self) {
        self.record_failures.inc();
    }

    /// Brackets an HTTP attempt for the in-flight gauge.
    pub fn attempt_started(&self) {
        self.in_flight.inc();
    }

    /// Counts a finished attempt of `delivery`.
    pub fn attempt(&self, delivery: &Claimed, record: &AttemptRecord) {
        self.in_flight.dec();
        let labels = [
            ("outcome", outcome(record.verdict)),
            ("status_class", status_class(record.status_code)),
        ];
        self.attempts.get_or_create(&labels).inc();
        self.attempt_duration
            .observe(record.duration_ms.max(0) as f64 / 1000.0);
        if delivery.attempts == 0 {
            let latency = (record.started_at - delivery.created_at).max(0);
            self.first_attempt_latency.observe(latency as f64 / 1000.0);
        }
    }

    /// The exposition in `format`, with the store's levels as of now.
    pub fn render_as(&self, format: Format, gauges: &Gauges, writer: WriterStats) -> String {
        let text = self.render(gauges, writer);
        match format {
            Format::OpenMetrics => text,
            Format::Classic => classic_text(&text),
        }
    }

    /// The OpenMetrics exposition, with the store's levels as of now.
    pub fn render(&self, gauges: &Gauges, writer: WriterStats) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.pending.set(gauges.pending);
        for (status, n) in [
            ("active", gauges.endpoints_active),
            ("paused", gauges.endpoints_paused),
            ("disabled", gauges.endpoints_disabled),
        ] {
            self.endpoints.get_or_create(&[("status", status)]).set(n);
        }
        self.endpoints_failing.set(gauges.endpoints_failing);
        self.circuits_open.set(gauges.circuits_open);
        // The writer keeps its own totals; the counters catch up to them.
        self.commits
            .inc_by(writer.commits.saturating_sub(self.commits.get()));
        self.write_jobs
            .inc_by(writer.jobs.saturating_sub(self.write_jobs.get()));
        self.checkpoint_failures.inc_by(
            writer
                .checkpoint_failures
                .saturating_sub(self.checkpoint_failures.get()),
        );
        self.wal_bytes.set(writer.wal_bytes as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The two text encodings `/metrics` answers in (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    pub const OPENMETRICS_CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";
    pub const CLASSIC_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// OpenMetrics when the scraper's `Accept` names it (Prometheus does), the classic
    /// format otherwise: the negotiation Prometheus' own Go client does.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a)
                if a.to_ascii_lowercase()
                    .contains("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Classic,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => Format::OPENMETRICS_CONTENT_TYPE,
            Format::Classic => Format::CLASSIC_CONTENT_TYPE,
        }
    }
}

/// OpenMetrics text rewritten as the classic format 0.0.4: a counter family's HELP and TYPE
/// lines take the `_total` its samples carry, and the `# EOF` terminator goes (the classic
/// format has none). Gauges and histograms are written the same in both.
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{total} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn outcome(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Succeeded => "succeeded",
        Verdict::RetryAt(_) => "retried",
        Verdict::Failed => "failed",
        Verdict::Cancelled => "cancelled",
        Verdict::Unsent => "failed",
    }
}

fn status_class(status: Option<u16>) -> &'static str {
    match status {
        None => "none",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_are_bounded() {
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(410)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(Some(799)), "other");
        assert_eq!(status_class(None), "none");
    }

    #[test]
    fn render_lists_every_family_with_help() {
        let m = Metrics::new();
        let text = m.render(
            &Gauges {
                pending: 3,
                endpoints_active: 2,
                ..Gauges::default()
            },
            WriterStats {
                commits: 5,
                jobs: 9,
                ..WriterStats::default()
            },
        );
        for line in [
            "# TYPE herald_attempts counter",
            "# TYPE herald_attempt_duration_seconds histogram",
            "# TYPE herald_first_attempt_latency_seconds histogram",
            "herald_deliveries_pending 3",
            "herald_endpoints{status=\"active\"} 2",
            "herald_store_commits_total 5",
            "herald_store_write_jobs_total 9",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        // Counters follow the writer's totals without double counting.
        let again = m.render(
            &Gauges::default(),
            WriterStats {
                commits: 7,
                jobs: 9,
                ..WriterStats::default()
            },
        );
        assert!(again.contains("herald_store_commits_total 7"), "{again}");
    }

    #[test]
    fn the_classic_format_names_counters_with_total() {
        let m = Metrics::new();
        let text = m.render_as(Format::Classic, &Gauges::default(), WriterStats::default());
        for line in [
            "# HELP herald_attempts_total HTTP attempts",
            "# TYPE herald_attempts_total counter",
            "# TYPE herald_store_commits_total counter",
            "# HELP herald_store_write_jobs_total Write jobs",
            "# TYPE herald_attempt_duration_seconds histogram",
            "# TYPE herald_deliveries_pending gauge",
            "herald_store_commits_total 0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("# EOF") && !text.contains("# TYPE herald_attempts counter"));
        let open = m.render_as(
            Format::OpenMetrics,
            &Gauges::default(),
            WriterStats::default(),
        );
        assert!(open.ends_with("# EOF\n") && open.contains("# TYPE herald_attempts counter"));
    }

    #[test]
    fn negotiation_follows_accept() {
        for (accept, format) in [
            (None, Format::Classic),
            (Some("*/*"), Format::Classic),
            (Some("text/plain"), Format::Classic),
            // What Prometheus 2.x sends.
            (Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Format::OpenMetrics),
            (Some("Application/OpenMetrics-Text"), Format::OpenMetrics),
        ] {
            assert_eq!(Format::negotiate(accept), format, "{accept:?}");
        }
    }
}
