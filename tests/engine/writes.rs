//! Writes that meet in one group commit (SQLite's writer thread, PostgreSQL's publish
//! committers): a failing job inside a group commit, publishes of several tenants sharing
//! one, publishes racing with one `Idempotency-Key`, and ids that must never come back
//! after a delete.

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Barrier};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use herald::config::{Config, Database, Durability};
use herald::store::{Cursor, EventQuery, NewEvent, NewKey, Published, StoreError};

use crate::common::{Receiver, Reply};
use crate::{config, endpoint_to, event, Rig, T0, TENANT};

/// The tenant whose publishes hold PostgreSQL's committers (`Gate`).
const GATE_TENANT: &str = "gate";
/// PostgreSQL's subscriptions lock class (`store/postgres/subscriptions.rs`, "subs").
const SUBSCRIPTIONS_LOCK: i32 = 0x7375_6273;
/// PostgreSQL's publish committers per replica (`store/postgres/group.rs`).
const COMMITTERS: usize = 2;

/// Holds every committer of the store, so that everything submitted meanwhile queues up
/// and forms the next group commit together. On SQLite, a job of its own on the writer
/// thread; on PostgreSQL, one publish on each committer, of a tenant of its own whose
/// subscriptions lock the gate holds exclusive from a connection of its own.
enum Gate {
    Writer {
        release: mpsc::Sender<()>,
        job: JoinHandle<()>,
    },
    Committers {
        lock: Box<postgres::Client>,
        publishes: Vec<JoinHandle<Answer>>,
    },
}

impl Gate {
    fn close(rig: &Rig) -> Gate {
        if let Some(sqlite) = rig.sqlite.clone() {
            let (entered, writer_held) = mpsc::channel();
            let (release, released) = mpsc::channel::<()>();
            let job = std::thread::spawn(move || {
                sqlite
                    .write_raw_for_tests(move |_| {
                        let _ = entered.send(());
                        let _ = released.recv();
                        Ok(())
                    })
                    .expect("the gate's own job");
            });
            writer_held.recv().expect("the writer runs the gate");
            return Gate::Writer { release, job };
        }
        let pg = rig.pg.as_ref().expect("SQLite or PostgreSQL");
        let store = rig.store().clone();
        if rig
            .block_on(store.create_tenant(GATE_TENANT, "Gate", T0))
            .is_err()
        {
            // Made by an earlier gate of the same test.
        }
        let mut lock = pg.client();
        lock.execute(
            "SELECT pg_advisory_lock($1, hashtext($2))",
            &[&SUBSCRIPTIONS_LOCK, &GATE_TENANT],
        )
        .expect("the gate's lock");
        // One at a time, each sent once the one before waits for the lock: one committer
        // taking two gate publishes in one batch would leave the other free.
        let mut publishes = Vec::new();
        for i in 0..COMMITTERS {
            let store = store.clone();
            publishes.push(std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                runtime.block_on(store.publish(GATE_TENANT, vec![event("gate", i, None)], T0))
            }));
            let started = std::time::Instant::now();
            while waiting_for_locks(&mut lock) < i + 1 {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the committers did not reach the gate"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Gate::Committers {
            lock: Box::new(lock),
            publishes,
        }
    }

    fn open(&mut self) {
        match self {
            Gate::Writer { release, .. } => release.send(()).expect("the gate is waiting"),
            // On a thread of its own: this runs inside the test's runtime, where the sync
            // client cannot block.
            Gate::Committers { lock, .. } => std::thread::scope(|s| {
                s.spawn(|| {
                    lock.execute(
                        "SELECT pg_advisory_unlock($1, hashtext($2))",
                        &[&SUBSCRIPTIONS_LOCK, &GATE_TENANT],
                    )
                    .expect("unlock the gate");
                })
                .join()
                .expect("the unlock");
            }),
        }
    }

    fn join(self) {
        match self {
            Gate::Writer { job, .. } => job.join().expect("the gate's thread"),
            Gate::Committers { publishes, .. } => {
                for p in publishes {
                    p.join()
                        .expect("a gate publish")
                        .expect("the gate's publish");
                }
            }
        }
    }

    /// The commits the gate itself makes.
    fn commits(&self) -> u64 {
        match self {
            Gate::Writer { .. } => 1,
            Gate::Committers { publishes, .. } => publishes.len() as u64,
        }
    }
}

/// Transactions of this database waiting for an advisory lock.
fn waiting_for_locks(c: &mut postgres::Client) -> usize {
    let waiting: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_locks
             WHERE locktype = 'advisory' AND NOT granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .expect("pg_locks")
        .get(0);
    waiting as usize
}

/// Polls every write once, which hands each to the writer's queue (behind the gate), so
/// none of them has run before all of them are queued.
async fn queue_all<F: Future + ?Sized>(jobs: &mut [Pin<Box<F>>]) {
    std::future::poll_fn(|cx| {
        for job in jobs.iter_mut() {
            assert!(
                job.as_mut().poll(cx).is_pending(),
                "the gate holds the writer"
            );
        }
        Poll::Ready(())
    })
    .await
}

/// Queues every write behind the closed gate, opens it, and awaits them all: they run in
/// one group commit.
async fn in_one_commit<F: Future + ?Sized>(
    gate: &mut Gate,
    mut jobs: Vec<Pin<Box<F>>>,
) -> Vec<F::Output> {
    queue_all(&mut jobs).await;
    gate.open();
    let mut answers = Vec::new();
    for job in jobs {
        answers.push(job.await);
    }
    answers
}

type Answer = Result<Vec<Published>, StoreError>;

#[test]
fn one_failing_job_in_a_group_commit_leaves_the_others_committed() {
    let config = Config {
        durability: Durability::Full,
        ..config()
    };
    let rig = Rig::new(config, Receiver::ok());
    rig.endpoint("/hook", "*");

    // A job that fails after writing leaves none of its writes behind.
    if let Some(sqlite) = rig.sqlite() {
        let failed = sqlite.write_raw_for_tests(|c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES ('half', 'done')",
                [],
            )?;
            c.execute(
                "INSERT INTO events (id, tenant_id, event_type, body, created_at)
                 VALUES ('evt_orphan', 'nobody', 'x', '{}', 0)",
                [],
            )?;
            Ok(())
        });
        assert!(matches!(failed, Err(StoreError::Backend(_))), "{failed:?}");
        let half = "SELECT count(*) FROM settings WHERE key = 'half' AND ?1 = ?1";
        assert_eq!(rig.sql_count(half, 0), 0);
    }

    // One failing job among twenty in one commit: the other nineteen are committed.
    let mut gate = Gate::close(&rig);
    let before = rig.store().writer_stats();
    let answers: Vec<Answer> = rig.block_on(async {
        let jobs: Vec<_> = (0..20)
            .map(|i| {
                // The 11th names a tenant that does not exist: its event breaks a foreign key.
                let tenant = if i == 10 { "nobody" } else { TENANT };
                rig.store()
                    .publish(tenant, vec![event("job.completed", i, None)], T0)
            })
            .collect();
        in_one_commit(&mut gate, jobs).await
    });
    let gate_commits = gate.commits();
    gate.join();
    let after = rig.store().writer_stats();
    assert_eq!(
        after.commits - before.commits,
        gate_commits + 1,
        "the gate's commits, then one for all 20 publishes"
    );
    assert_eq!(after.jobs - before.jobs, gate_commits + 20);

    if rig.sqlite.is_some() {
        assert!(
            matches!(&answers[10], Err(StoreError::Backend(m)) if m.contains("FOREIGN KEY")),
            "{:?}",
            answers[10]
        );
    } else {
        // Found missing before anything was written, inside the batch.
        assert!(
            matches!(&answers[10], Err(StoreError::NotFound("tenant"))),
            "{:?}",
            answers[10]
        );
    }
    let ids: Vec<String> = answers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 10)
        .map(|(i, a)| {
            let published = a.as_ref().unwrap_or_else(|e| panic!("job {i}: {e}"));
            assert_eq!(published[0].deliveries, 1);
            published[0].id.clone()
        })
        .collect();

    // Durable: a store opened afresh on the database has each of the 19, with its
    // delivery.
    let db = match &rig.pg {
        Some(pg) => Database::Postgres(pg.url()),
        None => Database::Sqlite(rig.path()),
    };
    let Rig {
        harness,
        sqlite,
        runtime,
        dir: _dir,
        pg: _pg,
        ..
    } = rig;
    drop((harness, sqlite));
    let store = herald::store::open(&db, Durability::Full).expect("reopen");
    runtime.block_on(async {
        for id in &ids {
            store.get_event(TENANT, id).await.expect("event");
            assert_eq!(store.event_deliveries(TENANT, id).await.unwrap().len(), 1);
        }
        let all = Cursor {
            before: None,
            limit: 100,
        };
        let events = store.list_events(TENANT, EventQuery::default(), all).await;
        assert_eq!(events.unwrap().items.len(), 19);
    });
}

/// On PostgreSQL, a publish that fails a statement (a body PostgreSQL's text refuses)
/// fails its batch's transaction: the batch is then published request by request, so only
/// that request is refused, and the others are committed with their deliveries.
#[test]
fn a_batch_that_fails_is_published_request_by_request() {
    let rig = Rig::new(config(), Receiver::ok());
    if rig.pg.is_none() {
        eprintln!("skipped on SQLite: its text takes a NUL, and a failing job has its savepoint");
        return;
    }
    rig.endpoint("/hook", "*");
    let mut gate = Gate::close(&rig);
    let answers: Vec<Answer> = rig.block_on(async {
        let jobs: Vec<_> = (0..12)
            .map(|i| {
                let mut e = event("job.completed", i, Some(&format!("key-{i}")));
                if i == 5 {
                    e.body = "{\"nul\":\"\u{0}\"}".into();
                }
                rig.store().publish(TENANT, vec![e], T0)
            })
            .collect();
        in_one_commit(&mut gate, jobs).await
    });
    gate.join();
    for (i, a) in answers.iter().enumerate() {
        if i == 5 {
            assert!(a.is_err(), "the NUL body is refused: {a:?}");
            continue;
        }
        let published = a.as_ref().unwrap_or_else(|e| panic!("job {i}: {e}"));
        assert!(!published[0].replayed && published[0].deliveries == 1);
        assert_eq!(rig.deliveries_of(&published[0].id).len(), 1);
    }
    let all = Cursor {
        before: None,
        limit: 100,
    };
    let events = rig.block_on(rig.store().list_events(TENANT, EventQuery::default(), all));
    assert_eq!(
        events.unwrap().items.len(),
        11,
        "the refused one wrote nothing"
    );
    // Its key is free: sent again with a body PostgreSQL takes, it is a new event.
    let again = rig
        .block_on(
            rig.store()
                .publish(TENANT, vec![event("job.completed", 5, Some("key-5"))], T0),
        )
        .expect("publish");
    assert!(!again[0].replayed);
}

/// Publishes of several tenants in one group commit: each request fans out to its own
/// tenant's endpoints only, an idempotency key is its tenant's own (the same key in two
/// tenants is two events, twice in one tenant one), and a tenant that does not exist is
/// refused alone.
#[test]
fn publishes_of_several_tenants_share_a_commit_and_keep_to_their_own() {
    let rig = Rig::new(config(), Receiver::ok());
    let store = rig.store().clone();
    let mut endpoints = std::collections::HashMap::new();
    for (tenant, hooks) in [(TENANT, 1), ("acme", 2), ("beta", 3)] {
        if tenant != TENANT {
            rig.block_on(store.create_tenant(tenant, tenant, T0))
                .expect("tenant");
        }
        let ids: Vec<i64> = (0..hooks)
            .map(|h| {
                let new = endpoint_to(&rig.receiver.url(&format!("/{tenant}/{h}")), "*");
                rig.block_on(store.create_endpoint(tenant, new, T0))
                    .expect("endpoint")
                    .id
            })
            .collect();
        endpoints.insert(tenant, ids);
    }
    // Jobs 0-3 and 4-7 use the same key per tenant: the second of each is a replay.
    let request = |i: usize| -> (&str, NewEvent) {
        let tenant = ["default", "acme", "beta", "nobody"][i % 4];
        (
            tenant,
            event("order.paid", i, (i < 8).then_some("shared-key")),
        )
    };
    let requests: Vec<(&str, NewEvent)> = (0..24).map(request).collect();
    let mut gate = Gate::close(&rig);
    let before = store.writer_stats();
    let answers: Vec<Answer> = rig.block_on(async {
        let jobs: Vec<_> = (0..24)
            .map(|i| {
                let (tenant, e) = request(i);
                store.publish(tenant, vec![e], T0)
            })
            .collect();
        in_one_commit(&mut gate, jobs).await
    });
    let gate_commits = gate.commits();
    gate.join();
    let after = store.writer_stats();
    assert_eq!(
        after.commits - before.commits,
        gate_commits + 1,
        "one commit for all 24"
    );

    let mut first_of_key = std::collections::HashMap::new();
    for (i, ((tenant, _), answer)) in requests.iter().zip(&answers).enumerate() {
        if *tenant == "nobody" {
            assert!(answer.is_err(), "job {i}: {answer:?}");
            continue;
        }
        let p = &answer.as_ref().unwrap_or_else(|e| panic!("job {i}: {e}"))[0];
        let own = &endpoints[tenant];
        assert_eq!(
            p.deliveries,
            own.len(),
            "job {i} fans out to {tenant}'s endpoints"
        );
        if i < 8 {
            match first_of_key.get(tenant) {
                None => {
                    assert!(!p.replayed, "job {i}");
                    first_of_key.insert(*tenant, p.id.clone());
                }
                Some(first) => assert_eq!((&p.id, p.replayed), (first, true), "job {i}"),
            }
        }
        if !p.replayed {
            let to: Vec<i64> = rig
                .block_on(store.event_deliveries(tenant, &p.id))
                .expect("deliveries")
                .iter()
                .map(|d| d.endpoint_id)
                .collect();
            assert_eq!(
                &to, own,
                "job {i}: one delivery per endpoint of {tenant}, in order"
            );
            // Another tenant's event is not found in this one.
            let other = if *tenant == "acme" { "beta" } else { "acme" };
            assert!(rig.block_on(store.get_event(other, &p.id)).is_err());
        }
    }
    let all = Cursor {
        before: None,
        limit: 100,
    };
    for tenant in [TENANT, "acme", "beta"] {
        let events = rig.block_on(store.list_events(tenant, EventQuery::default(), all));
        // Jobs 0-23 of the tenant, minus its replayed key.
        assert_eq!(events.unwrap().items.len(), 5, "{tenant}");
    }
}

#[test]
fn concurrent_publishes_with_one_idempotency_key_make_one_event() {
    let mut rig = Rig::new(config(), Receiver::ok());
    rig.endpoint("/a", "*");
    rig.endpoint("/b", "*");

    // Sixteen at once inside one group commit: each sees the others' uncommitted rows (on
    // PostgreSQL, the batch answers the first use of the key for the others).
    let mut gate = Gate::close(&rig);
    let answers: Vec<Answer> = rig.block_on(async {
        let jobs: Vec<_> = (0..16)
            .map(|i| {
                let e = event("order.paid", i, Some("order-42"));
                rig.store().publish(TENANT, vec![e], T0)
            })
            .collect();
        in_one_commit(&mut gate, jobs).await
    });
    gate.join();
    let first = one_event(&answers);

    // Sixty-four threads at once, landing in whichever commits (transactions) they meet.
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (store, barrier) = (rig.store().clone(), barrier.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                let e = event("order.paid", i, Some("order-43"));
                barrier.wait();
                runtime.block_on(store.publish(TENANT, vec![e], T0))
            })
        })
        .collect();
    let answers: Vec<Answer> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let second = one_event(&answers);
    assert_ne!(first, second, "another key is another event");

    // Two events in all, each with one delivery per endpoint, each sent once.
    assert_sent_once(&mut rig, &[first, second]);
}

/// `events` are all the tenant has, each with one delivery per endpoint, each sent once.
fn assert_sent_once(rig: &mut Rig, events: &[String]) {
    let all = Cursor {
        before: None,
        limit: 100,
    };
    let stored = rig.block_on(rig.store().list_events(TENANT, EventQuery::default(), all));
    assert_eq!(stored.unwrap().items.len(), events.len());
    for id in events {
        assert_eq!(rig.deliveries_of(id).len(), 2);
    }
    assert_eq!(rig.harness.run_once().unwrap().len(), 2 * events.len());
    assert_eq!(rig.receiver.on_path("/a").len(), events.len());
    assert_eq!(rig.receiver.on_path("/b").len(), events.len());
}

/// Every answer names the same event; exactly one of them stored it.
fn one_event(answers: &[Answer]) -> String {
    let published: Vec<&Published> = answers
        .iter()
        .map(|a| &a.as_ref().expect("publish")[0])
        .collect();
    let id = published[0].id.clone();
    assert!(published.iter().all(|p| p.id == id), "{published:?}");
    let stored = published.iter().filter(|p| !p.replayed).count();
    assert_eq!(stored, 1, "one stored, the others replayed");
    assert!(published.iter().all(|p| p.deliveries == 2), "{published:?}");
    id
}

#[test]
fn ids_are_never_reused_after_a_delete() {
    // A receiver that fails: each attempt is an attempts row (a first success would be kept
    // in its delivery's row instead, with no id of its own).
    let mut rig = Rig::new(config(), Receiver::start(|_, _| Reply::status(500)));
    // Each first row is also the table's newest, the case where SQLite would hand its id
    // out again without AUTOINCREMENT.
    let first = rig.endpoint("/a", "*");
    let published = rig.publish("job.completed", 1);
    let first_delivery = rig.deliveries_of(&published[0].id)[0];
    rig.harness.run_once().unwrap();
    let first_attempt = rig.delivery(first_delivery).1[0].id;
    // The endpoint takes its deliveries and their attempts with it.
    rig.block_on(rig.store().delete_endpoint(TENANT, first))
        .unwrap();

    let second = rig.endpoint("/b", "*");
    assert!(second > first, "endpoint {second} after {first}");
    let published = rig.publish("job.completed", 1);
    let second_delivery = rig.deliveries_of(&published[0].id)[0];
    assert!(second_delivery > first_delivery);
    rig.harness.run_once().unwrap();
    let second_attempt = rig.delivery(second_delivery).1[0].id;
    assert!(second_attempt > first_attempt);

    // API keys go with their tenant.
    let key = |name: &str| NewKey {
        tenant_id: "acme".into(),
        name: name.into(),
        prefix: format!("hk_{name}"),
        key_hash: format!("hash-of-{name}"),
    };
    let store = rig.store();
    let (before, after) = rig.block_on(async {
        store.create_tenant("acme", "Acme", T0).await.unwrap();
        let before = store.create_key(key("one"), T0).await.unwrap().id;
        store.delete_tenant("acme").await.unwrap();
        store.create_tenant("acme", "Acme", T0).await.unwrap();
        let after = store.create_key(key("two"), T0).await.unwrap().id;
        (before, after)
    });
    assert!(after > before, "key {after} after {before}");
}
