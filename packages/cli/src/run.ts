// The runner: one process, or a master with worker processes (node:cluster). It owns
// everything a command should not have to repeat: loading the app, signals, graceful
// stop, restarting dead workers, recycling after --max-requests, SIGHUP reloads.
//
// node:cluster and node:crypto are imported when workers or recycling are asked for, not
// before: `tsgi cgi` starts a process per request and must not pay for them.
import type { Cluster, Worker } from 'node:cluster';
import {
  type Application,
  declareNeedsBody,
  type ErrorSink,
  isTsgiError,
  needsBody,
} from '@tsgi/core';
import type { Command, Serving } from './command.js';
import { commands } from './commands/index.js';
import { loadApp } from './load.js';
import { type ParsedCommandLine, parseCommandLine } from './options.js';

type Run = Extract<ParsedCommandLine, { kind: 'run' }>;

/** Messages between a worker and the master (over the cluster IPC channel). */
type WorkerMessage =
  | { tsgi: 'ready'; address: string }
  | { tsgi: 'fatal'; message: string }
  | { tsgi: 'retire' }
  | { tsgi: 'closed' };
type MasterMessage = { tsgi: 'stop' } | { tsgi: 'bye' };

/** Marks a worker started by this runner (an app may use node:cluster for its own ends). */
const WORKER_ENV = 'TSGI_CLUSTER_WORKER';

/** oneLine: an error as the single line the command prints (`tsgi: ...`). */
export function oneLine(e: unknown): string {
  let msg = isTsgiError(e) || e instanceof Error ? e.message : String(e);
  msg = msg.split('\n')[0] as string;
  return `tsgi: ${msg.replace(/^cli: /, '')}`;
}

function fail(e: unknown): void {
  process.stderr.write(`${oneLine(e)}\n`);
}

function announce(address: string, extra = ''): void {
  process.stdout.write(`tsgi: listening on ${address}${extra}\n`);
}

/**
 * main: runs `tsgi` with `argv` (without `node` and the script) and the commands of
 * `registry`, and resolves to the exit code: 0 after a clean stop, 1 when the app cannot be
 * loaded or served, 2 for a bad command line. A server keeps running until SIGTERM or
 * SIGINT. With --workers, the workers re-run `process.argv[1]` (the `tsgi` bin) with `argv`.
 */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  registry: readonly Command[] = commands,
): Promise<number> {
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(argv, registry);
  } catch (e) {
    fail(e);
    return 2;
  }
  if (parsed.kind !== 'run') {
    process.stdout.write(parsed.text.endsWith('\n') ? parsed.text : `${parsed.text}\n`);
    return 0;
  }
  if (process.env[WORKER_ENV] === '1') {
    // In a worker Node has loaded node:cluster already (to set up the IPC channel).
    const cluster = await loadCluster();
    if (cluster.isWorker) return runWorker(parsed);
  }
  if (parsed.shared.workers > 0) return runMaster(parsed, argv, await loadCluster());
  return runSingle(parsed);
}

async function loadCluster(): Promise<Cluster> {
  return (await import('node:cluster')).default;
}

/** Wraps the app to count requests; calls `onLimit` once, when the count reaches `limit`. */
function countRequests(app: Application, limit: number, onLimit: () => void): Application {
  let n = 0;
  const counted: Application = (environ, startResponse) => {
    if (++n === limit) onLimit();
    return app(environ, startResponse);
  };
  // The wrapper must not hide what the app declared to runApp (mapHeadToGet auto).
  return needsBody(app) ? declareNeedsBody(counted) : counted;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Closes gracefully, bounded by `seconds`; then closes whatever is left. */
async function gracefulClose(serving: Serving, seconds: number, log: ErrorSink): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    serving.close(true).then(() => false),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), seconds * 1000);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    log(
      `tsgi: requests still running after ${seconds} s (--graceful-timeout); closing their connections`,
      'warn',
    );
    await Promise.race([serving.close(false), sleep(1000)]);
  }
}

async function start(p: Run, onLimit?: () => void): Promise<Serving> {
  await p.command.beforeLoad?.(p.shared, p.options);
  let app = await loadApp(p.module, process.cwd(), {
    interface: p.shared.interface,
    stripMount: p.shared.stripMount,
    log: p.shared.log,
  });
  const { maxRequests, maxRequestsJitter } = p.shared;
  if (maxRequests > 0 && onLimit !== undefined) {
    const { randomInt } = await import('node:crypto');
    app = countRequests(app, maxRequests + randomInt(0, maxRequestsJitter + 1), onLimit);
  }
  return p.command.serve(app, p.shared, p.options);
}

async function runSingle(p: Run): Promise<number> {
  const log = p.shared.log;
  let serving: Serving;
  try {
    serving = await start(p);
  } catch (e) {
    fail(e);
    await p.command.failed?.(e);
    return 1;
  }
  if (!serving.done) announce(serving.address);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log(`tsgi: ${signal} again; exiting now`, 'warn');
        resolve(1);
        return;
      }
      stopping = true;
      log(
        `tsgi: ${signal}: no new connections; finishing requests in flight (at most ${p.shared.gracefulTimeout} s)`,
        'info',
      );
      void gracefulClose(serving, p.shared.gracefulTimeout, log).then(() => resolve(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () =>
      log(
        'tsgi: SIGHUP ignored: reloading needs --workers N (a master that starts new workers)',
        'warn',
      ),
    );
    serving.done?.then(
      () => resolve(0),
      (e) => {
        fail(e);
        resolve(1);
      },
    );
  });
}

async function runWorker(p: Run): Promise<number> {
  const log = p.shared.log;
  const send = (m: WorkerMessage) => {
    if (process.connected) process.send?.(m);
  };
  let serving: Serving;
  try {
    serving = await start(p, () => {
      log(`tsgi: worker ${process.pid} reached --max-requests; asking for a replacement`, 'info');
      send({ tsgi: 'retire' });
    });
  } catch (e) {
    send({ tsgi: 'fatal', message: oneLine(e) });
    return 1;
  }
  send({ tsgi: 'ready', address: serving.address });
  return new Promise<number>((resolve) => {
    let stopping = false;
    let bye: () => void = () => undefined;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      void gracefulClose(serving, p.shared.gracefulTimeout, log)
        .then(() => farewell())
        .then(() => resolve(0));
    };
    // The master may have handed this worker a connection just before it learnt that our
    // listener closed; Node sends such a connection back to the master only if the worker
    // is still alive to read it. Messages keep their order, so once the master answers
    // `closed` with `bye`, every connection it sent us has been read (and sent back).
    const farewell = () =>
      new Promise<void>((r) => {
        if (!process.connected) return r();
        const timer = setTimeout(r, 2000);
        bye = () => {
          clearTimeout(timer);
          r();
        };
        send({ tsgi: 'closed' });
      });
    process.on('message', (m: MasterMessage) => {
      if (m?.tsgi === 'stop') stop();
      else if (m?.tsgi === 'bye') bye();
    });
    // The master is gone: nobody will restart or stop us; finish and leave.
    process.on('disconnect', stop);
    // Killed directly: leave gracefully; the master starts a replacement.
    process.on('SIGTERM', stop);
    // Ctrl-C and a closing terminal reach the whole process group: the master decides.
    process.on('SIGINT', () => undefined);
    process.on('SIGHUP', () => undefined);
  });
}

interface WorkerState {
  worker: Worker;
  pid: number;
  started: number;
  /** starting -> ready -> (retiring) -> stopping; `stopping` exits are expected. */
  state: 'starting' | 'ready' | 'retiring' | 'stopping';
  /**
   * Why it was started: `replacement` (SIGHUP, --max-requests) takes over from a worker that
   * keeps serving until it listens, so a replacement that fails is not restarted; `capacity`
   * (the first ones, and those replacing a dead worker) is, until one listens.
   */
  role: 'capacity' | 'replacement';
  /** Resolves true once it listens, false if it failed or died first. */
  ready: Promise<boolean>;
  settle(ok: boolean): void;
}

async function runMaster(p: Run, argv: readonly string[], cluster: Cluster): Promise<number> {
  const log = p.shared.log;
  const n = p.shared.workers;
  const graceMs = p.shared.gracefulTimeout * 1000;
  try {
    await p.command.beforeWorkers?.(p.shared, p.options);
  } catch (e) {
    fail(e);
    return 1;
  }
  cluster.setupPrimary({ args: [...argv] });
  const all = new Map<number, WorkerState>();
  let phase: 'starting' | 'running' | 'reloading' | 'stopping' = 'starting';
  let address = '';
  let fatal: string | undefined;
  let quickDeaths = 0;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((r) => {
    finish = r;
  });

  const stopWorker = (w: WorkerState) => {
    if (w.state === 'stopping') return;
    w.state = 'stopping';
    try {
      w.worker.send({ tsgi: 'stop' } satisfies MasterMessage);
    } catch {
      w.worker.process.kill('SIGTERM');
    }
    // A worker stuck past its own graceful timeout is killed.
    setTimeout(() => {
      if (!w.worker.isDead()) w.worker.process.kill('SIGKILL');
    }, graceMs + 5000).unref();
  };

  const fork = (role: WorkerState['role']): WorkerState => {
    const worker = cluster.fork({ [WORKER_ENV]: '1' });
    let settle: (ok: boolean) => void = () => undefined;
    const ready = new Promise<boolean>((r) => {
      settle = r;
    });
    const w: WorkerState = {
      worker,
      pid: worker.process.pid ?? 0,
      started: Date.now(),
      state: 'starting',
      role,
      ready,
      settle,
    };
    all.set(worker.id, w);
    worker.on('message', (m: WorkerMessage) => {
      if (m?.tsgi === 'ready') {
        if (w.state === 'starting') w.state = 'ready';
        address = m.address;
        log(`tsgi: worker ${w.pid} listening`, 'debug');
        w.settle(true);
      } else if (m?.tsgi === 'fatal') {
        if (phase === 'starting') {
          // Every worker fails the same way (same module, same address): say it once.
          if (fatal === undefined) process.stderr.write(`${m.message}\n`);
        } else {
          log(`tsgi: a new worker could not start: ${m.message.replace(/^tsgi: /, '')}`, 'error');
        }
        fatal = m.message;
        w.settle(false);
      } else if (m?.tsgi === 'closed') {
        try {
          worker.send({ tsgi: 'bye' } satisfies MasterMessage);
        } catch {
          // gone already
        }
      } else if (m?.tsgi === 'retire') {
        if (phase === 'running' && w.state === 'ready') {
          w.state = 'retiring';
          void replace(w);
        }
      }
    });
    worker.on('exit', (code, signal) => {
      all.delete(worker.id);
      w.settle(false);
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      if (w.state === 'stopping' || phase === 'stopping') {
        log(`tsgi: worker ${w.pid} exited (${how})`, 'debug');
        if (phase === 'stopping' && all.size === 0) finish(0);
        return;
      }
      if (phase === 'starting') {
        // Died before listening: a load or listen error (already printed), or a crash.
        if (fatal === undefined) {
          process.stderr.write(
            `tsgi: a worker exited (${how}) before listening; run without --workers to see why\n`,
          );
        }
        shutdownNow(1);
        return;
      }
      if (w.state === 'starting' && w.role === 'replacement') {
        // The worker it was to replace still serves; replace() reports the failure.
        log(`tsgi: a new worker exited (${how}) before listening`, 'warn');
        return;
      }
      if (w.state === 'retiring') {
        // Its replacement is already starting; replace() restarts one if that fails too.
        log(`tsgi: worker ${w.pid} died (${how}) while being replaced`, 'warn');
        return;
      }
      log(`tsgi: worker ${w.pid} died (${how}); starting a new one`, 'warn');
      // A worker that keeps dying right after its start is restarted less and less often.
      quickDeaths = Date.now() - w.started < 2000 ? quickDeaths + 1 : 0;
      const delay = quickDeaths === 0 ? 0 : Math.min(30_000, 100 * 2 ** quickDeaths);
      setTimeout(() => {
        if (phase === 'running' || phase === 'reloading') fork('capacity');
      }, delay);
    });
    return w;
  };

  /** Starts a replacement and stops `old` once the new one listens (never fewer listeners). */
  const replace = async (old: WorkerState): Promise<boolean> => {
    const fresh = fork('replacement');
    const ok = await fresh.ready;
    if (!ok) {
      if (old.worker.isDead()) {
        if (phase === 'running' || phase === 'reloading') fork('capacity');
      } else if (old.state === 'retiring') {
        old.state = 'ready';
      }
      return false;
    }
    stopWorker(old);
    return true;
  };

  const shutdownNow = (code: number) => {
    phase = 'stopping';
    for (const w of all.values()) w.worker.process.kill('SIGKILL');
    finish(code);
  };

  const shutdown = (signal: string) => {
    if (phase === 'stopping') {
      log(`tsgi: ${signal} again; killing the workers`, 'warn');
      shutdownNow(1);
      return;
    }
    phase = 'stopping';
    log(
      `tsgi: ${signal}: stopping ${all.size} worker(s); requests in flight finish (at most ${p.shared.gracefulTimeout} s)`,
      'info',
    );
    if (all.size === 0) finish(0);
    for (const w of all.values()) stopWorker(w);
  };

  const reload = async () => {
    if (phase !== 'running') {
      log(`tsgi: SIGHUP ignored while ${phase}`, 'warn');
      return;
    }
    phase = 'reloading';
    const old = [...all.values()].filter((w) => w.state === 'ready');
    log(`tsgi: SIGHUP: replacing ${old.length} worker(s) one by one`, 'info');
    let ok = true;
    for (const w of old) {
      if ((phase as string) !== 'reloading') return;
      if (!(await replace(w))) {
        ok = false;
        break;
      }
    }
    if ((phase as string) !== 'reloading') return;
    phase = 'running';
    if (ok) log(`tsgi: reload done: ${old.length} worker(s) replaced`, 'info');
    else log('tsgi: reload stopped; the remaining old workers keep serving', 'error');
  };

  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => void reload());

  const first: WorkerState[] = [];
  for (let i = 0; i < n; i++) first.push(fork('capacity'));
  const oks = await Promise.all(first.map((w) => w.ready));
  if ((phase as string) === 'stopping') return finished;
  if (oks.includes(false)) {
    shutdownNow(1);
    return finished;
  }
  phase = 'running';
  announce(address, ` (${n} worker${n === 1 ? '' : 's'}, master pid ${process.pid})`);
  return finished;
}
