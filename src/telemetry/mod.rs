//! OpenTelemetry traces (README: Tracing): one span per publish, one per delivery attempt,
//! linked into the producer's trace and handed on to the receiver.
//!
//! Off unless `otlp_endpoint` is set: then `start` installs a tracer whose spans go to a
//! batch processor, which exports them as OTLP/HTTP protobuf from a thread of its own
//! (`export`), so a slow or unreachable collector never holds up a publish or an attempt —
//! a span is handed over with a non-blocking send, and spans beyond the processor's queue
//! (2048) are dropped, not waited for. While off, every function here is one check of an
//! empty `OnceLock` and returns nothing: no span, no stored context, no header.
//!
//! How one event is followed: the publish handler opens a `PublishSpan` whose parent is the
//! producer's W3C `traceparent` (when it sent one); the span's own `traceparent` is stored
//! with each event (`events.traceparent`); each attempt opens an `AttemptSpan` as its child
//! and sends the receiver that span's `traceparent`. Spans carry ids, types, counts and
//! statuses, never a payload, a URL (it may hold a token) or an error text.

mod export;
mod spans;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::SpanContext;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub use spans::{AttemptSpan, PublishSpan};

/// The header W3C Trace Context names.
pub const TRACEPARENT: &str = "traceparent";

/// The tracer, once `start` has run; never set while tracing is off.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// The running exporter; `shutdown` flushes what is queued.
pub struct Exporter {
    provider: SdkTracerProvider,
}

/// Starts exporting to the collector at `endpoint` (the OTLP/HTTP base URL, e.g.
/// `http://collector:4318`; `/v1/traces` is added unless it is there).
pub fn start(endpoint: &str) -> Result<Exporter, String> {
    let provider = export::provider(&traces_url(endpoint))?;
    use opentelemetry::trace::TracerProvider;
    TRACER
        .set(provider.tracer("herald"))
        .map_err(|_| "tracing is already started".to_string())?;
    Ok(Exporter { provider })
}

impl Exporter {
    /// Exports the spans still queued, waiting at most `bound` (an unreachable collector
    /// must not hold up the exit).
    pub fn shutdown(self, bound: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(bound) {
            tracing::warn!(error = %e, "traces: the last spans may not have been exported");
        }
    }
}

/// OTLP/HTTP's traces path under a base URL, as the OpenTelemetry exporters' own
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is read.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The parent a `traceparent` header names; an absent or malformed one gives an empty
/// context (the span starts a trace of its own), as W3C Trace Context asks.
fn parent(traceparent: Option<&str>) -> Context {
    struct One<'a>(&'a str);
    impl Extractor for One<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            key.eq_ignore_ascii_case(TRACEPARENT).then_some(self.0)
        }
        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT]
        }
    }
    match traceparent.map(str::trim).filter(|v| well_formed(v)) {
        Some(value) => TraceContextPropagator::new().extract(&One(value)),
        None => Context::new(),
    }
}

/// The field widths W3C Trace Context fixes (2, 32, 16 and 2 lower-case hex digits),
/// which the SDK's parser does not check: it would read a 31-digit trace id as a number.
/// The propagator then refuses the values the format forbids (zero ids, version `ff`).
fn well_formed(value: &str) -> bool {
    let widths = [2, 32, 16, 2];
    let fields: Vec<&str> = value.splitn(5, '-').collect();
    fields.len() >= 4
        && fields.iter().zip(widths).all(|(f, w)| {
            f.len() == w
                && f.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A span's `traceparent` value: version 00, trace id, span id, flags.
fn traceparent_of(context: &SpanContext) -> Option<String> {
    context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    })
}

/// True when `context` holds a span (for tests of `parent`).
#[cfg(test)]
fn has_parent(context: &Context) -> bool {
    use opentelemetry::trace::TraceContextExt;
    context.span().span_context().is_valid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn a_valid_traceparent_is_the_parent_and_a_bad_one_is_ignored() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parent(Some(good));
        assert!(has_parent(&cx));
        let span = cx.span();
        assert_eq!(traceparent_of(span.span_context()).as_deref(), Some(good));
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "not a traceparent",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        ] {
            assert!(!has_parent(&parent(Some(bad))), "{bad}");
        }
        assert!(!has_parent(&parent(None)));
    }

    #[test]
    fn while_off_there_are_no_spans() {
        // No test in this binary starts the exporter.
        let span = PublishSpan::start(
            "default",
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(span.traceparent(), None);
    }
}
