import { Buffer } from 'node:buffer';
import { NEVER_SIGNAL, requestSignalOf } from './environ.js';
import { isTsgiError, TsgiError } from './errors.js';
import { sinkOf } from './errorstream.js';
import { FileWrapper } from './filewrapper.js';
import { validateResponseHead } from './headers.js';
import { latin1Encode } from './latin1.js';
import { STATUS_REASONS, statusLine } from './status.js';
import type {
  Application,
  Body,
  Chunk,
  Environ,
  ErrorSink,
  ExcInfo,
  HeaderList,
  ResponseHead,
  ResponseObject,
  StartResponse,
  Transport,
  WriteFn,
} from './types.js';

/** NEEDS_BODY_ON_HEAD: the property by which an app or middleware declares it needs the body on HEAD. */
export const NEEDS_BODY_ON_HEAD: unique symbol = Symbol.for('tsgi.needsBodyOnHead') as never;

/**
 * declareNeedsBody: marks `app` as needing the full body to compute its headers (a
 * compression middleware, an ETag middleware). With `mapHeadToGet: 'auto'`, `runApp`
 * then presents HEAD as GET to it (mod_wsgi's WSGIMapHEADToGET Auto). Returns `app`.
 */
export function declareNeedsBody<A extends Application>(app: A): A {
  (app as unknown as Record<symbol, boolean>)[NEEDS_BODY_ON_HEAD] = true;
  return app;
}

/** needsBody: whether `app` (or a middleware that propagated the mark) declared it needs the body. */
export function needsBody(app: Application): boolean {
  return (app as unknown as Record<symbol, boolean>)[NEEDS_BODY_ON_HEAD] === true;
}

/** RunOptions: per-adapter choices for `runApp`. */
export interface RunOptions {
  /** mapHeadToGet: `off` (default), `on`, or `auto` (only when the app declared it needs the body). */
  mapHeadToGet?: 'off' | 'on' | 'auto';
  /**
   * headBody: what happens to the body of a HEAD response. `drop` for a transport that is
   * the HTTP server itself; `send` (default) for CGI, FastCGI and SCGI, whose front server
   * drops it after computing its own headers from it (SPEC rule 8.2).
   */
  headBody?: 'send' | 'drop';
  /** Where the core's reports go. Default: the sink behind `environ['tsgi.errors']`. */
  log?: ErrorSink;
}

/** RunResult: how a request ended. */
export interface RunResult {
  /** `complete`: the transport's `end` was called; `aborted`: its `abort`. */
  outcome: 'complete' | 'aborted';
  /** The head that was committed (after an early error, the fixed 500 or 4xx head of SPEC 7.1). */
  head: ResponseHead | undefined;
  /** Body bytes handed to the transport (or counted, for a dropped HEAD body). */
  bodyBytes: number;
  /** The error that caused a 500, a body cut at Content-Length (SPEC 5.2) or an abort. */
  error?: Error;
}

/** Complete: the RunResult of a response that ended normally (a class: see the Head class in headers.ts). */
class Complete implements RunResult {
  readonly outcome = 'complete';
  constructor(
    readonly head: ResponseHead,
    readonly bodyBytes: number,
  ) {}
}

/**
 * fixedResponse: the core's fixed error response for `code` (SPEC rule 7.1): `<code>
 * <reason>`, Content-Type text/plain, a correct Content-Length, and the reason phrase plus
 * LF as the body. For adapters that must answer before `runApp` runs (a 400 or 413 that
 * `buildEnviron` threw), so that every error response has one format.
 */
export function fixedResponse(code: number): { head: ResponseHead; body: Buffer } {
  const body = Buffer.from(`${STATUS_REASONS[code] ?? 'Error'}\n`, 'latin1');
  const head: ResponseHead = Object.freeze({
    status: statusLine(code),
    code,
    headers: Object.freeze([
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', String(body.length)],
    ]) as unknown as HeaderList,
    contentLength: body.length,
  });
  return { head, body };
}
const ERROR_RESPONSE = fixedResponse(500);
const clientErrors = new Map<number, { head: ResponseHead; body: Buffer }>();
function clientErrorResponse(code: number) {
  let r = clientErrors.get(code);
  if (!r) clientErrors.set(code, (r = fixedResponse(code)));
  return r;
}

/**
 * isResponseObject: true for the WSGI 2.0 return style (SPEC rule 3.2): a non-null
 * object that is not a body (no Symbol.iterator, no Symbol.asyncIterator, no `getReader`,
 * no `pipe`, not a file wrapper) and has an own `status` property. No body type has an
 * own `status`, so the two styles cannot be confused.
 */
export function isResponseObject(v: unknown): v is ResponseObject {
  if (typeof v !== 'object' || v === null) return false;
  if (Symbol.iterator in v || Symbol.asyncIterator in v) return false;
  if ('getReader' in v || 'pipe' in v || 'tsgiFileWrapper' in v) return false;
  return Object.hasOwn(v, 'status');
}

/**
 * runApp: runs one request through an application and a transport, in a fixed order
 * (wsgiref's BaseHandler.run): call the app; commit the head at the first non-empty
 * chunk or at the end of the body; enforce Content-Length; close the body exactly once;
 * on an error before the head, send a fixed 500; after it, abort. Never rejects:
 * everything that goes wrong ends in the transport's `end` or `abort` and the RunResult.
 */
export function runApp(
  app: Application,
  environ: Environ,
  transport: Transport,
  options: RunOptions = {},
): Promise<RunResult> {
  const exchange = new Exchange(app, environ, transport, options);
  return new Promise<RunResult>((resolve) => exchange.run(new Resolver(resolve)));
}

/** RunListener: what `runAppThen` tells when the request is over. */
export interface RunListener {
  /** runDone: called once with how the request ended (never throws into the core). */
  runDone(result: RunResult): void;
}

/**
 * runAppThen: `runApp` without a Promise: `listener.runDone(result)` is called once the
 * request is over, synchronously when nothing had to wait (a synchronous app with an
 * array body). For adapters, which already have an object per request to be told: the
 * Promise of runApp and the reaction to it were a Promise, two closures and a job per
 * request more (SCGI makes a connection per request).
 */
export function runAppThen(
  app: Application,
  environ: Environ,
  transport: Transport,
  options: RunOptions,
  listener: RunListener,
): void {
  new Exchange(app, environ, transport, options).run(listener);
}

/** Resolver: runApp's Promise as a RunListener. */
class Resolver implements RunListener {
  constructor(private readonly resolve: (r: RunResult) => void) {}
  runDone(result: RunResult): void {
    this.resolve(result);
  }
}

/**
 * CoreSignal: what runApp needs of a request's signal (RequestSignal has it). Reading it
 * never creates an AbortSignal; a listener is added and removed as itself, no remover
 * closure per call.
 */
interface CoreSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addAbortListener(fn: () => void): void;
  removeAbortListener(fn: () => void): void;
}

function noop(): void {}

/** The signal of a request whose adapter gave none: it never fires. */
const NEVER_ABORTED: CoreSignal = {
  aborted: false,
  reason: undefined,
  addAbortListener: noop,
  removeAbortListener: noop,
};

/** AbortSignalView: a plain AbortSignal (from an adapter or a test) seen as a CoreSignal. */
class AbortSignalView implements CoreSignal {
  constructor(private readonly s: AbortSignal) {}

  get aborted(): boolean {
    return this.s?.aborted === true;
  }

  get reason(): unknown {
    return this.s?.reason;
  }

  addAbortListener(fn: () => void): void {
    if (typeof this.s?.addEventListener === 'function') {
      this.s.addEventListener('abort', fn, { once: true });
    }
  }

  removeAbortListener(fn: () => void): void {
    if (typeof this.s?.removeEventListener === 'function') {
      this.s.removeEventListener('abort', fn);
    }
  }
}

/**
 * coreSignalOf: the request's signal as runApp uses it: the RequestSignal behind a lazy
 * `tsgi.signal` (so the AbortSignal is never created by the core), else the AbortSignal
 * in `tsgi.signal`.
 */
function coreSignalOf(environ: Environ): CoreSignal {
  const rs = requestSignalOf(environ);
  if (rs !== undefined) return rs;
  const s = environ['tsgi.signal'];
  return s === NEVER_SIGNAL ? NEVER_ABORTED : new AbortSignalView(s);
}

/** A Promise when a transport method returned one (or a thenable), else undefined. */
function pending(r: unknown): Promise<unknown> | undefined {
  if (r === undefined || r === null) return undefined;
  if (r instanceof Promise) return r;
  return typeof (r as { then?: unknown }).then === 'function' ? Promise.resolve(r) : undefined;
}

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * Exchange: one request's run. The common case (a synchronous app, an array body, a
 * transport whose methods return nothing) runs to the end without a single await; each
 * step that gets a Promise (an async app, a write() call, a transport that waits for
 * drain) continues asynchronously from there, in the same order of steps.
 */
class Exchange {
  /** The head startResponse (or a response object) gave; committed at the first byte or the end. */
  private head: ResponseHead | undefined = undefined;
  private headSent = false;
  private sent = 0;
  private readonly isHead: boolean;
  private readonly dropBody: boolean;
  private readonly log: ErrorSink;
  private closer: (() => unknown) | undefined = undefined;
  private closed = false;
  private finished = false;
  /** The queue of write() calls; undefined until the first one (most apps never call it). */
  private writeChain: Promise<void> | undefined = undefined;
  /** The first failure of a write() call: the response is broken even if the app caught it. */
  private writeError: Error | undefined = undefined;
  /**
   * The error of a body cut at Content-Length (SPEC rule 5.2): what reached the transport
   * is exactly Content-Length bytes, a complete response, so it is ended, not aborted.
   */
  private cut: TsgiError | undefined = undefined;
  /** Set once end() or abort() is decided: no body byte may reach the transport after it. */
  private over = false;
  private readonly signal: CoreSignal;
  /** The abort listener in place (see listenForAbort), removed when the run is done. */
  private abortListener: (() => void) | undefined = undefined;
  private writeFn: WriteFn | undefined = undefined;
  readonly startResponse: StartResponse;

  constructor(
    private readonly app: Application,
    private readonly environ: Environ,
    private readonly transport: Transport,
    options: RunOptions,
  ) {
    this.isHead = environ.REQUEST_METHOD === 'HEAD';
    const map = options.mapHeadToGet ?? 'off';
    if (this.isHead && (map === 'on' || (map === 'auto' && needsBody(app)))) {
      environ.REQUEST_METHOD = 'GET';
    }
    this.dropBody = this.isHead && options.headBody === 'drop';
    this.log = options.log ?? sinkOf(environ['tsgi.errors']);
    this.signal = coreSignalOf(environ);
    this.startResponse = (status, headers, excInfo) => this.start(status, headers, excInfo);
  }

  private start(status: string, headers: HeaderList, excInfo: ExcInfo): WriteFn {
    if (this.finished) {
      throw new TsgiError(
        'ERR_CORE_LATE_START_RESPONSE',
        'core: startResponse called after the response ended',
      );
    }
    if (excInfo !== undefined && excInfo !== null) {
      // PEP 3333: with exc_info after the head went out, re-raise it.
      if (this.headSent) throw excInfo;
    } else if (this.head !== undefined) {
      throw new TsgiError(
        'ERR_CORE_START_RESPONSE_TWICE',
        'core: startResponse called twice without excInfo',
      );
    }
    this.head = validateResponseHead(status, headers);
    // Made on first use: an app that returns its body never needs it.
    this.writeFn ??= (chunk: Chunk) => this.write(chunk);
    return this.writeFn;
  }

  private write(chunk: Chunk): Promise<void> {
    const p = (this.writeChain ?? RESOLVED).then(() => {
      const sent = this.send(toBytes(chunk, 'write() chunk'));
      if (sent !== undefined) return sent.then(noop);
    });
    // SPEC rule 3.6: a failed write() breaks the response (Content-Length exceeded, bad
    // chunk, client gone) whether or not the app awaited and caught the rejection.
    this.writeChain = p.then(undefined, (e: unknown) => {
      this.writeError ??= e instanceof Error ? e : new Error(String(e));
    });
    return p;
  }

  /** Waits for queued write() calls and rethrows the first one that failed. */
  private async settleWrites(): Promise<void> {
    await this.writeChain;
    if (this.writeError !== undefined) throw this.writeError;
  }

  run(listener: RunListener): void {
    let result: unknown;
    try {
      result = this.app(this.environ, this.startResponse);
    } catch (e) {
      this.tell(listener, this.failed(e));
      return;
    }
    if (result instanceof Promise) this.awaitApp(result, listener);
    else this.tell(listener, this.afterApp(result));
  }

  /**
   * What follows the app's return (or its Promise's value). Arrays (the hello-world case)
   * are walked without the async-iterator protocol and, while the transport returns no
   * Promise, without any await; an array never waits for data, so it needs no abort
   * listener either (the signal is checked before every chunk). A RunResult when nothing
   * had to wait.
   */
  private afterApp(result: unknown): RunResult | Promise<RunResult> {
    if (this.writeChain !== undefined) return this.runAsync(result, undefined);
    let body: Body | null;
    try {
      body = this.bodyOf(result);
    } catch (e) {
      return this.failed(e);
    }
    if (Array.isArray(body) && typeof (body as { close?: unknown }).close !== 'function') {
      return this.runArray(body, 0);
    }
    return this.runAsync(result, body);
  }

  /**
   * Waits for an async app, but gives up when the client goes away: the transport is then
   * released at once instead of waiting for an app that may never finish, and whatever
   * body the app returns later is closed (SPEC rule 6.1). Two reactions, no Promise of its
   * own and no async function: this is every async app's path.
   */
  private awaitApp(p: Promise<unknown>, listener: RunListener): void {
    const signal = this.signal;
    if (signal === NEVER_ABORTED) {
      p.then(
        (v) => this.tell(listener, this.afterApp(v)),
        (e: unknown) => this.tell(listener, this.failed(e)),
      );
      return;
    }
    let settled = false;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      p.then(closeLate, noop);
      this.tell(listener, this.failed(clientGone(signal)));
    };
    // Already gone: let a promise that has settled win first, then give up.
    if (signal.aborted) setImmediate(onAbort);
    else signal.addAbortListener(onAbort);
    p.then(
      (v) => {
        if (settled) return;
        settled = true;
        signal.removeAbortListener(onAbort);
        this.tell(listener, this.afterApp(v));
      },
      (e: unknown) => {
        if (settled) return;
        settled = true;
        signal.removeAbortListener(onAbort);
        this.tell(listener, this.failed(e));
      },
    );
  }

  /** The synchronous path for an array body, from chunk `from` on. */
  private runArray(body: readonly unknown[], from: number): RunResult | Promise<RunResult> {
    let r: RunResult | Promise<RunResult>;
    try {
      for (let i = from; i < body.length; i++) {
        const p = this.chunk(body[i]);
        if (p !== undefined) return this.resumeArray(p, body, i + 1);
      }
      r = this.finish();
    } catch (e) {
      return this.failed(e);
    }
    if (r instanceof Promise) return this.settle(r);
    this.done();
    return r;
  }

  private async resumeArray(
    p: Promise<unknown>,
    body: readonly unknown[],
    next: number,
  ): Promise<RunResult> {
    try {
      await p;
    } catch (e) {
      return this.failed(e);
    }
    return this.runArray(body, next);
  }

  private async settle(p: Promise<RunResult>): Promise<RunResult> {
    let r: RunResult;
    try {
      r = await p;
    } catch (e) {
      return this.failed(e);
    }
    this.done();
    return r;
  }

  /** An error on the synchronous path: the same ending as on the asynchronous one. */
  private async failed(e: unknown): Promise<RunResult> {
    try {
      return await this.fail(e);
    } finally {
      await this.closeBody();
      this.done();
    }
  }

  /** Tells `listener` once `r` is known. */
  private tell(listener: RunListener, r: RunResult | Promise<RunResult>): void {
    if (!(r instanceof Promise)) {
      listener.runDone(r);
      return;
    }
    r.then(
      (v) => listener.runDone(v),
      (e: unknown) => {
        // The core's paths do not reject; should one, the request still ends for the adapter.
        const error = e instanceof Error ? e : new Error(String(e));
        this.log(`core: request failed: ${describe(error)}`, 'error');
        listener.runDone({ outcome: 'aborted', head: this.head, bodyBytes: this.sent, error });
      },
    );
  }

  private done(): void {
    this.finished = true;
    const fn = this.abortListener;
    if (fn !== undefined) {
      this.abortListener = undefined;
      this.signal.removeAbortListener(fn);
    }
  }

  /**
   * The asynchronous path: write() calls, or a body that is not a plain array. `result`
   * is what the app returned (an async app's value); `body` is undefined when it is still
   * to be found from `result`.
   */
  private async runAsync(result: unknown, body: Body | null | undefined): Promise<RunResult> {
    try {
      try {
        if (this.writeChain !== undefined) await this.settleWrites();
        if (body === undefined) body = this.bodyOf(result);
        // The abort listener closes a body that is waiting for data (a stream, a generator
        // awaiting something) as soon as the client goes away. An array body never waits.
        if (body !== null && !Array.isArray(body)) {
          this.abortListener = () => {
            void this.closeBody();
          };
          this.signal.addAbortListener(this.abortListener);
        }
        const it = this.iterate(body);
        if (it !== undefined) await it;
        if (this.writeChain !== undefined) await this.settleWrites();
        return await this.finish();
      } catch (e) {
        return await this.fail(e);
      } finally {
        await this.closeBody();
      }
    } finally {
      this.done();
    }
  }

  /** The body to iterate, after telling the two return styles apart (SPEC rule 3.2). */
  private bodyOf(result: unknown): Body | null {
    if (isResponseObject(result)) {
      if (this.head !== undefined) {
        throw new TsgiError(
          'ERR_CORE_BAD_RETURN',
          'core: the app called startResponse and also returned a { status } response object; use one style',
        );
      }
      const status = typeof result.status === 'number' ? statusLine(result.status) : result.status;
      this.head = validateResponseHead(status, result.headers ?? []);
      const b = result.body;
      if (b === undefined || b === null) return null;
      if (typeof b === 'string' || b instanceof Uint8Array) return [b];
      return b as Body;
    }
    if (typeof result === 'string') {
      throw new TsgiError(
        'ERR_CORE_BAD_RETURN',
        'core: the app returned a string; return an iterable of chunks such as [text]',
      );
    }
    if (result === undefined || result === null || typeof result !== 'object') {
      throw new TsgiError(
        'ERR_CORE_BAD_RETURN',
        `core: the app returned ${result === null ? 'null' : typeof result}, not a body or a { status, headers, body } object`,
      );
    }
    return result as Body;
  }

  /** Walks the body; a Promise only when some step has to wait. */
  private iterate(body: Body | null): Promise<void> | undefined {
    if (body === null) return undefined;
    const b = body as unknown as Record<string | symbol, any>;
    if (typeof b.close === 'function' && !(body instanceof FileWrapper)) {
      this.closer = () => b.close();
    }
    if (body instanceof FileWrapper) {
      const cl = this.head?.contentLength;
      if (cl !== undefined) body.limit(cl);
      this.closer = () => body.close();
    }
    if (Array.isArray(body)) return this.iterateArray(body, 0);
    return this.iterateAsync(body, b);
  }

  private iterateArray(body: readonly unknown[], from: number): Promise<void> | undefined {
    for (let i = from; i < body.length; i++) {
      const p = this.chunk(body[i]);
      if (p !== undefined) return p.then(() => this.iterateArray(body, i + 1));
    }
    return undefined;
  }

  private async iterateAsync(body: Body, b: Record<string | symbol, any>): Promise<void> {
    if (typeof b.getReader === 'function') {
      const reader = (body as ReadableStream<Chunk>).getReader();
      let done = false;
      this.closer = async () => {
        if (!done) await reader.cancel().catch(() => undefined);
        reader.releaseLock();
      };
      for (;;) {
        const r = await reader.read();
        if (r.done) {
          done = true;
          return;
        }
        const p = this.chunk(r.value);
        if (p !== undefined) await p;
      }
    }
    if (typeof b.pipe === 'function' && typeof b.destroy === 'function') {
      const prev = this.closer;
      this.closer = () => {
        prev?.();
        b.destroy();
      };
    }
    const it: Iterator<Chunk> | AsyncIterator<Chunk> =
      typeof b[Symbol.asyncIterator] === 'function'
        ? b[Symbol.asyncIterator]()
        : typeof b[Symbol.iterator] === 'function'
          ? b[Symbol.iterator]()
          : (() => {
              // A Fetch handler run as a tsgi app (one argument looks the same) returns a
              // Response: say what it is and what to do, not just what it is not.
              if (typeof Response === 'function' && b instanceof Response) {
                throw new TsgiError(
                  'ERR_CORE_BAD_RETURN',
                  'core: the app returned a Fetch Response: it is a Fetch handler, not a tsgi app; wrap it with fromFetch() from @tsgi/bridges (tsgi command: --interface fetch)',
                );
              }
              throw new TsgiError(
                'ERR_CORE_BAD_RETURN',
                'core: the app returned an object that is not iterable, a stream or a file wrapper',
              );
            })();
    let done = false;
    const prev = this.closer;
    this.closer = async () => {
      try {
        if (!done && typeof it.return === 'function') await it.return();
      } finally {
        await prev?.();
      }
    };
    for (;;) {
      let r = it.next();
      if (r instanceof Promise) r = await r;
      if ((r as IteratorResult<Chunk>).done) {
        done = true;
        return;
      }
      const p = this.chunk((r as IteratorResult<Chunk>).value);
      if (p !== undefined) await p;
    }
  }

  /** Handles one body chunk; a Promise only when the transport has to be waited for. */
  private chunk(value: unknown): Promise<unknown> | undefined {
    if (this.signal.aborted) throw clientGone(this.signal);
    const bytes = toBytes(value, 'body chunk');
    if (bytes.length === 0) return undefined;
    return this.send(bytes);
  }

  /**
   * Commits the head if needed and passes bytes on, never more than Content-Length. A
   * Promise only when the transport returned one.
   */
  private send(bytes: Uint8Array): Promise<unknown> | undefined {
    if (this.over) {
      // A write() the app makes after its response ended (SPEC rule 10.1).
      throw new TsgiError('ERR_CORE_LATE_WRITE', 'core: write() called after the response ended');
    }
    const head = this.head;
    if (head === undefined) {
      throw new TsgiError(
        'ERR_CORE_NO_START_RESPONSE',
        'core: the body produced data before startResponse was called',
      );
    }
    if (this.signal.aborted) throw clientGone(this.signal);
    if (!this.headSent) {
      this.headSent = true;
      const p = pending(this.transport.sendHead(head));
      if (p !== undefined) return p.then(() => this.sendBody(head, bytes));
    }
    return this.sendBody(head, bytes);
  }

  private sendBody(head: ResponseHead, bytes: Uint8Array): Promise<unknown> | undefined {
    // write('') commits the head (PEP 3333) but a transport only ever gets non-empty chunks.
    if (bytes.length === 0) return undefined;
    const cl = head.contentLength;
    if (cl !== undefined && this.sent + bytes.length > cl) {
      // SPEC rule 5.2 (HEAD seed: "never send more than Content-Length"): cut, report,
      // and tell the transport the response is broken so the connection is not reused.
      const err = new TsgiError(
        'ERR_CORE_CONTENT_LENGTH_EXCEEDED',
        `core: the app sent more than its Content-Length of ${cl} bytes; the excess was cut off`,
      );
      this.cut = err;
      const room = cl - this.sent;
      if (room > 0) {
        this.sent += room;
        if (!this.dropBody) {
          const p = pending(this.transport.write(bytes.subarray(0, room)));
          if (p !== undefined) {
            return p.then(() => {
              throw err;
            });
          }
        }
      }
      throw err;
    }
    this.sent += bytes.length;
    return this.dropBody ? undefined : pending(this.transport.write(bytes));
  }

  /** Commits the head if not yet, checks Content-Length and ends the response. */
  private finish(): RunResult | Promise<RunResult> {
    const head = this.head;
    if (head === undefined) {
      throw new TsgiError(
        'ERR_CORE_NO_START_RESPONSE',
        'core: the app returned without calling startResponse',
      );
    }
    if (!this.headSent) {
      this.headSent = true;
      const p = pending(this.transport.sendHead(head));
      if (p !== undefined) return p.then(() => this.end(head));
    }
    return this.end(head);
  }

  private end(head: ResponseHead): RunResult | Promise<RunResult> {
    const cl = head.contentLength;
    // A HEAD response with no body at all is the app's choice (HEAD seed); any other
    // short body is a broken response.
    if (cl !== undefined && this.sent < cl && !(this.isHead && this.sent === 0)) {
      throw new TsgiError(
        'ERR_CORE_CONTENT_LENGTH_SHORT',
        `core: the app sent ${this.sent} bytes but declared Content-Length ${cl}`,
      );
    }
    if (this.signal.aborted) throw clientGone(this.signal);
    this.over = true;
    const result: RunResult = new Complete(head, this.sent);
    const p = pending(this.transport.end());
    return p === undefined ? result : p.then(() => result);
  }

  private async fail(e: unknown): Promise<RunResult> {
    this.over = true;
    const error = e instanceof Error ? e : new Error(String(e));
    await this.closeBody();
    const gone = this.signal.aborted;
    if (gone) {
      // mod_wsgi 3.0 change log: a vanished client is not an application error.
      this.log(
        `core: client went away: ${this.environ.REQUEST_METHOD} ${this.environ.REQUEST_URI}`,
        'debug',
      );
    } else {
      // describe(e), not describe(error): a thrown non-Error gets no stack of the core's own.
      this.log(
        `core: ${this.environ.REQUEST_METHOD} ${this.environ.REQUEST_URI}: ${describe(e)}`,
        'error',
      );
    }
    if (error === this.cut && this.headSent && !gone) {
      // The wire holds a whole response (head and exactly Content-Length bytes); the
      // excess never left the core, so nothing can be taken as the start of a next
      // response ([AMEND] item 4) and the front server may deliver and reuse as usual.
      try {
        await this.transport.end();
        return { outcome: 'complete', head: this.head, bodyBytes: this.sent, error };
      } catch (e2) {
        const err2 = e2 instanceof Error ? e2 : new Error(String(e2));
        await this.abort(err2);
        return { outcome: 'aborted', head: this.head, bodyBytes: this.sent, error: err2 };
      }
    }
    if (!this.headSent && !gone) {
      // SPEC rule 7.1: a fixed 500, no diagnostics to the client. A request the core
      // itself found bad (a TsgiError carrying a 4xx status, e.g. a truncated body) is the
      // client's fault and gets that status instead, equally without diagnostics.
      this.headSent = true;
      const code = isTsgiError(e) ? e.status : undefined;
      const { head, body } =
        code !== undefined && code >= 400 && code < 500
          ? clientErrorResponse(code)
          : ERROR_RESPONSE;
      try {
        await this.transport.sendHead(head);
        if (!this.dropBody) await this.transport.write(body);
        await this.transport.end();
        return { outcome: 'complete', head, bodyBytes: body.length, error };
      } catch (e2) {
        const err2 = e2 instanceof Error ? e2 : new Error(String(e2));
        await this.abort(err2);
        return { outcome: 'aborted', head, bodyBytes: 0, error: err2 };
      }
    }
    await this.abort(error);
    return { outcome: 'aborted', head: this.head, bodyBytes: this.sent, error };
  }

  private async abort(error: Error): Promise<void> {
    try {
      await this.transport.abort(error);
    } catch (e) {
      this.log(`core: transport abort failed: ${describe(e)}`, 'error');
    }
  }

  /** SPEC rule 6.1: the body's close()/return() is called exactly once. */
  private async closeBody(): Promise<void> {
    if (this.closed) return;
    const c = this.closer;
    // Nothing to close yet (the client went away while the app was still computing its
    // result): stay open, so the body the app then returns is closed when runApp ends.
    if (c === undefined) return;
    this.closed = true;
    try {
      await c();
    } catch (e) {
      this.log(`core: body close() failed: ${describe(e)}`, 'error');
    }
  }
}

/** Closes a body returned after its request was abandoned; errors are ignored. */
function closeLate(v: unknown): void {
  const b = (isResponseObject(v) ? v.body : v) as Record<string | symbol, any> | null | undefined;
  if (typeof b !== 'object' || b === null) return;
  const ignore = () => undefined;
  try {
    if (typeof b.close === 'function') Promise.resolve(b.close()).catch(ignore);
    else if (typeof b.cancel === 'function') Promise.resolve(b.cancel()).catch(ignore);
    else if (typeof b.destroy === 'function') b.destroy();
    else if (typeof b.return === 'function') Promise.resolve(b.return()).catch(ignore);
  } catch {
    // A body that cannot even be closed has nothing more to give.
  }
}

function toBytes(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return latin1Encode(value, `response ${what}`);
  throw new TsgiError(
    'ERR_CORE_BAD_CHUNK',
    `core: response ${what} must be a Uint8Array or a string, got ${value === null ? 'null' : typeof value}`,
  );
}

function clientGone(signal: CoreSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new TsgiError('ERR_CORE_CLIENT_GONE', 'core: client went away');
}

function describe(e: unknown): string {
  if (isTsgiError(e)) return e.message;
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}
