// Helpers for tests that run the built `tsgi` command (packages/cli/dist/bin.js).
//
// The root `pnpm test` builds every package first. A plain `npx vitest run test/http`
// works too: ensureBuilt() rebuilds every package `tsgi` can load with tsup when a dist
// file is missing or older than its sources (serialised by a lock directory, since vitest runs
// test files in parallel).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pollMatch } from '../harness/run.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'packages/cli/dist/bin.js');
export const EXAMPLES = join(ROOT, 'examples');
export const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));

/** What `tsgi` can load, in dependency order (each package's types before its importers). */
const PACKAGES = ['core', 'bridges', 'cgi', 'fastcgi', 'scgi', 'http', 'cli'];

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function stale(pkg: string): boolean {
  const dir = join(ROOT, 'packages', pkg);
  const out = join(dir, 'dist', 'index.js');
  if (!existsSync(out)) return true;
  const src = Math.max(newest(join(dir, 'src')), statSync(join(dir, 'tsup.config.ts')).mtimeMs);
  return statSync(out).mtimeMs < src;
}

/** ensureBuilt: builds the packages `tsgi` loads when their dist is missing or stale. */
export async function ensureBuilt(): Promise<void> {
  if (!PACKAGES.some(stale)) return;
  const lock = join(ROOT, 'node_modules', '.tsgi-test-build.lock');
  const deadline = Date.now() + 150_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Someone else builds; a lock older than 3 minutes is left over from a killed run.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 180_000) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`ensureBuilt: ${lock} held for 150 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    for (const pkg of PACKAGES) {
      if (!stale(pkg)) continue;
      const r = spawnSync(join(ROOT, 'node_modules/.bin/tsup'), [], {
        cwd: join(ROOT, 'packages', pkg),
        encoding: 'utf8',
      });
      if (r.status !== 0)
        throw new Error(`tsup in packages/${pkg} failed:\n${r.stdout}\n${r.stderr}`);
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** A running `tsgi` process. */
export class Tsgi {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  /** The URL from `tsgi: listening on URL`. */
  url = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => {
      this.stdout += d.toString();
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** Waits for the listening line (rejects with the output if the process exits first). */
  async listening(timeoutMs = 15_000): Promise<string> {
    let done = false;
    void this.exited.then(() => {
      done = true;
    });
    const m = await pollMatch(
      () => this.stdout,
      /tsgi: listening on (\S+)/,
      timeoutMs,
      () => done,
    );
    if (!m) throw new Error(`tsgi did not start:\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
    this.url = m[1] as string;
    return this.url;
  }

  /** Waits until `pattern` appears in stderr. */
  async waitStderr(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> {
    const m = await pollMatch(() => this.stderr, pattern, timeoutMs);
    if (!m) throw new Error(`no ${pattern} in stderr:\n${this.stderr}`);
    return m;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** runTsgi: runs `tsgi ...args` to completion (for commands that fail or print help). */
export function runTsgi(args: string[], timeoutMs = 15_000) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** get: one request on a fresh connection (no keep-alive, so workers take turns). */
export function get(
  url: string,
  init: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: init.method ?? 'GET',
        headers: { Connection: 'close', ...init.headers },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(init.timeoutMs ?? 15_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}
