// Review finding: deleting an endpoint while its deliveries are in flight makes the
// recorder's whole batch fail (`FOREIGN KEY constraint failed` on `attempts.delivery_id`),
// so attempts of *other*, still existing endpoints that share the batch are not recorded:
// they stay `pending` with 0 attempts under a lease, and are sent a second time when the
// lease expires (~connect + request timeout + 60 s later).

use std::time::Duration;

use crate::common::{Receiver, Reply, TestApp};
use serde_json::json;

#[test]
fn deleting_an_endpoint_mid_flight_does_not_lose_other_endpoints_attempts() {
    let receiver = Receiver::start(|_, _| Reply::status(200).delay(Duration::from_millis(1500)));
    let app = TestApp::spawn_with(&[
        ("HERALD_ENDPOINT_CONCURRENCY", "32"),
        ("HERALD_CONNECT_TIMEOUT", "1s"),
        ("HERALD_REQUEST_TIMEOUT", "5s"),
    ]);
    let doomed = app.create_webhook(&receiver.url("/doomed"), &["del.*"]);
    let kept = app.create_webhook(&receiver.url("/kept"), &["del.*"]);
    const N: usize = 20;
    for i in 0..N {
        app.publish(json!({ "event": "del.t", "i": i }));
    }
    // Every request of both endpoints is now in flight (the receiver holds each 1.5 s).
    receiver.wait_for("/kept", N, Duration::from_secs(10));
    receiver.wait_for("/doomed", N, Duration::from_secs(10));
    let (status, body) = app.admin(
        "DELETE",
        &format!("/api/v1/webhooks/{}", doomed["id"]),
        None,
    );
    assert_eq!(status, 200, "{body}");

    // The kept endpoint answered 200 to every request; well before any lease could expire,
    // every one of its deliveries must be recorded as succeeded.
    let kept_id = kept["id"].as_i64().unwrap();
    let settled = app.wait_for(Duration::from_secs(15), "kept deliveries recorded", || {
        let (_, list) = app.admin(
            "GET",
            &format!("/api/v1/deliveries?endpoint_id={kept_id}&limit=100"),
            None,
        );
        let items = list["data"].as_array().cloned().unwrap_or_default();
        (items.len() == N && items.iter().all(|d| d["status"] != "pending")).then_some(items)
    });
    assert!(
        settled.iter().all(|d| d["status"] == "succeeded"),
        "{settled:?}"
    );
    assert_eq!(receiver.on_path("/kept").len(), N, "no delivery sent twice");
}
