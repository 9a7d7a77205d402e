// verify() and sign() on fixed inputs: the vectors of src/signing.rs (computed with
// openssl) and the Standard Webhooks spec's own example. No server needed.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sign, verify, WebhookVerificationError } from '../src/index.js';

const EVENT_ID = 'evt_01J9Z6Q4N3XK8R2V5T7W0YB1CD';
const TIMESTAMP = 1_735_689_600;
const NOW = TIMESTAMP; // `now` is Unix seconds, as sign's timestamp
const BODY = '{"event":"job.completed","task_id":"task_xxx","data":{"credits_charged":6}}';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const PREVIOUS = 'your-secret-key';

const STANDARD_SIG = 'v1,FWqBgsr5O811Klyl6qe9bh2CzK1V6i9mVL9bTWCeFF4=';
const STANDARD_SIG_PREVIOUS = 'v1,7N7zhrYrfCBaHsi5di9vuXWHC2Gz1aqQprN221j5I04=';
const TIMESTAMPED_SIG = 'v1=8007f29400258568ae9a532582a794192ba809a5ca6ed76f3dd980df738ee3ed';
const TIMESTAMPED_SIG_PREVIOUS = 'v1=d31b880cafaadccb5f99d7cfb937fdfd5dfd3bd12c837429223e2ec690593fee';
const BODY_SIG = '12a698e691b986be3561fd0ad6e25c5bbc7e4a800fd7f6be6b55ee787284bb47';
const BODY_SIG_PREVIOUS = '3abb1ccad93c8430b25ad269247b7650b9d2cb68f1bd70d3f505586af0107277';

const refused = (fn, pattern) =>
  assert.throws(fn, (e) => e instanceof WebhookVerificationError && pattern.test(e.message));

test('sign() gives the signatures Herald gives', () => {
  assert.deepEqual(sign(BODY, SECRET, { id: EVENT_ID, timestamp: TIMESTAMP }), {
    'webhook-id': EVENT_ID,
    'webhook-timestamp': String(TIMESTAMP),
    'webhook-signature': STANDARD_SIG,
  });
  assert.deepEqual(sign(BODY, SECRET, { scheme: 'timestamped', timestamp: TIMESTAMP }), {
    'X-Herald-Timestamp': String(TIMESTAMP),
    'X-Herald-Signature': TIMESTAMPED_SIG,
  });
  assert.deepEqual(sign(BODY, SECRET, { scheme: 'body' }), { 'X-Webhook-Signature': BODY_SIG });
  assert.equal(sign(BODY, PREVIOUS, { id: EVENT_ID, timestamp: TIMESTAMP })['webhook-signature'], STANDARD_SIG_PREVIOUS);
});

test('the Standard Webhooks spec example', () => {
  const headers = {
    'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'webhook-timestamp': '1614265330',
    'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  };
  assert.deepEqual(verify('{"test": 2432232314}', headers, SECRET, { now: 1614265330 }), { test: 2432232314 });
});

test('each scheme, with the rotation signatures in their places', () => {
  const headers = {
    'webhook-id': EVENT_ID,
    'webhook-timestamp': String(TIMESTAMP),
    'webhook-signature': `${STANDARD_SIG} ${STANDARD_SIG_PREVIOUS}`,
    'X-Herald-Timestamp': String(TIMESTAMP),
    'X-Herald-Signature': TIMESTAMPED_SIG,
    'X-Herald-Signature-Previous': TIMESTAMPED_SIG_PREVIOUS,
    'X-Webhook-Signature': BODY_SIG,
    'X-Webhook-Signature-Previous': BODY_SIG_PREVIOUS,
  };
  for (const scheme of ['standard', 'timestamped', 'body']) {
    for (const secret of [SECRET, PREVIOUS]) {
      assert.equal(verify(BODY, headers, secret, { scheme, now: NOW }).task_id, 'task_xxx', `${scheme} ${secret}`);
    }
    refused(() => verify(BODY, headers, 'whsec_b3RoZXI=', { scheme, now: NOW }), /no .* signature matches/);
    refused(() => verify(`${BODY} `, headers, SECRET, { scheme, now: NOW }), /no .* signature matches/);
  }
  // The body scheme has no timestamp, so no tolerance applies to it.
  assert.ok(verify(BODY, headers, SECRET, { scheme: 'body', now: NOW + 86_400 }));
  refused(() => verify(BODY, headers, SECRET, { scheme: 'timestamped', now: NOW + 301 }), /too old/);
  assert.ok(verify(BODY, headers, SECRET, { scheme: 'timestamped', now: NOW + 299 }));
  refused(() => verify(BODY, headers, SECRET, { scheme: 'standard', now: NOW - 301 }), /future/);
  // `now` as sign() takes its timestamp: Unix seconds; also a Date, and (the earlier
  // meaning, kept working) epoch milliseconds.
  const signedNow = sign(BODY, SECRET, { scheme: 'timestamped', timestamp: NOW });
  for (const now of [NOW, new Date(NOW * 1000), NOW * 1000, NOW * 1000 + 299_000]) {
    assert.ok(verify(BODY, signedNow, SECRET, { scheme: 'timestamped', now }), String(now));
  }
  refused(() => verify(BODY, signedNow, SECRET, { scheme: 'timestamped', now: NOW * 1000 + 301_000 }), /too old/);
  assert.throws(() => verify(BODY, signedNow, SECRET, { now: '1735689600' }), TypeError);
});

test('headers in any case and shape; bytes or text', () => {
  const signed = sign(BODY, SECRET, { id: EVENT_ID, timestamp: TIMESTAMP });
  const upper = Object.fromEntries(Object.entries(signed).map(([k, v]) => [k.toUpperCase(), v]));
  const bytes = new TextEncoder().encode(BODY);
  assert.ok(verify(BODY, upper, SECRET, { now: NOW }));
  assert.ok(verify(bytes, new Map(Object.entries(signed)), SECRET, { now: NOW }));
  assert.ok(verify(bytes.buffer, new Headers(signed), SECRET, { now: NOW }));
  assert.ok(verify(BODY, { ...signed, 'webhook-id': [EVENT_ID] }, SECRET, { now: NOW }));
});

test('malformed input is refused, never accepted', () => {
  const signed = sign(BODY, SECRET, { id: EVENT_ID, timestamp: TIMESTAMP });
  for (const signature of ['', 'v1,', 'v2,FWqBgsr5O811Klyl6qe9bh2CzK1V6i9mVL9bTWCeFF4=', 'v1,FWqB', 'v1,!!!!']) {
    refused(() => verify(BODY, { ...signed, 'webhook-signature': signature }, SECRET, { now: NOW }), /no standard/);
  }
  refused(() => verify(BODY, { ...signed, 'webhook-timestamp': '1e9' }, SECRET, { now: NOW }), /unix seconds/);
  const body = { 'X-Webhook-Signature': BODY_SIG.slice(0, 62) };
  refused(() => verify(BODY, body, SECRET), /no body signature/);
  refused(() => verify(BODY, { 'X-Webhook-Signature': `v1=${BODY_SIG}` }, SECRET), /no body signature/);
  refused(() => verify(BODY, { 'X-Herald-Signature': TIMESTAMPED_SIG }, SECRET), /missing header x-herald-timestamp/);
  assert.throws(() => verify(JSON.parse(BODY), signed, SECRET), TypeError);
  assert.throws(() => verify(BODY, signed, ''), TypeError);
  assert.throws(() => verify(BODY, signed, SECRET, { scheme: 'nano' }), TypeError);
});
