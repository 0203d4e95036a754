// Shared by test/fastcgi/servers.test.ts and test/scgi/servers.test.ts: the app the adapters
// serve behind real servers (the conformance app plus a few probes), an observation recorder
// whose JSON `bench/lib/render-observations.mjs` turns into the tables in docs/deploy/, and
// small helpers (framing headers, pattern bodies, a raw HTTP exchange).
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Application, Body, Environ, ErrorSink, LogLevel } from '@tsgi/core';
import { validator } from '@tsgi/core';
import { conformanceApp } from '../conformance/suite.js';
import { rawExchangeDetailed } from '../harness/clients.js';
import { findBinary } from '../harness/servers.js';

export const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** pattern: `n` deterministic bytes (all 256 values occur). */
export function patternBody(n: number, seed = 12345): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export async function* inPieces(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** waitFor: polls `f` until it returns true (or `timeoutMs` passes); returns the last value. */
export async function waitFor(f: () => boolean, timeoutMs = 10_000, stepMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (f()) return true;
    if (Date.now() > end) return false;
    await sleep(stepMs);
  }
}

export function pick(headers: Array<[string, string]>, name: string): string | null {
  const l = name.toLowerCase();
  const vs = headers.filter(([k]) => k.toLowerCase() === l).map(([, v]) => v);
  return vs.length ? vs.join(', ') : null;
}

/** Framing: the headers a GET/HEAD comparison is about. */
export interface Framing {
  contentLength: string | null;
  transferEncoding: string | null;
  contentEncoding: string | null;
  vary: string | null;
}

export const framing = (headers: Array<[string, string]>): Framing => ({
  contentLength: pick(headers, 'content-length'),
  transferEncoding: pick(headers, 'transfer-encoding'),
  contentEncoding: pick(headers, 'content-encoding'),
  vary: pick(headers, 'vary'),
});

/** describeFraming: `CL=2000`, `chunked`, `gzip chunked Vary`, `neither` for a table cell. */
export function describeFraming(f: Framing): string {
  const parts: string[] = [];
  if (f.contentEncoding) parts.push(f.contentEncoding);
  if (f.contentLength !== null) parts.push(`CL=${f.contentLength}`);
  if (f.transferEncoding) parts.push(f.transferEncoding);
  if (f.contentLength === null && !f.transferEncoding) parts.push('no CL/TE');
  if (f.vary) parts.push(`Vary: ${f.vary}`);
  return parts.join(', ');
}

// ---- the app -------------------------------------------------------------------------------

/** The identity probes' body: 2000 compressible bytes. */
export const IDENTITY_TEXT = Buffer.from(
  'tsgi HEAD/GET identity probe. '.repeat(67).slice(0, 2000),
  'latin1',
);

/** What a mid-response disconnect did to a streaming request. */
export interface StreamRecord {
  chunks: number;
  closed: number;
  aborted: boolean;
  finished: boolean;
}

/** Probe: what the app saw, read by the tests (the backend runs in the test process). */
export class Probe {
  /** REQUEST_METHOD of each identity request, in order. */
  methods: string[] = [];
  streams = new Map<string, StreamRecord>();
  /** Everything the adapter and the core logged (the adapter's `errors` sink). */
  logs: Array<{ level: LogLevel; text: string }> = [];
  sink: ErrorSink = (text, level) => {
    this.logs.push({ level, text });
  };
  logged(re: RegExp): boolean {
    return this.logs.some((l) => re.test(l.text));
  }
}

const jsonResponse = (sr: Parameters<Application>[1], value: unknown) => {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  sr('200 OK', [
    ['Content-Type', 'application/json'],
    ['Content-Length', String(body.length)],
  ]);
  return [body];
};

const hex = (v: unknown) =>
  typeof v === 'string' ? Buffer.from(v, 'latin1').toString('hex') : null;

/**
 * extrasApp: the probes, chosen by the `X-Obs` request header:
 * - `identity-cl` / `identity-nocl`: 2000 bytes of text/plain, with or without Content-Length,
 *   the full body on HEAD too (SPEC 8.1); records REQUEST_METHOD.
 * - `md5`: reads the whole input; JSON { length, md5, contentLength, transferEncoding,
 *   httpContentLength }.
 * - `dump`: JSON of the string variables plus hex of PATH_INFO, QUERY_STRING, HTTP_X_LATIN.
 * - `stream`: 16 KiB every 10 ms for `X-Stream-Seconds` (default 30), with a Content-Length
 *   when `X-Stream-Cl: 1`; the body has a close() and the app listens to `tsgi.signal`; both
 *   recorded under the `X-Stream-Id` header.
 */
export function extrasApp(probe: Probe): Application {
  return async (environ: Environ, sr) => {
    const what = String(environ.HTTP_X_OBS);
    switch (what) {
      case 'identity-cl':
      case 'identity-nocl': {
        probe.methods.push(environ.REQUEST_METHOD);
        sr('200 OK', [
          ['Content-Type', 'text/plain'],
          ...(what === 'identity-cl' ? [['Content-Length', '2000'] as [string, string]] : []),
        ]);
        return [IDENTITY_TEXT.subarray(0, 1000), IDENTITY_TEXT.subarray(1000)];
      }
      case 'md5': {
        const h = createHash('md5');
        let length = 0;
        for await (const c of environ['tsgi.input']) {
          h.update(c);
          length += c.length;
        }
        return jsonResponse(sr, {
          length,
          md5: h.digest('hex'),
          contentLength: environ.CONTENT_LENGTH ?? null,
          transferEncoding: environ.HTTP_TRANSFER_ENCODING ?? null,
          httpContentLength: environ.HTTP_CONTENT_LENGTH ?? null,
        });
      }
      case 'dump': {
        const vars: Record<string, string> = {};
        for (const [k, v] of Object.entries(environ)) if (typeof v === 'string') vars[k] = v;
        return jsonResponse(sr, {
          vars,
          pathInfoHex: hex(environ.PATH_INFO),
          queryHex: hex(environ.QUERY_STRING),
          latinHex: hex(environ.HTTP_X_LATIN),
          uriEncoding: environ['tsgi.uri_encoding'],
        });
      }
      case 'stream': {
        // 16 KiB every 10 ms, for X-Stream-Seconds (default 30) or until tsgi.signal fires;
        // with `X-Stream-Cl: 1` a Content-Length covering the whole time is declared.
        const id = String(environ.HTTP_X_STREAM_ID);
        const rec: StreamRecord = { chunks: 0, closed: 0, aborted: false, finished: false };
        probe.streams.set(id, rec);
        const signal = environ['tsgi.signal'];
        signal.addEventListener('abort', () => {
          rec.aborted = true;
        });
        const seconds = Number(environ.HTTP_X_STREAM_SECONDS ?? 30);
        const chunk = Buffer.alloc(16 * 1024, 0x73);
        const total = Math.ceil((seconds * 1000) / 10) * chunk.length;
        sr('200 OK', [
          ['Content-Type', 'application/octet-stream'],
          ...(environ.HTTP_X_STREAM_CL === '1'
            ? [['Content-Length', String(total)] as [string, string]]
            : []),
        ]);
        const body = {
          async *[Symbol.asyncIterator]() {
            for (let sent = 0; sent < total && !signal.aborted; sent += chunk.length) {
              rec.chunks++;
              yield chunk;
              await sleep(10);
            }
            rec.finished = !signal.aborted;
          },
          close() {
            rec.closed++;
          },
        };
        return body as unknown as Body;
      }
      default:
        sr('404 Not Found', [['Content-Type', 'text/plain']]);
        return [`no probe ${what}\n`];
    }
  };
}

/** serversApp: the conformance app, or a probe when the request has `X-Obs`. */
export function serversApp(probe: Probe): Application {
  const extras = validator(extrasApp(probe));
  return (environ, sr) =>
    environ.HTTP_X_OBS !== undefined ? extras(environ, sr) : conformanceApp(environ, sr);
}

// ---- observations ----------------------------------------------------------------------------

export interface ObservationFile {
  protocol: string;
  generatedBy: string;
  /** Row key -> the question the row answers (the table's first column). */
  rows: Record<string, string>;
  /** Column id -> { label, version, node, cells: row key -> text } */
  columns: Record<
    string,
    {
      label: string;
      version: string;
      node: string;
      cells: Record<string, string>;
      detail: Record<string, unknown>;
    }
  >;
}

/**
 * Observations: what each server did, as one short text per (server, question), plus the
 * raw details. `write()` merges into `$TSGI_OBSERVATIONS_DIR/<protocol>.json` (default: a
 * tsgi-observations dir under the OS temp dir), so running one server's block keeps the
 * others' last results.
 */
export class Observations {
  private columns: ObservationFile['columns'] = {};
  constructor(
    private readonly protocol: string,
    private readonly rows: Record<string, string>,
    private readonly generatedBy: string,
  ) {}

  column(id: string, label: string, server: 'nginx' | 'lighttpd' | 'apache' | 'cgi-fcgi') {
    this.columns[id] ??= {
      label,
      version: serverVersion(server),
      node: process.version,
      cells: {},
      detail: {},
    };
  }

  observe(id: string, row: string, cell: string, detail?: unknown): void {
    if (!(row in this.rows)) throw new Error(`observation row ${row} has no label`);
    const c = this.columns[id];
    if (!c) throw new Error(`observation column ${id} not declared`);
    c.cells[row] = cell;
    if (detail !== undefined) c.detail[row] = detail;
  }

  cell(id: string, row: string): string | undefined {
    return this.columns[id]?.cells[row];
  }

  static dir(): string {
    return process.env.TSGI_OBSERVATIONS_DIR ?? join(tmpdir(), 'tsgi-observations');
  }

  file(): string {
    return join(Observations.dir(), `${this.protocol}.json`);
  }

  write(): string | undefined {
    if (Object.values(this.columns).every((c) => Object.keys(c.cells).length === 0))
      return undefined;
    const path = this.file();
    let previous: Partial<ObservationFile> = {};
    try {
      previous = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      // first run
    }
    const columns = { ...(previous.columns ?? {}) };
    for (const [id, c] of Object.entries(this.columns)) {
      if (Object.keys(c.cells).length) columns[id] = c;
    }
    const out: ObservationFile = {
      protocol: this.protocol,
      generatedBy: this.generatedBy,
      rows: this.rows,
      columns,
    };
    mkdirSync(Observations.dir(), { recursive: true });
    writeFileSync(path, `${JSON.stringify(out, null, 2)}\n`);
    return path;
  }
}

export function serverVersion(server: 'nginx' | 'lighttpd' | 'apache' | 'cgi-fcgi'): string {
  if (server === 'cgi-fcgi') return 'libfcgi-bin';
  const bin = findBinary(server === 'apache' ? 'apache2' : server);
  if (!bin) return 'not installed';
  // nginx -v prints to stderr; Apache and lighttpd to stdout.
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return /nginx\/[0-9.]+|lighttpd\/[0-9.]+|Apache\/[0-9.]+/.exec(text)?.[0] ?? 'unknown';
}

// ---- raw HTTP ----------------------------------------------------------------------------------

export interface RawHttp {
  status: number;
  headers: Array<[string, string]>;
  header(name: string): string | undefined;
  /** Everything after the head, as received (chunked framing not removed). */
  rest: Buffer;
  ended: 'closed' | 'until' | 'timeout';
}

/** rawHttp: one request over a fresh connection (`Connection: close`), the head parsed. */
export async function rawHttp(
  port: number,
  method: string,
  target: string,
  headers: string[] = [],
): Promise<RawHttp> {
  const request = [
    `${method} ${target} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Connection: close',
    ...headers,
    '',
    '',
  ].join('\r\n');
  const r = await rawExchangeDetailed(port, Buffer.from(request, 'latin1'), { timeoutMs: 5000 });
  const end = r.data.indexOf('\r\n\r\n');
  const head = (end < 0 ? r.data : r.data.subarray(0, end)).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] ([0-9]{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const hs: Array<[string, string]> = [];
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) hs.push([line.slice(0, i), line.slice(i + 1).trim()]);
  }
  return {
    status,
    headers: hs,
    header: (n) => pick(hs, n) ?? undefined,
    rest: end < 0 ? Buffer.alloc(0) : r.data.subarray(end + 4),
    ended: r.reason,
  };
}
