import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import {
  type IncomingMessage,
  type OutgoingHttpHeader,
  type OutgoingHttpHeaders,
  type ServerResponse,
  validateHeaderName,
  validateHeaderValue,
} from 'node:http';
import { Readable, Stream } from 'node:stream';
import {
  type Application,
  type Body,
  type Environ,
  type ErrorSink,
  type HeaderList,
  STATUS_REASONS,
  type StartResponse,
  TsgiError,
} from '@tsgi/core';
import {
  canonicalName,
  clientGone,
  describeValue,
  environHeaders,
  pathAndQuery,
  requestPath,
  sinkOf,
  withoutHopByHop,
} from './util.js';

/**
 * NodeListener: a Node `(req, res)` request listener: an Express or Connect app, Koa's
 * `app.callback()`, or the function given to `http.createServer`.
 */
export type NodeListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/** NodeBridgeOptions: how `fromNodeListener` presents the request. */
export interface NodeBridgeOptions {
  /**
   * stripMount: `req.url` is PATH_INFO (+ query) alone, as if the app were mounted at the
   * root; `req.originalUrl` then holds the full path and `req.baseUrl` the mount prefix,
   * the way Express presents a mounted sub-app. Default false: `req.url` is the full
   * path, SCRIPT_NAME + PATH_INFO, as a reverse proxy would pass it.
   */
  stripMount?: boolean;
  /** highWaterMark: bytes `res.write` buffers before it returns false. Default 16384 (Node's). */
  highWaterMark?: number;
  /**
   * mapHeadToGet: present a HEAD request to the listener as GET and pass the body it
   * writes on to the core. Default true: Express, Koa and Node itself drop the body of a
   * HEAD response, so a front server that computes headers from the body (lighttpd,
   * Apache add a Content-Length) would answer HEAD differently from GET. The core still
   * knows it is HEAD: the body goes to a CGI, FastCGI or SCGI front, which drops it, and
   * is dropped by the core itself under the HTTP front (SPEC rule 8.2). With false the
   * listener sees HEAD and, as in Node, what it writes for HEAD is dropped here.
   */
  mapHeadToGet?: boolean;
}

// Internal entry points, symbol-keyed so they survive Express's prototype swap (they are
// pinned as own properties like everything else) without looking like public API.
const kAbort = Symbol('bridges.abort');
const kRelease = Symbol('bridges.release');
const kGone = Symbol('bridges.gone');
const kClose = Symbol('bridges.close');

/** What a request's three objects share. */
class Exchange {
  settled = false;
  tornDown = false;
  readonly log: ErrorSink;
  readonly isHead: boolean;
  /** The request is HEAD and the listener is told GET. */
  readonly headAsGet: boolean;
  req!: BridgeRequest;
  res!: BridgeResponse;
  socket!: BridgeSocket;
  private readonly signal: AbortSignal;
  private readonly onAbort = () => this.teardown(clientGone(this.signal));

  constructor(
    readonly environ: Environ,
    readonly startResponse: StartResponse,
    private readonly resolveBody: (body: Body) => void,
    private readonly rejectBody: (e: unknown) => void,
    readonly highWaterMark: number,
    headAsGet: boolean,
  ) {
    this.log = sinkOf(environ);
    this.headAsGet = headAsGet && environ.REQUEST_METHOD === 'HEAD';
    // Node drops what a listener writes for HEAD; with HEAD presented as GET the body is
    // the core's to handle.
    this.isHead = environ.REQUEST_METHOD === 'HEAD' && !this.headAsGet;
    this.signal = environ['tsgi.signal'];
    this.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  resolve(body: Body): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveBody(body);
  }

  reject(e: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectBody(e);
  }

  /**
   * teardown: the response can no longer be delivered (the client went away, the core gave
   * up on it, the listener destroyed it). In Node's order: req 'aborted', res 'close',
   * socket 'close', req 'error' (only if someone listens) and 'close'.
   */
  teardown(err: Error): void {
    if (this.tornDown) return;
    this.tornDown = true;
    this.req[kAbort]();
    this.res[kGone](err);
    this.socket[kClose]();
    this.req[kRelease]();
  }

  /** The response's 'close' went out: stop listening and let the request go. */
  closed(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.req[kRelease]();
  }

  /** The listener threw or its promise rejected. */
  failed(e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    // Before the head, the rejection makes the core log the error and answer its fixed
    // 500; after it, the failed body makes the core log it and abort the response.
    this.reject(err);
    this.teardown(err);
  }
}

/**
 * fromNodeListener: a tsgi Application from a Node `(req, res)` listener (Express 4/5,
 * Connect, Koa's `app.callback()`). `req` is an `http.IncomingMessage` look-alike (a
 * Readable pulling `tsgi.input` on demand, with backpressure; `url`, `method`,
 * `headers`, `rawHeaders`, `socket.remoteAddress`/`encrypted`, `aborted` and 'close'
 * when `tsgi.signal` fires); `res` an `http.ServerResponse` look-alike (headers API,
 * `writeHead` in all its forms, `write` returning false and emitting 'drain', `end`,
 * 'finish' and 'close'). HEAD arrives as GET (see `mapHeadToGet`). The head goes to
 * `startResponse` at the first write or `end`; the body streams as written. No Date,
 * Connection or Content-Length header is added; hop-by-hop headers the listener sets
 * are dropped. Neither object touches Node's private internals, and both keep working
 * after Express swaps their prototypes.
 */
export function fromNodeListener(
  listener: NodeListener,
  options: NodeBridgeOptions = {},
): Application {
  if (typeof listener !== 'function') {
    throw new TsgiError(
      'ERR_BRIDGES_NOT_A_LISTENER',
      `bridges: fromNodeListener needs a (req, res) function, got ${describeValue(listener)}`,
    );
  }
  const strip = options.stripMount === true;
  const hwm = options.highWaterMark ?? 16384;
  const headAsGet = options.mapHeadToGet !== false;
  return (environ, startResponse) =>
    new Promise<Body>((resolve, reject) => {
      const signal = environ['tsgi.signal'];
      if (signal.aborted) {
        reject(clientGone(signal));
        return;
      }
      const x = new Exchange(environ, startResponse, resolve, reject, hwm, headAsGet);
      x.socket = new BridgeSocket(environ, x);
      x.req = new BridgeRequest(environ, x.socket, strip, x);
      x.res = new BridgeResponse(x.req, x.socket, x);
      let ret: unknown;
      try {
        ret = listener(x.req as unknown as IncomingMessage, x.res as unknown as ServerResponse);
      } catch (e) {
        x.failed(e);
        return;
      }
      if (
        ret !== null &&
        typeof ret === 'object' &&
        typeof (ret as Promise<unknown>).then === 'function'
      ) {
        (ret as Promise<unknown>).then(undefined, (e: unknown) => x.failed(e));
      }
    });
}

// Node's private methods exist on IncomingMessage/ServerResponse.prototype; after Express
// swaps the prototypes they would run against state these objects do not have. A clear
// error is better than a corrupted response.
function nodeInternal(owner: string, name: string): never {
  throw new TsgiError(
    'ERR_BRIDGES_NODE_INTERNAL',
    `bridges: ${owner}.${name}() is a private Node internal the bridge does not emulate`,
  );
}

/** Own-property copies of a class's members, so a prototype swap cannot hide them. */
function membersOf(proto: object): PropertyDescriptorMap {
  const d: PropertyDescriptorMap = {};
  for (const key of Reflect.ownKeys(proto)) {
    if (key !== 'constructor') d[key] = Object.getOwnPropertyDescriptor(proto, key)!;
  }
  return d;
}

/**
 * The socket both objects point to. Not a net.Socket: there is no connection to
 * reach; `destroy()` aborts the response, `write()` refuses.
 */
class BridgeSocket extends EventEmitter {
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  remoteFamily: string | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  readable = true;
  writable = true;
  destroyed = false;
  connecting = false;
  pending = false;
  readyState = 'open';
  bytesRead = 0;
  bytesWritten = 0;
  timeout: number | undefined;
  declare encrypted?: boolean;
  readonly #x: Exchange;

  constructor(environ: Environ, x: Exchange) {
    super();
    this.#x = x;
    const addr = environ.REMOTE_ADDR;
    this.remoteAddress = typeof addr === 'string' && addr !== '' ? addr : undefined;
    this.remoteFamily =
      this.remoteAddress === undefined
        ? undefined
        : this.remoteAddress.includes(':')
          ? 'IPv6'
          : 'IPv4';
    this.remotePort = portOf(environ.REMOTE_PORT);
    const local = environ.SERVER_ADDR;
    this.localAddress = typeof local === 'string' && local !== '' ? local : undefined;
    this.localPort = portOf(environ.SERVER_PORT);
    // Express's req.protocol and Koa's ctx.secure look at socket.encrypted (a TLSSocket's).
    if (environ['tsgi.url_scheme'] === 'https') this.encrypted = true;
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.timeout = ms;
    if (cb) this.once('timeout', cb);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  address(): { address: string; family: string; port: number } {
    const address = this.localAddress ?? '';
    return { address, family: address.includes(':') ? 'IPv6' : 'IPv4', port: this.localPort ?? 0 };
  }
  destroy(err?: Error): this {
    if (!this.destroyed) {
      this.#x.teardown(
        err ??
          new TsgiError(
            'ERR_BRIDGES_SOCKET_DESTROYED',
            'bridges: the listener destroyed the socket (req.socket.destroy())',
          ),
      );
    }
    return this;
  }
  destroySoon(): void {
    this.destroy();
  }
  end(): this {
    return this.destroy();
  }
  write(): never {
    throw new TsgiError(
      'ERR_BRIDGES_RAW_SOCKET',
      'bridges: writing to the socket directly is not supported under tsgi; write to res',
    );
  }

  [kClose](): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    this.readyState = 'closed';
    process.nextTick(() => this.emit('close', false));
  }
}

function portOf(v: unknown): number | undefined {
  return typeof v === 'string' && /^[0-9]{1,5}$/.test(v) ? Number(v) : undefined;
}

let requestMembers: PropertyDescriptorMap | undefined;

/**
 * The `req` a listener gets. A Readable whose `_read` pulls one chunk from `tsgi.input`
 * per call, so the body flows only as fast as the listener consumes it. `complete` turns
 * true at the end of the input.
 */
class BridgeRequest extends Readable {
  method: string;
  url: string;
  declare originalUrl?: string;
  declare baseUrl?: string;
  httpVersion: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  headers: Record<string, string>;
  headersDistinct: Record<string, string[]>;
  rawHeaders: string[];
  trailers: Record<string, string> = {};
  trailersDistinct: Record<string, string[]> = {};
  rawTrailers: string[] = [];
  complete = false;
  aborted = false;
  upgrade = false;
  statusCode: null = null;
  statusMessage: null = null;
  socket: BridgeSocket;
  readonly #input: AsyncIterator<Uint8Array>;
  #pulling = false;
  readonly #x: Exchange;

  constructor(environ: Environ, socket: BridgeSocket, strip: boolean, x: Exchange) {
    // autoDestroy off: as in Node's server, 'close' comes after the response's, not at 'end'.
    super({ autoDestroy: false });
    Object.defineProperties(this, (requestMembers ??= membersOf(BridgeRequest.prototype)));
    this.#x = x;
    this.socket = socket;
    this.method = x.headAsGet ? 'GET' : environ.REQUEST_METHOD;
    this.url = pathAndQuery(environ, strip);
    if (strip) {
      // Express keeps a preset originalUrl and starts baseUrl from a preset one: the
      // listener sees exactly what a sub-app mounted with app.use(prefix, ...) sees.
      this.originalUrl = pathAndQuery(environ, false);
      this.baseUrl = requestPath(environ).script;
    }
    const m = /^HTTP\/([0-9]+)(?:\.([0-9]+))?$/.exec(environ.SERVER_PROTOCOL ?? '');
    this.httpVersionMajor = m ? Number(m[1]) : 1;
    this.httpVersionMinor = m ? Number(m[2] ?? 0) : 0;
    this.httpVersion = `${this.httpVersionMajor}.${this.httpVersionMinor}`;
    const headers: Record<string, string> = {};
    const distinct: Record<string, string[]> = {};
    const raw: string[] = [];
    for (const [name, value] of environHeaders(environ)) {
      raw.push(canonicalName(name), value);
      const prev = headers[name];
      headers[name] = prev === undefined ? value : prev + (name === 'cookie' ? '; ' : ', ') + value;
      (distinct[name] ??= []).push(value);
    }
    this.headers = headers;
    this.headersDistinct = distinct;
    this.rawHeaders = raw;
    this.#input = environ['tsgi.input'][Symbol.asyncIterator]();
  }

  get connection(): BridgeSocket {
    return this.socket;
  }
  set connection(v: BridgeSocket) {
    this.socket = v;
  }

  setTimeout(_ms: number, cb?: () => void): this {
    if (cb) this.on('timeout', cb);
    return this;
  }

  override _read(): void {
    if (this.#pulling) return;
    this.#pulling = true;
    this.#input.next().then(
      (r) => {
        this.#pulling = false;
        if (this.destroyed) return;
        if (r.done) {
          this.complete = true;
          this.push(null);
        } else {
          this.socket.bytesRead += r.value.length;
          this.push(r.value);
        }
      },
      (e: unknown) => {
        this.#pulling = false;
        // A truncated or failed body: to the listener, the client went away mid-request.
        this.#x.teardown(e instanceof Error ? e : new Error(String(e)));
      },
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Node emits 'error' on an aborted request only to those listening for it.
    cb(err && this.listenerCount('error') > 0 ? err : null);
  }

  /** _dump: Node's "discard the rest of the body" (some middleware calls it). */
  _dump(): void {
    const self = this as unknown as { _dumped?: boolean };
    if (self._dumped) return;
    self._dumped = true;
    this.removeAllListeners('data');
    this.resume();
  }

  _addHeaderLines(): never {
    return nodeInternal('req', '_addHeaderLines');
  }
  _addHeaderLine(): never {
    return nodeInternal('req', '_addHeaderLine');
  }
  _addHeaderLineDistinct(): never {
    return nodeInternal('req', '_addHeaderLineDistinct');
  }

  /** The exchange is being torn down: 'aborted' now, if the body had not been received. */
  [kAbort](): void {
    if (this.destroyed || this.complete) return;
    this.aborted = true;
    this.emit('aborted');
  }

  [kRelease](): void {
    // The response is over (or torn down). Node would read and discard the rest of the
    // body; here it is left to the adapter, which drains it (bounded) or closes the
    // connection. An aborted request gets Node's ECONNRESET 'aborted' error.
    if (this.destroyed) return;
    this.destroy(
      this.aborted
        ? new TsgiError('ECONNRESET', 'bridges: aborted (the client went away)')
        : undefined,
    );
  }
}

type HeaderValue = number | string | readonly string[];
interface HeaderEntry {
  name: string;
  value: HeaderValue;
}
interface Queued {
  chunk: Buffer;
  cb: ((err?: Error | null) => void) | undefined;
}
type WriteCallback = (err?: Error | null) => void;

// Small writes are handed to the core together, up to this many bytes.
const COALESCE_BYTES = 65536;

let responseMembers: PropertyDescriptorMap | undefined;

function headersSentError(what: string): TsgiError {
  return new TsgiError(
    'ERR_HTTP_HEADERS_SENT',
    `bridges: cannot ${what} headers after they are sent to the client`,
  );
}

function toChunk(chunk: unknown, encoding: unknown): Buffer {
  if (typeof chunk === 'string') {
    return Buffer.from(chunk, (typeof encoding === 'string' ? encoding : 'utf8') as BufferEncoding);
  }
  if (chunk instanceof Uint8Array) {
    return Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  if (chunk === null) {
    throw new TsgiError('ERR_STREAM_NULL_VALUES', 'bridges: may not write null values to stream');
  }
  throw new TsgiError(
    'ERR_INVALID_ARG_TYPE',
    `bridges: the "chunk" argument must be a string, Buffer or Uint8Array, got ${describeValue(chunk)}`,
  );
}

/**
 * The `res` a listener gets. A legacy Stream, as Node's OutgoingMessage is. Headers are
 * kept in a Map in the order they were first set; `writeHead` (explicit, or implicit at
 * the first write/end, through the public method so wrappers such as on-headers see it)
 * calls `startResponse`. Written chunks queue until the core asks for the next one, which
 * happens once the previous one reached the transport: `write` returns false past the
 * high-water mark and 'drain' follows when the queue is handed over.
 */
class BridgeResponse extends Stream {
  statusCode = 200;
  statusMessage: string | undefined = undefined;
  // Present because middleware reads them; the front server owns dates and connections.
  sendDate = false;
  chunkedEncoding = false;
  shouldKeepAlive = false;
  useChunkedEncodingByDefault = true;
  strictContentLength = false;
  req: BridgeRequest;
  socket: BridgeSocket | null;
  readonly #x: Exchange;
  readonly #headers = new Map<string, HeaderEntry>();
  #headersSent = false;
  #hasBody = true;
  #queue: Queued[] = [];
  #queued = 0;
  #inflight: WriteCallback[] = [];
  #ended = false;
  #finished = false;
  #destroyed = false;
  #closed = false;
  #needDrain = false;
  #corked = 0;
  #waiter: { resolve(r: IteratorResult<Uint8Array>): void; reject(e: unknown): void } | undefined;
  /** Why the response was torn down; the core is told once `#failureOut` is set. */
  #failure: Error | undefined;
  #failureOut = false;

  constructor(req: BridgeRequest, socket: BridgeSocket, x: Exchange) {
    super();
    Object.defineProperties(this, (responseMembers ??= membersOf(BridgeResponse.prototype)));
    this.req = req;
    this.socket = socket;
    this.#x = x;
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }
  get _headerSent(): boolean {
    return this.#headersSent;
  }
  /** Old middleware (compression) tests `res._header` for "headers sent". */
  get _header(): string | null {
    if (!this.#headersSent) return null;
    let s = `HTTP/1.1 ${this.statusCode} ${this.#reason()}\r\n`;
    for (const [n, v] of this.#headerList()) s += `${n}: ${v}\r\n`;
    return `${s}\r\n`;
  }
  get _headers(): Record<string, HeaderValue> {
    return this.getHeaders();
  }
  get _headerNames(): Record<string, string> {
    const out: Record<string, string> = Object.create(null);
    for (const [k, e] of this.#headers) out[k] = e.name;
    return out;
  }
  get finished(): boolean {
    return this.#ended;
  }
  get writableEnded(): boolean {
    return this.#ended;
  }
  get writableFinished(): boolean {
    return this.#finished;
  }
  get writable(): boolean {
    return !this.#ended && !this.#destroyed;
  }
  get destroyed(): boolean {
    return this.#destroyed;
  }
  get closed(): boolean {
    return this.#closed;
  }
  get errored(): Error | null {
    return null;
  }
  get writableLength(): number {
    return this.#queued;
  }
  get writableHighWaterMark(): number {
    return this.#x.highWaterMark;
  }
  get writableNeedDrain(): boolean {
    return this.#needDrain;
  }
  get writableObjectMode(): boolean {
    return false;
  }
  get writableCorked(): number {
    return this.#corked;
  }
  get connection(): BridgeSocket | null {
    return this.socket;
  }
  set connection(v: BridgeSocket | null) {
    this.socket = v;
  }

  setHeader(name: string, value: HeaderValue): this {
    if (this.#headersSent) throw headersSentError('set');
    validateHeaderName(name);
    validateHeaderValue(name, value as string);
    this.#headers.set(name.toLowerCase(), { name, value });
    return this;
  }

  setHeaders(headers: Headers | Map<string, HeaderValue>): this {
    if (this.#headersSent) throw headersSentError('set');
    if (typeof Headers !== 'undefined' && headers instanceof Headers) {
      const cookies = headers.getSetCookie();
      for (const [name, value] of headers) {
        if (name === 'set-cookie') continue;
        this.setHeader(name, value);
      }
      if (cookies.length > 0) this.setHeader('set-cookie', cookies);
      return this;
    }
    if (headers instanceof Map) {
      for (const [name, value] of headers) this.setHeader(name, value);
      return this;
    }
    throw new TsgiError(
      'ERR_INVALID_ARG_TYPE',
      `bridges: setHeaders() needs a Headers or a Map, got ${describeValue(headers)}`,
    );
  }

  appendHeader(name: string, value: HeaderValue): this {
    if (this.#headersSent) throw headersSentError('append');
    validateHeaderName(name);
    validateHeaderValue(name, value as string);
    const key = name.toLowerCase();
    const prev = this.#headers.get(key);
    if (prev === undefined) {
      this.#headers.set(key, { name, value });
    } else {
      const a = Array.isArray(prev.value) ? [...prev.value] : [String(prev.value)];
      if (Array.isArray(value)) a.push(...value.map(String));
      else a.push(String(value));
      prev.value = a;
    }
    return this;
  }

  getHeader(name: string): HeaderValue | undefined {
    return this.#headers.get(String(name).toLowerCase())?.value;
  }

  getHeaders(): Record<string, HeaderValue> {
    const out: Record<string, HeaderValue> = Object.create(null);
    for (const [k, e] of this.#headers) out[k] = e.value;
    return out;
  }

  getHeaderNames(): string[] {
    return [...this.#headers.keys()];
  }

  getRawHeaderNames(): string[] {
    return [...this.#headers.values()].map((e) => e.name);
  }

  hasHeader(name: string): boolean {
    return this.#headers.has(String(name).toLowerCase());
  }

  removeHeader(name: string): void {
    if (this.#headersSent) throw headersSentError('remove');
    this.#headers.delete(String(name).toLowerCase());
  }

  writeHead(
    statusCode: number,
    reason?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    headers?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    if (this.#headersSent) throw headersSentError('write');
    const original = statusCode;
    statusCode |= 0;
    if (statusCode < 100 || statusCode > 999) {
      throw new TsgiError(
        'ERR_HTTP_INVALID_STATUS_CODE',
        `bridges: invalid status code: ${String(original)}`,
      );
    }
    let obj = headers;
    if (typeof reason === 'string') this.statusMessage = reason;
    else obj ??= reason;
    if (this.statusMessage !== undefined) validateHeaderValue('statusMessage', this.statusMessage);
    this.statusCode = statusCode;
    if (obj !== undefined && obj !== null) {
      if (Array.isArray(obj)) {
        const pairs: Array<[string, HeaderValue]> = [];
        if (obj.length > 0 && Array.isArray(obj[0])) {
          for (const p of obj as unknown as Array<[string, HeaderValue]>) pairs.push([p[0], p[1]]);
        } else {
          if (obj.length % 2 !== 0) {
            throw new TsgiError(
              'ERR_INVALID_ARG_VALUE',
              'bridges: writeHead() headers given as a flat array need an even length',
            );
          }
          for (let i = 0; i < obj.length; i += 2) {
            pairs.push([String(obj[i]), obj[i + 1] as HeaderValue]);
          }
        }
        // As Node: the array replaces earlier values of its names but keeps its own repeats.
        for (const [k] of pairs) if (k) this.#headers.delete(k.toLowerCase());
        for (const [k, v] of pairs) if (k) this.appendHeader(k, v);
      } else {
        for (const k of Object.keys(obj)) {
          const v = (obj as OutgoingHttpHeaders)[k];
          if (k && v !== undefined) this.setHeader(k, v as HeaderValue);
        }
      }
    }
    this.#commit();
    return this;
  }

  writeHeader(
    statusCode: number,
    reason?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    headers?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    return this.writeHead(statusCode, reason, headers);
  }

  /** _implicitHeader: as Node's, `writeHead(statusCode)`; compression-style middleware calls it. */
  _implicitHeader(): void {
    this.writeHead(this.statusCode);
  }

  /**
   * flushHeaders: commits the head. The core puts it on the wire with the first body
   * bytes (or at the end), not earlier: a tsgi head cannot go out alone.
   */
  flushHeaders(): void {
    if (!this.#headersSent) this._implicitHeader();
  }

  write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    const callback = typeof cb === 'function' ? (cb as WriteCallback) : undefined;
    const buf = toChunk(chunk, encoding);
    if (this.#ended) {
      this.#writeAfterEnd(callback);
      return false;
    }
    if (this.#destroyed) {
      if (callback) process.nextTick(callback, destroyedError());
      return false;
    }
    if (!this.#headersSent) this._implicitHeader();
    if (!this.#hasBody || buf.length === 0 || this.#destroyed) {
      // HEAD, 204, 304: Node's server drops the body too.
      if (callback) process.nextTick(callback);
      return true;
    }
    this.#enqueue(buf, callback);
    const ok = this.#queued < this.#x.highWaterMark;
    if (!ok) this.#needDrain = true;
    return ok;
  }

  end(chunk?: unknown, encoding?: unknown, cb?: unknown): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    const callback = typeof cb === 'function' ? (cb as WriteCallback) : undefined;
    const buf = chunk === undefined || chunk === null ? undefined : toChunk(chunk, encoding);
    if (this.#ended) {
      if (buf !== undefined && buf.length > 0) {
        this.#writeAfterEnd(callback);
      } else if (callback) {
        if (this.#finished) {
          process.nextTick(
            callback,
            new TsgiError(
              'ERR_STREAM_ALREADY_FINISHED',
              'bridges: end() called after the response finished',
            ),
          );
        } else {
          this.once('finish', callback);
        }
      }
      return this;
    }
    if (this.#destroyed) {
      this.#ended = true;
      if (callback) process.nextTick(callback, destroyedError());
      return this;
    }
    if (!this.#headersSent) this._implicitHeader();
    if (buf !== undefined && buf.length > 0 && this.#hasBody && !this.#destroyed) {
      this.#enqueue(buf, undefined);
    }
    if (callback) this.once('finish', callback);
    this.#ended = true;
    this.#pump();
    return this;
  }

  cork(): void {
    this.#corked++;
  }

  uncork(): void {
    if (this.#corked > 0) this.#corked--;
    if (this.#corked === 0) this.#pump();
  }

  destroy(err?: Error): this {
    if (!this.#destroyed) {
      this.#x.teardown(
        err ??
          new TsgiError(
            'ERR_BRIDGES_RESPONSE_DESTROYED',
            'bridges: the listener destroyed the response (res.destroy())',
          ),
      );
    }
    return this;
  }

  setTimeout(_ms: number, cb?: () => void): this {
    if (cb) this.on('timeout', cb);
    return this;
  }

  addTrailers(_headers: unknown): void {
    this.#x.log(
      'bridges: res.addTrailers() ignored: CGI, FastCGI and SCGI responses have no trailers',
      'debug',
    );
  }

  writeContinue(cb?: () => void): void {
    // The front server answers Expect: 100-continue itself.
    if (cb) process.nextTick(cb);
  }

  writeProcessing(cb?: () => void): void {
    if (cb) process.nextTick(cb);
  }

  writeEarlyHints(_hints: unknown, cb?: () => void): void {
    // A tsgi response has exactly one head; 103 cannot be sent ahead of it.
    if (cb) process.nextTick(cb);
  }

  assignSocket(_socket: unknown): void {}
  detachSocket(_socket: unknown): void {}

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    // As Node's OutgoingMessage: a response is not readable.
    this.emit(
      'error',
      new TsgiError('ERR_STREAM_CANNOT_PIPE', 'bridges: cannot pipe, the response is not readable'),
    );
    return destination;
  }

  _renderHeaders(): never {
    return nodeInternal('res', '_renderHeaders');
  }
  _send(): never {
    return nodeInternal('res', '_send');
  }
  _writeRaw(): never {
    return nodeInternal('res', '_writeRaw');
  }
  _storeHeader(): never {
    return nodeInternal('res', '_storeHeader');
  }
  _finish(): never {
    return nodeInternal('res', '_finish');
  }
  _flush(): never {
    return nodeInternal('res', '_flush');
  }
  _flushOutput(): never {
    return nodeInternal('res', '_flushOutput');
  }

  /** The response cannot be delivered any more: see Exchange.teardown. */
  [kGone](err: Error): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#failure ??= err;
    const dropped = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    const d = destroyedError();
    for (const q of dropped) if (q.cb) process.nextTick(q.cb, d);
    this.#release(d);
    process.nextTick(() => this.#close());
    // The core learns of it (the body's next chunk fails; not committed yet, the app's
    // promise settles, which runApp needs to finish) only after the listener's events:
    // res 'close' above, socket 'close' and req 'error'/'close' from teardown, all on
    // process.nextTick as in Node. Told first, runApp settled before the listener's 'close'
    // handlers ran, and a process that exits when runApp settles (a CGI script) lost them:
    // Express's res 'close', Koa's body stream destroy (test/bridges/frameworks.test.ts).
    setImmediate(() => {
      this.#failureOut = true;
      this.#pump();
      this.#x.reject(err);
    });
  }

  #reason(): string {
    return this.statusMessage ?? STATUS_REASONS[this.statusCode] ?? 'Unknown';
  }

  #headerList(): HeaderList {
    const list: HeaderList = [];
    for (const { name, value } of this.#headers.values()) {
      if (Array.isArray(value)) for (const v of value) list.push([name, String(v)]);
      else list.push([name, String(value)]);
    }
    return list;
  }

  #commit(): void {
    this.#headersSent = true;
    const code = this.statusCode;
    this.#hasBody = !(
      this.#x.isHead ||
      code === 204 ||
      code === 304 ||
      (code >= 100 && code < 200)
    );
    if (this.#destroyed) return;
    try {
      this.#x.startResponse(
        `${code} ${this.#reason()}`,
        withoutHopByHop(this.#headerList(), this.#x.log),
      );
    } catch (e) {
      // The core refused the head (e.g. a status above 599): it answers 500 and logs why.
      const err = e instanceof Error ? e : new Error(String(e));
      this.#x.reject(err);
      this.#x.teardown(err);
      return;
    }
    const iterator: AsyncIterator<Uint8Array> = {
      next: () => this.#next(),
      return: () => {
        // The core stopped early (client gone, Content-Length exceeded, transport error).
        this.#x.teardown(
          new TsgiError(
            'ERR_BRIDGES_RESPONSE_CLOSED',
            'bridges: the response was closed before it ended',
          ),
        );
        return Promise.resolve({ done: true, value: undefined });
      },
    };
    this.#x.resolve({ [Symbol.asyncIterator]: () => iterator });
  }

  #writeAfterEnd(callback: WriteCallback | undefined): void {
    const err = new TsgiError('ERR_STREAM_WRITE_AFTER_END', 'bridges: write after end');
    process.nextTick(() => {
      callback?.(err);
      // As Node: an 'error' event, which crashes an app that does not listen for it.
      if (!this.#destroyed) this.emit('error', err);
    });
  }

  #enqueue(chunk: Buffer, cb: WriteCallback | undefined): void {
    this.#queue.push({ chunk, cb });
    this.#queued += chunk.length;
    this.#pump();
  }

  #next(): Promise<IteratorResult<Uint8Array>> {
    // Asked for the next chunk: the previous one reached the transport.
    this.#release(undefined);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#pump();
    });
  }

  #pump(): void {
    const w = this.#waiter;
    if (w === undefined) return;
    if (this.#failure !== undefined) {
      // Torn down: the waiter is rejected once the listener's events went out (kGone).
      if (!this.#failureOut) return;
      this.#waiter = undefined;
      w.reject(this.#failure);
      return;
    }
    if (this.#corked > 0 && !this.#ended) return;
    if (this.#queue.length > 0) {
      this.#waiter = undefined;
      w.resolve({ done: false, value: this.#take() });
      return;
    }
    if (this.#ended) {
      this.#waiter = undefined;
      this.#finish();
      w.resolve({ done: true, value: undefined });
    }
  }

  #take(): Buffer {
    let n = 0;
    let total = 0;
    const q = this.#queue;
    while (n < q.length && (n === 0 || total + q[n]!.chunk.length <= COALESCE_BYTES)) {
      total += q[n]!.chunk.length;
      n++;
    }
    const taken = q.splice(0, n);
    this.#queued -= total;
    for (const t of taken) if (t.cb) this.#inflight.push(t.cb);
    if (this.#needDrain && this.#queued === 0) {
      this.#needDrain = false;
      process.nextTick(() => {
        if (!this.#destroyed) this.emit('drain');
      });
    }
    return n === 1
      ? taken[0]!.chunk
      : Buffer.concat(
          taken.map((t) => t.chunk),
          total,
        );
  }

  #release(err: Error | undefined): void {
    if (this.#inflight.length === 0) return;
    const cbs = this.#inflight;
    this.#inflight = [];
    for (const cb of cbs) {
      if (err === undefined) process.nextTick(cb);
      else process.nextTick(cb, err);
    }
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    process.nextTick(() => {
      this.emit('finish');
      process.nextTick(() => this.#close());
    });
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
    this.#x.closed();
  }
}

function destroyedError(): TsgiError {
  return new TsgiError(
    'ERR_STREAM_DESTROYED',
    'bridges: cannot call write after the response was destroyed',
  );
}
