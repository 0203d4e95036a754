#!/usr/bin/env node
// SCGI through nginx (`scgi_pass`) and lighttpd (mod_scgi), in one run, rounds interleaved:
//   tsgi-scgi     @tsgi/scgi (packages/scgi/dist)
//   minimal-scgi  bench/scgi/minimal.mjs: a hand-written Node SCGI responder, the floor
//   tsgi-fastcgi  @tsgi/fastcgi (nginx: fastcgi_keep_conn on + keepalive 16; lighttpd: its default)
// Hello world (wrk -t1 -cN -dS) through each front; then peak RSS of each SCGI backend (a
// fresh process each) while a 200 MB Content-Length upload goes to an app that reads slowly,
// through lighttpd `server.stream-request-body = 2` (streamed) and nginx (buffered to disk,
// then sent at the backend's pace); then the per-request cost of the header decode.
//
//   pnpm run build && node bench/scgi/run.mjs [--quick] [--rounds 5] [--duration 10]
//        [--connections 32] [--upload-mb 200] [--read-rate 20] [--only hello,big,upload,memory,decode]
//        [--baseline DIR] [--json results.json]
//
// --baseline DIR adds a target `tsgi-scgi@baseline`: the SCGI backend with the adapter loaded
// from DIR/scgi/dist/index.js (another build, e.g. of an earlier commit), in the same
// interleaved rounds. Every workload also reports the CPU time the backend and the front
// spent per request (less sensitive to other load than req/s).
//
// `--only` may add the 1 MiB response (big) and 1 MiB upload (upload) workloads; the default is
// hello, memory, decode. Target (issue 6): tsgi-scgi >= 0.95x minimal-scgi. Results:
// docs/bench/scgi.md.
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { frontBinary, startFront } from '../lib/fronts.mjs';
import { startBackend } from '../lib/proc.mjs';
import { benchArgs, fmt, machine, median, ratio, startReport, verdict } from '../lib/report.mjs';
import {
  frontRoutes,
  frontTargets,
  measureWorkload,
  memoryThrough,
  requireTools,
  startBackends,
  tsgiBackend,
  tsgiVariants,
  vsBaseline,
  WORKLOADS,
  workloadTables,
} from '../lib/run.mjs';
import { NGINX_WRK } from './blocks.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { opts, want, jsonPath, baseline, commandLine } = benchArgs(
  'node bench/scgi/run.mjs [--quick] [--rounds N] [--duration S] [--connections N] [--upload-mb N] [--read-rate MB/s] [--only hello,big,upload,memory,decode] [--baseline DIR] [--json FILE]',
  {
    rounds: 5,
    duration: 10,
    connections: 32,
    uploadMb: 200,
    readRate: 20,
    only: new Set(['hello', 'memory', 'decode']),
  },
  { baseline: true },
);
requireTools('scgi');
const FRONTS = ['nginx', 'lighttpd'].filter((f) => {
  if (frontBinary(f)) return true;
  console.error(`bench/scgi: ${f} is not installed; its rows are skipped`);
  return false;
});

const env = { BENCH_READ_RATE: String(opts.readRate) };
const BACKENDS = {
  'tsgi-scgi': tsgiBackend('tsgi-scgi', 'scgi', env),
  'minimal-scgi': () => startBackend('minimal-scgi', join(here, 'minimal.mjs'), [], { env }),
  'tsgi-fastcgi': tsgiBackend('tsgi-fastcgi', 'fastcgi', env),
  // tsgi-scgi@baseline with --baseline DIR; tsgi-scgi (for await) for the memory test only.
  ...tsgiVariants('tsgi-scgi', 'scgi', env, baseline),
};
const KIND = {
  'tsgi-scgi@baseline': 'scgi',
  'tsgi-scgi (for await)': 'scgi',
  'tsgi-scgi': 'scgi',
  'minimal-scgi': 'scgi',
  'tsgi-fastcgi': 'fastcgi',
};
const PREFIX = {
  'tsgi-scgi@baseline': '/tsgi-scgi-baseline/',
  'tsgi-scgi (for await)': '/tsgi-scgi-iterate/',
  'tsgi-scgi': '/tsgi-scgi/',
  'minimal-scgi': '/minimal-scgi/',
  'tsgi-fastcgi': '/tsgi-fastcgi/',
};

const { out, json } = startReport('scgi', {
  commandLine,
  opts,
  sections: { throughput: {}, memory: {}, decode: {} },
});
out(
  `wrk -t1 -c${opts.connections} -d${opts.duration}s, ${opts.rounds} interleaved rounds (order rotated each round); nginx 1 worker, access_log off; lighttpd defaults`,
);

const started = [];
const stopAll = async () => {
  for (const s of started.splice(0).reverse()) await s.stop();
};

/** scgiRaw: one SCGI request for `uri` straight to a backend; resolves to the response bytes. */
function scgiRaw(address, uri) {
  const pairs = [
    ['CONTENT_LENGTH', '0'],
    ['SCGI', '1'],
    ['REQUEST_METHOD', 'GET'],
    ['REQUEST_URI', uri],
    ['QUERY_STRING', ''],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_NAME', '127.0.0.1'],
    ['SERVER_PORT', '80'],
    ['REMOTE_ADDR', '127.0.0.1'],
  ];
  const block = Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
  return new Promise((resolve, reject) => {
    const s = connect(
      address.socket ? { path: address.socket } : { host: '127.0.0.1', port: address.port },
    );
    const chunks = [];
    s.on('connect', () =>
      s.write(Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(',')])),
    );
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

try {
  // ---- throughput --------------------------------------------------------------------------
  const throughput = ['hello', 'big', 'upload'].filter(want);
  if (throughput.length) {
    const backends = await startBackends(BACKENDS, started, out);
    if (backends['tsgi-scgi'] && backends['minimal-scgi']) {
      // The same bytes from both, or the comparison means nothing.
      const [a, m] = await Promise.all([
        scgiRaw(backends['tsgi-scgi'].address, '/x/hello'),
        scgiRaw(backends['minimal-scgi'].address, '/x/hello'),
      ]);
      if (!a.equals(m)) {
        out(
          `WARNING: tsgi-scgi and minimal-scgi answer differently:\n  tsgi    ${JSON.stringify(a.toString('latin1'))}\n  minimal ${JSON.stringify(m.toString('latin1'))}`,
        );
      } else
        out(
          `response (both SCGI backends, before the front): ${JSON.stringify(a.toString('latin1'))}`,
        );
    }
    for (const server of FRONTS) {
      const routes = frontRoutes(backends, PREFIX, (name) => ({
        kind: KIND[name],
        keepConn: true,
      }));
      const front = await startFront(server, routes);
      started.push(front);
      const targets = frontTargets(front, backends, PREFIX);
      for (const key of throughput) {
        const title = `${WORKLOADS[key].title} through ${server}`;
        out(`\n## ${title}`);
        const { results, errors, cpu } = await measureWorkload(key, targets, opts, out);
        json.throughput[`${server}/${key}`] = { results, errors, cpu };
        for (const l of workloadTables(title, { results, errors, cpu }, 'minimal-scgi')) out(l);
        const base = vsBaseline('tsgi-scgi', results, cpu);
        if (base) out(base);
      }
      await front.stop();
      started.splice(started.indexOf(front), 1);
    }
    await stopAll();
  }

  // ---- memory ------------------------------------------------------------------------------
  if (want('memory')) {
    const total = Math.round(opts.uploadMb * 1e6);
    out(
      `\n## Peak RSS: a ${opts.uploadMb} MB upload (Content-Length), the app reads at most ${opts.readRate} MB/s (tsgi: \`read(65536)\` in a loop, or \`for await\` over tsgi.input; minimal: pauses the socket)`,
    );
    out(
      '| front | backend | idle RSS (MB) | peak RSS (MB) | growth (MB) | upload time (s) | answer ok |',
    );
    out('|---|---|---:|---:|---:|---:|---|');
    const setups = [
      ['lighttpd', { streamRequestBody: 2 }, 'lighttpd stream-request-body=2'],
      ['nginx', {}, 'nginx (buffers the body to disk first)'],
    ].filter(([f]) => FRONTS.includes(f));
    for (const [server, frontOpts, label] of setups) {
      for (const name of ['tsgi-scgi', 'tsgi-scgi (for await)', 'minimal-scgi']) {
        const route = { prefix: PREFIX[name], kind: 'scgi' };
        const probe = { total, contentLength: true };
        const r = await memoryThrough(BACKENDS[name], server, route, probe, frontOpts);
        if (r.skipped) {
          out(`| ${label} | ${name} | skipped: ${r.skipped} | | | | |`);
          continue;
        }
        json.memory[`${server}/${name}`] = r.m;
        out(`| ${label} | ${name} | ${r.cells}`);
        if (r.errorLog !== undefined) out(`  ${server} error log: ${r.errorLog}`);
      }
    }
  }

  // ---- header decode cost ------------------------------------------------------------------
  if (want('decode')) {
    const dist = join(root, 'packages/scgi/dist/index.js');
    if (!existsSync(dist))
      out('\ndecode: packages/scgi/dist is missing (pnpm run build); not measured');
    else {
      const { decodeHeaders, decodeHeadersInto } = await import(pathToFileURL(dist).href);
      const core = await import(pathToFileURL(join(root, 'packages/core/dist/index.js')).href);
      // What nginx sends for wrk's request (Debian scgi_params), and a browser-like request.
      const nginxWrk = NGINX_WRK;
      const browser = [
        ...nginxWrk.slice(0, 14),
        ['HTTP_HOST', 'www.example.com'],
        [
          'HTTP_USER_AGENT',
          'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
        ],
        ['HTTP_ACCEPT', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
        ['HTTP_ACCEPT_LANGUAGE', 'en-US,en;q=0.5'],
        ['HTTP_ACCEPT_ENCODING', 'gzip, deflate, br, zstd'],
        ['HTTP_REFERER', 'https://www.example.com/some/page?with=query'],
        ['HTTP_COOKIE', `session=${'a1b2c3d4'.repeat(8)}; theme=dark; consent=yes`],
        ['HTTP_CONNECTION', 'keep-alive'],
        ['HTTP_UPGRADE_INSECURE_REQUESTS', '1'],
        ['HTTP_SEC_FETCH_DEST', 'document'],
        ['HTTP_SEC_FETCH_MODE', 'navigate'],
        ['HTTP_SEC_FETCH_SITE', 'same-origin'],
      ];
      const time = (f, block) => {
        for (let i = 0; i < 20000; i++) f(block);
        const runs = [];
        for (let r = 0; r < 7; r++) {
          const n = 100000;
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < n; i++) f(block);
          runs.push(Number(process.hrtime.bigint() - t0) / n);
        }
        return median(runs);
      };
      out('\n## Per-request cost of the SCGI header decode (in this process, median of 7 x 100k)');
      out(
        '| header block | bytes | pairs | decodeHeaders (ns) | decodeHeaders + buildEnviron, as the adapter calls them (ns) |',
      );
      out('|---|---:|---:|---:|---:|');
      const quiet = () => {};
      for (const [label, pairs] of [
        ['nginx, wrk request', nginxWrk],
        ['nginx, browser-like request', browser],
      ]) {
        const block = Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
        const d = time(decodeHeaders, block);
        // As the adapter calls them: decoded straight into the core's CgiVars, then the
        // environ (an older build without decodeHeadersInto: through the list of pairs).
        const e = time(
          decodeHeadersInto && core.CgiVars
            ? (b) => {
                const vars = new core.CgiVars();
                decodeHeadersInto(b, vars);
                return core.buildEnviron(vars, { errors: quiet });
              }
            : (b) => core.buildEnviron(decodeHeaders(b).params, { errors: quiet }),
          block,
        );
        json.decode[label] = {
          bytes: block.length,
          pairs: pairs.length,
          decodeNs: d,
          withEnvironNs: e,
        };
        out(`| ${label} | ${block.length} | ${pairs.length} | ${fmt(d)} | ${fmt(e)} |`);
      }
      const h = json.throughput['nginx/hello']?.results?.['tsgi-scgi'];
      if (h) {
        const perReq = 1e9 / median(h);
        out(
          `one hello request through nginx to tsgi-scgi takes ${fmt(perReq / 1000, 1)} us of wall time at ${opts.connections} connections (1 / median req/s); the decode is ${fmt((json.decode['nginx, wrk request'].decodeNs / perReq) * 100, 2)}% of it`,
        );
      }
    }
  }

  // ---- verdicts ----------------------------------------------------------------------------
  out('\n## Targets (issue 6)');
  for (const server of FRONTS) {
    const r = json.throughput[`${server}/hello`]?.results;
    if (!r?.['tsgi-scgi']) {
      out(`${server} hello: tsgi-scgi not measured`);
      continue;
    }
    out(
      verdict(
        `${server} hello: tsgi-scgi / minimal-scgi`,
        ratio(r['tsgi-scgi'], r['minimal-scgi'] ?? []),
        '>=',
        0.95,
      ),
    );
    if (r['tsgi-fastcgi'])
      out(
        `${server} hello: tsgi-fastcgi / minimal-scgi: ${fmt(ratio(r['tsgi-fastcgi'], r['minimal-scgi']), 2)}x`,
      );
    if (r['tsgi-scgi@baseline'])
      out(
        verdict(
          `${server} hello: tsgi-scgi@baseline / minimal-scgi`,
          ratio(r['tsgi-scgi@baseline'], r['minimal-scgi'] ?? []),
          '>=',
          0.95,
        ),
      );
  }
  json.machineAtEnd = machine();
  out(`machine at end: ${json.machineAtEnd}`);
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
} finally {
  await stopAll();
}
