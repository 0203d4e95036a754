import { Buffer } from 'node:buffer';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type Application,
  type ByteSource,
  buildEnviron,
  createLogSink,
  type Environ,
  type EnvironOptions,
  type ErrorSink,
  isTsgiError,
  type RequestLine,
  RequestSignal,
  type ResponseHead,
  type RunOptions,
  requestToCgi,
  runApp,
  STATUS_REASONS,
  type Transport,
  TsgiError,
} from '@tsgi/core';

/** HttpHandlerOptions: what `createHttpHandler` (and `serveHttp`) do per request. */
export interface HttpHandlerOptions {
  /**
   * Mount prefix: the SCRIPT_NAME the application sees (never "/"; a trailing slash is
   * dropped). Requests outside it are answered 404 by the front, not passed to the app.
   */
  mount?: string;
  /** Encoding tried first for SCRIPT_NAME, PATH_INFO, QUERY_STRING (default `utf-8`). */
  uriEncoding?: string;
  /** HEAD presented to the app as GET: `off` (default), `on`, `auto` (see the core's runApp). */
  mapHeadToGet?: 'off' | 'on' | 'auto';
  /**
   * Largest request body in bytes. A larger CONTENT_LENGTH is answered 413 before anything
   * is read; a chunked body is cut off when it passes the limit (the app's read fails and
   * the client gets 413 if no response was started). Default: no limit.
   */
  maxBodyBytes?: number;
  /**
   * Unread request body the front discards after a response to keep the connection alive
   * (default 65536). When more is left, or the body is chunked and unfinished, the response
   * says `Connection: close` instead: reading a large body nobody wants costs more than a
   * new connection.
   */
  maxDrainBytes?: number;
  /** Where `tsgi.errors` and the front's own reports go (default: stderr at level `info`). */
  log?: ErrorSink;
  /** `tsgi.multiprocess` (true when several worker processes serve the same app). */
  multiprocess?: boolean;
  /** SERVER_NAME for every request; default: the Host header's name (RFC 3875 4.1.14). */
  serverName?: string;
}

/**
 * HttpHandler: a `node:http` request listener that runs a tsgi app, plus the extra
 * listeners and state a server needs (created by `createHttpHandler`).
 */
export interface HttpHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /**
   * HttpHandler.checkContinue: the listener for the server's `checkContinue` event. The
   * `100 Continue` interim response is sent when the app first reads `tsgi.input`, so a
   * request refused without reading its body (413, 404) is never sent.
   */
  checkContinue(req: IncomingMessage, res: ServerResponse): void;
  /**
   * HttpHandler.clientError: the listener for the server's `clientError` event: a request
   * Node's parser refused (header too large, bad syntax, request timeout) gets a short plain
   * 4xx answer with `Connection: close`, if no response on that connection has started.
   */
  clientError(err: Error & { code?: string }, socket: Duplex): void;
  /** HttpHandler.attach: registers the three listeners on `server`; returns it. */
  attach(server: Server): Server;
  /** HttpHandler.active: requests whose `runApp` has not finished yet. */
  readonly active: number;
  /**
   * HttpHandler.shutdown: from now on every response says `Connection: close`; resolves
   * when no request is in flight. Used for graceful stop; it does not close the listener.
   */
  shutdown(): Promise<void>;
}

/** Per-connection facts, computed once per socket (a keep-alive socket serves many requests). */
interface Conn {
  remoteAddr: string | undefined;
  remotePort: number | undefined;
  localPort: number | undefined;
  https: boolean;
  /** Exchanges in progress on this connection, oldest first (pipelining runs several). */
  active: HttpExchange[];
}

const kConn = Symbol('tsgi.http.conn');
const RESOLVED_NULL: Promise<null> = Promise.resolve(null);
const DEFAULT_DRAIN = 65536;
const PLAIN = 'text/plain; charset=utf-8';

/**
 * HttpExchange: one request on one connection: the core's Transport (response side) and
 * ByteSource (request body side) in one object, so a request costs one allocation here.
 */
class HttpExchange implements Transport, ByteSource {
  /** Body bytes handed to the core so far. */
  private received = 0;
  private failure: Error | undefined;
  /** A pull() waiting for body bytes ('readable'), or for gone(). */
  private pullWaiter: (() => void) | undefined;
  /** A write() waiting for 'drain', or for gone() (a queued pipelined response gets neither). */
  private drainWaiter: (() => void) | undefined;
  private onReadable: (() => void) | undefined;
  /** The front cut a chunked body off at maxBodyBytes; abort() answers 413. */
  private tooLarge = false;

  constructor(
    private readonly front: Front,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly conn: Conn,
    /**
     * Behind `tsgi.signal`: aborted when the connection closes mid-request. A RequestSignal
     * costs next to nothing until the app reads `tsgi.signal` (an AbortSignal costs 2-5 us).
     */
    readonly signal: RequestSignal,
    /** CONTENT_LENGTH as a number; undefined for a chunked body. */
    private readonly contentLength: number | undefined,
    readonly hasBody: boolean,
    /** `Expect: 100-continue` and no 100 sent yet. */
    private expectContinue: boolean,
  ) {}

  // ---- ByteSource: the request body, pulled only when the app reads ----

  pull(): Promise<Uint8Array | null> {
    const req = this.req;
    if (this.tooLarge) return Promise.reject(this.failure);
    if (this.expectContinue) {
      this.expectContinue = false;
      if (!this.res.headersSent) this.res.writeContinue();
    }
    // Paused mode: read() takes what the parser pushed; while nobody calls it, Node stops
    // reading the socket once the request's buffer is full (TCP backpressure).
    const c = req.read() as Buffer | null;
    if (c !== null) return this.got(c);
    if (req.complete) return RESOLVED_NULL;
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.onReadable === undefined) {
      this.onReadable = () => this.wakePull();
      req.on('readable', this.onReadable);
    }
    return new Promise<void>((resolve) => {
      this.pullWaiter = resolve;
    }).then(() => this.pull());
  }

  private got(c: Buffer): Promise<Uint8Array> {
    this.received += c.length;
    const limit = this.front.maxBodyBytes;
    if (limit !== undefined && this.contentLength === undefined && this.received > limit) {
      // A chunked body has no CONTENT_LENGTH to refuse up front: cut it off here. Whatever
      // the app does next, its response is not sent: sendHead and write refuse, and abort()
      // answers 413 if nothing went out yet (or cuts the response off if something did).
      this.tooLarge = true;
      const err = new TsgiError(
        'ERR_HTTP_BODY_TOO_LARGE',
        `http: request body exceeds the limit of ${limit} bytes (maxBodyBytes)`,
        { status: 413 },
      );
      this.failure = err;
      return Promise.reject(err);
    }
    return Promise.resolve(c);
  }

  private wakePull(): void {
    const w = this.pullWaiter;
    if (w !== undefined) {
      this.pullWaiter = undefined;
      w();
    }
  }

  private wakeDrain(): void {
    const w = this.drainWaiter;
    if (w !== undefined) {
      this.drainWaiter = undefined;
      w();
    }
  }

  /** The connection closed: fire tsgi.signal unless the response already went out whole. */
  gone(): void {
    if (this.res.writableFinished) return;
    const err = new TsgiError('ERR_HTTP_CLIENT_GONE', 'http: the client closed the connection', {
      status: 400,
    });
    this.failure ??= err;
    if (!this.signal.aborted) this.signal.abort(err);
    this.wakePull();
    this.wakeDrain();
  }

  /** Stops listening to the body and discards what the app left unread. */
  release(): void {
    const req = this.req;
    if (this.onReadable !== undefined) req.removeListener('readable', this.onReadable);
    // Unread body: discard it (sendHead already chose Connection: close when it is large).
    // Node only does this itself for a body nobody started to read.
    if (this.hasBody && !req.complete) {
      if (!req.destroyed) req.resume();
      // A read still pending (the app left it running) fails instead of hanging.
      this.failure ??= new TsgiError(
        'ERR_HTTP_REQUEST_OVER',
        'http: the request body was read after the response ended',
      );
      this.wakePull();
    }
  }

  // ---- Transport: the response, exactly as the core decided it ----

  sendHead(head: ResponseHead): void {
    const res = this.res;
    const signal = this.signal;
    if (signal.aborted) throw signal.reason;
    if (this.tooLarge) throw this.failure;
    if (this.front.closing || (this.hasBody && !this.req.complete && !this.canDrain())) {
      res.shouldKeepAlive = false;
    }
    // The app's headers as pairs: Node adds no Content-Length (that only happens for
    // end(data) before writeHead), no Date (sendDate is off); it adds the framing it owns:
    // Connection / Keep-Alive, and Transfer-Encoding: chunked when there is no
    // Content-Length and the response may have a body (not on HEAD, 204, 304).
    res.writeHead(head.code, head.status.slice(4), head.headers);
  }

  write(chunk: Uint8Array): void | Promise<void> {
    if (this.tooLarge) throw this.failure;
    if (this.res.write(chunk)) return;
    return this.waitDrain();
  }

  end(): void {
    this.res.end();
  }

  abort(_reason: Error): void {
    const res = this.res;
    if (this.tooLarge && !res.headersSent) {
      this.front.reply(res, 413, (this.failure as Error).message, true);
      return;
    }
    // The response is broken: the client must not take it for complete nor reuse the
    // connection. destroySoon() flushes what was written (a cut body stays cut), then closes.
    const sock = res.socket as Socket | null;
    if (sock) sock.destroySoon();
    // A pipelined response still queued behind an earlier one: Node writes out what it holds
    // right after emitting 'socket' (assignSocket), so close once that is done.
    else res.once('socket', (s: Socket) => process.nextTick(() => s.destroySoon()));
  }

  private waitDrain(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.signal.aborted) return resolve();
      const done = () => {
        this.res.removeListener('drain', done);
        if (this.drainWaiter === done) this.drainWaiter = undefined;
        resolve();
      };
      this.drainWaiter = done;
      this.res.on('drain', done);
    });
  }

  private canDrain(): boolean {
    const cl = this.contentLength;
    return cl !== undefined && cl - this.received <= this.front.maxDrainBytes;
  }
}

/** Front: the shared, per-handler state (options digested once, counters). */
class Front {
  closing = false;
  active = 0;
  readonly maxBodyBytes: number | undefined;
  readonly maxDrainBytes: number;
  readonly log: ErrorSink;
  private readonly mount: string;
  private readonly runOptions: RunOptions;
  /**
   * The arguments of requestToCgi and buildEnviron, allocated once and refilled per request:
   * both read them synchronously and keep no reference (the hot path allocates less).
   */
  private readonly line: RequestLine;
  private readonly envOptions: EnvironOptions;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly app: Application,
    options: HttpHandlerOptions,
  ) {
    if (typeof app !== 'function') {
      throw new TsgiError(
        'ERR_HTTP_BAD_APP',
        `http: the application must be a function (environ, startResponse), got ${app === null ? 'null' : typeof app}`,
      );
    }
    const mount = (options.mount ?? '').replace(/\/+$/, '');
    if (mount !== '' && !mount.startsWith('/')) {
      throw new TsgiError(
        'ERR_HTTP_BAD_MOUNT',
        `http: mount ${JSON.stringify(options.mount)} must start with "/"`,
      );
    }
    this.mount = mount;
    this.maxBodyBytes = options.maxBodyBytes;
    this.maxDrainBytes = options.maxDrainBytes ?? DEFAULT_DRAIN;
    this.log = options.log ?? createLogSink('info');
    this.runOptions = {
      headBody: 'drop',
      mapHeadToGet: options.mapHeadToGet ?? 'off',
      log: this.log,
    };
    this.line = {
      method: '',
      target: '',
      protocol: 'HTTP/1.1',
      serverName: options.serverName,
      serverPort: undefined,
      remoteAddr: undefined,
      remotePort: undefined,
      https: false,
      mount,
    };
    this.envOptions = {
      input: null,
      errors: this.log,
      signal: undefined,
      uriEncoding: options.uriEncoding,
      maxBodyBytes: options.maxBodyBytes,
      multiprocess: options.multiprocess ?? false,
      multithread: false,
      runOnce: false,
    };
  }

  handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    // The core decided the headers; Node's Date would be one more than the app sent.
    res.sendDate = false;
    const conn = connOf(req.socket);
    const line = this.line;
    line.method = req.method as string;
    line.target = req.url as string;
    line.protocol = req.httpVersionMinor === 1 ? 'HTTP/1.1' : `HTTP/${req.httpVersion}`;
    line.serverPort = conn.localPort;
    line.remoteAddr = conn.remoteAddr;
    line.remotePort = conn.remotePort;
    line.https = conn.https;
    const { vars, dropped } = requestToCgi(line, req.rawHeaders);
    if (dropped.length > 0) {
      this.log(
        `http: dropped request header(s) ${dropped.map((n) => JSON.stringify(n)).join(', ')} (names outside [A-Za-z0-9-], or Proxy)`,
        'debug',
      );
    }
    const cl = vars.CONTENT_LENGTH;
    const hasBody = cl !== undefined ? cl !== '0' : vars.HTTP_TRANSFER_ENCODING !== undefined;
    if (this.mount !== '' && vars.SCRIPT_NAME === '') {
      this.reply(res, 404, `http: ${req.url} is outside the mount point ${this.mount}`, hasBody);
      return;
    }
    const host = vars.HTTP_HOST;
    if (host === undefined ? req.httpVersionMinor === 1 : host.includes(',')) {
      // RFC 9112 section 3.2: no Host in HTTP/1.1, or more than one (httpHeadersToCgi joined
      // them with ", "; a real host never has a comma) is a 400.
      this.reply(
        res,
        400,
        host === undefined
          ? 'http: HTTP/1.1 request without a Host header'
          : 'http: more than one Host header',
        hasBody,
      );
      return;
    }
    const signal = new RequestSignal();
    const ex = new HttpExchange(
      this,
      req,
      res,
      conn,
      signal,
      cl === undefined ? undefined : Number(cl),
      hasBody,
      expectContinue,
    );
    let environ: Environ;
    const eo = this.envOptions;
    eo.input = hasBody ? ex : null;
    eo.signal = signal;
    try {
      environ = buildEnviron(vars, eo);
    } catch (e) {
      // A request the core refuses (bad or too large CONTENT_LENGTH): its status, a short
      // plain answer, and no reading of a body nobody will use.
      if (isTsgiError(e) && e.status !== undefined) {
        this.log(`http: ${req.method} ${req.url}: ${e.message}`, 'info');
        this.reply(res, e.status, e.message, true);
      } else {
        this.log(`http: ${req.method} ${req.url}: ${describe(e)}`, 'error');
        this.reply(res, 500, 'Internal Server Error', true);
      }
      return;
    }
    conn.active.push(ex);
    this.active++;
    // runApp never rejects: everything ends in the transport's end() or abort().
    void runApp(this.app, environ, ex, this.runOptions).then(() => this.done(ex));
  }

  private done(ex: HttpExchange): void {
    const list = ex.conn.active;
    const i = list.indexOf(ex);
    if (i >= 0) list.splice(i, 1);
    ex.release();
    if (--this.active === 0 && this.idleWaiters.length > 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  }

  /**
   * A short plain answer from the front itself (the app is not involved). `close`: also
   * end the connection, for a request whose body would otherwise have to be read and
   * thrown away (closing is cheaper than draining a body nobody will use).
   */
  reply(res: ServerResponse, status: number, text: string, close: boolean): void {
    const body = Buffer.from(`${text}\n`, 'utf8');
    if (close || this.closing) res.shouldKeepAlive = false;
    res.writeHead(status, STATUS_REASONS[status] ?? 'Error', [
      ['Content-Type', PLAIN],
      ['Content-Length', String(body.length)],
    ]);
    res.end(body);
  }

  clientError(err: Error & { code?: string }, socket: Duplex): void {
    const sock = socket as Socket;
    if (err.code === 'ECONNRESET' || !sock.writable) {
      sock.destroy();
      return;
    }
    // A response on this connection has started: an error segment would corrupt it.
    const conn = (sock as unknown as Record<symbol, Conn | undefined>)[kConn];
    if (conn?.active.some((x) => x.res.headersSent)) {
      sock.destroy();
      return;
    }
    const [status, text] = clientErrorAnswer(err);
    this.log(`http: refused a request from ${sock.remoteAddress}: ${text}`, 'debug');
    const body = `${text}\n`;
    sock.end(
      `HTTP/1.1 ${status} ${STATUS_REASONS[status]}\r\nContent-Type: ${PLAIN}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      'latin1',
    );
    // The client may keep sending; do not wait for its FIN longer than the answer takes.
    sock.once('finish', () => sock.destroy());
  }

  shutdown(): Promise<void> {
    this.closing = true;
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** clientErrorAnswer: the status and text for an error Node's HTTP parser reported. */
function clientErrorAnswer(err: Error & { code?: string }): [number, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'http: request header fields too large (maxHeaderSize)'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'http: the request did not arrive in time (requestTimeout / headersTimeout)'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'http: chunk extensions too large'];
    default:
      return [400, `http: bad request (${err.code ?? 'parse error'})`];
  }
}

function connOf(socket: Socket): Conn {
  const s = socket as unknown as Record<symbol, Conn | undefined>;
  let conn = s[kConn];
  if (conn === undefined) {
    const c: Conn = {
      remoteAddr: socket.remoteAddress,
      remotePort: socket.remotePort,
      localPort: socket.localPort,
      // A TLS socket (https.createServer): HTTPS=on and tsgi.url_scheme https.
      https: (socket as { encrypted?: boolean }).encrypted === true,
      active: [],
    };
    s[kConn] = conn = c;
    // One listener per connection, not per request: it tells every exchange still running
    // on it (a queued pipelined response gets no 'close' of its own from Node).
    socket.once('close', () => {
      for (const ex of c.active.slice()) ex.gone();
    });
  }
  return conn;
}

function describe(e: unknown): string {
  if (isTsgiError(e)) return e.message;
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

/**
 * createHttpHandler: a `node:http` request listener that serves `app`. CGI variables come
 * from the core's `requestToCgi` (the reference header normalisation) and `buildEnviron`;
 * the response goes through `runApp` with `headBody: 'drop'`. Attach it with
 * `handler.attach(server)` to also get lazy `100 Continue` and short 4xx answers to
 * requests Node's parser refuses.
 *
 * Where Node's framing makes GET and HEAD differ: without a Content-Length from the app, a
 * GET response is sent with `Transfer-Encoding: chunked` and its HEAD with neither
 * Content-Length nor Transfer-Encoding (RFC 9112 section 6.3: a HEAD response has no body to
 * frame). Everything else the app sent is identical; `Connection`/`Keep-Alive` are Node's.
 */
export function createHttpHandler(app: Application, options: HttpHandlerOptions = {}): HttpHandler {
  const front = new Front(app, options);
  const handler = ((req: IncomingMessage, res: ServerResponse) =>
    front.handle(req, res, false)) as HttpHandler;
  handler.checkContinue = (req, res) => front.handle(req, res, true);
  handler.clientError = (err, socket) => front.clientError(err, socket);
  handler.attach = (server) => {
    server.on('request', handler);
    server.on('checkContinue', handler.checkContinue);
    server.on('clientError', handler.clientError);
    return server;
  };
  handler.shutdown = () => front.shutdown();
  Object.defineProperty(handler, 'active', { get: () => front.active, enumerable: true });
  return handler;
}
