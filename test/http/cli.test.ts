// The `tsgi` command end to end: the built bin in a child process, real clients.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { curl } from '../harness/clients.js';
import { ensureBuilt, FIXTURES, get, runTsgi, sleep, Tsgi } from './cli.js';

beforeAll(ensureBuilt, 180_000);

const running: Tsgi[] = [];
afterEach(async () => {
  for (const t of running.splice(0)) {
    t.kill('SIGKILL');
    await t.exited;
  }
});
function start(args: string[], env?: NodeJS.ProcessEnv): Tsgi {
  const t = new Tsgi(args, env);
  running.push(t);
  return t;
}
const LISTEN = ['--listen', '127.0.0.1:0'];
const PID = join(FIXTURES, 'pid.mjs');

/** pids: the distinct pids that answer `n` fresh-connection requests. */
async function pids(url: string, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await get(`${url}/`);
    expect(r.status).toBe(200);
    seen.add(r.body);
  }
  return seen;
}

describe('tsgi http: serving', () => {
  test('serves examples/hello.mjs and prints where it listens; curl gets the hello response', async () => {
    const t = start(['http', ...LISTEN, 'examples/hello.mjs']);
    const url = await t.listening();
    expect(t.stdout).toMatch(/^tsgi: listening on http:\/\/127\.0\.0\.1:[0-9]+\n$/);
    const r = await curl(['-i', `${url}/`]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString('latin1')).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nHello, World!\n',
    );
  });

  test("README's main job: `tsgi http examples/hello.mjs` listens on http://127.0.0.1:8000", async (ctx) => {
    const t = start(['http', 'examples/hello.mjs']);
    try {
      await t.listening();
    } catch (e) {
      if (/already in use/.test(t.stderr)) ctx.skip(true, 'port 8000 is taken on this machine');
      throw e;
    }
    expect(t.url).toBe('http://127.0.0.1:8000');
    expect((await get('http://127.0.0.1:8000/')).body).toBe('Hello, World!\n');
  });

  test('MODULE:EXPORT, a CommonJS module, and a package name resolved from the cwd', async () => {
    const a = start(['http', ...LISTEN, `${join(FIXTURES, 'named.mjs')}:handler`]);
    expect((await get(`${await a.listening()}/`)).body).toBe('named');
    const b = start(['http', ...LISTEN, join(FIXTURES, 'app.cjs')]);
    expect((await get(`${await b.listening()}/`)).body).toBe('cjs');
  });

  test('shared options reach the app: --mount, --max-body', async () => {
    const t = start([
      'http',
      ...LISTEN,
      '--mount',
      '/app',
      '--max-body',
      '1k',
      'examples/environ.mjs',
    ]);
    const url = await t.listening();
    const e = JSON.parse((await get(`${url}/app/x?y=1`)).body);
    expect(e.SCRIPT_NAME).toBe('/app');
    expect(e.PATH_INFO).toBe('/x');
    expect((await get(`${url}/elsewhere`)).status).toBe(404);
    const big = await curl([
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--data-binary',
      'x'.repeat(2000),
      `${url}/app/`,
    ]);
    expect(big.stdout.toString()).toBe('413');
  });
});

describe('tsgi http: errors are one line and a non-zero exit', () => {
  const oneLine = (stderr: string) => {
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr.startsWith('tsgi: ')).toBe(true);
  };

  test('a module that does not exist', () => {
    const r = runTsgi(['http', 'nope/missing.mjs']);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(
      /cannot find nope\/missing\.mjs .*give the path of a \.js or \.mjs file/,
    );
  });

  test('a package that is not installed', () => {
    const r = runTsgi(['http', 'no-such-package-tsgi']);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain('install the package');
  });

  test('a missing export names the exports there are', () => {
    const r = runTsgi(['http', 'examples/hello.mjs:nope']);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain('has no export "nope" (its exports: default)');
  });

  test('no default export', () => {
    const r = runTsgi(['http', join(FIXTURES, 'named.mjs')]);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(
      /has no default export \(its exports: handler, notAnApp\); .*MODULE?:?EXPORT|:EXPORT/,
    );
  });

  test('an export that is not a function', () => {
    const r = runTsgi(['http', `${join(FIXTURES, 'named.mjs')}:notAnApp`]);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain('is object, not an application');
  });

  test('a module that throws while loading', () => {
    const r = runTsgi(['http', join(FIXTURES, 'throws.mjs')]);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain('failed to load: Error: this module cannot be loaded (on purpose)');
  });

  test('a busy port, in one process and with --workers', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      for (const extra of [[], ['--workers', '2']]) {
        const r = runTsgi([
          'http',
          '--listen',
          `127.0.0.1:${port}`,
          ...extra,
          'examples/hello.mjs',
        ]);
        expect(r.code).toBe(1);
        oneLine(r.stderr);
        expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}: address already in use`);
        expect(r.stderr).toContain('--listen HOST:PORT');
      }
    } finally {
      blocker.close();
    }
  });

  test('bad options and values exit 2', () => {
    for (const [args, text] of [
      [
        ['http', '--bogus', 'examples/hello.mjs'],
        'unknown option --bogus for tsgi http; see tsgi http --help',
      ],
      [
        ['http', '--workers', 'many', 'examples/hello.mjs'],
        '--workers "many" is not a whole number',
      ],
      [
        ['http', '--listen', 'localhost', 'examples/hello.mjs'],
        '--listen "localhost" is not HOST:PORT',
      ],
      [['http', '--map-head-to-get', 'maybe', 'examples/hello.mjs'], 'is not one of off, on, auto'],
      [['http', '--max-body', 'lots', 'examples/hello.mjs'], 'is not a size in bytes'],
      [['http', '--listen'], 'option --listen needs a value'],
      [['http'], 'tsgi http needs MODULE[:EXPORT]'],
      [['frobnicate', 'x.mjs'], 'unknown command "frobnicate"; the commands are http'],
    ] as const) {
      const r = runTsgi([...args]);
      expect(r.code, args.join(' ')).toBe(2);
      oneLine(r.stderr);
      expect(r.stderr).toContain(text);
    }
  });

  test('--help documents every option, per command too', async () => {
    const { SHARED_OPTIONS } = await import('../../packages/cli/src/options.js');
    const { httpCommand } = await import('../../packages/cli/src/commands/http.js');
    const top = runTsgi(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Usage: tsgi COMMAND [options] MODULE[:EXPORT]');
    expect(top.stdout).toMatch(/\n {2}http +serve the app over HTTP/);
    const h = runTsgi(['http', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Usage: tsgi http [--listen HOST:PORT] [options] MODULE[:EXPORT]');
    for (const name of [...Object.keys(SHARED_OPTIONS), ...Object.keys(httpCommand.options)]) {
      expect(h.stdout).toContain(`--${name}`);
    }
    expect(runTsgi(['help', 'http']).stdout).toBe(h.stdout);
    expect(runTsgi(['--version']).stdout).toMatch(/^tsgi \d+\.\d+\.\d+/);
  });
});

describe('tsgi http: workers and signals', () => {
  test('--workers 2 serves from two processes; a killed worker is replaced and logged', async () => {
    const t = start(['http', ...LISTEN, '--workers', '2', PID]);
    const url = await t.listening();
    expect(t.stdout).toContain('(2 workers, master pid');
    const before = await pids(url, 8);
    expect(before.size).toBe(2);
    const victim = Number([...before][0]);
    process.kill(victim, 'SIGKILL');
    await t.waitStderr(
      new RegExp(`worker ${victim} died \\(signal SIGKILL\\); starting a new one`),
    );
    // Requests keep being answered; after the restart two processes answer again, one new.
    let after = new Set<string>();
    for (let i = 0; i < 50 && after.size < 2; i++) {
      after = await pids(url, 6);
      if (after.size < 2) await sleep(100);
    }
    expect(after.size).toBe(2);
    expect(after.has(String(victim))).toBe(false);
  });

  for (const workers of ['0', '2']) {
    test(`SIGTERM drains an in-flight slow request before exit (--workers ${workers})`, async () => {
      const t = start(['http', ...LISTEN, '--workers', workers, PID]);
      const url = await t.listening();
      const slow = get(`${url}/?sleep=800`);
      await sleep(300);
      t.kill('SIGTERM');
      const r = await slow;
      expect(r.status).toBe(200);
      expect(r.headers.connection).toBe('close');
      const { code } = await t.exited;
      expect(code).toBe(0);
      await expect(get(`${url}/`)).rejects.toThrow(/ECONNREFUSED/);
    });
  }

  test('SIGTERM: a request still running after --graceful-timeout is cut off, the process exits', async () => {
    const t = start(['http', ...LISTEN, '--graceful-timeout', '0.3', PID]);
    const url = await t.listening();
    const slow = get(`${url}/?sleep=5000`).catch((e: Error) => e);
    await sleep(200);
    const t0 = Date.now();
    t.kill('SIGTERM');
    expect(await slow).toBeInstanceOf(Error);
    expect((await t.exited).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(t.stderr).toContain('--graceful-timeout');
  });

  test('--max-requests recycles a worker without failing a request', async () => {
    const t = start([
      'http',
      ...LISTEN,
      '--workers',
      '1',
      '--max-requests',
      '5',
      '--max-requests-jitter',
      '0',
      PID,
    ]);
    const url = await t.listening();
    const order: string[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await get(`${url}/`);
      expect(r.status).toBe(200);
      order.push(r.body);
      // The replacement starts listening while the old worker finishes; give it a moment.
      if ((i + 1) % 5 === 0) await sleep(300);
    }
    const distinct = [...new Set(order)];
    expect(distinct.length).toBeGreaterThanOrEqual(3);
    // No worker answered more than max-requests (+ the ones in flight while it was replaced).
    for (const p of distinct) expect(order.filter((x) => x === p).length).toBeLessThanOrEqual(6);
    expect(t.stderr).not.toContain('died');
  });

  test('SIGHUP replaces every worker one by one without dropping a request', async () => {
    const t = start(['http', ...LISTEN, '--workers', '2', PID]);
    const url = await t.listening();
    const old = await pids(url, 8);
    const failures: string[] = [];
    let served = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        try {
          const r = await get(`${url}/`);
          if (r.status === 200) served++;
          else failures.push(`status ${r.status}`);
        } catch (e) {
          failures.push(String(e));
        }
      }
    })();
    await sleep(100);
    t.kill('SIGHUP');
    await t.waitStderr(/reload done/);
    await sleep(200);
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(10);
    const now = await pids(url, 8);
    for (const p of now) expect(old.has(p)).toBe(false);
  });

  test('SIGHUP with a module that no longer loads: the old workers keep serving; fixed, the next SIGHUP works', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsgi-reload-'));
    const mod = join(dir, 'app.mjs');
    copyFileSync(PID, mod);
    try {
      const t = start(['http', ...LISTEN, '--workers', '2', mod]);
      const url = await t.listening();
      const old = await pids(url, 8);
      writeFileSync(mod, "throw new Error('broken on purpose');\n");
      t.kill('SIGHUP');
      await t.waitStderr(/reload stopped; the remaining old workers keep serving/);
      expect(t.stderr).toContain('broken on purpose');
      const during = await pids(url, 8);
      expect([...during].sort()).toEqual([...old].sort());
      copyFileSync(PID, mod);
      t.kill('SIGHUP');
      await t.waitStderr(/reload done/);
      await sleep(200);
      const after = await pids(url, 8);
      expect(after.size).toBe(2);
      for (const p of after) expect(old.has(p)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
