//! Tenants and their API keys: not found, a duplicate id, the default tenant that cannot
//! go, paging, revocation, and key ids that never come back after their tenant is deleted.

use herald::store::{NewKey, StoreError};

use crate::{assert_newest_first_once, first, pages, Db, T0, TENANT};

contract!(
    missing_tenants_are_not_found,
    a_tenant_id_is_taken_once_and_the_default_stays,
    tenants_and_keys_page_newest_first,
    a_revoked_key_no_longer_opens_anything,
    key_ids_are_never_reused_after_their_tenant_is_deleted,
);

fn key(tenant: &str, name: &str) -> NewKey {
    NewKey {
        tenant_id: tenant.into(),
        name: name.into(),
        prefix: format!("hk_{name}"),
        key_hash: format!("hash-of-{tenant}-{name}"),
    }
}

fn not_found<T: std::fmt::Debug>(answer: Result<T, StoreError>) {
    assert!(matches!(answer, Err(StoreError::NotFound(_))), "{answer:?}");
}

fn missing_tenants_are_not_found(db: &Db) {
    let s = &db.store;
    not_found(db.on(s.get_tenant("nobody")));
    not_found(db.on(s.rename_tenant("nobody", "N")));
    not_found(db.on(s.delete_tenant("nobody")));
    not_found(db.on(s.list_keys("nobody", first(10))));
    not_found(db.on(s.create_key(key("nobody", "k"), T0)));
    not_found(db.on(s.revoke_key(TENANT, 12345, T0)));
    assert!(!db.on(s.tenant_exists("nobody")).unwrap());
    assert!(db.on(s.tenant_exists(TENANT)).unwrap());
}

fn a_tenant_id_is_taken_once_and_the_default_stays(db: &Db) {
    let s = &db.store;
    let acme = db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    assert_eq!(
        (acme.id.as_str(), acme.name.as_str(), acme.created_at),
        ("acme", "Acme", T0)
    );
    let again = db.on(s.create_tenant("acme", "Other", T0));
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        db.on(s.get_tenant("acme")).unwrap().name,
        "Acme",
        "the first one kept"
    );
    assert_eq!(
        db.on(s.rename_tenant("acme", "Acme Inc")).unwrap().name,
        "Acme Inc"
    );

    let gone = db.on(s.delete_tenant(TENANT));
    assert!(matches!(gone, Err(StoreError::Conflict(_))), "{gone:?}");
    db.on(s.delete_tenant("acme")).unwrap();
    not_found(db.on(s.get_tenant("acme")));
}

fn tenants_and_keys_page_newest_first(db: &Db) {
    let s = &db.store;
    for i in 0..6 {
        db.on(s.create_tenant(&format!("t{i}"), "T", T0)).unwrap();
        db.on(s.create_key(key(TENANT, &format!("k{i}")), T0))
            .unwrap();
    }
    let tenants = pages(3, |cursor| {
        let page = db.on(s.list_tenants(cursor)).unwrap();
        (
            page.items.iter().map(|t| t.rowid).collect(),
            page.next_cursor,
        )
    });
    assert_newest_first_once(&tenants, 7); // with the default tenant
    let keys = pages(4, |cursor| {
        let page = db.on(s.list_keys(TENANT, cursor)).unwrap();
        (page.items.iter().map(|k| k.id).collect(), page.next_cursor)
    });
    assert_newest_first_once(&keys, 6);
    assert_eq!(keys.len(), 2, "a page of 4, then 2: {keys:?}");
    // Another tenant's list holds none of them.
    assert!(db
        .on(s.list_keys("t0", first(10)))
        .unwrap()
        .items
        .is_empty());
}

fn a_revoked_key_no_longer_opens_anything(db: &Db) {
    let s = &db.store;
    let k = db.on(s.create_key(key(TENANT, "ci"), T0)).unwrap();
    assert_eq!(k.prefix, "hk_ci");
    let found = db.on(s.active_key("hash-of-default-ci")).unwrap();
    assert_eq!(found.map(|k| k.id), Some(k.id));
    assert!(db.on(s.key_is_active(TENANT, k.id)).unwrap());

    let revoked = db.on(s.revoke_key(TENANT, k.id, T0 + 5)).unwrap();
    assert_eq!(revoked.revoked_at, Some(T0 + 5));
    let twice = db.on(s.revoke_key(TENANT, k.id, T0 + 9)).unwrap();
    assert_eq!(
        twice.revoked_at,
        Some(T0 + 5),
        "revoking again keeps the first time"
    );
    assert!(db.on(s.active_key("hash-of-default-ci")).unwrap().is_none());
    assert!(!db.on(s.key_is_active(TENANT, k.id)).unwrap());
    // Another tenant cannot revoke (or see) it.
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    not_found(db.on(s.revoke_key("acme", k.id, T0)));
}

fn key_ids_are_never_reused_after_their_tenant_is_deleted(db: &Db) {
    let s = &db.store;
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    // The newest key of the table: the one SQLite would hand out again without AUTOINCREMENT.
    let before = db.on(s.create_key(key("acme", "one"), T0)).unwrap().id;
    db.on(s.delete_tenant("acme")).unwrap();
    assert!(
        db.on(s.active_key("hash-of-acme-one")).unwrap().is_none(),
        "gone with it"
    );
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    let after = db.on(s.create_key(key("acme", "two"), T0)).unwrap().id;
    assert!(after > before, "key {after} after {before}");
}
