// The HTTP front over real sockets: framing byte for byte, keep-alive and pipelining,
// HEAD, what Node must not add, limits, disconnects, graceful close.
import { Buffer } from 'node:buffer';
import http from 'node:http';
import type { Application, Environ } from '@tsgi/core';
import { afterEach, describe, expect, test } from 'vitest';
import { createHttpHandler } from '../src/index.js';
import { HELLO_RESPONSE, hello, Raw, type Served, serve, sleep } from './helpers.js';

const open: Array<Served | Raw> = [];
afterEach(async () => {
  for (const x of open.splice(0)) {
    if (x instanceof Raw) x.destroy();
    else await x.close(false);
  }
});
async function front(app: Application, options = {}): Promise<Served> {
  const s = await serve(app, options);
  open.push(s);
  return s;
}
async function raw(port: number): Promise<Raw> {
  const r = new Raw(port);
  open.push(r);
  await r.ready;
  return r;
}
const GET = (path = '/', extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

describe('framing', () => {
  test('a response is exactly the app headers plus Node framing: no Date, no invented Content-Length', async () => {
    const s = await front(hello);
    const r = await raw(s.port);
    r.write(GET());
    expect(await r.until((t) => t.endsWith('Hello, World!\n'))).toBe(HELLO_RESPONSE);
  });

  test('keep-alive: two requests one after the other on one connection, byte-exact', async () => {
    const s = await front(hello);
    const r = await raw(s.port);
    r.write(GET('/one'));
    await r.until((t) => t === HELLO_RESPONSE);
    r.write(GET('/two'));
    expect(await r.until((t) => t.length >= 2 * HELLO_RESPONSE.length)).toBe(
      HELLO_RESPONSE + HELLO_RESPONSE,
    );
    expect(r.closed).toBe(false);
  });

  test('pipelining: two requests in one write get two responses, in order, byte-exact', async () => {
    // The first is slower than the second: responses still leave in request order.
    const app: Application = async (environ, sr) => {
      if (environ.PATH_INFO === '/slow') await sleep(50);
      const body = `${environ.PATH_INFO}\n`;
      sr('200 OK', [
        ['Content-Type', 'text/plain'],
        ['Content-Length', String(body.length)],
      ]);
      return [body];
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET('/slow') + GET('/fast'));
    const one = (p: string) =>
      `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${p.length + 1}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n${p}\n`;
    expect(await r.until((t) => t.endsWith('/fast\n'))).toBe(one('/slow') + one('/fast'));
  });

  test('no Content-Length from the app: a chunked response, byte-exact', async () => {
    const app: Application = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return ['Hello, ', 'World!\n'];
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET());
    expect(await r.until((t) => t.endsWith('0\r\n\r\n'))).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nHello, \r\n7\r\nWorld!\n\r\n0\r\n\r\n',
    );
  });

  test('HEAD = GET headers; without Content-Length Node frames GET chunked and HEAD with neither (documented difference)', async () => {
    const app: Application = (environ, sr) => {
      const withLength = environ.PATH_INFO === '/cl';
      sr('200 OK', [
        ['Content-Type', 'text/plain'],
        ['X-Same', 'yes'],
        ...(withLength ? [['Content-Length', '5'] as [string, string]] : []),
      ]);
      return ['hello'];
    };
    const s = await front(app);
    const head = (method: string, path: string) =>
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
    const exchange = async (req: string) => {
      const r = await raw(s.port);
      r.write(req);
      return r.closedByPeer();
    };
    const common = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Same: yes\r\n';
    // With the app's Content-Length: identical heads, no body on HEAD.
    expect(await exchange(head('GET', '/cl'))).toBe(
      `${common}Content-Length: 5\r\nConnection: close\r\n\r\nhello`,
    );
    expect(await exchange(head('HEAD', '/cl'))).toBe(
      `${common}Content-Length: 5\r\nConnection: close\r\n\r\n`,
    );
    // Without: RFC 9112 framing is Node's: GET is chunked, HEAD has no body to frame.
    expect(await exchange(head('GET', '/nocl'))).toBe(
      `${common}Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    expect(await exchange(head('HEAD', '/nocl'))).toBe(`${common}Connection: close\r\n\r\n`);
  });

  test('HEAD with --map-head-to-get on: the app sees GET, the client gets no body', async () => {
    const app: Application = (environ, sr) => {
      sr('200 OK', [
        ['X-Method', environ.REQUEST_METHOD],
        ['Content-Length', '2'],
      ]);
      return ['ok'];
    };
    const s = await front(app, { mapHeadToGet: 'on' });
    const r = await raw(s.port);
    r.write('HEAD / HTTP/1.1\r\nHost: x\r\n\r\n');
    const t = await r.until((x) => x.endsWith('\r\n\r\n'));
    expect(t).toContain('X-Method: GET\r\n');
    await sleep(50);
    expect(r.text.endsWith('\r\n\r\n')).toBe(true);
  });

  test('chunked request body: the app sees no CONTENT_LENGTH and reads it to the end', async () => {
    const app: Application = async (environ) => {
      const body = Buffer.from(await environ['tsgi.input'].read());
      const text = `${environ.CONTENT_LENGTH ?? '-'} ${body.toString('latin1')}`;
      return { status: 200, headers: [['Content-Length', String(text.length)]], body: text };
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    expect(await r.until((t) => t.endsWith('hello world'))).toMatch(/\r\n\r\n- hello world$/);
  });

  test('never more than the app Content-Length: the excess is cut, never on the wire, and the next pipelined response is intact', async () => {
    const app: Application = (_e, sr) => {
      sr('200 OK', [['Content-Length', '5']]);
      return ['hello', ' and more'];
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET() + GET('/', 'Connection: close\r\n'));
    const t = await r.closedByPeer();
    const one =
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello';
    expect(t).toBe(
      `${one}${one.replace(/Connection: keep-alive\r\nKeep-Alive: timeout=5/, 'Connection: close')}`,
    );
    expect(s.logs.some((l) => l.text.includes('more than its Content-Length'))).toBe(true);
  });

  test('a body shorter than its Content-Length: the connection is closed, never reused', async () => {
    const app: Application = (_e, sr) => {
      sr('200 OK', [['Content-Length', '10']]);
      return ['hello'];
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET());
    expect(await r.closedByPeer()).toMatch(/\r\n\r\nhello$/);
  });

  test('app error after the head of a chunked response: no terminating chunk, connection closed', async () => {
    const app: Application = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return (function* () {
        yield 'partial';
        throw new Error('boom');
      })();
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET());
    const t = await r.closedByPeer();
    expect(t).toContain('7\r\npartial\r\n');
    expect(t.endsWith('0\r\n\r\n')).toBe(false);
  });

  test('a CR/LF in an app header is a 500, never a split response', async () => {
    const app: Application = (_e, sr) => {
      sr('200 OK', [['X-Evil', 'a\r\nSet-Cookie: stolen=1']]);
      return ['x'];
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET('/', 'Connection: close\r\n'));
    const t = await r.closedByPeer();
    expect(t.startsWith('HTTP/1.1 500 Internal Server Error\r\n')).toBe(true);
    expect(t).not.toContain('stolen');
    expect(t.endsWith('\r\n\r\nInternal Server Error\n')).toBe(true);
  });

  test('HTTP/1.0: the response ends with the connection when the app gives no length', async () => {
    const app: Application = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return ['one', 'two'];
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write('GET / HTTP/1.0\r\n\r\n');
    expect(await r.closedByPeer()).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nonetwo',
    );
  });

  test('a client that half-closes after its request is taken as gone (Node default): the signal fires', async () => {
    let aborted: Promise<boolean> | undefined;
    const app: Application = (environ) => {
      aborted = new Promise((resolve) =>
        environ['tsgi.signal'].addEventListener('abort', () => resolve(true), { once: true }),
      );
      return aborted.then(() => ({ status: 200, body: 'late' }));
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET());
    await sleep(50);
    r.socket.end();
    expect(await aborted).toBe(true);
    await r.closedByPeer();
  });
});

describe('CGI variables', () => {
  const dump: Application = (environ, sr) => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(environ)) if (typeof v === 'string') out[k] = v;
    const body = Buffer.from(JSON.stringify(out));
    sr('200 OK', [
      ['Content-Type', 'application/json'],
      ['Content-Length', String(body.length)],
    ]);
    return [body];
  };
  const json = (t: string) => JSON.parse(t.slice(t.indexOf('\r\n\r\n') + 4));

  test('mount, ports, addresses, protocol, REQUEST_URI', async () => {
    const s = await front(dump, { mount: '/app/' });
    const r = await raw(s.port);
    r.write('GET /app/a%20b?q=1 HTTP/1.1\r\nHost: example.org:8080\r\n\r\n');
    const e = json(await r.until((t) => t.endsWith('}')));
    expect(e).toMatchObject({
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/a b',
      QUERY_STRING: 'q=1',
      REQUEST_URI: '/app/a%20b?q=1',
      SERVER_NAME: 'example.org',
      SERVER_PORT: String(s.port),
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: String(r.socket.localPort),
      GATEWAY_INTERFACE: 'CGI/1.1',
      HTTP_HOST: 'example.org:8080',
    });
  });

  test('header smuggling: X_Auth_User and Proxy dropped, repeats joined, Cookie with "; "', async () => {
    const s = await front(dump, { log: undefined });
    const r = await raw(s.port);
    r.write(
      'GET / HTTP/1.1\r\nHost: x\r\nX_Auth_User: admin\r\nX-Auth-User: alice\r\nProxy: http://evil:1/\r\n' +
        'X-Many: a\r\nX-Many: b\r\nCookie: c=1\r\nCookie: d=2\r\nContent-Type: text/x\r\nContent-Length: 0\r\n\r\n',
    );
    const e = json(await r.until((t) => t.endsWith('}')));
    expect(e.HTTP_X_AUTH_USER).toBe('alice');
    expect(e.HTTP_PROXY).toBeUndefined();
    expect(e.HTTP_X_MANY).toBe('a, b');
    expect(e.HTTP_COOKIE).toBe('c=1; d=2');
    expect(e.CONTENT_TYPE).toBe('text/x');
    expect(e.CONTENT_LENGTH).toBe('0');
    expect(e.HTTP_CONTENT_TYPE).toBeUndefined();
    expect(e.HTTP_CONTENT_LENGTH).toBeUndefined();
  });

  test('request smuggling: Content-Length twice, Content-Length with chunked, Host twice: 400', async () => {
    let called = 0;
    const s = await front((e, sr) => {
      called++;
      return hello(e, sr);
    });
    for (const [req, why] of [
      [
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello',
        'HPE_UNEXPECTED_CONTENT_LENGTH',
      ],
      [
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
        'HPE_INVALID_TRANSFER_ENCODING',
      ],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'more than one Host header'],
    ] as const) {
      const r = await raw(s.port);
      r.write(req);
      const t = await r.until((x) => x.endsWith('\n') && x.includes('\r\n\r\n'));
      expect(t.startsWith('HTTP/1.1 400 Bad Request\r\n'), req).toBe(true);
      expect(t).toContain(why);
    }
    expect(called).toBe(0);
  });

  test('dropped header names are logged at debug', async () => {
    const s = await front(dump);
    const r = await raw(s.port);
    r.write('GET / HTTP/1.1\r\nHost: x\r\nX_Auth_User: admin\r\n\r\n');
    await r.until((t) => t.endsWith('}'));
    expect(s.logs).toContainEqual({
      level: 'debug',
      text: expect.stringContaining('"X_Auth_User"'),
    });
  });

  test('outside the mount point: 404 from the front, the app is not called', async () => {
    let called = false;
    const s = await front(
      (e, sr) => {
        called = true;
        return dump(e, sr);
      },
      { mount: '/app' },
    );
    const r = await raw(s.port);
    r.write(GET('/apple'));
    const t = await r.until((x) => x.endsWith('\n') && x.includes('\r\n\r\n'));
    expect(
      t.startsWith('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n'),
    ).toBe(true);
    expect(t).toContain('outside the mount point /app');
    expect(called).toBe(false);
  });

  test('HTTP/1.1 without Host: 400 with a short reason; HTTP/1.0 without Host is fine', async () => {
    const s = await front(hello);
    const r = await raw(s.port);
    r.write('GET / HTTP/1.1\r\n\r\n');
    const t = await r.until((x) => x.endsWith('Host header\n'));
    expect(t.startsWith('HTTP/1.1 400 Bad Request\r\n')).toBe(true);
    const r2 = await raw(s.port);
    r2.write('GET / HTTP/1.0\r\n\r\n');
    expect(await r2.closedByPeer()).toContain('Hello, World!\n');
  });

  test('tsgi.url_scheme is https on a TLS socket (handler on a user server)', async () => {
    // The handler reads `encrypted` from the socket; a plain server with a marked socket
    // stands in for https.createServer here (no certificate needed).
    const handler = createHttpHandler(dump, { log: () => undefined });
    const server = http.createServer();
    server.on('connection', (sock) => {
      (sock as unknown as { encrypted: boolean }).encrypted = true;
    });
    handler.attach(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const r = await raw(port);
      r.write(GET());
      const e = json(await r.until((t) => t.endsWith('}')));
      expect(e.HTTPS).toBe('on');
      expect(e.REQUEST_SCHEME).toBe('https');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('request bodies and limits', () => {
  const echoSize: Application = async (environ) => {
    let n = 0;
    for await (const c of environ['tsgi.input']) n += c.length;
    return {
      status: 200,
      headers: [['Content-Length', String(String(n).length)]],
      body: String(n),
    };
  };

  test('413 before reading when CONTENT_LENGTH exceeds maxBodyBytes; no 100 Continue', async () => {
    let called = false;
    const s = await front(
      (e, sr) => {
        called = true;
        return echoSize(e, sr);
      },
      { maxBodyBytes: 1000 },
    );
    const r = await raw(s.port);
    r.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
    const t = await r.closedByPeer();
    expect(t.startsWith('HTTP/1.1 413 Content Too Large\r\n')).toBe(true);
    expect(t).toContain('Connection: close\r\n');
    expect(t).toContain('exceeds the limit of 1000 bytes');
    expect(t).not.toContain('100 Continue');
    expect(called).toBe(false);
  });

  test('a chunked body over maxBodyBytes is cut off: the app read fails, the client gets 413', async () => {
    let seen: unknown;
    const app: Application = async (environ) => {
      try {
        await environ['tsgi.input'].read();
      } catch (e) {
        seen = e;
        throw e;
      }
      return { status: 200, body: 'unreachable' };
    };
    const s = await front(app, { maxBodyBytes: 10 });
    const r = await raw(s.port);
    r.write(
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n',
    );
    const t = await r.closedByPeer();
    expect(t.startsWith('HTTP/1.1 413 Content Too Large\r\n')).toBe(true);
    expect(t).toContain('request body exceeds the limit of 10 bytes');
    expect((seen as { status?: number }).status).toBe(413);
  });

  test('a chunked body over the limit after the app started its response: the response is cut off', async () => {
    const app: Application = async (environ, sr) => {
      const write = sr('200 OK', [['Content-Type', 'text/plain']]);
      await write('started\n');
      await environ['tsgi.input'].read();
      return ['never'];
    };
    const s = await front(app, { maxBodyBytes: 10 });
    const r = await raw(s.port);
    r.write(
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n1234567812345678\r\n0\r\n\r\n',
    );
    const t = await r.closedByPeer();
    expect(t.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(t).toContain('started\n');
    expect(t.endsWith('0\r\n\r\n')).toBe(false);
  });

  test('full duplex: an app that echoes the body while still reading it (writes not awaited)', async () => {
    const app: Application = async (environ, sr) => {
      const write = sr('200 OK', [['Content-Type', 'application/octet-stream']]);
      let last: Promise<void> = Promise.resolve();
      for await (const c of environ['tsgi.input']) last = write(Buffer.from(c));
      await last;
      return [];
    };
    const s = await front(app);
    const data = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: s.port,
        method: 'POST',
        headers: { 'Content-Length': String(data.length) },
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve(Buffer.concat(parts)));
      });
      req.end(data);
    });
    expect(echoed.length).toBe(data.length);
    expect(echoed.equals(data)).toBe(true);
  });

  test('Expect: 100-continue: 100 is sent when the app first reads, then the body flows', async () => {
    const s = await front(echoSize);
    const r = await raw(s.port);
    r.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    expect(await r.until((t) => t.includes('\r\n\r\n'))).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    r.write('hello');
    expect(await r.until((t) => t.endsWith('5'))).toMatch(/HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n5$/);
  });

  test('Expect: 100-continue and an app that never reads: no 100, Connection: close', async () => {
    const s = await front(hello);
    const r = await raw(s.port);
    r.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    const t = await r.closedByPeer();
    expect(t).not.toContain('100 Continue');
    expect(t).toContain('Connection: close\r\n');
    expect(t).toContain('Hello, World!\n');
  });

  test('a small unread body is discarded and the connection kept; a large one closes it', async () => {
    const s = await front(hello, { maxDrainBytes: 100 });
    const r = await raw(s.port);
    r.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n${'x'.repeat(50)}`);
    await r.until((t) => t === HELLO_RESPONSE);
    r.write(GET());
    expect(await r.until((t) => t.length >= 2 * HELLO_RESPONSE.length)).toBe(
      HELLO_RESPONSE + HELLO_RESPONSE,
    );
    const r2 = await raw(s.port);
    r2.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
    const t = await r2.closedByPeer();
    expect(t).toContain('Connection: close\r\n');
    expect(t).toContain('Hello, World!\n');
  });

  test('431 for a request head over maxHeaderSize, with a short plain body', async () => {
    const s = await front(hello, { maxHeaderSize: 1024 });
    const r = await raw(s.port);
    r.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
    const t = await r.closedByPeer();
    expect(t.startsWith('HTTP/1.1 431 Request Header Fields Too Large\r\n')).toBe(true);
    expect(t).toContain('Connection: close\r\n');
    expect(t).toMatch(/\r\n\r\nhttp: request header fields too large \(maxHeaderSize\)\n$/);
  });

  test('400 with a short reason for a request Node cannot parse', async () => {
    const s = await front(hello);
    const r = await raw(s.port);
    r.write('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
    const t = await r.closedByPeer();
    expect(t.startsWith('HTTP/1.1 400 Bad Request\r\n')).toBe(true);
    expect(t).toMatch(/\r\n\r\nhttp: bad request \(HPE_[A-Z_]+\)\n$/);
  });

  test('408 when the head does not arrive within headersTimeout (a slow-header client)', async () => {
    const s = await front(hello, { headersTimeout: 300, requestTimeout: 300 });
    const r = await raw(s.port);
    r.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const t0 = Date.now();
    const t = await r.closedByPeer(5000);
    expect(t.startsWith('HTTP/1.1 408 Request Timeout\r\n')).toBe(true);
    expect(t).toContain('did not arrive in time');
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  test('408 when the body does not arrive within requestTimeout; the app sees a failed read', async () => {
    let readError: unknown;
    const app: Application = async (environ) => {
      try {
        await environ['tsgi.input'].read();
      } catch (e) {
        readError = e;
      }
      return { status: 200, body: 'x' };
    };
    const s = await front(app, { headersTimeout: 200, requestTimeout: 400 });
    const r = await raw(s.port);
    r.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some');
    const t = await r.closedByPeer(5000);
    expect(t.startsWith('HTTP/1.1 408 Request Timeout\r\n')).toBe(true);
    await sleep(50);
    expect(readError).toBeDefined();
  });
});

describe('disconnects, slow clients, shutdown', () => {
  test('client goes away mid-response: tsgi.signal fires and the body is closed', async () => {
    let signal: AbortSignal | undefined;
    let closed = false;
    let yielded = 0;
    const app: Application = (environ, sr) => {
      signal = environ['tsgi.signal'];
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        try {
          for (;;) {
            yielded++;
            yield 'tick\n';
            await sleep(5);
          }
        } finally {
          closed = true;
        }
      })();
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET());
    await r.until((t) => t.includes('tick\n'));
    r.destroy();
    for (let i = 0; i < 100 && !closed; i++) await sleep(10);
    expect(signal?.aborted).toBe(true);
    expect(closed).toBe(true);
    const at = yielded;
    await sleep(50);
    expect(yielded).toBe(at);
    expect(s.handler.active).toBe(0);
  });

  test('the signal fires while the app is still computing (before any body)', async () => {
    let aborted: Promise<boolean> | undefined;
    const app: Application = (environ) => {
      aborted = new Promise((resolve) =>
        environ['tsgi.signal'].addEventListener('abort', () => resolve(true), { once: true }),
      );
      return aborted.then(() => ({ status: 200, body: 'late' }));
    };
    const s = await front(app);
    const r = await raw(s.port);
    r.write(GET());
    await sleep(50);
    r.destroy();
    expect(await aborted).toBe(true);
  });

  test('a client that stops reading is cut off after idleTimeout; the app stops', async () => {
    let closed = false;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const app: Application = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'application/octet-stream']]);
      return (function* () {
        try {
          for (let i = 0; i < 100_000; i++) yield chunk;
        } finally {
          closed = true;
        }
      })();
    };
    const s = await front(app, { idleTimeout: 300 });
    const r = await raw(s.port);
    r.socket.pause();
    r.write(GET());
    for (let i = 0; i < 300 && !closed; i++) await sleep(10);
    expect(closed).toBe(true);
  });

  test('tsgi.signal: every request has its own; a listener an app left on one is never fired later', async () => {
    const signals: AbortSignal[] = [];
    const app: Application = (environ) => {
      const sig = environ['tsgi.signal'];
      signals.push(sig);
      if (environ.PATH_INFO === '/listen') sig.addEventListener('abort', () => undefined);
      return { status: 200, headers: [['Content-Length', '2']], body: 'ok' };
    };
    const s = await front(app);
    const r = await raw(s.port);
    const ok = (n: number) => (t: string) => t.split('\r\n\r\nok').length - 1 >= n;
    r.write(GET('/plain'));
    await r.until(ok(1));
    r.write(GET('/plain'));
    await r.until(ok(2));
    r.write(GET('/listen'));
    await r.until(ok(3));
    r.write(GET('/plain'));
    await r.until(ok(4));
    // One RequestSignal per request (cheap: the AbortSignal is made when the app reads the
    // key), so a later request on the same keep-alive connection can never fire it.
    expect(new Set(signals).size).toBe(4);
    r.destroy();
    await sleep(50);
    expect(signals[2]?.aborted).toBe(false);
  });

  test('graceful close: the in-flight request finishes with Connection: close; new connections are refused', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const app: Application = async () => {
      await gate;
      return { status: 200, headers: [['Content-Length', '4']], body: 'done' };
    };
    const s = await serve(app);
    const r = await raw(s.port);
    r.write(GET());
    await sleep(50);
    const closing = s.close(true);
    await sleep(50);
    await expect(
      new Promise((resolve, reject) => {
        const c = new Raw(s.port);
        c.socket.on('error', reject);
        c.ready.then(resolve);
      }),
    ).rejects.toThrow(/ECONNREFUSED/);
    release();
    await closing;
    const t = await r.closedByPeer();
    expect(t).toContain('Connection: close\r\n');
    expect(t.endsWith('\r\n\r\ndone')).toBe(true);
  });
});

describe('environ in the app', () => {
  test('tsgi.input_terminated, multiprocess flag, no CONTENT_LENGTH on GET', async () => {
    let seen: Environ | undefined;
    const s = await front(
      (environ, sr) => {
        seen = environ;
        return hello(environ, sr);
      },
      { multiprocess: true },
    );
    const r = await raw(s.port);
    r.write(GET());
    await r.until((t) => t.endsWith('Hello, World!\n'));
    expect(seen?.['tsgi.input_terminated']).toBe(true);
    expect(seen?.['tsgi.multiprocess']).toBe(true);
    expect(seen?.['tsgi.multithread']).toBe(false);
    expect(seen?.CONTENT_LENGTH).toBeUndefined();
  });
});
