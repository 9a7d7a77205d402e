// One class per API resource, named as the API names them. Request and response bodies
// keep the API's field names (snake_case) so the JSON in DESIGN.md and README.md reads the
// same here; only option names of this package (idempotencyKey, endpointId, ...) are
// camelCase, and `secretKey` is accepted beside `secret_key`.

import { Page, PagePromise } from './pagination.js';

const V1 = '/api/v1';
const enc = encodeURIComponent;

class Resource {
  constructor(transport) {
    this.transport = transport;
  }

  async call(method, path, options) {
    return (await this.transport.request(method, path, options)).data;
  }

  /** A list route: its first page, or with `for await`, every item of every page. */
  list(path, params = {}) {
    const query = listQuery(params);
    const fetchPage = async (cursor) => {
      const { data, envelope } = await this.transport.request('GET', path, {
        query: { ...query, cursor },
        idempotent: true,
      });
      return new Page(data, envelope.next_cursor, fetchPage);
    };
    return new PagePromise(fetchPage(query.cursor));
  }
}

/** Query parameters: camelCase option names become the API's snake_case. */
function listQuery(params) {
  const query = {};
  for (const [key, value] of Object.entries(params ?? {})) {
    query[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  }
  return query;
}

/** A time for a request body: a Date or unix seconds become what the API parses. */
function timeValue(value) {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number') return String(Math.floor(value));
  return value;
}

function webhookBody(params) {
  const { secretKey, ...rest } = params ?? {};
  return secretKey === undefined ? rest : { ...rest, secret_key: secretKey };
}

export class Webhooks extends Resource {
  /** Registers an endpoint; the answer carries its `secret`, shown only here and on rotate. */
  create(params) {
    return this.call('POST', `${V1}/webhooks`, { body: webhookBody(params) });
  }

  list(params) {
    return super.list(`${V1}/webhooks`, params);
  }

  get(id) {
    return this.call('GET', `${V1}/webhooks/${enc(id)}`, { idempotent: true });
  }

  /** Sets the given fields (url, events, description, headers, status, signature, auth, …). */
  update(id, params) {
    return this.call('PATCH', `${V1}/webhooks/${enc(id)}`, { body: webhookBody(params), idempotent: true });
  }

  delete(id) {
    return this.call('DELETE', `${V1}/webhooks/${enc(id)}`, { idempotent: true });
  }

  /** Sends a `webhook.test` event to this endpoint now. */
  test(id) {
    return this.call('POST', `${V1}/webhooks/${enc(id)}/test`);
  }

  /** A new secret; the previous one keeps signing beside it for the rotation grace period. */
  rotateSecret(id) {
    return this.call('POST', `${V1}/webhooks/${enc(id)}/rotate-secret`);
  }

  /**
   * Runs the endpoint's transformation (or `transformation`, unsaved) on a sample payload in
   * the sandbox deliveries use: `{ outcome: 'send' | 'cancel' | 'error', body?, error?, … }`.
   */
  testTransformation(id, { payload, event, transformation }) {
    return this.call('POST', `${V1}/webhooks/${enc(id)}/transformation/test`, {
      body: { payload, event, transformation },
      idempotent: true,
    });
  }

  /** Re-queues this endpoint's failed deliveries created since a time. */
  recover(id, { since }) {
    return this.call('POST', `${V1}/webhooks/${enc(id)}/recover`, { body: { since: timeValue(since) } });
  }

  /**
   * Creates a delivery for every event of [since, until) that this endpoint matches and has
   * no delivery for (published while it was disabled, or before it existed), oldest first;
   * at most `limit` (10000) deliveries a call: pass the answer's `next` as `cursor`, with the
   * same `since` and `until`, to go on. `dryRun: true` counts and creates nothing. Safe to
   * repeat: an event never gets a second delivery.
   */
  replay(id, { since, until, cursor, limit, dryRun } = {}) {
    const body = { since: timeValue(since) };
    if (until !== undefined && until !== null) body.until = timeValue(until);
    if (cursor !== undefined && cursor !== null) body.cursor = cursor;
    if (limit !== undefined) body.limit = limit;
    return this.call('POST', `${V1}/webhooks/${enc(id)}/replay`, {
      query: dryRun ? { dry_run: 'true' } : undefined,
      body,
      idempotent: true,
    });
  }

  /** This endpoint's deliveries. */
  deliveries(id, params) {
    return super.list(`${V1}/webhooks/${enc(id)}/deliveries`, params);
  }

  /**
   * A poll endpoint's pending deliveries, oldest first: `{ data, next_cursor }`, each with
   * its exact `body` and signature `headers`. Passing `cursor` (a previous `next_cursor`)
   * acknowledges every delivery up to it; they are not answered again.
   */
  async poll(id, { cursor, limit } = {}) {
    const { data, envelope } = await this.transport.request('GET', `${V1}/webhooks/${enc(id)}/poll`, {
      query: { cursor, limit },
      idempotent: true,
    });
    return { data, next_cursor: envelope.next_cursor ?? null };
  }
}

/**
 * The Idempotency-Key a publish carries: the caller's, none when the caller passes `null`
 * (then the publish is sent once, never retried), or else a fresh random one. Herald may
 * answer 503 after it has in fact committed (a crash between the commit and the answer),
 * so a retry without a key could publish twice; with the same key it answers the first
 * result. One key per call, reused by every retry of that call.
 */
export function publishKey(idempotencyKey) {
  if (idempotencyKey === null) return undefined;
  if (idempotencyKey !== undefined) return String(idempotencyKey);
  return `sdk-${randomId()}`;
}

function randomId() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Events extends Resource {
  /**
   * Publishes one payload (an object with a string `event`, or its JSON text sent as is).
   * It carries an Idempotency-Key (`publishKey`), so its retries never publish twice.
   */
  async publish(event, { idempotencyKey } = {}) {
    return this.send(`${V1}/events`, event, publishKey(idempotencyKey));
  }

  /** Publishes up to 1000 payloads atomically, with a key as `publish` has. */
  async publishBatch(events, { idempotencyKey } = {}) {
    return this.send(`${V1}/events/batch`, { events }, publishKey(idempotencyKey));
  }

  async send(path, body, key) {
    const { data, response } = await this.transport.request('POST', path, {
      body,
      headers: key === undefined ? {} : { 'idempotency-key': key },
      idempotent: key !== undefined,
    });
    return { ...data, replayed: response.headers.get('idempotent-replayed') === 'true' };
  }

  list(params) {
    return super.list(`${V1}/events`, params);
  }

  /** One event with its deliveries. */
  get(id) {
    return this.call('GET', `${V1}/events/${enc(id)}`, { idempotent: true });
  }
}

export class Deliveries extends Resource {
  list(params) {
    return super.list(`${V1}/deliveries`, params);
  }

  /** One delivery with its `attempt_log`. */
  get(id) {
    return this.call('GET', `${V1}/deliveries/${enc(id)}`, { idempotent: true });
  }

  /** Queues a finished delivery again now. */
  retry(id) {
    return this.call('POST', `${V1}/deliveries/${enc(id)}/retry`);
  }
}

export class EventTypes extends Resource {
  list(params) {
    return super.list(`${V1}/event-types`, params);
  }

  /** Creates or replaces a catalogue entry (admin), so it is safe to retry. */
  create(params) {
    return this.call('POST', `${V1}/event-types`, { body: params, idempotent: true });
  }

  get(name) {
    return this.call('GET', `${V1}/event-types/${enc(name)}`, { idempotent: true });
  }

  delete(name) {
    return this.call('DELETE', `${V1}/event-types/${enc(name)}`, { idempotent: true });
  }
}

export class Keys extends Resource {
  list(tenantId, params) {
    return super.list(`${V1}/tenants/${enc(tenantId)}/keys`, params);
  }

  /** A new API key for a tenant; its `token` is shown only in this answer. */
  create(tenantId, params = {}) {
    return this.call('POST', `${V1}/tenants/${enc(tenantId)}/keys`, { body: params });
  }

  revoke(tenantId, keyId) {
    return this.call('DELETE', `${V1}/tenants/${enc(tenantId)}/keys/${enc(keyId)}`, { idempotent: true });
  }
}

export class Tenants extends Resource {
  constructor(transport) {
    super(transport);
    this.keys = new Keys(transport);
  }

  list(params) {
    return super.list(`${V1}/tenants`, params);
  }

  create(params) {
    return this.call('POST', `${V1}/tenants`, { body: params });
  }

  get(id) {
    return this.call('GET', `${V1}/tenants/${enc(id)}`, { idempotent: true });
  }

  /** Renames a tenant. */
  update(id, params) {
    return this.call('PATCH', `${V1}/tenants/${enc(id)}`, { body: params, idempotent: true });
  }

  /** Deletes a tenant and everything it owns. */
  delete(id) {
    return this.call('DELETE', `${V1}/tenants/${enc(id)}`, { idempotent: true });
  }
}

export class Health extends Resource {
  /** `/healthz`: the process answers. */
  check() {
    return this.call('GET', '/healthz', { idempotent: true });
  }

  /** `/readyz`: the database takes a write and the dispatcher runs (asked once, no retry). */
  ready() {
    return this.call('GET', '/readyz');
  }

  /** `/metrics`: the Prometheus text. */
  async metrics() {
    return (await this.transport.request('GET', '/metrics', { expect: 'text', idempotent: true })).text;
  }
}
