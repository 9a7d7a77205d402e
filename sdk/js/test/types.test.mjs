// index.d.ts describes the package: `tsc --noEmit` over a usage file (test/types/usage.ts)
// with the TypeScript compiler pinned in package.json's devDependencies.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';

test('the TypeScript declarations type-check a usage file', async () => {
  const tsc = new URL('../node_modules/typescript/bin/tsc', import.meta.url).pathname;
  assert.ok(existsSync(tsc), 'typescript is not installed: run `npm ci` in sdk/js');
  const project = new URL('types/tsconfig.json', import.meta.url).pathname;
  const run = await promisify(execFile)(process.execPath, [tsc, '--noEmit', '-p', project]).catch((e) => e);
  assert.equal(run.code ?? 0, 0, `${run.stdout}${run.stderr}`);
});
