#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// check-exports: after `pnpm build`, verifies every package's `exports` map the way a
// consumer sees it: publint (strict) on the package, each export target exists, each
// entry imports under plain Node ESM resolution, and nothing outside the map is
// reachable by a deep import (internal files stay private).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const { publint } = await import('publint');
let failed = 0;
const fail = (msg) => {
  failed++;
  console.error(`check-exports: ${msg}`);
};

for (const dir of readdirSync(join(root, 'packages'))) {
  const pkgDir = join(root, 'packages', dir);
  const pkgPath = join(pkgDir, 'package.json');
  if (!existsSync(pkgPath)) continue;
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  if (!existsSync(join(pkgDir, 'src', 'index.ts'))) {
    console.log(`check-exports: ${pkg.name}: no src/index.ts yet, skipped`);
    continue;
  }
  const { messages } = await publint({ pkgDir, strict: true, level: 'warning' });
  for (const m of messages)
    fail(`${pkg.name}: publint ${m.type} ${m.code} ${JSON.stringify(m.args)}`);
  for (const [key, target] of Object.entries(pkg.exports ?? {})) {
    const files = typeof target === 'string' ? [target] : Object.values(target);
    for (const f of files)
      if (!existsSync(join(pkgDir, f)))
        fail(`${pkg.name}: exports["${key}"] -> ${f} is missing (did the build run?)`);
    if (key === './package.json') continue;
    const spec = key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`;
    // Import it in a fresh Node process started in the package's directory: a package can
    // import itself by name through its own `exports` map (self-reference), so this is
    // exactly what a consumer's `import` resolves, on the Node version CI runs.
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(spec)}); if (Object.keys(m).length === 0) { console.error('exports nothing'); process.exit(3); }`,
      ],
      { cwd: pkgDir, encoding: 'utf8', env: { ...process.env, HTTP_PROXY: '' } },
    );
    if (r.status !== 0)
      fail(
        `${spec}: cannot be imported: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`,
      );
  }
  // A deep import of a file that exists but is not in the map must be refused.
  const deep = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', `await import(${JSON.stringify(`${pkg.name}/dist/index.js`)})`],
    { cwd: pkgDir, encoding: 'utf8' },
  );
  if (deep.status === 0 || !deep.stderr.includes('ERR_PACKAGE_PATH_NOT_EXPORTED')) {
    fail(
      `${pkg.name}: a deep import of dist/index.js was not refused; the exports map is not closed`,
    );
  }
  console.log(`check-exports: ${pkg.name} ok (${Object.keys(pkg.exports ?? {}).join(', ')})`);
}
if (failed) {
  console.error(`check-exports: ${failed} problem(s)`);
  process.exit(1);
}
