// docs/SPEC.md rules 11.1-11.7: the validator finds each violation, on the gateway's side
// (the environ) and on the application's.
import { Buffer } from 'node:buffer';
import {
  type Application,
  buildEnviron,
  checkEnviron,
  declareNeedsBody,
  type Environ,
  type LogLevel,
  needsBody,
  type StartResponse,
  ValidationError,
  validator,
} from '@tsgi/core';
import { request } from '@tsgi/core/testing';
import { describe, expect, it } from 'vitest';

const tick = () => new Promise((r) => setImmediate(r));

function goodEnviron(params: Record<string, string> = {}): Environ {
  return buildEnviron({ REQUEST_URI: '/x', ...params }, { errors: () => {} });
}

function violation(mutate: (e: Record<string, unknown>) => void): string {
  const e = goodEnviron() as unknown as Record<string, unknown>;
  mutate(e);
  try {
    checkEnviron(e as unknown as Environ);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe('ERR_VALIDATOR');
    return (err as Error).message;
  }
  return 'no violation';
}

describe('environ checks [11.1]', () => {
  it('[11.1] a buildEnviron environ passes', () => {
    expect(() => checkEnviron(goodEnviron())).not.toThrow();
    expect(() =>
      checkEnviron(goodEnviron({ PATH_INFO: '/caf\u00e9', HTTP_X: '\u00ff' })),
    ).not.toThrow();
  });

  const table: Array<[string, (e: Record<string, unknown>) => void, string]> = [
    [
      'not a plain object',
      (e) => Object.setPrototypeOf(e, { inherited: true }),
      'validator: environ must be a plain object',
    ],
    [
      'REQUEST_METHOD missing',
      (e) => delete e.REQUEST_METHOD,
      'validator: environ[REQUEST_METHOD] must be a string',
    ],
    [
      'RAW_URI not a string',
      (e) => (e.RAW_URI = 5),
      'validator: environ[RAW_URI] must be a string',
    ],
    ['tsgi.signal missing', (e) => delete e['tsgi.signal'], 'validator: environ lacks tsgi.signal'],
    [
      'tsgi.version (1, 0)',
      (e) => (e['tsgi.version'] = [1, 0]),
      'validator: tsgi.version must be [1, 1]',
    ],
    [
      'tsgi.url_scheme ftp',
      (e) => (e['tsgi.url_scheme'] = 'ftp'),
      'validator: tsgi.url_scheme must be "http" or "https"',
    ],
    [
      'tsgi.input_terminated false',
      (e) => (e['tsgi.input_terminated'] = false),
      'validator: tsgi.input_terminated must be true',
    ],
    [
      'tsgi.signal not a signal',
      (e) => (e['tsgi.signal'] = {}),
      'validator: tsgi.signal must be an AbortSignal',
    ],
    [
      'tsgi.file_wrapper not a function',
      (e) => (e['tsgi.file_wrapper'] = null),
      'validator: tsgi.file_wrapper must be a function',
    ],
    [
      'tsgi.input without readline',
      (e) => (e['tsgi.input'] = { read() {}, readlines() {} }),
      'validator: tsgi.input.readline must be a function',
    ],
    [
      'tsgi.errors without flush',
      (e) => (e['tsgi.errors'] = { write() {} }),
      'validator: tsgi.errors must have write() and flush()',
    ],
    [
      'a CGI variable that is not a string',
      (e) => (e.HTTP_X = 1),
      'validator: environ[HTTP_X] must be a string, got number',
    ],
    [
      'a CGI variable outside latin-1',
      (e) => (e.HTTP_X = '\u20ac'),
      'validator: environ[HTTP_X] has a character outside ISO-8859-1',
    ],
    [
      'PATH_INFO outside latin-1 under iso-8859-1',
      (e) => {
        e['tsgi.uri_encoding'] = 'iso-8859-1';
        e.PATH_INFO = '/\u20ac';
      },
      'validator: environ[PATH_INFO] is not ISO-8859-1 but tsgi.uri_encoding says so',
    ],
    [
      'SCRIPT_NAME "/"',
      (e) => (e.SCRIPT_NAME = '/'),
      'validator: SCRIPT_NAME must not be "/" (use "" and put "/" in PATH_INFO)',
    ],
    [
      'SCRIPT_NAME without a leading slash',
      (e) => (e.SCRIPT_NAME = 'app'),
      'validator: SCRIPT_NAME "app" must be empty or start with "/"',
    ],
    [
      'PATH_INFO without a leading slash',
      (e) => (e.PATH_INFO = 'x'),
      'validator: PATH_INFO "x" must be empty or start with "/"',
    ],
    [
      'CONTENT_LENGTH not digits',
      (e) => (e.CONTENT_LENGTH = '-1'),
      'validator: CONTENT_LENGTH must be digits when present',
    ],
    [
      'CONTENT_LENGTH empty',
      (e) => (e.CONTENT_LENGTH = ''),
      'validator: CONTENT_LENGTH must be digits when present',
    ],
    [
      'HTTP_CONTENT_TYPE present',
      (e) => (e.HTTP_CONTENT_TYPE = 'text/plain'),
      'validator: HTTP_CONTENT_TYPE must not be present (use CONTENT_TYPE)',
    ],
    [
      'HTTP_CONTENT_LENGTH present',
      (e) => (e.HTTP_CONTENT_LENGTH = '5'),
      'validator: HTTP_CONTENT_LENGTH must not be present (use CONTENT_LENGTH)',
    ],
  ];
  for (const [what, mutate, message] of table) {
    it(`[11.1] ${what}`, () => {
      expect(violation(mutate)).toBe(message);
    });
  }

  it('[11.1] through validator(app): an environ violation is a 500 before the app runs', async () => {
    let ran = false;
    const res = await request(
      validator((_e, sr) => {
        ran = true;
        sr('200 OK', []);
        return [];
      }),
      { vars: { CONTENT_LENGTH: '' } },
    );
    // CONTENT_LENGTH "" is removed by buildEnviron, so this one is fine ...
    expect(res.status).toBe(200);
    expect(ran).toBe(true);
    ran = false;
    const bad = await request(
      validator((e, sr) => {
        ran = true;
        sr('200 OK', []);
        return [e.SCRIPT_NAME];
      }),
      { vars: { SCRIPT_NAME: 'relative' } },
    );
    expect(bad.status).toBe(500);
    expect(ran).toBe(false);
    expect(bad.log[0]!.text).toBe(
      'core: GET /: validator: SCRIPT_NAME "relative" must be empty or start with "/"',
    );
  });
});

/** Runs `app` under the validator and returns the 500's log line (or 'ok'). */
async function appViolation(app: Application, req = {}): Promise<string> {
  const res = await request(validator(app), req);
  const errors = res.log.filter((l) => l.level === 'error');
  if (res.status !== 500 || errors.length === 0) return 'ok';
  return errors[0]!.text.replace(/^core: \w+ \S*: /, '');
}

describe('status and header checks [11.2]', () => {
  const sr = (status: unknown, headers: unknown): Application => {
    return (_e, start) => {
      start(status as string, headers as Array<[string, string]>);
      return [];
    };
  };
  const table: Array<[string, Application, string]> = [
    ['status not a string', sr(200, []), 'validator: status must be a string'],
    ['status without reason', sr('200', []), 'validator: status "200" must be "<code> <reason>"'],
    ['headers not an array', sr('200 OK', {}), 'validator: headers must be an array'],
    [
      'a header that is not a pair',
      sr('200 OK', [['X']]),
      'validator: each header must be a [name, value] pair',
    ],
    [
      'a header value that is a number',
      sr('200 OK', [['X', 1]]),
      'validator: header X must be [string, string]',
    ],
    [
      'a Status header',
      sr('200 OK', [['Status', '404 Not Found']]),
      'validator: a header may not be named Status (CGI uses it for the status line)',
    ],
    [
      'Content-Type on 304',
      sr('304 Not Modified', [['Content-Type', 'text/html']]),
      'validator: no Content-Type on a 304 response',
    ],
    [
      'Content-Type on 204',
      sr('204 No Content', [['content-type', 'text/html']]),
      'validator: no Content-Type on a 204 response',
    ],
    [
      'Content-Type on 1xx',
      sr('103 Early Hints', [['Content-Type', 'x/y']]),
      'validator: no Content-Type on a 103 response',
    ],
  ];
  for (const [what, app, message] of table) {
    it(`[11.2] ${what}`, async () => {
      expect(await appViolation(app)).toBe(message);
    });
  }

  it('[11.2] the response-object style is checked the same way', async () => {
    expect(
      await appViolation(() => ({ status: 304, headers: [['Content-Type', 'text/plain']] })),
    ).toBe('validator: no Content-Type on a 304 response');
    expect(await appViolation(() => ({ status: 'OK' }))).toBe(
      'validator: status "OK" must be "<code> <reason>"',
    );
    expect(await appViolation(() => ({ status: 304, headers: [['ETag', '"x"']] }))).toBe('ok');
  });
});

describe('body checks [11.3]', () => {
  it('[11.3] a body that yields before startResponse', async () => {
    expect(
      await appViolation(() =>
        (function* () {
          yield 'too early';
        })(),
      ),
    ).toBe('validator: the body yielded a chunk before startResponse was called');
  });

  it('[11.3] a chunk that is not a string or bytes (sync and async bodies)', async () => {
    expect(
      await appViolation((_e, sr) => {
        sr('200 OK', []);
        return [1 as unknown as string];
      }),
    ).toBe('validator: body chunks must be strings or Uint8Arrays, got number');
    expect(
      await appViolation((_e, sr) => {
        sr('200 OK', []);
        return (async function* () {
          yield {} as unknown as string;
        })();
      }),
    ).toBe('validator: body chunks must be strings or Uint8Arrays, got object');
  });

  it('[11.3] write() with something that is not a chunk', async () => {
    expect(
      await appViolation(async (_e, sr) => {
        await sr('200 OK', [])(42 as unknown as string);
        return [];
      }),
    ).toBe('validator: write() takes a string or a Uint8Array');
  });

  it('[11.3] a string, null, or a non-iterable object returned', async () => {
    expect(
      await appViolation((_e, sr) => {
        sr('200 OK', []);
        return 'str' as unknown as string[];
      }),
    ).toBe('validator: the app returned a string; return an iterable of chunks');
    expect(
      await appViolation((_e, sr) => {
        sr('200 OK', []);
        return null as unknown as string[];
      }),
    ).toBe('validator: the app returned null');
    expect(
      await appViolation((_e, sr) => {
        sr('200 OK', []);
        return { x: 1 } as unknown as string[];
      }),
    ).toBe('validator: the body must be iterable, a stream or a file wrapper');
  });

  it('[11.3] streams and file wrappers pass through unwrapped', async () => {
    let body: unknown;
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(Buffer.from('s'));
        c.close();
      },
    });
    const res = await request(
      validator((_e, sr) => {
        sr('200 OK', []);
        body = stream;
        return stream as unknown as string[];
      }),
    );
    expect(res.body.toString()).toBe('s');
    expect(body).toBe(stream);
  });
});

describe('startResponse checks [11.4]', () => {
  it('[11.4] startResponse twice without excInfo', async () => {
    expect(
      await appViolation((_e, sr) => {
        sr('200 OK', []);
        sr('200 OK', []);
        return [];
      }),
    ).toBe('validator: startResponse called twice without excInfo');
  });

  it('[11.4] twice with excInfo is allowed', async () => {
    const res = await request(
      validator((_e, sr) => {
        sr('200 OK', []);
        sr('500 Internal Server Error', [], new Error('x'));
        return ['e'];
      }),
    );
    expect(res.statusLine).toBe('500 Internal Server Error');
    expect(res.body.toString()).toBe('e');
  });

  it('[11.4] a response object after startResponse', async () => {
    expect(
      await appViolation((_e, sr) => {
        sr('200 OK', []);
        return { status: 200 };
      }),
    ).toBe('validator: returned a { status } object after calling startResponse');
  });
});

describe('input checks [11.5]', () => {
  for (const [method, arg] of [
    ['read', 1.5],
    ['readline', -2],
    ['readlines', 'x'],
  ] as const) {
    it(`[11.5] tsgi.input.${method}(${JSON.stringify(arg)})`, async () => {
      expect(
        await appViolation(
          async (e, sr) => {
            await (e['tsgi.input'][method] as (n: unknown) => Promise<unknown>)(arg);
            sr('200 OK', []);
            return [];
          },
          { method: 'POST', body: 'abc' },
        ),
      ).toBe(`validator: tsgi.input.${method}(size) needs an integer >= -1 or nothing`);
    });
  }

  it('[11.5] valid sizes and iteration go through to the real input', async () => {
    const res = await request(
      validator(async (e, sr) => {
        const input = e['tsgi.input'];
        const a = await input.read(1);
        const b = await input.readline(-1);
        const c = await input.readlines();
        const d: Uint8Array[] = [];
        for await (const x of input) d.push(x);
        sr('200 OK', []);
        return [a, b, ...c, ...d, await input.read(-1)];
      }),
      { method: 'POST', body: 'abc\ndef\n' },
    );
    expect(res.body.toString()).toBe('abc\ndef\n');
  });
});

describe('close checks [11.6]', () => {
  const environ = () => {
    const log: Array<{ level: LogLevel; text: string }> = [];
    const e = buildEnviron({}, { errors: (text, level) => log.push({ level, text }) });
    return { e, log };
  };
  const noop: StartResponse = () => async () => {};

  it('[11.6] a gateway that never calls close() is reported on tsgi.errors', async () => {
    const { e, log } = environ();
    const body = (await validator((_e, sr) => {
      sr('200 OK', []);
      return ['a'];
    })(e, noop)) as Iterable<string>;
    for (const _ of body) {
      // iterate to the end, then "forget" close()
    }
    await tick();
    expect(log).toEqual([
      {
        level: 'error',
        text: "validator: the gateway called the body's close 0 times, expected exactly 1\n",
      },
    ]);
  });

  it('[11.6] a second close() is a violation', async () => {
    const { e } = environ();
    const body = (await validator((_e, sr) => {
      sr('200 OK', []);
      return ['a'];
    })(e, noop)) as { close(): Promise<void> };
    await body.close();
    await expect(body.close()).rejects.toThrowError(
      'validator: the body was closed more than once',
    );
  });

  it('[11.6] the app’s own close() is called through the wrapper', async () => {
    let closes = 0;
    const res = await request(
      validator((_e, sr) => {
        sr('200 OK', []);
        return Object.assign(['a'], { close: () => void closes++ });
      }),
    );
    await tick();
    expect(closes).toBe(1);
    expect(res.log).toEqual([]);
  });
});

describe('transparency [11.7]', () => {
  it('[11.7] a valid app behaves exactly as without the validator', async () => {
    const app: Application = (_e, sr) => {
      sr('200 OK', [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '2'],
      ]);
      return ['o', 'k'];
    };
    const plain = await request(app);
    const checked = await request(validator(app));
    expect(checked.raw.equals(plain.raw)).toBe(true);
    expect(checked.transport.calls).toEqual(plain.transport.calls);
  });

  it('[11.7] the needs-body mark is kept', () => {
    const marked = declareNeedsBody(((_e, sr) => {
      sr('200 OK', []);
      return [];
    }) as Application);
    expect(needsBody(validator(marked))).toBe(true);
    const unmarked: Application = (_e, sr) => {
      sr('200 OK', []);
      return [];
    };
    expect(needsBody(validator(unmarked))).toBe(false);
  });
});
