/**
 * Small HTTP clients for integration tests: node:http with wire-order headers, a raw socket
 * exchange for byte-exact and pipelining checks, and curl.
 */
import http from 'node:http';
import { connect } from 'node:net';
import { findBinary } from './availability.js';
import { runProgram } from './run.js';

export interface HttpRequestOptions {
  port: number;
  host?: string;
  method?: string;
  path: string;
  /** Sent in this order. A Host header is added unless given. */
  headers?: [string, string][];
  body?: Buffer | string | AsyncIterable<Buffer | string>;
  /**
   * Send the body with Transfer-Encoding: chunked (no Content-Length). Without it a Buffer body
   * gets a Content-Length; an AsyncIterable body needs a Content-Length header of your own, or
   * it is sent chunked anyway.
   */
  chunked?: boolean;
  /** Defaults to an Agent without keep-alive: one connection per request. */
  agent?: http.Agent;
  /** Abort with an error after this long (default 30000 ms). */
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  httpVersion: string;
  /** Header names and values as on the wire, in order, duplicates kept. */
  rawHeaders: [string, string][];
  /** First value of a header, case-insensitive (undefined when absent). */
  headers(name: string): string | undefined;
  /** All values of a header, in order. */
  headerValues(name: string): string[];
  body: Buffer;
  rawTrailers: [string, string][];
}

const noKeepAlive = new http.Agent({ keepAlive: false });

export function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}

export function httpRequest(opts: HttpRequestOptions): Promise<HttpResponse> {
  const headers: [string, string][] = [...(opts.headers ?? [])];
  const has = (name: string) => headers.some(([k]) => k.toLowerCase() === name);
  const host = opts.host ?? '127.0.0.1';
  if (!has('host')) headers.unshift(['Host', `${host}:${opts.port}`]);
  const body = opts.body;
  const isBuffer = typeof body === 'string' || Buffer.isBuffer(body);
  if (opts.chunked) {
    if (!has('transfer-encoding')) headers.push(['Transfer-Encoding', 'chunked']);
  } else if (isBuffer && !has('content-length')) {
    headers.push(['Content-Length', String(Buffer.byteLength(body))]);
  }
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = http.request({
      host,
      port: opts.port,
      method: opts.method ?? 'GET',
      path: opts.path,
      // A flat [name, value, ...] array keeps order and duplicates (node >= 18.?).
      headers: headers.flat(),
      agent: opts.agent ?? noKeepAlive,
      setHost: false,
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`httpRequest ${opts.method ?? 'GET'} ${opts.path} timed out`));
    }, opts.timeoutMs ?? 30_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.on('end', () => {
        clearTimeout(timer);
        const raw = pairs(res.rawHeaders);
        const values = (name: string) =>
          raw.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          httpVersion: res.httpVersion,
          rawHeaders: raw,
          headers: (name) => values(name)[0],
          headerValues: values,
          body: Buffer.concat(chunks),
          rawTrailers: pairs(res.rawTrailers),
        });
      });
    });
    if (body === undefined) {
      req.end();
    } else if (isBuffer) {
      req.end(body);
    } else {
      (async () => {
        for await (const chunk of body) {
          if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        }
        req.end();
      })().catch((err) => req.destroy(err));
    }
  });
}

export interface RawExchangeOptions {
  /** Stop waiting after this long and return what arrived (default 5000 ms). */
  timeoutMs?: number;
  /** Stop (and close) as soon as this returns true for everything received so far. */
  until?: (received: Buffer) => boolean;
  host?: string;
  /** Half-close our side after writing (default false: servers may treat EOF as abort). */
  endAfterWrite?: boolean;
}

export interface RawExchangeResult {
  data: Buffer;
  /** Why collection stopped. */
  reason: 'closed' | 'until' | 'timeout';
}

/** Connect, write `bytes`, collect everything until the peer closes / `until` / timeout. */
export function rawExchangeDetailed(
  port: number,
  bytes: Buffer | string,
  opts: RawExchangeOptions = {},
): Promise<RawExchangeResult> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: opts.host ?? '127.0.0.1' });
    const chunks: Buffer[] = [];
    let finished = false;
    const finish = (reason: RawExchangeResult['reason']) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), reason });
    };
    const timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? 5_000);
    sock.on('connect', () => {
      sock.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
      if (opts.endAfterWrite) sock.end();
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      if (opts.until?.(Buffer.concat(chunks))) finish('until');
    });
    sock.on('end', () => finish('closed'));
    sock.on('close', () => finish('closed'));
    sock.on('error', (err) => {
      if (finished) return;
      // A reset after the server sent its answer still counts as "closed" with data.
      if (chunks.length) return finish('closed');
      finished = true;
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** rawExchangeDetailed, returning only the bytes. Strings are sent as latin1. */
export async function rawExchange(
  port: number,
  bytes: Buffer | string,
  opts: RawExchangeOptions = {},
): Promise<Buffer> {
  return (await rawExchangeDetailed(port, bytes, opts)).data;
}

export interface CurlResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Run `curl -sS ...args`; never rejects on a curl error (look at `code`), only on timeout. */
export function curl(args: string[], opts: { timeoutMs?: number } = {}): Promise<CurlResult> {
  const bin = findBinary('curl');
  if (!bin) return Promise.reject(new Error('curl not installed (apt-get install curl)'));
  return runProgram(bin, ['-sS', ...args], { timeoutMs: opts.timeoutMs });
}

/**
 * Headers that legitimately differ between two responses of the same resource, dropped by
 * headersForComparison:
 * - date: the clock.
 * - keep-alive: Apache's `max=N` counts down per request on the connection.
 * - connection: depends on the client's connection handling and on how many requests the
 *   connection has served (Apache says `close` at MaxKeepAliveRequests), not on the resource.
 * - age, x-request-id, request-id: caches and tracing.
 * Kept on purpose: Content-Length, Transfer-Encoding, Content-Encoding, Vary, ETag, Server —
 * exactly what a GET/HEAD comparison is about (ETag here is the app's, nothing static).
 */
export const VOLATILE_HEADERS = [
  'date',
  'keep-alive',
  'connection',
  'age',
  'x-request-id',
  'request-id',
] as const;

/**
 * Lower-cased names, volatile headers dropped, sorted by name (stable: same-name headers keep
 * their order), so that e.g. a GET and a HEAD response can be compared with toEqual.
 */
export function headersForComparison(rawHeaders: [string, string][]): [string, string][] {
  const volatile = new Set<string>(VOLATILE_HEADERS);
  return rawHeaders
    .map(([k, v]): [string, string] => [k.toLowerCase(), v])
    .filter(([k]) => !volatile.has(k))
    .map((h, i) => ({ h, i }))
    .sort((a, b) => (a.h[0] < b.h[0] ? -1 : a.h[0] > b.h[0] ? 1 : a.i - b.i))
    .map(({ h }) => h);
}
