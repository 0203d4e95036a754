// `tsgi scgi` end to end: the built bin in a child process, answered over a raw socket (an
// SCGI netstring written by hand, the response read byte for byte) and behind real
// lighttpd mod_scgi and nginx scgi_pass with curl.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { curl, rawExchangeDetailed } from '../harness/clients.js';
import { describeWithServer, useFront } from '../harness/servers.js';
import {
  describeWithBinary,
  ensureBuilt,
  exchange,
  FIXTURES,
  runTsgi,
  type Served,
  scgiRequest,
  sha256,
  tracker,
} from './helpers.js';
import { curlOk, spawnFcgi, useProcsInDir, useTsgiBehind, withBusyPort } from './shared.js';

beforeAll(ensureBuilt, 180_000);

const LISTEN = ['--listen', '127.0.0.1:0'];

/** The variables a web server sends for GET `uri` (no SCRIPT_NAME/PATH_INFO unless `split`). */
function vars(
  uri: string,
  split?: [string, string],
  method = 'GET',
  more: [string, string][] = [],
): [string, string][] {
  const q = uri.indexOf('?');
  return [
    ['REQUEST_METHOD', method],
    ['REQUEST_URI', uri],
    ['QUERY_STRING', q < 0 ? '' : uri.slice(q + 1)],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_NAME', '127.0.0.1'],
    ['SERVER_PORT', '80'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ...(split
      ? ([
          ['SCRIPT_NAME', split[0]],
          ['PATH_INFO', split[1]],
        ] as [string, string][])
      : []),
    ...more,
  ];
}

/** Sends one SCGI request and reads the whole answer (the server closes after it). */
async function scgi(port: number, request: Buffer): Promise<Buffer> {
  const r = await rawExchangeDetailed(port, request, { timeoutMs: 15_000 });
  expect(r.reason).toBe('closed');
  return r.data;
}

const bodyOf = (res: Buffer) => res.subarray(res.indexOf('\r\n\r\n') + 4);

describe('tsgi scgi over a raw socket', () => {
  const procs = tracker();
  afterEach(() => procs.stopAll());

  test('prints scgi://127.0.0.1:PORT; a netstring request gets hello byte for byte, then the close', async () => {
    const t = procs.start(['scgi', ...LISTEN, 'examples/hello.mjs']);
    await t.listening();
    expect(t.stdout).toMatch(/^tsgi: listening on scgi:\/\/127\.0\.0\.1:[1-9][0-9]*\n$/);
    const res = await scgi(t.port, scgiRequest(vars('/app/x?y=1', ['/app', '/x'])));
    expect(res.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n',
    );
    expect(t.stderr).toBe('');
  });

  test('a POST body after the netstring reaches tsgi.input (exact response)', async () => {
    const t = procs.start(['scgi', ...LISTEN, 'examples/upload.mjs']);
    await t.listening();
    const body = Buffer.from(`${'x'.repeat(70_000)}end`);
    const res = await scgi(t.port, scgiRequest(vars('/app/up', ['/app', '/up'], 'POST'), body));
    const json = `${JSON.stringify({ size: body.length, sha256: sha256(body) })}\n`;
    expect(res.toString('latin1')).toBe(
      `Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json}`,
    );
  });

  test('--mount: SCRIPT_NAME/PATH_INFO recomputed from REQUEST_URI when the server sent neither (nginx) or a wrong split', async () => {
    const plain = procs.start(['scgi', ...LISTEN, 'examples/environ.mjs']);
    const mounted = procs.start(['scgi', ...LISTEN, '--mount', '/app/', 'examples/environ.mjs']);
    await Promise.all([plain.listening(), mounted.listening()]);
    const neither = scgiRequest(vars('/app/extra/p%20q?x=1'));
    const whole = scgiRequest(vars('/app/extra/p%20q?x=1', ['/app/extra/p q', '']));
    const outside = scgiRequest(vars('/other/place'));
    const env = async (t: Served, req: Buffer) =>
      JSON.parse(bodyOf(await scgi(t.port, req)).toString('utf8'));
    const a = await env(plain, neither);
    expect([a.SCRIPT_NAME, a.PATH_INFO]).toEqual(['', '/app/extra/p q']);
    for (const req of [neither, whole]) {
      const b = await env(mounted, req);
      expect([b.SCRIPT_NAME, b.PATH_INFO, b.QUERY_STRING]).toEqual(['/app', '/extra/p q', 'x=1']);
    }
    // Outside the mount: the app gets it whole at the root (a gateway does not 404).
    const c = await env(mounted, outside);
    expect([c.SCRIPT_NAME, c.PATH_INFO]).toEqual(['', '/other/place']);
  });

  test('a malformed netstring gets the short 400 (--error-responses on) or just the close (off)', async () => {
    const on = procs.start(['scgi', ...LISTEN, 'examples/hello.mjs']);
    const off = procs.start(['scgi', ...LISTEN, '--error-responses', 'off', 'examples/hello.mjs']);
    await Promise.all([on.listening(), off.listening()]);
    const bad = Buffer.from('12:REQUEST_METHOD;');
    const a = await scgi(on.port, bad);
    expect(a.toString('latin1')).toMatch(/^Status: 400 Bad Request\r\n/);
    const b = await rawExchangeDetailed(off.port, bad, { timeoutMs: 10_000 }).catch(
      (e: NodeJS.ErrnoException) => ({ reason: e.code, data: Buffer.alloc(0) }),
    );
    expect(b.data.length).toBe(0);
  });

  test('SIGTERM: exit 0 and the port is closed', async () => {
    const t = procs.start(['scgi', ...LISTEN, 'examples/hello.mjs']);
    await t.listening();
    const port = t.port;
    t.kill('SIGTERM');
    expect(await t.exited).toEqual({ code: 0, signal: null });
    await expect(rawExchangeDetailed(port, 'x', { timeoutMs: 3000 })).rejects.toThrow(
      /ECONNREFUSED/,
    );
  });
});

describe('tsgi scgi --workers: SIGHUP replaces the workers', () => {
  const procs = tracker();
  afterAll(() => procs.stopAll());

  test('one worker; after SIGHUP another pid answers; SIGTERM stops master and worker, exit 0', async () => {
    const t = procs.start(['scgi', ...LISTEN, '--workers', '1', join(FIXTURES, 'slow.mjs')]);
    await t.listening();
    expect(t.address).toMatch(/^scgi:\/\/127\.0\.0\.1:[0-9]+ \(1 worker, master pid [0-9]+\)$/);
    const pidOf = async () => {
      const body = bodyOf(await scgi(t.port, scgiRequest(vars('/app/', ['/app', '/']))));
      const m = /^pid ([0-9]+)\n$/.exec(body.toString());
      expect(m).not.toBeNull();
      return Number(m?.[1]);
    };
    const before = await pidOf();
    expect(before).not.toBe(t.pid);
    t.kill('SIGHUP');
    await t.waitStderr(/tsgi: reload done: 1 worker\(s\) replaced/);
    const after = await pidOf();
    expect(after).not.toBe(before);
    expect(after).not.toBe(t.pid);
    t.kill('SIGTERM');
    expect(await t.exited).toEqual({ code: 0, signal: null });
    expect(() => process.kill(after, 0)).toThrow(/ESRCH/);
  });
});

describe('tsgi scgi: bad values and listen failures are one line', () => {
  test('--max-header-size out of range: exit 2', async () => {
    const r = await runTsgi(['scgi', '--max-header-size', '10', 'examples/hello.mjs']);
    expect(r.code).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toBe(
      'tsgi: --max-header-size "10" is out of range; give a size from 24 bytes to 16m\n',
    );
  });

  test('an address in use: exactly one line, exit 1', async () => {
    await withBusyPort(async (port) => {
      const r = await runTsgi(['scgi', '--listen', `127.0.0.1:${port}`, 'examples/hello.mjs']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `tsgi: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE); stop what uses it or choose another address with --listen\n`,
      );
    });
  });
});

describeWithServer(['lighttpd', 'curl'], 'tsgi scgi behind lighttpd mod_scgi', () => {
  const front = useTsgiBehind('lighttpd', 'scgi', [join(FIXTURES, 'echo.mjs')]);

  test('GET: lighttpd’s split reaches the app as it is (no --mount needed)', async () => {
    const { head, body } = await curlOk(front().url('/extra/p%20q?x=1'));
    expect(head).toMatch(/\r\nContent-Type: application\/json(\r\n|$)/);
    const e = JSON.parse(body);
    expect(e.vars.SCRIPT_NAME).toBe('/app');
    expect(e.vars.PATH_INFO).toBe('/extra/p q');
    expect(e.vars.QUERY_STRING).toBe('x=1');
    expect(e.vars.REQUEST_URI).toBe('/app/extra/p%20q?x=1');
    expect(e.vars.SERVER_SOFTWARE).toMatch(/^lighttpd\//);
    expect(e.length).toBe(0);
  });

  test('POST: curl’s body arrives intact', async () => {
    const body = Buffer.alloc(200_000, 'abcdefghij');
    const dir = mkdtempSync(join(tmpdir(), 'tsgi-cli-scgi-'));
    try {
      const file = join(dir, 'body.bin');
      writeFileSync(file, body);
      const r = await curl(['--data-binary', `@${file}`, front().url('/post')]);
      const e = JSON.parse(r.stdout.toString());
      expect(e.length).toBe(body.length);
      expect(e.sha256).toBe(sha256(body));
      expect(e.vars.REQUEST_METHOD).toBe('POST');
      expect(e.vars.CONTENT_LENGTH).toBe(String(body.length));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithServer(['nginx', 'curl'], 'tsgi scgi behind nginx scgi_pass, on a unix socket', () => {
  const { procs, dir } = useProcsInDir('tsgi-cli-scgi-nginx-');
  let sock: string;
  beforeAll(async () => {
    sock = join(dir(), 'app.sock');
    const t = procs.start([
      'scgi',
      '--listen',
      `unix:${sock}`,
      '--socket-mode',
      '660',
      '--mount',
      '/app',
      'examples/environ.mjs',
    ]);
    expect(await t.listening()).toBe(`unix:${sock}`);
  });
  const front = useFront(() => ({ server: 'nginx', protocol: 'scgi', backend: { socket: sock } }));

  test('nginx’s stock scgi_params send no SCRIPT_NAME/PATH_INFO: --mount /app splits REQUEST_URI', async () => {
    const { head, body } = await curlOk(front().url('/extra/p%20q?x=1'));
    expect(head).toContain(`\r\nContent-Length: ${Buffer.byteLength(body)}`);
    const e = JSON.parse(body);
    expect([e.SCRIPT_NAME, e.PATH_INFO, e.QUERY_STRING]).toEqual(['/app', '/extra/p q', 'x=1']);
    expect(e.REQUEST_URI).toBe('/app/extra/p%20q?x=1');
    expect(e.SCGI).toBe('1');
  });
});

describeWithBinary('spawn-fcgi', 'spawn-fcgi', 'tsgi scgi on fd 0 (spawn-fcgi -n -s SOCK)', () => {
  const { procs, dir } = useProcsInDir('tsgi-cli-scgi-fd0-');

  test('listening on fd:0 (unix:SOCK); a netstring over the socket gets hello byte for byte', async () => {
    const sock = join(dir(), 'scgi.sock');
    const t = spawnFcgi(procs, ['-s', sock], ['scgi', 'examples/hello.mjs']);
    expect(await t.listening()).toBe(`fd:0 (unix:${sock})`);
    const res = await exchange(sock, scgiRequest(vars('/app/', ['/app', '/'])));
    expect(res.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n',
    );
  });
});
