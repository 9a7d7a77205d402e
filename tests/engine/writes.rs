//! Writes that meet on the writer thread: a failing job inside a group commit, publishes
//! racing with one `Idempotency-Key`, and ids that must never come back after a delete.

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Barrier};
use std::task::Poll;
use std::thread::JoinHandle;

use herald::config::{Config, Durability};
use herald::store::sqlite::SqliteStore;
use herald::store::{Cursor, EventQuery, NewKey, Published, StoreError};

use crate::common::{Receiver, Reply};
use crate::{config, event, Rig, T0, TENANT};

/// Holds the writer thread with a job of its own, so that everything submitted meanwhile
/// queues up and forms the next group commit together.
struct Gate {
    release: mpsc::Sender<()>,
    job: JoinHandle<()>,
}

impl Gate {
    fn close(sqlite: &Arc<SqliteStore>) -> Gate {
        let (entered, writer_held) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let sqlite = sqlite.clone();
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
        Gate { release, job }
    }

    fn open(&self) {
        self.release.send(()).expect("the gate is waiting");
    }

    fn join(self) {
        self.job.join().expect("the gate's thread");
    }
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
    gate: &Gate,
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
    let Some(sqlite) = rig.sqlite() else {
        return;
    };
    rig.endpoint("/hook", "*");

    // A job that fails after writing leaves none of its writes behind.
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

    // One failing job among twenty in one commit: the other nineteen are committed.
    let gate = Gate::close(&sqlite);
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
        in_one_commit(&gate, jobs).await
    });
    gate.join();
    let after = rig.store().writer_stats();
    assert_eq!(
        after.commits - before.commits,
        2,
        "the gate's commit, then one for all 20 publishes"
    );
    assert_eq!(after.jobs - before.jobs, 21);

    assert!(
        matches!(&answers[10], Err(StoreError::Backend(m)) if m.contains("FOREIGN KEY")),
        "{:?}",
        answers[10]
    );
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

    // Durable: a store opened afresh on the file has each of the 19, with its delivery.
    let path = rig.path();
    let Rig {
        harness,
        sqlite: rigs,
        runtime,
        dir: _dir,
        ..
    } = rig;
    drop((harness, rigs, sqlite));
    let store = herald::store::open(
        &herald::config::Database::Sqlite(path.clone()),
        Durability::Full,
    )
    .expect("reopen");
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

#[test]
fn concurrent_publishes_with_one_idempotency_key_make_one_event() {
    let mut rig = Rig::new(config(), Receiver::ok());
    rig.endpoint("/a", "*");
    rig.endpoint("/b", "*");

    // Sixteen at once inside one group commit: each sees the others' uncommitted rows.
    let first = rig.sqlite().map(|sqlite| {
        let gate = Gate::close(&sqlite);
        let answers: Vec<Answer> = rig.block_on(async {
            let jobs: Vec<_> = (0..16)
                .map(|i| {
                    let e = event("order.paid", i, Some("order-42"));
                    rig.store().publish(TENANT, vec![e], T0)
                })
                .collect();
            in_one_commit(&gate, jobs).await
        });
        gate.join();
        one_event(&answers)
    });

    // Sixteen threads at once, landing in whichever commits (transactions) they meet.
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
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
    if let Some(first) = &first {
        assert_ne!(first, &second, "another key is another event");
    }

    // Two events in all (one on PostgreSQL), each with one delivery per endpoint, each
    // sent once.
    let events: Vec<String> = first.into_iter().chain([second]).collect();
    assert_sent_once(&mut rig, &events);
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
