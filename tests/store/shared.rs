//! What replicas share that one process could keep in memory, and the deployment's
//! settings: the same rules whether a backend keeps them in memory (SQLite) or in a table
//! (PostgreSQL). The rules themselves are unit-tested beside them (`pages::flash`,
//! `server::throttle`); these cases pin what every backend must answer.

use std::net::IpAddr;

use herald::pages::flash::{self, Flash};
use herald::server::throttle::{Check, Door};

use crate::{Db, T0};

contract!(
    settings_keep_the_first_value_and_count_atomically,
    a_flash_is_taken_once_by_its_own_session_while_fresh,
    a_sessions_flood_loses_its_own_oldest_notice_never_a_secret,
    the_throttle_locks_an_address_at_one_door_only,
);

fn settings_keep_the_first_value_and_count_atomically(db: &Db) {
    let s = &db.store;
    assert_eq!(db.on(s.setting_get("contract")).unwrap(), None);
    assert_eq!(
        db.on(s.setting_get_or_insert("contract", "first")).unwrap(),
        "first"
    );
    assert_eq!(
        db.on(s.setting_get_or_insert("contract", "second"))
            .unwrap(),
        "first"
    );
    assert_eq!(
        db.on(s.setting_get("contract")).unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(db.on(s.setting_increment("runs")).unwrap(), 1);
    assert_eq!(db.on(s.setting_increment("runs")).unwrap(), 2);
    db.on(s.heartbeat(T0)).unwrap();
    db.on(s.heartbeat(T0 + 1)).unwrap();
}

fn a_flash_is_taken_once_by_its_own_session_while_fresh(db: &Db) {
    let s = &db.store;
    let secret = Flash::notice("Endpoint created").reveal("Signing secret", "whsec_abc".into());
    assert!(db
        .on(s.flash_room_for_reveal("alice", "tenant-alice", T0))
        .unwrap());
    let ticket = db
        .on(s.flash_put("alice", "tenant-alice", secret, T0))
        .unwrap();
    assert_ne!(ticket, flash::LOST);
    assert!(
        db.on(s.flash_take("bob", &ticket, T0)).unwrap().is_none(),
        "not another session's"
    );
    let taken = db
        .on(s.flash_take("alice", &ticket, T0 + 1))
        .unwrap()
        .expect("alice's");
    assert_eq!(taken.reveal.map(|r| r.value).as_deref(), Some("whsec_abc"));
    assert!(
        db.on(s.flash_take("alice", &ticket, T0 + 2))
            .unwrap()
            .is_none(),
        "once only"
    );

    let stale = db
        .on(s.flash_put("alice", "tenant-alice", Flash::notice("Saved"), T0))
        .unwrap();
    let late = db
        .on(s.flash_take("alice", &stale, T0 + flash::TTL_MS))
        .unwrap();
    assert!(
        late.is_none(),
        "a message waits for its page {} ms, no longer",
        flash::TTL_MS
    );
}

fn a_sessions_flood_loses_its_own_oldest_notice_never_a_secret(db: &Db) {
    let s = &db.store;
    let bob = db
        .on(s.flash_put("bob", "tenant-bob", Flash::notice("Bob's"), T0))
        .unwrap();
    let mut tickets = Vec::new();
    for i in 0..flash::PER_SESSION {
        let f = Flash::notice(format!("secret {i}")).reveal("API key", format!("hk_{i}"));
        tickets.push(db.on(s.flash_put("alice", "tenant-alice", f, T0)).unwrap());
    }
    // Alice's session is full of secrets: no room for another, and a notice is lost.
    assert!(!db
        .on(s.flash_room_for_reveal("alice", "tenant-alice", T0))
        .unwrap());
    assert_eq!(
        db.on(s.flash_put("alice", "tenant-alice", Flash::notice("more"), T0))
            .unwrap(),
        flash::LOST
    );
    for ticket in &tickets {
        assert!(
            db.on(s.flash_take("alice", ticket, T0)).unwrap().is_some(),
            "no secret pushed out"
        );
    }
    // A session of notices: the newest pushes out its own oldest.
    let notices: Vec<String> = (0..=flash::PER_SESSION)
        .map(|i| {
            db.on(s.flash_put("alice", "tenant-alice", Flash::notice(format!("n{i}")), T0))
                .unwrap()
        })
        .collect();
    assert!(
        db.on(s.flash_take("alice", &notices[0], T0))
            .unwrap()
            .is_none(),
        "the oldest went"
    );
    assert!(db
        .on(s.flash_take("alice", &notices[1], T0))
        .unwrap()
        .is_some());
    assert!(
        db.on(s.flash_take("bob", &bob, T0)).unwrap().is_some(),
        "another session's stays"
    );
}

fn the_throttle_locks_an_address_at_one_door_only(db: &Db) {
    let s = &db.store;
    let ip: Option<IpAddr> = Some([192, 0, 2, 7].into());
    let limit = Door::AdminLogin.lock_after();
    for n in 1..=limit {
        assert_eq!(
            db.on(s.throttle_begin(Door::AdminLogin, ip, T0)).unwrap(),
            Check::Open
        );
        let failures = db
            .on(s.throttle_failed(Door::AdminLogin, ip, T0))
            .unwrap()
            .expect("counted");
        assert_eq!(failures.count, n);
    }
    let locked = db
        .on(s.throttle_begin(Door::AdminLogin, ip, T0 + 1))
        .unwrap();
    assert!(
        matches!(locked, Check::Locked(f) if f.count == limit),
        "{locked:?}"
    );
    // Another door, and another address, are counted apart.
    assert_eq!(
        db.on(s.throttle_begin(Door::PortalLogin, ip, T0)).unwrap(),
        Check::Open
    );
    db.on(s.throttle_succeeded(Door::PortalLogin, ip)).unwrap();
    let other: Option<IpAddr> = Some([192, 0, 2, 8].into());
    assert_eq!(
        db.on(s.throttle_begin(Door::AdminLogin, other, T0))
            .unwrap(),
        Check::Open
    );
    // Slots held by attempts still being checked make the next one wait, not fail.
    for _ in 1..limit {
        assert_eq!(
            db.on(s.throttle_begin(Door::AdminLogin, other, T0))
                .unwrap(),
            Check::Open
        );
    }
    assert_eq!(
        db.on(s.throttle_begin(Door::AdminLogin, other, T0))
            .unwrap(),
        Check::Busy
    );
    db.on(s.throttle_succeeded(Door::AdminLogin, other))
        .unwrap();
    assert_eq!(
        db.on(s.throttle_begin(Door::AdminLogin, other, T0))
            .unwrap(),
        Check::Open
    );
    // Failures are forgotten a while after the last one.
    let later = T0 + herald::server::throttle::FORGET_MS;
    assert_eq!(
        db.on(s.throttle_begin(Door::AdminLogin, ip, later))
            .unwrap(),
        Check::Open
    );
}
