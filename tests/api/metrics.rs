//! `/metrics` read the way Prometheus reads it: every sample line parsed, histograms
//! checked for their shape, and the figures followed as deliveries happen; and the classic
//! text format (what curl gets) judged by Prometheus' own linter, `promtool check metrics`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{Receiver, Reply, TestApp};

/// What Prometheus 2.x sends as `Accept` when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Samples by `name{labels}` (labels as written), from OpenMetrics text as Prometheus gets it.
fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let (status, headers, text) = app.call_raw(
        "GET",
        "/metrics",
        None,
        &[("accept", PROMETHEUS_ACCEPT)],
        None,
    );
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].contains("openmetrics-text"),
        "{headers:?}"
    );
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name in {line:?}"
        );
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate {series}"
        );
    }
    samples
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} not in {samples:#?}"))
}

/// A histogram's buckets in `le` order, checked to be cumulative and to end at `_count`.
fn buckets(samples: &BTreeMap<String, f64>, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut out: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *v))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(out.len() > 5, "{name} has buckets");
    assert!(
        out.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} cumulative: {out:?}"
    );
    assert_eq!(
        out.last().unwrap().1,
        get(samples, &format!("{name}_count"))
    );
    out
}

#[test]
fn metrics_follow_deliveries() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "200ms")]);
    let ok = Receiver::ok();
    let broken = Receiver::start(|_, _| Reply::status(500));
    app.create_webhook(&ok.url("/ok"), &["order.*"]);
    app.create_webhook(&broken.url("/broken"), &["order.failed"]);

    let before = scrape(&app);
    assert_eq!(get(&before, "herald_attempt_duration_seconds_count"), 0.0);
    assert_eq!(
        get(&before, "herald_first_attempt_latency_seconds_count"),
        0.0
    );
    assert_eq!(get(&before, "herald_endpoints{status=\"active\"}"), 2.0);
    let zero = buckets(&before, "herald_attempt_duration_seconds");
    assert!(zero.iter().all(|(_, n)| *n == 0.0));

    for i in 0..3 {
        app.publish(json!({"event": "order.created", "n": i}));
    }
    app.publish(json!({"event": "order.failed"}));
    ok.wait_for("/ok", 4, Duration::from_secs(10));
    broken.wait_for("/broken", 2, Duration::from_secs(10));
    let after = app.wait_for(
        Duration::from_secs(10),
        "the failed delivery to finish",
        || {
            // The counters move when an attempt ends, the gauges when its record is
            // committed a moment later: wait for both.
            let s = scrape(&app);
            (get(
                &s,
                "herald_attempts_total{outcome=\"failed\",status_class=\"5xx\"}",
            ) == 1.0
                && get(&s, "herald_deliveries_pending") == 0.0)
                .then_some(s)
        },
    );

    let succeeded = "herald_attempts_total{outcome=\"succeeded\",status_class=\"2xx\"}";
    assert_eq!(get(&after, succeeded), 4.0);
    assert_eq!(
        get(
            &after,
            "herald_attempts_total{outcome=\"retried\",status_class=\"5xx\"}"
        ),
        1.0
    );
    // Six attempts in all; five deliveries, each with one first attempt.
    let durations = buckets(&after, "herald_attempt_duration_seconds");
    assert_eq!(durations.last().unwrap().1, 6.0);
    assert!(durations.iter().zip(&zero).any(|(a, b)| a.1 > b.1));
    let latency = buckets(&after, "herald_first_attempt_latency_seconds");
    assert_eq!(latency.last().unwrap().1, 5.0);
    // A fresh publish to an idle engine is attempted well within ten seconds.
    let within_10s = latency.iter().find(|(le, _)| *le == 10.0).unwrap().1;
    assert_eq!(within_10s, 5.0, "{latency:?}");
    assert!(get(&after, "herald_attempt_duration_seconds_sum") > 0.0);
    assert_eq!(get(&after, "herald_deliveries_pending"), 0.0);
    assert_eq!(get(&after, "herald_attempts_in_flight"), 0.0);
    assert_eq!(get(&after, "herald_endpoints_failing"), 1.0);
    assert_eq!(get(&after, "herald_endpoints_circuit_open"), 0.0);
    assert!(get(&after, "herald_store_commits_total") > get(&before, "herald_store_commits_total"));
}

/// Every metric the Grafana dashboard in docs/ queries is one Herald exposes.
#[test]
fn grafana_dashboard_queries_exposed_metrics() {
    let app = TestApp::spawn();
    let samples = scrape(&app);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("herald_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    samples
                        .keys()
                        .any(|k| k == &name || k.starts_with(&format!("{name}{{"))),
                    "{} queries {name}, which /metrics does not expose",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10);
}

/// The `promtool` to run: `HERALD_PROMTOOL` (`.ci/run` unpacks Debian's under target/), or
/// `promtool` on the PATH.
fn promtool() -> Option<String> {
    let candidates = std::env::var("HERALD_PROMTOOL")
        .ok()
        .into_iter()
        .chain(["promtool".to_string()]);
    for candidate in candidates {
        let works = Command::new(&candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return Some(candidate);
        }
    }
    None
}

/// `curl /metrics | promtool check metrics`, on a Herald that has delivered (so the
/// histograms and labelled counters have samples): no complaint at all, and the counters'
/// HELP is on the name their samples carry.
#[test]
fn promtool_check_metrics_is_clean() {
    let Some(promtool) = promtool() else {
        if std::env::var_os("HERALD_REQUIRE_PROMTOOL").is_some() {
            panic!("HERALD_REQUIRE_PROMTOOL is set but promtool is not installed (see .ci/run)");
        }
        eprintln!("SKIPPED promtool_check_metrics_is_clean: no promtool (Debian: prometheus; or set HERALD_PROMTOOL)");
        return;
    };
    let app = TestApp::spawn();
    let ok = Receiver::ok();
    app.create_webhook(&ok.url("/ok"), &["*"]);
    app.publish(json!({"event": "order.created"}));
    ok.wait_for("/ok", 1, Duration::from_secs(10));

    let (status, headers, text) = app.call_raw("GET", "/metrics", None, &[], None);
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    for help in [
        "# HELP herald_attempts_total ",
        "# HELP herald_store_commits_total ",
        "# HELP herald_store_write_jobs_total ",
    ] {
        assert!(text.contains(help), "{help} missing in\n{text}");
    }
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\non\n{text}"
    );
}
