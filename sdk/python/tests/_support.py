"""Shared by the test files: where the live Herald is (tests/sdk.rs starts it and passes
HERALD_TEST_URL and HERALD_TEST_ADMIN_TOKEN), a fresh tenant per test class, a recording
receiver on 127.0.0.1, and small helpers. The tests are unittest classes, so they run under
pytest and under ``python3 -m unittest`` alike."""

import os
import random
import string
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

from herald_webhooks import Herald, HeraldError


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise unittest.SkipTest(f"{name} is not set: run these tests through `cargo test --test sdk`")
    return value


def base_url() -> str:
    return need("HERALD_TEST_URL")


def admin_token() -> str:
    return need("HERALD_TEST_ADMIN_TOKEN")


def admin_client(**options: Any) -> Herald:
    return Herald(admin_token(), base_url(), **options)


def suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def fresh_tenant(label: str) -> Tuple[str, Herald, Herald]:
    """A new tenant: (its id, the admin client acting on it, the admin client)."""
    admin = admin_client()
    tenant_id = f"{label}-{suffix()}"
    admin.tenants.create(id=tenant_id, name=f"SDK test {label}")
    return tenant_id, admin.with_tenant(tenant_id), admin


def wait_for(what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.025)


class HeraldTestCase(unittest.TestCase):
    def assertHeraldError(self, status: int, code: str, call: Callable[[], Any]) -> HeraldError:
        with self.assertRaises(HeraldError) as caught:
            call()
        error = caught.exception
        self.assertEqual((error.status, error.code), (status, code), error.message)
        self.assertTrue(error.message)
        return error


class Received:
    def __init__(self, path: str, headers: Dict[str, str], body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.body = body


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request's raw body and headers;
    ``reply(path)`` gives the status (200 by default)."""

    def __init__(self, reply: Optional[Callable[[str], int]] = None) -> None:
        self.requests: List[Received] = []
        answer = reply or (lambda path: 200)
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                requests.append(Received(self.path, headers, body))
                self.send_response(answer(self.path))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> List[Received]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
