import { Buffer } from 'node:buffer';
import { validatedHeaders } from './headers.js';
import type { ResponseHead } from './types.js';

/**
 * serializeCgiHead: the one serializer for CGI-style response heads (RFC 3875 section 6),
 * shared by the CGI, FastCGI and SCGI adapters: `Status: 200 OK\r\n`, each header as
 * `Name: value\r\n` in the app's order, then `\r\n`. Values were validated by
 * `validateResponseHead`, so latin-1 encoding is exact.
 *
 * With `localRedirect: true` only the `Location` line is written: RFC 3875 section 6.2.2
 * defines a local redirect as a response with nothing but Location, and the server then
 * serves that path itself (see `isLocalRedirect`).
 */
export function serializeCgiHead(
  head: ResponseHead,
  options?: { localRedirect?: boolean },
): Buffer {
  if (options?.localRedirect) {
    for (const [n, v] of head.headers) {
      if (n.toLowerCase() === 'location') return Buffer.from(`Location: ${v}\r\n\r\n`, 'latin1');
    }
  }
  return serializeCgiResponse(head, EMPTY);
}

const EMPTY = new Uint8Array(0);

/**
 * serializeCgiResponse: `serializeCgiHead(head)` followed by `body`, in one Buffer: one
 * allocation and one write for a small response (a hello world's head and body), where
 * the head as a Buffer of its own and then both joined for the write made two.
 */
export function serializeCgiResponse(head: ResponseHead, body: Uint8Array): Buffer {
  const flat = validatedHeaders(head) ?? flatten(head.headers);
  const status = head.status;
  let out: Buffer;
  if (flat === lastFlat && status === lastStatus) {
    // The same validated list as the last head (validateResponseHead shares it between
    // equal heads): its bytes are copied, not written again code unit by code unit.
    const bytes = lastBytes;
    out = Buffer.allocUnsafe(bytes.length + body.length);
    out.set(bytes);
    if (body.length > 0) out.set(body, bytes.length);
    return out;
  }
  const n = headLength(status, flat);
  out = Buffer.allocUnsafe(n + body.length);
  writeHead(status, flat, out);
  if (body.length > 0) out.set(body, n);
  lastFlat = flat;
  lastStatus = status;
  lastBytes = out.subarray(0, n);
  return out;
}

/** The last head serialized: its list (see validatedHeaders), status and bytes (a view of the Buffer they were written to, which nothing writes to again). */
let lastFlat: readonly string[] | undefined;
let lastStatus = '';
let lastBytes: Uint8Array = EMPTY;

/** A head that validateResponseHead did not make (fixedResponse, a test's): its pairs as one list. */
function flatten(headers: ResponseHead['headers']): string[] {
  const flat: string[] = [];
  for (const [n, v] of headers) flat.push(n, v);
  return flat;
}

/** headLength: the bytes of the serialized head (latin-1: one byte per code unit). */
function headLength(status: string, flat: readonly string[]): number {
  // "Status: " + status + CRLF, each "name: value" + CRLF, the final CRLF.
  let n = 8 + status.length + 4;
  for (let i = 0; i < flat.length; i += 2) n += flat[i]!.length + flat[i + 1]!.length + 4;
  return n;
}

/**
 * writeHead: the head's bytes at the start of `out`. Code unit by code unit, in JS: the
 * strings are short, and a template string written with Buffer.from or buf.write went
 * through a C++ call and a flattening copy of the concatenated string, ~1 us of an SCGI
 * hello request behind a busy server (perf). validateResponseHead refused anything above
 * U+00FF, so each code unit is its byte.
 */
function writeHead(status: string, flat: readonly string[], out: Uint8Array): void {
  let at = put(out, 0, 'Status: ');
  at = put(out, at, status);
  out[at++] = 13;
  out[at++] = 10;
  for (let i = 0; i < flat.length; i += 2) {
    at = put(out, at, flat[i]!);
    out[at++] = 58; // ':'
    out[at++] = 32;
    at = put(out, at, flat[i + 1]!);
    out[at++] = 13;
    out[at++] = 10;
  }
  out[at++] = 13;
  out[at] = 10;
}

function put(out: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
  return at + s.length;
}

/**
 * isLocalRedirect: mod_wsgi's rule for CGI local redirects (RFC 3875 section 6.2.2): a
 * 200 response whose only header of substance is a Location holding an absolute path
 * (starts with a single "/") and whose body is empty. Anything else goes out with an
 * explicit Status, so a server never turns it into a redirect by guessing.
 */
export function isLocalRedirect(head: ResponseHead, bodyBytes: number): boolean {
  if (head.code !== 200 || bodyBytes !== 0) return false;
  let location: string | undefined;
  for (const [n, v] of head.headers) {
    const l = n.toLowerCase();
    if (l === 'location') {
      if (location !== undefined) return false;
      location = v;
    } else if (l !== 'content-length' && l !== 'content-type') {
      return false;
    }
  }
  return location?.startsWith('/') === true && !location.startsWith('//');
}
