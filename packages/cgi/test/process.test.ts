// The CGI adapter as a real process: a bundled script started with an exact environment
// (raw bytes, nothing inherited) and stdin, as a server starts it; stdout is compared byte
// for byte. RFC 3875 sections 4 (request) and 6 (response).
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleScript, cgiEnv, type ProcessOptions, runProcess, splitResponse } from './helpers.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const APPS = join(fixtures, 'apps.mjs');
const NONBLOCKING = join(fixtures, 'nonblocking.mjs');
let dir: string;
let script: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsgi-cgi-process-'));
  // What `tsgi cgi MODULE[:EXPORT]` runs, built from the sources.
  script = await bundleScript(
    `import { cgiMain } from '@tsgi/cgi';\nawait cgiMain(process.argv.slice(2));\n`,
    join(dir, 'script.mjs'),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (app: string, options: Partial<ProcessOptions> = {}, module = APPS) =>
  runProcess(script, { env: cgiEnv(), args: [`${module}:${app}`], ...options });
const latin1 = (s: string) => Buffer.from(s, 'latin1');
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

describe('response bytes (RFC 3875 section 6)', () => {
  it('hello: Status line, headers in order, blank line, body; exit 0; nothing on stderr', async () => {
    const r = await run('hello');
    expect(r.stdout).toEqual(
      latin1(
        'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n',
      ),
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('the default export when no EXPORT is given', async () => {
    const r = await runProcess(script, { env: cgiEnv(), args: [APPS] });
    expect(splitResponse(r.stdout).body.toString()).toBe('Hello, World!\n');
    expect(r.code).toBe(0);
  });

  it('HEAD: the body is passed on, the server strips it after computing its headers (SPEC 8.2)', async () => {
    const r = await run('hello', { env: cgiEnv({ REQUEST_METHOD: 'HEAD' }) });
    expect(splitResponse(r.stdout).body.toString()).toBe('Hello, World!\n');
  });

  it('tsgi.errors goes to stderr, line by line', async () => {
    const r = await run('logs');
    expect(r.stdout).toEqual(latin1('Status: 204 No Content\r\n\r\n'));
    expect(r.stderr).toBe('a line for the error log\ncafé partial\n');
  });

  it('exits promptly after the response even if the app left a timer running', async () => {
    const t0 = Date.now();
    const r = await run('leaveTimer');
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

describe('local redirects (RFC 3875 section 6.2.2, mod_wsgi rule)', () => {
  it('200 + absolute-path Location + no body: only the Location line', async () => {
    const r = await run('redirect');
    expect(r.stdout).toEqual(latin1('Location: /target?x=1\r\n\r\n'));
    expect(r.code).toBe(0);
  });
  it('Content-Type and Content-Length: 0 do not prevent it; they are not sent', async () => {
    expect((await run('redirectTyped')).stdout).toEqual(latin1('Location: /target\r\n\r\n'));
  });
  it('an absolute URL goes out with an explicit Status (never turned into a redirect by guessing)', async () => {
    expect((await run('redirectAbsolute')).stdout).toEqual(
      latin1('Status: 200 OK\r\nLocation: http://example.com/x\r\n\r\n'),
    );
  });
  it('a network-path reference (//host) is not local', async () => {
    expect((await run('redirectNetworkPath')).stdout).toEqual(
      latin1('Status: 200 OK\r\nLocation: //evil/x\r\n\r\n'),
    );
  });
  it('a 302 keeps its Status', async () => {
    expect((await run('redirect302')).stdout).toEqual(
      latin1('Status: 302 Found\r\nLocation: /target\r\n\r\n'),
    );
  });
  it('a body or another header makes it an ordinary response', async () => {
    expect((await run('redirectWithBody')).stdout).toEqual(
      latin1('Status: 200 OK\r\nLocation: /target\r\n\r\nhere'),
    );
    expect((await run('redirectWithCookie')).stdout).toEqual(
      latin1('Status: 200 OK\r\nLocation: /target\r\nSet-Cookie: a=1\r\n\r\n'),
    );
  });
});

describe('byte fidelity of the environment', () => {
  it('a raw 0xE9 in PATH_INFO (the server decoded %E9) and in a header value arrives byte-exact', async () => {
    const r = await run('dump', {
      env: cgiEnv({
        PATH_INFO: latin1('/caf\u00e9'),
        REQUEST_URI: '/app/caf%E9?x=%E9',
        QUERY_STRING: 'x=%E9',
        HTTP_X_LATIN: latin1('caf\u00e9'),
      }),
    });
    const d = JSON.parse(splitResponse(r.stdout).body.toString('utf8'));
    expect(d.pathInfoHex).toBe('2f636166e9');
    expect(d.environ.PATH_INFO).toBe('/caf\u00e9');
    expect(d.uriEncoding).toBe('iso-8859-1');
    expect(d.queryHex).toBe(Buffer.from('x=%E9').toString('hex'));
    expect(d.latinHex).toBe('636166e9');
    expect(d.environ.REQUEST_URI).toBe('/app/caf%E9?x=%E9');
  });

  it('UTF-8 bytes stay UTF-8 in PATH_INFO and latin-1 code points in a header', async () => {
    const r = await run('dump', {
      env: cgiEnv({
        PATH_INFO: Buffer.from('/caf\u00e9/\u20ac', 'utf8'),
        HTTP_X_LATIN: Buffer.from('\u00e9', 'utf8'),
      }),
    });
    const d = JSON.parse(splitResponse(r.stdout).body.toString('utf8'));
    expect(d.environ.PATH_INFO).toBe('/caf\u00e9/\u20ac');
    expect(d.uriEncoding).toBe('utf-8');
    expect(d.latinHex).toBe('c3a9');
  });

  it('process.env would have lost the byte (U+FFFD): the reason for /proc/self/environ', async () => {
    const probe = await bundleScript(
      `process.stdout.write(JSON.stringify(process.env.X_LATIN));`,
      join(dir, 'probe.mjs'),
    );
    const r = await runProcess(probe, { env: { X_LATIN: latin1('caf\u00e9') } });
    expect(JSON.parse(r.stdout.toString('utf8'))).toBe('caf\ufffd');
  });

  it('CGI flags: run_once, multiprocess, not multithread', async () => {
    const d = JSON.parse(splitResponse((await run('dump')).stdout).body.toString('utf8'));
    expect([d.runOnce, d.multiprocess, d.multithread]).toEqual([true, true, false]);
  });
});

describe('httpoxy', () => {
  it('HTTP_PROXY is gone from process.env before the app module loads, and in the environ', async () => {
    const r = await run('dump', { env: cgiEnv({ HTTP_PROXY: 'http://attacker.example:3128' }) });
    const d = JSON.parse(splitResponse(r.stdout).body.toString('utf8'));
    expect(d.proxyAtLoad).toBeNull();
    expect(d.proxyNow).toBeNull();
    // RFC 3875 4.1.18: the request's Proxy header is still a meta-variable for the app.
    expect(d.environ.HTTP_PROXY).toBe('http://attacker.example:3128');
  });
});

describe('request body (RFC 3875 section 4.2)', () => {
  it('stdin is bounded by CONTENT_LENGTH: extra bytes are ignored', async () => {
    const r = await run('echo', {
      env: cgiEnv({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '11' }),
      stdin: 'hello world, and bytes that are not part of the body',
    });
    const { head, body } = splitResponse(r.stdout);
    expect(body.toString()).toBe('hello world');
    expect(head).toContain('X-Content-Length: 11\r\n');
  });

  it('empty CONTENT_LENGTH counts as absent: read to EOF', async () => {
    const r = await run('echo', {
      env: cgiEnv({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '' }),
      stdin: 'all of it\n',
    });
    const { head, body } = splitResponse(r.stdout);
    expect(body.toString()).toBe('all of it\n');
    expect(head).toContain('X-Content-Length: -\r\n');
  });

  it('no CONTENT_LENGTH (Apache mod_cgi streaming a dechunked body): read to EOF, never dechunked', async () => {
    // The server already removed the transfer coding; HTTP_TRANSFER_ENCODING is only the
    // client's header. Chunk-looking bytes are body bytes.
    const raw = '5\r\nhello\r\n0\r\n\r\n';
    const r = await run('echo', {
      env: cgiEnv({ REQUEST_METHOD: 'POST', HTTP_TRANSFER_ENCODING: 'chunked' }),
      stdin: raw,
      stdinDelayMs: 100,
    });
    expect(splitResponse(r.stdout).body.toString('latin1')).toBe(raw);
  });

  it('CONTENT_LENGTH 0 never touches stdin (no EOF needed)', async () => {
    const r = await run('echo', {
      env: cgiEnv({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '0' }),
      stdin: 'not read',
    });
    expect(splitResponse(r.stdout).body.length).toBe(0);
    expect(r.code).toBe(0);
  });

  it('a 3 MiB body arriving slowly, md5 checked', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
    const r = await run('echoMd5', {
      env: cgiEnv({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }),
      stdin: body,
      stdinDelayMs: 50,
    });
    expect(splitResponse(r.stdout).body.toString()).toBe(`${body.length} ${md5(body)}`);
  });

  it('a body shorter than CONTENT_LENGTH is an error, not a short read passed off', async () => {
    const r = await run('echo', {
      env: cgiEnv({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100' }),
      stdin: 'only this',
    });
    // The core answers for the app (which threw before its head): 400 now that it counts a
    // truncated body as the client's fault (a 500 before); never the app's 200.
    expect(r.stdout.toString('latin1')).toMatch(
      /^Status: (400 Bad Request|500 Internal Server Error)\r\n/,
    );
    expect(r.stderr).toContain('request body ended after 9 of 100 bytes');
  });

  it('a bad CONTENT_LENGTH is a 400 from the adapter', async () => {
    const r = await run('echo', { env: cgiEnv({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: 'ten' }) });
    expect(r.stdout).toEqual(
      latin1(
        'Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n',
      ),
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('CONTENT_LENGTH "ten"');
  });
});

describe('errors and exit codes', () => {
  it('an app that throws before its head: the core’s fixed 500, no diagnostics, exit 0', async () => {
    const r = await run('throwBefore');
    expect(r.stdout).toEqual(
      latin1(
        'Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\nInternal Server Error\n',
      ),
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('boom before the head (secret 1234)');
  });

  it('an app that throws after its head: what was sent stays, exit 1, the error in stderr', async () => {
    const r = await run('throwAfter');
    expect(r.stdout).toEqual(latin1('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial '));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('boom after the head');
    expect(r.stderr).toContain('cgi: response aborted');
  });

  it('a body shorter than its Content-Length: exit 1', async () => {
    const r = await run('shortBody');
    expect(splitResponse(r.stdout).body.toString()).toBe('abcd');
    expect(r.code).toBe(1);
  });

  it('a head committed with write("") and then a failure: nothing goes out (the server answers 500)', async () => {
    const r = await run('headCommittedThenThrow');
    expect(r.stdout.length).toBe(0);
    expect(r.code).toBe(1);
  });

  it('a module that does not exist: 500, exit 2', async () => {
    const r = await runProcess(script, { env: cgiEnv(), args: [join(dir, 'missing.mjs')] });
    expect(r.stdout.toString('latin1')).toMatch(/^Status: 500 Internal Server Error\r\n/);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cgi: cannot load the application');
  });

  it('an export that is not a function: 500, exit 2, the exports listed', async () => {
    const r = await run('notAFunction');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has no function export "notAFunction"');
  });

  it('no MODULE argument: usage on stderr, 500, exit 2', async () => {
    const r = await runProcess(script, { env: cgiEnv() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: tsgi cgi MODULE[:EXPORT]');
    expect(r.stdout.toString('latin1')).toMatch(/^Status: 500 /);
  });

  it('the server closes stdout mid-response (EPIPE): exit 1, reported', async () => {
    const r = await run('big', { closeStdoutAfter: 1 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cgi: writing the response to stdout failed');
  });
});

describe('stdout and stdin backpressure', () => {
  it('5 MiB to a slow reader on a blocking pipe: every byte, in order', async () => {
    const r = await run('big', { stdoutDelayMs: 300 });
    const { head, body } = splitResponse(r.stdout);
    expect(body.length).toBe(5 * 1024 * 1024);
    expect(head).toContain(`X-Md5: ${md5(body)}`);
    expect(r.code).toBe(0);
  });

  it('non-blocking descriptors (EAGAIN): the rest continues on the Node streams, in order', async () => {
    const r = await run('big', { stdoutDelayMs: 300 }, NONBLOCKING);
    const { head, body } = splitResponse(r.stdout);
    expect(body.length).toBe(5 * 1024 * 1024);
    expect(head).toContain(`X-Md5: ${md5(body)}`);
    expect(r.stderr).toContain('"stdoutStream":true');
    expect(r.code).toBe(0);
  });

  it('a non-blocking stdin with nothing to read yet (EAGAIN) continues on process.stdin', async () => {
    const body = Buffer.alloc(200_000, 'x');
    const r = await run(
      'echoMd5',
      {
        env: cgiEnv({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }),
        stdin: body,
        stdinDelayMs: 300,
      },
      NONBLOCKING,
    );
    expect(splitResponse(r.stdout).body.toString()).toBe(`${body.length} ${md5(body)}`);
    expect(r.stderr).toContain('"stdinStream":true');
  });
});

describe('SIGTERM from the server (Apache: client gone or timeout)', () => {
  it('fires tsgi.signal; the app sees why, nothing more is sent, exit 1', async () => {
    const r = await run('waitForAbort', { signalOnOutput: 'SIGTERM' });
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nstarted\n',
    );
    expect(r.stderr).toContain(
      'saw abort: cgi: the server sent SIGTERM (client gone or timeout)\n',
    );
    expect(r.signal).toBe(null);
    expect(r.code).toBe(1);
  });

  it('an app that ignores it: the response ends aborted at once and tsgi cgi exits 1', async () => {
    const t0 = Date.now();
    const r = await run('ignoreAbort', { signalOnOutput: 'SIGTERM' });
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(r.signal).toBe(null);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'cgi: response aborted after 8 body bytes (cgi: the server sent SIGTERM (client gone or timeout)); exiting with status 1\n',
    );
  });

  it('a script that does not exit after runCgi dies of the signal after the grace period (2 s)', async () => {
    const own = await bundleScript(
      [
        "import { runCgi } from '@tsgi/cgi';",
        `import { ignoreAbort } from ${JSON.stringify(APPS)};`,
        // No process.exit: the app's interval would keep the process alive for ever.
        'await runCgi(ignoreAbort);',
      ].join('\n'),
      join(dir, 'no-exit.mjs'),
    );
    const t0 = Date.now();
    const r = await runProcess(own, { env: cgiEnv(), signalOnOutput: 'SIGTERM' });
    expect(r.signal).toBe('SIGTERM');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
  });
});
