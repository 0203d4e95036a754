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
import { frontTarget } from '../conformance/front.js';
import { runConformance, type Target } from '../conformance/suite.js';
import { COMMON_ROWS, registerProbeTests } from '../fastcgi/probe-tests.js';
import { md5, Observations, Probe, serversApp } from '../fastcgi/shared.js';
import {
  describeWithServer,
  type FrontHandle,
  type FrontOptions,
  type ToolName,
  useFront,
} from '../harness/servers.js';

interface FrontSpec {
  id: string;
  label: string;
  server: FrontOptions['server'];
  tools: ToolName[];
  options: Partial<FrontOptions>;
  compression: Partial<FrontOptions>;
}

const FRONTS: FrontSpec[] = [
  {
    id: 'lighttpd',
    label: 'lighttpd mod_scgi',
    server: 'lighttpd',
    tools: ['lighttpd'],
    options: {},
    compression: { deflate: true },
  },
  {
    id: 'lighttpd-stream2',
    label: 'lighttpd mod_scgi, stream-request-body = 2',
    server: 'lighttpd',
    tools: ['lighttpd'],
    options: { streamRequestBody: 2 },
    compression: { streamRequestBody: 2, deflate: true },
  },
  {
    id: 'nginx',
    label: 'nginx scgi_pass',
    server: 'nginx',
    tools: ['nginx'],
    options: {},
    compression: { gzip: true },
  },
  {
    id: 'apache',
    label: 'Apache mod_proxy_scgi',
    server: 'apache',
    tools: ['apache'],
    options: {},
    compression: { deflate: true },
  },
  {
    id: 'apache-trust-cl',
    label: 'Apache mod_proxy_scgi, ap_trust_cgilike_cl',
    server: 'apache',
    tools: ['apache'],
    options: { trustCgiLikeCl: true },
    compression: { trustCgiLikeCl: true, deflate: true },
  },
];

const observations = new Observations(
  'scgi',
  COMMON_ROWS,
  'TSGI_OBSERVATIONS_DIR=DIR npx vitest run test/scgi/servers.test.ts',
);

afterAll(() => {
  const path = observations.write();
  if (path) console.log(`scgi observations written to ${path}`);
});

function target(spec: FrontSpec, front: () => FrontHandle): Target {
  return frontTarget('scgi', spec, () => front().port);
}

for (const spec of FRONTS) {
  describeWithServer(spec.tools, `scgi behind ${spec.label}`, () => {
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
    const base = (): FrontOptions => ({
      server: spec.server,
      protocol: 'scgi',
      backend: backendAddress(),
      prefix: '/app',
      ...spec.options,
    });
    const front = useFront(base);
    const compressed = useFront(() => ({ ...base(), ...spec.compression }));
    // lighttpd only: the same front streaming responses (see the disconnect test).
    const streaming =
      spec.server === 'lighttpd'
        ? useFront(() => ({ ...base(), extraConfig: 'server.stream-response-body = 2' }))
        : front;

    runConformance(`scgi/${spec.id}`, () => target(spec, front));

    describe(`${spec.label}: beyond the conformance suite`, () => {
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
}
