#!/usr/bin/env node
// FastCGI through nginx, in one run on one machine, rounds interleaved:
//   tsgi        @tsgi/fastcgi (packages/fastcgi/dist), nginx `fastcgi_keep_conn on` + upstream keepalive 16
//   node-fastcgi  node-fastcgi 2.0.0, same nginx settings (it never honours keep-conn: nginx
//               then finds cached connections closed, and a POST it cannot retry gets a 502)
//   node-fastcgi/no-keep-conn  the same, nginx without keep-conn (node-fastcgi's best setup)
//   node:http   plain node:http behind `proxy_pass`, upstream keepalive 16 (the reference)
// Workloads: hello world, a 1 MiB response, a 1 MiB upload (wrk -t1 -cN -dS), then peak RSS
// of each backend (a fresh process each) while a 200 MB chunked upload streams through
// nginx with `*_request_buffering off` to an app that reads slowly.
//
//   pnpm run build && node bench/fastcgi/run.mjs [--quick] [--rounds 5] [--duration 10]
//        [--connections 32] [--upload-mb 200] [--read-rate 20] [--only hello,big,upload,memory]
//        [--baseline DIR] [--json results.json]
//
// --baseline DIR adds a target `tsgi@baseline`: the same backend with the adapter loaded from
// DIR/fastcgi/dist/index.js (another build, e.g. of an earlier commit), for a before/after
// comparison in the same interleaved rounds. Every workload also reports the CPU time the
// backend and nginx spent per request (less sensitive to other load than req/s).
//
// Each backend runs in its own child process (bench/lib/backends, bench/fastcgi/node-fastcgi.mjs).
// Targets (issue 5): tsgi >= 3x node-fastcgi and >= 0.9x node:http on hello world; tsgi's peak
// RSS within 32 MB of its idle RSS. Results and the command: docs/bench/fastcgi.md.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFront } from '../lib/fronts.mjs';
import { startBackend } from '../lib/proc.mjs';
import { benchArgs, fmt, machine, median, ratio, startReport, verdict } from '../lib/report.mjs';
import {
  established,
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

const here = dirname(fileURLToPath(import.meta.url));
const lib = join(here, '..', 'lib', 'backends');
const { opts, want, jsonPath, baseline, commandLine } = benchArgs(
  'node bench/fastcgi/run.mjs [--quick] [--rounds N] [--duration S] [--connections N] [--upload-mb N] [--read-rate MB/s] [--only hello,big,upload,memory] [--baseline DIR] [--json FILE]',
  { rounds: 5, duration: 10, connections: 32, uploadMb: 200, readRate: 20 },
  { baseline: true },
);
requireTools('fastcgi', ['nginx']);

const env = { BENCH_READ_RATE: String(opts.readRate) };
const nodeFastcgi = (name) => () => startBackend(name, join(here, 'node-fastcgi.mjs'), [], { env });
const BACKENDS = {
  tsgi: tsgiBackend('tsgi', 'fastcgi', env),
  'node-fastcgi': nodeFastcgi('node-fastcgi'),
  'node-fastcgi/no-keep-conn': nodeFastcgi('node-fastcgi/no-keep-conn'),
  'node:http': () => startBackend('node:http', join(lib, 'http.mjs'), [], { env }),
  // tsgi@baseline with --baseline DIR; tsgi (for await) for the memory test only.
  ...tsgiVariants('tsgi', 'fastcgi', env, baseline),
};
const KIND = {
  'tsgi@baseline': 'fastcgi',
  'tsgi (for await)': 'fastcgi',
  tsgi: 'fastcgi',
  'node-fastcgi': 'fastcgi',
  'node-fastcgi/no-keep-conn': 'fastcgi',
  'node:http': 'http',
};
const KEEP = {
  'tsgi@baseline': true,
  'tsgi (for await)': true,
  tsgi: true,
  'node-fastcgi': true,
  'node-fastcgi/no-keep-conn': false,
  'node:http': true,
};
const PREFIX = {
  'tsgi@baseline': '/tsgi-baseline/',
  'tsgi (for await)': '/tsgi-iterate/',
  tsgi: '/tsgi/',
  'node-fastcgi': '/node-fastcgi/',
  'node-fastcgi/no-keep-conn': '/node-fastcgi-nokc/',
  'node:http': '/node-http/',
};
/** The memory test needs one node-fastcgi only. */
const MEMORY = ['tsgi', 'tsgi (for await)', 'node-fastcgi', 'node:http'];
/** bestNodeFastcgi: per round, the better of node-fastcgi's two setups. */
const bestNodeFastcgi = (r) => {
  const a = r['node-fastcgi'] ?? [];
  const b = r['node-fastcgi/no-keep-conn'] ?? [];
  return a.map((x, i) => Math.max(x, b[i] ?? 0));
};

const { out, json } = startReport('fastcgi', {
  commandLine,
  opts,
  sections: { throughput: {}, memory: {} },
});
out(
  `wrk -t1 -c${opts.connections} -d${opts.duration}s, ${opts.rounds} interleaved rounds (order rotated each round), nginx 1 worker, access_log off`,
);

const started = [];
const stopAll = async () => {
  for (const s of started.splice(0).reverse()) await s.stop();
};

try {
  // ---- throughput --------------------------------------------------------------------------
  const throughput = ['hello', 'big', 'upload'].filter(want);
  if (throughput.length) {
    const backends = await startBackends(BACKENDS, started, out);
    const nginx = await startFront(
      'nginx',
      frontRoutes(backends, PREFIX, (name) => ({
        kind: KIND[name],
        keepConn: KIND[name] === 'fastcgi' && KEEP[name],
      })),
    );
    started.push(nginx);
    const targets = frontTargets(nginx, backends, PREFIX);
    for (const key of throughput) {
      out(`\n## ${WORKLOADS[key].title}`);
      const measured = await measureWorkload(key, targets, opts, out);
      const { results, errors, cpu } = measured;
      json.throughput[key] = results;
      json.throughput[`${key}Errors`] = errors;
      json.throughput[`${key}Cpu`] = cpu;
      for (const l of workloadTables(WORKLOADS[key].title, measured, 'node:http')) out(l);
      const base = vsBaseline('tsgi', results, cpu);
      if (base) out(base);
      if (results.tsgi && results['node-fastcgi'])
        out(
          `tsgi / node-fastcgi: ${fmt(ratio(results.tsgi, results['node-fastcgi']), 2)}x; tsgi / best node-fastcgi setup (per round): ${fmt(ratio(results.tsgi, bestNodeFastcgi(results)), 2)}x`,
        );
      if (key === 'hello') {
        // Keep-conn, seen from the backend side: connections nginx holds open right after
        // the load (upstream keepalive 16 keeps at most 16 idle per worker).
        const conns = Object.fromEntries(
          Object.entries(backends).map(([name, b]) => [
            name,
            b.address.port ? established(b.address.port) : Number.NaN,
          ]),
        );
        json.throughput.idleUpstreamConnections = conns;
        out(
          `upstream connections still open after the load: ${Object.entries(conns)
            .map(([n, c]) => `${n} ${c}`)
            .join(', ')}`,
        );
      }
    }
    await stopAll();
  }

  // ---- memory ------------------------------------------------------------------------------
  if (want('memory')) {
    const total = Math.round(opts.uploadMb * 1e6);
    out(
      `\n## Peak RSS: a ${opts.uploadMb} MB chunked upload through nginx (*_request_buffering off), the app reads at most ${opts.readRate} MB/s (tsgi: \`read(65536)\` in a loop, or \`for await\` over tsgi.input; node-fastcgi and node:http: pause/resume on 'data')`,
    );
    out('| backend | idle RSS (MB) | peak RSS (MB) | growth (MB) | upload time (s) | answer ok |');
    out('|---|---:|---:|---:|---:|---|');
    for (const name of baseline ? [...MEMORY, 'tsgi@baseline'] : MEMORY) {
      const route = {
        prefix: PREFIX[name],
        kind: KIND[name],
        keepConn: KIND[name] === 'fastcgi',
        requestBuffering: false,
      };
      const r = await memoryThrough(BACKENDS[name], 'nginx', route, { total });
      if (r.skipped) {
        out(`| ${name} | skipped: ${r.skipped} | | | | |`);
        continue;
      }
      json.memory[name] = r.m;
      out(`| ${name} | ${r.cells}`);
      if (r.errorLog !== undefined) out(`  nginx error log: ${r.errorLog}`);
    }
    out(`peak: ${json.memory.tsgi?.peakSource ?? 'VmHWM / VmRSS samples'}`);
  }

  // ---- verdicts ----------------------------------------------------------------------------
  out('\n## Targets (issue 5)');
  const h = json.throughput.hello;
  if (h?.tsgi) {
    out(
      verdict(
        'hello: tsgi / node-fastcgi (keep-conn requested)',
        ratio(h.tsgi, h['node-fastcgi'] ?? []),
        '>=',
        3,
      ),
    );
    out(
      verdict(
        'hello: tsgi / node-fastcgi (its better setup, per round)',
        ratio(h.tsgi, bestNodeFastcgi(h)),
        '>=',
        3,
      ),
    );
    out(
      verdict('hello: tsgi / node:http reference', ratio(h.tsgi, h['node:http'] ?? []), '>=', 0.9),
    );
    if (h['tsgi@baseline']) {
      out(
        verdict(
          'hello: tsgi@baseline / node-fastcgi (its better setup, per round)',
          ratio(h['tsgi@baseline'], bestNodeFastcgi(h)),
          '>=',
          3,
        ),
      );
      out(
        verdict(
          'hello: tsgi@baseline / node:http reference',
          ratio(h['tsgi@baseline'], h['node:http'] ?? []),
          '>=',
          0.9,
        ),
      );
    }
  } else out('hello: tsgi not measured');
  if (json.memory.tsgi)
    out(verdict('memory: tsgi growth over idle (MB)', json.memory.tsgi.growthMb, '<=', 32, 1));
  json.machineAtEnd = machine();
  out(`machine at end: ${json.machineAtEnd}`);
  if (h) {
    out(
      `hello medians (req/s): ${Object.entries(h)
        .map(([n, xs]) => `${n} ${fmt(median(xs))}`)
        .join(', ')}`,
    );
  }
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
} finally {
  await stopAll();
}
