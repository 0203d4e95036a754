// Listening for the socket commands (`tsgi fastcgi`, `tsgi scgi`): TCP, a Unix socket with
// its mode and owner, or a listening socket inherited on a file descriptor (fd 0, left by
// spawn-fcgi, fcgiwrap-style supervisors, Apache mod_fcgid or lighttpd's bin-path).
// Nothing here imports node:net: the adapter does, once `serve` runs.
import {
  type SocketListen as CoreSocketListen,
  type ErrorSink,
  isStaleSocket,
  isTsgiError,
  TsgiError,
} from '@tsgi/core';
import { fs } from './builtins.js';
import type { CommandOption, CommandOptions, Serving, SharedOptions } from './command.js';
import { type Listen, parseCount, parseListen } from './values.js';

/** SocketListen: where a socket command listens: TCP, a Unix socket, or an inherited fd. */
export type SocketListen = Listen | { fd: number };

function bad(option: string, value: string, want: string): TsgiError {
  return new TsgiError(
    'ERR_CLI_BAD_OPTION',
    `cli: ${option} ${JSON.stringify(value)} is not ${want}`,
  );
}

/**
 * parseSocketListen: what `parseListen` takes, plus `fd:N`, a listening socket inherited on
 * file descriptor N (fd:0 from spawn-fcgi, fd:3 from systemd socket activation).
 */
export function parseSocketListen(option: string, value: string): SocketListen {
  const m = /^fd:([0-9]{1,5})$/.exec(value);
  if (m !== null) return { fd: Number(m[1]) };
  try {
    return parseListen(option, value);
  } catch {
    throw bad(
      option,
      value,
      'HOST:PORT (like 127.0.0.1:9000, :9000, [::1]:9000), unix:/path (or /path) or fd:N',
    );
  }
}

/** parseSocketMode: an octal permission mode for a Unix socket: `660`, `0660`, `0o660`. */
export function parseSocketMode(option: string, value: string): number {
  const m = /^(?:0o?)?([0-7]{3})$/.exec(value);
  if (m === null) throw bad(option, value, 'an octal mode like 660 (rw for owner and group)');
  return Number.parseInt(m[1] as string, 8);
}

/** SocketOwner: the uid and gid a Unix socket is given (-1: left as it is). */
export interface SocketOwner {
  uid: number;
  gid: number;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;

/** Runs `id`/`getent` (node:child_process, loaded only for a name). */
function lookup(args: [string, ...string[]]): string | undefined {
  const cp = process.getBuiltinModule('node:child_process');
  try {
    return cp
      .execFileSync(args[0], args.slice(1), {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
      .trim();
  } catch {
    return undefined;
  }
}

function resolveId(option: string, value: string, name: string, kind: 'user' | 'group'): number {
  if (/^[0-9]{1,10}$/.test(name)) return Number(name);
  if (!NAME.test(name)) throw bad(option, value, 'USER[:GROUP] (names or numeric ids)');
  const out =
    kind === 'user'
      ? lookup(['id', '-u', '--', name])
      : lookup(['getent', 'group', name])?.split(':')[2];
  if (out === undefined || !/^[0-9]+$/.test(out)) {
    throw new TsgiError(
      'ERR_CLI_BAD_OPTION',
      `cli: ${option} ${JSON.stringify(value)}: no ${kind} ${JSON.stringify(name)} on this system (${kind === 'user' ? 'id -u' : 'getent group'} found none); give an existing name or a numeric id`,
    );
  }
  return Number(out);
}

/**
 * parseSocketOwner: `USER`, `USER:GROUP`, `:GROUP` or `USER:` (the user's login group, as
 * chown(1) does), each a name (resolved with `id -u`, `id -g`, `getent group`) or a number.
 */
export function parseSocketOwner(option: string, value: string): SocketOwner {
  const m = /^([^:]*)(?::([^:]*))?$/.exec(value);
  if (m === null || value === '' || value === ':') {
    throw bad(option, value, 'USER[:GROUP] (names or numeric ids)');
  }
  const user = m[1] as string;
  const group = m[2];
  const uid = user === '' ? -1 : resolveId(option, value, user, 'user');
  let gid = -1;
  if (group !== undefined && group !== '') gid = resolveId(option, value, group, 'group');
  else if (group === '' && user !== '') {
    const g = /^[0-9]+$/.test(user) ? undefined : lookup(['id', '-g', '--', user]);
    if (g === undefined || !/^[0-9]+$/.test(g)) {
      throw bad(option, value, 'USER:GROUP with a group (no login group found for the user)');
    }
    gid = Number(g);
  }
  return { uid, gid };
}

/** Fd0: what file descriptor 0 is, for a socket command started without `--listen`. */
export type Fd0 =
  | { kind: 'none' }
  | { kind: 'listening'; describe?: string }
  | { kind: 'connected' }
  /** A socket /proc/net does not describe (not Linux, or another address family). */
  | { kind: 'unknown' };

/**
 * inspectFd0: whether fd 0 is a listening socket, without touching it. On Linux the
 * socket's inode is looked up in /proc/net/unix (flag __SO_ACCEPTCON) and /proc/net/tcp,
 * tcp6 (state 0A, LISTEN). A stdin that is a connected socket (a parent's socketpair) is
 * `connected`; a pipe, a file or a terminal is `none`.
 */
export function inspectFd0(): Fd0 {
  let ino: number;
  try {
    const st = fs.fstatSync(0);
    if (!st.isSocket()) return { kind: 'none' };
    ino = st.ino;
  } catch {
    return { kind: 'none' };
  }
  const inode = String(ino);
  const read = (file: string): string[] | undefined => {
    try {
      return fs.readFileSync(file, 'latin1').split('\n').slice(1);
    } catch {
      return undefined;
    }
  };
  const unix = read('/proc/net/unix');
  if (unix !== undefined) {
    for (const line of unix) {
      // Num RefCount Protocol Flags Type St Inode [Path]
      const f = line.trim().split(/\s+/);
      if (f[6] !== inode) continue;
      const listening = (Number.parseInt(f[3] ?? '0', 16) & 0x10000) !== 0;
      if (!listening) return { kind: 'connected' };
      return { kind: 'listening', describe: f[7] ? `unix:${f[7]}` : 'a unix socket' };
    }
  }
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const tcp = read(file);
    if (tcp === undefined) continue;
    for (const line of tcp) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f[9] !== inode) continue;
      if (f[3] !== '0A') return { kind: 'connected' };
      return { kind: 'listening', describe: tcpAddress(f[1] ?? '') };
    }
  }
  return { kind: 'unknown' };
}

/** `0100007F:2328` (/proc/net/tcp, little-endian words) as `127.0.0.1:9000`. */
function tcpAddress(hex: string): string | undefined {
  const [a, p] = hex.split(':');
  if (a === undefined || p === undefined) return undefined;
  const port = Number.parseInt(p, 16);
  if (a.length === 8) {
    const n = Number.parseInt(a, 16);
    return `${n & 255}.${(n >>> 8) & 255}.${(n >>> 16) & 255}.${n >>> 24}:${port}`;
  }
  if (a.length === 32) {
    const words: string[] = [];
    for (let i = 0; i < 32; i += 8) {
      const w = a.slice(i, i + 8);
      // Each 32-bit word is in host (little-endian) order.
      const be = (w.match(/../g) ?? []).reverse().join('');
      words.push(be.slice(0, 4), be.slice(4));
    }
    const ip = words.map((w) => w.replace(/^0+(?=.)/, '').toLowerCase()).join(':');
    return `[${ip.replace(/(^|:)0(:0)+(:|$)/, '::')}]:${port}`;
  }
  return undefined;
}

/** The options `tsgi fastcgi` and `tsgi scgi` share for where and how they listen. */
export function socketOptions(defaultListen: string): Record<string, CommandOption> {
  return {
    listen: {
      type: 'string',
      short: 'l',
      arg: 'ADDRESS',
      help: `HOST:PORT, :PORT, [::1]:PORT, unix:/path (or /path), or fd:N (an inherited listening socket); default ${defaultListen}, or fd 0 when it is a listening socket (spawn-fcgi, mod_fcgid, lighttpd bin-path)`,
    },
    'socket-mode': {
      type: 'string',
      arg: 'OCTAL',
      help: 'permissions of the unix socket, set right after it is bound (660: the web server in the same group)',
    },
    'socket-owner': {
      type: 'string',
      arg: 'USER[:GROUP]',
      help: 'owner and group of the unix socket, set right after it is bound (names or ids; changing the owner needs root)',
    },
    backlog: {
      type: 'string',
      arg: 'N',
      help: 'length of the listen queue (default: 511, as Node)',
    },
  };
}

/** SocketPlan: where and how a socket command listens, from its options. */
export interface SocketPlan {
  /** undefined: not given; look at fd 0, else `fallback`. */
  listen: SocketListen | undefined;
  fallback: SocketListen;
  /** Serving in a cluster worker: fd 0 is never looked at (see planSocket). */
  workers: boolean;
  mode: number | undefined;
  owner: SocketOwner | undefined;
  backlog: number | undefined;
}

/**
 * planSocket: checks and parses the options of `socketOptions` (throws one-line errors).
 *
 * An inherited socket (`fd:N`, or fd 0 found listening) and `--workers` do not mix: a
 * cluster worker's listen on a file descriptor is done by the master (node:cluster), which
 * closes the descriptor when its last worker exits, so one crash of every worker would lose
 * the socket for good. Supervisors that pass a socket start processes themselves
 * (spawn-fcgi -F N, mod_fcgid, lighttpd max-procs): refused with a one-line error.
 */
export function planSocket(
  o: CommandOptions,
  shared: SharedOptions,
  command: string,
  defaultListen: string,
): SocketPlan {
  const text = o.listen as string | undefined;
  const listen = text === undefined ? undefined : parseSocketListen('--listen', text);
  const modeText = o['socket-mode'] as string | undefined;
  const ownerText = o['socket-owner'] as string | undefined;
  if ((modeText !== undefined || ownerText !== undefined) && !(listen && 'path' in listen)) {
    const which = modeText !== undefined ? '--socket-mode' : '--socket-owner';
    throw new TsgiError(
      'ERR_CLI_USAGE',
      `cli: ${which} applies to a unix socket this command creates; add --listen unix:/path (an inherited socket keeps what its creator set: spawn-fcgi -M, -U, -G)`,
    );
  }
  if (shared.workers > 0) {
    const inherited =
      listen !== undefined
        ? 'fd' in listen
          ? `fd ${listen.fd}`
          : undefined
        : inspectFd0().kind === 'listening'
          ? 'fd 0 (a listening socket, no --listen)'
          : undefined;
    if (inherited !== undefined) {
      throw new TsgiError(
        'ERR_CLI_USAGE',
        `cli: tsgi ${command} cannot share an inherited socket, ${inherited}, with --workers or --max-requests (node:cluster's master would own it); drop them and let the supervisor start processes (spawn-fcgi -F N, mod_fcgid), or give --listen HOST:PORT or unix:/path`,
      );
    }
  }
  const backlogText = o.backlog as string | undefined;
  return {
    listen,
    fallback: parseSocketListen('--listen', defaultListen),
    workers: shared.workers > 0,
    mode: modeText === undefined ? undefined : parseSocketMode('--socket-mode', modeText),
    owner: ownerText === undefined ? undefined : parseSocketOwner('--socket-owner', ownerText),
    backlog: backlogText === undefined ? undefined : parseCount('--backlog', backlogText, 1),
  };
}

/**
 * quietUntilListening: the adapter's error sink for a socket command. The adapters log
 * their net.Server's 'error' events (`fastcgi: server error: listen EADDRINUSE ...`); a
 * failed listen is also the rejection `listenSocket` turns into the command's one-line
 * error, so until the server listens that report is dropped (it would be a second line
 * saying the same). Call `listening()` once it listens: from then on everything passes.
 */
export function quietUntilListening(
  sink: ErrorSink,
  prefix: string,
): { errors: ErrorSink; listening(): void } {
  let on = false;
  const errors: ErrorSink = (text, level) => {
    if (!on && text.startsWith(`${prefix}: server error:`)) return;
    sink(text, level);
  };
  return {
    errors,
    listening() {
      on = true;
    },
  };
}

/**
 * removeStaleSocket: with `--listen unix:PATH`, removes PATH when it is a socket nothing
 * answers on (ECONNREFUSED: left by a process that was killed). The adapters do this
 * themselves when they listen; the master of `--workers` does it once, before the workers
 * start (see Command.beforeWorkers). Anything else (a live socket, a file that is not a
 * socket, no permission) is left for the listen to report.
 */
export async function removeStaleSocket(plan: SocketPlan): Promise<void> {
  const listen = plan.listen;
  if (listen === undefined || !('path' in listen)) return;
  if (!(await isStaleSocket(listen.path))) return;
  try {
    fs.unlinkSync(listen.path);
  } catch {
    // Gone already, or not ours to remove: the listen says so.
  }
}

/** What a socket adapter's `serve*` resolves to (FastcgiServer, ScgiServer). */
export interface SocketServer {
  readonly address: { address: string; port: number; family?: string } | string | null;
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/** The adapter's listen option (the core's SocketListen), the mode folded in for a path. */
export type AdapterListen = CoreSocketListen;

/** Listening failures that mean "fd 0 was not a listening socket after all". */
const NOT_LISTENING = new Set(['EINVAL', 'ENOTSOCK', 'EBADF', 'EOPNOTSUPP', 'ENOTSUP']);

/**
 * listenSocket: starts `start(listen)` where the plan says: `--listen`, else fd 0 when it
 * is a listening socket, else the default address. Applies `--socket-owner` after the
 * adapter bound the socket (and applied `--socket-mode`), before the caller announces it.
 * Resolves to the server and the address to print (`fcgi://127.0.0.1:9000`, `unix:/path`,
 * `fd:0 (unix:/run/app.sock)`).
 */
export async function listenSocket<S extends SocketServer>(
  plan: SocketPlan,
  scheme: string,
  start: (listen: AdapterListen) => Promise<S>,
  log: (text: string, level: 'debug' | 'info' | 'warn' | 'error') => void,
): Promise<{ server: S; address: string }> {
  let listen = plan.listen;
  let fd0: Fd0 | undefined;
  if (listen === undefined && plan.workers) listen = plan.fallback;
  if (listen === undefined) {
    fd0 = inspectFd0();
    if (fd0.kind === 'listening' || fd0.kind === 'unknown') listen = { fd: 0 };
    else listen = plan.fallback;
  }
  let server: S;
  try {
    server = await start(toAdapter(listen, plan.mode));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (fd0?.kind !== 'unknown' || code === undefined || !NOT_LISTENING.has(code)) {
      throw listenError(e, listen);
    }
    // Not Linux (or a socket /proc/net does not list): fd 0 was tried and is not a
    // listening socket.
    log(`tsgi: fd 0 is a socket but not a listening one (${code}); using the default`, 'debug');
    listen = plan.fallback;
    fd0 = undefined;
    server = await start(toAdapter(listen, plan.mode)).catch((e2: unknown) => {
      throw listenError(e2, listen as SocketListen);
    });
  }
  if (plan.owner !== undefined && 'path' in listen) {
    const { path } = listen;
    const { uid, gid } = plan.owner;
    await new Promise<void>((resolve, reject) =>
      fs.chown(path, uid, gid, (e) => (e ? reject(e) : resolve())),
    ).catch(async (e: NodeJS.ErrnoException) => {
      await server.close({ timeoutMs: 0 }).catch(() => undefined);
      throw new TsgiError(
        'ERR_CLI_LISTEN',
        `cli: cannot give ${path} to ${uid}:${gid} (--socket-owner): ${e.code ?? e.message}; run as root, or choose a group you belong to`,
        { cause: e },
      );
    });
  }
  return { server, address: describeAddress(scheme, server.address, listen, fd0) };
}

/** The core's settings every socket adapter takes from the shared options. */
export interface CoreSettings {
  mount: string | undefined;
  uriEncoding: string;
  maxBodyBytes: number | undefined;
  mapHeadToGet: SharedOptions['mapHeadToGet'];
  multiprocess: boolean;
  errors: ErrorSink;
  backlog: number | undefined;
}

/**
 * serveOnSocket: the `serve` of a socket command (fastcgi, scgi): plans the socket, gives
 * `start` the core's settings and each listen attempt, and returns what the runner needs.
 * `start` makes a new server per attempt: a failed listen leaves nothing behind to reuse.
 */
export async function serveOnSocket<S extends SocketServer>(
  name: string,
  scheme: string,
  defaultListen: string,
  shared: SharedOptions,
  o: CommandOptions,
  start: (listen: AdapterListen, settings: CoreSettings) => Promise<S>,
): Promise<Serving> {
  const plan = planSocket(o, shared, name, defaultListen);
  const sink = quietUntilListening(shared.log, name);
  const settings: CoreSettings = {
    mount: shared.mount,
    uriEncoding: shared.uriEncoding,
    maxBodyBytes: shared.maxBodyBytes,
    mapHeadToGet: shared.mapHeadToGet,
    multiprocess: shared.multiprocess,
    errors: sink.errors,
    backlog: plan.backlog,
  };
  const { server, address } = await listenSocket(
    plan,
    scheme,
    (listen) => start(listen, settings),
    shared.log,
  );
  sink.listening();
  const timeoutMs = shared.gracefulTimeout * 1000;
  return {
    address,
    close: (graceful) => server.close({ timeoutMs: graceful ? timeoutMs : 0 }),
  };
}

function toAdapter(listen: SocketListen, mode: number | undefined): AdapterListen {
  if ('path' in listen)
    return mode === undefined ? { path: listen.path } : { path: listen.path, mode };
  return listen;
}

function describeAddress(
  scheme: string,
  address: SocketServer['address'],
  listen: SocketListen,
  fd0: Fd0 | undefined,
): string {
  const tcp = (a: { address: string; port: number }) =>
    `${scheme}://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  if ('fd' in listen) {
    const inner =
      address !== null && typeof address === 'object'
        ? tcp(address)
        : fd0?.kind === 'listening'
          ? fd0.describe
          : undefined;
    return inner === undefined ? `fd:${listen.fd}` : `fd:${listen.fd} (${inner})`;
  }
  if ('path' in listen) return `unix:${listen.path}`;
  if (address !== null && typeof address === 'object') return tcp(address);
  return `${scheme}://${listen.host}:${listen.port}`;
}

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOENT: 'no such directory',
  EBADF: 'bad file descriptor',
  EINVAL: 'not a listening socket',
  ENOTSOCK: 'not a socket',
};

/** A listen failure as one line that says what to do. */
function listenError(e: unknown, listen: SocketListen): TsgiError {
  const where =
    'fd' in listen
      ? `fd ${listen.fd}`
      : 'path' in listen
        ? listen.path
        : `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
  const code = (e as NodeJS.ErrnoException).code;
  const msg = (e instanceof Error ? e.message : String(e)).replace(/^(fastcgi|scgi): /, '');
  if (isTsgiError(e)) {
    // The adapter's own refusal: a Unix socket a running server answers on. Any other
    // TsgiError (a bad option) is not about the address: passed on as it is.
    if (!/_ADDRESS_IN_USE$/.test(e.code)) return e;
    return new TsgiError(
      'ERR_CLI_LISTEN',
      `cli: cannot listen on ${where}: ${msg}; stop it or choose another address with --listen`,
      { cause: e },
    );
  }
  if (code === undefined) {
    return new TsgiError('ERR_CLI_LISTEN', `cli: cannot listen on ${where}: ${msg}`, {
      cause: e,
    });
  }
  const reason = REASONS[code] ?? msg;
  const hint =
    'fd' in listen
      ? `start tsgi with a listening socket on fd ${listen.fd} (spawn-fcgi -n ...), or give --listen HOST:PORT`
      : 'stop what uses it or choose another address with --listen';
  return new TsgiError(
    'ERR_CLI_LISTEN',
    `cli: cannot listen on ${where}: ${reason} (${code}); ${hint}`,
    { cause: e },
  );
}
