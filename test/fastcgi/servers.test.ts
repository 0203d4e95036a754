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
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FastcgiServer, serveFastcgi } from '@tsgi/fastcgi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFrontConformance } from '../conformance/front.js';
import { cgiEnv, cgiFcgi, parseCgi } from '../harness/cgi.js';
import { httpRequest } from '../harness/clients.js';
import {
  describeFronts,
  errorLogWith,
  type FrontSpec,
  frontSpec,
  useSpecFronts,
} from '../harness/fronts.js';
import { describeWithServer } from '../harness/servers.js';
import { COMMON_ROWS, observationsFile, registerProbeTests } from './probe-tests.js';
import { md5, Probe, patternBody, serversApp, sleep, waitFor } from './shared.js';

/** `unix`: the backend listens on a unix socket instead of TCP. */
const FRONTS: Array<FrontSpec & { unix?: boolean }> = [
  frontSpec('nginx', 'nginx fastcgi_pass (TCP, no keep-conn)', 'nginx'),
  frontSpec('nginx-keepconn', 'nginx, fastcgi_keep_conn on + keepalive 16 (TCP)', 'nginx', {
    keepConn: true,
  }),
  {
    ...frontSpec('nginx-unix', 'nginx, keep-conn, unix socket', 'nginx', { keepConn: true }),
    unix: true,
  },
  frontSpec('nginx-nobuffering', 'nginx, keep-conn, fastcgi_request_buffering off', 'nginx', {
    keepConn: true,
    requestBuffering: false,
  }),
  frontSpec('lighttpd', 'lighttpd mod_fastcgi', 'lighttpd'),
  frontSpec('apache', 'Apache mod_proxy_fcgi', 'apache'),
  frontSpec('apache-trust-cl', 'Apache mod_proxy_fcgi, ap_trust_cgilike_cl', 'apache', {
    trustCgiLikeCl: true,
  }),
];

const observations = observationsFile(
  'fastcgi',
  {
    connections: '20 sequential requests: backend connections the adapter accepted',
    ...COMMON_ROWS,
    stderr: '`tsgi.errors` (FCGI_STDERR) lands in',
  },
  'TSGI_OBSERVATIONS_DIR=DIR npx vitest run test/fastcgi/servers.test.ts',
);

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

describeFronts('fastcgi', FRONTS, (spec) => {
  const probe = new Probe();
  let backend: Awaited<ReturnType<typeof startBackend>>;
  beforeAll(async () => {
    observations.column(spec.id, spec.label, spec.server);
    backend = await startBackend(probe, spec.unix === true);
  });
  afterAll(async () => {
    await backend?.close();
  });
  const fronts = useSpecFronts('fastcgi', spec, () => backend.backend, { streaming: true });
  const { front } = fronts;

  runFrontConformance('fastcgi', spec, front);

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
      spec,
      fronts,
      probe,
      observations,
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
      const found = (await errorLogWith(front(), line)).includes(line);
      obs('stderr', found ? 'the server’s error log' : 'NOT in the error log');
      expect(found).toBe(true);
    });
  });
});

// ---- cgi-fcgi (libfcgi's client) ------------------------------------------------------------

/**
 * viaCgiFcgi: the request in `env` (the CGI variables a server would set for it) and `stdin`
 * sent with `cgi-fcgi -bind -connect 127.0.0.1:PORT`, and the CGI response it prints, parsed.
 */
async function viaCgiFcgi(
  port: number,
  env: Record<string, string | Buffer>,
  stdin: Buffer = Buffer.alloc(0),
) {
  const r = await cgiFcgi(port, env, stdin);
  const { head, body } = parseCgi(r.stdout);
  const headers: Array<[string, string]> = [];
  for (const line of head) {
    const i = line.indexOf(':');
    if (i > 0) headers.push([line.slice(0, i), line.slice(i + 1).trim()]);
  }
  const status = Number.parseInt(
    headers.find(([k]) => k.toLowerCase() === 'status')?.[1] ?? '200',
    10,
  );
  return { code: r.code, status, headers, body, stderr: r.stderr };
}

/** The CGI variables of a GET `target`, from cgi-fcgi as the server. */
const cgiFcgiEnv = (target: string, more: Record<string, string | Buffer> = {}) =>
  cgiEnv(target, { SERVER_SOFTWARE: 'cgi-fcgi', ...more });

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
      const r = await viaCgiFcgi(
        port(),
        cgiFcgiEnv('/app/extra/p%20q?x=1', { HTTP_X_OBS: 'dump' }),
      );
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
      const r = await viaCgiFcgi(
        port(),
        cgiFcgiEnv('/app/same', { REQUEST_METHOD: 'HEAD', HTTP_X_OBS: 'identity-cl' }),
      );
      expect(probe.methods).toEqual(['HEAD']);
      expect(r.status).toBe(200);
      expect(r.headers).toContainEqual(['Content-Length', '2000']);
      expect(r.body.length).toBe(2000);
    });

    it('a 1 MiB POST on stdin, md5 checked', async () => {
      const body = patternBody(1024 * 1024, 5);
      const r = await viaCgiFcgi(
        port(),
        cgiFcgiEnv('/app/upload', {
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
      const r = await viaCgiFcgi(
        port(),
        cgiFcgiEnv('/app/caf%E9?x=%E9', {
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
      const r = await viaCgiFcgi(
        port(),
        cgiFcgiEnv('/app/types', { HTTP_X_TSGI_CASE: 'environ-types' }),
      );
      expect(r.status).toBe(200);
      expect(r.stderr).toContain('conformance: environ-types wrote this line to tsgi.errors');
    });

    it('an app that throws: the fixed 500 to the client, the full error to the log (FCGI_STDERR) [7.1]', async () => {
      const r = await viaCgiFcgi(
        port(),
        cgiFcgiEnv('/app/boom', { HTTP_X_TSGI_CASE: 'app-throws' }),
      );
      expect(r.status).toBe(500);
      expect(r.body.toString('latin1')).toBe('Internal Server Error\n');
      expect(r.headers.some(([, v]) => v.includes('secret'))).toBe(false);
      // FCGI_STDERR is the web server's error log (cgi-fcgi prints it on its stderr), not the
      // client's response.
      expect(r.stderr).toContain('core: GET /app/boom: Error: secret diagnostic 1234');
    });
  },
);
