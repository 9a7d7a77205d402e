//! Parsed input: names, filters, URLs and headers are validated once, when built, so the
//! rest of the code never re-checks a raw string. Each constructor's error is a sentence
//! meant for the person who sent the value.
//!
//! The lowest layer but for `units`: it imports nothing of Herald's beyond the units it
//! reads durations in. `url.rs` holds the endpoint URL and `address.rs` the address rules
//! it is checked by (which addresses a delivery may never reach, and the networks the
//! configuration lists), so the engine's connector and the create-time check share one copy.

pub mod address;
pub mod auth;
mod payload_filter;
pub mod reach;
mod url;

use std::collections::BTreeMap;

use serde::Serialize;

pub use auth::EndpointAuth;
pub use payload_filter::PayloadFilter;
pub use reach::{CaBundle, CertInfo, ClientCert, EndpointProxy, NoProxy, ProxyUrl};
pub use url::EndpointUrl;

/// A tenant id: lower-case letters, digits, `-` and `_`, up to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<TenantId, String> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(TenantId(s.to_owned()))
        } else {
            Err(format!(
                "tenant id `{s}` must be 1-64 lower-case letters, digits, `-` or `_`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event name such as `job.completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventName(String);

impl EventName {
    pub fn parse(s: &str) -> Result<EventName, String> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
            && !s.starts_with('.')
            && !s.ends_with('.');
        if ok {
            Ok(EventName(s.to_owned()))
        } else {
            Err(format!(
                "event name `{s}` must be 1-128 letters, digits, `.`, `_`, `-` or `:` and not start or end with `.`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The events an endpoint subscribes to: exact names, `*`, or prefix wildcards (`book.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(Vec<String>);

impl EventFilter {
    pub const MAX_PATTERNS: usize = 100;

    pub fn parse(patterns: &[String]) -> Result<EventFilter, String> {
        if patterns.is_empty() {
            return Err("`events` must name at least one event, or `*` for all".into());
        }
        if patterns.len() > Self::MAX_PATTERNS {
            return Err(format!(
                "`events` may hold at most {} patterns",
                Self::MAX_PATTERNS
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(patterns.len());
        for p in patterns {
            let valid = p == "*" || EventName::parse(p.strip_suffix(".*").unwrap_or(p)).is_ok();
            if !valid {
                return Err(format!(
                    "`{p}` is not an event name, `*`, or a prefix wildcard like `book.*`"
                ));
            }
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        Ok(EventFilter(out))
    }

    /// Rebuilds a filter read back from the database (it was validated when stored).
    pub fn from_stored(patterns: Vec<String>) -> EventFilter {
        EventFilter(patterns)
    }

    pub fn matches(&self, event: &str) -> bool {
        self.0.iter().any(|p| pattern_matches(p, event))
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

fn pattern_matches(pattern: &str, event: &str) -> bool {
    if pattern == "*" {
        // Herald's own events (`herald.endpoint.disabled`, …) go only to endpoints that
        // ask for them by name or with `herald.*`.
        return !event.starts_with("herald.");
    }
    match pattern.strip_suffix(".*") {
        // `book.*` matches `book.completed` and `book.chapter.done`, not `book` or `bookshelf.x`.
        Some(prefix) => event
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
        None => pattern == event,
    }
}

/// Extra request headers of an endpoint. Headers that Herald itself sets (content type,
/// signatures, framing) cannot be overridden, or a typo would break every delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraHeaders(BTreeMap<String, String>);

impl ExtraHeaders {
    pub const MAX: usize = 20;

    pub fn parse(map: BTreeMap<String, String>) -> Result<ExtraHeaders, String> {
        if map.len() > Self::MAX {
            return Err(format!("at most {} extra headers", Self::MAX));
        }
        for (name, value) in &map {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("`{name}` is not a valid header name"));
            }
            if http::HeaderValue::from_str(value).is_err() || value.len() > 4096 {
                return Err(format!("header `{name}` has an invalid value"));
            }
            let lower = name.to_ascii_lowercase();
            let reserved = matches!(
                lower.as_str(),
                "content-type"
                    | "content-length"
                    | "host"
                    | "transfer-encoding"
                    | "connection"
                    | "user-agent"
            ) || lower.starts_with("webhook-");
            if reserved {
                return Err(format!(
                    "header `{name}` is set by Herald and cannot be overridden"
                ));
            }
        }
        Ok(ExtraHeaders(map))
    }

    pub fn from_stored(map: BTreeMap<String, String>) -> ExtraHeaders {
        ExtraHeaders(map)
    }

    pub fn map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Header values are write-only: they often carry a receiver's credentials, so the API
    /// and the pages show each name with this in place of its value.
    pub const MASKED: &'static str = "********";

    /// The names with masked values, as shown.
    pub fn masked(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        map.keys()
            .map(|k| (k.clone(), Self::MASKED.to_owned()))
            .collect()
    }

    /// A masked value sent back (an edit form resubmitted, a GET-modify-PATCH) keeps the
    /// value stored under that name; a masked value for a header not stored is an error.
    pub fn keep_masked(mut self, current: &BTreeMap<String, String>) -> Result<Self, String> {
        for (name, value) in self.0.iter_mut() {
            if value == Self::MASKED {
                let stored = current
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone());
                *value = stored.ok_or_else(|| {
                    format!(
                        "header `{name}`: `{}` can only keep a stored value",
                        Self::MASKED
                    )
                })?;
            }
        }
        Ok(self)
    }

    pub fn has_masked(&self) -> bool {
        self.0.values().any(|v| v == Self::MASKED)
    }
}

/// The state of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    Active,
    Paused,
    Disabled,
}

impl EndpointStatus {
    pub fn parse(s: &str) -> Result<EndpointStatus, String> {
        match s {
            "active" => Ok(EndpointStatus::Active),
            "paused" => Ok(EndpointStatus::Paused),
            "disabled" => Ok(EndpointStatus::Disabled),
            _ => Err(format!(
                "status must be active, paused or disabled, not `{s}`"
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            EndpointStatus::Active => "active",
            EndpointStatus::Paused => "paused",
            EndpointStatus::Disabled => "disabled",
        }
    }
}

/// How an endpoint's deliveries are ordered: `parallel` (up to `endpoint_concurrency` in
/// flight, due order) or `fifo` (one at a time, in publish order; a failing head holds the
/// rest back until it succeeds or fails finally).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    #[default]
    Parallel,
    Fifo,
}

impl Ordering {
    pub fn parse(s: &str) -> Result<Ordering, String> {
        match s {
            "parallel" => Ok(Ordering::Parallel),
            "fifo" => Ok(Ordering::Fifo),
            _ => Err(format!("ordering must be parallel or fifo, not `{s}`")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Ordering::Parallel => "parallel",
            Ordering::Fifo => "fifo",
        }
    }
}

/// How an endpoint gets its events: `push` (Herald POSTs them to its URL) or `poll` (it has
/// no URL; the consumer reads them from `GET /api/v1/webhooks/{id}/poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    #[default]
    Push,
    Poll,
}

impl EndpointKind {
    pub fn parse(s: &str) -> Result<EndpointKind, String> {
        match s {
            "push" => Ok(EndpointKind::Push),
            "poll" => Ok(EndpointKind::Poll),
            _ => Err(format!("type must be push or poll, not `{s}`")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            EndpointKind::Push => "push",
            EndpointKind::Poll => "poll",
        }
    }
}

/// An endpoint's own retry schedule: a comma list (`"10s,1m,10m"`) or a JSON list of the
/// same durations, at most 20 waits of at most 7 days each; empty means one attempt only.
pub fn parse_retry_schedule(v: &serde_json::Value) -> Result<Vec<std::time::Duration>, String> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("expected durations like \"10s\"")?
            .join(","),
        _ => return Err("expected a comma list like \"10s,1m,10m\" or a list of durations".into()),
    };
    let schedule = crate::units::parse_schedule(text.trim())?;
    if schedule.len() > 20 {
        return Err("at most 20 retries".into());
    }
    if schedule
        .iter()
        .any(|d| *d > std::time::Duration::from_secs(7 * 86_400))
    {
        return Err("each wait is at most 7d".into());
    }
    Ok(schedule)
}

/// An endpoint's own request timeout: from 100ms to 5m.
pub fn parse_request_timeout(v: &str) -> Result<std::time::Duration, String> {
    let d = crate::units::parse_duration(v.trim())?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(300) {
        return Err(format!("must be from 100ms to 5m, not `{v}`"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(p: &[&str]) -> EventFilter {
        EventFilter::parse(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn filters_match_exact_star_and_prefix() {
        let f = filter(&["job.completed", "book.*"]);
        assert!(f.matches("job.completed"));
        assert!(!f.matches("job.failed"));
        assert!(f.matches("book.completed"));
        assert!(f.matches("book.chapter.done"));
        assert!(!f.matches("book"));
        assert!(!f.matches("bookshelf.x"));
        assert!(filter(&["*"]).matches("anything.at.all"));
        // Herald's own events are opt-in.
        assert!(!filter(&["*"]).matches("herald.endpoint.disabled"));
        assert!(filter(&["herald.*"]).matches("herald.endpoint.disabled"));
        assert!(filter(&["herald.delivery.failed"]).matches("herald.delivery.failed"));
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in [
            vec![],
            vec!["".to_string()],
            vec!["a b".to_string()],
            vec!["*.x".to_string()],
        ] {
            assert!(EventFilter::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reserved_headers() {
        let mut m = BTreeMap::new();
        m.insert("X-Team".to_string(), "a".to_string());
        assert!(ExtraHeaders::parse(m.clone()).is_ok());
        m.insert("Content-Type".to_string(), "text/plain".to_string());
        assert!(ExtraHeaders::parse(m).is_err());
    }
}
