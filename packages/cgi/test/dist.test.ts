// The built files (`pnpm build` first; the root `test` script does): `@tsgi/cgi/entry` is
// one self-contained module that loads nothing a CGI request does not use, and
// `@tsgi/cgi/httpoxy` has no side effect of its own.
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgiEnv, REPO_ROOT, runProcess, splitResponse } from './helpers.js';

const dist = join(REPO_ROOT, 'packages/cgi/dist');
const built = existsSync(join(dist, 'entry.js')) && existsSync(join(dist, 'httpoxy.js'));
if (!built) console.warn('SKIP packages/cgi dist tests: run `pnpm build` first');

describe.skipIf(!built)('packages/cgi/dist', () => {
  let dir: string;
  beforeAll(async () => {
    // A directory with no node_modules anywhere above it: the entry must need nothing.
    dir = await mkdtemp(join(tmpdir(), 'tsgi-cgi-dist-'));
    await copyFile(join(dist, 'entry.js'), join(dir, 'entry.mjs'));
    await writeFile(
      join(dir, 'app.mjs'),
      `export default (environ, sr) => { sr('200 OK', [['Content-Type', 'text/plain']]); return [String(process.env.HTTP_PROXY) + ' ' + environ.HTTP_PROXY]; };\n`,
    );
    await writeFile(
      join(dir, 'script.mjs'),
      `import { runCgiModule } from './entry.mjs';\nprocess.exit(await runCgiModule(new URL('./app.mjs', import.meta.url)));\n`,
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('entry.js imports nothing: built-ins through process.getBuiltinModule, no zlib, no fs/promises at load', () => {
    const text = readFileSync(join(dist, 'entry.js'), 'utf8');
    expect(text).not.toMatch(/^\s*import\s/m);
    expect(text).not.toMatch(/\brequire\(/);
    expect(text).not.toContain('node:zlib');
    expect(text).toContain('process.getBuiltinModule("node:fs/promises").open(');
  });

  it('entry.js runs a request on its own (copied where no package can be resolved)', async () => {
    const r = await runProcess(process.execPath, {
      env: cgiEnv({ HTTP_PROXY: 'http://attacker.example:1' }),
      args: [join(dir, 'script.mjs')],
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(splitResponse(r.stdout).body.toString()).toBe('undefined http://attacker.example:1');
  });

  it('httpoxy.js removes HTTP_PROXY only when called', async () => {
    await writeFile(
      join(dir, 'httpoxy.mjs'),
      `import { deleteProxyEnv } from ${JSON.stringify(join(dist, 'httpoxy.js'))};\nconst before = process.env.HTTP_PROXY;\nconst removed = deleteProxyEnv();\nprocess.stdout.write(JSON.stringify([before, removed, process.env.HTTP_PROXY ?? null]));\n`,
    );
    const r = await runProcess(process.execPath, {
      env: { HTTP_PROXY: 'http://x:1' },
      args: [join(dir, 'httpoxy.mjs')],
    });
    expect(JSON.parse(r.stdout.toString())).toEqual(['http://x:1', true, null]);
  });
});
