// Listening for the socket adapters (FastCGI, SCGI) and the `tsgi` command: one way to bind
// TCP, a Unix socket (replacing a stale one) or an inherited descriptor. node:net and
// node:fs are loaded when a function here runs, not when the core is imported: a CGI
// script imports the core on every request and never listens.
import type { Server } from 'node:net';
import { TsgiError } from './errors.js';

/**
 * SocketListen: where a socket adapter listens. `{ host, port }` for TCP (host defaults to
 * 127.0.0.1: the front server sets REMOTE_ADDR, HTTPS and every header, so only it may
 * connect); `{ path, mode }` for a Unix socket (a stale socket file left by a dead process
 * is replaced; `mode` is applied with chmod, e.g. 0o660 for a web server worker in the same
 * group); `{ fd }` for an inherited listening socket (fd 0 from spawn-fcgi, a web server or
 * lighttpd's bin-path).
 */
export type SocketListen =
  | { host?: string; port: number }
  | { path: string; mode?: number }
  | { fd: number };

/** ListenServerOptions: `listenServer`'s settings. */
export interface ListenServerOptions {
  /** backlog: the listen queue length. Default: Node's (511). */
  backlog?: number;
  /** name: the adapter, for error codes and messages (`ERR_SCGI_ADDRESS_IN_USE`, `scgi: ...`). */
  name: string;
}

/**
 * listenServer: binds `server` where `listen` says and resolves once it listens. A Unix
 * socket path in use is taken over only when it is a socket nothing answers on (see
 * `isStaleSocket`); a live one is refused with `ERR_<NAME>_ADDRESS_IN_USE`, and anything
 * else there (a regular file, a directory) is left alone and the bind error stands.
 */
export async function listenServer(
  server: Server,
  listen: SocketListen,
  options: ListenServerOptions,
): Promise<void> {
  const { backlog, name } = options;
  if ('fd' in listen) {
    // listen({ fd }) takes over an inherited listening socket (a handle, in Node's terms).
    await bind(server, { fd: listen.fd }, backlog);
    return;
  }
  if (!('path' in listen)) {
    await bind(server, { host: listen.host ?? '127.0.0.1', port: listen.port, backlog });
    return;
  }
  const { path } = listen;
  try {
    await bind(server, { path, backlog });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    const state = await socketState(path);
    if (state === 'live') {
      throw new TsgiError(
        `ERR_${name.toUpperCase()}_ADDRESS_IN_USE`,
        `${name}: ${path} is in use by a running server`,
        { cause: e },
      );
    }
    // Not a socket (a regular file, a directory): never removed; the bind error stands.
    if (state !== 'stale') throw e;
    await process.getBuiltinModule('node:fs/promises').unlink(path);
    await bind(server, { path, backlog });
  }
  if (listen.mode !== undefined) {
    await process.getBuiltinModule('node:fs/promises').chmod(path, listen.mode);
  }
}

/**
 * isStaleSocket: true when `path` is a Unix socket that refuses connections (left by a
 * process that was killed), so that it may be removed before listening there. False for a
 * live socket, for anything that is not a socket and for a path that cannot be examined.
 */
export async function isStaleSocket(path: string): Promise<boolean> {
  return (await socketState(path)) === 'stale';
}

/** What is at `path`: a socket that refuses connections, one that accepts them, or something else. */
async function socketState(path: string): Promise<'stale' | 'live' | 'other'> {
  try {
    const st = await process.getBuiltinModule('node:fs/promises').lstat(path);
    if (!st.isSocket()) return 'other';
  } catch {
    return 'other';
  }
  const net = process.getBuiltinModule('node:net');
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve('live');
    });
    probe.once('error', (e: NodeJS.ErrnoException) =>
      resolve(e.code === 'ECONNREFUSED' ? 'stale' : 'other'),
    );
  });
}

function bind(
  server: Server,
  options:
    | { fd: number }
    | { host: string; port: number; backlog?: number }
    | { path: string; backlog?: number },
  backlog?: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    const done = () => {
      server.off('error', onError);
      resolve();
    };
    if ('fd' in options) server.listen(options, backlog, done);
    else server.listen(options, done);
  });
}
