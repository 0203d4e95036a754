// This file defines the FastCGI 1.0 wire protocol: record framing, name-value pairs, and
// the records a responder sends. Pure functions and classes over bytes, no I/O:
// connection.ts drives them, server.ts owns the sockets.
//
// The source is the FastCGI Specification, Mark R. Brown, Open Market, document version 1.0,
// 29 April 1996 ("the spec"; sections cited as S3.3 and so on; mirror:
// https://fastcgi-archives.github.io/FastCGI_Specification.html). The layout follows Go's
// net/http/fcgi (fcgi.go holds the protocol, child.go the application side).
//
// Why our own codec and not node-fastcgi / fastcgi-stream: docs/decisions/0001-own-fastcgi-codec.md
// (params decoded as UTF-8, PARAMS split across records corrupted, unknown record types
// crash the process, a quadratic parser).
import { Buffer } from 'node:buffer';
import {
  isLatin1,
  KNOWN_CGI_NAMES,
  knownCgiIndex,
  knownCgiName,
  latin1Decode,
  TsgiError,
} from '@tsgi/core';

// ---------------------------------------------------------------------------------------
// Constants (S8, "Types and Constants"; the names are fastcgi.h's)

/** FCGI_LISTENSOCK_FILENO: the descriptor a web server leaves the listening socket on (S2.2). */
export const FCGI_LISTENSOCK_FILENO = 0;
/** FCGI_HEADER_LEN: bytes in a record header (S3.3, S8). */
export const FCGI_HEADER_LEN = 8;
/** FCGI_VERSION_1: the only protocol version (S3.3). */
export const FCGI_VERSION_1 = 1;
/** FCGI_MAX_CONTENT_LENGTH: the largest contentLength of one record (S3.3: 0 to 65535). */
export const FCGI_MAX_CONTENT_LENGTH = 65535;
/** FCGI_MAX_PADDING_LENGTH: the largest paddingLength of one record (S3.3: 0 to 255). */
export const FCGI_MAX_PADDING_LENGTH = 255;
/** FCGI_NULL_REQUEST_ID: the requestId of management records (S3.3). */
export const FCGI_NULL_REQUEST_ID = 0;

/** FCGI_BEGIN_REQUEST: record type 1, starts a request (S5.1). */
export const FCGI_BEGIN_REQUEST = 1;
/** FCGI_ABORT_REQUEST: record type 2, the web server abandons a request (S5.4). */
export const FCGI_ABORT_REQUEST = 2;
/** FCGI_END_REQUEST: record type 3, the application ends a request (S5.5). */
export const FCGI_END_REQUEST = 3;
/** FCGI_PARAMS: record type 4, the name-value pair stream (S5.2). */
export const FCGI_PARAMS = 4;
/** FCGI_STDIN: record type 5, the request body stream (S5.3). */
export const FCGI_STDIN = 5;
/** FCGI_STDOUT: record type 6, the response stream (S5.3). */
export const FCGI_STDOUT = 6;
/** FCGI_STDERR: record type 7, the error stream (S5.3). */
export const FCGI_STDERR = 7;
/** FCGI_DATA: record type 8, the Filter's second input stream (S5.3, S6.4). */
export const FCGI_DATA = 8;
/** FCGI_GET_VALUES: record type 9, a management query (S4.1). */
export const FCGI_GET_VALUES = 9;
/** FCGI_GET_VALUES_RESULT: record type 10, the answer to FCGI_GET_VALUES (S4.1). */
export const FCGI_GET_VALUES_RESULT = 10;
/** FCGI_UNKNOWN_TYPE: record type 11, the answer to a record type not understood (S4.2). */
export const FCGI_UNKNOWN_TYPE = 11;
/** FCGI_MAXTYPE: the highest record type the spec defines. */
export const FCGI_MAXTYPE = FCGI_UNKNOWN_TYPE;

/** FCGI_KEEP_CONN: the BEGIN_REQUEST flag that keeps the connection open after the request (S5.1). */
export const FCGI_KEEP_CONN = 1;

/** FCGI_RESPONDER: role 1, a CGI/1.1 program's job (S6.2). */
export const FCGI_RESPONDER = 1;
/** FCGI_AUTHORIZER: role 2, an access decision (S6.3). */
export const FCGI_AUTHORIZER = 2;
/** FCGI_FILTER: role 3, a Responder with a second input stream, FCGI_DATA (S6.4). */
export const FCGI_FILTER = 3;

/** FCGI_REQUEST_COMPLETE: protocolStatus 0, normal end of request (S5.5). */
export const FCGI_REQUEST_COMPLETE = 0;
/** FCGI_CANT_MPX_CONN: protocolStatus 1, a concurrent request refused on a non-multiplexing connection (S5.5). */
export const FCGI_CANT_MPX_CONN = 1;
/** FCGI_OVERLOADED: protocolStatus 2, a request refused for lack of resources (S5.5). */
export const FCGI_OVERLOADED = 2;
/** FCGI_UNKNOWN_ROLE: protocolStatus 3, a request refused because its role is unknown (S5.5). */
export const FCGI_UNKNOWN_ROLE = 3;

/** FCGI_MAX_CONNS: the GET_VALUES variable for the most concurrent connections accepted (S4.1). */
export const FCGI_MAX_CONNS = 'FCGI_MAX_CONNS';
/** FCGI_MAX_REQS: the GET_VALUES variable for the most concurrent requests accepted (S4.1). */
export const FCGI_MAX_REQS = 'FCGI_MAX_REQS';
/** FCGI_MPXS_CONNS: the GET_VALUES variable, "1" when connections are multiplexed (S4.1). */
export const FCGI_MPXS_CONNS = 'FCGI_MPXS_CONNS';

const TYPE_NAMES: readonly string[] = [
  '',
  'FCGI_BEGIN_REQUEST',
  'FCGI_ABORT_REQUEST',
  'FCGI_END_REQUEST',
  'FCGI_PARAMS',
  'FCGI_STDIN',
  'FCGI_STDOUT',
  'FCGI_STDERR',
  'FCGI_DATA',
  'FCGI_GET_VALUES',
  'FCGI_GET_VALUES_RESULT',
  'FCGI_UNKNOWN_TYPE',
];

/** recordTypeName: `FCGI_STDIN` for 5, `type 20` for a type the spec does not define (for messages). */
export function recordTypeName(type: number): string {
  return type >= 1 && type <= FCGI_MAXTYPE ? TYPE_NAMES[type]! : `type ${type}`;
}

const EMPTY = Buffer.alloc(0);
/** Zero bytes for padding: S3.3 says padding is ignored; zeros keep the output deterministic. */
const ZEROS = Buffer.alloc(8);

// ---------------------------------------------------------------------------------------
// Record parsing (S3.3)

/** FastcgiRecord: one record as received; `content` is a view of the pushed bytes when it could be. */
export interface FastcgiRecord {
  /** FastcgiRecord.type: the record type (`FCGI_PARAMS`, ...; unknown types are passed on too). */
  readonly type: number;
  /** FastcgiRecord.requestId: 0 for management records, the request otherwise (S3.3). */
  readonly requestId: number;
  /** FastcgiRecord.content: contentData without the padding. */
  readonly content: Uint8Array;
}

// Parser states (plain numbers: a const enum does not survive isolatedModules builds).
const HEADER = 0;
const CONTENT = 1;
const PADDING = 2;
/** The content of a stream record, passed on in pieces as it arrives (streamTypes). */
const CONTENT_PIECES = 3;

/** RecordParserOptions: how `RecordParser` hands over record contents. */
export interface RecordParserOptions {
  /**
   * streamTypes: record types whose content may be returned in pieces, as views of the
   * pushed chunks, when a record spans chunks: for stream types (FCGI_PARAMS, FCGI_STDIN,
   * FCGI_DATA; S3.3: "the value of a stream is independent of how many records it contains
   * or how its bytes are divided"), this saves assembling (copying) the record. A piece is
   * never empty: the empty record that ends a stream is still the only empty content.
   * Default: none (every record is returned whole).
   */
  streamTypes?: readonly number[];
}

/**
 * RecordParser: an incremental FastCGI record reader (S3.3). `push` any chunking of the
 * stream (one byte at a time or many records at once: same records) and get back the
 * records it completed.
 *
 * - A record that lies inside one pushed chunk is returned as a `subarray` of it: no copy.
 * - A record that spans chunks is assembled once, into a buffer of its contentLength,
 *   allocated when its header is complete; nothing else is retained between pushes (never
 *   the rest of a chunk), so the work is linear in the bytes pushed, whatever the split.
 *   A record of one of `streamTypes` is not assembled: its content comes out in pieces,
 *   views of the chunks, each a record of the same type and request ID.
 * - A record is returned as soon as its content is complete; its padding (at most 255
 *   bytes, S3.3 "requires receivers to interpret the paddingLength and skip the
 *   paddingData") is skipped as it arrives.
 * - The version byte must be FCGI_VERSION_1; anything else is an
 *   `ERR_FASTCGI_BAD_VERSION` TsgiError naming the byte offset of the record. After an
 *   error the parser stays failed: the stream cannot be resynchronised.
 * - Record types are not checked here: the connection answers unknown ones with
 *   FCGI_UNKNOWN_TYPE (S4.2).
 */
export class RecordParser {
  private state = HEADER;
  private readonly header = new Uint8Array(FCGI_HEADER_LEN);
  private headerFill = 0;
  private type = 0;
  private requestId = 0;
  private contentLength = 0;
  private paddingLeft = 0;
  /** The record being assembled across pushes. */
  private assembly: Uint8Array | undefined;
  private assemblyFill = 0;
  /** Stream offset of the first byte of the current push. */
  private consumed = 0;
  /** Stream offset of the current record's header. */
  private recordOffset = 0;
  private failure: TsgiError | undefined;
  /** streamTypes as flags by type byte. */
  private readonly pieces: Uint8Array | undefined;
  /** CONTENT_PIECES: content bytes of the current record still to come. */
  private contentLeft = 0;

  constructor(options: RecordParserOptions = {}) {
    const types = options.streamTypes;
    if (types !== undefined && types.length > 0) {
      this.pieces = new Uint8Array(256);
      for (const t of types) this.pieces[t & 0xff] = 1;
    }
  }

  /** RecordParser.offset: bytes of the stream pushed so far. */
  get offset(): number {
    return this.consumed;
  }

  /** RecordParser.partial: true while a record (or its padding) is incomplete. */
  get partial(): boolean {
    return this.state !== HEADER || this.headerFill > 0;
  }

  /** RecordParser.bufferedBytes: bytes retained between pushes (a partial header or record). */
  get bufferedBytes(): number {
    return this.headerFill + this.assemblyFill;
  }

  /**
   * RecordParser.push: feeds the next bytes of the stream; returns the records completed
   * by them, in order. Throws a TsgiError (`ERR_FASTCGI_BAD_VERSION`) on a malformed header.
   */
  push(chunk: Uint8Array): FastcgiRecord[] {
    if (this.failure !== undefined) throw this.failure;
    const out: FastcgiRecord[] = [];
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      if (this.state === HEADER) {
        let h: Uint8Array;
        let at: number;
        if (this.headerFill === 0 && n - p >= FCGI_HEADER_LEN) {
          // Fast path: the header is inside this chunk.
          h = chunk;
          at = p;
          this.recordOffset = this.consumed + p;
          p += FCGI_HEADER_LEN;
        } else {
          if (this.headerFill === 0) this.recordOffset = this.consumed + p;
          const k = Math.min(FCGI_HEADER_LEN - this.headerFill, n - p);
          this.header.set(chunk.subarray(p, p + k), this.headerFill);
          this.headerFill += k;
          p += k;
          if (this.headerFill < FCGI_HEADER_LEN) break;
          this.headerFill = 0;
          h = this.header;
          at = 0;
        }
        if (h[at] !== FCGI_VERSION_1) {
          this.failure = new TsgiError(
            'ERR_FASTCGI_BAD_VERSION',
            `fastcgi: record version ${h[at]}, expected ${FCGI_VERSION_1} at byte offset ${this.recordOffset}`,
          );
          this.consumed += n;
          throw this.failure;
        }
        this.type = h[at + 1]!;
        this.requestId = (h[at + 2]! << 8) | h[at + 3]!;
        this.contentLength = (h[at + 4]! << 8) | h[at + 5]!;
        this.paddingLeft = h[at + 6]!;
        // h[at + 7] is reserved (S3.3) and ignored.
        if (n - p >= this.contentLength) {
          // The content is inside this chunk: a view, no copy.
          out.push({
            type: this.type,
            requestId: this.requestId,
            content: chunk.subarray(p, p + this.contentLength),
          });
          p += this.contentLength;
          this.state = PADDING;
        } else if (this.pieces !== undefined && this.pieces[this.type] === 1) {
          // A stream record that spans chunks: what is here now, the rest as it comes.
          this.contentLeft = this.contentLength;
          this.state = CONTENT_PIECES;
        } else {
          this.assembly = new Uint8Array(this.contentLength);
          this.assemblyFill = 0;
          this.state = CONTENT;
        }
      }
      if (this.state === CONTENT_PIECES) {
        const k = Math.min(this.contentLeft, n - p);
        if (k === 0) break;
        out.push({ type: this.type, requestId: this.requestId, content: chunk.subarray(p, p + k) });
        this.contentLeft -= k;
        p += k;
        if (this.contentLeft > 0) break;
        this.state = PADDING;
      }
      if (this.state === CONTENT) {
        const a = this.assembly!;
        const k = Math.min(a.length - this.assemblyFill, n - p);
        a.set(chunk.subarray(p, p + k), this.assemblyFill);
        this.assemblyFill += k;
        p += k;
        if (this.assemblyFill < a.length) break;
        out.push({ type: this.type, requestId: this.requestId, content: a });
        this.assembly = undefined;
        this.assemblyFill = 0;
        this.state = PADDING;
      }
      if (this.state === PADDING) {
        const k = Math.min(this.paddingLeft, n - p);
        this.paddingLeft -= k;
        p += k;
        if (this.paddingLeft > 0) break;
        this.state = HEADER;
      }
    }
    this.consumed += n;
    return out;
  }

  /**
   * RecordParser.end: the stream has ended. Throws `ERR_FASTCGI_TRUNCATED` when it ended
   * inside a record (a header, its content or its padding).
   */
  end(): void {
    if (this.failure !== undefined) throw this.failure;
    if (!this.partial) return;
    let what: string;
    if (this.state === HEADER) {
      what = `inside a record header (${this.headerFill} of ${FCGI_HEADER_LEN} bytes)`;
    } else if (this.state === CONTENT) {
      what = `inside the content of a ${recordTypeName(this.type)} record (${this.assemblyFill} of ${this.contentLength} bytes)`;
    } else if (this.state === CONTENT_PIECES) {
      what = `inside the content of a ${recordTypeName(this.type)} record (${this.contentLength - this.contentLeft} of ${this.contentLength} bytes)`;
    } else {
      what = `inside the padding of a ${recordTypeName(this.type)} record (${this.paddingLeft} bytes missing)`;
    }
    this.failure = new TsgiError(
      'ERR_FASTCGI_TRUNCATED',
      `fastcgi: stream ended ${what}; the record starts at byte offset ${this.recordOffset}`,
    );
    throw this.failure;
  }
}

// ---------------------------------------------------------------------------------------
// Name-value pairs (S3.4), decoded over the whole FCGI_PARAMS stream (S5.2)

/** DEFAULT_MAX_PARAMS_BYTES: the default cap on a request's FCGI_PARAMS stream (64 KiB). */
export const DEFAULT_MAX_PARAMS_BYTES = 65536;
/** DEFAULT_MAX_PARAMS: the default cap on the number of name-value pairs of a request. */
export const DEFAULT_MAX_PARAMS = 1000;
/** DEFAULT_MAX_PARAM_NAME_BYTES: the default cap on one name (8 KiB). */
export const DEFAULT_MAX_PARAM_NAME_BYTES = 8192;

/** ParamsLimits: caps on a PARAMS stream, each checked before the bytes it covers are buffered. */
export interface ParamsLimits {
  /** maxParamsBytes: the whole stream, length prefixes included. Default 65536. */
  maxParamsBytes?: number;
  /** maxParams: name-value pairs. Default 1000. */
  maxParams?: number;
  /** maxParamNameBytes: one name. Default 8192. */
  maxParamNameBytes?: number;
  /** maxParamValueBytes: one value. Default: `maxParamsBytes`. */
  maxParamValueBytes?: number;
}

/** ParamPair: a name (latin-1 decoded, one code point per byte) and its value as bytes. */
export type ParamPair = [name: string, value: Uint8Array];

/** TextParamPair: a name and its value, both latin-1 decoded (one code point per byte, reversible). */
export type TextParamPair = [name: string, value: string];

/** checkParamsLimits: validates `ParamsLimits` and fills in the defaults. */
export function checkParamsLimits(limits: ParamsLimits = {}): Required<ParamsLimits> {
  const bytes = limit(limits.maxParamsBytes, DEFAULT_MAX_PARAMS_BYTES, 'maxParamsBytes');
  return {
    maxParamsBytes: bytes,
    maxParams: limit(limits.maxParams, DEFAULT_MAX_PARAMS, 'maxParams'),
    maxParamNameBytes: limit(
      limits.maxParamNameBytes,
      DEFAULT_MAX_PARAM_NAME_BYTES,
      'maxParamNameBytes',
    ),
    maxParamValueBytes: limit(limits.maxParamValueBytes, bytes, 'maxParamValueBytes'),
  };
}

function limit(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new TsgiError(
      'ERR_FASTCGI_BAD_OPTION',
      `fastcgi: ${name} must be a non-negative integer, got ${String(v)}`,
    );
  }
  return v;
}

// Decoder states.
const NAME_LENGTH = 0;
const VALUE_LENGTH = 1;
const NAME = 2;
const VALUE = 3;

/** ParamTarget: where `ParamsDecoder.pushTextInto` puts each pair (the core's CgiVars has this `add`). */
export interface ParamTarget<V> {
  /** `known`: the name's index in the core's KNOWN_CGI_NAMES when it is one (`knownCgiIndex`). */
  add(name: string, value: V, known?: number): void;
}

/** PairList: collects the pairs `push` and `pushText` return. */
class PairList implements ParamTarget<string | Uint8Array> {
  readonly list: Array<ParamPair | TextParamPair> = [];
  add(name: string, value: string | Uint8Array): void {
    this.list.push([name, value] as ParamPair | TextParamPair);
  }
}

/**
 * ParamsDecoder: decodes a request's FCGI_PARAMS stream (S5.2) incrementally: `push` each
 * PARAMS record's content as it arrives, `end` at the empty PARAMS record. Pairs and
 * their length prefixes may cross record boundaries anywhere (S3.3: "the value of a stream
 * is independent of how many records it contains or how its bytes are divided").
 *
 * - Lengths: one byte when the high bit is 0, else four bytes with the high bit cleared
 *   (S3.4), so a length is at most 2^31 - 1.
 * - Names are decoded as latin-1 (one code point per byte, reversible); values stay bytes,
 *   as a view of the record when the value lies inside one record, else copied once
 *   (`push`), or are latin-1 strings as well (`pushText`, what the connection uses: the
 *   core takes latin-1 strings as they are). `pushText` decodes each record's content
 *   once and slices names and values out of that string: one crossing into C++ per
 *   record instead of one per name and value.
 * - Limits are checked before buffering: the stream's size on every push, the pair count
 *   when a pair starts, and, as soon as a pair's two lengths are known, the name and value
 *   lengths and what the pair would bring the stream to. Errors are TsgiErrors with
 *   status 431 and a message naming the limit.
 */
export class ParamsDecoder {
  private readonly limits: Required<ParamsLimits>;
  private state = NAME_LENGTH;
  /** A 4-byte length split across records; made the first time one is. */
  private lengthBytes: Uint8Array | undefined;
  private lengthFill = 0;
  private nameLength = 0;
  private valueLength = 0;
  private name = '';
  private assembly: Uint8Array | undefined;
  private assemblyFill = 0;
  private total = 0;
  private pairs = 0;

  constructor(limits?: ParamsLimits) {
    this.limits = checkParamsLimits(limits);
  }

  /** ParamsDecoder.bytes: bytes of the stream pushed so far. */
  get bytes(): number {
    return this.total;
  }

  /** ParamsDecoder.count: pairs decoded so far. */
  get count(): number {
    return this.pairs;
  }

  /** ParamsDecoder.push: decodes the next bytes of the stream; returns the pairs they completed. */
  push(content: Uint8Array): ParamPair[] {
    const pairs = new PairList();
    this.decode(content, false, pairs);
    return pairs.list as ParamPair[];
  }

  /**
   * ParamsDecoder.pushText: `push`, with the values as latin-1 strings (byte-exact:
   * `Buffer.from(value, 'latin1')` gives the bytes back). Do not mix with `push` on one
   * stream.
   */
  pushText(content: Uint8Array): TextParamPair[] {
    const pairs = new PairList();
    this.decode(content, true, pairs);
    return pairs.list as TextParamPair[];
  }

  /**
   * ParamsDecoder.pushTextInto: `pushText` that hands each pair the bytes complete to
   * `target.add(name, value)` (the core's `CgiVars`: what the connection uses, with no
   * list of pairs in between) instead of returning them. An error thrown by `target.add`
   * propagates. Do not mix with `push` on one stream.
   */
  pushTextInto(content: Uint8Array, target: ParamTarget<string>): void {
    this.decode(content, true, target as ParamTarget<string | Uint8Array>);
  }

  private decode(content: Uint8Array, text: boolean, out: ParamTarget<string | Uint8Array>): void {
    const n = content.length;
    /** text mode: the whole content as latin-1, made on the first name or value inside it. */
    let str: string | undefined;
    if (this.total + n > this.limits.maxParamsBytes) {
      throw this.tooLarge();
    }
    // Stream offset of content[0].
    const base = this.total;
    this.total += n;
    let p = 0;
    if (text && this.state === NAME_LENGTH && this.lengthFill === 0) {
      // Fast path: the pairs that lie whole in this content (all of them, when a web server
      // sends PARAMS in one record), with locals instead of the state machine. It stops at
      // the first pair that is not whole here; the state machine goes on from its start.
      str = latin1Decode(content);
      const maxParams = this.limits.maxParams;
      while (p < n) {
        if (this.pairs >= maxParams) break; // the state machine throws, with its message
        let q = p;
        let nameLength = content[q]!;
        if (nameLength < 0x80) q += 1;
        else if (n - q >= 4) {
          nameLength = readLength4(content, q);
          q += 4;
        } else break;
        if (q >= n) break;
        let valueLength = content[q]!;
        if (valueLength < 0x80) q += 1;
        else if (n - q >= 4) {
          valueLength = readLength4(content, q);
          q += 4;
        } else break;
        this.nameLength = nameLength;
        this.valueLength = valueLength;
        this.checkPair(base + q);
        if (n - q < nameLength + valueLength) break;
        // The name is looked up in the bytes; its index lets CgiVars skip its checks.
        const known = knownCgiIndex(content, q, nameLength);
        const name =
          known >= 0
            ? KNOWN_CGI_NAMES[known]!
            : nameLength === 0
              ? ''
              : str.slice(q, q + nameLength);
        q += nameLength;
        out.add(name, valueLength === 0 ? '' : str.slice(q, q + valueLength), known);
        this.pairs++;
        p = q + valueLength;
      }
    }
    while (p < n) {
      if (this.state === NAME_LENGTH || this.state === VALUE_LENGTH) {
        if (
          this.state === NAME_LENGTH &&
          this.lengthFill === 0 &&
          this.pairs >= this.limits.maxParams
        ) {
          throw new TsgiError(
            'ERR_FASTCGI_TOO_MANY_PARAMS',
            `fastcgi: PARAMS hold more than ${this.limits.maxParams} name-value pairs (limit maxParams)`,
            { status: 431 },
          );
        }
        let length: number;
        if (this.lengthFill === 0 && (content[p]! & 0x80) === 0) {
          length = content[p]!;
          p += 1;
        } else if (this.lengthFill === 0 && n - p >= 4) {
          length = readLength4(content, p);
          p += 4;
        } else {
          const k = Math.min(4 - this.lengthFill, n - p);
          this.lengthBytes ??= new Uint8Array(4);
          this.lengthBytes.set(content.subarray(p, p + k), this.lengthFill);
          this.lengthFill += k;
          p += k;
          if (this.lengthFill < 4) break;
          this.lengthFill = 0;
          length = readLength4(this.lengthBytes!, 0);
        }
        if (this.state === NAME_LENGTH) {
          this.nameLength = length;
          this.state = VALUE_LENGTH;
          continue;
        }
        this.valueLength = length;
        this.checkPair(base + p);
        this.state = NAME;
        if (this.nameLength === 0) {
          this.name = '';
          this.state = VALUE;
          if (this.valueLength === 0) this.emit(out, text ? '' : EMPTY);
        }
        continue;
      }
      if (this.state === NAME) {
        const len = this.nameLength;
        if (text && this.assembly === undefined && n - p >= len) {
          str ??= latin1Decode(content);
          this.name = knownCgiName(str, p, len) ?? str.slice(p, p + len);
          p += len;
        } else {
          const bytes = this.take(content, p, len);
          p = this.afterTake;
          if (bytes === undefined) break;
          this.name = latin1Decode(bytes);
        }
        this.state = VALUE;
        if (this.valueLength === 0) this.emit(out, text ? '' : EMPTY);
        continue;
      }
      // VALUE
      const len = this.valueLength;
      if (text && this.assembly === undefined && n - p >= len) {
        str ??= latin1Decode(content);
        this.emit(out, str.slice(p, p + len));
        p += len;
        continue;
      }
      const bytes = this.take(content, p, len);
      p = this.afterTake;
      if (bytes === undefined) break;
      this.emit(out, text ? latin1Decode(bytes) : bytes);
    }
  }

  /**
   * ParamsDecoder.end: the empty PARAMS record arrived. Throws `ERR_FASTCGI_BAD_PARAMS` when
   * the stream ended inside a pair.
   */
  end(): void {
    if (this.state === NAME_LENGTH && this.lengthFill === 0) return;
    const where =
      this.state === NAME_LENGTH
        ? 'a name length'
        : this.state === VALUE_LENGTH
          ? 'a value length'
          : this.state === NAME
            ? `a name (${this.assemblyFill} of ${this.nameLength} bytes)`
            : `the value of ${this.name} (${this.assemblyFill} of ${this.valueLength} bytes)`;
    throw new TsgiError(
      'ERR_FASTCGI_BAD_PARAMS',
      `fastcgi: PARAMS stream ended inside ${where}, after ${this.total} bytes`,
      { status: 400 },
    );
  }

  /** Where take() left off in the content it was given. */
  private afterTake = 0;

  /**
   * Takes `length` bytes of a name or value starting at content[p]: a view when they are
   * all there and nothing was assembled yet, else copies into the assembly buffer. Returns
   * the bytes once complete (and sets afterTake), or undefined when more are needed.
   */
  private take(content: Uint8Array, p: number, length: number): Uint8Array | undefined {
    const avail = content.length - p;
    if (this.assembly === undefined) {
      if (avail >= length) {
        this.afterTake = p + length;
        return content.subarray(p, p + length);
      }
      this.assembly = new Uint8Array(length);
      this.assemblyFill = 0;
    }
    const a = this.assembly;
    const k = Math.min(length - this.assemblyFill, avail);
    a.set(content.subarray(p, p + k), this.assemblyFill);
    this.assemblyFill += k;
    this.afterTake = p + k;
    if (this.assemblyFill < length) return undefined;
    this.assembly = undefined;
    this.assemblyFill = 0;
    return a;
  }

  private emit(out: ParamTarget<string | Uint8Array>, value: Uint8Array | string): void {
    this.pairs++;
    this.state = NAME_LENGTH;
    out.add(this.name, value);
  }

  /** Both lengths of a pair are known (its data starts at stream offset `at`): check them. */
  private checkPair(at: number) {
    const l = this.limits;
    if (this.nameLength > l.maxParamNameBytes) {
      throw new TsgiError(
        'ERR_FASTCGI_PARAM_NAME_TOO_LONG',
        `fastcgi: a PARAMS name of ${this.nameLength} bytes exceeds ${l.maxParamNameBytes} bytes (limit maxParamNameBytes)`,
        { status: 431 },
      );
    }
    if (this.valueLength > l.maxParamValueBytes) {
      throw new TsgiError(
        'ERR_FASTCGI_PARAM_VALUE_TOO_LONG',
        `fastcgi: a PARAMS value of ${this.valueLength} bytes exceeds ${l.maxParamValueBytes} bytes (limit maxParamValueBytes)`,
        { status: 431 },
      );
    }
    // The pair's declared size already tells whether the stream will exceed its cap.
    if (at + this.nameLength + this.valueLength > l.maxParamsBytes) throw this.tooLarge();
  }

  private tooLarge(): TsgiError {
    return new TsgiError(
      'ERR_FASTCGI_PARAMS_TOO_LARGE',
      `fastcgi: PARAMS exceed ${this.limits.maxParamsBytes} bytes (limit maxParamsBytes)`,
      { status: 431 },
    );
  }
}

/** A four-byte length (S3.4): big-endian with the high bit (the encoding marker) cleared. */
function readLength4(b: Uint8Array, at: number): number {
  return ((b[at]! & 0x7f) << 24) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}

/**
 * decodeNameValuePairs: the pairs of one complete name-value sequence (an FCGI_GET_VALUES
 * record's content, S4.1), with the same limits and errors as `ParamsDecoder`.
 */
export function decodeNameValuePairs(content: Uint8Array, limits?: ParamsLimits): ParamPair[] {
  const d = new ParamsDecoder(limits);
  const pairs = d.push(content);
  d.end();
  return pairs;
}

/**
 * encodeNameValuePairs: name-value pairs in the S3.4 format (one-byte lengths up to 127,
 * four-byte lengths above). Strings are encoded as latin-1; a string with a code point
 * above U+00FF is an `ERR_FASTCGI_NOT_LATIN1` error.
 */
export function encodeNameValuePairs(
  pairs: Iterable<readonly [string | Uint8Array, string | Uint8Array]>,
): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  for (const [name, value] of pairs) {
    const nb = bytesOf(name, 'name');
    const vb = bytesOf(value, 'value');
    const head = Buffer.allocUnsafe(lengthSize(nb.length) + lengthSize(vb.length));
    const o = writeLength(head, 0, nb.length);
    writeLength(head, o, vb.length);
    parts.push(head, nb, vb);
    size += head.length + nb.length + vb.length;
  }
  return Buffer.concat(parts, size);
}

function bytesOf(v: string | Uint8Array, what: string): Buffer {
  if (typeof v !== 'string') return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (!isLatin1(v)) {
    throw new TsgiError(
      'ERR_FASTCGI_NOT_LATIN1',
      `fastcgi: a name-value pair ${what} has a character outside ISO-8859-1; pass bytes`,
    );
  }
  return Buffer.from(v, 'latin1');
}

function lengthSize(length: number): number {
  if (length > 0x7fffffff) {
    throw new TsgiError(
      'ERR_FASTCGI_RECORD_TOO_LARGE',
      `fastcgi: a name-value pair length of ${length} bytes exceeds 2^31 - 1 (S3.4)`,
    );
  }
  return length < 0x80 ? 1 : 4;
}

function writeLength(b: Buffer, at: number, length: number): number {
  if (length < 0x80) {
    b[at] = length;
    return at + 1;
  }
  b.writeUInt32BE((length | 0x80000000) >>> 0, at);
  return at + 4;
}

// ---------------------------------------------------------------------------------------
// Encoding (what the application sends)

/**
 * paddingFor: the padding that brings a record with `contentLength` bytes of content to a
 * multiple of 8 bytes (S3.3: "We recommend that records be placed on boundaries that are
 * multiples of eight bytes"; the header is 8 bytes).
 */
export function paddingFor(contentLength: number): number {
  return -contentLength & 7;
}

/** encodeHeader: the 8-byte record header (S3.3). */
export function encodeHeader(
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number = paddingFor(contentLength),
): Buffer {
  checkRecord(type, requestId, contentLength);
  const h = Buffer.allocUnsafe(FCGI_HEADER_LEN);
  writeHeader(h, 0, type, requestId, contentLength, paddingLength);
  return h;
}

function writeHeader(
  b: Uint8Array,
  at: number,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
) {
  b[at] = FCGI_VERSION_1;
  b[at + 1] = type;
  b[at + 2] = requestId >> 8;
  b[at + 3] = requestId & 0xff;
  b[at + 4] = contentLength >> 8;
  b[at + 5] = contentLength & 0xff;
  b[at + 6] = paddingLength;
  b[at + 7] = 0;
}

function checkRecord(type: number, requestId: number, contentLength: number) {
  if (!Number.isInteger(type) || type < 0 || type > 255) {
    throw new TsgiError('ERR_FASTCGI_BAD_RECORD', `fastcgi: record type ${type} is not a byte`);
  }
  if (!Number.isInteger(requestId) || requestId < 0 || requestId > 0xffff) {
    throw new TsgiError(
      'ERR_FASTCGI_BAD_RECORD',
      `fastcgi: requestId ${requestId} is outside 0..65535 (S3.3)`,
    );
  }
  if (contentLength > FCGI_MAX_CONTENT_LENGTH) {
    throw new TsgiError(
      'ERR_FASTCGI_RECORD_TOO_LARGE',
      `fastcgi: ${recordTypeName(type)} content of ${contentLength} bytes exceeds ${FCGI_MAX_CONTENT_LENGTH} (S3.3); use encodeStream`,
    );
  }
}

/**
 * encodeRecord: one record (S3.3): header, content, and zero padding to a multiple of 8
 * bytes. Content longer than 65535 bytes is an `ERR_FASTCGI_RECORD_TOO_LARGE` error; a
 * stream's data goes through `encodeStream`, which splits it.
 */
export function encodeRecord(type: number, requestId: number, content: Uint8Array = EMPTY): Buffer {
  checkRecord(type, requestId, content.length);
  const pad = paddingFor(content.length);
  const b = Buffer.allocUnsafe(FCGI_HEADER_LEN + content.length + pad);
  writeHeader(b, 0, type, requestId, content.length, pad);
  b.set(content, FCGI_HEADER_LEN);
  b.fill(0, FCGI_HEADER_LEN + content.length);
  return b;
}

/** The size of `length` bytes of stream data as records (no end-of-stream record). */
function streamSize(length: number): number {
  let size = 0;
  for (let left = length; left > 0; left -= FCGI_MAX_CONTENT_LENGTH) {
    const k = Math.min(left, FCGI_MAX_CONTENT_LENGTH);
    size += FCGI_HEADER_LEN + k + paddingFor(k);
  }
  return size;
}

/** Writes stream records for `data` into `b` at `at`; returns the offset after them. */
function writeStream(b: Buffer, at: number, type: number, requestId: number, data: Uint8Array) {
  for (let o = 0; o < data.length; o += FCGI_MAX_CONTENT_LENGTH) {
    const k = Math.min(data.length - o, FCGI_MAX_CONTENT_LENGTH);
    const pad = paddingFor(k);
    writeHeader(b, at, type, requestId, k, pad);
    b.set(data.subarray(o, o + k), at + FCGI_HEADER_LEN);
    at += FCGI_HEADER_LEN + k;
    b.fill(0, at, at + pad);
    at += pad;
  }
  return at;
}

/**
 * encodeStream: `data` as records of a stream type (S5.3: FCGI_STDOUT, FCGI_STDERR; also
 * FCGI_PARAMS, FCGI_STDIN, FCGI_DATA for a client), split at 65535 bytes, each padded to a
 * multiple of 8, in one buffer. Empty data gives no record at all (an empty record would end
 * the stream); `{ end: true }` appends the empty end-of-stream record.
 */
export function encodeStream(
  type: number,
  requestId: number,
  data: Uint8Array,
  options?: { end?: boolean },
): Buffer {
  checkRecord(type, requestId, 0);
  const end = options?.end === true;
  const b = Buffer.allocUnsafe(streamSize(data.length) + (end ? FCGI_HEADER_LEN : 0));
  const at = writeStream(b, 0, type, requestId, data);
  if (end) writeHeader(b, at, type, requestId, 0, 0);
  return b;
}

/**
 * encodeStreamParts: `data` as records of a stream type, like `encodeStream`, but as a list
 * of pieces (header, a view of `data`, padding) for a gathered write: the data is not copied.
 */
export function encodeStreamParts(type: number, requestId: number, data: Uint8Array): Uint8Array[] {
  checkRecord(type, requestId, 0);
  const parts: Uint8Array[] = [];
  for (let o = 0; o < data.length; o += FCGI_MAX_CONTENT_LENGTH) {
    const k = Math.min(data.length - o, FCGI_MAX_CONTENT_LENGTH);
    const pad = paddingFor(k);
    const h = Buffer.allocUnsafe(FCGI_HEADER_LEN);
    writeHeader(h, 0, type, requestId, k, pad);
    parts.push(h, data.subarray(o, o + k));
    if (pad > 0) parts.push(ZEROS.subarray(0, pad));
  }
  return parts;
}

/** BeginRequest: the body of an FCGI_BEGIN_REQUEST record (S5.1). */
export interface BeginRequest {
  /** BeginRequest.role: FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER, or an unknown role. */
  role: number;
  /** BeginRequest.flags: the raw flags byte. */
  flags: number;
  /** BeginRequest.keepConn: `flags & FCGI_KEEP_CONN` is set: the web server keeps the connection. */
  keepConn: boolean;
}

/** decodeBeginRequest: reads an FCGI_BEGIN_REQUEST body; it must be 8 bytes (S5.1, FCGI_BeginRequestBody). */
export function decodeBeginRequest(content: Uint8Array): BeginRequest {
  if (content.length !== 8) {
    throw new TsgiError(
      'ERR_FASTCGI_BAD_RECORD',
      `fastcgi: FCGI_BEGIN_REQUEST body is ${content.length} bytes, expected 8 (S5.1)`,
    );
  }
  const flags = content[2]!;
  return {
    role: (content[0]! << 8) | content[1]!,
    flags,
    keepConn: (flags & FCGI_KEEP_CONN) !== 0,
  };
}

/** encodeBeginRequest: an FCGI_BEGIN_REQUEST record (S5.1), for clients and tests. */
export function encodeBeginRequest(requestId: number, role: number, flags = 0): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16BE(role, 0);
  body[2] = flags;
  return encodeRecord(FCGI_BEGIN_REQUEST, requestId, body);
}

/** EndRequest: the body of an FCGI_END_REQUEST record (S5.5). */
export interface EndRequest {
  /** EndRequest.appStatus: the application's exit status (S6.2). */
  appStatus: number;
  /** EndRequest.protocolStatus: FCGI_REQUEST_COMPLETE, FCGI_CANT_MPX_CONN, FCGI_OVERLOADED or FCGI_UNKNOWN_ROLE. */
  protocolStatus: number;
}

/** decodeEndRequest: reads an FCGI_END_REQUEST body (8 bytes, S5.5), for clients and tests. */
export function decodeEndRequest(content: Uint8Array): EndRequest {
  if (content.length !== 8) {
    throw new TsgiError(
      'ERR_FASTCGI_BAD_RECORD',
      `fastcgi: FCGI_END_REQUEST body is ${content.length} bytes, expected 8 (S5.5)`,
    );
  }
  const b = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  return { appStatus: b.readUInt32BE(0), protocolStatus: b[4]! };
}

function writeEndRequest(
  b: Buffer,
  at: number,
  requestId: number,
  appStatus: number,
  protocolStatus: number,
): number {
  writeHeader(b, at, FCGI_END_REQUEST, requestId, 8, 0);
  b.writeUInt32BE(appStatus >>> 0, at + 8);
  b[at + 12] = protocolStatus;
  b[at + 13] = 0;
  b[at + 14] = 0;
  b[at + 15] = 0;
  return at + 16;
}

/**
 * encodeEndRequest: an FCGI_END_REQUEST record (S5.5): appStatus as an unsigned 32-bit
 * number, then protocolStatus. 16 bytes.
 */
export function encodeEndRequest(
  requestId: number,
  appStatus = 0,
  protocolStatus: number = FCGI_REQUEST_COMPLETE,
): Buffer {
  checkRecord(FCGI_END_REQUEST, requestId, 8);
  const b = Buffer.allocUnsafe(16);
  writeEndRequest(b, 0, requestId, appStatus, protocolStatus);
  return b;
}

/** RequestEnd: what `encodeRequestEnd` puts before FCGI_END_REQUEST. */
export interface RequestEnd {
  /** stdout: the last response bytes (any length; split at 65535), one piece or several. */
  stdout?: Uint8Array | readonly Uint8Array[];
  /** stderr: the last error-stream bytes. */
  stderr?: Uint8Array;
  /**
   * closeStderr: end the FCGI_STDERR stream with its empty record. Set it when any STDERR
   * record was sent: a stream is records followed by an empty one (S3.3), and the empty
   * record must precede END_REQUEST (S6.2: "After sending all its stdout and stderr data").
   */
  closeStderr?: boolean;
  /** appStatus: default 0. */
  appStatus?: number;
  /** protocolStatus: default FCGI_REQUEST_COMPLETE. */
  protocolStatus?: number;
}

/**
 * encodeRequestEnd: the end of a response as ONE buffer, so that it goes out in one write:
 * the last FCGI_STDERR data and its empty record (when asked), the last FCGI_STDOUT data,
 * the empty FCGI_STDOUT record (S6.1: "at least one record of the stream type is always
 * transmitted, even if the stream is empty"), then FCGI_END_REQUEST (S5.5, S6.2).
 */
export function encodeRequestEnd(requestId: number, end: RequestEnd = {}): Buffer {
  checkRecord(FCGI_STDOUT, requestId, 0);
  const pieces: readonly Uint8Array[] =
    end.stdout === undefined ? [] : end.stdout instanceof Uint8Array ? [end.stdout] : end.stdout;
  let stdoutLength = 0;
  for (const c of pieces) stdoutLength += c.length;
  const stderr = end.stderr ?? EMPTY;
  const closeStderr = end.closeStderr === true || stderr.length > 0;
  const size =
    streamSize(stderr.length) +
    (closeStderr ? FCGI_HEADER_LEN : 0) +
    streamSize(stdoutLength) +
    FCGI_HEADER_LEN +
    16;
  const b = Buffer.allocUnsafe(size);
  let at = writeStream(b, 0, FCGI_STDERR, requestId, stderr);
  if (closeStderr) {
    writeHeader(b, at, FCGI_STDERR, requestId, 0, 0);
    at += FCGI_HEADER_LEN;
  }
  if (stdoutLength > 0) {
    const data =
      pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces as Uint8Array[], stdoutLength);
    at = writeStream(b, at, FCGI_STDOUT, requestId, data);
  }
  writeHeader(b, at, FCGI_STDOUT, requestId, 0, 0);
  at += FCGI_HEADER_LEN;
  writeEndRequest(
    b,
    at,
    requestId,
    end.appStatus ?? 0,
    end.protocolStatus ?? FCGI_REQUEST_COMPLETE,
  );
  return b;
}

/**
 * encodeGetValuesResult: an FCGI_GET_VALUES_RESULT record (S4.1) holding `values` as
 * name-value pairs, on the null request ID.
 */
export function encodeGetValuesResult(
  values: Iterable<readonly [string, string | Uint8Array]>,
): Buffer {
  return encodeRecord(FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, encodeNameValuePairs(values));
}

/**
 * encodeUnknownType: `{FCGI_UNKNOWN_TYPE, 0, {type}}` (S4.2): the type byte, then 7
 * reserved zero bytes.
 */
export function encodeUnknownType(type: number): Buffer {
  const body = Buffer.alloc(8);
  body[0] = type;
  return encodeRecord(FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, body);
}
