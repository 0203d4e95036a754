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
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { frontBinary, startFront } from '../lib/fronts.mjs';
import { startBackend } from '../lib/proc.mjs';
import { fmt, machine, median, parseArgs, ratio, table, verdict } from '../lib/report.mjs';
import { cpuTable, established, measureWorkload, memoryProbe, WORKLOADS } from '../lib/run.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const lib = join(here, '..', 'lib', 'backends');
/** The command line as given (--json and --baseline are taken out of process.argv below). */
const commandLine = process.argv.slice(2).join(' ');
const jsonAt = process.argv.indexOf('--json');
const jsonPath = jsonAt >= 0 ? process.argv.splice(jsonAt, 2)[1] : undefined;
const baseAt = process.argv.indexOf('--baseline');
const baseline = baseAt >= 0 ? process.argv.splice(baseAt, 2)[1] : undefined;
const opts = parseArgs(process.argv.slice(2), {
  rounds: 5,
  duration: 10,
  connections: 32,
  uploadMb: 200,
  readRate: 20,
});
if (opts.help) {
  console.log(
    'node bench/fastcgi/run.mjs [--quick] [--rounds N] [--duration S] [--connections N] [--upload-mb N] [--read-rate MB/s] [--only hello,big,upload,memory] [--baseline DIR] [--json FILE]',
  );
  process.exit(0);
}
const want = (k) => !opts.only || opts.only.has(k);

if (spawnSync('sh', ['-c', 'command -v wrk']).status !== 0) {
  console.error('bench/fastcgi: wrk is not installed (apt-get install wrk); nothing measured');
  process.exit(2);
}
if (!frontBinary('nginx')) {
  console.error('bench/fastcgi: nginx is not installed; nothing measured');
  process.exit(2);
}

const env = { BENCH_READ_RATE: String(opts.readRate) };
const nodeFastcgi = (name) => () => startBackend(name, join(here, 'node-fastcgi.mjs'), [], { env });
const BACKENDS = {
  tsgi: () => startBackend('tsgi', join(lib, 'tsgi.mjs'), ['--protocol', 'fastcgi'], { env }),
  'node-fastcgi': nodeFastcgi('node-fastcgi'),
  'node-fastcgi/no-keep-conn': nodeFastcgi('node-fastcgi/no-keep-conn'),
  'node:http': () => startBackend('node:http', join(lib, 'http.mjs'), [], { env }),
  ...(baseline && {
    'tsgi@baseline': () =>
      startBackend('tsgi@baseline', join(lib, 'tsgi.mjs'), ['--protocol', 'fastcgi'], {
        env: { ...env, BENCH_TSGI_MODULE: resolve(baseline, 'fastcgi', 'dist', 'index.js') },
      }),
  }),
  // Memory only: the slow reader iterates tsgi.input (chunks as they come) instead of read(64 KiB).
  'tsgi (for await)': () =>
    startBackend('tsgi (for await)', join(lib, 'tsgi.mjs'), ['--protocol', 'fastcgi'], {
      env: { ...env, BENCH_SLOW_READ: 'iterate' },
    }),
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

const report = [];
const out = (line = '') => {
  console.log(line);
  report.push(line);
};
const json = {
  machineAtStart: machine(),
  options: { ...opts, only: opts.only && [...opts.only] },
  throughput: {},
  memory: {},
};

out(`# bench/fastcgi: ${new Date().toISOString()}`);
out(`command: node bench/fastcgi/run.mjs ${commandLine}`.trim());
out(`machine at start: ${json.machineAtStart}`);
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
    const backends = {};
    for (const [name, start] of Object.entries(BACKENDS)) {
      if (name === 'tsgi (for await)') continue;
      const b = await start();
      if (b.skipped) {
        out(`SKIP ${name}: ${b.skipped}`);
        continue;
      }
      started.push(b);
      backends[name] = b;
    }
    const routes = Object.entries(backends).map(([name, b]) => ({
      prefix: PREFIX[name],
      kind: KIND[name],
      backend: b.address,
      keepConn: KIND[name] === 'fastcgi' && KEEP[name],
    }));
    const nginx = await startFront('nginx', routes);
    started.push(nginx);
    const targets = Object.keys(backends).map((name) => ({
      name,
      url: (p) => nginx.url(`${PREFIX[name]}${p}`),
      backendPid: backends[name].pid,
      frontPid: nginx.pid,
    }));
    for (const key of throughput) {
      out(`\n## ${WORKLOADS[key].title}`);
      const { results, errors, cpu } = await measureWorkload(key, targets, opts, out);
      json.throughput[key] = results;
      json.throughput[`${key}Errors`] = errors;
      json.throughput[`${key}Cpu`] = cpu;
      for (const l of table(WORKLOADS[key].title, results, 'node:http', errors)) out(l);
      out('');
      for (const l of cpuTable(cpu, 'node:http')) out(l);
      if (results['tsgi@baseline'])
        out(
          `tsgi / tsgi@baseline: ${fmt(ratio(results.tsgi, results['tsgi@baseline']), 2)}x req/s, ${fmt(ratio(cpu.tsgi.backend, cpu['tsgi@baseline'].backend), 2)}x backend CPU per request`,
        );
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
      const b = await BACKENDS[name]();
      if (b.skipped) {
        out(`| ${name} | skipped: ${b.skipped} | | | | |`);
        continue;
      }
      started.push(b);
      const nginx = await startFront('nginx', [
        {
          prefix: PREFIX[name],
          kind: KIND[name],
          backend: b.address,
          keepConn: KIND[name] === 'fastcgi',
          requestBuffering: false,
        },
      ]);
      started.push(nginx);
      const m = await memoryProbe(b, nginx.url(`${PREFIX[name]}slow`), {
        total,
        warmUrl: nginx.url(`${PREFIX[name]}hello`),
      });
      json.memory[name] = m;
      out(
        `| ${name} | ${fmt(m.idleMb, 1)} | ${fmt(m.peakMb, 1)} | ${fmt(m.growthMb, 1)} | ${fmt(m.seconds, 1)} | ${m.ok ? 'yes' : `NO (${m.answer})`} |`,
      );
      if (!m.ok)
        out(`  nginx error log: ${(await nginx.errorLog()).split('\n').slice(-5).join(' | ')}`);
      await stopAll();
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
