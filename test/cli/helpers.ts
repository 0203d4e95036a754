// Helpers for the end-to-end tests of `tsgi fastcgi`, `tsgi scgi` and `tsgi cgi`: the
// built bin (packages/cli/dist/bin.js) in child processes, and small real clients
// (libfcgi's cgi-fcgi, a raw SCGI netstring, a CGI environment on a pipe).
//
// ensureBuilt() (test/http/cli.ts) rebuilds every package the commands load when a dist is
// missing or older than its sources.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { findBinary } from '../harness/servers.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'packages/cli/dist/bin.js');
export const EXAMPLES = join(ROOT, 'examples');
export const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));

export { ensureBuilt } from '../http/cli.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Process groups started here and not seen exit: killed when the test worker exits. */
const live = new Set<number>();
let hooked = false;
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // gone already
  }
}

export interface ServedOptions {
  /** Extra environment (merged over this process's unless `cleanEnv`). */
  env?: NodeJS.ProcessEnv;
  /** Start from an empty environment plus PATH (and `env`). */
  cleanEnv?: boolean;
  cwd?: string;
}

/**
 * Served: a long-running process (by default `node bin.js ARGS`) in its own process group,
 * so that stop() reaches cluster workers too; stdout and stderr kept apart.
 */
export class Served {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout = '';
  stderr = '';
  /** What follows `tsgi: listening on ` (the rest of the line). */
  address = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private done = false;

  constructor(args: string[], options: ServedOptions = {}, command: string = process.execPath) {
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const pid of live) killGroup(pid, 'SIGKILL');
      });
    }
    const base = options.cleanEnv ? { PATH: process.env.PATH ?? '/usr/bin:/bin' } : process.env;
    this.child = spawn(command, command === process.execPath ? [BIN, ...args] : args, {
      cwd: options.cwd ?? ROOT,
      env: { ...base, ...options.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid ?? -1;
    if (this.pid > 0) live.add(this.pid);
    this.child.stdout?.on('data', (d: Buffer) => {
      this.stdout += d.toString();
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.stderr += `[spawn error] ${e.message}\n`;
        this.done = true;
        resolve({ code: null, signal: null });
      });
      this.child.on('exit', (code, signal) => {
        this.done = true;
        resolve({ code, signal });
      });
    });
  }

  /** Waits for `tsgi: listening on ...`; rejects with the output if the process exits first. */
  async listening(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = /^tsgi: listening on (.+)$/m.exec(this.stdout);
      if (m) {
        this.address = m[1] as string;
        return this.address;
      }
      if (this.done) break;
      await sleep(25);
    }
    throw new Error(
      `no listening line ${this.done ? '(the process exited)' : `within ${timeoutMs} ms`}:\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
    );
  }

  /** The TCP port in the listening line (`fcgi://127.0.0.1:PORT`, `fd:0 (scgi://...:PORT)`). */
  get port(): number {
    const m = /:\/\/[^\s)]*:([0-9]+)/.exec(this.address);
    if (!m) throw new Error(`no TCP port in ${JSON.stringify(this.address)}`);
    return Number(m[1]);
  }

  /** Waits until `pattern` appears in stderr. */
  async waitStderr(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = pattern.exec(this.stderr);
      if (m) return m;
      await sleep(25);
    }
    throw new Error(`no ${pattern} in stderr:\n${this.stderr}`);
  }

  /** Sends `signal` to the process itself (not its group). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.done) this.child.kill(signal);
  }

  /** Kills the whole group and waits. */
  async stop(): Promise<void> {
    if (this.pid > 0) killGroup(this.pid, 'SIGKILL');
    await this.exited;
    live.delete(this.pid);
  }
}

/** A list of Served stopped by `stopAll` (call it from afterEach/afterAll). */
export function tracker() {
  const all: Served[] = [];
  return {
    start(args: string[], options?: ServedOptions, command?: string): Served {
      const s = new Served(args, options, command);
      all.push(s);
      return s;
    },
    async stopAll(): Promise<void> {
      await Promise.all(all.splice(0).map((s) => s.stop()));
    },
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * run: runs a program to completion with exactly `env` (plus PATH unless given), `stdin`
 * as its input; never rejects except on timeout.
 */
export function run(
  command: string,
  args: string[],
  env: Record<string, string>,
  stdin: Buffer | string = '',
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString('utf8');
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out\nstderr: ${err}`));
    }, options.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

/** runTsgi: `node bin.js ARGS` to completion, with exactly `env` (plus PATH). */
export function runTsgi(
  args: string[],
  env: Record<string, string> = {},
  stdin: Buffer | string = '',
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], env, stdin, options);
}

/** The CGI variables of a GET `target` (`/app/x?y=1`) mounted at `/app`, as a server sets them. */
export function cgiEnv(target: string, more: Record<string, string> = {}): Record<string, string> {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'tsgi-test',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: '127.0.0.1',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REQUEST_METHOD: 'GET',
    REQUEST_URI: target,
    SCRIPT_NAME: '/app',
    PATH_INFO: decodeURIComponent(path.slice('/app'.length)),
    QUERY_STRING: q < 0 ? '' : target.slice(q + 1),
    ...more,
  };
}

/**
 * cgiFcgi: `cgi-fcgi -bind -connect HOST:PORT|SOCKET` (libfcgi) run as a CGI program would
 * be: `env` as its environment, `stdin` as the request body. Its stdout is the FastCGI
 * application's CGI response, byte for byte; FCGI_STDERR goes to its stderr.
 */
export function cgiFcgi(
  target: number | string,
  env: Record<string, string>,
  stdin: Buffer | string = '',
): Promise<RunResult> {
  const bin = findBinary('cgi-fcgi');
  if (!bin) throw new Error('cgi-fcgi not installed (apt-get install libfcgi-bin)');
  const where = typeof target === 'number' ? `127.0.0.1:${target}` : target;
  return run(bin, ['-bind', '-connect', where], env, stdin);
}

/** An SCGI request: the netstring of its header block, then the body. */
export function scgiRequest(vars: [string, string][], body: Buffer | string = ''): Buffer {
  const b = Buffer.from(body);
  const all: [string, string][] = [['CONTENT_LENGTH', String(b.length)], ['SCGI', '1'], ...vars];
  const headers = Buffer.from(all.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
  return Buffer.concat([Buffer.from(`${headers.length}:`), headers, Buffer.from(','), b]);
}

/**
 * describeWithBinary: `describe` when `binary` (a tool the harness does not know, such as
 * spawn-fcgi) is on PATH or in an sbin dir; otherwise the same skip/fail behaviour as the
 * harness's describeWithServer: a visible SKIP line, or under TSGI_REQUIRE_SERVERS=1 one
 * failing test naming it. TSGI_HIDE_SERVERS=NAME pretends it is missing.
 */
export function describeWithBinary(
  binary: string,
  apt: string,
  title: string,
  fn: () => void,
): void {
  const hidden = (process.env.TSGI_HIDE_SERVERS ?? '').split(',').map((s) => s.trim());
  const found = !hidden.includes(binary) && findBinary(binary) !== undefined;
  if (found) {
    describe(title, fn);
    return;
  }
  const what = `${binary} not installed (apt-get install ${apt})${hidden.includes(binary) ? ' [simulated by TSGI_HIDE_SERVERS]' : ''}`;
  if (process.env.TSGI_REQUIRE_SERVERS === '1') {
    describe(title, () => {
      it(`requires ${binary}`, () => {
        throw new Error(`${title}: ${what}, and TSGI_REQUIRE_SERVERS=1 forbids skipping`);
      });
    });
    return;
  }
  console.warn(`SKIP ${title}: ${what}`);
  describe.skip(title, fn);
}

/**
 * exchange: connects to a TCP port on 127.0.0.1 or a unix socket path, writes `bytes`, and
 * resolves with everything received once the peer closes (rejects after `timeoutMs`).
 */
export function exchange(
  target: number | string,
  bytes: Buffer,
  timeoutMs = 15_000,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock =
      typeof target === 'number'
        ? connect({ host: '127.0.0.1', port: target })
        : connect({ path: target });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`exchange with ${target}: no close within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** The status line, header lines and body of a CGI response (`Status: ...\r\n...\r\n\r\nbody`). */
export function parseCgi(out: Buffer): { head: string[]; body: Buffer } {
  const end = out.indexOf('\r\n\r\n');
  if (end < 0) return { head: [], body: out };
  return {
    head: out.subarray(0, end).toString('latin1').split('\r\n'),
    body: out.subarray(end + 4),
  };
}
