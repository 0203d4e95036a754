// A small parser for raw HTTP/1.1 responses (one response, `Connection: close`), for the
// real-server tests that need to see how a response ended: a chunked body with or without
// its terminating chunk, a Content-Length met or not.
import { Buffer } from 'node:buffer';

/** RawResponse: one parsed response. */
export interface RawResponse {
  status: number;
  headers: Array<[string, string]>;
  header(name: string): string | undefined;
  body: Buffer;
  /**
   * How the body ended: `length` (Content-Length met), `chunked` (terminating chunk seen),
   * `close` (no framing: connection close), or `truncated` (the framing promised more).
   */
  framing: 'length' | 'chunked' | 'close' | 'truncated' | 'none';
}

/** parseRawResponse: parses `data` (everything received until the server closed). */
export function parseRawResponse(data: Buffer, requestMethod = 'GET'): RawResponse {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete head in ${JSON.stringify(data.toString('latin1'))}`);
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.push([line.slice(0, i), line.slice(i + 1).trim()]);
  }
  const header = (name: string) => {
    const l = name.toLowerCase();
    const vs = headers.filter(([k]) => k.toLowerCase() === l).map(([, v]) => v);
    return vs.length ? vs.join(', ') : undefined;
  };
  const rest = data.subarray(end + 4);
  if (requestMethod === 'HEAD' || status === 204 || status === 304) {
    return { status, headers, header, body: rest, framing: 'none' };
  }
  if (header('transfer-encoding')?.toLowerCase().includes('chunked')) {
    const parts: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const nl = rest.indexOf('\r\n', pos);
      if (nl < 0)
        return { status, headers, header, body: Buffer.concat(parts), framing: 'truncated' };
      const size = Number.parseInt(rest.subarray(pos, nl).toString('latin1'), 16);
      if (Number.isNaN(size)) {
        return { status, headers, header, body: Buffer.concat(parts), framing: 'truncated' };
      }
      if (size === 0)
        return { status, headers, header, body: Buffer.concat(parts), framing: 'chunked' };
      const chunk = rest.subarray(nl + 2, nl + 2 + size);
      parts.push(chunk);
      if (chunk.length < size) {
        return { status, headers, header, body: Buffer.concat(parts), framing: 'truncated' };
      }
      pos = nl + 2 + size + 2;
    }
  }
  const cl = header('content-length');
  if (cl !== undefined) {
    const n = Number(cl);
    return {
      status,
      headers,
      header,
      body: rest.subarray(0, n),
      framing: rest.length >= n ? 'length' : 'truncated',
    };
  }
  return { status, headers, header, body: rest, framing: 'close' };
}
