// docs/SPEC.md rules 4.1-4.6: validateResponseHead, one row per broken rule, with the exact
// error message (it names the header and the offending character).
import {
  describeChar,
  getHeader,
  HOP_BY_HOP,
  serializeCgiHead,
  TsgiError,
  validateResponseHead,
} from '@tsgi/core';
import { describe, expect, it } from 'vitest';

function error(status: unknown, headers: unknown): TsgiError {
  try {
    validateResponseHead(status, headers);
  } catch (e) {
    if (e instanceof TsgiError) return e;
    throw e;
  }
  throw new Error(`accepted ${JSON.stringify(status)} ${JSON.stringify(headers)}`);
}

describe('status line [4.1]', () => {
  const table: Array<[unknown, string]> = [
    [200, 'core: status must be a string like "200 OK", got number'],
    [undefined, 'core: status must be a string like "200 OK", got undefined'],
    ['200', 'core: status "200" is not "<3-digit code> <reason>"'],
    ['200OK', 'core: status "200OK" is not "<3-digit code> <reason>"'],
    ['2000 OK', 'core: status "2000 OK" is not "<3-digit code> <reason>"'],
    ['600 Nope', 'core: status "600 Nope" is not "<3-digit code> <reason>"'],
    ['099 Low', 'core: status "099 Low" is not "<3-digit code> <reason>"'],
    [' 200 OK', 'core: status " 200 OK" is not "<3-digit code> <reason>"'],
    ['200 OK\r\n', 'core: status "200 OK\\r\\n" has CR (0x0D) at index 6'],
    ['200 O\nK', 'core: status "200 O\\nK" has LF (0x0A) at index 5'],
    ['200 O\u0000K', 'core: status "200 O\\u0000K" has NUL (0x00) at index 5'],
    ['200 O\u0001', 'core: status "200 O\\u0001" has control character 0x01 at index 5'],
    ['200 O\u007f', 'core: status "200 O\u007f" has DEL (0x7F) at index 5'],
    ['200 O\u20ac', 'core: status "200 O\u20ac" has U+20AC (outside ISO-8859-1) at index 5'],
    ['200 \u0100', 'core: status "200 \u0100" has U+0100 (outside ISO-8859-1) at index 4'],
  ];
  for (const [status, message] of table) {
    it(`[4.1] refuses ${JSON.stringify(status)}`, () => {
      const e = error(status, []);
      expect(e.code).toBe('ERR_CORE_BAD_STATUS');
      expect(e.message).toBe(message);
    });
  }

  it('[4.1] accepts a reason with HTAB, obs-text, or none at all', () => {
    expect(validateResponseHead('200 ', []).code).toBe(200);
    expect(validateResponseHead('200 O\tK', []).status).toBe('200 O\tK');
    expect(validateResponseHead('404 Caf\u00e9 introuvable', []).code).toBe(404);
    expect(validateResponseHead('599 Custom', []).code).toBe(599);
    expect(validateResponseHead('100 Continue', []).code).toBe(100);
  });
});

describe('headers [4.2][4.3]', () => {
  const table: Array<[unknown, string]> = [
    ['not an array', 'core: headers must be an array of [name, value] pairs'],
    [[['X']], 'core: header #0 must be a [name, value] pair of strings'],
    [[['X', 'a', 'b']], 'core: header #0 must be a [name, value] pair of strings'],
    [['X: y'], 'core: header #0 must be a [name, value] pair of strings'],
    [
      [
        ['A', 'ok'],
        ['X', 1],
      ],
      'core: header #1 must be a [name, value] pair of strings, got [string, number]',
    ],
    [
      [[null, 'v']],
      'core: header #0 must be a [name, value] pair of strings, got [object, string]',
    ],
    [[['', 'v']], 'core: header #0 has an empty name'],
    [[['X Y', 'v']], 'core: header name "X Y" has SP (0x20) at index 1; names must be HTTP tokens'],
    [
      [['X:Y', 'v']],
      'core: header name "X:Y" has ":" (0x3A) at index 1; names must be HTTP tokens',
    ],
    [
      [['X\r\nY', 'v']],
      'core: header name "X\\r\\nY" has CR (0x0D) at index 1; names must be HTTP tokens',
    ],
    [
      [['Caf\u00e9', 'v']],
      'core: header name "Caf\u00e9" has "\u00e9" (0xE9) at index 3; names must be HTTP tokens',
    ],
    [
      [['X\u0085', 'v']],
      'core: header name "X\u0085" has control character 0x85 at index 1; names must be HTTP tokens',
    ],
    [
      [['X\u20ac', 'v']],
      'core: header name "X\u20ac" has U+20AC (outside ISO-8859-1) at index 1; names must be HTTP tokens',
    ],
    [[['X-A', 'a\r\nSet-Cookie: x']], 'core: header X-A value has CR (0x0D) at index 1'],
    [[['X-A', 'ab\ncd']], 'core: header X-A value has LF (0x0A) at index 2'],
    [[['X-A', 'a\u0000']], 'core: header X-A value has NUL (0x00) at index 1'],
    [[['X-A', '\u001b[31m']], 'core: header X-A value has control character 0x1B at index 0'],
    [[['X-A', 'del\u007f']], 'core: header X-A value has DEL (0x7F) at index 3'],
    [[['X-A', 'euro \u20ac']], 'core: header X-A value has U+20AC (outside ISO-8859-1) at index 5'],
    [[['X-A', '\u{1f600}']], 'core: header X-A value has U+1F600 (outside ISO-8859-1) at index 0'],
  ];
  for (const [headers, message] of table) {
    it(`[4.2][4.3] refuses ${JSON.stringify(headers)}`, () => {
      const e = error('200 OK', headers);
      expect(e.code).toBe('ERR_CORE_BAD_HEADER');
      expect(e.message).toBe(message);
    });
  }

  it('[4.2][4.3] accepts token names, HTAB and obs-text values, empty values, repeats', () => {
    const headers: Array<[string, string]> = [
      ["X-!#$%&'*+.^_`|~09az", 'v'],
      ['X-Tab', 'a\tb'],
      ['X-Latin', 'caf\u00e9 \u00ff'],
      ['X-Empty', ''],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ];
    const head = validateResponseHead('200 OK', headers);
    expect(head).toEqual({ status: '200 OK', code: 200, headers, contentLength: undefined });
    // A copy: the app keeps its array (see the next test).
    expect(head.headers).not.toBe(headers);
  });

  it('[4.3] what the app changes in its headers after validation does not reach the head or the wire', () => {
    for (let round = 0; round < 3; round++) {
      // Rounds 2 and 3 are equal to round 1: the validation cache's path.
      const headers: Array<[string, string]> = [['Content-Type', 'text/plain']];
      const head = validateResponseHead('200 OK', headers);
      headers[0]![1] = 'x\r\nInjected: 1';
      headers.push(['X-Late', 'a\r\nb']);
      expect(head.headers).toEqual([['Content-Type', 'text/plain']]);
      expect(Buffer.from(serializeCgiHead(head)).toString('latin1')).toBe(
        'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n',
      );
    }
    // Heads equal to the last one share frozen pairs: a transport cannot change them either.
    const a = validateResponseHead('200 OK', [['Content-Type', 'text/plain']]);
    expect(Object.isFrozen(a.headers)).toBe(true);
    expect(Object.isFrozen(a.headers[0])).toBe(true);
    // And a list that differs by one value is checked again.
    expect(() => validateResponseHead('200 OK', [['Content-Type', 'text/plain\n']])).toThrow(/LF/);
  });
});

describe('hop-by-hop headers [4.5]', () => {
  it('[4.5] HOP_BY_HOP is exactly the eight RFC 9110 7.6.1 / PEP 3333 names', () => {
    expect([...HOP_BY_HOP].sort()).toEqual([
      'connection',
      'keep-alive',
      'proxy-authenticate',
      'proxy-authorization',
      'te',
      'trailer',
      'transfer-encoding',
      'upgrade',
    ]);
  });

  for (const name of [
    'Connection',
    'KEEP-ALIVE',
    'Transfer-Encoding',
    'upgrade',
    'TE',
    'Trailer',
    'Proxy-Authenticate',
    'Proxy-Authorization',
  ]) {
    it(`[4.5] refuses ${name}`, () => {
      const e = error('200 OK', [
        ['Content-Type', 'text/plain'],
        [name, 'x'],
      ]);
      expect(e.code).toBe('ERR_CORE_HOP_BY_HOP');
      expect(e.message).toBe(
        `core: header ${name} is hop-by-hop and belongs to the server, not the application`,
      );
    });
  }

  it('[4.5] look-alikes are fine', () => {
    for (const name of ['Connections', 'Proxy-Authentication-Info', 'X-Upgrade', 'Trailers']) {
      expect(validateResponseHead('200 OK', [[name, 'x']]).headers.length).toBe(1);
    }
  });
});

describe('Content-Length header [4.6]', () => {
  it('[4.6] Content-Length is parsed into the head, whatever the case of its name', () => {
    expect(validateResponseHead('200 OK', [['content-length', '0']]).contentLength).toBe(0);
    expect(validateResponseHead('200 OK', [['CONTENT-LENGTH', '0042']]).contentLength).toBe(42);
  });

  it('[4.6] a second Content-Length is refused, even with the same value', () => {
    const e = error('200 OK', [
      ['Content-Length', '5'],
      ['content-length', '5'],
    ]);
    expect(e.code).toBe('ERR_CORE_BAD_HEADER');
    expect(e.message).toBe('core: header Content-Length given twice');
  });

  for (const bad of ['abc', '-1', '1.0', ' 5', '5 ', '5, 5', '', '1234567890123456']) {
    it(`[4.6] refuses Content-Length ${JSON.stringify(bad)}`, () => {
      const e = error('200 OK', [['Content-Length', bad]]);
      expect(e.code).toBe('ERR_CORE_BAD_HEADER');
      expect(e.message).toBe(
        `core: header Content-Length ${JSON.stringify(bad)} is not a non-negative integer`,
      );
    });
  }
});

describe('helpers [4.3]', () => {
  it('[4.3] describeChar names characters the way the errors do', () => {
    expect(describeChar('\r', 0)).toBe('CR (0x0D)');
    expect(describeChar('a\tb', 1)).toBe('HTAB (0x09)');
    expect(describeChar(' ', 0)).toBe('SP (0x20)');
    expect(describeChar('\u0002', 0)).toBe('control character 0x02');
    expect(describeChar('"', 0)).toBe('"\\"" (0x22)');
    expect(describeChar('\u00a0', 0)).toBe('"\u00a0" (0xA0)');
    expect(describeChar('\u{10ffff}', 0)).toBe('U+10FFFF (outside ISO-8859-1)');
  });

  it('[4.3] getHeader returns the first value, case-insensitively', () => {
    const h: Array<[string, string]> = [
      ['Set-Cookie', 'a'],
      ['set-cookie', 'b'],
    ];
    expect(getHeader(h, 'SET-COOKIE')).toBe('a');
    expect(getHeader(h, 'X')).toBeUndefined();
  });
});
