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
  let s = `Status: ${head.status}\r\n`;
  const h = head.headers;
  for (let i = 0; i < h.length; i++) s += `${h[i]![0]}: ${h[i]![1]}\r\n`;
  s += '\r\n';
  return Buffer.from(s, 'latin1');
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
