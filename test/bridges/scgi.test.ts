// The framework apps behind real front servers over SCGI (@tsgi/scgi): lighttpd
// mod_scgi and nginx scgi_pass, reached with a real HTTP client. Skipped, with a message,
// when a server is not installed (failing instead under TSGI_REQUIRE_SERVERS=1).
import { Buffer } from 'node:buffer';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ScgiServer, serveScgi } from '@tsgi/scgi';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithServer } from '../harness/availability.js';
import { httpRequest } from '../harness/clients.js';
import { startFront, useFront } from '../harness/servers.js';
import type { FrontServer } from '../harness/types.js';
import { FRAMEWORKS, Probe } from './apps.js';
import { comparable, multipart, sha256 } from './helpers.js';

/** Reads until `bytes` arrived, then drops the connection. */
function readThenDisconnect(port: number, path: string, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path }, (res) => {
      let n = 0;
      res.on('data', (d: Buffer) => {
        n += d.length;
        if (n >= bytes) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
    });
  });
}

const FRONTS: Array<{ server: FrontServer; tool: 'lighttpd' | 'nginx' }> = [
  { server: 'lighttpd', tool: 'lighttpd' },
  { server: 'nginx', tool: 'nginx' },
];

for (const { server: frontName, tool } of FRONTS) {
  for (const fw of FRAMEWORKS) {
    describeWithServer(tool, `${fw.name} behind ${frontName} SCGI`, () => {
      const probe = new Probe();
      let backend: ScgiServer;
      let port = 0;
      beforeAll(async () => {
        backend = await serveScgi(fw.tsgi({ base: '/app', probe }), {
          listen: { host: '127.0.0.1', port: 0 },
          // nginx's stock scgi_params send no SCRIPT_NAME/PATH_INFO: the adapter splits.
          mount: '/app',
          errors: () => {},
        });
        port = (backend.address as AddressInfo).port;
      });
      afterAll(() => backend?.close({ timeoutMs: 100 }));
      const front = useFront(() => ({
        server: frontName,
        protocol: 'scgi',
        backend: { host: '127.0.0.1', port },
      }));

      it('routes and streams', async () => {
        const hello = await httpRequest({ port: front().port, path: '/app/hello' });
        expect(hello.status).toBe(200);
        expect(hello.body.toString()).toBe(`hello from ${fw.name}`);
        const s = await httpRequest({ port: front().port, path: '/app/stream?n=8' });
        expect(s.body.toString()).toBe(
          Array.from({ length: 8 }, (_, i) => `chunk ${i}\n`).join(''),
        );
      });

      it('sees the query, the Host and the client address', async () => {
        const res = await httpRequest({
          port: front().port,
          path: '/app/info?x=1&y=%C3%A9',
          headers: [['X-Test', 'yes']],
        });
        const info = JSON.parse(res.body.toString());
        expect(info.query).toEqual({ x: '1', y: 'é' });
        expect(info.header).toBe('yes');
        expect(info.ip).toMatch(/127\.0\.0\.1$/);
      });

      it('takes JSON, urlencoded and multipart posts', async () => {
        const p = front().port;
        const j = await httpRequest({
          port: p,
          method: 'POST',
          path: '/app/json',
          headers: [['Content-Type', 'application/json']],
          body: JSON.stringify({ a: 1 }),
        });
        expect(JSON.parse(j.body.toString())).toEqual({ received: { a: 1 } });
        const f = await httpRequest({
          port: p,
          method: 'POST',
          path: '/app/form',
          headers: [['Content-Type', 'application/x-www-form-urlencoded']],
          body: 'a=1&b=%C3%BC',
        });
        expect(JSON.parse(f.body.toString())).toEqual({ fields: { a: '1', b: 'ü' } });
        const file = Buffer.alloc(150_000, 3);
        const m = multipart([
          { name: 't', value: 'x' },
          { name: 'f', filename: 'f.bin', type: 'application/octet-stream', data: file },
        ]);
        const r = await httpRequest({
          port: p,
          method: 'POST',
          path: '/app/multipart',
          headers: [['Content-Type', m.contentType]],
          body: m.body,
        });
        expect(JSON.parse(r.body.toString())).toEqual({
          fields: { t: 'x' },
          files: [{ field: 'f', filename: 'f.bin', size: file.length, sha256: sha256(file) }],
        });
      });

      it('sends several cookies, redirects, and answers errors with 500', async () => {
        const p = front().port;
        const c = await httpRequest({ port: p, path: '/app/cookies' });
        expect(c.headerValues('set-cookie')).toHaveLength(3);
        const r = await httpRequest({ port: p, path: '/app/redirect' });
        expect(r.status).toBe(302);
        expect(r.headers('location')).toMatch(/\/app\/hello$/);
        const e = await httpRequest({ port: p, path: '/app/error' });
        expect(e.status).toBe(500);
      });

      it('gives HEAD the GET headers', async () => {
        for (const path of ['/app/hello', '/app/cookies', '/app/redirect', '/app/stream?n=3']) {
          const g = await httpRequest({ port: front().port, path });
          const h = await httpRequest({ port: front().port, method: 'HEAD', path });
          let get = comparable(g.rawHeaders);
          if (frontName === 'lighttpd' && g.body.length === 0) {
            // lighttpd's own framing: it adds "Content-Length: 0" to an empty GET response
            // and nothing to HEAD, whatever the backend sent (a plain tsgi app shows the
            // same); the backend's heads were identical (frameworks.test.ts).
            get = get.filter(([k, v]) => !(k === 'content-length' && v === '0'));
          }
          expect(comparable(h.rawHeaders)).toEqual(get);
          expect(h.body.length).toBe(0);
        }
      });

      it('streams a 20 MB upload', async () => {
        const chunk = Buffer.alloc(65536, 9);
        const n = 320;
        async function* body() {
          for (let i = 0; i < n; i++) yield chunk;
        }
        const res = await httpRequest({
          port: front().port,
          method: 'POST',
          path: '/app/upload',
          headers: [['Content-Length', String(n * chunk.length)]],
          body: body(),
        });
        expect(JSON.parse(res.body.toString()).bytes).toBe(n * chunk.length);
      });

      it('lets the framework see the client go away', async () => {
        // lighttpd collects a whole response before sending it unless told to stream; an
        // endless one would never reach the client.
        const f =
          frontName === 'lighttpd'
            ? await startFront({
                server: 'lighttpd',
                protocol: 'scgi',
                backend: { host: '127.0.0.1', port },
                extraConfig: 'server.stream-response-body = 1',
              })
            : front();
        try {
          await readThenDisconnect(f.port, '/app/endless', 2000);
          const expected = { hono: 'hono:abort', express: 'express:close', koa: 'koa:close' }[
            fw.name
          ];
          await probe.wait(expected, 10_000);
        } finally {
          if (f !== front()) await f.stop();
        }
      });
    });
  }
}
