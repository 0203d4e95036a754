// Apps for the real-server tests beyond the conformance suite (servers.test.ts), chosen by
// the `X-Cgi-Extra` request header. Bundled into the CGI script with the conformance app.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { Application } from '@tsgi/core';

// Read while the bundle loads, after '@tsgi/cgi' (imported first by script.ts) removed it.
const proxyAtLoad = process.env.HTTP_PROXY ?? null;

const hex = (v: unknown) =>
  typeof v === 'string' ? Buffer.from(v, 'latin1').toString('hex') : null;

/** IDENTITY_TEXT: a compressible 2000-byte text body, sent in two chunks. */
export const IDENTITY_TEXT = Buffer.from('tsgi '.repeat(400), 'latin1');

/** REDIRECT_TARGET: a static file outside the script's URL space (lighttpd refuses local redirects under it). */
export const REDIRECT_TARGET = '/redirect-target.txt';

export const extras: Record<string, Application> = {
  dump(environ, startResponse) {
    const vars: Record<string, string> = {};
    for (const [k, v] of Object.entries(environ)) if (typeof v === 'string') vars[k] = v;
    const body = Buffer.from(
      JSON.stringify({
        vars,
        pathInfoHex: hex(environ.PATH_INFO),
        queryHex: hex(environ.QUERY_STRING),
        latinHex: hex(environ.HTTP_X_LATIN),
        uriEncoding: environ['tsgi.uri_encoding'],
        proxyAtLoad,
        proxyNow: process.env.HTTP_PROXY ?? null,
      }),
      'utf8',
    );
    startResponse('200 OK', [
      ['Content-Type', 'application/json'],
      ['Content-Length', String(body.length)],
    ]);
    return [body];
  },

  async md5(environ, startResponse) {
    const hash = createHash('md5');
    let n = 0;
    for (;;) {
      const c = await environ['tsgi.input'].read(65536);
      if (c.length === 0) break;
      hash.update(c);
      n += c.length;
    }
    const body = JSON.stringify({
      length: n,
      md5: hash.digest('hex'),
      contentLength: environ.CONTENT_LENGTH ?? null,
      transferEncoding: environ.HTTP_TRANSFER_ENCODING ?? null,
    });
    startResponse('200 OK', [['Content-Type', 'application/json']]);
    return [body];
  },

  identityCl(_environ, startResponse) {
    startResponse('200 OK', [
      ['Content-Type', 'text/plain'],
      ['X-Identity', 'same'],
      ['Content-Length', String(IDENTITY_TEXT.length)],
    ]);
    return [IDENTITY_TEXT.subarray(0, 1000), IDENTITY_TEXT.subarray(1000)];
  },

  identityNoCl(_environ, startResponse) {
    startResponse('200 OK', [
      ['Content-Type', 'text/plain'],
      ['X-Identity', 'same'],
    ]);
    return [IDENTITY_TEXT.subarray(0, 1000), IDENTITY_TEXT.subarray(1000)];
  },

  redirect: () => ({ status: 200, headers: [['Location', REDIRECT_TARGET]] }),

  // Under the script's own URL: lands on the script again (PATH_INFO /landed), which then
  // answers normally (the request header that chose this app survives the redirect).
  redirectUnderScript: (environ) =>
    environ.PATH_INFO === '/landed'
      ? { status: 200, headers: [['Content-Type', 'text/plain']], body: 'landed\n' }
      : { status: 200, headers: [['Location', '/app/landed']] },

  throwBefore() {
    throw new Error('servers test: thrown before the head');
  },

  throwAfter(_environ, startResponse) {
    return (function* () {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      yield 'partial ';
      throw new Error('servers test: thrown after the head');
    })();
  },

  throwAfterCl(_environ, startResponse) {
    return (function* () {
      startResponse('200 OK', [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '100'],
      ]);
      yield 'partial ';
      throw new Error('servers test: thrown after the head (Content-Length 100)');
    })();
  },
};
