/**
 * Self-test of the small clients against a local node:http server (and one real front).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  curl,
  headersForComparison,
  httpRequest,
  pairs,
  rawExchange,
  rawExchangeDetailed,
} from './clients.js';
import { md5, startHttpDump } from './fixtures.js';
import { describeWithServer, useFront } from './servers.js';

let server: http.Server;
let port: number;

beforeAll(async () => {
  // Echoes the request's raw headers and body md5, and answers with headers in a fixed order.
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        rawHeaders: pairs(req.rawHeaders),
        md5: md5(Buffer.concat(chunks)),
        length: Buffer.concat(chunks).length,
      });
      res.statusMessage = 'Fine Thanks';
      res.setHeader('X-Zeta', '1');
      res.setHeader('X-Alpha', ['a1', 'a2']);
      res.setHeader('Content-Type', 'application/json');
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('httpRequest', () => {
  it('sends headers in order and returns wire-order response headers', async () => {
    const res = await httpRequest({
      port,
      path: '/p?q=1',
      headers: [
        ['X-B', '2'],
        ['X-A', '1'],
        ['x-a', 'again'],
      ],
    });
    expect(res.status).toBe(200);
    expect(res.statusText).toBe('Fine Thanks');
    const seen = JSON.parse(res.body.toString());
    expect(seen.url).toBe('/p?q=1');
    expect(seen.rawHeaders.slice(0, 4)).toEqual([
      ['Host', `127.0.0.1:${port}`],
      ['X-B', '2'],
      ['X-A', '1'],
      ['x-a', 'again'],
    ]);
    // Without keep-alive by default.
    expect(seen.rawHeaders).toContainEqual(['Connection', 'close']);
    expect(res.rawHeaders.slice(0, 4)).toEqual([
      ['X-Zeta', '1'],
      ['X-Alpha', 'a1'],
      ['X-Alpha', 'a2'],
      ['Content-Type', 'application/json'],
    ]);
    expect(res.headers('x-alpha')).toBe('a1');
    expect(res.headerValues('X-Alpha')).toEqual(['a1', 'a2']);
    expect(res.headers('x-missing')).toBeUndefined();
  });

  it('sends a Buffer with Content-Length and an iterable chunked', async () => {
    const body = Buffer.alloc(300_000, 7);
    const fixed = JSON.parse(
      (await httpRequest({ port, method: 'POST', path: '/', body })).body.toString(),
    );
    expect(fixed.rawHeaders).toContainEqual(['Content-Length', '300000']);
    expect(fixed.md5).toBe(md5(body));
    async function* parts() {
      yield body.subarray(0, 1000);
      yield body.subarray(1000);
    }
    const chunked = JSON.parse(
      (
        await httpRequest({ port, method: 'PUT', path: '/', body: parts(), chunked: true })
      ).body.toString(),
    );
    expect(chunked.method).toBe('PUT');
    expect(chunked.rawHeaders).toContainEqual(['Transfer-Encoding', 'chunked']);
    expect(chunked.rawHeaders.some(([k]: string[]) => k.toLowerCase() === 'content-length')).toBe(
      false,
    );
    expect(chunked.md5).toBe(md5(body));
  });

  it('returns an empty body for HEAD', async () => {
    const res = await httpRequest({ port, method: 'HEAD', path: '/' });
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
  });
});

describe('rawExchange', () => {
  const req = (path: string, close = false) =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;

  it('collects pipelined responses until the server closes', async () => {
    const res = await rawExchangeDetailed(port, req('/one') + req('/two', true));
    expect(res.reason).toBe('closed');
    const text = res.data.toString('latin1');
    expect(text.match(/HTTP\/1\.1 200 Fine Thanks\r\n/g)).toHaveLength(2);
    expect(text.indexOf('"url":"/one"')).toBeLessThan(text.indexOf('"url":"/two"'));
  });

  it('stops when until() says so, or at the timeout', async () => {
    const early = await rawExchangeDetailed(port, req('/keep'), {
      until: (b) => b.includes('"url":"/keep"'),
    });
    expect(early.reason).toBe('until');
    const slow = await rawExchangeDetailed(port, req('/keep'), { timeoutMs: 300 });
    expect(slow.reason).toBe('timeout');
    expect(slow.data.toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
    expect((await rawExchange(port, req('/b', true))).toString('latin1')).toContain('"url":"/b"');
  });
});

describeWithServer('curl', 'curl', () => {
  it('runs curl -sS and returns code, stdout and stderr', async () => {
    const ok = await curl(['-i', `http://127.0.0.1:${port}/c`]);
    expect(ok.code).toBe(0);
    expect(ok.stdout.toString()).toMatch(/^HTTP\/1\.1 200 Fine Thanks/);
    const refused = await curl(['http://127.0.0.1:1/']);
    expect(refused.code).toBe(7);
    expect(refused.stderr).toMatch(/Failed to connect/);
  });
});

describe('headersForComparison', () => {
  it('drops volatile headers, lower-cases, sorts stably', () => {
    expect(
      headersForComparison([
        ['Server', 'nginx'],
        ['Date', 'Mon, 23 Nov 2026 07:00:00 GMT'],
        ['Content-Type', 'text/plain'],
        ['Keep-Alive', 'timeout=5, max=99'],
        ['Connection', 'keep-alive'],
        ['Vary', 'B'],
        ['vary', 'A'],
        ['Transfer-Encoding', 'chunked'],
        ['ETag', '"x"'],
      ]),
    ).toEqual([
      ['content-type', 'text/plain'],
      ['etag', '"x"'],
      ['server', 'nginx'],
      ['transfer-encoding', 'chunked'],
      ['vary', 'B'],
      ['vary', 'A'],
    ]);
  });
});

describeWithServer('nginx', 'clients against a real front (nginx http)', () => {
  let backend: Awaited<ReturnType<typeof startHttpDump>>;
  beforeAll(async () => {
    backend = await startHttpDump();
  });
  afterAll(async () => {
    await backend?.close();
  });
  const front = useFront(() => ({ server: 'nginx', protocol: 'http', backend: backend.backend }));

  it('pipelines two requests through nginx and compares GET with HEAD headers', async () => {
    const p = front().port;
    const data = await rawExchange(
      p,
      'GET /app/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /app/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const text = data.toString('latin1');
    expect(text.match(/^HTTP\/1\.1 200 OK\r\n/gm)).toHaveLength(2);
    expect(text).toContain('URL=/app/1');
    expect(text).toContain('URL=/app/2');
    const getRes = await httpRequest({ port: p, path: '/app/x' });
    const headRes = await httpRequest({ port: p, method: 'HEAD', path: '/app/x' });
    expect(headRes.body.length).toBe(0);
    // The dump backend answers GET chunked (writeHead, no length) and HEAD with neither
    // length nor chunking; nginx passes that on. The comparison shows exactly this difference
    // and nothing volatile.
    const g = headersForComparison(getRes.rawHeaders);
    const h = headersForComparison(headRes.rawHeaders);
    expect(g.map(([k]) => k)).not.toContain('date');
    expect(g).toContainEqual(['transfer-encoding', 'chunked']);
    expect(h.map(([k]) => k)).not.toContain('transfer-encoding');
    expect(h.map(([k]) => k)).not.toContain('content-length');
    expect(g.filter(([k]) => k !== 'transfer-encoding')).toEqual(h);
  });
});
