//! Delivery controls on the stepped engine: an endpoint's rate limit holds for first
//! attempts and retries alike, and a 429 with `Retry-After` holds its deliveries back.

use std::time::Duration;

use super::{config, endpoint_to, Rig, TENANT};
use crate::common::{Receiver, Reply};

/// Sends whatever is ready; returns how many requests went out.
fn send(rig: &mut Rig) -> usize {
    let records = rig.harness.send_ready();
    let n = records.len();
    rig.harness.record(records);
    n
}

#[test]
fn a_rate_limited_endpoint_gets_one_request_per_interval_however_big_the_burst() {
    let mut rig = Rig::new(config(), Receiver::ok());
    let mut new = endpoint_to(&rig.receiver.url("/slow"), "job.*");
    new.rate_limit = Some(2.0); // one request every 500 ms
    let endpoint = rig
        .block_on(rig.store().create_endpoint(TENANT, new, rig.now()))
        .unwrap();
    assert_eq!(endpoint.rate_limit, Some(2.0));
    rig.publish("job.done", 5);

    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1, "a burst of 5 sends one now");
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "nothing more within the interval");
    rig.advance(Duration::from_millis(499));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "not even 1 ms early");
    rig.advance(Duration::from_millis(1));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1);
    for _ in 0..3 {
        rig.advance(Duration::from_millis(500));
        rig.harness.step().unwrap();
        assert_eq!(send(&mut rig), 1, "one per interval, queued, never dropped");
    }
    assert_eq!(
        rig.receiver
            .wait_for("/slow", 5, Duration::from_secs(5))
            .len(),
        5
    );
    // The board never kept more of it than its in-flight cap: the rest stayed pending.
    assert!(rig.harness.board.total() <= 2);
}

#[test]
fn a_429_with_retry_after_holds_the_endpoint_back_that_long() {
    let receiver = Receiver::start(|_, n| {
        if n == 0 {
            Reply::status(429).header("retry-after", "30")
        } else {
            Reply::status(200)
        }
    });
    let mut rig = Rig::new(config(), receiver);
    rig.endpoint("/busy", "job.*");
    rig.publish("job.done", 1);
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1, "the first request meets the 429");
    rig.publish("job.done", 3);
    rig.advance(Duration::from_secs(29));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "29 s later the endpoint still rests");
    rig.advance(Duration::from_secs(1));
    rig.harness.step().unwrap();
    assert!(send(&mut rig) >= 1, "after 30 s deliveries flow again");
}
