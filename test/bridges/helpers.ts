import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';

/** Part: one part of a multipart/form-data body. */
export type Part =
  | { name: string; value: string }
  | { name: string; filename: string; type: string; data: Buffer };

/** multipart: a multipart/form-data body and its Content-Type. */
export function multipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----tsgi${createHash('sha1').update(String(Math.random())).digest('hex').slice(0, 16)}`;
  const out: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if ('filename' in p) head += `; filename="${p.filename}"\r\nContent-Type: ${p.type}`;
    out.push(Buffer.from(`${head}\r\n\r\n`, 'utf8'));
    out.push('filename' in p ? p.data : Buffer.from(p.value, 'utf8'));
    out.push(Buffer.from('\r\n'));
  }
  out.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(out), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** sha256: hex digest. */
export function sha256(data: Buffer | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// Set by an HTTP server, not by the app: the date and the message framing (Node's server
// sends a GET without a length chunked, and a HEAD without Transfer-Encoding).
const SERVER_OWNED = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

/** comparable: the app's headers (lower-cased names), without those the server owns. */
export function comparable(headers: Array<[string, string]>): Array<[string, string]> {
  return headers
    .filter(([k]) => !SERVER_OWNED.has(k.toLowerCase()))
    .map(([k, v]) => [k.toLowerCase(), v] as [string, string]);
}

/** sleep: resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
