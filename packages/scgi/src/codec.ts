// The SCGI request codec: pure functions over bytes, no I/O.
//
// Neil Schemenauer's SCGI spec (2008-06-23), section 3: a request is
//   <netstring of the headers> <body>
// where the netstring is `<length>:<length bytes>,` and the headers are
//   headers ::= header*;  header ::= name NUL value NUL;  name ::= notnull+;  value ::= notnull*
// "The first header must have the name CONTENT_LENGTH and a value that is a nonempty
// sequence of ASCII digits", "there must also always be a header with the name SCGI and a
// value of 1", and "duplicate names are not allowed". DurusWorks' scgi.html adds "the
// number at the beginning of the header must not start with a 0".
//
// Everything here is hand-written (docs/decisions/0002-scgi-hand-written-decoder.md):
// binary-parser does none of the framing or SCGI rules, is byte-exact for latin-1 only by
// a Node quirk (its TextDecoder('latin1') is windows-1252) and measured ~12x slower than
// decodeHeaders on a realistic 30-header block (bench/scgi-headers/run.mjs).
import { Buffer } from 'node:buffer';
import { isDigits, KNOWN_CGI_NAMES, knownCgiIndex, TsgiError } from '@tsgi/core';

/** DEFAULT_MAX_HEADER_BYTES: the default cap on the declared header block size (64 KiB). */
export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;

/**
 * MAX_HEADER_BYTES_LIMIT: the largest `maxHeaderBytes` accepted (16 MiB). The netstring
 * length is checked against `maxHeaderBytes` digit by digit, so it never has more than 8
 * digits and never overflows.
 */
export const MAX_HEADER_BYTES_LIMIT = 16 * 1024 * 1024;

/**
 * MAX_CONTENT_LENGTH_DIGITS: CONTENT_LENGTH has at most 15 digits, so it is always a safe
 * integer (Number.MAX_SAFE_INTEGER has 16) and agrees with the core's own bound.
 */
export const MAX_CONTENT_LENGTH_DIGITS = 15;

/** The smallest valid block: `CONTENT_LENGTH\0` `0\0` `SCGI\0` `1\0`. */
const MIN_BLOCK = 24;

/** The rest of a chunk that ended with the netstring (a GET): one shared empty view. */
const EMPTY = new Uint8Array(0);

const COLON = 0x3a;
const COMMA = 0x2c;
const ZERO = 0x30;
const NINE = 0x39;

/** NetstringFrame: a complete header block and the bytes of the chunk that followed its `,`. */
export interface NetstringFrame {
  /** The netstring's payload: the NUL-terminated name/value pairs, without `len:` and `,`. */
  block: Uint8Array;
  /** Bytes after the `,` in the chunk that completed the frame: the start of the body. */
  rest: Uint8Array;
}

/** NetstringFramerOptions: limits for `NetstringFramer`. */
export interface NetstringFramerOptions {
  /**
   * maxHeaderBytes: the largest header block accepted, checked against the declared length
   * before any of the block is buffered. Default 64 KiB (`DEFAULT_MAX_HEADER_BYTES`).
   */
  maxHeaderBytes?: number;
}

/** A NetstringFrame (a class, not a literal: see CgiVars in the core on literals per request). */
class Frame implements NetstringFrame {
  constructor(
    readonly block: Uint8Array,
    readonly rest: Uint8Array,
  ) {}
}

// Framer states (plain numbers: a const enum does not survive isolatedModules builds everywhere).
const LENGTH = 0;
const BLOCK = 1;
const TRAILER = 2;
const DONE = 3;
const FAILED = 4;

/**
 * NetstringFramer: an incremental reader for the netstring that opens an SCGI request.
 * Feed it chunks with `push` (one byte at a time or everything at once: same result);
 * it returns the frame once the trailing `,` arrives, with the bytes after it untouched.
 *
 * Rules (SCGI spec section 3; DurusWorks scgi.html):
 * - the length is ASCII digits only, with no leading zero. A lone `0` (`0:,`) is refused
 *   too: an empty block cannot hold the required CONTENT_LENGTH, and the DurusWorks text
 *   says the number "must not start with a 0";
 * - the length is compared with `maxHeaderBytes` at every digit, so an oversized
 *   declaration is refused before a byte of the block is buffered, and the digit count is
 *   bounded (at most 8 digits under `MAX_HEADER_BYTES_LIMIT`);
 * - the block must be followed by `,`.
 * Every rejection is a TsgiError with code `ERR_SCGI_*`; the framer stays failed afterwards.
 */
export class NetstringFramer {
  private state = LENGTH;
  private length = 0;
  private digits = 0;
  private buf: Buffer | undefined;
  private filled = 0;
  private block: Uint8Array | undefined;
  private offset = 0;
  private failure: TsgiError | undefined;
  private readonly max: number;

  constructor(options: NetstringFramerOptions = {}) {
    this.max = checkMaxHeaderBytes(options.maxHeaderBytes);
  }

  /** NetstringFramer.started: true once any byte has been pushed. */
  get started(): boolean {
    return this.offset > 0;
  }

  /** NetstringFramer.done: true once a frame was returned. */
  get done(): boolean {
    return this.state === DONE;
  }

  /**
   * NetstringFramer.push: consumes bytes of `chunk` up to and including the netstring's
   * `,`. Returns the frame when it is complete, undefined when more bytes are needed.
   * Throws TsgiError on a rule broken. Pushing after the frame was returned is a bug in
   * the caller (the rest belongs to the body) and throws.
   */
  push(chunk: Uint8Array): NetstringFrame | undefined {
    if (this.state === FAILED) throw this.failure!;
    if (this.state === DONE) {
      throw new TsgiError(
        'ERR_SCGI_FRAMER_DONE',
        'scgi: netstring already complete; bytes after the "," belong to the body',
      );
    }
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.state === LENGTH) {
        const c = chunk[i]!;
        if (c === COLON) {
          if (this.digits === 0) {
            this.fail(
              'ERR_SCGI_NETSTRING_NO_LENGTH',
              `scgi: netstring starts with ":" at offset ${this.offset}; the length digits are missing`,
            );
          }
          if (this.length === 0) {
            this.fail(
              'ERR_SCGI_NETSTRING_EMPTY',
              'scgi: netstring length is 0; the header block must hold CONTENT_LENGTH and SCGI',
            );
          }
          if (this.length < MIN_BLOCK) {
            // Cannot hold CONTENT_LENGTH, a digit and SCGI=1: refuse before reading it.
            this.fail(
              'ERR_SCGI_NETSTRING_TOO_SHORT',
              `scgi: netstring length ${this.length} is below ${MIN_BLOCK}, too short for CONTENT_LENGTH and SCGI=1`,
            );
          }
          this.state = BLOCK;
          i++;
          this.offset++;
          continue;
        }
        if (c < ZERO || c > NINE) {
          this.fail(
            'ERR_SCGI_NETSTRING_NOT_DIGIT',
            `scgi: netstring length has a non-digit byte ${hexByte(c)} at offset ${this.offset}${
              this.offset === 0 && c >= 0x41 && c <= 0x5a
                ? ' (an HTTP request sent to the SCGI port?)'
                : ''
            }`,
          );
        }
        if (this.digits === 1 && this.length === 0) {
          this.fail('ERR_SCGI_NETSTRING_LEADING_ZERO', 'scgi: netstring length has a leading zero');
        }
        this.length = this.length * 10 + (c - ZERO);
        this.digits++;
        if (this.length > this.max) {
          this.fail(
            'ERR_SCGI_HEADERS_TOO_LARGE',
            `scgi: netstring declares at least ${this.length} header bytes, over the limit of ${this.max} (maxHeaderBytes)`,
            431,
          );
        }
        i++;
        this.offset++;
      } else if (this.state === BLOCK) {
        const need = this.length - this.filled;
        const avail = n - i;
        if (this.filled === 0 && avail >= need) {
          // Common case: the whole block is in this chunk. No copy.
          this.block = chunk.subarray(i, i + need);
          i += need;
          this.offset += need;
          this.state = TRAILER;
          continue;
        }
        this.buf ??= Buffer.allocUnsafe(this.length);
        const k = Math.min(need, avail);
        this.buf.set(chunk.subarray(i, i + k), this.filled);
        this.filled += k;
        i += k;
        this.offset += k;
        if (this.filled === this.length) {
          this.block = this.buf;
          this.state = TRAILER;
        }
      } else {
        const c = chunk[i]!;
        if (c !== COMMA) {
          this.fail(
            'ERR_SCGI_NETSTRING_NO_COMMA',
            `scgi: netstring of ${this.length} bytes must end with ",", got ${hexByte(c)} at offset ${this.offset}`,
          );
        }
        i++;
        this.offset++;
        this.state = DONE;
        const block = this.block!;
        this.block = undefined;
        this.buf = undefined;
        return new Frame(block, i === n ? EMPTY : chunk.subarray(i));
      }
    }
    return undefined;
  }

  /**
   * NetstringFramer.end: the stream ended. Throws `ERR_SCGI_TRUNCATED` when it ended inside
   * the netstring; returns quietly when nothing had arrived (a health check that connects
   * and closes) or the frame was complete.
   */
  end(): void {
    if (this.state === FAILED) throw this.failure!;
    if (this.state === DONE || this.offset === 0) return;
    const where =
      this.state === LENGTH
        ? 'in the netstring length'
        : this.state === BLOCK
          ? `after ${this.filled} of ${this.length} header bytes`
          : 'before the netstring\'s ","';
    this.fail('ERR_SCGI_TRUNCATED', `scgi: connection ended ${where}`);
  }

  private fail(code: string, message: string, status = 400): never {
    this.state = FAILED;
    this.buf = undefined;
    this.block = undefined;
    this.failure = new TsgiError(code, message, { status });
    throw this.failure;
  }
}

/** ScgiHeaders: a decoded header block. */
export interface ScgiHeaders {
  /**
   * All headers in wire order, CONTENT_LENGTH and SCGI included, as latin-1 strings (one
   * code point per byte, U+0000..U+00FF: byte-exact and reversible). Repeats of names
   * other than CONTENT_LENGTH and SCGI are kept in order; `buildEnviron` applies the one
   * duplicate policy for them.
   */
  params: Array<[string, string]>;
  /** CONTENT_LENGTH as a number. */
  contentLength: number;
}

/**
 * decodeHeaders: decodes an SCGI header block (the netstring's payload) with a
 * hand-written loop. The block is decoded once as ISO-8859-1 (Buffer's `latin1`: byte n
 * becomes U+00nn, one UTF-16 code unit per byte, so string indices are byte offsets), then
 * each NUL is found with `indexOf` and names and values are sliced out. That is byte-exact
 * and reversible (`Buffer.from(value, 'latin1')` gives the bytes back), and about five
 * times faster than decoding each of the 60 strings separately, because it crosses into
 * C++ once per block instead of once per string. Never TextDecoder('latin1'): that is
 * WHATWG windows-1252 and turns 0x80 into U+20AC.
 *
 * Rules (SCGI spec section 3): the block ends with a NUL; every name is non-empty and has
 * a value (values may be empty: `value ::= notnull*`); CONTENT_LENGTH is the first name and
 * its value is 1 to 15 ASCII digits (no sign, no spaces); SCGI is present with the value
 * `1`; CONTENT_LENGTH or SCGI given twice is refused. Other repeated names are returned in
 * order. Throws TsgiError `ERR_SCGI_*` with status 400.
 */
export function decodeHeaders(block: Uint8Array): ScgiHeaders {
  const pairs = new PairList();
  const contentLength = decodeHeadersInto(block, pairs);
  return { params: pairs.params, contentLength };
}

/**
 * ScgiHeaderTarget: where `decodeHeadersInto` puts each header: the core's `CgiVars` (what
 * the adapter uses: no list of pairs in between) or anything with an `add`.
 */
export interface ScgiHeaderTarget {
  /** `known`: the name's index in the core's KNOWN_CGI_NAMES, or -1 (see `knownCgiIndex`). */
  add(name: string, value: string, known: number): void;
}

/** PairList: collects the pairs decodeHeaders returns. */
class PairList implements ScgiHeaderTarget {
  readonly params: Array<[string, string]> = [];
  add(name: string, value: string): void {
    this.params.push([name, value]);
  }
}

/**
 * decodeHeadersInto: `decodeHeaders` that hands each header, in wire order, to
 * `target.add(name, value)` instead of returning a list, and returns CONTENT_LENGTH. The
 * same rules and errors; an error thrown by `target.add` (the core's CgiVars refuses a
 * second CONTENT_TYPE) propagates.
 */
export function decodeHeadersInto(block: Uint8Array, target: ScgiHeaderTarget): number {
  const b = Buffer.isBuffer(block)
    ? block
    : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  const n = b.length;
  if (n === 0) {
    bad(
      'ERR_SCGI_CONTENT_LENGTH_NOT_FIRST',
      'scgi: CONTENT_LENGTH must be the first header, got nothing',
    );
  }
  if (b[n - 1] !== 0) {
    bad(
      'ERR_SCGI_HEADERS_NOT_TERMINATED',
      `scgi: the header block must end with a NUL byte, got ${hexByte(b[n - 1]!)}`,
    );
  }
  const s = b.toString('latin1');
  let contentLength = -1;
  let sawScgi = false;
  let pos = 0;
  while (pos < n) {
    // Both searches succeed: the last byte is a NUL.
    const nameEnd = s.indexOf('\0', pos);
    if (nameEnd === pos) {
      bad('ERR_SCGI_EMPTY_NAME', `scgi: empty header name at offset ${pos} of the header block`);
    }
    const known = knownCgiIndex(b, pos, nameEnd - pos);
    const name = known >= 0 ? KNOWN_CGI_NAMES[known]! : s.slice(pos, nameEnd);
    if (nameEnd === n - 1) {
      bad(
        'ERR_SCGI_MISSING_VALUE',
        `scgi: header ${JSON.stringify(name)} has no value (the block ends after its name)`,
      );
    }
    const valEnd = s.indexOf('\0', nameEnd + 1);
    const value = s.slice(nameEnd + 1, valEnd);
    if (contentLength < 0) {
      if (name !== 'CONTENT_LENGTH') {
        bad(
          'ERR_SCGI_CONTENT_LENGTH_NOT_FIRST',
          `scgi: CONTENT_LENGTH must be the first header, got ${JSON.stringify(name)}`,
        );
      }
      contentLength = parseContentLength(value);
    } else if (name === 'CONTENT_LENGTH') {
      bad('ERR_SCGI_DUPLICATE_HEADER', 'scgi: CONTENT_LENGTH given twice');
    } else if (name === 'SCGI') {
      if (sawScgi) bad('ERR_SCGI_DUPLICATE_HEADER', 'scgi: SCGI given twice');
      if (value !== '1') {
        bad('ERR_SCGI_BAD_VERSION', `scgi: SCGI must be "1", got ${JSON.stringify(value)}`);
      }
      sawScgi = true;
    }
    target.add(name, value, known);
    pos = valEnd + 1;
  }
  if (!sawScgi) bad('ERR_SCGI_MISSING_SCGI', 'scgi: the SCGI header (value "1") is missing');
  return contentLength;
}

/** CONTENT_LENGTH's value: 1..15 ASCII digits, nothing else (no sign, no spaces). */
function parseContentLength(v: string): number {
  const len = v.length;
  if (len === 0) {
    bad(
      'ERR_SCGI_BAD_CONTENT_LENGTH',
      'scgi: CONTENT_LENGTH is empty; the spec requires digits, "0" for no body',
    );
  }
  if (len > MAX_CONTENT_LENGTH_DIGITS) {
    bad(
      'ERR_SCGI_BAD_CONTENT_LENGTH',
      `scgi: CONTENT_LENGTH has ${len} characters, more than ${MAX_CONTENT_LENGTH_DIGITS} digits`,
    );
  }
  // The core's check (the same digits rule as every Content-Length); the two above only
  // name the rule broken.
  if (!isDigits(v)) {
    bad(
      'ERR_SCGI_BAD_CONTENT_LENGTH',
      `scgi: CONTENT_LENGTH must be ASCII digits only, got ${JSON.stringify(v)}`,
    );
  }
  return Number(v);
}

function bad(code: string, message: string): never {
  throw new TsgiError(code, message, { status: 400 });
}

function hexByte(c: number): string {
  const h = `0x${c.toString(16).toUpperCase().padStart(2, '0')}`;
  return c >= 0x21 && c <= 0x7e ? `${h} (${JSON.stringify(String.fromCharCode(c))})` : h;
}

/** checkMaxHeaderBytes: validates the option; returns the value to use. */
export function checkMaxHeaderBytes(v: number | undefined): number {
  if (v === undefined) return DEFAULT_MAX_HEADER_BYTES;
  if (!Number.isInteger(v) || v < MIN_BLOCK || v > MAX_HEADER_BYTES_LIMIT) {
    throw new TsgiError(
      'ERR_SCGI_BAD_OPTION',
      `scgi: maxHeaderBytes must be an integer from ${MIN_BLOCK} to ${MAX_HEADER_BYTES_LIMIT}, got ${v}`,
    );
  }
  return v;
}
