// Test helpers: bytes as hex, splits of a byte stream, and a raw-socket FastCGI client (the
// web server's side of the FastCGI spec: it sends BEGIN_REQUEST, PARAMS, STDIN records and
// reads the records that come back).
import { Buffer } from 'node:buffer';
import net from 'node:net';
import {
  decodeEndRequest,
  decodeNameValuePairs,
  type EndRequest,
  encodeBeginRequest,
  encodeNameValuePairs,
  encodeRecord,
  encodeStream,
  type FastcgiRecord,
  FCGI_ABORT_REQUEST,
  FCGI_DATA,
  FCGI_END_REQUEST,
  FCGI_GET_VALUES,
  FCGI_GET_VALUES_RESULT,
  FCGI_KEEP_CONN,
  FCGI_PARAMS,
  FCGI_RESPONDER,
  FCGI_STDERR,
  FCGI_STDIN,
  FCGI_STDOUT,
  FCGI_UNKNOWN_TYPE,
  RecordParser,
} from '../src/codec.js';

/** latin1: a string whose code points are bytes. */
export const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** hex: bytes from hex digits; spaces are ignored. */
export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

/** toHex: bytes as lowercase hex without spaces. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
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

/** Params: CGI variables for a request, values as latin-1 strings or bytes. */
export type Params = ReadonlyArray<readonly [string, string | Uint8Array]>;

/**
 * requestBytes: a whole request as a web server sends it: BEGIN_REQUEST, the PARAMS stream
 * and its empty record, the STDIN stream and its empty record.
 */
export function requestBytes(
  id: number,
  params: Params,
  body: Uint8Array = Buffer.alloc(0),
  options: { keepConn?: boolean; role?: number; data?: Uint8Array } = {},
): Buffer {
  const parts = [
    encodeBeginRequest(id, options.role ?? FCGI_RESPONDER, options.keepConn ? FCGI_KEEP_CONN : 0),
    encodeStream(FCGI_PARAMS, id, encodeNameValuePairs(params), { end: true }),
    encodeStream(FCGI_STDIN, id, body, { end: true }),
  ];
  if (options.data !== undefined)
    parts.push(encodeStream(FCGI_DATA, id, options.data, { end: true }));
  return Buffer.concat(parts);
}

/** Response: what came back for one request id. */
export interface Response {
  stdout: Buffer;
  stderr: Buffer;
  end: EndRequest;
  /** The records of this request, in order (types only). */
  types: number[];
  /** Status from the CGI head, NaN without one. */
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

/** parseHead: splits CGI-style stdout at the first CRLF CRLF. */
export function parseHead(stdout: Buffer): Pick<Response, 'status' | 'headers' | 'body'> {
  const i = stdout.indexOf('\r\n\r\n');
  const head = i < 0 ? '' : stdout.subarray(0, i).toString('latin1');
  const headers: Array<[string, string]> = [];
  for (const line of head.split('\r\n')) {
    const c = line.indexOf(':');
    if (c > 0) headers.push([line.slice(0, c), line.slice(c + 1).trim()]);
  }
  const status = Number.parseInt(headers.find(([n]) => n === 'Status')?.[1] ?? '', 10);
  return { status, headers, body: i < 0 ? stdout : stdout.subarray(i + 4) };
}

/**
 * FcgiClient: a raw FastCGI client on one TCP connection. It records every record it
 * receives; `response(id)` resolves at that request's END_REQUEST.
 */
export class FcgiClient {
  readonly records: FastcgiRecord[] = [];
  /** Every byte received, for exact comparisons. */
  readonly received: Buffer[] = [];
  /** How the connection ended: `end` (FIN) or `reset`. */
  readonly closed: Promise<'end' | 'reset'>;
  private readonly parser = new RecordParser();
  private waiters: Array<() => void> = [];
  private ending: 'end' | 'reset' = 'end';
  isClosed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.received.push(d);
      for (const r of this.parser.push(d)) {
        // Copy: the content may be a view of a socket buffer.
        this.records.push({
          type: r.type,
          requestId: r.requestId,
          content: Buffer.from(r.content),
        });
      }
      this.wake();
    });
    // Like a web server: when the application closes its side, close ours.
    socket.on('end', () => socket.end());
    socket.on('error', () => {
      this.ending = 'reset';
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.isClosed = true;
        this.wake();
        resolve(this.ending);
      });
    });
  }

  /** FcgiClient.connect: a connection to 127.0.0.1:port (or a Unix socket path). */
  static connect(port: number | string): Promise<FcgiClient> {
    return new Promise((resolve, reject) => {
      const s =
        typeof port === 'number'
          ? net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
          : net.connect({ path: port, allowHalfOpen: true });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new FcgiClient(s));
      });
      s.once('error', reject);
    });
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** FcgiClient.write: raw bytes to the server. */
  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (e) => (e ? reject(e) : resolve()));
    });
  }

  /** FcgiClient.send: a whole request (see requestBytes). */
  send(
    id: number,
    params: Params,
    body?: Uint8Array,
    options?: Parameters<typeof requestBytes>[3],
  ) {
    return this.write(requestBytes(id, params, body, options));
  }

  /** FcgiClient.abort: an FCGI_ABORT_REQUEST for `id`. */
  abort(id: number) {
    return this.write(encodeRecord(FCGI_ABORT_REQUEST, id));
  }

  /** FcgiClient.getValues: sends FCGI_GET_VALUES for `names` and resolves to the result pairs. */
  async getValues(names: string[]): Promise<Array<[string, string]>> {
    const before = this.records.length;
    await this.write(
      encodeRecord(FCGI_GET_VALUES, 0, encodeNameValuePairs(names.map((n) => [n, '']))),
    );
    const r = await this.until(() =>
      this.records.slice(before).find((x) => x.type === FCGI_GET_VALUES_RESULT),
    );
    return decodeNameValuePairs(r.content).map(([n, v]) => [n, Buffer.from(v).toString('latin1')]);
  }

  /** FcgiClient.until: resolves once `check` returns something, rejects if the connection closes first. */
  until<T>(check: () => T | undefined, what = 'a record'): Promise<T> {
    return new Promise((resolve, reject) => {
      const test = () => {
        const v = check();
        if (v !== undefined) {
          resolve(v);
          return;
        }
        if (this.isClosed) {
          reject(new Error(`connection closed while waiting for ${what}`));
          return;
        }
        this.waiters.push(test);
      };
      test();
    });
  }

  /** FcgiClient.response: the stdout, stderr and END_REQUEST of request `id` (the first one not yet taken). */
  async response(id: number): Promise<Response> {
    const endIndex = await this.until(() => {
      const from = this.takenFor.get(id) ?? 0;
      const i = this.records.findIndex(
        (r, k) => k >= from && r.type === FCGI_END_REQUEST && r.requestId === id,
      );
      return i < 0 ? undefined : i;
    }, `END_REQUEST ${id}`);
    const mine = this.records
      .slice(this.takenFor.get(id) ?? 0, endIndex + 1)
      .filter((r) => r.requestId === id);
    this.takenFor.set(id, endIndex + 1);
    const stdout = Buffer.concat(mine.filter((r) => r.type === FCGI_STDOUT).map((r) => r.content));
    const stderr = Buffer.concat(mine.filter((r) => r.type === FCGI_STDERR).map((r) => r.content));
    return {
      stdout,
      stderr,
      end: decodeEndRequest(this.records[endIndex]!.content),
      types: mine.map((r) => r.type),
      ...parseHead(stdout),
    };
  }

  private readonly takenFor = new Map<number, number>();

  /** FcgiClient.unknownTypes: the types named in the FCGI_UNKNOWN_TYPE records received. */
  unknownTypes(): number[] {
    return this.records.filter((r) => r.type === FCGI_UNKNOWN_TYPE).map((r) => r.content[0]!);
  }

  /** FcgiClient.close: closes the client's side. */
  close() {
    this.socket.end();
  }

  /** FcgiClient.destroy: drops the connection. */
  destroy() {
    this.socket.destroy();
  }
}
