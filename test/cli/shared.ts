// What several of the `tsgi` end-to-end files (fastcgi, scgi, interface) set up alike: a
// process behind a real front server, processes next to a temporary directory for their
// unix sockets, spawn-fcgi, a port in use, and the checks of a one-line failure and of a
// curl 200.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { curl } from '../harness/clients.js';
import { type FrontHandle, type FrontServer, findBinary, useFront } from '../harness/servers.js';
import { BIN, type RunResult, type Served, tracker } from './helpers.js';

export type Tracker = ReturnType<typeof tracker>;

/**
 * useTsgiBehind: `tsgi COMMAND --listen 127.0.0.1:0 ARGS`, started once for the describe
 * block, with a real `server` in front that passes it COMMAND (FastCGI or SCGI) requests.
 * Both are stopped after the block, the front first.
 */
export function useTsgiBehind(
  server: FrontServer,
  command: 'fastcgi' | 'scgi',
  args: string[],
): () => FrontHandle {
  const procs = tracker();
  let t: Served;
  beforeAll(async () => {
    t = procs.start([command, '--listen', '127.0.0.1:0', ...args]);
    await t.listening();
  });
  afterAll(() => procs.stopAll());
  return useFront(() => ({
    server,
    protocol: command,
    backend: { host: '127.0.0.1', port: t.port },
  }));
}

/**
 * useProcsInDir: the describe block's processes and a temporary directory `prefix*` for
 * their unix sockets, made before the block's own beforeAll hooks run. The processes are
 * stopped after each test (`stop: 'each'`) or after all of them; the directory is removed
 * after all tests, once they are stopped.
 */
export function useProcsInDir(
  prefix: string,
  stop: 'each' | 'all' = 'all',
): { procs: Tracker; dir(): string } {
  let dir: string | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  // Registered after the directory's afterAll, so it runs before it.
  const procs = tracker();
  (stop === 'each' ? afterEach : afterAll)(() => procs.stopAll());
  return {
    procs,
    dir() {
      if (!dir) throw new Error('useProcsInDir: no directory yet (used before beforeAll?)');
      return dir;
    },
  };
}

/**
 * spawnFcgi: `spawn-fcgi -n SPAWN_ARGS -- node bin.js TSGI_ARGS` under `procs`: spawn-fcgi
 * opens the listening socket on fd 0 and -n execs tsgi in place (the pid is tsgi's own).
 */
export function spawnFcgi(procs: Tracker, spawnArgs: string[], tsgiArgs: string[]): Served {
  return procs.start(
    ['-n', ...spawnArgs, '--', process.execPath, BIN, ...tsgiArgs],
    {},
    findBinary('spawn-fcgi') as string,
  );
}

/** withBusyPort: runs `fn` with a port on 127.0.0.1 that a listening server holds. */
export async function withBusyPort<T>(fn: (port: number) => Promise<T>): Promise<T> {
  const busy: Server = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  try {
    return await fn((busy.address() as { port: number }).port);
  } finally {
    busy.close();
  }
}

/** expectOneLine: `r` exited with `code`, no stdout, one `tsgi: ` line on stderr (returned). */
export function expectOneLine(r: Pick<RunResult, 'code' | 'stderr' | 'stdout'>, code: number) {
  expect(r.code).toBe(code);
  expect(r.stdout.length).toBe(0);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^tsgi: /);
  return lines[0] as string;
}

/**
 * curlOk: `curl -i URL` exits 0 with a 200; resolves with the whole output, its head and its
 * body (as UTF-8, split at the first blank line).
 */
export async function curlOk(url: string): Promise<{ text: string; head: string; body: string }> {
  const r = await curl(['-i', url]);
  expect(r.code).toBe(0);
  const text = r.stdout.toString('utf8');
  const [head, body] = text.split('\r\n\r\n') as [string, string];
  expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  return { text, head, body };
}
