import type { Application, ErrorSink, LogLevel } from '@tsgi/core';

/**
 * CommandOption: one `--name VALUE` (or boolean `--name`) option of a command, as
 * `node:util` parseArgs takes it plus what `--help` prints.
 */
export interface CommandOption {
  type: 'string' | 'boolean';
  /** A one-letter alias (`-l`). */
  short?: string;
  /** The value's placeholder in `--help` (`HOST:PORT`, `SECONDS`). */
  arg?: string;
  /** One line for `--help`. */
  help: string;
  /** The value when the option is absent (also shown in `--help`). */
  default?: string;
}

/** CommandOptions: a command's own options after parsing, defaults applied. */
export type CommandOptions = Readonly<Record<string, string | boolean | undefined>>;

/**
 * AppInterface: what kind of app MODULE[:EXPORT] is (`--interface`): a tsgi application,
 * a Fetch handler (or an object with a `fetch` method, such as a Hono app) or a Node
 * `(req, res)` listener (Express, Koa, Connect); the last two run through `@tsgi/bridges`.
 */
export type AppInterface = 'tsgi' | 'fetch' | 'node';

/** SharedOptions: the options every command takes, parsed and checked once by the runner. */
export interface SharedOptions {
  /** `--interface`: undefined to detect it from the export. */
  interface: AppInterface | undefined;
  /** `--strip-mount`: a bridged app's URL leaves the mount prefix out (routes written for /). */
  stripMount: boolean;
  /**
   * `--mount`: SCRIPT_NAME the app sees; '' for the root (`--mount /`). undefined when not
   * given: a gateway command keeps the split the web server sent, `tsgi http` serves at
   * the root.
   */
  mount: string | undefined;
  /** `--uri-encoding`: tried first for SCRIPT_NAME, PATH_INFO, QUERY_STRING. */
  uriEncoding: string;
  /** `--map-head-to-get`. */
  mapHeadToGet: 'off' | 'on' | 'auto';
  /** `--max-body` in bytes; undefined: no limit. */
  maxBodyBytes: number | undefined;
  /** `--log-level`. */
  logLevel: LogLevel;
  /** Where the command's reports and `tsgi.errors` go (stderr, filtered by `--log-level`). */
  log: ErrorSink;
  /** `--workers`: 0 for one process without a master. */
  workers: number;
  /** `--max-requests`: 0 for never. */
  maxRequests: number;
  /** `--max-requests-jitter`. */
  maxRequestsJitter: number;
  /** `--graceful-timeout` in seconds. */
  gracefulTimeout: number;
  /** `tsgi.multiprocess`: true when more than one worker process serves the app. */
  multiprocess: boolean;
}

/** Serving: what a command's `serve` resolves to once it accepts requests. */
export interface Serving {
  /** Where it listens, as printed: `http://127.0.0.1:8000`. */
  address: string;
  /**
   * Stops accepting. Graceful: requests in flight finish first (the runner bounds the wait
   * with `--graceful-timeout`, then calls `close(false)`). Not graceful: close everything now.
   */
  close(graceful: boolean): Promise<void>;
  /** For a command that ends by itself (CGI: one request per process): resolves when done. */
  done?: Promise<void>;
}

/**
 * Command: one `tsgi NAME` subcommand. The runner parses the shared options, the command's
 * own `options`, and MODULE[:EXPORT], loads the app, manages workers and signals, and calls
 * `serve`. Adding a command is one file exporting one of these plus a line in
 * `commands/index.ts`.
 *
 * Every command is in the registry, so a command file is loaded by every `tsgi` run: it
 * holds the description (name, options, `check`) and imports nothing heavier than
 * `values.ts`; `serve` imports its adapter with `await import(...)` (`tsgi cgi` starts a
 * process per request and must not pay for node:http, node:net or node:cluster).
 */
export interface Command {
  /** The subcommand: `http`. */
  readonly name: string;
  /** One line for `tsgi --help`. */
  readonly summary: string;
  /** What follows `tsgi NAME` in the usage line: `[--listen HOST:PORT] [options] MODULE[:EXPORT]`. */
  readonly usage: string;
  /** The command's own options (the shared ones are added by the runner). */
  readonly options: Readonly<Record<string, CommandOption>>;
  /**
   * Whether `--workers`, `--max-requests` and SIGHUP apply: false for a command that serves
   * one request per process (CGI). Default true.
   */
  readonly workers?: boolean;
  /**
   * Checks the command's options before the app is loaded or workers are started; throws
   * TsgiError (`cli: ...`, one line saying what to do) on a bad value.
   */
  check?(options: CommandOptions, shared: SharedOptions): void;
  /**
   * Runs in the process that serves (each worker), just before MODULE is imported: for what
   * must happen before the app's own code runs (`tsgi cgi` removes HTTP_PROXY: httpoxy).
   */
  beforeLoad?(shared: SharedOptions, options: CommandOptions): void | Promise<void>;
  /**
   * Runs once in the master, before the first `--workers` start (never in a worker, nor
   * without --workers): for what the workers would otherwise race each other for. The
   * socket commands remove a stale unix socket file here: each worker would probe and
   * replace it, and one would find the socket another had just bound, alive.
   */
  beforeWorkers?(shared: SharedOptions, options: CommandOptions): void | Promise<void>;
  /**
   * Called when the app cannot be loaded or served, after the one-line error went to
   * stderr: for a command that owes its caller an answer anyway (`tsgi cgi` writes a 500
   * response on stdout, so the web server does not report a malformed script).
   */
  failed?(error: unknown): void | Promise<void>;
  /**
   * Serves `app`; resolves once requests are accepted. Import the adapter here, with
   * `await import('@tsgi/NAME')`, not at the top of the file.
   */
  serve(app: Application, shared: SharedOptions, options: CommandOptions): Promise<Serving>;
}
