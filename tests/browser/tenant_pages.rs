//! Renaming and deleting a tenant from its admin page.

use crate::common::webdriver::{Browser, DESKTOP};
use crate::common::TestApp;
use crate::{flash, login_admin};

#[test]
fn admin_renames_and_deletes_a_tenant() {
    let app = TestApp::spawn();
    let (status, _) = app.admin(
        "POST",
        "/api/v1/tenants",
        Some(serde_json::json!({"id": "acme"})),
    );
    assert_eq!(status, 201);
    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);

    b.goto(&app.url("/admin/tenants/acme"));
    b.fill("#tenant-rename", "Acme Books");
    b.click("#rename-tenant");
    assert_eq!(flash(&b), "Tenant renamed to Acme Books.");
    let (_, tenant) = app.admin("GET", "/api/v1/tenants/acme", None);
    assert_eq!(tenant["data"]["name"], "Acme Books");

    // An empty name is refused with a message, and nothing changes.
    b.fill("#tenant-rename", "   ");
    b.click("#rename-tenant");
    assert!(flash(&b).contains("name must be"), "{}", flash(&b));
    let (_, tenant) = app.admin("GET", "/api/v1/tenants/acme", None);
    assert_eq!(tenant["data"]["name"], "Acme Books");

    // Delete asks first, then takes the tenant away.
    b.goto(&app.url("/admin/tenants/acme"));
    b.click("#delete-tenant");
    assert!(b.text("main").contains("Acme Books"));
    b.click("#confirm-delete-tenant");
    assert_eq!(flash(&b), "Tenant acme deleted.");
    let url = b.current_url();
    assert!(
        url.split('?').next().unwrap().ends_with("/admin/tenants"),
        "{url}"
    );
    let (status, _) = app.admin("GET", "/api/v1/tenants/acme", None);
    assert_eq!(status, 404);

    // The default tenant offers no delete button.
    b.goto(&app.url("/admin/tenants/default"));
    assert!(b.try_find("#delete-tenant").is_none());
}
