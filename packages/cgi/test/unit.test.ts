// The CGI adapter in-process: environment parsing, module specs, and runCgi over injected
// streams (the stream paths of Output and Stdin; the descriptor paths run in
// process.test.ts).
import { Buffer } from 'node:buffer';
import { PassThrough, Readable, Writable } from 'node:stream';
import type { Application, HeaderList, LogLevel } from '@tsgi/core';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEnvironBlock, readCgiEnvironment } from '../src/environment.js';
import {
  EXIT_ABORTED,
  EXIT_COMPLETE,
  deleteProxyEnv as exportedDelete,
  runCgi,
} from '../src/index.js';
import { parseAppSpec, pickApp, resolveModule } from '../src/module.js';
import { deleteProxyEnv, removedProxyValue } from '../src/proxyenv.js';

const latin1 = (s: string) => Buffer.from(s, 'latin1');

describe('parseEnvironBlock', () => {
  it('splits NUL-separated NAME=value entries; values stay bytes', () => {
    const block = Buffer.concat([
      latin1('PATH_INFO=/caf\u00e9\0'),
      latin1('EMPTY=\0'),
      latin1('EQ=a=b\0'),
      latin1('NOEQUALS\0'),
      latin1('=nameless\0'),
      latin1('LAST=x'),
    ]);
    const pairs = parseEnvironBlock(block);
    expect(pairs.map(([k]) => k)).toEqual(['PATH_INFO', 'EMPTY', 'EQ', 'LAST']);
    expect(Buffer.from(pairs[0]![1]).toString('hex')).toBe('2f636166e9');
    expect(pairs[1]![1].length).toBe(0);
    expect(Buffer.from(pairs[2]![1]).toString()).toBe('a=b');
  });

  it('keeps repeats in order (lighttpd can pass a header twice; buildEnviron drops both)', () => {
    const pairs = parseEnvironBlock(latin1('HTTP_X_FOO=1\0HTTP_X_FOO=2\0'));
    expect(pairs.map(([k, v]) => `${k}=${Buffer.from(v)}`)).toEqual([
      'HTTP_X_FOO=1',
      'HTTP_X_FOO=2',
    ]);
  });

  it('an empty block is an empty list', () => {
    expect(parseEnvironBlock(new Uint8Array(0))).toEqual([]);
  });
});

describe('readCgiEnvironment', () => {
  const platform = process.platform;
  afterEach(() => {
    Object.defineProperty(process, 'platform', { value: platform });
  });

  it('on Linux: this process’s start-up environment, as bytes', () => {
    if (platform !== 'linux') return;
    const env = readCgiEnvironment() as Array<[string, Uint8Array]>;
    expect(Array.isArray(env)).toBe(true);
    const path = env.find(([k]) => k === 'PATH');
    expect(path && Buffer.from(path[1]).toString()).toBe(process.env.PATH);
  });

  it('elsewhere: process.env, with the HTTP_PROXY deleteProxyEnv took out put back', () => {
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    process.env.HTTP_PROXY = 'http://proxy.example:1';
    try {
      expect(deleteProxyEnv()).toBe(true);
      expect(process.env.HTTP_PROXY).toBeUndefined();
      expect(removedProxyValue()).toBe('http://proxy.example:1');
      const env = readCgiEnvironment() as Record<string, string>;
      expect(env.HTTP_PROXY).toBe('http://proxy.example:1');
      expect(env.PATH).toBe(process.env.PATH);
    } finally {
      delete process.env.HTTP_PROXY;
    }
  });

  it('deleteProxyEnv is exported and idempotent', () => {
    expect(exportedDelete()).toBe(false);
  });
});

describe('parseAppSpec / resolveModule / pickApp', () => {
  it.each([
    ['app.mjs', 'app.mjs', undefined],
    ['app.mjs:handler', 'app.mjs', 'handler'],
    ['./lib/app.js:$app_2', './lib/app.js', '$app_2'],
    ['file:///srv/app.mjs', 'file:///srv/app.mjs', undefined],
    ['file:///srv/app.mjs:default', 'file:///srv/app.mjs', 'default'],
    ['C:\\srv\\app.mjs', 'C:\\srv\\app.mjs', undefined],
    ['C:\\srv\\app.mjs:app', 'C:\\srv\\app.mjs', 'app'],
    ['my-package', 'my-package', undefined],
    ['app.mjs:not-an-identifier', 'app.mjs:not-an-identifier', undefined],
  ])('%s', (arg, specifier, exportName) => {
    expect(parseAppSpec(arg)).toEqual({ specifier, exportName });
  });

  it('resolveModule: URLs as given, paths to file URLs relative to the current directory', () => {
    expect(resolveModule('file:///srv/app.mjs')).toBe('file:///srv/app.mjs');
    expect(resolveModule(new URL('file:///x/y.mjs'))).toBe('file:///x/y.mjs');
    expect(resolveModule('/srv/app.mjs')).toBe('file:///srv/app.mjs');
    expect(resolveModule('./app.mjs')).toBe(new URL('app.mjs', `file://${process.cwd()}/`).href);
    // a package name that resolves from the current directory (the repository root here)
    expect(resolveModule('vitest')).toMatch(/^file:\/\/.*vitest/);
    expect(resolveModule('no-such-package-tsgi')).toBe('no-such-package-tsgi');
  });

  it('pickApp: the named export, else default, app, application; CommonJS exports too', () => {
    const f: Application = () => [];
    const g: Application = () => [];
    expect(pickApp({ default: f, app: g })).toBe(f);
    expect(pickApp({ app: g })).toBe(g);
    expect(pickApp({ application: g })).toBe(g);
    expect(pickApp({ default: f, handler: g }, 'handler')).toBe(g);
    expect(pickApp({ default: { handler: g } }, 'handler')).toBe(g);
    expect(pickApp({ default: { app: g } })).toBe(g);
    expect(() => pickApp({ default: 1, other: g }, undefined, 'x.mjs')).toThrow(
      /cgi: x\.mjs has no default, app or application function export \(exports: default, other\)/,
    );
    expect(() => pickApp({ app: g }, 'nope')).toThrow(
      /ERR_CGI_NO_APP|has no function export "nope"/,
    );
  });
});

/** A request run in-process: environ given, stdin and stdout as streams, errors captured. */
async function inProcess(
  app: Application,
  vars: Record<string, string>,
  options: { body?: Buffer | Readable; stdout?: Writable; localRedirect?: boolean } = {},
) {
  const chunks: Buffer[] = [];
  const stdout =
    options.stdout ??
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    });
  const log: Array<{ level: LogLevel; text: string }> = [];
  let opened = 0;
  const stdin = () => {
    opened++;
    return options.body instanceof Readable
      ? options.body
      : Readable.from(options.body ? [options.body] : []);
  };
  const code = await runCgi(app, {
    environ: { REQUEST_METHOD: 'GET', SCRIPT_NAME: '/app', PATH_INFO: '/', ...vars },
    stdin,
    stdout,
    errors: (text, level) => log.push({ level, text }),
    localRedirect: options.localRedirect,
  });
  return { code, out: Buffer.concat(chunks), log, opened };
}

describe('runCgi over streams', () => {
  const hello: Application = (_e, sr) => {
    sr('200 OK', [
      ['Content-Type', 'text/plain'],
      ['Content-Length', '3'],
    ]);
    return ['hi\n'];
  };

  it('writes the CGI response and resolves 0', async () => {
    const r = await inProcess(hello, {});
    expect(r.out).toEqual(
      latin1('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nhi\n'),
    );
    expect(r.code).toBe(EXIT_COMPLETE);
    expect(r.opened).toBe(0);
  });

  it('stdin is opened only when the app reads it', async () => {
    const echo: Application = async (e, sr) => {
      const b = await e['tsgi.input'].read();
      sr('200 OK', []);
      return [b];
    };
    const r = await inProcess(echo, { CONTENT_LENGTH: '5' }, { body: latin1('12345678') });
    expect(r.opened).toBe(1);
    expect(r.out.toString('latin1')).toBe('Status: 200 OK\r\n\r\n12345');
  });

  it('string chunks from the stdin stream are taken as latin-1', async () => {
    const echo: Application = async (e, sr) => {
      const b = await e['tsgi.input'].read();
      sr('200 OK', []);
      return [Buffer.from(b).toString('hex')];
    };
    const body = Readable.from(['caf\u00e9'], { objectMode: true });
    const r = await inProcess(echo, {}, { body });
    expect(r.out.toString('latin1')).toBe('Status: 200 OK\r\n\r\n636166e9');
  });

  it('localRedirect: false sends a Location-only 200 with its Status', async () => {
    const app: Application = () => ({ status: 200, headers: [['Location', '/x']] });
    expect((await inProcess(app, {})).out.toString('latin1')).toBe('Location: /x\r\n\r\n');
    expect((await inProcess(app, {}, { localRedirect: false })).out.toString('latin1')).toBe(
      'Status: 200 OK\r\nLocation: /x\r\n\r\n',
    );
  });

  it('a head committed with write("") goes out on the next turn, before a slow body', async () => {
    const seen: string[] = [];
    const stdout = new Writable({
      write(chunk: Buffer, _enc, cb) {
        seen.push(chunk.toString('latin1'));
        cb();
      },
    });
    const app: Application = async (_e, sr) => {
      const write = sr('200 OK', [['X-Stream', '1']]);
      await write('');
      await new Promise((r) => setTimeout(r, 50));
      seen.push('<app resumed>');
      return ['late'];
    };
    await inProcess(app, {}, { stdout });
    expect(seen).toEqual(['Status: 200 OK\r\nX-Stream: 1\r\n\r\n', '<app resumed>', 'late']);
  });

  it('backpressure: a slow stdout with a tiny buffer gets every byte, in order', async () => {
    const got: Buffer[] = [];
    let maxQueued = 0;
    const stdout: Writable = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, cb) {
        maxQueued = Math.max(maxQueued, stdout.writableLength);
        got.push(chunk);
        setTimeout(cb, 1);
      },
    });
    const piece = Buffer.alloc(4096, 'a');
    const app: Application = (_e, sr) => {
      sr('200 OK', [['Content-Length', String(piece.length * 50)]]);
      return (function* () {
        for (let i = 0; i < 50; i++) yield piece;
      })();
    };
    const r = await inProcess(app, {}, { stdout });
    expect(r.code).toBe(0);
    const all = Buffer.concat(got);
    expect(all.length).toBe(
      `Status: 200 OK\r\nContent-Length: ${4096 * 50}\r\n\r\n`.length + 4096 * 50,
    );
    // The adapter waited for 'drain': never more than one piece queued beyond the mark.
    expect(maxQueued).toBeLessThanOrEqual(1024 + 4096);
  });

  it('a stdout that fails (EPIPE) aborts the response: tsgi.signal fires, exit 1', async () => {
    let signalled = false;
    const stdout = new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const app: Application = (e, sr) => {
      e['tsgi.signal'].addEventListener('abort', () => {
        signalled = true;
      });
      sr('200 OK', []);
      return (async function* () {
        for (let i = 0; i < 100; i++) {
          yield 'x'.repeat(1000);
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
    };
    const r = await inProcess(app, {}, { stdout });
    expect(r.code).toBe(EXIT_ABORTED);
    expect(signalled).toBe(true);
    expect(
      r.log.some((l) => l.text.includes('writing the response to stdout failed: write EPIPE')),
    ).toBe(true);
  });

  it('HTTP_CONTENT_LENGTH and HTTP_CONTENT_TYPE never reach the app (RFC 3875 4.1.18)', async () => {
    let seen: HeaderList = [];
    const app: Application = (e, sr) => {
      seen = Object.keys(e)
        .filter((k) => k.startsWith('HTTP_CONTENT'))
        .map((k) => [k, String(e[k])]);
      sr('204 No Content', []);
      return [];
    };
    await inProcess(
      app,
      { HTTP_CONTENT_LENGTH: '3', CONTENT_LENGTH: '3', HTTP_CONTENT_TYPE: 'x/y' },
      {
        body: latin1('abc'),
      },
    );
    expect(seen).toEqual([]);
  });

  it('413 over maxBodyBytes, before the app runs', async () => {
    const chunks: Buffer[] = [];
    const stdout = new PassThrough();
    stdout.on('data', (c: Buffer) => chunks.push(c));
    const code = await runCgi(hello, {
      environ: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '1000' },
      stdin: Readable.from([]),
      stdout,
      errors: () => undefined,
      maxBodyBytes: 10,
    });
    expect(code).toBe(0);
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^Status: 413 Content Too Large\r\n/);
  });
});
