//! The two spans Herald exports: a publish (the API's single and batch publish) and a
//! delivery attempt (a worker's request to an endpoint).
//!
//! Each is an `Option` inside: `None` while tracing is off, so the callers need no `if`.
//! Attributes are ids, types, counts, the attempt number and the HTTP status; never the
//! body, the endpoint's URL (it may carry a token), its headers or an error text.

use std::time::SystemTime;

use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::Span;

use super::{parent, traceparent_of, tracer};
use crate::store::{AttemptRecord, Claimed, Published, Verdict};

/// The span of one publish request, from its first byte read to its commit.
pub struct PublishSpan {
    span: Option<Span>,
    traceparent: Option<String>,
}

impl PublishSpan {
    /// Opens the span under the producer's `traceparent` (if any) for `tenant`.
    pub fn start(tenant: &str, incoming: Option<&str>) -> PublishSpan {
        let Some(tracer) = tracer() else {
            return PublishSpan {
                span: None,
                traceparent: None,
            };
        };
        let span = tracer
            .span_builder("publish")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("herald.tenant", tenant.to_owned())])
            .start_with_context(tracer, &parent(incoming));
        PublishSpan {
            traceparent: traceparent_of(span.span_context()),
            span: Some(span),
        }
    }

    /// What to store with the events: this span's `traceparent`.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Ends the span with what was published, or with the HTTP status that refused it.
    pub fn end(self, outcome: Result<&[Published], u16>) {
        let Some(mut span) = self.span else {
            return;
        };
        match outcome {
            Ok(published) => {
                span.set_attributes(published_attributes(published));
                span.set_attribute(KeyValue::new("http.response.status_code", 202i64));
            }
            Err(status) => {
                span.set_attribute(KeyValue::new("http.response.status_code", status as i64));
                span.set_status(Status::error(format!("HTTP {status}")));
            }
        }
        span.end();
    }
}

/// One event: its id and type; a batch: the lists, and how many.
fn published_attributes(published: &[Published]) -> Vec<KeyValue> {
    let replayed = published.iter().all(|p| p.replayed);
    let deliveries: usize = published.iter().map(|p| p.deliveries).sum();
    let mut out = vec![
        KeyValue::new("herald.event.count", published.len() as i64),
        KeyValue::new("herald.deliveries", deliveries as i64),
        KeyValue::new("herald.replayed", replayed),
    ];
    match published {
        [one] => {
            out.push(KeyValue::new("herald.event.id", one.id.clone()));
            out.push(KeyValue::new("herald.event.type", one.event.clone()));
        }
        many => {
            let list = |f: fn(&Published) -> &String| {
                let mut values: Vec<StringValue> = Vec::with_capacity(many.len());
                for p in many {
                    let v = StringValue::from(f(p).clone());
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
                Value::Array(Array::String(values))
            };
            out.push(KeyValue::new("herald.event.ids", list(|p| &p.id)));
            out.push(KeyValue::new("herald.event.types", list(|p| &p.event)));
        }
    }
    out
}

/// The span of one attempt to send one delivery.
pub struct AttemptSpan {
    span: Option<Span>,
    traceparent: Option<String>,
}

impl AttemptSpan {
    /// Opens the span as a child of the publish that stored `d`'s event (a span of its own
    /// when the event was published with tracing off).
    pub fn start(d: &Claimed) -> AttemptSpan {
        let Some(tracer) = tracer() else {
            return AttemptSpan {
                span: None,
                traceparent: None,
            };
        };
        let span = tracer
            .span_builder("attempt")
            .with_kind(SpanKind::Client)
            .with_start_time(SystemTime::now())
            .with_attributes([
                KeyValue::new("herald.tenant", d.tenant_id.clone()),
                KeyValue::new("herald.endpoint.id", d.endpoint_id),
                KeyValue::new("herald.delivery.id", d.delivery_id),
                KeyValue::new("herald.event.id", d.event_id.clone()),
                KeyValue::new("herald.attempt", d.attempts as i64 + 1),
                KeyValue::new("http.request.method", "POST"),
            ])
            .start_with_context(tracer, &parent(d.traceparent.as_deref()));
        AttemptSpan {
            traceparent: traceparent_of(span.span_context()),
            span: Some(span),
        }
    }

    /// The `traceparent` header the receiver gets: this span's.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Ends the span with the attempt's outcome.
    pub fn end(self, r: &AttemptRecord) {
        let Some(mut span) = self.span else {
            return;
        };
        if let Some(status) = r.status_code {
            span.set_attribute(KeyValue::new("http.response.status_code", status as i64));
        }
        span.set_attribute(KeyValue::new("herald.attempt.duration_ms", r.duration_ms));
        let verdict = match r.verdict {
            Verdict::Succeeded => "succeeded",
            Verdict::RetryAt(_) => "retry",
            Verdict::Failed => "failed",
            Verdict::Cancelled => "cancelled",
            Verdict::Unsent => "failed",
        };
        span.set_attribute(KeyValue::new("herald.verdict", verdict));
        if !matches!(r.verdict, Verdict::Succeeded | Verdict::Cancelled) {
            // The status alone: an error text can quote the endpoint's URL.
            span.set_status(Status::error(match r.status_code {
                Some(s) => format!("HTTP {s}"),
                None => "no response".to_owned(),
            }));
        }
        span.end();
    }
}
