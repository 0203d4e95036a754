// Loading MODULE[:EXPORT]: files, packages resolved from the cwd, exports, one-line errors.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadApp, parseModuleSpec } from '../src/load.js';
import { oneLine } from '../src/run.js';

const dir = mkdtempSync(join(tmpdir(), 'tsgi-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
};
const APP = 'export default (e, sr) => { sr("200 OK", []); return []; };';

async function failure(spec: string, cwd = dir): Promise<string> {
  try {
    await loadApp(spec, cwd);
  } catch (e) {
    const line = oneLine(e);
    expect(line.split('\n')).toHaveLength(1);
    return line;
  }
  throw new Error(`loadApp(${spec}) did not fail`);
}

describe('parseModuleSpec', () => {
  test('splits at the last colon before an identifier', () => {
    expect(parseModuleSpec('app.mjs')).toEqual({ module: 'app.mjs', exportName: 'default' });
    expect(parseModuleSpec('./app.mjs:handler')).toEqual({
      module: './app.mjs',
      exportName: 'handler',
    });
    expect(parseModuleSpec('@scope/pkg:app')).toEqual({ module: '@scope/pkg', exportName: 'app' });
    expect(parseModuleSpec('/a:b/app.mjs')).toEqual({
      module: '/a:b/app.mjs',
      exportName: 'default',
    });
    expect(parseModuleSpec('C:\\apps\\app.mjs')).toEqual({
      module: 'C:\\apps\\app.mjs',
      exportName: 'default',
    });
  });
});

describe('loadApp', () => {
  test('a relative .mjs file, the default export', async () => {
    file('a.mjs', APP);
    expect(typeof (await loadApp('./a.mjs', dir))).toBe('function');
    expect(typeof (await loadApp('a.mjs', dir))).toBe('function');
  });

  test('a named export', async () => {
    file('named.mjs', 'export function handler() { return []; }');
    expect((await loadApp('named.mjs:handler', dir)).name).toBe('handler');
  });

  test('a CommonJS .js file (module.exports is the default)', async () => {
    file('cjs/package.json', '{"type": "commonjs"}');
    file('cjs/app.js', 'module.exports = function app() { return []; };');
    expect((await loadApp('cjs/app.js', dir)).name).toBe('app');
  });

  test('a package from node_modules under the cwd, ESM-only exports too', async () => {
    file('node_modules/my-app/package.json', '{"name":"my-app","main":"main.js","type":"module"}');
    file('node_modules/my-app/main.js', APP);
    expect(typeof (await loadApp('my-app', dir))).toBe('function');
    file(
      'node_modules/esm-only/package.json',
      '{"name":"esm-only","type":"module","exports":{".":{"import":"./esm.js"}}}',
    );
    file('node_modules/esm-only/esm.js', 'export const app = () => [];');
    expect(typeof (await loadApp('esm-only:app', dir))).toBe('function');
  });

  test('one-line errors', async () => {
    expect(await failure('missing.mjs')).toMatch(
      /^tsgi: cannot find missing\.mjs \(looked for .*missing\.mjs\); give the path of a \.js or \.mjs file, or an installed package name$/,
    );
    expect(await failure('not-installed')).toMatch(
      /^tsgi: cannot find module or package "not-installed" from .*; give a file path \(\.\/app\.mjs\) or install the package$/,
    );
    file('empty.mjs', 'export {};');
    expect(await failure('empty.mjs')).toBe(
      'tsgi: empty.mjs has no default export (it exports nothing); export the app as default or name it with empty.mjs:EXPORT',
    );
    file('obj.mjs', 'export default { status: 200 }; export const x = 1;');
    expect(await failure('obj.mjs')).toBe(
      'tsgi: obj.mjs:default is object, not an application: found an object with keys [status]; expected a tsgi app (environ, startResponse), an object with fetch() (Hono), or an Express, Koa or Connect app; name the app with obj.mjs:EXPORT or pass --interface tsgi|fetch|node',
    );
    expect(await failure('obj.mjs:y')).toBe(
      'tsgi: obj.mjs has no export "y" (its exports: default, x); name an existing one with obj.mjs:EXPORT',
    );
    file('syntax.mjs', 'export default (;');
    // (Under vitest the import goes through vite, whose message differs from Node's.)
    expect(await failure('syntax.mjs')).toMatch(
      /^tsgi: syntax\.mjs failed to load: .*; fix the module/,
    );
    mkdirSync(join(dir, 'adir.js'), { recursive: true });
    expect(await failure('adir.js')).toContain("is a directory; give the app's .js or .mjs file");
  });
});
