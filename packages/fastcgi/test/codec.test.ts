// The FastCGI codec (FastCGI spec S3.3 records, S3.4 name-value pairs, S4 and S5 record
// bodies): tables of exact bytes for every record kind we send, the parser fed every split of
// a multi-record stream (at once, one byte at a time, every two-way split, random splits with
// fast-check), and every error with its code.
import { Buffer } from 'node:buffer';
import { isTsgiError } from '@tsgi/core';
import { KNOWN_NAME_PROBES } from '@tsgi/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_PARAMS,
  DEFAULT_MAX_PARAMS_BYTES,
  decodeBeginRequest,
  decodeEndRequest,
  decodeNameValuePairs,
  encodeBeginRequest,
  encodeEndRequest,
  encodeGetValuesResult,
  encodeHeader,
  encodeNameValuePairs,
  encodeRecord,
  encodeRequestEnd,
  encodeStream,
  encodeStreamParts,
  encodeUnknownType,
  type FastcgiRecord,
  FCGI_ABORT_REQUEST,
  FCGI_AUTHORIZER,
  FCGI_BEGIN_REQUEST,
  FCGI_CANT_MPX_CONN,
  FCGI_DATA,
  FCGI_END_REQUEST,
  FCGI_FILTER,
  FCGI_GET_VALUES,
  FCGI_GET_VALUES_RESULT,
  FCGI_HEADER_LEN,
  FCGI_KEEP_CONN,
  FCGI_MAX_CONNS,
  FCGI_MAX_CONTENT_LENGTH,
  FCGI_MAX_REQS,
  FCGI_MAXTYPE,
  FCGI_MPXS_CONNS,
  FCGI_NULL_REQUEST_ID,
  FCGI_OVERLOADED,
  FCGI_PARAMS,
  FCGI_REQUEST_COMPLETE,
  FCGI_RESPONDER,
  FCGI_STDERR,
  FCGI_STDIN,
  FCGI_STDOUT,
  FCGI_UNKNOWN_ROLE,
  FCGI_UNKNOWN_TYPE,
  FCGI_VERSION_1,
  type ParamPair,
  ParamsDecoder,
  type ParamsLimits,
  paddingFor,
  RecordParser,
  recordTypeName,
} from '../src/codec.js';
import { bytewise, hex, latin1, splitAt, toHex } from './helpers.js';

/** Catches a TsgiError and returns its code and message (anything else is rethrown). */
function caught(fn: () => unknown): { code: string; message: string; status?: number } {
  try {
    fn();
  } catch (e) {
    if (!isTsgiError(e)) throw e;
    return { code: e.code, message: e.message, status: e.status };
  }
  throw new Error('expected a TsgiError');
}

/** Parses `chunks` with one RecordParser, records as plain objects with hex content. */
function parseAll(
  chunks: Uint8Array[],
): Array<{ type: number; requestId: number; content: string }> {
  const p = new RecordParser();
  const out: FastcgiRecord[] = [];
  for (const c of chunks) {
    out.push(...p.push(c));
    // Only a partial record is ever retained: at most a header plus one record's content.
    expect(p.bufferedBytes).toBeLessThanOrEqual(FCGI_HEADER_LEN + FCGI_MAX_CONTENT_LENGTH);
  }
  p.end();
  return out.map((r) => ({ type: r.type, requestId: r.requestId, content: toHex(r.content) }));
}

describe('constants (S8)', () => {
  it('have the values of fastcgi.h', () => {
    expect([
      FCGI_HEADER_LEN,
      FCGI_VERSION_1,
      FCGI_MAX_CONTENT_LENGTH,
      FCGI_NULL_REQUEST_ID,
    ]).toEqual([8, 1, 65535, 0]);
    expect([
      FCGI_BEGIN_REQUEST,
      FCGI_ABORT_REQUEST,
      FCGI_END_REQUEST,
      FCGI_PARAMS,
      FCGI_STDIN,
      FCGI_STDOUT,
      FCGI_STDERR,
      FCGI_DATA,
      FCGI_GET_VALUES,
      FCGI_GET_VALUES_RESULT,
      FCGI_UNKNOWN_TYPE,
      FCGI_MAXTYPE,
    ]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11]);
    expect([FCGI_KEEP_CONN, FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER]).toEqual([1, 1, 2, 3]);
    expect([FCGI_REQUEST_COMPLETE, FCGI_CANT_MPX_CONN, FCGI_OVERLOADED, FCGI_UNKNOWN_ROLE]).toEqual(
      [0, 1, 2, 3],
    );
    expect([FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS]).toEqual([
      'FCGI_MAX_CONNS',
      'FCGI_MAX_REQS',
      'FCGI_MPXS_CONNS',
    ]);
    expect(recordTypeName(FCGI_STDIN)).toBe('FCGI_STDIN');
    expect(recordTypeName(20)).toBe('type 20');
    expect(recordTypeName(0)).toBe('type 0');
  });
});

describe('encoders: exact bytes', () => {
  const table: Array<[string, () => Uint8Array, string]> = [
    [
      'STDOUT "hello": 5 bytes padded with 3 zeros to 16',
      () => encodeRecord(FCGI_STDOUT, 1, latin1('hello')),
      '01 06 0001 0005 03 00  68656c6c6f 000000',
    ],
    ['empty STDOUT (end of stream)', () => encodeRecord(FCGI_STDOUT, 1), '01 06 0001 0000 00 00'],
    [
      '8 bytes of content need no padding',
      () => encodeRecord(FCGI_STDIN, 0x0102, latin1('ABCDEFGH')),
      '01 05 0102 0008 00 00  4142434445464748',
    ],
    [
      'END_REQUEST complete, appStatus 0',
      () => encodeEndRequest(1),
      '01 03 0001 0008 00 00  00000000 00 000000',
    ],
    [
      'END_REQUEST appStatus 0xdeadbeef, FCGI_OVERLOADED, request 0x1234',
      () => encodeEndRequest(0x1234, 0xdeadbeef, FCGI_OVERLOADED),
      '01 03 1234 0008 00 00  deadbeef 02 000000',
    ],
    [
      'END_REQUEST FCGI_CANT_MPX_CONN',
      () => encodeEndRequest(2, 0, FCGI_CANT_MPX_CONN),
      '01 03 0002 0008 00 00  00000000 01 000000',
    ],
    [
      'END_REQUEST FCGI_UNKNOWN_ROLE on request 65535',
      () => encodeEndRequest(65535, 0, FCGI_UNKNOWN_ROLE),
      '01 03 ffff 0008 00 00  00000000 03 000000',
    ],
    [
      'UNKNOWN_TYPE for type 20 (S4.2: type, 7 reserved bytes)',
      () => encodeUnknownType(20),
      '01 0b 0000 0008 00 00  14 00000000000000',
    ],
    [
      'GET_VALUES_RESULT FCGI_MPXS_CONNS=1: 18 bytes of pairs, 6 of padding',
      () => encodeGetValuesResult([[FCGI_MPXS_CONNS, '1']]),
      `01 0a 0000 0012 06 00  0f 01 ${toHex(latin1('FCGI_MPXS_CONNS'))} 31 000000000000`,
    ],
    [
      'GET_VALUES_RESULT with three values',
      () =>
        encodeGetValuesResult([
          [FCGI_MAX_CONNS, '10'],
          [FCGI_MAX_REQS, '50'],
          [FCGI_MPXS_CONNS, '0'],
        ]),
      `01 0a 0000 0035 03 00  0e 02 ${toHex(latin1('FCGI_MAX_CONNS10'))} 0d 02 ${toHex(
        latin1('FCGI_MAX_REQS50'),
      )} 0f 01 ${toHex(latin1('FCGI_MPXS_CONNS0'))} 000000`,
    ],
    [
      'BEGIN_REQUEST responder, keep-conn (S5.1)',
      () => encodeBeginRequest(1, FCGI_RESPONDER, FCGI_KEEP_CONN),
      '01 01 0001 0008 00 00  0001 01 0000000000',
    ],
    [
      'BEGIN_REQUEST filter, no flags',
      () => encodeBeginRequest(0x0203, FCGI_FILTER),
      '01 01 0203 0008 00 00  0003 00 0000000000',
    ],
    [
      'a STDERR stream "oops\\n" with its end record',
      () => encodeStream(FCGI_STDERR, 2, latin1('oops\n'), { end: true }),
      '01 07 0002 0005 03 00  6f6f70730a 000000  01 07 0002 0000 00 00',
    ],
    [
      'an empty stream without end is nothing at all',
      () => encodeStream(FCGI_STDOUT, 1, new Uint8Array(0)),
      '',
    ],
    [
      'header only, explicit padding',
      () => encodeHeader(FCGI_PARAMS, 7, 300, 255),
      '01 04 0007 012c ff 00',
    ],
    [
      'request end: last STDOUT + empty STDOUT + END_REQUEST, one buffer',
      () => encodeRequestEnd(1, { stdout: latin1('hi') }),
      '01 06 0001 0002 06 00  6869 000000000000  01 06 0001 0000 00 00  01 03 0001 0008 00 00  00000000 00 000000',
    ],
    [
      'request end with no last data: empty STDOUT + END_REQUEST',
      () => encodeRequestEnd(3),
      '01 06 0003 0000 00 00  01 03 0003 0008 00 00  00000000 00 000000',
    ],
    [
      'request end with stdout in pieces, closed STDERR, appStatus 1',
      () =>
        encodeRequestEnd(1, {
          stdout: [latin1('a'), latin1('bc')],
          closeStderr: true,
          appStatus: 1,
        }),
      '01 07 0001 0000 00 00  01 06 0001 0003 05 00 616263 0000000000  01 06 0001 0000 00 00  01 03 0001 0008 00 00  00000001 00 000000',
    ],
    [
      'request end with last STDERR data: the STDERR stream is closed too',
      () => encodeRequestEnd(1, { stderr: latin1('e\n') }),
      '01 07 0001 0002 06 00  650a 000000000000  01 07 0001 0000 00 00  01 06 0001 0000 00 00  01 03 0001 0008 00 00  00000000 00 000000',
    ],
  ];
  for (const [name, make, expected] of table) {
    it(name, () => {
      const b = make();
      expect(toHex(b)).toBe(toHex(hex(expected)));
      expect(b.length % 8).toBe(0);
    });
  }

  it('name-value pairs: 1-byte lengths up to 127, 4-byte lengths with the high bit from 128 (S3.4)', () => {
    const v127 = Buffer.alloc(127, 0x78);
    const v128 = Buffer.alloc(128, 0x78);
    expect(toHex(encodeNameValuePairs([['A', v127]]))).toBe(toHex(hex(`01 7f 41 ${toHex(v127)}`)));
    expect(toHex(encodeNameValuePairs([['A', v128]]))).toBe(
      toHex(hex(`01 80000080 41 ${toHex(v128)}`)),
    );
    const n200 = 'N'.repeat(200);
    expect(toHex(encodeNameValuePairs([[n200, '']]))).toBe(
      toHex(hex(`800000c8 00 ${toHex(latin1(n200))}`)),
    );
    // Bytes pass through; names and values as latin-1.
    expect(toHex(encodeNameValuePairs([['Q\u00e9', Buffer.from([0xe9, 0xff])]]))).toBe(
      '020251e9e9ff',
    );
    expect(caught(() => encodeNameValuePairs([['\u20ac', '']])).code).toBe(
      'ERR_FASTCGI_NOT_LATIN1',
    );
  });

  it('splits a stream at 65535 bytes and pads each record to a multiple of 8', () => {
    const data = Buffer.alloc(65536 + 65535, 0x61);
    const b = encodeStream(FCGI_STDOUT, 1, data);
    // 65535 (+1 padding), 65535 (+1), 1 (+7).
    expect(b.length).toBe(3 * 8 + 65535 + 1 + 65535 + 1 + 1 + 7);
    expect(toHex(b.subarray(0, 8))).toBe(toHex(hex('01 06 0001 ffff 01 00')));
    expect(b[8 + 65535]).toBe(0);
    const second = 8 + 65535 + 1;
    expect(toHex(b.subarray(second, second + 8))).toBe(toHex(hex('01 06 0001 ffff 01 00')));
    const third = 2 * second;
    expect(toHex(b.subarray(third, third + 8))).toBe(toHex(hex('01 06 0001 0001 07 00')));
    expect(toHex(b.subarray(third + 9))).toBe('00000000000000');
    // Parsing it back gives the data.
    const recs = new RecordParser().push(b);
    expect(Buffer.concat(recs.map((r) => r.content)).equals(data)).toBe(true);
    // The gathered form is the same bytes, with views of the data (no copy).
    const parts = encodeStreamParts(FCGI_STDOUT, 1, data);
    expect(Buffer.concat(parts).equals(b)).toBe(true);
    expect(parts[1]!.buffer).toBe(data.buffer);
    // And the request end splits its last STDOUT the same way.
    const end = encodeRequestEnd(1, { stdout: data });
    expect(end.subarray(0, b.length).equals(b)).toBe(true);
    expect(toHex(end.subarray(b.length))).toBe(
      toHex(hex('01 06 0001 0000 00 00  01 03 0001 0008 00 00  00000000 00 000000')),
    );
  });

  it('paddingFor is the distance to the next multiple of 8', () => {
    expect([0, 1, 7, 8, 9, 65535].map(paddingFor)).toEqual([0, 7, 1, 0, 7, 1]);
  });

  it('refuses a record over 65535 bytes, a request id over 65535 and a type over 255', () => {
    expect(caught(() => encodeRecord(FCGI_STDOUT, 1, Buffer.alloc(65536))).code).toBe(
      'ERR_FASTCGI_RECORD_TOO_LARGE',
    );
    expect(caught(() => encodeRecord(FCGI_STDOUT, 65536)).code).toBe('ERR_FASTCGI_BAD_RECORD');
    expect(caught(() => encodeRecord(256, 1)).code).toBe('ERR_FASTCGI_BAD_RECORD');
    expect(caught(() => encodeRecord(FCGI_STDOUT, 1, Buffer.alloc(65536))).message).toMatch(
      /^fastcgi: FCGI_STDOUT content of 65536 bytes exceeds 65535/,
    );
  });

  it('decodes BEGIN_REQUEST and END_REQUEST bodies, and refuses a wrong size', () => {
    const begin = new RecordParser().push(
      encodeBeginRequest(9, FCGI_AUTHORIZER, FCGI_KEEP_CONN),
    )[0]!;
    expect(decodeBeginRequest(begin.content)).toEqual({
      role: FCGI_AUTHORIZER,
      flags: 1,
      keepConn: true,
    });
    expect(decodeBeginRequest(hex('0001 fe 0000000000'))).toEqual({
      role: 1,
      flags: 0xfe,
      keepConn: false,
    });
    const end = new RecordParser().push(encodeEndRequest(1, 0xfffffffe, FCGI_OVERLOADED))[0]!;
    expect(decodeEndRequest(end.content)).toEqual({
      appStatus: 0xfffffffe,
      protocolStatus: FCGI_OVERLOADED,
    });
    expect(caught(() => decodeBeginRequest(hex('0001 01')))).toEqual({
      code: 'ERR_FASTCGI_BAD_RECORD',
      message: 'fastcgi: FCGI_BEGIN_REQUEST body is 3 bytes, expected 8 (S5.1)',
      status: undefined,
    });
    expect(caught(() => decodeEndRequest(new Uint8Array(9))).code).toBe('ERR_FASTCGI_BAD_RECORD');
  });
});

// A stream as a web server sends it: every record kind the parser must frame, with padding
// of every size (0, 3, 255), an empty record, an unknown type and the null request ID.
const STREAM_RECORDS: Array<{ type: number; requestId: number; content: Buffer; pad: number }> = [
  {
    type: FCGI_GET_VALUES,
    requestId: 0,
    content: encodeNameValuePairs([[FCGI_MPXS_CONNS, '']]),
    pad: 0,
  },
  { type: FCGI_BEGIN_REQUEST, requestId: 1, content: hex('0001 01 0000000000'), pad: 0 },
  {
    type: FCGI_PARAMS,
    requestId: 1,
    content: encodeNameValuePairs([['REQUEST_METHOD', 'POST']]),
    pad: 255,
  },
  { type: FCGI_PARAMS, requestId: 1, content: Buffer.alloc(0), pad: 0 },
  { type: FCGI_STDIN, requestId: 1, content: latin1('body bytes'), pad: 6 },
  { type: 20, requestId: 0, content: Buffer.alloc(0), pad: 3 },
  { type: FCGI_STDIN, requestId: 1, content: Buffer.alloc(0), pad: 255 },
  { type: FCGI_ABORT_REQUEST, requestId: 0xfffe, content: Buffer.alloc(0), pad: 0 },
];

function streamOf(records: typeof STREAM_RECORDS): Buffer {
  return Buffer.concat(
    records.flatMap((r) => [
      encodeHeader(r.type, r.requestId, r.content.length, r.pad),
      r.content,
      Buffer.alloc(r.pad, 0xaa), // padding content is ignored (S3.3), whatever it is
    ]),
  );
}

/**
 * Runs `check` (fast-check, `numRuns` runs) on up to 8 records, with types and request ids from
 * `fields`, up to 300 bytes of content and any padding, and their stream cut anywhere.
 */
function forAnyRecordsInAnySplit(
  fields: { type: fc.Arbitrary<number>; requestId: fc.Arbitrary<number> },
  numRuns: number,
  check: (recs: typeof STREAM_RECORDS, chunks: Uint8Array[]) => void,
): void {
  const record = fc.record({
    ...fields,
    content: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    pad: fc.integer({ min: 0, max: 255 }),
  });
  fc.assert(
    fc.property(
      fc.array(record, { maxLength: 8 }),
      fc.array(fc.nat(5000), { maxLength: 20 }),
      (recs, cuts) => check(recs, splitAt(streamOf(recs), cuts)),
    ),
    { numRuns },
  );
}

const STREAM = streamOf(STREAM_RECORDS);
const EXPECTED = STREAM_RECORDS.map((r) => ({
  type: r.type,
  requestId: r.requestId,
  content: toHex(r.content),
}));

describe('RecordParser (S3.3)', () => {
  it('parses a multi-record stream pushed all at once, with content as views (no copy)', () => {
    const p = new RecordParser();
    const recs = p.push(STREAM);
    expect(recs.map((r) => ({ ...r, content: toHex(r.content) }))).toEqual(EXPECTED);
    for (const r of recs) expect(r.content.buffer).toBe(STREAM.buffer);
    expect(p.partial).toBe(false);
    expect(p.bufferedBytes).toBe(0);
    expect(p.offset).toBe(STREAM.length);
  });

  it('parses it one byte at a time', () => {
    expect(parseAll(bytewise(STREAM))).toEqual(EXPECTED);
  });

  it('parses it split in two at every offset', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      expect(parseAll([STREAM.subarray(0, i), STREAM.subarray(i)])).toEqual(EXPECTED);
    }
  });

  it('parses it in any random split (fast-check), empty pushes included', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(STREAM.length), { maxLength: 40 }), (cuts) => {
        expect(parseAll(splitAt(STREAM, cuts))).toEqual(EXPECTED);
      }),
      { numRuns: 300 },
    );
  });

  it('parses any records in any split (fast-check)', () => {
    const fields = {
      type: fc.integer({ min: 0, max: 255 }),
      requestId: fc.integer({ min: 0, max: 65535 }),
    };
    forAnyRecordsInAnySplit(fields, 200, (recs, chunks) => {
      const expected = recs.map((r) => ({
        type: r.type,
        requestId: r.requestId,
        content: toHex(r.content),
      }));
      expect(parseAll(chunks)).toEqual(expected);
    });
  });

  it('assembles a 65535-byte record split across pushes once, and retains only that record', () => {
    const big = Buffer.alloc(FCGI_MAX_CONTENT_LENGTH);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const bytes = Buffer.concat([
      encodeRecord(FCGI_STDIN, 1, big),
      encodeRecord(FCGI_STDIN, 1, latin1('x')),
    ]);
    for (const size of [1000, 4096, 65536, 65543, 65544, 65545]) {
      const p = new RecordParser();
      const recs: FastcgiRecord[] = [];
      for (let o = 0; o < bytes.length; o += size) {
        recs.push(...p.push(bytes.subarray(o, o + size)));
        expect(p.bufferedBytes).toBeLessThanOrEqual(8 + 65535);
      }
      p.end();
      expect(recs.length).toBe(2);
      expect(Buffer.from(recs[0]!.content).equals(big)).toBe(true);
      expect(toHex(recs[1]!.content)).toBe('78');
    }
  });

  it('streamTypes: a stream record that spans pushes comes in non-empty pieces, views of the chunks (fast-check)', () => {
    const STREAMS = [FCGI_PARAMS, FCGI_STDIN, FCGI_DATA];
    const fields = {
      type: fc.constantFrom(FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_DATA, 20),
      requestId: fc.integer({ min: 0, max: 3 }),
    };
    forAnyRecordsInAnySplit(fields, 300, (recs, chunks) => {
      const p = new RecordParser({ streamTypes: STREAMS });
      const got: FastcgiRecord[] = [];
      for (const c of chunks) {
        for (const r of p.push(c)) {
          got.push(r);
          // Every stream piece is a view of the chunk it came in: nothing was copied.
          if (STREAMS.includes(r.type) && r.content.length > 0)
            expect(r.content.buffer).toBe(c.buffer);
        }
      }
      p.end();
      // Pieces of one record are adjacent; joined, they are the records.
      const joined: Array<{ type: number; requestId: number; content: string }> = [];
      let i = 0;
      for (const r of recs) {
        let hexed = '';
        if (!STREAMS.includes(r.type) || r.content.length === 0) {
          hexed = toHex(got[i++]!.content);
        } else {
          let n = 0;
          while (n < r.content.length) {
            const piece = got[i++]!;
            expect(piece.type).toBe(r.type);
            expect(piece.requestId).toBe(r.requestId);
            expect(piece.content.length).toBeGreaterThan(0);
            hexed += toHex(piece.content);
            n += piece.content.length;
          }
        }
        joined.push({ type: r.type, requestId: r.requestId, content: hexed });
      }
      expect(i).toBe(got.length);
      expect(joined).toEqual(
        recs.map((r) => ({ type: r.type, requestId: r.requestId, content: toHex(r.content) })),
      );
    });
  });

  it('streamTypes: a 65535-byte FCGI_STDIN record split across pushes is never assembled', () => {
    const big = Buffer.alloc(FCGI_MAX_CONTENT_LENGTH, 0x61);
    const bytes = encodeRecord(FCGI_STDIN, 1, big);
    const p = new RecordParser({ streamTypes: [FCGI_STDIN] });
    let total = 0;
    for (let o = 0; o < bytes.length; o += 4096) {
      for (const r of p.push(bytes.subarray(o, o + 4096))) total += r.content.length;
      expect(p.bufferedBytes).toBeLessThanOrEqual(8);
    }
    p.end();
    expect(total).toBe(big.length);
    // Cut inside the content: the error says how far it got.
    const q = new RecordParser({ streamTypes: [FCGI_STDIN] });
    q.push(bytes.subarray(0, 108));
    expect(caught(() => q.end()).message).toBe(
      'fastcgi: stream ended inside the content of a FCGI_STDIN record (100 of 65535 bytes); the record starts at byte offset 0',
    );
  });

  it('returns a record as soon as its content is complete, before its padding', () => {
    const p = new RecordParser();
    const rec = encodeRecord(FCGI_STDIN, 1, latin1('abc')); // 8 + 3 + 5 padding
    expect(p.push(rec.subarray(0, 11)).map((r) => toHex(r.content))).toEqual(['616263']);
    expect(p.partial).toBe(true);
    expect(p.push(rec.subarray(11))).toEqual([]);
    expect(p.partial).toBe(false);
    p.end();
  });

  it('4000 tiny records in one chunk come back as views of that chunk', () => {
    // Linear work is a bench concern (bench/); here: all of them, and no copies.
    const one = encodeRecord(FCGI_STDIN, 1, latin1('0123456789abcdef0123456789abcdef'));
    const chunk = Buffer.concat(Array.from({ length: 4000 }, () => one));
    const recs = new RecordParser().push(chunk);
    expect(recs.length).toBe(4000);
    expect(recs.every((r) => r.content.buffer === chunk.buffer && r.content.length === 32)).toBe(
      true,
    );
  });

  describe('errors', () => {
    it('a version other than 1: ERR_FASTCGI_BAD_VERSION with the byte offset, however it is split', () => {
      const bad = Buffer.from(encodeRecord(FCGI_STDIN, 1, latin1('x')));
      bad[0] = 2;
      const bytes = Buffer.concat([encodeRecord(FCGI_STDIN, 1, latin1('abc')), bad]);
      for (const chunks of [
        [bytes],
        bytewise(bytes),
        [bytes.subarray(0, 17), bytes.subarray(17)],
      ]) {
        const p = new RecordParser();
        expect(
          caught(() => {
            for (const c of chunks) p.push(c);
          }),
        ).toEqual({
          code: 'ERR_FASTCGI_BAD_VERSION',
          message: 'fastcgi: record version 2, expected 1 at byte offset 16',
          status: undefined,
        });
        // The parser stays failed: a stream cannot be resynchronised.
        expect(caught(() => p.push(encodeRecord(FCGI_STDIN, 1))).code).toBe(
          'ERR_FASTCGI_BAD_VERSION',
        );
        expect(caught(() => p.end()).code).toBe('ERR_FASTCGI_BAD_VERSION');
      }
    });

    it('version 0 and an HTTP request sent to the FastCGI port are refused at offset 0', () => {
      expect(caught(() => new RecordParser().push(hex('00 01 0001 0008 00 00'))).message).toBe(
        'fastcgi: record version 0, expected 1 at byte offset 0',
      );
      // "GET / HTTP/1.1": 'G' is 0x47 = 71.
      expect(caught(() => new RecordParser().push(latin1('GET / HTTP/1.1\r\n'))).message).toBe(
        'fastcgi: record version 71, expected 1 at byte offset 0',
      );
    });

    const truncations: Array<[string, number, string]> = [
      ['inside a header', 5, 'inside a record header (5 of 8 bytes)'],
      ['inside the content', 8 + 2, 'inside the content of a FCGI_STDIN record (2 of 3 bytes)'],
      [
        'inside the padding',
        8 + 3 + 1,
        'inside the padding of a FCGI_STDIN record (4 bytes missing)',
      ],
    ];
    for (const [name, cut, what] of truncations) {
      it(`a stream that ends ${name}: ERR_FASTCGI_TRUNCATED`, () => {
        const bytes = Buffer.concat([
          encodeRecord(FCGI_STDIN, 1, latin1('12345678')),
          encodeRecord(FCGI_STDIN, 1, latin1('abc')).subarray(0, cut),
        ]);
        for (const chunks of [[bytes], bytewise(bytes)]) {
          const p = new RecordParser();
          for (const c of chunks) p.push(c);
          expect(p.partial).toBe(true);
          expect(caught(() => p.end())).toEqual({
            code: 'ERR_FASTCGI_TRUNCATED',
            message: `fastcgi: stream ended ${what}; the record starts at byte offset 16`,
            status: undefined,
          });
        }
      });
    }

    it('a stream that ends between records is not truncated', () => {
      const p = new RecordParser();
      p.push(encodeRecord(FCGI_STDIN, 1, latin1('abc')));
      expect(() => p.end()).not.toThrow();
    });
  });
});

/** Decodes `stream` pushed in `chunks`, one pair list. */
function decodeChunks(chunks: Uint8Array[], limits?: ParamsLimits): ParamPair[] {
  const d = new ParamsDecoder(limits);
  const out: ParamPair[] = [];
  for (const c of chunks) out.push(...d.push(c));
  d.end();
  return out;
}

const asHex = (pairs: ParamPair[]) => pairs.map(([n, v]) => [n, toHex(v)]);

describe('ParamsDecoder (S3.4, S5.2)', () => {
  const PAIRS: Array<[string, Buffer]> = [
    ['REQUEST_METHOD', latin1('GET')],
    ['QUERY_STRING', Buffer.from([0x61, 0x3d, 0xe9, 0xff])], // a=\xE9\xFF, not UTF-8
    ['HTTP_X_\u00e9', Buffer.from([0x80])],
    ['EMPTY', Buffer.alloc(0)],
    ['', latin1('empty name')],
    ['LONG', Buffer.alloc(8150, 0x7a)], // the header node-fastcgi truncated with cgi-fcgi
    ['N'.repeat(130), latin1('4-byte name length')],
    ['', Buffer.alloc(0)],
  ];
  const BYTES = encodeNameValuePairs(PAIRS);
  const EXPECTED_PAIRS = asHex(PAIRS);

  it('decodes 1- and 4-byte lengths, empty names and values, in one record', () => {
    const d = new ParamsDecoder();
    const pairs = d.push(BYTES);
    d.end();
    expect(asHex(pairs)).toEqual(EXPECTED_PAIRS);
    expect(d.count).toBe(PAIRS.length);
    expect(d.bytes).toBe(BYTES.length);
    // Values inside the record are views of it.
    expect(pairs[5]![1].buffer).toBe(BYTES.buffer);
  });

  it('keeps non-UTF-8 value bytes exactly (0xE9 0xFF) and decodes names as latin-1', () => {
    const [pair] = decodeNameValuePairs(
      encodeNameValuePairs([['QUERY_STRING', Buffer.from('a=\u00e9\u00ff', 'latin1')]]),
    );
    expect(pair![0]).toBe('QUERY_STRING');
    expect([...pair![1]]).toEqual([0x61, 0x3d, 0xe9, 0xff]);
    const [named] = decodeNameValuePairs(hex('02 00 58e9'));
    expect(named![0]).toBe('X\u00e9');
  });

  it('decodes pairs that cross record boundaries anywhere, one byte per record included', () => {
    expect(asHex(decodeChunks(bytewise(BYTES)))).toEqual(EXPECTED_PAIRS);
    for (let i = 0; i <= BYTES.length; i += 37) {
      expect(asHex(decodeChunks([BYTES.subarray(0, i), BYTES.subarray(i)]))).toEqual(
        EXPECTED_PAIRS,
      );
    }
  });

  it('decodes a 4-byte length split inside itself, across records', () => {
    // name "A", value of 200 bytes: 01 800000c8 41 ...
    const bytes = encodeNameValuePairs([['A', Buffer.alloc(200, 0x62)]]);
    for (const cut of [1, 2, 3, 4, 5]) {
      const pairs = decodeChunks([
        bytes.subarray(0, cut),
        bytes.subarray(cut, cut + 1),
        bytes.subarray(cut + 1),
      ]);
      expect(pairs.length).toBe(1);
      expect(pairs[0]![1].length).toBe(200);
    }
  });

  /**
   * Runs `check` (fast-check, 200 runs) on up to 10 pairs, names of any bytes up to 140 (1- and
   * 4-byte lengths) and values short or over 127 bytes, and their encoding cut anywhere.
   */
  function forAnyPairsInAnySplit(
    check: (pairs: Array<[string, Uint8Array]>, chunks: Uint8Array[]) => void,
  ): void {
    const pair = fc.tuple(
      fc.uint8Array({ maxLength: 140 }).map((u) => Buffer.from(u).toString('latin1')),
      fc.oneof(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ minLength: 120, maxLength: 400 })),
    );
    fc.assert(
      fc.property(
        fc.array(pair, { maxLength: 10 }),
        fc.array(fc.nat(6000), { maxLength: 15 }),
        (pairs, cuts) => check(pairs, splitAt(encodeNameValuePairs(pairs), cuts)),
      ),
      { numRuns: 200 },
    );
  }

  it('decodes any pairs in any split (fast-check)', () => {
    forAnyPairsInAnySplit((pairs, chunks) => {
      const got = decodeChunks(chunks);
      expect(got.map(([n, v]) => [n, toHex(v)])).toEqual(pairs.map(([n, v]) => [n, toHex(v)]));
    });
  });

  it('pushText gives the same pairs as latin-1 strings, byte for byte, in any split (fast-check)', () => {
    forAnyPairsInAnySplit((pairs, chunks) => {
      const d = new ParamsDecoder();
      const got: Array<[string, string]> = [];
      for (const c of chunks) got.push(...d.pushText(c));
      d.end();
      expect(got).toEqual(pairs.map(([n, v]) => [n, Buffer.from(v).toString('latin1')]));
      expect(d.count).toBe(pairs.length);
    });
    // The fixed cases too: 4-byte lengths, empty names and values, non-UTF-8 bytes.
    const d = new ParamsDecoder();
    const text = d.pushText(BYTES);
    d.end();
    expect(text.map(([n, v]) => [n, toHex(Buffer.from(v, 'latin1'))])).toEqual(EXPECTED_PAIRS);
    const one = new ParamsDecoder();
    const byByte = bytewise(BYTES).flatMap((c) => one.pushText(c));
    one.end();
    expect(byByte).toEqual(text);
  });

  it('pushText: the usual names and near misses of them decode exactly (the known-name fast path)', () => {
    const names = KNOWN_NAME_PROBES;
    const pairs = names.map((n, i) => [n, `v${i}`] as [string, string]);
    const d = new ParamsDecoder();
    expect(d.pushText(encodeNameValuePairs(pairs))).toEqual(pairs);
    d.end();
  });

  it('pushText applies the same limits as push', () => {
    expect(
      caught(() => new ParamsDecoder({ maxParamValueBytes: 2 }).pushText(hex('01 03'))),
    ).toEqual({
      code: 'ERR_FASTCGI_PARAM_VALUE_TOO_LONG',
      message: 'fastcgi: a PARAMS value of 3 bytes exceeds 2 bytes (limit maxParamValueBytes)',
      status: 431,
    });
    const pairs = Array.from({ length: 3 }, (_, i) => [`V${i}`, ''] as [string, string]);
    expect(
      caught(() => new ParamsDecoder({ maxParams: 2 }).pushText(encodeNameValuePairs(pairs))).code,
    ).toBe('ERR_FASTCGI_TOO_MANY_PARAMS');
  });

  it('decodes the whole PARAMS stream as the records of a web server deliver it', () => {
    // A real stream: PARAMS records of at most 65535 bytes (here forced small), then the
    // empty record. The decoder sees only contents.
    const stream = encodeStream(FCGI_PARAMS, 1, BYTES, { end: true });
    const recs = new RecordParser().push(stream);
    const d = new ParamsDecoder();
    const out: ParamPair[] = [];
    for (const r of recs) {
      if (r.content.length === 0) d.end();
      else out.push(...d.push(r.content));
    }
    expect(asHex(out)).toEqual(EXPECTED_PAIRS);
  });

  describe('limits, checked before buffering', () => {
    it('defaults: 65536 bytes, 1000 pairs', () => {
      expect([DEFAULT_MAX_PARAMS_BYTES, DEFAULT_MAX_PARAMS]).toEqual([65536, 1000]);
    });

    it('a stream over maxParamsBytes: ERR_FASTCGI_PARAMS_TOO_LARGE, 431, naming the limit', () => {
      const d = new ParamsDecoder();
      d.push(encodeNameValuePairs([['A', Buffer.alloc(60000)]]));
      expect(caught(() => d.push(encodeNameValuePairs([['B', Buffer.alloc(6000)]])))).toEqual({
        code: 'ERR_FASTCGI_PARAMS_TOO_LARGE',
        message: 'fastcgi: PARAMS exceed 65536 bytes (limit maxParamsBytes)',
        status: 431,
      });
    });

    it('a pair whose declared lengths would pass the limit is refused from its length bytes alone', () => {
      const d = new ParamsDecoder({ maxParamsBytes: 1000 });
      // name length 1, value length 2000: 01 800007d0, and not one byte of the value.
      expect(caught(() => d.push(hex('01 800007d0'))).code).toBe(
        'ERR_FASTCGI_PARAM_VALUE_TOO_LONG',
      );
      const d2 = new ParamsDecoder({ maxParamsBytes: 1000, maxParamValueBytes: 5000 });
      expect(caught(() => d2.push(hex('01 800007d0'))).message).toBe(
        'fastcgi: PARAMS exceed 1000 bytes (limit maxParamsBytes)',
      );
      // A 2 GiB declaration is refused without allocating it.
      expect(caught(() => new ParamsDecoder().push(hex('01 ffffffff 41'))).code).toBe(
        'ERR_FASTCGI_PARAM_VALUE_TOO_LONG',
      );
    });

    it('more than maxParams pairs: ERR_FASTCGI_TOO_MANY_PARAMS', () => {
      const pairs = Array.from({ length: 1001 }, (_, i) => [`V${i}`, ''] as [string, string]);
      expect(caught(() => decodeNameValuePairs(encodeNameValuePairs(pairs)))).toEqual({
        code: 'ERR_FASTCGI_TOO_MANY_PARAMS',
        message: 'fastcgi: PARAMS hold more than 1000 name-value pairs (limit maxParams)',
        status: 431,
      });
      expect(decodeNameValuePairs(encodeNameValuePairs(pairs.slice(0, 1000))).length).toBe(1000);
      expect(caught(() => decodeNameValuePairs(hex('0000 0000 0000'), { maxParams: 2 })).code).toBe(
        'ERR_FASTCGI_TOO_MANY_PARAMS',
      );
    });

    it('a name over maxParamNameBytes: ERR_FASTCGI_PARAM_NAME_TOO_LONG', () => {
      expect(caught(() => new ParamsDecoder({ maxParamNameBytes: 4 }).push(hex('05 00')))).toEqual({
        code: 'ERR_FASTCGI_PARAM_NAME_TOO_LONG',
        message: 'fastcgi: a PARAMS name of 5 bytes exceeds 4 bytes (limit maxParamNameBytes)',
        status: 431,
      });
    });

    it('a value over maxParamValueBytes: ERR_FASTCGI_PARAM_VALUE_TOO_LONG', () => {
      expect(caught(() => new ParamsDecoder({ maxParamValueBytes: 2 }).push(hex('01 03')))).toEqual(
        {
          code: 'ERR_FASTCGI_PARAM_VALUE_TOO_LONG',
          message: 'fastcgi: a PARAMS value of 3 bytes exceeds 2 bytes (limit maxParamValueBytes)',
          status: 431,
        },
      );
    });

    it('a bad limit is an ERR_FASTCGI_BAD_OPTION', () => {
      expect(caught(() => new ParamsDecoder({ maxParams: -1 })).code).toBe(
        'ERR_FASTCGI_BAD_OPTION',
      );
      expect(caught(() => new ParamsDecoder({ maxParamsBytes: 1.5 })).code).toBe(
        'ERR_FASTCGI_BAD_OPTION',
      );
    });
  });

  describe('a stream that ends inside a pair: ERR_FASTCGI_BAD_PARAMS', () => {
    const cases: Array<[string, string, string]> = [
      ['a name length', '80 00', 'a name length'],
      ['a value length', '01', 'a value length'],
      ['a name', '03 01 41', 'a name (1 of 3 bytes)'],
      ['a value', '01 03 41 6263', 'the value of A (2 of 3 bytes)'],
    ];
    for (const [name, bytes, where] of cases) {
      it(`inside ${name}`, () => {
        const b = hex(bytes);
        expect(caught(() => decodeNameValuePairs(b))).toEqual({
          code: 'ERR_FASTCGI_BAD_PARAMS',
          message: `fastcgi: PARAMS stream ended inside ${where}, after ${b.length} bytes`,
          status: 400,
        });
      });
    }
  });
});
