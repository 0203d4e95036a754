#!/usr/bin/env node
// Per-request cost of the tsgi core: buildEnviron + runApp over the in-memory transport,
// hello world, against a named alternative in the same run: a hand-written minimal gateway
// that does the same work without the core (a fresh environ object from the same params,
// the same app, the same CGI-style bytes written to an array).
//
//   pnpm -r --filter ./packages/core run build && node bench/core/run.mjs [--rounds N] [--ops N]
//
// Rounds alternate core / baseline so that drift (CPU frequency, GC, other load) hits both;
// the figure per target is the median of its rounds, and the ratio is computed per round
// and its median reported. Results and the command: docs/bench/core.md.
import { Buffer } from 'node:buffer';
import os from 'node:os';
import { buildEnviron, runApp } from '../../packages/core/dist/index.js';
import { MemoryTransport } from '../../packages/core/dist/testing.js';

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i], process.argv[i + 1]);
const ROUNDS = Number(args.get('--rounds') ?? 15);
const OPS = Number(args.get('--ops') ?? 20_000);

/** The CGI variables an HTTP front produces for `GET /hello?name=world` from curl. */
const PARAMS = {
  REQUEST_METHOD: 'GET',
  REQUEST_URI: '/hello?name=world',
  SCRIPT_NAME: '',
  PATH_INFO: '/hello',
  QUERY_STRING: 'name=world',
  SERVER_PROTOCOL: 'HTTP/1.1',
  SERVER_NAME: '127.0.0.1',
  SERVER_PORT: '8000',
  SERVER_SOFTWARE: 'bench',
  GATEWAY_INTERFACE: 'CGI/1.1',
  REMOTE_ADDR: '127.0.0.1',
  REMOTE_PORT: '51234',
  REQUEST_SCHEME: 'http',
  DOCUMENT_ROOT: '/srv/www',
  HTTP_HOST: '127.0.0.1:8000',
  HTTP_USER_AGENT: 'curl/7.88.1',
  HTTP_ACCEPT: '*/*',
  HTTP_ACCEPT_ENCODING: 'gzip, deflate, br',
  HTTP_ACCEPT_LANGUAGE: 'en-US,en;q=0.9',
  HTTP_COOKIE: 'session=0123456789abcdef',
};

/** The application: the README's hello world, startResponse style. */
function hello(_environ, startResponse) {
  startResponse('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', '14'],
  ]);
  return ['Hello, World!\n'];
}

const sink = () => {};

/** One request through the core; returns the bytes a CGI/FastCGI/SCGI adapter would emit. */
async function core() {
  const environ = buildEnviron(PARAMS, { errors: sink });
  const t = new MemoryTransport();
  await runApp(hello, environ, t);
  return t.cgiBytes();
}

/**
 * The baseline: what a gateway without the core minimally does for the same request: copy
 * the params into a fresh environ with the same extra keys, call the same app, serialize
 * the same head, encode the string chunk, collect the bytes. No validation, no Content-
 * Length accounting, no input wrapper, no close handling, no Promise.
 */
function baseline() {
  const environ = {};
  for (const k in PARAMS) environ[k] = PARAMS[k];
  environ.RAW_URI = environ.REQUEST_URI;
  environ['tsgi.version'] = [1, 1];
  environ['tsgi.url_scheme'] = 'http';
  environ['tsgi.input'] = null;
  environ['tsgi.errors'] = null;
  environ['tsgi.multithread'] = false;
  environ['tsgi.multiprocess'] = false;
  environ['tsgi.run_once'] = false;
  environ['tsgi.input_terminated'] = true;
  environ['tsgi.uri_encoding'] = 'utf-8';
  let status = '';
  let headers = [];
  const body = hello(environ, (s, h) => {
    status = s;
    headers = h;
    return () => {};
  });
  const out = [];
  let head = `Status: ${status}\r\n`;
  for (const [n, v] of headers) head += `${n}: ${v}\r\n`;
  out.push(Buffer.from(`${head}\r\n`, 'latin1'));
  for (const chunk of body) out.push(Buffer.from(chunk, 'latin1'));
  return Buffer.concat(out);
}

// Both must produce the same bytes, or the comparison means nothing.
const a = await core();
const b = baseline();
if (!a.equals(b)) {
  console.error('core and baseline disagree:\n', a.toString('latin1'), '\n', b.toString('latin1'));
  process.exit(1);
}

async function timeCore(n) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await core();
  return Number(process.hrtime.bigint() - t0) / n;
}

async function timeBaseline(n) {
  const t0 = process.hrtime.bigint();
  // awaited like the core, so the loop shapes match; baseline() itself is synchronous
  for (let i = 0; i < n; i++) await baseline();
  return Number(process.hrtime.bigint() - t0) / n;
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// Warm-up: let V8 optimise both paths before anything is recorded.
await timeCore(OPS);
await timeBaseline(OPS);

const coreNs = [];
const baseNs = [];
const ratios = [];
for (let r = 0; r < ROUNDS; r++) {
  // alternate the order so neither always runs first in a round
  let c;
  let bl;
  if (r % 2 === 0) {
    c = await timeCore(OPS);
    bl = await timeBaseline(OPS);
  } else {
    bl = await timeBaseline(OPS);
    c = await timeCore(OPS);
  }
  coreNs.push(c);
  baseNs.push(bl);
  ratios.push(c / bl);
}

const fmt = (x) => x.toFixed(0).padStart(8);
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`tsgi core per-request cost: hello world, ${ROUNDS} rounds x ${OPS} requests`);
console.log(
  `node ${process.version}, ${os.platform()} ${os.arch()}, ${cpu} (${os.cpus().length} cpus)`,
);
console.log('');
console.log(
  'target                                                  ns/op (median)   min      max',
);
console.log(
  `core: buildEnviron + runApp + MemoryTransport + cgiBytes ${fmt(median(coreNs))} ${fmt(Math.min(...coreNs))} ${fmt(Math.max(...coreNs))}`,
);
console.log(
  `baseline: hand-written minimal gateway (same bytes)     ${fmt(median(baseNs))} ${fmt(Math.min(...baseNs))} ${fmt(Math.max(...baseNs))}`,
);
console.log('');
console.log(
  `ratio core/baseline: ${median(ratios).toFixed(2)}x (median of per-round ratios; min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)})`,
);
console.log(
  `core overhead per request: ${(median(coreNs) - median(baseNs)).toFixed(0)} ns (${(1e9 / median(coreNs)).toFixed(0)} requests/s on one core, transport excluded)`,
);
