// The FastCGI Authorizer role (spec S6.3) behind the servers that send it: lighttpd
// mod_fastcgi (`"mode" => "authorizer"`) and Apache mod_authnz_fcgi. nginx has no FastCGI
// authorizer: its `auth_request` to a FastCGI location (the app then runs as a Responder) is
// tested as the nginx way. No server sends the Filter role (S6.4): it is tested here with a raw
// FastCGI client over TCP only (and in packages/fastcgi/test/connection.test.ts).
//
// Two FastCGI servers run in this process: the authorizer app and the responder it protects
// (static files are protected too). Each records what it saw. docs/deploy/fastcgi.md,
// "Authorizer and Filter roles", describes what is pinned here.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Application, Environ } from '@tsgi/core';
import { type FastcgiServer, FCGI_FILTER, serveFastcgi } from '@tsgi/fastcgi';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FcgiClient } from '../../packages/fastcgi/test/helpers.js';
import { APACHE_MODULES_DIR } from '../harness/availability.js';
import { httpRequest, rawExchange } from '../harness/clients.js';
import { DEBIAN_FASTCGI_PARAMS } from '../harness/config/nginx.js';
import {
  describeWithServer,
  serverAvailable,
  type TcpBackend,
  useFront,
} from '../harness/servers.js';

// ---- the authorizer ------------------------------------------------------------------------

const GOOD_TOKEN = 'good-token';
const DENY_HEADERS: Array<[string, string]> = [
  ['WWW-Authenticate', 'Bearer realm="tsgi"'],
  ['Content-Type', 'text/plain; charset=utf-8'],
  ['X-Auth-Reason', 'no-token'],
];
const DENY_BODY = 'no valid token\n';
/** Every byte value, starting with NUL. */
const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const BIG = Buffer.alloc(10_000, 'x');
const STATIC_TEXT = 'a protected static file\n';
const AUTHORIZER_ETAG = '"from-authorizer"';

/** What one call of the authorizer app saw. */
interface AuthCall {
  role: unknown;
  method: string | undefined;
  uri: string | undefined;
  scriptName: string | undefined;
  pathInfo: string | undefined;
  query: string | undefined;
  contentLength: string | undefined;
  bodyBytes: number;
  authorization: string | undefined;
  xToken: string | undefined;
  fcgiRole: string | undefined;
  apacheRole: string | undefined;
  remoteUser: string | undefined;
  remotePasswd: string | undefined;
  authType: string | undefined;
  group: string | undefined;
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

const allow = (user: string) => ({
  status: 200,
  // Only Variable-* headers and no body: a 200's other headers are dropped by lighttpd but
  // kept by Apache (see the tests below).
  headers: [
    ['Variable-REMOTE_USER', user],
    ['Variable-TSGI_GROUP', 'admins'],
  ] as Array<[string, string]>,
  body: [],
});
const deny = () => ({ status: 401, headers: DENY_HEADERS, body: [DENY_BODY] });

/**
 * The authorizer: `Authorization: Bearer good-token` (or `X-Token: good-token`) is alice;
 * Apache's Basic mode checks alice's password `right` (AUTHENTICATOR) and lets only alice in
 * (AUTHORIZER). `X-Case` picks a special answer.
 */
function authorizerApp(calls: AuthCall[]): Application {
  return async (env: Environ) => {
    const body = await env['tsgi.input'].read();
    calls.push({
      role: env['fastcgi.role'],
      method: str(env.REQUEST_METHOD),
      uri: str(env.REQUEST_URI),
      scriptName: str(env.SCRIPT_NAME),
      pathInfo: str(env.PATH_INFO),
      query: str(env.QUERY_STRING),
      contentLength: str(env.CONTENT_LENGTH),
      bodyBytes: body.length,
      authorization: str(env.HTTP_AUTHORIZATION),
      xToken: str(env.HTTP_X_TOKEN),
      fcgiRole: str(env.FCGI_ROLE),
      apacheRole: str(env.FCGI_APACHE_ROLE),
      remoteUser: str(env.REMOTE_USER),
      remotePasswd: str(env.REMOTE_PASSWD),
      authType: str(env.AUTH_TYPE),
      group: str(env.TSGI_GROUP),
    });
    switch (env.HTTP_X_CASE) {
      case 'throw':
        throw new Error('authorizer bug');
      case 'binary':
        return {
          status: 403,
          headers: [['Content-Type', 'application/octet-stream']],
          body: [BINARY],
        };
      case 'big':
        return { status: 403, headers: [['Content-Type', 'text/plain']], body: [BIG] };
      case 'streamed':
        return {
          status: 403,
          headers: [['Content-Type', 'text/plain']],
          body: (async function* () {
            yield 'part one\n';
            await new Promise((r) => setTimeout(r, 30));
            yield 'part two\n';
          })(),
        };
    }
    if (env.FCGI_APACHE_ROLE === 'AUTHENTICATOR' && env.REMOTE_PASSWD !== undefined) {
      return env.REMOTE_PASSWD === 'right' ? allow(String(env.REMOTE_USER)) : deny();
    }
    if (env.FCGI_APACHE_ROLE === 'AUTHORIZER') {
      return env.REMOTE_USER === 'alice'
        ? allow('alice')
        : { status: 403, headers: [['Content-Type', 'text/plain']], body: ['not you\n'] };
    }
    const token = /^Bearer (.*)$/.exec(str(env.HTTP_AUTHORIZATION) ?? '')?.[1] ?? env.HTTP_X_TOKEN;
    if (token !== GOOD_TOKEN) return deny();
    if (env.HTTP_X_CASE === 'extra-headers') {
      return {
        status: 200,
        headers: [
          ...allow('alice').headers,
          ['X-Leak', 'from-authorizer'],
          ['ETag', AUTHORIZER_ETAG],
          ['Content-Type', 'text/x-authorizer'],
        ],
        body: ['authorizer body\n'],
      };
    }
    return allow('alice');
  };
}

// ---- the protected responder ---------------------------------------------------------------

interface Echo {
  role: string;
  method: string;
  remoteUser: string | null;
  authUser: string | null;
  group: string | null;
  /** Any HTTP_VARIABLE_* param (a Variable-* header turned into a request header). */
  variableHeaders: string[];
  bodyBytes: number;
  md5: string;
}

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

function responderApp(calls: Echo[]): Application {
  return async (env: Environ) => {
    const body = Buffer.from(await env['tsgi.input'].read());
    const echo: Echo = {
      role: String(env['fastcgi.role']),
      method: String(env.REQUEST_METHOD),
      remoteUser: str(env.REMOTE_USER) ?? null,
      authUser: str(env.AUTH_USER) ?? null,
      group: str(env.TSGI_GROUP) ?? null,
      variableHeaders: Object.keys(env).filter((k) => k.startsWith('HTTP_VARIABLE')),
      bodyBytes: body.length,
      md5: md5(body),
    };
    calls.push(echo);
    return {
      status: 200,
      headers: [['Content-Type', 'application/json']],
      body: [JSON.stringify(echo)],
    };
  };
}

// ---- shared state --------------------------------------------------------------------------

const authCalls: AuthCall[] = [];
/** Connections the authorizer's server accepted. */
let authConnections = 0;
const responderCalls: Echo[] = [];
let authServer: FastcgiServer;
let responderServer: FastcgiServer;
let authorizer: TcpBackend;
let responder: TcpBackend;

beforeAll(async () => {
  const opts = { listen: { host: '127.0.0.1', port: 0 }, errors: () => {} };
  authServer = await serveFastcgi(authorizerApp(authCalls), opts);
  authServer.netServer.on('connection', () => authConnections++);
  responderServer = await serveFastcgi(responderApp(responderCalls), opts);
  authorizer = { host: '127.0.0.1', port: (authServer.address as { port: number }).port };
  responder = { host: '127.0.0.1', port: (responderServer.address as { port: number }).port };
});
afterAll(async () => {
  await authServer?.close({ timeoutMs: 1000 });
  await responderServer?.close({ timeoutMs: 1000 });
});
beforeEach(() => {
  authCalls.length = 0;
  responderCalls.length = 0;
});

const bearer = (token = GOOD_TOKEN): [string, string] => ['Authorization', `Bearer ${token}`];
const basic = (user: string, password: string): [string, string] => [
  'Authorization',
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
];

/** A 64 KiB body with every byte value. */
const UPLOAD = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 7 + 3) & 0xff));

/** POSTs UPLOAD to `path` with the good token: a 200 from the responder, which got all of it. */
async function postUpload(port: number, path: string): Promise<Echo> {
  const res = await httpRequest({ port, method: 'POST', path, headers: [bearer()], body: UPLOAD });
  expect(res.status).toBe(200);
  const echo = JSON.parse(res.body.toString()) as Echo;
  expect(echo).toMatchObject({ bodyBytes: UPLOAD.length, md5: md5(UPLOAD) });
  return echo;
}

interface Raw {
  statusLine: string;
  headers: Array<[string, string]>;
  body: Buffer;
}

/** One request with `Connection: close`, the response split as it came (no parsing of the body). */
async function raw(port: number, target: string, headers: Array<[string, string]> = []) {
  const request = [
    `GET ${target} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Connection: close',
    ...headers.map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  const data = await rawExchange(port, request);
  const end = data.indexOf('\r\n\r\n');
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  return {
    statusLine: lines[0] ?? '',
    headers: lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(':');
      return [l.slice(0, i), l.slice(i + 1).trim()];
    }),
    body: data.subarray(end + 4),
  } satisfies Raw;
}

const names = (hs: Array<[string, string]>) => hs.map(([k]) => k.toLowerCase());

/** GET /app/x with `headers` and `X-Case: xCase` (it picks one of the authorizer's answers). */
const getCase = (port: number, xCase: string, headers: Array<[string, string]> = []) =>
  httpRequest({ port, path: '/app/x', headers: [...headers, ['X-Case', xCase]] });

async function writeStaticFile(dir: string) {
  await mkdir(join(dir, 'htdocs', 'files'), { recursive: true, mode: 0o755 });
  await writeFile(join(dir, 'htdocs', 'files', 'doc.txt'), STATIC_TEXT, { mode: 0o644 });
}

// ---- what lighttpd and Apache do alike -----------------------------------------------------

/**
 * GET /app/x?y=1 with the good token: the responder runs as alice of admins, with the
 * Variable-* headers as params only (no HTTP_VARIABLE_* request header), after one
 * authorizer call. That call saw the request line and the token, no body and no
 * SCRIPT_NAME or PATH_INFO from the server (S6.3: the core takes the path from REQUEST_URI),
 * and the server's own params `serverParams`.
 */
async function expectAllowed(port: number, serverParams: Partial<AuthCall>) {
  const res = await httpRequest({ port, path: '/app/x?y=1', headers: [bearer()] });
  expect(res.status).toBe(200);
  const echo = JSON.parse(res.body.toString()) as Echo;
  expect(echo).toMatchObject({ role: 'responder', remoteUser: 'alice', group: 'admins' });
  expect(echo.variableHeaders).toEqual([]);
  expect(authCalls).toHaveLength(1);
  expect(authCalls[0]).toMatchObject({
    role: 'authorizer',
    method: 'GET',
    uri: '/app/x?y=1',
    scriptName: '',
    pathInfo: '/app/x',
    query: 'y=1',
    authorization: `Bearer ${GOOD_TOKEN}`,
    contentLength: undefined,
    bodyBytes: 0,
    ...serverParams,
  });
}

/** The tests whose outcome is the same behind lighttpd and Apache, for the block's `front`. */
function itBehavesAsEveryAuthorizerServer(front: () => { port: number }) {
  it('one connection per check: no FCGI_KEEP_CONN', async () => {
    const before = authConnections;
    for (let i = 0; i < 3; i++) {
      const res = await httpRequest({ port: front().port, path: '/app/x', headers: [bearer()] });
      expect(res.status).toBe(200);
    }
    expect(authConnections - before).toBe(3);
  });

  it('a POST: the authorizer gets neither body nor CONTENT_LENGTH; the responder gets the whole body', async () => {
    const echo = await postUpload(front().port, '/app/upload');
    expect(echo).toMatchObject({ method: 'POST', remoteUser: 'alice' });
    expect(authCalls).toEqual([
      expect.objectContaining({ method: 'POST', contentLength: undefined, bodyBytes: 0 }),
    ]);
  });

  it('an authorizer that throws denies with its 500 (fail closed)', async () => {
    const res = await getCase(front().port, 'throw', [bearer()]);
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe('Internal Server Error\n');
    expect(responderCalls).toEqual([]);
  });
}

// ---- lighttpd ------------------------------------------------------------------------------

describeWithServer(
  'lighttpd',
  'Authorizer behind lighttpd mod_fastcgi ("mode" => "authorizer")',
  () => {
    const front = useFront(() => ({
      server: 'lighttpd',
      protocol: 'fastcgi',
      backend: responder,
      // /app: the authorizer, then the responder (both in the prefix's fastcgi.server entry).
      fcgiAuthorizer: authorizer,
      // /files: an authorizer alone; on its 200 lighttpd serves the static file.
      extraConfig: `$HTTP["url"] =^ "/files/" {
  fastcgi.server = ( "/files" => ( ( "host" => "127.0.0.1", "port" => ${authorizer.port},
                                     "mode" => "authorizer", "check-local" => "disable" ) ) )
}`,
    }));
    beforeAll(async () => writeStaticFile(front().dir));

    it('allowed: the responder runs, with Variable-REMOTE_USER and Variable-TSGI_GROUP as its params', async () => {
      // lighttpd sends no FCGI_ROLE param (Apache does).
      await expectAllowed(front().port, { fcgiRole: undefined });
    });

    itBehavesAsEveryAuthorizerServer(front);

    it("denied: the authorizer's status, headers and body go to the client byte for byte", async () => {
      const r = await raw(front().port, '/app/x');
      expect(r.statusLine).toBe('HTTP/1.1 401 Unauthorized');
      // The authorizer's headers first, in order; then what lighttpd adds.
      expect(r.headers.slice(0, DENY_HEADERS.length)).toEqual(DENY_HEADERS);
      expect(names(r.headers.slice(DENY_HEADERS.length))).toEqual([
        'content-length',
        'connection',
        'date',
        'server',
      ]);
      expect(r.body.toString('latin1')).toBe(DENY_BODY);
      expect(responderCalls).toEqual([]);
    });

    it('denied with a binary, a 10 000-byte or a streamed body: passed on unchanged', async () => {
      const port = front().port;
      const bin = await getCase(port, 'binary');
      expect(bin.status).toBe(403);
      expect(bin.body.equals(BINARY)).toBe(true);
      const big = await getCase(port, 'big');
      expect(big.body.equals(BIG)).toBe(true);
      const streamed = await getCase(port, 'streamed');
      expect(streamed.status).toBe(403);
      expect(streamed.body.toString()).toBe('part one\npart two\n');
      expect(responderCalls).toEqual([]);
    });

    it("a 200's other headers and body are dropped: only Variable-* is used", async () => {
      const res = await getCase(front().port, 'extra-headers', [bearer()]);
      expect(res.status).toBe(200);
      expect(res.headers('x-leak')).toBeUndefined();
      expect(res.headers('etag')).toBeUndefined();
      expect(res.headers('content-type')).toBe('application/json');
      expect(JSON.parse(res.body.toString())).toMatchObject({ remoteUser: 'alice' });
    });

    it('a static file behind an authorizer-only entry: served on 200, the denial otherwise', async () => {
      const port = front().port;
      const ok = await httpRequest({ port, path: '/files/doc.txt', headers: [bearer()] });
      expect(ok.status).toBe(200);
      expect(ok.body.toString()).toBe(STATIC_TEXT);
      expect(authCalls).toEqual([
        expect.objectContaining({ role: 'authorizer', uri: '/files/doc.txt' }),
      ]);
      const no = await httpRequest({ port, path: '/files/doc.txt' });
      expect(no.status).toBe(401);
      expect(no.body.toString()).toBe(DENY_BODY);
    });
  },
);

// ---- Apache --------------------------------------------------------------------------------

/** The modules the Apache config below loads on top of the harness's (mod_mime: a type for doc.txt). */
const APACHE_AUTH_MODULES = ['authn_core', 'auth_basic', 'authnz_fcgi', 'mime'];

/**
 * describeWithServer('apache', ...) that also needs mod_authnz_fcgi and friends: skipped with
 * a visible SKIP line when one is missing, a failing test under TSGI_REQUIRE_SERVERS=1.
 */
function describeWithApacheAuth(title: string, fn: () => void) {
  // TSGI_HIDE_SERVERS=mod_authnz_fcgi pretends the module is missing (as the harness does for
  // binaries), to try the skip / TSGI_REQUIRE_SERVERS paths.
  const hidden = (process.env.TSGI_HIDE_SERVERS ?? '').split(',').map((s) => s.trim());
  const missing = APACHE_AUTH_MODULES.filter(
    (m) => hidden.includes(`mod_${m}`) || !existsSync(`${APACHE_MODULES_DIR}/mod_${m}.so`),
  );
  if (missing.length === 0 || !serverAvailable('apache')) {
    describeWithServer('apache', title, fn);
    return;
  }
  const simulated = missing.some((m) => hidden.includes(`mod_${m}`));
  const what =
    `${missing.map((m) => `mod_${m}.so`).join(', ')} not found in ${APACHE_MODULES_DIR} (apt-get install apache2)` +
    (simulated ? ' [simulated by TSGI_HIDE_SERVERS]' : '');
  if (process.env.TSGI_REQUIRE_SERVERS === '1') {
    describe(title, () => {
      it(`requires ${missing.map((m) => `mod_${m}`).join(', ')}`, () => {
        throw new Error(`${title}: ${what}, and TSGI_REQUIRE_SERVERS=1 forbids skipping`);
      });
    });
    return;
  }
  console.warn(`SKIP ${title}: ${what}`);
  describe.skip(title, fn);
}

/** What Apache's error response puts in place of the authorizer's Content-Type. */
const APACHE_ERROR_TYPE = 'text/html; charset=iso-8859-1';

describeWithApacheAuth('Authorizer behind Apache mod_authnz_fcgi', () => {
  const fcgi = () => `fcgi://127.0.0.1:${authorizer.port}/`;
  const front = useFront(() => ({
    server: 'apache',
    protocol: 'fastcgi',
    backend: responder,
    extraConfig: `
${APACHE_AUTH_MODULES.map((m) => `LoadModule ${m}_module "${APACHE_MODULES_DIR}/mod_${m}.so"`).join('\n')}
TypesConfig /dev/null
AddType text/plain .txt
AuthnzFcgiDefineProvider authnz tsgi_authnz ${fcgi()}
AuthnzFcgiDefineProvider authn tsgi_authn ${fcgi()}
AuthnzFcgiDefineProvider authz tsgi_authz ${fcgi()}

# The generic FastCGI authorizer: one call, its non-200 answer goes to the client.
<LocationMatch "^/app(?:/|$)">
  AuthType tsgi-token
  AuthName "tsgi"
  CGIPassAuth On
  AuthnzFcgiCheckAuthnProvider tsgi_authnz Authoritative On RequireBasicAuth Off UserExpr "%{reqenv:REMOTE_USER}"
  Require tsgi_authnz
</LocationMatch>
# The same for static files, without CGIPassAuth.
<LocationMatch "^/files/">
  AuthType tsgi-token
  AuthName "tsgi"
  AuthnzFcgiCheckAuthnProvider tsgi_authnz Authoritative On RequireBasicAuth Off UserExpr "%{reqenv:REMOTE_USER}"
  Require tsgi_authnz
</LocationMatch>
# Basic auth: Apache asks for the password, the app checks it, then authorizes the user.
ProxyPass "/basic" "fcgi://127.0.0.1:${responder.port}"
<Location "/basic">
  AuthType Basic
  AuthName "tsgi basic"
  AuthBasicProvider tsgi_authn
  Require tsgi_authz
</Location>
`,
  }));
  beforeAll(async () => writeStaticFile(front().dir));

  it('allowed: the responder runs as the user of UserExpr, with Variable-TSGI_GROUP as a param', async () => {
    // Authorization only with CGIPassAuth On.
    await expectAllowed(front().port, {
      fcgiRole: 'AUTHORIZER',
      apacheRole: 'AUTHENTICATOR',
      remotePasswd: undefined,
    });
  });

  itBehavesAsEveryAuthorizerServer(front);

  it("denied: the authorizer's status, headers and body reach the client, but Content-Type is Apache's", async () => {
    const r = await raw(front().port, '/app/x');
    expect(r.statusLine).toBe('HTTP/1.1 401 Unauthorized');
    const authorizerOwn = r.headers.filter(([k]) => /^(www-authenticate|x-auth-reason)$/i.test(k));
    expect(authorizerOwn).toEqual([DENY_HEADERS[0], DENY_HEADERS[2]]);
    expect(r.headers.filter(([k]) => k.toLowerCase() === 'content-type')).toEqual([
      ['Content-Type', APACHE_ERROR_TYPE],
    ]);
    expect(r.body.toString('latin1')).toBe(DENY_BODY);
    expect(responderCalls).toEqual([]);
  });

  it('the denial body is cut: only the first FCGI_STDOUT record, at most 8 KiB, up to the first NUL', async () => {
    const port = front().port;
    const streamed = await getCase(port, 'streamed');
    expect(streamed.status).toBe(403);
    expect(streamed.body.toString()).toBe('part one\n');
    const big = await getCase(port, 'big');
    expect(big.status).toBe(403);
    expect(big.body.length).toBeGreaterThan(0);
    expect(big.body.length).toBeLessThan(8192);
    expect(BIG.subarray(0, big.body.length).equals(big.body)).toBe(true);
    const bin = await getCase(port, 'binary');
    expect(bin.status).toBe(403);
    expect(bin.body.length).toBe(0); // BINARY starts with a NUL byte
  });

  it("a 200's other headers are kept: they reach the client with the protected response", async () => {
    const res = await getCase(front().port, 'extra-headers', [bearer()]);
    expect(res.status).toBe(200);
    // The proxied app sent no ETag: the authorizer's stands for the app's response.
    expect(res.headers('x-leak')).toBe('from-authorizer');
    expect(res.headers('etag')).toBe(AUTHORIZER_ETAG);
    // The app's own Content-Type wins.
    expect(res.headers('content-type')).toBe('application/json');
    expect(JSON.parse(res.body.toString())).toMatchObject({ remoteUser: 'alice' });
  });

  it('a static file: served on 200; without CGIPassAuth the authorizer sees no Authorization', async () => {
    const port = front().port;
    const ok = await httpRequest({
      port,
      path: '/files/doc.txt',
      headers: [bearer(), ['X-Token', GOOD_TOKEN]],
    });
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toBe(STATIC_TEXT);
    expect(ok.headers('content-type')).toBe('text/plain');
    expect(authCalls).toEqual([
      expect.objectContaining({ authorization: undefined, xToken: GOOD_TOKEN }),
    ]);
    const no = await httpRequest({ port, path: '/files/doc.txt' });
    expect(no.status).toBe(401);
    expect(no.body.toString()).toBe(DENY_BODY);
    // A 200's other headers go out with the file too; the file's own type and ETag win.
    const extra = await httpRequest({
      port,
      path: '/files/doc.txt',
      headers: [
        ['X-Token', GOOD_TOKEN],
        ['X-Case', 'extra-headers'],
      ],
    });
    expect(extra.body.toString()).toBe(STATIC_TEXT);
    expect(extra.headers('x-leak')).toBe('from-authorizer');
    expect(extra.headers('content-type')).toBe('text/plain');
    expect(extra.headers('etag')).not.toBe(AUTHORIZER_ETAG);
  });

  it('Basic (AuthBasicProvider + Require): AUTHENTICATOR gets the password, AUTHORIZER the user', async () => {
    const port = front().port;
    const ok = await httpRequest({ port, path: '/basic/x', headers: [basic('alice', 'right')] });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body.toString())).toMatchObject({ remoteUser: 'alice', group: 'admins' });
    expect(authCalls).toEqual([
      expect.objectContaining({
        role: 'authorizer',
        apacheRole: 'AUTHENTICATOR',
        remoteUser: 'alice',
        remotePasswd: 'right',
        authType: 'Basic',
        // Not passed: the password is in REMOTE_PASSWD.
        authorization: undefined,
      }),
      // The second call sees the first call's Variable-TSGI_GROUP; no password.
      expect.objectContaining({
        role: 'authorizer',
        apacheRole: 'AUTHORIZER',
        remoteUser: 'alice',
        remotePasswd: undefined,
        group: 'admins',
      }),
    ]);
  });

  it("Basic: Apache's own 401 for no credentials (the app is not asked), a wrong password or a refused user", async () => {
    const port = front().port;
    const none = await httpRequest({ port, path: '/basic/x' });
    expect(none.status).toBe(401);
    expect(none.headers('www-authenticate')).toBe('Basic realm="tsgi basic"');
    expect(authCalls).toEqual([]);

    const wrong = await httpRequest({ port, path: '/basic/x', headers: [basic('alice', 'wrong')] });
    expect(wrong.status).toBe(401);
    expect(wrong.headers('www-authenticate')).toBe('Basic realm="tsgi basic"');
    expect(wrong.body.toString()).not.toContain(DENY_BODY);
    expect(authCalls.map((c) => c.apacheRole)).toEqual(['AUTHENTICATOR']);

    authCalls.length = 0;
    const bob = await httpRequest({ port, path: '/basic/x', headers: [basic('bob', 'right')] });
    // The AUTHORIZER call answered 403; Apache asks for other credentials instead.
    expect(bob.status).toBe(401);
    expect(authCalls.map((c) => c.apacheRole)).toEqual(['AUTHENTICATOR', 'AUTHORIZER']);
    expect(responderCalls).toEqual([]);
  });
});

// ---- nginx: auth_request, the alternative ---------------------------------------------------

/**
 * The auth subrequest's params, as in docs/deploy/fastcgi.md: the original request line, the
 * server and the client; no CONTENT_LENGTH (the subrequest has no body) and no SCRIPT_NAME, so
 * the core takes the path from REQUEST_URI. nginx adds the client's headers as HTTP_*.
 */
const AUTH_PARAMS = `fastcgi_param REQUEST_METHOD  $request_method;
fastcgi_param REQUEST_URI     $request_uri;
fastcgi_param SERVER_PROTOCOL $server_protocol;
fastcgi_param SERVER_SOFTWARE nginx/$nginx_version;
fastcgi_param SERVER_NAME     $server_name;
fastcgi_param SERVER_PORT     $server_port;
fastcgi_param REQUEST_SCHEME  $scheme;
fastcgi_param HTTPS           $https if_not_empty;
fastcgi_param REMOTE_ADDR     $remote_addr;
fastcgi_param REMOTE_PORT     $remote_port;`;

describeWithServer(
  'nginx',
  'nginx auth_request to a FastCGI location (no FastCGI authorizer)',
  () => {
    const front = useFront(() => ({
      server: 'nginx',
      protocol: 'fastcgi',
      backend: responder,
      extraConfig: `
location = /_tsgi_auth {
  internal;
  fastcgi_pass_request_body off;
${AUTH_PARAMS}
  fastcgi_pass 127.0.0.1:${authorizer.port};
}
location ^~ /guarded/ {
  auth_request /_tsgi_auth;
  auth_request_set $tsgi_user $upstream_http_variable_remote_user;
  auth_request_set $tsgi_group $upstream_http_variable_tsgi_group;
${DEBIAN_FASTCGI_PARAMS}
  fastcgi_param AUTH_USER $tsgi_user;
  fastcgi_param TSGI_GROUP $tsgi_group;
  fastcgi_pass 127.0.0.1:${responder.port};
}`,
    }));

    it('allowed: the check runs as a Responder; Variable-* reach the app through auth_request_set', async () => {
      const echo = await postUpload(front().port, '/guarded/x?y=1');
      expect(echo).toMatchObject({ authUser: 'alice', group: 'admins' });
      expect(authCalls).toEqual([
        expect.objectContaining({
          role: 'responder',
          method: 'POST',
          uri: '/guarded/x?y=1',
          scriptName: '',
          pathInfo: '/guarded/x',
          query: 'y=1',
          authorization: `Bearer ${GOOD_TOKEN}`,
          contentLength: undefined,
          bodyBytes: 0,
        }),
      ]);
    });

    it("denied: the status and WWW-Authenticate pass, nginx's own page replaces the rest", async () => {
      const port = front().port;
      const r = await raw(port, '/guarded/x');
      expect(r.statusLine).toBe('HTTP/1.1 401 Unauthorized');
      expect(r.headers).toContainEqual(DENY_HEADERS[0]);
      expect(names(r.headers)).not.toContain('x-auth-reason');
      expect(r.body.toString()).toContain('<h1>401 Authorization Required</h1>');
      const forbidden = await httpRequest({
        port,
        path: '/guarded/x',
        headers: [['X-Case', 'binary']],
      });
      expect(forbidden.status).toBe(403);
      expect(forbidden.body.toString()).toContain('<h1>403 Forbidden</h1>');
      const failed = await httpRequest({
        port,
        path: '/guarded/x',
        headers: [['X-Case', 'throw']],
      });
      expect(failed.status).toBe(500);
      expect(responderCalls).toEqual([]);
    });
  },
);

// ---- Filter: no web server sends it ---------------------------------------------------------

describe('Filter role (S6.4), raw FastCGI client over TCP: no web server sends it', () => {
  it('FCGI_DATA is tsgi.data, bounded by FCGI_DATA_LENGTH; the connection then serves a Responder', async () => {
    const file = Buffer.from(Array.from({ length: 300_000 }, (_, i) => 97 + (i % 26)));
    const server = await serveFastcgi(
      async (env) => {
        const input = await env['tsgi.input'].read();
        const data = env['tsgi.data'] as { read(): Promise<Uint8Array> } | undefined;
        const bytes = data ? Buffer.from(await data.read()) : Buffer.alloc(0);
        return {
          status: 200,
          headers: [['Content-Type', 'text/plain']],
          body: [
            `${env['fastcgi.role']} input=${input.length} data=${bytes.length} `,
            bytes.subarray(0, 3),
          ],
        };
      },
      { listen: { host: '127.0.0.1', port: 0 } },
    );
    try {
      const c = await FcgiClient.connect((server.address as { port: number }).port);
      const params = [
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/doc.txt'],
        ['CONTENT_LENGTH', '5'],
        ['FCGI_DATA_LENGTH', String(file.length)],
        ['FCGI_DATA_LAST_MOD', '1700000000'],
      ] as const;
      await c.send(1, params, Buffer.from('hello'), {
        role: FCGI_FILTER,
        keepConn: true,
        data: Buffer.concat([file, Buffer.from('past FCGI_DATA_LENGTH')]),
      });
      const r = await c.response(1);
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(`filter input=5 data=${file.length} abc`);
      await c.send(
        2,
        [
          ['REQUEST_METHOD', 'GET'],
          ['REQUEST_URI', '/next'],
        ],
        undefined,
        {
          keepConn: true,
        },
      );
      expect((await c.response(2)).body.toString()).toBe('responder input=0 data=0 ');
      c.close();
    } finally {
      await server.close({ timeoutMs: 1000 });
    }
  });
});
