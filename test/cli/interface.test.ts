// `--interface` end to end: a Hono app (an object with fetch()) and an Express app are
// detected and bridged (@tsgi/bridges) without the flag; a plain (request) => Response
// function is served only with --interface fetch; exports that fit nothing are one line.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { curl, rawExchangeDetailed } from '../harness/clients.js';
import { describeWithServer } from '../harness/servers.js';
import {
  cgiEnv,
  cgiFcgi,
  ensureBuilt,
  FIXTURES,
  runTsgi,
  scgiRequest,
  tracker,
} from './helpers.js';
import { curlOk, expectOneLine, useTsgiBehind } from './shared.js';

beforeAll(ensureBuilt, 180_000);

const LISTEN = ['--listen', '127.0.0.1:0'];
const HONO = join(FIXTURES, 'hono.mjs');
const FETCH = join(FIXTURES, 'fetch.mjs');

describeWithServer('cgi-fcgi', 'tsgi fastcgi --interface, through cgi-fcgi', () => {
  const procs = tracker();
  afterEach(() => procs.stopAll());

  test('a Hono app is detected without --interface; its URL keeps the mount unless --strip-mount', async () => {
    const kept = procs.start(['fastcgi', ...LISTEN, HONO]);
    const stripped = procs.start(['fastcgi', ...LISTEN, '--strip-mount', HONO]);
    await Promise.all([kept.listening(), stripped.listening()]);
    const env = cgiEnv('/app/hello');
    expect((await cgiFcgi(stripped.port, env)).stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\ncontent-type: text/plain;charset=UTF-8\r\n\r\nhono: hello',
    );
    expect((await cgiFcgi(kept.port, env)).stdout.toString('latin1')).toBe(
      'Status: 404 Not Found\r\ncontent-type: text/plain; charset=UTF-8\r\n\r\nhono: no route for GET /app/hello',
    );
    const post = await cgiFcgi(
      stripped.port,
      cgiEnv('/app/echo', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '11' }),
      'hello there',
    );
    expect(post.stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\ncontent-type: text/plain;charset=UTF-8\r\n\r\nhono: echo hello there',
    );
    expect(kept.stderr + stripped.stderr).toBe('');
  });

  test('a plain (request) => Response function is served with --interface fetch', async () => {
    const t = procs.start(['fastcgi', ...LISTEN, '--interface', 'fetch', FETCH]);
    await t.listening();
    const r = await cgiFcgi(t.port, cgiEnv('/app/x?y=1'));
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\ncontent-type: text/plain\r\n\r\nfetch: GET /app/x\n',
    );
  });

  test('without --interface fetch it is taken for a tsgi app (it cannot be told apart): 500, the error in FCGI_STDERR', async () => {
    const t = procs.start(['fastcgi', ...LISTEN, FETCH]);
    await t.listening();
    const r = await cgiFcgi(t.port, cgiEnv('/app/x'));
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\nInternal Server Error\n',
    );
    // FCGI_STDERR: what nginx would put in its error log; cgi-fcgi prints it on stderr.
    expect(r.stderr).toMatch(/core: GET \/app\/x: TypeError: Invalid URL/);
  });
});

describe('--interface: what does not fit is one line, before anything is served', () => {
  test('an export that is no app lists what was found', async () => {
    const r = await runTsgi(['fastcgi', ...LISTEN, join(FIXTURES, 'not-an-app.mjs')]);
    expect(expectOneLine(r, 1)).toMatch(
      /^tsgi: \S+not-an-app\.mjs:default is object, not an application: found an object with keys \[routes, port\]; expected a tsgi app .*pass --interface tsgi\|fetch\|node$/,
    );
  });

  test('--interface node on a Hono app says what the export is', async () => {
    const r = await runTsgi(['scgi', ...LISTEN, '--interface', 'node', HONO]);
    expect(expectOneLine(r, 1)).toMatch(
      /hono\.mjs:default: --interface node: the export is an instance of Hono with keys \[.*\]; expected a \(req, res\) listener/,
    );
  });

  test('--interface fetch on an object without fetch()', async () => {
    const r = await runTsgi([
      'fastcgi',
      ...LISTEN,
      '--interface',
      'fetch',
      join(FIXTURES, 'not-an-app.mjs'),
    ]);
    expect(expectOneLine(r, 1)).toContain(
      '--interface fetch: the export is an object with keys [routes, port]; expected a function (request) => Response or an object with a fetch(request) method',
    );
  });

  test('an unknown --interface is a usage error: exit 2', async () => {
    const r = await runTsgi(['cgi', '--interface', 'wsgi', 'examples/hello.mjs'], cgiEnv('/app/'));
    expect(r.code).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toBe('tsgi: --interface "wsgi" is not one of tsgi, fetch, node\n');
  });

  test('tsgi cgi: a Hono app answers one request (exact CGI response)', async () => {
    const r = await runTsgi(['cgi', '--strip-mount', HONO], cgiEnv('/app/hello'));
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\ncontent-type: text/plain;charset=UTF-8\r\n\r\nhono: hello',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('tsgi scgi: an Express app is detected (node interface)', () => {
  const procs = tracker();
  afterAll(() => procs.stopAll());

  test('--strip-mount: Express routes written for / match under the mount', async () => {
    const t = procs.start(['scgi', ...LISTEN, '--strip-mount', join(FIXTURES, 'express.mjs')]);
    await t.listening();
    const req = scgiRequest([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/app/hi?q=1'],
      ['QUERY_STRING', 'q=1'],
      ['SCRIPT_NAME', '/app'],
      ['PATH_INFO', '/hi'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['SERVER_NAME', '127.0.0.1'],
      ['SERVER_PORT', '80'],
      ['HTTP_HOST', '127.0.0.1'],
    ]);
    const res = (await rawExchangeDetailed(t.port, req, { timeoutMs: 15_000 })).data.toString(
      'latin1',
    );
    expect(res).toMatch(/^Status: 200 OK\r\n/);
    // req.url without the mount (routes match); originalUrl and baseUrl as Express sets them.
    expect(res).toMatch(
      /\r\nX-Url: \/hi\?q=1\r\nX-Original-Url: \/app\/hi\?q=1\r\nX-Base-Url: \/app\r\n/,
    );
    expect(res).toMatch(/\r\nContent-Type: text\/plain; charset=utf-8\r\n/);
    expect(res.endsWith('\r\n\r\nexpress: hi')).toBe(true);
  });
});

describeWithServer(['nginx', 'curl'], 'a Hono app under tsgi fastcgi behind nginx', () => {
  const front = useTsgiBehind('nginx', 'fastcgi', ['--mount', '/app', '--strip-mount', HONO]);

  test('curl /app/hello reaches the route /hello; an unknown path gets Hono’s 404', async () => {
    const { text } = await curlOk(front().url('/hello'));
    expect(text).toMatch(/\r\nContent-Type: text\/plain;charset=UTF-8\r\n/i);
    expect(text.endsWith('\r\n\r\nhono: hello')).toBe(true);
    const missing = await curl(['-s', '-w', '\n%{http_code}', front().url('/nope')]);
    expect(missing.stdout.toString()).toBe('hono: no route for GET /nope\n404');
  });
});
