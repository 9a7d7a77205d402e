//! `herald listen`: forwards a poll endpoint's deliveries to a local URL, for development
//! (a receiver on a laptop that Herald cannot reach), with no relay in between.
//!
//! It polls `GET /api/v1/webhooks/{id}/poll` with a tenant key, POSTs each item to the
//! forward URL with the item's signature headers and its body byte for byte (so the
//! receiver's signature check is the one it runs in production), and acknowledges a
//! delivery — by passing its id as the next poll's cursor — only after the receiver
//! answered 2xx. Items are forwarded in order; the first one that fails stops the batch, so
//! the cursor never passes a delivery the receiver did not take, and it is sent again after
//! a pause. One line per forwarded delivery goes to stdout.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What `herald listen` is told on its command line.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Herald's base URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// The poll endpoint's id.
    pub endpoint: i64,
    /// Where each delivery is POSTed.
    pub forward: String,
    /// A tenant key (or the admin token) that may read the endpoint.
    pub key: String,
    /// The pause after a poll that found nothing.
    pub interval: Duration,
}

/// One item of a poll page, as `src/api/poll.rs` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct PolledItem {
    pub delivery_id: i64,
    pub event_id: String,
    pub event: String,
    pub body: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PollPage {
    data: Vec<PolledItem>,
}

/// How one forward went: the receiver's status, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Failed(String),
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        matches!(self, Outcome::Status(s) if (200..300).contains(s))
    }
}

/// The cursor after a batch: the last delivery of the run of accepted ones from the start
/// (`outcomes` stops at the first failure), or the previous cursor when none was.
pub fn next_cursor(previous: Option<i64>, forwarded: &[(i64, Outcome)]) -> Option<i64> {
    forwarded
        .iter()
        .take_while(|(_, outcome)| outcome.accepted())
        .last()
        .map(|(id, _)| *id)
        .or(previous)
}

/// The line printed for one forwarded delivery.
pub fn delivery_line(item: &PolledItem, outcome: &Outcome, took: Duration) -> String {
    let result = match outcome {
        Outcome::Status(s) if outcome.accepted() => format!("{s} (acknowledged)"),
        Outcome::Status(s) => format!("{s} (not acknowledged; sent again)"),
        Outcome::Failed(why) => format!("failed: {why} (not acknowledged; sent again)"),
    };
    format!(
        "delivery {} {} {} -> {} in {} ms",
        item.delivery_id,
        item.event,
        item.event_id,
        result,
        took.as_millis()
    )
}

/// The pause after the receiver refused a delivery: 1 s, doubling to 30 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30))
}

/// Runs until killed. Returns only on an answer that retrying cannot fix (a wrong key, no
/// such endpoint, a push endpoint).
pub fn run(options: &ListenOptions) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let poll_url = format!(
        "{}/api/v1/webhooks/{}/poll",
        options.server.trim_end_matches('/'),
        options.endpoint
    );
    eprintln!(
        "herald listen: forwarding poll endpoint {} ({}) to {}",
        options.endpoint, options.server, options.forward
    );
    let mut cursor: Option<i64> = None;
    let mut failures = 0u32;
    loop {
        let items = match poll(&agent, &poll_url, &options.key, cursor) {
            Ok(items) => items,
            Err(PollError::Fatal(message)) => return Err(message),
            Err(PollError::Retry(message)) => {
                eprintln!("herald listen: {message}; polling again");
                std::thread::sleep(options.interval.max(Duration::from_secs(1)));
                continue;
            }
        };
        if items.is_empty() {
            std::thread::sleep(options.interval);
            continue;
        }
        let forwarded = forward_batch(&agent, &options.forward, &items);
        let refused = forwarded.iter().any(|(_, o)| !o.accepted());
        cursor = next_cursor(cursor, &forwarded);
        if refused {
            std::thread::sleep(backoff(failures));
            failures += 1;
        } else {
            // Poll again at once: that poll's cursor acknowledges this batch.
            failures = 0;
        }
    }
}

/// Forwards items in order until one is refused; prints a line for each.
fn forward_batch(agent: &ureq::Agent, url: &str, items: &[PolledItem]) -> Vec<(i64, Outcome)> {
    let mut forwarded = Vec::new();
    for item in items {
        let started = Instant::now();
        let outcome = forward(agent, url, item);
        println!("{}", delivery_line(item, &outcome, started.elapsed()));
        let _ = std::io::stdout().flush();
        let accepted = outcome.accepted();
        forwarded.push((item.delivery_id, outcome));
        if !accepted {
            break;
        }
    }
    forwarded
}

/// One POST: the item's headers as Herald signed them, and its body's exact bytes.
fn forward(agent: &ureq::Agent, url: &str, item: &PolledItem) -> Outcome {
    let mut request = agent.post(url);
    if !item
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in &item.headers {
        request = request.header(name, value);
    }
    match request.send(item.body.as_bytes()) {
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

enum PollError {
    /// Worth another try (Herald restarting, a network blip, 5xx, 429).
    Retry(String),
    /// The key, the endpoint or its kind is wrong: retrying cannot help.
    Fatal(String),
}

fn poll(
    agent: &ureq::Agent,
    url: &str,
    key: &str,
    cursor: Option<i64>,
) -> Result<Vec<PolledItem>, PollError> {
    let mut request = agent
        .get(url)
        .header("authorization", format!("Bearer {key}"));
    if let Some(c) = cursor {
        request = request.query("cursor", c.to_string());
    }
    let mut response = request
        .call()
        .map_err(|e| PollError::Retry(format!("cannot reach {url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| PollError::Retry(format!("reading the poll answer: {e}")))?;
    match status {
        200 => serde_json::from_str::<PollPage>(&text)
            .map(|page| page.data)
            .map_err(|e| PollError::Fatal(format!("unexpected poll answer ({e}): {text}"))),
        429 | 500..=599 => Err(PollError::Retry(format!("{url} answered {status}"))),
        _ => Err(PollError::Fatal(format!(
            "{url} answered {status}: {text}{}",
            hint(status)
        ))),
    }
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => " (pass the tenant's API key with --key or HERALD_API_KEY)",
        404 => " (no such endpoint for this key's tenant)",
        409 => " (`herald listen` reads poll endpoints: create one with \"type\": \"poll\")",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_stops_before_the_first_refused_delivery() {
        let ok = Outcome::Status(204);
        let refused = Outcome::Status(500);
        assert_eq!(next_cursor(None, &[]), None);
        assert_eq!(next_cursor(Some(3), &[]), Some(3));
        assert_eq!(
            next_cursor(Some(3), &[(4, ok.clone()), (5, ok.clone())]),
            Some(5)
        );
        assert_eq!(
            next_cursor(Some(3), &[(4, ok.clone()), (5, refused.clone())]),
            Some(4)
        );
        assert_eq!(next_cursor(Some(3), &[(4, refused)]), Some(3));
        assert_eq!(
            next_cursor(None, &[(4, Outcome::Failed("refused".into()))]),
            None
        );
        assert!(!Outcome::Status(302).accepted());
    }

    #[test]
    fn a_line_names_the_delivery_and_whether_it_was_acknowledged() {
        let item = PolledItem {
            delivery_id: 9,
            event_id: "evt_1".into(),
            event: "order.created".into(),
            body: "{}".into(),
            headers: Default::default(),
        };
        let line = delivery_line(&item, &Outcome::Status(200), Duration::from_millis(12));
        assert_eq!(
            line,
            "delivery 9 order.created evt_1 -> 200 (acknowledged) in 12 ms"
        );
        let line = delivery_line(&item, &Outcome::Status(503), Duration::ZERO);
        assert!(
            line.contains("503 (not acknowledged; sent again)"),
            "{line}"
        );
    }

    #[test]
    fn the_pause_after_a_refusal_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
