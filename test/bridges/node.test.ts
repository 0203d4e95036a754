// fromNodeListener with plain (req, res) listeners: the IncomingMessage / ServerResponse
// look-alikes, event order, backpressure, and survival of Express's prototype swap.
import { Buffer } from 'node:buffer';
import http from 'node:http';
import { finished, PassThrough, pipeline, Readable } from 'node:stream';
import { fromNodeListener, type NodeListener } from '@tsgi/bridges';
import {
  buildEnviron,
  type Environ,
  type ResponseHead,
  requestToCgi,
  runApp,
  sourceFromIterable,
  type Transport,
} from '@tsgi/core';
import { request } from '@tsgi/core/testing';
import { describe, expect, it } from 'vitest';
import { sleep } from './helpers.js';

type Req = http.IncomingMessage & Record<string, any>;
type Res = http.ServerResponse & Record<string, any>;
const L = (fn: (req: Req, res: Res) => unknown): NodeListener => fn as unknown as NodeListener;

/** Runs a listener; resolves with what the listener captured and the response. */
async function run(
  fn: (req: Req, res: Res) => unknown,
  req: Parameters<typeof request>[1] = {},
  options: Parameters<typeof fromNodeListener>[1] = {},
) {
  return request(fromNodeListener(L(fn), options), req);
}

describe('fromNodeListener: req', () => {
  it('looks like an IncomingMessage', async () => {
    let seen: Record<string, unknown> = {};
    const res = await run(
      (req, res) => {
        seen = {
          method: req.method,
          url: req.url,
          httpVersion: req.httpVersion,
          major: req.httpVersionMajor,
          minor: req.httpVersionMinor,
          headers: { ...req.headers },
          rawHeaders: req.rawHeaders,
          remoteAddress: req.socket.remoteAddress,
          remotePort: req.socket.remotePort,
          encrypted: (req.socket as any).encrypted,
          connection: req.connection === req.socket,
          complete: req.complete,
          aborted: req.aborted,
          readable: req.readable,
          isReadable: req instanceof Readable,
          trailers: req.trailers,
        };
        res.end('ok');
      },
      {
        target: '/app/a%2Fb/p%20q?x=1&y=%C3%A9',
        mount: '/app',
        headers: [
          ['Host', 'example.org'],
          ['X-Multi', 'one'],
          ['X-Multi', 'two'],
          ['Cookie', 'a=1'],
          ['Cookie', 'b=2'],
          ['Content-Type', 'text/plain'],
        ],
        body: 'hello',
      },
    );
    expect(res.status).toBe(200);
    expect(seen).toEqual({
      method: 'GET',
      // The client's own escaping is kept (a%2Fb stays one segment).
      url: '/app/a%2Fb/p%20q?x=1&y=%C3%A9',
      httpVersion: '1.1',
      major: 1,
      minor: 1,
      headers: {
        host: 'example.org',
        'x-multi': 'one, two',
        cookie: 'a=1; b=2',
        'content-type': 'text/plain',
        'content-length': '5',
      },
      rawHeaders: [
        'Host',
        'example.org',
        'X-Multi',
        'one, two',
        'Cookie',
        'a=1; b=2',
        'Content-Type',
        'text/plain',
        'Content-Length',
        '5',
      ],
      remoteAddress: '127.0.0.1',
      remotePort: 40000,
      encrypted: undefined,
      connection: true,
      complete: false,
      aborted: false,
      readable: true,
      isReadable: true,
      trailers: {},
    });
  });

  it('presents the mount as Express does for a mounted sub-app with stripMount', async () => {
    let seen: unknown[] = [];
    await run(
      (req, res) => {
        seen = [req.url, req.originalUrl, req.baseUrl];
        res.end();
      },
      { target: '/app/x/y?q=1', mount: '/app' },
      { stripMount: true },
    );
    expect(seen).toEqual(['/x/y?q=1', '/app/x/y?q=1', '/app']);
  });

  it('says https through socket.encrypted', async () => {
    let enc: unknown;
    await run(
      (req, res) => {
        enc = (req.socket as any).encrypted;
        res.end();
      },
      { vars: { HTTPS: 'on' } },
    );
    expect(enc).toBe(true);
  });

  it('reads the body as a stream and sets complete at its end', async () => {
    const parts = [Buffer.from('abc'), Buffer.from('def'), Buffer.from('ghi')];
    let body = '';
    const complete: boolean[] = [];
    const res = await run(
      (req, res) => {
        complete.push(req.complete);
        req.setEncoding('latin1');
        req.on('data', (d: string) => {
          body += d;
        });
        req.on('end', () => {
          complete.push(req.complete);
          res.end(body);
        });
      },
      { method: 'POST', body: parts, chunked: true },
    );
    expect(res.body.toString()).toBe('abcdefghi');
    expect(complete).toEqual([false, true]);
  });

  it('pulls the input only as fast as the listener reads (backpressure)', async () => {
    const chunk = Buffer.alloc(65536, 1);
    let produced = 0;
    async function* body() {
      for (let i = 0; i < 100; i++) {
        produced++;
        yield chunk;
      }
    }
    let whilePaused = -1;
    const res = await run(
      async (req, res) => {
        req.pause();
        req.on('data', () => {});
        req.pause();
        await sleep(30);
        whilePaused = produced;
        let n = 0;
        req.on('data', (d: Buffer) => {
          n += d.length;
        });
        req.on('end', () => res.end(String(n)));
        req.resume();
      },
      {
        method: 'POST',
        chunked: true,
        headers: { 'Content-Length': String(100 * 65536) },
        body: body(),
      },
    );
    expect(res.body.toString()).toBe(String(100 * 65536));
    // A paused listener keeps at most a chunk or two of a 6.4 MB body in flight.
    expect(whilePaused).toBeLessThanOrEqual(3);
  });

  it('emits aborted, error (to listeners) and close when the body is cut short', async () => {
    const events: string[] = [];
    const res = await run(
      (req, res) => {
        req.on('aborted', () => events.push('aborted'));
        req.on('error', (e: any) => events.push(`error:${e.code}`));
        req.on('close', () => {
          events.push('close');
          if (!res.headersSent) res.end();
        });
        req.resume();
      },
      {
        method: 'POST',
        chunked: true,
        // Declares 10 bytes, delivers 3: the input fails as a vanished client's would.
        headers: { 'Content-Length': '10' },
        body: [Buffer.from('abc')],
      },
    );
    await sleep(5);
    expect(events[0]).toBe('aborted');
    expect(events).toContain('close');
    expect(events.some((e) => e.startsWith('error:'))).toBe(true);
    // Nothing was sent yet: the truncated body is the client's fault, so the core answers 400 (SPEC 7.1) and logs why.
    expect(res.status).toBe(400);
    expect(res.log.some((l) => /request body ended after 3 of 10 bytes/.test(l.text))).toBe(true);
  });
});

describe('fromNodeListener: res', () => {
  it('sends exactly the headers the listener set: no Date, Connection or Content-Length', async () => {
    const res = await run((_req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.end('hello');
    });
    expect(res.headers).toEqual([['Content-Type', 'text/plain']]);
    expect(res.statusLine).toBe('200 OK');
    expect(res.body.toString()).toBe('hello');
  });

  it('passes a Content-Length the listener set, and the core enforces it', async () => {
    const ok = await run((_req, res) => {
      res.writeHead(200, { 'Content-Length': 5 });
      res.end('hello');
    });
    expect(ok.header('content-length')).toBe('5');
    expect(ok.complete).toBe(true);
    const over = await run((_req, res) => {
      res.setHeader('Content-Length', '3');
      res.end('hello');
    });
    // SPEC 5.2: cut at 3 bytes and ended whole; the error rides on the result.
    expect(over.body.toString()).toBe('hel');
    expect(over.complete).toBe(true);
    expect((over.result.error as { code?: string }).code).toBe('ERR_CORE_CONTENT_LENGTH_EXCEEDED');
  });

  it('implements the header API', async () => {
    let seen: unknown[] = [];
    const res = await run((_req, res) => {
      expect(res.setHeader('X-A', '1')).toBe(res);
      res.setHeader('x-b', 2);
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.appendHeader('set-cookie', 'c=3');
      res.appendHeader('X-A', 'again');
      res.setHeader('X-Gone', 'x');
      res.removeHeader('x-gone');
      seen = [
        res.getHeader('x-a'),
        res.getHeader('X-B'),
        res.getHeaders(),
        res.getHeaderNames(),
        res.getRawHeaderNames(),
        res.hasHeader('SET-COOKIE'),
        res.hasHeader('x-gone'),
        res.headersSent,
      ];
      res.end();
    });
    expect(seen).toEqual([
      ['1', 'again'],
      2,
      Object.assign(Object.create(null), {
        'x-a': ['1', 'again'],
        'x-b': 2,
        'set-cookie': ['a=1', 'b=2', 'c=3'],
      }),
      ['x-a', 'x-b', 'set-cookie'],
      ['X-A', 'x-b', 'Set-Cookie'],
      true,
      false,
      false,
    ]);
    expect(res.headers).toEqual([
      ['X-A', '1'],
      ['X-A', 'again'],
      ['x-b', '2'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Set-Cookie', 'c=3'],
    ]);
  });

  it('validates header names and values as Node does', async () => {
    const errors: string[] = [];
    await run((_req, res) => {
      for (const f of [
        () => res.setHeader('Bad Name', 'x'),
        () => res.setHeader('X-Ok', 'a\r\nInjected: 1'),
        () => res.setHeader('X-Ok', undefined as never),
      ]) {
        try {
          f();
        } catch (e: any) {
          errors.push(e.code);
        }
      }
      res.end();
    });
    expect(errors).toEqual([
      'ERR_INVALID_HTTP_TOKEN',
      'ERR_INVALID_CHAR',
      'ERR_HTTP_INVALID_HEADER_VALUE',
    ]);
  });

  it.each([
    ['(code)', (res: Res) => res.writeHead(201), '201 Created', []],
    ['(code, reason)', (res: Res) => res.writeHead(201, 'Made'), '201 Made', []],
    [
      '(code, object) merged with setHeader',
      (res: Res) => {
        res.setHeader('X-Keep', 'k');
        res.setHeader('X-Over', 'old');
        res.writeHead(202, { 'X-Over': 'new', 'X-New': ['n1', 'n2'] });
      },
      '202 Accepted',
      [
        ['X-Keep', 'k'],
        ['X-Over', 'new'],
        ['X-New', 'n1'],
        ['X-New', 'n2'],
      ],
    ],
    [
      '(code, reason, object)',
      (res: Res) => res.writeHead(404, 'Nowhere', { 'X-A': 'a' }),
      '404 Nowhere',
      [['X-A', 'a']],
    ],
    [
      '(code, flat array) with repeats, replacing earlier values',
      (res: Res) => {
        res.setHeader('X-Dup', 'old');
        res.writeHead(200, ['X-Dup', '1', 'X-Dup', '2', 'X-B', 'b']);
      },
      '200 OK',
      [
        ['X-Dup', '1'],
        ['X-Dup', '2'],
        ['X-B', 'b'],
      ],
    ],
    [
      '(code, array of pairs)',
      (res: Res) =>
        res.writeHead(200, [
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
        ] as any),
      '200 OK',
      [
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ],
    ],
    [
      'statusMessage set before end()',
      (res: Res) => {
        res.statusCode = 299;
        res.statusMessage = 'Custom';
      },
      '299 Custom',
      [],
    ],
    ['an unknown code', (res: Res) => res.writeHead(299), '299 Unknown', []],
  ])('writeHead%s', async (_label, act, status, headers) => {
    const sent: boolean[] = [];
    const res = await run((_req, res) => {
      act(res);
      sent.push(res.headersSent);
      res.end();
    });
    expect(res.statusLine).toBe(status);
    expect(res.headers).toEqual(headers);
    // writeHead commits; statusMessage alone does not.
    expect(sent[0]).toBe(_label !== 'statusMessage set before end()');
  });

  it('refuses header changes after writeHead, and a bad status code', async () => {
    const codes: string[] = [];
    await run((_req, res) => {
      try {
        res.writeHead(42);
      } catch (e: any) {
        codes.push(e.code);
      }
      expect(res.writeHead(200)).toBe(res);
      for (const f of [
        () => res.setHeader('X', '1'),
        () => res.removeHeader('X'),
        () => res.writeHead(200),
      ]) {
        try {
          f();
        } catch (e: any) {
          codes.push(e.code);
        }
      }
      res.end();
    });
    expect(codes).toEqual([
      'ERR_HTTP_INVALID_STATUS_CODE',
      'ERR_HTTP_HEADERS_SENT',
      'ERR_HTTP_HEADERS_SENT',
      'ERR_HTTP_HEADERS_SENT',
    ]);
  });

  it('answers 500 when the core refuses the status (600)', async () => {
    const res = await run((_req, res) => {
      res.writeHead(600);
      res.end('x');
    });
    expect(res.status).toBe(500);
    expect(res.log.some((l) => l.level === 'error' && /status/.test(l.text))).toBe(true);
  });

  it('drops the hop-by-hop headers a Node app may set', async () => {
    const res = await run((_req, res) => {
      res.setHeader('Connection', 'close');
      res.setHeader('Transfer-Encoding', 'chunked');
      res.setHeader('Keep-Alive', 'timeout=5');
      res.setHeader('X-Kept', '1');
      res.end('x');
    });
    expect(res.status).toBe(200);
    expect(res.headers).toEqual([['X-Kept', '1']]);
    expect(res.log.filter((l) => l.level === 'debug' && /hop-by-hop/.test(l.text))).toHaveLength(3);
  });

  it('emits finish then close, then the request closes; flags follow', async () => {
    const events: string[] = [];
    let flags: unknown[] = [];
    const done = new Promise<void>((resolve) => {
      void run((req, res) => {
        res.on('finish', () => {
          events.push('res.finish');
          flags.push(res.writableFinished);
        });
        res.on('close', () => events.push('res.close'));
        req.on('close', () => {
          events.push('req.close');
          resolve();
        });
        res.write('a');
        res.end('b', () => events.push('end-cb'));
        flags = [res.writableEnded, res.finished, res.writableFinished, res.writable];
      });
    });
    await done;
    expect(flags).toEqual([true, true, false, false, true]);
    expect(events).toEqual(['res.finish', 'end-cb', 'res.close', 'req.close']);
  });

  it('reports write after end as an error event, and end after finish to its callback', async () => {
    const errs: string[] = [];
    await new Promise<void>((resolve) => {
      void run((_req, res) => {
        res.on('error', (e: any) => errs.push(`event:${e.code}`));
        res.end('x');
        expect(res.write('y', (e: any) => errs.push(`cb:${e.code}`))).toBe(false);
        res.on('close', () => {
          res.end(((e: any) => {
            errs.push(`end:${e.code}`);
            resolve();
          }) as never);
        });
      });
    });
    expect(errs).toEqual([
      'cb:ERR_STREAM_WRITE_AFTER_END',
      'event:ERR_STREAM_WRITE_AFTER_END',
      'end:ERR_STREAM_ALREADY_FINISHED',
    ]);
  });

  it('presents HEAD as GET by default and passes the body on for the front to drop', async () => {
    let method = '';
    const head = await run(
      (req, res) => {
        method = req.method!;
        res.end('hello');
      },
      { method: 'HEAD' },
    );
    expect(method).toBe('GET');
    expect(head.body.toString()).toBe('hello');
  });

  it('drops the body of HEAD (mapHeadToGet: false), 204 and 304 responses as Node does', async () => {
    const head = await run(
      (req, res) => {
        expect(req.method).toBe('HEAD');
        res.setHeader('Content-Length', '5');
        expect(res.write('hello')).toBe(true);
        res.end();
      },
      { method: 'HEAD' },
      { mapHeadToGet: false },
    );
    expect(head.body.length).toBe(0);
    expect(head.header('content-length')).toBe('5');
    expect(head.complete).toBe(true);
    const noContent = await run((_req, res) => {
      res.statusCode = 204;
      res.end('ignored');
    });
    expect(noContent.status).toBe(204);
    expect(noContent.body.length).toBe(0);
  });

  it('write returns false past the high-water mark and drain follows', async () => {
    const app = fromNodeListener(
      L((_req, res) => {
        const results: boolean[] = [];
        const big = Buffer.alloc(1000, 0x61);
        for (let i = 0; i < 5; i++) results.push(res.write(big));
        res.once('drain', () => {
          res.end(`|${results.join(',')}|${res.writableNeedDrain}`);
        });
      }),
      { highWaterMark: 2500 },
    );
    const res = await request(app);
    expect(res.body.toString('latin1').slice(5000)).toBe('|true,true,false,false,false|false');
  });

  it('never lets the writer run ahead of a slow transport by more than the high-water mark', async () => {
    let maxQueued = 0;
    const app = fromNodeListener(
      L(async (_req, res) => {
        const chunk = Buffer.alloc(4096, 1);
        for (let i = 0; i < 64; i++) {
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
          maxQueued = Math.max(maxQueued, res.writableLength);
        }
        res.end();
      }),
      { highWaterMark: 16384 },
    );
    let written = 0;
    const transport: Transport = {
      sendHead(_h: ResponseHead) {},
      async write(c) {
        written += c.length;
        await sleep(1);
      },
      end() {},
      abort() {},
    };
    const { vars } = requestToCgi({ method: 'GET', target: '/' }, [['Host', 'x']]);
    const result = await runApp(app, buildEnviron(vars, { errors: () => {} }), transport);
    expect(result.outcome).toBe('complete');
    expect(written).toBe(64 * 4096);
    expect(maxQueued).toBeLessThanOrEqual(16384 + 4096);
  });

  it('coalesces corked writes into one chunk', async () => {
    const res = await run((_req, res) => {
      res.cork();
      res.write('a');
      res.write('b');
      res.write('c');
      res.uncork();
      res.end();
    });
    expect(res.body.toString()).toBe('abc');
    expect(res.transport.chunks).toHaveLength(1);
  });

  it('writes strings in the given encoding (utf8 by default)', async () => {
    const res = await run((_req, res) => {
      res.write('é');
      res.write('ff', 'hex');
      res.end('€', 'utf8');
    });
    expect([...res.body]).toEqual([0xc3, 0xa9, 0xff, 0xe2, 0x82, 0xac]);
  });

  it('supports setHeaders with a Headers object (Set-Cookie kept apart)', async () => {
    const res = await run((_req, res) => {
      const h = new Headers();
      h.append('X-One', '1');
      h.append('Set-Cookie', 'a=1');
      h.append('Set-Cookie', 'b=2');
      (res as any).setHeaders(h);
      res.end();
    });
    expect(res.headers).toEqual([
      ['x-one', '1'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ]);
  });

  it('works with stream.pipeline and stream.finished', async () => {
    let fin: unknown = 'pending';
    const res = await run((_req, res) => {
      finished(res, (err) => {
        fin = err ?? null;
      });
      pipeline(Readable.from(['a', 'b', 'c']), res, () => {});
    });
    expect(res.body.toString()).toBe('abc');
    await sleep(10);
    expect(fin).toBeNull();
  });

  it('flushHeaders commits the head', async () => {
    let sent = false;
    const res = await run((_req, res) => {
      res.setHeader('X-Early', '1');
      res.flushHeaders();
      sent = res.headersSent;
      setTimeout(() => res.end('later'), 5);
    });
    expect(sent).toBe(true);
    expect(res.headers).toEqual([['X-Early', '1']]);
    expect(res.body.toString()).toBe('later');
  });

  it('keeps working after Express-style prototype swaps, and refuses Node internals', async () => {
    let info: unknown[] = [];
    const res = await run(
      (req, res) => {
        Object.setPrototypeOf(req, Object.create(http.IncomingMessage.prototype));
        Object.setPrototypeOf(res, Object.create(http.ServerResponse.prototype));
        let internal = '';
        try {
          res._storeHeader('x', {});
        } catch (e: any) {
          internal = e.code;
        }
        info = [
          res instanceof http.ServerResponse,
          req instanceof http.IncomingMessage,
          req.headers.host,
          req.connection === req.socket,
          internal,
        ];
        req.on('data', () => {});
        req.on('end', () => {
          res.statusCode = 201;
          res.setHeader('X-Swapped', 'yes');
          res.write('still ');
          res.end('works');
        });
      },
      { method: 'POST', body: 'body' },
    );
    expect(info).toEqual([true, true, 'localhost', true, 'ERR_BRIDGES_NODE_INTERNAL']);
    expect(res.statusLine).toBe('201 Created');
    expect(res.headers).toEqual([['X-Swapped', 'yes']]);
    expect(res.body.toString()).toBe('still works');
  });
});

describe('fromNodeListener: failures and disconnects', () => {
  it('answers 500 when the listener throws before responding', async () => {
    const res = await run(() => {
      throw new Error('sync boom');
    });
    expect(res.status).toBe(500);
    expect(res.log.some((l) => l.level === 'error' && l.text.includes('sync boom'))).toBe(true);
  });

  it('aborts the response when the listener rejects after the head went out', async () => {
    const res = await run(async (_req, res) => {
      res.write('partial');
      await sleep(1);
      throw new Error('late boom');
    });
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.aborted?.message).toContain('late boom');
  });

  it('aborts the response when the listener destroys it or its socket', async () => {
    for (const kill of [(res: Res) => res.destroy(), (res: Res) => res.socket!.destroy()]) {
      const res = await run(async (_req, res) => {
        res.write('partial');
        await sleep(1);
        kill(res);
      });
      expect(res.complete).toBe(false);
      expect(res.body.toString()).toBe('partial');
    }
  });

  it('refuses raw writes to the socket', async () => {
    let code = '';
    await run((req, res) => {
      try {
        req.socket.write('HTTP/1.1 200 OK\r\n\r\n');
      } catch (e: any) {
        code = e.code;
      }
      res.end();
    });
    expect(code).toBe('ERR_BRIDGES_RAW_SOCKET');
  });

  it('tells the listener the client went away, in Node order', async () => {
    const events: string[] = [];
    let after: unknown[] = [];
    const closed = new Promise<void>((resolve) => {
      void run(
        (req, res) => {
          req.on('aborted', () => events.push('req.aborted'));
          res.on('close', () => events.push('res.close'));
          req.socket.on('close', () => events.push('socket.close'));
          req.on('close', () => {
            events.push('req.close');
            after = [req.aborted, res.destroyed, res.writableFinished, res.write('late')];
            resolve();
          });
          const t = setInterval(() => {
            if (!res.write('tick\n')) clearInterval(t);
          }, 1);
          res.on('close', () => clearInterval(t));
        },
        { disconnectAfterBytes: 20 },
      );
    });
    await closed;
    expect(events).toEqual(['req.aborted', 'res.close', 'socket.close', 'req.close']);
    expect(after).toEqual([true, true, false, false]);
  });

  it('settles when the client leaves before the listener ever responds', async () => {
    const controller = new AbortController();
    let closed = false;
    const app = fromNodeListener(
      L((_req, res) => {
        res.on('close', () => {
          closed = true;
        });
        // Never responds.
      }),
    );
    const { vars } = requestToCgi({ method: 'GET', target: '/' }, [['Host', 'x']]);
    const environ: Environ = buildEnviron(vars, {
      errors: () => {},
      signal: controller.signal,
      input: sourceFromIterable([]),
    });
    const calls: string[] = [];
    const transport: Transport = {
      sendHead: () => void calls.push('head'),
      write: () => void calls.push('write'),
      end: () => void calls.push('end'),
      abort: () => void calls.push('abort'),
    };
    const p = runApp(app, environ, transport);
    await sleep(5);
    controller.abort();
    const result = await p;
    expect(result.outcome).toBe('aborted');
    expect(calls).toEqual(['abort']);
    await sleep(1);
    expect(closed).toBe(true);
  });

  it('pipes a request body into the response (echo) with both sides streaming', async () => {
    const parts = Array.from({ length: 50 }, (_, i) => Buffer.from(`part ${i};`));
    const res = await run(
      (req, res) => {
        res.setHeader('Content-Type', 'application/octet-stream');
        pipeline(req, new PassThrough(), res, () => {});
      },
      { method: 'PUT', body: parts, chunked: true },
    );
    expect(res.body.toString()).toBe(parts.map(String).join(''));
  });
});
