// serveScgi over real sockets (127.0.0.1, port 0) with a raw SCGI client: byte-exact round
// trips, CONTENT_LENGTH-bounded input, malformed requests, disconnects, backpressure.
import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Application, Environ, LogLevel } from '@tsgi/core';
import { afterEach, describe, expect, it } from 'vitest';
import { staleSocket } from '../../../test/harness/run.js';
import { type ScgiServer, type ScgiServerOptions, serveScgi } from '../src/index.js';
import {
  bytewise,
  collect,
  connect,
  encodeHeaders,
  encodeRequest,
  exchange,
  latin1,
  type parseResponse,
} from './helpers.js';

const servers: ScgiServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close({ timeoutMs: 100 })));
});

type Log = Array<[LogLevel, string]>;

async function start(
  app: Application,
  options: Partial<ScgiServerOptions> = {},
): Promise<{ port: number; server: ScgiServer; logs: Log; sockets: net.Socket[] }> {
  const logs: Log = [];
  const server = await serveScgi(app, {
    listen: { host: '127.0.0.1', port: 0 },
    errors: (text, level) => logs.push([level, text]),
    ...options,
  });
  servers.push(server);
  const sockets: net.Socket[] = [];
  server.netServer.on('connection', (s: net.Socket) => sockets.push(s));
  return { port: (server.address as net.AddressInfo).port, server, logs, sockets };
}

const deferred = <T = void>() => {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what = 'condition') {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Echoes selected environ values and the whole body as `NAME=value\n` lines (latin-1). */
const echo: Application = async (environ, startResponse) => {
  const body = Buffer.from(await environ['tsgi.input'].read());
  const after = await environ['tsgi.input'].read();
  const lines = [
    'REQUEST_METHOD',
    'SCRIPT_NAME',
    'PATH_INFO',
    'QUERY_STRING',
    'HTTP_X_RAW',
    'CONTENT_LENGTH',
  ]
    .map((k) => `${k}=${environ[k] ?? '(unset)'}\n`)
    .join('');
  const out = Buffer.concat([latin1(lines), latin1(`after=${after.length}\nbody=`), body]);
  startResponse('200 OK', [
    ['Content-Type', 'application/octet-stream'],
    ['Content-Length', String(out.length)],
  ]);
  return [out];
};

describe('round trips', () => {
  it('GET: the exact bytes of the response', async () => {
    const { port } = await start(echo);
    const res = await exchange(
      port,
      encodeRequest([
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/app/x%20y?q=1'],
        ['QUERY_STRING', 'q=1'],
        ['DOCUMENT_URI', '/app/x y'],
        ['HTTP_X_RAW', Buffer.from([0x80, 0xe9, 0xff])],
      ]),
    );
    const body =
      'REQUEST_METHOD=GET\nSCRIPT_NAME=\nPATH_INFO=/app/x y\nQUERY_STRING=q=1\nHTTP_X_RAW=\u0080\u00e9\u00ff\nCONTENT_LENGTH=0\nafter=0\nbody=';
    expect(res.bytes).toEqual(
      latin1(
        `Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      ),
    );
    expect(res.ending).toBe('end');
  });

  it('POST: every byte value of the body, request sent one byte at a time', async () => {
    const { port } = await start(echo, { mount: '/app' });
    const payload = Buffer.from(Array.from({ length: 512 }, (_, i) => i & 0xff));
    const req = encodeRequest(
      [
        ['REQUEST_METHOD', 'POST'],
        ['REQUEST_URI', '/app/upload'],
      ],
      payload,
    );
    const sock = await connect(port);
    const done = collect(sock);
    for (const b of bytewise(req)) sock.write(b);
    const res = await done;
    expect(res.status).toBe(200);
    const text = res.body.toString('latin1');
    expect(text).toContain('REQUEST_METHOD=POST\nSCRIPT_NAME=/app\nPATH_INFO=/upload\n');
    expect(text).toContain('CONTENT_LENGTH=512\n');
    expect(res.body.subarray(res.body.indexOf('body=') + 5)).toEqual(payload);
  });

  it('tsgi.input ends at CONTENT_LENGTH; bytes after the body are ignored', async () => {
    const { port } = await start(echo);
    const req = Buffer.concat([
      encodeRequest([['REQUEST_METHOD', 'POST']], latin1('hello')),
      latin1('GARBAGE AFTER THE BODY'),
    ]);
    const res = await exchange(port, req);
    expect(res.body.toString('latin1')).toMatch(/after=0\nbody=hello$/);
  });

  it('a front server that half-closes after the request still gets the response (old lighttpd mod_scgi)', async () => {
    const { port } = await start(echo);
    const sock = await connect(port);
    const done = collect(sock);
    sock.end(encodeRequest([['REQUEST_METHOD', 'POST']], latin1('abc')));
    const res = await done;
    expect(res.status).toBe(200);
    expect(res.body.toString('latin1')).toMatch(/body=abc$/);
  });

  it('a body cut short by the peer is an error, not a short read passed off as complete', async () => {
    let failure: unknown;
    const { port } = await start(async (environ, startResponse) => {
      try {
        await environ['tsgi.input'].read();
      } catch (e) {
        failure = e;
      }
      startResponse('200 OK', [['Content-Length', '2']]);
      return ['ok'];
    });
    const sock = await connect(port);
    const done = collect(sock);
    const req = encodeRequest([['REQUEST_METHOD', 'POST']], latin1('0123456789'));
    sock.end(req.subarray(0, req.length - 4));
    await done;
    expect((failure as { code?: string }).code).toBe('ERR_CORE_INPUT_TRUNCATED');
  });

  it('trusts CONTENT_LENGTH alone: nginx 1.22 scgi_request_buffering off, chunked TE passed through', async () => {
    const { port, logs } = await start(echo);
    const res = await exchange(
      port,
      Buffer.concat([
        encodeHeaders([
          ['CONTENT_LENGTH', '0'],
          ['SCGI', '1'],
          ['REQUEST_METHOD', 'POST'],
          ['HTTP_CONTENT_LENGTH', '5'],
          ['HTTP_TRANSFER_ENCODING', 'chunked'],
        ]),
        latin1('hello'),
      ]),
    );
    expect(res.body.toString('latin1')).toMatch(/CONTENT_LENGTH=0\nafter=0\nbody=$/);
    // The core warns about the disagreement.
    expect(logs.some(([l, t]) => l === 'warn' && /CONTENT_LENGTH 0 disagrees/.test(t))).toBe(true);
  });

  it("an app error before the head gets the core's fixed 500", async () => {
    const { port } = await start(() => {
      throw new Error('boom');
    });
    const res = await exchange(port, encodeRequest([['REQUEST_METHOD', 'GET']]));
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe('Internal Server Error\n');
    expect(res.ending).toBe('end');
  });

  it('a response broken after the head ends with a reset, not a clean close', async () => {
    const { port } = await start((_e, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'part one,';
        await sleep(10);
        throw new Error('broken mid-body');
      })();
    });
    const res = await exchange(port, encodeRequest([['REQUEST_METHOD', 'GET']]));
    expect(res.body.toString()).toBe('part one,');
    expect(res.ending).toBe('reset');
  });
});

describe('per-request work', () => {
  it('an empty CONTENT_TYPE (nginx on a GET) is absent from the environ; a repeated one is still a 400', async () => {
    let seen: Environ | undefined;
    const { port } = await start((environ) => {
      seen = environ;
      return { status: 200, body: ['ok'] };
    });
    const get: Array<[string, string]> = [
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/x'],
      ['QUERY_STRING', ''],
      ['CONTENT_TYPE', ''],
      ['DOCUMENT_URI', '/x'],
    ];
    const res = await exchange(port, encodeRequest(get));
    expect(res.status).toBe(200);
    expect(seen && 'CONTENT_TYPE' in seen).toBe(false);
    expect(seen?.REQUEST_URI).toBe('/x');
    const twice = await exchange(port, encodeRequest([...get, ['CONTENT_TYPE', 'text/plain']]));
    expect(twice.status).toBe(400);
  });

  it('a response produced in one go (head, array body, end) leaves in ONE write, then the FIN', async () => {
    const { port, sockets } = await start(() => ({
      status: 200,
      headers: [['Content-Type', 'text/plain']],
      body: ['Hello, ', 'World!\n'],
    }));
    const counts = { write: 0, writev: 0 };
    const sock = await connect(port);
    await until(() => sockets.length === 1);
    const server = sockets[0]! as net.Socket & {
      _write: (...a: unknown[]) => unknown;
      _writev: (...a: unknown[]) => unknown;
    };
    const write = server._write.bind(server);
    const writev = server._writev.bind(server);
    server._write = (...a) => {
      counts.write++;
      return write(...a);
    };
    server._writev = (...a) => {
      counts.writev++;
      return writev(...a);
    };
    const done = collect(sock);
    sock.write(encodeRequest([['REQUEST_METHOD', 'GET']]));
    const res = await done;
    expect(res.bytes).toEqual(
      latin1('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, World!\n'),
    );
    expect(res.ending).toBe('end');
    expect(counts).toEqual({ write: 1, writev: 0 });
  });

  it('a large body still goes out with backpressure: the app waits for drain', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 0x61);
    const { port } = await start(() => ({
      status: 200,
      headers: [['Content-Length', String(big.length * 4)]],
      body: (async function* () {
        for (let i = 0; i < 4; i++) yield big;
      })(),
    }));
    const res = await exchange(port, encodeRequest([['REQUEST_METHOD', 'GET']]));
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(big.length * 4);
  });
});

describe('malformed requests', () => {
  it('closes only that connection, with a 400, while a concurrent request completes', async () => {
    const release = deferred();
    const entered = deferred();
    const { port, logs } = await start(async (_e, startResponse) => {
      entered.resolve();
      await release.promise;
      startResponse('200 OK', [['Content-Length', '4']]);
      return ['done'];
    });
    const slow = await connect(port);
    const slowDone = collect(slow);
    slow.write(encodeRequest([['REQUEST_METHOD', 'GET']]));
    await entered.promise;

    const bad = await exchange(port, latin1('024:CONTENT_LENGTH\u00000\u0000SCGI\u00001\u0000,'));
    expect(bad.status).toBe(400);
    expect(bad.bytes.toString('latin1')).toBe(
      'Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n',
    );
    const http = await exchange(port, latin1('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(http.status).toBe(400);

    release.resolve();
    const ok = await slowDone;
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toBe('done');
    expect(logs).toContainEqual(['error', 'scgi: netstring length has a leading zero']);
    expect(logs.some(([, t]) => t.includes('an HTTP request sent to the SCGI port?'))).toBe(true);

    // And the server still serves.
    const after = await exchange(port, encodeRequest([['REQUEST_METHOD', 'GET']]));
    expect(after.status).toBe(200);
  });

  it.each([
    [
      'SCGI missing',
      encodeHeaders([
        ['CONTENT_LENGTH', '0'],
        ['REQUEST_METHOD', 'GET'],
      ]),
      400,
      'ERR_SCGI_MISSING_SCGI',
    ],
    [
      'header over maxHeaderBytes',
      encodeRequest([['X', 'y'.repeat(200)]]),
      431,
      'over the limit of 100',
    ],
    [
      'CONTENT_LENGTH over maxBodyBytes',
      encodeRequest([], Buffer.alloc(2000)),
      413,
      'maxBodyBytes',
    ],
    [
      'CONTENT_TYPE twice',
      encodeRequest([
        ['CONTENT_TYPE', 'a'],
        ['CONTENT_TYPE', 'b'],
      ]),
      400,
      'CONTENT_TYPE given twice',
    ],
  ] as const)('%s: %i', async (_, req, status, logged) => {
    const { port, logs } = await start(echo, { maxHeaderBytes: 100, maxBodyBytes: 1000 });
    const res = await exchange(port, req);
    expect(res.status).toBe(status);
    expect(res.ending).toBe('end');
    if (!logged.startsWith('ERR_')) expect(logs.some(([, t]) => t.includes(logged))).toBe(true);
  });

  it('errorResponses: false closes without a response', async () => {
    const { port } = await start(echo, { errorResponses: false });
    const res = await exchange(port, latin1('x'));
    expect(res.bytes.length).toBe(0);
  });

  it('a header that does not complete within headerTimeoutMs gets a 408', async () => {
    const { port, logs } = await start(echo, { headerTimeoutMs: 100 });
    const res = await exchange(port, latin1('24:CONTENT_LEN'));
    expect(res.status).toBe(408);
    expect(logs.some(([, t]) => t.includes('headerTimeoutMs'))).toBe(true);
    // A connection that sends nothing is closed without an answer.
    const quiet = await exchange(port, []);
    expect(quiet.bytes.length).toBe(0);
  });

  it('lingerMs: a front server that keeps its side open after the response is closed in time', async () => {
    const { port, server } = await start(echo, { lingerMs: 100 });
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => sock.once('connect', r));
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise((r) => sock.once('end', r));
    sock.write(encodeRequest([['REQUEST_METHOD', 'GET']]));
    await ended; // the response and its FIN; this side stays open
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^Status: 200 OK\r\n/);
    expect(server.connections).toBe(1);
    await until(() => server.connections === 0, 'the lingering close to end');
    sock.destroy();
  });

  it('a connection closed before any byte is not logged as an error', async () => {
    const { port, logs } = await start(echo);
    const sock = await connect(port);
    const done = collect(sock);
    sock.end();
    await done;
    await sleep(20);
    expect(logs.filter(([l]) => l !== 'debug')).toEqual([]);
  });

  it('a connection that ends inside the header is logged (ERR_SCGI_TRUNCATED)', async () => {
    const { port, logs } = await start(echo);
    const sock = await connect(port);
    const done = collect(sock);
    sock.end(latin1('30:CONTENT'));
    const res = await done;
    expect(res.status).toBe(400);
    expect(logs).toContainEqual(['error', 'scgi: connection ended after 7 of 30 header bytes']);
  });
});

describe('disconnects and backpressure', () => {
  it("a client that disconnects mid-response fires tsgi.signal and the body's close", async () => {
    const aborted = deferred<unknown>();
    const closed = deferred();
    let environ: Environ | undefined;
    const { port } = await start((env, startResponse) => {
      environ = env;
      env['tsgi.signal'].addEventListener('abort', () =>
        aborted.resolve(env['tsgi.signal'].reason),
      );
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      let i = 0;
      return {
        async *[Symbol.asyncIterator]() {
          for (;;) {
            yield `chunk ${i++} ${'x'.repeat(1000)}\n`;
            await sleep(5);
          }
        },
        close() {
          closed.resolve();
        },
      };
    });
    const sock = await connect(port);
    sock.write(encodeRequest([['REQUEST_METHOD', 'GET']]));
    await new Promise((r) => sock.once('data', r));
    sock.destroy();
    const reason = await aborted.promise;
    await closed.promise;
    expect(environ!['tsgi.signal'].aborted).toBe(true);
    expect((reason as { code?: string }).code).toBe('ERR_SCGI_CLIENT_GONE');
  });

  it('idleTimeoutMs closes a connection where nothing moves and aborts its signal', async () => {
    const aborted = deferred<unknown>();
    const { port, logs } = await start(
      async (environ) => {
        environ['tsgi.signal'].addEventListener('abort', () =>
          aborted.resolve(environ['tsgi.signal'].reason),
        );
        await new Promise((r) => environ['tsgi.signal'].addEventListener('abort', r));
        return [];
      },
      { idleTimeoutMs: 100 },
    );
    const res = await exchange(port, encodeRequest([['REQUEST_METHOD', 'GET']]));
    expect(res.bytes.length).toBe(0);
    expect(((await aborted.promise) as { code?: string }).code).toBe('ERR_SCGI_IDLE_TIMEOUT');
    expect(logs.some(([, t]) => t.includes('idleTimeoutMs'))).toBe(true);
  });

  it('an app that does not read a 10 MB body does not make the server buffer it (socket paused)', async () => {
    const release = deferred();
    const { port, sockets } = await start(async (_e, startResponse) => {
      await release.promise;
      startResponse('200 OK', [['Content-Length', '2']]);
      return ['ok'];
    });
    const body = Buffer.alloc(10 * 1024 * 1024, 0x61);
    const sock = await connect(port);
    const done = collect(sock);
    sock.on('error', () => {});
    sock.write(encodeRequest([['REQUEST_METHOD', 'POST']], body));
    const heapBefore = process.memoryUsage().arrayBuffers;
    await sleep(400);
    const server = sockets[0]!;
    // Only what the socket read before it was paused (one read, <= 64 KiB) plus Node's
    // readable buffer; the rest waits in the kernel and the client.
    expect(server.bytesRead).toBeLessThan(1024 * 1024);
    expect(server.isPaused()).toBe(true);
    // The client's 10 MB is still mostly in its own buffer; the server did not take it.
    expect(process.memoryUsage().arrayBuffers - heapBefore).toBeLessThan(4 * 1024 * 1024);
    release.resolve();
    const res = await done;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
  });

  it('an app that reads a 10 MB body gets all of it, in order', async () => {
    const { port } = await start(async (environ, startResponse) => {
      const hash = createHash('sha256');
      let n = 0;
      for await (const c of environ['tsgi.input']) {
        n += c.length;
        hash.update(c);
      }
      const out = `${n} ${hash.digest('hex')}`;
      startResponse('200 OK', [['Content-Length', String(out.length)]]);
      return [out];
    });
    const body = randomBytes(10 * 1024 * 1024);
    const res = await exchange(port, encodeRequest([['REQUEST_METHOD', 'POST']], body));
    expect(res.body.toString()).toBe(
      `${body.length} ${createHash('sha256').update(body).digest('hex')}`,
    );
  });
});

describe('listening and closing', () => {
  it('listens on a Unix socket with a mode, replacing a stale socket file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tsgi-scgi-'));
    try {
      const path = join(dir, 'scgi.sock');
      staleSocket(path);
      const server = await serveScgi(echo, { listen: { path, mode: 0o660 }, errors: () => {} });
      servers.push(server);
      expect((await stat(path)).mode & 0o777).toBe(0o660);
      const res = await new Promise<ReturnType<typeof parseResponse>>((resolve) => {
        const s = net.connect({ path }, () => s.write(encodeRequest([['REQUEST_METHOD', 'GET']])));
        void collect(s).then(resolve);
      });
      expect(res.status).toBe(200);
      await expect(serveScgi(echo, { listen: { path }, errors: () => {} })).rejects.toThrow(
        /is in use by a running server/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('close() lets a running request finish, closes idle connections, refuses new ones', async () => {
    const release = deferred();
    const entered = deferred();
    const { port, server } = await start(async (_e, startResponse) => {
      entered.resolve();
      await release.promise;
      startResponse('200 OK', [['Content-Length', '2']]);
      return ['ok'];
    });
    const busy = await connect(port);
    const busyDone = collect(busy);
    busy.write(encodeRequest([['REQUEST_METHOD', 'GET']]));
    await entered.promise;
    const idle = await connect(port);
    const idleDone = collect(idle);
    await sleep(20);

    const closing = server.close({ timeoutMs: 5000 });
    expect((await idleDone).bytes.length).toBe(0);
    await expect(connect(port)).rejects.toThrow(/ECONNREFUSED/);
    release.resolve();
    expect((await busyDone).body.toString()).toBe('ok');
    await closing;
    expect(server.connections).toBe(0);
  });

  it("close() past its timeout aborts the running request's signal", async () => {
    const aborted = deferred<unknown>();
    const { port, server } = await start(async (environ) => {
      environ['tsgi.signal'].addEventListener('abort', () =>
        aborted.resolve(environ['tsgi.signal'].reason),
      );
      await new Promise(() => {});
      return [];
    });
    const sock = await connect(port);
    const done = collect(sock);
    sock.write(encodeRequest([['REQUEST_METHOD', 'GET']]));
    await sleep(30);
    // The app never settles: close() cannot wait for runApp, only for the socket.
    const closing = server.close({ timeoutMs: 50 });
    expect(((await aborted.promise) as { code?: string }).code).toBe('ERR_SCGI_SHUTDOWN');
    await done;
    void closing;
  });
});
