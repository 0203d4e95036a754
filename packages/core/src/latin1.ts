import { Buffer } from 'node:buffer';
import { TsgiError } from './errors.js';

/** latin1Decode: bytes to a string with one code point per byte (U+0000..U+00FF), reversible. */
export function latin1Decode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  // Buffer's 'latin1' is true ISO-8859-1 (byte n -> U+00nn). TextDecoder('latin1') is
  // WHATWG windows-1252 and maps 0x80..0x9F elsewhere, so it must never be used here.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
    'latin1',
    start,
    end,
  );
}

/** isLatin1: true when every code unit of `s` is at most U+00FF. */
export function isLatin1(s: string): boolean {
  // A regexp test is an order of magnitude faster than a charCodeAt loop in V8 for
  // the short strings (header values) this is used on.
  return !NON_LATIN1.test(s);
}
const NON_LATIN1 = /[^\u0000-\u00ff]/;

/**
 * latin1Encode: a string of code points up to U+00FF to bytes. `what` names the value
 * in the error (`core: response body chunk has U+20AC at index 3, outside ISO-8859-1`).
 */
export function latin1Encode(s: string, what: string): Buffer {
  const m = NON_LATIN1.exec(s);
  if (m !== null) {
    const cp = s.codePointAt(m.index) ?? 0;
    throw new TsgiError(
      'ERR_CORE_NOT_LATIN1',
      `core: ${what} has U+${cp.toString(16).toUpperCase().padStart(4, '0')} at index ${m.index}, outside ISO-8859-1; encode it to bytes yourself (roadmap seed, Definition #4 item 7)`,
    );
  }
  return Buffer.from(s, 'latin1');
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** utf8DecodeStrict: decodes UTF-8, or returns undefined when the bytes are not valid UTF-8. */
export function utf8DecodeStrict(bytes: Uint8Array): string | undefined {
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    return undefined;
  }
}

/** toBytes: a CGI value given as bytes or as a latin-1 string, as bytes (no copy for bytes). */
export function toBytes(v: Uint8Array | string): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
}

/** toLatin1String: a CGI value given as bytes or as a latin-1 string, as a latin-1 string. */
export function toLatin1String(v: Uint8Array | string): string {
  return typeof v === 'string' ? v : latin1Decode(v);
}

/** percentDecodeBytes: `%XX` decoded once to raw bytes; malformed escapes stay literal (RFC 3986 2.1). */
export function percentDecodeBytes(s: string): Buffer {
  const src = Buffer.from(s, 'latin1');
  if (!s.includes('%')) return src;
  const out = Buffer.allocUnsafe(src.length);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 0x25 && i + 2 < src.length) {
      const h = hex(src[i + 1]!);
      const l = hex(src[i + 2]!);
      if (h >= 0 && l >= 0) {
        out[o++] = (h << 4) | l;
        i += 2;
        continue;
      }
    }
    out[o++] = c;
  }
  return out.subarray(0, o);
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** percentEncodePath: bytes of a decoded path back to a URI path (unreserved, sub-delims, ':', '@', '/' kept). */
export function percentEncodePath(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    s += PATH_SAFE[c]
      ? String.fromCharCode(c)
      : `%${c < 16 ? '0' : ''}${c.toString(16).toUpperCase()}`;
  }
  return s;
}
const PATH_SAFE: boolean[] = Array.from({ length: 256 }, (_, c) =>
  /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/.test(String.fromCharCode(c)),
);

/**
 * The CGI names front servers send with (nearly) every request: Debian's fastcgi_params and
 * scgi_params, lighttpd's and Apache's CGI variables, the usual headers. As string literals
 * they are internalized once; a name decoded from the wire is a fresh string that V8 must
 * hash and look up in its string table each time buildEnviron stores it as an environ key
 * (20 per nginx request, 1.2 us in a profile). Returning the literal for code units that
 * spell it skips both the copy and the lookup.
 */
const KNOWN_NAMES = [
  'QUERY_STRING',
  'REQUEST_METHOD',
  'CONTENT_TYPE',
  'CONTENT_LENGTH',
  'SCRIPT_NAME',
  'SCRIPT_FILENAME',
  'REQUEST_URI',
  'DOCUMENT_URI',
  'DOCUMENT_ROOT',
  'SERVER_PROTOCOL',
  'REQUEST_SCHEME',
  'HTTPS',
  'GATEWAY_INTERFACE',
  'SERVER_SOFTWARE',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'REMOTE_USER',
  'SERVER_ADDR',
  'SERVER_PORT',
  'SERVER_NAME',
  'REDIRECT_STATUS',
  'PATH_INFO',
  'PATH_TRANSLATED',
  'HTTP_HOST',
  'HTTP_USER_AGENT',
  'HTTP_ACCEPT',
  'HTTP_ACCEPT_ENCODING',
  'HTTP_ACCEPT_LANGUAGE',
  'HTTP_CONNECTION',
  'HTTP_COOKIE',
  'HTTP_REFERER',
  'HTTP_CONTENT_TYPE',
  'HTTP_CONTENT_LENGTH',
  'HTTP_X_FORWARDED_FOR',
  'HTTP_CACHE_CONTROL',
  'SCGI',
  // What browsers, proxies and Apache add to a request's variables.
  'HTTP_UPGRADE_INSECURE_REQUESTS',
  'HTTP_SEC_FETCH_DEST',
  'HTTP_SEC_FETCH_MODE',
  'HTTP_SEC_FETCH_SITE',
  'HTTP_SEC_FETCH_USER',
  'HTTP_SEC_CH_UA',
  'HTTP_SEC_CH_UA_MOBILE',
  'HTTP_SEC_CH_UA_PLATFORM',
  'HTTP_PRIORITY',
  'HTTP_DNT',
  'HTTP_ORIGIN',
  'HTTP_PRAGMA',
  'HTTP_AUTHORIZATION',
  'HTTP_IF_NONE_MATCH',
  'HTTP_IF_MODIFIED_SINCE',
  'HTTP_X_FORWARDED_PROTO',
  'HTTP_X_FORWARDED_HOST',
  'HTTP_X_REAL_IP',
  'HTTP_X_REQUESTED_WITH',
  'AUTH_TYPE',
  'CONTEXT_DOCUMENT_ROOT',
  'CONTEXT_PREFIX',
  'SERVER_ADMIN',
  'SERVER_SIGNATURE',
];
/**
 * The known names' lookup table, compact: behind a busy server the lookup's cost was its
 * cache misses (perf annotate: the loads of a Map's hash table and of a Uint8Array per
 * name), as the caches are cold again by the next request. Now a name's bytes are found
 * through 256 one-byte slots (open addressing, hashed on the length and two bytes near
 * the end) in one block of all the names' bytes back to back.
 */
const SLOTS = 256;
const MIN_KNOWN_LENGTH = 4;
/** Per slot: a name's index + 1, or 0 (empty). */
const KNOWN_SLOT = new Uint8Array(SLOTS);
const KNOWN_LENGTH = new Uint8Array(KNOWN_NAMES.length);
const KNOWN_AT = new Uint16Array(KNOWN_NAMES.length);
const KNOWN_BLOB = new Uint8Array(KNOWN_NAMES.reduce((n, name) => n + name.length, 0));
let maxKnownLength = 0;

/** knownSlot: where the search for a name of `length` with bytes `c2`, `c6` (2 and 6 from the end, or the first) starts. */
function knownSlot(length: number, c2: number, c6: number): number {
  // Constants that put each of today's names in a slot of its own (one probe per lookup).
  return ((length << 2) ^ (c2 << 3) ^ (c6 * 9)) & (SLOTS - 1);
}

// CgiVars keeps the known names it has seen in two 32-bit sets; a slot holds index + 1.
if (KNOWN_NAMES.length > 64) throw new Error('core: more than 64 known names');
{
  let at = 0;
  for (let i = 0; i < KNOWN_NAMES.length; i++) {
    const name = KNOWN_NAMES[i]!;
    const n = name.length;
    if (n < MIN_KNOWN_LENGTH || n > 255) throw new Error(`core: known name ${name}: bad length`);
    if (knownCgiName(name, 0, n) !== undefined) throw new Error(`core: ${name} listed twice`);
    KNOWN_LENGTH[i] = n;
    KNOWN_AT[i] = at;
    for (let k = 0; k < n; k++) KNOWN_BLOB[at + k] = name.charCodeAt(k);
    at += n;
    let slot = knownSlot(n, name.charCodeAt(n - 2), name.charCodeAt(Math.max(0, n - 6)));
    while (KNOWN_SLOT[slot] !== 0) slot = (slot + 1) & (SLOTS - 1);
    KNOWN_SLOT[slot] = i + 1;
    maxKnownLength = Math.max(maxKnownLength, n);
  }
}

/**
 * KNOWN_CGI_NAMES: the well-known CGI variable names, as the literals `knownCgiName`
 * returns; `knownCgiIndex` gives an index into this list, which `CgiVars.add` accepts.
 */
export const KNOWN_CGI_NAMES: readonly string[] = Object.freeze(KNOWN_NAMES.slice());

/**
 * knownCgiIndex: the index in `KNOWN_CGI_NAMES` of the name whose `length` bytes start at
 * `at` in `bytes` (a header block off the wire), or -1. Byte-exact: every byte is
 * compared. For the adapters' codecs, which pass the index on to `CgiVars.add`.
 */
export function knownCgiIndex(bytes: Uint8Array, at: number, length: number): number {
  if (length < MIN_KNOWN_LENGTH || length > maxKnownLength) return -1;
  let slot = knownSlot(length, bytes[at + length - 2]!, bytes[at + Math.max(0, length - 6)]!);
  // Ends at an empty slot: 60-odd names in 256 slots.
  for (let e = KNOWN_SLOT[slot]!; e !== 0; e = KNOWN_SLOT[slot]!) {
    const i = e - 1;
    if (KNOWN_LENGTH[i] === length) {
      const from = KNOWN_AT[i]! - at;
      let k = at + length - 1;
      while (k >= at && bytes[k] === KNOWN_BLOB[from + k]) k--;
      if (k < at) return i;
    }
    slot = (slot + 1) & (SLOTS - 1);
  }
  return -1;
}

/**
 * knownCgiName: the literal of a well-known CGI variable name equal to
 * `s.slice(at, at + length)` (a latin-1 string decoded off the wire), or undefined. Compared
 * code unit by code unit, byte-exact. (Codecs that have the bytes use `knownCgiIndex`.)
 */
export function knownCgiName(s: string, at: number, length: number): string | undefined {
  if (length < MIN_KNOWN_LENGTH || length > maxKnownLength) return undefined;
  let slot = knownSlot(
    length,
    s.charCodeAt(at + length - 2),
    s.charCodeAt(at + Math.max(0, length - 6)),
  );
  for (let e = KNOWN_SLOT[slot]!; e !== 0; e = KNOWN_SLOT[slot]!) {
    const i = e - 1;
    if (KNOWN_LENGTH[i] === length) {
      const from = KNOWN_AT[i]! - at;
      let k = at + length - 1;
      while (k >= at && s.charCodeAt(k) === KNOWN_BLOB[from + k]) k--;
      if (k < at) return KNOWN_NAMES[i];
    }
    slot = (slot + 1) & (SLOTS - 1);
  }
  return undefined;
}

/**
 * isDigits: 1 to 15 ASCII digits, a Content-Length that Number() represents exactly. A
 * loop: per request, where a RegExp's call cost more than the scan.
 */
export function isDigits(s: string): boolean {
  const n = s.length;
  if (n === 0 || n > 15) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
