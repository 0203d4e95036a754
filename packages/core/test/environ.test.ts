// docs/SPEC.md rules 1.1-1.8 and 2.11: buildEnviron, the request header normalisation,
// tsgi.errors. Byte-exact expectations; fast-check for the latin-1 round trips.
import { Buffer } from 'node:buffer';
import { setFlagsFromString } from 'node:v8';
import {
  buildEnviron,
  type CgiParams,
  CgiVars,
  type ErrorSink,
  httpHeadersToCgi,
  Input,
  isTsgiError,
  type LogLevel,
  RequestSignal,
  requestToCgi,
  TsgiError,
} from '@tsgi/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const bytes = (...b: number[]) => Uint8Array.from(b);
const latin1 = (s: string) => Buffer.from(s, 'latin1');

function logger(): { sink: ErrorSink; log: Array<{ level: LogLevel; text: string }> } {
  const log: Array<{ level: LogLevel; text: string }> = [];
  return { sink: (text, level) => log.push({ level, text }), log };
}

function env(params: CgiParams, options: Parameters<typeof buildEnviron>[1] = {}) {
  return buildEnviron(params, { errors: () => {}, ...options });
}

function thrown(fn: () => unknown): TsgiError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TsgiError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const isUtf8 = (b: Uint8Array) => {
  try {
    utf8Fatal.decode(b);
    return true;
  } catch {
    return false;
  }
};

// Variable names buildEnviron passes through untouched (not the URI three, not the ones
// it interprets: CONTENT_LENGTH, HTTP_CONTENT_*, REQUEST_URI/RAW_URI).
const PLAIN_NAMES = [
  'HTTP_X_ANY',
  'HTTP_USER_AGENT',
  'HTTP_COOKIE',
  'REMOTE_USER',
  'SERVER_SOFTWARE',
  'DOCUMENT_ROOT',
  'SCRIPT_FILENAME',
  'CONTENT_TYPE',
  'AUTH_TYPE',
  'X_CUSTOM',
];

describe('buildEnviron: latin-1 values [1.1]', () => {
  it('[1.1] any byte string in any CGI variable comes back byte-exact via latin-1 (bytes in)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...PLAIN_NAMES),
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        (name, value) => {
          const e = env({ [name]: value });
          const v = e[name];
          expect(typeof v).toBe('string');
          expect(Buffer.from(v as string, 'latin1').equals(Buffer.from(value))).toBe(true);
          // one code point per byte
          expect((v as string).length).toBe(value.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('[1.1] the same bytes given as a latin-1 string give the identical environ value', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...PLAIN_NAMES),
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        (name, value) => {
          const fromBytes = env({ [name]: value })[name];
          const fromString = env({ [name]: Buffer.from(value).toString('latin1') })[name];
          expect(fromString).toBe(fromBytes);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('[1.1][1.2] SCRIPT_NAME, PATH_INFO, QUERY_STRING round-trip through tsgi.uri_encoding', () => {
    const seg = fc.uint8Array({ maxLength: 40 }).map((b) => b.filter((c) => c !== 0x2f));
    fc.assert(
      fc.property(seg, fc.uint8Array({ maxLength: 40 }), seg, (script, info, query) => {
        const scriptBytes = script.length === 0 ? script : Buffer.concat([latin1('/'), script]);
        const infoBytes = Buffer.concat([latin1('/'), info]);
        const e = env({
          SCRIPT_NAME: scriptBytes,
          PATH_INFO: infoBytes,
          QUERY_STRING: query,
          REQUEST_URI: '/raw',
        });
        const allUtf8 = isUtf8(scriptBytes) && isUtf8(infoBytes) && isUtf8(query);
        expect(e['tsgi.uri_encoding']).toBe(allUtf8 ? 'utf-8' : 'iso-8859-1');
        const enc = allUtf8 ? 'utf8' : 'latin1';
        expect(Buffer.from(e.SCRIPT_NAME, enc).equals(Buffer.from(scriptBytes))).toBe(true);
        expect(Buffer.from(e.PATH_INFO, enc).equals(Buffer.from(infoBytes))).toBe(true);
        expect(Buffer.from(e.QUERY_STRING, enc).equals(Buffer.from(query))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('[1.1] every call returns a fresh plain object with string CGI values', () => {
    const params = { REQUEST_METHOD: 'POST', HTTP_HOST: 'h' };
    const a = env(params);
    const b = env(params);
    expect(a).not.toBe(b);
    expect(Object.getPrototypeOf(a)).toBe(Object.prototype);
    a.HTTP_HOST = 'changed';
    expect(b.HTTP_HOST).toBe('h');
    for (const [k, v] of Object.entries(a)) {
      if (!k.startsWith('tsgi.')) expect(typeof v).toBe('string');
    }
  });

  it('[1.1] names that are not CGI names are ignored; HTTP_ names outside [A-Z0-9_] too', () => {
    const e = env([
      ['HTTP_X-DASH', 'a'],
      ['HTTP_lower', 'b'],
      ['BAD NAME', 'c'],
      ['__proto__', 'd'],
      ['9LEADING', 'e'],
      ['HTTP_OK_1', 'f'],
    ]);
    expect(Object.hasOwn(e, 'HTTP_X-DASH')).toBe(false);
    expect(Object.hasOwn(e, 'HTTP_lower')).toBe(false);
    expect(Object.hasOwn(e, 'BAD NAME')).toBe(false);
    expect(Object.hasOwn(e, '9LEADING')).toBe(false);
    expect(Object.getPrototypeOf(e)).toBe(Object.prototype);
    expect(e.HTTP_OK_1).toBe('f');
  });

  it("[1.1] names starting with tsgi. are the environ's own: one off the wire is dropped", () => {
    const warnings: string[] = [];
    const e = buildEnviron(
      [
        ['REQUEST_METHOD', 'GET'],
        ['tsgi.signal', 'spoof'],
        ['tsgi.version', 'spoof'],
        ['tsgi.custom', 'spoof'],
        ['TSGI.UPPER', 'kept'],
      ],
      { errors: (m) => warnings.push(m) },
    );
    expect(Object.hasOwn(e, 'tsgi.custom')).toBe(false);
    expect(e['tsgi.version']).toEqual([1, 1]);
    expect(e['tsgi.signal']).toBeInstanceOf(AbortSignal);
    expect(e['TSGI.UPPER']).toBe('kept');
    // Dropped, not reported as a repeat of the key buildEnviron sets.
    expect(warnings).toEqual([]);
  });

  it('[1.1] undefined values in a record are skipped, not stringified', () => {
    const e = env({ REMOTE_USER: undefined, HTTP_X: 'x' });
    expect(Object.hasOwn(e, 'REMOTE_USER')).toBe(false);
    expect(e.HTTP_X).toBe('x');
  });
});

describe('buildEnviron: uri_encoding [1.2]', () => {
  it('[1.2] valid UTF-8 in all three is decoded as UTF-8', () => {
    const e = env({
      SCRIPT_NAME: bytes(0x2f, 0xc3, 0xa9),
      PATH_INFO: bytes(0x2f, 0xe2, 0x82, 0xac),
      QUERY_STRING: bytes(0x71, 0x3d, 0xc3, 0xbc),
    });
    expect(e.SCRIPT_NAME).toBe('/\u00e9');
    expect(e.PATH_INFO).toBe('/\u20ac');
    expect(e.QUERY_STRING).toBe('q=\u00fc');
    expect(e['tsgi.uri_encoding']).toBe('utf-8');
  });

  it('[1.2] one invalid UTF-8 value makes all three ISO-8859-1', () => {
    const e = env({
      SCRIPT_NAME: bytes(0x2f, 0xc3, 0xa9),
      PATH_INFO: bytes(0x2f, 0x63, 0x61, 0x66, 0xe9),
      QUERY_STRING: bytes(0x71, 0x3d, 0xc3, 0xbc),
    });
    expect(e['tsgi.uri_encoding']).toBe('iso-8859-1');
    expect(e.SCRIPT_NAME).toBe('/\u00c3\u00a9');
    expect(e.PATH_INFO).toBe('/caf\u00e9');
    expect(e.QUERY_STRING).toBe('q=\u00c3\u00bc');
  });

  it('[1.2] other CGI variables stay latin-1 whatever the URI encoding', () => {
    const e = env({ PATH_INFO: bytes(0x2f, 0xc3, 0xa9), HTTP_X: bytes(0xc3, 0xa9) });
    expect(e['tsgi.uri_encoding']).toBe('utf-8');
    expect(e.PATH_INFO).toBe('/\u00e9');
    expect(e.HTTP_X).toBe('\u00c3\u00a9');
  });

  it('[1.2] a configured encoding is tried first and recorded by its canonical name', () => {
    // "/" + Shift_JIS for U+3042 (HIRAGANA A) = 0x82 0xA0
    const e = env({ PATH_INFO: bytes(0x2f, 0x82, 0xa0) }, { uriEncoding: 'shift_jis' });
    expect(e.PATH_INFO).toBe('/\u3042');
    expect(e['tsgi.uri_encoding']).toBe('shift_jis');
  });

  it('[1.2] the configured encoding falls back to ISO-8859-1 when it fails', () => {
    const e = env({ PATH_INFO: bytes(0x2f, 0x82) }, { uriEncoding: 'shift_jis' });
    expect(e.PATH_INFO).toBe('/\u0082');
    expect(e['tsgi.uri_encoding']).toBe('iso-8859-1');
  });

  it('[1.2] uriEncoding iso-8859-1 is byte-preserving (not WHATWG windows-1252)', () => {
    for (const label of ['iso-8859-1', 'latin1', 'ISO_8859-1', 'l1']) {
      const e = env({ PATH_INFO: bytes(0x2f, 0x80, 0x9f, 0xe9) }, { uriEncoding: label });
      expect(e.PATH_INFO).toBe('/\u0080\u009f\u00e9');
      expect(e['tsgi.uri_encoding']).toBe('iso-8859-1');
    }
  });

  it('[1.2] an unknown encoding label means ISO-8859-1', () => {
    const e = env({ PATH_INFO: bytes(0x2f, 0xc3, 0xa9) }, { uriEncoding: 'no-such-charset' });
    expect(e.PATH_INFO).toBe('/\u00c3\u00a9');
    expect(e['tsgi.uri_encoding']).toBe('iso-8859-1');
  });

  it('[1.2] a UTF-8 byte order mark is kept, not swallowed', () => {
    const e = env({ QUERY_STRING: bytes(0xef, 0xbb, 0xbf, 0x61) });
    expect(e.QUERY_STRING).toBe('\ufeffa');
  });
});

describe('buildEnviron: REQUEST_URI and RAW_URI [1.3]', () => {
  it('[1.3] REQUEST_URI is kept raw and RAW_URI copies it', () => {
    const e = env({
      REQUEST_URI: '/a/b%20c%2Fd//e?x=%41&y',
      PATH_INFO: '/a/b c/d/e',
      QUERY_STRING: 'x=%41&y',
    });
    expect(e.REQUEST_URI).toBe('/a/b%20c%2Fd//e?x=%41&y');
    expect(e.RAW_URI).toBe('/a/b%20c%2Fd//e?x=%41&y');
  });

  it('[1.3] a RAW_URI the server sent is kept', () => {
    const e = env({ REQUEST_URI: '/rewritten', RAW_URI: '/original%20x' });
    expect(e.REQUEST_URI).toBe('/rewritten');
    expect(e.RAW_URI).toBe('/original%20x');
  });

  it('[1.3] REQUEST_URI is rebuilt, percent-encoded, when the server did not send it', () => {
    const e = env({
      SCRIPT_NAME: '/app',
      PATH_INFO: Buffer.concat([latin1('/p q/'), bytes(0xc3, 0xa9), latin1('/%?#')]),
      QUERY_STRING: 'x=1&y=%41',
    });
    expect(e.REQUEST_URI).toBe('/app/p%20q/%C3%A9/%25%3F%23?x=1&y=%41');
    expect(e.RAW_URI).toBe(e.REQUEST_URI);
  });

  it('[1.3] a rebuilt REQUEST_URI has no "?" when the query is empty', () => {
    expect(env({ SCRIPT_NAME: '', PATH_INFO: '/x' }).REQUEST_URI).toBe('/x');
    expect(env({}).REQUEST_URI).toBe('');
  });

  it('[1.3] REQUEST_URI bytes outside ASCII survive as latin-1', () => {
    const e = env({ REQUEST_URI: bytes(0x2f, 0xe9, 0x3f, 0xff) });
    expect(latin1(e.REQUEST_URI).equals(Buffer.from([0x2f, 0xe9, 0x3f, 0xff]))).toBe(true);
  });
});

describe('buildEnviron: SCRIPT_NAME, PATH_INFO and mount [1.4]', () => {
  it('[1.4] SCRIPT_NAME is never "/": the slash moves to PATH_INFO', () => {
    const a = env({ SCRIPT_NAME: '/', PATH_INFO: '' });
    expect([a.SCRIPT_NAME, a.PATH_INFO]).toEqual(['', '/']);
    const b = env({ SCRIPT_NAME: '/app/', PATH_INFO: '' });
    expect([b.SCRIPT_NAME, b.PATH_INFO]).toEqual(['/app', '/']);
    const c = env({ SCRIPT_NAME: '/app//', PATH_INFO: '' });
    expect([c.SCRIPT_NAME, c.PATH_INFO]).toEqual(['/app', '//']);
  });

  it('[1.4] a correct split (Apache mod_cgi, lighttpd) is kept as sent', () => {
    const e = env({
      SCRIPT_NAME: '/app',
      PATH_INFO: '/extra/p q',
      REQUEST_URI: '/app/extra/p%20q',
    });
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(['/app', '/extra/p q']);
  });

  it('[1.4] mount re-splits an nginx-style whole path in SCRIPT_NAME', () => {
    const e = env(
      { SCRIPT_NAME: '/app/extra/p q', REQUEST_URI: '/app/extra/p%20q?x=1', QUERY_STRING: 'x=1' },
      { mount: '/app' },
    );
    expect([e.SCRIPT_NAME, e.PATH_INFO, e.QUERY_STRING]).toEqual(['/app', '/extra/p q', 'x=1']);
  });

  it('[1.4] mount re-splits a wrong split (Apache proxy_fcgi: all in SCRIPT_NAME, PATH_INFO empty)', () => {
    const e = env({ SCRIPT_NAME: '/app/a/b', PATH_INFO: '' }, { mount: '/app/' });
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(['/app', '/a/b']);
  });

  it('[1.4] SCGI-style neither: PATH_INFO from the REQUEST_URI path, %-decoded once', () => {
    const e = env({ REQUEST_URI: '/app/a%2Fb%20c/%2541?x=%41' }, { mount: '/app' });
    expect(e.SCRIPT_NAME).toBe('/app');
    expect(e.PATH_INFO).toBe('/a/b c/%41');
    expect(e.QUERY_STRING).toBe('x=%41');
    expect(e.REQUEST_URI).toBe('/app/a%2Fb%20c/%2541?x=%41');
  });

  it('[1.4] SCGI-style neither: DOCUMENT_URI (nginx, already decoded) wins over REQUEST_URI', () => {
    const e = env({ DOCUMENT_URI: '/app/doc x', REQUEST_URI: '/app/other' }, { mount: '/app' });
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(['/app', '/doc x']);
  });

  it('[1.4] neither and no mount: the whole decoded path is PATH_INFO', () => {
    const e = env({ REQUEST_URI: '/a%2541/%E9?q' });
    expect(e.SCRIPT_NAME).toBe('');
    expect(e.PATH_INFO).toBe('/a%41/\u00e9');
    expect(e['tsgi.uri_encoding']).toBe('iso-8859-1');
    expect(e.QUERY_STRING).toBe('q');
  });

  it('[1.4] an absolute-form REQUEST_URI loses scheme and authority in PATH_INFO', () => {
    const e = env({ REQUEST_URI: 'http://example.com:8080/x%20y?q=1' });
    expect(e.PATH_INFO).toBe('/x y');
    expect(e.QUERY_STRING).toBe('q=1');
    expect(env({ REQUEST_URI: 'http://example.com' }).PATH_INFO).toBe('/');
  });

  it('[1.4] the mount point itself gives PATH_INFO ""', () => {
    const e = env({ REQUEST_URI: '/app?x' }, { mount: '/app' });
    expect([e.SCRIPT_NAME, e.PATH_INFO, e.QUERY_STRING]).toEqual(['/app', '', 'x']);
  });

  it('[1.4] a path outside the mount (prefix of a longer segment) is not split', () => {
    const e = env({ REQUEST_URI: '/apple/x' }, { mount: '/app' });
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(['', '/apple/x']);
  });

  it('[1.4] mount "/" or "" means the root: SCRIPT_NAME ""', () => {
    for (const mount of ['/', '']) {
      const e = env({ SCRIPT_NAME: '/x', PATH_INFO: '/y' }, { mount });
      expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(['', '/x/y']);
    }
  });

  it('[1.4] mount matching is on bytes: a UTF-8 mount point', () => {
    const e = env({ SCRIPT_NAME: bytes(0x2f, 0xc3, 0xa9, 0x2f, 0x78) }, { mount: '/\u00c3\u00a9' });
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(['/\u00e9', '/x']);
    expect(e['tsgi.uri_encoding']).toBe('utf-8');
  });
});

describe('buildEnviron: duplicate names [1.5]', () => {
  it('[1.5] a repeated HTTP_* variable is removed entirely and a warning logged', () => {
    const { sink, log } = logger();
    const e = buildEnviron(
      [
        ['HTTP_X_FOO', '1'],
        ['HTTP_X_BAR', 'ok'],
        ['HTTP_X_FOO', '2'],
      ],
      { errors: sink },
    );
    expect(Object.hasOwn(e, 'HTTP_X_FOO')).toBe(false);
    expect(e.HTTP_X_BAR).toBe('ok');
    expect(log).toEqual([
      {
        level: 'warn',
        text: 'core: HTTP_X_FOO arrived more than once (a header sent both as X-FOO and with underscores?); dropped it',
      },
    ]);
  });

  it('[1.5] a third copy does not bring it back', () => {
    const e = env([
      ['HTTP_X', 'a'],
      ['HTTP_X', 'b'],
      ['HTTP_X', 'c'],
    ]);
    expect(Object.hasOwn(e, 'HTTP_X')).toBe(false);
  });

  it('[1.5] auto joins repeats behind nginx and Apache (SERVER_SOFTWARE), Cookie with "; "', () => {
    for (const software of ['nginx/1.22.1', 'Apache/2.4.71 (Debian)']) {
      const { sink, log } = logger();
      const e = buildEnviron(
        [
          ['SERVER_SOFTWARE', software],
          ['HTTP_FOO', 'bar'],
          ['HTTP_COOKIE', 'a=1'],
          ['HTTP_FOO', 'baz'],
          ['HTTP_COOKIE', 'b=2'],
          ['HTTP_FOO', 'qux'],
        ],
        { errors: sink },
      );
      expect(e.HTTP_FOO).toBe('bar, baz, qux');
      expect(e.HTTP_COOKIE).toBe('a=1; b=2');
      expect(log).toEqual([]);
    }
  });

  it('[1.5] auto drops repeats behind lighttpd and unknown servers', () => {
    for (const software of ['lighttpd/1.4.69', undefined]) {
      const pairs: Array<[string, string]> = [
        ['HTTP_X_FOO', 'a, c'],
        ['HTTP_X_FOO', 'evil'],
      ];
      if (software) pairs.unshift(['SERVER_SOFTWARE', software]);
      expect(Object.hasOwn(env(pairs), 'HTTP_X_FOO')).toBe(false);
    }
  });

  it('[1.5] duplicateHeaders join and drop override auto', () => {
    const pairs: Array<[string, string]> = [
      ['SERVER_SOFTWARE', 'lighttpd/1.4.69'],
      ['HTTP_FOO', '1'],
      ['HTTP_FOO', '2'],
    ];
    expect(buildEnviron(pairs, { duplicateHeaders: 'join' }).HTTP_FOO).toBe('1, 2');
    const nginx: Array<[string, string]> = [
      ['SERVER_SOFTWARE', 'nginx/1.22.1'],
      ['HTTP_FOO', '1'],
      ['HTTP_FOO', '2'],
    ];
    const { sink } = logger();
    expect(
      Object.hasOwn(buildEnviron(nginx, { duplicateHeaders: 'drop', errors: sink }), 'HTTP_FOO'),
    ).toBe(false);
  });

  it('[1.5] a repeated CONTENT_LENGTH or CONTENT_TYPE is a 400', () => {
    for (const name of ['CONTENT_LENGTH', 'CONTENT_TYPE']) {
      const err = thrown(() =>
        env([
          [name, '5'],
          [name, '5'],
        ]),
      );
      expect(err.code).toBe('ERR_CORE_DUPLICATE_VARIABLE');
      expect(err.status).toBe(400);
      expect(err.message).toBe(`core: ${name} given twice`);
    }
  });

  it('[1.5] any other repeat keeps the first value, with a warning', () => {
    const { sink, log } = logger();
    const e = buildEnviron(
      [
        ['SERVER_NAME', 'first'],
        ['SERVER_NAME', 'second'],
      ],
      { errors: sink },
    );
    expect(e.SERVER_NAME).toBe('first');
    expect(log).toEqual([
      {
        level: 'warn',
        text: 'core: CGI variable SERVER_NAME given twice; the first value is kept',
      },
    ]);
  });

  it('[1.5] a Map or a generator of pairs is read in order like an array', () => {
    function* pairs(): Generator<[string, string]> {
      yield ['PATH_INFO', '/one'];
      yield ['PATH_INFO', '/two'];
    }
    expect(env(pairs()).PATH_INFO).toBe('/one');
    expect(env(new Map([['PATH_INFO', '/m']])).PATH_INFO).toBe('/m');
  });
});

describe('buildEnviron: CONTENT_LENGTH and CONTENT_TYPE [1.6]', () => {
  it('[1.6] CONTENT_LENGTH "" (nginx GET) and CONTENT_TYPE "" are absent', async () => {
    const e = env({ CONTENT_LENGTH: '', CONTENT_TYPE: '' });
    expect(Object.hasOwn(e, 'CONTENT_LENGTH')).toBe(false);
    expect(Object.hasOwn(e, 'CONTENT_TYPE')).toBe(false);
    expect((e['tsgi.input'] as Input).contentLength).toBeUndefined();
    expect((await e['tsgi.input'].read()).length).toBe(0);
  });

  it('[1.6] a valid CONTENT_LENGTH bounds tsgi.input', () => {
    const e = env({ CONTENT_LENGTH: '0042' });
    expect(e.CONTENT_LENGTH).toBe('0042');
    expect((e['tsgi.input'] as Input).contentLength).toBe(42);
  });

  it('[1.6] an invalid CONTENT_LENGTH is a 400 naming the value', () => {
    for (const bad of ['abc', '-1', '1.5', ' 5', '5 ', '0x10', '1e3', '+5', '1234567890123456']) {
      const err = thrown(() => env({ CONTENT_LENGTH: bad }));
      expect(err.code).toBe('ERR_CORE_BAD_CONTENT_LENGTH');
      expect(err.status).toBe(400);
      expect(err.message).toBe(
        `core: CONTENT_LENGTH ${JSON.stringify(bad)} is not a non-negative integer`,
      );
    }
  });

  it('[1.6] a CONTENT_LENGTH over maxBodyBytes is a 413 before anything is read', () => {
    let pulls = 0;
    const input = {
      pull: async () => {
        pulls++;
        return null;
      },
    };
    const err = thrown(() => env({ CONTENT_LENGTH: '1001' }, { maxBodyBytes: 1000, input }));
    expect(err.code).toBe('ERR_CORE_BODY_TOO_LARGE');
    expect(err.status).toBe(413);
    expect(err.message).toBe(
      'core: CONTENT_LENGTH 1001 exceeds the limit of 1000 bytes (maxBodyBytes)',
    );
    expect(pulls).toBe(0);
    expect(isTsgiError(err, 'ERR_CORE_BODY_TOO_LARGE')).toBe(true);
    expect(env({ CONTENT_LENGTH: '1000' }, { maxBodyBytes: 1000 }).CONTENT_LENGTH).toBe('1000');
  });

  it('[1.6] HTTP_CONTENT_LENGTH and HTTP_CONTENT_TYPE never reach the app', () => {
    const e = env({
      CONTENT_LENGTH: '3',
      CONTENT_TYPE: 'text/plain',
      HTTP_CONTENT_LENGTH: '3',
      HTTP_CONTENT_TYPE: 'text/plain',
    });
    expect(Object.hasOwn(e, 'HTTP_CONTENT_LENGTH')).toBe(false);
    expect(Object.hasOwn(e, 'HTTP_CONTENT_TYPE')).toBe(false);
    expect(e.CONTENT_LENGTH).toBe('3');
    expect(e.CONTENT_TYPE).toBe('text/plain');
  });

  it('[1.6] a CONTENT_LENGTH that disagrees with HTTP_CONTENT_LENGTH is trusted, with a warning', () => {
    const { sink, log } = logger();
    const e = buildEnviron({ CONTENT_LENGTH: '0', HTTP_CONTENT_LENGTH: '500' }, { errors: sink });
    expect(e.CONTENT_LENGTH).toBe('0');
    expect(log).toEqual([
      {
        level: 'warn',
        text: 'core: CONTENT_LENGTH 0 disagrees with the Content-Length header 500; trusting CONTENT_LENGTH (nginx scgi_request_buffering off bug?)',
      },
    ]);
  });

  it('[1.6] HTTP_CONTENT_LENGTH alone (chunked, streamed) is dropped silently and reads go to the end', () => {
    const { sink, log } = logger();
    const e = buildEnviron({ CONTENT_LENGTH: '', HTTP_CONTENT_LENGTH: '7' }, { errors: sink });
    expect(Object.hasOwn(e, 'CONTENT_LENGTH')).toBe(false);
    expect(Object.hasOwn(e, 'HTTP_CONTENT_LENGTH')).toBe(false);
    expect(log).toEqual([]);
  });
});

describe('buildEnviron: tsgi.* keys and defaults [1.7]', () => {
  it('[1.7] every tsgi.* key is present with its type and default', () => {
    const e = env({});
    expect(e['tsgi.version']).toEqual([1, 1]);
    expect(Object.isFrozen(e['tsgi.version'])).toBe(true);
    expect(e['tsgi.url_scheme']).toBe('http');
    expect(e['tsgi.input']).toBeInstanceOf(Input);
    expect(typeof e['tsgi.errors'].write).toBe('function');
    expect(typeof e['tsgi.errors'].flush).toBe('function');
    expect(e['tsgi.multithread']).toBe(false);
    expect(e['tsgi.multiprocess']).toBe(false);
    expect(e['tsgi.run_once']).toBe(false);
    expect(e['tsgi.input_terminated']).toBe(true);
    expect(e['tsgi.uri_encoding']).toBe('utf-8');
    expect(typeof e['tsgi.file_wrapper']).toBe('function');
    expect(e['tsgi.signal']).toBeInstanceOf(AbortSignal);
    expect(e['tsgi.signal'].aborted).toBe(false);
  });

  it('[1.7] the CGI defaults: GET, HTTP/1.0, SERVER_NAME and SERVER_PORT from Host', () => {
    const e = env({});
    expect([e.REQUEST_METHOD, e.SERVER_PROTOCOL, e.SERVER_NAME, e.SERVER_PORT]).toEqual([
      'GET',
      'HTTP/1.0',
      'localhost',
      '80',
    ]);
    expect([e.SCRIPT_NAME, e.PATH_INFO, e.QUERY_STRING]).toEqual(['', '', '']);
    const h = env({ HTTP_HOST: 'example.com:8080' });
    expect([h.SERVER_NAME, h.SERVER_PORT]).toEqual(['example.com', '8080']);
    const v6 = env({ HTTP_HOST: '[::1]:81' });
    expect([v6.SERVER_NAME, v6.SERVER_PORT]).toEqual(['[::1]', '81']);
    const given = env({ HTTP_HOST: 'a:1', SERVER_NAME: 'b', SERVER_PORT: '2' });
    expect([given.SERVER_NAME, given.SERVER_PORT]).toEqual(['b', '2']);
    const noPort = env({ SERVER_NAME: 'b' });
    expect(noPort.SERVER_PORT).toBe('80');
  });

  it('[1.7] tsgi.url_scheme from HTTPS, REQUEST_SCHEME or the option', () => {
    expect(env({ HTTPS: 'on' })['tsgi.url_scheme']).toBe('https');
    expect(env({ HTTPS: 'ON' })['tsgi.url_scheme']).toBe('https');
    expect(env({ HTTPS: '1' })['tsgi.url_scheme']).toBe('https');
    expect(env({ HTTPS: 'yes' })['tsgi.url_scheme']).toBe('https');
    expect(env({ HTTPS: 'off' })['tsgi.url_scheme']).toBe('http');
    expect(env({ REQUEST_SCHEME: 'https' })['tsgi.url_scheme']).toBe('https');
    expect(env({ HTTPS: 'on' }, { urlScheme: 'http' })['tsgi.url_scheme']).toBe('http');
  });

  it('[1.7] options: multithread, multiprocess, run_once, signal, extra keys', () => {
    const ac = new AbortController();
    const e = env(
      {},
      {
        multithread: true,
        multiprocess: true,
        runOnce: true,
        signal: ac.signal,
        extra: { 'tsgi.data': 'x' },
      },
    );
    expect([e['tsgi.multithread'], e['tsgi.multiprocess'], e['tsgi.run_once']]).toEqual([
      true,
      true,
      true,
    ]);
    expect(e['tsgi.signal']).toBe(ac.signal);
    expect(e['tsgi.data']).toBe('x');
  });

  it('[1.7] tsgi.input reads the adapter source', async () => {
    const chunks = [latin1('ab'), latin1('c')];
    const e = env({ CONTENT_LENGTH: '3' }, { input: { pull: async () => chunks.shift() ?? null } });
    expect(latin1('abc').equals(Buffer.from(await e['tsgi.input'].read()))).toBe(true);
  });
});

describe('request header normalisation [1.8]', () => {
  it('[1.8] names map to HTTP_*; Content-Type and Content-Length to CONTENT_*', () => {
    const { vars, dropped } = httpHeadersToCgi([
      ['Host', 'h'],
      ['X-Foo-Bar', '1'],
      ['content-type', 'text/plain'],
      ['Content-Length', '3'],
      ['user-agent', 'ua'],
    ]);
    expect(vars).toEqual({
      HTTP_HOST: 'h',
      HTTP_X_FOO_BAR: '1',
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '3',
      HTTP_USER_AGENT: 'ua',
    });
    expect(dropped).toEqual([]);
  });

  it('[1.8] repeated headers are joined with ", ", Cookie with "; ", names case-insensitive', () => {
    const { vars } = httpHeadersToCgi([
      'Foo',
      'bar',
      'Cookie',
      'a=1',
      'FOO',
      'baz',
      'cookie',
      'b=2',
    ]);
    expect(vars).toEqual({ HTTP_FOO: 'bar, baz', HTTP_COOKIE: 'a=1; b=2' });
  });

  it('[1.8] names with "_" or other non-token characters, and Proxy, are dropped and listed', () => {
    const { vars, dropped } = httpHeadersToCgi([
      ['X_Auth_User', 'spoof'],
      ['X-Auth-User', 'real'],
      ['Proxy', 'http://evil'],
      ['X.Dot', '1'],
      ['X Space', '2'],
    ]);
    expect(vars).toEqual({ HTTP_X_AUTH_USER: 'real' });
    expect(dropped).toEqual(['X_Auth_User', 'Proxy', 'X.Dot', 'X Space']);
  });

  it('[1.8] header values keep their bytes as latin-1 (0xE9 stays U+00E9)', () => {
    const { vars } = httpHeadersToCgi([['X-Latin', 'caf\u00e9']]);
    expect(latin1(vars.HTTP_X_LATIN!).equals(Buffer.from([0x63, 0x61, 0x66, 0xe9]))).toBe(true);
    expect(env(vars).HTTP_X_LATIN).toBe('caf\u00e9');
  });

  it('[1.8][1.3] requestToCgi: a fragment stays in REQUEST_URI but not in PATH_INFO or QUERY_STRING', () => {
    const a = requestToCgi({ method: 'GET', target: '/p%20q?x=1#frag' }, []).vars;
    expect([a.REQUEST_URI, a.PATH_INFO, a.QUERY_STRING]).toEqual([
      '/p%20q?x=1#frag',
      '/p q',
      'x=1',
    ]);
    const b = requestToCgi({ method: 'GET', target: '/p#f?notquery' }, []).vars;
    expect([b.PATH_INFO, b.QUERY_STRING]).toEqual(['/p', '']);
  });

  it('[1.8][1.3][1.4] requestToCgi: raw REQUEST_URI, PATH_INFO decoded once, mount split', () => {
    const { vars } = requestToCgi(
      {
        method: 'POST',
        target: '/app/a%2541/b%20c?x=%41',
        mount: '/app/',
        remoteAddr: '10.0.0.1',
        remotePort: 5555,
      },
      [
        ['Host', 'example.org:8443'],
        ['Content-Length', '0'],
      ],
    );
    expect(vars).toEqual({
      HTTP_HOST: 'example.org:8443',
      CONTENT_LENGTH: '0',
      REQUEST_METHOD: 'POST',
      REQUEST_URI: '/app/a%2541/b%20c?x=%41',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/a%41/b c',
      QUERY_STRING: 'x=%41',
      SERVER_PROTOCOL: 'HTTP/1.1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_NAME: 'example.org',
      SERVER_PORT: '8443',
      REMOTE_ADDR: '10.0.0.1',
      REMOTE_PORT: '5555',
      REQUEST_SCHEME: 'http',
    });
  });

  it('[1.8] requestToCgi: https, absolute-form target, path outside the mount', () => {
    const { vars } = requestToCgi(
      { method: 'GET', target: 'https://x.test/other/%E9', mount: '/app', https: true },
      [],
    );
    expect(vars.HTTPS).toBe('on');
    expect(vars.REQUEST_SCHEME).toBe('https');
    expect(vars.SERVER_NAME).toBe('localhost');
    expect(vars.SERVER_PORT).toBe('443');
    expect(vars.REQUEST_URI).toBe('https://x.test/other/%E9');
    expect(vars.SCRIPT_NAME).toBe('');
    expect(vars.PATH_INFO).toBe('/other/\u00e9');
    const e = env(vars);
    expect(e.PATH_INFO).toBe('/other/\u00e9');
    expect(e['tsgi.uri_encoding']).toBe('iso-8859-1');
  });
});

describe('tsgi.errors [2.11]', () => {
  it('[2.11] text is passed on line by line at level error; flush() sends a partial line', () => {
    const { sink, log } = logger();
    const e = buildEnviron({}, { errors: sink });
    const errors = e['tsgi.errors'];
    errors.write('par');
    expect(log).toEqual([]);
    errors.write('tial\nnext');
    expect(log).toEqual([{ level: 'error', text: 'partial\n' }]);
    errors.write(' line\nand\nmore');
    expect(log).toEqual([
      { level: 'error', text: 'partial\n' },
      { level: 'error', text: 'next line\nand\n' },
    ]);
    errors.flush();
    errors.flush();
    expect(log[2]).toEqual({ level: 'error', text: 'more' });
    expect(log.length).toBe(3);
  });
});

describe('CgiVars: variables added one at a time [1.5] [1.6]', () => {
  const strings = (e: Record<string, unknown>) =>
    Object.entries(e).filter(([k, v]) => typeof v === 'string' || k === 'tsgi.uri_encoding');

  it('[1.5] [1.6] gives the environ, warnings included, that the same pairs give', () => {
    const pairs: Array<[string, string]> = [
      ['CONTENT_LENGTH', '5'],
      ['CONTENT_TYPE', ''],
      ['REQUEST_METHOD', 'POST'],
      ['REQUEST_URI', '/caf\u00e9?a=1'],
      ['SERVER_SOFTWARE', 'nginx/1.22.1'],
      ['HTTP_CONTENT_LENGTH', '6'],
      ['HTTP_CONTENT_TYPE', 'text/plain'],
      ['HTTP_COOKIE', 'a=1'],
      ['HTTP_COOKIE', 'b=2'],
      ['HTTP_X-BAD', 'dropped'],
      ['1BAD', 'dropped'],
      ['REMOTE_ADDR', '192.0.2.1'],
      ['REMOTE_ADDR', '192.0.2.2'],
    ];
    const a = logger();
    const fromPairs = buildEnviron(pairs, { errors: a.sink });
    const b = logger();
    const vars = new CgiVars();
    for (const [k, v] of pairs) vars.add(k, v);
    const fromVars = buildEnviron(vars, { errors: b.sink });
    expect(strings(fromVars)).toEqual(strings(fromPairs));
    expect(fromVars.HTTP_COOKIE).toBe('a=1; b=2');
    expect(fromVars.REMOTE_ADDR).toBe('192.0.2.1');
    expect(Object.hasOwn(fromVars, 'CONTENT_TYPE')).toBe(false);
    expect(b.log).toEqual(a.log);
    expect(b.log.map((l) => l.text)).toEqual([
      'core: CGI variable REMOTE_ADDR given twice; the first value is kept',
      'core: CONTENT_LENGTH 5 disagrees with the Content-Length header 6; trusting CONTENT_LENGTH (nginx scgi_request_buffering off bug?)',
    ]);
  });

  it('[1.6] add refuses a second CONTENT_TYPE at once (400); a CgiVars serves one buildEnviron', () => {
    const vars = new CgiVars();
    vars.add('CONTENT_TYPE', 'text/plain');
    const e = thrown(() => vars.add('CONTENT_TYPE', 'text/html'));
    expect(e.code).toBe('ERR_CORE_DUPLICATE_VARIABLE');
    expect(e.status).toBe(400);
    const ok = new CgiVars();
    ok.add('REQUEST_METHOD', 'GET');
    expect(env(ok).REQUEST_METHOD).toBe('GET');
    expect(thrown(() => env(ok)).code).toBe('ERR_CORE_VARS_TAKEN');
    expect(thrown(() => ok.add('A', 'b')).code).toBe('ERR_CORE_VARS_TAKEN');
  });

  it('makes a plain object: Object.prototype, constructor Object', () => {
    const e = env([['REQUEST_METHOD', 'GET']]);
    expect(Object.getPrototypeOf(e)).toBe(Object.prototype);
    expect(e.constructor).toBe(Object);
  });

  it('keeps a CgiVars environ of 68 keys a fast-mode object (V8: no dictionary mode)', () => {
    // Each wire variable is stored by a computed key; past V8's limit for such stores an
    // object turns into a dictionary on every request (lighttpd's 19 variables did).
    setFlagsFromString('--allow-natives-syntax');
    const isFast = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;
    const signal = new RequestSignal();
    for (const headers of [0, 4, 12, 36]) {
      const vars = new CgiVars();
      for (const [k, v] of LIGHTTPD_GET) vars.add(k, v);
      for (let i = 0; i < headers; i++) vars.add(`HTTP_X_HEADER_${i}`, 'v');
      const e = buildEnviron(vars, { signal });
      expect(Object.keys(e).length).toBe(32 + headers);
      expect(isFast(e)).toBe(true);
    }
    // The check itself can tell: an object with a deleted middle property is a dictionary.
    const slow: Record<string, number> = { a: 1, b: 2, c: 3 };
    delete slow.b;
    expect(isFast(slow)).toBe(false);
  });
});

/** What lighttpd 1.4.69's mod_scgi sends for `GET /app/hello` from curl (19 variables). */
const LIGHTTPD_GET: Array<[string, string]> = [
  ['CONTENT_LENGTH', '0'],
  ['QUERY_STRING', ''],
  ['REQUEST_URI', '/app/hello'],
  ['REDIRECT_STATUS', '200'],
  ['SCRIPT_NAME', '/app/hello'],
  ['SCRIPT_FILENAME', '/srv/htdocs/app/hello'],
  ['DOCUMENT_ROOT', '/srv/htdocs'],
  ['REQUEST_METHOD', 'GET'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['SERVER_SOFTWARE', 'lighttpd/1.4.69'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['REQUEST_SCHEME', 'http'],
  ['SERVER_PORT', '8080'],
  ['SERVER_ADDR', '127.0.0.1'],
  ['SERVER_NAME', '127.0.0.1'],
  ['REMOTE_ADDR', '127.0.0.1'],
  ['REMOTE_PORT', '58876'],
  ['HTTP_HOST', '127.0.0.1:8080'],
  ['SCGI', '1'],
];
