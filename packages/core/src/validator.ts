import { TsgiError } from './errors.js';
import { sinkOf } from './errorstream.js';
import { drainInput } from './input.js';
import { isResponseObject, NEEDS_BODY_ON_HEAD, needsBody } from './run.js';
import type {
  Application,
  AppResult,
  Environ,
  HeaderList,
  InputStream,
  StartResponse,
} from './types.js';

/**
 * ValidationError: a violation found by `validator`, on either side: the environ the
 * gateway built, or what the application did. Code `ERR_VALIDATOR`.
 */
export class ValidationError extends TsgiError {
  constructor(message: string) {
    super('ERR_VALIDATOR', `validator: ${message}`);
    this.name = 'ValidationError';
  }
}

function check(ok: unknown, message: string): asserts ok {
  if (!ok) throw new ValidationError(message);
}

const REQUIRED = [
  'REQUEST_METHOD',
  'SCRIPT_NAME',
  'PATH_INFO',
  'QUERY_STRING',
  'REQUEST_URI',
  'RAW_URI',
  'SERVER_NAME',
  'SERVER_PORT',
  'SERVER_PROTOCOL',
] as const;
const TSGI_KEYS = [
  'tsgi.version',
  'tsgi.url_scheme',
  'tsgi.input',
  'tsgi.errors',
  'tsgi.multithread',
  'tsgi.multiprocess',
  'tsgi.run_once',
  'tsgi.input_terminated',
  'tsgi.uri_encoding',
  'tsgi.file_wrapper',
  'tsgi.signal',
] as const;

/** checkEnviron: throws ValidationError when `environ` breaks the environ rules of docs/SPEC.md. */
export function checkEnviron(environ: Environ): void {
  check(
    typeof environ === 'object' &&
      environ !== null &&
      Object.getPrototypeOf(environ) === Object.prototype,
    'environ must be a plain object',
  );
  for (const k of REQUIRED) check(typeof environ[k] === 'string', `environ[${k}] must be a string`);
  for (const k of TSGI_KEYS) check(k in environ, `environ lacks ${k}`);
  const v = environ['tsgi.version'];
  check(Array.isArray(v) && v[0] === 1 && v[1] === 1, 'tsgi.version must be [1, 1]');
  check(
    environ['tsgi.url_scheme'] === 'http' || environ['tsgi.url_scheme'] === 'https',
    'tsgi.url_scheme must be "http" or "https"',
  );
  check(environ['tsgi.input_terminated'] === true, 'tsgi.input_terminated must be true');
  check(environ['tsgi.signal'] instanceof AbortSignal, 'tsgi.signal must be an AbortSignal');
  check(typeof environ['tsgi.file_wrapper'] === 'function', 'tsgi.file_wrapper must be a function');
  const input = environ['tsgi.input'] as InputStream;
  for (const m of ['read', 'readline', 'readlines'] as const) {
    check(typeof input?.[m] === 'function', `tsgi.input.${m} must be a function`);
  }
  const errors = environ['tsgi.errors'];
  check(
    typeof errors?.write === 'function' && typeof errors?.flush === 'function',
    'tsgi.errors must have write() and flush()',
  );
  const enc = environ['tsgi.uri_encoding'];
  for (const [k, val] of Object.entries(environ)) {
    if (k.startsWith('tsgi.')) continue;
    if (/^[A-Z_][A-Z0-9_]*$/.test(k)) {
      check(typeof val === 'string', `environ[${k}] must be a string, got ${typeof val}`);
      if (k !== 'SCRIPT_NAME' && k !== 'PATH_INFO' && k !== 'QUERY_STRING') {
        check(
          !/[^\u0000-\u00ff]/.test(val as string),
          `environ[${k}] has a character outside ISO-8859-1`,
        );
      }
    }
  }
  if (enc === 'iso-8859-1') {
    for (const k of ['SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING'] as const) {
      check(
        !/[^\u0000-\u00ff]/.test(environ[k]),
        `environ[${k}] is not ISO-8859-1 but tsgi.uri_encoding says so`,
      );
    }
  }
  check(
    environ.SCRIPT_NAME !== '/',
    'SCRIPT_NAME must not be "/" (use "" and put "/" in PATH_INFO)',
  );
  check(
    environ.SCRIPT_NAME === '' || environ.SCRIPT_NAME.startsWith('/'),
    `SCRIPT_NAME ${JSON.stringify(environ.SCRIPT_NAME)} must be empty or start with "/"`,
  );
  check(
    environ.PATH_INFO === '' || environ.PATH_INFO.startsWith('/'),
    `PATH_INFO ${JSON.stringify(environ.PATH_INFO)} must be empty or start with "/"`,
  );
  const cl = environ.CONTENT_LENGTH;
  check(
    cl === undefined || (typeof cl === 'string' && /^[0-9]+$/.test(cl)),
    'CONTENT_LENGTH must be digits when present',
  );
  check(
    !('HTTP_CONTENT_TYPE' in environ),
    'HTTP_CONTENT_TYPE must not be present (use CONTENT_TYPE)',
  );
  check(
    !('HTTP_CONTENT_LENGTH' in environ),
    'HTTP_CONTENT_LENGTH must not be present (use CONTENT_LENGTH)',
  );
}

function checkHeaders(status: unknown, headers: unknown): void {
  check(typeof status === 'string', 'status must be a string');
  check(
    /^[1-5][0-9]{2} /.test(status as string),
    `status ${JSON.stringify(status)} must be "<code> <reason>"`,
  );
  check(Array.isArray(headers), 'headers must be an array');
  const code = Number((status as string).slice(0, 3));
  for (const h of headers as unknown[]) {
    check(Array.isArray(h) && h.length === 2, 'each header must be a [name, value] pair');
    const [name, value] = h as [unknown, unknown];
    check(
      typeof name === 'string' && typeof value === 'string',
      `header ${String(name)} must be [string, string]`,
    );
    const lower = (name as string).toLowerCase();
    check(lower !== 'status', 'a header may not be named Status (CGI uses it for the status line)');
    if (code === 204 || code === 304 || code < 200) {
      check(lower !== 'content-type', `no Content-Type on a ${code} response`);
    }
  }
}

/**
 * validator: wraps an application and checks both sides, like wsgiref.validate,
 * Rack::Lint and Plack::Middleware::Lint: the environ's shape, the status and headers,
 * the body's type and chunks, that nothing is yielded before startResponse, that
 * startResponse is not called twice without excInfo, that the input is read with valid
 * sizes, and that the gateway calls the body's close exactly once (reported on
 * `tsgi.errors` when not). Violations throw ValidationError (the gateway answers 500).
 */
export function validator(app: Application): Application {
  const wrapped: Application = async (environ, startResponse) => {
    checkEnviron(environ);
    const log = sinkOf(environ['tsgi.errors']);
    environ['tsgi.input'] = wrapInput(environ['tsgi.input']);
    let started = false;
    const sr: StartResponse = (status, headers, excInfo) => {
      checkHeaders(status, headers);
      check(!started || excInfo !== undefined, 'startResponse called twice without excInfo');
      started = true;
      const write = startResponse(status, headers as HeaderList, excInfo);
      return (chunk) => {
        check(
          typeof chunk === 'string' || chunk instanceof Uint8Array,
          'write() takes a string or a Uint8Array',
        );
        return write(chunk);
      };
    };
    const result = await app(environ, sr);
    if (isResponseObject(result)) {
      check(!started, 'returned a { status } object after calling startResponse');
      checkHeaders(
        typeof result.status === 'number' ? `${result.status} X` : result.status,
        result.headers ?? [],
      );
      return result;
    }
    check(typeof result !== 'string', 'the app returned a string; return an iterable of chunks');
    check(
      typeof result === 'object' && result !== null,
      `the app returned ${result === null ? 'null' : typeof result}`,
    );
    return wrapBody(result as object, () => started, log) as AppResult;
  };
  if (needsBody(app)) (wrapped as unknown as Record<symbol, boolean>)[NEEDS_BODY_ON_HEAD] = true;
  return wrapped;
}

function wrapInput(input: InputStream): InputStream {
  const size = (name: string, n: unknown) =>
    check(
      n === undefined || (Number.isInteger(n) && (n as number) >= -1),
      `tsgi.input.${name}(size) needs an integer >= -1 or nothing`,
    );
  return {
    read: (n?: number) => {
      size('read', n);
      return input.read(n);
    },
    readline: (n?: number) => {
      size('readline', n);
      return input.readline(n);
    },
    readlines: (n?: number) => {
      size('readlines', n);
      return input.readlines(n);
    },
    [Symbol.asyncIterator]: () => input[Symbol.asyncIterator](),
    // The gateway drains what the app left unread through the wrapper (drainInput).
    drain: (maxBytes: number) => drainInput(input, maxBytes),
  } as InputStream;
}

function wrapBody(
  body: object,
  started: () => boolean,
  log: (t: string, l: 'error') => void,
): object {
  const b = body as Record<string | symbol, any>;
  // Streams and file wrappers are passed through: the core closes them itself.
  if (typeof b.getReader === 'function' || typeof b.pipe === 'function' || b.tsgiFileWrapper)
    return body;
  const isAsync = typeof b[Symbol.asyncIterator] === 'function';
  check(
    isAsync || typeof b[Symbol.iterator] === 'function',
    'the body must be iterable, a stream or a file wrapper',
  );
  let closes = 0;
  let finished = false;
  const chunkOk = (c: unknown) => {
    check(started(), 'the body yielded a chunk before startResponse was called');
    check(
      typeof c === 'string' || c instanceof Uint8Array,
      `body chunks must be strings or Uint8Arrays, got ${typeof c}`,
    );
  };
  const close = async () => {
    closes++;
    check(closes === 1, 'the body was closed more than once');
    if (typeof b.close === 'function') await b.close();
  };
  const afterEnd = () => {
    if (finished) return;
    finished = true;
    setImmediate(() => {
      if (closes !== 1)
        log(
          `validator: the gateway called the body's close ${closes} times, expected exactly 1\n`,
          'error',
        );
    });
  };
  if (isAsync) {
    return {
      close,
      [Symbol.asyncIterator]() {
        const it = b[Symbol.asyncIterator]() as AsyncIterator<unknown>;
        return {
          async next() {
            const r = await it.next();
            if (r.done) afterEnd();
            else chunkOk(r.value);
            return r;
          },
          async return() {
            await it.return?.();
            afterEnd();
            return { done: true, value: undefined };
          },
        };
      },
    };
  }
  return {
    close,
    [Symbol.iterator]() {
      const it = b[Symbol.iterator]() as Iterator<unknown>;
      return {
        next() {
          const r = it.next();
          if (r.done) afterEnd();
          else chunkOk(r.value);
          return r;
        },
        return() {
          it.return?.();
          afterEnd();
          return { done: true, value: undefined };
        },
      };
    },
  };
}
