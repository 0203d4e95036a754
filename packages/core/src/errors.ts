/**
 * TsgiError is the one error class every tsgi package throws for a rule broken
 * on the wire or by an application. `code` is stable and machine-readable
 * (`ERR_FASTCGI_PARAMS_TOO_LARGE`); `message` starts with the package prefix
 * (`fastcgi: PARAMS exceed 65536 bytes (limit maxParamsBytes)`) so a log line
 * says where it came from without a stack trace.
 */
export class TsgiError extends Error {
  /** TsgiError.code: a stable identifier, `ERR_<PACKAGE>_<WHAT>`. */
  readonly code: string;
  /** TsgiError.status: the HTTP status a front should answer with, when the error is the client's. */
  readonly status: number | undefined;

  constructor(code: string, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TsgiError';
    this.code = code;
    this.status = options?.status;
  }
}

const BRAND = Symbol.for('tsgi.error');
Object.defineProperty(TsgiError.prototype, BRAND, { value: true });

/**
 * isTsgiError tells whether `e` is a TsgiError, optionally with the given code. It checks
 * a `Symbol.for` brand, not `instanceof`, so errors from another copy of the core (a
 * bundled CGI entry next to an installed @tsgi/core) are recognised too.
 */
export function isTsgiError(e: unknown, code?: string): e is TsgiError {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as Record<symbol, unknown>)[BRAND] === true &&
    (code === undefined || (e as TsgiError).code === code)
  );
}
