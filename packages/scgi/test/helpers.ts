// Test helpers: an SCGI request encoder (the front server's side of the SCGI spec,
// section 3) and a raw-socket SCGI client.
import { Buffer } from 'node:buffer';
import net from 'node:net';

/** latin1: a string whose code points are bytes. */
export const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** encodeHeaders: `len:name\0value\0...,` exactly as a front server sends it. */
export function encodeHeaders(
  pairs: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>,
): Buffer {
  const parts: Buffer[] = [];
  for (const [n, v] of pairs) {
    parts.push(typeof n === 'string' ? latin1(n) : Buffer.from(n), Buffer.of(0));
    parts.push(typeof v === 'string' ? latin1(v) : Buffer.from(v), Buffer.of(0));
  }
  const block = Buffer.concat(parts);
  return Buffer.concat([latin1(`${block.length}:`), block, latin1(',')]);
}

/** encodeRequest: headers (CONTENT_LENGTH first, SCGI=1 added) then the body. */
export function encodeRequest(
  vars: ReadonlyArray<readonly [string, string | Uint8Array]>,
  body: Uint8Array = Buffer.alloc(0),
): Buffer {
  return Buffer.concat([
    encodeHeaders([['CONTENT_LENGTH', String(body.length)], ['SCGI', '1'], ...vars]),
    body,
  ]);
}

/** splitAt: `bytes` cut at the given points (any order, repeats allowed; empty pieces kept). */
export function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

/** bytewise: one chunk per byte. */
export function bytewise(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(bytes.subarray(i, i + 1));
  return out;
}

/** RawResponse: what came back on a connection, and how it ended. */
export interface RawResponse {
  bytes: Buffer;
  /** Status code from `Status:` (NaN when there is none). */
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  /** `end`: the server closed cleanly (FIN); `reset`: ECONNRESET or another error. */
  ending: 'end' | 'reset';
}

/** parseResponse: splits a CGI-style response at the first CRLF CRLF. */
export function parseResponse(bytes: Buffer, ending: 'end' | 'reset' = 'end'): RawResponse {
  const i = bytes.indexOf('\r\n\r\n');
  const headText = i < 0 ? bytes.toString('latin1') : bytes.subarray(0, i).toString('latin1');
  const headers: Array<[string, string]> = [];
  for (const line of headText.split('\r\n')) {
    const c = line.indexOf(':');
    if (c > 0) headers.push([line.slice(0, c), line.slice(c + 1).trim()]);
  }
  const status = Number.parseInt(headers.find(([n]) => n === 'Status')?.[1] ?? '', 10);
  return { bytes, status, headers, body: i < 0 ? Buffer.alloc(0) : bytes.subarray(i + 4), ending };
}

/** connect: a raw TCP connection to 127.0.0.1:port. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * collect: everything the server sends until it closes the connection. Like a front
 * server, the client closes its side when it sees the response's end (EOF).
 */
export function collect(sock: net.Socket): Promise<RawResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ending: 'end' | 'reset' = 'end';
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => sock.end());
    sock.on('error', () => {
      ending = 'reset';
    });
    sock.on('close', () => resolve(parseResponse(Buffer.concat(chunks), ending)));
  });
}

/** exchange: sends `request` (in the given pieces) on a fresh connection and collects the answer. */
export async function exchange(
  port: number,
  request: Uint8Array | Uint8Array[],
): Promise<RawResponse> {
  const sock = await connect(port);
  const done = collect(sock);
  for (const piece of Array.isArray(request) ? request : [request]) sock.write(piece);
  return done;
}
