// The retry policy, against a scripted stub on 127.0.0.1 (the live Herald cannot be made
// to answer 503 or drop a connection on demand): idempotent calls are retried on network
// errors, 429 and 5xx, honouring Retry-After; a publish carries an Idempotency-Key (its own
// random one unless the caller gives one, or turns it off with null) and is retried with it.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { afterEach, test } from 'node:test';
import { Herald, HeraldError } from '../src/index.js';

const OK = (data) => (req, res) => json(res, 200, { success: true, data });
const FAIL = (status, headers = {}) => (req, res) =>
  json(res, status, { success: false, error: { code: 'storage_unavailable', message: 'retry later' } }, headers);
const DROP = (req, res) => res.socket.destroy();

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

let stub;

/** Serves `script[n]` for the n-th request; records every request. */
async function startStub(script) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      (script[requests.length - 1] ?? script.at(-1))(req, res);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  stub = { server, requests };
  const client = new Herald({ apiKey: 'k', baseUrl: `http://127.0.0.1:${server.address().port}`, timeout: 2_000 });
  return { client, requests };
}

afterEach(() => {
  stub.server.closeAllConnections();
  stub.server.close();
});

test('a read is retried after 503 and 429, and Retry-After is honoured', async () => {
  const { client, requests } = await startStub([FAIL(503, { 'retry-after': '1' }), FAIL(429), OK({ id: 1 })]);
  const started = Date.now();
  assert.deepEqual(await client.webhooks.get(1), { id: 1 });
  assert.equal(requests.length, 3);
  assert.ok(Date.now() - started >= 1_000, 'waited the Retry-After second');
  assert.equal(requests[0].headers.authorization, 'Bearer k');
});

test('a read is retried after a dropped connection', async () => {
  const { client, requests } = await startStub([DROP, OK([])]);
  assert.deepEqual((await client.events.list()).data, []);
  assert.equal(requests.length, 2);
});

test('retries stop after maxRetries, with the last refusal thrown', async () => {
  const { client, requests } = await startStub([FAIL(500)]);
  const error = await client.deliveries.get(7).catch((e) => e);
  assert.ok(error instanceof HeraldError);
  assert.deepEqual([error.status, error.code], [500, 'storage_unavailable']);
  assert.equal(requests.length, 3);
});

test('a publish carries a random Idempotency-Key of its own, reused on a retry after a 503', async () => {
  const ok = OK({ id: 'evt_1', event: 'a.b', deliveries: 0 });
  const { client, requests } = await startStub([FAIL(503), ok, ok, FAIL(503), ok]);
  assert.equal((await client.events.publish({ event: 'a.b' })).id, 'evt_1');
  await client.events.publish({ event: 'a.b' });
  await client.events.publishBatch([{ event: 'a.b' }]);
  const keys = requests.map((r) => r.headers['idempotency-key']);
  assert.equal(keys.length, 5);
  assert.match(keys[0], /^sdk-[0-9a-f-]{32,36}$/);
  assert.equal(keys[1], keys[0], 'the retry after the 503 sends the same key');
  assert.notEqual(keys[2], keys[0], 'another call, another key');
  assert.equal(keys[4], keys[3], 'a batch keeps its key across its retry too');
  assert.equal(new Set([keys[0], keys[2], keys[3]]).size, 3);
});

test('a publish whose key is turned off (null) is sent once, without the header', async () => {
  const { client, requests } = await startStub([FAIL(503), OK({ id: 'evt_1' })]);
  const error = await client.events.publish({ event: 'a.b' }, { idempotencyKey: null }).catch((e) => e);
  assert.equal(error.status, 503);
  assert.equal(requests.length, 1);
  assert.equal(requests[0].headers['idempotency-key'], undefined);
});

test('a publish with an idempotency key is retried with the same key', async () => {
  const { client, requests } = await startStub([DROP, FAIL(502), OK({ id: 'evt_1', event: 'a.b', deliveries: 0 })]);
  const published = await client.events.publish({ event: 'a.b' }, { idempotencyKey: 'k-1' });
  assert.equal(published.id, 'evt_1');
  assert.equal(requests.length, 3);
  assert.deepEqual(
    requests.map((r) => r.headers['idempotency-key']),
    ['k-1', 'k-1', 'k-1'],
  );
  assert.deepEqual(
    requests.map((r) => r.body),
    Array(3).fill('{"event":"a.b"}'),
  );
});

test('create, test and rotate are not retried', async () => {
  const { client, requests } = await startStub([FAIL(503)]);
  await assert.rejects(client.webhooks.create({ url: 'https://x', events: ['*'] }), HeraldError);
  await assert.rejects(client.webhooks.test(1), HeraldError);
  await assert.rejects(client.webhooks.rotateSecret(1), HeraldError);
  await assert.rejects(client.deliveries.retry(1), HeraldError);
  assert.equal(requests.length, 4);
});

test('answers that are not the envelope, and timeouts', async () => {
  const html = (req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>');
  const plain = (req, res) => res.writeHead(200).end('hello');
  const hang = () => {};
  const { client } = await startStub([html, plain, hang]);
  const once = new Herald({ ...client.options, maxRetries: 0, timeout: 300 });
  let error = await once.health.check().catch((e) => e);
  assert.deepEqual([error.status, error.code], [502, 'http_error']);
  assert.match(error.message, /Bad gateway/);
  error = await once.health.check().catch((e) => e);
  assert.deepEqual([error.status, error.code], [200, 'invalid_response']);
  error = await once.health.check().catch((e) => e);
  assert.deepEqual([error.status, error.code], [0, 'timeout']);
});

test('tenant, query parameters and paths are sent as the API spells them', async () => {
  const { client, requests } = await startStub([OK([])]);
  await client.withTenant('acme').deliveries.list({ endpointId: 3, eventId: 'evt_1', since: new Date(0), status: undefined });
  await client.eventTypes.get('a:b/c');
  assert.equal(requests[0].headers['x-herald-tenant'], 'acme');
  assert.equal(requests[0].url, '/api/v1/deliveries?endpoint_id=3&event_id=evt_1&since=1970-01-01T00%3A00%3A00.000Z');
  assert.equal(requests[1].url, '/api/v1/event-types/a%3Ab%2Fc');
  assert.equal(requests[1].headers['x-herald-tenant'], undefined);
});
