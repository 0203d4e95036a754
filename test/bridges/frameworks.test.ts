// Real Hono, Express 5 and Koa 3 apps through the bridges, in memory (the core's
// request(): requestToCgi + buildEnviron + runApp, the path every adapter takes).
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromNodeListener } from '@tsgi/bridges';
import { request } from '@tsgi/core/testing';
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { FRAMEWORKS, Probe } from './apps.js';
import { comparable, multipart, sha256 } from './helpers.js';

// Two ways to mount: the app's routes include the prefix and it gets the full URL
// (default), or its routes are root-relative and the bridge strips the prefix.
const MODES = [
  { label: 'full URL', base: '/app', stripMount: false },
  { label: 'stripMount', base: '', stripMount: true },
] as const;

const HOST = 'example.org:8080';
const HEAD_PATHS = ['/hello', '/cookies', '/redirect', '/stream?n=3'];

function json(res: { body: Buffer }): any {
  return JSON.parse(res.body.toString('utf8'));
}

describe.each(FRAMEWORKS)('$name', (fw) => {
  describe.each(MODES)('mounted at /app, $label', (mode) => {
    const make = (probe = new Probe()) =>
      fw.tsgi({ base: mode.base, stripMount: mode.stripMount, probe });
    const get = (app: ReturnType<typeof make>, path: string, extra: object = {}) =>
      request(app, {
        target: `/app${path}`,
        mount: '/app',
        headers: { Host: HOST },
        ...extra,
      });

    it('routes a GET to its handler', async () => {
      const res = await get(make(), '/hello');
      expect(res.status).toBe(200);
      expect(res.complete).toBe(true);
      expect(res.body.toString()).toBe(`hello from ${fw.name}`);
      expect(res.header('content-type')).toMatch(/^text\/plain/);
    });

    it('answers 404 for an unknown route, and for a path outside its mount', async () => {
      const app = make();
      expect((await get(app, '/nope')).status).toBe(404);
    });

    it('sees the method, path, query, Host and headers', async () => {
      const res = await get(make(), '/info?x=1&y=%C3%A9&z=a%20b', {
        headers: { Host: HOST, 'X-Test': 'yes' },
      });
      expect(res.status).toBe(200);
      const info = json(res);
      expect(info.method).toBe('GET');
      expect(info.query).toEqual({ x: '1', y: 'é', z: 'a b' });
      expect(info.header).toBe('yes');
      expect(info.protocol).toBe('http');
      if (fw.name === 'hono') {
        // The Request URL: scheme, Host, and the path with or without the prefix.
        const path = mode.stripMount ? '/info' : '/app/info';
        expect(info.url).toBe(`http://${HOST}${path}?x=1&y=%C3%A9&z=a%20b`);
        expect(info.path).toBe(path);
        expect(info.ip).toBe('127.0.0.1');
      } else {
        expect(info.host).toBe(HOST);
        expect(info.ip).toBe('127.0.0.1');
        expect(info.path).toBe('/info');
        // Express keeps the preset originalUrl; Koa takes req.url as its originalUrl.
        expect(info.originalUrl).toBe(
          fw.name === 'koa' && mode.stripMount
            ? '/info?x=1&y=%C3%A9&z=a%20b'
            : '/app/info?x=1&y=%C3%A9&z=a%20b',
        );
      }
      if (fw.name === 'express') {
        // Under stripMount Express presents the prefix as a mounted sub-app's baseUrl.
        expect(info.baseUrl).toBe('/app');
        expect(info.url).toBe('/info?x=1&y=%C3%A9&z=a%20b');
      }
    });

    it('parses a JSON body', async () => {
      const payload = { a: [1, 2, 3], s: 'ünïcødé', n: null };
      const res = await get(make(), '/json', {
        method: 'POST',
        headers: { Host: HOST, 'Content-Type': 'application/json' },
        body: Buffer.from(JSON.stringify(payload), 'utf8'),
      });
      expect(res.status).toBe(200);
      expect(json(res)).toEqual({ received: payload });
    });

    it('parses an urlencoded form post', async () => {
      const res = await get(make(), '/form', {
        method: 'POST',
        headers: { Host: HOST, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'name=J%C3%BCrgen&city=Z%C3%BCrich&empty=',
      });
      expect(res.status).toBe(200);
      expect(json(res)).toEqual({ fields: { name: 'Jürgen', city: 'Zürich', empty: '' } });
    });

    it('parses a multipart form post with a file', async () => {
      const file = Buffer.alloc(200_000);
      for (let i = 0; i < file.length; i++) file[i] = (i * 31) & 0xff;
      const { body, contentType } = multipart([
        { name: 'title', value: 'a report' },
        { name: 'upload', filename: 'data.bin', type: 'application/octet-stream', data: file },
      ]);
      // Delivered in 7 KiB pieces, as a socket would.
      const pieces: Buffer[] = [];
      for (let i = 0; i < body.length; i += 7000) pieces.push(body.subarray(i, i + 7000));
      const res = await get(make(), '/multipart', {
        method: 'POST',
        headers: { Host: HOST, 'Content-Type': contentType },
        body: pieces,
      });
      expect(res.status).toBe(200);
      expect(json(res)).toEqual({
        fields: { title: 'a report' },
        files: [{ field: 'upload', filename: 'data.bin', size: file.length, sha256: sha256(file) }],
      });
    });

    it('streams a response chunk by chunk, without inventing a Content-Length', async () => {
      const res = await get(make(), '/stream?n=12');
      expect(res.status).toBe(200);
      expect(res.complete).toBe(true);
      expect(res.body.toString()).toBe(
        Array.from({ length: 12 }, (_, i) => `chunk ${i}\n`).join(''),
      );
      expect(res.header('content-length')).toBeUndefined();
      expect(res.header('transfer-encoding')).toBeUndefined();
      // More than one write reached the transport: it was not collected first.
      expect(res.transport.chunks.length).toBeGreaterThan(1);
    });

    it('sends several Set-Cookie headers, one line each', async () => {
      const res = await get(make(), '/cookies');
      expect(res.status).toBe(200);
      const cookies = res.headers
        .filter(([k]) => k.toLowerCase() === 'set-cookie')
        .map(([, v]) => v);
      expect(cookies).toHaveLength(3);
      expect(cookies[0]).toMatch(/^a=1;/);
      expect(cookies[1]).toMatch(/^b=2;.*HttpOnly/i);
      expect(cookies[2]).toMatch(/^c=3/);
      expect(res.raw.toString('latin1')).toMatch(/\r\nset-cookie: a=1[^\r]*\r\nset-cookie: b=2/i);
    });

    it('redirects', async () => {
      const res = await get(make(), '/redirect');
      expect(res.status).toBe(302);
      expect(res.statusLine).toBe('302 Found');
      expect(res.header('location')).toBe(`${mode.base}/hello`);
    });

    it("answers a thrown error with the framework's own 500", async () => {
      const probe = new Probe();
      const res = await get(make(probe), '/error');
      expect(res.status).toBe(500);
      expect(res.complete).toBe(true);
      // Express's finalhandler shows the stack outside production; the others a fixed text.
      expect(res.body.toString()).toMatch(
        fw.name === 'express' ? /Error: boom/ : /Internal Server Error/,
      );
      if (fw.name === 'hono') expect(probe.events).toContain('hono:error:boom');
      if (fw.name === 'koa') expect(probe.events).toContain('koa:error:boom');
      // The framework handled it: the core's own fixed 500 was not needed.
      expect(res.result.error).toBeUndefined();
    });

    for (const path of HEAD_PATHS) {
      it(`gives HEAD ${path} the GET headers, and the body for the front server to drop`, async () => {
        const app = make();
        const g = await get(app, path);
        const h = await get(app, path, { method: 'HEAD' });
        expect(h.environ.REQUEST_METHOD).toBe('HEAD');
        expect(h.statusLine).toBe(g.statusLine);
        expect(comparable(h.headers)).toEqual(comparable(g.headers));
        // HEAD reached the framework as GET: a CGI-style front gets the body to compute
        // its own headers from (lighttpd adds Content-Length), then drops it.
        expect(h.body).toEqual(g.body);
        expect(h.complete).toBe(true);
        // Under the HTTP front the core drops it itself.
        const dropped = await request(
          app,
          { method: 'HEAD', target: `/app${path}`, mount: '/app', headers: { Host: HOST } },
          { headBody: 'drop' },
        );
        expect(comparable(dropped.headers)).toEqual(comparable(g.headers));
        expect(dropped.body.length).toBe(0);
      });
    }

    it("keeps the framework's own HEAD handling with mapHeadToGet: false", async () => {
      const app = fw.tsgi({ base: mode.base, stripMount: mode.stripMount, mapHeadToGet: false });
      for (const path of HEAD_PATHS) {
        const g = await get(app, path);
        const h = await get(app, path, { method: 'HEAD' });
        expect(h.statusLine).toBe(g.statusLine);
        expect(comparable(h.headers)).toEqual(comparable(g.headers));
        // Hono answers HEAD with a null body, Express and Koa end() without one.
        expect(h.body.length).toBe(0);
        expect(h.complete).toBe(true);
      }
    });

    it('lets the framework see the client go away', async () => {
      const probe = new Probe();
      const res = await get(make(probe), '/endless', { disconnectAfterBytes: 200 });
      expect(res.complete).toBe(false);
      expect(res.aborted).toBeDefined();
      expect(res.body.length).toBeGreaterThanOrEqual(200);
      // Seen by the time runApp settled, not later: a CGI process exits right then
      // (servers.test.ts, behind Apache).
      const settled = [...probe.events];
      const expected = {
        hono: ['hono:abort', 'hono:signal'],
        express: ['express:aborted', 'express:close', 'express:req-close'],
        koa: ['koa:close', 'koa:stream-destroyed'],
      }[fw.name];
      expect(settled).toEqual(expect.arrayContaining(expected));
      if (fw.name === 'hono') {
        await probe.wait('hono:abort');
        await probe.wait('hono:signal');
      } else if (fw.name === 'express') {
        await probe.wait('express:close');
        await probe.wait('express:aborted');
        await probe.wait('express:req-close');
      } else {
        await probe.wait('koa:close');
        await probe.wait('koa:stream-destroyed');
      }
      // Logged as a disconnect (debug), not as an application error.
      expect(res.log.filter((l) => l.level === 'error')).toEqual([]);
    });
  });

  it('streams a 50 MB upload through the framework with bounded memory', async () => {
    const app = fw.tsgi({ base: '', stripMount: true });
    const chunk = Buffer.alloc(65536);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 0xff;
    const n = 800; // 800 x 64 KiB = 50 MiB
    const h = createHash('sha256');
    for (let i = 0; i < n; i++) h.update(chunk);
    const expected = h.digest('hex');
    async function* body() {
      for (let i = 0; i < n; i++) yield chunk;
    }
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    const res = await request(app, {
      method: 'POST',
      target: '/app/upload',
      mount: '/app',
      // chunked: the client does not collect the body to count it; the length is declared.
      chunked: true,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(n * 65536) },
      body: body(),
    });
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(res.status).toBe(200);
    expect(json(res)).toEqual({ bytes: n * 65536, sha256: expected });
    // Buffering the body anywhere would cost at least 50 MB.
    expect(peak - before).toBeLessThan(24 * 1024 * 1024);
  });
});

describe('Express static files (send: streams, Range, conditional GET)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-bridges-static-'));
  const content = Buffer.from(Array.from({ length: 5000 }, (_, i) => `line ${i}\n`).join(''));
  writeFileSync(join(dir, 'a.txt'), content);
  const app = express();
  app.use('/app/static', express.static(dir));
  app.get('/app/file', (_req, res) => res.sendFile(join(dir, 'a.txt')));
  const tsgi = fromNodeListener(app);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves a file with its length, and sendFile alike', async () => {
    for (const target of ['/app/static/a.txt', '/app/file']) {
      const res = await request(tsgi, { target });
      expect(res.status).toBe(200);
      expect(res.header('content-length')).toBe(String(content.length));
      expect(res.body.equals(content)).toBe(true);
    }
  });

  it('answers a Range request with 206', async () => {
    const res = await request(tsgi, {
      target: '/app/static/a.txt',
      headers: { Range: 'bytes=10-19' },
    });
    expect(res.statusLine).toBe('206 Partial Content');
    expect(res.header('content-range')).toBe(`bytes 10-19/${content.length}`);
    expect(res.body.equals(content.subarray(10, 20))).toBe(true);
  });

  it('answers If-None-Match with 304 and no body', async () => {
    const first = await request(tsgi, { target: '/app/static/a.txt' });
    const res = await request(tsgi, {
      target: '/app/static/a.txt',
      headers: { 'If-None-Match': first.header('etag')! },
    });
    expect(res.statusLine).toBe('304 Not Modified');
    expect(res.body.length).toBe(0);
    expect(res.complete).toBe(true);
  });

  it('redirects a directory to its slash form under the mount', async () => {
    const res = await request(tsgi, { target: '/app/static' });
    expect(res.status).toBe(301);
    expect(res.header('location')).toBe('/app/static/');
  });
});
