//! The circuit breaker on the manual clock (issue 19, item 3): an endpoint failing half its
//! requests keeps flowing and its backlog drains, while a dead one gets only probes, and
//! once a probe succeeds its concurrency doubles back up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald::config::Config;

use crate::common::{Receiver, Reply};
use crate::{config, Rig, TENANT};

const SECOND: Duration = Duration::from_secs(1);

/// A fair coin for the `n`-th request, the same every run (a splitmix64 step).
fn heads(n: usize) -> bool {
    let mut z = (n as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & 1 == 1
}

/// Retries a second apart, ten of them: at 50 % a delivery fails for good once in 2,000.
fn flaky_config() -> Config {
    Config {
        retry_schedule: vec![SECOND; 10],
        ..config()
    }
}

/// One round, with the board told what each answer says about the endpoint's capacity (as
/// a worker tells it): what was sent.
fn round(rig: &mut Rig) -> usize {
    let records = rig.harness.run_once().unwrap();
    rig.harness.observe(&records);
    records.len()
}

/// Whether the endpoint's circuit is open (or half open) now.
fn circuit_open(rig: &Rig, endpoint: i64) -> bool {
    let e = rig
        .block_on(rig.store().get_endpoint(TENANT, endpoint))
        .expect("endpoint");
    e.circuit.since.is_some()
}

/// The longest run of failures the receiver answered, in the order it answered.
fn longest_failing_run(n: usize) -> usize {
    let (mut longest, mut run) = (0, 0);
    for i in 0..n {
        run = if heads(i) { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    longest
}

#[test]
fn an_endpoint_failing_half_its_requests_keeps_flowing_and_drains() {
    let receiver = Receiver::start(|_, n| Reply::status(if heads(n) { 200 } else { 500 }));
    let mut rig = Rig::new(flaky_config(), receiver);
    let id = rig.endpoint("/flaky", "job.*");
    const EVENTS: usize = 300;
    rig.publish("job.completed", EVENTS);
    let start = rig.now();
    let mut opened = false;
    for _ in 0..20_000 {
        let sent = round(&mut rig);
        opened |= circuit_open(&rig, id);
        let delivered = rig.sql_count(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = ?1 AND status != 'pending'",
            id,
        );
        if delivered == EVENTS as i64 {
            break;
        }
        if sent == 0 {
            rig.advance(SECOND); // the retries come due
        }
    }
    let got = rig.receiver.on_path("/flaky").len();
    let succeeded = rig.sql_count(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = ?1 AND status = 'succeeded'",
        id,
    );
    let took = Duration::from_millis((rig.now() - start) as u64);
    eprintln!("{succeeded} of {EVENTS} delivered in {got} requests, {took:?} on the clock");
    // The old rule (5 failures in a row) would have opened it: such runs were there.
    assert!(
        longest_failing_run(got) >= 5,
        "the receiver's answers held no run of 5 failures: the test shows nothing"
    );
    assert!(!opened, "the circuit of a half-working endpoint opened");
    assert!(succeeded >= EVENTS as i64 - 1, "{succeeded} of {EVENTS}");
    // Each retry waits a second and every round sends what is due: well within a minute.
    assert!(took <= Duration::from_secs(60), "{took:?}");
}

#[test]
fn a_dead_endpoint_gets_only_probes_and_ramps_up_after_one_succeeds() {
    let alive = Arc::new(AtomicBool::new(false));
    let up = alive.clone();
    let receiver = Receiver::start(move |_, _| {
        Reply::status(if up.load(Ordering::SeqCst) { 200 } else { 500 })
    });
    let config = Config {
        endpoint_concurrency: 8,
        max_endpoint_concurrency: 8,
        ..flaky_config()
    };
    let backoff = config.circuit_backoff;
    let mut rig = Rig::new(config, receiver);
    let id = rig.endpoint("/dead", "job.*");
    rig.publish("job.completed", 40);
    // The first rounds: what was claimed goes out, the fifth failure in a row opens it.
    while !circuit_open(&rig, id) {
        assert!(round(&mut rig) > 0, "never opened");
    }
    let before = rig.receiver.on_path("/dead").len();
    assert!(before >= 5, "{before}");
    // Ten minutes, a second at a time: probes after 30 s, then 60, 120, 240 (doubling).
    let opened_at = rig.now();
    let mut probes = Vec::new();
    for _ in 0..600 {
        rig.advance(SECOND);
        let sent = round(&mut rig);
        assert!(sent <= 1, "more than a probe: {sent}");
        if sent == 1 {
            probes.push((rig.now() - opened_at) / 1000);
        }
    }
    let b = backoff.as_secs() as i64;
    assert_eq!(
        probes,
        [b, 3 * b, 7 * b, 15 * b],
        "one probe each, doubling"
    );
    let without = 40 * 11; // every delivery's eleven attempts, had nothing held them back
    eprintln!(
        "dead endpoint: {} requests in 10 min (without a breaker: {without})",
        rig.receiver.on_path("/dead").len()
    );

    // It comes back: the next probe succeeds, and the limit doubles back to 8.
    alive.store(true, Ordering::SeqCst);
    rig.advance(Duration::from_secs(16 * b as u64));
    assert_eq!(round(&mut rig), 1, "the probe");
    assert!(!circuit_open(&rig, id), "the probe closed it");
    // One more round at the doubled limit (2, then 4 and 8 as its answers come back):
    // the additive increase alone would have reached 4 at most by now.
    round(&mut rig);
    assert_eq!(
        rig.harness.board.limit_of(id),
        8,
        "back at endpoint_concurrency"
    );
    let mut rounds = 0;
    while rig.sql_count(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = ?1 AND status = 'pending'",
        id,
    ) > 0
    {
        round(&mut rig);
        rounds += 1;
        assert!(rounds < 40, "the backlog did not drain");
    }
    assert!(!circuit_open(&rig, id));
}
