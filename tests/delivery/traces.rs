//! Traces (README: Tracing), against the real binary: a collector the test runs on
//! 127.0.0.1 decodes the OTLP/HTTP protobuf exports (`ExportTraceServiceRequest`, the
//! OpenTelemetry project's own message types), and a real receiver gets the deliveries.
//! One event is followed from the producer's `traceparent` through its publish span to
//! each attempt's span and on to the receiver; with tracing off nothing of it is sent; a
//! collector that never answers slows no publish and no delivery.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::common::delivery::{delivery_of_event, header, wait_delivery_status};
use crate::common::{Receiver, Reply, TestApp, ADMIN_TOKEN};

const WAIT: Duration = Duration::from_secs(20);

/// The producer's own span: trace id and parent id as W3C Trace Context writes them.
const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

/// A string only the payload holds: it must appear in no span.
const MARKER: &str = "payload-marker-7f3a";

/// Every span the collector received, from every export.
fn spans(collector: &Receiver) -> Vec<Span> {
    collector
        .on_path("/v1/traces")
        .iter()
        .flat_map(|r| {
            let request = ExportTraceServiceRequest::decode(&r.raw[..]).expect("OTLP protobuf");
            request
                .resource_spans
                .into_iter()
                .flat_map(|rs| rs.scope_spans)
                .flat_map(|ss| ss.spans)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn int(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(AnyValue::IntValue(i)) => *i,
        other => panic!("{key}: {other:?} in {span:?}"),
    }
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match attribute(span, key) {
        Some(AnyValue::StringValue(s)) => s,
        other => panic!("{key}: {other:?} in {span:?}"),
    }
}

/// Publishes `payload` as a producer inside its own trace would.
fn publish_traced(app: &TestApp, payload: &serde_json::Value) -> String {
    let traceparent = format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01");
    let (status, _, body) = app.call_raw(
        "POST",
        "/api/v1/events",
        Some(ADMIN_TOKEN),
        &[("traceparent", &traceparent)],
        Some(&payload.to_string()),
    );
    assert_eq!(status, 202, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["data"]["id"].as_str().unwrap().to_owned()
}

/// The producer → publish → attempt → receiver chain, for a delivery that fails once and
/// then succeeds (two attempt spans, numbered 1 and 2). The spans are flushed by SIGTERM:
/// the batch processor's 5 s schedule has not come round by then.
#[test]
fn one_event_is_followed_from_the_producer_through_each_attempt_to_the_receiver() {
    let collector = Receiver::ok();
    let mut app = TestApp::spawn_with(&[
        ("HERALD_OTLP_ENDPOINT", &collector.url("")),
        ("HERALD_RETRY_SCHEDULE", "200ms"),
    ]);
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 500 } else { 200 }));
    let hook = app.create_webhook(&receiver.url("/traced"), &["*"]);
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let event_id = publish_traced(&app, &json!({"event": "job.completed", "note": MARKER}));
    let delivery_id = delivery_of_event(&app, &event_id)["id"].as_i64().unwrap();
    wait_delivery_status(&app, delivery_id, "succeeded", WAIT);
    assert!(app.terminate().success());

    let spans = spans(&collector);
    let publish: Vec<&Span> = spans.iter().filter(|s| s.name == "publish").collect();
    assert_eq!(publish.len(), 1, "{spans:?}");
    let publish = publish[0];
    assert_eq!(hex::encode(&publish.trace_id), PRODUCER_TRACE);
    assert_eq!(hex::encode(&publish.parent_span_id), PRODUCER_SPAN);
    assert_eq!(text(publish, "herald.event.id"), event_id);
    assert_eq!(text(publish, "herald.event.type"), "job.completed");
    assert_eq!(text(publish, "herald.tenant"), "default");

    let mut attempts: Vec<&Span> = spans.iter().filter(|s| s.name == "attempt").collect();
    attempts.sort_by_key(|s| int(s, "herald.attempt"));
    assert_eq!(attempts.len(), 2, "{spans:?}");
    let received = receiver.wait_for("/traced", 2, WAIT);
    for (i, (span, got)) in attempts.iter().zip(&received).enumerate() {
        assert_eq!(int(span, "herald.attempt"), i as i64 + 1);
        assert_eq!(span.trace_id, publish.trace_id, "one trace");
        assert_eq!(
            span.parent_span_id, publish.span_id,
            "a child of the publish"
        );
        assert_eq!(
            int(span, "herald.endpoint.id"),
            hook["id"].as_i64().unwrap()
        );
        assert_eq!(int(span, "herald.delivery.id"), delivery_id);
        assert_eq!(text(span, "herald.event.id"), event_id);
        let want = if i == 0 { 500 } else { 200 };
        assert_eq!(int(span, "http.response.status_code"), want);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        // The receiver continues the attempt's span: the same trace, this span the parent.
        assert_eq!(
            header(got, "traceparent"),
            format!(
                "00-{PRODUCER_TRACE}-{}-01",
                hex::encode(&attempts[i].span_id)
            ),
            "attempt {}",
            i + 1
        );
    }
    // Nothing of the payload or the endpoint's secret in any span, or anywhere in the export.
    for r in collector.on_path("/v1/traces") {
        let raw = String::from_utf8_lossy(&r.raw);
        assert!(!raw.contains(MARKER), "the payload was exported");
        assert!(!raw.contains(&secret), "the secret was exported");
        assert!(!raw.contains("/traced"), "the endpoint's URL was exported");
    }
}

/// A batch is one publish span naming every event; each event's attempt is its child.
#[test]
fn a_batch_is_one_publish_span_with_every_event() {
    let collector = Receiver::ok();
    let mut app = TestApp::spawn_with(&[("HERALD_OTLP_ENDPOINT", &collector.url("/v1/traces"))]);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/batch"), &["*"]);
    app.publish_numbered("job.done", 0, 3);
    let got = receiver.wait_for("/batch", 3, WAIT);
    assert!(app.terminate().success());
    let spans = spans(&collector);
    let publish: Vec<&Span> = spans.iter().filter(|s| s.name == "publish").collect();
    assert_eq!(publish.len(), 1, "{spans:?}");
    assert_eq!(int(publish[0], "herald.event.count"), 3);
    assert!(
        publish[0].parent_span_id.is_empty(),
        "no producer trace: a root"
    );
    let ids = match attribute(publish[0], "herald.event.ids") {
        Some(AnyValue::ArrayValue(a)) => a.values.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ids, 3);
    let attempts: Vec<&Span> = spans.iter().filter(|s| s.name == "attempt").collect();
    assert_eq!(attempts.len(), 3);
    for (span, r) in attempts.iter().zip(&got) {
        assert_eq!(span.parent_span_id, publish[0].span_id);
        assert!(header(r, "traceparent").contains(&hex::encode(&publish[0].trace_id)));
    }
}

/// Tracing off (no `otlp_endpoint`): a producer's `traceparent` goes nowhere, and the
/// receiver gets no `traceparent` header.
#[test]
fn without_an_endpoint_nothing_is_traced_or_sent() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/plain"), &["*"]);
    publish_traced(&app, &json!({"event": "job.completed"}));
    let got = receiver.wait_for("/plain", 1, WAIT);
    assert!(
        !got[0].headers.contains_key("traceparent"),
        "{:?}",
        got[0].headers
    );
}

/// A collector that accepts connections and never answers (worse than a closed port,
/// which refuses at once): publishes still answer 202 at once, deliveries go out, and
/// SIGTERM still ends Herald within its bounds (10 s for deliveries, 5 s for the spans).
#[test]
fn a_collector_that_never_answers_slows_nothing() {
    // Bound and never accepted from: the kernel completes connections into its backlog,
    // and nothing ever answers them.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", blackhole.local_addr().unwrap());
    let mut app = TestApp::spawn_with(&[
        ("HERALD_OTLP_ENDPOINT", &endpoint),
        // Exports every 100 ms instead of 5 s: the exporter is busy with the blackhole
        // while the publishes run.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/fast"), &["*"]);
    let started = Instant::now();
    for i in 0..50 {
        let sent = Instant::now();
        app.publish(json!({"event": "job.completed", "i": i}));
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "publish {i} took {:?}",
            sent.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    receiver.wait_for("/fast", 50, WAIT);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let stopping = Instant::now();
    assert!(app.terminate().success());
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    drop(blackhole);
}
