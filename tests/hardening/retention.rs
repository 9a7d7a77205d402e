// Retention: history older than `retention` is pruned, with its deliveries and attempts.

use std::time::Duration;

use crate::common::{Receiver, Reply, TestApp};
use serde_json::json;

#[test]
fn events_older_than_retention_are_pruned_with_their_history() {
    // No retries, and a receiver that fails: every delivery leaves one attempts row.
    let app = TestApp::spawn_with(&[("HERALD_RETENTION", "2s"), ("HERALD_RETRY_SCHEDULE", "")]);
    let receiver = Receiver::start(|_, _| Reply::status(500));
    app.create_webhook(&receiver.url("/r"), &["*"]);
    for i in 0..5 {
        app.publish(json!({"event": "old.event", "i": i}));
    }
    receiver.wait_for("/r", 5, Duration::from_secs(10));
    app.wait_for(Duration::from_secs(10), "attempts recorded", || {
        (app.sql_count("SELECT count(*) FROM attempts") == 5).then_some(())
    });
    assert_eq!(app.sql_count("SELECT sum(failed) FROM activity_hours"), 5);
    // Wait past the retention; the pruner looks every second for this setting.
    app.wait_for(Duration::from_secs(15), "old events pruned", || {
        (app.sql_count("SELECT count(*) FROM events") == 0).then_some(())
    });
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 0);
    assert_eq!(app.sql_count("SELECT count(*) FROM attempts"), 0);
    // New events are kept, and the endpoint itself is untouched.
    app.publish(json!({"event": "new.event"}));
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 1);
    assert_eq!(app.sql_count("SELECT count(*) FROM endpoints"), 1);
}
