// The CGI adapter behind real servers: Apache (mod_cgid + mpm_event, mod_cgi + mpm_prefork),
// lighttpd mod_cgi (with and without cgi.local-redir) and nginx + fcgiwrap. Each runs the
// conformance suite and the checks below against one bundled CGI script (script.ts).
//
// What each server did is recorded (observe()) and written to .tmp/cgi/servers.json when the
// file finishes; `node bench/cgi/make-table.mjs --write` turns it into the table in
// docs/deploy/cgi.md. Assertions pin what the servers really do (research/real-servers.md
// has the earlier measurements; differences are noted where they occur).
import { Buffer } from 'node:buffer';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFile, REPO_ROOT } from '../../packages/cgi/test/helpers.js';
import { messageHeaders } from '../conformance/cases.js';
import { runFrontConformance } from '../conformance/front.js';
import { getThenHead } from '../fastcgi/probe-tests.js';
import { inPieces, md5, patternBody, serverVersion } from '../fastcgi/shared.js';
import { httpRequest, rawExchangeDetailed } from '../harness/clients.js';
import { describeFronts, errorLogWith, frontSpec, useSpecFronts } from '../harness/fronts.js';
import type { FrontHandle } from '../harness/servers.js';
import { IDENTITY_TEXT, REDIRECT_TARGET } from './extras.js';
import { parseRawResponse } from './raw.js';

const FRONTS = [
  frontSpec('apache-cgid-event', 'Apache mod_cgid (mpm_event)', 'apache', { mpm: 'event' }),
  frontSpec('apache-cgi-prefork', 'Apache mod_cgi (mpm_prefork)', 'apache', { mpm: 'prefork' }),
  frontSpec('apache-cgid-trust-cl', 'Apache mod_cgid, ap_trust_cgilike_cl', 'apache', {
    mpm: 'event',
    trustCgiLikeCl: true,
  }),
  frontSpec('lighttpd', 'lighttpd mod_cgi', 'lighttpd'),
  frontSpec('lighttpd-local-redir', 'lighttpd mod_cgi, cgi.local-redir', 'lighttpd', {
    localRedir: true,
  }),
  frontSpec('nginx-fcgiwrap', 'nginx + fcgiwrap', 'nginx', {}, ['nginx', 'fcgiwrap']),
];

const RESULTS = join(REPO_ROOT, '.tmp', 'cgi', 'servers.json');
const observations: Record<string, Record<string, unknown>> = {};

/** observe: records what a server did, for the generated table in docs/deploy/cgi.md. */
function observe(front: string, key: string, value: unknown): void {
  (observations[front] ??= {})[key] = value;
}

let dir: string;
let script: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsgi-cgi-servers-'));
  script = await bundleFile(
    fileURLToPath(new URL('./script.ts', import.meta.url)),
    // .mjs: Node decides the module format by extension; `app.cgi` would be refused
    // (ERR_UNKNOWN_FILE_EXTENSION) for an ES module script.
    join(dir, 'app.mjs'),
    { vitest: fileURLToPath(new URL('./vitest-stub.ts', import.meta.url)) },
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  if (Object.keys(observations).length === 0) return;
  // Merge: a run of one front (vitest -t) keeps the others' last observations.
  let previous: { fronts?: Record<string, unknown> } = {};
  try {
    previous = JSON.parse(readFileSync(RESULTS, 'utf8'));
  } catch {
    // first run
  }
  const fronts: Record<string, unknown> = { ...(previous.fronts ?? {}) };
  for (const spec of FRONTS) {
    if (observations[spec.id] === undefined) continue;
    fronts[spec.id] = {
      label: spec.label,
      version: serverVersion(spec.server),
      node: process.version,
      observed: observations[spec.id],
    };
  }
  mkdirSync(join(REPO_ROOT, '.tmp', 'cgi'), { recursive: true });
  writeFileSync(
    RESULTS,
    `${JSON.stringify({ generatedBy: 'npx vitest run test/cgi/servers.test.ts', fronts }, null, 2)}\n`,
  );
});

/** raw: one request over a fresh connection, the response parsed as it came. */
async function raw(front: FrontHandle, method: string, target: string, headers: string[] = []) {
  const request = [
    `${method} ${target} HTTP/1.1`,
    `Host: 127.0.0.1:${front.port}`,
    'Connection: close',
    ...headers,
    '',
    '',
  ].join('\r\n');
  const r = await rawExchangeDetailed(front.port, Buffer.from(request, 'latin1'), {
    timeoutMs: 4000,
  });
  return { ...parseRawResponse(r.data, method), ended: r.reason };
}

describeFronts('cgi', FRONTS, (spec) => {
  const { front, compressed } = useSpecFronts('cgi', spec, () => ({ script }));
  beforeAll(async () => {
    // The local-redirect target: a static file in each server's document root.
    for (const f of [front(), compressed()]) {
      await writeFile(join(f.dir, 'htdocs', REDIRECT_TARGET.slice(1)), 'redirect target\n');
    }
  });

  runFrontConformance('cgi', spec, front);

  describe(`${spec.label}: beyond the conformance suite`, () => {
    const extra = (name: string, init: Partial<Parameters<typeof httpRequest>[0]> = {}) =>
      httpRequest({
        port: front().port,
        path: '/app/extra',
        ...init,
        headers: [['X-Cgi-Extra', name], ...(init.headers ?? [])],
      });

    for (const withCl of [true, false]) {
      const name = withCl ? 'identityCl' : 'identityNoCl';
      it(`GET vs HEAD headers, ${withCl ? 'with' : 'without'} Content-Length`, async () => {
        const { get, head, g, h } = await getThenHead({
          port: front().port,
          path: '/app/extra',
          headers: [['X-Cgi-Extra', name]],
        });
        expect(get.status).toBe(200);
        expect(get.body.equals(IDENTITY_TEXT)).toBe(true);
        expect(head.body.length).toBe(0);
        const noLength = (r: typeof get) =>
          messageHeaders({ status: 0, headers: r.rawHeaders, body: Buffer.alloc(0) }).filter(
            (x) => !x.startsWith('content-length:'),
          );
        observe(spec.id, withCl ? 'headWithCl' : 'headNoCl', {
          get: g,
          head: h,
          identical:
            JSON.stringify(
              messageHeaders({ status: 0, headers: get.rawHeaders, body: get.body }),
            ) ===
            JSON.stringify(
              messageHeaders({ status: 0, headers: head.rawHeaders, body: head.body }),
            ),
        });
        // Everything but the framing is the same on every server.
        expect(noLength(head)).toEqual(noLength(get));
        for (const r of [g, h]) if (r.contentLength !== null) expect(r.contentLength).toBe('2000');
        if (spec.server === 'apache') {
          // Apache >= 2.4.59 drops a CGI's Content-Length (CVE-2024-24795, no
          // ap_trust_cgilike_cl here) and computes its own only when the whole body
          // arrived in one read: GET chunked or CL=2000, never the app's bytes cut.
          if (g.contentLength === null) expect(g.transferEncoding).toBe('chunked');
        } else if (withCl || spec.server === 'lighttpd') {
          // nginx keeps the app's CL; lighttpd keeps it, or counts a body without one
          // (the app sends the body on HEAD too, so HEAD gets the same count).
          expect(g.contentLength).toBe('2000');
          expect(h.contentLength).toBe('2000');
        } else {
          // nginx without CL: GET chunked, HEAD neither CL nor TE (RFC 9112 6.3).
          expect(g.transferEncoding).toBe('chunked');
          expect(h).toEqual({ ...g, transferEncoding: null });
        }
      });
    }

    for (const withCl of [true, false]) {
      const name = withCl ? 'identityCl' : 'identityNoCl';
      it(`compression on: GET vs HEAD, ${withCl ? 'with' : 'without'} Content-Length`, async () => {
        const { get, g, h } = await getThenHead({
          port: compressed().port,
          path: '/app/extra',
          headers: [
            ['X-Cgi-Extra', name],
            ['Accept-Encoding', 'gzip'],
          ],
        });
        observe(spec.id, withCl ? 'compressionWithCl' : 'compressionNoCl', {
          get: g,
          head: h,
          identical:
            JSON.stringify({ ...g, transferEncoding: null, contentLength: null }) ===
            JSON.stringify({ ...h, transferEncoding: null, contentLength: null }),
        });
        expect(get.status).toBe(200);
        expect(g.contentEncoding).toBe('gzip');
        const { gunzipSync } = await import('node:zlib');
        expect(gunzipSync(get.body).equals(IDENTITY_TEXT)).toBe(true);
        if (spec.server === 'lighttpd') {
          // lighttpd mod_deflate never compresses HEAD (real-servers.md).
          expect(h.contentEncoding).toBeNull();
        } else {
          // nginx gzip and Apache mod_deflate compress HEAD alike when the app sends the
          // body on HEAD, as the adapter does (SPEC 8.2).
          expect(h.contentEncoding).toBe('gzip');
        }
      });
    }

    it('a 10 MiB POST with Content-Length, md5 checked', async () => {
      const body = patternBody(10 * 1024 * 1024);
      const r = await extra('md5', { method: 'POST', body, timeoutMs: 60_000 });
      const got = JSON.parse(r.body.toString());
      observe(spec.id, 'post10m', {
        contentLength: got.contentLength,
        ok: got.md5 === md5(body),
      });
      expect(got.length).toBe(body.length);
      expect(got.md5).toBe(md5(body));
      expect(got.contentLength).toBe(String(body.length));
    }, 60_000);

    it('a 10 MiB chunked POST, md5 checked', async () => {
      const body = patternBody(10 * 1024 * 1024);
      const r = await extra('md5', {
        method: 'POST',
        body: inPieces(body, 64 * 1024),
        chunked: true,
        timeoutMs: 60_000,
      });
      expect(r.status).toBe(200);
      const got = JSON.parse(r.body.toString());
      observe(spec.id, 'chunkedPost', {
        contentLength: got.contentLength,
        transferEncoding: got.transferEncoding,
        ok: got.md5 === md5(body),
      });
      expect(got.length).toBe(body.length);
      expect(got.md5).toBe(md5(body));
      if (spec.server === 'apache') {
        // mod_cgi(d) dechunks and streams: no CONTENT_LENGTH, stdin ends at EOF.
        expect(got.contentLength).toBeNull();
      } else {
        // nginx and lighttpd buffer the dechunked body and send CONTENT_LENGTH.
        expect(got.contentLength).toBe(String(body.length));
      }
    }, 60_000);

    it('non-UTF-8 bytes: %E9 in PATH_INFO, a raw 0xE9 in QUERY_STRING and in a header', async () => {
      const path = await extra('dump', { path: '/app/caf%E9' });
      const rawQuery = await raw(front(), 'GET', '/app/q?x=caf\u00e9&y=%E9', [
        'X-Cgi-Extra: dump',
        'X-Latin: caf\u00e9',
      ]);
      const seen: Record<string, unknown> = { pathStatus: path.status };
      if (path.status === 200) {
        const d = JSON.parse(path.body.toString('utf8'));
        seen.pathInfoHex = d.pathInfoHex;
        expect(d.pathInfoHex).toBe(Buffer.from('/caf\u00e9', 'latin1').toString('hex'));
        expect(d.uriEncoding).toBe('iso-8859-1');
      } else {
        // lighttpd looks the decoded path up on disk to find the script and answers 404
        // for a path that is not valid UTF-8 (the conformance case skips it too).
        expect(spec.server).toBe('lighttpd');
        expect(path.status).toBe(404);
      }
      seen.rawQueryStatus = rawQuery.status;
      if (rawQuery.status === 200) {
        const d = JSON.parse(rawQuery.body.toString('utf8'));
        seen.queryHex = d.queryHex;
        seen.headerHex = d.latinHex;
        // lighttpd percent-encodes the raw byte in the URL it derives QUERY_STRING from
        // (its URL normalization); Apache and nginx pass it raw.
        const query = spec.server === 'lighttpd' ? 'x=caf%E9&y=%E9' : 'x=caf\u00e9&y=%E9';
        expect(d.queryHex).toBe(Buffer.from(query, 'latin1').toString('hex'));
        expect(d.latinHex).toBe('636166e9');
      }
      observe(spec.id, 'nonUtf8', seen);
      // Every server here accepts a raw high byte in the query; record if one stops.
      expect(rawQuery.status).toBe(200);
    });

    it('a Proxy: header reaches the environ (or not), never process.env (httpoxy)', async () => {
      const r = await extra('dump', { headers: [['Proxy', 'http://attacker.example:3128']] });
      const d = JSON.parse(r.body.toString('utf8'));
      observe(spec.id, 'proxyHeader', {
        environ: d.vars.HTTP_PROXY ?? null,
        processEnvAtLoad: d.proxyAtLoad,
      });
      expect(d.proxyAtLoad).toBeNull();
      expect(d.proxyNow).toBeNull();
      if (spec.server === 'nginx') {
        // nginx passes HTTP_PROXY with the stock fastcgi_params (real-servers.md).
        expect(d.vars.HTTP_PROXY).toBe('http://attacker.example:3128');
      } else {
        // Apache and lighttpd strip the Proxy header themselves (httpoxy fixes).
        expect(d.vars.HTTP_PROXY).toBeUndefined();
      }
    });

    it('a local redirect (200, Location: /path, no body)', async () => {
      const r = await raw(front(), 'GET', '/app/go', ['X-Cgi-Extra: redirect']);
      const under = await raw(front(), 'GET', '/app/go', ['X-Cgi-Extra: redirectUnderScript']);
      observe(spec.id, 'localRedirect', {
        status: r.status,
        location: r.header('location') ?? null,
        servedTarget: r.body.toString() === 'redirect target\n',
        underScript: {
          status: under.status,
          location: under.header('location') ?? null,
          landed: under.body.toString() === 'landed\n',
        },
      });
      const internal =
        spec.server === 'apache' || (spec.server === 'lighttpd' && spec.options.localRedir);
      if (internal) {
        // The server fetched the path itself (RFC 3875 6.2.2).
        expect(r.status).toBe(200);
        expect(r.body.toString()).toBe('redirect target\n');
      } else {
        // nginx (FastCGI rules) and lighttpd without cgi.local-redir: a 302 to the client.
        expect(r.status).toBe(302);
        expect(r.header('location')).toMatch(/\/redirect-target\.txt$/);
      }
      if (spec.server === 'apache') {
        expect(under.status).toBe(200);
        expect(under.body.toString()).toBe('landed\n');
      } else {
        // lighttpd refuses a local redirect back under the script's own URL
        // (http_cgi_local_redir) and sends the 302 itself, as nginx always does.
        expect(under.status).toBe(302);
      }
    });

    it('an app that throws before its head: the fixed 500 reaches the client', async () => {
      const r = await raw(front(), 'GET', '/app/boom', ['X-Cgi-Extra: throwBefore']);
      observe(spec.id, 'throwBefore', { status: r.status, body: r.body.toString('latin1') });
      expect(r.status).toBe(500);
      expect(r.body.toString('latin1')).toBe('Internal Server Error\n');
      expect((await front().errorLog()).includes('servers test: thrown before the head')).toBe(
        true,
      );
    });

    it('an app that throws after its head (no Content-Length, and Content-Length 100)', async () => {
      const nocl = await raw(front(), 'GET', '/app/boom', ['X-Cgi-Extra: throwAfter']);
      const cl = await raw(front(), 'GET', '/app/boom', ['X-Cgi-Extra: throwAfterCl']);
      const summary = (x: typeof nocl) => ({
        status: x.status,
        body: x.body.toString('latin1'),
        framing: x.framing,
        ended: x.ended,
      });
      observe(spec.id, 'throwAfter', { noCl: summary(nocl), cl100: summary(cl) });
      for (const x of [nocl, cl]) {
        expect(x.status).toBe(200);
        expect(x.body.toString('latin1')).toBe('partial ');
      }
      // With a Content-Length the client can tell: the body is short of it.
      if (cl.header('content-length') !== undefined) expect(cl.framing).toBe('truncated');
      expect((await front().errorLog()).includes('servers test: thrown after the head')).toBe(true);
    });

    it('stderr (tsgi.errors) ends up in the server’s error log', async () => {
      const r = await httpRequest({
        port: front().port,
        path: '/app/types',
        headers: [['X-Tsgi-Case', 'environ-types']],
      });
      expect(r.status).toBe(200);
      // fcgiwrap forwards stderr over FastCGI; nginx logs it a moment later.
      const log = await errorLogWith(front(), 'environ-types wrote this line', 2000);
      expect(log).toContain('conformance: environ-types wrote this line to tsgi.errors');
    });
  });
});
