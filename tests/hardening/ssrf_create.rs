// Review finding: the create-time SSRF check only recognises canonical IP literals. Other
// spellings that the resolver turns into loopback / link-local addresses are accepted
// (the connect-time guard still blocks them, but the standard asks for a 400 at create
// and PATCH). Nothing is published here, so no traffic is sent anywhere.

use crate::common::TestApp;
use serde_json::json;

#[test]
fn odd_spellings_of_private_addresses_are_refused_at_create() {
    let app = TestApp::spawn_with(&[("HERALD_ALLOW_PRIVATE_TARGETS", "false")]);
    let mut accepted = Vec::new();
    for url in [
        "http://2130706433/",       // 127.0.0.1 as one decimal number
        "http://0x7f.0.0.1/",       // hex octet
        "http://0x7f000001/",       // one hex number
        "http://0177.0.0.1/",       // octal octet
        "http://127.1/",            // shorthand
        "http://127.0.0.1./",       // trailing dot
        "http://0/",                // 0.0.0.0
        "http://[fe80::1%25eth0]/", // link-local with a zone id
        "http://[::127.0.0.1]/",    // IPv4-compatible IPv6
    ] {
        let (status, body) = app.admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({ "url": url, "events": ["never.matches"], "status": "paused" })),
        );
        if status != 400 {
            accepted.push(format!("{url} -> {status} {body}"));
        }
    }
    assert!(accepted.is_empty(), "accepted:\n{}", accepted.join("\n"));
}
