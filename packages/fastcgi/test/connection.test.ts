// FastcgiConnection without sockets: a fake FastcgiIO records every write, pause and close,
// so the exact bytes, the number of writes and the flow control can be checked.
import { Buffer } from 'node:buffer';
import type { Application, LogLevel } from '@tsgi/core';
import { describe, expect, it } from 'vitest';
import {
  encodeBeginRequest,
  encodeNameValuePairs,
  encodeRecord,
  encodeRequestEnd,
  encodeStream,
  type FastcgiRecord,
  FCGI_ABORT_REQUEST,
  FCGI_DATA,
  FCGI_END_REQUEST,
  FCGI_FILTER,
  FCGI_PARAMS,
  FCGI_RESPONDER,
  FCGI_STDERR,
  FCGI_STDIN,
  FCGI_STDOUT,
  RecordParser,
} from '../src/codec.js';
import {
  FastcgiConnection,
  type FastcgiConnectionOptions,
  type FastcgiIO,
} from '../src/connection.js';
import { latin1, requestBytes, toHex } from './helpers.js';

class FakeIO implements FastcgiIO {
  readonly writes: Buffer[] = [];
  closed = false;
  destroyed = false;
  paused = false;
  pauses = 0;
  writable = true;
  write(data: Uint8Array | readonly Uint8Array[]): boolean {
    this.writes.push(Buffer.concat(data instanceof Uint8Array ? [data] : [...data]));
    return this.writable;
  }
  close() {
    this.closed = true;
  }
  destroy() {
    this.destroyed = true;
  }
  pause() {
    this.paused = true;
    this.pauses++;
  }
  resume() {
    this.paused = false;
  }
  records(): FastcgiRecord[] {
    return new RecordParser().push(Buffer.concat(this.writes));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

async function until(check: () => boolean, what = 'condition') {
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    if (check()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}

function setup(app: Application, options: FastcgiConnectionOptions = {}) {
  const io = new FakeIO();
  const logs: Array<[LogLevel, string]> = [];
  const conn = new FastcgiConnection(io, app, {
    errors: (text, level) => logs.push([level, text]),
    ...options,
  });
  const ended = (id: number) =>
    io.records().some((r) => r.type === FCGI_END_REQUEST && r.requestId === id);
  return { io, conn, logs, ended };
}

const hello: Application = () => ({
  status: 200,
  headers: [['Content-Type', 'text/plain']],
  body: ['Hello, world!\n'],
});

const PARAMS: Array<[string, string]> = [
  ['REQUEST_METHOD', 'GET'],
  ['SCRIPT_NAME', '/app'],
  ['REQUEST_URI', '/app'],
];

describe('FastcgiConnection', () => {
  it('sends head, body, empty STDOUT and END_REQUEST in ONE write, then closes (no FCGI_KEEP_CONN)', async () => {
    const { io, conn, ended } = setup(hello);
    conn.onData(requestBytes(1, PARAMS));
    await until(() => ended(1));
    const head = latin1('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, world!\n');
    expect(io.writes.length).toBe(1);
    expect(toHex(io.writes[0]!)).toBe(toHex(encodeRequestEnd(1, { stdout: head })));
    expect(io.closed).toBe(true);
    expect(io.destroyed).toBe(false);
  });

  it('keeps the connection with FCGI_KEEP_CONN', async () => {
    const { io, conn, ended } = setup(hello);
    conn.onData(requestBytes(1, PARAMS, undefined, { keepConn: true }));
    await until(() => ended(1));
    expect(io.closed).toBe(false);
    expect(conn.activeRequests).toBe(0);
    expect(conn.idle).toBe(true);
  });

  it('starts the app only at the empty PARAMS record, whatever the records look like', async () => {
    let started = 0;
    const { conn, ended } = setup((env) => {
      started++;
      return { status: 200, body: [String(env.REQUEST_URI)] };
    });
    const pairs = encodeNameValuePairs(PARAMS);
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 1));
    // The pairs cut inside a length and inside a name, over three records.
    conn.onData(encodeRecord(FCGI_PARAMS, 1, pairs.subarray(0, 1)));
    conn.onData(encodeRecord(FCGI_PARAMS, 1, pairs.subarray(1, 10)));
    conn.onData(encodeRecord(FCGI_PARAMS, 1, pairs.subarray(10)));
    await tick();
    expect(started).toBe(0);
    conn.onData(encodeRecord(FCGI_PARAMS, 1));
    expect(started).toBe(1);
    conn.onData(encodeRecord(FCGI_STDIN, 1));
    await until(() => ended(1));
  });

  it('pauses input while the app does not read (no multiplexing) and resumes when it reads', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let got = 0;
    const { io, conn, ended } = setup(
      async (env) => {
        await gate;
        got = (await env['tsgi.input'].read()).length;
        return { status: 200, body: [] };
      },
      { multiplex: false },
    );
    const body = Buffer.alloc(200_000, 0x61);
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 0));
    conn.onData(
      encodeStream(
        FCGI_PARAMS,
        1,
        encodeNameValuePairs([...PARAMS, ['CONTENT_LENGTH', String(body.length)]]),
        { end: true },
      ),
    );
    conn.onData(encodeStream(FCGI_STDIN, 1, body.subarray(0, 65535)));
    // The first STDIN record is queued and no read waits: input paused.
    expect(io.paused).toBe(true);
    conn.onData(encodeStream(FCGI_STDIN, 1, body.subarray(65535), { end: true }));
    // The end of the stream cannot grow the buffer: reading goes on.
    expect(io.paused).toBe(false);
    release();
    await until(() => ended(1));
    expect(got).toBe(200_000);
    expect(io.paused).toBe(false);
  });

  it('with multiplexing, pauses only past inputBufferBytes', async () => {
    const { io, conn } = setup(
      async () => new Promise(() => undefined), // never reads, never answers
      { inputBufferBytes: 100_000 },
    );
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 1));
    conn.onData(encodeStream(FCGI_PARAMS, 1, encodeNameValuePairs(PARAMS), { end: true }));
    conn.onData(encodeStream(FCGI_STDIN, 1, Buffer.alloc(60_000)));
    expect(io.paused).toBe(false);
    conn.onData(encodeStream(FCGI_STDIN, 1, Buffer.alloc(60_000)));
    expect(io.paused).toBe(true);
  });

  it('writes tsgi.errors as FCGI_STDERR and closes the STDERR stream before END_REQUEST', async () => {
    const { io, conn, ended } = setup((env) => {
      env['tsgi.errors'].write('first line\n');
      env['tsgi.errors'].write('partial');
      return { status: 200, body: ['ok'] };
    });
    conn.onData(requestBytes(1, PARAMS));
    await until(() => ended(1));
    const recs = io.records();
    expect(recs.map((r) => [r.type, r.content.length])).toEqual([
      [FCGI_STDERR, 11],
      [FCGI_STDERR, 7], // flushed at the end of the request
      [FCGI_STDERR, 0],
      [FCGI_STDOUT, 'Status: 200 OK\r\n\r\nok'.length],
      [FCGI_STDOUT, 0],
      [FCGI_END_REQUEST, 8],
    ]);
    expect(Buffer.from(recs[0]!.content).toString()).toBe('first line\n');
  });

  it('a Filter reads FCGI_DATA as tsgi.data, bounded by FCGI_DATA_LENGTH', async () => {
    const { io, conn, ended } = setup(async (env) => {
      const input = Buffer.from(await env['tsgi.input'].read());
      const data = Buffer.from(await (env['tsgi.data'] as { read(): Promise<Uint8Array> }).read());
      return { status: 200, body: [`${env['fastcgi.role']} ${input} ${data}`] };
    });
    conn.onData(
      requestBytes(
        1,
        [...PARAMS, ['CONTENT_LENGTH', '2'], ['FCGI_DATA_LENGTH', '4']],
        latin1('in'),
        { role: FCGI_FILTER, data: latin1('data+ignored') },
      ),
    );
    await until(() => ended(1));
    const out = Buffer.concat(
      io
        .records()
        .filter((r) => r.type === FCGI_STDOUT)
        .map((r) => r.content),
    );
    expect(out.toString('latin1')).toBe('Status: 200 OK\r\n\r\nfilter in data');
  });

  it('a Filter that reads tsgi.data first: FCGI_STDIN is read past (not paused) to reach FCGI_DATA', async () => {
    const { io, conn, ended } = setup(
      async (env) => {
        const data = Buffer.from(
          await (env['tsgi.data'] as { read(): Promise<Uint8Array> }).read(),
        );
        const input = Buffer.from(await env['tsgi.input'].read());
        return { status: 200, body: [`${data} ${input}`] };
      },
      { multiplex: false },
    );
    conn.onData(
      Buffer.concat([
        encodeBeginRequest(1, FCGI_FILTER, 0),
        encodeStream(
          FCGI_PARAMS,
          1,
          encodeNameValuePairs([...PARAMS, ['CONTENT_LENGTH', '5'], ['FCGI_DATA_LENGTH', '3']]),
          { end: true },
        ),
      ]),
    );
    conn.onData(encodeStream(FCGI_STDIN, 1, latin1('hello')));
    // Paused until the app's read of tsgi.data is waiting; then STDIN is read past.
    await tick();
    expect(io.paused).toBe(false);
    conn.onData(encodeRecord(FCGI_STDIN, 1));
    expect(io.paused).toBe(false);
    conn.onData(encodeStream(FCGI_DATA, 1, latin1('abc'), { end: true }));
    await until(() => ended(1));
    const out = Buffer.concat(
      io
        .records()
        .filter((r) => r.type === FCGI_STDOUT)
        .map((r) => r.content),
    );
    expect(out.toString('latin1')).toBe('Status: 200 OK\r\n\r\nabc hello');
  });

  it('a Filter that reads tsgi.data first with over 1 MiB of FCGI_STDIN unread: ERR_FASTCGI_FILTER_ORDER', async () => {
    let code: unknown;
    const { io, conn, ended } = setup(
      async (env) => {
        try {
          await (env['tsgi.data'] as { read(): Promise<Uint8Array> }).read();
        } catch (e) {
          code = (e as { code?: string }).code;
        }
        return { status: 200, body: [] };
      },
      { multiplex: false },
    );
    conn.onData(
      Buffer.concat([
        encodeBeginRequest(1, FCGI_FILTER, 0),
        encodeStream(
          FCGI_PARAMS,
          1,
          encodeNameValuePairs([...PARAMS, ['CONTENT_LENGTH', '2000000']]),
          {
            end: true,
          },
        ),
      ]),
    );
    for (let i = 0; i < 20 && code === undefined; i++) {
      conn.onData(encodeStream(FCGI_STDIN, 1, Buffer.alloc(65535)));
      await tick();
    }
    await until(() => ended(1));
    expect(code).toBe('ERR_FASTCGI_FILTER_ORDER');
    expect(io.destroyed).toBe(false);
  });

  it('an empty CONTENT_LENGTH and CONTENT_TYPE (nginx on a GET) are absent from the environ; a repeated one is still a 400', async () => {
    let seen: Record<string, unknown> | undefined;
    const { io, conn, ended } = setup((env) => {
      seen = { ...env };
      return { status: 200, body: ['ok'] };
    });
    const nginxGet: Array<[string, string]> = [
      ['QUERY_STRING', ''],
      ['REQUEST_METHOD', 'GET'],
      ['CONTENT_TYPE', ''],
      ['CONTENT_LENGTH', ''],
      ...PARAMS.slice(1),
    ];
    conn.onData(requestBytes(1, nginxGet, undefined, { keepConn: true }));
    await until(() => ended(1));
    expect(seen && 'CONTENT_LENGTH' in seen).toBe(false);
    expect(seen && 'CONTENT_TYPE' in seen).toBe(false);
    expect(seen?.REQUEST_URI).toBe('/app');
    // An empty CONTENT_LENGTH next to a real one is a repeat, refused as before.
    conn.onData(
      requestBytes(2, [...nginxGet, ['CONTENT_LENGTH', '3']], latin1('abc'), { keepConn: true }),
    );
    await until(() => ended(2));
    const out = Buffer.concat(
      io
        .records()
        .filter((r) => r.type === FCGI_STDOUT && r.requestId === 2)
        .map((r) => r.content),
    );
    expect(out.toString('latin1')).toMatch(/^Status: 400 Bad Request\r\n/);
  });

  it('paramsTimeoutMs: no timer for a request whose PARAMS end in the chunk that began it', async () => {
    const { conn, ended } = setup(hello, { paramsTimeoutMs: 30 });
    const timers = (conn as unknown as { paramsTimerDue: unknown[] }).paramsTimerDue;
    conn.onData(requestBytes(1, PARAMS, undefined, { keepConn: true }));
    expect(timers.length).toBe(0);
    await until(() => ended(1));
  });

  it('paramsTimeoutMs: PARAMS that never end are answered 408', async () => {
    const { io, conn, ended, logs } = setup(hello, { paramsTimeoutMs: 30 });
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 1));
    conn.onData(encodeRecord(FCGI_PARAMS, 1, encodeNameValuePairs(PARAMS)));
    await until(() => ended(1));
    const out = Buffer.concat(
      io
        .records()
        .filter((r) => r.type === FCGI_STDOUT)
        .map((r) => r.content),
    );
    expect(out.toString('latin1')).toMatch(/^Status: 408 Request Timeout\r\n/);
    expect(logs.map(([, t]) => t)).toContain(
      'fastcgi: FCGI_PARAMS not complete within 30 ms (paramsTimeoutMs) (request 1)',
    );
    expect(io.closed).toBe(false);
  });

  it('requestTimeoutMs: the request is aborted and the connection closed, with no END_REQUEST', async () => {
    let reason: { code?: string } | undefined;
    const { io, conn } = setup(
      (env) =>
        new Promise((resolve) => {
          env['tsgi.signal'].addEventListener('abort', () => {
            reason = env['tsgi.signal'].reason;
            resolve({ status: 200, body: ['late'] });
          });
        }),
      { requestTimeoutMs: 30 },
    );
    conn.onData(requestBytes(1, PARAMS, undefined, { keepConn: true }));
    await until(() => io.destroyed, 'destroy');
    expect(reason?.code).toBe('ERR_FASTCGI_REQUEST_TIMEOUT');
    await tick();
    expect(io.records().some((r) => r.type === FCGI_END_REQUEST)).toBe(false);
  });

  it('backpressure: write() waits for onDrain when the io is full', async () => {
    let wrote = 0;
    const big = Buffer.alloc(70_000, 0x62);
    const { io, conn, ended } = setup(async (_env, startResponse) => {
      const write = startResponse('200 OK', []);
      await write(big);
      wrote++;
      await write(big);
      wrote++;
      return [];
    });
    io.writable = false;
    conn.onData(requestBytes(1, PARAMS));
    await until(() => io.writes.length > 0);
    for (let i = 0; i < 20; i++) await tick();
    expect(wrote).toBe(0);
    io.writable = true;
    conn.onDrain();
    await until(() => ended(1));
    expect(wrote).toBe(2);
  });

  it('a malformed record destroys the connection and logs the message', async () => {
    const { io, conn, logs } = setup(hello);
    conn.onData(Buffer.from([2, 1, 0, 1, 0, 0, 0, 0]));
    expect(io.destroyed).toBe(true);
    expect(logs).toContainEqual([
      'error',
      'fastcgi: record version 2, expected 1 at byte offset 0',
    ]);
    // Nothing more is read.
    conn.onData(requestBytes(1, PARAMS));
    await tick();
    expect(io.writes.length).toBe(0);
  });

  it('a duplicate BEGIN_REQUEST for an active id is malformed', async () => {
    const { io, conn, logs } = setup(hello);
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 1));
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 1));
    expect(io.destroyed).toBe(true);
    expect(logs.map(([, t]) => t)).toContain(
      'fastcgi: FCGI_BEGIN_REQUEST for request 1, which is already active (S3.3)',
    );
  });

  it('FCGI_STDIN before the end of FCGI_PARAMS is malformed (S6.1), not silently dropped', async () => {
    const { io, conn, logs } = setup(hello);
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 1));
    conn.onData(encodeRecord(FCGI_PARAMS, 1, encodeNameValuePairs(PARAMS)));
    conn.onData(encodeRecord(FCGI_STDIN, 1, latin1('body')));
    expect(io.destroyed).toBe(true);
    expect(logs.map(([, t]) => t)).toContain(
      'fastcgi: FCGI_STDIN for request 1 before the end of its FCGI_PARAMS (S6.1)',
    );
  });

  it('records for a request ID that is not active are ignored (S3.3)', async () => {
    const { io, conn, ended } = setup(hello);
    conn.onData(encodeRecord(FCGI_STDIN, 7, latin1('stray')));
    conn.onData(encodeRecord(FCGI_PARAMS, 7, latin1('stray')));
    conn.onData(encodeRecord(FCGI_ABORT_REQUEST, 7));
    expect(io.writes.length).toBe(0);
    conn.onData(requestBytes(1, PARAMS));
    await until(() => ended(1));
    expect(io.destroyed).toBe(false);
  });

  it('a stream that ends inside a record is logged as truncated', async () => {
    const { io, conn, logs } = setup(hello);
    conn.onData(encodeBeginRequest(1, FCGI_RESPONDER, 1).subarray(0, 5));
    conn.onEnd();
    expect(io.destroyed).toBe(true);
    expect(logs[0]![1]).toMatch(/^fastcgi: stream ended inside a record header/);
  });

  it('onClose aborts running requests', async () => {
    let reason: unknown;
    const { conn } = setup(
      (env) =>
        new Promise((resolve) => {
          env['tsgi.signal'].addEventListener('abort', () => {
            reason = env['tsgi.signal'].reason;
            resolve({ status: 200, body: [] });
          });
        }),
    );
    conn.onData(requestBytes(1, PARAMS, undefined, { keepConn: true }));
    await tick();
    conn.onClose();
    await conn.done;
    expect((reason as { code?: string }).code).toBe('ERR_FASTCGI_CONNECTION_CLOSED');
  });
});
