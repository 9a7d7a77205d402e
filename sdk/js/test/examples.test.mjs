// The seed's SDK example (examples/seed.mjs) and README's example run against the live
// Herald as they are written. Two placeholders are filled in before running, and nothing
// else is touched: the seed's API key `lector_xxx` becomes a real tenant key (Herald's keys
// are random, so no server can accept that literal), and in README's example, whose
// `test` call really sends, the endpoint URL becomes a receiver on 127.0.0.1. The base URL
// comes from $HERALD_BASE_URL, which the client reads when none is given.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { BASE_URL, freshTenant, startReceiver } from './helpers.mjs';

const PACKAGE_DIR = new URL('..', import.meta.url).pathname;
const SEED_URL = 'https://tu-servidor.com/webhook';

// The seed's page (book-translation service), "Ejemplo con SDK", as published.
const SEED = `import { LectorAI } from '@lectorai/sdk';
const client = new LectorAI({ apiKey: 'lector_xxx' });
// Crear webhook
const webhook = await client.webhooks.create({
url: 'https://tu-servidor.com/webhook',
events: ['book.completed', 'translation.error']
});
console.log('Webhook creado:', webhook.id);
console.log('Secret:', webhook.secret); // Guarda este secret!
// Listar webhooks
const webhooks = await client.webhooks.list();
// Eliminar webhook
await client.webhooks.delete(webhook.id);
// Test webhook (envía evento de prueba)
await client.webhooks.test(webhook.id);
`;

let key;
let tenant;
let receiver;

before(async () => {
  const { id, admin, client } = await freshTenant('js-examples');
  key = (await admin.tenants.keys.create(id, { name: 'examples' })).token;
  tenant = client;
  receiver = await startReceiver();
});

after(() => receiver.close());

/** Runs module code as if it were a file of this package (so `herald-webhooks` resolves). */
async function runModule(code) {
  const env = { ...process.env, HERALD_BASE_URL: BASE_URL };
  delete env.HERALD_API_KEY;
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], {
      cwd: PACKAGE_DIR,
      env,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The leading comment lines (with `marker`) and the code after them. */
function splitHead(text, marker) {
  const lines = text.split('\n');
  const n = lines.findIndex((line) => !line.startsWith(marker));
  return [lines.slice(0, n).join('\n'), lines.slice(n).join('\n')];
}

function withKey(code) {
  assert.equal(code.split("'lector_xxx'").length, 2, 'the key placeholder appears once');
  return code.replace("'lector_xxx'", JSON.stringify(key));
}

function printsIdAndSecret(stdout) {
  const id = stdout.match(/^Webhook creado: (\d+)$/m);
  assert.ok(id, stdout);
  assert.match(stdout, /^Secret: whsec_[A-Za-z0-9+/=]{44}$/m);
  return Number(id[1]);
}

test('examples/seed.mjs is the seed with only the import and constructor renamed', () => {
  const example = readFileSync(new URL('../examples/seed.mjs', import.meta.url), 'utf8');
  const renamed = SEED.replace("'@lectorai/sdk'", "'herald-webhooks'").replaceAll('LectorAI', 'Herald');
  // After a comment that explains the 404 it ends with.
  const [head, code] = splitHead(example, '//');
  assert.equal(code, renamed);
  assert.match(head, /404/);
  assert.match(head, /README/);
});

test('the seed example runs: it prints an id and a secret, then tests the webhook it deleted', async () => {
  const example = readFileSync(new URL('../examples/seed.mjs', import.meta.url), 'utf8');
  const run = await runModule(withKey(example));
  const id = printsIdAndSecret(run.stdout);
  // The seed deletes the webhook before testing it; Herald answers that webhook with 404,
  // which surfaces as the HeraldError the last line throws.
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /HeraldError: webhook not found/);
  assert.match(run.stderr, /code: 'not_found'/);
  assert.match(run.stderr, /status: 404/);
  await assert.rejects(tenant.webhooks.get(id), { code: 'not_found' });
});

test("README's JavaScript example runs to the end", async () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.split('\n## Client libraries\n')[1]?.split('\n## ')[0];
  assert.ok(section, 'README.md has a "Client libraries" section');
  const block = section.match(/```js\n([\s\S]*?)```/)?.[1];
  assert.ok(block?.includes("from 'herald-webhooks'"), 'its first js block imports herald-webhooks');
  assert.equal(block.split(SEED_URL).length, 2, 'the seed URL appears once');
  const run = await runModule(withKey(block).replace(SEED_URL, receiver.url('/readme')));
  assert.equal(run.code, 0, run.stderr);
  const id = printsIdAndSecret(run.stdout);
  await assert.rejects(tenant.webhooks.get(id), { code: 'not_found' });
});
