//! TLS to PostgreSQL: `sslmode=require` encrypts and verifies the server's certificate
//! (against `sslrootcert`, else the public roots); no `sslmode` is a plain connection.
//!
//! Runs when `HERALD_TEST_PG_URL` and `HERALD_TEST_PG_CA` are set: `.ci/postgres.sh` starts
//! its cluster with TLS on and a throwaway CA.

mod common;

use common::{PgDatabase, TestApp};
use herald::store::postgres::Target;

fn server_and_ca() -> Option<(String, String)> {
    match (PgDatabase::server(), std::env::var("HERALD_TEST_PG_CA")) {
        (Some(url), Ok(ca)) => Some((url, ca)),
        _ => {
            eprintln!("skipped: HERALD_TEST_PG_URL and HERALD_TEST_PG_CA are not set (bash .ci/run sets them)");
            None
        }
    }
}

/// Whether the connection `url` makes is encrypted, as the server sees it.
fn encrypted(url: &str) -> Result<bool, String> {
    let mut client = Target::parse(url)
        .map_err(|e| e.to_string())?
        .connect()
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[test]
fn sslmode_require_encrypts_and_verifies_the_server() {
    let Some((url, ca)) = server_and_ca() else {
        return;
    };
    assert_eq!(encrypted(&url), Ok(false), "no sslmode: plain");
    assert_eq!(
        encrypted(&format!("{url}?sslmode=require&sslrootcert={ca}")),
        Ok(true),
        "sslmode=require with the server's CA"
    );
    // The test CA is not among the public roots: a server that cannot prove who it is
    // gets no password.
    let refused = encrypted(&format!("{url}?sslmode=require")).unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
    assert!(
        refused.contains("sslrootcert="),
        "the fix is named: {refused}"
    );
    let bad = Target::parse(&format!("{url}?sslmode=sometimes"))
        .err()
        .unwrap()
        .to_string();
    assert!(bad.contains("sslmode=sometimes"), "{bad}");
}

#[test]
fn herald_serves_over_tls_to_its_database() {
    let Some((_, ca)) = server_and_ca() else {
        return;
    };
    let db = PgDatabase::create();
    let url = format!("{}?sslmode=verify-full&sslrootcert={ca}", db.url());
    let key = common::random_secret_key();
    let app = TestApp::spawn_on(&url, &[("HERALD_SECRET_KEY", &key)]);
    // A real write and the dispatcher's heartbeat, both through the TLS connections.
    let (status, body) = app.call("GET", "/readyz", None, None);
    assert_eq!(status, 200, "{body}");
    let mut client = db.client();
    let tls: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
             WHERE a.datname = $1 AND s.ssl",
            &[&db.name],
        )
        .unwrap()
        .get(0);
    assert!(
        tls >= 1,
        "Herald's connections to its database are encrypted"
    );
}
