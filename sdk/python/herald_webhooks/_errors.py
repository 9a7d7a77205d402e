"""The two errors the package raises: HeraldError for anything the API (or the way to it)
refused, WebhookVerificationError for a delivery that does not prove it came from Herald."""

from typing import Any


class HeraldError(Exception):
    """An API call that did not succeed.

    ``code`` is the envelope's code (``not_found``, ``validation_error``, ...), or
    ``connection_error``, ``timeout``, ``http_error``, ``invalid_response`` when no envelope
    came back; ``status`` is the HTTP status, 0 when no answer came back.
    """

    def __init__(self, message: str, *, code: str, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"HeraldError(status={self.status}, code={self.code!r}, message={self.message!r})"

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status}, {self.code})"


class WebhookVerificationError(Exception):
    """A webhook whose signature, timestamp or headers do not check out."""


__all__ = ["HeraldError", "WebhookVerificationError"]
