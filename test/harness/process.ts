/**
 * Child-process plumbing for the harness: spawn a server in its own process group, keep its
 * output, make sure it dies with the test worker, wait for a TCP port or unix socket.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';

const GRACE_MS = 3_000;

/** Process groups we started and have not seen die yet. */
const liveGroups = new Set<number>();

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the whole group is already gone.
  }
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Runs on a normal worker exit (vitest ends the file, process.exit, uncaught error).
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  });
}

/**
 * The 'exit' hook does not run when the worker itself is SIGKILLed (a vitest timeout, a crash,
 * Ctrl-C on the runner). A tiny detached watchdog holds a pipe from this process: when the pipe
 * closes, for whatever reason, it SIGKILLs every group it was told about and not told to forget.
 */
const WATCHDOG_SOURCE = `
const groups = new Set();
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    const n = Number(line.slice(1));
    if (line[0] === '+') groups.add(n); else groups.delete(n);
  }
});
const done = () => { for (const g of groups) { try { process.kill(-g, 'SIGKILL'); } catch {} } process.exit(0); };
process.stdin.on('end', done);
process.stdin.on('error', done);
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
`;

let watchdog: ChildProcess | undefined;
function tellWatchdog(line: string): void {
  if (!watchdog) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    watchdog.on('error', () => {});
    watchdog.stdin!.on('error', () => {});
    // Neither the watchdog nor its pipe may keep the test worker alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  }
  watchdog.stdin!.write(`${line}\n`);
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Command line, for error messages. */
  commandLine: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** SIGTERM the process group, SIGKILL it after a grace period, wait for exit. Idempotent. */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Keep at most this many characters of output (the tail). */
  maxOutput?: number;
}

/**
 * Spawn a long-running process in a new process group (detached), so that stop() reaches its
 * workers and CGI children too: nginx workers, Apache's children and its cgid daemon, fcgiwrap's
 * preforked children all stay in the group of the process we started.
 */
export function spawnTracked(command: string, args: string[], opts: SpawnOptions = {}): Spawned {
  installExitHook();
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const max = opts.maxOutput ?? 256 * 1024;
  let out = '';
  const collect = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > max) out = out.slice(out.length - max);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exitedFlag = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err) => {
      out += `\n[spawn error] ${err.message}\n`;
      exitedFlag = true;
      resolve({ code: null, signal: null });
    });
    child.on('exit', (code, signal) => {
      exitedFlag = true;
      resolve({ code, signal });
    });
  });
  const pid = child.pid ?? -1;
  if (pid > 0) {
    liveGroups.add(pid);
    tellWatchdog(`+${pid}`);
  }
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (pid <= 0) return;
      if (!exitedFlag) {
        killGroup(pid, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => {
            timer = setTimeout(() => r(true), GRACE_MS);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) killGroup(pid, 'SIGKILL');
        await exited;
      }
      // The leader is gone; anything left in its group (a CGI script still running, a worker
      // that missed the signal) is killed too.
      killGroup(pid, 'SIGKILL');
      liveGroups.delete(pid);
      tellWatchdog(`-${pid}`);
    })();
    return stopping;
  };
  return {
    child,
    pid,
    commandLine: [command, ...args].join(' '),
    output: () => out,
    exited,
    hasExited: () => exitedFlag,
    stop,
  };
}

/**
 * A TCP port that was free a moment ago: the kernel picks it (listen on port 0) and we release
 * it. Another process could grab it before the server binds, so callers retry on EADDRINUSE.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tryConnect(target: { port: number; host: string } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(target as any);
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1_000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export class NotReadyError extends Error {
  constructor(
    message: string,
    readonly exitedEarly: boolean,
  ) {
    super(message);
  }
}

/**
 * Poll until something accepts connections on the target, failing early if `proc` exits, or
 * after `timeoutMs`.
 */
export async function waitForListener(
  target: { port: number; host?: string } | { path: string },
  proc: Spawned | undefined,
  timeoutMs: number,
): Promise<void> {
  const t = 'path' in target ? target : { port: target.port, host: target.host ?? '127.0.0.1' };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc?.hasExited()) {
      const { code, signal } = await proc.exited;
      throw new NotReadyError(
        `${proc.commandLine} exited (code ${code}, signal ${signal}) before accepting connections`,
        true,
      );
    }
    if (await tryConnect(t)) {
      // A bad config can still make it exit right after binding (e.g. Apache's children);
      // give it a moment to do so, then check once more.
      await new Promise((r) => setTimeout(r, 30));
      if (!proc?.hasExited()) return;
      continue;
    }
    if (Date.now() > deadline) {
      const where = 'path' in t ? t.path : `${t.host}:${t.port}`;
      throw new NotReadyError(
        `nothing accepted connections on ${where} within ${timeoutMs} ms`,
        false,
      );
    }
    await new Promise((r) => setTimeout(r, 40));
  }
}

/** Last `lines` lines of a text. */
export function tail(text: string, lines = 30): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

export async function readIfExists(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}
