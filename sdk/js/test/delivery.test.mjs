// A real delivery from Herald to a receiver on 127.0.0.1, checked by this package's
// verify() and by the official Standard Webhooks library: both must accept what Herald
// sent, and both must refuse a changed body and an old timestamp.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sign, verify, WebhookVerificationError } from '../src/index.js';
import { freshTenant, officialStandardWebhooks, startReceiver, waitFor } from './helpers.mjs';

const { Webhook } = officialStandardWebhooks();
let client;
let receiver;

before(async () => {
  ({ client } = await freshTenant('js-delivery'));
  receiver = await startReceiver();
});

after(() => receiver.close());

/** Publishes one event to a new endpoint that is signed with all three schemes. */
async function deliveredRequest(path, extra = {}) {
  const hook = await client.webhooks.create({
    url: receiver.url(path),
    events: ['book.completed'],
    signature: ['standard', 'timestamped', 'body'],
    ...extra,
  });
  const published = await client.events.publish({ event: 'book.completed', data: { bookId: 'b1', 'ñ': 'ü', n: 1.5 } });
  const request = await waitFor('the delivery to arrive', () => receiver.on(path)[0]);
  return { hook, published, request };
}

function official(secret, body, headers) {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

function ours(secret, body, headers, options) {
  try {
    verify(body, headers, secret, options);
    return true;
  } catch (e) {
    assert.ok(e instanceof WebhookVerificationError, `unexpected ${e}`);
    return false;
  }
}

function rejectsWith(fn, pattern) {
  assert.throws(fn, (e) => e instanceof WebhookVerificationError && pattern.test(e.message));
}

test('both verifiers accept what Herald sent, under every scheme', async () => {
  const { hook, published, request } = await deliveredRequest('/all-schemes');
  const { body, headers } = request;
  assert.equal(headers['webhook-id'], published.id);

  assert.equal(official(hook.secret, body, headers), true);
  const payload = verify(body, headers, hook.secret, { scheme: 'standard' });
  assert.equal(payload.event, 'book.completed');
  assert.deepEqual(payload.data, { bookId: 'b1', 'ñ': 'ü', n: 1.5 });
  assert.deepEqual(verify(body, headers, hook.secret), payload, 'standard is found first');
  assert.deepEqual(verify(body, headers, hook.secret, { scheme: 'timestamped' }), payload);
  assert.deepEqual(verify(body, headers, hook.secret, { scheme: 'body' }), payload);
  assert.deepEqual(verify(Buffer.from(body), new Headers(headers), hook.secret), payload);

  // With only one scheme's headers, the default finds that scheme.
  const only = (names) => Object.fromEntries(Object.entries(headers).filter(([k]) => names.includes(k)));
  assert.deepEqual(verify(body, only(['x-herald-timestamp', 'x-herald-signature']), hook.secret), payload);
  assert.deepEqual(verify(body, only(['x-webhook-signature']), hook.secret), payload);
  rejectsWith(() => verify(body, only(['content-type']), hook.secret), /no Herald signature/);
  rejectsWith(() => verify(body, only(['x-webhook-signature']), hook.secret, { scheme: 'standard' }), /missing header/);
});

test('both verifiers refuse a changed body, a wrong secret and a changed id', async () => {
  const { hook, request } = await deliveredRequest('/tampered');
  const { body, headers } = request;
  const changed = body.replace('"b1"', '"b2"');
  assert.notEqual(changed, body);
  assert.equal(official(hook.secret, changed, headers), false);
  for (const scheme of ['standard', 'timestamped', 'body']) {
    assert.equal(ours(hook.secret, changed, headers, { scheme }), false, scheme);
    assert.equal(ours('whsec_d3Jvbmcgc2VjcmV0', body, headers, { scheme }), false, scheme);
  }
  const otherId = { ...headers, 'webhook-id': 'evt_other' };
  assert.equal(official(hook.secret, body, otherId), false);
  assert.equal(ours(hook.secret, body, otherId, { scheme: 'standard' }), false);
});

test('both verifiers refuse an old timestamp', async () => {
  const { hook, request } = await deliveredRequest('/old');
  const { body, headers } = request;
  const sentAt = Number(headers['webhook-timestamp']) * 1000;
  const later = sentAt + 6 * 60 * 1000;

  // The captured request, checked six minutes after it was sent (a replay).
  const realNow = Date.now;
  Date.now = () => later;
  try {
    assert.equal(official(hook.secret, body, headers), false);
    for (const scheme of ['standard', 'timestamped']) {
      rejectsWith(() => verify(body, headers, hook.secret, { scheme }), /too old/);
    }
  } finally {
    Date.now = realNow;
  }
  assert.equal(ours(hook.secret, body, headers, { now: later / 1000, scheme: 'timestamped' }), false);
  assert.equal(ours(hook.secret, body, headers, { now: later / 1000, tolerance: 600 }), true);

  // A timestamp moved back with the signature left as it was does not verify at all.
  const moved = { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) - 1) };
  assert.equal(official(hook.secret, body, moved), false);
  assert.equal(ours(hook.secret, body, moved, { scheme: 'standard' }), false);

  // A correctly signed but old message, signed by the official library, is refused by both.
  const oldDate = new Date(Date.now() - 10 * 60 * 1000);
  const signature = new Webhook(hook.secret).sign('msg_old', oldDate, body);
  const oldHeaders = {
    'webhook-id': 'msg_old',
    'webhook-timestamp': String(Math.floor(oldDate.getTime() / 1000)),
    'webhook-signature': signature,
  };
  assert.equal(official(hook.secret, body, oldHeaders), false);
  rejectsWith(() => verify(body, oldHeaders, hook.secret), /too old/);
  assert.deepEqual(verify(body, oldHeaders, hook.secret, { now: oldDate }), JSON.parse(body));
  // And a future one.
  const future = sign(body, hook.secret, { timestamp: Math.floor(Date.now() / 1000) + 600 });
  assert.equal(official(hook.secret, body, future), false);
  rejectsWith(() => verify(body, future, hook.secret), /future/);
});

test('during a rotation both secrets verify, with either library', async () => {
  const hook = await client.webhooks.create({
    url: receiver.url('/rotated'),
    events: ['book.completed'],
    signature: ['standard', 'timestamped', 'body'],
  });
  const rotated = await client.webhooks.rotateSecret(hook.id);
  await client.events.publish({ event: 'book.completed' });
  const { body, headers } = await waitFor('the delivery to arrive', () => receiver.on('/rotated')[0]);
  assert.equal(headers['webhook-signature'].split(' ').length, 2);
  assert.ok(headers['x-herald-signature-previous']);
  assert.ok(headers['x-webhook-signature-previous']);
  for (const secret of [hook.secret, rotated.secret]) {
    assert.equal(official(secret, body, headers), true);
    for (const scheme of ['standard', 'timestamped', 'body']) {
      assert.equal(ours(secret, body, headers, { scheme }), true, scheme);
    }
  }
  assert.equal(ours([rotated.secret, 'whsec_d3Jvbmcgc2VjcmV0'], body, headers), true);
});

test('a chosen prefix and a plain (non-whsec) secret follow Herald', async () => {
  const { hook, request } = await deliveredRequest('/plain-secret', { secret_key: 'your-secret-key' });
  const { body, headers } = request;
  for (const scheme of ['standard', 'timestamped', 'body']) {
    assert.equal(ours('your-secret-key', body, headers, { scheme }), true, scheme);
  }
  assert.equal(hook.secret, 'your-secret-key');
  const renamed = Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k.replace(/^x-herald-/, 'x-nano-'), v]),
  );
  assert.equal(ours('your-secret-key', body, renamed, { scheme: 'timestamped', prefix: 'X-Nano' }), true);
  assert.equal(ours('your-secret-key', body, renamed, { scheme: 'timestamped' }), false);
});
