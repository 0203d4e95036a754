// nginx `scgi_request_buffering off` (issue: "nginx 1.22 ... sends a wrong CONTENT_LENGTH (the
// real one is in HTTP_CONTENT_LENGTH)"): what the adapter gets and does, measured behind the
// real nginx. The adapter trusts CONTENT_LENGTH only (SCGI requires it, and it is the one
// length the server vouches for) and the core warns on tsgi.errors when HTTP_CONTENT_LENGTH
// disagrees (SPEC 1.6); docs/deploy/scgi.md says not to use the option with nginx 1.22.
import { createHash } from 'node:crypto';
import type { Application } from '@tsgi/core';
import { type ScgiServer, serveScgi } from '@tsgi/scgi';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Probe } from '../fastcgi/shared.js';
import { httpRequest } from '../harness/clients.js';
import { describeWithServer, useFront } from '../harness/servers.js';

interface Seen {
  contentLength: string | null;
  httpContentLength: boolean;
  read: number;
  md5: string;
}

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

describeWithServer(['nginx'], 'scgi behind nginx with scgi_request_buffering off', () => {
  const probe = new Probe();
  const seen: Seen[] = [];
  const app: Application = async (environ, sr) => {
    const body = await environ['tsgi.input'].read();
    seen.push({
      contentLength: (environ.CONTENT_LENGTH as string | undefined) ?? null,
      httpContentLength: Object.hasOwn(environ, 'HTTP_CONTENT_LENGTH'),
      read: body.length,
      md5: md5(body),
    });
    sr('200 OK', [
      ['Content-Type', 'text/plain'],
      ['Content-Length', String(String(body.length).length)],
    ]);
    return [String(body.length)];
  };
  let backend: ScgiServer;
  beforeAll(async () => {
    backend = await serveScgi(app, {
      listen: { host: '127.0.0.1', port: 0 },
      mount: '/app',
      errors: probe.sink,
    });
  });
  afterAll(async () => {
    await backend?.close({ timeoutMs: 1000 });
  });
  const front = useFront(() => {
    const a = backend.address;
    if (!a || typeof a === 'string') throw new Error('expected a TCP address');
    return {
      server: 'nginx',
      protocol: 'scgi',
      backend: { host: '127.0.0.1', port: a.port },
      prefix: '/app',
      requestBuffering: false,
    };
  });
  /** POSTs `body` to `path` through nginx, the logs cleared first: a 200; what the app saw. */
  const post = async (path: string, body: Buffer, chunked = false) => {
    probe.logs.length = 0;
    const r = await httpRequest({ port: front().port, method: 'POST', path, body, chunked });
    expect(r.status).toBe(200);
    return { r, s: seen.at(-1) as Seen };
  };

  it('a POST with Content-Length: nginx 1.22 sends the bytes it had as CONTENT_LENGTH; the adapter trusts it and the core warns', async () => {
    const body = Buffer.alloc(100_000, 0x61);
    const { r, s } = await post('/app/len', body);
    const cl = Number(s.contentLength);
    // Measured with nginx 1.22.1: CONTENT_LENGTH is what nginx had read of the body when it
    // connected (0 or a few KiB), not the 100000 of the request; the real length is only in
    // HTTP_CONTENT_LENGTH, which never reaches the app (SPEC 1.6).
    expect(cl).toBeGreaterThanOrEqual(0);
    expect(cl).toBeLessThan(body.length);
    expect(s.httpContentLength).toBe(false);
    // Never past CONTENT_LENGTH (SPEC 2.x): the app gets exactly that many bytes, all
    // from the start of the body.
    expect(s.read).toBe(cl);
    expect(s.md5).toBe(md5(body.subarray(0, cl)));
    expect(r.body.toString()).toBe(String(cl));
    expect(probe.logs).toContainEqual({
      level: 'warn',
      text: `core: CONTENT_LENGTH ${cl} disagrees with the Content-Length header ${body.length}; trusting CONTENT_LENGTH (nginx scgi_request_buffering off bug?)`,
    });
  });

  it('a chunked POST: nginx buffers it anyway (SCGI needs a length) and sends the right CONTENT_LENGTH', async () => {
    const body = Buffer.alloc(50_000, 0x62);
    const { s } = await post('/app/chunked', body, true);
    expect(s).toEqual({
      contentLength: String(body.length),
      httpContentLength: false,
      read: body.length,
      md5: md5(body),
    });
    expect(probe.logs.filter((l) => l.level !== 'debug')).toEqual([]);
  });
});
