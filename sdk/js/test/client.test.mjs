// Every client method against the live Herald, with the answers and refusals it gives.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Herald, HeraldError, Page, verify } from '../src/index.js';
import { ADMIN_TOKEN, BASE_URL, adminClient, freshTenant, rejects, startReceiver, waitFor } from './helpers.mjs';

let client;
let tenantId;
let receiver;

before(async () => {
  ({ client, id: tenantId } = await freshTenant('js-client'));
  receiver = await startReceiver((r) => (r.path === '/fails' ? 500 : 200));
});

after(() => receiver.close());

describe('webhooks', () => {
  test('create, get, list, update, delete', async () => {
    const created = await client.webhooks.create({
      url: receiver.url('/hooks'),
      events: ['book.completed', 'translation.error'],
      description: 'made by the JS SDK',
    });
    assert.equal(typeof created.id, 'number');
    assert.match(created.secret, /^whsec_/);
    assert.equal(created.status, 'active');
    assert.equal(created.tenant_id, tenantId);
    assert.deepEqual(created.events, ['book.completed', 'translation.error']);

    const got = await client.webhooks.get(created.id);
    assert.equal(got.url, receiver.url('/hooks'));
    assert.equal(got.secret, undefined, 'the secret is shown on create and rotate only');

    const page = await client.webhooks.list();
    assert.ok(page instanceof Page);
    assert.ok(page.data.some((w) => w.id === created.id));

    const updated = await client.webhooks.update(created.id, { status: 'paused', events: ['book.*'] });
    assert.equal(updated.status, 'paused');
    assert.deepEqual(updated.events, ['book.*']);
    const paused = await client.webhooks.list({ status: 'paused' });
    assert.deepEqual(
      paused.data.map((w) => w.id),
      [created.id],
    );

    assert.deepEqual(await client.webhooks.delete(created.id), { id: created.id });
    await rejects(client.webhooks.get(created.id), 404, 'not_found');
  });

  test('an endpoint proxy is answered masked and kept', async () => {
    const hook = await client.webhooks.create({
      url: receiver.url('/proxied'),
      events: ['*'],
      proxy: 'http://u:pw@127.0.0.1:3128',
    });
    assert.equal(hook.proxy, 'http://u:********@127.0.0.1:3128');
    assert.equal(hook.client_certificate, null);
    assert.equal(hook.ca_bundle, null);
    const kept = await client.webhooks.update(hook.id, { proxy: hook.proxy, description: 'kept' });
    assert.equal(kept.proxy, hook.proxy);
    assert.equal((await client.webhooks.update(hook.id, { proxy: 'none' })).proxy, 'none');
    assert.equal((await client.webhooks.update(hook.id, { proxy: null })).proxy, null);
    await rejects(client.webhooks.update(hook.id, { ca_bundle: 'not a PEM' }), 400, 'validation_error');
    await client.webhooks.delete(hook.id);
  });

  test('auth: the secret is write-only; null removes it', async () => {
    const created = await client.webhooks.create({
      url: receiver.url('/auth'),
      events: ['auth.js'],
      auth: { type: 'basic', username: 'js', password: 'js-pa55word' },
    });
    assert.deepEqual(created.auth, { type: 'basic', username: 'js', password: '********' });
    assert.ok(!JSON.stringify(await client.webhooks.get(created.id)).includes('js-pa55word'));
    const kept = await client.webhooks.update(created.id, {
      auth: { type: 'basic', username: 'js2', password: '********' },
    });
    assert.equal(kept.auth.username, 'js2');
    const removed = await client.webhooks.update(created.id, { auth: null });
    assert.equal(removed.auth, null);
    await client.webhooks.delete(created.id);
  });

  test('a poll endpoint: poll answers signed events oldest first; the cursor acknowledges', async () => {
    const hook = await client.webhooks.create({ type: 'poll', events: ['poll.js'] });
    assert.equal(hook.type, 'poll');
    assert.equal(hook.url, null);
    const published = [];
    for (const n of [1, 2, 3]) published.push((await client.events.publish({ event: 'poll.js', n })).id);
    const first = await client.webhooks.poll(hook.id, { limit: 2 });
    assert.deepEqual(
      first.data.map((d) => d.event_id),
      published.slice(0, 2),
    );
    for (const d of first.data) verify(d.body, d.headers, hook.secret, { scheme: 'standard' });
    const second = await client.webhooks.poll(hook.id, { cursor: first.next_cursor });
    assert.deepEqual(
      second.data.map((d) => d.event_id),
      published.slice(2),
    );
    assert.equal((await client.deliveries.get(first.data[0].delivery_id)).status, 'succeeded');
    await client.webhooks.delete(hook.id);
  });

  test('a chosen secret_key (or secretKey) is used as given', async () => {
    const a = await client.webhooks.create({ url: receiver.url('/a'), events: ['*'], secret_key: 'your-secret-key' });
    assert.equal(a.secret, 'your-secret-key');
    const b = await client.webhooks.create({ url: receiver.url('/b'), events: ['*'], secretKey: 'another-secret' });
    assert.equal(b.secret, 'another-secret');
    await client.webhooks.delete(a.id);
    await client.webhooks.delete(b.id);
  });

  test('transformation: set, try, remove', async () => {
    const transformation = 'function handler(w) { w.payload = { n: w.payload.n + 1 }; return w; }';
    const hook = await client.webhooks.create({ url: receiver.url('/shaped'), events: ['*'], transformation });
    assert.equal(hook.transformation, transformation);
    const trial = await client.webhooks.testTransformation(hook.id, { payload: { n: 41 } });
    assert.equal(trial.outcome, 'send');
    assert.equal(trial.body, '{"n":42}');
    const failed = await client.webhooks.testTransformation(hook.id, {
      payload: {},
      transformation: 'function handler(w) { throw new Error("nope"); }',
    });
    assert.equal(failed.outcome, 'error');
    assert.match(failed.error, /nope/);
    await assert.rejects(
      client.webhooks.create({ url: receiver.url('/x'), events: ['*'], transformation: 'function handler(' }),
      (e) => e instanceof HeraldError && e.status === 400 && /transformation/.test(e.message),
    );
    const removed = await client.webhooks.update(hook.id, { transformation: null });
    assert.equal(removed.transformation, null);
    await client.webhooks.delete(hook.id);
  });

  test('test, rotateSecret, deliveries, recover', async () => {
    const hook = await client.webhooks.create({ url: receiver.url('/fails'), events: ['order.paid'] });
    const sent = await client.webhooks.test(hook.id);
    assert.equal(sent.event, 'webhook.test');
    assert.match(sent.event_id, /^evt_/);
    assert.equal(typeof sent.delivery_id, 'number');

    const rotated = await client.webhooks.rotateSecret(hook.id);
    assert.equal(rotated.id, hook.id);
    assert.match(rotated.secret, /^whsec_/);
    assert.notEqual(rotated.secret, hook.secret);

    // The receiver answers 500 on /fails; with the test server's 100ms schedule the
    // delivery ends `failed`, and recover queues it again.
    const failed = await waitFor('the test delivery to fail', async () => {
      const d = await client.deliveries.get(sent.delivery_id);
      return d.status === 'failed' && d;
    });
    assert.ok(failed.attempt_log.length >= 2);
    assert.equal(failed.attempt_log[0].status_code, 500);

    const page = await client.webhooks.deliveries(hook.id);
    assert.deepEqual(
      page.data.map((d) => d.id),
      [sent.delivery_id],
    );
    const onlyFailed = await client.webhooks.deliveries(hook.id, { status: 'succeeded' });
    assert.deepEqual(onlyFailed.data, []);

    const recovered = await client.webhooks.recover(hook.id, { since: new Date(Date.now() - 60_000) });
    assert.deepEqual(recovered, { id: hook.id, recovered: 1 });
    const again = await client.webhooks.recover(hook.id, { since: '2000-01-01T00:00:00Z' });
    assert.equal(again.id, hook.id);
    await client.webhooks.delete(hook.id);
  });

  test('filter and replay', async () => {
    const since = new Date(Date.now() - 1_000);
    const missed = await client.events.publish({ event: 'refund.made', amount: 500 });
    await client.events.publish({ event: 'refund.made', amount: 5 });
    const hook = await client.webhooks.create({
      url: receiver.url('/replayed'),
      events: ['refund.*'],
      filter: '$.amount > 100',
      status: 'paused',
    });
    assert.equal(hook.filter, '$.amount > 100');
    const dry = await client.webhooks.replay(hook.id, { since, dryRun: true });
    assert.equal(dry.dry_run, true);
    assert.equal(dry.count, 1);
    assert.deepEqual(dry.event_ids, [missed.id]);
    assert.equal(dry.next, null);
    const done = await client.webhooks.replay(hook.id, { since, until: new Date(Date.now() + 1_000), limit: 10 });
    assert.equal(done.count, 1);
    assert.equal((await client.webhooks.replay(hook.id, { since })).count, 0);
    await rejects(client.webhooks.update(hook.id, { filter: '$.amount >' }), 400, 'validation_error');
    assert.equal((await client.webhooks.update(hook.id, { filter: null })).filter, null);
    await client.webhooks.delete(hook.id);
  });
});

describe('events', () => {
  test('publish, get, list with filters', async () => {
    const hook = await client.webhooks.create({ url: receiver.url('/events'), events: ['invoice.*'] });
    const published = await client.events.publish({ event: 'invoice.paid', data: { amount: 42 } });
    assert.match(published.id, /^evt_/);
    assert.equal(published.event, 'invoice.paid');
    assert.equal(published.deliveries, 1);
    assert.equal(published.replayed, false);

    const event = await client.events.get(published.id);
    assert.equal(event.payload.data.amount, 42);
    assert.match(event.payload.timestamp, /^\d{4}-\d\d-\d\dT/);
    assert.equal(event.deliveries.length, 1);
    assert.equal(event.deliveries[0].endpoint_id, hook.id);

    await client.events.publish({ event: 'invoice.sent' });
    const paid = await client.events.list({ event: 'invoice.paid' });
    assert.deepEqual(
      paid.data.map((e) => e.id),
      [published.id],
    );
    const none = await client.events.list({ until: '2000-01-01T00:00:00Z' });
    assert.deepEqual(none.data, []);
    await client.webhooks.delete(hook.id);
  });

  test('an idempotency key returns the first event instead of a second one', async () => {
    const key = `order-${Math.random()}`;
    const first = await client.events.publish({ event: 'order.paid', n: 1 }, { idempotencyKey: key });
    const second = await client.events.publish({ event: 'order.paid', n: 2 }, { idempotencyKey: key });
    assert.equal(second.id, first.id);
    assert.equal(first.replayed, false);
    assert.equal(second.replayed, true);
    const other = await client.events.publish({ event: 'order.paid', n: 1 }, { idempotencyKey: `${key}-b` });
    assert.notEqual(other.id, first.id);
  });

  test('each publish gets a key of its own: the same payload twice is two events', async () => {
    const first = await client.events.publish({ event: 'order.paid', n: 1 });
    const second = await client.events.publish({ event: 'order.paid', n: 1 });
    assert.notEqual(second.id, first.id);
    assert.deepEqual([first.replayed, second.replayed], [false, false]);
  });

  test('publish sends a JSON string byte for byte', async () => {
    const published = await client.events.publish('{"event":"raw.sent","b":1,"a":2}');
    const event = await client.events.get(published.id);
    assert.deepEqual(Object.keys(event.payload), ['event', 'b', 'a', 'timestamp']);
  });

  test('publishBatch, also idempotent', async () => {
    const batch = await client.events.publishBatch([{ event: 'batch.one' }, { event: 'batch.two' }]);
    assert.equal(batch.events.length, 2);
    assert.deepEqual(
      batch.events.map((e) => e.event),
      ['batch.one', 'batch.two'],
    );
    assert.equal(typeof batch.deliveries, 'number');

    const key = `batch-${Math.random()}`;
    const first = await client.events.publishBatch([{ event: 'batch.one' }], { idempotencyKey: key });
    const again = await client.events.publishBatch([{ event: 'batch.one' }], { idempotencyKey: key });
    assert.equal(again.events[0].id, first.events[0].id);
    assert.equal(again.replayed, true);
    await rejects(client.events.publishBatch([]), 400, 'invalid_batch');
  });
});

describe('deliveries', () => {
  test('list, get, retry', async () => {
    const hook = await client.webhooks.create({ url: receiver.url('/deliveries'), events: ['ship.sent'] });
    const published = await client.events.publish({ event: 'ship.sent' });
    const listed = await client.deliveries.list({ eventId: published.id });
    assert.equal(listed.data.length, 1);
    const id = listed.data[0].id;
    assert.equal(listed.data[0].endpoint_id, hook.id);
    const byEndpoint = await client.deliveries.list({ endpointId: hook.id });
    assert.deepEqual(
      byEndpoint.data.map((d) => d.id),
      [id],
    );

    const done = await waitFor('the delivery to succeed', async () => {
      const d = await client.deliveries.get(id);
      return d.status === 'succeeded' && d;
    });
    assert.equal(done.attempt_log[0].status_code, 200);
    const retried = await client.deliveries.retry(id);
    assert.equal(retried.id, id);
    assert.equal(retried.status, 'pending');
    await waitFor('the retried delivery to be sent again', async () => {
      const d = await client.deliveries.get(id);
      return d.status === 'succeeded' && d.attempt_log.length === 2;
    });
    const succeeded = await client.deliveries.list({ status: 'succeeded', since: new Date(Date.now() - 60_000) });
    assert.ok(succeeded.data.some((d) => d.id === id));
    await rejects(client.deliveries.list({ status: 'lost' }), 400, 'invalid_request');
  });
});

describe('event types', () => {
  test('create (an upsert), get, list, delete', async () => {
    const name = `sdk.js.${Math.random().toString(36).slice(2, 8)}`;
    const created = await client.eventTypes.create({ name, description: 'first', example: { id: 1 } });
    assert.equal(created.name, name);
    assert.deepEqual(created.example, { id: 1 });
    const replaced = await client.eventTypes.create({ name, description: 'second' });
    assert.equal(replaced.description, 'second');
    assert.equal((await client.eventTypes.get(name)).description, 'second');
    const all = await client.eventTypes.list().toArray();
    assert.ok(all.some((t) => t.name === name));
    assert.deepEqual(await client.eventTypes.delete(name), { name });
    await rejects(client.eventTypes.get(name), 404, 'not_found');
    await rejects(client.eventTypes.create({ name: 'bad name' }), 400, 'validation_error');
  });

  test('a schema is enforced at publish', async () => {
    const name = `sdk.js.schema.${Math.random().toString(36).slice(2, 8)}`;
    const schema = { type: 'object', required: ['task_id'], properties: { task_id: { type: 'string' } } };
    const created = await client.eventTypes.create({ name, schema });
    assert.deepEqual(created.schema, schema);
    await rejects(client.events.publish({ event: name, amount: 1 }), 400, 'schema_violation');
    const ok = await client.events.publish({ event: name, task_id: 't-1' });
    assert.match(ok.id, /^evt_/);
    await rejects(client.eventTypes.create({ name, schema: { type: 'nonsense' } }), 400, 'validation_error');
    await client.eventTypes.delete(name);
  });
});

describe('tenants and keys (admin token)', () => {
  test('create, get, list, update, delete; keys create, list, revoke', async () => {
    const admin = adminClient();
    const id = `js-t-${Math.random().toString(36).slice(2, 8)}`;
    const tenant = await admin.tenants.create({ id });
    assert.deepEqual([tenant.id, tenant.name], [id, id]);
    assert.equal((await admin.tenants.update(id, { name: 'Acme Inc' })).name, 'Acme Inc');
    assert.equal((await admin.tenants.get(id)).name, 'Acme Inc');
    assert.ok((await admin.tenants.list().toArray()).some((t) => t.id === id));
    await rejects(admin.tenants.create({ id }), 409, 'conflict');

    const key = await admin.tenants.keys.create(id, { name: 'backend' });
    assert.equal(key.tenant_id, id);
    assert.equal(key.name, 'backend');
    assert.equal(typeof key.token, 'string');
    assert.ok(key.token.startsWith(key.prefix));
    const keys = await admin.tenants.keys.list(id);
    assert.deepEqual(
      keys.data.map((k) => k.id),
      [key.id],
    );
    assert.equal(keys.data[0].token, undefined);

    // The key acts on its own tenant and nowhere else.
    const tenantClient = new Herald({ apiKey: key.token, baseUrl: BASE_URL });
    const hook = await tenantClient.webhooks.create({ url: receiver.url('/tenant'), events: ['*'] });
    assert.equal(hook.tenant_id, id);
    await rejects(tenantClient.tenants.list(), 403, 'forbidden');
    await rejects(tenantClient.withTenant('default').webhooks.list(), 403, 'forbidden');

    const revoked = await admin.tenants.keys.revoke(id, key.id);
    assert.equal(revoked.id, key.id);
    assert.notEqual(revoked.revoked_at, null);
    await rejects(tenantClient.webhooks.list(), 401, 'unauthorized');

    assert.deepEqual(await admin.tenants.delete(id), { id });
    await rejects(admin.tenants.get(id), 404, 'not_found');
    await rejects(admin.withTenant(id).webhooks.list(), 404, 'not_found');
  });
});

describe('health', () => {
  test('check, ready, metrics', async () => {
    const anonymous = new Herald({ baseUrl: BASE_URL, apiKey: '' });
    assert.deepEqual(await anonymous.health.check(), { status: 'ok' });
    assert.deepEqual(await anonymous.health.ready(), { status: 'ready' });
    assert.match(await anonymous.health.metrics(), /^# HELP herald_deliveries_pending /m);
  });
});

describe('errors', () => {
  test('401 without a valid key', async () => {
    const error = await rejects(
      new Herald({ apiKey: 'not-a-key', baseUrl: BASE_URL }).webhooks.list(),
      401,
      'unauthorized',
    );
    assert.equal(error.name, 'HeraldError');
    await rejects(new Herald({ apiKey: '', baseUrl: BASE_URL }).events.list(), 401, 'unauthorized');
  });

  test('404 for what does not exist', async () => {
    await rejects(client.webhooks.get(987654), 404, 'not_found');
    await rejects(client.webhooks.test(987654), 404, 'not_found');
    await rejects(client.events.get('evt_nope'), 404, 'not_found');
    await rejects(client.deliveries.retry(987654), 404, 'not_found');
  });

  test('400 with the code of the refusal', async () => {
    const error = await rejects(client.webhooks.create({ url: 'ftp://x', events: ['a'] }), 400, 'validation_error');
    assert.match(error.message, /url/);
    assert.deepEqual(error.body.error.code, 'validation_error');
    await rejects(client.webhooks.create({ url: receiver.url('/x'), events: [] }), 400, 'validation_error');
    await rejects(client.events.publish({ data: 1 }), 400, 'invalid_payload');
    await rejects(client.events.publish('{"event": '), 400, 'invalid_json');
    await rejects(client.events.publish({ event: 'a' }, { idempotencyKey: 'has space' }), 400, 'invalid_idempotency_key');
    await rejects(client.webhooks.list({ limit: 1000 }), 400, 'invalid_pagination');
    await rejects(client.webhooks.recover(1, { since: 'yesterday' }), 400, 'validation_error');
  });

  test('409 when retrying a delivery that is still pending', async () => {
    const hook = await client.webhooks.create({ url: receiver.url('/conflict'), events: ['x.y'], status: 'paused' });
    const published = await client.events.publish({ event: 'x.y' });
    const { data } = await client.deliveries.list({ eventId: published.id });
    await rejects(client.deliveries.retry(data[0].id), 409, 'conflict');
    await client.webhooks.delete(hook.id);
  });

  test('a connection refused is a HeraldError too', async () => {
    const nowhere = new Herald({ apiKey: ADMIN_TOKEN, baseUrl: 'http://127.0.0.1:9', maxRetries: 0 });
    const error = await nowhere.health.check().catch((e) => e);
    assert.ok(error instanceof HeraldError);
    assert.equal(error.code, 'connection_error');
    assert.equal(error.status, 0);
  });
});

describe('pagination', () => {
  test('a list longer than a page: first page, next pages, and for await over all', async () => {
    const { client: paged } = await freshTenant('js-pages');
    const ids = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await paged.webhooks.create({ url: receiver.url(`/p${i}`), events: ['*'] })).id);
    }
    const newestFirst = [...ids].reverse();

    const first = await paged.webhooks.list({ limit: 2 });
    assert.deepEqual(
      first.data.map((w) => w.id),
      newestFirst.slice(0, 2),
    );
    assert.ok(first.hasNextPage());
    assert.equal(typeof first.nextCursor, 'string');
    const second = await first.nextPage();
    assert.deepEqual(
      second.data.map((w) => w.id),
      newestFirst.slice(2, 4),
    );
    const third = await second.nextPage();
    assert.deepEqual(
      third.data.map((w) => w.id),
      newestFirst.slice(4),
    );
    assert.equal(third.hasNextPage(), false);
    assert.equal(await third.nextPage(), null);

    const seen = [];
    for await (const hook of paged.webhooks.list({ limit: 2 })) seen.push(hook.id);
    assert.deepEqual(seen, newestFirst);

    let pages = 0;
    for await (const page of first.pages()) pages += page.data.length > 0 ? 1 : 0;
    assert.equal(pages, 3);

    const fromCursor = await paged.webhooks.list({ limit: 2, cursor: first.nextCursor });
    assert.deepEqual(fromCursor.data, second.data);
    assert.deepEqual(await paged.webhooks.list({ limit: 2 }).toArray(), await paged.webhooks.list().then((p) => p.data));
  });

  test('events and deliveries page the same way', async () => {
    const { client: paged } = await freshTenant('js-pages-ev');
    await paged.webhooks.create({ url: receiver.url('/ev'), events: ['p.*'], status: 'paused' });
    const published = [];
    for (let i = 0; i < 3; i++) published.push((await paged.events.publish({ event: 'p.n', i })).id);
    assert.deepEqual(
      (await paged.events.list({ limit: 1 }).toArray()).map((e) => e.id),
      published.reverse(),
    );
    assert.equal((await paged.deliveries.list({ limit: 2 }).toArray()).length, 3);
  });
});
