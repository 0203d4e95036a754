import { Buffer } from 'node:buffer';
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
  const out = Buffer.allocUnsafe(headLength(head));
  writeHead(head, out);
  return out;
}

/**
 * serializeCgiResponse: `serializeCgiHead(head)` followed by `body`, in one Buffer: one
 * allocation and one write for a small response (a hello world's head and body), where
 * the head as a Buffer of its own and then both joined for the write made two.
 */
export function serializeCgiResponse(head: ResponseHead, body: Uint8Array): Buffer {
  const n = headLength(head);
  const out = Buffer.allocUnsafe(n + body.length);
  writeHead(head, out);
  out.set(body, n);
  return out;
}

/** headLength: the bytes of the serialized head (latin-1: one byte per code unit). */
function headLength(head: ResponseHead): number {
  // "Status: " + status + CRLF, each "name: value" + CRLF, the final CRLF.
  let n = 8 + head.status.length + 4;
  const h = head.headers;
  for (let i = 0; i < h.length; i++) n += h[i]![0].length + h[i]![1].length + 4;
  return n;
}

/**
 * writeHead: the head's bytes at the start of `out`. Code unit by code unit, in JS: the
 * strings are short, and a template string written with Buffer.from or buf.write went
 * through a C++ call and a flattening copy of the concatenated string, ~1 us of an SCGI
 * hello request behind a busy server (perf). validateResponseHead refused anything above
 * U+00FF, so each code unit is its byte.
 */
function writeHead(head: ResponseHead, out: Uint8Array): void {
  let at = put(out, 0, 'Status: ');
  at = put(out, at, head.status);
  out[at++] = 13;
  out[at++] = 10;
  const h = head.headers;
  for (let i = 0; i < h.length; i++) {
    at = put(out, at, h[i]![0]);
    out[at++] = 58; // ':'
    out[at++] = 32;
    at = put(out, at, h[i]![1]);
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
