// A tsgi backend: `node tsgi.mjs --protocol fastcgi|scgi [--listen HOST:PORT|/path.sock]`.
// Loads the adapter from packages/<protocol>/dist (build first: `pnpm run build`; or from
// $BENCH_TSGI_MODULE, a path to another build's index.js) and serves
// the bench workload (workload.mjs) as a tsgi application. Prints `SKIP reason` when the
// adapter is not built or does not export its serve function yet.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  announce,
  BIG,
  HELLO,
  listenArg,
  pacer,
  READ_CHUNK,
  route,
  skip,
  sleep,
} from './workload.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const pi = process.argv.indexOf('--protocol');
const protocol = pi >= 0 ? process.argv[pi + 1] : 'fastcgi';
// BENCH_TSGI_MODULE: load the adapter from another build (a before/after comparison in one run).
const dist = process.env.BENCH_TSGI_MODULE || join(root, 'packages', protocol, 'dist', 'index.js');
if (!existsSync(dist))
  skip(`packages/${protocol}/dist/index.js is missing (not built yet: pnpm run build)`);
const mod = await import(pathToFileURL(dist).href);
const wanted =
  protocol === 'fastcgi'
    ? ['serveFastcgi', 'serveFastCGI', 'serve']
    : ['serveScgi', 'serveSCGI', 'serve'];
const serve = wanted.map((n) => mod[n]).find((f) => typeof f === 'function');
if (!serve) skip(`@tsgi/${protocol} does not export ${wanted.join(' or ')} yet`);

const textResponse = (sr, s) => {
  const b = Buffer.from(s);
  sr('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(b.length)],
  ]);
  return [b];
};

/** The workload as a tsgi application. */
const app = async (environ, sr) => {
  switch (route(environ.REQUEST_URI)) {
    case 'hello':
      sr('200 OK', [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '14'],
      ]);
      return [HELLO];
    case 'big':
      sr('200 OK', [
        ['Content-Type', 'application/octet-stream'],
        ['Content-Length', String(BIG.length)],
      ]);
      return [BIG];
    case 'upload': {
      let n = 0;
      for await (const c of environ['tsgi.input']) n += c.length;
      return textResponse(sr, `${n}\n`);
    }
    case 'slow': {
      const input = environ['tsgi.input'];
      const wait = pacer();
      let n = 0;
      if (process.env.BENCH_SLOW_READ === 'iterate') {
        // The chunks as the adapter hands them over (no reassembly into READ_CHUNK pieces).
        for await (const c of input) {
          n += c.length;
          const ms = wait(c.length);
          if (ms > 0) await sleep(ms);
        }
      } else {
        for (;;) {
          const c = await input.read(READ_CHUNK);
          if (c.length === 0) break;
          n += c.length;
          const ms = wait(c.length);
          if (ms > 0) await sleep(ms);
        }
      }
      return textResponse(sr, `${n}\n`);
    }
    default:
      sr('404 Not Found', [['Content-Length', '0']]);
      return [];
  }
};

const l = listenArg();
const listen = l.path ? { path: l.path, mode: 0o666 } : { host: l.host, port: l.port };
// Warnings and errors only (a benchmark must not log per request).
const errors = (text, level) => {
  if (level === 'warn' || level === 'error') process.stderr.write(`${level}: ${text}\n`);
};
const server = await serve(app, { listen, errors });
const a = server.address;
announce(
  typeof a === 'string'
    ? { socket: a }
    : a && typeof a === 'object'
      ? { host: '127.0.0.1', port: a.port }
      : { socket: l.path },
);
