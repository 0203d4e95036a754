import {
  type Application,
  type Body,
  type ByteSource,
  buildEnviron,
  type Environ,
  type ErrorSink,
  type HeaderList,
  type InputStream,
  isTsgiError,
  type ResponseHead,
  type ResponseObject,
  type RunOptions,
  requestToCgi,
  runApp,
  STATUS_REASONS,
  type StartResponse,
  statusLine,
  type Transport,
  TsgiError,
} from '@tsgi/core';
import {
  describeValue,
  environHeaders,
  origin,
  pathAndQuery,
  sinkOf,
  withoutHopByHop,
} from './util.js';

/**
 * FetchHandler: a WHATWG Fetch handler, `(request) => Response`. `fromFetch` calls it as
 * `handler(request, environ, ctx)`: Hono reads the second argument as `c.env` and the
 * third as `c.executionCtx`.
 */
export type FetchHandler = (request: Request, ...rest: any[]) => Response | Promise<Response>;

/** FetchApp: an object with a `fetch` method: a Hono app, or a module-worker style `{ fetch }` export. */
export interface FetchApp {
  fetch: FetchHandler;
}

/** FetchBridgeOptions: how `fromFetch` presents the request. */
export interface FetchBridgeOptions {
  /**
   * stripMount: build the Request URL from PATH_INFO alone, leaving the mount prefix
   * (SCRIPT_NAME) out, for apps whose routes are written for the root. Default false:
   * the URL is the one the client requested, prefix included.
   */
  stripMount?: boolean;
  /**
   * mapHeadToGet: present a HEAD request to the handler as GET. Default true: frameworks
   * answer HEAD by running the GET route and throwing the body away (Hono does exactly
   * that), so a front server that computes headers from the body (lighttpd adds a
   * Content-Length, Apache too) would see none and answer HEAD differently from GET. The
   * core still knows it is HEAD: the body goes to a CGI, FastCGI or SCGI front, which
   * drops it, and is dropped by the core itself under the HTTP front (SPEC rule 8.2).
   */
  mapHeadToGet?: boolean;
}

/** FetchContext: the execution context `fromFetch` passes as the handler's third argument. */
export interface FetchContext {
  /** FetchContext.waitUntil: lets background work finish; a rejection is logged, not thrown. */
  waitUntil(promise: unknown): void;
  /** FetchContext.passThroughOnException: a no-op (there is no origin to fall back to). */
  passThroughOnException(): void;
  props: Record<string, unknown>;
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD']);

/**
 * fromFetch: a tsgi Application from a Fetch handler or an object with a `fetch` method
 * (a Hono app). The Request is rebuilt from the environ: its URL from `tsgi.url_scheme`,
 * the Host header (or SERVER_NAME:SERVER_PORT), SCRIPT_NAME + PATH_INFO and QUERY_STRING
 * (`stripMount` leaves SCRIPT_NAME out); its headers from HTTP_*, CONTENT_TYPE and
 * CONTENT_LENGTH; its body streams from `tsgi.input` as the handler reads it; its
 * `signal` is `tsgi.signal`; HEAD arrives as GET (see `mapHeadToGet`). The Response's
 * status, headers (one line per Set-Cookie) and streamed body go back through
 * `startResponse`; a Content-Length is passed on when the Response has one and never
 * added.
 */
export function fromFetch(
  handler: FetchHandler | FetchApp,
  options: FetchBridgeOptions = {},
): Application {
  const call = handlerOf(handler);
  const strip = options.stripMount === true;
  const headAsGet = options.mapHeadToGet !== false;
  return async (environ, startResponse) => {
    const log = sinkOf(environ);
    const made = makeRequest(environ, strip, headAsGet, log);
    if ('refusal' in made) return made.refusal;
    const response = await call(made.request, environ, makeContext(log));
    return respond(response, startResponse, log);
  };
}

function handlerOf(handler: FetchHandler | FetchApp): FetchHandler {
  if (typeof handler === 'function') return handler;
  if (handler !== null && typeof handler === 'object' && typeof handler.fetch === 'function') {
    // Called as a method: some apps' fetch uses `this`.
    return (request, ...rest) => handler.fetch(request, ...rest);
  }
  throw new TsgiError(
    'ERR_BRIDGES_NOT_A_FETCH_HANDLER',
    `bridges: fromFetch needs a function (request) => Response or an object with a fetch() method, got ${describeValue(handler)}`,
  );
}

function makeContext(log: ErrorSink): FetchContext {
  return {
    waitUntil(promise) {
      Promise.resolve(promise).catch((e: unknown) => {
        log(`bridges: a waitUntil() promise rejected: ${describe(e)}`, 'error');
      });
    },
    passThroughOnException() {},
    props: {},
  };
}

function makeRequest(
  environ: Environ,
  strip: boolean,
  headAsGet: boolean,
  log: ErrorSink,
): { request: Request } | { refusal: ResponseObject } {
  const method = headAsGet && environ.REQUEST_METHOD === 'HEAD' ? 'GET' : environ.REQUEST_METHOD;
  const headers = new Headers();
  for (const [name, value] of environHeaders(environ)) {
    try {
      headers.append(name, value);
    } catch {
      log(`bridges: dropped the request header ${name}: Headers refused its value`, 'warn');
    }
  }
  const init: RequestInit & { duplex?: 'half' } = {
    method,
    headers,
    signal: environ['tsgi.signal'],
  };
  if (!NO_BODY_METHODS.has(method.toUpperCase()) && environ.CONTENT_LENGTH !== '0') {
    init.body = inputStream(environ['tsgi.input']);
    // Required by Fetch for a stream body; the handler may answer before reading it all.
    init.duplex = 'half';
  }
  const target = pathAndQuery(environ, strip);
  try {
    return { request: new Request(origin(environ) + target, init) };
  } catch (e) {
    // A Host header the WHATWG URL parser refuses: SERVER_NAME is the server's own word.
    try {
      return { request: new Request(origin(environ, false) + target, init) };
    } catch {
      // Fetch refuses CONNECT, TRACE and TRACK outright: answer as a server that does not
      // implement the method would.
      log(
        `bridges: ${method} ${target}: cannot be expressed as a Fetch Request: ${describe(e)}`,
        'info',
      );
      const body = `${STATUS_REASONS[501]}\n`;
      return {
        refusal: {
          status: 501,
          headers: [
            ['Content-Type', 'text/plain; charset=utf-8'],
            ['Content-Length', String(body.length)],
          ],
          body,
        },
      };
    }
  }
}

/**
 * The request body as a ReadableStream pulling `tsgi.input` on demand (highWaterMark 0:
 * nothing is read before the handler asks). It pulls through the input's async iterator,
 * which hands over each chunk as the transport delivered it, rather than `read(65536)`,
 * which would hold back a slow upload until 64 KiB had arrived.
 */
function inputStream(input: InputStream): ReadableStream<Uint8Array> {
  let it: AsyncIterator<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        it ??= input[Symbol.asyncIterator]();
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
    },
    { highWaterMark: 0 },
  );
}

function isResponseLike(v: unknown): v is Response {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Partial<Response>;
  // Not `instanceof Response`: @hono/node-server replaces the global Response, and an app
  // may bundle its own undici.
  return typeof r.status === 'number' && typeof r.headers?.forEach === 'function' && 'body' in r;
}

function respond(response: unknown, startResponse: StartResponse, log: ErrorSink): Body {
  if (!isResponseLike(response)) {
    throw new TsgiError(
      'ERR_BRIDGES_NOT_A_RESPONSE',
      `bridges: the Fetch handler resolved to ${describeValue(response)}, not a Response`,
    );
  }
  if (response.status === 0 || response.type === 'error') {
    throw new TsgiError(
      'ERR_BRIDGES_NETWORK_ERROR',
      'bridges: the Fetch handler returned a network error (Response.error())',
    );
  }
  if (response.bodyUsed) {
    throw new TsgiError(
      'ERR_BRIDGES_BODY_USED',
      'bridges: the Fetch handler returned a Response whose body was already read',
    );
  }
  const headers: HeaderList = [];
  const h = response.headers;
  let cookiesDone = false;
  for (const [name, value] of h as unknown as Iterable<[string, string]>) {
    if (name === 'set-cookie') {
      // Fetch joins repeated headers with ", "; Set-Cookie values must stay one per line.
      if (cookiesDone) continue;
      cookiesDone = true;
      const all = typeof h.getSetCookie === 'function' ? h.getSetCookie() : [value];
      for (const c of all) headers.push(['set-cookie', c]);
    } else {
      headers.push([name, value]);
    }
  }
  const code = response.status;
  const reason = response.statusText;
  startResponse(
    reason && REASON_OK.test(reason) ? `${code} ${reason}` : statusLine(code),
    withoutHopByHop(headers, log),
  );
  return (response.body ?? []) as Body;
}
const REASON_OK = /^[\t\x20-\x7e\x80-\xff]*$/;

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** RemoteAddress: the client address a Fetch-based server knows (`toFetch`'s `remote` option). */
export interface RemoteAddress {
  address?: string;
  port?: number;
}

/** ToFetchOptions: what `toFetch` needs beyond the Request. */
export interface ToFetchOptions {
  /** mount: the path prefix the app is mounted at; becomes SCRIPT_NAME. Default: none. */
  mount?: string;
  /** uriEncoding: see `EnvironOptions.uriEncoding`. Default `utf-8`. */
  uriEncoding?: string;
  /** maxBodyBytes: a larger Content-Length is answered with 413 before the app runs. */
  maxBodyBytes?: number;
  /** errors: where `tsgi.errors` and the core's reports go. Default: stderr, level info. */
  errors?: ErrorSink;
  /** mapHeadToGet: see `RunOptions.mapHeadToGet`. */
  mapHeadToGet?: RunOptions['mapHeadToGet'];
  /**
   * remote: the client address for REMOTE_ADDR / REMOTE_PORT. Default: read from the
   * server's second argument when it is @hono/node-server's `{ incoming }`, Deno's
   * `{ remoteAddr }` or Bun's server (`requestIP`); unset otherwise.
   */
  remote?: (request: Request, env: unknown) => RemoteAddress | undefined;
}

/** FetchResponder: what `toFetch` returns; the second argument is the server's own (env / info / server). */
export type FetchResponder = (request: Request, env?: unknown) => Promise<Response>;

/**
 * toFetch: a Fetch handler `(request) => Promise<Response>` from a tsgi Application, for
 * Fetch-based servers (@hono/node-server, Deno.serve, Bun.serve). The environ is built
 * as the HTTP front builds it (`requestToCgi`, `buildEnviron`), `tsgi.input` pulls from
 * `request.body`, and `tsgi.signal` fires when `request.signal` does or the server cancels
 * the response body (the client went away). The Response resolves when the app's head is
 * committed; its body is a ReadableStream the app's chunks are written into, with
 * backpressure. An error after the head errors the stream, so the server cuts the
 * connection instead of passing a truncated body off as complete.
 */
export function toFetch(app: Application, options: ToFetchOptions = {}): FetchResponder {
  if (typeof app !== 'function') {
    throw new TsgiError(
      'ERR_BRIDGES_NOT_AN_APP',
      `bridges: toFetch needs a tsgi app (environ, startResponse), got ${describeValue(app)}`,
    );
  }
  const remoteOf = options.remote ?? defaultRemote;
  return async (request, env) => {
    const url = new URL(request.url);
    const pairs: Array<[string, string]> = [];
    let hasHost = false;
    request.headers.forEach((value, name) => {
      if (name === 'host') hasHost = true;
      pairs.push([name, value]);
    });
    // A Request made in code has no Host header; its URL's authority is the host.
    if (!hasHost) pairs.unshift(['host', url.host]);
    const remote = remoteOf(request, env);
    const { vars } = requestToCgi(
      {
        method: request.method,
        target: url.pathname + url.search,
        protocol: protocolOf(env),
        https: url.protocol === 'https:',
        mount: options.mount,
        remoteAddr: remote?.address,
        remotePort: remote?.port,
      },
      pairs,
    );
    const controller = new AbortController();
    const gone = (reason?: unknown) => {
      if (controller.signal.aborted) return;
      controller.abort(
        reason instanceof Error
          ? reason
          : new TsgiError('ERR_BRIDGES_CLIENT_GONE', 'bridges: the client went away'),
      );
    };
    const onRequestAbort = () => gone(request.signal.reason);
    if (request.signal.aborted) onRequestAbort();
    else request.signal.addEventListener('abort', onRequestAbort, { once: true });
    const body = streamSource(request.body);
    let environ: Environ;
    try {
      environ = buildEnviron(vars, {
        input: body.source,
        errors: options.errors,
        signal: controller.signal,
        uriEncoding: options.uriEncoding,
        maxBodyBytes: options.maxBodyBytes,
      });
    } catch (e) {
      request.signal.removeEventListener('abort', onRequestAbort);
      // A client error found before the app runs (bad Content-Length, body too large).
      if (isTsgiError(e) && e.status !== undefined) {
        return new Response(`${statusLine(e.status)}\n`, {
          status: e.status,
          headers: { 'content-type': 'text/plain; charset=utf-8' },
        });
      }
      throw e;
    }
    const transport = new StreamTransport(request.method === 'HEAD', gone);
    void runApp(app, environ, transport, {
      headBody: 'drop',
      mapHeadToGet: options.mapHeadToGet,
    }).then(() => {
      request.signal.removeEventListener('abort', onRequestAbort);
      body.release();
      transport.settle();
    });
    return transport.response;
  };
}

function defaultRemote(request: Request, env: unknown): RemoteAddress | undefined {
  const e = env as Record<string, any> | null | undefined;
  if (e === null || typeof e !== 'object') return undefined;
  const socket = e.incoming?.socket;
  if (socket && typeof socket.remoteAddress === 'string') {
    return { address: socket.remoteAddress, port: socket.remotePort };
  }
  const ra = e.remoteAddr;
  if (ra && typeof ra.hostname === 'string') return { address: ra.hostname, port: ra.port };
  if (typeof e.requestIP === 'function') {
    const ip = e.requestIP(request);
    if (ip && typeof ip.address === 'string') return { address: ip.address, port: ip.port };
  }
  return undefined;
}

function protocolOf(env: unknown): string {
  const v = (env as { incoming?: { httpVersion?: unknown } } | null | undefined)?.incoming
    ?.httpVersion;
  return typeof v === 'string' && /^[0-9]\.[0-9]$/.test(v) ? `HTTP/${v}` : 'HTTP/1.1';
}

function streamSource(body: ReadableStream<Uint8Array> | null): {
  source: ByteSource | null;
  release(): void;
} {
  if (body === null) return { source: null, release() {} };
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return {
    source: {
      async pull() {
        // Locked only once the app reads: an unread body stays the server's to drain.
        reader ??= body.getReader();
        const r = await reader.read();
        return r.done ? null : r.value;
      },
    },
    release() {
      try {
        reader?.releaseLock();
      } catch {
        // A read still pending (the app stopped mid-body): the server cleans up.
      }
    },
  };
}

// Fetch forbids a body with these statuses (Response constructor throws).
const NULL_BODY_STATUS = new Set([204, 205, 304]);
const RESPONSE_HWM = 65536;

/** The Transport behind `toFetch`: the head becomes a Response, the body its stream. */
class StreamTransport implements Transport {
  readonly response: Promise<Response>;
  private resolve!: (r: Response) => void;
  private resolved = false;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  private waiting: (() => void) | undefined;
  private cancelled = false;

  constructor(
    private readonly isHead: boolean,
    private readonly gone: (reason?: unknown) => void,
  ) {
    this.response = new Promise((r) => {
      this.resolve = r;
    });
  }

  sendHead(head: ResponseHead): void {
    if (head.code < 200 || head.code > 599) {
      throw new TsgiError(
        'ERR_BRIDGES_STATUS',
        `bridges: a Fetch Response cannot carry the status ${head.status}`,
      );
    }
    const headers = new Headers();
    for (const [name, value] of head.headers) headers.append(name, value);
    let body: ReadableStream<Uint8Array> | null = null;
    if (!this.isHead && !NULL_BODY_STATUS.has(head.code)) {
      body = new ReadableStream<Uint8Array>(
        {
          start: (c) => {
            this.controller = c;
          },
          pull: () => this.wake(),
          cancel: (reason) => {
            // The server stopped reading: the client went away.
            this.cancelled = true;
            this.wake();
            this.gone(reason);
          },
        },
        { highWaterMark: RESPONSE_HWM, size: (c) => c.byteLength },
      );
    }
    this.resolved = true;
    this.resolve(
      new Response(body, { status: head.code, statusText: head.status.slice(4), headers }),
    );
  }

  async write(chunk: Uint8Array): Promise<void> {
    const c = this.controller;
    // No body (HEAD, 204, 304: dropped as Node's server drops it) or nobody reading.
    if (c === undefined || this.cancelled) return;
    c.enqueue(chunk);
    if ((c.desiredSize ?? 1) <= 0) {
      await new Promise<void>((r) => {
        this.waiting = r;
      });
    }
  }

  end(): void {
    try {
      this.controller?.close();
    } catch {
      // Already cancelled by the consumer.
    }
  }

  abort(reason: Error): void {
    if (!this.resolved) {
      this.resolved = true;
      this.resolve(errorResponse());
      return;
    }
    this.wake();
    try {
      // The core logged the app's error; the server gets a short reason of its own
      // (@hono/node-server prints it) and cuts the connection.
      this.controller?.error(
        new TsgiError(
          'ERR_BRIDGES_RESPONSE_ABORTED',
          `bridges: the tsgi response broke off after its head: ${reason.message}`,
          { cause: reason },
        ),
      );
    } catch {
      // Already closed or cancelled.
    }
  }

  /** Called when runApp is done: a Response must exist even if no head was ever sent. */
  settle(): void {
    if (!this.resolved) {
      this.resolved = true;
      this.resolve(errorResponse());
    }
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }
}

function errorResponse(): Response {
  return new Response('Internal Server Error\n', {
    status: 500,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
}
