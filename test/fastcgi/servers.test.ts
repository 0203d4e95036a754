// The FastCGI adapter (@tsgi/fastcgi) behind real servers: nginx (TCP and unix socket;
// `fastcgi_keep_conn on` with upstream keepalive, and off; `fastcgi_request_buffering off`),
// Apache mod_proxy_fcgi (default, and `ap_trust_cgilike_cl`) and lighttpd mod_fastcgi, plus
// `cgi-fcgi -bind -connect` (libfcgi) as a client. The FastCGI server runs in this process,
// serving the conformance app with `mount: '/app'` (nginx's stock params and Apache put the
// whole path in SCRIPT_NAME), plus the probes of ./shared.ts.
//
// Keep-conn is proven by counting the connections the server accepts (its net.Server's
// 'connection' events), not assumed.
//
// What each server did is recorded and written to $TSGI_OBSERVATIONS_DIR/fastcgi.json (default:
// a tsgi-observations dir under the OS temp dir); `node bench/lib/render-observations.mjs
// --write docs/deploy/fastcgi.md <that file>` renders it into the table in docs/deploy/fastcgi.md.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FastcgiServer, serveFastcgi } from '@tsgi/fastcgi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frontTarget } from '../conformance/front.js';
import { runConformance, type Target } from '../conformance/suite.js';
import { httpRequest } from '../harness/clients.js';
import {
  describeWithServer,
  type FrontHandle,
  type FrontOptions,
  findBinary,
  type ToolName,
  useFront,
} from '../harness/servers.js';
import { COMMON_ROWS, registerProbeTests } from './probe-tests.js';
import { md5, Observations, Probe, patternBody, serversApp, sleep, waitFor } from './shared.js';

interface FrontSpec {
  id: string;
  label: string;
  server: FrontOptions['server'];
  tools: ToolName[];
  /** Listen on a unix socket instead of TCP. */
  unix?: boolean;
  options: Partial<FrontOptions>;
  compression: Partial<FrontOptions>;
}

const FRONTS: FrontSpec[] = [
  {
    id: 'nginx',
    label: 'nginx fastcgi_pass (TCP, no keep-conn)',
    server: 'nginx',
    tools: ['nginx'],
    options: {},
    compression: { gzip: true },
  },
  {
    id: 'nginx-keepconn',
    label: 'nginx, fastcgi_keep_conn on + keepalive 16 (TCP)',
    server: 'nginx',
    tools: ['nginx'],
    options: { keepConn: true },
    compression: { keepConn: true, gzip: true },
  },
  {
    id: 'nginx-unix',
    label: 'nginx, keep-conn, unix socket',
    server: 'nginx',
    tools: ['nginx'],
    unix: true,
    options: { keepConn: true },
    compression: { keepConn: true, gzip: true },
  },
  {
    id: 'nginx-nobuffering',
    label: 'nginx, keep-conn, fastcgi_request_buffering off',
    server: 'nginx',
    tools: ['nginx'],
    options: { keepConn: true, requestBuffering: false },
    compression: { keepConn: true, requestBuffering: false, gzip: true },
  },
  {
    id: 'lighttpd',
    label: 'lighttpd mod_fastcgi',
    server: 'lighttpd',
    tools: ['lighttpd'],
    options: {},
    compression: { deflate: true },
  },
  {
    id: 'apache',
    label: 'Apache mod_proxy_fcgi',
    server: 'apache',
    tools: ['apache'],
    options: {},
    compression: { deflate: true },
  },
  {
    id: 'apache-trust-cl',
    label: 'Apache mod_proxy_fcgi, ap_trust_cgilike_cl',
    server: 'apache',
    tools: ['apache'],
    options: { trustCgiLikeCl: true },
    compression: { trustCgiLikeCl: true, deflate: true },
  },
];

const observations = new Observations(
  'fastcgi',
  {
    connections: '20 sequential requests: backend connections the adapter accepted',
    ...COMMON_ROWS,
    stderr: '`tsgi.errors` (FCGI_STDERR) lands in',
  },
  'TSGI_OBSERVATIONS_DIR=DIR npx vitest run test/fastcgi/servers.test.ts',
);

afterAll(() => {
  const path = observations.write();
  if (path) console.log(`fastcgi observations written to ${path}`);
});

function target(spec: FrontSpec, front: () => FrontHandle): Target {
  return frontTarget('fastcgi', spec, () => front().port);
}

/** A FastCGI server in this process that counts the connections it accepts. */
async function startBackend(probe: Probe, unix: boolean) {
  let dir: string | undefined;
  let accepted = 0;
  let server: FastcgiServer;
  if (unix) {
    dir = await mkdtemp(join(tmpdir(), 'tsgi-fastcgi-sock-'));
    await chmod(dir, 0o755);
    server = await serveFastcgi(serversApp(probe), {
      listen: { path: join(dir, 'fcgi.sock'), mode: 0o666 },
      mount: '/app',
      errors: probe.sink,
    });
  } else {
    server = await serveFastcgi(serversApp(probe), {
      listen: { host: '127.0.0.1', port: 0 },
      mount: '/app',
      errors: probe.sink,
    });
  }
  server.netServer.on('connection', () => {
    accepted++;
  });
  const a = server.address;
  return {
    server,
    accepted: () => accepted,
    backend: unix
      ? { socket: join(dir as string, 'fcgi.sock') }
      : { host: '127.0.0.1', port: (a as { port: number }).port },
    async close() {
      await server.close({ timeoutMs: 1000 });
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

for (const spec of FRONTS) {
  describeWithServer(spec.tools, `fastcgi behind ${spec.label}`, () => {
    const probe = new Probe();
    let backend: Awaited<ReturnType<typeof startBackend>>;
    beforeAll(async () => {
      observations.column(spec.id, spec.label, spec.server);
      backend = await startBackend(probe, spec.unix === true);
    });
    afterAll(async () => {
      await backend?.close();
    });
    const base = (): FrontOptions => ({
      server: spec.server,
      protocol: 'fastcgi',
      backend: backend.backend,
      prefix: '/app',
      ...spec.options,
    });
    const front = useFront(base);
    const compressed = useFront(() => ({ ...base(), ...spec.compression }));
    const streaming =
      spec.server === 'lighttpd'
        ? useFront(() => ({ ...base(), extraConfig: 'server.stream-response-body = 2' }))
        : front;

    runConformance(`fastcgi/${spec.id}`, () => target(spec, front));

    describe(`${spec.label}: beyond the conformance suite`, () => {
      const obs = (row: string, cell: string, detail?: unknown) =>
        observations.observe(spec.id, row, cell, detail);

      it(`keep-conn, counted: ${spec.options.keepConn ? 'one backend connection serves many requests' : 'one backend connection per request'}`, async () => {
        // Let connections from earlier tests settle (nginx closes non-kept ones at once).
        await sleep(200);
        const before = backend.accepted();
        for (let i = 0; i < 20; i++) {
          const r = await httpRequest({
            port: front().port,
            path: `/app/hello?i=${i}`,
            headers: [['X-Tsgi-Case', 'hello']],
          });
          expect(r.status).toBe(200);
          expect(r.body.toString()).toBe('Hello, World!\n');
        }
        const opened = backend.accepted() - before;
        const open = backend.server.connections;
        obs(
          'connections',
          spec.options.keepConn
            ? `${opened} new (connections kept from earlier requests reused), ${open} open after: FCGI_KEEP_CONN honoured`
            : `${opened} (one per request), ${open} open after`,
          { opened, openNow: open },
        );
        if (spec.options.keepConn) {
          // nginx keeps up to 16 idle connections per worker and reuses them: sequential
          // requests need one (a second may be opened while the first is being released).
          expect(opened).toBeLessThanOrEqual(2);
          expect(backend.server.connections).toBeGreaterThanOrEqual(1);
        } else {
          // Without FCGI_KEEP_CONN the adapter closes after each request (S3.5), and no
          // server here asks for it by default.
          expect(opened).toBe(20);
        }
      });

      registerProbeTests({
        id: spec.id,
        server: spec.server,
        front,
        compressed,
        streaming,
        probe,
        observations,
        trustCl: spec.options.trustCgiLikeCl === true,
        chunked(status, got, body) {
          expect(status).toBe(200);
          expect(got?.md5).toBe(md5(body));
          expect(got?.length).toBe(body.length);
          const te = `HTTP_TRANSFER_ENCODING ${got?.transferEncoding ?? 'unset'}`;
          if (spec.server === 'apache' || spec.options.requestBuffering === false) {
            // Streamed: Apache mod_proxy_fcgi sends no CONTENT_LENGTH; nginx with
            // fastcgi_request_buffering off sends it empty (absent for the app) and ends the
            // body with the empty FCGI_STDIN record. Both pass the client's TE.
            expect(got?.contentLength).toBeNull();
            expect(got?.transferEncoding).toBe('chunked');
            return `streamed, no CONTENT_LENGTH (input ends at the empty FCGI_STDIN), ${te}; md5 ok`;
          }
          // nginx and lighttpd dechunk and buffer, then send CONTENT_LENGTH; nginx still
          // passes the client's Transfer-Encoding, lighttpd removes it.
          expect(got?.contentLength).toBe(String(body.length));
          expect(got?.transferEncoding).toBe(spec.server === 'nginx' ? 'chunked' : null);
          return `dechunked and buffered: CONTENT_LENGTH=${got?.contentLength}, ${te}; md5 ok`;
        },
      });

      it('tsgi.errors goes out as FCGI_STDERR and lands in the server’s error log [2.11]', async () => {
        const r = await httpRequest({
          port: front().port,
          path: '/app/types',
          headers: [['X-Tsgi-Case', 'environ-types']],
        });
        expect(r.status).toBe(200);
        const line = 'conformance: environ-types wrote this line to tsgi.errors';
        let found = false;
        for (let i = 0; i < 30 && !found; i++) {
          found = (await front().errorLog()).includes(line);
          if (!found) await sleep(100);
        }
        obs('stderr', found ? 'the server’s error log' : 'NOT in the error log');
        expect(found).toBe(true);
      });
    });
  });
}

// ---- cgi-fcgi (libfcgi's client) ------------------------------------------------------------

interface CgiFcgiResult {
  code: number | null;
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  stderr: string;
}

/**
 * cgiFcgi: runs `cgi-fcgi -bind -connect HOST:PORT` as a CGI program would be run: the
 * variables in `env` (values are bytes, set through printf so non-UTF-8 bytes survive) and
 * `stdin` as the body. Parses the CGI response it prints.
 */
let scripts = 0;
function cgiFcgi(
  port: number,
  env: Record<string, string | Buffer>,
  stdin: Buffer = Buffer.alloc(0),
) {
  const bin = findBinary('cgi-fcgi') as string;
  // sh -c 'export NAME="$(printf '\ooo...')"; ...; exec cgi-fcgi ...': octal escapes carry
  // any byte, which a Node spawn env (UTF-8 strings) cannot.
  const octal = (b: Buffer) => [...b].map((x) => `\\${x.toString(8).padStart(3, '0')}`).join('');
  const script = Object.entries(env)
    .map(([k, v]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`bad name ${k}`);
      // A trailing x keeps $(...) from eating trailing newlines; it is cut off again.
      return `v="$(printf '${octal(Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1'))}x')"; export ${k}="\${v%x}"`;
    })
    .join('\n');
  // The script goes in a file: one argument may not exceed 128 KiB (MAX_ARG_STRLEN).
  const file = join(tmpdir(), `tsgi-cgi-fcgi-${process.pid}-${++scripts}.sh`);
  writeFileSync(file, `${script}\nexec "$1" -bind -connect "127.0.0.1:$2"\n`);
  return new Promise<CgiFcgiResult>((resolve, reject) => {
    const child = spawn('/bin/sh', [file, bin, String(port)], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString('latin1');
    });
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(file, { force: true });
      const data = Buffer.concat(out);
      const end = data.indexOf('\r\n\r\n');
      const headers: Array<[string, string]> = [];
      for (const line of (end < 0 ? data : data.subarray(0, end))
        .toString('latin1')
        .split('\r\n')) {
        const i = line.indexOf(':');
        if (i > 0) headers.push([line.slice(0, i), line.slice(i + 1).trim()]);
      }
      const status = Number.parseInt(
        headers.find(([k]) => k.toLowerCase() === 'status')?.[1] ?? '200',
        10,
      );
      resolve({
        code,
        status,
        headers,
        body: end < 0 ? Buffer.alloc(0) : data.subarray(end + 4),
        stderr: err,
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}

const cgiEnv = (target: string, more: Record<string, string | Buffer> = {}) => {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'cgi-fcgi',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: '127.0.0.1',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REQUEST_METHOD: 'GET',
    REQUEST_URI: target,
    SCRIPT_NAME: '/app',
    // Percent-decoded to bytes (latin-1), as a web server would.
    PATH_INFO: path
      .slice(4)
      .replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
    QUERY_STRING: q < 0 ? '' : target.slice(q + 1),
    ...more,
  };
};

describeWithServer(
  'cgi-fcgi',
  'fastcgi with cgi-fcgi -bind -connect (libfcgi) as the client',
  () => {
    const probe = new Probe();
    let backend: Awaited<ReturnType<typeof startBackend>>;
    beforeAll(async () => {
      backend = await startBackend(probe, false);
    });
    afterAll(async () => {
      await backend?.close();
    });
    const port = () => (backend.backend as { port: number }).port;

    it('GET: the environ cgi-fcgi sends, split by the mount, one connection per request', async () => {
      const before = backend.accepted();
      const r = await cgiFcgi(port(), cgiEnv('/app/extra/p%20q?x=1', { HTTP_X_OBS: 'dump' }));
      expect(r.code).toBe(0);
      expect(r.status).toBe(200);
      const d = JSON.parse(r.body.toString('utf8'));
      expect(d.vars.SCRIPT_NAME).toBe('/app');
      expect(d.vars.PATH_INFO).toBe('/extra/p q');
      expect(d.vars.QUERY_STRING).toBe('x=1');
      expect(d.vars.REQUEST_URI).toBe('/app/extra/p%20q?x=1');
      expect(d.vars.SERVER_SOFTWARE).toBe('cgi-fcgi');
      // libfcgi's cgi-fcgi never sets FCGI_KEEP_CONN: the adapter closes after the request.
      expect(backend.accepted() - before).toBe(1);
      await waitFor(() => backend.server.connections === 0, 2000);
      expect(backend.server.connections).toBe(0);
    });

    it('HEAD: the adapter sends the app’s body; cgi-fcgi, not an HTTP server, passes it on [8.2]', async () => {
      probe.methods.length = 0;
      const r = await cgiFcgi(
        port(),
        cgiEnv('/app/same', { REQUEST_METHOD: 'HEAD', HTTP_X_OBS: 'identity-cl' }),
      );
      expect(probe.methods).toEqual(['HEAD']);
      expect(r.status).toBe(200);
      expect(r.headers).toContainEqual(['Content-Length', '2000']);
      expect(r.body.length).toBe(2000);
    });

    it('a 1 MiB POST on stdin, md5 checked', async () => {
      const body = patternBody(1024 * 1024, 5);
      const r = await cgiFcgi(
        port(),
        cgiEnv('/app/upload', {
          REQUEST_METHOD: 'POST',
          CONTENT_LENGTH: String(body.length),
          CONTENT_TYPE: 'application/octet-stream',
          HTTP_X_OBS: 'md5',
        }),
        body,
      );
      expect(r.status).toBe(200);
      const got = JSON.parse(r.body.toString());
      expect(got).toMatchObject({
        length: body.length,
        md5: md5(body),
        contentLength: String(body.length),
      });
    });

    it('non-UTF-8 bytes in params and a 40 KiB header (pairs across PARAMS records, 4-byte lengths) arrive byte-exact [1.1]', async () => {
      const big = Buffer.alloc(40 * 1024, 'abcdefgh');
      const r = await cgiFcgi(
        port(),
        cgiEnv('/app/caf%E9?x=%E9', {
          PATH_INFO: Buffer.from('/caf\u00e9', 'latin1'),
          QUERY_STRING: Buffer.from('x=caf\u00e9', 'latin1'),
          HTTP_X_LATIN: Buffer.from('caf\u00e9\u00ff', 'latin1'),
          HTTP_X_BIG: big,
          HTTP_X_OBS: 'dump',
        }),
      );
      expect(r.status).toBe(200);
      const d = JSON.parse(r.body.toString('utf8'));
      expect(d.pathInfoHex).toBe('2f636166e9');
      expect(d.uriEncoding).toBe('iso-8859-1');
      expect(d.queryHex).toBe(Buffer.from('x=caf\u00e9', 'latin1').toString('hex'));
      expect(d.latinHex).toBe('636166e9ff');
      expect(d.vars.HTTP_X_BIG).toBe(big.toString('latin1'));
    });

    it('tsgi.errors reaches cgi-fcgi’s stderr (FCGI_STDERR) [2.11]', async () => {
      const r = await cgiFcgi(port(), cgiEnv('/app/types', { HTTP_X_TSGI_CASE: 'environ-types' }));
      expect(r.status).toBe(200);
      expect(r.stderr).toContain('conformance: environ-types wrote this line to tsgi.errors');
    });

    it('an app that throws: the fixed 500 to the client, the full error to the log (FCGI_STDERR) [7.1]', async () => {
      const r = await cgiFcgi(port(), cgiEnv('/app/boom', { HTTP_X_TSGI_CASE: 'app-throws' }));
      expect(r.status).toBe(500);
      expect(r.body.toString('latin1')).toBe('Internal Server Error\n');
      expect(r.headers.some(([, v]) => v.includes('secret'))).toBe(false);
      // FCGI_STDERR is the web server's error log (cgi-fcgi prints it on its stderr), not the
      // client's response.
      expect(r.stderr).toContain('core: GET /app/boom: Error: secret diagnostic 1234');
    });
  },
);
