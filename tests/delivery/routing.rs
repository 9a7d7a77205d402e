//! Routing end to end (issue 21, items 1 and 2), at a real receiver: 100 endpoints with
//! payload filters get exactly the events their filters match, and a replayed event that an
//! endpoint missed while disabled reaches it, signed with the event's own id.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{Receiver, TestApp};
use crate::{header, WAIT};

#[test]
fn a_hundred_filtered_endpoints_receive_only_what_their_filters_match() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    for i in 0..100 {
        let filter = format!("$.data.n == {i} || ($.data.tag == 'all' && $.data.tier != 'none')");
        let (status, body) = app.admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": receiver.url(&format!("/f{i}")), "events": ["order.*"], "filter": filter})),
        );
        assert_eq!(status, 201, "{body}");
    }
    let plain = app.create_webhook(&receiver.url("/plain"), &["order.*"]);
    assert!(plain["filter"].is_null());

    let mut events: Vec<Value> = (0..100)
        .step_by(7)
        .map(|n| json!({"event": "order.paid", "data": {"n": n, "tag": "one"}}))
        .collect();
    events.push(json!({"event": "order.paid", "data": {"n": 1000, "tag": "all", "tier": "gold"}}));
    events.push(json!({"event": "order.paid", "data": {"n": 1001, "tag": "all", "tier": "none"}}));
    events.push(json!({"event": "order.paid", "data": {"tag": "missing n"}}));
    events.push(json!({"event": "user.created", "data": {"n": 7}}));
    let (status, body) = app.admin(
        "POST",
        "/api/v1/events/batch",
        Some(json!({ "events": events })),
    );
    assert_eq!(status, 202, "{body}");
    let counts: Vec<i64> = body["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["deliveries"].as_i64().unwrap())
        .collect();
    // Each numbered event: its endpoint and the plain one; the `all` one: every endpoint;
    // the `none` tier and the event without `n`: the plain one only; user.created: nobody.
    let mut expected_counts = vec![2; 15];
    expected_counts.extend([101, 1, 1, 0]);
    assert_eq!(counts, expected_counts, "{body}");

    let expected_total = 15 * 2 + 101 + 1 + 1;
    app.wait_for(WAIT, "every matching delivery to arrive", || {
        (receiver.received().len() >= expected_total).then_some(())
    });
    // Nothing more comes: no delivery went where its filter did not match.
    std::thread::sleep(Duration::from_millis(500));
    let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in receiver.received() {
        let payload: Value = serde_json::from_str(&r.body).unwrap();
        got.entry(r.path.clone())
            .or_default()
            .push(payload["data"]["n"].as_i64().unwrap_or(-1));
    }
    assert_eq!(receiver.received().len(), expected_total);
    for i in 0..100 {
        let mut mine = got.remove(&format!("/f{i}")).unwrap_or_default();
        mine.sort();
        let expected: Vec<i64> = if i % 7 == 0 {
            vec![i, 1000]
        } else {
            vec![1000]
        };
        assert_eq!(mine, expected, "endpoint /f{i}");
    }
    let mut plain_got = got.remove("/plain").unwrap();
    plain_got.sort();
    let mut plain_expected: Vec<i64> = (0..100).step_by(7).collect();
    plain_expected.extend([-1, 1000, 1001]);
    plain_expected.sort();
    assert_eq!(plain_got, plain_expected);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn an_event_missed_while_disabled_arrives_when_replayed() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let since = herald::clock::wall_ms() / 1_000 - 5;
    let before =
        app.publish(json!({"event": "invoice.paid", "total": 90, "note": "before it existed"}));
    let hook = app.create_webhook(&receiver.url("/r"), &["invoice.*"]);
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    let (status, _) = app.admin("PATCH", &path, Some(json!({"status": "disabled"})));
    assert_eq!(status, 200);
    let missed = app.publish(json!({"event": "invoice.paid", "total": 120}));
    assert_eq!(
        missed["deliveries"], 0,
        "a disabled endpoint gets nothing at publish"
    );
    let (status, _) = app.admin("PATCH", &path, Some(json!({"status": "active"})));
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.received().is_empty());

    let (status, done) = app.admin(
        "POST",
        &format!("{path}/replay"),
        Some(json!({"since": since.to_string()})),
    );
    assert_eq!(status, 202, "{done}");
    assert_eq!(
        done["data"]["event_ids"],
        json!([before["id"], missed["id"]])
    );
    let got = receiver.wait_for("/r", 2, WAIT);
    let ids: Vec<&str> = got.iter().map(|r| header(r, "webhook-id")).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let mut expected = vec![
        before["id"].as_str().unwrap(),
        missed["id"].as_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(sorted, expected);
    let (_, stored) = app.admin(
        "GET",
        &format!("/api/v1/events/{}", missed["id"].as_str().unwrap()),
        None,
    );
    let body = got
        .iter()
        .find(|r| header(r, "webhook-id") == missed["id"].as_str().unwrap())
        .unwrap()
        .body
        .clone();
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        sent, stored["data"]["payload"],
        "the stored bytes, as at publish"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 2, "each once");
}
