// FRAMEWORK_CASES: what servers.test.ts checks for every framework (apps.ts) behind every
// target (targets.ts). The framework's own output is written down byte for byte (status,
// headers, body); `onWire` says what each front server does to it, as measured, so a
// difference is a named rule here and never a looser assertion.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { expect } from 'vitest';
import type { HttpRequestOptions, HttpResponse } from '../harness/clients.js';
import type { Framework } from './apps.js';
import { multipart, sha256 } from './helpers.js';
import type { Running, Target, TargetId } from './targets.js';

export interface CaseContext {
  fw: Framework;
  target: Target;
  running: Running;
  /** An HTTP request to the target's port (one connection per request). */
  request(options: Omit<HttpRequestOptions, 'port'>): Promise<HttpResponse>;
}

export interface FrameworkCase {
  name: string;
  run(ctx: CaseContext): Promise<void>;
}

type Headers = Array<[string, string]>;
type Name = Framework['name'];

/** AppResponse: what the framework itself produced (header names lower-cased). */
interface AppResponse {
  status: number;
  reason: string;
  headers: Headers;
  body: Buffer;
}

// ---- the framework's own output ------------------------------------------------------------

const POWERED = ['x-powered-by', 'Express'] as [string, string];

/** Express's default ETag (the `etag` package, weak): length in hex and SHA-1, base64, cut. */
function expressEtag(body: Buffer): string {
  const hash = createHash('sha1').update(body).digest('base64').slice(0, 27);
  return `W/"${body.length.toString(16)}-${hash}"`;
}

const cl = (body: Buffer) => ['content-length', String(body.length)] as [string, string];

/**
 * A 200 from each framework: Hono sends `honoType` alone; Express and Koa send `type` and a
 * Content-Length, Express also X-Powered-By and its ETag.
 */
function okResponse(fw: Name, body: Buffer, honoType: string, type: string): AppResponse {
  const headers: Record<Name, Headers> = {
    hono: [['content-type', honoType]],
    express: [POWERED, ['content-type', type], cl(body), ['etag', expressEtag(body)]],
    koa: [['content-type', type], cl(body)],
  };
  return { status: 200, reason: 'OK', headers: headers[fw], body };
}

/** A JSON answer from each framework: Hono's c.json, Express's res.json, Koa's ctx.body. */
const jsonResponse = (fw: Name, value: unknown): AppResponse =>
  okResponse(
    fw,
    Buffer.from(JSON.stringify(value), 'utf8'),
    'application/json',
    'application/json; charset=utf-8',
  );

/** A plain-text answer from each framework (Hono's c.text). */
const textResponse = (fw: Name, text: string): AppResponse =>
  okResponse(
    fw,
    Buffer.from(text, 'utf8'),
    'text/plain;charset=UTF-8',
    'text/plain; charset=utf-8',
  );

function notFound(fw: Name, path: string): AppResponse {
  if (fw === 'hono') {
    const body = Buffer.from('404 Not Found');
    return {
      status: 404,
      reason: 'Not Found',
      headers: [['content-type', 'text/plain; charset=UTF-8']],
      body,
    };
  }
  if (fw === 'koa') {
    const body = Buffer.from('Not Found');
    return {
      status: 404,
      reason: 'Not Found',
      headers: [['content-type', 'text/plain; charset=utf-8'], cl(body)],
      body,
    };
  }
  // Express 5's finalhandler.
  const body = Buffer.from(
    `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot GET ${path}</pre>\n</body>\n</html>\n`,
  );
  return {
    status: 404,
    reason: 'Not Found',
    headers: [
      POWERED,
      ['content-security-policy', "default-src 'none'"],
      ['x-content-type-options', 'nosniff'],
      ['content-type', 'text/html; charset=utf-8'],
      cl(body),
    ],
    body,
  };
}

function streamResponse(fw: Name, n: number): AppResponse {
  const body = Buffer.from(Array.from({ length: n }, (_, i) => `chunk ${i}\n`).join(''));
  const type = ['content-type', 'text/plain; charset=utf-8'] as [string, string];
  // Written piece by piece: no Content-Length from any of them.
  return { status: 200, reason: 'OK', headers: fw === 'express' ? [POWERED, type] : [type], body };
}

function cookiesResponse(fw: Name): AppResponse {
  const body = Buffer.from('cookies');
  const headers: Record<Name, Headers> = {
    // hono/cookie adds Path=/ when none is given.
    hono: [
      ['content-type', 'text/plain; charset=UTF-8'],
      ['set-cookie', 'a=1; Path=/'],
      ['set-cookie', 'b=2; Path=/; HttpOnly'],
      ['set-cookie', 'c=3; Path=/'],
    ],
    express: [
      POWERED,
      ['set-cookie', 'a=1; Path=/'],
      ['set-cookie', 'b=2; Path=/; HttpOnly'],
      ['set-cookie', 'c=3; Path=/'],
      ['content-type', 'text/html; charset=utf-8'],
      cl(body),
      ['etag', expressEtag(body)],
    ],
    koa: [
      ['set-cookie', 'a=1; path=/'],
      ['set-cookie', 'b=2; path=/; httponly'],
      ['set-cookie', 'c=3; path=/'],
      ['content-type', 'text/plain; charset=utf-8'],
      cl(body),
    ],
  };
  return { status: 200, reason: 'OK', headers: headers[fw], body };
}

function redirectResponse(fw: Name, to: string): AppResponse {
  if (fw === 'hono') {
    return { status: 302, reason: 'Found', headers: [['location', to]], body: Buffer.alloc(0) };
  }
  if (fw === 'express') {
    const body = Buffer.from(`Found. Redirecting to ${to}`);
    return {
      status: 302,
      reason: 'Found',
      headers: [
        POWERED,
        ['location', to],
        ['vary', 'Accept'],
        ['content-type', 'text/plain; charset=utf-8'],
        cl(body),
      ],
      body,
    };
  }
  const body = Buffer.from(`Redirecting to ${to}.`);
  return {
    status: 302,
    reason: 'Found',
    headers: [['location', to], ['content-type', 'text/html; charset=utf-8'], cl(body)],
    body,
  };
}

// ---- what each front server does to it (measured; see servers.test.ts) ----------------------

/** Set by the server or the HTTP framing, never by these apps: left out of every comparison. */
const SERVER_OWNED = new Set(['date', 'server', 'connection', 'keep-alive', 'transfer-encoding']);

/** wireHeaders: a response's headers, lower-cased, without the server-owned ones. */
export function wireHeaders(res: HttpResponse): Headers {
  return res.rawHeaders
    .map(([k, v]) => [k.toLowerCase(), v] as [string, string])
    .filter(([k]) => !SERVER_OWNED.has(k));
}

/** byName: sorted by name, same-name headers (Set-Cookie) kept in their order. */
function byName(h: Headers): Headers {
  return h
    .map((x, i) => ({ x, i }))
    .sort((a, b) => (a.x[0] < b.x[0] ? -1 : a.x[0] > b.x[0] ? 1 : a.i - b.i))
    .map(({ x }) => x);
}

interface Exchange {
  method: 'GET' | 'HEAD' | 'POST';
  /** The body the framework produced (for a HEAD it saw as GET: the GET body). */
  appBody: Buffer;
}

/**
 * onWire: the headers the client gets for the app's `headers`, per target, without the
 * server-owned ones. Each rule is what the server did in these tests:
 * - @tsgi/http: the app's headers, in the app's order (Node adds only the framing).
 * - nginx fastcgi_pass: the app's headers (nginx puts Content-Type and Content-Length first).
 * - Apache 2.4 mod_cgid: drops the script's Content-Length (no `ap_trust_cgilike_cl`): a
 *   GET goes out chunked, a HEAD without either.
 * - lighttpd 1.4 mod_scgi (response buffered, server.stream-response-body = 0): adds
 *   `Accept-Ranges: bytes` to a 200 for GET or HEAD (not for a POST), and a Content-Length
 *   of the body it buffered when the app sent none, except to a HEAD that got no body from
 *   the backend (not even a 0).
 */
function onWire(target: TargetId, app: AppResponse, x: Exchange): Headers {
  const h = app.headers;
  const has = (name: string) => h.some(([k]) => k === name);
  switch (target) {
    case 'http':
    case 'nginx-fastcgi':
    case 'nginx-scgi':
      return h;
    case 'apache-cgi':
      return h.filter(([k]) => k !== 'content-length');
    case 'lighttpd-scgi': {
      const out = [...h];
      if (app.status === 200 && x.method !== 'POST' && !has('accept-ranges')) {
        out.push(['accept-ranges', 'bytes']);
      }
      if (!has('content-length') && (x.method === 'GET' || x.appBody.length > 0)) {
        out.push(['content-length', String(x.appBody.length)]);
      }
      return out;
    }
  }
}

/** expectResponse: `res` is exactly `app` as delivered by the target (to a GET or POST). */
function expectResponse(
  ctx: CaseContext,
  res: HttpResponse,
  app: AppResponse,
  method: 'GET' | 'POST' = 'GET',
): void {
  expect(res.status).toBe(app.status);
  expect(res.statusText).toBe(app.reason);
  expect(res.body.toString('latin1')).toBe(app.body.toString('latin1'));
  const want = onWire(ctx.target.id, app, { method, appBody: app.body });
  if (ctx.target.id === 'http') expect(wireHeaders(res)).toEqual(want);
  else expect(byName(wireHeaders(res))).toEqual(byName(want));
}

const get = (ctx: CaseContext, path: string) => ctx.request({ path });

// ---- the cases -------------------------------------------------------------------------------

/** Reads an endless response until `bytes` arrived (or the app started, for a buffering front), then drops the connection. */
async function disconnectAfter(
  port: number,
  bytes: number,
  started: Promise<void>,
): Promise<number> {
  const sock = connect(port, '127.0.0.1');
  let received = 0;
  sock.on('error', () => {});
  const enough = new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      received += d.length;
      if (received >= bytes) resolve();
    });
  });
  sock.write(`GET /app/endless HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  await started;
  await Promise.race([enough, new Promise((r) => setTimeout(r, 3000))]);
  sock.destroy();
  return received;
}

const UPLOAD_CHUNK = (() => {
  const b = Buffer.alloc(65536);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
})();
const UPLOAD_CHUNKS = 800; // 800 x 64 KiB = 50 MiB
const UPLOAD_SHA256 = (() => {
  const h = createHash('sha256');
  for (let i = 0; i < UPLOAD_CHUNKS; i++) h.update(UPLOAD_CHUNK);
  return h.digest('hex');
})();

/**
 * The most the app's process may grow while it takes a 50 MiB upload: its peak RSS so far
 * (measured once the body was read) minus its RSS when the handler started, an upper bound
 * of the growth. The handler collects garbage every 20 ms (apps.ts memoryProbe). Measured:
 * 8 to 16 MiB; an app that holds the body (Hono's `c.req.arrayBuffer()`, tried) grows by
 * about 150 MiB.
 */
export const UPLOAD_GROWTH_LIMIT = 32 * 1024 * 1024;

const HEAD_PATHS = ['/hello', '/nope', '/cookies', '/redirect', '/stream?n=3'];

/** The app's GET response for a HEAD_PATHS entry under `base`. */
function appResponseFor(fw: Name, base: string, path: string): AppResponse {
  switch (path) {
    case '/hello':
      return textResponse(fw, `hello from ${fw}`);
    case '/nope':
      return notFound(fw, `${base}/nope`);
    case '/cookies':
      return cookiesResponse(fw);
    case '/redirect':
      return redirectResponse(fw, `${base}/hello`);
    default:
      return streamResponse(fw, 3);
  }
}

/**
 * ownHeadResponse: the head a framework gives a real HEAD (mapHeadToGet: false) where its
 * GET answer is `get`, and whether that head differs from the GET's. Measured:
 * - Express's finalhandler answers an unmatched HEAD "Cannot HEAD /path": one byte more,
 *   so its Content-Length differs from the GET's.
 * - Koa's respond() ends a HEAD before it writes a 404's status body: neither Content-Type
 *   nor Content-Length, where the GET has both.
 */
function ownHeadResponse(
  fw: Name,
  path: string,
  get: AppResponse,
): { head: AppResponse; differs: boolean } {
  if (path === '/nope' && fw === 'express') {
    const head = notFound(fw, '/app/own/nope');
    const body = Buffer.from(head.body.toString('utf8').replace('Cannot GET', 'Cannot HEAD'));
    const headers = head.headers.map(([k, v]) =>
      k === 'content-length'
        ? (['content-length', String(body.length)] as [string, string])
        : [k, v],
    ) as Headers;
    return { head: { ...head, headers, body }, differs: true };
  }
  if (path === '/nope' && fw === 'koa') {
    return { head: { ...get, headers: [] }, differs: true };
  }
  return { head: get, differs: false };
}

export const FRAMEWORK_CASES: readonly FrameworkCase[] = [
  {
    name: 'routes a GET to its handler',
    async run(ctx) {
      expectResponse(
        ctx,
        await get(ctx, '/app/hello'),
        textResponse(ctx.fw.name, `hello from ${ctx.fw.name}`),
      );
    },
  },
  {
    name: "answers an unknown route with the framework's 404",
    async run(ctx) {
      expectResponse(ctx, await get(ctx, '/app/nope'), notFound(ctx.fw.name, '/app/nope'));
    },
  },
  {
    name: 'sees the method, path, query, Host, client address and headers',
    async run(ctx) {
      const res = await ctx.request({
        path: '/app/info?x=1&y=%C3%A9',
        headers: [['X-Test', 'yes']],
      });
      // nginx: Debian's fastcgi_params and scgi_params send `HTTP_HOST $host`, which drops
      // the port the client put in Host; the others pass the client's Host as it was.
      const port = ctx.running.port;
      const host = ctx.target.id.startsWith('nginx-') ? '127.0.0.1' : `127.0.0.1:${port}`;
      // The query, Host, client address and header: alike in every framework (last in the JSON).
      const client = {
        query: { x: '1', y: 'é' },
        host,
        ip: '127.0.0.1',
        protocol: 'http',
        header: 'yes',
      };
      // Express and Koa see the URL under the mount; Express also names the mount (baseUrl).
      const seen =
        ctx.fw.name === 'hono'
          ? {
              method: 'GET',
              url: `http://${host}/app/info?x=1&y=%C3%A9`,
              path: '/app/info',
              ...client,
            }
          : {
              method: 'GET',
              url: '/info?x=1&y=%C3%A9',
              originalUrl: '/app/info?x=1&y=%C3%A9',
              ...(ctx.fw.name === 'express' ? { baseUrl: '/app' } : {}),
              path: '/info',
              ...client,
            };
      expectResponse(ctx, res, jsonResponse(ctx.fw.name, seen));
    },
  },
  {
    name: 'parses a JSON post',
    async run(ctx) {
      const payload = { a: [1, 2, 3], s: 'ünïcødé', n: null };
      const res = await ctx.request({
        method: 'POST',
        path: '/app/json',
        headers: [['Content-Type', 'application/json']],
        body: JSON.stringify(payload),
      });
      expectResponse(ctx, res, jsonResponse(ctx.fw.name, { received: payload }), 'POST');
    },
  },
  {
    name: 'parses an urlencoded form post',
    async run(ctx) {
      const res = await ctx.request({
        method: 'POST',
        path: '/app/form',
        headers: [['Content-Type', 'application/x-www-form-urlencoded']],
        body: 'name=J%C3%BCrgen&city=Z%C3%BCrich&empty=',
      });
      expectResponse(
        ctx,
        res,
        jsonResponse(ctx.fw.name, { fields: { name: 'Jürgen', city: 'Zürich', empty: '' } }),
        'POST',
      );
    },
  },
  {
    name: 'parses a multipart form post with a file',
    async run(ctx) {
      const file = Buffer.alloc(300_000);
      for (let i = 0; i < file.length; i++) file[i] = (i * 31) & 0xff;
      const m = multipart([
        { name: 'title', value: 'a report' },
        { name: 'upload', filename: 'data.bin', type: 'application/octet-stream', data: file },
      ]);
      const res = await ctx.request({
        method: 'POST',
        path: '/app/multipart',
        headers: [['Content-Type', m.contentType]],
        body: m.body,
      });
      expectResponse(
        ctx,
        res,
        jsonResponse(ctx.fw.name, {
          fields: { title: 'a report' },
          files: [
            { field: 'upload', filename: 'data.bin', size: file.length, sha256: sha256(file) },
          ],
        }),
        'POST',
      );
    },
  },
  {
    name: 'streams a response written piece by piece',
    async run(ctx) {
      expectResponse(ctx, await get(ctx, '/app/stream?n=40'), streamResponse(ctx.fw.name, 40));
    },
  },
  {
    name: 'sends several Set-Cookie headers, each on its own line',
    async run(ctx) {
      const res = await get(ctx, '/app/cookies');
      expectResponse(ctx, res, cookiesResponse(ctx.fw.name));
      expect(res.headerValues('set-cookie')).toHaveLength(3);
    },
  },
  {
    name: 'redirects',
    async run(ctx) {
      expectResponse(
        ctx,
        await get(ctx, '/app/redirect'),
        redirectResponse(ctx.fw.name, '/app/hello'),
      );
    },
  },
  {
    name: "answers a thrown error with the framework's own 500",
    async run(ctx) {
      const res = await get(ctx, '/app/error');
      const fw = ctx.fw.name;
      if (fw === 'express') {
        // finalhandler outside production: the stack, whose file paths and line numbers
        // are the bundle's. Everything around it is fixed.
        const body = res.body.toString('utf8');
        expect(body).toMatch(
          /^<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error<\/title>\n<\/head>\n<body>\n<pre>Error: boom<br> &nbsp; &nbsp;at [^\n]*<\/pre>\n<\/body>\n<\/html>\n$/,
        );
        expectResponse(ctx, res, {
          status: 500,
          reason: 'Internal Server Error',
          headers: [
            POWERED,
            ['content-security-policy', "default-src 'none'"],
            ['x-content-type-options', 'nosniff'],
            ['content-type', 'text/html; charset=utf-8'],
            cl(res.body),
          ],
          body: res.body,
        });
        return;
      }
      const body = Buffer.from('Internal Server Error');
      expectResponse(ctx, res, {
        status: 500,
        reason: 'Internal Server Error',
        headers:
          fw === 'hono'
            ? [['content-type', 'text/plain; charset=UTF-8']]
            : [['content-type', 'text/plain; charset=utf-8'], cl(body)],
        body,
      });
      // The framework's error handling ran (Hono's onError, Koa's 'error' event).
      await ctx.running.waitForProbe(`${fw}:error:boom`);
    },
  },
  {
    name: 'gives HEAD the GET headers (HEAD reaches the framework as GET, the default)',
    async run(ctx) {
      for (const path of HEAD_PATHS) {
        const app = appResponseFor(ctx.fw.name, '/app', path);
        const g = await get(ctx, `/app${path}`);
        const h = await ctx.request({ method: 'HEAD', path: `/app${path}` });
        expectResponse(ctx, g, app);
        expect(h.status).toBe(g.status);
        expect(h.statusText).toBe(g.statusText);
        expect(h.body.length).toBe(0);
        // The framework produced the GET body for the HEAD too; the front dropped it.
        const wantHead = onWire(ctx.target.id, app, { method: 'HEAD', appBody: app.body });
        expect(byName(wireHeaders(h))).toEqual(byName(wantHead));
        let getHeaders = wireHeaders(g);
        if (ctx.target.id === 'lighttpd-scgi' && app.body.length === 0) {
          // lighttpd's own framing: "Content-Length: 0" on an empty GET response and
          // nothing on the HEAD (onWire); the app's heads were the same.
          getHeaders = getHeaders.filter(([k, v]) => !(k === 'content-length' && v === '0'));
        }
        expect(byName(wireHeaders(h))).toEqual(byName(getHeaders));
      }
    },
  },
  {
    name: "gives HEAD the GET headers with the framework's own HEAD handling (mapHeadToGet: false)",
    async run(ctx) {
      for (const path of HEAD_PATHS) {
        const app = appResponseFor(ctx.fw.name, '/app/own', path);
        const own = ownHeadResponse(ctx.fw.name, path, app);
        const g = await get(ctx, `/app/own${path}`);
        const h = await ctx.request({ method: 'HEAD', path: `/app/own${path}` });
        expectResponse(ctx, g, app);
        expect(h.status).toBe(g.status);
        expect(h.body.length).toBe(0);
        // The framework saw HEAD: Hono runs the GET route and answers with a null body,
        // Express and Koa end() without one. No body reached the front server.
        const wantHead = onWire(ctx.target.id, own.head, {
          method: 'HEAD',
          appBody: Buffer.alloc(0),
        });
        expect(byName(wireHeaders(h))).toEqual(byName(wantHead));
        // So HEAD and GET differ where the framework's HEAD head does (ownHeadResponse;
        // Express's longer "Cannot HEAD" only in the Content-Length, which Apache drops)
        // and behind lighttpd, which adds a Content-Length of the body it buffered to the
        // GET but none to the bodiless HEAD when the app sent none: the reason the bridges
        // map HEAD to GET by default.
        const wantGet = onWire(ctx.target.id, app, { method: 'GET', appBody: app.body });
        const differs = JSON.stringify(byName(wantHead)) !== JSON.stringify(byName(wantGet));
        const lighttpdLength =
          ctx.target.id === 'lighttpd-scgi' && !app.headers.some(([k]) => k === 'content-length');
        expect(differs).toBe(
          lighttpdLength ||
            (own.differs && !(ctx.fw.name === 'express' && ctx.target.id === 'apache-cgi')),
        );
        if (differs) expect(byName(wireHeaders(h))).not.toEqual(byName(wireHeaders(g)));
        else expect(byName(wireHeaders(h))).toEqual(byName(wireHeaders(g)));
      }
    },
  },
  {
    name: 'streams a 50 MiB upload through the framework with bounded memory',
    async run(ctx) {
      async function* body() {
        for (let i = 0; i < UPLOAD_CHUNKS; i++) yield UPLOAD_CHUNK;
      }
      const res = await ctx.request({
        method: 'POST',
        path: '/app/upload',
        headers: [
          ['Content-Type', 'application/octet-stream'],
          ['Content-Length', String(UPLOAD_CHUNKS * UPLOAD_CHUNK.length)],
        ],
        body: body(),
        timeoutMs: 60_000,
      });
      expect(res.status).toBe(200);
      const answer = JSON.parse(res.body.toString('utf8'));
      expect({ bytes: answer.bytes, sha256: answer.sha256 }).toEqual({
        bytes: UPLOAD_CHUNKS * UPLOAD_CHUNK.length,
        sha256: UPLOAD_SHA256,
      });
      // The process that ran the app: the CGI script's own, or the FastCGI/SCGI/HTTP server's.
      const growth = answer.memory.maxRSS - answer.memory.rssAtStart;
      const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
      expect(
        growth,
        `peak RSS ${mib(answer.memory.maxRSS)}, ${mib(growth)} over ${mib(answer.memory.rssAtStart)} at the start`,
      ).toBeLessThan(UPLOAD_GROWTH_LIMIT);
    },
  },
  {
    name: 'lets the framework see the client go away',
    async run(ctx) {
      const fw = ctx.fw.name;
      const drop = async (port: number) => {
        const received = await disconnectAfter(port, 2000, ctx.running.waitForProbe(`${fw}:start`));
        // Streamed: the endless response reached the client while the app was writing it.
        expect(received).toBeGreaterThan(0);
        const events = {
          hono: ['hono:abort', 'hono:signal'],
          express: ['express:aborted', 'express:close', 'express:req-close'],
          koa: ['koa:aborted', 'koa:close', 'koa:stream-destroyed'],
        }[fw];
        for (const e of events) await ctx.running.waitForProbe(e);
      };
      if (ctx.target.id === 'lighttpd-scgi') {
        // lighttpd collects the whole response before sending it (stream-response-body 0,
        // the default): an endless one never reaches the client, and lighttpd, busy
        // reading it, did not notice the client leave within 5 s. Streaming it, lighttpd
        // sees the client go and closes the SCGI connection.
        await ctx.running.withFront('server.stream-response-body = 1', drop);
      } else {
        await drop(ctx.running.port);
      }
    },
  },
];
