// The command line: `tsgi COMMAND [options] MODULE[:EXPORT]`, parsed once with node:util
// parseArgs into the shared options, the command's own options and the module spec.
import type { ParseArgsConfig } from 'node:util';
import { createLogSink, type LogLevel, TsgiError } from '@tsgi/core';
import { fs, util } from './builtins.js';
import type { Command, CommandOption, CommandOptions, SharedOptions } from './command.js';
import { commands } from './commands/index.js';
import {
  parseChoice,
  parseCount,
  parseEncoding,
  parseMount,
  parseSeconds,
  parseSize,
} from './values.js';

/** SHARED_OPTIONS: the options every command takes (documented in `--help` and docs/cli.md). */
export const SHARED_OPTIONS: Readonly<Record<string, CommandOption>> = {
  mount: {
    type: 'string',
    arg: 'PREFIX',
    help: 'mount point: the SCRIPT_NAME the app sees (/app), PATH_INFO the rest, recomputed from the request path (http: requests outside it get 404; default: http the root, fastcgi/scgi/cgi the split the web server sent)',
  },
  interface: {
    type: 'string',
    arg: 'tsgi|fetch|node',
    help: 'what the export is: a tsgi app, a Fetch handler or object with fetch() (Hono), a Node (req, res) listener (Express, Koa); default: detected',
  },
  'strip-mount': {
    type: 'boolean',
    help: 'fetch and node apps: leave the mount prefix out of the URL the app sees (routes written for /)',
  },
  'uri-encoding': {
    type: 'string',
    arg: 'LABEL',
    help: 'encoding tried first for SCRIPT_NAME, PATH_INFO, QUERY_STRING (falls back to iso-8859-1)',
    default: 'utf-8',
  },
  'map-head-to-get': {
    type: 'string',
    arg: 'off|on|auto',
    help: 'present HEAD to the app as GET: never, always, or for apps that declared they need the body',
    default: 'off',
  },
  'max-body': {
    type: 'string',
    arg: 'SIZE',
    help: 'largest request body (512k, 10m, 1g): a larger Content-Length gets 413 unread, a chunked body is cut off',
  },
  'log-level': {
    type: 'string',
    arg: 'LEVEL',
    help: 'debug, info, warn or error (client disconnects and dropped headers are debug)',
    default: 'info',
  },
  workers: {
    type: 'string',
    short: 'w',
    arg: 'N',
    help: 'N worker processes sharing one listener (node:cluster), restarted when they die; 0: serve in this process',
    default: '0',
  },
  'max-requests': {
    type: 'string',
    arg: 'N',
    help: 'replace a worker after N requests (plus jitter), as gunicorn and mod_wsgi do; 0: never; implies --workers 1',
    default: '0',
  },
  'max-requests-jitter': {
    type: 'string',
    arg: 'N',
    help: 'each worker adds a random 0..N to --max-requests, so workers do not restart together (default: a tenth of it)',
  },
  'graceful-timeout': {
    type: 'string',
    arg: 'SECONDS',
    help: 'on SIGTERM/SIGINT, SIGHUP and recycling: how long in-flight requests may run before their connections are cut',
    default: '30',
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** ParsedCommandLine: what `parseCommandLine` found. */
export type ParsedCommandLine =
  | { kind: 'help'; text: string }
  | { kind: 'version'; text: string }
  | {
      kind: 'run';
      command: Command;
      shared: SharedOptions;
      options: CommandOptions;
      /** MODULE[:EXPORT] as given. */
      module: string;
    };

/** usageError: a TsgiError for a bad command line (the runner exits 2). */
export function usageError(message: string): TsgiError {
  return new TsgiError('ERR_CLI_USAGE', `cli: ${message}`);
}

/** version: the `tsgi` package's version. */
export function version(): string {
  try {
    // dist/bin.js and src/options.ts both sit one level below package.json.
    const text = fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8');
    return (JSON.parse(text) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * parseCommandLine: parses `argv` (without `node` and the script) against the commands of
 * `registry` (default: every `tsgi` command). Throws TsgiError
 * `ERR_CLI_USAGE` or `ERR_CLI_BAD_OPTION` with a one-line message saying what to do.
 */
export function parseCommandLine(
  argv: readonly string[],
  registry: readonly Command[] = commands,
): ParsedCommandLine {
  const find = (name: string) => registry.find((c) => c.name === name);
  const first = argv[0];
  if (first === undefined || first === '-h' || first === '--help') {
    return { kind: 'help', text: globalHelp(registry) };
  }
  if (first === 'help') {
    const c = argv[1] === undefined ? undefined : find(argv[1]);
    if (argv[1] !== undefined && c === undefined) throw unknownCommand(argv[1], registry);
    return { kind: 'help', text: c ? commandHelp(c) : globalHelp(registry) };
  }
  if (first === '--version' || first === '-V')
    return { kind: 'version', text: `tsgi ${version()}` };
  if (first.startsWith('-')) {
    throw usageError(
      `give the command first, as in "tsgi http ${first} ... MODULE"; see tsgi --help`,
    );
  }
  const command = find(first);
  if (command === undefined) throw unknownCommand(first, registry);

  const specs: Record<string, CommandOption> = { ...SHARED_OPTIONS, ...command.options };
  const config: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, o] of Object.entries(specs)) {
    config[name] = o.short === undefined ? { type: o.type } : { type: o.type, short: o.short };
  }
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = util.parseArgs({
      args: argv.slice(1) as string[],
      options: config,
      strict: true,
      allowPositionals: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (e) {
    throw parseArgsError(e, command, specs);
  }
  if (values.help === true) return { kind: 'help', text: commandHelp(command) };

  if (positionals.length === 0) {
    throw usageError(
      `tsgi ${command.name} needs MODULE[:EXPORT], the app to serve (as in "tsgi ${command.name} app.mjs"); see tsgi ${command.name} --help`,
    );
  }
  if (positionals.length > 1) {
    throw usageError(
      `tsgi ${command.name} serves one MODULE[:EXPORT], got ${positionals.map((p) => JSON.stringify(p)).join(' ')}; options go before or after it as --name VALUE`,
    );
  }

  const options: Record<string, string | boolean | undefined> = {};
  for (const [name, o] of Object.entries(command.options)) {
    options[name] = values[name] ?? (o.type === 'boolean' ? false : o.default);
  }
  const shared = parseShared(values, command);
  command.check?.(options, shared);
  return { kind: 'run', command, shared, options, module: positionals[0] as string };
}

function parseShared(
  v: Record<string, string | boolean | undefined>,
  command: Command,
): SharedOptions {
  const s = (name: string) => (v[name] as string | undefined) ?? SHARED_OPTIONS[name]?.default;
  const logLevel = parseChoice<LogLevel>('--log-level', s('log-level') as string, [
    'debug',
    'info',
    'warn',
    'error',
  ]);
  let workers = parseCount('--workers', s('workers') as string);
  const maxRequests = parseCount('--max-requests', s('max-requests') as string);
  const jitterText = s('max-requests-jitter');
  const maxRequestsJitter =
    jitterText === undefined
      ? Math.floor(maxRequests / 10)
      : parseCount('--max-requests-jitter', jitterText);
  // Recycling needs a master to start the replacement.
  if (maxRequests > 0 && workers === 0) workers = 1;
  if (command.workers === false && (workers > 0 || maxRequests > 0)) {
    throw usageError(
      `tsgi ${command.name} serves one request per process; drop --workers and --max-requests`,
    );
  }
  const maxBody = s('max-body');
  const mount = s('mount');
  const iface = s('interface');
  return {
    interface:
      iface === undefined
        ? undefined
        : parseChoice('--interface', iface, ['tsgi', 'fetch', 'node'] as const),
    stripMount: v['strip-mount'] === true,
    mount: mount === undefined ? undefined : parseMount('--mount', mount),
    uriEncoding: parseEncoding('--uri-encoding', s('uri-encoding') as string),
    mapHeadToGet: parseChoice(
      '--map-head-to-get',
      s('map-head-to-get') as string,
      ['off', 'on', 'auto'] as const,
    ),
    maxBodyBytes: maxBody === undefined ? undefined : parseSize('--max-body', maxBody),
    logLevel,
    log: createLogSink(logLevel),
    workers,
    maxRequests,
    maxRequestsJitter,
    gracefulTimeout: parseSeconds('--graceful-timeout', s('graceful-timeout') as string),
    multiprocess: workers > 1,
  };
}

function unknownCommand(name: string, registry: readonly Command[]): TsgiError {
  return usageError(
    `unknown command ${JSON.stringify(name)}; the commands are ${registry.map((c) => c.name).join(', ')} (see tsgi --help)`,
  );
}

/** Turns node:util parseArgs' long messages into one line that says what to do. */
function parseArgsError(
  e: unknown,
  command: Command,
  specs: Record<string, CommandOption>,
): TsgiError {
  const code = (e as { code?: string }).code;
  const msg = e instanceof Error ? e.message : String(e);
  // "Option '-l, --listen <value>' argument missing" / "Unknown option '--bogus'": prefer
  // the long name.
  const opt = /'(?:-\w, )?(--?[^'\s,]+)/.exec(msg)?.[1] ?? '';
  const see = `see tsgi ${command.name} --help`;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    return usageError(`unknown option ${opt} for tsgi ${command.name}; ${see}`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = opt.replace(/^-+/, '');
    const spec =
      specs[name] ?? Object.values(specs).find((o) => o.short !== undefined && o.short === name);
    if (spec?.type === 'boolean') return usageError(`option ${opt} takes no value; ${see}`);
    return usageError(
      `option ${opt} needs a value${spec?.arg ? ` (${spec.arg})` : ''}; use ${opt}=VALUE for a value starting with "-"; ${see}`,
    );
  }
  return usageError(`${msg.split('\n')[0]}; ${see}`);
}

/** Help lines for options: the flag, then its text wrapped to 100 columns in a second column. */
function optionLines(specs: Readonly<Record<string, CommandOption>>): string[] {
  const rows = Object.entries(specs).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.arg ? ` ${o.arg}` : ''}`;
    const def = o.default === undefined || o.default === '' ? '' : ` (default ${o.default})`;
    return [flag, `${o.help}${def}`] as const;
  });
  const col = 2 + Math.min(32, Math.max(...rows.map(([f]) => f.length)) + 2);
  const out: string[] = [];
  for (const [flag, text] of rows) {
    const lines = wrap(text, 100 - col);
    if (flag.length + 4 > col) out.push(`  ${flag}`);
    else out.push(`  ${flag.padEnd(col - 2)}${lines.shift() ?? ''}`);
    for (const l of lines) out.push(`${' '.repeat(col)}${l}`);
  }
  return out;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

const MODULE_HELP = [
  'MODULE is a .js/.mjs/.cjs file or an installed package name; its default export is the',
  'application, a function (environ, startResponse); MODULE:EXPORT picks a named export.',
  'A Fetch app (an object with fetch(), such as Hono) and an Express, Connect or Koa app are',
  'detected and bridged (@tsgi/bridges); a plain (request) or (req, res) function needs',
  '--interface fetch or --interface node.',
];

const SIGNAL_HELP = [
  'Signals: SIGTERM or SIGINT stops accepting connections, lets requests in flight finish',
  '(at most --graceful-timeout), then exits. With --workers, SIGHUP starts new workers one by',
  'one, each replacing an old one once it listens, without dropping a request; a worker that',
  'dies is restarted and logged.',
];

/** commandHelp: the `tsgi NAME --help` text. */
export function commandHelp(c: Command): string {
  const shared = { ...SHARED_OPTIONS };
  if (c.workers === false) {
    delete shared.workers;
    delete shared['max-requests'];
    delete shared['max-requests-jitter'];
  }
  return [
    `Usage: tsgi ${c.name} ${c.usage}`,
    '',
    `${c.summary[0]?.toUpperCase()}${c.summary.slice(1)}.`,
    '',
    ...MODULE_HELP,
    '',
    `Options of tsgi ${c.name}:`,
    ...optionLines(c.options),
    '',
    'Options of every command:',
    ...optionLines(shared),
    '',
    ...(c.workers === false ? [] : SIGNAL_HELP),
    '',
  ].join('\n');
}

/** globalHelp: the `tsgi --help` text. */
export function globalHelp(registry: readonly Command[] = commands): string {
  const width = Math.max(...registry.map((c) => c.name.length)) + 4;
  return [
    'Usage: tsgi COMMAND [options] MODULE[:EXPORT]',
    '',
    'Runs a tsgi application: what gunicorn, mod_wsgi and flup are to a WSGI app.',
    '',
    'Commands:',
    ...registry.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    ...MODULE_HELP,
    '',
    'tsgi COMMAND --help lists the options of a command; tsgi --version prints the version.',
    '',
    'Examples:',
    '  tsgi http examples/hello.mjs                      # http://127.0.0.1:8000/',
    '  tsgi http --listen 0.0.0.0:8080 --workers 4 app.mjs:handler',
    '  tsgi fastcgi --listen unix:/run/tsgi/app.sock --socket-mode 660 --mount /app app.mjs',
    '  tsgi scgi --listen 127.0.0.1:4000 --workers 2 app.mjs',
    '  tsgi cgi app.mjs                                  # in a cgi-bin script',
    '',
  ].join('\n');
}
