//! Turns a published body into the event Herald stores.
//!
//! The payload must be a JSON object with a string `event`, not named like Herald's own
//! operational events (`herald.…`, signed and sent like any other, so a receiver must be
//! able to trust that name); `timestamp` is added when absent. The stored body is the canonical serialisation (`canonical_json`), computed once
//! here so that every attempt sends, and every receiver verifies, the same bytes.

use serde_json::Value;

use crate::clock;
use crate::domain::EventName;
use crate::wire::canonical_json::to_js_string;

/// An event ready to store: its type and the canonical body every attempt will send.
#[derive(Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub body: String,
    pub idempotency_key: Option<String>,
    /// The W3C `traceparent` of the publish's span (`engine::telemetry`), kept with the
    /// event so each attempt's span is its child; `None` while tracing is off.
    pub traceparent: Option<String>,
}

/// A published payload that failed validation, with the code the API answers.
#[derive(Debug)]
pub struct PayloadError {
    pub code: &'static str,
    pub message: String,
}

fn error(code: &'static str, message: impl Into<String>) -> PayloadError {
    PayloadError {
        code,
        message: message.into(),
    }
}

/// The prefix of Herald's own event names (`store::operational`), refused on publish.
pub const RESERVED_PREFIX: &str = "herald.";

/// Parses raw bytes as one event payload.
pub fn from_bytes(bytes: &[u8], now_ms: i64) -> Result<NewEvent, PayloadError> {
    let value: Value = crate::wire::canonical_json::parse(bytes)
        .map_err(|e| error("invalid_json", format!("the body is not valid JSON: {e}")))?;
    from_value(value, now_ms)
}

/// Validates an already parsed payload (one item of a batch) and serialises it.
pub fn from_value(value: Value, now_ms: i64) -> Result<NewEvent, PayloadError> {
    let Value::Object(mut map) = value else {
        return Err(error(
            "invalid_payload",
            "the payload must be a JSON object",
        ));
    };
    let event_type = match map.get("event") {
        Some(Value::String(s)) if s.starts_with(RESERVED_PREFIX) => {
            return Err(error(
                "reserved_event",
                format!(
                "event names starting with `{RESERVED_PREFIX}` are Herald's own operational events"
            ),
            ))
        }
        Some(Value::String(s)) => EventName::parse(s)
            .map_err(|e| error("invalid_payload", e))?
            .as_str()
            .to_owned(),
        Some(_) => return Err(error("invalid_payload", "`event` must be a string")),
        None => {
            return Err(error(
                "invalid_payload",
                "the payload needs an `event` field naming its type, e.g. \"job.completed\"",
            ))
        }
    };
    if !map.contains_key("timestamp") {
        map.insert(
            "timestamp".into(),
            Value::String(clock::rfc3339_seconds(now_ms)),
        );
    }
    Ok(NewEvent {
        event_type,
        body: to_js_string(&Value::Object(map)),
        idempotency_key: None,
        traceparent: None,
    })
}

/// Validates an `Idempotency-Key` header value.
pub fn idempotency_key(raw: &str) -> Result<String, PayloadError> {
    let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(error(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn herald_s_own_names_are_reserved() {
        let e = from_bytes(br#"{"event":"herald.endpoint.disabled"}"#, 0).unwrap_err();
        assert_eq!(e.code, "reserved_event");
        assert!(from_bytes(br#"{"event":"heraldry.x"}"#, 0).is_ok());
    }

    #[test]
    fn adds_timestamp_and_keeps_order() {
        let e = from_bytes(
            br#"{"event":"job.completed","data":{"b":1,"a":2}}"#,
            1_734_948_000_000,
        )
        .unwrap();
        assert_eq!(e.event_type, "job.completed");
        assert_eq!(
            e.body,
            r#"{"event":"job.completed","data":{"b":1,"a":2},"timestamp":"2024-12-23T10:00:00Z"}"#
        );
    }

    #[test]
    fn keeps_given_timestamp() {
        let e = from_bytes(br#"{"timestamp":"x","event":"a"}"#, 0).unwrap();
        assert_eq!(e.body, r#"{"timestamp":"x","event":"a"}"#);
    }

    #[test]
    fn refuses_bad_payloads() {
        for (body, code) in [
            (&b"[1]"[..], "invalid_payload"),
            (b"{\"event\": 5}", "invalid_payload"),
            (b"{\"data\": 5}", "invalid_payload"),
            (b"{\"event\": \"a b\"}", "invalid_payload"),
            (b"{\"event\": ", "invalid_json"),
        ] {
            assert_eq!(from_bytes(body, 0).unwrap_err().code, code);
        }
    }
}
