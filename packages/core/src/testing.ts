import { Buffer } from 'node:buffer';
import { buildEnviron, type CgiParams } from './environ.js';
import { sourceFromIterable } from './input.js';
import { requestToCgi } from './request.js';
import { type RunOptions, type RunResult, runApp } from './run.js';
import { serializeCgiHead } from './serialize.js';
import { RequestSignal } from './signal.js';
import type {
  Application,
  Environ,
  HeaderList,
  LogLevel,
  ResponseHead,
  Transport,
} from './types.js';

/**
 * MemoryTransport: a Transport that records what `runApp` sends: the head, the body
 * chunks, whether it ended or was aborted, and the CGI-style bytes the socket adapters
 * would put on the wire. `onWrite` lets a test act between chunks (e.g. go away).
 */
export class MemoryTransport implements Transport {
  head: ResponseHead | undefined;
  chunks: Buffer[] = [];
  ended = false;
  aborted: Error | undefined;
  /** Calls in order, for tests of the lifecycle: `head`, `write`, `end`, `abort`. */
  calls: string[] = [];

  constructor(private readonly onWrite?: (bytesSoFar: number) => void | Promise<void>) {}

  sendHead(head: ResponseHead): void {
    this.calls.push('head');
    this.head = head;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.calls.push('write');
    this.chunks.push(Buffer.from(chunk));
    await this.onWrite?.(this.bytes);
  }

  end(): void {
    this.calls.push('end');
    this.ended = true;
  }

  abort(reason: Error): void {
    this.calls.push('abort');
    this.aborted = reason;
  }

  /** MemoryTransport.bytes: body bytes received so far. */
  get bytes(): number {
    let n = 0;
    for (const c of this.chunks) n += c.length;
    return n;
  }

  /** MemoryTransport.cgiBytes: what a CGI/FastCGI/SCGI adapter would emit: head then body. */
  cgiBytes(): Buffer {
    if (!this.head) return Buffer.alloc(0);
    return Buffer.concat([serializeCgiHead(this.head), ...this.chunks]);
  }
}

/** TestRequest: a request for the in-memory client. */
export interface TestRequest {
  method?: string;
  /** Raw request target, e.g. `/app/p%20q?x=1`. Default `/`. */
  target?: string;
  headers?: HeaderList | Record<string, string>;
  /** Request body: bytes, a latin-1 string, or chunks (delivered one pull at a time). */
  body?: Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
  /** Send the body without CONTENT_LENGTH, as a server does after dechunking. Default false. */
  chunked?: boolean;
  /** Mount prefix (SCRIPT_NAME). */
  mount?: string;
  /** Extra or overriding CGI variables (values latin-1 strings or bytes). */
  vars?: Record<string, string | Uint8Array>;
  /** Abort `tsgi.signal` once this many body bytes reached the transport (client goes away). */
  disconnectAfterBytes?: number;
}

/** TestResponse: what the in-memory client saw. */
export interface TestResponse {
  status: number;
  statusLine: string;
  headers: HeaderList;
  /** header(name): all values of `name` joined with ", ", or undefined. */
  header(name: string): string | undefined;
  body: Buffer;
  /** true when the transport's end() was called; false when it was aborted. */
  complete: boolean;
  aborted: Error | undefined;
  /** Everything written to `tsgi.errors` and the core's reports, with levels. */
  log: Array<{ level: LogLevel; text: string }>;
  /** The CGI-style bytes (Status line, headers, blank line, body). */
  raw: Buffer;
  environ: Environ;
  result: RunResult;
  transport: MemoryTransport;
}

/** TestOptions: runApp options plus buildEnviron's encoding and limits. */
export interface TestOptions extends RunOptions {
  uriEncoding?: string;
  maxBodyBytes?: number;
}

/**
 * request: runs `app` for one request entirely in memory: the CGI variables are built
 * as the HTTP front builds them (`requestToCgi`), then `buildEnviron` and `runApp`, the
 * same path every adapter takes. The in-memory target of the conformance suite.
 */
export async function request(
  app: Application,
  req: TestRequest = {},
  options: TestOptions = {},
): Promise<TestResponse> {
  const method = req.method ?? 'GET';
  const headerPairs: Array<[string, string]> = Array.isArray(req.headers)
    ? req.headers.map(([k, v]) => [k, v])
    : Object.entries(req.headers ?? {});
  let chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array> | null = null;
  let length: number | undefined;
  if (req.body !== undefined) {
    if (typeof req.body === 'string' || req.body instanceof Uint8Array) {
      const b = typeof req.body === 'string' ? Buffer.from(req.body, 'latin1') : req.body;
      chunks = [b];
      length = b.length;
    } else {
      chunks = req.body;
    }
  }
  if (chunks !== null && !req.chunked && length === undefined) {
    const all: Uint8Array[] = [];
    for await (const c of chunks as AsyncIterable<Uint8Array>) all.push(c);
    chunks = all;
    length = all.reduce((n, c) => n + c.length, 0);
  }
  if (length !== undefined && !req.chunked) {
    headerPairs.push(['Content-Length', String(length)]);
  }
  if (!headerPairs.some(([k]) => k.toLowerCase() === 'host'))
    headerPairs.unshift(['Host', 'localhost']);
  const { vars } = requestToCgi(
    {
      method,
      target: req.target ?? '/',
      mount: req.mount,
      remoteAddr: '127.0.0.1',
      remotePort: 40000,
    },
    headerPairs,
  );
  const params: CgiParams = { ...vars, ...req.vars };
  const log: Array<{ level: LogLevel; text: string }> = [];
  // A RequestSignal, as the adapters make: tsgi.signal is created only if the app reads it.
  const signal = new RequestSignal();
  const environ = buildEnviron(params, {
    input: chunks === null ? null : sourceFromIterable(chunks),
    errors: (text, level) => log.push({ level, text }),
    signal,
    uriEncoding: options.uriEncoding,
    maxBodyBytes: options.maxBodyBytes,
  });
  const limit = req.disconnectAfterBytes;
  const transport = new MemoryTransport(
    limit === undefined
      ? undefined
      : (n) => {
          if (n >= limit && !signal.aborted) signal.abort();
        },
  );
  const result = await runApp(app, environ, transport, options);
  const head = transport.head;
  const headers = head?.headers ?? [];
  return {
    status: head?.code ?? 0,
    statusLine: head?.status ?? '',
    headers,
    header(name: string) {
      const l = name.toLowerCase();
      const vs = headers.filter(([k]) => k.toLowerCase() === l).map(([, v]) => v);
      return vs.length === 0 ? undefined : vs.join(', ');
    },
    body: Buffer.concat(transport.chunks),
    complete: transport.ended,
    aborted: transport.aborted,
    log,
    raw: transport.cgiBytes(),
    environ,
    result,
    transport,
  };
}

/**
 * KNOWN_NAME_PROBES: well-known CGI names and near misses of them (one code unit changed,
 * case, one longer or shorter, a non-ASCII code unit), for codec tests of the known-name
 * fast path (`knownCgiName`): each must decode to exactly its own bytes.
 */
export const KNOWN_NAME_PROBES: readonly string[] = Object.freeze([
  'REQUEST_METHOD',
  'REQUEST_METHOX',
  'XEQUEST_METHOD',
  'request_method',
  'HTTP_HOST',
  'HTTP_HOSTS',
  'HTTP_HOS',
  'SERVER_PORT',
  'SERVER_NAME',
  'SERVER_NAMF',
  'HTTPS',
  'HTTP\u00e9',
]);
