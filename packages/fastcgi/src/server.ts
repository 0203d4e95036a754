// The FastCGI listener: the only file of @tsgi/fastcgi that imports node:net. Each accepted
// socket is adapted to FastcgiIO and handed to a FastcgiConnection (connection.ts), which
// serves its requests. Section numbers are the FastCGI 1.0 specification's (see codec.ts).
import net from 'node:net';
import {
  type Application,
  createLogSink,
  type ErrorSink,
  listenServer,
  type SocketListen,
  TsgiError,
} from '@tsgi/core';
import { checkParamsLimits } from './codec.js';
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_REQUESTS,
  FastcgiConnection,
  type FastcgiConnectionOptions,
  type FastcgiIO,
  RequestSlots,
} from './connection.js';

/**
 * FastcgiListen: where to listen. `{ host, port }` for TCP (host defaults to 127.0.0.1:
 * the web server sets REMOTE_ADDR, HTTPS and every header, so only it may connect);
 * `{ path, mode }` for a Unix socket (a stale socket file left by a dead process is
 * replaced; `mode` is applied with chmod, e.g. 0o660 for an nginx worker in the same
 * group); `{ fd: 0 }` for the listening socket a web server or spawn-fcgi leaves on
 * FCGI_LISTENSOCK_FILENO (S2.2).
 */
export type FastcgiListen = SocketListen;

/** FastcgiServerOptions: `createFastcgiServer`'s settings (and every connection's). */
export interface FastcgiServerOptions extends FastcgiConnectionOptions {
  /**
   * webServerAddrs: the peers allowed to connect (S3.2, FCGI_WEB_SERVER_ADDRS): a
   * comma-separated list or an array of IP addresses. A connection from anywhere else, or
   * not over TCP/IP at all (a Unix socket), is closed at once, as S3.2 says. Default: the
   * FCGI_WEB_SERVER_ADDRS environment variable (unset or empty: any peer, as libfcgi);
   * null: any peer. A list with no address in it is refused (ERR_FASTCGI_BAD_OPTION).
   */
  webServerAddrs?: string | readonly string[] | null;
  /**
   * idleTimeoutMs: a connection with no active request and no bytes moving for this long is
   * closed. Default 0: off (nginx keeps `keepalive` upstream connections idle on purpose and
   * closes them itself after `keepalive_timeout`, 60 s).
   */
  idleTimeoutMs?: number;
  /** lingerMs: after closing its side, how long a connection reads and drops late bytes before it is destroyed. Default 5 s. */
  lingerMs?: number;
  /** backlog: the listen queue length. Default: Node's (511). */
  backlog?: number;
}

/** FastcgiServeOptions: `serveFastcgi`'s settings: the server's, plus where to listen. */
export interface FastcgiServeOptions extends FastcgiServerOptions {
  /** listen: the address; see `FastcgiListen`. */
  listen: FastcgiListen;
}

/** FastcgiCloseOptions: how `FastcgiServer.close` treats requests still running. */
export interface FastcgiCloseOptions {
  /**
   * timeoutMs: how long running requests may take to finish before their connections are
   * closed and their `tsgi.signal` aborted. Default 30 s.
   */
  timeoutMs?: number;
}

/** FastcgiServer: a FastCGI server (listening once `listen` resolved). */
export interface FastcgiServer {
  /** FastcgiServer.address: the bound TCP address, the socket path, or null (inherited fd, or not listening). */
  readonly address: net.AddressInfo | string | null;
  /** FastcgiServer.connections: connections currently open. */
  readonly connections: number;
  /** FastcgiServer.requests: requests running across all connections. */
  readonly requests: number;
  /** FastcgiServer.netServer: the underlying net.Server (for metrics or `ref`/`unref`). */
  readonly netServer: net.Server;
  /** FastcgiServer.listen: starts listening; resolves once bound. */
  listen(listen: FastcgiListen): Promise<void>;
  /**
   * FastcgiServer.handle: serves a socket accepted elsewhere (it is subject to
   * webServerAddrs, like the server's own). Returns its connection, or undefined when the
   * socket was refused.
   */
  handle(socket: net.Socket): FastcgiConnection | undefined;
  /**
   * FastcgiServer.close: a graceful stop. Stops accepting; closes idle connections; refuses
   * new requests with FCGI_OVERLOADED; lets running ones finish for up to `timeoutMs`, then
   * closes what is left (their `tsgi.signal` aborts). Resolves when every socket is closed
   * (an app that ignores its aborted signal may still be running).
   */
  close(options?: FastcgiCloseOptions): Promise<void>;
}

const DEFAULT_LINGER_MS = 5_000;

/**
 * createFastcgiServer: a FastCGI responder for `app` (Responder, Authorizer and Filter
 * roles, FCGI_KEEP_CONN, multiplexing), not yet listening: call `listen`, or use
 * `serveFastcgi`. Every socket gets `setNoDelay(true)`: a response's last write must not
 * wait for the web server's delayed ACK.
 */
export function createFastcgiServer(
  app: Application,
  options: FastcgiServerOptions = {},
): FastcgiServer {
  if (typeof app !== 'function') {
    throw new TsgiError(
      'ERR_FASTCGI_BAD_OPTION',
      `fastcgi: the app must be a function, got ${typeof app}`,
    );
  }
  checkParamsLimits(options);
  const sink: ErrorSink = options.errors ?? createLogSink('info');
  const maxConnections = positive(
    options.maxConnections,
    DEFAULT_MAX_CONNECTIONS,
    'maxConnections',
  );
  const slots = new RequestSlots(
    positive(options.maxRequests, DEFAULT_MAX_REQUESTS, 'maxRequests'),
  );
  const allowed =
    options.webServerAddrs === undefined
      ? // libfcgi's reading of the variable: unset or empty means no check.
        parseAddrs(process.env.FCGI_WEB_SERVER_ADDRS?.trim() || undefined)
      : parseAddrs(options.webServerAddrs);
  if (allowed !== undefined && allowed.size === 0) {
    throw new TsgiError(
      'ERR_FASTCGI_BAD_OPTION',
      'fastcgi: webServerAddrs lists no address, so no peer could connect; pass null for any peer',
    );
  }
  const connOptions: FastcgiConnectionOptions = { ...options, errors: sink, maxConnections, slots };
  const idle = options.idleTimeoutMs ?? 0;
  const lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
  const live = new Map<FastcgiConnection, Promise<void>>();
  let closing = false;
  let socketPath: string | undefined;

  const handle = (socket: net.Socket): FastcgiConnection | undefined => {
    if (closing) {
      socket.destroy();
      return undefined;
    }
    if (allowed !== undefined) {
      const peer = normalizeAddr(socket.remoteAddress);
      if (peer === undefined || !allowed.has(peer)) {
        // S3.2: "If the check fails (including the possibility that the connection didn't
        // use TCP/IP transport), the application responds by closing the connection."
        sink(
          `fastcgi: connection from ${socket.remoteAddress ?? 'a non-TCP peer'} refused: not in FCGI_WEB_SERVER_ADDRS`,
          'warn',
        );
        socket.destroy();
        return undefined;
      }
    }
    socket.setNoDelay(true);
    let lingerTimer: NodeJS.Timeout | undefined;
    const io: FastcgiIO = {
      write(data) {
        if (socket.destroyed || socket.writableEnded) return true;
        if (data instanceof Uint8Array) return socket.write(data);
        if (data.length === 1) return socket.write(data[0]!);
        // Corked pieces leave in one writev.
        socket.cork();
        let ok = true;
        for (const d of data) ok = socket.write(d);
        socket.uncork();
        return ok;
      },
      close() {
        // A lingering close: end our side, then read and drop what the web server still
        // sends until it closes; closing with unread bytes would send a RST that can
        // destroy the response in the peer's receive buffer.
        socket.end();
        socket.resume();
        lingerTimer = setTimeout(() => socket.destroy(), lingerMs);
        lingerTimer.unref();
      },
      destroy() {
        socket.destroy();
      },
      pause() {
        socket.pause();
      },
      resume() {
        socket.resume();
      },
    };
    const conn = new FastcgiConnection(io, app, connOptions);
    const closed = new Promise<void>((resolve) => {
      socket.on('close', () => {
        if (lingerTimer !== undefined) clearTimeout(lingerTimer);
        conn.onClose();
        live.delete(conn);
        resolve();
      });
    });
    live.set(conn, closed);
    socket.on('data', (d: Buffer) => conn.onData(d));
    socket.on('end', () => conn.onEnd());
    socket.on('drain', () => conn.onDrain());
    socket.on('error', (e) => {
      // A reset or broken pipe: the web server gave up. 'close' follows.
      sink(`fastcgi: connection error: ${e.message}`, 'debug');
    });
    if (idle > 0) {
      socket.setTimeout(idle, () => {
        if (!conn.idle) return;
        sink(`fastcgi: connection idle for ${idle} ms (idleTimeoutMs); closed`, 'debug');
        conn.shutdown();
      });
    }
    return conn;
  };

  // allowHalfOpen: a web server that shuts down its write side after a request must still
  // get the response.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    handle(socket);
  });
  server.maxConnections = maxConnections;
  server.on('error', (e) => sink(`fastcgi: server error: ${e.message}`, 'error'));

  let closed: Promise<void> | undefined;
  return {
    get address() {
      return server.address() ?? socketPath ?? null;
    },
    get connections() {
      let n = 0;
      for (const c of live.keys()) if (!c.closed) n++;
      return n;
    },
    get requests() {
      return slots.active;
    },
    netServer: server,
    handle,
    async listen(listen: FastcgiListen) {
      if ('path' in listen) socketPath = listen.path;
      // S2.2: the web server leaves a listening socket on FCGI_LISTENSOCK_FILENO (0).
      await listenServer(server, listen, { backlog: options.backlog, name: 'fastcgi' });
    },
    close(closeOptions: FastcgiCloseOptions = {}) {
      closed ??= (async () => {
        closing = true;
        const stopped = new Promise<void>((r) => server.close(() => r()));
        // Idle connections close now; busy ones after their last request.
        for (const c of live.keys()) c.shutdown();
        const timeout = closeOptions.timeoutMs ?? 30_000;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all([...live.keys()].map((c) => c.done)),
          new Promise<void>((r) => {
            timer = setTimeout(r, timeout);
          }),
        ]);
        clearTimeout(timer);
        for (const c of live.keys()) {
          c.destroy(new TsgiError('ERR_FASTCGI_SHUTDOWN', 'fastcgi: the server is shutting down'));
        }
        // Sockets, not requests: an app that ignores its aborted signal cannot hold this up.
        await Promise.all([...live.values()]);
        await stopped;
      })();
      return closed;
    },
  };
}

/**
 * serveFastcgi: `createFastcgiServer(app, options)` listening on `options.listen`; resolves
 * once bound. `{ listen: { fd: 0 } }` serves the socket spawn-fcgi or a web server passes.
 */
export async function serveFastcgi(
  app: Application,
  options: FastcgiServeOptions,
): Promise<FastcgiServer> {
  const server = createFastcgiServer(app, options);
  await server.listen(options.listen);
  return server;
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new TsgiError(
      'ERR_FASTCGI_BAD_OPTION',
      `fastcgi: ${name} must be a positive integer, got ${String(v)}`,
    );
  }
  return v;
}

/** FCGI_WEB_SERVER_ADDRS (S3.2) as a set of normalised addresses; undefined: no check. */
function parseAddrs(v: string | readonly string[] | null | undefined): Set<string> | undefined {
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? v.split(',') : v;
  const set = new Set<string>();
  for (const raw of list) {
    const a = raw.trim();
    if (a === '') continue;
    const n = normalizeAddr(a);
    if (n === undefined) {
      throw new TsgiError(
        'ERR_FASTCGI_BAD_OPTION',
        `fastcgi: FCGI_WEB_SERVER_ADDRS entry ${JSON.stringify(a)} is not an IP address`,
      );
    }
    set.add(n);
  }
  return set;
}

/** An IP address in one spelling: IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as IPv4, IPv6 lowercase. */
function normalizeAddr(a: string | undefined): string | undefined {
  if (a === undefined) return undefined;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (m) return m[1];
  if (net.isIPv4(a)) return a;
  if (net.isIPv6(a)) return a.toLowerCase();
  return undefined;
}
