import { percentDecodeBytes } from './latin1.js';

/** HttpHeadersResult: CGI variables made from request headers, and what was left out. */
export interface HttpHeadersResult {
  vars: Record<string, string>;
  /** Header names dropped because of characters outside [A-Za-z0-9-] or because they are `Proxy`. */
  dropped: string[];
}

/**
 * The CGI name of each header name seen, as received (`User-Agent` -> `HTTP_USER_AGENT`,
 * `content-type` -> `CONTENT_TYPE`), or DROP. Bounded: a client that sends made-up names
 * cannot grow it past NAME_CACHE_MAX entries (it is emptied and starts over), and names
 * longer than NAME_CACHE_MAX_LENGTH are mapped every time, never kept.
 */
const nameCache = new Map<string, string>();
/** NAME_CACHE_MAX: the most header names the cache holds. */
export const NAME_CACHE_MAX = 1000;
const NAME_CACHE_MAX_LENGTH = 64;
const DROP = '';
/** HEADER_NAME_OK: request header names a gateway passes on (gunicorn and mod_wsgi rule). */
const HEADER_NAME_OK = /^[A-Za-z0-9-]+$/;
/** A '%' to decode, or a character outside latin-1 (which the byte round trip truncates). */
const NEEDS_DECODE = /[%\u0100-\uffff]/;

/** headerNameCacheSize: entries in the header-name cache (for tests of its bound). */
export function headerNameCacheSize(): number {
  return nameCache.size;
}

/**
 * cgiNameOf: `HTTP_` + the name upper-cased with `-` as `_`; CONTENT_TYPE and
 * CONTENT_LENGTH; DROP for a name outside `[A-Za-z0-9-]` (gunicorn and mod_wsgi rule) and
 * for `Proxy` (httpoxy).
 */
function cgiNameOf(name: string): string {
  let key = nameCache.get(name);
  if (key !== undefined) return key;
  key = mapName(name);
  if (name.length <= NAME_CACHE_MAX_LENGTH) {
    if (nameCache.size >= NAME_CACHE_MAX) nameCache.clear();
    nameCache.set(name, key);
  }
  return key;
}

function mapName(name: string): string {
  if (!HEADER_NAME_OK.test(name)) return DROP;
  const upper = name.toUpperCase();
  if (upper === 'CONTENT-TYPE') return 'CONTENT_TYPE';
  if (upper === 'CONTENT-LENGTH') return 'CONTENT_LENGTH';
  if (upper === 'PROXY') return DROP;
  return `HTTP_${upper.replace(/-/g, '_')}`;
}

/**
 * httpHeadersToCgi: the reference header normalisation (RFC 3875 section 4.1.18) that
 * the HTTP front and the in-memory client use, and that the other fronts are compared
 * with. `raw` is Node's flat `rawHeaders` list or `[name, value]` pairs, values latin-1.
 * - a name with a character outside `[A-Za-z0-9-]` is dropped: `X_Auth_User` would
 *   otherwise become HTTP_X_AUTH_USER, indistinguishable from `X-Auth-User`;
 * - `Proxy` is dropped (httpoxy: HTTP_PROXY must never look like a proxy setting);
 * - Content-Type and Content-Length become CONTENT_TYPE and CONTENT_LENGTH, never HTTP_*;
 * - repeated headers are joined with ", " (Cookie with "; ", RFC 9113 section 8.2.3).
 */
export function httpHeadersToCgi(
  raw: readonly string[] | ReadonlyArray<readonly [string, string]>,
): HttpHeadersResult {
  const vars: Record<string, string> = {};
  return { vars, dropped: addHeaders(vars, raw) };
}

/** addHeaders: the headers into `vars`; returns the dropped names. */
function addHeaders(
  vars: Record<string, string>,
  raw: readonly string[] | ReadonlyArray<readonly [string, string]>,
): string[] {
  let dropped: string[] | undefined;
  const flat = raw.length > 0 && typeof raw[0] === 'string';
  const n = flat ? raw.length >> 1 : raw.length;
  for (let i = 0; i < n; i++) {
    let name: string;
    let value: string;
    if (flat) {
      name = raw[2 * i] as string;
      value = raw[2 * i + 1] as string;
    } else {
      const pair = raw[i] as readonly [string, string];
      name = pair[0];
      value = pair[1];
    }
    const key = cgiNameOf(name);
    if (key === DROP) {
      (dropped ??= []).push(name);
      continue;
    }
    const prev = vars[key];
    if (prev === undefined) vars[key] = value;
    else vars[key] = prev + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value;
  }
  return dropped ?? [];
}

/** RequestLine: what an HTTP front knows about a request besides its headers. */
export interface RequestLine {
  method: string;
  /** The request target exactly as received (origin-form, or absolute-form). */
  target: string;
  protocol?: string;
  serverName?: string;
  serverPort?: number | string;
  remoteAddr?: string;
  remotePort?: number | string;
  https?: boolean;
  /** The mount prefix: SCRIPT_NAME. Never "/" (a trailing slash is dropped). */
  mount?: string;
}

/**
 * The `vars` of the last requestToCgi call, until buildEnviron adopts it (once). Only that
 * object, passed on as it came, is taken over without a copy and without checking its
 * names again; everything else, adapter-supplied params included, is copied and checked.
 */
let adoptable: Record<string, string> | undefined;

/**
 * adoptRequestVars: `params` itself when it is the record the last requestToCgi call
 * returned and it was not adopted yet (buildEnviron then makes it the environ); else
 * undefined.
 */
export function adoptRequestVars(params: unknown): Record<string, string> | undefined {
  if (params !== adoptable || params === undefined) return undefined;
  adoptable = undefined;
  return params as Record<string, string>;
}

/**
 * requestToCgi: CGI variables for an HTTP request (RFC 3875 section 4.1): REQUEST_URI is
 * the raw target; PATH_INFO is the path percent-decoded once, as bytes carried in a
 * latin-1 string (`buildEnviron` then applies the URI encoding); SCRIPT_NAME is the mount
 * prefix when the path is under it.
 *
 * `vars` passed unmodified to `buildEnviron` right after this call becomes the environ
 * itself (no copy, no second check of names that are valid by construction); do not use
 * `vars` after that. A modified or older `vars` is copied and checked like any params.
 */
export function requestToCgi(
  line: RequestLine,
  headers: readonly string[] | ReadonlyArray<readonly [string, string]>,
): HttpHeadersResult {
  const vars: Record<string, string> = {};
  const dropped = addHeaders(vars, headers);
  let target = line.target;
  // An absolute-form target (RFC 9112 section 3.2.2) carries scheme and authority.
  if (target.charCodeAt(0) !== 0x2f /* / */) {
    const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/.exec(target);
    if (abs) target = target.slice(abs[0].length) || '/';
  }
  // A fragment is never part of a request target (RFC 9112 section 3.2); a raw client
  // that sends one does not get it into PATH_INFO or QUERY_STRING. REQUEST_URI stays raw.
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const path = NEEDS_DECODE.test(rawPath)
    ? percentDecodeBytes(rawPath).toString('latin1')
    : rawPath;
  let mount = line.mount ?? '';
  if (mount !== '' && mount.charCodeAt(mount.length - 1) === 0x2f) {
    mount = mount.replace(/\/+$/, '');
  }
  let script = '';
  let info = path;
  if (mount !== '' && path.startsWith(mount)) {
    if (path.length === mount.length) {
      script = mount;
      info = '';
    } else if (path.charCodeAt(mount.length) === 0x2f) {
      script = mount;
      info = path.slice(mount.length);
    }
  }
  vars.REQUEST_METHOD = line.method;
  vars.REQUEST_URI = line.target;
  vars.SCRIPT_NAME = script;
  vars.PATH_INFO = info;
  vars.QUERY_STRING = q < 0 ? '' : target.slice(q + 1);
  vars.SERVER_PROTOCOL = line.protocol ?? 'HTTP/1.1';
  vars.GATEWAY_INTERFACE = 'CGI/1.1';
  const serverName = line.serverName;
  const serverPort = line.serverPort;
  let hostName: string | undefined;
  let hostPort: string | undefined;
  if (serverName == null || serverPort == null) {
    const host = vars.HTTP_HOST;
    if (host !== undefined) {
      if (host !== hostSeen) splitHost(host);
      hostName = hostSeenName;
      hostPort = hostSeenPort;
    }
  }
  vars.SERVER_NAME = serverName ?? (hostName || 'localhost');
  vars.SERVER_PORT = String(serverPort ?? hostPort ?? (line.https ? 443 : 80));
  if (line.remoteAddr !== undefined) vars.REMOTE_ADDR = line.remoteAddr;
  if (line.remotePort !== undefined) vars.REMOTE_PORT = String(line.remotePort);
  if (line.https) vars.HTTPS = 'on';
  vars.REQUEST_SCHEME = line.https ? 'https' : 'http';
  adoptable = vars;
  return { vars, dropped };
}

/**
 * The last Host header requestToCgi split into SERVER_NAME and SERVER_PORT, and its parts:
 * a server sees the same one over and over, and the regexp match is kept for it.
 */
let hostSeen: string | undefined;
let hostSeenName: string | undefined;
let hostSeenPort: string | undefined;

function splitHost(host: string): void {
  const m = /^(\[[^\]]*\]|[^:]*)(?::([0-9]+))?$/.exec(host);
  hostSeen = host;
  hostSeenName = m?.[1];
  hostSeenPort = m?.[2];
}
