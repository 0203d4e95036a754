// docs/SPEC.md rules 2.1-2.10: tsgi.input. Property tests (fast-check) over any body, split
// into any chunks, read with any sequence of sizes.
import { Buffer } from 'node:buffer';
import {
  type ByteSource,
  createInput,
  drainInput,
  Input,
  sourceFromIterable,
  TsgiError,
  validator,
} from '@tsgi/core';
import { request } from '@tsgi/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const str = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** A source over `chunks` that counts pulls and can add bytes past the body. */
function counting(chunks: Uint8Array[]): ByteSource & { pulls: number } {
  const queue = [...chunks];
  const src = {
    pulls: 0,
    async pull() {
      src.pulls++;
      return queue.shift() ?? null;
    },
  };
  return src;
}

/** Splits `body` at the given cut points (any order, any repeats) into chunks, empty ones included. */
function split(body: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(body.subarray(prev, p));
    prev = p;
  }
  out.push(body.subarray(prev));
  return out;
}

type Op =
  | { kind: 'read'; size: number | undefined }
  | { kind: 'readline'; size: number | undefined }
  | { kind: 'readlines'; hint: number | undefined }
  | { kind: 'iter' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      size: fc.option(fc.integer({ min: 0, max: 70 }), { nil: undefined, freq: 8 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('readline' as const),
      size: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('readlines' as const),
      hint: fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'iter' as const }) },
);

// Bodies with plenty of line feeds, so readline has lines to find.
const bodyArb = fc
  .array(fc.oneof(fc.constant(0x0a), fc.integer({ min: 0, max: 255 })), { maxLength: 300 })
  .map((a) => Uint8Array.from(a));

/** Runs one op and checks what it returned against the bytes that remain. */
async function runOp(input: Input, op: Op, remaining: Buffer): Promise<Buffer> {
  switch (op.kind) {
    case 'read': {
      const got = Buffer.from(await input.read(op.size));
      const want =
        op.size === undefined
          ? remaining
          : remaining.subarray(0, Math.min(op.size, remaining.length));
      expect(got.equals(want)).toBe(true);
      return got;
    }
    case 'readline': {
      const got = Buffer.from(await input.readline(op.size));
      const limit = op.size ?? Number.POSITIVE_INFINITY;
      const lf = remaining.indexOf(0x0a);
      const lineEnd = lf < 0 ? remaining.length : lf + 1;
      expect(got.equals(remaining.subarray(0, Math.min(lineEnd, limit)))).toBe(true);
      return got;
    }
    case 'readlines': {
      const lines = (await input.readlines(op.hint)).map((l) => Buffer.from(l));
      let total = 0;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        // every line but possibly the last ends with LF and has no other LF
        expect(line.length).toBeGreaterThan(0);
        expect(line.indexOf(0x0a)).toBe(line.includes(0x0a) ? line.length - 1 : -1);
        if (i < lines.length - 1) expect(line[line.length - 1]).toBe(0x0a);
        total += line.length;
      }
      const got = Buffer.concat(lines);
      expect(got.equals(remaining.subarray(0, total))).toBe(true);
      if (op.hint !== undefined && op.hint > 0) {
        // stops as soon as the total reaches the hint, or at the end
        if (total < op.hint) expect(total).toBe(remaining.length);
        const beforeLast = total - (lines[lines.length - 1]?.length ?? 0);
        expect(beforeLast).toBeLessThan(op.hint);
      } else {
        expect(total).toBe(remaining.length);
      }
      return got;
    }
    case 'iter': {
      // one step of async iteration: the next chunk, whatever its size
      const it = input[Symbol.asyncIterator]();
      const r = await it.next();
      if (r.done) {
        expect(remaining.length).toBe(0);
        return Buffer.alloc(0);
      }
      const got = Buffer.from(r.value);
      expect(got.length).toBeGreaterThan(0);
      expect(got.equals(remaining.subarray(0, got.length))).toBe(true);
      return got;
    }
  }
}

describe('tsgi.input: any reads over any chunking [2.1][2.2][2.3][2.4][2.5][2.6][2.7]', () => {
  it('[2.1][2.2][2.4][2.5][2.6] with CONTENT_LENGTH: exactly the body, then empty chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        bodyArb,
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(opArb, { maxLength: 25 }),
        async (body, cuts, ops) => {
          const input = createInput(sourceFromIterable(split(body, cuts)), body.length);
          const all = Buffer.from(body);
          let pos = 0;
          for (const op of ops) pos += (await runOp(input, op, all.subarray(pos))).length;
          const rest = Buffer.from(await input.read());
          expect(Buffer.concat([all.subarray(0, pos), rest]).equals(all)).toBe(true);
          for (let i = 0; i < 3; i++) {
            expect((await input.read(10)).length).toBe(0);
            expect((await input.readline()).length).toBe(0);
            expect((await input.read()).length).toBe(0);
          }
          expect(await input.readlines()).toEqual([]);
          expect(input.received).toBe(body.length);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('[2.7] without CONTENT_LENGTH (dechunked stream): reads go to the end of the source', async () => {
    await fc.assert(
      fc.asyncProperty(
        bodyArb,
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(opArb, { maxLength: 25 }),
        async (body, cuts, ops) => {
          const input = createInput(sourceFromIterable(split(body, cuts)), undefined);
          const all = Buffer.from(body);
          let pos = 0;
          for (const op of ops) pos += (await runOp(input, op, all.subarray(pos))).length;
          const rest = Buffer.from(await input.read());
          expect(Buffer.concat([all.subarray(0, pos), rest]).equals(all)).toBe(true);
          expect((await input.read(1)).length).toBe(0);
          expect(input.exhausted).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('[2.3] never past CONTENT_LENGTH, whatever the source offers after it', async () => {
    await fc.assert(
      fc.asyncProperty(
        bodyArb,
        fc.uint8Array({ minLength: 1, maxLength: 50 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(opArb, { maxLength: 20 }),
        async (body, extra, cuts, ops) => {
          const wire = Buffer.concat([body, extra]);
          const src = counting(split(wire, cuts));
          const input = createInput(src, body.length);
          const all = Buffer.from(body);
          let pos = 0;
          for (const op of ops) pos += (await runOp(input, op, all.subarray(pos))).length;
          const rest = Buffer.from(await input.read());
          expect(Buffer.concat([all.subarray(0, pos), rest]).equals(all)).toBe(true);
          expect(input.received).toBe(body.length);
          const pullsAtEnd = src.pulls;
          expect((await input.read(100)).length).toBe(0);
          expect((await input.readline()).length).toBe(0);
          // reading past the end pulls nothing more from the source
          expect(src.pulls).toBe(pullsAtEnd);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('[2.10] reads started together without awaiting get the bytes in order, each once', async () => {
    await fc.assert(
      fc.asyncProperty(
        bodyArb,
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(opArb, { maxLength: 15 }),
        async (body, cuts, ops) => {
          const input = createInput(sourceFromIterable(split(body, cuts)), body.length);
          const pending = ops.map((op) =>
            op.kind === 'read'
              ? input.read(op.size).then((b) => [b])
              : op.kind === 'readline'
                ? input.readline(op.size).then((b) => [b])
                : op.kind === 'readlines'
                  ? input.readlines(op.hint)
                  : input[Symbol.asyncIterator]()
                      .next()
                      .then((r) => (r.done ? [] : [r.value])),
          );
          pending.push(input.read().then((b) => [b]));
          const parts = (await Promise.all(pending)).flat();
          expect(Buffer.concat(parts.map((p) => Buffer.from(p))).equals(Buffer.from(body))).toBe(
            true,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('tsgi.input: the rules one by one', () => {
  const body = 'abcdefgh\nij\n\nklm';
  const mk = (cl: number = body.length, chunks = [latin1(body)]) =>
    createInput(sourceFromIterable(chunks), cl);
  /** Without CONTENT_LENGTH (a dechunked body). */
  const chunked = (chunks: Uint8Array[]) => createInput(sourceFromIterable(chunks), undefined);

  it('[2.1] read(size) returns exactly size bytes across chunk boundaries, fewer only at the end', async () => {
    const input = mk(10, [latin1('ab'), latin1('cde'), latin1('fghij')]);
    expect(str(await input.read(4))).toBe('abcd');
    expect(str(await input.read(4))).toBe('efgh');
    expect(str(await input.read(4))).toBe('ij');
    expect(str(await input.read(4))).toBe('');
  });

  it('[2.1] read(0) returns an empty chunk without consuming anything', async () => {
    const input = mk();
    expect((await input.read(0)).length).toBe(0);
    expect(str(await input.read(3))).toBe('abc');
  });

  it('[2.1] a non-integer size is an error', async () => {
    const input = mk();
    for (const bad of [1.5, Number.NaN]) {
      const err = await input.read(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TsgiError);
      expect((err as TsgiError).code).toBe('ERR_CORE_BAD_READ_SIZE');
      expect((err as TsgiError).message).toBe(
        `core: tsgi.input.read size must be an integer, got ${bad}`,
      );
    }
    // the failed read consumed nothing
    expect(str(await input.read(3))).toBe('abc');
  });

  it('[2.2] the end is an empty chunk, forever after', async () => {
    const input = mk(3, [latin1('xyz')]);
    expect(str(await input.read(3))).toBe('xyz');
    for (let i = 0; i < 5; i++) expect((await input.read(8)).length).toBe(0);
  });

  it('[2.2] empty chunks from the source do not end the input', async () => {
    const input = chunked([latin1(''), latin1('a'), latin1(''), latin1(''), latin1('b')]);
    expect(str(await input.read(2))).toBe('ab');
    expect(str(await input.read(2))).toBe('');
  });

  it('[2.3] the source is never pulled past CONTENT_LENGTH (a socket that blocks after the body)', async () => {
    let pulls = 0;
    const src: ByteSource = {
      pull() {
        pulls++;
        // first pull: the whole body; any later pull would hang forever
        return pulls === 1 ? Promise.resolve(latin1('12345')) : new Promise(() => {});
      },
    };
    const input = createInput(src, 5);
    expect(str(await input.read(100))).toBe('12345');
    expect((await input.read(100)).length).toBe(0);
    expect((await input.readline()).length).toBe(0);
    expect((await input.read()).length).toBe(0);
    expect(pulls).toBe(1);
  });

  it('[2.3] a chunk that straddles CONTENT_LENGTH is cut there', async () => {
    const input = mk(5, [latin1('123'), latin1('45NEXT REQUEST')]);
    expect(str(await input.read())).toBe('12345');
    expect(input.received).toBe(5);
  });

  it('[2.3] CONTENT_LENGTH 0 and no source never pull', async () => {
    const src = counting([latin1('junk')]);
    const zero = createInput(src, 0);
    expect((await zero.read()).length).toBe(0);
    expect(src.pulls).toBe(0);
    const none = createInput(null, 10);
    expect((await none.read(5)).length).toBe(0);
  });

  it('[2.3] nothing is pulled until the app reads (backpressure)', async () => {
    const src = counting([latin1('ab'), latin1('cd')]);
    const input = createInput(src, 4);
    expect(src.pulls).toBe(0);
    expect(str(await input.read(2))).toBe('ab');
    expect(src.pulls).toBe(1);
  });

  it('[2.4] read() with no size (or a negative one, or null) returns all that remains', async () => {
    const a = chunked([latin1('ab'), latin1('cd'), latin1('e')]);
    expect(str(await a.read(1))).toBe('a');
    expect(str(await a.read())).toBe('bcde');
    expect(str(await a.read())).toBe('');
    const b = mk(3, [latin1('xyz')]);
    expect(str(await b.read(-1))).toBe('xyz');
    const c = mk(3, [latin1('xyz')]);
    expect(str(await c.read(null as unknown as number))).toBe('xyz');
  });

  it('[2.5] readline(5) splits long lines and never returns more than 5 bytes', async () => {
    const input = chunked([latin1('abcdefg'), latin1('h\nij\n'), latin1('\nklm')]);
    const lines: string[] = [];
    for (;;) {
      const l = await input.readline(5);
      if (l.length === 0) break;
      lines.push(str(l));
    }
    expect(lines).toEqual(['abcde', 'fgh\n', 'ij\n', '\n', 'klm']);
  });

  it('[2.5] readline() with no size reads to the LF or the end; readline(0) reads nothing', async () => {
    const input = mk();
    expect((await input.readline(0)).length).toBe(0);
    expect(str(await input.readline())).toBe('abcdefgh\n');
    expect(str(await input.readline(-1))).toBe('ij\n');
    expect(str(await input.readline())).toBe('\n');
    expect(str(await input.readline())).toBe('klm');
    expect(str(await input.readline())).toBe('');
  });

  it('[2.5] a LF exactly at the size limit is included', async () => {
    const input = chunked([latin1('abcd\nx')]);
    expect(str(await input.readline(5))).toBe('abcd\n');
    expect(str(await input.readline(5))).toBe('x');
  });

  it('[2.6] readlines() returns every line; readlines(hint) stops once the total reaches hint', async () => {
    expect((await mk().readlines()).map(str)).toEqual(['abcdefgh\n', 'ij\n', '\n', 'klm']);
    expect((await mk().readlines(0)).map(str)).toEqual(['abcdefgh\n', 'ij\n', '\n', 'klm']);
    const input = mk();
    expect((await input.readlines(10)).map(str)).toEqual(['abcdefgh\n', 'ij\n']);
    expect((await input.readlines(1)).map(str)).toEqual(['\n']);
    expect((await input.readlines(1)).map(str)).toEqual(['klm']);
    expect(await input.readlines(1)).toEqual([]);
  });

  it('[2.7] no CONTENT_LENGTH: a body of any size is read to the end of the source', async () => {
    const big = Buffer.alloc(300_000, 'xyz');
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < big.length; i += 7_000) chunks.push(big.subarray(i, i + 7_000));
    const input = createInput(sourceFromIterable(chunks), undefined);
    const got = Buffer.from(await input.read());
    expect(got.equals(big)).toBe(true);
    expect(input.received).toBe(big.length);
  });

  it('[2.8] a body that ends before CONTENT_LENGTH is an error, not a short read', async () => {
    const input = mk(10, [latin1('abcd')]);
    expect(str(await input.read(4))).toBe('abcd');
    const err = (await input.read(1).catch((e: unknown) => e)) as TsgiError;
    expect(err).toBeInstanceOf(TsgiError);
    expect(err.code).toBe('ERR_CORE_INPUT_TRUNCATED');
    expect(err.status).toBe(400);
    expect(err.message).toBe(
      'core: request body ended after 4 of 10 bytes (CONTENT_LENGTH); the client or server went away',
    );
    // and it stays an error
    expect(await input.read().catch((e: unknown) => e)).toBe(err);
    expect(await input.readline().catch((e: unknown) => e)).toBe(err);
  });

  it('[2.8] read() with no size on a truncated body rejects instead of returning a part', async () => {
    const input = mk(10, [latin1('abc'), latin1('d')]);
    await expect(input.read()).rejects.toMatchObject({ code: 'ERR_CORE_INPUT_TRUNCATED' });
  });

  it('[2.8] a source that fails passes its error on, to every later read', async () => {
    const boom = new Error('socket reset');
    let n = 0;
    const input = createInput(
      {
        pull: async () => {
          if (n++ === 0) return latin1('ab');
          throw boom;
        },
      },
      undefined,
    );
    expect(str(await input.read(2))).toBe('ab');
    await expect(input.read(1)).rejects.toBe(boom);
    await expect(input.read(1)).rejects.toBe(boom);
  });

  it("[2.8][7.1] through runApp: the app sees the error; uncaught, it is a 400 (the client's fault)", async () => {
    const res = await request(
      async (environ, sr) => {
        await environ['tsgi.input'].read();
        sr('200 OK', []);
        return [];
      },
      { method: 'POST', body: [latin1('abc')], chunked: true, vars: { CONTENT_LENGTH: '10' } },
    );
    expect(res.raw.toString('latin1')).toBe(
      'Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n',
    );
    expect(res.log.some((l) => l.level === 'error' && l.text.includes('ended after 3 of 10'))).toBe(
      true,
    );
  });

  it('[2.9] drain consumes what the app left and reports true when the body ended', async () => {
    const src = counting([latin1('abc'), latin1('def'), latin1('ghi')]);
    const input = createInput(src, 9);
    expect(str(await input.read(2))).toBe('ab');
    expect(await input.drain(100)).toBe(true);
    expect(src.pulls).toBe(3);
    expect((await input.read()).length).toBe(0);
  });

  it('[2.9] drain is bounded: past maxBytes it stops pulling and reports false', async () => {
    const chunks = Array.from({ length: 100 }, () => Buffer.alloc(1000, 0x61));
    const src = counting(chunks);
    const input = createInput(src, 100_000);
    expect(await input.drain(4_500)).toBe(false);
    // at most maxBytes plus one chunk is pulled
    expect(src.pulls).toBe(5);
  });

  it('[2.9] drain with nothing left, and without CONTENT_LENGTH', async () => {
    const done = createInput(sourceFromIterable([latin1('ab')]), 2);
    await done.read();
    expect(await done.drain(0)).toBe(true);
    const chunked = createInput(sourceFromIterable([latin1('ab'), latin1('cd')]), undefined);
    expect(await chunked.drain(10)).toBe(true);
    expect(chunked.received).toBe(4);
  });

  it('[2.9][2.8] drain after a truncated body reports false: the connection cannot be reused', async () => {
    const input = createInput(sourceFromIterable([latin1('ab')]), 10);
    await input.read().catch(() => undefined);
    expect(await input.drain(1000)).toBe(false);
    const unread = createInput(sourceFromIterable([latin1('ab')]), 10);
    expect(await unread.drain(1000)).toBe(false);
  });

  it('[2.9][11.7] drainInput works on tsgi.input, through the validator wrapper, and refuses others', async () => {
    const plain = createInput(sourceFromIterable([latin1('abcd')]), 4);
    expect(await drainInput(plain, 10)).toBe(true);
    expect(await drainInput({}, 10)).toBe(false);
    expect(await drainInput(null, 10)).toBe(false);
    let seen: unknown;
    const app = validator(async (environ, sr) => {
      seen = environ['tsgi.input'];
      sr('200 OK', []);
      return [];
    });
    const tenByTen = () => Array.from({ length: 5 }, () => Buffer.alloc(10, 0x78));
    const res = await request(app, { method: 'POST', body: tenByTen() });
    expect(res.status).toBe(200);
    expect(seen).not.toBeInstanceOf(Input);
    expect(await drainInput(seen, 15)).toBe(false);
    const res2 = await request(app, { method: 'POST', body: tenByTen() });
    expect(res2.status).toBe(200);
    expect(await drainInput(seen, 100)).toBe(true);
  });

  it('[2.10] async iteration yields the chunks in order and ends', async () => {
    const input = chunked([latin1('ab'), latin1(''), latin1('cd'), latin1('e')]);
    const got: string[] = [];
    for await (const c of input) got.push(str(c));
    expect(got).toEqual(['ab', 'cd', 'e']);
    expect((await input.read()).length).toBe(0);
  });

  it('[2.10] iteration after a partial read starts with what was buffered', async () => {
    const input = chunked([latin1('abcdef'), latin1('gh')]);
    expect(str(await input.read(2))).toBe('ab');
    const got: string[] = [];
    for await (const c of input) got.push(str(c));
    expect(got).toEqual(['cdef', 'gh']);
  });

  it('[2.10] two reads started at once: in order, each byte once', async () => {
    const input = chunked([latin1('a'), latin1('bcdef'), latin1('g')]);
    const [x, y, z] = await Promise.all([input.read(3), input.readline(), input.read()]);
    expect([str(x), str(y), str(z)]).toEqual(['abc', 'defg', '']);
  });

  it('[2.10] breaking out of for-await leaves the rest readable', async () => {
    const input = chunked([latin1('ab'), latin1('cd')]);
    for await (const c of input) {
      expect(str(c)).toBe('ab');
      break;
    }
    expect(str(await input.read())).toBe('cd');
  });
});
