// Where servers.test.ts runs the framework apps: the process that runs the app
// (backend.ts, bundled) and the real server in front of it.
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEsbuild, REPO_ROOT, SOURCE_ALIASES } from '../../packages/cgi/test/helpers.js';
import { type Spawned, spawnTracked, tail } from '../harness/process.js';
import {
  type FrontHandle,
  type FrontProtocol,
  type FrontServer,
  startFront,
  type ToolName,
} from '../harness/servers.js';
import type { Framework } from './apps.js';

/** TargetId: the deployments every framework case runs behind. */
export type TargetId = 'nginx-fastcgi' | 'lighttpd-scgi' | 'nginx-scgi' | 'apache-cgi' | 'http';

export interface Target {
  id: TargetId;
  label: string;
  /** What must be installed (describeWithServer). */
  tools: ToolName[];
}

export const TARGETS: readonly Target[] = [
  {
    id: 'nginx-fastcgi',
    label: 'nginx FastCGI (fastcgi_keep_conn, upstream keepalive) -> @tsgi/fastcgi',
    tools: ['nginx'],
  },
  { id: 'lighttpd-scgi', label: 'lighttpd mod_scgi -> @tsgi/scgi', tools: ['lighttpd'] },
  { id: 'nginx-scgi', label: 'nginx scgi_pass -> @tsgi/scgi', tools: ['nginx'] },
  {
    id: 'apache-cgi',
    label: 'Apache mod_cgid (mpm_event) -> CGI script with @tsgi/cgi runCgi',
    tools: ['apache'],
  },
  { id: 'http', label: '@tsgi/http (the HTTP front, no other server)', tools: [] },
];

/** Running: one framework deployed behind one target. */
export interface Running {
  /** The port the HTTP client talks to. */
  port: number;
  /** The probe's events so far (backend.ts appends them to a file). */
  probeEvents(): string[];
  /** Resolves once the app's probe recorded `event`; rejects after `ms`. */
  waitForProbe(event: string, ms?: number): Promise<void>;
  /**
   * withFront: runs `fn` against a second front server to the same backend, configured
   * with `extraConfig` (FastCGI and SCGI targets only), and stops it afterwards.
   */
  withFront<T>(extraConfig: string, fn: (port: number) => Promise<T>): Promise<T>;
  /** What the backend process printed and the front's error log, for a failed case. */
  diagnostics(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * bundleBackend: backend.ts and everything it imports (the adapters from their sources,
 * Hono, Express, Koa, busboy) as one executable ES module in `dir`. `--expose-gc` on the
 * `#!` line lets the upload route collect garbage as it goes (apps.ts memoryProbe), so
 * the peak RSS it reports is what the process holds, not V8's allowance of uncollected
 * 64 KiB chunks. CommonJS dependencies (Express) require Node built-ins, so the bundle
 * gets a `require`.
 */
export async function bundleBackend(dir: string): Promise<string> {
  const outfile = join(dir, 'backend.mjs');
  const src = (p: string) => join(REPO_ROOT, 'packages', p);
  const result = await loadEsbuild().build({
    entryPoints: [fileURLToPath(new URL('./backend.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    alias: {
      ...SOURCE_ALIASES,
      '@tsgi/bridges': src('bridges/src/index.ts'),
      '@tsgi/fastcgi': src('fastcgi/src/index.ts'),
      '@tsgi/scgi': src('scgi/src/index.ts'),
      '@tsgi/http': src('http/src/index.ts'),
    },
    banner: {
      js: [
        `#!${process.execPath} --expose-gc`,
        'import { createRequire as __tsgiRequire } from "node:module";',
        'const require = __tsgiRequire(import.meta.url);',
      ].join('\n'),
    },
    logLevel: 'silent',
    write: true,
  });
  if (result.errors.length) throw new Error(`bundle failed: ${JSON.stringify(result.errors)}`);
  await chmod(outfile, 0o755);
  return outfile;
}

/** A backend server process (fastcgi, scgi, http): started, and its port read from stdout. */
async function startBackend(
  script: string,
  protocol: 'fastcgi' | 'scgi' | 'http',
  env: Record<string, string>,
): Promise<{ proc: Spawned; port: number }> {
  const proc = spawnTracked(process.execPath, ['--expose-gc', script], {
    env: { ...process.env, ...env, TSGI_BRIDGE_PROTOCOL: protocol },
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = /^listening (\d+)$/m.exec(proc.output());
    if (m) return { proc, port: Number(m[1]) };
    if (proc.hasExited() || Date.now() > deadline) {
      await proc.stop();
      throw new Error(`backend (${protocol}) did not start:\n${tail(proc.output())}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The front of each target whose app runs in a backend server (not apache-cgi, nor http). */
const FRONT_OF: Partial<Record<TargetId, { server: FrontServer; protocol: 'fastcgi' | 'scgi' }>> = {
  'nginx-fastcgi': { server: 'nginx', protocol: 'fastcgi' },
  'lighttpd-scgi': { server: 'lighttpd', protocol: 'scgi' },
  'nginx-scgi': { server: 'nginx', protocol: 'scgi' },
};

/** A front server `via` to the backend on `port` (nginx-fastcgi keeps its connections). */
function startFrontTo(
  id: TargetId,
  via: { server: FrontServer; protocol: FrontProtocol },
  port: number,
  extraConfig?: string,
): Promise<FrontHandle> {
  return startFront({
    server: via.server,
    protocol: via.protocol,
    backend: { host: '127.0.0.1', port },
    keepConn: id === 'nginx-fastcgi',
    extraConfig,
  });
}

/**
 * deploy: runs `fw` behind `target`. `dir` holds the bundle (`script`) and the probe files;
 * it must be reachable by Apache's CGI user (nobody, when the tests run as root).
 */
export async function deploy(
  target: Target,
  fw: Framework,
  script: string,
  dir: string,
): Promise<Running> {
  const probeFile = join(dir, `probe-${target.id}-${fw.name}-${Date.now()}.log`);
  // Created here, writable by all: Apache's CGI scripts append to it as nobody.
  await writeFile(probeFile, '');
  await chmod(probeFile, 0o666);
  const env = { TSGI_BRIDGE_FRAMEWORK: fw.name, TSGI_BRIDGE_PROBE: probeFile };
  let backend: { proc: Spawned; port: number } | undefined;
  let front: FrontHandle | undefined;
  const via = FRONT_OF[target.id];
  try {
    if (target.id === 'apache-cgi') {
      front = await startFront({
        server: 'apache',
        protocol: 'cgi',
        backend: { script },
        mpm: 'event',
        cgiEnv: env,
      });
    } else {
      backend = await startBackend(script, via?.protocol ?? 'http', env);
      if (via) front = await startFrontTo(target.id, via, backend.port);
    }
  } catch (e) {
    await backend?.proc.stop();
    throw e;
  }
  const port = front?.port ?? (backend as { port: number }).port;
  const probeEvents = () =>
    readFileSync(probeFile, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
  return {
    port,
    probeEvents,
    async waitForProbe(event, ms = 10_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const seen = probeEvents();
        if (seen.includes(event)) return;
        if (Date.now() > deadline) {
          throw new Error(`probe: no "${event}" within ${ms} ms; saw [${seen.join(', ')}]`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async withFront(extraConfig, fn) {
      if (front === undefined || backend === undefined) {
        throw new Error(`withFront: ${target.id} has no front to a backend server`);
      }
      const second = await startFrontTo(target.id, front, backend.port, extraConfig);
      try {
        return await fn(second.port);
      } finally {
        await second.stop();
      }
    },
    async diagnostics() {
      const parts: string[] = [];
      if (backend) parts.push(`--- backend output ---\n${tail(backend.proc.output(), 30)}`);
      if (front)
        parts.push(`--- ${front.server} error log ---\n${tail(await front.errorLog(), 30)}`);
      return parts.join('\n');
    },
    async stop() {
      await front?.stop();
      await backend?.proc.stop();
    },
  };
}

/** makeWorkDir: a private dir for the bundle and probe files, usable by Apache's nobody. */
export async function makeWorkDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tsgi-bridges-servers-'));
  await chmod(dir, 0o755);
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
