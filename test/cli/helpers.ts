// Helpers for the end-to-end tests of `tsgi fastcgi`, `tsgi scgi` and `tsgi cgi`: the
// built bin (packages/cli/dist/bin.js) in child processes, and small real clients
// (libfcgi's cgi-fcgi, a raw SCGI netstring, a CGI environment on a pipe).
//
// ensureBuilt() (test/http/cli.ts) rebuilds every package the commands load when a dist is
// missing or older than its sources. cgiEnv, cgiFcgi and parseCgi come from
// test/harness/cgi.ts, describeWithBinary from the harness too.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type ProcessResult, pollMatch, runProgram } from '../harness/run.js';
import { BIN, ROOT } from '../http/cli.js';

export const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));

export { cgiEnv, cgiFcgi, parseCgi } from '../harness/cgi.js';
export { describeWithBinary } from '../harness/servers.js';
export { BIN, EXAMPLES, ensureBuilt, ROOT, sleep } from '../http/cli.js';

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
    const m = await pollMatch(
      () => this.stdout,
      /^tsgi: listening on (.+)$/m,
      timeoutMs,
      () => this.done,
    );
    if (!m) {
      throw new Error(
        `no listening line ${this.done ? '(the process exited)' : `within ${timeoutMs} ms`}:\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
      );
    }
    this.address = m[1] as string;
    return this.address;
  }

  /** The TCP port in the listening line (`fcgi://127.0.0.1:PORT`, `fd:0 (scgi://...:PORT)`). */
  get port(): number {
    const m = /:\/\/[^\s)]*:([0-9]+)/.exec(this.address);
    if (!m) throw new Error(`no TCP port in ${JSON.stringify(this.address)}`);
    return Number(m[1]);
  }

  /** Waits until `pattern` appears in stderr. */
  async waitStderr(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const m = await pollMatch(() => this.stderr, pattern, timeoutMs);
    if (!m) throw new Error(`no ${pattern} in stderr:\n${this.stderr}`);
    return m;
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

export type RunResult = ProcessResult;

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
  return runProgram(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdin,
    timeoutMs: options.timeoutMs,
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

/** An SCGI request: the netstring of its header block, then the body. */
export function scgiRequest(vars: [string, string][], body: Buffer | string = ''): Buffer {
  const b = Buffer.from(body);
  const all: [string, string][] = [['CONTENT_LENGTH', String(b.length)], ['SCGI', '1'], ...vars];
  const headers = Buffer.from(all.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
  return Buffer.concat([Buffer.from(`${headers.length}:`), headers, Buffer.from(','), b]);
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
