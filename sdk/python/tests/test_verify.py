"""verify() and sign() on fixed inputs: the vectors of src/signing.rs (computed with
openssl) and the Standard Webhooks spec's own example. No server needed."""

import unittest
from email.message import Message

from herald_webhooks import WebhookVerificationError, sign, verify

EVENT_ID = "evt_01J9Z6Q4N3XK8R2V5T7W0YB1CD"
TIMESTAMP = 1_735_689_600
BODY = '{"event":"job.completed","task_id":"task_xxx","data":{"credits_charged":6}}'
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PREVIOUS = "your-secret-key"

STANDARD_SIG = "v1,FWqBgsr5O811Klyl6qe9bh2CzK1V6i9mVL9bTWCeFF4="
STANDARD_SIG_PREVIOUS = "v1,7N7zhrYrfCBaHsi5di9vuXWHC2Gz1aqQprN221j5I04="
TIMESTAMPED_SIG = "v1=8007f29400258568ae9a532582a794192ba809a5ca6ed76f3dd980df738ee3ed"
TIMESTAMPED_SIG_PREVIOUS = "v1=d31b880cafaadccb5f99d7cfb937fdfd5dfd3bd12c837429223e2ec690593fee"
BODY_SIG = "12a698e691b986be3561fd0ad6e25c5bbc7e4a800fd7f6be6b55ee787284bb47"
BODY_SIG_PREVIOUS = "3abb1ccad93c8430b25ad269247b7650b9d2cb68f1bd70d3f505586af0107277"

ALL_HEADERS = {
    "webhook-id": EVENT_ID,
    "webhook-timestamp": str(TIMESTAMP),
    "webhook-signature": f"{STANDARD_SIG} {STANDARD_SIG_PREVIOUS}",
    "X-Herald-Timestamp": str(TIMESTAMP),
    "X-Herald-Signature": TIMESTAMPED_SIG,
    "X-Herald-Signature-Previous": TIMESTAMPED_SIG_PREVIOUS,
    "X-Webhook-Signature": BODY_SIG,
    "X-Webhook-Signature-Previous": BODY_SIG_PREVIOUS,
}


class VerifyTest(unittest.TestCase):
    def test_sign_gives_the_signatures_herald_gives(self) -> None:
        self.assertEqual(
            sign(BODY, SECRET, msg_id=EVENT_ID, timestamp=TIMESTAMP),
            {"webhook-id": EVENT_ID, "webhook-timestamp": str(TIMESTAMP), "webhook-signature": STANDARD_SIG},
        )
        self.assertEqual(
            sign(BODY, SECRET, scheme="timestamped", timestamp=TIMESTAMP),
            {"X-Herald-Timestamp": str(TIMESTAMP), "X-Herald-Signature": TIMESTAMPED_SIG},
        )
        self.assertEqual(sign(BODY, SECRET, scheme="body"), {"X-Webhook-Signature": BODY_SIG})
        signed = sign(BODY, PREVIOUS, msg_id=EVENT_ID, timestamp=TIMESTAMP)
        self.assertEqual(signed["webhook-signature"], STANDARD_SIG_PREVIOUS)

    def test_the_standard_webhooks_spec_example(self) -> None:
        headers = {
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        }
        self.assertEqual(verify('{"test": 2432232314}', headers, SECRET, now=1614265330), {"test": 2432232314})

    def test_each_scheme_with_the_rotation_signatures_in_their_places(self) -> None:
        for scheme in ("standard", "timestamped", "body"):
            for secret in (SECRET, PREVIOUS):
                payload = verify(BODY, ALL_HEADERS, secret, scheme=scheme, now=TIMESTAMP)
                self.assertEqual(payload["task_id"], "task_xxx", f"{scheme} {secret}")
            with self.assertRaisesRegex(WebhookVerificationError, "signature matches"):
                verify(BODY, ALL_HEADERS, "whsec_b3RoZXI=", scheme=scheme, now=TIMESTAMP)
            with self.assertRaisesRegex(WebhookVerificationError, "signature matches"):
                verify(BODY + " ", ALL_HEADERS, SECRET, scheme=scheme, now=TIMESTAMP)
        self.assertTrue(verify(BODY, ALL_HEADERS, SECRET, scheme="body", now=TIMESTAMP + 86_400))
        with self.assertRaisesRegex(WebhookVerificationError, "too old"):
            verify(BODY, ALL_HEADERS, SECRET, scheme="timestamped", now=TIMESTAMP + 301)
        self.assertTrue(verify(BODY, ALL_HEADERS, SECRET, scheme="timestamped", now=TIMESTAMP + 299))
        with self.assertRaisesRegex(WebhookVerificationError, "future"):
            verify(BODY, ALL_HEADERS, SECRET, scheme="standard", now=TIMESTAMP - 301)

    def test_headers_in_any_case_and_shape(self) -> None:
        signed = sign(BODY, SECRET, msg_id=EVENT_ID, timestamp=TIMESTAMP)
        message = Message()  # what http.server hands a handler as self.headers
        for name, value in signed.items():
            message[name.upper()] = value
        self.assertTrue(verify(BODY.encode(), message, SECRET, now=TIMESTAMP))
        self.assertTrue(verify(bytearray(BODY.encode()), list(signed.items()), SECRET, now=TIMESTAMP))

    def test_malformed_input_is_refused_never_accepted(self) -> None:
        signed = sign(BODY, SECRET, msg_id=EVENT_ID, timestamp=TIMESTAMP)
        bad = ["", "v1,", "v2,FWqBgsr5O811Klyl6qe9bh2CzK1V6i9mVL9bTWCeFF4=", "v1,FWqB", "v1,!!!!", "v1,FWqBgsr5O8"]
        for signature in bad:
            with self.assertRaisesRegex(WebhookVerificationError, "no standard"):
                verify(BODY, {**signed, "webhook-signature": signature}, SECRET, now=TIMESTAMP)
        with self.assertRaisesRegex(WebhookVerificationError, "unix seconds"):
            verify(BODY, {**signed, "webhook-timestamp": "1e9"}, SECRET, now=TIMESTAMP)
        for value in (BODY_SIG[:62], f"v1={BODY_SIG}", " ".join(BODY_SIG[i : i + 2] for i in range(0, 64, 2))):
            with self.assertRaisesRegex(WebhookVerificationError, "no body signature"):
                verify(BODY, {"X-Webhook-Signature": value}, SECRET)
        with self.assertRaisesRegex(WebhookVerificationError, "missing header x-herald-timestamp"):
            verify(BODY, {"X-Herald-Signature": TIMESTAMPED_SIG}, SECRET)
        with self.assertRaises(TypeError):
            verify({"event": "x"}, signed, SECRET)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            verify(BODY, signed, "")
        with self.assertRaises(ValueError):
            verify(BODY, signed, SECRET, scheme="nano")
