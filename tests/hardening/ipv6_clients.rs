// Security review (issue 23, item 7): IPv6 clients were counted per full address by the
// connection cap and the throttles, and a host routed a /64 holds 2^64 of them. They are
// now counted per network (`ipv6_client_prefix`, 64 by default). Here the clients are named
// by `X-Forwarded-For` from a trusted proxy (loopback has one IPv6 address, ::1).

use super::pages_http::Pages;
use crate::common::TestApp;

/// One wrong admin login "forwarded for" `client`; its status.
fn wrong_login(pages: &Pages, client: &str) -> u16 {
    let form = pages.get("/admin/login", "");
    let body = format!("csrf_token={}&token=wrong-{}", form.csrf(), "x".repeat(40));
    pages
        .post_with(
            "/admin/login",
            &form.cookie.unwrap(),
            &body,
            &[("x-forwarded-for", client)],
        )
        .status
}

fn one_network_shares_one_count(env: &[(&str, &str)], same: &str, other: &str) {
    let app = TestApp::spawn_with(env);
    let pages = Pages::new(&app);
    // 20 failures, each from another address of 2001:db8:1:2::/64.
    for i in 1..=20 {
        assert_eq!(wrong_login(&pages, &format!("2001:db8:1:2::{i:x}")), 401);
    }
    assert_eq!(wrong_login(&pages, same), 429, "{same} was not locked out");
    assert_eq!(
        wrong_login(&pages, other),
        401,
        "{other} was locked out too"
    );
}

#[test]
fn an_ipv6_network_is_one_client_for_the_throttles() {
    let proxy = ("HERALD_TRUSTED_PROXIES", "127.0.0.1");
    one_network_shares_one_count(&[proxy], "2001:db8:1:2:ffff::9", "2001:db8:1:3::1");
    // A shorter prefix: the neighbouring /64 is the same client, another /48 is not.
    one_network_shares_one_count(
        &[proxy, ("HERALD_IPV6_CLIENT_PREFIX", "48")],
        "2001:db8:1:3::1",
        "2001:db8:2::1",
    );
}
