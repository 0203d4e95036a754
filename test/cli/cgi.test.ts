// `tsgi cgi` end to end: the built bin run once per request with a CGI environment and the
// body on stdin, as a web server runs a cgi-bin script; its stdout must be the CGI response
// and nothing else. Then behind a real Apache (mod_cgi, prefork) through a wrapper script.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { curl } from '../harness/clients.js';
import { describeWithServer, useFront } from '../harness/servers.js';
import { BIN, cgiEnv, ensureBuilt, FIXTURES, parseCgi, runTsgi, sha256 } from './helpers.js';

beforeAll(ensureBuilt, 180_000);

const ECHO = join(FIXTURES, 'echo.mjs');
const FIXED_500 =
  'Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\nInternal Server Error\n';

describe('tsgi cgi: one request on stdin/stdout', () => {
  test('examples/hello.mjs: stdout is exactly the CGI response, stderr empty, exit 0', async () => {
    const r = await runTsgi(['cgi', 'examples/hello.mjs'], cgiEnv('/app/x?y=1'));
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('the CGI variables become the environ (tsgi.run_once, no listening line)', async () => {
    const r = await runTsgi(
      ['cgi', 'examples/environ.mjs'],
      cgiEnv('/app/extra/p%20q?x=1&y=%C3%A9', {
        SERVER_NAME: 'www.example',
        SERVER_PORT: '8443',
        HTTPS: 'on',
        HTTP_ACCEPT: 'text/plain',
      }),
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const { head, body } = parseCgi(r.stdout);
    expect(head).toEqual([
      'Status: 200 OK',
      'Content-Type: application/json',
      `Content-Length: ${body.length}`,
    ]);
    const e = JSON.parse(body.toString('utf8'));
    expect(e).toMatchObject({
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/extra/p q',
      QUERY_STRING: 'x=1&y=%C3%A9',
      SERVER_NAME: 'www.example',
      SERVER_PORT: '8443',
      SERVER_PROTOCOL: 'HTTP/1.1',
      HTTP_ACCEPT: 'text/plain',
      'tsgi.url_scheme': 'https',
      'tsgi.run_once': true,
      'tsgi.multithread': false,
    });
  });

  test('a POST body read through tsgi.input (CONTENT_LENGTH bytes of stdin, not more)', async () => {
    const body = Buffer.alloc(150_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 255;
    const extra = Buffer.from('bytes after CONTENT_LENGTH are not the body');
    const r = await runTsgi(
      ['cgi', 'examples/upload.mjs'],
      cgiEnv('/app/upload', {
        REQUEST_METHOD: 'POST',
        CONTENT_TYPE: 'application/octet-stream',
        CONTENT_LENGTH: String(body.length),
      }),
      Buffer.concat([body, extra]),
    );
    const json = `${JSON.stringify({ size: body.length, sha256: sha256(body) })}\n`;
    expect(r.stdout.toString('latin1')).toBe(
      `Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json}`,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('--mount recomputes SCRIPT_NAME/PATH_INFO from the server’s split', async () => {
    const env = cgiEnv('/app/a/b', { SCRIPT_NAME: '/app/a/b', PATH_INFO: '' });
    const r = await runTsgi(['cgi', '--mount', '/app', 'examples/environ.mjs'], env);
    const e = JSON.parse(parseCgi(r.stdout).body.toString());
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(['/app', '/a/b']);
  });

  test('an app that throws: the fixed 500 on stdout, the error on stderr, exit 0 (the 500 is a complete response)', async () => {
    const r = await runTsgi(['cgi', join(FIXTURES, 'boom.mjs')], cgiEnv('/app/'));
    expect(r.stdout.toString('latin1')).toBe(FIXED_500);
    expect(r.stderr).toContain('core: GET /app/: Error: boom: GET failed on purpose (secret 4711)');
    expect(r.code).toBe(0);
  });

  test('an app that fails after its head: the response stops there, stderr says why, exit 1', async () => {
    const r = await runTsgi(['cgi', join(FIXTURES, 'cut.mjs')], cgiEnv('/app/'));
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part\n',
    );
    expect(r.stderr).toContain('cut: the body failed after its first chunk');
    expect(r.stderr).toContain(
      'tsgi: the CGI response was cut short (exit code 1); the reason is logged above',
    );
    expect(r.code).toBe(1);
  });

  test('a module that cannot be loaded: the 500 on stdout, one line on stderr, exit 1', async () => {
    const r = await runTsgi(['cgi', 'test/http/fixtures/throws.mjs'], cgiEnv('/app/'));
    expect(r.stdout.toString('latin1')).toBe(FIXED_500);
    expect(r.stderr).toBe(
      'tsgi: test/http/fixtures/throws.mjs failed to load: Error: this module cannot be loaded (on purpose); fix the module (or run it with node to see the stack)\n',
    );
    expect(r.code).toBe(1);
  });

  test('httpoxy: HTTP_PROXY (a Proxy: header) is out of process.env before the app loads; the environ keeps it', async () => {
    const r = await runTsgi(
      ['cgi', join(FIXTURES, 'proxyenv.mjs')],
      cgiEnv('/app/', {
        HTTP_PROXY: 'http://attacker.example:8080',
        http_proxy: 'http://ops:3128',
      }),
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(parseCgi(r.stdout).body.toString())).toEqual({
      atLoad: null,
      atRequest: null,
      environ: 'http://attacker.example:8080',
      // The lower-case name is the operator's own setting (never a request header).
      lowerCase: 'http://ops:3128',
    });
  });

  test('--workers does not apply: exit 2, nothing on stdout', async () => {
    const r = await runTsgi(['cgi', '--workers', '2', 'examples/hello.mjs'], cgiEnv('/app/'));
    expect(r.code).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toBe(
      'tsgi: tsgi cgi serves one request per process; drop --workers and --max-requests\n',
    );
  });

  test('--max-body: a larger CONTENT_LENGTH gets 413 without reading stdin', async () => {
    const r = await runTsgi(
      ['cgi', '--max-body', '1k', 'examples/upload.mjs'],
      cgiEnv('/app/', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '5000' }),
      Buffer.alloc(5000),
    );
    expect(r.stdout.toString('latin1')).toMatch(/^Status: 413 Content Too Large\r\n/);
    expect(r.code).toBe(0);
  });
});

describeWithServer(['apache', 'curl'], 'tsgi cgi behind Apache mod_cgi (prefork)', () => {
  let dir: string;
  let script: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-cli-cgi-'));
    script = join(dir, 'app.cgi');
    // The cgi-bin script of docs/cli.md. "$@" is not passed on: for a query without "=",
    // Apache adds its words as arguments (RFC 3875 section 4.4).
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        'case "$PATH_INFO" in',
        `  /boom*) app=${join(FIXTURES, 'boom.mjs')} ;;`,
        `  *) app=${ECHO} ;;`,
        'esac',
        `exec ${process.execPath} ${BIN} cgi "$app"`,
        '',
      ].join('\n'),
    );
    chmodSync(script, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const front = useFront(() => ({
    server: 'apache',
    protocol: 'cgi',
    mpm: 'prefork',
    backend: { script },
  }));

  test('GET: the CGI variables Apache sets reach the app; the response comes back through Apache', async () => {
    const r = await curl([
      '-i',
      '-H',
      'Proxy: http://attacker.example',
      front().url('/extra/p%20q?x=1'),
    ]);
    expect(r.code).toBe(0);
    const [head, body] = r.stdout.toString('utf8').split('\r\n\r\n') as [string, string];
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toMatch(/\r\nContent-Type: application\/json(\r\n|$)/);
    const e = JSON.parse(body);
    expect(e.vars).toMatchObject({
      GATEWAY_INTERFACE: 'CGI/1.1',
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/extra/p q',
      QUERY_STRING: 'x=1',
      REQUEST_URI: '/app/extra/p%20q?x=1',
    });
    expect(e.vars.SERVER_SOFTWARE).toMatch(/^Apache\//);
    expect(e.vars.HTTP_PROXY).toBeUndefined();
    expect(e.argv).toEqual(['cgi', ECHO]);
  });

  test('POST: the body Apache pipes in is read through tsgi.input', async () => {
    const body = `a=1&b=${'z'.repeat(100_000)}`;
    const r = await curl(['--data-binary', body, front().url('/form')]);
    const e = JSON.parse(r.stdout.toString());
    expect(e.length).toBe(body.length);
    expect(e.sha256).toBe(sha256(body));
    expect(e.vars.CONTENT_TYPE).toBe('application/x-www-form-urlencoded');
  });

  test('a query without "=" (Apache passes its words as argv): the wrapper still runs the app', async () => {
    const r = await curl([front().url('/search?foo+bar')]);
    const e = JSON.parse(r.stdout.toString());
    expect(e.vars.QUERY_STRING).toBe('foo+bar');
    expect(e.argv).toEqual(['cgi', ECHO]);
  });

  test('an app that throws: Apache relays the 500; the error goes to Apache’s error log', async () => {
    const r = await curl(['-i', front().url('/boom')]);
    const text = r.stdout.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 500 Internal Server Error\r\n/);
    expect(text.endsWith('\r\n\r\nInternal Server Error\n')).toBe(true);
    expect(text).not.toContain('4711');
    let log = '';
    for (let i = 0; i < 50 && !log.includes('4711'); i++) {
      log = await front().errorLog();
      if (!log.includes('4711')) await new Promise((res) => setTimeout(res, 100));
    }
    expect(log).toContain('boom: GET failed on purpose (secret 4711)');
  });
});
