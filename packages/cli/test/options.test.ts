// The command line: parsing, defaults, one-line errors, help, and adding a command.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Application } from '@tsgi/core';
import { describe, expect, test, vi } from 'vitest';
import type { Command } from '../src/command.js';
import { httpCommand } from '../src/commands/http.js';
import { commandHelp, globalHelp, parseCommandLine, SHARED_OPTIONS } from '../src/options.js';
import { main, oneLine } from '../src/run.js';
import { parseListen, parseMount, parseSize } from '../src/values.js';

const run = (argv: string[]) => {
  const p = parseCommandLine(argv);
  if (p.kind !== 'run') throw new Error(`expected run, got ${p.kind}`);
  return p;
};
const fails = (argv: string[]) => {
  try {
    parseCommandLine(argv);
  } catch (e) {
    return oneLine(e);
  }
  throw new Error(`parseCommandLine(${argv.join(' ')}) did not fail`);
};

describe('parseCommandLine', () => {
  test('defaults', () => {
    const p = run(['http', 'app.mjs']);
    expect(p.command).toBe(httpCommand);
    expect(p.module).toBe('app.mjs');
    expect(p.options).toEqual({
      listen: '127.0.0.1:8000',
      'max-header-size': '16k',
      'request-timeout': '300',
      'headers-timeout': '20',
      'keep-alive-timeout': '5',
      'idle-timeout': '60',
    });
    expect(p.shared).toMatchObject({
      // No --mount: http serves at the root; fastcgi/scgi/cgi keep the server's split.
      mount: undefined,
      interface: undefined,
      stripMount: false,
      uriEncoding: 'utf-8',
      mapHeadToGet: 'off',
      maxBodyBytes: undefined,
      logLevel: 'info',
      workers: 0,
      maxRequests: 0,
      maxRequestsJitter: 0,
      gracefulTimeout: 30,
      multiprocess: false,
    });
  });

  test('every shared option, options after the module, short flags', () => {
    const p = run([
      'http',
      'app.mjs:handler',
      '-l',
      ':9000',
      '--mount',
      '/app/',
      '--uri-encoding',
      'iso-8859-1',
      '--map-head-to-get',
      'auto',
      '--max-body',
      '10m',
      '--log-level=debug',
      '-w',
      '3',
      '--max-requests',
      '1000',
      '--graceful-timeout',
      '2.5',
    ]);
    expect(p.module).toBe('app.mjs:handler');
    expect(p.options.listen).toBe(':9000');
    expect(p.shared).toMatchObject({
      mount: '/app',
      uriEncoding: 'iso-8859-1',
      mapHeadToGet: 'auto',
      maxBodyBytes: 10 * 1024 * 1024,
      logLevel: 'debug',
      workers: 3,
      maxRequests: 1000,
      maxRequestsJitter: 100,
      gracefulTimeout: 2.5,
      multiprocess: true,
    });
  });

  test('--max-requests without --workers runs one worker under a master', () => {
    expect(run(['http', '--max-requests', '10', 'a.mjs']).shared.workers).toBe(1);
  });

  test('help and version', () => {
    expect(parseCommandLine([]).kind).toBe('help');
    expect(parseCommandLine(['--help']).kind).toBe('help');
    expect(parseCommandLine(['http', '--help'])).toEqual({
      kind: 'help',
      text: commandHelp(httpCommand),
    });
    expect(parseCommandLine(['http', 'app.mjs', '-h']).kind).toBe('help');
    expect(parseCommandLine(['--version']).kind).toBe('version');
  });

  test('one-line errors that say what to do', () => {
    expect(fails(['--listen', ':1', 'http'])).toBe(
      'tsgi: give the command first, as in "tsgi http --listen ... MODULE"; see tsgi --help',
    );
    expect(fails(['http', '--nope', 'a.mjs'])).toBe(
      'tsgi: unknown option --nope for tsgi http; see tsgi http --help',
    );
    expect(fails(['http', 'a.mjs', '-l'])).toContain('option --listen needs a value (HOST:PORT)');
    expect(fails(['http', '--help=yes', 'a.mjs'])).toContain('option --help takes no value');
    expect(fails(['http', 'a.mjs', 'b.mjs'])).toContain(
      'serves one MODULE[:EXPORT], got "a.mjs" "b.mjs"',
    );
    expect(fails(['http', '--uri-encoding', 'klingon', 'a.mjs'])).toContain(
      'is not an encoding label Node knows',
    );
    expect(fails(['http', '--mount', 'app', 'a.mjs'])).toContain('a path prefix starting with "/"');
    expect(fails(['http', '--log-level', 'loud', 'a.mjs'])).toContain(
      'one of debug, info, warn, error',
    );
    expect(fails(['http', '--request-timeout', 'soon', 'a.mjs'])).toContain(
      '--request-timeout "soon" is not a number of seconds',
    );
    expect(fails(['http', '--listen', '1.2.3.4:99999', 'a.mjs'])).toContain('is not HOST:PORT');
    for (const argv of [['http', '--nope', 'a.mjs'], ['nope']]) {
      expect(fails(argv).split('\n')).toHaveLength(1);
    }
  });

  test('help lists every option with its default', () => {
    const text = commandHelp(httpCommand);
    for (const [name, o] of Object.entries({ ...SHARED_OPTIONS, ...httpCommand.options })) {
      expect(text).toContain(`--${name}`);
      if (o.default) expect(text.replace(/\s+/g, ' ')).toContain(`(default ${o.default})`);
    }
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
    expect(globalHelp()).toContain('http');
  });
});

describe('values', () => {
  test('parseListen', () => {
    expect(parseListen('--listen', '127.0.0.1:8000')).toEqual({ host: '127.0.0.1', port: 8000 });
    expect(parseListen('--listen', '8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('--listen', ':8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('--listen', '0.0.0.0:80')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(parseListen('--listen', '[::1]:8000')).toEqual({ host: '::1', port: 8000 });
    expect(parseListen('--listen', 'localhost:3000')).toEqual({ host: 'localhost', port: 3000 });
    expect(parseListen('--listen', 'unix:/tmp/a.sock')).toEqual({ path: '/tmp/a.sock' });
    expect(() => parseListen('--listen', 'localhost')).toThrow(/HOST:PORT/);
    expect(() => parseListen('--listen', '::1:80')).toThrow(/HOST:PORT/);
  });

  test('parseSize and parseMount', () => {
    expect(parseSize('--max-body', '1048576')).toBe(1048576);
    expect(parseSize('--max-body', '512k')).toBe(512 * 1024);
    expect(parseSize('--max-body', '10M')).toBe(10 * 1024 ** 2);
    expect(parseSize('--max-body', '1GiB')).toBe(1024 ** 3);
    expect(() => parseSize('--max-body', '-1')).toThrow(/size in bytes/);
    expect(parseMount('--mount', '/')).toBe('');
    expect(parseMount('--mount', '/a/b//')).toBe('/a/b');
  });
});

describe('adding a command is one object', () => {
  test('a command that serves one request and ends (as tsgi cgi will)', async () => {
    const served: string[] = [];
    const once: Command = {
      name: 'once',
      summary: 'answer one fake request',
      usage: '[options] MODULE[:EXPORT]',
      options: { greeting: { type: 'string', arg: 'TEXT', help: 'what to say', default: 'hi' } },
      workers: false,
      async serve(app: Application, shared, options) {
        served.push(`${typeof app} ${shared.mount} ${options.greeting}`);
        return { address: 'stdout', close: async () => undefined, done: Promise.resolve() };
      },
    };
    const hello = join(fileURLToPath(new URL('../../..', import.meta.url)), 'examples/hello.mjs');
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['once', '--mount', '/x', '--greeting', 'hello', hello], [once])).toBe(0);
      expect(served).toEqual(['function /x hello']);
      // The runner refuses what the command cannot do...
      const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        expect(await main(['once', '--workers', '2', hello], [once])).toBe(2);
        expect(String(err.mock.calls[0]?.[0])).toContain('serves one request per process');
      } finally {
        err.mockRestore();
      }
      // ...and documents what it can.
      expect(commandHelp(once)).toContain('--greeting TEXT');
      expect(commandHelp(once)).not.toContain('--workers');
    } finally {
      out.mockRestore();
    }
  });
});
