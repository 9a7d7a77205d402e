"""A real delivery from Herald to a receiver on 127.0.0.1, checked by this package's
verify() and by the official Standard Webhooks library (PyPI ``standardwebhooks``): both
must accept what Herald sent, and both must refuse a changed body and an old timestamp."""

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Optional

from _support import HeraldTestCase, Receiver, fresh_tenant, wait_for

from herald_webhooks import WebhookVerificationError, sign, verify

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:  # pragma: no cover - .ci/run installs it
    Webhook = None

SCHEMES = ("standard", "timestamped", "body")
WRONG = "whsec_d3Jvbmcgc2VjcmV0"


def ours(secret: Any, body: bytes, headers: Dict[str, str], **options: Any) -> bool:
    try:
        verify(body, headers, secret, **options)
        return True
    except WebhookVerificationError:
        return False


class DeliveryTest(HeraldTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        _, cls.client, _ = fresh_tenant("py-delivery")
        cls.receiver = Receiver()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.receiver.close()

    def official(self, secret: str, body: bytes, headers: Dict[str, str]) -> Optional[bool]:
        if Webhook is None:
            return None
        try:
            Webhook(secret).verify(body, headers)
            return True
        except Exception:  # the library raises its own errors, and ValueError on bad input
            return False

    def assertOfficial(self, expected: bool, secret: str, body: bytes, headers: Dict[str, str]) -> None:
        result = self.official(secret, body, headers)
        if result is not None:
            self.assertEqual(result, expected)

    def delivered(self, path: str, **extra: Any) -> Any:
        hook = self.client.webhooks.create(
            url=self.receiver.url(path), events=["book.completed"], signature=list(SCHEMES), **extra
        )
        published = self.client.events.publish(
            {"event": "book.completed", "data": {"bookId": "b1", "ñ": "ü", "n": 1.5}}
        )
        request = wait_for("the delivery to arrive", lambda: (self.receiver.on(path) or [None])[0])
        return hook, published, request

    def test_both_verifiers_accept_what_herald_sent(self) -> None:
        hook, published, request = self.delivered("/all-schemes")
        body, headers = request.body, request.headers
        self.assertEqual(headers["webhook-id"], published.id)
        self.assertOfficial(True, hook.secret, body, headers)
        payload = verify(body, headers, hook.secret, scheme="standard")
        self.assertEqual(payload["data"], {"bookId": "b1", "ñ": "ü", "n": 1.5})
        for scheme in SCHEMES:
            self.assertEqual(verify(body, headers, hook.secret, scheme=scheme), payload)
        self.assertEqual(verify(body.decode(), list(headers.items()), hook.secret), payload)

        def only(*names: str) -> Dict[str, str]:
            return {k: v for k, v in headers.items() if k in names}

        self.assertEqual(verify(body, only("x-herald-timestamp", "x-herald-signature"), hook.secret), payload)
        self.assertEqual(verify(body, only("x-webhook-signature"), hook.secret), payload)
        with self.assertRaisesRegex(WebhookVerificationError, "no Herald signature"):
            verify(body, only("content-type"), hook.secret)

    def test_both_verifiers_refuse_a_changed_body_or_id(self) -> None:
        hook, _, request = self.delivered("/tampered")
        body, headers = request.body, request.headers
        changed = body.replace(b'"b1"', b'"b2"')
        self.assertNotEqual(changed, body)
        self.assertOfficial(False, hook.secret, changed, headers)
        for scheme in SCHEMES:
            self.assertFalse(ours(hook.secret, changed, headers, scheme=scheme), scheme)
            self.assertFalse(ours(WRONG, body, headers, scheme=scheme), scheme)
        other = {**headers, "webhook-id": "evt_other"}
        self.assertOfficial(False, hook.secret, body, other)
        self.assertFalse(ours(hook.secret, body, other, scheme="standard"))

    def test_both_verifiers_refuse_an_old_timestamp(self) -> None:
        hook, _, request = self.delivered("/old")
        body, headers = request.body, request.headers
        later = int(headers["webhook-timestamp"]) + 6 * 60
        for scheme in ("standard", "timestamped"):
            with self.assertRaisesRegex(WebhookVerificationError, "too old"):
                verify(body, headers, hook.secret, scheme=scheme, now=later)
        self.assertTrue(ours(hook.secret, body, headers, now=later, tolerance=600))

        moved = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)}
        self.assertOfficial(False, hook.secret, body, moved)
        self.assertFalse(ours(hook.secret, body, moved, scheme="standard"))

        # A correctly signed but old message, signed by the official library when present
        # (else by ours), is refused by both; the same message verifies at its own time.
        old = datetime.now(timezone.utc) - timedelta(minutes=10)
        old_ts = int(old.timestamp())
        if Webhook is not None:
            signature = Webhook(hook.secret).sign("msg_old", old, body.decode())
        else:
            signature = sign(body, hook.secret, msg_id="msg_old", timestamp=old_ts)["webhook-signature"]
        old_headers = {"webhook-id": "msg_old", "webhook-timestamp": str(old_ts), "webhook-signature": signature}
        self.assertOfficial(False, hook.secret, body, old_headers)
        with self.assertRaisesRegex(WebhookVerificationError, "too old"):
            verify(body, old_headers, hook.secret)
        self.assertEqual(verify(body, old_headers, hook.secret, now=old_ts), json.loads(body))

        future = sign(body, hook.secret, timestamp=int(time.time()) + 600)
        self.assertOfficial(False, hook.secret, body, future)
        with self.assertRaisesRegex(WebhookVerificationError, "future"):
            verify(body, future, hook.secret)

    def test_during_a_rotation_both_secrets_verify(self) -> None:
        hook = self.client.webhooks.create(
            url=self.receiver.url("/rotated"), events=["book.completed"], signature=list(SCHEMES)
        )
        rotated = self.client.webhooks.rotate_secret(hook.id)
        self.client.events.publish({"event": "book.completed"})
        request = wait_for("the delivery to arrive", lambda: (self.receiver.on("/rotated") or [None])[0])
        body, headers = request.body, request.headers
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 2)
        for secret in (hook.secret, rotated.secret):
            self.assertOfficial(True, secret, body, headers)
            for scheme in SCHEMES:
                self.assertTrue(ours(secret, body, headers, scheme=scheme), scheme)
        self.assertTrue(ours([WRONG, rotated.secret], body, headers))

    def test_a_plain_secret_and_a_chosen_prefix_follow_herald(self) -> None:
        hook, _, request = self.delivered("/plain", secret_key="your-secret-key")
        body, headers = request.body, request.headers
        self.assertEqual(hook.secret, "your-secret-key")
        for scheme in SCHEMES:
            self.assertTrue(ours("your-secret-key", body, headers, scheme=scheme), scheme)
        renamed = {k.replace("x-herald-", "x-nano-"): v for k, v in headers.items()}
        self.assertTrue(ours("your-secret-key", body, renamed, scheme="timestamped", prefix="X-Nano"))
        self.assertFalse(ours("your-secret-key", body, renamed, scheme="timestamped"))

    def test_the_official_library_is_here(self) -> None:
        if Webhook is None:
            self.skipTest("standardwebhooks is not installed: the cross-check ran without it")
        self.assertTrue(callable(Webhook))
