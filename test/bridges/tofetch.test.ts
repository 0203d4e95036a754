// toFetch over real sockets: tsgi apps served by @hono/node-server (a Fetch-based Node
// server) and reached with a real HTTP client. Also the frameworks the whole way round:
// HTTP -> node-server -> toFetch -> tsgi -> fromFetch / fromNodeListener -> framework.
import { Buffer } from 'node:buffer';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { toFetch } from '@tsgi/bridges';
import type { Application, LogLevel } from '@tsgi/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest } from '../harness/clients.js';
import { FRAMEWORKS, Probe } from './apps.js';
import { comparable, sha256, sleep } from './helpers.js';

async function listen(
  fetch: ReturnType<typeof toFetch>,
): Promise<{ server: ServerType; port: number }> {
  const server = serve({ fetch, port: 0, hostname: '127.0.0.1' });
  if (!server.listening) await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

function close(server: ServerType): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}

/** Opens a request, reads until `bytes` arrived, then drops the connection. */
function readThenDisconnect(port: number, path: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path }, (res) => {
      let n = 0;
      res.on('data', (d: Buffer) => {
        n += d.length;
        if (n >= bytes) {
          req.destroy();
          resolve(n);
        }
      });
    });
    req.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
    });
  });
}

describe('toFetch behind @hono/node-server', () => {
  const log: Array<{ level: LogLevel; text: string }> = [];
  let seenAbort: (reason: unknown) => void;
  const aborted = new Promise<unknown>((r) => {
    seenAbort = r;
  });
  const app: Application = async (environ, startResponse) => {
    const path = environ.PATH_INFO;
    const text = (s: string, status = '200 OK', extra: Array<[string, string]> = []) => {
      startResponse(status, [['Content-Type', 'text/plain'], ...extra]);
      return [s];
    };
    switch (path) {
      case '/env': {
        const keys = [
          'REQUEST_METHOD',
          'SCRIPT_NAME',
          'PATH_INFO',
          'QUERY_STRING',
          'REQUEST_URI',
          'SERVER_PROTOCOL',
          'SERVER_NAME',
          'SERVER_PORT',
          'REMOTE_ADDR',
          'HTTP_HOST',
          'HTTP_X_TEST',
          'CONTENT_TYPE',
          'CONTENT_LENGTH',
          'tsgi.url_scheme',
        ];
        const out = Object.fromEntries(
          keys.map((k) => [k, (environ as Record<string, unknown>)[k]]),
        );
        return text(JSON.stringify(out), '200 OK', [['X-Kind', 'env']]);
      }
      case '/echo': {
        let bytes = 0;
        const parts: Buffer[] = [];
        for await (const c of environ['tsgi.input']) {
          bytes += c.length;
          parts.push(Buffer.from(c));
        }
        return text(JSON.stringify({ bytes, sha256: sha256(Buffer.concat(parts)) }));
      }
      case '/stream':
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          for (let i = 0; i < 5; i++) {
            yield `line ${i}\n`;
            await sleep(2);
          }
        })();
      case '/cookies':
        return text('c', '200 OK', [
          ['Set-Cookie', 'a=1; Path=/'],
          ['Set-Cookie', 'b=2; HttpOnly'],
        ]);
      case '/cl':
        return text('exactly', '200 OK', [['Content-Length', '7']]);
      case '/nocontent':
        startResponse('204 No Content', []);
        return [];
      case '/boom':
        throw new Error('early boom');
      case '/late-boom':
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          yield 'partial\n';
          await sleep(5);
          throw new Error('late boom');
        })();
      case '/endless': {
        const signal = environ['tsgi.signal'];
        signal.addEventListener('abort', () => seenAbort(signal.reason), { once: true });
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          for (let i = 0; !signal.aborted; i++) {
            yield `tick ${i}\n`;
            await sleep(2);
          }
        })();
      }
      default:
        return text('not found', '404 Not Found');
    }
  };
  let server: ServerType;
  let port: number;

  beforeAll(async () => {
    ({ server, port } = await listen(
      toFetch(app, { mount: '/app', errors: (text, level) => log.push({ level, text }) }),
    ));
  });
  afterAll(() => close(server));

  it('builds the environ as the HTTP front does', async () => {
    const res = await httpRequest({
      port,
      path: '/app/env?x=1&y=%C3%A9',
      headers: [['X-Test', 'yes']],
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/env',
      QUERY_STRING: 'x=1&y=%C3%A9',
      REQUEST_URI: '/app/env?x=1&y=%C3%A9',
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_NAME: '127.0.0.1',
      SERVER_PORT: String(port),
      REMOTE_ADDR: '127.0.0.1',
      HTTP_HOST: `127.0.0.1:${port}`,
      HTTP_X_TEST: 'yes',
      'tsgi.url_scheme': 'http',
    });
    expect(res.headers('x-kind')).toBe('env');
    expect(res.headers('date')).toBeDefined(); // node's own, not the app's
  });

  it('streams a request body into tsgi.input (chunked and with a length)', async () => {
    const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16_384, i));
    const all = Buffer.concat(parts);
    async function* body() {
      for (const p of parts) yield p;
    }
    const chunked = await httpRequest({
      port,
      method: 'POST',
      path: '/app/echo',
      body: body(),
      chunked: true,
    });
    expect(JSON.parse(chunked.body.toString())).toEqual({ bytes: all.length, sha256: sha256(all) });
    const sized = await httpRequest({ port, method: 'PUT', path: '/app/echo', body: all });
    expect(JSON.parse(sized.body.toString())).toEqual({ bytes: all.length, sha256: sha256(all) });
  });

  it('streams the response, chunked when the app gave no length', async () => {
    const res = await httpRequest({ port, path: '/app/stream' });
    expect(res.body.toString()).toBe('line 0\nline 1\nline 2\nline 3\nline 4\n');
    expect(res.headers('transfer-encoding')).toBe('chunked');
    expect(res.headers('content-length')).toBeUndefined();
  });

  it('keeps Set-Cookie lines apart and passes Content-Length through', async () => {
    const c = await httpRequest({ port, path: '/app/cookies' });
    expect(c.headerValues('set-cookie')).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
    const cl = await httpRequest({ port, path: '/app/cl' });
    expect(cl.headers('content-length')).toBe('7');
    expect(cl.body.toString()).toBe('exactly');
  });

  it('answers HEAD with the GET headers and no body', async () => {
    const g = await httpRequest({ port, path: '/app/cl' });
    const h = await httpRequest({ port, method: 'HEAD', path: '/app/cl' });
    expect(h.status).toBe(200);
    expect(h.headers('content-length')).toBe('7');
    expect(h.headers('content-type')).toBe(g.headers('content-type'));
    expect(h.body.length).toBe(0);
  });

  it('sends 204 without a body', async () => {
    const res = await httpRequest({ port, path: '/app/nocontent' });
    expect(res.status).toBe(204);
    expect(res.body.length).toBe(0);
  });

  it('answers 500 for an error before the head', async () => {
    const res = await httpRequest({ port, path: '/app/boom' });
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe('Internal Server Error\n');
    expect(log.some((l) => l.level === 'error' && l.text.includes('early boom'))).toBe(true);
  });

  it('cuts the connection for an error after the head (no truncated body passed off as complete)', async () => {
    await expect(httpRequest({ port, path: '/app/late-boom' })).rejects.toThrow();
  });

  it('fires tsgi.signal when the client goes away', async () => {
    await readThenDisconnect(port, '/app/endless', 50);
    const reason = await Promise.race([aborted, sleep(3000).then(() => 'timeout')]);
    expect(reason).not.toBe('timeout');
    expect(log.some((l) => l.level === 'error' && /endless/.test(l.text))).toBe(false);
  });

  it('answers 413 before the app runs when the body is over maxBodyBytes', async () => {
    const { server: s, port: p } = await listen(toFetch(app, { maxBodyBytes: 10 }));
    try {
      const res = await httpRequest({
        port: p,
        method: 'POST',
        path: '/echo',
        body: 'x'.repeat(11),
      });
      expect(res.status).toBe(413);
    } finally {
      await close(s);
    }
  });

  it('works without a server: a Request made in code', async () => {
    const respond = toFetch(app, { mount: '/app' });
    const res = await respond(new Request('https://example.org/app/env?q=1'));
    const env = (await res.json()) as Record<string, string>;
    expect(env.HTTP_HOST).toBe('example.org');
    expect(env.SERVER_PORT).toBe('443');
    expect(env['tsgi.url_scheme']).toBe('https');
    expect(env.PATH_INFO).toBe('/env');
    expect(env.REMOTE_ADDR).toBeUndefined();
  });

  it('refuses what is not a tsgi app', () => {
    expect(() => toFetch('nope' as never)).toThrow(/bridges: toFetch needs a tsgi app/);
  });
});

describe.each(FRAMEWORKS)('$name over a real socket (node-server -> toFetch -> bridge)', (fw) => {
  const probe = new Probe();
  let server: ServerType;
  let port: number;
  beforeAll(async () => {
    ({ server, port } = await listen(
      toFetch(fw.tsgi({ base: '/app', probe }), { mount: '/app', errors: () => {} }),
    ));
  });
  afterAll(() => close(server));

  it('routes, sees the client address, and sets several cookies', async () => {
    expect((await httpRequest({ port, path: '/app/hello' })).body.toString()).toBe(
      `hello from ${fw.name}`,
    );
    const info = JSON.parse((await httpRequest({ port, path: '/app/info?a=1' })).body.toString());
    expect(info.ip).toMatch(/127\.0\.0\.1$/);
    expect(info.query).toEqual({ a: '1' });
    const cookies = await httpRequest({ port, path: '/app/cookies' });
    expect(cookies.headerValues('set-cookie')).toHaveLength(3);
  });

  it('takes a multipart upload', async () => {
    const boundary = 'XyZ';
    const file = Buffer.alloc(300_000, 7);
    const body = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
      file,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await httpRequest({
      port,
      method: 'POST',
      path: '/app/multipart',
      headers: [['Content-Type', `multipart/form-data; boundary=${boundary}`]],
      body,
    });
    expect(JSON.parse(res.body.toString()).files).toEqual([
      { field: 'f', filename: 'x.bin', size: file.length, sha256: sha256(file) },
    ]);
  });

  it('gives HEAD the GET headers', async () => {
    const g = await httpRequest({ port, path: '/app/hello' });
    const h = await httpRequest({ port, method: 'HEAD', path: '/app/hello' });
    expect(comparable(h.rawHeaders)).toEqual(comparable(g.rawHeaders));
    expect(h.body.length).toBe(0);
  });

  it('lets the framework see a real client disconnect', async () => {
    await readThenDisconnect(port, '/app/endless', 100);
    const expected = { hono: 'hono:abort', express: 'express:close', koa: 'koa:close' }[fw.name];
    await probe.wait(expected);
  });
});
