"""Every client method against the live Herald, with the answers and refusals it gives."""

import time
from datetime import datetime, timedelta, timezone

from _support import HeraldTestCase, Receiver, admin_client, admin_token, base_url, fresh_tenant, suffix, wait_for

from herald_webhooks import Herald, HeraldError, HeraldObject, Page, verify


class ClientTest(HeraldTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tenant_id, cls.client, cls.admin = fresh_tenant("py-client")
        cls.receiver = Receiver(lambda path: 500 if path == "/fails" else 200)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.receiver.close()

    # webhooks

    def test_webhooks_create_get_list_update_delete(self) -> None:
        client, receiver = self.client, self.receiver
        created = client.webhooks.create(
            url=receiver.url("/hooks"),
            events=["book.completed", "translation.error"],
            description="made by the Python SDK",
        )
        self.assertIsInstance(created, HeraldObject)
        self.assertIsInstance(created.id, int)
        self.assertEqual(created["id"], created.id)
        self.assertTrue(created.secret.startswith("whsec_"))
        self.assertEqual(created.status, "active")
        self.assertEqual(created.tenant_id, self.tenant_id)
        self.assertEqual(created.events, ["book.completed", "translation.error"])

        got = client.webhooks.get(created.id)
        self.assertEqual(got.url, receiver.url("/hooks"))
        self.assertNotIn("secret", got)

        page = client.webhooks.list()
        self.assertIsInstance(page, Page)
        self.assertIn(created.id, [w.id for w in page.data])

        updated = client.webhooks.update(created.id, status="paused", events=["book.*"])
        self.assertEqual((updated.status, updated.events), ("paused", ["book.*"]))
        self.assertEqual([w.id for w in client.webhooks.list(status="paused").data], [created.id])
        self.assertEqual(client.webhooks.update(created.id, signature=["body"]).signature, ["body"])
        self.assertIsNone(client.webhooks.update(created.id, signature=None).signature)

        self.assertEqual(client.webhooks.delete(created.id), {"id": created.id})
        self.assertHeraldError(404, "not_found", lambda: client.webhooks.get(created.id))

    def test_an_endpoint_proxy_is_answered_masked_and_kept(self) -> None:
        client = self.client
        hook = client.webhooks.create(
            url=self.receiver.url("/proxied"), events=["*"], proxy="http://u:pw@127.0.0.1:3128"
        )
        self.assertEqual(hook.proxy, "http://u:********@127.0.0.1:3128")
        self.assertIsNone(hook.client_certificate)
        self.assertIsNone(hook.ca_bundle)
        kept = client.webhooks.update(hook.id, proxy=hook.proxy, description="kept")
        self.assertEqual(kept.proxy, hook.proxy)
        self.assertEqual(client.webhooks.update(hook.id, proxy="none").proxy, "none")
        self.assertIsNone(client.webhooks.update(hook.id, proxy=None).proxy)
        self.assertHeraldError(
            400, "validation_error", lambda: client.webhooks.update(hook.id, ca_bundle="not a PEM")
        )
        client.webhooks.delete(hook.id)

    def test_webhook_auth_is_write_only_and_none_removes_it(self) -> None:
        client = self.client
        created = client.webhooks.create(
            url=self.receiver.url("/auth"),
            events=["auth.py"],
            auth={"type": "bearer", "token": "py-t0ken-secret"},
        )
        self.assertEqual(created.auth, {"type": "bearer", "token": "********"})
        self.assertNotIn("py-t0ken-secret", str(client.webhooks.get(created.id)))
        basic = client.webhooks.update(created.id, auth={"type": "basic", "username": "py", "password": "pw"})
        self.assertEqual(basic.auth, {"type": "basic", "username": "py", "password": "********"})
        self.assertIsNone(client.webhooks.update(created.id, auth=None).auth)
        client.webhooks.delete(created.id)

    def test_a_poll_endpoint_answers_signed_events_and_the_cursor_acknowledges(self) -> None:
        client = self.client
        hook = client.webhooks.create(type="poll", events=["poll.py"])
        self.assertEqual((hook.type, hook.url), ("poll", None))
        published = [client.events.publish({"event": "poll.py", "n": n}).id for n in (1, 2, 3)]
        first = client.webhooks.poll(hook.id, limit=2)
        self.assertEqual([d.event_id for d in first.data], published[:2])
        for d in first.data:
            verify(d.body, dict(d.headers), hook.secret, scheme="standard")
        second = client.webhooks.poll(hook.id, cursor=first.next_cursor)
        self.assertEqual([d.event_id for d in second.data], published[2:])
        self.assertEqual(client.deliveries.get(first.data[0].delivery_id).status, "succeeded")
        client.webhooks.delete(hook.id)

    def test_a_chosen_secret_key_is_used_as_given(self) -> None:
        hook = self.client.webhooks.create(url=self.receiver.url("/a"), events=["*"], secret_key="your-secret-key")
        self.assertEqual(hook.secret, "your-secret-key")
        self.client.webhooks.delete(hook.id)

    def test_transformation_set_try_remove(self) -> None:
        source = "function handler(w) { w.payload = { n: w.payload.n + 1 }; return w; }"
        hook = self.client.webhooks.create(url=self.receiver.url("/shaped"), events=["*"], transformation=source)
        self.assertEqual(hook.transformation, source)
        trial = self.client.webhooks.test_transformation(hook.id, payload={"n": 41})
        self.assertEqual(trial.outcome, "send")
        self.assertEqual(trial.body, '{"n":42}')
        failed = self.client.webhooks.test_transformation(
            hook.id, payload={}, transformation='function handler(w) { throw new Error("nope"); }'
        )
        self.assertEqual(failed.outcome, "error")
        self.assertIn("nope", failed.error)
        with self.assertRaises(HeraldError) as refused:
            self.client.webhooks.create(url=self.receiver.url("/x"), events=["*"], transformation="function handler(")
        self.assertEqual(refused.exception.status, 400)
        removed = self.client.webhooks.update(hook.id, transformation=None)
        self.assertIsNone(removed.transformation)
        self.client.webhooks.delete(hook.id)

    def test_webhooks_test_rotate_deliveries_recover(self) -> None:
        client = self.client
        hook = client.webhooks.create(url=self.receiver.url("/fails"), events=["order.paid"])
        sent = client.webhooks.test(hook.id)
        self.assertEqual(sent.event, "webhook.test")
        self.assertTrue(sent.event_id.startswith("evt_"))

        rotated = client.webhooks.rotate_secret(hook.id)
        self.assertEqual(rotated.id, hook.id)
        self.assertTrue(rotated.secret.startswith("whsec_"))
        self.assertNotEqual(rotated.secret, hook.secret)

        # The receiver answers 500 on /fails; with the test server's 100ms schedule the
        # delivery ends `failed`, and recover queues it again.
        failed = wait_for(
            "the test delivery to fail",
            lambda: (lambda d: d if d.status == "failed" else None)(client.deliveries.get(sent.delivery_id)),
        )
        self.assertGreaterEqual(len(failed.attempt_log), 2)
        self.assertEqual(failed.attempt_log[0].status_code, 500)

        self.assertEqual([d.id for d in client.webhooks.deliveries(hook.id).data], [sent.delivery_id])
        self.assertEqual(client.webhooks.deliveries(hook.id, status="succeeded").data, [])

        since = datetime.now(timezone.utc) - timedelta(minutes=1)
        self.assertEqual(client.webhooks.recover(hook.id, since=since), {"id": hook.id, "recovered": 1})
        self.assertEqual(client.webhooks.recover(hook.id, since="2000-01-01T00:00:00Z").id, hook.id)
        self.assertEqual(client.webhooks.recover(hook.id, since=int(time.time()) - 60).id, hook.id)
        client.webhooks.delete(hook.id)

    def test_webhooks_filter_and_replay(self) -> None:
        client = self.client
        since = datetime.now(timezone.utc) - timedelta(seconds=1)
        missed = client.events.publish({"event": "refund.made", "amount": 500})
        client.events.publish({"event": "refund.made", "amount": 5})
        hook = client.webhooks.create(
            url=self.receiver.url("/replayed"), events=["refund.*"], filter="$.amount > 100", status="paused"
        )
        self.assertEqual(hook.filter, "$.amount > 100")
        dry = client.webhooks.replay(hook.id, since=since, dry_run=True)
        self.assertEqual((dry.dry_run, dry.count, dry.event_ids, dry.next), (True, 1, [missed.id], None))
        done = client.webhooks.replay(hook.id, since=since, until=int(time.time()) + 5, limit=10)
        self.assertEqual(done.count, 1)
        self.assertEqual(client.webhooks.replay(hook.id, since=since).count, 0)
        self.assertHeraldError(400, "validation_error", lambda: client.webhooks.update(hook.id, filter="$.amount >"))
        self.assertIsNone(client.webhooks.update(hook.id, filter=None).filter)
        client.webhooks.delete(hook.id)

    # events

    def test_events_publish_get_list(self) -> None:
        client = self.client
        hook = client.webhooks.create(url=self.receiver.url("/events"), events=["invoice.*"])
        published = client.events.publish({"event": "invoice.paid", "data": {"amount": 42}})
        self.assertTrue(published.id.startswith("evt_"))
        self.assertEqual((published.event, published.deliveries, published.replayed), ("invoice.paid", 1, False))

        event = client.events.get(published.id)
        self.assertEqual(event.payload.data.amount, 42)
        self.assertRegex(event.payload.timestamp, r"^\d{4}-\d\d-\d\dT")
        self.assertEqual([d.endpoint_id for d in event.deliveries], [hook.id])

        client.events.publish({"event": "invoice.sent"})
        self.assertEqual([e.id for e in client.events.list(event="invoice.paid").data], [published.id])
        self.assertEqual(client.events.list(until="2000-01-01T00:00:00Z").data, [])
        client.webhooks.delete(hook.id)

    def test_an_idempotency_key_returns_the_first_event(self) -> None:
        key = f"order-{suffix()}"
        first = self.client.events.publish({"event": "order.paid", "n": 1}, idempotency_key=key)
        second = self.client.events.publish({"event": "order.paid", "n": 2}, idempotency_key=key)
        self.assertEqual(second.id, first.id)
        self.assertEqual((first.replayed, second.replayed), (False, True))
        other = self.client.events.publish({"event": "order.paid"}, idempotency_key=key + "-b")
        self.assertNotEqual(other.id, first.id)

    def test_each_publish_gets_a_key_of_its_own(self) -> None:
        # The default key is made per call: the same payload published twice is two events.
        first = self.client.events.publish({"event": "order.paid", "n": 1})
        second = self.client.events.publish({"event": "order.paid", "n": 1})
        self.assertNotEqual(first.id, second.id)
        self.assertEqual((first.replayed, second.replayed), (False, False))

    def test_publish_sends_a_json_string_as_is(self) -> None:
        published = self.client.events.publish('{"event":"raw.sent","b":1,"a":2}')
        self.assertEqual(list(self.client.events.get(published.id).payload), ["event", "b", "a", "timestamp"])

    def test_publish_batch(self) -> None:
        batch = self.client.events.publish_batch([{"event": "batch.one"}, {"event": "batch.two"}])
        self.assertEqual([e.event for e in batch.events], ["batch.one", "batch.two"])
        self.assertIsInstance(batch.deliveries, int)
        key = f"batch-{suffix()}"
        first = self.client.events.publish_batch([{"event": "batch.one"}], idempotency_key=key)
        again = self.client.events.publish_batch([{"event": "batch.one"}], idempotency_key=key)
        self.assertEqual(again.events[0].id, first.events[0].id)
        self.assertTrue(again.replayed)
        self.assertHeraldError(400, "invalid_batch", lambda: self.client.events.publish_batch([]))

    # deliveries

    def test_deliveries_list_get_retry(self) -> None:
        client = self.client
        hook = client.webhooks.create(url=self.receiver.url("/deliveries"), events=["ship.sent"])
        published = client.events.publish({"event": "ship.sent"})
        listed = client.deliveries.list(event_id=published.id)
        self.assertEqual(len(listed.data), 1)
        delivery_id = listed.data[0].id
        self.assertEqual([d.id for d in client.deliveries.list(endpoint_id=hook.id).data], [delivery_id])

        def status(wanted: str, attempts: int) -> object:
            d = client.deliveries.get(delivery_id)
            return d if d.status == wanted and len(d.attempt_log) == attempts else None

        done = wait_for("the delivery to succeed", lambda: status("succeeded", 1))
        self.assertEqual(done.attempt_log[0].status_code, 200)
        retried = client.deliveries.retry(delivery_id)
        self.assertEqual((retried.id, retried.status), (delivery_id, "pending"))
        wait_for("the retried delivery to be sent again", lambda: status("succeeded", 2))
        since = datetime.now(timezone.utc) - timedelta(minutes=1)
        self.assertIn(delivery_id, [d.id for d in client.deliveries.list(status="succeeded", since=since).data])
        self.assertHeraldError(400, "invalid_request", lambda: client.deliveries.list(status="lost"))

    # event types

    def test_event_types(self) -> None:
        client = self.client
        name = f"sdk.py.{suffix()}"
        created = client.event_types.create(name=name, description="first", example={"id": 1})
        self.assertEqual((created.name, created.example), (name, {"id": 1}))
        self.assertEqual(client.event_types.create(name=name, description="second").description, "second")
        self.assertEqual(client.event_types.get(name).description, "second")
        self.assertIn(name, [t.name for t in client.event_types.list()])
        self.assertEqual(client.event_types.delete(name), {"name": name})
        self.assertHeraldError(404, "not_found", lambda: client.event_types.get(name))
        self.assertHeraldError(400, "validation_error", lambda: client.event_types.create(name="bad name"))

    def test_event_type_schema_is_enforced(self) -> None:
        client = self.client
        name = f"sdk.py.schema.{suffix()}"
        schema = {"type": "object", "required": ["task_id"], "properties": {"task_id": {"type": "string"}}}
        self.assertEqual(client.event_types.create(name=name, schema=schema).schema, schema)
        self.assertHeraldError(400, "schema_violation", lambda: client.events.publish({"event": name, "amount": 1}))
        client.events.publish({"event": name, "task_id": "t-1"})
        self.assertHeraldError(
            400, "validation_error", lambda: client.event_types.create(name=name, schema={"type": "nonsense"})
        )
        client.event_types.delete(name)

    # tenants and keys

    def test_tenants_and_keys(self) -> None:
        admin = admin_client()
        tenant_id = f"py-t-{suffix()}"
        tenant = admin.tenants.create(id=tenant_id)
        self.assertEqual((tenant.id, tenant.name), (tenant_id, tenant_id))
        self.assertEqual(admin.tenants.update(tenant_id, name="Acme Inc").name, "Acme Inc")
        self.assertEqual(admin.tenants.get(tenant_id).name, "Acme Inc")
        self.assertIn(tenant_id, [t.id for t in admin.tenants.list()])
        self.assertHeraldError(409, "conflict", lambda: admin.tenants.create(id=tenant_id))

        key = admin.tenants.keys.create(tenant_id, name="backend")
        self.assertEqual((key.tenant_id, key.name), (tenant_id, "backend"))
        self.assertTrue(key.token.startswith(key.prefix))
        keys = admin.tenants.keys.list(tenant_id)
        self.assertEqual([k.id for k in keys.data], [key.id])
        self.assertNotIn("token", keys.data[0])

        tenant_client = Herald(key.token, base_url())
        hook = tenant_client.webhooks.create(url=self.receiver.url("/tenant"), events=["*"])
        self.assertEqual(hook.tenant_id, tenant_id)
        self.assertHeraldError(403, "forbidden", lambda: tenant_client.tenants.list())
        self.assertHeraldError(403, "forbidden", lambda: tenant_client.with_tenant("default").webhooks.list())

        revoked = admin.tenants.keys.revoke(tenant_id, key.id)
        self.assertEqual(revoked.id, key.id)
        self.assertIsNotNone(revoked.revoked_at)
        self.assertHeraldError(401, "unauthorized", lambda: tenant_client.webhooks.list())

        self.assertEqual(admin.tenants.delete(tenant_id), {"id": tenant_id})
        self.assertHeraldError(404, "not_found", lambda: admin.tenants.get(tenant_id))
        self.assertHeraldError(404, "not_found", lambda: admin.with_tenant(tenant_id).webhooks.list())

    # health

    def test_health(self) -> None:
        anonymous = Herald("", base_url())
        self.assertEqual(anonymous.health.check(), {"status": "ok"})
        self.assertEqual(anonymous.health.ready(), {"status": "ready"})
        self.assertRegex(anonymous.health.metrics(), r"(?m)^# HELP herald_deliveries_pending ")

    # errors

    def test_401_without_a_valid_key(self) -> None:
        error = self.assertHeraldError(401, "unauthorized", lambda: Herald("not-a-key", base_url()).webhooks.list())
        self.assertIn("401", str(error))
        self.assertHeraldError(401, "unauthorized", lambda: Herald("", base_url()).events.list())

    def test_404_for_what_does_not_exist(self) -> None:
        client = self.client
        self.assertHeraldError(404, "not_found", lambda: client.webhooks.get(987654))
        self.assertHeraldError(404, "not_found", lambda: client.webhooks.test(987654))
        self.assertHeraldError(404, "not_found", lambda: client.events.get("evt_nope"))
        self.assertHeraldError(404, "not_found", lambda: client.deliveries.retry(987654))

    def test_400_with_the_code_of_the_refusal(self) -> None:
        client, url = self.client, self.receiver.url("/x")
        error = self.assertHeraldError(
            400, "validation_error", lambda: client.webhooks.create(url="ftp://x", events=["a"])
        )
        self.assertIn("url", error.message)
        self.assertEqual(error.body["error"]["code"], "validation_error")
        self.assertHeraldError(400, "validation_error", lambda: client.webhooks.create(url=url, events=[]))
        self.assertHeraldError(400, "invalid_payload", lambda: client.events.publish({"data": 1}))
        self.assertHeraldError(400, "invalid_json", lambda: client.events.publish('{"event": '))
        self.assertHeraldError(
            400,
            "invalid_idempotency_key",
            lambda: client.events.publish({"event": "a"}, idempotency_key="has space"),
        )
        self.assertHeraldError(400, "invalid_pagination", lambda: client.webhooks.list(limit=1000))
        self.assertHeraldError(400, "validation_error", lambda: client.webhooks.recover(1, since="yesterday"))

    def test_409_when_retrying_a_pending_delivery(self) -> None:
        client = self.client
        hook = client.webhooks.create(url=self.receiver.url("/conflict"), events=["x.y"], status="paused")
        published = client.events.publish({"event": "x.y"})
        delivery = client.deliveries.list(event_id=published.id).data[0]
        self.assertHeraldError(409, "conflict", lambda: client.deliveries.retry(delivery.id))
        client.webhooks.delete(hook.id)

    def test_a_refused_connection_is_a_herald_error(self) -> None:
        nowhere = Herald(admin_token(), "http://127.0.0.1:9", max_retries=0)
        with self.assertRaises(HeraldError) as caught:
            nowhere.health.check()
        self.assertEqual((caught.exception.code, caught.exception.status), ("connection_error", 0))


class PaginationTest(HeraldTestCase):
    def test_a_list_longer_than_a_page(self) -> None:
        _, client, _ = fresh_tenant("py-pages")
        receiver = Receiver()
        try:
            ids = [client.webhooks.create(url=receiver.url(f"/p{i}"), events=["*"]).id for i in range(5)]
        finally:
            receiver.close()
        newest_first = ids[::-1]

        first = client.webhooks.list(limit=2)
        self.assertEqual([w.id for w in first.data], newest_first[:2])
        self.assertTrue(first.has_next_page())
        self.assertIsInstance(first.next_cursor, str)
        second = first.next_page()
        assert second is not None
        self.assertEqual([w.id for w in second.data], newest_first[2:4])
        third = second.next_page()
        assert third is not None
        self.assertEqual([w.id for w in third.data], newest_first[4:])
        self.assertFalse(third.has_next_page())
        self.assertIsNone(third.next_page())

        self.assertEqual([w.id for w in client.webhooks.list(limit=2)], newest_first)
        self.assertEqual(len(list(first.iter_pages())), 3)
        from_cursor = client.webhooks.list(limit=2, cursor=first.next_cursor)
        self.assertEqual(from_cursor.data, second.data)

    def test_events_and_deliveries_page_the_same_way(self) -> None:
        _, client, _ = fresh_tenant("py-pages-ev")
        client.webhooks.create(url="http://127.0.0.1:9/paused", events=["p.*"], status="paused")
        published = [client.events.publish({"event": "p.n", "i": i}).id for i in range(3)]
        self.assertEqual([e.id for e in client.events.list(limit=1)], published[::-1])
        self.assertEqual(len(list(client.deliveries.list(limit=2))), 3)
