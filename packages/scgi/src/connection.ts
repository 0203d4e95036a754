// One SCGI connection: one request (SCGI spec section 2: "When the SCGI server sees the end
// of the request it sends back a response and closes the connection"). No node:net here:
// the connection works on any Duplex; server.ts owns the listening socket.
import { Buffer } from 'node:buffer';
import type { Duplex } from 'node:stream';
import {
  type Application,
  type ByteSource,
  buildEnviron,
  CgiVars,
  createLogSink,
  type ErrorSink,
  fixedResponse,
  isTsgiError,
  RequestEnvironOptions,
  RequestSignal,
  type ResponseHead,
  type RunListener,
  type RunOptions,
  runAppThen,
  serializeCgiHead,
  serializeCgiResponse,
  type Transport,
  TsgiError,
} from '@tsgi/core';
import { decodeHeadersInto, NetstringFramer } from './codec.js';
import { type DeadlineEntry, type DeadlineList, deadlineList, remove } from './deadlines.js';

/** ScgiConnectionOptions: per-connection settings shared by `handleScgiConnection` and `serveScgi`. */
export interface ScgiConnectionOptions {
  /** maxHeaderBytes: largest netstring header block accepted (checked before buffering). Default 64 KiB. */
  maxHeaderBytes?: number;
  /**
   * headerTimeoutMs: time allowed from the connection's start to the netstring's `,`.
   * A peer that dribbles its header (slowloris) is cut off. Default 30 s; 0 disables.
   */
  headerTimeoutMs?: number;
  /**
   * lingerMs: after the response, how long unread request bytes are read and discarded
   * while waiting for the front server to close (a lingering close: closing with unread
   * data would send a RST that can destroy the response in the peer's receive buffer).
   * Default 5 s.
   */
  lingerMs?: number;
  /**
   * errorResponses: answer a malformed request with a minimal CGI-style response
   * (`Status: 400 Bad Request`, or 413/431/408) before closing, when nothing has been sent
   * yet. Default true; false closes the connection silently (the front server then
   * reports 502).
   */
  errorResponses?: boolean;
  /** errors: where `tsgi.errors` and the adapter's own reports go. Default: stderr, level info. */
  errors?: ErrorSink;
  /** mount: where the app is mounted; see the core's `EnvironOptions.mount` (nginx sends no SCRIPT_NAME). */
  mount?: string;
  /** uriEncoding: see the core's `EnvironOptions.uriEncoding`. */
  uriEncoding?: string;
  /** maxBodyBytes: largest CONTENT_LENGTH accepted (a 413 before the body is read). */
  maxBodyBytes?: number;
  /** urlScheme: overrides the scheme derived from HTTPS / REQUEST_SCHEME. */
  urlScheme?: 'http' | 'https';
  /** multiprocess: the value of `tsgi.multiprocess` (true when several processes share the socket). */
  multiprocess?: boolean;
  /** mapHeadToGet: see the core's `RunOptions.mapHeadToGet`. */
  mapHeadToGet?: 'off' | 'on' | 'auto';
  /** extra: extra environ keys for every request. */
  extra?: Record<string, unknown>;
}

/** ScgiConnectionPhase: where a connection is: waiting for its first byte, reading the header, running the app, closing. */
export type ScgiConnectionPhase = 'idle' | 'header' | 'running' | 'closing' | 'closed';

const DEFAULT_HEADER_TIMEOUT_MS = 30_000;
const DEFAULT_LINGER_MS = 5_000;
/** Response bytes gathered before they are written without waiting for the end of the job. */
const FLUSH_BYTES = 16 * 1024;
const RESOLVED: Promise<void> = Promise.resolve();

/**
 * ScgiConnection: serves the one request of an SCGI connection: frames and decodes the
 * netstring header (codec.ts), builds the environ with the core's `buildEnviron`, runs the
 * app with `runApp`, writes the core's CGI-style head and the body, then closes.
 *
 * - Request body: `tsgi.input` reads from a ByteSource over exactly CONTENT_LENGTH bytes
 *   after the `,`; bytes past it are read and ignored. The socket stays paused unless the
 *   app is waiting in a read, so an app that does not read a large body holds at most one
 *   socket chunk in memory (backpressure reaches the front server through TCP).
 * - CONTENT_LENGTH is trusted alone. nginx passes HTTP_TRANSFER_ENCODING=chunked after it
 *   dechunked the body, and nginx 1.22 with `scgi_request_buffering off` sends a wrong
 *   CONTENT_LENGTH with the real one in HTTP_CONTENT_LENGTH; `buildEnviron` warns about the
 *   disagreement (research/real-servers.md).
 * - A half-close from the peer (FIN) ends the request body but does not end the request:
 *   lighttpd's mod_scgi has shut down its write side after sending the request. A reset or
 *   a failed write (the front server gave up, e.g. nginx after its client left) aborts
 *   `tsgi.signal`; the core then closes the app's body.
 * - A broken response (the core's `abort`) is ended with a TCP reset, not a FIN: SCGI
 *   responses have no framing of their own, so a clean close would pass a truncated body
 *   off as complete when there is no Content-Length.
 */
export class ScgiConnection implements DeadlineEntry {
  private phase_: ScgiConnectionPhase = 'idle';
  private readonly framer: NetstringFramer;
  private readonly sink: ErrorSink;
  /** Behind `tsgi.signal`: no AbortSignal is made unless someone reads it. */
  private readonly rsignal = new RequestSignal();
  private body: BodySource | undefined;
  /**
   * @internal The connection's place in a deadline list (deadlines.ts): the header
   * timeout until the header is complete, then the lingering close's limit.
   */
  dlPrev: DeadlineEntry | undefined = undefined;
  /** @internal */
  dlNext: DeadlineEntry | undefined = undefined;
  /** @internal */
  dlList: DeadlineList | undefined = undefined;
  /** @internal */
  dlAt = 0;
  /**
   * @internal The connection's place in its server's list of open connections
   * (`LiveConnections`), left when the connection is done.
   */
  livePrev: ScgiConnection | undefined = undefined;
  /** @internal */
  liveNext: ScgiConnection | undefined = undefined;
  /** @internal */
  liveList: LiveConnections | undefined = undefined;
  /** Bytes of the response were written: no error response any more. */
  private wrote = false;
  /** The response ended (cleanly or not): a close is no longer the client going away. */
  private finished = false;
  private socketClosed = false;
  /** The app's run (runApp) is over, or never started. */
  private runSettled = true;
  /** Callbacks for when the socket has closed and the run is over (see whenDone): the first, then more. */
  private doneHook: (() => void) | undefined;
  private doneHooks: Array<() => void> | undefined;
  private donePromise: Promise<void> | undefined;
  private closedPromise: Promise<void> | undefined;
  private drainWaiters: Array<{ resolve(): void; reject(e: Error): void }> | undefined;
  /**
   * The head, until it is written: serialized together with the first body chunk when
   * that is all there is (see takeOut), so a small response is one Buffer.
   */
  private outHead: ResponseHead | undefined;
  /**
   * Body bytes gathered for one write (see queue): two fields, an array only past two
   * pieces, as most responses are one chunk.
   */
  private out0: Uint8Array | undefined;
  private out1: Uint8Array | undefined;
  private outMore: Uint8Array[] | undefined;
  private outBytes = 0;
  private flushQueued = false;
  /** The socket's last write returned false: writes wait for 'drain'. */
  private needDrain = false;
  private drainListening = false;
  private resolveClosed: (() => void) | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly app: Application,
    private readonly options: ScgiConnectionOptions = {},
  ) {
    // The options themselves (their maxHeaderBytes, checked there): no literal per connection.
    this.framer = new NetstringFramer(options);
    this.sink = options.errors ?? createLogSink('info');

    // The listeners are functions shared by every connection, which find theirs through
    // the socket: no closure per event per connection (SCGI makes a connection per request).
    (socket as LinkedSocket)[kConnection] = this;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    // 'drain' is listened to once a write has to wait (most responses never do).

    const t = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
    if (t > 0) deadlineList(t).add(this);
  }

  /** @internal The deadline passed: the header timeout, or the lingering close's limit. */
  expire(): void {
    const phase = this.phase_;
    if (phase === 'closing') {
      this.socket.destroy();
      return;
    }
    const t = this.options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
    if (phase === 'idle') {
      // Connected and sent nothing: no request to answer.
      this.sink(`scgi: connection sent nothing within ${t} ms (headerTimeoutMs); closed`, 'debug');
      this.finished = true;
      this.phase_ = 'closing';
      this.socket.destroy();
      return;
    }
    if (phase !== 'header') return;
    this.reject(
      new TsgiError(
        'ERR_SCGI_HEADER_TIMEOUT',
        `scgi: no complete header within ${t} ms (headerTimeoutMs)`,
        { status: 408 },
      ),
      'warn',
    );
  }

  /**
   * ScgiConnection.closed: resolves when the socket has closed (the app may still be
   * running). Made on first use.
   */
  get closed(): Promise<void> {
    if (this.closedPromise === undefined) {
      this.closedPromise = this.socketClosed
        ? Promise.resolve()
        : new Promise<void>((r) => {
            this.resolveClosed = r;
          });
    }
    return this.closedPromise;
  }

  /**
   * ScgiConnection.done: resolves when the socket has closed and the request (if any) has
   * finished. Made on first use.
   */
  get done(): Promise<void> {
    this.donePromise ??= new Promise<void>((r) => this.whenDone(r));
    return this.donePromise;
  }

  /**
   * ScgiConnection.whenDone: calls `fn` once the socket has closed and the request (if
   * any) has finished, as `done` resolves, but without a Promise: what a server tracking
   * every connection uses.
   */
  whenDone(fn: () => void): void {
    if (this.socketClosed && this.runSettled) {
      queueMicrotask(fn);
      return;
    }
    if (this.doneHook === undefined && this.doneHooks === undefined) this.doneHook = fn;
    else (this.doneHooks ??= []).push(fn);
  }

  private checkDone() {
    if (!this.socketClosed || !this.runSettled) return;
    this.liveList?.remove(this);
    const first = this.doneHook;
    const hooks = this.doneHooks;
    this.doneHook = undefined;
    this.doneHooks = undefined;
    first?.();
    if (hooks !== undefined) for (const fn of hooks) fn();
  }

  /** ScgiConnection.phase: where the connection is (used by `serveScgi` for a graceful close). */
  get phase(): ScgiConnectionPhase {
    return this.phase_;
  }

  /** ScgiConnection.signal: the request's AbortSignal (`tsgi.signal`). */
  get signal(): AbortSignal {
    return this.rsignal.signal;
  }

  /**
   * ScgiConnection.destroy: closes the connection now. A running request sees its
   * `tsgi.signal` aborted with `reason` (a server shutting down past its grace period).
   */
  destroy(reason?: Error): void {
    if (!this.finished) this.goAway(reason);
    this.socket.destroy();
  }

  /** @internal The socket's 'data' (onSocketData). */
  onData_(chunk: Buffer): void {
    if (this.phase_ === 'idle') this.phase_ = 'header';
    if (this.phase_ === 'header') {
      let frame: ReturnType<NetstringFramer['push']>;
      try {
        frame = this.framer.push(chunk);
      } catch (e) {
        this.reject(e, 'error');
        return;
      }
      if (frame !== undefined) this.start(frame.block, frame.rest);
      return;
    }
    if (this.body !== undefined) this.body.onData(chunk);
    // Otherwise: after an early error or the response, request bytes are discarded.
  }

  /** @internal The socket's 'end' (onSocketEnd). */
  onEnd_(): void {
    if (this.phase_ === 'idle' || this.phase_ === 'header') {
      try {
        this.framer.end();
      } catch (e) {
        this.reject(e, 'error');
        return;
      }
      // Nothing was sent (a health check that connects and closes): close quietly.
      this.clearHeaderTimer();
      this.phase_ = 'closing';
      this.socket.end();
      return;
    }
    this.body?.onEnd();
  }

  /** @internal The socket's 'error' (onSocketError). */
  onError_(e: Error): void {
    // A reset or broken pipe: the front server gave up. 'close' follows.
    this.sink(`scgi: connection error: ${e.message}`, 'debug');
    this.body?.onFailure(this.goneError());
  }

  /** @internal The socket's 'close' (onSocketClose). */
  onClose_(): void {
    this.socketClosed = true;
    this.phase_ = 'closed';
    remove(this);
    // The error is made only when something is there to see it: after a complete response
    // (every connection's normal end) there is nothing, and a TsgiError with its stack
    // trace on every close was 4 % of a hello-world profile.
    if (!this.finished) this.goAway(this.goneError());
    if (this.body?.open) this.body.onFailure(this.goneError());
    const waiters = this.drainWaiters;
    this.drainWaiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w.reject(this.goneError());
    // What the connection no longer needs: a closed socket can stay in the young generation
    // for a while (Node releases its handle after the close), and what it holds would be
    // copied and promoted with it. The body source stays with tsgi.input, which has seen
    // its end or failure.
    this.body = undefined;
    this.outHead = undefined;
    this.out0 = this.out1 = this.outMore = undefined;
    this.resolveClosed?.();
    this.checkDone();
  }

  /** @internal The socket's 'drain' (onSocketDrain), listened to once a write had to wait. */
  onDrain_(): void {
    this.needDrain = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w.resolve();
  }

  private goneError(): Error {
    return new TsgiError(
      'ERR_SCGI_CLIENT_GONE',
      'scgi: the front server closed the connection before the response was complete',
    );
  }

  private goAway(reason: Error = this.goneError()) {
    this.finished = true;
    if (!this.rsignal.aborted) this.rsignal.abort(reason);
  }

  /** Out of the header timeout's list (the header is complete, or the connection is over). */
  private clearHeaderTimer() {
    remove(this);
  }

  /** The netstring is complete: decode it and run the request. */
  private start(block: Uint8Array, rest: Uint8Array) {
    this.clearHeaderTimer();
    this.phase_ = 'running';
    // Decoded straight into the core's CgiVars: no list of pairs in between. Object and
    // array literals are avoided on this path (classes instead): behind a busy server V8's
    // allocation-site feedback for a literal made per request promoted the requests in
    // flight to the old generation (docs/bench/scgi.md).
    const vars = new CgiVars();
    let contentLength: number;
    try {
      contentLength = decodeHeadersInto(block, vars);
    } catch (e) {
      // A second CONTENT_TYPE (the core's rule) is the client's request, not a broken peer.
      this.reject(e, isTsgiError(e) && e.code.startsWith('ERR_CORE_') ? 'warn' : 'error');
      return;
    }
    // Backpressure from here on: nothing more is read until the app asks for body bytes.
    // Without a body there is nothing to hold back (a pause would only be undone) and
    // nothing to read: tsgi.input is empty, whatever follows the `,` is ignored.
    if (contentLength > 0) {
      this.socket.pause();
      this.body = new BodySource(this.socket, contentLength, rest);
    }
    let environ: ReturnType<typeof buildEnviron>;
    try {
      environ = buildEnviron(
        vars,
        new RequestEnvironOptions(this.options, this.body ?? null, this.rsignal, this.sink),
      );
    } catch (e) {
      // 400 (a bad CONTENT_LENGTH, ...) or 413 (maxBodyBytes): nothing was read yet.
      this.body?.discard();
      this.reject(e, 'warn');
      return;
    }
    this.runSettled = false;
    const box = new TransportBox(this);
    runAppThen(this.app, environ, box, runOptionsFor(this.options, this.sink), box);
  }

  /** @internal The run is over (TransportBox.runDone). */
  runDone_(): void {
    this.runSettled = true;
    this.checkDone();
  }

  /** @internal The Transport's sendHead (TransportBox). */
  sendHead_(head: ResponseHead): void {
    this.checkOpen();
    this.wrote = true;
    this.outHead = head;
    this.flushLater();
  }

  /** @internal The Transport's write (TransportBox). */
  write_(chunk: Uint8Array): Promise<void> | undefined {
    this.checkOpen();
    this.queue(chunk);
    if (this.outBytes >= FLUSH_BYTES) this.flush();
    if (!this.needDrain) return;
    return new Promise<void>((resolve, reject) => {
      (this.drainWaiters ??= []).push({ resolve, reject });
    });
  }

  /** @internal The Transport's end (TransportBox). */
  end_(): void {
    this.checkOpen();
    this.finished = true;
    this.closeGracefully();
  }

  /** @internal The Transport's abort (TransportBox). */
  abort_(): void {
    this.finished = true;
    this.flush();
    this.reset();
  }

  /**
   * Gathers response bytes. They leave at the end of the current job (a microtask), or
   * sooner when FLUSH_BYTES pile up, or with the FIN when the response ends first: a
   * response the core produces in one go (an array body: head, chunks, end) is then one
   * write and one shutdown, as a hand-written responder would do it.
   */
  private queue(bytes: Uint8Array) {
    if (this.out0 === undefined) this.out0 = bytes;
    else if (this.out1 === undefined) this.out1 = bytes;
    else (this.outMore ??= []).push(bytes);
    this.outBytes += bytes.length;
    this.flushLater();
  }

  private flushLater() {
    if (this.flushQueued) return;
    this.flushQueued = true;
    flushQueue.push(this);
    if (flushQueue.length === 1) {
      // One job on a resolved promise for every connection that gathered bytes in this
      // job (queueMicrotask would make an AsyncResource per call).
      RESOLVED.then(flushAll);
    }
  }

  /** @internal The end of the job that gathered bytes (flushAll). */
  flushSoon_(): void {
    this.flushQueued = false;
    this.flush();
  }

  /**
   * takeOut: what is gathered, emptied: one piece (the head with a small first chunk is
   * serialized into one Buffer), several in order, or undefined when nothing is.
   */
  private takeOut(): Uint8Array | Uint8Array[] | undefined {
    const head = this.outHead;
    const a = this.out0;
    const b = this.out1;
    const more = this.outMore;
    this.outHead = this.out0 = this.out1 = this.outMore = undefined;
    this.outBytes = 0;
    if (head === undefined) {
      if (b === undefined) return a;
      const all = [a!, b];
      if (more !== undefined) for (const c of more) all.push(c);
      return all;
    }
    if (a === undefined) return serializeCgiHead(head);
    if (b === undefined && a.length <= FLUSH_BYTES) return serializeCgiResponse(head, a);
    const all = [serializeCgiHead(head), a];
    if (b !== undefined) all.push(b);
    if (more !== undefined) for (const c of more) all.push(c);
    return all;
  }

  /** Sends the gathered bytes (several in one writev); notes when the socket wants a drain. */
  private flush() {
    const out = this.takeOut();
    if (out === undefined) return;
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return;
    let ok = true;
    if (!Array.isArray(out)) ok = socket.write(out);
    else {
      socket.cork();
      for (const c of out) ok = socket.write(c);
      socket.uncork();
    }
    if (!ok) this.waitForDrain();
  }

  private waitForDrain() {
    this.needDrain = true;
    if (this.drainListening) return;
    this.drainListening = true;
    this.socket.on('drain', onSocketDrain);
  }

  private checkOpen() {
    if (this.socketClosed || this.socket.destroyed) {
      throw this.rsignal.reason instanceof Error ? this.rsignal.reason : this.goneError();
    }
  }

  /**
   * Ends the response with a FIN, then reads and discards whatever request bytes remain
   * until the front server closes or `lingerMs` passes (lingering close).
   */
  private closeGracefully() {
    this.phase_ = 'closing';
    this.body?.discard();
    // What is still gathered leaves with the FIN: one piece, or small pieces joined
    // (one write instead of a writev), or larger ones corked into one writev.
    const out = this.takeOut();
    const socket = this.socket;
    if (out === undefined || socket.destroyed || socket.writableEnded) socket.end();
    else if (!Array.isArray(out)) socket.end(out);
    else {
      let bytes = 0;
      for (const c of out) bytes += c.length;
      if (bytes <= FLUSH_BYTES) socket.end(Buffer.concat(out, bytes));
      else {
        socket.cork();
        for (const c of out) socket.write(c);
        socket.end();
      }
    }
    socket.resume();
    // Out of the header timeout's list (a reject() during the header phase comes here),
    // into the lingering close's; onClose takes it out.
    remove(this);
    const t = this.options.lingerMs ?? DEFAULT_LINGER_MS;
    if (t > 0) deadlineList(t).add(this);
    else setTimeout(() => this.socket.destroy(), 0);
  }

  /** Ends the connection with a TCP reset where the socket supports it (net.Socket does). */
  private reset() {
    this.phase_ = 'closing';
    const s = this.socket as Duplex & { resetAndDestroy?: () => unknown };
    if (typeof s.resetAndDestroy === 'function' && !s.destroyed) {
      try {
        s.resetAndDestroy();
        return;
      } catch {
        // Not connected any more: a plain destroy below.
      }
    }
    s.destroy();
  }

  /**
   * A malformed request or a request refused before the app ran: log it, answer with a
   * minimal CGI-style error response when nothing was sent yet, and close this
   * connection only.
   */
  private reject(e: unknown, level: 'debug' | 'warn' | 'error') {
    this.clearHeaderTimer();
    this.finished = true;
    if (this.phase_ === 'closing' || this.phase_ === 'closed') return;
    const err = isTsgiError(e) ? e : new TsgiError('ERR_SCGI_INTERNAL', `scgi: ${describe(e)}`);
    this.sink(err.message, level);
    if (this.options.errorResponses === false || this.wrote || this.socket.destroyed) {
      this.phase_ = 'closing';
      this.socket.destroy();
      return;
    }
    // The core's fixed response (SPEC rule 7.1), as every adapter answers an early error.
    const { head, body } = fixedResponse(err.status ?? 400);
    this.wrote = true;
    this.socket.write(Buffer.concat([serializeCgiHead(head), body]));
    this.closeGracefully();
  }
}

/** The socket's link to its connection, for the shared listeners below. */
const kConnection = Symbol('tsgi.scgiConnection');
type LinkedSocket = Duplex & { [kConnection]: ScgiConnection };

function onSocketData(this: LinkedSocket, chunk: Buffer): void {
  this[kConnection].onData_(chunk);
}
function onSocketEnd(this: LinkedSocket): void {
  this[kConnection].onEnd_();
}
function onSocketError(this: LinkedSocket, e: Error): void {
  this[kConnection].onError_(e);
}
function onSocketClose(this: LinkedSocket): void {
  this[kConnection].onClose_();
}
function onSocketDrain(this: LinkedSocket): void {
  this[kConnection].onDrain_();
}

/** Connections with bytes gathered in the current job, flushed at its end (flushAll). */
let flushQueue: ScgiConnection[] = [];
function flushAll(): void {
  const q = flushQueue;
  flushQueue = [];
  for (let i = 0; i < q.length; i++) q[i]!.flushSoon_();
}

/**
 * LiveConnections: a server's open connections, linked through the connections
 * themselves: adding and removing allocate nothing and hash nothing. (A Set that adds and
 * deletes thousands of entries a second rehashes every few deletions, and V8 links each
 * obsolete table to its successor, which kept every connection alive into the old
 * generation; an object keyed by serial number made each add and delete a runtime call
 * into a number dictionary, ~0.5 us of a hello request behind a busy server.)
 */
export class LiveConnections {
  private head: ScgiConnection | undefined = undefined;
  /** LiveConnections.size: how many are in the list. */
  size = 0;

  /** LiveConnections.add: `c` stays in the list until it is done (see `whenDone`). */
  add(c: ScgiConnection): void {
    c.liveList = this;
    c.livePrev = undefined;
    c.liveNext = this.head;
    if (this.head !== undefined) this.head.livePrev = c;
    this.head = c;
    this.size++;
  }

  /** @internal */
  remove(c: ScgiConnection): void {
    if (c.liveList !== this) return;
    if (c.livePrev === undefined) this.head = c.liveNext;
    else c.livePrev.liveNext = c.liveNext;
    if (c.liveNext !== undefined) c.liveNext.livePrev = c.livePrev;
    c.livePrev = c.liveNext = c.liveList = undefined;
    this.size--;
  }

  /** LiveConnections.list: the connections now in the list (a copy: closing one removes it). */
  list(): ScgiConnection[] {
    const all: ScgiConnection[] = [];
    for (let c = this.head; c !== undefined; c = c.liveNext) all.push(c);
    return all;
  }
}

/**
 * TransportBox: the request's Transport over its connection, and the listener runAppThen
 * tells when the run is over (a class: no literal per request).
 */
class TransportBox implements Transport, RunListener {
  constructor(private readonly c: ScgiConnection) {}
  runDone(): void {
    this.c.runDone_();
  }
  sendHead(head: ResponseHead): void {
    this.c.sendHead_(head);
  }
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.c.write_(chunk);
  }
  end(): void {
    this.c.end_();
  }
  abort(): void {
    this.c.abort_();
  }
}

/** runApp's options, made once per connection options object (serveScgi shares one) and sink. */
const runOptionsCache = new WeakMap<ScgiConnectionOptions, RunOptions>();
let lastRunOptions: RunOptions | undefined;
let lastOptions: ScgiConnectionOptions | undefined;
function runOptionsFor(o: ScgiConnectionOptions, log: ErrorSink): RunOptions {
  // The last one first: a server passes the same options to every connection.
  if (o === lastOptions && lastRunOptions!.log === log) return lastRunOptions!;
  let r = runOptionsCache.get(o);
  if (r === undefined || r.log !== log) {
    // CGI-style backends send the HEAD body; the front server strips it (SPEC rule 8.2).
    r = { mapHeadToGet: o.mapHeadToGet, headBody: 'send', log };
    runOptionsCache.set(o, r);
  }
  lastOptions = o;
  lastRunOptions = r;
  return r;
}

/**
 * BodySource: the ByteSource behind `tsgi.input`: exactly CONTENT_LENGTH bytes, starting
 * with the bytes that followed the netstring's `,`. The socket is resumed only while a
 * pull() waits, and paused again as soon as a chunk arrives.
 */
class BodySource implements ByteSource {
  private pending: Buffer | undefined;
  private remaining: number;
  private eof = false;
  private failure: Error | undefined;
  private waiter: { resolve(c: Uint8Array | null): void; reject(e: Error): void } | undefined;
  private discarding = false;

  constructor(
    private readonly socket: Duplex,
    contentLength: number,
    rest: Uint8Array,
  ) {
    this.remaining = contentLength;
    if (rest.length > 0) this.pending = toBuffer(rest);
    if (this.remaining === 0) this.discard();
  }

  pull(): Promise<Uint8Array | null> {
    if (this.remaining === 0) return Promise.resolve(null);
    if (this.pending !== undefined) {
      const c = this.pending;
      this.pending = undefined;
      return Promise.resolve(this.cut(c));
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.eof) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.resume();
    });
  }

  onData(chunk: Buffer) {
    if (this.discarding) return;
    this.socket.pause();
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve(this.cut(chunk));
      return;
    }
    // A chunk that was already on its way when the socket was paused: keep it (at most
    // one socket read).
    this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
  }

  /** The peer half-closed: the body ends here (the core reports a short one). */
  onEnd() {
    this.eof = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(null);
  }

  /** BodySource.open: more body may come (onFailure would record a failure). */
  get open(): boolean {
    return this.remaining !== 0 && !this.eof;
  }

  onFailure(e: Error) {
    if (this.remaining === 0 || this.eof) return;
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(e);
  }

  /** No more body is wanted: drop what is buffered and let the socket flow (bytes are ignored). */
  discard() {
    this.discarding = true;
    this.pending = undefined;
    this.remaining = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(null);
    this.socket.resume();
  }

  /** Never past CONTENT_LENGTH: whatever follows the body is not this request's. */
  private cut(chunk: Buffer): Buffer {
    if (chunk.length < this.remaining) {
      this.remaining -= chunk.length;
      return chunk;
    }
    const c = chunk.subarray(0, this.remaining);
    this.remaining = 0;
    // Body complete: read on and ignore the rest, so a reset or close is seen promptly.
    this.discarding = true;
    this.socket.resume();
    return c;
  }
}

function toBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function describe(e: unknown): string {
  if (isTsgiError(e)) return e.message;
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

/**
 * handleScgiConnection: serves the one request on `socket` (any Duplex: a net.Socket from
 * your own server, a TLS socket, a test pair) and returns the `ScgiConnection`; its `done`
 * resolves when the connection has closed. Open the socket with `allowHalfOpen: true`,
 * so a front server's half-close does not stop the response.
 */
export function handleScgiConnection(
  socket: Duplex,
  app: Application,
  options: ScgiConnectionOptions = {},
): ScgiConnection {
  return new ScgiConnection(socket, app, options);
}
