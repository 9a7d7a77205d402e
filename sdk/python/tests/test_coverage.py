"""The SDK cannot fall behind the API: every operation in the live server's OpenAPI
document must map to a method of the client in this table, and every row of the table
must still be an operation of the document."""

import json
import urllib.request
from functools import reduce

from _support import HeraldTestCase, admin_client, base_url

METHODS = {
    "GET /api/v1/webhooks": "webhooks.list",
    "POST /api/v1/webhooks": "webhooks.create",
    "GET /api/v1/webhooks/{id}": "webhooks.get",
    "PATCH /api/v1/webhooks/{id}": "webhooks.update",
    "DELETE /api/v1/webhooks/{id}": "webhooks.delete",
    "POST /api/v1/webhooks/{id}/test": "webhooks.test",
    "POST /api/v1/webhooks/{id}/rotate-secret": "webhooks.rotate_secret",
    "POST /api/v1/webhooks/{id}/transformation/test": "webhooks.test_transformation",
    "GET /api/v1/webhooks/{id}/poll": "webhooks.poll",
    "POST /api/v1/webhooks/{id}/recover": "webhooks.recover",
    "POST /api/v1/webhooks/{id}/replay": "webhooks.replay",
    "GET /api/v1/webhooks/{id}/deliveries": "webhooks.deliveries",
    "POST /api/v1/events": "events.publish",
    "POST /api/v1/events/batch": "events.publish_batch",
    "GET /api/v1/events": "events.list",
    "GET /api/v1/events/{id}": "events.get",
    "GET /api/v1/deliveries": "deliveries.list",
    "GET /api/v1/deliveries/{id}": "deliveries.get",
    "POST /api/v1/deliveries/{id}/retry": "deliveries.retry",
    "GET /api/v1/event-types": "event_types.list",
    "POST /api/v1/event-types": "event_types.create",
    "GET /api/v1/event-types/{name}": "event_types.get",
    "DELETE /api/v1/event-types/{name}": "event_types.delete",
    "GET /api/v1/tenants": "tenants.list",
    "POST /api/v1/tenants": "tenants.create",
    "GET /api/v1/tenants/{id}": "tenants.get",
    "PATCH /api/v1/tenants/{id}": "tenants.update",
    "DELETE /api/v1/tenants/{id}": "tenants.delete",
    "GET /api/v1/tenants/{id}/keys": "tenants.keys.list",
    "POST /api/v1/tenants/{id}/keys": "tenants.keys.create",
    "DELETE /api/v1/tenants/{id}/keys/{key_id}": "tenants.keys.revoke",
    "GET /healthz": "health.check",
    "GET /readyz": "health.ready",
    "GET /metrics": "health.metrics",
}

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class CoverageTest(HeraldTestCase):
    def test_every_openapi_operation_has_an_sdk_method(self) -> None:
        with urllib.request.urlopen(base_url() + "/api/v1/openapi.json", timeout=10) as answer:
            document = json.load(answer)
        operations = [
            f"{method.upper()} {path}"
            for path, item in document["paths"].items()
            for method in item
            if method in HTTP_METHODS
        ]
        self.assertGreaterEqual(len(operations), 30)
        missing = [op for op in operations if op not in METHODS]
        self.assertEqual(missing, [], "operations without an SDK method: add them to the SDK and to this table")
        stale = [op for op in METHODS if op not in operations]
        self.assertEqual(stale, [], "rows of this table that the API no longer has")

        client = admin_client()
        for operation, name in METHODS.items():
            method = reduce(lambda owner, part: getattr(owner, part, None), name.split("."), client)
            self.assertTrue(callable(method), f"{operation}: client.{name} is not a method")
