// upload.mjs: reads the request body (tsgi.input) to the end, 64 KiB at a time, and answers
// with its size and SHA-256. Works for Content-Length and chunked uploads alike; memory
// stays flat however large the upload (the HTTP front reads the socket only as fast as
// the app reads tsgi.input).
//   tsgi http examples/upload.mjs   ->  curl -T bigfile http://127.0.0.1:8000/
import { createHash } from 'node:crypto';

export default async function app(environ, startResponse) {
  const input = environ['tsgi.input'];
  const hash = createHash('sha256');
  let size = 0;
  for (;;) {
    const chunk = await input.read(65536);
    if (chunk.length === 0) break;
    hash.update(chunk);
    size += chunk.length;
  }
  const body = `${JSON.stringify({ size, sha256: hash.digest('hex') })}\n`;
  startResponse('200 OK', [
    ['Content-Type', 'application/json'],
    ['Content-Length', String(Buffer.byteLength(body))],
  ]);
  return [body];
}
