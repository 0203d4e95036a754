// Backpressure: a 100 MB upload to an app that reads slowly. The front pauses the socket
// until the app pulls, so the client is held back by TCP and the process's memory stays
// flat. Measured two ways: the test process's peak RSS against its RSS before the upload,
// and how far the client's bytes run ahead of what the app has read.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Application } from '@tsgi/core';
import { afterAll, expect, test } from 'vitest';
import { type Served, serve, sleep } from './helpers.js';

const TOTAL = 100 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024);
for (let i = 0; i < CHUNK.length; i++) CHUNK[i] = (i * 7 + 3) & 0xff;
/** RSS may grow by at most this much during the upload (the whole body is 100 MB). */
const RSS_CEILING = 64 * 1024 * 1024;
/** The client may be at most this far ahead of the app (socket buffers on both sides). */
const AHEAD_CEILING = 32 * 1024 * 1024;

let s: Served | undefined;
afterAll(async () => {
  await s?.close(false);
});

test('100 MB upload, slow reader: RSS stays bounded, the client is held back', async () => {
  let appRead = 0;
  let clientSent = 0;
  let maxAhead = 0;
  const app: Application = async (environ, sr) => {
    const input = environ['tsgi.input'];
    const hash = createHash('sha256');
    for (;;) {
      const c = await input.read(64 * 1024);
      if (c.length === 0) break;
      hash.update(c);
      appRead += c.length;
      maxAhead = Math.max(maxAhead, clientSent - appRead);
      // Slow: a timer tick per 64 KiB (about 1 ms), 1600 times.
      await sleep(1);
    }
    const body = `${appRead} ${hash.digest('hex')}`;
    sr('200 OK', [
      ['Content-Type', 'text/plain'],
      ['Content-Length', String(body.length)],
    ]);
    return [body];
  };
  s = await serve(app);
  const port = s.port;

  globalThis.gc?.();
  await sleep(100);
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);

  const expected = createHash('sha256');
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/upload',
      headers: { 'Content-Length': String(TOTAL), 'Content-Type': 'application/octet-stream' },
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve(Buffer.concat(parts).toString()));
    });
    (async () => {
      for (let sent = 0; sent < TOTAL; sent += CHUNK.length) {
        expected.update(CHUNK);
        clientSent = sent + CHUNK.length;
        if (!req.write(CHUNK)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    })().catch(reject);
  });
  clearInterval(sampler);

  expect(answer).toBe(`${TOTAL} ${expected.digest('hex')}`);
  const growth = peak - before;
  console.log(
    `100 MB upload: RSS before ${(before / 2 ** 20).toFixed(1)} MiB, peak ${(peak / 2 ** 20).toFixed(1)} MiB (+${(growth / 2 ** 20).toFixed(1)} MiB); client at most ${(maxAhead / 2 ** 20).toFixed(1)} MiB ahead of the app`,
  );
  expect(growth).toBeLessThan(RSS_CEILING);
  expect(maxAhead).toBeLessThan(AHEAD_CEILING);
}, 120_000);
