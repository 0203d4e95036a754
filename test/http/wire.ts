// A raw HTTP/1.1 client for the conformance suite's pipelined target: several requests in
// one write on one connection, the responses parsed off the wire in order (Content-Length,
// chunked, or until the connection closes; no body for HEAD, 204, 304; 1xx skipped).
import { Buffer } from 'node:buffer';
import { connect } from 'node:net';

export interface WireRequest {
  method?: string;
  path: string;
  headers?: Array<[string, string]>;
  body?: Buffer;
  chunked?: boolean;
}

export interface WireResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

/** serializeRequest: the request as bytes (Host added; Content-Length or chunked framing). */
export function serializeRequest(req: WireRequest, host: string): Buffer {
  const headers = [...(req.headers ?? [])];
  if (!headers.some(([k]) => k.toLowerCase() === 'host')) headers.unshift(['Host', host]);
  const parts: Buffer[] = [];
  if (req.body !== undefined) {
    if (req.chunked) {
      headers.push(['Transfer-Encoding', 'chunked']);
      // Several chunks of at most 7000 bytes, as a streaming client would send them.
      for (let i = 0; i < req.body.length; i += 7000) {
        const c = req.body.subarray(i, i + 7000);
        parts.push(Buffer.from(`${c.length.toString(16)}\r\n`, 'latin1'), c, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('0\r\n\r\n'));
    } else {
      headers.push(['Content-Length', String(req.body.length)]);
      parts.push(req.body);
    }
  }
  const head = `${req.method ?? 'GET'} ${req.path} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), ...parts]);
}

/** pipelined: sends every request in one write and returns the responses in order. */
export function pipelined(
  port: number,
  requests: WireRequest[],
  timeoutMs = 20_000,
): Promise<WireResponse[]> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    let closed = false;
    const out: WireResponse[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`pipelined: timed out after ${out.length} of ${requests.length} responses`));
    }, timeoutMs);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(out);
    };
    const step = () => {
      for (;;) {
        if (out.length === requests.length) return finish();
        const method = (requests[out.length]?.method ?? 'GET').toUpperCase();
        const r = parseOne(buf, method, closed);
        if (r === undefined) {
          if (closed)
            return finish(new Error(`pipelined: connection closed after ${out.length} responses`));
          return;
        }
        buf = buf.subarray(r.used);
        if (r.response.status >= 100 && r.response.status < 200) continue;
        out.push(r.response);
      }
    };
    sock.on('connect', () => {
      sock.write(Buffer.concat(requests.map((q) => serializeRequest(q, `127.0.0.1:${port}`))));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      step();
    });
    sock.on('close', () => {
      closed = true;
      step();
    });
    sock.on('error', () => undefined);
  });
}

function parseOne(
  buf: Buffer,
  method: string,
  closed: boolean,
): { response: WireResponse; used: number } | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers = lines.slice(1).map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
  });
  const get = (n: string) => headers.find(([k]) => k.toLowerCase() === n)?.[1];
  let at = end + 4;
  const done = (body: Buffer, used: number) => ({ response: { status, headers, body }, used });
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return done(Buffer.alloc(0), at);
  }
  if (get('transfer-encoding')?.toLowerCase() === 'chunked') {
    const chunks: Buffer[] = [];
    for (;;) {
      const nl = buf.indexOf('\r\n', at);
      if (nl < 0) return undefined;
      const size = Number.parseInt(buf.subarray(at, nl).toString('latin1'), 16);
      if (size === 0) {
        const trailerEnd = buf.indexOf('\r\n', nl + 2);
        if (trailerEnd < 0) return undefined;
        return done(Buffer.concat(chunks), trailerEnd + 2);
      }
      if (buf.length < nl + 2 + size + 2) return undefined;
      chunks.push(buf.subarray(nl + 2, nl + 2 + size));
      at = nl + 2 + size + 2;
    }
  }
  const cl = get('content-length');
  if (cl !== undefined) {
    const n = Number(cl);
    // A response cut short (the server closed after fewer bytes) is returned as it is.
    if (buf.length - at < n) return closed ? done(buf.subarray(at), buf.length) : undefined;
    return done(buf.subarray(at, at + n), at + n);
  }
  return closed ? done(buf.subarray(at), buf.length) : undefined;
}
