"""``Herald(api_key=..., base_url=...)``: the resources of the API under one object, in the
shape of the seed's SDK (``client.webhooks.create``, ``client.webhooks.list``, ...)."""

import os
from typing import Optional

from ._resources import Deliveries, Events, EventTypes, Health, Tenants, Webhooks
from ._transport import Transport

DEFAULT_BASE_URL = "http://127.0.0.1:8080"


class Herald:
    """A Herald client.

    ``api_key``: admin token or tenant key (default ``$HERALD_API_KEY``); ``base_url``:
    default ``$HERALD_BASE_URL``, else http://127.0.0.1:8080; ``tenant``: the tenant the
    admin token acts on (sent as X-Herald-Tenant); ``timeout`` in seconds per attempt;
    ``max_retries``: extra attempts of idempotent calls.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        tenant: Optional[str] = None,
        timeout: float = 30.0,
        max_retries: int = 2,
    ) -> None:
        self.api_key = api_key if api_key is not None else os.environ.get("HERALD_API_KEY")
        self.base_url = base_url or os.environ.get("HERALD_BASE_URL") or DEFAULT_BASE_URL
        self.tenant = tenant
        self.timeout = timeout
        self.max_retries = max_retries
        transport = Transport(
            api_key=self.api_key,
            base_url=self.base_url,
            tenant=tenant,
            timeout=timeout,
            max_retries=max_retries,
        )
        self.webhooks = Webhooks(transport)
        self.events = Events(transport)
        self.deliveries = Deliveries(transport)
        self.event_types = EventTypes(transport)
        self.tenants = Tenants(transport)
        self.health = Health(transport)

    def with_tenant(self, tenant: str) -> "Herald":
        """The same client acting on another tenant (admin token only)."""
        return Herald(
            self.api_key,
            self.base_url,
            tenant=tenant,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def __repr__(self) -> str:
        return f"Herald(base_url={self.base_url!r}, tenant={self.tenant!r})"
