// The process that runs a framework app (apps.ts) behind a real server, for servers.test.ts
// (bundled into one executable .mjs with its dependencies; see bundleBackend there).
//
// - Started by a CGI server (GATEWAY_INTERFACE is set): answers its one request with
//   @tsgi/cgi's runCgi and exits with its code.
// - Otherwise TSGI_BRIDGE_PROTOCOL=fastcgi|scgi|http: serves on 127.0.0.1, a port picked by
//   the kernel, and prints `listening PORT` on stdout.
//
// TSGI_BRIDGE_FRAMEWORK=hono|express|koa picks the app; TSGI_BRIDGE_PROBE names the file
// its probe appends events to. The app is the framework's own, unchanged, mounted at /app
// (routes under /app, full URL handed over) with the bridge's defaults; under /app/own the
// same framework runs a second instance with `mapHeadToGet: false`, so a HEAD reaches it as
// HEAD (its own HEAD handling). The adapters get `mount: '/app'` (nginx's stock
// fastcgi_params put the whole path in SCRIPT_NAME).
import { runCgi } from '@tsgi/cgi';
import type { Application, ErrorSink } from '@tsgi/core';
import { FRAMEWORKS, Probe } from './apps.js';

const name = process.env.TSGI_BRIDGE_FRAMEWORK;
const fw = FRAMEWORKS.find((f) => f.name === name);
if (fw === undefined) {
  process.stderr.write(`backend: TSGI_BRIDGE_FRAMEWORK=${name} is not hono, express or koa\n`);
  process.exit(2);
}
const probe = new Probe(process.env.TSGI_BRIDGE_PROBE || undefined);
const shared = { probe, reportMemory: true };
const mapped = fw.tsgi({ ...shared, base: '/app' });
const own = fw.tsgi({ ...shared, base: '/app/own', mapHeadToGet: false });

/** app: /app/own/... to the instance with its own HEAD handling, the rest to the default one. */
export const app: Application = (environ, startResponse) => {
  const path = environ.PATH_INFO;
  const isOwn = typeof path === 'string' && (path === '/own' || path.startsWith('/own/'));
  return (isOwn ? own : mapped)(environ, startResponse);
};

// A client going away is reported at debug; everything else goes to stderr, which the test
// prints when a case fails (for CGI: the server's error log).
const errors: ErrorSink = (text, level) => {
  if (level !== 'debug') process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
};

const listen = { host: '127.0.0.1', port: 0 };
const announce = (address: unknown) => {
  const port = (address as { port?: number } | null)?.port;
  process.stdout.write(`listening ${port}\n`);
};

const protocol = process.env.GATEWAY_INTERFACE ? 'cgi' : process.env.TSGI_BRIDGE_PROTOCOL;
switch (protocol) {
  case 'cgi':
    // runCgi handles what Apache's mod_cgi(d) does to a script whose client went away
    // (SIGTERM: tsgi.signal fires and the app gets 2 s) and resolves one event-loop turn
    // after the response, so the framework's 'close' events have run: exit at once.
    process.exit(await runCgi(app, { errors }));
    break;
  case 'fastcgi': {
    const { serveFastcgi } = await import('@tsgi/fastcgi');
    announce((await serveFastcgi(app, { listen, mount: '/app', errors })).address);
    break;
  }
  case 'scgi': {
    const { serveScgi } = await import('@tsgi/scgi');
    announce((await serveScgi(app, { listen, mount: '/app', errors })).address);
    break;
  }
  case 'http': {
    const { serveHttp } = await import('@tsgi/http');
    const server = await serveHttp(app, { ...listen, mount: '/app', log: errors });
    announce({ port: server.port });
    break;
  }
  default:
    process.stderr.write(
      `backend: TSGI_BRIDGE_PROTOCOL=${protocol} is not fastcgi, scgi or http\n`,
    );
    process.exit(2);
}
