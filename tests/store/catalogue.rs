//! The catalogue of event types: a declarative upsert that keeps the first creation time,
//! not found, the form's whole list by name, and the API's pages.

use herald::store::{NewEventType, StoreError};

use crate::{assert_newest_first_once, pages, Db, T0};

contract!(
    an_event_type_is_upserted_by_name,
    event_types_list_by_name_and_page_newest_first
);

fn kind(name: &str, description: &str) -> NewEventType {
    NewEventType {
        name: name.into(),
        description: description.into(),
        example: Some(r#"{"id":1}"#.into()),
        schema: Some(r#"{"type":"object"}"#.into()),
    }
}

fn an_event_type_is_upserted_by_name(db: &Db) {
    let s = &db.store;
    let missing = db.on(s.get_event_type("order.paid"));
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let created = db
        .on(s.upsert_event_type(kind("order.paid", "Paid"), T0))
        .unwrap();
    assert_eq!(
        created.example.as_ref().map(|e| e.get()),
        Some(r#"{"id":1}"#)
    );
    assert_eq!(
        created.schema.as_ref().map(|e| e.get()),
        Some(r#"{"type":"object"}"#),
        "the schema is kept"
    );

    let replaced = db
        .on(s.upsert_event_type(kind("order.paid", "Settled"), T0 + 1))
        .unwrap();
    assert_eq!(replaced.description, "Settled");
    assert_eq!(
        replaced.created_at, T0,
        "an upsert keeps the first creation time"
    );
    assert_eq!(db.on(s.all_event_types()).unwrap().len(), 1);

    db.on(s.delete_event_type("order.paid")).unwrap();
    let twice = db.on(s.delete_event_type("order.paid"));
    assert!(matches!(twice, Err(StoreError::NotFound(_))), "{twice:?}");
}

fn event_types_list_by_name_and_page_newest_first(db: &Db) {
    let s = &db.store;
    for name in ["b.two", "c.three", "a.one", "e.five", "d.four"] {
        db.on(s.upsert_event_type(kind(name, ""), T0)).unwrap();
    }
    let names: Vec<String> = db
        .on(s.all_event_types())
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a.one", "b.two", "c.three", "d.four", "e.five"]);
    let pages = pages(2, |cursor| {
        let page = db.on(s.list_event_types(cursor)).unwrap();
        (
            page.items.iter().map(|t| t.rowid).collect(),
            page.next_cursor,
        )
    });
    assert_newest_first_once(&pages, 5);
    let newest = db.on(s.list_event_types(crate::first(1))).unwrap().items;
    assert_eq!(newest[0].name, "d.four", "newest is the last created");
}
