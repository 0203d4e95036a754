// docs/SPEC.md rules 10.3 and 10.4: the one status table and the one CGI head serializer.
import { Buffer } from 'node:buffer';
import {
  isLocalRedirect,
  type ResponseHead,
  STATUS_REASONS,
  serializeCgiHead,
  serializeCgiResponse,
  statusLine,
  validateResponseHead,
} from '@tsgi/core';
import { request } from '@tsgi/core/testing';
import { describe, expect, it } from 'vitest';

const head = (status: string, headers: Array<[string, string]> = []): ResponseHead =>
  validateResponseHead(status, headers);

describe('serializeCgiResponse [10.4]', () => {
  it('[10.4] is serializeCgiHead followed by the body, in one Buffer: exact bytes', () => {
    // obs-text (0xE9) in a value and a body with bytes that are not text.
    const h = head('404 Not Found', [
      ['Content-Type', 'text/plain; charset=iso-8859-1'],
      ['X-Name', 'caf\u00e9'],
      ['Content-Length', '4'],
    ]);
    const body = new Uint8Array([0x00, 0xff, 0x0d, 0x0a]);
    const bytes = serializeCgiResponse(h, body);
    expect(bytes).toEqual(
      Buffer.concat([
        Buffer.from(
          'Status: 404 Not Found\r\n' +
            'Content-Type: text/plain; charset=iso-8859-1\r\n' +
            'X-Name: caf\xe9\r\n' +
            'Content-Length: 4\r\n' +
            '\r\n',
          'latin1',
        ),
        body,
      ]),
    );
    expect(bytes).toEqual(Buffer.concat([serializeCgiHead(h), body]));
    // No headers, empty body: the status line and the blank line only.
    expect(serializeCgiResponse(head('204 No Content'), new Uint8Array(0)).toString('latin1')).toBe(
      'Status: 204 No Content\r\n\r\n',
    );
  });
});

describe('serializeCgiHead [10.4]', () => {
  it('[10.4] Status line, headers in the app’s order, blank line: exact bytes', () => {
    const bytes = serializeCgiHead(
      head('200 OK', [
        ['Content-Type', 'text/html; charset=utf-8'],
        ['Set-Cookie', 'a=1; Path=/'],
        ['Set-Cookie', 'b=2'],
        ['x-lower', 'kept as given'],
        ['Content-Length', '0'],
      ]),
    );
    expect(bytes).toEqual(
      Buffer.from(
        'Status: 200 OK\r\n' +
          'Content-Type: text/html; charset=utf-8\r\n' +
          'Set-Cookie: a=1; Path=/\r\n' +
          'Set-Cookie: b=2\r\n' +
          'x-lower: kept as given\r\n' +
          'Content-Length: 0\r\n' +
          '\r\n',
        'latin1',
      ),
    );
  });

  it('[10.4][4.3] latin-1 header values become single bytes', () => {
    const bytes = serializeCgiHead(head('404 Introuvable \u00e9', [['X-Name', 'caf\u00e9']]));
    expect(bytes.toString('hex')).toBe(
      Buffer.from('Status: 404 Introuvable ', 'latin1').toString('hex') +
        'e9' +
        Buffer.from('\r\nX-Name: caf', 'latin1').toString('hex') +
        'e9' +
        '0d0a0d0a',
    );
  });

  it('[10.4] no headers at all', () => {
    expect(serializeCgiHead(head('204 No Content')).toString('latin1')).toBe(
      'Status: 204 No Content\r\n\r\n',
    );
  });

  it('[10.4] localRedirect writes nothing but the Location line (RFC 3875 6.2.2)', () => {
    const h = head('200 OK', [
      ['Content-Type', 'text/plain'],
      ['location', '/elsewhere?x=1'],
    ]);
    expect(serializeCgiHead(h, { localRedirect: true }).toString('latin1')).toBe(
      'Location: /elsewhere?x=1\r\n\r\n',
    );
    // without a Location it is an ordinary head
    expect(
      serializeCgiHead(head('200 OK', [['X', 'y']]), { localRedirect: true }).toString('latin1'),
    ).toBe('Status: 200 OK\r\nX: y\r\n\r\n');
  });

  it('[10.4] the in-memory transport emits exactly these bytes followed by the body', async () => {
    const res = await request((_e, sr) => {
      sr('302 Found', [['Location', 'http://example.com/']]);
      return ['moved'];
    });
    expect(res.raw.toString('latin1')).toBe(
      'Status: 302 Found\r\nLocation: http://example.com/\r\n\r\nmoved',
    );
  });
});

describe('isLocalRedirect [10.4]', () => {
  const table: Array<[string, Array<[string, string]>, number, boolean]> = [
    ['200 OK', [['Location', '/target']], 0, true],
    [
      '200 OK',
      [
        ['Location', '/target'],
        ['Content-Type', 'text/plain'],
        ['Content-Length', '0'],
      ],
      0,
      true,
    ],
    ['200 OK', [['Location', '/target']], 5, false],
    ['302 Found', [['Location', '/target']], 0, false],
    ['200 OK', [['Location', 'http://example.com/']], 0, false],
    ['200 OK', [['Location', '//example.com/x']], 0, false],
    ['200 OK', [['Location', 'relative']], 0, false],
    [
      '200 OK',
      [
        ['Location', '/a'],
        ['Set-Cookie', 'x=1'],
      ],
      0,
      false,
    ],
    [
      '200 OK',
      [
        ['Location', '/a'],
        ['location', '/b'],
      ],
      0,
      false,
    ],
    ['200 OK', [], 0, false],
  ];
  for (const [status, headers, bodyBytes, want] of table) {
    it(`[10.4] ${status} ${JSON.stringify(headers)} body ${bodyBytes} -> ${want}`, () => {
      expect(isLocalRedirect(head(status, headers), bodyBytes)).toBe(want);
    });
  }
});

describe('the status table [10.3]', () => {
  it('[10.3] STATUS_REASONS is frozen and has the RFC 9110 reasons', () => {
    expect(Object.isFrozen(STATUS_REASONS)).toBe(true);
    expect(STATUS_REASONS[200]).toBe('OK');
    expect(STATUS_REASONS[304]).toBe('Not Modified');
    expect(STATUS_REASONS[413]).toBe('Content Too Large');
    expect(STATUS_REASONS[422]).toBe('Unprocessable Content');
    expect(STATUS_REASONS[500]).toBe('Internal Server Error');
    for (const [code, reason] of Object.entries(STATUS_REASONS)) {
      expect(Number(code)).toBeGreaterThanOrEqual(100);
      expect(Number(code)).toBeLessThan(600);
      // every reason makes a valid status line
      expect(validateResponseHead(`${code} ${reason}`, []).code).toBe(Number(code));
    }
  });

  it('[10.3] statusLine builds the line, "Unknown" for codes it lacks', () => {
    expect(statusLine(200)).toBe('200 OK');
    expect(statusLine(404)).toBe('404 Not Found');
    expect(statusLine(299)).toBe('299 Unknown');
  });
});
