// One FastCGI transport connection as a state machine: bytes from the web server go in
// (`onData`), records come out through a small `FastcgiIO` interface. No node:net here:
// server.ts adapts a net.Socket to FastcgiIO; tests can drive a connection with anything.
//
// Records are framed and decoded by codec.ts; each request runs through the core
// (`buildEnviron`, then `runApp`), as every tsgi adapter does. Section numbers (S5.1 and so
// on) are the FastCGI 1.0 specification's; see codec.ts.
import { Buffer } from 'node:buffer';
import {
  type Application,
  type ByteSource,
  buildEnviron,
  CgiVars,
  createInput,
  createLogSink,
  type Environ,
  type ErrorSink,
  fixedResponse,
  isDigits,
  isTsgiError,
  type LogLevel,
  RequestEnvironOptions,
  RequestSignal,
  type ResponseHead,
  type RunOptions,
  runApp,
  serializeCgiHead,
  type Transport,
  TsgiError,
} from '@tsgi/core';
import {
  checkParamsLimits,
  decodeBeginRequest,
  decodeNameValuePairs,
  encodeEndRequest,
  encodeGetValuesResult,
  encodeRequestEnd,
  encodeStream,
  encodeStreamParts,
  encodeUnknownType,
  type FastcgiRecord,
  FCGI_ABORT_REQUEST,
  FCGI_AUTHORIZER,
  FCGI_BEGIN_REQUEST,
  FCGI_CANT_MPX_CONN,
  FCGI_DATA,
  FCGI_FILTER,
  FCGI_GET_VALUES,
  FCGI_MAX_CONNS,
  FCGI_MAX_REQS,
  FCGI_MPXS_CONNS,
  FCGI_OVERLOADED,
  FCGI_PARAMS,
  FCGI_RESPONDER,
  FCGI_STDERR,
  FCGI_STDIN,
  FCGI_STDOUT,
  FCGI_UNKNOWN_ROLE,
  ParamsDecoder,
  type ParamsLimits,
  RecordParser,
} from './codec.js';

/**
 * FastcgiIO: the byte pipe under a connection. server.ts implements it over a net.Socket;
 * the connection never touches the socket itself.
 */
export interface FastcgiIO {
  /**
   * FastcgiIO.write: sends bytes: one buffer, or pieces to go out together (a gathered
   * write). Returns false when the caller should wait for `FastcgiConnection.onDrain`.
   */
  write(data: Uint8Array | readonly Uint8Array[]): boolean;
  /**
   * FastcgiIO.close: a graceful close once what was written is sent (FIN). Bytes that
   * still arrive may be discarded; they are not passed to `onData` any more.
   */
  close(): void;
  /** FastcgiIO.destroy: drops the connection now (a malformed stream, a broken response). */
  destroy(): void;
  /** FastcgiIO.pause: stop delivering bytes (input backpressure). */
  pause(): void;
  /** FastcgiIO.resume: deliver bytes again. */
  resume(): void;
}

/** DEFAULT_MAX_CONNECTIONS: the default FCGI_MAX_CONNS (and `serveFastcgi`'s connection cap). */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** DEFAULT_MAX_REQUESTS: the default FCGI_MAX_REQS, the cap on concurrent requests. */
export const DEFAULT_MAX_REQUESTS = 1024;
/** DEFAULT_INPUT_BUFFER_BYTES: unread FCGI_STDIN bytes a multiplexed request may hold before input pauses. */
export const DEFAULT_INPUT_BUFFER_BYTES = 256 * 1024;

const DEFAULT_PARAMS_TIMEOUT_MS = 30_000;
const DEFAULT_ABORT_GRACE_MS = 1_000;
/** Response bytes gathered before they are sent without waiting for the end of the tick. */
const FLUSH_BYTES = 64 * 1024;
const RESOLVED: Promise<void> = Promise.resolve();
/** A finished request's response queue (see Request.release); frozen, never shared by mistake. */
const NO_OUT = Object.freeze([]) as unknown as Uint8Array[];
/** Request.flushTimer while a microtask decides whether an immediate is needed. */
const FLUSH_SOON: unique symbol = Symbol('flush soon');
/** What a Filter may buffer of FCGI_STDIN while its app waits on FCGI_DATA (S6.4 sends STDIN first). */
const FILTER_STDIN_LIMIT = 1024 * 1024;

/**
 * RequestSlots: the count of requests running across every connection of a server, so
 * that FCGI_MAX_REQS is true. A request beyond the limit is refused with FCGI_OVERLOADED
 * (S5.5). A connection made without one gets its own.
 */
export class RequestSlots {
  private active_ = 0;
  constructor(
    /** RequestSlots.limit: the most concurrent requests. */
    readonly limit: number = DEFAULT_MAX_REQUESTS,
  ) {}
  /** RequestSlots.active: requests holding a slot. */
  get active(): number {
    return this.active_;
  }
  /** RequestSlots.take: takes a slot, or returns false when all are taken. */
  take(): boolean {
    if (this.active_ >= this.limit) return false;
    this.active_++;
    return true;
  }
  /** RequestSlots.release: gives a slot back. */
  release(): void {
    if (this.active_ > 0) this.active_--;
  }
}

/** FastcgiConnectionOptions: per-connection settings, shared by `FastcgiConnection` and `serveFastcgi`. */
export interface FastcgiConnectionOptions extends ParamsLimits {
  /**
   * multiplex: accept concurrent requests on one connection (answered FCGI_MPXS_CONNS "1").
   * When false, a second FCGI_BEGIN_REQUEST while one request is active is refused with
   * FCGI_CANT_MPX_CONN (S5.5). Default true.
   */
  multiplex?: boolean;
  /** maxConnections: FCGI_MAX_CONNS (S4.1); `serveFastcgi` enforces it. Default 1024. */
  maxConnections?: number;
  /**
   * maxRequests: FCGI_MAX_REQS (S4.1), the most concurrent requests; more are refused with
   * FCGI_OVERLOADED. Default 1024. Ignored when `slots` is given.
   */
  maxRequests?: number;
  /** slots: a request counter shared by the connections of one server (`serveFastcgi` makes it). */
  slots?: RequestSlots;
  /**
   * inputBufferBytes: unread FCGI_STDIN (or FCGI_DATA) bytes a request may hold before the
   * connection stops reading, on a multiplexing connection. Without multiplexing the
   * connection stops reading as soon as the app is not waiting for input, so a body the app
   * does not read costs at most one socket read. Default 256 KiB.
   */
  inputBufferBytes?: number;
  /**
   * paramsTimeoutMs: time from FCGI_BEGIN_REQUEST to the end of its FCGI_PARAMS stream; past
   * it the request is answered 408. Default 30 s; 0 disables.
   */
  paramsTimeoutMs?: number;
  /**
   * requestTimeoutMs: time from FCGI_BEGIN_REQUEST to FCGI_END_REQUEST. Past it the request's
   * `tsgi.signal` aborts and the connection is closed (a response cut short must not pass
   * for complete). Default 0: off (the web server has its own, nginx `fastcgi_read_timeout`).
   */
  requestTimeoutMs?: number;
  /**
   * abortGraceMs: after FCGI_ABORT_REQUEST, how long the app may take to stop before
   * FCGI_END_REQUEST is sent anyway (S5.4: "responds as soon as possible"). Default 1 s.
   */
  abortGraceMs?: number;
  /**
   * errorsToStderr: `tsgi.errors` goes to the web server as FCGI_STDERR records (S6.1; nginx
   * logs them as "FastCGI sent in stderr"). false: to `errors` instead. Default true.
   */
  errorsToStderr?: boolean;
  /** errors: where the adapter's own reports go (and the core's, as well). Default: stderr, level info. */
  errors?: ErrorSink;
  /** mount: where the app is mounted; see the core's `EnvironOptions.mount` (nginx sends the whole path as SCRIPT_NAME). */
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

type Phase = 'params' | 'running' | 'ended';

const ROLE_NAMES: Record<number, 'responder' | 'authorizer' | 'filter'> = {
  [FCGI_RESPONDER]: 'responder',
  [FCGI_AUTHORIZER]: 'authorizer',
  [FCGI_FILTER]: 'filter',
};

/**
 * FastcgiConnection: serves the requests of one FastCGI transport connection.
 *
 * - FCGI_BEGIN_REQUEST (S5.1) starts a request in one of the three roles; an unknown role
 *   is refused with FCGI_UNKNOWN_ROLE, a second request while one is active without
 *   multiplexing with FCGI_CANT_MPX_CONN, a request past `maxRequests` with FCGI_OVERLOADED.
 * - FCGI_PARAMS (S5.2) is decoded as one stream, within the limits; at its empty record the
 *   environ is built (`buildEnviron`) and the app run (`runApp`). S6.2: the app "must wait
 *   to finish reading FCGI_PARAMS before it begins writing".
 * - FCGI_STDIN is `tsgi.input`'s source; its empty record is the end of input. FCGI_DATA is
 *   a Filter's second input (`tsgi.data`, S6.4). Input is bounded: see `inputBufferBytes`.
 * - FCGI_ABORT_REQUEST (S5.4) fires the request's `tsgi.signal` (the core closes the body),
 *   then FCGI_END_REQUEST is sent.
 * - FCGI_GET_VALUES (S4.1) is answered from the configuration; any record type not handled
 *   here gets FCGI_UNKNOWN_TYPE (S4.2) and the connection goes on. Records for a request ID
 *   that is not active are ignored (S3.3, "Managing Request IDs"); that also drains the
 *   unread FCGI_STDIN of a request already answered.
 * - The response: the CGI head and body as FCGI_STDOUT records, gathered per tick; the last
 *   FCGI_STDOUT bytes, the empty FCGI_STDOUT record and FCGI_END_REQUEST go out in one write
 *   (preceded by the empty FCGI_STDERR record when `tsgi.errors` was used).
 * - FCGI_KEEP_CONN (S5.1): without it the connection is closed after the request's
 *   FCGI_END_REQUEST (S3.5); with it the web server owns the connection.
 * - A response the core aborts (an app error after the head, a Content-Length not met)
 *   closes the connection without FCGI_END_REQUEST, so the web server cannot take a cut
 *   response for a complete one.
 * - A malformed stream (bad version, a bad FCGI_BEGIN_REQUEST body, a record cut short)
 *   closes this connection only, with the TsgiError's message logged.
 */
export class FastcgiConnection {
  /** FastcgiConnection.done: resolves when the connection is closed and every request it ran has finished. */
  readonly done: Promise<void>;
  /**
   * Stream records that span socket chunks come in pieces (views of the chunks), not
   * assembled: an upload is not copied on its way to tsgi.input.
   */
  private readonly parser = new RecordParser({
    streamTypes: [FCGI_PARAMS, FCGI_STDIN, FCGI_DATA],
  });
  private readonly requests = new RequestTable();
  /** Apps still running (runApp not settled), and who waits for none to be. */
  private runs = 0;
  private runsDone: Array<() => void> | undefined;
  private readonly log: ErrorSink;
  private readonly slots: RequestSlots;
  private readonly limits: Required<ParamsLimits>;
  private readonly multiplex: boolean;
  private readonly inputCap: number;
  /** open: reading; ending: io.close() was called; closed: the io is gone. */
  private state: 'open' | 'ending' | 'closed' = 'open';
  private closeWhenIdle = false;
  private shuttingDown = false;
  private paused = false;
  private needDrain = false;
  private drainWaiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
  /** Requests begun in the chunk being handled; see armParamsTimers. */
  private readonly paramsTimerDue: Request[] = [];
  private resolveClosed!: () => void;
  private readonly closedPromise: Promise<void>;
  /** What a Request and its InputSources may call back into. */
  private readonly host: Host = {
    send: (data) => this.send(data),
    report: (text, level) => this.log(text, level),
    stderrOpen: () => this.options.errorsToStderr !== false && this.state === 'open',
    updateFlow: () => this.updateFlow(),
  };

  constructor(
    private readonly io: FastcgiIO,
    private readonly app: Application,
    private readonly options: FastcgiConnectionOptions = {},
  ) {
    this.log = options.errors ?? createLogSink('info');
    this.limits = checkParamsLimits(options);
    this.multiplex = options.multiplex ?? true;
    this.slots = options.slots ?? new RequestSlots(options.maxRequests ?? DEFAULT_MAX_REQUESTS);
    this.inputCap = this.multiplex ? (options.inputBufferBytes ?? DEFAULT_INPUT_BUFFER_BYTES) : 0;
    this.closedPromise = new Promise<void>((r) => {
      this.resolveClosed = r;
    });
    this.done = this.closedPromise.then(() =>
      this.runs === 0
        ? undefined
        : new Promise<void>((r) => {
            (this.runsDone ??= []).push(r);
          }),
    );
  }

  /** FastcgiConnection.activeRequests: requests begun and not yet ended with FCGI_END_REQUEST. */
  get activeRequests(): number {
    return this.requests.size;
  }

  /** FastcgiConnection.idle: no active request and no partial record: closing now loses nothing. */
  get idle(): boolean {
    return this.requests.size === 0 && !this.parser.partial;
  }

  /** FastcgiConnection.closed: true once the io reported the connection gone. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  /** FastcgiConnection.onData: bytes from the web server. */
  onData(chunk: Uint8Array): void {
    if (this.state !== 'open') return;
    let records: FastcgiRecord[];
    try {
      records = this.parser.push(chunk);
    } catch (e) {
      this.malformed(e);
      return;
    }
    for (const r of records) {
      if (this.state !== 'open') return;
      try {
        this.handle(r);
      } catch (e) {
        this.malformed(e);
        return;
      }
    }
    if (this.paramsTimerDue.length > 0) this.armParamsTimers();
  }

  /**
   * Arms the paramsTimeoutMs timer of each request begun in this chunk whose FCGI_PARAMS
   * stream is still incomplete. A web server usually sends BEGIN_REQUEST and all of PARAMS
   * in one write: then no timer is made at all.
   */
  private armParamsTimers() {
    const t = this.options.paramsTimeoutMs ?? DEFAULT_PARAMS_TIMEOUT_MS;
    for (const req of this.paramsTimerDue.splice(0)) {
      if (req.phase !== 'params' || this.requests.get(req.id) !== req) continue;
      req.timer = setTimeout(() => {
        if (req.phase !== 'params') return;
        this.refuse(
          req,
          new TsgiError(
            'ERR_FASTCGI_PARAMS_TIMEOUT',
            `fastcgi: FCGI_PARAMS not complete within ${t} ms (paramsTimeoutMs)`,
            { status: 408 },
          ),
        );
      }, t);
      req.timer.unref?.();
    }
  }

  /** FastcgiConnection.onEnd: the web server closed its side (FIN): no more records will come. */
  onEnd(): void {
    if (this.state !== 'open') return;
    try {
      this.parser.end();
    } catch (e) {
      this.malformed(e, 'warn');
      return;
    }
    // The error is made only when a request is there to see it (a stack trace per close
    // was 2 % of a keep-alive hello-world profile).
    let gone: TsgiError | undefined;
    for (const req of this.requests.values()) {
      gone ??= this.goneError();
      req.stdin?.fail(gone);
      req.data?.fail(gone);
      if (req.phase === 'params') this.completeRequest(req);
    }
    this.closeWhenIdle = true;
    if (this.requests.size === 0) this.closeNow();
  }

  /** FastcgiConnection.onDrain: the io can take more writes. */
  onDrain(): void {
    this.needDrain = false;
    for (const w of this.drainWaiters.splice(0)) w.resolve();
  }

  /**
   * FastcgiConnection.onClose: the io is gone (closed by either side, or reset). Running
   * requests see their `tsgi.signal` abort.
   */
  onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.requests.size > 0 || this.drainWaiters.length > 0) {
      const gone = this.goneError();
      for (const req of this.requests.values()) this.dropRequest(req, gone);
      for (const w of this.drainWaiters.splice(0)) w.reject(gone);
    }
    this.resolveClosed();
  }

  /**
   * FastcgiConnection.shutdown: a graceful stop: new requests are refused with
   * FCGI_OVERLOADED, active ones finish, then the connection closes.
   */
  shutdown(): void {
    this.shuttingDown = true;
    this.closeWhenIdle = true;
    if (this.requests.size === 0 && this.state === 'open') this.closeNow();
  }

  /**
   * FastcgiConnection.destroy: closes the connection now; running requests see their
   * `tsgi.signal` abort with `reason`.
   */
  destroy(reason?: Error): void {
    if (this.state === 'closed') return;
    const r = reason ?? this.goneError();
    for (const req of this.requests.values()) this.dropRequest(req, r);
    this.state = 'ending';
    this.io.destroy();
  }

  // -------------------------------------------------------------------------------------
  // Records in

  private handle(r: FastcgiRecord): void {
    switch (r.type) {
      case FCGI_BEGIN_REQUEST:
        if (r.requestId !== 0) {
          this.begin(r.requestId, r.content);
          return;
        }
        break;
      case FCGI_GET_VALUES:
        // S4.1 defines it on the null request ID; like Go's child.go, answer it on any.
        this.getValues(r.content);
        return;
      case FCGI_PARAMS:
      case FCGI_STDIN:
      case FCGI_DATA:
      case FCGI_ABORT_REQUEST: {
        // S3.3: records of a request ID that is not active are ignored.
        const req = this.requests.get(r.requestId);
        if (req === undefined || r.requestId === 0) return;
        if (r.type === FCGI_PARAMS) this.params(req, r.content);
        else if (r.type === FCGI_STDIN) this.input(req, req.stdin, r.content, 'FCGI_STDIN');
        else if (r.type === FCGI_DATA) this.input(req, req.data, r.content, 'FCGI_DATA');
        else this.abortRequest(req);
        return;
      }
    }
    // S4.2: a record type we do not understand (or do not take from a web server, such as
    // FCGI_STDOUT); Go's child.go answers every such record the same way.
    this.send(encodeUnknownType(r.type));
  }

  private begin(id: number, content: Uint8Array) {
    const b = decodeBeginRequest(content);
    if (this.requests.has(id)) {
      throw new TsgiError(
        'ERR_FASTCGI_DUPLICATE_REQUEST',
        `fastcgi: FCGI_BEGIN_REQUEST for request ${id}, which is already active (S3.3)`,
      );
    }
    // Refusals are FCGI_END_REQUEST records alone (S5.5); the connection goes on.
    let refusal: number | undefined;
    if (!this.multiplex && this.requests.size > 0) refusal = FCGI_CANT_MPX_CONN;
    else if (ROLE_NAMES[b.role] === undefined) refusal = FCGI_UNKNOWN_ROLE;
    else if (this.shuttingDown || !this.slots.take()) refusal = FCGI_OVERLOADED;
    if (refusal !== undefined) {
      this.send(encodeEndRequest(id, 0, refusal));
      if (!b.keepConn && this.requests.size === 0) this.closeNow();
      return;
    }
    const req = new Request(id, b.role, b.keepConn, this.limits, this.host);
    this.requests.set(id, req);
    // The timer is armed at the end of this chunk, if PARAMS is still incomplete then.
    if ((this.options.paramsTimeoutMs ?? DEFAULT_PARAMS_TIMEOUT_MS) > 0) {
      this.paramsTimerDue.push(req);
    }
    const rt = this.options.requestTimeoutMs ?? 0;
    if (rt > 0) {
      req.requestTimer = setTimeout(() => {
        if (req.phase === 'ended') return;
        const e = new TsgiError(
          'ERR_FASTCGI_REQUEST_TIMEOUT',
          `fastcgi: request ${id} not complete within ${rt} ms (requestTimeoutMs); connection closed`,
        );
        this.log(e.message, 'warn');
        this.destroy(e);
      }, rt);
      req.requestTimer.unref?.();
    }
  }

  private params(req: Request, content: Uint8Array) {
    if (req.phase !== 'params') return;
    try {
      if (content.length > 0) {
        // Straight into the core's CgiVars: no list of pairs per record (see ParamsDecoder).
        req.decoder.pushTextInto(content, req.vars!);
        return;
      }
      req.decoder.end();
    } catch (e) {
      // Over a limit, a pair cut short, a second CONTENT_TYPE: the stream is still well
      // framed, so only this request is refused.
      this.refuse(req, e);
      return;
    }
    this.start(req);
  }

  private input(req: Request, source: InputSource | undefined, content: Uint8Array, what: string) {
    if (req.phase === 'params') {
      // S6.1, nearly sequential marshalling: FCGI_PARAMS, then the input streams. Dropping
      // body bytes silently would be worse than refusing the stream.
      throw new TsgiError(
        'ERR_FASTCGI_UNEXPECTED_RECORD',
        `fastcgi: ${what} for request ${req.id} before the end of its FCGI_PARAMS (S6.1)`,
      );
    }
    if (source === undefined) return; // FCGI_DATA for a role without it; FCGI_STDIN for an Authorizer
    if (content.length === 0) source.end();
    else source.push(content);
    this.updateFlow();
  }

  private abortRequest(req: Request) {
    const reason = new TsgiError(
      'ERR_FASTCGI_ABORTED',
      `fastcgi: request ${req.id} aborted by the web server (FCGI_ABORT_REQUEST)`,
    );
    this.log(reason.message, 'debug');
    if (req.phase === 'params') {
      this.send(encodeRequestEnd(req.id));
      this.completeRequest(req);
      return;
    }
    if (req.phase !== 'running' || req.abortedByServer) return;
    req.abortedByServer = true;
    req.stdin?.fail(reason);
    req.data?.fail(reason);
    req.signal.abort(reason);
    // S5.4: END_REQUEST once the app has stopped, or after the grace period if it does not.
    const grace = this.options.abortGraceMs ?? DEFAULT_ABORT_GRACE_MS;
    const timer = setTimeout(() => this.endAborted(req), grace);
    timer.unref?.();
    void req.run?.finally(() => {
      clearTimeout(timer);
      this.endAborted(req);
    });
  }

  private endAborted(req: Request) {
    if (req.phase === 'ended') return;
    // The web server asked: no STDOUT after the abort, just the end of the streams.
    this.send(encodeRequestEnd(req.id, { closeStderr: req.stderrUsed }));
    this.completeRequest(req);
  }

  private getValues(content: Uint8Array) {
    const asked = decodeNameValuePairs(content, this.limits);
    const maxConns = this.options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const maxReqs = this.multiplex ? this.slots.limit : Math.min(this.slots.limit, maxConns);
    const known: Record<string, string> = {
      [FCGI_MAX_CONNS]: String(maxConns),
      [FCGI_MAX_REQS]: String(maxReqs),
      [FCGI_MPXS_CONNS]: this.multiplex ? '1' : '0',
    };
    // S4.1: "If the application doesn't understand a variable name that was included in
    // the query, it omits that name from the response."
    const values: Array<[string, string]> = [];
    for (const [name] of asked) {
      if (Object.hasOwn(known, name)) values.push([name, known[name]!]);
    }
    this.send(encodeGetValuesResult(values));
  }

  // -------------------------------------------------------------------------------------
  // Running a request

  private start(req: Request) {
    if (req.timer !== undefined) {
      clearTimeout(req.timer);
      req.timer = undefined;
    }
    req.phase = 'running';
    // S6.3: an Authorizer gets no request body; S6.4: a Filter gets FCGI_DATA as well.
    if (req.role !== FCGI_AUTHORIZER) req.stdin = new InputSource(this.host);
    if (req.role === FCGI_FILTER) req.data = new InputSource(this.host);
    let environ: Environ;
    try {
      const eo = new RequestEnvironOptions(
        this.options,
        req.stdin ?? null,
        req.signal,
        req.errorSink,
      );
      // S6.3: an Authorizer gets no body, so a CONTENT_LENGTH it was told about is no
      // reason to refuse it.
      if (req.role === FCGI_AUTHORIZER) eo.maxBodyBytes = undefined;
      environ = buildEnviron(req.takeVars(), eo);
    } catch (e) {
      // 400 (a bad or repeated CONTENT_LENGTH) or 413 (maxBodyBytes): nothing was read yet.
      this.refuse(req, e);
      return;
    }
    // The adapter's own keys; the user's `extra` (added by buildEnviron) may have set them.
    const env = environ as unknown as Record<string, unknown>;
    if (!Object.hasOwn(env, 'fastcgi.role')) env['fastcgi.role'] = ROLE_NAMES[req.role];
    if (req.data !== undefined && !Object.hasOwn(env, 'tsgi.data')) {
      env['tsgi.data'] = createInput(
        req.data,
        dataLength(environ.FCGI_DATA_LENGTH as string | undefined),
      );
    }
    req.environ = environ;
    const settled = () => {
      this.releaseSlot(req);
      if (--this.runs > 0) return;
      const waiting = this.runsDone;
      this.runsDone = undefined;
      if (waiting !== undefined) for (const r of waiting) r();
    };
    this.runs++;
    const run: Promise<void> = runApp(
      this.app,
      environ,
      new RequestTransport(this, req),
      new RequestRunOptions(this.options.mapHeadToGet, req.coreSink),
    ).then(settled, (e: unknown) => {
      // runApp never rejects; this is a last resort against a bug.
      this.log(`fastcgi: request ${req.id} failed: ${describe(e)}`, 'error');
      this.destroy();
      settled();
    });
    req.run = run;
  }

  /** @internal The Transport's sendHead (RequestTransport). */
  sendHead_(req: Request, head: ResponseHead): void {
    this.checkWritable(req);
    this.queue(req, serializeCgiHead(head));
  }

  /** @internal The Transport's write (RequestTransport). */
  write_(req: Request, chunk: Uint8Array): Promise<void> | undefined {
    this.checkWritable(req);
    this.queue(req, chunk);
    if (req.outBytes >= FLUSH_BYTES) this.flush(req);
    if (this.needDrain) return this.waitDrain();
    return undefined;
  }

  /** @internal The Transport's end (RequestTransport). */
  end_(req: Request): void {
    this.checkWritable(req);
    this.finish(req);
  }

  /** @internal The Transport's abort (RequestTransport). */
  abort_(req: Request, reason: Error): void {
    if (req.abortedByServer) {
      this.endAborted(req);
      return;
    }
    if (req.phase === 'ended' || this.state !== 'open') return;
    this.log(
      `fastcgi: request ${req.id}: response broken (${describe(reason)}); connection closed`,
      'debug',
    );
    this.breakConnection(req, reason);
  }

  /**
   * A response the core aborted (SPEC rule 10.1: it must not pass for complete). What the
   * app sent before the break still goes out, then the connection is closed with a FIN and
   * no FCGI_END_REQUEST: the web server sees the response cut short (nginx: "upstream
   * prematurely closed FastCGI stdout") instead of a complete one. Other requests on the
   * connection are aborted with it.
   */
  private breakConnection(req: Request, reason: Error) {
    this.flush(req);
    this.dropRequest(req, reason, false);
    for (const other of this.requests.values()) this.dropRequest(other, reason);
    this.closeNow();
  }

  private checkWritable(req: Request) {
    if (req.phase === 'ended' || req.abortedByServer || this.state !== 'open') {
      const r = req.signal.reason;
      throw r instanceof Error ? r : this.goneError();
    }
  }

  /** Adds response bytes; they go out at the end of the tick, or sooner when they pile up. */
  private queue(req: Request, bytes: Uint8Array) {
    req.out.push(bytes);
    req.outBytes += bytes.length;
    if (req.flushTimer === undefined) {
      // setImmediate, not nextTick: the core's steps between write() calls are promise
      // jobs, so a body produced without waiting goes out with its END_REQUEST in one write.
      // The immediate is only set from a microtask, once the current job is over: a body
      // the core sends whole in one job (an array: head, chunks and end at once) has ended
      // by then, and needs no immediate (nor the two calls into C++ that set and clear one).
      req.flushTimer = FLUSH_SOON;
      // A job on a resolved promise: queueMicrotask would make an AsyncResource per call.
      RESOLVED.then(() => {
        if (req.flushTimer !== FLUSH_SOON) return;
        if (req.outBytes === 0 || req.phase === 'ended') {
          req.flushTimer = undefined;
          return;
        }
        req.flushTimer = setImmediate(() => {
          req.flushTimer = undefined;
          this.flush(req);
        });
      });
    }
  }

  /** Stops a pending flush of `req` (its bytes are sent another way). */
  private cancelFlush(req: Request) {
    const t = req.flushTimer;
    if (t === undefined) return;
    if (t !== FLUSH_SOON) clearImmediate(t);
    req.flushTimer = undefined;
  }

  private flush(req: Request) {
    this.cancelFlush(req);
    if (req.outBytes === 0 || req.phase === 'ended' || this.state !== 'open') return;
    const data = req.out.length === 1 ? req.out[0]! : Buffer.concat(req.out, req.outBytes);
    req.out = [];
    req.outBytes = 0;
    this.send(encodeStreamParts(FCGI_STDOUT, req.id, data));
  }

  /** The response is complete: last STDOUT + empty STDOUT + END_REQUEST, one write. */
  private finish(req: Request) {
    this.cancelFlush(req);
    // Partial lines of tsgi.errors go out before the STDERR stream is closed.
    req.environ?.['tsgi.errors'].flush();
    const out = req.out;
    req.out = [];
    req.outBytes = 0;
    this.send(encodeRequestEnd(req.id, { stdout: out, closeStderr: req.stderrUsed }));
    this.completeRequest(req);
  }

  /**
   * Answers a request that cannot run (over a limit, a bad CONTENT_LENGTH, a timeout) with
   * a minimal CGI response and FCGI_END_REQUEST. The connection stays usable.
   */
  private refuse(req: Request, e: unknown) {
    if (req.phase === 'ended') return;
    const err = isTsgiError(e)
      ? e
      : new TsgiError('ERR_FASTCGI_INTERNAL', `fastcgi: ${describe(e)}`);
    this.log(`${err.message} (request ${req.id})`, 'warn');
    // The core's fixed response (SPEC rule 7.1), as every adapter answers an early error.
    const { head, body } = fixedResponse(err.status ?? 400);
    this.send(
      encodeRequestEnd(req.id, {
        stdout: [serializeCgiHead(head), body],
        closeStderr: req.stderrUsed,
      }),
    );
    this.completeRequest(req);
  }

  /** The request ID becomes inactive (S3.3): after its FCGI_END_REQUEST was sent. */
  private completeRequest(req: Request) {
    if (req.phase === 'ended') return;
    req.phase = 'ended';
    if (this.requests.get(req.id) === req) this.requests.delete(req.id);
    this.clearTimers(req);
    // Unread input is dropped; its remaining records are ignored as they arrive (the
    // request ID is inactive), so the connection is drained for its next request.
    req.stdin?.discard();
    req.data?.discard();
    req.release();
    if (req.run === undefined) this.releaseSlot(req);
    if (!req.keepConn) this.closeWhenIdle = true;
    if (this.closeWhenIdle && this.requests.size === 0) this.closeNow();
    else this.updateFlow();
  }

  /** The connection is going under a request: end it without any record. */
  private dropRequest(req: Request, reason: Error, abortSignal = true) {
    if (req.phase === 'ended') return;
    req.phase = 'ended';
    this.requests.delete(req.id);
    this.clearTimers(req);
    this.cancelFlush(req);
    req.stdin?.fail(reason);
    req.data?.fail(reason);
    if (abortSignal && !req.signal.aborted) req.signal.abort(reason);
    req.release();
    if (req.run === undefined) this.releaseSlot(req);
  }

  private clearTimers(req: Request) {
    if (req.timer !== undefined) clearTimeout(req.timer);
    if (req.requestTimer !== undefined) clearTimeout(req.requestTimer);
    req.timer = undefined;
    req.requestTimer = undefined;
  }

  private releaseSlot(req: Request) {
    if (!req.slotHeld) return;
    req.slotHeld = false;
    this.slots.release();
  }

  // -------------------------------------------------------------------------------------
  // Bytes out, flow control

  /** Writes records, noting when the io wants a drain. */
  private send(data: Uint8Array | readonly Uint8Array[]): void {
    if (this.state !== 'open') return;
    if (!this.io.write(data)) this.needDrain = true;
  }

  private waitDrain(): Promise<void> {
    if (!this.needDrain) return Promise.resolve();
    if (this.state === 'closed') return Promise.reject(this.goneError());
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /**
   * Pauses the io while some request holds more unread input than allowed, and resumes it
   * when none does.
   */
  private updateFlow(): void {
    if (this.state !== 'open') return;
    let block = false;
    for (const req of this.requests.values()) {
      if (req.phase === 'running' && this.blocks(req)) {
        block = true;
        break;
      }
    }
    if (block === this.paused) return;
    this.paused = block;
    if (block) this.io.pause();
    else this.io.resume();
  }

  /**
   * Whether `req` holds more unread input than allowed. A stream that has ended never
   * blocks: its buffer cannot grow any more, and the records after it (FCGI_DATA, other
   * requests, FCGI_ABORT_REQUEST) must still be read.
   */
  private blocks(req: Request): boolean {
    const cap = this.inputCap;
    const { stdin, data } = req;
    if (data !== undefined && !data.ended && data.buffered > cap) return true;
    if (stdin === undefined || stdin.ended || stdin.buffered <= cap) return false;
    if (data?.waiting) {
      // A Filter whose app reads FCGI_DATA first: STDIN must be read past to reach DATA
      // (S6.4 sends STDIN first). Allow that up to a bound, then fail the DATA read.
      const limit = Math.max(cap, FILTER_STDIN_LIMIT);
      if (stdin.buffered <= limit) return false;
      data.fail(
        new TsgiError(
          'ERR_FASTCGI_FILTER_ORDER',
          `fastcgi: request ${req.id} read tsgi.data while more than ${limit} bytes of tsgi.input were unread; read tsgi.input first (S6.4)`,
        ),
      );
    }
    return true;
  }

  private closeNow() {
    if (this.state !== 'open') return;
    this.state = 'ending';
    this.io.close();
  }

  private malformed(e: unknown, level: LogLevel = 'error') {
    const err = isTsgiError(e)
      ? e
      : new TsgiError('ERR_FASTCGI_INTERNAL', `fastcgi: ${describe(e)}`);
    this.log(err.message, level);
    this.destroy(err);
  }

  private goneError(): TsgiError {
    return new TsgiError(
      'ERR_FASTCGI_CONNECTION_CLOSED',
      'fastcgi: the web server closed the connection before the response was complete',
    );
  }
}

/**
 * RequestTable: a connection's active requests by ID (the subset of Map the connection
 * uses). Not a Map: a keep-conn connection lives for hours and adds and deletes a request
 * thousands of times a second, and a Map rehashes every few deletions, with V8 linking each
 * obsolete table to its successor (for iterators that may still be on it). Once one table
 * has reached the old generation, that link keeps the next, young one alive through a
 * scavenge, and with it the requests it holds; so every request's objects (its params,
 * environ, response) got promoted and left for the full GC (measured behind nginx: 3.5 KB
 * per request promoted, garbage collection the largest difference in CPU per request from
 * node:http). The one request at a time that nginx sends lives in a field; concurrent ones
 * (multiplexing) in an object keyed by ID, whose elements are not chained.
 */
class RequestTable {
  private oneId = -1;
  private one: Request | undefined;
  private more: Record<number, Request> | undefined;
  private moreCount = 0;
  /** RequestTable.size: the number of requests. */
  size = 0;

  get(id: number): Request | undefined {
    if (id === this.oneId) return this.one;
    return this.more?.[id];
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds `req` under `id` (which must not be there). */
  set(id: number, req: Request): void {
    if (this.one === undefined) {
      this.oneId = id;
      this.one = req;
    } else {
      this.more ??= Object.create(null) as Record<number, Request>;
      this.more[id] = req;
      this.moreCount++;
    }
    this.size++;
  }

  delete(id: number): void {
    if (id === this.oneId) {
      this.oneId = -1;
      this.one = undefined;
      this.size--;
      return;
    }
    const more = this.more;
    if (more === undefined || more[id] === undefined) return;
    delete more[id];
    this.size--;
    if (--this.moreCount === 0) this.more = undefined;
  }

  /** The requests, as an array (a snapshot: the table may change while it is walked). */
  values(): Request[] {
    const out: Request[] = [];
    if (this.one !== undefined) out.push(this.one);
    const more = this.more;
    if (more !== undefined) for (const id in more) out.push(more[id as unknown as number]!);
    return out;
  }
}

/** The part of a connection a request and its inputs call back into. */
interface Host {
  send(data: Uint8Array | readonly Uint8Array[]): void;
  report(text: string, level: LogLevel): void;
  /** Whether tsgi.errors may go out as FCGI_STDERR now. */
  stderrOpen(): boolean;
  updateFlow(): void;
}

/** One request on a connection, from FCGI_BEGIN_REQUEST to FCGI_END_REQUEST. */
class Request {
  phase: Phase = 'params';
  readonly decoder: ParamsDecoder;
  /** The params as they are decoded; handed to buildEnviron once (takeVars). */
  vars: CgiVars | undefined = new CgiVars();
  /** Behind `tsgi.signal`: no AbortSignal is made unless the app reads the key. */
  readonly signal = new RequestSignal();
  stdin: InputSource | undefined;
  data: InputSource | undefined;
  environ: Environ | undefined;
  run: Promise<unknown> | undefined;
  out: Uint8Array[] = [];
  outBytes = 0;
  /** The pending flush: FLUSH_SOON (a microtask will decide), an immediate, or none. */
  flushTimer: NodeJS.Immediate | typeof FLUSH_SOON | undefined;
  timer: NodeJS.Timeout | undefined;
  requestTimer: NodeJS.Timeout | undefined;
  stderrUsed = false;
  abortedByServer = false;
  slotHeld = true;

  constructor(
    readonly id: number,
    readonly role: number,
    readonly keepConn: boolean,
    limits: Required<ParamsLimits>,
    private readonly conn: Host,
  ) {
    this.decoder = new ParamsDecoder(limits);
  }

  /**
   * Request.release: drops what the request no longer needs once it has ended: the environ
   * (and through it the params, the input and the app's objects) and the decoder. A
   * finished request can outlive its response in the young generation (a scavenge may find
   * it referenced from old garbage until the next full GC); what it holds then would be
   * copied and promoted with it.
   */
  release(): void {
    this.environ = undefined;
    this.vars = undefined;
    this.out = NO_OUT;
  }

  /** Request.takeVars: the decoded params, for buildEnviron (once). */
  takeVars(): CgiVars {
    const v = this.vars!;
    this.vars = undefined;
    return v;
  }

  /** tsgi.errors: FCGI_STDERR records while the request is active (S6.1), else the log. */
  readonly errorSink: ErrorSink = (text, level) => {
    if (level === 'debug' || this.phase === 'ended' || !this.conn.stderrOpen()) {
      this.conn.report(text, level);
      return;
    }
    this.stderrUsed = true;
    this.conn.send(encodeStream(FCGI_STDERR, this.id, Buffer.from(text, 'utf8')));
  };

  /** The core's own reports: the adapter's log, and the web server's error log as well. */
  readonly coreSink: ErrorSink = (text, level) => {
    this.conn.report(text, level);
    if (level !== 'debug' && this.phase !== 'ended' && this.conn.stderrOpen()) {
      this.stderrUsed = true;
      const line = text.endsWith('\n') ? text : `${text}\n`;
      this.conn.send(encodeStream(FCGI_STDERR, this.id, Buffer.from(line, 'utf8')));
    }
  };
}

/**
 * InputSource: the ByteSource behind `tsgi.input` (FCGI_STDIN) or `tsgi.data` (FCGI_DATA).
 * Record contents are queued as they arrive (views of the socket's chunks, no copy); the
 * connection pauses its input while the queue is over its cap (see `updateFlow`).
 */
class InputSource implements ByteSource {
  private chunks: Uint8Array[] = [];
  buffered = 0;
  ended = false;
  private failure: Error | undefined;
  private discarding = false;
  private waiter: { resolve(c: Uint8Array | null): void; reject(e: Error): void } | undefined;

  constructor(private readonly conn: Host) {}

  /** A pull() is waiting for bytes. */
  get waiting(): boolean {
    return this.waiter !== undefined;
  }

  pull(): Promise<Uint8Array | null> {
    if (this.chunks.length > 0) {
      const c = this.chunks.shift()!;
      this.buffered -= c.length;
      this.conn.updateFlow();
      return Promise.resolve(c);
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended || this.discarding) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.conn.updateFlow();
    });
  }

  push(content: Uint8Array) {
    if (this.ended || this.discarding || this.failure !== undefined) return;
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve(content);
      return;
    }
    this.chunks.push(content);
    this.buffered += content.length;
  }

  /** The stream's empty record. */
  end() {
    if (this.ended) return;
    this.ended = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(null);
  }

  fail(e: Error) {
    if (this.ended && this.chunks.length === 0) return;
    if (this.discarding) return;
    this.failure ??= e;
    this.chunks = [];
    this.buffered = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(e);
  }

  /** The request ended: drop what is queued and ignore the rest. */
  discard() {
    this.discarding = true;
    this.chunks = [];
    this.buffered = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(null);
  }
}

/** FCGI_DATA_LENGTH (S6.4) as a number, or undefined when absent or not digits. */
function dataLength(v: string | undefined): number | undefined {
  return v !== undefined && isDigits(v) ? Number(v) : undefined;
}

/** RequestTransport: a request's Transport (a class: no object literal per request; see CgiVars in the core). */
class RequestTransport implements Transport {
  constructor(
    private readonly c: FastcgiConnection,
    private readonly req: Request,
  ) {}
  sendHead(head: ResponseHead): void {
    this.c.sendHead_(this.req, head);
  }
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.c.write_(this.req, chunk);
  }
  end(): void {
    this.c.end_(this.req);
  }
  abort(reason: Error): void {
    this.c.abort_(this.req, reason);
  }
}

/** RequestRunOptions: runApp's options for one request (a class, as RequestTransport). */
class RequestRunOptions implements RunOptions {
  // FastCGI responders send the HEAD body; the web server drops it (SPEC rule 8.2).
  readonly headBody = 'send' as const;
  constructor(
    readonly mapHeadToGet: RunOptions['mapHeadToGet'],
    readonly log: ErrorSink,
  ) {}
}

function describe(e: unknown): string {
  if (isTsgiError(e)) return e.message;
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}
