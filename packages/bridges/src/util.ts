import { Buffer } from 'node:buffer';
import {
  type Environ,
  type ErrorSink,
  type ErrorStream,
  type HeaderList,
  HOP_BY_HOP,
  percentDecodeBytes,
  TsgiError,
} from '@tsgi/core';

/**
 * sinkOf: the ErrorSink behind `tsgi.errors`, so that bridge reports keep their level.
 * The core's `createErrorStream` result carries it as `.sink`; any other ErrorStream (a
 * validator's wrapper, a test double) gets everything but debug lines as plain text.
 */
export function sinkOf(environ: Environ): ErrorSink {
  const errors = environ['tsgi.errors'] as ErrorStream & { sink?: ErrorSink };
  if (typeof errors?.sink === 'function') return errors.sink;
  return (text, level) => {
    if (level === 'debug') return;
    errors.write(text.endsWith('\n') ? text : `${text}\n`);
  };
}

/** clientGone: the error a bridge rejects with once `tsgi.signal` fired (the core logs it at debug). */
export function clientGone(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error
    ? r
    : new TsgiError('ERR_BRIDGES_CLIENT_GONE', 'bridges: the client went away');
}

/** describeValue: how an error message names a value it did not expect. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') {
    return `a function of ${v.length} parameter${v.length === 1 ? '' : 's'}`;
  }
  if (typeof v !== 'object') return `a ${typeof v}`;
  const ctor = (v as { constructor?: { name?: string } }).constructor?.name;
  const keys = Object.keys(v);
  const shown = keys.slice(0, 12).join(', ') + (keys.length > 12 ? ', ...' : '');
  const what = ctor && ctor !== 'Object' ? `an instance of ${ctor}` : 'an object';
  return `${what} with keys [${shown}]`;
}

/**
 * environHeaders: the request headers an environ carries, as `[lower-case name, value]`
 * pairs in environ order: every HTTP_* variable (underscores back to dashes; the front
 * already dropped names that had real underscores) plus CONTENT_TYPE and CONTENT_LENGTH,
 * which RFC 3875 keeps out of HTTP_*.
 */
export function environHeaders(environ: Environ): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const key of Object.keys(environ)) {
    const value = environ[key];
    if (typeof value !== 'string') continue;
    if (key.startsWith('HTTP_')) {
      const name = key.slice(5).toLowerCase().replace(/_/g, '-');
      // buildEnviron removes these two; a hand-made environ may still carry them.
      if (name === 'content-length' || name === 'content-type') continue;
      out.push([name, value]);
    } else if (key === 'CONTENT_TYPE') {
      out.push(['content-type', value]);
    } else if (key === 'CONTENT_LENGTH') {
      out.push(['content-length', value]);
    }
  }
  return out;
}

/** canonicalName: `x-forwarded-for` -> `X-Forwarded-For` (the original case is lost in CGI). */
export function canonicalName(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
}

/**
 * withoutHopByHop: response headers minus the hop-by-hop ones (Connection, Keep-Alive,
 * Transfer-Encoding, ...). Frameworks set them because Node's server honours them; under
 * tsgi the front server owns the connection and the core refuses them, so the bridge
 * drops them instead of failing the response.
 */
export function withoutHopByHop(headers: HeaderList, log: ErrorSink): HeaderList {
  let out: HeaderList | undefined;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i]![0];
    if (name.length <= 19 && HOP_BY_HOP.has(name.toLowerCase())) {
      out ??= headers.slice(0, i);
      log(
        `bridges: dropped the response header ${name} (hop-by-hop; the server manages the connection)`,
        'debug',
      );
    } else if (out !== undefined) {
      out.push(headers[i]!);
    }
  }
  return out ?? headers;
}

// RFC 3986 pchar plus "/": what may stay literal in a rebuilt path.
const PATH_SAFE: boolean[] = Array.from({ length: 256 }, (_, c) =>
  /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/.test(String.fromCharCode(c)),
);
// What must be escaped in a query: controls, space, '"', '#', '<', '>', DEL and non-ASCII
// (the WHATWG query percent-encode set). '%' stays: QUERY_STRING is still encoded.
const QUERY_ESCAPE: boolean[] = Array.from(
  { length: 256 },
  (_, c) => c <= 0x20 || c === 0x22 || c === 0x23 || c === 0x3c || c === 0x3e || c >= 0x7f,
);
const HEX = '0123456789ABCDEF';

function escapeByte(c: number): string {
  return `%${HEX[c >> 4]}${HEX[c & 15]}`;
}

/** The bytes a decoded SCRIPT_NAME / PATH_INFO / QUERY_STRING came from. */
function uriBytes(s: string, encoding: unknown): Buffer {
  // buildEnviron decodes with `tsgi.uri_encoding` (UTF-8 unless told otherwise) or falls
  // back to ISO-8859-1; TextEncoder only speaks UTF-8, so any other label is re-encoded as
  // UTF-8 (documented limitation).
  return Buffer.from(s, encoding === 'iso-8859-1' ? 'latin1' : 'utf8');
}

function encodePath(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    s += PATH_SAFE[c] ? String.fromCharCode(c) : escapeByte(c);
  }
  return s;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * Splits a raw (still percent-encoded) path after the raw form of `prefixBytes` decoded
 * bytes, escaping what may not stay literal, or returns undefined when the raw path does
 * not decode to exactly `prefixBytes` + `restBytes`.
 */
function splitRaw(
  raw: string,
  prefixBytes: Uint8Array,
  restBytes: Uint8Array,
): [string, string] | undefined {
  const decoded = percentDecodeBytes(raw);
  if (decoded.length !== prefixBytes.length + restBytes.length) return undefined;
  if (!decoded.subarray(0, prefixBytes.length).equals(prefixBytes)) return undefined;
  if (!decoded.subarray(prefixBytes.length).equals(restBytes)) return undefined;
  let out = '';
  let split = prefixBytes.length === 0 ? 0 : -1;
  let count = 0;
  for (let i = 0; i < raw.length; ) {
    if (count === prefixBytes.length && split < 0) split = out.length;
    const c = raw.charCodeAt(i);
    if (
      c === 0x25 &&
      i + 2 < raw.length &&
      isHex(raw.charCodeAt(i + 1)) &&
      isHex(raw.charCodeAt(i + 2))
    ) {
      out += raw.slice(i, i + 3);
      i += 3;
    } else {
      // A raw character a client should have escaped (space, non-ASCII, a lone '%')
      // is escaped here; it decodes to the same byte.
      out += c < 256 && PATH_SAFE[c] ? raw[i] : escapeByte(c & 0xff);
      i += 1;
    }
    count += 1;
  }
  if (split < 0) split = out.length;
  return [out.slice(0, split), out.slice(split)];
}

/** RequestPath: the request's path and query as a client would send them (percent-encoded). */
export interface RequestPath {
  /** The mount prefix (SCRIPT_NAME), encoded; '' at the root. */
  script: string;
  /** The path below the mount prefix (PATH_INFO), encoded. */
  info: string;
  /** QUERY_STRING with the bytes that may not appear raw escaped; '' when none. */
  query: string;
}

/**
 * requestPath: SCRIPT_NAME, PATH_INFO and QUERY_STRING back in URL form (PEP 3333 "URL
 * reconstruction"). When REQUEST_URI's path decodes to exactly SCRIPT_NAME + PATH_INFO,
 * its original escaping is kept (so `a%2Fb` stays one segment); after a rewrite, or when
 * the front normalised the path, the decoded values are re-encoded instead.
 */
export function requestPath(environ: Environ): RequestPath {
  const enc = environ['tsgi.uri_encoding'];
  const scriptBytes = uriBytes(environ.SCRIPT_NAME ?? '', enc);
  const infoBytes = uriBytes(environ.PATH_INFO ?? '', enc);
  let script: string | undefined;
  let info: string | undefined;
  const raw = rawPathOf(environ.REQUEST_URI);
  if (raw !== undefined) {
    const parts = splitRaw(raw, scriptBytes, infoBytes);
    if (parts !== undefined) [script, info] = parts;
  }
  if (script === undefined || info === undefined) {
    script = encodePath(scriptBytes);
    info = encodePath(infoBytes);
  }
  const q = uriBytes(environ.QUERY_STRING ?? '', enc);
  let query = '';
  for (let i = 0; i < q.length; i++) {
    const c = q[i]!;
    query += QUERY_ESCAPE[c] ? escapeByte(c) : String.fromCharCode(c);
  }
  return { script, info, query };
}

function rawPathOf(uri: unknown): string | undefined {
  if (typeof uri !== 'string' || uri === '') return undefined;
  let t = uri;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(t);
  if (abs) t = t.slice(abs[0].length) || '/';
  const end = t.search(/[?#]/);
  const p = end < 0 ? t : t.slice(0, end);
  return p.startsWith('/') ? p : undefined;
}

/**
 * pathAndQuery: the request target an app sees: SCRIPT_NAME + PATH_INFO (or PATH_INFO
 * alone with `stripMount`), then `?` and the query when there is one.
 */
export function pathAndQuery(environ: Environ, stripMount: boolean): string {
  const { script, info, query } = requestPath(environ);
  let path = stripMount ? info : script + info;
  if (path === '' || path[0] !== '/') path = `/${path}`;
  return query === '' ? path : `${path}?${query}`;
}

// A Host header that is a plain reg-name, IPv4 or bracketed IPv6, with an optional port.
// Anything else (a "/" or "@" would move the URL's authority) falls back to SERVER_NAME.
const HOST_OK = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?$/;

/**
 * origin: `scheme://host[:port]` from `tsgi.url_scheme`, HTTP_HOST (unless `useHost` is
 * false) or SERVER_NAME and SERVER_PORT (the default port left out), as PEP 3333
 * reconstructs it.
 */
export function origin(environ: Environ, useHost = true): string {
  const scheme = environ['tsgi.url_scheme'] === 'https' ? 'https' : 'http';
  const host = environ.HTTP_HOST;
  if (useHost && typeof host === 'string' && HOST_OK.test(host)) return `${scheme}://${host}`;
  let name = environ.SERVER_NAME || 'localhost';
  if (name.includes(':') && !name.startsWith('[')) name = `[${name}]`;
  if (!HOST_OK.test(name)) name = 'localhost';
  const port = environ.SERVER_PORT;
  const dflt = scheme === 'https' ? '443' : '80';
  return port && port !== dflt && /^[0-9]{1,5}$/.test(port)
    ? `${scheme}://${name}:${port}`
    : `${scheme}://${name}`;
}

/** RequestUrlOptions: how `requestUrl` presents the mount prefix. */
export interface RequestUrlOptions {
  /** Leave SCRIPT_NAME out of the path, as if the app were mounted at the root. */
  stripMount?: boolean;
}

/**
 * requestUrl: the absolute URL of the request, rebuilt from the environ: scheme, Host
 * (or SERVER_NAME:SERVER_PORT), SCRIPT_NAME + PATH_INFO (see `requestPath` for the
 * escaping) and QUERY_STRING. With `stripMount` the path is PATH_INFO alone.
 */
export function requestUrl(environ: Environ, options: RequestUrlOptions = {}): string {
  return origin(environ) + pathAndQuery(environ, options.stripMount === true);
}
