// The SCGI listener: the only file of @tsgi/scgi that imports node:net. Each accepted
// connection is handed to connection.ts, which serves its one request.
import net from 'node:net';
import {
  type Application,
  createLogSink,
  listenServer,
  type SocketListen,
  TsgiError,
} from '@tsgi/core';
import { checkMaxHeaderBytes } from './codec.js';
import { handleScgiConnection, LiveConnections, type ScgiConnectionOptions } from './connection.js';

/**
 * ScgiListen: where to listen. `{ host, port }` for TCP (host defaults to 127.0.0.1:
 * SCGI has no authentication and the peer sets REMOTE_ADDR, HTTPS and every header, so
 * only the front server may reach it); `{ path, mode }` for a Unix socket (a stale socket
 * file left by a dead process is replaced; `mode` is applied with chmod, e.g. 0o660 for
 * an nginx worker in the same group); `{ fd }` for an inherited listening socket (fd 0
 * when lighttpd's `bin-path` spawns the backend).
 */
export type ScgiListen = SocketListen;

/** ScgiServerOptions: `serveScgi`'s settings. */
export interface ScgiServerOptions extends ScgiConnectionOptions {
  /** listen: the address; see `ScgiListen`. */
  listen: ScgiListen;
  /**
   * idleTimeoutMs: a connection with no bytes moving in either direction for this long is
   * closed (and its request's `tsgi.signal` aborted). Default 0: off, because an app may
   * legitimately wait (long polling) and the front server has its own timeout (nginx
   * `scgi_read_timeout`, 60 s).
   */
  idleTimeoutMs?: number;
  /** maxConnections: accepted connections beyond this are refused by closing them. Default: unlimited. */
  maxConnections?: number;
  /** backlog: the listen queue length. Default: Node's (511). */
  backlog?: number;
}

/** ScgiCloseOptions: how `ScgiServer.close` treats requests still running. */
export interface ScgiCloseOptions {
  /**
   * timeoutMs: how long running requests may take to finish before their connections are
   * closed and their `tsgi.signal` aborted. Default 30 s.
   */
  timeoutMs?: number;
}

/** ScgiServer: a running SCGI server. */
export interface ScgiServer {
  /** ScgiServer.address: the bound TCP address, the socket path, or null (inherited fd). */
  readonly address: net.AddressInfo | string | null;
  /** ScgiServer.connections: connections currently open. */
  readonly connections: number;
  /** ScgiServer.netServer: the underlying net.Server (for metrics or `ref`/`unref`). */
  readonly netServer: net.Server;
  /**
   * ScgiServer.close: a graceful stop. Stops accepting, closes connections that have not
   * sent a byte, lets running requests finish for up to `timeoutMs`, then closes what is
   * left (their `tsgi.signal` aborts). Resolves when every connection is closed (an app
   * that ignores its aborted signal may still be running).
   */
  close(options?: ScgiCloseOptions): Promise<void>;
}

/**
 * serveScgi: listens for SCGI connections and serves each one's request with `app`.
 * A malformed request is logged and its connection closed (after a minimal `Status: 400`
 * response; see `errorResponses`); the server keeps serving the others. Resolves once
 * listening.
 */
export async function serveScgi(app: Application, options: ScgiServerOptions): Promise<ScgiServer> {
  if (typeof app !== 'function') {
    throw new TsgiError(
      'ERR_SCGI_BAD_OPTION',
      `scgi: the app must be a function, got ${typeof app}`,
    );
  }
  checkMaxHeaderBytes(options.maxHeaderBytes);
  const sink = options.errors ?? createLogSink('info');
  const connOptions: ScgiConnectionOptions = { ...options, errors: sink };
  // The open connections, linked through themselves (see LiveConnections).
  const live = new LiveConnections();
  const liveConnections = () => live.list();
  const idle = options.idleTimeoutMs ?? 0;
  let closing = false;

  // allowHalfOpen: a peer that shuts down its write side after the request (lighttpd's
  // mod_scgi did) must still get the response.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    const conn = handleScgiConnection(socket, app, connOptions);
    live.add(conn);
    if (idle > 0) {
      socket.setTimeout(idle, () => {
        sink(`scgi: connection idle for ${idle} ms (idleTimeoutMs); closed`, 'warn');
        conn.destroy(
          new TsgiError(
            'ERR_SCGI_IDLE_TIMEOUT',
            `scgi: connection idle for ${idle} ms (idleTimeoutMs)`,
          ),
        );
      });
    }
  });
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  server.on('error', (e) => sink(`scgi: server error: ${e.message}`, 'error'));

  const listen = options.listen;
  const socketPath = 'path' in listen ? listen.path : undefined;
  await listenServer(server, listen, { backlog: options.backlog, name: 'scgi' });

  let closed: Promise<void> | undefined;
  return {
    get address() {
      return server.address() ?? socketPath ?? null;
    },
    get connections() {
      let n = 0;
      for (const c of liveConnections()) if (c.phase !== 'closed') n++;
      return n;
    },
    netServer: server,
    close(closeOptions: ScgiCloseOptions = {}) {
      closed ??= (async () => {
        closing = true;
        const stopped = new Promise<void>((r) => server.close(() => r()));
        for (const c of liveConnections()) if (c.phase === 'idle') c.destroy();
        const timeout = closeOptions.timeoutMs ?? 30_000;
        let timer: NodeJS.Timeout | undefined;
        const all = Promise.all(liveConnections().map((c) => c.done));
        await Promise.race([
          all,
          new Promise<void>((r) => {
            timer = setTimeout(r, timeout);
          }),
        ]);
        clearTimeout(timer);
        for (const c of liveConnections()) {
          c.destroy(new TsgiError('ERR_SCGI_SHUTDOWN', 'scgi: the server is shutting down'));
        }
        // Sockets, not requests: an app that ignores its aborted signal cannot hold this up.
        await Promise.all(liveConnections().map((c) => c.closed));
        await stopped;
      })();
      return closed;
    },
  };
}
