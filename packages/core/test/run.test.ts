// docs/SPEC.md rules 3.x-8.x and 10.1/10.2: runApp over the in-memory transport, and the
// in-memory client `request()` from @tsgi/core/testing.
import { Buffer } from 'node:buffer';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  type Application,
  type Body,
  buildEnviron,
  compress,
  declareNeedsBody,
  type Environ,
  FileWrapper,
  isResponseObject,
  type LogLevel,
  needsBody,
  type ResponseHead,
  type RunOptions,
  runApp,
  type StartResponse,
  type Transport,
  TsgiError,
  validator,
} from '@tsgi/core';
import { MemoryTransport, request } from '@tsgi/core/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const ERROR_RAW =
  'Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\nInternal Server Error\n';

type Log = Array<{ level: LogLevel; text: string }>;

/** A direct runApp setup: environ with a log and an abort controller, a MemoryTransport. */
function setup(params: Record<string, string> = {}, transport: Transport = new MemoryTransport()) {
  const log: Log = [];
  const ac = new AbortController();
  const environ = buildEnviron(
    { REQUEST_METHOD: 'GET', REQUEST_URI: '/x', ...params },
    { errors: (t, level) => log.push({ level, text: t }), signal: ac.signal },
  );
  return { environ, log, ac, transport };
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

const hello: Application = (_e, sr) => {
  sr('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', '14'],
  ]);
  return ['Hello, World!\n'];
};

let dir: string;
let sixBytes: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsgi-run-test-'));
  sixBytes = join(dir, 'six.txt');
  await writeFile(sixBytes, 'abcdef');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('application and startResponse [3.1]', () => {
  it('[3.1][10.2] hello world: one head, one write, end; byte-exact', async () => {
    const res = await request(hello);
    expect(res.transport.calls).toEqual(['head', 'write', 'end']);
    expect(res.raw.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n',
    );
    expect(res.transport.head).toEqual({
      status: '200 OK',
      code: 200,
      headers: [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '14'],
      ],
      contentLength: 14,
    });
    expect(res.result).toEqual({ outcome: 'complete', head: res.transport.head, bodyBytes: 14 });
    expect(res.complete).toBe(true);
    expect(res.log).toEqual([]);
  });

  it('[3.1] an async app (a Promise of a body) works the same', async () => {
    const res = await request(async (e, sr) => {
      await tick();
      return hello(e, sr);
    });
    expect(res.raw.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n',
    );
  });

  it('[3.1] the app gets the environ runApp was given, and startResponse returns write()', async () => {
    const { environ, transport } = setup();
    let seen: Environ | undefined;
    let write: unknown;
    await runApp(
      (e, sr) => {
        seen = e;
        write = sr('204 No Content', []);
        return [];
      },
      environ,
      transport,
    );
    expect(seen).toBe(environ);
    expect(typeof write).toBe('function');
    expect((transport as MemoryTransport).calls).toEqual(['head', 'end']);
    expect((transport as MemoryTransport).head?.status).toBe('204 No Content');
  });
});

describe('the response-object style [3.2]', () => {
  it('[3.2] { status, headers, body } without startResponse', async () => {
    const res = await request(() => ({
      status: '201 Created',
      headers: [['Content-Type', 'text/plain']],
      body: 'abc',
    }));
    expect(res.raw.toString('latin1')).toBe(
      'Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nabc',
    );
    expect(res.complete).toBe(true);
  });

  it('[3.2][10.3] a numeric status gets its reason from the one status table', async () => {
    expect((await request(() => ({ status: 404, body: [] }))).statusLine).toBe('404 Not Found');
    expect((await request(() => ({ status: 418 }))).statusLine).toBe("418 I'm a Teapot");
    expect((await request(() => ({ status: 299 }))).statusLine).toBe('299 Unknown');
  });

  it('[3.2][3.3] body: a Uint8Array, nothing, an iterable, a generator, a Promise of the object', async () => {
    const cases: Array<[Application, string]> = [
      [() => ({ status: 200, body: latin1('bytes') }), 'bytes'],
      [() => ({ status: 200, body: null }), ''],
      [() => ({ status: 200 }), ''],
      [() => ({ status: 200, body: ['a', latin1('b')] }), 'ab'],
      [
        () => ({
          status: 200,
          body: (function* () {
            yield 'g';
            yield 'en';
          })(),
        }),
        'gen',
      ],
      [async () => ({ status: 200, headers: [], body: 'async' }), 'async'],
    ];
    for (const [app, body] of cases) {
      const res = await request(app);
      expect(res.status).toBe(200);
      expect(text(res.body)).toBe(body);
      const calls = res.transport.calls;
      expect(calls[0]).toBe('head');
      expect(calls[calls.length - 1]).toBe('end');
      expect(calls.includes('write')).toBe(body !== '');
    }
  });

  it('[3.2] isResponseObject tells the two styles apart', () => {
    const arrayWithStatus = Object.assign(['x'], { status: 200 });
    const iterableWithStatus = { status: 200, *[Symbol.iterator]() {} };
    const asyncIterableWithStatus = { status: 200, async *[Symbol.asyncIterator]() {} };
    const readable = Object.assign(Readable.from([]), { status: 200 });
    const stream = Object.assign(new ReadableStream(), { status: 200 });
    const wrapper = Object.assign(new FileWrapper('/nonexistent'), { status: 200 });
    const inherited = Object.create({ status: 200 });
    expect(isResponseObject({ status: 200 })).toBe(true);
    expect(isResponseObject({ status: '200 OK', headers: [], body: null })).toBe(true);
    for (const v of [
      arrayWithStatus,
      iterableWithStatus,
      asyncIterableWithStatus,
      readable,
      stream,
      wrapper,
      inherited,
      null,
      undefined,
      'status',
      200,
      {},
    ]) {
      expect(isResponseObject(v)).toBe(false);
    }
  });

  it('[3.2] an array with an own status property is a body, not a response object', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return Object.assign(['body'], { status: '500 Nope' });
    });
    expect(res.statusLine).toBe('200 OK');
    expect(text(res.body)).toBe('body');
  });

  it('[3.2] calling startResponse and returning a response object is an error (500)', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return { status: 200, body: 'x' };
    });
    expect(res.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(res.log).toEqual([
      {
        level: 'error',
        text: 'core: GET /: core: the app called startResponse and also returned a { status } response object; use one style',
      },
    ]);
  });
});

/** Body factories: each produces "ab", "cd", "ef" and counts its clean-ups. */
type Made = { body: Body; closes(): number; label: string };
const bodies: Record<string, () => Made> = {
  array: () => {
    let n = 0;
    const body = Object.assign(['ab', latin1('cd'), 'ef'], { close: () => void n++ });
    return { body, closes: () => n, label: 'array with close()' };
  },
  iterable: () => {
    let n = 0;
    const body = {
      *[Symbol.iterator]() {
        yield 'ab';
        yield 'cd';
        yield 'ef';
      },
      close() {
        n++;
      },
    };
    return { body, closes: () => n, label: 'iterable object with close()' };
  },
  generator: () => {
    let n = 0;
    const body = (function* () {
      try {
        yield 'ab';
        yield 'cd';
        yield 'ef';
      } finally {
        n++;
      }
    })();
    return { body, closes: () => n, label: 'generator' };
  },
  asyncGenerator: () => {
    let n = 0;
    const body = (async function* () {
      try {
        yield 'ab';
        await tick();
        yield 'cd';
        yield 'ef';
      } finally {
        n++;
      }
    })();
    return { body, closes: () => n, label: 'async generator' };
  },
  readableStream: () => {
    const parts = ['ab', 'cd', 'ef'];
    let cancels = 0;
    let finished = 0;
    const body = new ReadableStream<string>({
      pull(c) {
        const p = parts.shift();
        if (p === undefined) {
          finished++;
          c.close();
        } else c.enqueue(p);
      },
      cancel() {
        cancels++;
      },
    });
    // closed once: either read to its end or cancelled, never both, never twice
    return {
      body,
      closes: () => cancels + finished + (body.locked ? 100 : 0),
      label: 'ReadableStream',
    };
  },
  nodeReadable: () => {
    let n = 0;
    const body = Readable.from(['ab', 'cd', 'ef'], { objectMode: true });
    body.on('close', () => n++);
    return { body, closes: () => n + (body.destroyed ? 0 : 100), label: 'Node Readable' };
  },
  fileWrapper: () => {
    let n = 0;
    const fw = new FileWrapper(sixBytes, { chunkSize: 2 });
    const orig = fw.close.bind(fw);
    fw.close = async () => {
      n++;
      return orig();
    };
    return { body: fw, closes: () => n, label: 'FileWrapper' };
  },
};

describe('body types [3.3]', () => {
  for (const [kind, make] of Object.entries(bodies)) {
    it(`[3.3][6.1] ${kind}: delivered in order and closed exactly once`, async () => {
      const m = make();
      const res = await request((_e, sr) => {
        sr('200 OK', [['Content-Length', '6']]);
        return m.body;
      });
      expect(text(res.body)).toBe('abcdef');
      expect(res.transport.calls).toEqual(['head', 'write', 'write', 'write', 'end']);
      await tick();
      expect(m.closes()).toBe(1);
    });
  }

  it('[3.3] a Set (any sync iterable) and a mix of strings and bytes', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return new Set<string | Uint8Array>(['a', Uint8Array.of(0x62), latin1('\u00ff')]);
    });
    expect([...res.body]).toEqual([0x61, 0x62, 0xff]);
  });

  it('[3.3] returning a string is an error with a hint', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return 'text' as unknown as Body;
    });
    expect(res.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(res.log).toEqual([
      {
        level: 'error',
        text: 'core: GET /: core: the app returned a string; return an iterable of chunks such as [text]',
      },
    ]);
  });

  it('[3.3] a Fetch Response returned by mistake names the fix (fromFetch, --interface fetch)', async () => {
    const res = await request(async () => new Response('hi') as unknown as Body);
    expect(res.status).toBe(500);
    expect(res.log).toEqual([
      {
        level: 'error',
        text: expect.stringContaining(
          'core: the app returned a Fetch Response: it is a Fetch handler, not a tsgi app; wrap it with fromFetch() from @tsgi/bridges (tsgi command: --interface fetch)',
        ),
      },
    ]);
  });

  it('[3.3] returning null, undefined, a number or a non-iterable object is an error', async () => {
    const table: Array<[unknown, string]> = [
      [null, 'core: the app returned null, not a body or a { status, headers, body } object'],
      [
        undefined,
        'core: the app returned undefined, not a body or a { status, headers, body } object',
      ],
      [42, 'core: the app returned number, not a body or a { status, headers, body } object'],
      [
        { nope: 1 },
        'core: the app returned an object that is not iterable, a stream or a file wrapper',
      ],
    ];
    for (const [value, message] of table) {
      const res = await request((_e, sr) => {
        sr('200 OK', []);
        return value as Body;
      });
      expect(res.status).toBe(500);
      expect(res.log).toEqual([{ level: 'error', text: `core: GET /: ${message}` }]);
      expect((res.result.error as TsgiError).code).toBe('ERR_CORE_BAD_RETURN');
    }
  });

  it('[3.3] a chunk that is neither bytes nor a string is an error naming its type', async () => {
    const before = await request((_e, sr) => {
      sr('200 OK', []);
      return [42 as unknown as string];
    });
    expect(before.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(before.log[0]!.text).toBe(
      'core: GET /: core: response body chunk must be a Uint8Array or a string, got number',
    );
    const after = await request((_e, sr) => {
      sr('200 OK', []);
      return ['ok', null as unknown as string];
    });
    expect(after.transport.calls).toEqual(['head', 'write', 'abort']);
    expect(after.aborted?.message).toBe(
      'core: response body chunk must be a Uint8Array or a string, got null',
    );
    const view = await request((_e, sr) => {
      sr('200 OK', []);
      return [new DataView(new ArrayBuffer(2)) as unknown as Uint8Array];
    });
    expect(view.log[0]!.text).toBe(
      'core: GET /: core: response body chunk must be a Uint8Array or a string, got object',
    );
  });
});

describe('head commit [3.4]', () => {
  it('[3.4] a generator that calls startResponse lazily and yields an empty chunk first', async () => {
    const t = new MemoryTransport();
    const { environ } = setup({}, t);
    const snapshots: string[][] = [];
    const result = await runApp(
      (_e, sr) =>
        (function* () {
          snapshots.push([...t.calls]);
          sr('200 OK', [['X-Lazy', '1']]);
          yield '';
          snapshots.push([...t.calls]);
          yield latin1('');
          snapshots.push([...t.calls]);
          yield 'data';
          snapshots.push([...t.calls]);
        })(),
      environ,
      t,
    );
    expect(snapshots).toEqual([[], [], [], ['head', 'write']]);
    expect(t.calls).toEqual(['head', 'write', 'end']);
    expect(result.outcome).toBe('complete');
    expect(t.head?.headers).toEqual([['X-Lazy', '1']]);
  });

  it('[3.4] an async generator: same timing', async () => {
    const t = new MemoryTransport();
    const { environ } = setup({}, t);
    const snapshots: string[][] = [];
    await runApp(
      (_e, sr) =>
        (async function* () {
          sr('200 OK', []);
          yield '';
          await tick();
          snapshots.push([...t.calls]);
          yield 'x';
          snapshots.push([...t.calls]);
        })(),
      environ,
      t,
    );
    expect(snapshots).toEqual([[], ['head', 'write']]);
  });

  it('[3.4] a body with no non-empty chunk commits the head at its end', async () => {
    const t = new MemoryTransport();
    const { environ } = setup({}, t);
    let atLastStep: string[] = [];
    await runApp(
      (_e, sr) => {
        sr('200 OK', []);
        return (function* () {
          yield '';
          yield '';
          atLastStep = [...t.calls];
        })();
      },
      environ,
      t,
    );
    expect(atLastStep).toEqual([]);
    expect(t.calls).toEqual(['head', 'end']);
  });

  it('[3.4][7.1] an error after only empty chunks is still a clean 500', async () => {
    const res = await request((_e, sr) =>
      (function* () {
        sr('200 OK', [['Set-Cookie', 'session=secret']]);
        yield '';
        throw new Error('late but before the head');
      })(),
    );
    expect(res.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(res.header('set-cookie')).toBeUndefined();
  });
});

describe('startResponse twice and excInfo [3.5]', () => {
  it('[3.5] twice without excInfo throws in the app; the first head stands', async () => {
    let caught: unknown;
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      try {
        sr('201 Created', []);
      } catch (e) {
        caught = e;
      }
      return ['x'];
    });
    expect(caught).toBeInstanceOf(TsgiError);
    expect((caught as TsgiError).code).toBe('ERR_CORE_START_RESPONSE_TWICE');
    expect((caught as TsgiError).message).toBe('core: startResponse called twice without excInfo');
    expect(res.statusLine).toBe('200 OK');
  });

  it('[3.5] twice without excInfo, uncaught: 500; a null excInfo counts as none', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      sr('200 OK', [], null);
      return [];
    });
    expect(res.raw.toString('latin1')).toBe(ERROR_RAW);
  });

  it('[3.5] with excInfo before the head is committed, the new head replaces the old', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['X-Old', '1']]);
      const err = new Error('failed while rendering');
      sr('503 Service Unavailable', [['Content-Type', 'text/plain']], err);
      return ['try later'];
    });
    expect(res.raw.toString('latin1')).toBe(
      'Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\ntry later',
    );
  });

  it('[3.5] a generator that recovers with excInfo after an empty chunk sends its own error page', async () => {
    const res = await request((_e, sr) =>
      (function* () {
        sr('200 OK', []);
        yield '';
        try {
          throw new Error('render failed');
        } catch (e) {
          sr('500 Internal Server Error', [['Content-Type', 'text/html']], e);
          yield '<h1>Sorry</h1>';
        }
      })(),
    );
    expect(res.raw.toString('latin1')).toBe(
      'Status: 500 Internal Server Error\r\nContent-Type: text/html\r\n\r\n<h1>Sorry</h1>',
    );
    expect(res.complete).toBe(true);
  });

  it('[3.5][7.2] with excInfo after the head is committed, the excInfo itself is re-raised', async () => {
    const err = new Error('too late');
    let caught: unknown;
    const res = await request((_e, sr) =>
      (function* () {
        sr('200 OK', []);
        yield 'partial';
        try {
          sr('500 Internal Server Error', [], err);
        } catch (e) {
          caught = e;
          throw e;
        }
      })(),
    );
    expect(caught).toBe(err);
    expect(res.transport.calls).toEqual(['head', 'write', 'abort']);
    expect(res.aborted).toBe(err);
    expect(text(res.body)).toBe('partial');
    expect(res.statusLine).toBe('200 OK');
  });

  it('[3.5] startResponse after the response ended is an error', async () => {
    let saved: StartResponse | undefined;
    await request((_e, sr) => {
      saved = sr;
      sr('200 OK', []);
      return [];
    });
    expect(() => saved!('200 OK', [])).toThrowError(
      'core: startResponse called after the response ended',
    );
  });
});

describe('write() [3.6]', () => {
  it('[3.6] write() chunks go out in order before the returned body', async () => {
    const res = await request(async (_e, sr) => {
      const write = sr('200 OK', []);
      await write('a');
      await write(latin1('b'));
      return ['cd'];
    });
    expect(text(res.body)).toBe('abcd');
    expect(res.transport.calls).toEqual(['head', 'write', 'write', 'write', 'end']);
  });

  it('[3.6][3.4] the first write() commits the head, even an empty one; empty chunks never reach the transport', async () => {
    const t = new MemoryTransport();
    const { environ } = setup({}, t);
    const seen: string[][] = [];
    await runApp(
      async (_e, sr) => {
        const write = sr('200 OK', []);
        seen.push([...t.calls]);
        await write('');
        seen.push([...t.calls]);
        await write('x');
        seen.push([...t.calls]);
        return [];
      },
      environ,
      t,
    );
    expect(seen).toEqual([[], ['head'], ['head', 'write']]);
    expect(t.chunks.map(text)).toEqual(['x']);
  });

  it('[3.6][10.1] write() resolves only after the transport accepted the chunk', async () => {
    const gate = deferred();
    const calls: string[] = [];
    const transport: Transport = {
      sendHead: () => void calls.push('head'),
      write: async () => {
        calls.push('write');
        await gate.promise;
      },
      end: () => void calls.push('end'),
      abort: () => void calls.push('abort'),
    };
    const { environ } = setup({}, transport);
    let resolved = false;
    const done = runApp(
      async (_e, sr) => {
        const p = sr(
          '200 OK',
          [],
        )('x').then(() => {
          resolved = true;
        });
        await tick();
        await tick();
        expect(resolved).toBe(false);
        gate.resolve();
        await p;
        return [];
      },
      environ,
      transport,
    );
    await done;
    expect(resolved).toBe(true);
    expect(calls).toEqual(['head', 'write', 'end']);
  });

  it('[3.6][5.2] a write() past Content-Length breaks the response even if the app catches it', async () => {
    let caught: unknown;
    const res = await request(async (_e, sr) => {
      const write = sr('200 OK', [['Content-Length', '3']]);
      try {
        await write('abcdef');
      } catch (e) {
        caught = e;
      }
      return [];
    });
    expect((caught as TsgiError).code).toBe('ERR_CORE_CONTENT_LENGTH_EXCEEDED');
    expect(text(res.body)).toBe('abc');
    // Exactly Content-Length bytes went out: a whole response, ended; the error is logged
    // and carried by the result.
    expect(res.transport.calls).toEqual(['head', 'write', 'end']);
    expect((res.result.error as TsgiError).code).toBe('ERR_CORE_CONTENT_LENGTH_EXCEEDED');
    expect(res.log.map((l) => l.level)).toEqual(['error']);
  });

  it('[3.6][5.2] a write() past Content-Length that the app does not await breaks it too', async () => {
    const res = await request((_e, sr) => {
      const write = sr('200 OK', [['Content-Length', '3']]);
      void write('ab');
      void write('cd');
      return [];
    });
    expect(text(res.body)).toBe('abc');
    expect(res.transport.calls).toEqual(['head', 'write', 'write', 'end']);
    expect(res.result.error?.message).toBe(
      'core: the app sent more than its Content-Length of 3 bytes; the excess was cut off',
    );
  });

  it('[3.6][10.1] a write() after the response ended rejects and never reaches the transport', async () => {
    let write: ((c: string) => Promise<void>) | undefined;
    const res = await request((_e, sr) => {
      write = sr('200 OK', []);
      return ['a'];
    });
    expect(res.transport.calls).toEqual(['head', 'write', 'end']);
    const err = (await write!('late').catch((e: unknown) => e)) as TsgiError;
    expect(err.code).toBe('ERR_CORE_LATE_WRITE');
    expect(err.message).toBe('core: write() called after the response ended');
    expect(res.transport.calls).toEqual(['head', 'write', 'end']);
    // ... and after a body cut at Content-Length (5.2)
    let write2: ((c: string) => Promise<void>) | undefined;
    const cut = await request((_e, sr) => {
      write2 = sr('200 OK', [['Content-Length', '1']]);
      return ['ab'];
    });
    const err2 = (await write2!('x').catch((e: unknown) => e)) as TsgiError;
    expect(err2.code).toBe('ERR_CORE_LATE_WRITE');
    expect(cut.transport.calls).toEqual(['head', 'write', 'end']);
    // ... and after an abort (a body short of its Content-Length, 5.3)
    let write3: ((c: string) => Promise<void>) | undefined;
    const aborted = await request((_e, sr) => {
      write3 = sr('200 OK', [['Content-Length', '5']]);
      return ['ab'];
    });
    const err3 = (await write3!('x').catch((e: unknown) => e)) as TsgiError;
    expect(err3.code).toBe('ERR_CORE_LATE_WRITE');
    expect(aborted.transport.calls).toEqual(['head', 'write', 'abort']);
  });

  it('[3.6][4.4] write() of a string outside ISO-8859-1 rejects; the response is a 500', async () => {
    let caught: unknown;
    const res = await request(async (_e, sr) => {
      const write = sr('200 OK', []);
      await write('\u20ac').catch((e: unknown) => {
        caught = e;
      });
      return ['fine'];
    });
    expect((caught as TsgiError).code).toBe('ERR_CORE_NOT_LATIN1');
    expect((caught as TsgiError).message).toBe(
      'core: response write() chunk has U+20AC at index 0, outside ISO-8859-1; encode it to bytes yourself (roadmap seed, Definition #4 item 7)',
    );
    expect(res.raw.toString('latin1')).toBe(ERROR_RAW);
  });
});

describe('validation inside runApp [4.1][4.2][4.3][4.4][4.5]', () => {
  it('[4.3] a bad header throws from startResponse; uncaught it is a 500 and the log names it', async () => {
    let caught: unknown;
    const res = await request((_e, sr) => {
      try {
        sr('200 OK', [['X-Bad', 'a\r\nSet-Cookie: x=1']]);
      } catch (e) {
        caught = e;
        throw e;
      }
      return [];
    });
    expect((caught as TsgiError).message).toBe('core: header X-Bad value has CR (0x0D) at index 1');
    expect(res.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(res.log).toEqual([
      { level: 'error', text: 'core: GET /: core: header X-Bad value has CR (0x0D) at index 1' },
    ]);
  });

  it('[4.5] a hop-by-hop header in a response object is a 500', async () => {
    const res = await request(() => ({ status: 200, headers: [['Connection', 'close']] }));
    expect(res.status).toBe(500);
    expect(res.log[0]!.text).toBe(
      'core: GET /: core: header Connection is hop-by-hop and belongs to the server, not the application',
    );
  });

  it('[4.1] a bad status in a response object is a 500', async () => {
    const res = await request(() => ({ status: '200 O\u20ac' }));
    expect(res.status).toBe(500);
    expect(res.log[0]!.text).toBe(
      'core: GET /: core: status "200 O€" has U+20AC (outside ISO-8859-1) at index 5',
    );
  });

  it('[4.4] string chunks are encoded as ISO-8859-1, byte for byte', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return ['caf\u00e9', '\u0000\u00ff'];
    });
    expect([...res.body]).toEqual([0x63, 0x61, 0x66, 0xe9, 0x00, 0xff]);
  });

  it('[4.4] a string chunk outside ISO-8859-1: 500 before the head, abort after, message names it', async () => {
    const before = await request((_e, sr) => {
      sr('200 OK', []);
      return ['caf\u20ac'];
    });
    expect(before.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(before.log[0]!.text).toBe(
      'core: GET /: core: response body chunk has U+20AC at index 3, outside ISO-8859-1; encode it to bytes yourself (roadmap seed, Definition #4 item 7)',
    );
    const after = await request((_e, sr) => {
      sr('200 OK', []);
      return ['ok', 'x\u{1f600}'];
    });
    expect(after.transport.calls).toEqual(['head', 'write', 'abort']);
    expect(after.aborted?.message).toBe(
      'core: response body chunk has U+1F600 at index 1, outside ISO-8859-1; encode it to bytes yourself (roadmap seed, Definition #4 item 7)',
    );
  });

  it('[4.4] Uint8Array chunks pass through untouched (UTF-8 is the app’s business)', async () => {
    const utf8 = Buffer.from('€', 'utf8');
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return [utf8];
    });
    expect(res.body.equals(utf8)).toBe(true);
  });
});

describe('Content-Length [5.1][5.2][5.3]', () => {
  it('[5.1] no Content-Length is ever added, not even for a one-chunk body', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return ['one chunk'];
    });
    expect(res.headers).toEqual([['Content-Type', 'text/plain']]);
    expect(res.transport.head?.contentLength).toBeUndefined();
    expect(res.raw.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\none chunk',
    );
  });

  it('[5.1][8.1] nor on HEAD with an empty body', async () => {
    const res = await request(
      (_e, sr) => {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        return [];
      },
      { method: 'HEAD' },
    );
    expect(res.headers).toEqual([['Content-Type', 'text/plain']]);
  });

  it('[5.2] the body is cut at Content-Length, reported, and the response ended whole', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['Content-Length', '5']]);
      return ['hello world'];
    });
    expect(text(res.body)).toBe('hello');
    expect(res.transport.calls).toEqual(['head', 'write', 'end']);
    expect(res.aborted).toBeUndefined();
    expect((res.result.error as TsgiError).code).toBe('ERR_CORE_CONTENT_LENGTH_EXCEEDED');
    expect(res.log).toEqual([
      {
        level: 'error',
        text: 'core: GET /: core: the app sent more than its Content-Length of 5 bytes; the excess was cut off',
      },
    ]);
    expect(res.result).toMatchObject({ outcome: 'complete', bodyBytes: 5 });
  });

  it('[5.2][6.1] after the cut the body is not iterated further, and it is closed once', async () => {
    const reached: string[] = [];
    let finals = 0;
    const res = await request((_e, sr) => {
      sr('200 OK', [['Content-Length', '4']]);
      return (function* () {
        try {
          for (const c of ['abc', 'def', 'ghi']) {
            reached.push(c);
            yield c;
          }
        } finally {
          finals++;
        }
      })();
    });
    expect(text(res.body)).toBe('abcd');
    expect(reached).toEqual(['abc', 'def']);
    expect(finals).toBe(1);
  });

  it('[5.2] Content-Length 0 and a body: nothing is written', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['Content-Length', '0']]);
      return ['x'];
    });
    expect(res.transport.calls).toEqual(['head', 'end']);
    expect(res.body.length).toBe(0);
    expect((res.result.error as TsgiError).code).toBe('ERR_CORE_CONTENT_LENGTH_EXCEEDED');
  });

  it('[5.2][5.3] property: the transport never gets more than Content-Length; it aborts only when short', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 8 }),
        fc.nat({ max: 120 }),
        async (chunks, cl) => {
          const all = Buffer.concat(chunks);
          const res = await request((_e, sr) => {
            sr('200 OK', [['Content-Length', String(cl)]]);
            return chunks;
          });
          expect(res.body.equals(all.subarray(0, Math.min(cl, all.length)))).toBe(true);
          // Exact or cut at Content-Length: ended whole; short: aborted (5.3).
          expect(res.complete).toBe(all.length >= cl);
          expect(res.aborted !== undefined).toBe(all.length < cl);
          expect(res.result.error !== undefined).toBe(all.length !== cl);
          for (const c of res.transport.chunks) expect(c.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('[5.3] fewer bytes than Content-Length: reported and aborted', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['Content-Length', '10']]);
      return ['abc'];
    });
    expect(res.transport.calls).toEqual(['head', 'write', 'abort']);
    expect((res.aborted as TsgiError).code).toBe('ERR_CORE_CONTENT_LENGTH_SHORT');
    expect(res.log).toEqual([
      {
        level: 'error',
        text: 'core: GET /: core: the app sent 3 bytes but declared Content-Length 10',
      },
    ]);
  });

  it('[5.3] an empty GET body with a Content-Length is short too', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['Content-Length', '10']]);
      return [];
    });
    expect(res.transport.calls).toEqual(['head', 'abort']);
  });
});

describe('close exactly once [6.1]', () => {
  /** A transport whose second write fails (a socket error). */
  class FailingTransport extends MemoryTransport {
    override async write(chunk: Uint8Array): Promise<void> {
      if (this.chunks.length === 1) {
        this.calls.push('write');
        throw new Error('EPIPE');
      }
      await super.write(chunk);
    }
  }

  for (const [kind, make] of Object.entries(bodies)) {
    it(`[6.1] ${kind}: closed once when the transport fails mid-body`, async () => {
      const m = make();
      const t = new FailingTransport();
      const { environ, log } = setup({}, t);
      const result = await runApp(
        (_e, sr) => {
          sr('200 OK', []);
          return m.body;
        },
        environ,
        t,
      );
      expect(result.outcome).toBe('aborted');
      expect(t.calls).toEqual(['head', 'write', 'write', 'abort']);
      expect(log.map((l) => l.level)).toEqual(['error']);
      await tick();
      expect(m.closes()).toBe(1);
    });

    it(`[6.1][6.2] ${kind}: closed once when the client goes away`, async () => {
      const m = make();
      const res = await request(
        (_e, sr) => {
          sr('200 OK', []);
          return m.body;
        },
        { disconnectAfterBytes: 2 },
      );
      expect(text(res.body)).toBe('ab');
      expect(res.transport.calls).toEqual(['head', 'write', 'abort']);
      expect(res.log).toEqual([{ level: 'debug', text: 'core: client went away: GET /' }]);
      await tick();
      expect(m.closes()).toBe(1);
    });

    it(`[6.1][6.2] ${kind}: closed once when the client went away before the body was returned`, async () => {
      const m = make();
      const t = new MemoryTransport();
      const { environ, ac, log } = setup({}, t);
      const result = await runApp(
        async (_e, sr) => {
          sr('200 OK', []);
          ac.abort();
          await tick();
          return m.body;
        },
        environ,
        t,
      );
      expect(result.outcome).toBe('aborted');
      expect(t.calls).toEqual(['abort']);
      expect(log).toEqual([{ level: 'debug', text: 'core: client went away: GET /x' }]);
      await tick();
      expect(m.closes()).toBe(1);
    });
  }

  it('[6.1] close() is called once when the app errors mid-body (generator with close)', async () => {
    let closes = 0;
    const body = {
      *[Symbol.iterator]() {
        yield 'a';
        throw new Error('boom');
      },
      close() {
        closes++;
      },
    };
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return body;
    });
    expect(res.transport.calls).toEqual(['head', 'write', 'abort']);
    expect(closes).toBe(1);
  });

  it('[6.1][7.1] close() is called once when the first chunk is bad (500)', async () => {
    let closes = 0;
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return Object.assign([7 as unknown as string], { close: () => void closes++ });
    });
    expect(res.status).toBe(500);
    expect(closes).toBe(1);
  });

  it('[6.1] a close() that throws is logged, and the response still completes', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', []);
      return Object.assign(['x'], {
        close() {
          throw new Error('close failed');
        },
      });
    });
    expect(res.complete).toBe(true);
    expect(res.log.length).toBe(1);
    expect(res.log[0]!.level).toBe('error');
    expect(res.log[0]!.text.startsWith('core: body close() failed: Error: close failed')).toBe(
      true,
    );
  });

  it('[6.1][11.6] the validator sees exactly one close for every outcome', async () => {
    for (const disconnectAfterBytes of [undefined, 1]) {
      const res = await request(
        validator((_e, sr) => {
          sr('200 OK', []);
          return ['a', 'b', 'c'];
        }),
        { disconnectAfterBytes },
      );
      await tick();
      expect(res.log.filter((l) => l.text.includes('validator'))).toEqual([]);
    }
  });
});

describe('client gone [6.2]', () => {
  it('[6.2] a client that goes away is logged at debug only, and the transport aborted', async () => {
    const steps: string[] = [];
    const res = await request(
      (_e, sr) => {
        sr('200 OK', []);
        return (async function* () {
          for (const c of ['one', 'two', 'three', 'four']) {
            steps.push(c);
            yield c;
          }
        })();
      },
      { disconnectAfterBytes: 3 },
    );
    expect(text(res.body)).toBe('one');
    // the generator was closed (return()) as soon as the client went: 'two' never computed
    expect(steps).toEqual(['one']);
    expect(res.log).toEqual([{ level: 'debug', text: 'core: client went away: GET /' }]);
    expect(res.result.outcome).toBe('aborted');
    expect(res.status).toBe(200);
  });

  it('[6.2] a client gone before the head gets no 500: the transport is aborted', async () => {
    const t = new MemoryTransport();
    const { environ, ac, log } = setup({}, t);
    const reason = new Error('peer reset');
    const result = await runApp(
      async () => {
        ac.abort(reason);
        throw new Error('the app noticed and gave up');
      },
      environ,
      t,
    );
    expect(t.calls).toEqual(['abort']);
    expect(t.aborted?.message).toBe('the app noticed and gave up');
    expect(result.head).toBeUndefined();
    expect(log).toEqual([{ level: 'debug', text: 'core: client went away: GET /x' }]);
  });

  it('[6.2] an async app still waiting when the client leaves: runApp resolves at once, the late body is closed', async () => {
    const t = new MemoryTransport();
    const { environ, ac, log } = setup({}, t);
    const app = deferred<Body>();
    let closed = 0;
    const running = runApp(() => app.promise, environ, t);
    await tick();
    ac.abort(new Error('peer reset'));
    const result = await running;
    expect(result.outcome).toBe('aborted');
    expect(t.calls).toEqual(['abort']);
    expect(t.aborted?.message).toBe('peer reset');
    expect(log).toEqual([{ level: 'debug', text: 'core: client went away: GET /x' }]);
    app.resolve({
      *[Symbol.iterator]() {
        yield 'late';
      },
      close() {
        closed++;
      },
    } as unknown as Body);
    await tick();
    expect(closed).toBe(1);
  });

  it('[6.2] the signal reason becomes the abort reason when the core notices', async () => {
    const t = new MemoryTransport();
    const { environ, ac } = setup({}, t);
    const reason = new Error('socket closed');
    await runApp(
      (_e, sr) => {
        sr('200 OK', []);
        return (function* () {
          yield 'a';
          ac.abort(reason);
          yield 'b';
        })();
      },
      environ,
      t,
    );
    expect(t.aborted).toBe(reason);
  });
});

describe('application errors [7.1][7.2]', () => {
  it('[7.1] an exception before the head: fixed 500, no diagnostics, full error in the log', async () => {
    const err = new Error('secret diagnostic 1234');
    const res = await request(() => {
      throw err;
    });
    expect(res.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(res.body.includes('secret')).toBe(false);
    expect(res.transport.calls).toEqual(['head', 'write', 'end']);
    expect(res.result).toEqual({
      outcome: 'complete',
      head: res.transport.head,
      bodyBytes: 22,
      error: err,
    });
    expect(res.log.length).toBe(1);
    expect(res.log[0]!.level).toBe('error');
    expect(res.log[0]!.text).toBe(`core: GET /: ${err.stack}`);
    expect(res.log[0]!.text).toContain('secret diagnostic 1234');
    expect(res.log[0]!.text).toContain('run.test.ts');
  });

  it('[7.1] a rejected Promise, a throwing generator, a thrown non-Error', async () => {
    const rejected = await request(async () => {
      throw new TypeError('async secret');
    });
    expect(rejected.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(rejected.log[0]!.text.startsWith('core: GET /: TypeError: async secret')).toBe(true);
    const gen = await request((_e, sr) =>
      // biome-ignore lint/correctness/useYield: a body that fails before its first chunk
      (function* () {
        sr('200 OK', []);
        throw new Error('in generator');
      })(),
    );
    expect(gen.raw.toString('latin1')).toBe(ERROR_RAW);
    const str = await request(() => {
      throw 'a plain string';
    });
    expect(str.raw.toString('latin1')).toBe(ERROR_RAW);
    expect(str.log).toEqual([{ level: 'error', text: 'core: GET /: a plain string' }]);
  });

  it('[7.1] the 500 replaces a pending head: none of its headers leak', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['Set-Cookie', 'session=abc']]);
      throw new Error('x');
    });
    expect(res.headers).toEqual([
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', '22'],
    ]);
  });

  it('[7.1][8.2] on HEAD with headBody drop the 500 has its head but no body', async () => {
    const res = await request(
      () => {
        throw new Error('x');
      },
      { method: 'HEAD' },
      { headBody: 'drop' },
    );
    expect(res.transport.calls).toEqual(['head', 'end']);
    expect(res.status).toBe(500);
  });

  it('[7.1] no startResponse at all is an error', async () => {
    const res = await request(() => ['x']);
    expect(res.status).toBe(500);
    expect(res.log[0]!.text).toBe(
      'core: GET /: core: the body produced data before startResponse was called',
    );
    const empty = await request(() => []);
    expect(empty.log[0]!.text).toBe(
      'core: GET /: core: the app returned without calling startResponse',
    );
  });

  it('[7.2] an exception after the head: the transport aborts; the partial body stays partial', async () => {
    const err = new Error('mid-body');
    const res = await request((_e, sr) =>
      (function* () {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        yield 'partial';
        throw err;
      })(),
    );
    expect(res.transport.calls).toEqual(['head', 'write', 'abort']);
    expect(res.aborted).toBe(err);
    expect(text(res.body)).toBe('partial');
    expect(res.result).toEqual({
      outcome: 'aborted',
      head: res.transport.head,
      bodyBytes: 7,
      error: err,
    });
    expect(res.log.map((l) => l.level)).toEqual(['error']);
  });

  it('[7.2][10.2] a transport whose abort throws: logged, runApp still resolves', async () => {
    const transport: Transport = {
      sendHead() {},
      write() {
        throw new Error('write failed');
      },
      end() {},
      abort() {
        throw new Error('abort failed too');
      },
    };
    const { environ, log } = setup({}, transport);
    const result = await runApp(
      (_e, sr) => {
        sr('200 OK', []);
        return ['x'];
      },
      environ,
      transport,
    );
    expect(result.outcome).toBe('aborted');
    expect(result.error?.message).toBe('write failed');
    expect(log.map((l) => l.level)).toEqual(['error', 'error']);
    expect(log[1]!.text.startsWith('core: transport abort failed: Error: abort failed too')).toBe(
      true,
    );
  });
});

describe('HEAD [8.1][8.2][8.3][8.4]', () => {
  const full: Application = (_e, sr) => {
    sr('200 OK', [
      ['Content-Type', 'text/plain'],
      ['Content-Length', '200'],
    ]);
    return [Buffer.alloc(200, 0x78)];
  };

  it('[8.1] HEAD gets exactly the head GET gets; the app’s full body is passed on by default', async () => {
    const get = await request(full);
    const head = await request(full, { method: 'HEAD' });
    expect(head.transport.head).toEqual(get.transport.head);
    expect(head.body.length).toBe(200);
    expect(head.transport.calls).toEqual(['head', 'write', 'end']);
  });

  it('[8.2] headBody drop: same head, no body write, bytes still counted and checked', async () => {
    const get = await request(full);
    const head = await request(full, { method: 'HEAD' }, { headBody: 'drop' });
    expect(head.transport.head).toEqual(get.transport.head);
    expect(head.transport.calls).toEqual(['head', 'end']);
    expect(head.result.bodyBytes).toBe(200);
    const getDrop = await request(full, {}, { headBody: 'drop' });
    expect(getDrop.body.length).toBe(200);
  });

  it('[8.2][5.2] headBody drop still enforces Content-Length', async () => {
    const over = await request(
      (_e, sr) => {
        sr('200 OK', [['Content-Length', '3']]);
        return ['abcdef'];
      },
      { method: 'HEAD' },
      { headBody: 'drop' },
    );
    expect(over.transport.calls).toEqual(['head', 'end']);
    expect((over.result.error as TsgiError).code).toBe('ERR_CORE_CONTENT_LENGTH_EXCEEDED');
    const short = await request(
      (_e, sr) => {
        sr('200 OK', [['Content-Length', '30']]);
        return ['abc'];
      },
      { method: 'HEAD' },
      { headBody: 'drop' },
    );
    expect(short.transport.calls).toEqual(['head', 'abort']);
  });

  it('[8.4] an app that drops the body on HEAD but keeps Content-Length is not an error', async () => {
    const app: Application = (e, sr) => {
      sr('200 OK', [['Content-Length', '200']]);
      return e.REQUEST_METHOD === 'HEAD' ? [] : [Buffer.alloc(200)];
    };
    const head = await request(app, { method: 'HEAD' });
    expect(head.transport.calls).toEqual(['head', 'end']);
    expect(head.log).toEqual([]);
    // ... whereas a partial body on HEAD is
    const partial = await request(
      (_e, sr) => {
        sr('200 OK', [['Content-Length', '200']]);
        return ['x'];
      },
      { method: 'HEAD' },
    );
    expect(partial.transport.calls).toEqual(['head', 'write', 'abort']);
  });

  it('[8.3] mapHeadToGet: what the app sees for HEAD', async () => {
    const seen: string[] = [];
    const plain: Application = (e, sr) => {
      seen.push(e.REQUEST_METHOD);
      sr('200 OK', []);
      return [];
    };
    const declared = declareNeedsBody(((e, sr) => plain(e, sr)) as Application);
    const table: Array<[Application, RunOptions['mapHeadToGet'], string]> = [
      [plain, undefined, 'HEAD'],
      [plain, 'off', 'HEAD'],
      [plain, 'on', 'GET'],
      [plain, 'auto', 'HEAD'],
      [declared, 'auto', 'GET'],
      [declared, 'off', 'HEAD'],
    ];
    for (const [app, mapHeadToGet, want] of table) {
      seen.length = 0;
      await request(app, { method: 'HEAD' }, { mapHeadToGet });
      expect(seen).toEqual([want]);
    }
    seen.length = 0;
    await request(plain, { method: 'GET' }, { mapHeadToGet: 'on' });
    expect(seen).toEqual(['GET']);
  });

  it('[8.3] mapped HEAD is still a HEAD response: headBody drop applies', async () => {
    const res = await request(full, { method: 'HEAD' }, { mapHeadToGet: 'on', headBody: 'drop' });
    expect(res.environ.REQUEST_METHOD).toBe('GET');
    expect(res.transport.calls).toEqual(['head', 'end']);
  });

  it('[8.3][12.3] compress + mapHeadToGet auto: HEAD gets GET’s headers even from an app that skips the body on HEAD', async () => {
    const page = 'hello compressible world '.repeat(40);
    const lazy: Application = (e, sr) => {
      sr('200 OK', [
        ['Content-Type', 'text/plain'],
        ['Content-Length', String(page.length)],
      ]);
      return e.REQUEST_METHOD === 'HEAD' ? [] : [page];
    };
    const app = compress(lazy);
    expect(needsBody(app)).toBe(true);
    const accept = { 'Accept-Encoding': 'gzip' };
    const get = await request(app, { headers: accept }, { mapHeadToGet: 'auto' });
    const head = await request(app, { method: 'HEAD', headers: accept }, { mapHeadToGet: 'auto' });
    expect(get.header('content-encoding')).toBe('gzip');
    expect(head.headers).toEqual(get.headers);
    // without the mapping, the seed's problem: HEAD and GET disagree
    const off = await request(app, { method: 'HEAD', headers: accept }, { mapHeadToGet: 'off' });
    expect(off.header('content-encoding')).toBeUndefined();
    expect(off.header('content-length')).toBe(String(page.length));
    expect(off.headers).not.toEqual(get.headers);
    // the mark survives the validator
    const validated = validator(app);
    expect(needsBody(validated)).toBe(true);
    const vhead = await request(
      validated,
      { method: 'HEAD', headers: accept },
      { mapHeadToGet: 'auto' },
    );
    expect(vhead.headers).toEqual(get.headers);
  });
});

describe('transport interface and order of steps [10.1][10.2]', () => {
  it('[10.1][10.2] sendHead is awaited before the first write; each write before the next chunk is pulled', async () => {
    const headGate = deferred();
    const writeGate = deferred();
    const events: string[] = [];
    const transport: Transport = {
      async sendHead() {
        events.push('sendHead');
        await headGate.promise;
        events.push('sendHead done');
      },
      async write(c) {
        events.push(`write ${text(c)}`);
        if (text(c) === 'a') await writeGate.promise;
      },
      end: () => void events.push('end'),
      abort: () => void events.push('abort'),
    };
    const { environ } = setup({}, transport);
    const done = runApp(
      (_e, sr) => {
        sr('200 OK', []);
        return (function* () {
          events.push('pull a');
          yield 'a';
          events.push('pull b');
          yield 'b';
        })();
      },
      environ,
      transport,
    );
    await tick();
    expect(events).toEqual(['pull a', 'sendHead']);
    headGate.resolve();
    await tick();
    expect(events).toEqual(['pull a', 'sendHead', 'sendHead done', 'write a']);
    writeGate.resolve();
    const result = await done;
    expect(events).toEqual([
      'pull a',
      'sendHead',
      'sendHead done',
      'write a',
      'pull b',
      'write b',
      'end',
    ]);
    expect(result.outcome).toBe('complete');
  });

  it('[10.2] a failing sendHead or end ends in abort, never in a rejected runApp', async () => {
    for (const failing of ['sendHead', 'end'] as const) {
      const calls: string[] = [];
      const transport: Transport = {
        sendHead() {
          calls.push('head');
          if (failing === 'sendHead') throw new Error('head failed');
        },
        write: () => void calls.push('write'),
        end() {
          calls.push('end');
          if (failing === 'end') throw new Error('end failed');
        },
        abort: () => void calls.push('abort'),
      };
      const { environ } = setup({}, transport);
      const result = await runApp(hello, environ, transport);
      expect(result.outcome).toBe('aborted');
      expect(result.error?.message).toBe(`${failing === 'end' ? 'end' : 'head'} failed`);
      expect(calls).toEqual(
        failing === 'sendHead' ? ['head', 'abort'] : ['head', 'write', 'end', 'abort'],
      );
    }
  });

  it('[10.2] exactly one of end or abort, and sendHead at most once, across outcomes', async () => {
    const apps: Application[] = [
      hello,
      () => {
        throw new Error('x');
      },
      (_e, sr) => {
        sr('200 OK', [['Content-Length', '1']]);
        return ['toolong'];
      },
      (_e, sr) =>
        (function* () {
          sr('200 OK', []);
          yield 'a';
          throw new Error('y');
        })(),
    ];
    for (const app of apps) {
      const res = await request(app);
      const c = res.transport.calls;
      expect(c.filter((x) => x === 'head').length).toBe(1);
      expect(c[0]).toBe('head');
      expect(c.filter((x) => x === 'end' || x === 'abort').length).toBe(1);
      expect(['end', 'abort']).toContain(c[c.length - 1]);
    }
  });

  it('[10.2] mapHeadToGet is applied before the app runs; the head goes out only once', async () => {
    const { environ, transport } = setup({ REQUEST_METHOD: 'HEAD' });
    let seen = '';
    await runApp(
      (e, sr) => {
        seen = e.REQUEST_METHOD;
        sr('200 OK', []);
        return [];
      },
      environ,
      transport,
      { mapHeadToGet: 'on' },
    );
    expect(seen).toBe('GET');
    expect((transport as MemoryTransport).calls).toEqual(['head', 'end']);
  });

  it('[10.2] RunResult.head is the committed head', async () => {
    const res = await request((_e, sr) => {
      sr('200 OK', [['X-A', 'b']]);
      return ['z'];
    });
    const head = res.result.head as ResponseHead;
    expect(head).toBe(res.transport.head);
    expect(head.headers).toEqual([['X-A', 'b']]);
  });
});
