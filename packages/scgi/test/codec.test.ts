// The SCGI codec (SCGI spec section 3): test vectors as exact bytes, each fed all at once,
// one byte at a time and in random splits (fast-check), with the bytes after the netstring's
// "," handed back as the start of the body.
import { Buffer } from 'node:buffer';
import { isTsgiError, TsgiError } from '@tsgi/core';
import { KNOWN_NAME_PROBES } from '@tsgi/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_HEADER_BYTES,
  decodeHeaders,
  decodeHeadersInto,
  NetstringFramer,
  type NetstringFramerOptions,
} from '../src/codec.js';
import { bytewise, encodeHeaders, encodeRequest, latin1, splitAt } from './helpers.js';

type Outcome =
  | { ok: true; params: Array<[string, string]>; contentLength: number; body: Buffer }
  | { ok: false; code: string; message: string; status: number | undefined };

/**
 * run: pushes `chunks` until the frame completes, decodes it, and returns the params and
 * everything after the "," (the rest of the completing chunk plus the chunks not pushed).
 */
function run(chunks: Uint8Array[], options?: NetstringFramerOptions): Outcome {
  const framer = new NetstringFramer(options);
  try {
    for (let i = 0; i < chunks.length; i++) {
      const f = framer.push(chunks[i]!);
      if (f !== undefined) {
        const { params, contentLength } = decodeHeaders(f.block);
        const body = Buffer.concat([f.rest, ...chunks.slice(i + 1)]);
        return { ok: true, params, contentLength, body };
      }
    }
    framer.end();
    return { ok: false, code: 'INCOMPLETE', message: '', status: undefined };
  } catch (e) {
    if (!isTsgiError(e)) throw e;
    return { ok: false, code: e.code, message: e.message, status: e.status };
  }
}

/** Every way of feeding `bytes` we check deterministically: whole, byte by byte, halves. */
function feeds(bytes: Uint8Array): Array<[string, Uint8Array[]]> {
  const h = bytes.length >> 1;
  return [
    ['all at once', [bytes]],
    ['one byte at a time', bytewise(bytes)],
    ['in halves', [bytes.subarray(0, h), bytes.subarray(h)]],
  ];
}

/** Feeds `bytes` every way (and 100 random splits) and checks every outcome is `expected`. */
function expectSame(
  bytes: Uint8Array,
  check: (o: Outcome) => void,
  options?: NetstringFramerOptions,
) {
  for (const [, chunks] of feeds(bytes)) check(run(chunks, options));
  const whole = run([bytes], options);
  fc.assert(
    fc.property(fc.array(fc.nat(bytes.length), { maxLength: 12 }), (cuts) => {
      expect(run(splitAt(bytes, cuts), options)).toEqual(whole);
    }),
    { numRuns: 100 },
  );
}

const NUL = '\u0000';

describe('valid requests', () => {
  it('the spec example (section 3): 70-byte netstring, then the 27-byte body', () => {
    const bytes = latin1(
      `70:CONTENT_LENGTH${NUL}27${NUL}SCGI${NUL}1${NUL}REQUEST_METHOD${NUL}POST${NUL}REQUEST_URI${NUL}/deepthought${NUL},What is the answer to life?`,
    );
    expectSame(bytes, (o) => {
      expect(o).toEqual({
        ok: true,
        contentLength: 27,
        params: [
          ['CONTENT_LENGTH', '27'],
          ['SCGI', '1'],
          ['REQUEST_METHOD', 'POST'],
          ['REQUEST_URI', '/deepthought'],
        ],
        body: latin1('What is the answer to life?'),
      });
    });
  });

  it('the minimal request: 24 bytes, CONTENT_LENGTH 0, no body', () => {
    const bytes = latin1(`24:CONTENT_LENGTH${NUL}0${NUL}SCGI${NUL}1${NUL},`);
    expectSame(bytes, (o) => {
      expect(o).toEqual({
        ok: true,
        contentLength: 0,
        params: [
          ['CONTENT_LENGTH', '0'],
          ['SCGI', '1'],
        ],
        body: Buffer.alloc(0),
      });
    });
  });

  it('returns the bytes after "," unconsumed, even past CONTENT_LENGTH', () => {
    // The framer does not know CONTENT_LENGTH; cutting the body is the connection's job.
    const bytes = Buffer.concat([encodeRequest([], latin1('abc')), latin1('EXTRA')]);
    expectSame(bytes, (o) => {
      expect(o.ok && o.body.toString('latin1')).toBe('abcEXTRA');
      expect(o.ok && o.contentLength).toBe(3);
    });
  });

  it('keeps non-UTF-8 bytes (0x80, 0xE9, 0xFF) in names and values exactly', () => {
    const value = Buffer.from([0x2f, 0x80, 0xe9, 0xff, 0x41]);
    const bytes = encodeRequest([
      ['PATH_INFO', value],
      ['HTTP_X_\u00e9', Buffer.from([0x80])],
      ['LONG', Buffer.concat([Buffer.alloc(40, 0x80), Buffer.alloc(40, 0xff)])],
    ]);
    expectSame(bytes, (o) => {
      if (!o.ok) throw new Error(o.message);
      expect(o.params[2]).toEqual(['PATH_INFO', '/\u0080\u00e9\u00ffA']);
      expect(o.params[3]).toEqual(['HTTP_X_\u00e9', '\u0080']);
      expect(latin1(o.params[2]![1])).toEqual(value);
      // Not windows-1252: 0x80 is U+0080, never U+20AC.
      expect(o.params[4]![1]).toBe('\u0080'.repeat(40) + '\u00ff'.repeat(40));
    });
  });

  it('accepts empty values (spec: value ::= notnull*)', () => {
    expectSame(
      encodeRequest([
        ['QUERY_STRING', ''],
        ['HTTPS', ''],
      ]),
      (o) => {
        expect(o.ok && o.params.slice(2)).toEqual([
          ['QUERY_STRING', ''],
          ['HTTPS', ''],
        ]);
      },
    );
  });

  it('returns repeated names other than CONTENT_LENGTH and SCGI in order (lighttpd X-Foo/X_Foo)', () => {
    const bytes = encodeRequest([
      ['HTTP_X_FOO', 'a, c'],
      ['HTTP_X_FOO', 'b'],
    ]);
    expectSame(bytes, (o) => {
      expect(o.ok && o.params.slice(2)).toEqual([
        ['HTTP_X_FOO', 'a, c'],
        ['HTTP_X_FOO', 'b'],
      ]);
    });
  });

  it('accepts SCGI anywhere after CONTENT_LENGTH (lighttpd sends it last)', () => {
    const bytes = encodeHeaders([
      ['CONTENT_LENGTH', '0'],
      ['REQUEST_METHOD', 'GET'],
      ['SCGI', '1'],
    ]);
    expectSame(bytes, (o) => expect(o.ok && o.params[2]).toEqual(['SCGI', '1']));
  });

  it('accepts CONTENT_LENGTH with leading zeros and up to 15 digits', () => {
    expectSame(
      encodeHeaders([
        ['CONTENT_LENGTH', '007'],
        ['SCGI', '1'],
      ]),
      (o) => expect(o.ok && o.contentLength).toBe(7),
    );
    expectSame(
      encodeHeaders([
        ['CONTENT_LENGTH', '999999999999999'],
        ['SCGI', '1'],
      ]),
      (o) => expect(o.ok && o.contentLength).toBe(999_999_999_999_999),
    );
  });

  it('accepts a block of exactly maxHeaderBytes', () => {
    const pad = (n: number) =>
      encodeHeaders([
        ['CONTENT_LENGTH', '0'],
        ['SCGI', '1'],
        ['P', 'x'.repeat(n)],
      ]);
    // 24 + "P\0" + n + "\0" = 27 + n
    expectSame(pad(100 - 27), (o) => expect(o.ok).toBe(true), { maxHeaderBytes: 100 });
    expectSame(pad(101 - 27), (o) => expect(o.ok || o.code).toBe('ERR_SCGI_HEADERS_TOO_LARGE'), {
      maxHeaderBytes: 100,
    });
  });

  it('decodes a realistic 30-header lighttpd block', () => {
    const vars: Array<[string, string]> = [];
    for (let i = 0; i < 28; i++)
      vars.push([`HTTP_X_HEADER_${i}`, `value number ${i} ${'v'.repeat(i)}`]);
    expectSame(encodeRequest(vars, latin1('body')), (o) => {
      expect(o.ok && o.params.length).toBe(30);
      expect(o.ok && o.params.slice(2)).toEqual(vars);
      expect(o.ok && o.body.toString()).toBe('body');
    });
  });

  it('property: any headers round-trip byte-exactly through any split', () => {
    const name = fc.uint8Array({ minLength: 1, maxLength: 20 }).map((a) => a.map((b) => b || 1));
    const value = fc.uint8Array({ maxLength: 40 }).map((a) => a.map((b) => b || 0xff));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, value), { maxLength: 10 }),
        fc.uint8Array({ maxLength: 50 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (pairs, body, cuts) => {
          const extra = pairs.filter(([n]) => {
            const s = Buffer.from(n).toString('latin1');
            return s !== 'CONTENT_LENGTH' && s !== 'SCGI';
          });
          const bytes = encodeRequest(
            extra.map(([n, v]) => [Buffer.from(n).toString('latin1'), v] as const),
            body,
          );
          const o = run(splitAt(bytes, cuts));
          if (!o.ok) throw new Error(o.message);
          expect(o.body).toEqual(Buffer.from(body));
          expect(o.contentLength).toBe(body.length);
          expect(o.params.slice(2).map(([n, v]) => [latin1(n), latin1(v)])).toEqual(
            extra.map(([n, v]) => [Buffer.from(n), Buffer.from(v)]),
          );
        },
      ),
    );
  });

  it('the usual names and near misses of them decode exactly (the known-name fast path)', () => {
    const names = KNOWN_NAME_PROBES;
    const vars = names.map((n, i) => [n, `v${i}`] as [string, string]);
    const o = run([encodeRequest(vars)]);
    if (!o.ok) throw new Error(o.message);
    expect(o.params.slice(2)).toEqual(vars);
    // Property: any name made of the letters the known names use round-trips exactly.
    const letters = 'ACDEGHILMNOPQRSTUVWXY_'.split('');
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...letters), { minLength: 1, maxLength: 22 }),
        (chars) => {
          const n = chars.join('');
          if (n === 'CONTENT_LENGTH' || n === 'SCGI') return;
          const r = run([encodeRequest([[n, 'x']])]);
          expect(r.ok && r.params[2]).toEqual([n, 'x']);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('property: arbitrary bytes either frame or fail with a TsgiError ERR_SCGI_*', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          fc
            .tuple(fc.integer({ min: 0, max: 99 }), fc.uint8Array({ maxLength: 80 }))
            .map(([n, b]) => Buffer.concat([latin1(`${n}:`), b])),
        ),
        fc.array(fc.nat(), { maxLength: 5 }),
        (bytes, cuts) => {
          const o = run(splitAt(bytes, cuts));
          const whole = run([bytes]);
          expect(o).toEqual(whole);
          if (!o.ok) expect(o.code).toMatch(/^(ERR_SCGI_|INCOMPLETE$)/);
        },
      ),
    );
  });
});

/** Rejections: [description, exact bytes, code, message (exact or pattern)]. */
const CL0 = `CONTENT_LENGTH${NUL}0${NUL}`;
const SCGI1 = `SCGI${NUL}1${NUL}`;
const ns = (block: string) => `${latin1(block).length}:${block},`;
const rejections: Array<[string, string, string, string | RegExp]> = [
  [
    'an HTTP request on the SCGI port',
    'GET / HTTP/1.1\r\n\r\n',
    'ERR_SCGI_NETSTRING_NOT_DIGIT',
    'scgi: netstring length has a non-digit byte 0x47 ("G") at offset 0 (an HTTP request sent to the SCGI port?)',
  ],
  [
    'a non-digit inside the length',
    `2a:${CL0}${SCGI1},`,
    'ERR_SCGI_NETSTRING_NOT_DIGIT',
    'scgi: netstring length has a non-digit byte 0x61 ("a") at offset 1',
  ],
  [
    'a sign before the length',
    `+24:${CL0}${SCGI1},`,
    'ERR_SCGI_NETSTRING_NOT_DIGIT',
    /0x2B \("\+"\) at offset 0/,
  ],
  [
    'a space before the colon',
    `24 :${CL0}${SCGI1},`,
    'ERR_SCGI_NETSTRING_NOT_DIGIT',
    /0x20 at offset 2$/,
  ],
  [
    'no length digits',
    `:${CL0}${SCGI1},`,
    'ERR_SCGI_NETSTRING_NO_LENGTH',
    'scgi: netstring starts with ":" at offset 0; the length digits are missing',
  ],
  [
    'a lone zero length',
    '0:,',
    'ERR_SCGI_NETSTRING_EMPTY',
    'scgi: netstring length is 0; the header block must hold CONTENT_LENGTH and SCGI',
  ],
  [
    'a leading zero',
    `024:${CL0}${SCGI1},`,
    'ERR_SCGI_NETSTRING_LEADING_ZERO',
    'scgi: netstring length has a leading zero',
  ],
  [
    'two zeros',
    '00:',
    'ERR_SCGI_NETSTRING_LEADING_ZERO',
    'scgi: netstring length has a leading zero',
  ],
  [
    'a block too short for CONTENT_LENGTH and SCGI',
    `5:ab${NUL}c${NUL},`,
    'ERR_SCGI_NETSTRING_TOO_SHORT',
    'scgi: netstring length 5 is below 24, too short for CONTENT_LENGTH and SCGI=1',
  ],
  [
    'a declared length over maxHeaderBytes (refused at the 6th digit, before buffering)',
    '999999999999999999999999:',
    'ERR_SCGI_HEADERS_TOO_LARGE',
    `scgi: netstring declares at least 99999 header bytes, over the limit of ${DEFAULT_MAX_HEADER_BYTES} (maxHeaderBytes)`,
  ],
  [
    'no comma after the block',
    `24:${CL0}${SCGI1};`,
    'ERR_SCGI_NETSTRING_NO_COMMA',
    'scgi: netstring of 24 bytes must end with ",", got 0x3B (";") at offset 27',
  ],
  [
    'a length one short (the last NUL lands where "," should be)',
    `29:${CL0}${SCGI1}A${NUL}bcd${NUL},`,
    'ERR_SCGI_NETSTRING_NO_COMMA',
    'scgi: netstring of 29 bytes must end with ",", got 0x00 at offset 32',
  ],
  [
    'a block without the final NUL',
    ns(`${CL0}SCGI${NUL}1${NUL}X${NUL}y`),
    'ERR_SCGI_HEADERS_NOT_TERMINATED',
    'scgi: the header block must end with a NUL byte, got 0x79 ("y")',
  ],
  [
    'an empty name',
    ns(`${CL0}${SCGI1}${NUL}v${NUL}`),
    'ERR_SCGI_EMPTY_NAME',
    'scgi: empty header name at offset 24 of the header block',
  ],
  [
    'a name without a value',
    ns(`${CL0}${SCGI1}REQUEST_METHOD${NUL}`),
    'ERR_SCGI_MISSING_VALUE',
    'scgi: header "REQUEST_METHOD" has no value (the block ends after its name)',
  ],
  [
    'SCGI before CONTENT_LENGTH',
    ns(`${SCGI1}${CL0}`),
    'ERR_SCGI_CONTENT_LENGTH_NOT_FIRST',
    'scgi: CONTENT_LENGTH must be the first header, got "SCGI"',
  ],
  [
    'no CONTENT_LENGTH at all',
    ns(`${SCGI1}REQUEST_METHOD${NUL}GET${NUL}`),
    'ERR_SCGI_CONTENT_LENGTH_NOT_FIRST',
    'scgi: CONTENT_LENGTH must be the first header, got "SCGI"',
  ],
  [
    'CONTENT_LENGTH in lower case',
    ns(`content_length${NUL}0${NUL}${SCGI1}`),
    'ERR_SCGI_CONTENT_LENGTH_NOT_FIRST',
    'scgi: CONTENT_LENGTH must be the first header, got "content_length"',
  ],
  [
    'an empty CONTENT_LENGTH',
    ns(`CONTENT_LENGTH${NUL}${NUL}${SCGI1}X${NUL}y${NUL}`),
    'ERR_SCGI_BAD_CONTENT_LENGTH',
    'scgi: CONTENT_LENGTH is empty; the spec requires digits, "0" for no body',
  ],
  [
    'a signed CONTENT_LENGTH',
    ns(`CONTENT_LENGTH${NUL}+5${NUL}${SCGI1}`),
    'ERR_SCGI_BAD_CONTENT_LENGTH',
    'scgi: CONTENT_LENGTH must be ASCII digits only, got "+5"',
  ],
  [
    'a negative CONTENT_LENGTH',
    ns(`CONTENT_LENGTH${NUL}-1${NUL}${SCGI1}`),
    'ERR_SCGI_BAD_CONTENT_LENGTH',
    'scgi: CONTENT_LENGTH must be ASCII digits only, got "-1"',
  ],
  [
    'CONTENT_LENGTH with a space',
    ns(`CONTENT_LENGTH${NUL}5 ${NUL}${SCGI1}`),
    'ERR_SCGI_BAD_CONTENT_LENGTH',
    'scgi: CONTENT_LENGTH must be ASCII digits only, got "5 "',
  ],
  [
    'CONTENT_LENGTH in hex',
    ns(`CONTENT_LENGTH${NUL}0x10${NUL}${SCGI1}`),
    'ERR_SCGI_BAD_CONTENT_LENGTH',
    'scgi: CONTENT_LENGTH must be ASCII digits only, got "0x10"',
  ],
  [
    'CONTENT_LENGTH with 16 digits',
    ns(`CONTENT_LENGTH${NUL}1000000000000000${NUL}${SCGI1}`),
    'ERR_SCGI_BAD_CONTENT_LENGTH',
    'scgi: CONTENT_LENGTH has 16 characters, more than 15 digits',
  ],
  [
    'CONTENT_LENGTH twice',
    ns(`${CL0}${SCGI1}CONTENT_LENGTH${NUL}5${NUL}`),
    'ERR_SCGI_DUPLICATE_HEADER',
    'scgi: CONTENT_LENGTH given twice',
  ],
  [
    'SCGI twice',
    ns(`${CL0}${SCGI1}${SCGI1}`),
    'ERR_SCGI_DUPLICATE_HEADER',
    'scgi: SCGI given twice',
  ],
  [
    'no SCGI header',
    ns(`${CL0}REQUEST_METHOD${NUL}GET${NUL}`),
    'ERR_SCGI_MISSING_SCGI',
    'scgi: the SCGI header (value "1") is missing',
  ],
  [
    'SCGI=2',
    ns(`${CL0}SCGI${NUL}2${NUL}X${NUL}y${NUL}`),
    'ERR_SCGI_BAD_VERSION',
    'scgi: SCGI must be "1", got "2"',
  ],
  [
    'SCGI=01',
    ns(`${CL0}SCGI${NUL}01${NUL}X${NUL}y${NUL}`),
    'ERR_SCGI_BAD_VERSION',
    'scgi: SCGI must be "1", got "01"',
  ],
  [
    'SCGI empty',
    ns(`${CL0}SCGI${NUL}${NUL}X${NUL}yz${NUL}`),
    'ERR_SCGI_BAD_VERSION',
    'scgi: SCGI must be "1", got ""',
  ],
];

describe('rejections', () => {
  it.each(rejections)('%s', (_, text, code, message) => {
    expectSame(latin1(text), (o) => {
      expect(o.ok).toBe(false);
      if (o.ok) return;
      expect(o.code).toBe(code);
      if (typeof message === 'string') expect(o.message).toBe(message);
      else expect(o.message).toMatch(message);
      expect(o.message.startsWith('scgi: ')).toBe(true);
      expect(o.status).toBe(code === 'ERR_SCGI_HEADERS_TOO_LARGE' ? 431 : 400);
    });
  });

  it('refuses an oversized length before buffering: nothing after the digits is needed', () => {
    const framer = new NetstringFramer({ maxHeaderBytes: 1000 });
    expect(framer.push(latin1('100'))).toBeUndefined();
    expect(() => framer.push(latin1('1'))).toThrow(/at least 1001 header bytes/);
    // Stays failed.
    expect(() => framer.push(latin1(':'))).toThrow(TsgiError);
  });

  it('a connection that ends inside the netstring is ERR_SCGI_TRUNCATED; one that sent nothing is not', () => {
    const cases: Array<[string, RegExp]> = [
      ['2', /in the netstring length/],
      [`24:${CL0}`, /after 17 of 24 header bytes/],
      [`24:${CL0}${SCGI1}`, /before the netstring's ","/],
    ];
    for (const [text, message] of cases) {
      for (const [, chunks] of feeds(latin1(text))) {
        const framer = new NetstringFramer();
        for (const c of chunks) expect(framer.push(c)).toBeUndefined();
        expect(framer.started).toBe(true);
        let err: unknown;
        try {
          framer.end();
        } catch (e) {
          err = e;
        }
        expect(isTsgiError(err, 'ERR_SCGI_TRUNCATED')).toBe(true);
        expect((err as Error).message).toMatch(message);
      }
    }
    const idle = new NetstringFramer();
    expect(idle.started).toBe(false);
    expect(() => idle.end()).not.toThrow();
  });

  it('pushing after the frame is a caller bug', () => {
    const framer = new NetstringFramer();
    expect(framer.push(encodeRequest([]))).toBeDefined();
    expect(framer.done).toBe(true);
    expect(() => framer.push(latin1('x'))).toThrow(/belong to the body/);
  });

  it('validates maxHeaderBytes', () => {
    expect(() => new NetstringFramer({ maxHeaderBytes: 10 })).toThrow(
      /ERR_SCGI_BAD_OPTION|maxHeaderBytes must be/,
    );
    expect(() => new NetstringFramer({ maxHeaderBytes: 1.5 })).toThrow(/maxHeaderBytes must be/);
    expect(() => new NetstringFramer({ maxHeaderBytes: 2 ** 30 })).toThrow(
      /maxHeaderBytes must be/,
    );
  });

  it('decodeHeaders refuses an empty block', () => {
    expect(() => decodeHeaders(new Uint8Array(0))).toThrow(
      'scgi: CONTENT_LENGTH must be the first header, got nothing',
    );
  });
});

describe('decodeHeadersInto', () => {
  it('hands over the pairs decodeHeaders returns, in wire order, and returns CONTENT_LENGTH', () => {
    const block = encodeHeaders([
      ['CONTENT_LENGTH', '12'],
      ['SCGI', '1'],
      ['HTTP_X_A', 'caf\u00e9'],
      ['HTTP_X_A', ''],
      ['X', '\u00ff\u0080'],
    ]).subarray(0);
    const inner = block.subarray(block.indexOf(0x3a) + 1, block.length - 1);
    const got: Array<[string, string]> = [];
    const n = decodeHeadersInto(inner, { add: (k, v) => got.push([k, v]) });
    expect(n).toBe(12);
    expect(got).toEqual(decodeHeaders(inner).params);
    expect(got[4]).toEqual(['X', '\u00ff\u0080']);
  });

  it('an error thrown by the target propagates; decoding stops there', () => {
    const inner = (b: Buffer) => b.subarray(b.indexOf(0x3a) + 1, b.length - 1);
    const block = inner(
      encodeHeaders([
        ['CONTENT_LENGTH', '0'],
        ['SCGI', '1'],
        ['A', 'b'],
        ['C', 'd'],
      ]),
    );
    const seen: string[] = [];
    const boom = new Error('refused');
    expect(() =>
      decodeHeadersInto(block, {
        add: (k) => {
          seen.push(k);
          if (k === 'A') throw boom;
        },
      }),
    ).toThrow(boom);
    expect(seen).toEqual(['CONTENT_LENGTH', 'SCGI', 'A']);
  });
});
