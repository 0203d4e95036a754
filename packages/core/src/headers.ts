import { TsgiError } from './errors.js';
import { isDigits } from './latin1.js';
import type { HeaderList, ResponseHead } from './types.js';

// RFC 9110 section 5.5: field values are VCHAR, SP, HTAB and obs-text (0x80-0xFF).
// Everything else below 0x20, DEL, and anything above U+00FF is refused.
const BAD_VALUE_CHAR = /[\u0000-\u0008\u000a-\u001f\u007f]|[^\u0000-\u00ff]/;

/**
 * HOP_BY_HOP: header names an application may not set (RFC 9110 section 7.6.1; PEP 3333
 * "Other HTTP Features"). The gateway and the front server own connection management.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
]);

/**
 * describeChar: `CR (0x0D)`, `control character 0x01`, `":" (0x3A)`, `U+20AC (outside
 * ISO-8859-1)`: how an error names an offending character.
 */
export function describeChar(s: string, index: number): string {
  const c = s.codePointAt(index) ?? 0;
  const names: Record<number, string> = {
    0: 'NUL',
    9: 'HTAB',
    10: 'LF',
    13: 'CR',
    32: 'SP',
    127: 'DEL',
  };
  if (c > 0xff) return `U+${c.toString(16).toUpperCase().padStart(4, '0')} (outside ISO-8859-1)`;
  const hex = `0x${c.toString(16).toUpperCase().padStart(2, '0')}`;
  if (names[c]) return `${names[c]} (${hex})`;
  // C0 and C1 controls are named as such; anything else is shown as itself.
  if (c < 0x20 || (c >= 0x80 && c < 0xa0)) return `control character ${hex}`;
  return `${JSON.stringify(String.fromCharCode(c))} (${hex})`;
}

/**
 * TCHAR: 1 for the code units allowed in a header name (RFC 9110 section 5.6.2 `tchar`),
 * indexed by code unit below 128.
 */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}

/** isToken: `name` is 1*tchar (a char loop: this runs for every response header). */
function isToken(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

/** fieldTextOk: every code unit of `s` from `start` is HTAB, SP, VCHAR or obs-text (0x80-0xFF). */
function fieldTextOk(s: string, start: number): boolean {
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 ? c !== 9 : c === 0x7f || c > 0xff) return false;
  }
  return true;
}

/** statusCode: the code of a well-formed status line (`200 OK`), or 0 (then the regexp says why). */
function statusCode(status: string): number {
  if (status.length < 4 || status.charCodeAt(3) !== 0x20) return 0;
  const a = status.charCodeAt(0) - 48;
  const b = status.charCodeAt(1) - 48;
  const c = status.charCodeAt(2) - 48;
  if (a < 1 || a > 5 || b < 0 || b > 9 || c < 0 || c > 9) return 0;
  return fieldTextOk(status, 4) ? a * 100 + b * 10 + c : 0;
}

/** The names validateResponseHead looks for, by length (RFC 9110 section 7.6.1; Content-Length). */
const SPECIAL: ReadonlyArray<readonly string[] | undefined> = (() => {
  const t: string[][] = [];
  for (const n of [...HOP_BY_HOP, 'content-length']) (t[n.length] ??= []).push(n);
  return t;
})();

/**
 * special: the lower-case hop-by-hop name or `content-length` that the token `name` is,
 * in any case, or undefined. Compares without making a lower-case copy: for a token,
 * `c | 0x20` equals a lower-case letter or `-` only when `c` is that letter (either
 * case) or `-`.
 */
function special(name: string): string | undefined {
  const candidates = SPECIAL[name.length];
  if (candidates === undefined) return undefined;
  outer: for (const cand of candidates) {
    for (let i = 0; i < cand.length; i++) {
      if ((name.charCodeAt(i) | 0x20) !== cand.charCodeAt(i)) continue outer;
    }
    return cand;
  }
  return undefined;
}

/**
 * validateResponseHead: checks a status line and header list (SPEC rules 4.1-4.3, 4.5,
 * 4.6) and returns the head a transport commits. Throws TsgiError `ERR_CORE_BAD_STATUS` or
 * `ERR_CORE_BAD_HEADER` naming the header and the offending character.
 */
export function validateResponseHead(status: unknown, headers: unknown): ResponseHead {
  if (typeof status !== 'string') {
    throw new TsgiError(
      'ERR_CORE_BAD_STATUS',
      `core: status must be a string like "200 OK", got ${typeof status}`,
    );
  }
  // One pass over the characters; the regexps only run to word the error.
  const code = statusCode(status);
  if (code === 0) {
    const bad = BAD_VALUE_CHAR.exec(status);
    throw new TsgiError(
      'ERR_CORE_BAD_STATUS',
      bad
        ? `core: status ${JSON.stringify(status)} has ${describeChar(status, bad.index)} at index ${bad.index}`
        : `core: status ${JSON.stringify(status)} is not "<3-digit code> <reason>"`,
    );
  }
  if (!Array.isArray(headers)) {
    throw new TsgiError(
      'ERR_CORE_BAD_HEADER',
      'core: headers must be an array of [name, value] pairs',
    );
  }
  if (status === lastStatus && sameHeaders(headers, lastFlat)) {
    lastShared ??= frozenPairs(lastFlat);
    return new Head(status, code, lastShared, lastFlat, lastContentLength);
  }
  // The head keeps a copy of what was checked: the app still holds its array and pairs,
  // and whatever it changes in them after startResponse must not reach the wire unchecked.
  const flat: string[] = [];
  const pairs: HeaderList = [];
  let contentLength: number | undefined;
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i];
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new TsgiError(
        'ERR_CORE_BAD_HEADER',
        `core: header #${i} must be a [name, value] pair of strings`,
      );
    }
    const name: unknown = pair[0];
    const value: unknown = pair[1];
    if (typeof name !== 'string' || typeof value !== 'string') {
      throw new TsgiError(
        'ERR_CORE_BAD_HEADER',
        `core: header #${i} must be a [name, value] pair of strings, got [${typeof name}, ${typeof value}]`,
      );
    }
    if (!isToken(name)) {
      const bad = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/.exec(name);
      throw new TsgiError(
        'ERR_CORE_BAD_HEADER',
        name === ''
          ? `core: header #${i} has an empty name`
          : `core: header name ${JSON.stringify(name)} has ${describeChar(name, bad!.index)} at index ${bad!.index}; names must be HTTP tokens`,
      );
    }
    if (!fieldTextOk(value, 0)) {
      const bad = BAD_VALUE_CHAR.exec(value)!;
      throw new TsgiError(
        'ERR_CORE_BAD_HEADER',
        `core: header ${name} value has ${describeChar(value, bad.index)} at index ${bad.index}`,
      );
    }
    flat.push(name, value);
    pairs.push([name, value]);
    const lower = special(name);
    if (lower === undefined) continue;
    if (lower !== 'content-length') {
      throw new TsgiError(
        'ERR_CORE_HOP_BY_HOP',
        `core: header ${name} is hop-by-hop and belongs to the server, not the application`,
      );
    }
    if (contentLength !== undefined) {
      throw new TsgiError('ERR_CORE_BAD_HEADER', 'core: header Content-Length given twice');
    }
    if (!isDigits(value)) {
      throw new TsgiError(
        'ERR_CORE_BAD_HEADER',
        `core: header Content-Length ${JSON.stringify(value)} is not a non-negative integer`,
      );
    }
    contentLength = Number(value);
  }
  lastStatus = status;
  lastFlat = flat;
  lastShared = undefined;
  lastContentLength = contentLength;
  return new Head(status, code, pairs, flat, contentLength);
}

/**
 * Head: the ResponseHead validateResponseHead returns; a class, not a literal per response
 * (behind a busy server V8's allocation-site feedback for a literal made per request
 * promoted the requests in flight to the old generation; docs/bench/scgi.md). Besides its
 * `headers` (a copy: the app's array is not the head's) it holds the validated names and
 * values as one private list, which the CGI-style serializer reads (`validatedHeaders`).
 */
class Head implements ResponseHead {
  readonly #flat: readonly string[];

  constructor(
    public status: string,
    public code: number,
    public headers: HeaderList,
    flat: readonly string[],
    public contentLength: number | undefined,
  ) {
    this.#flat = flat;
  }

  /** The validated names and values of `head` when it is a Head, else undefined. */
  static flatOf(head: ResponseHead): readonly string[] | undefined {
    return #flat in head ? head.#flat : undefined;
  }
}

/**
 * validatedHeaders: the names and values validateResponseHead checked, `[name, value,
 * name, value, ...]`, or undefined for a head it did not make (then use `head.headers`).
 * Equal heads share one list (see lastFlat): for the serializer, which keeps the bytes of
 * the last list it wrote.
 */
export function validatedHeaders(head: ResponseHead): readonly string[] | undefined {
  return Head.flatOf(head);
}

/**
 * The last head validated: an app answers request after request with the same status and
 * header strings, and a list equal to the last one, compared string by string, needs no
 * second check and no second copy. The list is never handed out (a head's `headers`
 * are a copy, frozen when heads share it), so what it holds is what was checked.
 */
let lastStatus = '';
let lastFlat: readonly string[] = [];
let lastContentLength: number | undefined;
/** The pairs the heads equal to the last one share, frozen (made at the first repeat). */
let lastShared: HeaderList | undefined;

function frozenPairs(flat: readonly string[]): HeaderList {
  const pairs: HeaderList = [];
  for (let i = 0; i < flat.length; i += 2) {
    pairs.push(Object.freeze([flat[i]!, flat[i + 1]!]) as [string, string]);
  }
  return Object.freeze(pairs) as HeaderList;
}

/** sameHeaders: `headers` holds exactly the names and values of `flat` (string equality). */
function sameHeaders(headers: unknown[], flat: readonly string[]): boolean {
  const n = headers.length;
  if (n * 2 !== flat.length) return false;
  for (let i = 0; i < n; i++) {
    const pair = headers[i];
    if (!Array.isArray(pair) || pair.length !== 2) return false;
    if (pair[0] !== flat[2 * i] || pair[1] !== flat[2 * i + 1]) return false;
  }
  return true;
}

/** getHeader: first value of `name` (case-insensitive) in a header list, or undefined. */
export function getHeader(headers: HeaderList, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of headers) if (n.toLowerCase() === lower) return v;
  return undefined;
}
