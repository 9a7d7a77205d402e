"""Receiver side: checks that a request came from Herald, for the three signature schemes
Herald sends (DESIGN.md, "What a delivery looks like"):

- ``standard``: webhook-id / webhook-timestamp / webhook-signature (``v1,<base64>``
  entries, space-separated), HMAC-SHA256 of ``id.timestamp.body`` keyed with the base64
  decoding of a ``whsec_`` secret (a secret without the prefix is used as its raw bytes, as
  Herald does).
- ``timestamped``: ``<Prefix>-Timestamp`` and ``<Prefix>-Signature: v1=<hex>`` of
  ``timestamp.body``.
- ``body``: ``X-Webhook-Signature``: the bare hex HMAC of the body.

The last two key the HMAC with the secret string exactly as the user holds it, and during
a secret rotation carry the previous secret's signature in a second ``<header>-Previous``
header, which is checked too. Comparisons are constant-time (``hmac.compare_digest``); the
two timestamped schemes refuse a timestamp further than ``tolerance`` seconds from now
(either way), which is what stops a captured request from being replayed later.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"
DEFAULT_PREFIX = "X-Herald"
DEFAULT_BODY_HEADER = "X-Webhook-Signature"
DEFAULT_TOLERANCE = 300
HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
UNIX_SECONDS = re.compile(r"[0-9]{1,15}")

HeadersLike = Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]


def verify(
    body: Union[bytes, str],
    headers: HeadersLike,
    secret: Union[str, Sequence[str]],
    *,
    scheme: Optional[str] = None,
    prefix: str = DEFAULT_PREFIX,
    body_header: str = DEFAULT_BODY_HEADER,
    tolerance: float = DEFAULT_TOLERANCE,
    now: Optional[float] = None,
) -> Any:
    """Verifies a delivery and returns its parsed JSON payload; raises
    WebhookVerificationError.

    ``body`` is the raw request body (unparsed); ``headers`` any mapping or list of pairs
    (any case); ``secret`` one secret or several to try; ``scheme`` by default the first
    whose headers are present (standard, timestamped, body); ``now`` unix seconds instead of
    the clock.
    """
    raw = body_bytes(body)
    secrets = secret_list(secret)
    h = header_map(headers)
    names = header_names(prefix, body_header, lower=True)
    scheme = scheme or detect(h, names)
    if scheme == "standard":
        msg_id, timestamp, signatures = required(h, ["webhook-id", "webhook-timestamp", "webhook-signature"])
        check_timestamp(timestamp, tolerance, now)
        decoded = only([b64decode(e[3:]) for e in signatures.split() if e.startswith("v1,")])
        signed = f"{msg_id}.{timestamp}.".encode() + raw
        ok = any(hmac.compare_digest(mac(standard_key(s), signed), b) for s in secrets for b in decoded)
    elif scheme == "timestamped":
        timestamp, _ = required(h, [names["timestamp"], names["signature"]])
        check_timestamp(timestamp, tolerance, now)
        values = present(h, [names["signature"], names["signature"] + "-previous"])
        decoded = only([hexdecode(v[3:]) for v in values if v.startswith("v1=")])
        signed = f"{timestamp}.".encode() + raw
        ok = any(hmac.compare_digest(mac(s.encode(), signed), b) for s in secrets for b in decoded)
    elif scheme == "body":
        required(h, [names["body"]])
        decoded = only([hexdecode(v) for v in present(h, [names["body"], names["body"] + "-previous"])])
        ok = any(hmac.compare_digest(mac(s.encode(), raw), b) for s in secrets for b in decoded)
    else:
        raise ValueError(f"unknown signature scheme {scheme!r}; expected standard, timestamped or body")
    if not ok:
        raise WebhookVerificationError(f"no {scheme} signature matches the secret")
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON") from None


def sign(
    body: Union[bytes, str],
    secret: str,
    *,
    scheme: str = "standard",
    msg_id: Optional[str] = None,
    timestamp: Optional[int] = None,
    prefix: str = DEFAULT_PREFIX,
    body_header: str = DEFAULT_BODY_HEADER,
) -> Dict[str, str]:
    """The headers Herald would send for ``body`` with ``secret`` under one scheme: for
    testing a receiver without a running Herald."""
    raw = body_bytes(body)
    ts = int(time.time()) if timestamp is None else int(timestamp)
    names = header_names(prefix, body_header, lower=False)
    if scheme == "standard":
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        tag = mac(standard_key(secret), f"{msg_id}.{ts}.".encode() + raw)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + base64.b64encode(tag).decode(),
        }
    if scheme == "timestamped":
        tag = mac(secret.encode(), f"{ts}.".encode() + raw)
        return {names["timestamp"]: str(ts), names["signature"]: "v1=" + tag.hex()}
    if scheme == "body":
        return {names["body"]: mac(secret.encode(), raw).hex()}
    raise ValueError(f"unknown signature scheme {scheme!r}")


def mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64 decoding of a ``whsec_`` secret, else its bytes."""
    if secret.startswith(SECRET_PREFIX):
        decoded = b64decode(secret[len(SECRET_PREFIX) :])
        if decoded is not None:
            return decoded
    return secret.encode()


def b64decode(text: str) -> Optional[bytes]:
    if len(text) % 4 != 0:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def only(candidates: List[Optional[bytes]]) -> List[bytes]:
    """The signatures that decoded; a malformed one simply matches nothing."""
    return [c for c in candidates if c is not None]


def hexdecode(text: str) -> Optional[bytes]:
    return bytes.fromhex(text) if HEX_SHA256.fullmatch(text) else None


def header_names(prefix: str, body_header: str, *, lower: bool) -> Dict[str, str]:
    names = {
        "timestamp": f"{prefix}-Timestamp",
        "signature": f"{prefix}-Signature",
        "body": body_header,
    }
    return {k: v.lower() for k, v in names.items()} if lower else names


def detect(h: Dict[str, str], names: Dict[str, str]) -> str:
    if "webhook-signature" in h:
        return "standard"
    if names["signature"] in h:
        return "timestamped"
    if names["body"] in h:
        return "body"
    raise WebhookVerificationError("no Herald signature header in the request")


def required(h: Dict[str, str], names: List[str]) -> List[str]:
    missing = [n for n in names if n not in h]
    if missing:
        raise WebhookVerificationError("missing header " + ", ".join(missing))
    return [h[n] for n in names]


def present(h: Dict[str, str], names: List[str]) -> List[str]:
    return [h[n].strip() for n in names if n in h]


def check_timestamp(value: str, tolerance: float, now: Optional[float]) -> None:
    if not UNIX_SECONDS.fullmatch(value.strip()):
        raise WebhookVerificationError("the timestamp header is not unix seconds")
    age = int(time.time() if now is None else now) - int(value)
    if age > tolerance:
        raise WebhookVerificationError("the timestamp is too old")
    if age < -tolerance:
        raise WebhookVerificationError("the timestamp is too far in the future")


def body_bytes(body: Union[bytes, str]) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError("pass the raw request body (str or bytes), not parsed JSON")


def secret_list(secret: Union[str, Sequence[str]]) -> List[str]:
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or any(not isinstance(s, str) or not s for s in secrets):
        raise TypeError("secret must be a non-empty string (or a list of them)")
    return secrets


def header_map(headers: HeadersLike) -> Dict[str, str]:
    """Lower-cased names; the first value of a repeated header."""
    items = headers.items() if hasattr(headers, "items") else headers
    out: Dict[str, str] = {}
    for name, value in items:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = value[0]
        out.setdefault(str(name).lower(), str(value))
    return out
