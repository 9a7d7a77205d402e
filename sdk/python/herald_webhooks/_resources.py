"""One class per API resource, named as the API names them; request fields are keyword
arguments with the API's names, answers are HeraldObjects (dicts with attribute access)."""

import uuid
from datetime import datetime
from typing import Any, Dict, Mapping, Optional, Sequence, Union
from urllib.parse import quote

from ._objects import HeraldObject, wrap
from ._pagination import Page
from ._transport import Transport, time_value

V1 = "/api/v1"
TimeInput = Union[str, int, float, datetime]
Payload = Union[Mapping[str, Any], str, bytes]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks an update field that is left as it is (None sends ``null``)."""


def enc(value: Any) -> str:
    return quote(str(value), safe="")


def fields(**values: Any) -> Dict[str, Any]:
    """The request body: the fields that were given."""
    return {k: v for k, v in values.items() if v is not UNSET}


class _Resource:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _call(self, method: str, path: str, **options: Any) -> HeraldObject:
        """One call whose answer is a JSON object."""
        data, _, _ = self._transport.request(method, path, **options)
        return HeraldObject(wrap(data))

    def _list(self, path: str, query: Mapping[str, Any]) -> "Page[HeraldObject]":
        """A list route: its first page; iterating over the page walks all the pages."""
        query = {k: v for k, v in query.items() if v is not None}

        def fetch(cursor: Optional[str]) -> "Page[HeraldObject]":
            data, envelope, _ = self._transport.request(
                "GET", path, query={**query, "cursor": cursor}, idempotent=True
            )
            return Page(wrap(data), envelope.get("next_cursor"), fetch)

        return fetch(query.pop("cursor", None))


class Webhooks(_Resource):
    def create(
        self,
        *,
        events: Sequence[str],
        url: Optional[str] = None,
        type: Optional[str] = None,
        secret_key: Optional[str] = None,
        description: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        status: Optional[str] = None,
        signature: Optional[Sequence[str]] = None,
        disable_after: Optional[str] = None,
        client_certificate: Optional[str] = None,
        client_key: Optional[str] = None,
        ca_bundle: Optional[str] = None,
        proxy: Optional[str] = None,
        auth: Optional[Mapping[str, Any]] = None,
        transformation: Optional[str] = None,
        filter: Optional[str] = None,
    ) -> HeraldObject:
        """Registers an endpoint; the answer carries its ``secret``, shown only here and on
        rotate_secret. ``type="poll"``: no url; the consumer reads it with ``poll``.
        ``auth``: ``{"type": "basic", "username", "password"}``, ``{"type": "bearer",
        "token"}`` or ``{"type": "oauth2_client_credentials", "token_url", "client_id",
        "client_secret", "scope"?, "audience"?}``; its secret is write-only (answered as
        ``********``).

        ``client_certificate`` and ``client_key`` (PEM) are presented to the endpoint on the
        TLS handshake (mTLS; the key is write-only); ``ca_bundle`` (PEM) replaces the web's
        roots for it; ``proxy`` is its own forward proxy URL, or ``"none"``. ``filter``: a
        JSONPath filter expression over the payload, such as
        ``$.data.amount > 1000 && $.status == "paid"``."""
        body = {
            k: v
            for k, v in dict(
                type=type,
                url=url,
                events=list(events),
                secret_key=secret_key,
                description=description,
                headers=dict(headers) if headers is not None else None,
                status=status,
                signature=list(signature) if signature is not None else None,
                disable_after=disable_after,
                client_certificate=client_certificate,
                client_key=client_key,
                ca_bundle=ca_bundle,
                proxy=proxy,
                auth=dict(auth) if auth is not None else None,
                transformation=transformation,
                filter=filter,
            ).items()
            if v is not None
        }
        return self._call("POST", f"{V1}/webhooks", body=body)

    def list(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None, status: Optional[str] = None
    ) -> "Page[HeraldObject]":
        return self._list(f"{V1}/webhooks", dict(limit=limit, cursor=cursor, status=status))

    def get(self, id: int) -> HeraldObject:
        return self._call("GET", f"{V1}/webhooks/{enc(id)}", idempotent=True)

    def update(
        self,
        id: int,
        *,
        url: Any = UNSET,
        events: Any = UNSET,
        description: Any = UNSET,
        headers: Any = UNSET,
        status: Any = UNSET,
        signature: Any = UNSET,
        disable_after: Any = UNSET,
        client_certificate: Any = UNSET,
        client_key: Any = UNSET,
        ca_bundle: Any = UNSET,
        proxy: Any = UNSET,
        auth: Any = UNSET,
        transformation: Any = UNSET,
        filter: Any = UNSET,
    ) -> HeraldObject:
        """Sets the given fields; ``signature=None`` or ``disable_after=None`` returns to the
        deployment's setting; ``auth=None`` removes the endpoint's auth, and a secret sent
        as ``********`` keeps the stored one. ``client_certificate`` without ``client_key``
        keeps the stored key (``None`` removes both); ``ca_bundle=None`` returns to the web's
        roots, ``proxy=None`` to the deployment's proxy (a masked password keeps the stored
        one). ``transformation=None`` removes it; ``filter=None`` removes the payload filter."""
        body = fields(
            url=url,
            events=events,
            description=description,
            headers=headers,
            status=status,
            signature=signature,
            disable_after=disable_after,
            client_certificate=client_certificate,
            client_key=client_key,
            ca_bundle=ca_bundle,
            proxy=proxy,
            auth=auth,
            transformation=transformation,
            filter=filter,
        )
        return self._call("PATCH", f"{V1}/webhooks/{enc(id)}", body=body, idempotent=True)

    def delete(self, id: int) -> HeraldObject:
        return self._call("DELETE", f"{V1}/webhooks/{enc(id)}", idempotent=True)

    def test(self, id: int) -> HeraldObject:
        """Sends a ``webhook.test`` event to this endpoint now."""
        return self._call("POST", f"{V1}/webhooks/{enc(id)}/test")

    def rotate_secret(self, id: int) -> HeraldObject:
        """A new secret; the previous one keeps signing beside it for the grace period."""
        return self._call("POST", f"{V1}/webhooks/{enc(id)}/rotate-secret")

    def test_transformation(
        self,
        id: int,
        *,
        payload: Any,
        event: Optional[str] = None,
        transformation: Optional[str] = None,
    ) -> HeraldObject:
        """Runs the endpoint's transformation (or ``transformation``, unsaved) on a sample
        payload in the sandbox deliveries use; ``outcome`` is ``send``, ``cancel`` or
        ``error``. Nothing is sent or saved."""
        body = {
            k: v
            for k, v in dict(payload=payload, event=event, transformation=transformation).items()
            if v is not None or k == "payload"
        }
        return self._call(
            "POST", f"{V1}/webhooks/{enc(id)}/transformation/test", body=body, idempotent=True
        )

    def recover(self, id: int, *, since: TimeInput) -> HeraldObject:
        """Re-queues this endpoint's failed deliveries created since a time."""
        return self._call("POST", f"{V1}/webhooks/{enc(id)}/recover", body={"since": time_value(since)})

    def replay(
        self,
        id: int,
        *,
        since: TimeInput,
        until: Optional[TimeInput] = None,
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
        dry_run: bool = False,
    ) -> HeraldObject:
        """Creates a delivery for every event of [since, until) that this endpoint matches
        and has no delivery for (published while it was disabled, or before it existed),
        oldest first; at most ``limit`` (10000) deliveries a call: pass the answer's ``next`` as
        ``cursor``, with the same ``since`` and ``until``, to go on. ``dry_run=True`` counts
        and creates nothing. Safe to repeat: an event never gets a second delivery."""
        body: Dict[str, Any] = {"since": time_value(since)}
        if until is not None:
            body["until"] = time_value(until)
        if cursor is not None:
            body["cursor"] = cursor
        if limit is not None:
            body["limit"] = limit
        query = {"dry_run": "true"} if dry_run else None
        return self._call(
            "POST", f"{V1}/webhooks/{enc(id)}/replay", body=body, query=query, idempotent=True
        )

    def deliveries(
        self,
        id: int,
        *,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        status: Optional[str] = None,
        event_id: Optional[str] = None,
        since: Optional[TimeInput] = None,
        until: Optional[TimeInput] = None,
    ) -> "Page[HeraldObject]":
        """This endpoint's deliveries."""
        query = dict(limit=limit, cursor=cursor, status=status, event_id=event_id, since=since, until=until)
        return self._list(f"{V1}/webhooks/{enc(id)}/deliveries", query)

    def poll(self, id: int, *, cursor: Optional[str] = None, limit: Optional[int] = None) -> HeraldObject:
        """A poll endpoint's pending deliveries, oldest first: ``{data, next_cursor}``, each
        with its exact ``body`` and signature ``headers``. Passing ``cursor`` (a previous
        ``next_cursor``) acknowledges every delivery up to it."""
        query = {k: v for k, v in dict(cursor=cursor, limit=limit).items() if v is not None}
        data, envelope, _ = self._transport.request(
            "GET", f"{V1}/webhooks/{enc(id)}/poll", query=query, idempotent=True
        )
        return HeraldObject(wrap({"data": data, "next_cursor": envelope.get("next_cursor")}))


def publish_key(idempotency_key: Any) -> Optional[str]:
    """The Idempotency-Key a publish carries: the caller's, none when the caller passes
    ``None`` (the publish is then sent once, never retried), or else a fresh random one.
    Herald may answer 503 after it has in fact committed (a crash between the commit and
    the answer), so a retry without a key could publish twice; with the same key it
    answers the first result. One key per call, reused by every retry of that call."""
    if idempotency_key is UNSET:
        return f"sdk-{uuid.uuid4()}"
    if idempotency_key is None:
        return None
    return str(idempotency_key)


class Events(_Resource):
    def publish(self, event: Payload, *, idempotency_key: Optional[str] = UNSET) -> HeraldObject:
        """Publishes one payload (a dict with a string ``event``, or its JSON text sent as
        is). It carries an Idempotency-Key (``publish_key``), so its retries never publish
        twice."""
        return self._publish(f"{V1}/events", event, publish_key(idempotency_key))

    def publish_batch(
        self, events: Sequence[Mapping[str, Any]], *, idempotency_key: Optional[str] = UNSET
    ) -> HeraldObject:
        """Publishes up to 1000 payloads atomically, with a key as ``publish`` has."""
        return self._publish(
            f"{V1}/events/batch", {"events": list(events)}, publish_key(idempotency_key)
        )

    def _publish(self, path: str, body: Any, key: Optional[str]) -> HeraldObject:
        data, _, response = self._transport.request(
            "POST",
            path,
            body=body,
            headers={} if key is None else {"Idempotency-Key": key},
            idempotent=key is not None,
        )
        result = HeraldObject(wrap(data))
        result["replayed"] = response.headers.get("idempotent-replayed") == "true"
        return result

    def list(
        self,
        *,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        event: Optional[str] = None,
        since: Optional[TimeInput] = None,
        until: Optional[TimeInput] = None,
    ) -> "Page[HeraldObject]":
        return self._list(f"{V1}/events", dict(limit=limit, cursor=cursor, event=event, since=since, until=until))

    def get(self, id: str) -> HeraldObject:
        """One event with its deliveries."""
        return self._call("GET", f"{V1}/events/{enc(id)}", idempotent=True)


class Deliveries(_Resource):
    def list(
        self,
        *,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        status: Optional[str] = None,
        endpoint_id: Optional[int] = None,
        event_id: Optional[str] = None,
        since: Optional[TimeInput] = None,
        until: Optional[TimeInput] = None,
    ) -> "Page[HeraldObject]":
        query = dict(
            limit=limit,
            cursor=cursor,
            status=status,
            endpoint_id=endpoint_id,
            event_id=event_id,
            since=since,
            until=until,
        )
        return self._list(f"{V1}/deliveries", query)

    def get(self, id: int) -> HeraldObject:
        """One delivery with its ``attempt_log``."""
        return self._call("GET", f"{V1}/deliveries/{enc(id)}", idempotent=True)

    def retry(self, id: int) -> HeraldObject:
        """Queues a finished delivery again now."""
        return self._call("POST", f"{V1}/deliveries/{enc(id)}/retry")


class EventTypes(_Resource):
    def list(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> "Page[HeraldObject]":
        return self._list(f"{V1}/event-types", dict(limit=limit, cursor=cursor))

    def create(
        self,
        *,
        name: str,
        description: Optional[str] = None,
        example: Optional[Mapping[str, Any]] = None,
        schema: Optional[Mapping[str, Any]] = None,
    ) -> HeraldObject:
        """Creates or replaces a catalogue entry (admin), so it is safe to retry. A
        ``schema`` (JSON Schema draft 2020-12) is enforced at publish: a payload that fails
        it is refused with 400 ``schema_violation``."""
        body: Dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        if example is not None:
            body["example"] = dict(example)
        if schema is not None:
            body["schema"] = dict(schema)
        return self._call("POST", f"{V1}/event-types", body=body, idempotent=True)

    def get(self, name: str) -> HeraldObject:
        return self._call("GET", f"{V1}/event-types/{enc(name)}", idempotent=True)

    def delete(self, name: str) -> HeraldObject:
        return self._call("DELETE", f"{V1}/event-types/{enc(name)}", idempotent=True)


class Keys(_Resource):
    def list(
        self, tenant_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> "Page[HeraldObject]":
        return self._list(f"{V1}/tenants/{enc(tenant_id)}/keys", dict(limit=limit, cursor=cursor))

    def create(self, tenant_id: str, *, name: Optional[str] = None) -> HeraldObject:
        """A new API key for a tenant; its ``token`` is shown only in this answer."""
        body = {} if name is None else {"name": name}
        return self._call("POST", f"{V1}/tenants/{enc(tenant_id)}/keys", body=body)

    def revoke(self, tenant_id: str, key_id: int) -> HeraldObject:
        return self._call("DELETE", f"{V1}/tenants/{enc(tenant_id)}/keys/{enc(key_id)}", idempotent=True)


class Tenants(_Resource):
    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self.keys = Keys(transport)

    def list(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> "Page[HeraldObject]":
        return self._list(f"{V1}/tenants", dict(limit=limit, cursor=cursor))

    def create(self, *, id: str, name: Optional[str] = None) -> HeraldObject:
        body = {"id": id} if name is None else {"id": id, "name": name}
        return self._call("POST", f"{V1}/tenants", body=body)

    def get(self, id: str) -> HeraldObject:
        return self._call("GET", f"{V1}/tenants/{enc(id)}", idempotent=True)

    def update(self, id: str, *, name: str) -> HeraldObject:
        """Renames a tenant."""
        return self._call("PATCH", f"{V1}/tenants/{enc(id)}", body={"name": name}, idempotent=True)

    def delete(self, id: str) -> HeraldObject:
        """Deletes a tenant and everything it owns."""
        return self._call("DELETE", f"{V1}/tenants/{enc(id)}", idempotent=True)


class Health(_Resource):
    def check(self) -> HeraldObject:
        """``/healthz``: the process answers."""
        return self._call("GET", "/healthz", idempotent=True)

    def ready(self) -> HeraldObject:
        """``/readyz``: the database takes a write and the dispatcher runs (asked once)."""
        return self._call("GET", "/readyz")

    def metrics(self) -> str:
        """``/metrics``: the Prometheus text."""
        text, _, _ = self._transport.request("GET", "/metrics", expect="text", idempotent=True)
        return str(text)


__all__ = ["Webhooks", "Events", "Deliveries", "EventTypes", "Tenants", "Keys", "Health", "UNSET"]
