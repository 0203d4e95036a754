/**
 * Self-test of the real-server harness: every server × protocol routes a request to a real
 * backend and back, and the CGI/FastCGI/SCGI variables each server really sends are pinned
 * (request `GET /app/extra/p%20q?x=1`, prefix `/app`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest } from './clients.js';
import {
  md5,
  parseDump,
  startCountingProxy,
  startHttpDump,
  startScgiDump,
  type TempScript,
  UNSET,
  writeTempScript,
} from './fixtures.js';
import {
  describeWithServer,
  type FcgiwrapHandle,
  type FrontOptions,
  type FrontServer,
  startFcgiwrap,
  type ToolName,
  useFront,
} from './servers.js';

const PATH = '/app/extra/p%20q?x=1';
const BIG = randomBytes(1_000_000);
const BIG_MD5 = md5(BIG);
const EMPTY_MD5 = md5('');

async function* chunksOf(buf: Buffer, size = 64 * 1024): AsyncIterable<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

const get = async (port: number, path = PATH, headers: [string, string][] = []) =>
  httpRequest({ port, path, headers });
const postBig = (port: number, chunked = false) =>
  httpRequest({
    port,
    method: 'POST',
    path: '/app/upload',
    headers: [['Content-Type', 'application/octet-stream']],
    body: chunked ? chunksOf(BIG) : BIG,
    chunked,
  });

/** Which tools a server needs for a protocol (nginx runs CGI through fcgiwrap). */
const tools = (server: FrontServer, protocol: FrontOptions['protocol']): ToolName[] =>
  server === 'nginx' && protocol === 'cgi' ? ['nginx', 'fcgiwrap'] : [server];

let fixture: TempScript;
beforeAll(async () => {
  fixture = await writeTempScript();
});
afterAll(async () => {
  await fixture?.remove();
});

// ---------------------------------------------------------------------------------------------
// CGI: the shell script run directly by the server.
// ---------------------------------------------------------------------------------------------
interface CgiCase {
  title: string;
  server: FrontServer;
  options?: Partial<FrontOptions>;
  /** CONTENT_LENGTH the script sees on a GET. */
  getContentLength: string;
  /** CONTENT_LENGTH the script sees for a chunked 1 MB POST. */
  chunkedContentLength: string;
  /** HTTP_TRANSFER_ENCODING the script sees for that chunked POST. */
  chunkedTransferEncoding: string;
}

const CGI_CASES: CgiCase[] = [
  {
    title: 'apache event + mod_cgid',
    server: 'apache',
    options: { mpm: 'event' },
    getContentLength: UNSET,
    chunkedContentLength: UNSET,
    chunkedTransferEncoding: 'chunked',
  },
  {
    title: 'apache prefork + mod_cgi',
    server: 'apache',
    options: { mpm: 'prefork' },
    getContentLength: UNSET,
    chunkedContentLength: UNSET,
    chunkedTransferEncoding: 'chunked',
  },
  {
    title: 'lighttpd mod_cgi',
    server: 'lighttpd',
    getContentLength: '0',
    chunkedContentLength: '1000000',
    chunkedTransferEncoding: UNSET,
  },
  {
    title: 'nginx + fcgiwrap',
    server: 'nginx',
    getContentLength: '',
    chunkedContentLength: '1000000',
    chunkedTransferEncoding: 'chunked',
  },
];

describe('CGI', () => {
  for (const c of CGI_CASES) {
    describeWithServer(tools(c.server, 'cgi'), `CGI behind ${c.title}`, () => {
      const front = useFront(() => ({
        server: c.server,
        protocol: 'cgi',
        backend: { script: fixture.script },
        ...c.options,
      }));

      it('runs the script with SCRIPT_NAME=/app and PATH_INFO=/extra/p q', async () => {
        const res = await get(front().port);
        expect(res.status).toBe(200);
        expect(res.headers('content-type')).toBe('text/plain');
        const env = parseDump(res.body);
        expect(env).toMatchObject({
          REQUEST_METHOD: 'GET',
          SCRIPT_NAME: '/app',
          PATH_INFO: '/extra/p q',
          QUERY_STRING: 'x=1',
          REQUEST_URI: '/app/extra/p%20q?x=1',
          CONTENT_LENGTH: c.getContentLength,
          SCRIPT_FILENAME: fixture.script,
          GATEWAY_INTERFACE: 'CGI/1.1',
          MD5: EMPTY_MD5,
        });
        // PATH reached the script, so `#!/usr/bin/env node` wrappers will work.
        expect(env.NODE).toMatch(/\/node$/);
      });

      it('maps the bare prefix with no PATH_INFO, and nothing outside it', async () => {
        const env = parseDump((await get(front().port, '/app')).body);
        expect(env.SCRIPT_NAME).toBe('/app');
        expect(env.PATH_INFO).toBe(UNSET);
        const outside = await get(front().port, '/apple');
        expect(outside.status).toBe(404);
        expect(outside.body.toString()).not.toContain('SCRIPT_NAME=');
      });

      it('delivers a 1 MB POST body (Content-Length)', async () => {
        const res = await postBig(front().port);
        expect(res.status).toBe(200);
        const env = parseDump(res.body);
        expect(env.CONTENT_LENGTH).toBe('1000000');
        expect(env.MD5).toBe(BIG_MD5);
      });

      it('delivers a 1 MB chunked POST body', async () => {
        const res = await postBig(front().port, true);
        expect(res.status).toBe(200);
        const env = parseDump(res.body);
        expect(env.CONTENT_LENGTH).toBe(c.chunkedContentLength);
        expect(env.HTTP_TRANSFER_ENCODING).toBe(c.chunkedTransferEncoding);
        expect(env.MD5).toBe(BIG_MD5);
      });

      it('writes the access and error logs in its private dir', async () => {
        await get(front().port);
        expect(await front().accessLog()).toContain('/app/extra/p%20q?x=1');
        expect(front().dir.startsWith(tmpdir())).toBe(true);
        expect((await stat(front().configPath)).isFile()).toBe(true);
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// FastCGI: fcgiwrap (TCP and unix socket) runs the same script, told SCRIPT_FILENAME.
// ---------------------------------------------------------------------------------------------
interface FcgiCase {
  title: string;
  server: FrontServer;
  options?: Partial<FrontOptions>;
  scriptName: string;
  pathInfo: string;
  getContentLength: string;
}

const FCGI_CASES: FcgiCase[] = [
  // Stock Debian params: $fastcgi_script_name is the whole decoded path, no PATH_INFO.
  {
    title: 'nginx',
    server: 'nginx',
    scriptName: '/app/extra/p q',
    pathInfo: UNSET,
    getContentLength: '',
  },
  {
    title: 'nginx splitPathInfo',
    server: 'nginx',
    options: { splitPathInfo: true },
    scriptName: '/app',
    pathInfo: '/extra/p q',
    getContentLength: '',
  },
  // mod_proxy_fcgi: whole path in SCRIPT_NAME, no PATH_INFO.
  {
    title: 'apache mod_proxy_fcgi',
    server: 'apache',
    scriptName: '/app/extra/p q',
    pathInfo: UNSET,
    getContentLength: UNSET,
  },
  {
    title: 'lighttpd mod_fastcgi',
    server: 'lighttpd',
    scriptName: '/app',
    pathInfo: '/extra/p q',
    getContentLength: '0',
  },
];

describeWithServer('fcgiwrap', 'FastCGI (fcgiwrap backend)', () => {
  let tcp: FcgiwrapHandle;
  let unix: FcgiwrapHandle;
  beforeAll(async () => {
    [tcp, unix] = await Promise.all([
      startFcgiwrap({ listen: 'tcp' }),
      startFcgiwrap({ listen: 'unix' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([tcp?.stop(), unix?.stop()]);
  });

  for (const c of FCGI_CASES) {
    for (const transport of ['tcp', 'unix'] as const) {
      describeWithServer(c.server, `FastCGI behind ${c.title} over ${transport}`, () => {
        const front = useFront(() => ({
          server: c.server,
          protocol: 'fastcgi',
          backend: (transport === 'tcp' ? tcp : unix).backend,
          fcgiScriptFilename: fixture.script,
          ...c.options,
        }));

        it(`sends SCRIPT_NAME=${c.scriptName} PATH_INFO=${c.pathInfo}`, async () => {
          const res = await get(front().port);
          expect(res.status).toBe(200);
          expect(parseDump(res.body)).toMatchObject({
            REQUEST_METHOD: 'GET',
            SCRIPT_NAME: c.scriptName,
            PATH_INFO: c.pathInfo,
            QUERY_STRING: 'x=1',
            REQUEST_URI: '/app/extra/p%20q?x=1',
            CONTENT_LENGTH: c.getContentLength,
            MD5: EMPTY_MD5,
          });
          expect((await get(front().port, '/apple')).status).toBe(404);
        });

        it('delivers a 1 MB POST body', async () => {
          const res = await postBig(front().port);
          expect(res.status).toBe(200);
          expect(parseDump(res.body)).toMatchObject({
            CONTENT_LENGTH: '1000000',
            MD5: BIG_MD5,
          });
        });
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// SCGI: a Node responder that dumps the header block.
// ---------------------------------------------------------------------------------------------
interface ScgiCase {
  title: string;
  server: FrontServer;
  options?: Partial<FrontOptions>;
  scriptName: string;
  pathInfo: string;
  getContentLength: string;
}

const SCGI_CASES: ScgiCase[] = [
  // Stock scgi_params carry neither SCRIPT_NAME nor PATH_INFO (only DOCUMENT_URI).
  {
    title: 'nginx',
    server: 'nginx',
    scriptName: UNSET,
    pathInfo: UNSET,
    getContentLength: '0',
  },
  {
    title: 'nginx splitPathInfo',
    server: 'nginx',
    options: { splitPathInfo: true },
    scriptName: '/app',
    pathInfo: '/extra/p q',
    getContentLength: '0',
  },
  {
    title: 'lighttpd mod_scgi',
    server: 'lighttpd',
    scriptName: '/app',
    pathInfo: '/extra/p q',
    getContentLength: '0',
  },
  {
    title: 'apache mod_proxy_scgi',
    server: 'apache',
    scriptName: '/app/extra/p q',
    pathInfo: UNSET,
    getContentLength: '0',
  },
  {
    title: 'apache mod_proxy_scgi scgiPathInfo',
    server: 'apache',
    options: { scgiPathInfo: true },
    // A "best guess": the rest of the backend URL, still percent-encoded, while SCRIPT_NAME
    // keeps the whole decoded path.
    scriptName: '/app/extra/p q',
    pathInfo: '/extra/p%20q',
    getContentLength: '0',
  },
];

describe('SCGI (Node responder)', () => {
  let socketDir: string;
  let tcp: Awaited<ReturnType<typeof startScgiDump>>;
  let unix: Awaited<ReturnType<typeof startScgiDump>>;
  beforeAll(async () => {
    socketDir = await mkdtemp(join(tmpdir(), 'tsgi-scgi-'));
    [tcp, unix] = await Promise.all([startScgiDump(), startScgiDump({ socketDir })]);
  });
  afterAll(async () => {
    await Promise.all([tcp?.close(), unix?.close()]);
    await rm(socketDir, { recursive: true, force: true });
  });

  for (const c of SCGI_CASES) {
    for (const transport of ['tcp', 'unix'] as const) {
      describeWithServer(c.server, `SCGI behind ${c.title} over ${transport}`, () => {
        const front = useFront(() => ({
          server: c.server,
          protocol: 'scgi',
          backend: (transport === 'tcp' ? tcp : unix).backend,
          ...c.options,
        }));

        it(`sends SCRIPT_NAME=${c.scriptName} PATH_INFO=${c.pathInfo}`, async () => {
          const res = await get(front().port);
          expect(res.status).toBe(200);
          const env = parseDump(res.body);
          expect({ SCRIPT_NAME: UNSET, PATH_INFO: UNSET, ...env }).toMatchObject({
            SCGI: '1',
            REQUEST_METHOD: 'GET',
            SCRIPT_NAME: c.scriptName,
            PATH_INFO: c.pathInfo,
            QUERY_STRING: 'x=1',
            REQUEST_URI: '/app/extra/p%20q?x=1',
            CONTENT_LENGTH: c.getContentLength,
            MD5: EMPTY_MD5,
          });
          // The SCGI spec: CONTENT_LENGTH is the first header.
          expect(res.body.toString().split('\n')[0]).toMatch(/^CONTENT_LENGTH=/);
          expect((await get(front().port, '/apple')).status).toBe(404);
        });

        it('delivers a 1 MB POST body', async () => {
          const res = await postBig(front().port);
          expect(res.status).toBe(200);
          expect(parseDump(res.body)).toMatchObject({ CONTENT_LENGTH: '1000000', MD5: BIG_MD5 });
        });
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// HTTP: a node:http backend behind each reverse proxy.
// ---------------------------------------------------------------------------------------------
describe('HTTP (node:http backend)', () => {
  let socketDir: string;
  let tcp: Awaited<ReturnType<typeof startHttpDump>>;
  let unix: Awaited<ReturnType<typeof startHttpDump>>;
  beforeAll(async () => {
    socketDir = await mkdtemp(join(tmpdir(), 'tsgi-http-'));
    [tcp, unix] = await Promise.all([startHttpDump(), startHttpDump({ socketDir })]);
  });
  afterAll(async () => {
    await Promise.all([tcp?.close(), unix?.close()]);
    await rm(socketDir, { recursive: true, force: true });
  });

  for (const server of ['nginx', 'lighttpd', 'apache'] as const) {
    for (const transport of ['tcp', 'unix'] as const) {
      describeWithServer(server, `HTTP behind ${server} over ${transport}`, () => {
        const front = useFront(() => ({
          server,
          protocol: 'http',
          backend: (transport === 'tcp' ? tcp : unix).backend,
        }));

        it('passes the raw request URI and the client Host through', async () => {
          const res = await get(front().port);
          expect(res.status).toBe(200);
          expect(parseDump(res.body)).toMatchObject({
            METHOD: 'GET',
            URL: '/app/extra/p%20q?x=1',
            HOST: `127.0.0.1:${front().port}`,
            X_FORWARDED_FOR: '127.0.0.1',
            MD5: EMPTY_MD5,
          });
          expect((await get(front().port, '/apple')).status).toBe(404);
        });

        it('delivers a 1 MB POST body', async () => {
          const res = await postBig(front().port);
          expect(res.status).toBe(200);
          expect(parseDump(res.body)).toMatchObject({ CONTENT_LENGTH: '1000000', MD5: BIG_MD5 });
        });
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Server-specific switches: each one changes something observable.
// ---------------------------------------------------------------------------------------------
describeWithServer(['nginx', 'fcgiwrap'], 'nginx switches (FastCGI)', () => {
  let fw: FcgiwrapHandle;
  let plainProxy: Awaited<ReturnType<typeof startCountingProxy>>;
  let keepProxy: Awaited<ReturnType<typeof startCountingProxy>>;
  beforeAll(async () => {
    fw = await startFcgiwrap({ listen: 'tcp' });
    [plainProxy, keepProxy] = await Promise.all([
      startCountingProxy(fw.backend),
      startCountingProxy(fw.backend),
    ]);
  });
  afterAll(async () => {
    await Promise.all([plainProxy?.close(), keepProxy?.close()]);
    await fw?.stop();
  });
  const plain = useFront(() => ({
    server: 'nginx',
    protocol: 'fastcgi',
    backend: plainProxy.backend,
    fcgiScriptFilename: fixture.script,
  }));
  const tuned = useFront(() => ({
    server: 'nginx',
    protocol: 'fastcgi',
    backend: keepProxy.backend,
    fcgiScriptFilename: fixture.script,
    keepConn: true,
    gzip: true,
    requestBuffering: false,
  }));

  it('keepConn reuses one backend connection; the default opens one per request', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await get(plain().port)).status).toBe(200);
      expect((await get(tuned().port)).status).toBe(200);
    }
    expect(plainProxy.connections()).toBe(3);
    expect(keepProxy.connections()).toBe(1);
  });

  it('gzip compresses text/plain only when enabled', async () => {
    const ae: [string, string][] = [['Accept-Encoding', 'gzip']];
    const z = await get(tuned().port, PATH, ae);
    expect(z.headers('content-encoding')).toBe('gzip');
    expect(parseDump(gunzipSync(z.body)).SCRIPT_NAME).toBe('/app/extra/p q');
    const p = await get(plain().port, PATH, ae);
    expect(p.headers('content-encoding')).toBeUndefined();
  });

  it('requestBuffering=false streams a chunked body with an empty CONTENT_LENGTH', async () => {
    const streamed = parseDump((await postBig(tuned().port, true)).body);
    expect(streamed).toMatchObject({ CONTENT_LENGTH: '', MD5: BIG_MD5 });
    const buffered = parseDump((await postBig(plain().port, true)).body);
    expect(buffered).toMatchObject({ CONTENT_LENGTH: '1000000', MD5: BIG_MD5 });
  });
});

describeWithServer('lighttpd', 'lighttpd switches (CGI)', () => {
  const front = useFront(() => ({
    server: 'lighttpd',
    protocol: 'cgi',
    backend: { script: fixture.script },
    localRedir: true,
    deflate: true,
    streamRequestBody: 2,
  }));

  const plain = useFront(() => ({
    server: 'lighttpd',
    protocol: 'cgi',
    backend: { script: fixture.script },
  }));

  it('localRedir turns a bare Location into an internal redirect (default: 302)', async () => {
    // lighttpd only redirects internally to a URL outside the script's own (SCRIPT_NAME/...).
    await writeFile(join(front().dir, 'htdocs', 'redirect-target.txt'), 'static target\n');
    const res = await get(front().port, '/app?mode=redirect');
    expect(res.status).toBe(200);
    expect(res.headers('location')).toBeUndefined();
    expect(res.body.toString()).toBe('static target\n');
    const external = await get(plain().port, '/app?mode=redirect');
    expect(external.status).toBe(302);
    expect(external.headers('location')).toBe('/redirect-target.txt');
  });

  it('deflate gzips text/plain for GET', async () => {
    const res = await get(front().port, PATH, [['Accept-Encoding', 'gzip']]);
    expect(res.headers('content-encoding')).toBe('gzip');
    expect(parseDump(gunzipSync(res.body)).PATH_INFO).toBe('/extra/p q');
  });

  it('streamRequestBody=2 refuses chunked bodies with 411, streams Content-Length ones', async () => {
    expect((await postBig(front().port, true)).status).toBe(411);
    const res = await postBig(front().port);
    expect(parseDump(res.body).MD5).toBe(BIG_MD5);
  });
});

describeWithServer('apache', 'apache switches', () => {
  const plainCgi = useFront(() => ({
    server: 'apache',
    protocol: 'cgi',
    backend: { script: fixture.script },
  }));
  const tunedCgi = useFront(() => ({
    server: 'apache',
    protocol: 'cgi',
    mpm: 'prefork',
    backend: { script: fixture.script },
    trustCgiLikeCl: true,
    deflate: true,
  }));

  it('trustCgiLikeCl keeps the script Content-Length (dropped by default)', async () => {
    const trusted = await get(tunedCgi().port, '/app?mode=cl');
    expect(trusted.headers('content-length')).toBe('6');
    expect(trusted.body.toString()).toBe('hello\n');
    const dropped = await get(plainCgi().port, '/app?mode=cl');
    expect(dropped.headers('content-length')).toBeUndefined();
    expect(dropped.headers('transfer-encoding')).toBe('chunked');
    expect(dropped.body.toString()).toBe('hello\n');
  });

  it('deflate gzips text/plain', async () => {
    const res = await get(tunedCgi().port, PATH, [['Accept-Encoding', 'gzip']]);
    expect(res.headers('content-encoding')).toBe('gzip');
    expect(parseDump(gunzipSync(res.body)).PATH_INFO).toBe('/extra/p q');
    const plain = await get(plainCgi().port, PATH, [['Accept-Encoding', 'gzip']]);
    expect(plain.headers('content-encoding')).toBeUndefined();
  });

  describeWithServer('fcgiwrap', 'sendCl (fcgiwrap backend)', () => {
    let fw: FcgiwrapHandle;
    // Registered before the useFront hooks below, so it runs first.
    beforeAll(async () => {
      fw = await startFcgiwrap({ listen: 'tcp' });
    });
    afterAll(async () => {
      await fw?.stop();
    });
    const plainFcgi = useFront(() => ({
      server: 'apache',
      protocol: 'fastcgi',
      backend: fw.backend,
      fcgiScriptFilename: fixture.script,
    }));
    const sendCl = useFront(() => ({
      server: 'apache',
      protocol: 'fastcgi',
      backend: fw.backend,
      fcgiScriptFilename: fixture.script,
      sendCl: true,
    }));

    it('sendCl spools a chunked body and sends CONTENT_LENGTH (absent by default)', async () => {
      const spooled = parseDump((await postBig(sendCl().port, true)).body);
      expect(spooled).toMatchObject({ CONTENT_LENGTH: '1000000', MD5: BIG_MD5 });
      const streamed = parseDump((await postBig(plainFcgi().port, true)).body);
      expect(streamed).toMatchObject({ CONTENT_LENGTH: UNSET, MD5: BIG_MD5 });
    });
  });
});
