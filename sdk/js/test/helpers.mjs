// Shared by the test files: where the live Herald is (tests/sdk.rs starts it and passes
// HERALD_TEST_URL and HERALD_TEST_ADMIN_TOKEN), a fresh tenant per file so files can run in
// parallel, a recording receiver on 127.0.0.1, and small assertions.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { Herald, HeraldError } from '../src/index.js';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through \`cargo test --test sdk\``);
  return value;
}

export const BASE_URL = need('HERALD_TEST_URL');
export const ADMIN_TOKEN = need('HERALD_TEST_ADMIN_TOKEN');

/** The official Standard Webhooks library, installed under tests/js by .ci/run. */
export function officialStandardWebhooks() {
  const require = createRequire(new URL('../../../tests/js/package.json', import.meta.url));
  return require('standardwebhooks');
}

export function adminClient(options = {}) {
  return new Herald({ apiKey: ADMIN_TOKEN, baseUrl: BASE_URL, ...options });
}

/** A new tenant and the admin client acting on it. */
export async function freshTenant(label) {
  const admin = adminClient();
  const id = `${label}-${Math.random().toString(36).slice(2, 10)}`;
  await admin.tenants.create({ id, name: `SDK test ${label}` });
  return { id, client: admin.withTenant(id), admin };
}

/** Awaits a call that must fail with a HeraldError of this status and code. */
export async function rejects(promise, status, code) {
  const error = await promise.then(
    (value) => assert.fail(`expected HTTP ${status} ${code}, got ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(error instanceof HeraldError, `not a HeraldError: ${error}`);
  assert.equal(error.status, status, error.message);
  assert.equal(error.code, code, error.message);
  assert.ok(error.message.length > 0);
  return error;
}

export async function waitFor(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * An HTTP server on 127.0.0.1 that records each request's raw body and headers.
 * `reply(request)` gives the status (200 by default).
 */
export async function startReceiver(reply = () => 200) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const request = { path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(request);
      res.writeHead(reply(request)).end('ok');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    requests,
    on: (path) => requests.filter((r) => r.path === path),
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
