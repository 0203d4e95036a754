/**
 * Self-test of the harness mechanics: skip/require decisions, start-up errors, stop() and the
 * guarantees that no server outlives its test file.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest } from './clients.js';
import {
  CGI_DUMP_SCRIPT,
  parseDump,
  startHttpDump,
  type TempScript,
  writeTempScript,
} from './fixtures.js';
import {
  decideServerBlock,
  describeWithServer,
  type FrontServer,
  normalizePrefix,
  serverAvailable,
  startFront,
} from './servers.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SERVERS: FrontServer[] = ['nginx', 'lighttpd', 'apache'];

/** Alive and not a zombie (orphans here may be reparented to a PID 1 that does not reap). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitDead(pid: number, ms = 3_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !isAlive(pid);
}

async function waitForFile(path: string, ms = 5_000): Promise<string> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (existsSync(path)) {
      const text = await readFile(path, 'utf8');
      if (text.trim()) return text.trim();
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${path} never appeared`);
}

describe('describeWithServer decisions', () => {
  it('runs when nothing is missing', () => {
    expect(decideServerBlock('t', [], true)).toEqual({ action: 'run' });
    expect(decideServerBlock('t', [], false)).toEqual({ action: 'run' });
  });

  it('skips with the apt-get hint, or fails under TSGI_REQUIRE_SERVERS', () => {
    expect(decideServerBlock('my block', ['fcgiwrap'], false)).toEqual({
      action: 'skip',
      message: 'SKIP my block: fcgiwrap not installed (apt-get install fcgiwrap)',
    });
    const fail = decideServerBlock('my block', ['apache', 'cgi-fcgi'], true);
    expect(fail.action).toBe('fail');
    expect(fail).toMatchObject({
      message: expect.stringContaining(
        'apache2 not installed (apt-get install apache2); cgi-fcgi not installed (apt-get install libfcgi-bin)',
      ),
    });
  });

  it('finds every binary installed on this machine', () => {
    for (const name of ['nginx', 'lighttpd', 'apache', 'fcgiwrap', 'cgi-fcgi', 'curl'] as const) {
      expect(serverAvailable(name), name).toBe(true);
    }
  });
});

describe('a nested vitest run (skip, TSGI_REQUIRE_SERVERS=1, crashed and leaky workers)', () => {
  let work: string;
  let report: any;
  let output = '';
  let exitCode: number | null = null;
  const harness = (f: string) => JSON.stringify(join(HERE, f));

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tsgi-nested-vitest-'));
    // Lets the fixture files (outside the repo) resolve 'vitest'.
    await symlink(join(REPO, 'node_modules'), join(work, 'node_modules'));
    const files: Record<string, string> = {
      'require.test.ts': `
        import { it } from 'vitest';
        import { describeWithServer } from ${harness('availability.ts')};
        process.env.TSGI_HIDE_SERVERS = 'nginx';
        process.env.TSGI_REQUIRE_SERVERS = '1';
        describeWithServer('nginx', 'needs nginx', () => { it('never runs', () => {}); });
      `,
      'skip.test.ts': `
        import { expect, it } from 'vitest';
        import { describeWithServer } from ${harness('availability.ts')};
        process.env.TSGI_HIDE_SERVERS = 'nginx';
        delete process.env.TSGI_REQUIRE_SERVERS;
        describeWithServer(['lighttpd', 'nginx'], 'optional nginx', () => {
          it('is skipped', () => { expect(1).toBe(2); });
        });
        describeWithServer('lighttpd', 'present lighttpd', () => {
          it('runs', () => { expect(1).toBe(1); });
        });
      `,
      // The worker is SIGKILLed with a server running: only the watchdog can clean up.
      'crash.test.ts': `
        import { writeFileSync } from 'node:fs';
        import { it } from 'vitest';
        import { startFront } from ${harness('servers.ts')};
        it('dies hard', async () => {
          const f = await startFront({ server: 'nginx', protocol: 'http',
            backend: { host: '127.0.0.1', port: 9 } });
          writeFileSync(${JSON.stringify(join(work, 'crash.pid'))}, f.pid + ' ' + f.dir);
          process.kill(process.pid, 'SIGKILL');
        });
      `,
      // Never calls stop(): the exit hook / watchdog must still kill the server.
      'leak.test.ts': `
        import { writeFileSync } from 'node:fs';
        import { it } from 'vitest';
        import { startFront } from ${harness('servers.ts')};
        it('forgets to stop', async () => {
          const f = await startFront({ server: 'lighttpd', protocol: 'http',
            backend: { host: '127.0.0.1', port: 9 } });
          writeFileSync(${JSON.stringify(join(work, 'leak.pid'))}, f.pid + ' ' + f.dir);
        });
      `,
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(work, name), text);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith('VITEST') && !k.startsWith('TSGI_')) env[k] = v;
    }
    exitCode = await new Promise<number | null>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          join(REPO, 'node_modules/vitest/vitest.mjs'),
          'run',
          '--root',
          work,
          '--reporter=default',
          '--reporter=json',
          `--outputFile.json=${join(work, 'report.json')}`,
        ],
        { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child.stdout.on('data', (d) => {
        output += d;
      });
      child.stderr.on('data', (d) => {
        output += d;
      });
      child.on('close', (code) => resolve(code));
    });
    report = JSON.parse(await readFile(join(work, 'report.json'), 'utf8'));
  }, 60_000);

  afterAll(async () => {
    for (const f of ['crash.pid', 'leak.pid']) {
      const text = existsSync(join(work, f)) ? readFileSync(join(work, f), 'utf8') : '';
      const dir = text.split(' ')[1];
      if (dir) await rm(dir, { recursive: true, force: true });
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  const result = (file: string, title: string) => {
    const fileResult = report.testResults.find((r: any) => r.name.endsWith(file));
    return fileResult?.assertionResults.find((a: any) => a.title === title);
  };

  it('fails the block naming the binary when TSGI_REQUIRE_SERVERS=1', () => {
    expect(exitCode).not.toBe(0);
    const r = result('require.test.ts', 'requires nginx');
    expect(r.status).toBe('failed');
    expect(r.failureMessages[0]).toContain(
      'needs nginx: nginx not installed (apt-get install nginx-light)',
    );
    expect(r.failureMessages[0]).toContain('TSGI_REQUIRE_SERVERS=1');
  });

  it('skips visibly otherwise, and runs blocks whose servers exist', () => {
    expect(result('skip.test.ts', 'is skipped').status).toBe('skipped');
    expect(result('skip.test.ts', 'runs').status).toBe('passed');
    expect(output).toContain(
      'SKIP optional nginx: nginx not installed (apt-get install nginx-light)',
    );
  });

  it('kills the server of a SIGKILLed worker (watchdog)', async () => {
    const [pid] = (await waitForFile(join(work, 'crash.pid'))).split(' ');
    expect(await waitDead(Number(pid))).toBe(true);
  });

  it('kills a server nobody stopped when the worker ends', async () => {
    const [pid] = (await waitForFile(join(work, 'leak.pid'))).split(' ');
    expect(await waitDead(Number(pid))).toBe(true);
  });
});

describe('startFront errors', () => {
  const bogus: Record<FrontServer, { config: string; logSays: string }> = {
    nginx: {
      config: 'tsgi_bogus_directive on;',
      logSays: 'unknown directive "tsgi_bogus_directive"',
    },
    lighttpd: { config: 'this is not a lighttpd config line', logSays: 'configfile.c' },
    apache: { config: 'TsgiBogusDirective on', logSays: "Invalid command 'TsgiBogusDirective'" },
  };
  for (const server of SERVERS) {
    describeWithServer(server, `${server} with a broken config`, () => {
      it('rejects with the config path and the error log, and removes the dir', async () => {
        const err: Error = await startFront({
          server,
          protocol: 'http',
          backend: { host: '127.0.0.1', port: 9 },
          extraConfig: bogus[server].config,
        }).then(
          () => new Error('started anyway'),
          (e: Error) => e,
        );
        expect(err.message).toContain(`${server} (http) did not start`);
        expect(err.message).toContain(bogus[server].logSays);
        const configPath = /config: (\S+)/.exec(err.message)?.[1];
        expect(configPath).toMatch(new RegExp(`^${tmpdir()}/tsgi-${server}-http-`));
        expect(existsSync(configPath!)).toBe(false);
      });
    });
  }

  it('rejects bad options before starting anything', async () => {
    await expect(
      startFront({ server: 'nginx', protocol: 'cgi', backend: { script: 'relative.cgi' } }),
    ).rejects.toThrow(/must be absolute/);
    await expect(
      startFront({ server: 'nginx', protocol: 'fastcgi', backend: { script: '/x.cgi' } }),
    ).rejects.toThrow(/needs backend \{ host, port \} or \{ socket \}/);
    expect(() => normalizePrefix('app')).toThrow(/prefix must look like/);
    expect(() => normalizePrefix('/a b')).toThrow(/prefix must look like/);
    expect(normalizePrefix('/app/')).toBe('/app');
  });
});

describe('stop()', () => {
  let fixture: TempScript;
  let pidDir: string;
  beforeAll(async () => {
    fixture = await writeTempScript();
    pidDir = await mkdtemp(join(tmpdir(), 'tsgi-pids-'));
    // Apache's CGI scripts run as nobody and write their pid here.
    await chmod(pidDir, 0o777);
  });
  afterAll(async () => {
    await fixture?.remove();
    await rm(pidDir, { recursive: true, force: true });
  });

  for (const server of SERVERS) {
    const needs = server === 'nginx' ? (['nginx', 'fcgiwrap'] as const) : server;
    describeWithServer(needs, `stop() on ${server} with a CGI script running`, () => {
      it('kills the server and the script, removes the dir, keeps the logs readable', async () => {
        const pidFile = join(pidDir, `${server}.pid`);
        const front = await startFront({
          server,
          protocol: 'cgi',
          backend: { script: fixture.script },
          cgiEnv: { TSGI_PIDFILE: pidFile },
        });
        const pending = httpRequest({ port: front.port, path: '/app?mode=sleep' }).catch(
          (e: Error) => e,
        );
        const scriptPid = Number(await waitForFile(pidFile));
        expect(isAlive(scriptPid)).toBe(true);
        expect(isAlive(front.pid)).toBe(true);
        await front.stop();
        expect(await waitDead(front.pid)).toBe(true);
        expect(await waitDead(scriptPid)).toBe(true);
        expect(existsSync(front.dir)).toBe(false);
        // The client is not left hanging: a reset, or (Apache) a 500 for the killed script.
        const outcome = await pending;
        expect(outcome instanceof Error || outcome.status === 500).toBe(true);
        // Logs were captured before the dir went away.
        expect((await front.accessLog()).length + (await front.errorLog()).length).toBeGreaterThan(
          0,
        );
        await front.stop(); // idempotent
      });
    });
  }
});

describeWithServer('apache', 'apache started as root with fixtures in a 0700 temp dir', () => {
  it.runIf(process.getuid?.() === 0)('opens the dir and script up for nobody', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tsgi-private-'));
    const script = join(dir, 'app.cgi');
    await writeFile(script, CGI_DUMP_SCRIPT, { mode: 0o700 });
    const front = await startFront({ server: 'apache', protocol: 'cgi', backend: { script } });
    try {
      const res = await httpRequest({ port: front.port, path: '/app/x' });
      expect(res.status).toBe(200);
      expect(parseDump(res.body).PATH_INFO).toBe('/x');
      expect((await stat(dir)).mode & 0o777).toBe(0o701);
      expect((await stat(script)).mode & 0o777).toBe(0o705);
    } finally {
      await front.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('prefix handling', () => {
  let backend: Awaited<ReturnType<typeof startHttpDump>>;
  beforeAll(async () => {
    backend = await startHttpDump();
  });
  afterAll(async () => {
    await backend?.close();
  });
  for (const server of SERVERS) {
    describeWithServer(server, `${server} with prefix /my.app/v1`, () => {
      it('routes the nested prefix, escapes the dot, builds url()', async () => {
        const front = await startFront({
          server,
          protocol: 'http',
          backend: backend.backend,
          prefix: '/my.app/v1/',
        });
        try {
          expect(front.prefix).toBe('/my.app/v1');
          expect(front.url('/x?y=1')).toBe(`http://127.0.0.1:${front.port}/my.app/v1/x?y=1`);
          const res = await httpRequest({ port: front.port, path: '/my.app/v1/x?y=1' });
          expect(parseDump(res.body).URL).toBe('/my.app/v1/x?y=1');
          const bare = await httpRequest({ port: front.port, path: '/my.app/v1' });
          expect(parseDump(bare.body).URL).toBe('/my.app/v1');
          expect((await httpRequest({ port: front.port, path: '/myXapp/v1/x' })).status).toBe(404);
          expect((await httpRequest({ port: front.port, path: '/my.app/v10' })).status).toBe(404);
        } finally {
          await front.stop();
        }
      });
    });
  }
});
