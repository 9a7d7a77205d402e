"""The one place that talks HTTP (urllib, so the package needs nothing installed): builds
the request, unwraps the ``{"success", "data"}`` envelope, raises HeraldError for
refusals, and retries what is safe to retry.

Retries: a call marked idempotent (reads, deletes, field-setting updates, publishes, which
carry an Idempotency-Key by default) is sent again after a network error, a timeout, a 429
or a 5xx, with exponential back-off and jitter; ``Retry-After`` wins when the server sends
it. A non-idempotent call (a publish whose key the caller turned off, "send test", rotate)
is sent once, because sending it twice could do the thing twice.
"""

import email.utils
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ._errors import HeraldError

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0

Query = Mapping[str, Any]
Body = Union[None, str, bytes, Any]


class Response:
    """Status, headers and the raw body of one HTTP answer."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body


class Transport:
    def __init__(
        self,
        *,
        api_key: Optional[str],
        base_url: str,
        tenant: Optional[str],
        timeout: float,
        max_retries: int,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.timeout = timeout
        self.max_retries = max_retries

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Query] = None,
        body: Body = None,
        headers: Optional[Dict[str, str]] = None,
        idempotent: bool = False,
        expect: str = "json",
    ) -> Tuple[Any, Dict[str, Any], Response]:
        """Sends one API call; returns (data, envelope, response). With ``expect="text"``
        the data is the body as text and the envelope is empty."""
        url = self.base_url + path + query_string(query)
        data = encode_body(body)
        all_headers = self._headers(headers or {}, data is not None)
        attempt = 0
        while True:
            retries_left = idempotent and attempt < self.max_retries
            try:
                response = self._send(method, url, data, all_headers)
            except HeraldError:
                if retries_left:
                    time.sleep(backoff(attempt))
                    attempt += 1
                    continue
                raise
            if retries_left and response.status in RETRYABLE_STATUS:
                wait = retry_after(response.headers.get("retry-after"))
                time.sleep(backoff(attempt) if wait is None else wait)
                attempt += 1
                continue
            return read(response, expect)

    def _headers(self, extra: Dict[str, str], has_body: bool) -> Dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "herald-webhooks-python/0.1.0"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.tenant:
            headers["X-Herald-Tenant"] = self.tenant
        if has_body:
            headers["Content-Type"] = "application/json"
        headers.update(extra)
        return headers

    def _send(self, method: str, url: str, data: Optional[bytes], headers: Dict[str, str]) -> Response:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return Response(answer.status, dict(answer.headers.items()), answer.read())
        except urllib.error.HTTPError as answer:
            with answer:
                return Response(answer.code, dict(answer.headers.items()), answer.read())
        except (socket.timeout, TimeoutError) as e:
            raise HeraldError(f"{method} {url} timed out", code="timeout", status=0) from e
        except urllib.error.URLError as e:
            timed_out = isinstance(e.reason, (socket.timeout, TimeoutError))
            raise HeraldError(
                f"{method} {url} {'timed out' if timed_out else f'failed ({e.reason})'}",
                code="timeout" if timed_out else "connection_error",
                status=0,
            ) from e
        except (OSError, http.client.HTTPException) as e:  # a dropped connection
            raise HeraldError(f"{method} {url} failed ({e!r})", code="connection_error", status=0) from e


def query_string(query: Optional[Query]) -> str:
    if not query:
        return ""
    pairs = [(k, time_value(v)) for k, v in query.items() if v is not None]
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def time_value(value: Any) -> str:
    """A query or body value as the API reads it; datetimes become RFC 3339 (naive = UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return str(value.astimezone(timezone.utc).isoformat()).replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value))
    return str(value)


def encode_body(body: Body) -> Optional[bytes]:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def read(response: Response, expect: str) -> Tuple[Any, Dict[str, Any], Response]:
    text = response.body.decode("utf-8", errors="replace")
    try:
        envelope = json.loads(text)
    except ValueError:
        envelope = None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if not 200 <= response.status < 300:
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            raise HeraldError(
                str(error.get("message") or error["code"]),
                code=error["code"],
                status=response.status,
                body=envelope,
            )
        raise HeraldError(
            f"HTTP {response.status} without an error envelope: {text[:200]}",
            code="http_error",
            status=response.status,
            body=text,
        )
    if expect == "text":
        return text, {}, response
    if not isinstance(envelope, dict) or envelope.get("success") is not True:
        raise HeraldError(
            f"HTTP {response.status} answered something that is not Herald's envelope",
            code="invalid_response",
            status=response.status,
            body=text,
        )
    return envelope.get("data"), envelope, response


def backoff(attempt: int) -> float:
    """Exponential back-off with jitter: ~0.5 s, 1 s, 2 s, ... capped at 8 s."""
    base = min(MAX_BACKOFF, 0.5 * float(2**attempt))
    return base * (0.75 + random.random() * 0.25)


def retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` in seconds (seconds or an HTTP date), capped; None when absent."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
