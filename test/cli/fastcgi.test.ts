// `tsgi fastcgi` end to end: the built bin in a child process, answered through libfcgi's
// `cgi-fcgi -bind -connect`, a real nginx (fastcgi_pass) and spawn-fcgi (the listening
// socket left on fd 0). Byte-exact where the protocol is involved: cgi-fcgi prints the
// application's CGI response as it came in the FCGI_STDOUT records.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { curl, rawExchangeDetailed } from '../harness/clients.js';
import { freePort } from '../harness/process.js';
import { describeWithServer, useFront } from '../harness/servers.js';
import {
  cgiEnv,
  cgiFcgi,
  describeWithBinary,
  ensureBuilt,
  FIXTURES,
  runTsgi,
  type Served,
  sha256,
  sleep,
  tracker,
} from './helpers.js';
import {
  curlOk,
  expectOneLine,
  spawnFcgi,
  useProcsInDir,
  useTsgiBehind,
  withBusyPort,
} from './shared.js';

beforeAll(ensureBuilt, 180_000);

const HELLO =
  'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n';
const LISTEN = ['--listen', '127.0.0.1:0'];
const SLOW = join(FIXTURES, 'slow.mjs');
/** `tsgi fastcgi --listen unix:SOCK ARGS`. */
const onSocket = (sock: string, ...args: string[]) => [
  'fastcgi',
  '--listen',
  `unix:${sock}`,
  ...args,
];

/** One FastCGI record (S3.3): version 1, type, request id, content, no padding. */
function record(type: number, content: Buffer = Buffer.alloc(0), id = 1): Buffer {
  const h = Buffer.from([1, type, 0, id, content.length >> 8, content.length & 255, 0, 0]);
  return Buffer.concat([h, content]);
}

/** FCGI_GET_VALUES (S4.1) for `names`; resolves with the FCGI_GET_VALUES_RESULT pairs. */
async function getValues(port: number, names: string[]): Promise<Record<string, string>> {
  const query = Buffer.concat(
    names.map((n) => Buffer.concat([Buffer.from([n.length, 0]), Buffer.from(n)])),
  );
  const got = (b: Buffer) => b.length >= 8 && b.length >= 8 + b.readUInt16BE(4) + b[6]!;
  const res = await rawExchangeDetailed(port, record(9, query, 0), {
    timeoutMs: 10_000,
    until: got,
  });
  expect(res.reason).toBe('until');
  expect(res.data[1]).toBe(10); // FCGI_GET_VALUES_RESULT
  const content = res.data.subarray(8, 8 + res.data.readUInt16BE(4));
  const out: Record<string, string> = {};
  for (let i = 0; i < content.length; ) {
    const nl = content[i++]!;
    const vl = content[i++]!;
    out[content.subarray(i, i + nl).toString()] = content.subarray(i + nl, i + nl + vl).toString();
    i += nl + vl;
  }
  return out;
}

/** FCGI_BEGIN_REQUEST (responder, keep-conn off), empty FCGI_PARAMS and FCGI_STDIN. */
const BEGIN_ONLY = Buffer.concat([
  record(1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])),
  record(4),
  record(5),
]);

/**
 * expectDisconnected: a FastCGI request to `port` gets no byte back, only the connection
 * closed (a FIN, or a reset since our records were still unread when it closed).
 */
async function expectDisconnected(port: number): Promise<void> {
  const raw = await rawExchangeDetailed(port, BEGIN_ONLY, { timeoutMs: 10_000 }).catch(
    (e: NodeJS.ErrnoException) => ({ reason: e.code ?? String(e), data: Buffer.alloc(0) }),
  );
  expect(['closed', 'ECONNRESET']).toContain(raw.reason);
  expect(raw.data.length).toBe(0);
}

describeWithServer('cgi-fcgi', 'tsgi fastcgi on TCP, through cgi-fcgi (libfcgi)', () => {
  const procs = tracker();
  afterEach(() => procs.stopAll());

  test('prints fcgi://127.0.0.1:PORT and answers examples/hello.mjs byte for byte', async () => {
    const t = procs.start(['fastcgi', ...LISTEN, 'examples/hello.mjs']);
    await t.listening();
    expect(t.stdout).toMatch(/^tsgi: listening on fcgi:\/\/127\.0\.0\.1:[1-9][0-9]*\n$/);
    const r = await cgiFcgi(t.port, cgiEnv('/app/x?y=1'));
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.toString('latin1')).toBe(HELLO);
    // The process prints nothing else on its own (no per-request log at the default level).
    await sleep(100);
    expect(t.stderr).toBe('');
  });

  test('a POST body (300 KiB) on cgi-fcgi’s stdin reaches tsgi.input intact', async () => {
    const t = procs.start(['fastcgi', ...LISTEN, 'examples/upload.mjs']);
    await t.listening();
    const body = Buffer.alloc(300 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 9)) & 255;
    const r = await cgiFcgi(
      t.port,
      cgiEnv('/app/up', {
        REQUEST_METHOD: 'POST',
        CONTENT_LENGTH: String(body.length),
        CONTENT_TYPE: 'application/octet-stream',
      }),
      body,
    );
    const json = `${JSON.stringify({ size: body.length, sha256: sha256(body) })}\n`;
    expect(r.stdout.toString('latin1')).toBe(
      `Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json}`,
    );
  });

  test('--mount recomputes SCRIPT_NAME/PATH_INFO from the split the client sent', async () => {
    // nginx's stock fastcgi_params send the whole path as SCRIPT_NAME and no PATH_INFO.
    const env = cgiEnv('/app/extra/p%20q?x=1', { SCRIPT_NAME: '/app/extra/p q' });
    delete env.PATH_INFO;
    const plain = procs.start(['fastcgi', ...LISTEN, 'examples/environ.mjs']);
    const mounted = procs.start(['fastcgi', ...LISTEN, '--mount', '/app', 'examples/environ.mjs']);
    await Promise.all([plain.listening(), mounted.listening()]);
    const a = JSON.parse((await cgiFcgi(plain.port, env)).stdout.toString().split('\r\n\r\n')[1]!);
    expect([a.SCRIPT_NAME, a.PATH_INFO]).toEqual(['/app/extra/p q', '']);
    const b = JSON.parse(
      (await cgiFcgi(mounted.port, env)).stdout.toString().split('\r\n\r\n')[1]!,
    );
    expect([b.SCRIPT_NAME, b.PATH_INFO, b.QUERY_STRING]).toEqual(['/app', '/extra/p q', 'x=1']);
    expect(b.REQUEST_URI).toBe('/app/extra/p%20q?x=1');
  });

  test('--web-server-addrs: a peer not listed is disconnected without an answer; a listed one is served', async () => {
    const refusing = procs.start(['fastcgi', ...LISTEN, '--web-server-addrs', '10.9.8.7', SLOW]);
    const allowing = procs.start([
      'fastcgi',
      ...LISTEN,
      '--web-server-addrs',
      '10.9.8.7, 127.0.0.1',
      SLOW,
    ]);
    await Promise.all([refusing.listening(), allowing.listening()]);
    await expectDisconnected(refusing.port);
    const r = await cgiFcgi(refusing.port, cgiEnv('/app/'));
    expect(r.code).not.toBe(0);
    expect(r.stdout.length).toBe(0);
    await refusing.waitStderr(/fastcgi: connection from 127\.0\.0\.1 refused/);
    const ok = await cgiFcgi(allowing.port, cgiEnv('/app/'));
    expect(ok.stdout.toString()).toMatch(/^Status: 200 OK\r\n[\s\S]*\r\n\r\npid [0-9]+\n$/);
  });

  test('FCGI_WEB_SERVER_ADDRS from the environment: a list refuses; empty (as in libfcgi) and --web-server-addrs any do not', async () => {
    const listed = procs.start(['fastcgi', ...LISTEN, SLOW], {
      env: { FCGI_WEB_SERVER_ADDRS: '10.9.8.7' },
    });
    const empty = procs.start(['fastcgi', ...LISTEN, SLOW], { env: { FCGI_WEB_SERVER_ADDRS: '' } });
    const any = procs.start(['fastcgi', ...LISTEN, '--web-server-addrs', 'any', SLOW], {
      env: { FCGI_WEB_SERVER_ADDRS: '10.9.8.7' },
    });
    await Promise.all([listed.listening(), empty.listening(), any.listening()]);
    await expectDisconnected(listed.port);
    await listed.waitStderr(/refused: not in FCGI_WEB_SERVER_ADDRS/);
    for (const t of [empty, any]) {
      const r = await cgiFcgi(t.port, cgiEnv('/app/'));
      expect(r.stdout.toString()).toMatch(/\r\n\r\npid [0-9]+\n$/);
    }
  });

  test('--multiplex, --max-connections, --max-concurrent reach the adapter (FCGI_GET_VALUES)', async () => {
    const names = ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS'];
    const dflt = procs.start(['fastcgi', ...LISTEN, 'examples/hello.mjs']);
    const tuned = procs.start([
      'fastcgi',
      ...LISTEN,
      '--multiplex',
      'off',
      '--max-connections',
      '7',
      '--max-concurrent',
      '50',
      'examples/hello.mjs',
    ]);
    await Promise.all([dflt.listening(), tuned.listening()]);
    expect(await getValues(dflt.port, names)).toEqual({
      FCGI_MAX_CONNS: '1024',
      FCGI_MAX_REQS: '1024',
      FCGI_MPXS_CONNS: '1',
    });
    // Without multiplexing, a connection runs one request at a time: at most 7 at once.
    expect(await getValues(tuned.port, names)).toEqual({
      FCGI_MAX_CONNS: '7',
      FCGI_MAX_REQS: '7',
      FCGI_MPXS_CONNS: '0',
    });
  });

  test('--workers 2: two worker processes answer, neither of them the master', async () => {
    const t = procs.start(['fastcgi', ...LISTEN, '--workers', '2', SLOW]);
    await t.listening();
    const m = /^fcgi:\/\/127\.0\.0\.1:[0-9]+ \(2 workers, master pid ([0-9]+)\)$/.exec(t.address);
    expect(m).not.toBeNull();
    expect(Number(m?.[1])).toBe(t.pid);
    const pids = new Set<string>();
    for (let i = 0; i < 30 && pids.size < 2; i++) {
      const r = await cgiFcgi(t.port, cgiEnv('/app/'));
      const pid = /pid ([0-9]+)\n$/.exec(r.stdout.toString())?.[1];
      expect(pid).toBeDefined();
      pids.add(pid as string);
    }
    expect(pids.size).toBe(2);
    expect(pids.has(String(t.pid))).toBe(false);
    t.kill('SIGTERM');
    expect(await t.exited).toEqual({ code: 0, signal: null });
  });

  test('SIGTERM: the request in flight is answered, new connections are refused, exit 0', async () => {
    const t = procs.start(['fastcgi', ...LISTEN, '--errors-to', 'stderr', SLOW]);
    await t.listening();
    const port = t.port;
    let answered = false;
    const inFlight = cgiFcgi(port, cgiEnv('/app/?sleep=2500')).finally(() => {
      answered = true;
    });
    await t.waitStderr(/slow: started in [0-9]+/);
    t.kill('SIGTERM');
    await t.waitStderr(/tsgi: SIGTERM: no new connections/);
    // The stop began while the request was still running.
    expect(answered).toBe(false);
    const r = await inFlight;
    expect(r.stdout.toString()).toBe(
      `Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${`pid ${t.pid}\n`.length}\r\n\r\npid ${t.pid}\n`,
    );
    expect(await t.exited).toEqual({ code: 0, signal: null });
    await expect(rawExchangeDetailed(port, BEGIN_ONLY, { timeoutMs: 3000 })).rejects.toThrow(
      /ECONNREFUSED/,
    );
  });
});

describe('tsgi fastcgi: bad values are one line on stderr and exit 2', () => {
  const cases: [string[], RegExp][] = [
    [
      ['--web-server-addrs', '1.2.3'],
      /--web-server-addrs "1\.2\.3": "1\.2\.3" is not an IP address/,
    ],
    [['--web-server-addrs', '300.1.1.1'], /"300\.1\.1\.1" is not an IP address/],
    [['--web-server-addrs', ''], /--web-server-addrs "" lists no address/],
    [
      ['--web-server-addrs', '127.0.0.1', '--listen', 'unix:/tmp/x.sock'],
      /refuses every connection to a unix socket/,
    ],
    [['--socket-mode', '660'], /--socket-mode applies to a unix socket/],
    [
      ['--listen', 'unix:/tmp/x.sock', '--socket-mode', '999'],
      /--socket-mode "999" is not an octal mode/,
    ],
    [['--listen', 'nowhere:port'], /--listen "nowhere:port" is not HOST:PORT/],
    [['--multiplex', 'maybe'], /--multiplex "maybe" is not one of on, off/],
    [['--max-params-size', 'lots'], /--max-params-size "lots" is not a size/],
  ];
  test.each(cases.map(([args, re]) => [args.join(' ') || '(empty)', args, re] as const))(
    '%s',
    async (_title, args, message) => {
      const r = await runTsgi(['fastcgi', ...args, 'examples/hello.mjs']);
      expect(expectOneLine(r, 2)).toMatch(message);
    },
  );

  test('--listen fd:0 when fd 0 is not a listening socket: one line, exit 1', async () => {
    // Node gives a child's stdin as a connected socketpair: EINVAL from listen(2).
    const r = await runTsgi(['fastcgi', '--listen', 'fd:0', 'examples/hello.mjs']);
    expect(expectOneLine(r, 1)).toBe(
      'tsgi: cannot listen on fd 0: not a listening socket (EINVAL); start tsgi with a listening socket on fd 0 (spawn-fcgi -n ...), or give --listen HOST:PORT',
    );
  });

  test('a bad FCGI_WEB_SERVER_ADDRS names the variable', async () => {
    const r = await runTsgi(['fastcgi', ...LISTEN, 'examples/hello.mjs'], {
      FCGI_WEB_SERVER_ADDRS: '127.0.0.1,web.example',
    });
    expect(expectOneLine(r, 2)).toBe(
      'tsgi: FCGI_WEB_SERVER_ADDRS "127.0.0.1,web.example" (from the environment): "web.example" is not an IP address; fix or unset the variable, or pass --web-server-addrs any',
    );
  });

  test('an address in use: one line (the adapter’s own report is not repeated), exit 1', async () => {
    await withBusyPort(async (port) => {
      const r = await runTsgi(['fastcgi', '--listen', `127.0.0.1:${port}`, 'examples/hello.mjs']);
      expect(expectOneLine(r, 1)).toBe(
        `tsgi: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE); stop what uses it or choose another address with --listen`,
      );
    });
  });
});

describeWithServer('cgi-fcgi', 'tsgi fastcgi on a unix socket', () => {
  const { procs, dir } = useProcsInDir('tsgi-cli-fcgi-', 'each');

  test('--socket-mode 660: the socket file has that mode, answers, and is removed on SIGTERM', async () => {
    const sock = join(dir(), 'mode.sock');
    const t = procs.start(onSocket(sock, '--socket-mode', '660', 'examples/hello.mjs'));
    expect(await t.listening()).toBe(`unix:${sock}`);
    const st = statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect((st.mode & 0o777).toString(8)).toBe('660');
    const r = await cgiFcgi(sock, cgiEnv('/app/'));
    expect(r.stdout.toString('latin1')).toBe(HELLO);
    t.kill('SIGTERM');
    expect(await t.exited).toEqual({ code: 0, signal: null });
    expect(() => statSync(sock)).toThrow(/ENOENT/);
  });

  test('--socket-mode 0600 and --socket-owner (root only: given to nobody)', async (ctx) => {
    const sock = join(dir(), 'owner.sock');
    const root = process.getuid?.() === 0;
    const args = ['fastcgi', '--listen', sock, '--socket-mode', '0600'];
    if (root) args.push('--socket-owner', '65534:65534');
    const t = procs.start([...args, 'examples/hello.mjs']);
    await t.listening();
    const st = statSync(sock);
    expect((st.mode & 0o777).toString(8)).toBe('600');
    if (!root) ctx.skip(true, 'changing a socket’s owner needs root');
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
  });

  test('a socket a live server answers on is refused (one line, exit 1); a stale one is replaced', async () => {
    const sock = join(dir(), 'busy.sock');
    const first = procs.start(onSocket(sock, 'examples/hello.mjs'));
    await first.listening();
    const r = await runTsgi(onSocket(sock, 'examples/hello.mjs'));
    expect(expectOneLine(r, 1)).toBe(
      `tsgi: cannot listen on ${sock}: ${sock} is in use by a running server; stop it or choose another address with --listen`,
    );
    // SIGKILL leaves the socket file behind; the next start replaces it.
    first.kill('SIGKILL');
    await first.exited;
    expect(statSync(sock).isSocket()).toBe(true);
    const second = procs.start(onSocket(sock, 'examples/hello.mjs'));
    await second.listening();
    expect((await cgiFcgi(sock, cgiEnv('/app/'))).stdout.toString('latin1')).toBe(HELLO);
  });
});

describeWithServer('cgi-fcgi', 'tsgi fastcgi --workers on a unix socket', () => {
  const { procs, dir } = useProcsInDir('tsgi-cli-fcgi-workers-');

  test('a stale socket file is replaced once, by the master: both workers serve; SIGTERM removes the file', async () => {
    const sock = join(dir(), 'workers.sock');
    // A socket file nothing answers on, as a killed server leaves it.
    const dead = procs.start(onSocket(sock, '--socket-mode', '600', 'examples/hello.mjs'));
    await dead.listening();
    dead.kill('SIGKILL');
    await dead.exited;
    expect(statSync(sock).isSocket()).toBe(true);
    const t = procs.start(onSocket(sock, '--socket-mode', '660', '--workers', '2', SLOW));
    expect(await t.listening()).toMatch(
      new RegExp(`^unix:${sock.replace(/[.]/g, '\\.')} \\(2 workers, master pid [0-9]+\\)$`),
    );
    expect((statSync(sock).mode & 0o777).toString(8)).toBe('660');
    const pids = new Set<string>();
    for (let i = 0; i < 30 && pids.size < 2; i++) {
      const r = await cgiFcgi(sock, cgiEnv('/app/'));
      pids.add(/pid ([0-9]+)\n$/.exec(r.stdout.toString())?.[1] ?? 'none');
    }
    expect(pids.size).toBe(2);
    expect(pids.has('none')).toBe(false);
    t.kill('SIGTERM');
    expect(await t.exited).toEqual({ code: 0, signal: null });
    expect(() => statSync(sock)).toThrow(/ENOENT/);
  });
});

describeWithServer(['nginx', 'curl'], 'tsgi fastcgi behind nginx (fastcgi_pass)', () => {
  const front = useTsgiBehind('nginx', 'fastcgi', ['--mount', '/app', 'examples/environ.mjs']);

  test('curl gets the environ: --mount /app undoes nginx’s whole-path SCRIPT_NAME', async () => {
    const { head, body } = await curlOk(front().url('/extra/p%20q?x=1'));
    expect(head).toMatch(/\r\nContent-Type: application\/json\r\n/);
    expect(head).toContain(`\r\nContent-Length: ${Buffer.byteLength(body)}`);
    const e = JSON.parse(body);
    expect(e.SCRIPT_NAME).toBe('/app');
    expect(e.PATH_INFO).toBe('/extra/p q');
    expect(e.QUERY_STRING).toBe('x=1');
    expect(e.REQUEST_URI).toBe('/app/extra/p%20q?x=1');
    expect(e.SERVER_SOFTWARE).toMatch(/^nginx\//);
    expect(e['tsgi.multiprocess']).toBe(false);
  });
});

describeWithServer(['nginx', 'cgi-fcgi', 'curl'], 'tsgi fastcgi on fd 0, under spawn-fcgi', () => {
  describeWithBinary('spawn-fcgi', 'spawn-fcgi', 'spawn-fcgi -n leaves the socket on fd 0', () => {
    const { procs, dir } = useProcsInDir('tsgi-cli-spawnfcgi-');
    let tcp: Served;
    let port: number;
    /** `spawn-fcgi -n SPAWN_ARGS -- node bin.js fastcgi TSGI_ARGS`. */
    const spawnTsgiFastcgi = (spawnArgs: string[], tsgiArgs: string[]) =>
      spawnFcgi(procs, spawnArgs, ['fastcgi', ...tsgiArgs]);
    beforeAll(async () => {
      port = await freePort();
      tcp = spawnTsgiFastcgi(
        ['-a', '127.0.0.1', '-p', String(port)],
        ['--mount', '/app', 'examples/environ.mjs'],
      );
      await tcp.listening();
    });
    const front = useFront(() => ({
      server: 'nginx',
      protocol: 'fastcgi',
      backend: { host: '127.0.0.1', port },
    }));

    test('-s SOCK: listening on fd:0 (unix:SOCK); cgi-fcgi gets hello byte for byte; SIGTERM exits 0', async () => {
      const sock = join(dir(), 'spawned.sock');
      const t = spawnTsgiFastcgi(['-s', sock, '-M', '0600'], ['examples/hello.mjs']);
      expect(await t.listening()).toBe(`fd:0 (unix:${sock})`);
      expect((statSync(sock).mode & 0o777).toString(8)).toBe('600');
      const r = await cgiFcgi(sock, cgiEnv('/app/'));
      expect(r.stdout.toString('latin1')).toBe(HELLO);
      // spawn-fcgi -n execs the command: the pid is tsgi's own.
      t.kill('SIGTERM');
      expect(await t.exited).toEqual({ code: 0, signal: null });
      expect(t.stderr).toMatch(/^tsgi: SIGTERM: no new connections/);
    });

    test('-p PORT: listening on fd:0 (fcgi://127.0.0.1:PORT); nginx in front, curl', async () => {
      expect(tcp.address).toBe(`fd:0 (fcgi://127.0.0.1:${port})`);
      const r = await curl([front().url('/x/y?z=1')]);
      expect(r.code).toBe(0);
      const e = JSON.parse(r.stdout.toString());
      expect([e.SCRIPT_NAME, e.PATH_INFO, e.QUERY_STRING]).toEqual(['/app', '/x/y', 'z=1']);
      expect(e.SERVER_SOFTWARE).toMatch(/^nginx\//);
      const direct = await cgiFcgi(port, cgiEnv('/app/direct'));
      expect(JSON.parse(direct.stdout.toString().split('\r\n\r\n')[1]!).PATH_INFO).toBe('/direct');
    });

    test('an inherited socket with --workers is refused: one line, exit 2', async () => {
      const t = spawnTsgiFastcgi(
        ['-s', join(dir(), 'workers.sock')],
        ['--workers', '2', 'examples/hello.mjs'],
      );
      expect(await t.exited).toEqual({ code: 2, signal: null });
      expect(t.stdout).toBe('');
      expect(t.stderr).toBe(
        "tsgi: tsgi fastcgi cannot share an inherited socket, fd 0 (a listening socket, no --listen), with --workers or --max-requests (node:cluster's master would own it); drop them and let the supervisor start processes (spawn-fcgi -F N, mod_fcgid), or give --listen HOST:PORT or unix:/path\n",
      );
    });
  });
});
