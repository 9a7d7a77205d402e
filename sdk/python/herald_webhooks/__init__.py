"""herald-webhooks: a client for Herald's API and the receiver-side signature check.

    from herald_webhooks import Herald
    client = Herald(api_key="...", base_url="http://127.0.0.1:8080")
    webhook = client.webhooks.create(url="https://example.com/hook", events=["book.completed"])
"""

from ._client import Herald
from ._errors import HeraldError, WebhookVerificationError
from ._objects import HeraldObject
from ._pagination import Page
from ._resources import UNSET
from ._verify import sign, verify

__version__ = "0.1.0"

# Tracebacks and reprs name the public path (herald_webhooks.HeraldError), not the module
# that happens to define the class.
for _public in (Herald, HeraldError, HeraldObject, Page, WebhookVerificationError):
    _public.__module__ = __name__
del _public

__all__ = [
    "Herald",
    "HeraldError",
    "HeraldObject",
    "Page",
    "UNSET",
    "WebhookVerificationError",
    "sign",
    "verify",
]
