// The SDK cannot fall behind the API: every operation in the live server's OpenAPI
// document must map to a method of the client in this table, and every row of the table
// must still be an operation of the document.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BASE_URL, adminClient } from './helpers.mjs';

const METHODS = {
  'GET /api/v1/webhooks': 'webhooks.list',
  'POST /api/v1/webhooks': 'webhooks.create',
  'GET /api/v1/webhooks/{id}': 'webhooks.get',
  'PATCH /api/v1/webhooks/{id}': 'webhooks.update',
  'DELETE /api/v1/webhooks/{id}': 'webhooks.delete',
  'POST /api/v1/webhooks/{id}/test': 'webhooks.test',
  'POST /api/v1/webhooks/{id}/rotate-secret': 'webhooks.rotateSecret',
  'POST /api/v1/webhooks/{id}/transformation/test': 'webhooks.testTransformation',
  'GET /api/v1/webhooks/{id}/poll': 'webhooks.poll',
  'POST /api/v1/webhooks/{id}/recover': 'webhooks.recover',
  'POST /api/v1/webhooks/{id}/replay': 'webhooks.replay',
  'GET /api/v1/webhooks/{id}/deliveries': 'webhooks.deliveries',
  'POST /api/v1/events': 'events.publish',
  'POST /api/v1/events/batch': 'events.publishBatch',
  'GET /api/v1/events': 'events.list',
  'GET /api/v1/events/{id}': 'events.get',
  'GET /api/v1/deliveries': 'deliveries.list',
  'GET /api/v1/deliveries/{id}': 'deliveries.get',
  'POST /api/v1/deliveries/{id}/retry': 'deliveries.retry',
  'GET /api/v1/event-types': 'eventTypes.list',
  'POST /api/v1/event-types': 'eventTypes.create',
  'GET /api/v1/event-types/{name}': 'eventTypes.get',
  'DELETE /api/v1/event-types/{name}': 'eventTypes.delete',
  'GET /api/v1/tenants': 'tenants.list',
  'POST /api/v1/tenants': 'tenants.create',
  'GET /api/v1/tenants/{id}': 'tenants.get',
  'PATCH /api/v1/tenants/{id}': 'tenants.update',
  'DELETE /api/v1/tenants/{id}': 'tenants.delete',
  'GET /api/v1/tenants/{id}/keys': 'tenants.keys.list',
  'POST /api/v1/tenants/{id}/keys': 'tenants.keys.create',
  'DELETE /api/v1/tenants/{id}/keys/{key_id}': 'tenants.keys.revoke',
  'GET /healthz': 'health.check',
  'GET /readyz': 'health.ready',
  'GET /metrics': 'health.metrics',
};

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

test('every operation of /api/v1/openapi.json has an SDK method', async () => {
  const response = await fetch(`${BASE_URL}/api/v1/openapi.json`);
  assert.equal(response.status, 200);
  const doc = await response.json();
  const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((m) => HTTP_METHODS.includes(m))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
  assert.ok(operations.length >= 30, `only ${operations.length} operations in the document`);

  const missing = operations.filter((op) => !(op in METHODS));
  assert.deepEqual(missing, [], 'operations without an SDK method: add them to the SDK and to this table');
  const stale = Object.keys(METHODS).filter((op) => !operations.includes(op));
  assert.deepEqual(stale, [], 'rows of this table that the API no longer has');

  const client = adminClient();
  for (const [op, name] of Object.entries(METHODS)) {
    const owner = name
      .split('.')
      .slice(0, -1)
      .reduce((o, part) => o?.[part], client);
    const method = name.split('.').at(-1);
    assert.equal(typeof owner?.[method], 'function', `${op}: client.${name} is not a function`);
  }
});
