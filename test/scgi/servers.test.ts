// The SCGI adapter (@tsgi/scgi) behind real servers: lighttpd mod_scgi (default, and
// `server.stream-request-body = 2`), nginx `scgi_pass` (Debian's stock scgi_params) and Apache
// mod_proxy_scgi. The SCGI server runs in this process, serving the conformance app with
// `mount: '/app'` (nginx sends neither SCRIPT_NAME nor PATH_INFO, Apache puts the whole path in
// SCRIPT_NAME), plus the probes of ../fastcgi/shared.ts.
//
// What each server did is recorded and written to $TSGI_OBSERVATIONS_DIR/scgi.json (default:
// a tsgi-observations dir under the OS temp dir); `node bench/lib/render-observations.mjs
// --write docs/deploy/scgi.md <that file>` renders it into the table in docs/deploy/scgi.md.
import { type ScgiServer, serveScgi } from '@tsgi/scgi';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { runFrontConformance } from '../conformance/front.js';
import { COMMON_ROWS, observationsFile, registerProbeTests } from '../fastcgi/probe-tests.js';
import { md5, Probe, serversApp } from '../fastcgi/shared.js';
import { describeFronts, frontSpec, useSpecFronts } from '../harness/fronts.js';

const FRONTS = [
  frontSpec('lighttpd', 'lighttpd mod_scgi', 'lighttpd'),
  frontSpec('lighttpd-stream2', 'lighttpd mod_scgi, stream-request-body = 2', 'lighttpd', {
    streamRequestBody: 2,
  }),
  frontSpec('nginx', 'nginx scgi_pass', 'nginx'),
  frontSpec('apache', 'Apache mod_proxy_scgi', 'apache'),
  frontSpec('apache-trust-cl', 'Apache mod_proxy_scgi, ap_trust_cgilike_cl', 'apache', {
    trustCgiLikeCl: true,
  }),
];

const observations = observationsFile(
  'scgi',
  COMMON_ROWS,
  'TSGI_OBSERVATIONS_DIR=DIR npx vitest run test/scgi/servers.test.ts',
);

describeFronts('scgi', FRONTS, (spec) => {
  const probe = new Probe();
  let backend: ScgiServer;
  beforeAll(async () => {
    observations.column(spec.id, spec.label, spec.server);
    backend = await serveScgi(serversApp(probe), {
      listen: { host: '127.0.0.1', port: 0 },
      mount: '/app',
      errors: probe.sink,
    });
  });
  afterAll(async () => {
    await backend?.close({ timeoutMs: 1000 });
  });
  const backendAddress = () => {
    const a = backend.address;
    if (!a || typeof a === 'string') throw new Error('expected a TCP address');
    return { host: '127.0.0.1', port: a.port };
  };
  // On lighttpd also a front streaming responses (see the disconnect test).
  const fronts = useSpecFronts('scgi', spec, backendAddress, { streaming: true });

  runFrontConformance('scgi', spec, fronts.front);

  describe(`${spec.label}: beyond the conformance suite`, () => {
    registerProbeTests({
      spec,
      fronts,
      probe,
      observations,
      chunked(status, got, body) {
        if (spec.server === 'apache' || spec.options.streamRequestBody === 2) {
          // mod_proxy_scgi needs a length (real-servers.md); lighttpd with
          // stream-request-body 2 refuses chunked bodies on every backend protocol.
          expect(status).toBe(411);
          return `${status} from the server (the app is not called)`;
        }
        expect(status).toBe(200);
        expect(got?.md5).toBe(md5(body));
        // Both dechunk and buffer, then send CONTENT_LENGTH; nginx still passes the client's
        // Transfer-Encoding (the adapter trusts CONTENT_LENGTH only), lighttpd removes it.
        expect(got?.contentLength).toBe(String(body.length));
        expect(got?.transferEncoding).toBe(spec.server === 'nginx' ? 'chunked' : null);
        return `dechunked and buffered: CONTENT_LENGTH=${got?.contentLength}, HTTP_TRANSFER_ENCODING ${got?.transferEncoding ?? 'unset'}; md5 ok`;
      },
    });
  });
});
