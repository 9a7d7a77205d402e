// Verifies deliveries captured by the tests' receiver the way real receivers would:
// - seed 000's verifySignature over the parsed body with `<prefix>-Signature`/`-Timestamp`,
// - seed 001's Express route (and its verifyWebhook) with `X-Webhook-Signature`,
// - the official Standard Webhooks library (npm `standardwebhooks`) with `webhook-*`.
// Input on stdin: a JSON array of {body, headers, secret, previous?, prefix}; `body` is the
// raw request body and `headers` the request headers with lower-case names. Output: one
// object per case; a check whose header is absent is null.
import { createRequire } from 'module';
import { app, verifyWebhook } from './seed001.mjs';

const require = createRequire(import.meta.url);
const { verifySignature } = require('./seed000.cjs');
const { Webhook } = require('standardwebhooks');

function attempt(f) {
  try {
    return f();
  } catch (e) {
    return false; // a verifier that throws (bad length, bad signature) rejects
  }
}

function standard(body, headers, secret) {
  if (!headers['webhook-signature']) return null;
  return attempt(() => {
    new Webhook(secret).verify(body, headers);
    return true;
  });
}

function seed000(body, headers, prefix, secret, suffix) {
  const signature = headers[`${prefix}-signature${suffix}`];
  if (signature === undefined) return null;
  const payload = JSON.parse(body);
  return verifySignature(payload, signature, secret, headers[`${prefix}-timestamp`]);
}

function seed001Route(body, headers, secret) {
  if (headers['x-webhook-signature'] === undefined) return null;
  process.env.WEBHOOK_SECRET = secret;
  let status = null;
  const res = {
    status(code) {
      status = code;
      return this;
    },
    send() {
      return this;
    },
  };
  const ok = attempt(() => {
    app.routes['/webhook']({ headers, body: JSON.parse(body) }, res);
    return true;
  });
  return ok && status === 200;
}

function seed001Previous(body, headers, secret) {
  const signature = headers['x-webhook-signature-previous'];
  if (signature === undefined) return null;
  return attempt(() => verifyWebhook(JSON.stringify(JSON.parse(body)), signature, secret));
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d)).on('end', () => {
  const results = JSON.parse(input).map(({ body, headers, secret, previous, prefix }) => {
    const p = (prefix || 'x-herald').toLowerCase();
    const result = {
      standard: standard(body, headers, secret),
      seed000: seed000(body, headers, p, secret, ''),
      seed001: seed001Route(body, headers, secret),
    };
    if (previous) {
      result.standard_previous = standard(body, headers, previous);
      result.seed000_previous = seed000(body, headers, p, previous, '-previous');
      result.seed001_previous = seed001Previous(body, headers, previous);
    }
    return result;
  });
  process.stdout.write(JSON.stringify(results));
});
