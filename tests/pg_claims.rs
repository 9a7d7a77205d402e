//! The PostgreSQL outbox's claims, driven directly through `store::Backend` by two stores
//! on one database (two replicas, as far as the database can tell): the in-flight cap
//! counts every replica's leases, a delivery is never claimed twice while leased, a dead
//! replica's leases lapse and are claimed again, FIFO holds across replicas, and racing
//! claim loops hand every delivery out exactly once.
//!
//! Runs when `HERALD_TEST_PG_URL` names a PostgreSQL server (`.ci/run` starts one).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::PgDatabase;
use herald::clock::now_ms;
use herald::config::Database;
use herald::config::Durability;
use herald::engine::health::HealthPolicy;
use herald::engine::plan::{plan, Shares};
use herald::store::{AttemptRecord, ClaimRound, Claimed, Store, Verdict};

fn setup(deliveries: usize, ordering: &str) -> Option<(PgDatabase, Store, Store)> {
    let db = PgDatabase::create_or_skip()?;
    let open = || herald::store::open(&Database::Postgres(db.url()), Durability::Full).unwrap();
    let (a, b) = (open(), open());
    // Rows written directly: these tests are about claims, not the API.
    let mut c = db.client();
    c.execute(
        "INSERT INTO endpoints (tenant_id, url, events, description, headers, status, secret,
             created_at, updated_at, ordering)
         VALUES ('default', 'http://127.0.0.1:9/', '[\"*\"]', '', '{}', 'active',
                 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 0, 0, $1)",
        &[&ordering],
    )
    .unwrap();
    let now = now_ms();
    for n in 0..deliveries as i64 {
        c.execute(
            "WITH e AS (INSERT INTO events (id, tenant_id, event_type, body, created_at)
                        VALUES ($1, 'default', 'tick', '{}', $2) RETURNING seq)
             INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status, next_attempt_at,
                                     created_at, updated_at)
             SELECT seq, 1, 'default', 'pending', $2, $2, $2 FROM e",
            &[&format!("evt_{n:04}"), &(now - 1000 + n)],
        )
        .unwrap();
    }
    Some((db, a, b))
}

/// One claim round as a replica's dispatcher runs it: the engine's planner, an in-flight
/// cap of `cap`, and a shared outbox's depth of one cap.
fn claim(store: &Store, cap: usize, lease_ms: i64) -> Vec<Claimed> {
    let shares = Shares {
        limit: 100,
        cap,
        caps: HashMap::new(),
        depth: 1,
    };
    let round = ClaimRound {
        now: now_ms(),
        skip: Vec::new(),
        ready_limit: shares.ready_limit(),
        default_rate_limited: false,
        lease_ms,
    };
    store.claim(&round, &mut |due| plan(&shares, due)).unwrap()
}

fn succeeded(store: &Store, ids: &[i64]) {
    let records: Vec<AttemptRecord> = ids
        .iter()
        .map(|&id| AttemptRecord {
            delivery_id: id,
            endpoint_id: 1,
            started_at: now_ms(),
            duration_ms: 1,
            status_code: Some(200),
            error: None,
            response_headers: None,
            response_body: None,
            verdict: Verdict::Succeeded,
            gone: false,
            backoff_until: None,
            operational: false,
        })
        .collect();
    let policy = HealthPolicy {
        disable_after_ms: 86_400_000,
        circuit_threshold: 0,
        circuit_backoff_ms: 30_000,
        circuit_failure_rate: 0.9,
        circuit_min_attempts: 20,
        circuit_window_ms: 60_000,
    };
    store
        .record(records.into(), Arc::new(policy), now_ms())
        .unwrap();
}

fn ids(claimed: &[herald::store::Claimed]) -> Vec<i64> {
    claimed.iter().map(|c| c.delivery_id).collect()
}

#[test]
fn the_cap_counts_every_replicas_leases() {
    let Some((_db, a, b)) = setup(10, "parallel") else {
        return;
    };
    let first = ids(&claim(&a, 3, 60_000));
    assert_eq!(first.len(), 3, "replica A takes the endpoint's cap");
    assert!(claim(&b, 3, 60_000).is_empty(), "B may take none more");
    succeeded(&a, &first[..2]);
    let second = ids(&claim(&b, 3, 60_000));
    assert_eq!(second.len(), 2, "two finished, so B takes two");
    assert!(second.iter().all(|id| !first.contains(id)));
    // The secret came back opened (it was stored in clear here; sealed ones are opened too).
    let claimed = claim(&a, 6, 60_000);
    assert!(claimed.iter().all(|c| c.secret.starts_with("whsec_")));
}

#[test]
fn a_dead_replicas_leases_lapse_and_are_claimed_again() {
    let Some((_db, a, b)) = setup(4, "parallel") else {
        return;
    };
    let taken = ids(&claim(&a, 4, 1_000));
    assert_eq!(taken.len(), 4);
    // A lives: its leases are renewed, so B gets nothing even after one lease.
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        claim(&b, 4, 1_000).is_empty(),
        "a live replica's leases were taken"
    );
    // A dies (its lease keeper stops with it): after one lease B takes them over.
    drop(a);
    std::thread::sleep(Duration::from_millis(1_300));
    let mut again = ids(&claim(&b, 4, 1_000));
    again.sort();
    let mut taken = taken;
    taken.sort();
    assert_eq!(
        again, taken,
        "the dead replica's deliveries are claimed again"
    );
}

#[test]
fn fifo_sends_one_at_a_time_across_replicas() {
    let Some((_db, a, b)) = setup(3, "fifo") else {
        return;
    };
    let head = ids(&claim(&a, 8, 60_000));
    assert_eq!(head.len(), 1, "only the head");
    assert!(
        claim(&b, 8, 60_000).is_empty(),
        "nothing while the head is out"
    );
    succeeded(&a, &head);
    let next = ids(&claim(&b, 8, 60_000));
    assert_eq!(next.len(), 1);
    assert!(next[0] > head[0], "in publish order");
}

#[test]
fn racing_replicas_hand_each_delivery_out_once() {
    let Some((_db, a, b)) = setup(300, "parallel") else {
        return;
    };
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let most_out = Arc::new(Mutex::new(0usize));
    let out = Arc::new(Mutex::new(0usize));
    let threads: Vec<_> = [a, b]
        .into_iter()
        .flat_map(|store| [store.clone(), store])
        .map(|store| {
            let (seen, out, most_out) = (seen.clone(), out.clone(), most_out.clone());
            std::thread::spawn(move || loop {
                let claimed = ids(&claim(&store, 4, 60_000));
                if claimed.is_empty() {
                    if seen.lock().unwrap().len() >= 300 {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                {
                    let mut o = out.lock().unwrap();
                    *o += claimed.len();
                    let mut m = most_out.lock().unwrap();
                    *m = (*m).max(*o);
                }
                seen.lock().unwrap().extend(&claimed);
                std::thread::sleep(Duration::from_millis(1));
                *out.lock().unwrap() -= claimed.len();
                succeeded(&store, &claimed);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 300, "each delivery handed out once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 300);
    let most = *most_out.lock().unwrap();
    assert!(
        most <= 4,
        "{most} out at once; the cap is 4 across both replicas"
    );
}

#[test]
fn a_publish_on_one_replica_wakes_the_others_at_once() {
    let Some((_db, a, b)) = setup(0, "parallel") else {
        return;
    };
    let (woken, wakes) = std::sync::mpsc::channel();
    b.watch_wakeups(
        Box::new(move || {
            let _ = woken.send(std::time::Instant::now());
        }),
        herald::lifecycle::Shutdown::default(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let event = herald::store::NewEvent {
        event_type: "tick".into(),
        body: "{}".into(),
        idempotency_key: None,
        traceparent: None,
    };
    let sent = std::time::Instant::now();
    runtime
        .block_on(a.publish("default", vec![event], now_ms()))
        .unwrap();
    let at = wakes
        .recv_timeout(Duration::from_secs(5))
        .expect("replica B was woken by A's publish");
    // LISTEN/NOTIFY, not B's one-second poll.
    assert!(at.duration_since(sent) < Duration::from_millis(500));
}

#[test]
fn a_database_written_by_a_newer_herald_is_refused() {
    let Some((db, a, b)) = setup(0, "parallel") else {
        return;
    };
    drop((a, b));
    db.client()
        .batch_execute("UPDATE schema_version SET version = 99")
        .unwrap();
    let refused = herald::store::open(&Database::Postgres(db.url()), Durability::Full)
        .err()
        .expect("a newer schema is refused")
        .to_string();
    assert!(refused.contains("newer Herald"), "{refused}");
}
