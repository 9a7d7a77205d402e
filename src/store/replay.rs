//! Replay: the deliveries an endpoint missed, created after the fact (issue 21, item 1).
//!
//! An event gets its deliveries when it is published, to the endpoints that exist and are
//! not disabled then. One published while its endpoint was disabled, or before the endpoint
//! existed, never reaches it; a replay walks the tenant's events of a time window, oldest
//! first, and creates a pending delivery for each that the endpoint matches now (its
//! `events` patterns and payload filter, `fanout::Subscriber`) and has no delivery for yet.
//! An event that has one (sent, failed, cancelled or waiting) is never given a second, so a
//! second replay of the same window creates nothing; `recover` and a delivery's retry are
//! the way to send those again.
//!
//! The walk is the one rule both backends follow (`run`); a backend supplies the reads and
//! the insert (`ReplayRows`) inside one transaction of its own, so the deliveries one call
//! creates commit together or not at all, and the check that an event has no delivery and
//! the insert of its delivery cannot be split by a concurrent replay of the same endpoint.
//!
//! Bounded per call: at most `limit` deliveries (at most `MAX_LIMIT`) are created, and at
//! most `SCAN` stored events are read, so one call holds the writer (or a transaction) for a
//! bounded time; `next` continues where it stopped. Events are walked by
//! `seq`, the order they were stored in; `created_at` follows it up to clock jitter between
//! writers, so the walk starts `SLACK` before `since` and stops once it sees an event `SLACK`
//! after `until`, and each event's own `created_at` decides whether it is in the window.
//!
//! `webhook.test` events are left out: "send test" stores one for one endpoint, and it was
//! never meant for the others.

use super::fanout::{Payload, Subscriber};
use super::{ReplayQuery, Replayed, Result};

/// The most deliveries one call creates (the default, too).
pub const MAX_LIMIT: usize = 10_000;
/// Event ids an answer lists, oldest first.
pub const SAMPLE: usize = 10;
/// Stored events one call reads at most, delivered ones included.
pub const SCAN: usize = 100_000;
/// Rows read per round trip; small, since a row may carry a body (up to `max_payload`).
const CHUNK: usize = 200;
/// How far `created_at` may run against `seq` between two writers (clock jitter).
const SLACK: i64 = 60_000;
/// Stored only for the endpoint it was sent to (`service::send_test`).
pub const TEST_EVENT: &str = "webhook.test";

/// One stored event as the walk reads it.
pub struct Row {
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub created_at: i64,
    /// Whether the endpoint has a delivery of it already.
    pub delivered: bool,
    /// The body, when it was asked for and the event has no delivery yet.
    pub body: Option<String>,
}

/// What a backend supplies, all in the one transaction of the call.
pub trait ReplayRows {
    /// The `seq` of the first event of any tenant created at or after `at`, if any.
    fn first_seq_at(&mut self, at: i64) -> Result<Option<i64>>;
    /// Up to `n` events of the tenant after `after`, by `seq`, each with whether the
    /// endpoint has a delivery of it; bodies only when `bodies` (and not delivered).
    fn read(&mut self, after: i64, n: usize, bodies: bool) -> Result<Vec<Row>>;
    /// One pending delivery to the endpoint for each event, due now.
    fn insert(&mut self, seqs: &[i64], now: i64) -> Result<()>;
    /// The tenant's oldest event still stored (id, created_at).
    fn oldest(&mut self) -> Result<Option<(String, i64)>>;
}

/// Walks the window and creates (or, for a dry run, only counts) the missed deliveries.
pub fn run(
    rows: &mut impl ReplayRows,
    subscriber: &Subscriber,
    q: &ReplayQuery,
    now: i64,
) -> Result<Replayed> {
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let scan_max = q.scan.clamp(1, SCAN);
    let oldest = rows.oldest()?;
    let mut after = match q.after {
        Some(after) => after,
        None => match rows.first_seq_at(q.since.saturating_sub(SLACK))? {
            Some(first) => first - 1,
            None => {
                return Ok(Replayed {
                    oldest,
                    ..Replayed::default()
                })
            }
        },
    };
    // Bodies are read only when a payload filter needs them.
    let bodies = subscriber.payload_filter.is_some();
    let mut scanned = 0;
    let mut matched: Vec<(i64, String)> = Vec::new();
    let finished = 'walk: loop {
        let want = CHUNK.min(scan_max - scanned);
        let chunk = rows.read(after, want, bodies)?;
        let short = chunk.len() < want;
        for row in chunk {
            if row.created_at >= q.until.saturating_add(SLACK) {
                break 'walk true;
            }
            after = row.seq;
            scanned += 1;
            let in_window = (q.since..q.until).contains(&row.created_at);
            if row.delivered || !in_window || row.event_type == TEST_EVENT {
                continue;
            }
            let mut payload = Payload::new(row.body.as_deref().unwrap_or(""));
            if subscriber.matches(&row.event_type, &mut payload) {
                matched.push((row.seq, row.id));
                if matched.len() == limit {
                    break 'walk false;
                }
            }
        }
        if short {
            break true;
        }
        if scanned >= scan_max {
            break false;
        }
    };
    if !q.dry_run && !matched.is_empty() {
        let seqs: Vec<i64> = matched.iter().map(|(seq, _)| *seq).collect();
        rows.insert(&seqs, now)?;
    }
    Ok(Replayed {
        count: matched.len(),
        event_ids: matched.into_iter().take(SAMPLE).map(|(_, id)| id).collect(),
        next: (!finished).then_some(after),
        oldest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventFilter, PayloadFilter};
    use std::sync::Arc;

    /// Events in memory: (seq, type, created_at, delivered, body).
    struct Memory {
        events: Vec<(i64, &'static str, i64, bool, String)>,
        inserted: Vec<i64>,
        reads: usize,
    }

    impl ReplayRows for Memory {
        fn first_seq_at(&mut self, at: i64) -> Result<Option<i64>> {
            Ok(self.events.iter().find(|e| e.2 >= at).map(|e| e.0))
        }
        fn read(&mut self, after: i64, n: usize, bodies: bool) -> Result<Vec<Row>> {
            self.reads += 1;
            Ok(self
                .events
                .iter()
                .filter(|e| e.0 > after)
                .take(n)
                .map(|e| Row {
                    seq: e.0,
                    id: format!("evt_{}", e.0),
                    event_type: e.1.into(),
                    created_at: e.2,
                    delivered: e.3,
                    body: (bodies && !e.3).then(|| e.4.clone()),
                })
                .collect())
        }
        fn insert(&mut self, seqs: &[i64], _now: i64) -> Result<()> {
            self.inserted.extend_from_slice(seqs);
            Ok(())
        }
        fn oldest(&mut self) -> Result<Option<(String, i64)>> {
            Ok(self.events.first().map(|e| (format!("evt_{}", e.0), e.2)))
        }
    }

    fn memory(n: i64) -> Memory {
        Memory {
            events: (1..=n)
                .map(|i| {
                    let kind = if i % 2 == 0 {
                        "order.paid"
                    } else {
                        "user.created"
                    };
                    (i, kind, i * 1_000, i % 5 == 0, format!(r#"{{"n":{i}}}"#))
                })
                .collect(),
            inserted: Vec::new(),
            reads: 0,
        }
    }

    fn query(since: i64, until: i64, limit: usize) -> ReplayQuery {
        ReplayQuery {
            since,
            until,
            after: None,
            limit,
            scan: SCAN,
            dry_run: false,
        }
    }

    fn subscriber(pattern: &str, filter: Option<&str>) -> Subscriber {
        Subscriber {
            endpoint_id: 1,
            events: EventFilter::parse(&[pattern.to_owned()]).unwrap(),
            payload_filter: filter.map(|f| Arc::new(PayloadFilter::parse(f).unwrap())),
        }
    }

    #[test]
    fn the_window_the_patterns_and_the_filter_decide() {
        let mut m = memory(30);
        // Window [5 s, 20 s): events 5..=19; order.paid: even; not delivered: not % 5.
        let got = run(
            &mut m,
            &subscriber("order.*", Some("$.n > 10")),
            &query(5_000, 20_000, 100),
            0,
        )
        .unwrap();
        assert_eq!(m.inserted, [12, 14, 16, 18]);
        assert_eq!(got.count, 4);
        assert_eq!(got.event_ids, ["evt_12", "evt_14", "evt_16", "evt_18"]);
        assert_eq!(got.next, None);
        assert_eq!(got.oldest, Some(("evt_1".into(), 1_000)));
    }

    #[test]
    fn a_bounded_call_hands_on_a_cursor_that_continues() {
        let mut m = memory(30);
        let sub = subscriber("*", None);
        let mut q = query(0, 100_000, 7);
        let mut all = Vec::new();
        loop {
            let got = run(&mut m, &sub, &q, 0).unwrap();
            assert!(got.count <= 7);
            match got.next {
                Some(next) => q.after = Some(next),
                None => break,
            }
            all.push(got.count);
        }
        // 30 events, 6 delivered already: 24 to create, 7 a call.
        let expected: Vec<i64> = (1..=30).filter(|i| i % 5 != 0).collect();
        assert_eq!(m.inserted, expected);
        assert_eq!(all, [7, 7, 7]);
    }

    #[test]
    fn a_dry_run_counts_and_creates_nothing_and_reads_no_body_without_a_filter() {
        let mut m = memory(10);
        let mut q = query(0, 100_000, 100);
        q.dry_run = true;
        let got = run(&mut m, &subscriber("order.paid", None), &q, 0).unwrap();
        assert_eq!((got.count, m.inserted.len()), (4, 0));
        assert_eq!(got.event_ids, ["evt_2", "evt_4", "evt_6", "evt_8"]);
    }

    #[test]
    fn the_scan_bound_stops_a_call_over_delivered_events() {
        let mut m = memory(1_000);
        for e in m.events.iter_mut() {
            e.3 = e.0 <= 900;
        }
        let mut q = query(0, 10_000_000, 1_000);
        q.scan = 300;
        let got = run(&mut m, &subscriber("*", None), &q, 0).unwrap();
        assert_eq!((got.count, got.next), (0, Some(300)));
        q.after = got.next;
        q.scan = SCAN;
        let got = run(&mut m, &subscriber("*", None), &q, 0).unwrap();
        assert_eq!((got.count, got.next), (100, None));
    }

    #[test]
    fn the_walk_stops_past_the_window_and_skips_test_events() {
        let mut m = memory(2_000);
        m.events[2].1 = TEST_EVENT;
        let got = run(&mut m, &subscriber("*", None), &query(0, 5_000, 100), 0).unwrap();
        assert_eq!(m.inserted, [1, 2, 4]);
        assert_eq!(got.next, None);
        assert!(m.reads <= 1, "{} reads for a window of 5 events", m.reads);
    }
}
