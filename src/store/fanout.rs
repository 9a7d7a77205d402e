//! Which endpoints an event goes to: the one rule that both backends' publish and replay
//! apply, so a backend only reads the subscribers and writes the deliveries it is told to.
//!
//! A subscriber is an endpoint's id, its `events` patterns and its compiled payload filter
//! (`domain::PayloadFilter`). The event type is matched first (a string comparison); the
//! payload is parsed only when a subscriber whose patterns match has a filter, and then once
//! for all of them (`Payload`), so a tenant without filters pays nothing for the feature and
//! one with filters pays one parse per event plus one evaluation per (event, filtered
//! endpoint).

use std::sync::Arc;

use serde_json::Value;

use crate::domain::{EventFilter, PayloadFilter};

/// An endpoint as the fan-out sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub endpoint_id: i64,
    pub events: EventFilter,
    /// Shared, not copied: the compiled filter lives in the backend's subscription cache.
    pub payload_filter: Option<Arc<PayloadFilter>>,
}

impl Subscriber {
    /// An endpoint as it is now (a replay matches the window against its current settings).
    pub fn of(endpoint: &crate::store::Endpoint) -> Subscriber {
        Subscriber {
            endpoint_id: endpoint.id,
            events: endpoint.settings.filter.clone(),
            payload_filter: endpoint.settings.payload_filter.clone().map(Arc::new),
        }
    }

    /// Whether an event of `event_type` with this payload goes to the endpoint.
    pub fn matches(&self, event_type: &str, payload: &mut Payload<'_>) -> bool {
        if !self.events.matches(event_type) {
            return false;
        }
        match &self.payload_filter {
            None => true,
            Some(filter) => payload.wrapped().is_some_and(|p| filter.matches(p)),
        }
    }
}

/// An event's stored body, parsed for the payload filters at most once, and only when one
/// asks.
pub struct Payload<'a> {
    body: &'a str,
    parsed: Option<Option<Value>>,
}

impl<'a> Payload<'a> {
    pub fn new(body: &'a str) -> Payload<'a> {
        Payload { body, parsed: None }
    }

    fn wrapped(&mut self) -> Option<&Value> {
        let body = self.body;
        self.parsed
            .get_or_insert_with(|| PayloadFilter::wrap(body))
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(pattern: &str, filter: Option<&str>) -> Subscriber {
        Subscriber {
            endpoint_id: 1,
            events: EventFilter::parse(&[pattern.to_owned()]).unwrap(),
            payload_filter: filter.map(|f| Arc::new(PayloadFilter::parse(f).unwrap())),
        }
    }

    #[test]
    fn the_patterns_and_the_filter_must_both_match() {
        let body = r#"{"event":"order.paid","data":{"amount":1500}}"#;
        let big = subscriber("order.*", Some("$.data.amount > 1000"));
        let small = subscriber("order.*", Some("$.data.amount < 1000"));
        let other = subscriber("user.*", Some("$.data.amount > 1000"));
        let plain = subscriber("*", None);
        let mut payload = Payload::new(body);
        assert!(big.matches("order.paid", &mut payload));
        assert!(!small.matches("order.paid", &mut payload));
        assert!(!other.matches("order.paid", &mut payload));
        assert!(plain.matches("order.paid", &mut payload));
    }

    #[test]
    fn the_body_is_parsed_only_when_a_filter_asks() {
        let plain = subscriber("*", None);
        let other = subscriber("user.*", Some("$.a"));
        let mut payload = Payload::new("not json");
        assert!(plain.matches("order.paid", &mut payload));
        assert!(!other.matches("order.paid", &mut payload));
        assert!(payload.parsed.is_none());
        // A body that is not JSON (none stored is) passes no filter.
        assert!(!subscriber("*", Some("$.a")).matches("order.paid", &mut payload));
    }
}
