import { Buffer } from 'node:buffer';
import { TsgiError } from './errors.js';
import { createErrorStream, defaultSink } from './errorstream.js';
import { fileWrapper } from './filewrapper.js';
import { createInput } from './input.js';
import {
  isDigits,
  KNOWN_CGI_NAMES,
  percentDecodeBytes,
  percentEncodePath,
  toLatin1String,
} from './latin1.js';
import { adoptRequestVars } from './request.js';
import type { RequestSignal } from './signal.js';
import type { ByteSource, Environ, ErrorSink } from './types.js';

/**
 * CgiParams: CGI meta-variables as an adapter received them: pairs in wire order
 * (repeats possible, as lighttpd sends them) or a plain record. Values are bytes or
 * latin-1 strings (one code point per byte).
 */
export type CgiParams =
  | CgiVars
  | Iterable<readonly [string, Uint8Array | string]>
  | Readonly<Record<string, Uint8Array | string | undefined>>;

/** EnvironOptions: what an adapter knows that the CGI variables do not carry. */
export interface EnvironOptions {
  /** Request body bytes. Reads stop at CONTENT_LENGTH; with none, at the end of this source. */
  input?: ByteSource | null;
  /** Where `tsgi.errors` and the core's own reports go. Default: process.stderr. */
  errors?: ErrorSink;
  /**
   * Fires when the client or the front server abandons the request. A RequestSignal (what
   * the adapters pass) makes `tsgi.signal` lazy: its AbortSignal is only created when the
   * application reads the key; `runApp` listens without creating it.
   */
  signal?: AbortSignal | RequestSignal;
  /** Overrides the scheme derived from HTTPS / REQUEST_SCHEME. */
  urlScheme?: 'http' | 'https';
  multithread?: boolean;
  multiprocess?: boolean;
  runOnce?: boolean;
  /**
   * Encoding tried first for SCRIPT_NAME, PATH_INFO and QUERY_STRING (roadmap seed,
   * Definition #4 item 9). Any TextDecoder label; default `utf-8`. ISO-8859-1 is the fallback.
   */
  uriEncoding?: string;
  /**
   * Where the application is mounted. When set, SCRIPT_NAME and PATH_INFO are recomputed
   * from the decoded request path, because nginx (FastCGI: whole path in SCRIPT_NAME; SCGI:
   * neither) and Apache mod_proxy_fcgi/scgi (whole path in SCRIPT_NAME) get the split
   * wrong (research/real-servers.md, "CGI variables").
   */
  mount?: string;
  /** Largest CONTENT_LENGTH accepted; larger is a 413 before anything is read. */
  maxBodyBytes?: number;
  /**
   * What to do with an HTTP_* variable that arrives more than once (SPEC rule 1.5).
   * `join`: join the values (", ", Cookie "; "), as the header was repeated by the client.
   * `drop`: remove it and log a warning, as one of them may be a look-alike (`X_Foo` for
   * `X-Foo`). `auto` (default): `join` when SERVER_SOFTWARE says nginx or Apache, which
   * never map an underscore header onto a dash header (nginx < 1.23 passes a repeated
   * header as repeated params; Apache and lighttpd join repeats themselves), `drop`
   * otherwise (lighttpd passes `X_Foo` and `X-Foo` as two HTTP_X_FOO: research/real-servers.md).
   */
  duplicateHeaders?: 'auto' | 'join' | 'drop';
  /** Extra environ keys an adapter adds (e.g. `tsgi.data` for FastCGI Filter). */
  extra?: Record<string, unknown>;
}

/** EnvironSettings: the part of EnvironOptions a long-running adapter has once per server. */
export type EnvironSettings = Pick<
  EnvironOptions,
  | 'mount'
  | 'uriEncoding'
  | 'maxBodyBytes'
  | 'urlScheme'
  | 'multiprocess'
  | 'duplicateHeaders'
  | 'extra'
>;

/**
 * RequestEnvironOptions: buildEnviron's options for one request of a long-running adapter
 * (FastCGI, SCGI): the server's settings, and the request's body source, signal and error
 * sink; never multithreaded, never run once. A class rather than an object literal made per
 * request (see CgiVars). `maxBodyBytes` may be changed after construction (a FastCGI
 * Authorizer gets no body, so it has no limit).
 */
export class RequestEnvironOptions implements EnvironOptions {
  readonly mount: string | undefined;
  readonly uriEncoding: string | undefined;
  maxBodyBytes: number | undefined;
  readonly urlScheme: 'http' | 'https' | undefined;
  readonly multithread = false;
  readonly multiprocess: boolean;
  readonly runOnce = false;
  readonly duplicateHeaders: EnvironOptions['duplicateHeaders'];
  readonly extra: Record<string, unknown> | undefined;

  constructor(
    settings: EnvironSettings,
    readonly input: ByteSource | null,
    readonly signal: AbortSignal | RequestSignal | undefined,
    readonly errors: ErrorSink,
  ) {
    this.mount = settings.mount;
    this.uriEncoding = settings.uriEncoding;
    this.maxBodyBytes = settings.maxBodyBytes;
    this.urlScheme = settings.urlScheme;
    this.multiprocess = settings.multiprocess ?? false;
    this.duplicateHeaders = settings.duplicateHeaders;
    this.extra = settings.extra;
  }
}

/**
 * PlainRecord: makes the environ. `new PlainRecord()` is a plain object (its prototype is
 * Object.prototype, its constructor Object) whose properties live in the object itself,
 * room for 32 of them, fixed when this module loads (below). Why it matters: V8 keeps an
 * object that gets its properties by computed keys (every wire variable: `vars[name] = v`)
 * in fast mode only while the properties stored outside the object number at most
 * max(12, its in-object room); one more turns it into a dictionary-mode object, copying
 * every property, on every request. A `{}` has room for 4, and an empty constructor's
 * objects for about 12: an environ of 32 properties (lighttpd's 19 variables for a bare
 * GET) went to dictionary mode on every request, ~6 us behind a busy server (perf; docs/
 * bench/scgi.md), and any browser's request with a dozen headers would. Nor does it have
 * a literal's allocation site (see CgiVars).
 */
function PlainRecord(this: Record<string, unknown>, sizing?: true): void {
  // Never runs (`sizing` is never passed; a parameter, so that no bundler can drop the
  // block): V8 sizes a constructor's objects by the `this.x =` assignments its body
  // contains (the parser counts them), plus 8.
  if (sizing) {
    this.a = this.b = this.c = this.d = this.e = this.f = this.g = this.h = undefined;
    this.i = this.j = this.k = this.l = this.m = this.n = this.o = this.p = undefined;
    this.q = this.r = this.s = this.t = this.u = this.v = this.w = this.x = undefined;
  }
}
PlainRecord.prototype = Object.prototype;
// V8 settles the in-object room of a constructor's objects after its first seven
// ("slack tracking"), at the most any of them used: seven full ones now, at load, so a
// few small first requests (health checks) cannot shrink it.
for (let i = 0; i < 8; i++) {
  const r = new (PlainRecord as unknown as new () => Record<string, string>)();
  for (let j = 0; j < 32; j++) r[`_${j}`] = '';
}

/**
 * buildEnviron: the one pure function that turns CGI meta-variables into an environ.
 * Every adapter calls it. Values are decoded as latin-1, byte for byte reversible
 * (roadmap seed, Definition #4 item 3); SCRIPT_NAME, PATH_INFO and QUERY_STRING are
 * decoded with `uriEncoding` and, if any of the three fails, all three as ISO-8859-1,
 * recorded in `tsgi.uri_encoding` (item 9). REQUEST_URI and RAW_URI are always present.
 *
 * Duplicate names follow one policy (SPEC rule 1.5), `duplicateHeaders`: a repeated
 * HTTP_* variable is joined (", ", Cookie "; ") when it can only be a header the client
 * repeated, and removed entirely with a warning when it may be a look-alike: lighttpd maps
 * both `X-Foo` and `X_Foo` to HTTP_X_FOO, leaving no way to tell the real one from the
 * spoof. A repeated CONTENT_LENGTH or CONTENT_TYPE is a 400 error; other repeats keep the
 * first.
 *
 * Throws TsgiError with `status` 400 (bad CONTENT_LENGTH) or 413 (over maxBodyBytes).
 */
export function buildEnviron(params: CgiParams, options: EnvironOptions = {}): Environ {
  const sink = options.errors ?? defaultSink;
  // The record requestToCgi just made, passed on unmodified: its names are valid and
  // unique by construction, so it becomes the environ as it is, without a copy.
  let vars = adoptRequestVars(params);
  let hcl: string | undefined;
  // Whether `tsgi.signal` is already the lazy accessor (a CgiVars record: lazySignalRecord).
  let lazy = false;
  if (vars === undefined) {
    lazy = true;
    let st: CgiVars;
    if (params instanceof CgiVars) {
      st = params;
    } else {
      st = new CgiVars();
      if (Symbol.iterator in params) {
        for (const [k, v] of params as Iterable<readonly [string, Uint8Array | string]>) {
          st.add(k, v);
        }
      } else {
        const rec = params as Record<string, Uint8Array | string | undefined>;
        for (const k in rec) if (Object.hasOwn(rec, k)) st.add(k, rec[k]);
      }
    }
    vars = st.take();
    if (st.repeated !== undefined) {
      for (const name of st.repeated) {
        sink(`core: CGI variable ${name} given twice; the first value is kept`, 'warn');
      }
    }
    if (st.dupHttp !== undefined) joinOrDrop(vars, st.dupHttp, options, sink);
    hcl = st.httpCl;
  }

  // CONTENT_LENGTH: nginx sends "" on GET; treat empty as absent (real-servers.md).
  let contentLength: number | undefined;
  const cl = vars.CONTENT_LENGTH;
  if (cl !== undefined) {
    if (cl === '') {
      delete vars.CONTENT_LENGTH;
    } else if (!isDigits(cl)) {
      throw new TsgiError(
        'ERR_CORE_BAD_CONTENT_LENGTH',
        `core: CONTENT_LENGTH ${JSON.stringify(cl)} is not a non-negative integer`,
        { status: 400 },
      );
    } else {
      contentLength = Number(cl);
    }
  }
  // Content-Type and Content-Length never appear as HTTP_* (RFC 3875 section 4.1.18;
  // nginx and lighttpd pass them anyway). A disagreement is worth a warning: nginx 1.22
  // with scgi_request_buffering off sends a wrong CONTENT_LENGTH (real-servers.md).
  // (The copying path above never stores them; an adopted record is checked here.)
  if (vars.HTTP_CONTENT_LENGTH !== undefined) {
    hcl ??= vars.HTTP_CONTENT_LENGTH;
    delete vars.HTTP_CONTENT_LENGTH;
  }
  if (hcl !== undefined && contentLength !== undefined && hcl !== cl) {
    sink(
      `core: CONTENT_LENGTH ${cl} disagrees with the Content-Length header ${hcl}; trusting CONTENT_LENGTH (nginx scgi_request_buffering off bug?)`,
      'warn',
    );
  }
  if (vars.HTTP_CONTENT_TYPE !== undefined) delete vars.HTTP_CONTENT_TYPE;
  if (vars.CONTENT_TYPE === '') delete vars.CONTENT_TYPE;

  if (
    contentLength !== undefined &&
    options.maxBodyBytes !== undefined &&
    contentLength > options.maxBodyBytes
  ) {
    throw new TsgiError(
      'ERR_CORE_BODY_TOO_LARGE',
      `core: CONTENT_LENGTH ${contentLength} exceeds the limit of ${options.maxBodyBytes} bytes (maxBodyBytes)`,
      { status: 413 },
    );
  }

  vars.REQUEST_METHOD ??= 'GET';
  vars.SERVER_PROTOCOL ??= 'HTTP/1.0';
  if (vars.SERVER_NAME === undefined) {
    const host = vars.HTTP_HOST ?? 'localhost';
    const m = /^(\[[^\]]*\]|[^:]*)(?::([0-9]+))?$/.exec(host);
    vars.SERVER_NAME = m?.[1] || 'localhost';
    vars.SERVER_PORT ??= m?.[2] ?? '80';
  }
  vars.SERVER_PORT ??= '80';

  // Paths are handled as latin-1 strings: one code unit per byte, so string operations
  // are byte operations, and no Buffer is made unless a value has non-ASCII bytes.
  const rawQuery = vars.QUERY_STRING ?? queryFromUri(vars.REQUEST_URI);
  const [rawScript, rawPathInfo] = splitPath(vars, options.mount);

  // REQUEST_URI: raw, as the client sent it; rebuilt when a server did not pass it.
  if (vars.REQUEST_URI === undefined) {
    vars.REQUEST_URI =
      percentEncodePath(Buffer.from(rawScript + rawPathInfo, 'latin1')) +
      (rawQuery === '' ? '' : `?${rawQuery}`);
  }
  if (vars.RAW_URI === undefined) vars.RAW_URI = vars.REQUEST_URI;

  // Definition #4 item 9: one encoding for all three, with the ISO-8859-1 fallback.
  const wanted = options.uriEncoding ?? 'utf-8';
  let encoding = 'iso-8859-1';
  let script = rawScript;
  let pathInfo = rawPathInfo;
  let query = rawQuery;
  if (wanted === 'utf-8' && isAscii(rawScript) && isAscii(rawPathInfo) && isAscii(rawQuery)) {
    // ASCII decodes to itself in UTF-8: the common case needs no decoder.
    encoding = 'utf-8';
  } else {
    // WHATWG maps every ISO-8859-1 label to windows-1252, which is not byte-preserving
    // (0x80 -> U+20AC); asked for ISO-8859-1, use the real thing (SPEC rule 1.2).
    const dec = LATIN1_LABELS.has(wanted.trim().toLowerCase()) ? undefined : decoderFor(wanted);
    if (dec !== undefined) {
      try {
        script = dec.decode(Buffer.from(rawScript, 'latin1'));
        pathInfo = dec.decode(Buffer.from(rawPathInfo, 'latin1'));
        query = dec.decode(Buffer.from(rawQuery, 'latin1'));
        encoding = dec.encoding;
      } catch {
        script = rawScript;
        pathInfo = rawPathInfo;
        query = rawQuery;
        encoding = 'iso-8859-1';
      }
    }
  }
  vars.SCRIPT_NAME = script;
  vars.PATH_INFO = pathInfo;
  vars.QUERY_STRING = query;

  const https = vars.HTTPS?.toLowerCase();
  const scheme =
    options.urlScheme ??
    (https === 'on' || https === '1' || https === 'yes'
      ? 'https'
      : vars.REQUEST_SCHEME === 'https'
        ? 'https'
        : 'http');

  const environ = vars as unknown as Environ;
  environ['tsgi.version'] = VERSION;
  environ['tsgi.url_scheme'] = scheme;
  environ['tsgi.input'] = createInput(options.input ?? null, contentLength);
  environ['tsgi.errors'] = createErrorStream(sink);
  environ['tsgi.multithread'] = options.multithread ?? false;
  environ['tsgi.multiprocess'] = options.multiprocess ?? false;
  environ['tsgi.run_once'] = options.runOnce ?? false;
  environ['tsgi.input_terminated'] = true;
  environ['tsgi.uri_encoding'] = encoding;
  environ['tsgi.file_wrapper'] = fileWrapper;
  const signal = options.signal;
  if (signal === undefined || signal === null) {
    environ['tsgi.signal'] = NEVER_SIGNAL;
  } else if (signal instanceof AbortSignal) {
    environ['tsgi.signal'] = signal;
  } else {
    // A RequestSignal: the AbortSignal is made when the key is first read (LAZY_SIGNAL).
    // The link is a plain store under a symbol (Object.keys, for-in and JSON skip it; a
    // copy made with spread or Object.assign carries it along, still consistent); only
    // the accessor needs defineProperty, a runtime call that measured ~2 % of an SCGI
    // hello request's CPU each (docs/bench/scgi.md).
    (environ as unknown as Record<symbol, RequestSignal>)[kRequestSignal] = signal;
    if (!lazy) Object.defineProperty(environ, 'tsgi.signal', LAZY_SIGNAL);
  }
  if (options.extra) Object.assign(environ, options.extra);
  return environ;
}

/**
 * kRequestSignal: the environ's link to its RequestSignal, for `runApp` (which must not read
 * `tsgi.signal`, as that creates the AbortSignal) and the lazy `tsgi.signal` getter. A
 * registered symbol, so that the bundles of `@tsgi/core` and `@tsgi/core/testing` agree.
 */
export const kRequestSignal: unique symbol = Symbol.for('tsgi.requestSignal') as never;

/**
 * requestSignalOf: the RequestSignal behind `environ['tsgi.signal']` when the key is still
 * the lazy one buildEnviron made; undefined when the adapter gave an AbortSignal or none, or
 * when something replaced the key since.
 */
export function requestSignalOf(environ: Environ): RequestSignal | undefined {
  return (environ as unknown as Record<symbol, RequestSignal | undefined>)[kRequestSignal];
}

/**
 * LAZY_SIGNAL: `tsgi.signal` as an own enumerable accessor: reading it creates the
 * AbortSignal (RequestSignal.signal); assigning replaces it with a plain data property and
 * drops the link, so the core then follows the new value.
 */
const LAZY_SIGNAL: PropertyDescriptor = {
  get(this: Record<symbol, RequestSignal | undefined>): AbortSignal {
    return this[kRequestSignal]?.signal ?? NEVER_SIGNAL;
  },
  set(this: Record<string | symbol, unknown>, value: unknown) {
    Object.defineProperty(this, 'tsgi.signal', {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
    this[kRequestSignal] = undefined;
  },
  enumerable: true,
  configurable: true,
};

/**
 * lazySignalRecord: a CgiVars record, with `tsgi.signal` already the lazy accessor. Defined
 * on the empty object, where it is the first transition of every record (found at once),
 * rather than on the finished environ of 30-odd properties: behind a busy server that
 * defineProperty, a C++ runtime call, measured 1.5 us per request (perf; docs/bench/scgi.md).
 * A request whose adapter gives an AbortSignal or none gets a data property instead (the
 * setter). Until buildEnviron links a RequestSignal, reading it gives NEVER_SIGNAL.
 */
function lazySignalRecord(): Record<string, string> {
  const r = new (PlainRecord as unknown as new () => Record<string, string>)();
  Object.defineProperty(r, 'tsgi.signal', LAZY_SIGNAL);
  return r;
}

/**
 * PLAIN_KNOWN: 1 for the known names (KNOWN_CGI_NAMES) that CgiVars.add stores as they come,
 * 0 for the content variables it settles itself (CONTENT_LENGTH, CONTENT_TYPE and their
 * HTTP_ twins).
 */
const PLAIN_KNOWN = Uint8Array.from(KNOWN_CGI_NAMES, (n) =>
  n === 'CONTENT_LENGTH' ||
  n === 'CONTENT_TYPE' ||
  n === 'HTTP_CONTENT_LENGTH' ||
  n === 'HTTP_CONTENT_TYPE'
    ? 0
    : 1,
);

/**
 * CgiVars: CGI variables collected one at a time, checked as they come, for
 * `buildEnviron(vars, options)`, which takes them over without a copy. An adapter's codec
 * adds each name and value as it decodes them (the SCGI and FastCGI decoders do), instead
 * of building a list of pairs first: a `[name, value]` array per variable was a third of
 * the garbage of a small request. The same rules as pairs given to buildEnviron: names
 * outside `[A-Za-z_][A-Za-z0-9_.-]*` and HTTP_ names outside `HTTP_[A-Z0-9_]+` are dropped;
 * CONTENT_LENGTH or CONTENT_TYPE twice is a 400 (thrown by `add`); an empty one counts as
 * absent; HTTP_CONTENT_LENGTH and HTTP_CONTENT_TYPE never reach the application; a
 * repeated HTTP_* variable follows the duplicate policy (SPEC rule 1.5) in buildEnviron;
 * other repeats keep the first value, with a warning. Use one CgiVars for one buildEnviron.
 */
export class CgiVars {
  private vars: Record<string, string> | undefined = lazySignalRecord();
  /** @internal Repeated HTTP_* variables, each with all its values in order. */
  dupHttp: Map<string, string[]> | undefined = undefined;
  /** @internal Names other than HTTP_* given more than once (warned about by buildEnviron). */
  repeated: string[] | undefined = undefined;
  /** @internal The first HTTP_CONTENT_LENGTH, kept aside for the disagreement warning (SPEC 1.6). */
  httpCl: string | undefined = undefined;
  private cl = false;
  private ct = false;
  /**
   * The known names (KNOWN_CGI_NAMES indexes) added so far, as two bit sets: a repeat of
   * one is found without a property lookup. Only while every name came with its index
   * (`generic` false): a known name added without one is in the record but not here.
   */
  private seen0 = 0;
  private seen1 = 0;
  private generic = false;

  /**
   * CgiVars.add: one variable, its value as bytes or as a latin-1 string (one code point
   * per byte). `known`: the name's index in KNOWN_CGI_NAMES when a codec found it there
   * (`knownCgiIndex`): such a name is valid by construction and its checks are skipped.
   * Throws TsgiError (status 400) for a second CONTENT_LENGTH or CONTENT_TYPE.
   */
  add(name: string, raw: Uint8Array | string | undefined, known = -1): void {
    // The common case, small enough to be inlined into a codec's loop: a known name that
    // needs no special handling, not seen before, with a latin-1 string value.
    const vars = this.vars;
    if (
      known >= 0 &&
      PLAIN_KNOWN[known] === 1 &&
      KNOWN_CGI_NAMES[known] === name &&
      typeof raw === 'string' &&
      !this.generic &&
      vars !== undefined
    ) {
      if (known < 32) {
        const bit = 1 << known;
        if ((this.seen0 & bit) === 0) {
          this.seen0 |= bit;
          vars[name] = raw;
          return;
        }
      } else {
        const bit = 1 << (known - 32);
        if ((this.seen1 & bit) === 0) {
          this.seen1 |= bit;
          vars[name] = raw;
          return;
        }
      }
    }
    this.addChecked(name, raw, known);
  }

  /** Everything else `add` does: checks, the content variables, repeats. */
  private addChecked(name: string, raw: Uint8Array | string | undefined, known: number): void {
    if (raw === undefined) return;
    if (known < 0 || KNOWN_CGI_NAMES[known] !== name) {
      if (!isCgiName(name)) return;
      // `tsgi.*` are the environ's own keys (and `tsgi.signal` is already here): a
      // variable off the wire by such a name would pass for one of them.
      if (name.charCodeAt(0) === 116 /* t */ && name.startsWith('tsgi.')) return;
      known = -1;
    }
    const vars = this.vars;
    if (vars === undefined) throw taken();
    // The content variables are settled here, not stored and deleted later: an empty one
    // (nginx sends both on every GET) counts as absent, and HTTP_CONTENT_* never reach the
    // app (SPEC 1.6). A `delete` of a property that is not the last one added turns the
    // environ into a slow dictionary-mode object for the core and the app alike (measured
    // behind nginx: buildEnviron 2.9 -> 1.7 us).
    if (name === 'CONTENT_LENGTH' || name === 'CONTENT_TYPE') {
      const first = name === 'CONTENT_LENGTH' ? !this.cl : !this.ct;
      if (!first) {
        throw new TsgiError('ERR_CORE_DUPLICATE_VARIABLE', `core: ${name} given twice`, {
          status: 400,
        });
      }
      if (name === 'CONTENT_LENGTH') this.cl = true;
      else this.ct = true;
      const v = toLatin1String(raw);
      if (v !== '') vars[name] = v;
      return;
    }
    if (name === 'HTTP_CONTENT_LENGTH') {
      this.httpCl ??= toLatin1String(raw);
      return;
    }
    if (name === 'HTTP_CONTENT_TYPE') return;
    const http = name.charCodeAt(0) === 72 /* H */ && name.startsWith('HTTP_');
    // Header names outside [A-Za-z0-9-] were mapped by some server to something that is
    // not a clean HTTP_ name; such variables never reach the application.
    if (http && known < 0 && !isHttpName(name)) return;
    let repeat: boolean;
    if (known < 0) {
      this.generic = true;
      repeat = Object.hasOwn(vars, name);
    } else if (this.generic) {
      repeat = Object.hasOwn(vars, name);
    } else if (known < 32) {
      repeat = (this.seen0 & (1 << known)) !== 0;
      this.seen0 |= 1 << known;
    } else {
      repeat = (this.seen1 & (1 << (known - 32))) !== 0;
      this.seen1 |= 1 << (known - 32);
    }
    if (repeat) {
      if (http) {
        this.dupHttp ??= new Map();
        const seen = this.dupHttp.get(name);
        if (seen) seen.push(toLatin1String(raw));
        else this.dupHttp.set(name, [vars[name]!, toLatin1String(raw)]);
      } else {
        (this.repeated ??= []).push(name);
      }
      return;
    }
    vars[name] = toLatin1String(raw);
  }

  /** @internal The record, for buildEnviron (once: it becomes the environ). */
  take(): Record<string, string> {
    const v = this.vars;
    if (v === undefined) throw taken();
    this.vars = undefined;
    return v;
  }
}

function taken(): TsgiError {
  return new TsgiError(
    'ERR_CORE_VARS_TAKEN',
    'core: this CgiVars was already given to buildEnviron',
  );
}

/** joinOrDrop: the duplicate-header policy (SPEC rule 1.5) applied to repeated HTTP_* variables. */
function joinOrDrop(
  vars: Record<string, string>,
  dupHttp: Map<string, string[]>,
  options: EnvironOptions,
  sink: ErrorSink,
): void {
  let policy = options.duplicateHeaders ?? 'auto';
  if (policy === 'auto') {
    policy = /^(nginx|apache)\b/i.test(vars.SERVER_SOFTWARE ?? '') ? 'join' : 'drop';
  }
  for (const [name, values] of dupHttp) {
    if (policy === 'join') {
      vars[name] = values.join(name === 'HTTP_COOKIE' ? '; ' : ', ');
      continue;
    }
    delete vars[name];
    sink(
      `core: ${name} arrived more than once (a header sent both as ${name.slice(5).replace(/_/g, '-')} and with underscores?); dropped it`,
      'warn',
    );
  }
}

const VERSION = Object.freeze([1, 1] as const);
/** NEVER_SIGNAL: `tsgi.signal` of a request whose adapter gave no signal; it never fires. */
export const NEVER_SIGNAL: AbortSignal = new AbortController().signal;
const decoders = new Map<string, TextDecoder | undefined>();
const LATIN1_LABELS = new Set([
  'iso-8859-1',
  'iso8859-1',
  'iso_8859-1',
  'iso_8859-1:1987',
  'iso88591',
  'latin1',
  'latin-1',
  'l1',
  'iso-ir-100',
  'csisolatin1',
  'cp819',
  'ibm819',
]);

function decoderFor(label: string): TextDecoder | undefined {
  let d = decoders.get(label);
  if (d === undefined && !decoders.has(label)) {
    try {
      d = new TextDecoder(label, { fatal: true, ignoreBOM: true });
    } catch {
      d = undefined;
    }
    decoders.set(label, d);
  }
  return d;
}

function queryFromUri(uri: string | undefined): string {
  if (uri === undefined) return '';
  const i = uri.indexOf('?');
  return i < 0 ? '' : uri.slice(i + 1);
}

/**
 * isAscii: no code unit above 0x7F. A loop (like isDigits): for the short strings of a
 * request a RegExp's call cost more than the scan (~0.4 us of an SCGI request behind a
 * busy server for the four tests, perf).
 */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** isHttpName: `HTTP_[A-Z0-9_]+` (the caller checked the prefix). */
function isHttpName(name: string): boolean {
  const n = name.length;
  if (n === 5) return false;
  for (let i = 5; i < n; i++) {
    const c = name.charCodeAt(i);
    if ((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95) continue;
    return false;
  }
  return true;
}

/** isCgiName: `[A-Za-z_][A-Za-z0-9_.-]*`, not `__proto__` (a char loop: this runs per variable). */
function isCgiName(name: string): boolean {
  const n = name.length;
  if (n === 0 || name === '__proto__') return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if ((c >= 65 && c <= 90) || c === 95 || (c >= 97 && c <= 122)) continue;
    if (i > 0 && ((c >= 48 && c <= 57) || c === 46 || c === 45)) continue;
    return false;
  }
  return true;
}

/**
 * splitPath: SCRIPT_NAME and PATH_INFO as latin-1 strings of bytes. Without a mount
 * prefix the server's split is kept, except that SCRIPT_NAME is never "/" (a trailing
 * slash moves to PATH_INFO, PEP 3333 "URL reconstruction"), and a server that sent
 * neither (nginx SCGI) gets PATH_INFO from DOCUMENT_URI or the decoded REQUEST_URI path.
 */
function splitPath(vars: Record<string, string>, mount: string | undefined): [string, string] {
  const neither = vars.SCRIPT_NAME === undefined && vars.PATH_INFO === undefined;
  let script = vars.SCRIPT_NAME ?? '';
  let info = neither ? decodedUriPath(vars) : (vars.PATH_INFO ?? '');
  if (mount !== undefined) {
    const full = neither ? info : script + info;
    const m = mount.replace(/\/+$/, '');
    if (m.length === 0) return ['', full];
    if (full.startsWith(m) && (full.length === m.length || full.charCodeAt(m.length) === 0x2f)) {
      return [m, full.slice(m.length)];
    }
    return ['', full];
  }
  // SCRIPT_NAME never ends in "/": move the slash to PATH_INFO.
  while (script.length > 0 && script.charCodeAt(script.length - 1) === 0x2f) {
    script = script.slice(0, -1);
    info = `/${info}`;
  }
  return [script, info];
}

function decodedUriPath(vars: Record<string, string>): string {
  if (vars.DOCUMENT_URI !== undefined) return vars.DOCUMENT_URI;
  const uri = vars.REQUEST_URI;
  if (uri === undefined) return '';
  const q = uri.indexOf('?');
  let p = q < 0 ? uri : uri.slice(0, q);
  // An absolute-form target (RFC 9112 section 3.2.2) carries scheme and authority.
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(p);
  if (abs) p = p.slice(abs[0].length) || '/';
  return p.includes('%') ? percentDecodeBytes(p).toString('latin1') : p;
}
