"""The retry policy, against a scripted stub on 127.0.0.1 (the live Herald cannot be made
to answer 503 or drop a connection on demand): idempotent calls are retried on network
errors, 429 and 5xx, honouring Retry-After; a publish carries an Idempotency-Key (its own
random one unless the caller gives one, or turns it off with None) and is retried with it."""

import json
import threading
import time
import unittest
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List

from herald_webhooks import Herald, HeraldError

Handler = Callable[[BaseHTTPRequestHandler], None]


def answer(status: int, body: Any, headers: Dict[str, str] = {}) -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        text = (body if isinstance(body, str) else json.dumps(body)).encode()
        h.send_response(status)
        for name, value in {"Content-Length": str(len(text)), **headers}.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(text)

    return handle


def ok(data: Any) -> Handler:
    return answer(200, {"success": True, "data": data})


def fail(status: int, headers: Dict[str, str] = {}) -> Handler:
    error = {"code": "storage_unavailable", "message": "retry later"}
    return answer(status, {"success": False, "error": error}, headers)


def drop(h: BaseHTTPRequestHandler) -> None:
    h.close_connection = True
    h.connection.close()


def hang(h: BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)


class Stub:
    """Serves ``script[n]`` for the n-th request; records every request."""

    def __init__(self, script: List[Handler]) -> None:
        self.requests: List[Dict[str, Any]] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                requests.append({"method": self.command, "path": self.path, "headers": headers, "body": body})
                script[min(len(requests), len(script)) - 1](self)

            do_GET = do_POST = do_DELETE = do_PATCH = handle_one

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.client = Herald("k", f"http://127.0.0.1:{self.server.server_address[1]}", timeout=2.0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RetryTest(unittest.TestCase):
    def stub(self, *script: Handler) -> Stub:
        stub = Stub(list(script))
        self.addCleanup(stub.close)
        return stub

    def test_a_read_is_retried_after_503_and_429_honouring_retry_after(self) -> None:
        stub = self.stub(fail(503, {"Retry-After": "1"}), fail(429), ok({"id": 1}))
        started = time.monotonic()
        self.assertEqual(stub.client.webhooks.get(1), {"id": 1})
        self.assertEqual(len(stub.requests), 3)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        self.assertEqual(stub.requests[0]["headers"]["authorization"], "Bearer k")

    def test_a_read_is_retried_after_a_dropped_connection(self) -> None:
        stub = self.stub(drop, ok([]))
        self.assertEqual(stub.client.events.list().data, [])
        self.assertEqual(len(stub.requests), 2)

    def test_retries_stop_after_max_retries(self) -> None:
        stub = self.stub(fail(500))
        with self.assertRaises(HeraldError) as caught:
            stub.client.deliveries.get(7)
        self.assertEqual((caught.exception.status, caught.exception.code), (500, "storage_unavailable"))
        self.assertEqual(len(stub.requests), 3)

    def test_a_publish_carries_its_own_random_key_reused_on_a_retry_after_503(self) -> None:
        published = ok({"id": "evt_1", "event": "a.b", "deliveries": 0})
        stub = self.stub(fail(503), published, published, fail(503), published)
        self.assertEqual(stub.client.events.publish({"event": "a.b"}).id, "evt_1")
        stub.client.events.publish({"event": "a.b"})
        stub.client.events.publish_batch([{"event": "a.b"}])
        keys = [r["headers"]["idempotency-key"] for r in stub.requests]
        self.assertEqual(len(keys), 5)
        self.assertRegex(keys[0], r"^sdk-[0-9a-f-]{36}$")
        self.assertEqual(keys[1], keys[0], "the retry after the 503 sends the same key")
        self.assertNotEqual(keys[2], keys[0], "another call, another key")
        self.assertEqual(keys[4], keys[3], "a batch keeps its key across its retry too")
        self.assertEqual(len({keys[0], keys[2], keys[3]}), 3)

    def test_a_publish_whose_key_is_turned_off_is_sent_once_without_one(self) -> None:
        stub = self.stub(fail(503), ok({"id": "evt_1"}))
        with self.assertRaises(HeraldError):
            stub.client.events.publish({"event": "a.b"}, idempotency_key=None)
        self.assertEqual(len(stub.requests), 1)
        self.assertNotIn("idempotency-key", stub.requests[0]["headers"])

    def test_a_publish_with_a_key_is_retried_with_the_same_key(self) -> None:
        stub = self.stub(drop, fail(502), ok({"id": "evt_1", "event": "a.b", "deliveries": 0}))
        published = stub.client.events.publish({"event": "a.b"}, idempotency_key="k-1")
        self.assertEqual(published.id, "evt_1")
        self.assertEqual([r["headers"]["idempotency-key"] for r in stub.requests], ["k-1"] * 3)
        self.assertEqual([r["body"] for r in stub.requests], ['{"event":"a.b"}'] * 3)

    def test_create_test_rotate_retry_are_not_retried(self) -> None:
        stub = self.stub(fail(503))
        client = stub.client
        for call in (
            lambda: client.webhooks.create(url="https://x", events=["*"]),
            lambda: client.webhooks.test(1),
            lambda: client.webhooks.rotate_secret(1),
            lambda: client.deliveries.retry(1),
        ):
            with self.assertRaises(HeraldError):
                call()
        self.assertEqual(len(stub.requests), 4)

    def test_answers_that_are_not_the_envelope_and_timeouts(self) -> None:
        stub = self.stub(answer(502, "<h1>Bad gateway</h1>"), answer(200, "hello"), hang)
        once = Herald("k", stub.client.base_url, max_retries=0, timeout=0.3)
        expected = [(502, "http_error"), (200, "invalid_response"), (0, "timeout")]
        for status, code in expected:
            with self.assertRaises(HeraldError) as caught:
                once.health.check()
            self.assertEqual((caught.exception.status, caught.exception.code), (status, code))

    def test_tenant_query_and_paths_as_the_api_spells_them(self) -> None:
        stub = self.stub(ok([]))
        since = datetime(1970, 1, 1, tzinfo=timezone.utc)
        stub.client.with_tenant("acme").deliveries.list(endpoint_id=3, event_id="evt_1", since=since)
        stub.client.event_types.get("a:b/c")
        first, second = stub.requests
        self.assertEqual(first["headers"]["x-herald-tenant"], "acme")
        self.assertEqual(first["path"], "/api/v1/deliveries?endpoint_id=3&event_id=evt_1&since=1970-01-01T00%3A00%3A00Z")
        self.assertEqual(second["path"], "/api/v1/event-types/a%3Ab%2Fc")
        self.assertNotIn("x-herald-tenant", second["headers"])
