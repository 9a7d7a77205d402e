// Receiver side: checks that a request came from Herald, for the three signature schemes
// Herald sends (see DESIGN.md, "What a delivery looks like"):
//   standard     webhook-id / webhook-timestamp / webhook-signature: "v1,<base64>" entries,
//                space-separated, HMAC-SHA256 of "id.timestamp.body" keyed with the base64
//                decoding of a `whsec_` secret (a secret without the prefix is used as its
//                raw bytes, as Herald does).
//   timestamped  <Prefix>-Timestamp and <Prefix>-Signature: "v1=<hex>" of "timestamp.body".
//   body         X-Webhook-Signature: the bare hex HMAC of the body.
// The last two key the HMAC with the secret string exactly as the user holds it, and during
// a secret rotation carry the previous secret's signature in a second "<header>-Previous"
// header, which is checked too. Comparisons are constant-time; the two timestamped schemes
// refuse a timestamp further than `tolerance` seconds from now (either way), which is what
// stops a captured request from being replayed later.

import { WebhookVerificationError } from './errors.js';

// node:crypto is loaded when present (Node, Deno, Bun, workers with Node compatibility), so
// the client half of this package still loads in a browser, where verify() is not offered.
let crypto = null;
try {
  crypto = await import('node:crypto');
} catch {
  crypto = null;
}

const SECRET_PREFIX = 'whsec_';
const DEFAULT_PREFIX = 'X-Herald';
const DEFAULT_BODY_HEADER = 'X-Webhook-Signature';
const DEFAULT_TOLERANCE_SECONDS = 300;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;

/**
 * Verifies a delivery and returns its parsed JSON payload; throws WebhookVerificationError.
 *
 * @param {string | Uint8Array | ArrayBuffer} body  the raw request body, unparsed
 * @param {object} headers  the request headers (a plain object, a Headers or a Map)
 * @param {string | string[]} secret  the endpoint's secret (several are tried in turn)
 * @param {object} [options]  scheme ('standard' | 'timestamped' | 'body'; by default the first
 *   whose headers are present, in that order), prefix ('X-Herald'), bodyHeader
 *   ('X-Webhook-Signature'), tolerance (seconds, 300), now (a Date or Unix seconds, like sign's
 *   timestamp; a number of 10^11 or more is read as epoch milliseconds, what `now` meant before)
 */
export function verify(body, headers, secret, options = {}) {
  const { createHmac } = needCrypto();
  const bytes = bodyBytes(body);
  const secrets = secretList(secret);
  const h = headerMap(headers);
  const names = lookupNames(options);
  const scheme = options.scheme ?? detect(h, names);
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE_SECONDS;
  let ok;
  if (scheme === 'standard') {
    const [id, timestamp, signatures] = required(h, ['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    checkTimestamp(timestamp, tolerance, options.now);
    const given = signatures
      .split(/\s+/)
      .filter((entry) => entry.startsWith('v1,'))
      .map((entry) => entry.slice(3));
    ok = secrets.some((s) => {
      const expected = createHmac('sha256', standardKey(s)).update(`${id}.${timestamp}.`).update(bytes).digest();
      return given.some((encoded) => STRICT_BASE64.test(encoded) && same(expected, Buffer.from(encoded, 'base64')));
    });
  } else if (scheme === 'timestamped') {
    const [timestamp] = required(h, [names.timestamp, names.signature]);
    checkTimestamp(timestamp, tolerance, options.now);
    const given = present(h, [names.signature, `${names.signature}-previous`])
      .filter((value) => value.startsWith('v1='))
      .map((value) => value.slice(3));
    ok = secrets.some((s) => {
      const expected = createHmac('sha256', s).update(`${timestamp}.`).update(bytes).digest();
      return given.some((hex) => HEX_SHA256.test(hex) && same(expected, Buffer.from(hex, 'hex')));
    });
  } else if (scheme === 'body') {
    required(h, [names.body]);
    const given = present(h, [names.body, `${names.body}-previous`]);
    ok = secrets.some((s) => {
      const expected = createHmac('sha256', s).update(bytes).digest();
      return given.some((hex) => HEX_SHA256.test(hex) && same(expected, Buffer.from(hex, 'hex')));
    });
  } else {
    throw new TypeError(`unknown signature scheme ${JSON.stringify(scheme)}; expected standard, timestamped or body`);
  }
  if (!ok) throw new WebhookVerificationError(`no ${scheme} signature matches the secret`);
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new WebhookVerificationError('the signed body is not JSON');
  }
}

/**
 * The headers Herald would send for `body` with `secret` under one scheme: for testing a
 * receiver without a running Herald.
 *
 * @param {string | Uint8Array} body
 * @param {string} secret
 * @param {object} [options]  scheme ('standard'), id (for standard), timestamp (unix seconds,
 *   now), prefix, bodyHeader
 */
export function sign(body, secret, options = {}) {
  const { createHmac } = needCrypto();
  const bytes = bodyBytes(body);
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const names = headerNames(options);
  const scheme = options.scheme ?? 'standard';
  if (scheme === 'standard') {
    const id = options.id ?? `msg_${crypto.randomUUID()}`;
    const mac = createHmac('sha256', standardKey(secret)).update(`${id}.${timestamp}.`).update(bytes);
    return {
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': `v1,${mac.digest('base64')}`,
    };
  }
  if (scheme === 'timestamped') {
    const mac = createHmac('sha256', secret).update(`${timestamp}.`).update(bytes);
    return { [names.timestamp]: String(timestamp), [names.signature]: `v1=${mac.digest('hex')}` };
  }
  if (scheme === 'body') {
    return { [names.body]: createHmac('sha256', secret).update(bytes).digest('hex') };
  }
  throw new TypeError(`unknown signature scheme ${JSON.stringify(scheme)}`);
}

function needCrypto() {
  if (!crypto) throw new Error('verify() and sign() need node:crypto (Node.js, Deno, Bun)');
  return crypto;
}

/** The Standard Webhooks key: the base64 decoding of a `whsec_` secret, else its bytes. */
function standardKey(secret) {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : null;
  if (encoded !== null && STRICT_BASE64.test(encoded)) return Buffer.from(encoded, 'base64');
  return Buffer.from(secret, 'utf8');
}

/** The header names of the two non-standard schemes, as Herald spells them. */
function headerNames({ prefix = DEFAULT_PREFIX, bodyHeader = DEFAULT_BODY_HEADER }) {
  return { timestamp: `${prefix}-Timestamp`, signature: `${prefix}-Signature`, body: bodyHeader };
}

/** The same, lower-cased, to look them up in a headerMap. */
function lookupNames(options) {
  const names = headerNames(options);
  return Object.fromEntries(Object.entries(names).map(([k, v]) => [k, v.toLowerCase()]));
}

function detect(h, names) {
  if (h.has('webhook-signature')) return 'standard';
  if (h.has(names.signature)) return 'timestamped';
  if (h.has(names.body)) return 'body';
  throw new WebhookVerificationError('no Herald signature header in the request');
}

function required(h, names) {
  const missing = names.filter((name) => !h.has(name));
  if (missing.length) throw new WebhookVerificationError(`missing header ${missing.join(', ')}`);
  return names.map((name) => h.get(name));
}

function present(h, names) {
  return names.filter((name) => h.has(name)).map((name) => h.get(name).trim());
}

function checkTimestamp(value, tolerance, now) {
  if (!/^\d{1,15}$/.test(value.trim())) throw new WebhookVerificationError('the timestamp header is not unix seconds');
  const age = nowSeconds(now) - Number(value);
  if (age > tolerance) throw new WebhookVerificationError('the timestamp is too old');
  if (age < -tolerance) throw new WebhookVerificationError('the timestamp is too far in the future');
}

// Unix seconds, as sign() and the Python library take them. Until 0.1 `now` was epoch
// milliseconds; such a value (10^11 ms is 1973, 10^11 s the year 5138) still works.
const MILLISECONDS_FROM = 1e11;

function nowSeconds(now) {
  if (now === undefined) return Math.floor(Date.now() / 1000);
  if (now instanceof Date) return Math.floor(now.getTime() / 1000);
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new TypeError('now must be a Date or Unix seconds');
  return Math.floor(now >= MILLISECONDS_FROM ? now / 1000 : now);
}

/** Constant-time equality of two byte strings (lengths are not secret). */
function same(a, b) {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function bodyBytes(body) {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TypeError('pass the raw request body (a string or bytes), not parsed JSON');
}

function secretList(secret) {
  const list = Array.isArray(secret) ? secret : [secret];
  if (!list.length || list.some((s) => typeof s !== 'string' || s === '')) {
    throw new TypeError('secret must be a non-empty string (or an array of them)');
  }
  return list;
}

function headerMap(headers) {
  const map = new Map();
  const entries = typeof headers?.entries === 'function' ? headers.entries() : Object.entries(headers ?? {});
  for (const [name, value] of entries) {
    if (value === undefined || value === null) continue;
    map.set(name.toLowerCase(), String(Array.isArray(value) ? value[0] : value));
  }
  return map;
}
