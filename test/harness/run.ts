/**
 * Programs a test runs to completion (a CLI, curl, cgi-fcgi, a CGI script): stdout as bytes,
 * stderr as text, a timeout that kills the program and rejects. Also the polling wait for a
 * long-running program's output (`tsgi: listening on ...`).
 */
import { Buffer } from 'node:buffer';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What a program did: its exit, its stdout (bytes), its stderr (text). */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

interface CollectOptions {
  /** Names the program in the timeout error. */
  what: string;
  timeoutMs: number;
  /** How stderr is decoded (default utf8). */
  stderrEncoding?: BufferEncoding;
  /**
   * The chunks of stdout when the caller reads it itself (runProcess's delays); by default
   * every chunk is read here as it comes.
   */
  stdoutChunks?: Buffer[];
}

/**
 * collect: waits for `child` to close and resolves with what it wrote; after `timeoutMs` it is
 * killed (SIGKILL) and the promise rejects, with the stderr seen so far.
 */
function collect(child: ChildProcess, opts: CollectOptions): Promise<ProcessResult> {
  const out = opts.stdoutChunks ?? [];
  if (!opts.stdoutChunks) child.stdout?.on('data', (d: Buffer) => out.push(d));
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString(opts.stderrEncoding ?? 'utf8');
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${opts.what} timed out\nstderr: ${err}`));
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

export interface RunProgramOptions {
  /** The environment (default: this process's). Strings only: Node encodes them as UTF-8. */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, then EOF; without it stdin is /dev/null. */
  stdin?: Buffer | string;
  cwd?: string;
  /** Default 30000 ms. */
  timeoutMs?: number;
}

/** runProgram: runs `command ARGS` to completion; never rejects except on timeout or spawn error. */
export function runProgram(
  command: string,
  args: string[],
  options: RunProgramOptions = {},
): Promise<ProcessResult> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const result = collect(child, {
    what: `${command} ${args.join(' ')}`,
    timeoutMs: options.timeoutMs ?? 30_000,
  });
  if (options.stdin !== undefined) {
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.stdin);
  }
  return result;
}

/** Options of runProcess. */
export interface ProcessOptions {
  /** The whole environment (nothing is inherited). Values may be raw bytes. */
  env: Record<string, string | Uint8Array>;
  /** Bytes for stdin, then EOF. Default: nothing (EOF at once). */
  stdin?: Uint8Array | string;
  /** Write stdin only after this many ms (exercises reads that find nothing yet). */
  stdinDelayMs?: number;
  /** Read stdout only after this many ms (a slow server: the pipe fills up). */
  stdoutDelayMs?: number;
  /** Close our end of stdout after this many bytes arrived (the server went away). */
  closeStdoutAfter?: number;
  args?: string[];
  /** Default 20000 ms. */
  timeoutMs?: number;
  /** Send this signal to the process once its first stdout bytes arrived (a server giving up). */
  signalOnOutput?: NodeJS.Signals;
}

/** shellBytes: a POSIX `printf` format producing exactly `bytes` (every byte as an octal escape). */
function shellBytes(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += `\\${b.toString(8).padStart(3, '0')}`;
  return s;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let scripts = 0;

/**
 * runProcess: runs `command` with exactly `env` as its environment, as a web server runs a CGI
 * program. Node's spawn() only takes strings (it would encode 0xE9 as UTF-8), so the variables
 * are put in place by a shell: each value is produced byte for byte by printf (a string value
 * stands for its latin-1 bytes), then `exec env -i` starts the command with nothing else in its
 * environment. The shell script goes in a temporary file: one argument may not exceed 128 KiB
 * (MAX_ARG_STRLEN), less than a 40 KiB value takes in octal escapes.
 */
export function runProcess(command: string, options: ProcessOptions): Promise<ProcessResult> {
  const lines: string[] = [];
  const assigns: string[] = [];
  let i = 0;
  for (const [name, value] of Object.entries(options.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad variable name ${name}`);
    const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    // The trailing "x" survives $(...), which strips trailing newlines; it is cut off after.
    lines.push(`v${i}="$(printf '${shellBytes(bytes)}x')"; v${i}="\${v${i}%x}"`);
    assigns.push(`"${name}=$v${i}"`);
    i++;
  }
  const args = (options.args ?? []).map(shellQuote).join(' ');
  lines.push(`exec /usr/bin/env -i ${assigns.join(' ')} ${shellQuote(command)} ${args}`);
  const file = join(tmpdir(), `tsgi-run-${process.pid}-${++scripts}.sh`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  const child = spawn('/bin/sh', [file], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.on('close', () => rmSync(file, { force: true }));
  const out: Buffer[] = [];
  const result = collect(child, {
    what: command,
    timeoutMs: options.timeoutMs ?? 20_000,
    stdoutChunks: out,
  });
  let received = 0;
  const startReading = () => {
    child.stdout.on('data', (d: Buffer) => {
      if (received === 0 && options.signalOnOutput) child.kill(options.signalOnOutput);
      out.push(d);
      received += d.length;
      if (options.closeStdoutAfter !== undefined && received >= options.closeStdoutAfter) {
        child.stdout.destroy();
      }
    });
    // An explicitly paused stream stays paused when a 'data' listener is added.
    child.stdout.resume();
  };
  if (options.stdoutDelayMs) {
    child.stdout.pause();
    setTimeout(startReading, options.stdoutDelayMs);
  } else {
    startReading();
  }
  child.stdin.on('error', () => undefined);
  const feed = () => {
    if (options.stdin !== undefined) child.stdin.end(options.stdin);
    else child.stdin.end();
  };
  if (options.stdinDelayMs) setTimeout(feed, options.stdinDelayMs);
  else feed();
  return result;
}

/**
 * pollMatch: polls `read()` (a growing output) until `pattern` matches it; undefined once
 * `timeoutMs` has passed or `gone()` says no more output will come.
 */
export async function pollMatch(
  read: () => string,
  pattern: RegExp,
  timeoutMs: number,
  gone: () => boolean = () => false,
): Promise<RegExpExecArray | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(read());
    if (m) return m;
    if (gone() || Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** staleSocket: leaves a Unix socket file at `path` that nothing answers on, as a killed server does. */
export function staleSocket(path: string): void {
  const r = spawnSync(process.execPath, [
    '-e',
    'require("node:net").createServer().listen(process.argv[1], () => process.kill(process.pid, "SIGKILL"))',
    path,
  ]);
  if (r.signal !== 'SIGKILL') throw new Error(`staleSocket: the child ended with ${r.status}`);
}
