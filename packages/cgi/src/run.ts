import { Buffer } from 'node:buffer';
import {
  type Application,
  buildEnviron,
  type CgiParams,
  type Environ,
  type ErrorSink,
  fixedResponse,
  isTsgiError,
  RequestSignal,
  type RunOptions,
  runApp,
  serializeCgiHead,
  TsgiError,
} from '@tsgi/core';
import { readCgiEnvironment } from './environment.js';
import { type CgiReadable, type CgiWritable, Output, Stdin } from './stdio.js';
import { CgiTransport } from './transport.js';

/** CgiOptions: what `runCgi` reads from and writes to, and the core's per-request choices. */
export interface CgiOptions {
  /**
   * The CGI meta-variables. Default: this process's environment, as bytes from
   * `/proc/self/environ` on Linux, else `process.env` (see `readCgiEnvironment`).
   */
  environ?: CgiParams;
  /**
   * The request body. Default: file descriptor 0, read only when the app reads (then
   * `process.stdin` if the descriptor is non-blocking). A stream that was read from is
   * destroyed once the response is out.
   */
  stdin?: CgiReadable | (() => CgiReadable);
  /**
   * Where the response goes. Default: file descriptor 1 (then `process.stdout` if the
   * descriptor is non-blocking).
   */
  stdout?: CgiWritable;
  /** Where `tsgi.errors` and the adapter's reports go. Default: stderr (the server's error log). */
  errors?: ErrorSink;
  /** The local-redirect rule of RFC 3875 section 6.2.2 (see CgiTransport). Default true. */
  localRedirect?: boolean;
  /** Passed to `buildEnviron`: encoding tried first for the path and query. Default `utf-8`. */
  uriEncoding?: string;
  /** Passed to `buildEnviron`: recompute SCRIPT_NAME / PATH_INFO around this mount point. */
  mount?: string;
  /** Passed to `buildEnviron`: largest CONTENT_LENGTH accepted (413 above it). */
  maxBodyBytes?: number;
  /** Passed to `runApp`: present HEAD as GET to the app (`off`, `on`, `auto`). */
  mapHeadToGet?: RunOptions['mapHeadToGet'];
  /**
   * SIGTERM: what the server sends a script whose client went away or that ran too long
   * (Apache mod_cgi/mod_cgid, then SIGKILL a few seconds later). Node's default is to die at
   * once, so the app never sees its request end. While the request runs, `runCgi` instead
   * fires `tsgi.signal` (closing a waiting body) and gives the app this many ms to stop,
   * after which the process dies of the signal as by default. 0: Node's default. Default 2000.
   */
  sigtermGraceMs?: number;
}

const STDOUT = { fd: 1, stream: () => process.stdout };
const STDIN = { fd: 0, stream: () => process.stdin };
const STDERR = { fd: 2, stream: () => process.stderr };

/** EXIT_COMPLETE: `runCgi`'s exit code after a complete response. */
export const EXIT_COMPLETE = 0;
/** EXIT_ABORTED: `runCgi`'s exit code when the response was cut short (app error after the head, stdout closed). */
export const EXIT_ABORTED = 1;
/** EXIT_NO_APP: `runCgiModule`'s exit code when no application could be loaded (a 500 was sent). */
export const EXIT_NO_APP = 2;

let stderr: Output | undefined;

/**
 * stderrSink: the default ErrorSink. Lines go to stderr, which every CGI server copies
 * into its error log; `debug` (a client that went away) is dropped. Written to file
 * descriptor 2 directly, like stdout (see Output), so logging costs no stream setup.
 */
export const stderrSink: ErrorSink = (text, level) => {
  if (level === 'debug') return;
  stderr ??= new Output(STDERR, () => undefined);
  void stderr
    .write(Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'utf8'))
    ?.catch(() => undefined);
};

/** flushStderr: resolves when everything the default sink wrote reached the kernel. */
export function flushStderr(): Promise<void> {
  return stderr === undefined ? Promise.resolve() : stderr.flush().catch(() => undefined);
}

/**
 * runCgi: runs one request as a CGI script (RFC 3875): the meta-variables come from the
 * process environment (raw bytes, see `readCgiEnvironment`), the body from stdin (bounded
 * by CONTENT_LENGTH; an empty CONTENT_LENGTH counts as absent and the body then runs to
 * the end of stdin, which is how Apache's mod_cgi passes a dechunked body), and the
 * response goes to stdout as a `Status:` line, headers, a blank line and the body
 * (section 6). Errors and `tsgi.errors` go to stderr.
 *
 * Resolves with the process exit code once the response was handed to the kernel:
 * `EXIT_COMPLETE` (0) after a complete response (the core's fixed 500 included, when the
 * app failed before its head), `EXIT_ABORTED` (1) when it was cut short. Never rejects.
 * It does not exit the process: a script should `process.exit(await runCgi(app))`, since
 * the server waits for the end of the output and a timer or socket the app left open
 * would otherwise keep it waiting.
 *
 * httpoxy: call `deleteProxyEnv()` (or import `@tsgi/cgi`) before the application module
 * is loaded; `runCgi` is called with an app that is already loaded, too late to do it
 * here. `runCgiModule` does it in the right order.
 */
export async function runCgi(app: Application, options: CgiOptions = {}): Promise<number> {
  const sink = options.errors ?? stderrSink;
  // Behind tsgi.signal: the AbortSignal is only made if the app reads the key.
  const signal = new RequestSignal();
  const out = new Output(options.stdout ?? STDOUT, (err) => {
    // The server closed our stdout: the client or the server gave up on the response.
    if (!signal.aborted) signal.abort(err);
  });
  const stdin = new Stdin(options.stdin ?? STDIN);
  const offSigterm = onSigterm(options.sigtermGraceMs ?? DEFAULT_SIGTERM_GRACE_MS, () => {
    if (!signal.aborted) {
      signal.abort(
        new TsgiError(
          'ERR_CGI_TERMINATED',
          'cgi: the server sent SIGTERM (client gone or timeout)',
        ),
      );
    }
  });
  try {
    let environ: Environ;
    try {
      environ = buildEnviron(options.environ ?? readCgiEnvironment(), {
        input: stdin,
        errors: sink,
        signal,
        // wsgiref's CGIHandler: one process per request, never threads.
        multithread: false,
        multiprocess: true,
        runOnce: true,
        uriEncoding: options.uriEncoding,
        mount: options.mount,
        maxBodyBytes: options.maxBodyBytes,
      });
    } catch (e) {
      return await refuse(e, out, sink);
    }
    const transport = new CgiTransport(out, { localRedirect: options.localRedirect });
    const result = await runApp(app, environ, transport, {
      mapHeadToGet: options.mapHeadToGet,
      // The front server strips a HEAD body after computing its headers from it (SPEC 8.2).
      headBody: 'send',
    });
    if (result.outcome === 'complete') return EXIT_COMPLETE;
    // The core logged an app error already. A client or server that went away is not an
    // error of the app (mod_wsgi 3.0 change log): info, not error.
    sink(
      `cgi: response aborted after ${result.bodyBytes} body bytes (${result.error?.message ?? 'unknown reason'}); exiting with status ${EXIT_ABORTED}`,
      signal.aborted ? 'info' : 'error',
    );
    return EXIT_ABORTED;
  } finally {
    stdin.close();
    // One more turn of the event loop before the caller may exit: events the app's
    // framework queued as the response ended (Express's and Koa's 'close') still run.
    await new Promise<void>((r) => setImmediate(r));
    offSigterm();
    if (sink === stderrSink) await flushStderr();
  }
}

const DEFAULT_SIGTERM_GRACE_MS = 2000;

/**
 * onSigterm: while installed, SIGTERM calls `abort` and, `graceMs` later, ends the process
 * by the signal itself (the handler removed, the signal sent again), as Node would have at
 * once. Returns the remover. graceMs 0: nothing is installed.
 */
function onSigterm(graceMs: number, abort: () => void): () => void {
  if (!(graceMs > 0)) return () => undefined;
  const handler = () => {
    abort();
    const t = setTimeout(() => {
      process.off('SIGTERM', handler);
      process.kill(process.pid, 'SIGTERM');
    }, graceMs);
    t.unref();
  };
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGTERM', handler);
  };
}

/**
 * refuse: the answer when no environ could be built: 400 for a bad CONTENT_LENGTH, 413
 * over maxBodyBytes (TsgiError.status), 500 for anything else. Nothing of the error
 * reaches the client; it is logged.
 */
async function refuse(e: unknown, out: Output, sink: ErrorSink): Promise<number> {
  const status = isTsgiError(e) && e.status !== undefined ? e.status : 500;
  sink(`cgi: no request could be built: ${describeError(e)}`, 'error');
  return writeFixed(out, status);
}

/** writeFixed: the core's fixed response for `code` (SPEC rule 7.1), complete. */
async function writeFixed(out: Output, code: number): Promise<number> {
  const { head, body } = fixedResponse(code);
  try {
    await out.write(Buffer.concat([serializeCgiHead(head), body]));
    await out.flush();
    return EXIT_COMPLETE;
  } catch {
    return EXIT_ABORTED;
  }
}

/**
 * respondWithError: writes a fixed 500 response to `stdout` (default: file descriptor 1)
 * and resolves with `exitCode`; used when no application could be loaded at all.
 */
export async function respondWithError(
  stdout: CgiWritable | undefined = undefined,
  exitCode = EXIT_NO_APP,
): Promise<number> {
  const out = new Output(stdout ?? STDOUT, () => undefined);
  const code = await writeFixed(out, 500);
  return code === EXIT_COMPLETE ? exitCode : code;
}

/** describeError: a log line's worth of an error (the message of a TsgiError, else the stack). */
export function describeError(e: unknown): string {
  if (isTsgiError(e)) return e.message;
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}
