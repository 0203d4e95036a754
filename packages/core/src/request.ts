import { percentDecodeBytes } from './latin1.js';

/** HEADER_NAME_OK: request header names a gateway passes on (gunicorn and mod_wsgi rule). */
const HEADER_NAME_OK = /^[A-Za-z0-9-]+$/;

/** HttpHeadersResult: CGI variables made from request headers, and what was left out. */
export interface HttpHeadersResult {
  vars: Record<string, string>;
  /** Header names dropped because of characters outside [A-Za-z0-9-] or because they are `Proxy`. */
  dropped: string[];
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
  const dropped: string[] = [];
  const flat = raw.length > 0 && typeof raw[0] === 'string';
  const n = flat ? raw.length >> 1 : raw.length;
  for (let i = 0; i < n; i++) {
    const name = flat ? (raw[2 * i] as string) : (raw[i] as readonly [string, string])[0];
    const value = flat ? (raw[2 * i + 1] as string) : (raw[i] as readonly [string, string])[1];
    if (!HEADER_NAME_OK.test(name)) {
      dropped.push(name);
      continue;
    }
    const upper = name.toUpperCase();
    let key: string;
    if (upper === 'CONTENT-TYPE') key = 'CONTENT_TYPE';
    else if (upper === 'CONTENT-LENGTH') key = 'CONTENT_LENGTH';
    else if (upper === 'PROXY') {
      dropped.push(name);
      continue;
    } else key = `HTTP_${upper.replace(/-/g, '_')}`;
    const prev = vars[key];
    if (prev === undefined) vars[key] = value;
    else vars[key] = prev + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value;
  }
  return { vars, dropped };
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
 * requestToCgi: CGI variables for an HTTP request (RFC 3875 section 4.1): REQUEST_URI is
 * the raw target; PATH_INFO is the path percent-decoded once, as bytes carried in a
 * latin-1 string (`buildEnviron` then applies the URI encoding); SCRIPT_NAME is the mount
 * prefix when the path is under it.
 */
export function requestToCgi(
  line: RequestLine,
  headers: readonly string[] | ReadonlyArray<readonly [string, string]>,
): HttpHeadersResult {
  const { vars, dropped } = httpHeadersToCgi(headers);
  let target = line.target;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/.exec(target);
  if (abs) target = target.slice(abs[0].length) || '/';
  // A fragment is never part of a request target (RFC 9112 section 3.2); a raw client
  // that sends one does not get it into PATH_INFO or QUERY_STRING. REQUEST_URI stays raw.
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf('?');
  const path = percentDecodeBytes(q < 0 ? target : target.slice(0, q)).toString('latin1');
  const mount = (line.mount ?? '').replace(/\/+$/, '');
  let script = '';
  let info = path;
  if (mount !== '' && (path === mount || path.startsWith(`${mount}/`))) {
    script = mount;
    info = path.slice(mount.length);
  }
  vars.REQUEST_METHOD = line.method;
  vars.REQUEST_URI = line.target;
  vars.SCRIPT_NAME = script;
  vars.PATH_INFO = info;
  vars.QUERY_STRING = q < 0 ? '' : target.slice(q + 1);
  vars.SERVER_PROTOCOL = line.protocol ?? 'HTTP/1.1';
  vars.GATEWAY_INTERFACE = 'CGI/1.1';
  const host = vars.HTTP_HOST;
  const hm = host === undefined ? null : /^(\[[^\]]*\]|[^:]*)(?::([0-9]+))?$/.exec(host);
  vars.SERVER_NAME = line.serverName ?? (hm?.[1] || 'localhost');
  vars.SERVER_PORT = String(line.serverPort ?? hm?.[2] ?? (line.https ? 443 : 80));
  if (line.remoteAddr !== undefined) vars.REMOTE_ADDR = line.remoteAddr;
  if (line.remotePort !== undefined) vars.REMOTE_PORT = String(line.remotePort);
  if (line.https) vars.HTTPS = 'on';
  vars.REQUEST_SCHEME = line.https ? 'https' : 'http';
  return { vars, dropped };
}
