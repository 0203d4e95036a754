import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Application, TsgiError } from '@tsgi/core';
import { createHttpHandler, type HttpHandler, type HttpHandlerOptions } from './handler.js';

/** ServeHttpOptions: where to listen, the limits of `node:http`, and the handler's options. */
export interface ServeHttpOptions extends HttpHandlerOptions {
  /** Address to listen on (default `127.0.0.1`). Ignored with `path`. */
  host?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** A Unix socket path to listen on instead of host and port. */
  path?: string;
  /** Largest request head in bytes; more is answered 431 (default 16384). */
  maxHeaderSize?: number;
  /**
   * Time for the whole request, head and body, in ms; later is answered 408 (default
   * 300000). It bounds an upload too: a body the app reads slowly must still arrive within it.
   */
  requestTimeout?: number;
  /** Time for the request head in ms; later is answered 408 (default 20000). */
  headersTimeout?: number;
  /** How long an idle keep-alive connection is kept, in ms (default 5000). */
  keepAliveTimeout?: number;
  /**
   * A connection with no traffic either way for this long (ms) is closed, so a client that
   * stops reading its response cannot hold it (default 60000; 0 disables).
   */
  idleTimeout?: number;
  /** Listen backlog (default: Node's, 511). */
  backlog?: number;
}

/** HttpServer: a listening HTTP front (what `serveHttp` resolves to). */
export interface HttpServer {
  /** HttpServer.server: the `node:http` server. */
  readonly server: http.Server;
  /** HttpServer.handler: the request listener with its counters. */
  readonly handler: HttpHandler;
  /** HttpServer.url: `http://127.0.0.1:8000` (or `http+unix:///path/to.sock`). */
  readonly url: string;
  /** HttpServer.port: the port listened on (0 for a Unix socket). */
  readonly port: number;
  /**
   * HttpServer.close: stops accepting connections and closes idle ones. Graceful (default):
   * requests in flight finish, their responses say `Connection: close`, then the remaining
   * connections are closed. Not graceful: every connection is closed now.
   */
  close(graceful?: boolean): Promise<void>;
}

/**
 * serveHttp: serves `app` over HTTP/1.1 on `node:http` (keep-alive, pipelining, chunked
 * bodies both ways) and resolves once it listens. Rejects with TsgiError
 * `ERR_HTTP_LISTEN` (its `cause` is Node's error, e.g. code EADDRINUSE) when it cannot.
 */
export async function serveHttp(
  app: Application,
  options: ServeHttpOptions = {},
): Promise<HttpServer> {
  const handler = createHttpHandler(app, options);
  const requestTimeout = options.requestTimeout ?? 300_000;
  let headersTimeout = options.headersTimeout ?? 20_000;
  // Node refuses headersTimeout > requestTimeout; the head is part of the request anyway.
  if (requestTimeout > 0 && headersTimeout > requestTimeout) headersTimeout = requestTimeout;
  const shortest = Math.min(headersTimeout || Infinity, requestTimeout || Infinity);
  const server = http.createServer({
    maxHeaderSize: options.maxHeaderSize ?? 16384,
    requestTimeout,
    headersTimeout,
    keepAliveTimeout: options.keepAliveTimeout ?? 5_000,
    // Node checks the two timeouts every 30 s by default, so a 1 s limit could take 31 s;
    // check four times per shortest limit instead (cheap: one pass over the connections).
    connectionsCheckingInterval: Number.isFinite(shortest)
      ? Math.max(50, Math.min(30_000, Math.floor(shortest / 4)))
      : 30_000,
    // The handler answers a missing Host itself, with a body that says what is wrong.
    requireHostHeader: false,
  });
  // httpAllowHalfOpen stays false (Node's default): a client's FIN means it went away, so
  // tsgi.signal fires even while the app is still computing and nothing is being written.
  // The price: a client that half-closes after sending its request (`printf ... | nc -N`)
  // gets no answer.
  server.timeout = options.idleTimeout ?? 60_000;
  handler.attach(server);

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = options.path ?? `${options.host ?? '127.0.0.1'}:${options.port ?? 8000}`;
      const why =
        err.code === 'EADDRINUSE'
          ? 'address already in use'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.code === 'EADDRNOTAVAIL'
              ? 'address not available on this machine'
              : err.message;
      reject(
        new TsgiError('ERR_HTTP_LISTEN', `http: cannot listen on ${where}: ${why} (${err.code})`, {
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    const ready = () => {
      server.removeListener('error', onError);
      resolve();
    };
    if (options.path !== undefined)
      server.listen({ path: options.path, backlog: options.backlog }, ready);
    else
      server.listen(
        { host: options.host ?? '127.0.0.1', port: options.port ?? 8000, backlog: options.backlog },
        ready,
      );
  });

  const addr = server.address();
  let url: string;
  let port = 0;
  if (typeof addr === 'string' || addr === null) {
    url = `http+unix://${addr ?? options.path}`;
  } else {
    const a = addr as AddressInfo;
    port = a.port;
    url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  let closed: Promise<void> | undefined;
  return {
    server,
    handler,
    url,
    port,
    async close(graceful = true) {
      // server.close() stops accepting and closes idle keep-alive connections (Node >= 19);
      // its callback runs once every connection has ended.
      closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
      if (graceful) {
        await handler.shutdown();
        // A connection accepted just before the listener closed may carry a request that is
        // still on its way (with --workers the master hands connections over asynchronously):
        // give it a moment instead of cutting it, and answer what arrives.
        await Promise.race([closed, sleep(LINGER_MS)]);
        await handler.shutdown();
      } else {
        void handler.shutdown();
      }
      server.closeAllConnections();
      await Promise.race([closed, sleep(LINGER_MS)]);
    },
  };
}

/** How long a graceful close waits for connections with no request yet to show one. */
const LINGER_MS = 250;

const sleep = (ms: number) =>
  new Promise<void>((r) => {
    setTimeout(r, ms).unref();
  });
