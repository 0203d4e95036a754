#!/usr/bin/env node
// Framework apps through tsgi against the same apps on their own Node server, both behind
// one nginx, in one run on one machine, rounds interleaved:
//
//   hono-tsgi       nginx fastcgi_pass (fastcgi_keep_conn on, upstream keepalive 16)
//                   -> `tsgi fastcgi --interface fetch hono.mjs` -> fromFetch -> Hono
//   hono-native     nginx proxy_pass (proxy_http_version 1.1, upstream keepalive 16)
//                   -> @hono/node-server `serve({ fetch: app.fetch })` -> Hono
//   express-tsgi    nginx fastcgi_pass -> `tsgi fastcgi --interface node express.mjs`
//                   -> fromNodeListener -> Express 5
//   express-native  nginx proxy_pass -> `app.listen()` (node:http) -> Express 5
//
// Workloads (wrk -t1 -cN -dS --latency): GET /hello ("hello, world"), GET /json (1 KiB),
// POST /echo (64 KiB body, answered with its length). Each target is checked first: the
// same status and body bytes as its framework's other target, and the app headers listed.
// Medians of the rounds, p50/p99 latency (medians over rounds), and tsgi / native as the
// median of the per-round ratios. Results and the command: docs/bench/bridges.md.
//
//   pnpm run build && node bench/bridges/run.mjs [--quick] [--rounds 5] [--duration 10]
//        [--connections 32] [--only hello,json,echo] [--json FILE]
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { frontBinary, startFront } from '../lib/fronts.mjs';
import { fetchOnce, wrk, wrkPostScript } from '../lib/load.mjs';
import { spawnGroup } from '../lib/proc.mjs';
import { benchArgs, fmt, machine, median, ratio, startReport } from '../lib/report.mjs';
import { requireTools, timeRounds } from '../lib/run.mjs';
import { DOC } from './doc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const tsgiBin = join(root, 'packages', 'cli', 'dist', 'bin.js');
const { opts, want, jsonPath, rest } = benchArgs(
  'node bench/bridges/run.mjs [--quick] [--rounds N] [--duration S] [--connections N] [--only hello,json,echo] [--json FILE]',
  { rounds: 5, duration: 10, connections: 32 },
);
requireTools('bridges', ['nginx']);
if (!existsSync(tsgiBin)) {
  console.error('bench/bridges: packages/cli/dist/bin.js is missing; run pnpm run build first');
  process.exit(2);
}

const ECHO_BYTES = 65536;
const DOC_BYTES = Buffer.from(JSON.stringify(DOC));
const WORKLOADS = {
  hello: { title: 'Hello world (GET, `hello, world`, text/plain)', path: 'hello' },
  json: { title: `JSON (GET, a ${DOC_BYTES.length}-byte document)`, path: 'json' },
  echo: {
    title: `POST of ${ECHO_BYTES / 1024} KiB (read whole by the framework, answered with its length)`,
    path: 'echo',
    method: 'POST',
    script: () => wrkPostScript(ECHO_BYTES),
  },
};
const EXPECTED = {
  hello: Buffer.from('hello, world'),
  json: DOC_BYTES,
  echo: Buffer.from(JSON.stringify({ bytes: ECHO_BYTES })),
};

/** TARGETS: name, framework, how its backend starts and how nginx reaches it. */
const TARGETS = [
  { name: 'hono-tsgi', framework: 'hono', kind: 'fastcgi', app: 'hono.mjs', iface: 'fetch' },
  { name: 'hono-native', framework: 'hono', kind: 'http', app: 'hono.mjs' },
  {
    name: 'express-tsgi',
    framework: 'express',
    kind: 'fastcgi',
    app: 'express.mjs',
    iface: 'node',
  },
  { name: 'express-native', framework: 'express', kind: 'http', app: 'express.mjs' },
];

/** startTarget: the backend process; resolves to { proc, address: { host, port } }. */
function startTarget(t) {
  const base = `/${t.name}`;
  const app = join(here, t.app);
  const argv =
    t.kind === 'fastcgi'
      ? [
          tsgiBin,
          'fastcgi',
          '--interface',
          t.iface,
          '--listen',
          '127.0.0.1:0',
          '--mount',
          base,
          app,
        ]
      : [app];
  return new Promise((resolve, reject) => {
    let done = false;
    const proc = spawnGroup(process.execPath, argv, {
      env: { ...process.env, BENCH_BASE: base, PORT: '0' },
      onLine(line) {
        if (done) return;
        const tsgi = /^tsgi: listening on fcgi:\/\/([0-9.]+):(\d+)/.exec(line);
        const native = /^LISTENING (.*)$/.exec(line);
        let address;
        if (tsgi) address = { host: tsgi[1], port: Number(tsgi[2]) };
        else if (native) address = JSON.parse(native[1]);
        if (!address) return;
        done = true;
        clearTimeout(timer);
        resolve({ proc, address, stop: () => proc.stop() });
      },
    });
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      void proc.stop();
      reject(new Error(`${t.name} did not start:\n${proc.output().slice(-4000)}`));
    }, 15000);
    proc.exited.then(({ code, signal }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${t.name} exited (${code ?? signal}):\n${proc.output().slice(-4000)}`));
    });
  });
}

/**
 * NGINX: the nginx options of the one front: `client_body_buffer_size 128k`. With nginx's
 * default (16k) a request body of 16 KiB or more goes to a temp file and every such POST from
 * wrk took 44 ms (measured: 722 req/s at 16 to 64 KiB, against 13 604 at 8 KiB), whatever the
 * backend: the POST workload would measure that stall instead of the backends.
 */
const NGINX = { clientBodyBufferSize: '128k' };

/** The headers a comparison is about: not the date, the server or the framing. */
const FRAMING = new Set([
  'date',
  'server',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
]);
const appHeaders = (h) =>
  Object.entries(h)
    .filter(([k]) => !FRAMING.has(k))
    .map(([k, v]) => `${k}: ${v}`)
    .sort();

const nginxVersion = (() => {
  const r = spawnSync(frontBinary('nginx'), ['-v'], { encoding: 'utf8' });
  return /nginx\/[0-9.]+/.exec(`${r.stdout}${r.stderr}`)?.[0] ?? 'nginx';
})();
// The command as printed leaves --json out.
const {
  out,
  lines: report,
  json,
} = startReport('bridges', {
  commandLine: rest,
  opts,
  sections: { checks: {}, workloads: {} },
  note: nginxVersion,
});
out(
  `wrk -t1 -c${opts.connections} -d${opts.duration}s --latency, ${opts.rounds} interleaved rounds (order rotated each round) after a 2 s warm-up of each target; one nginx, 1 worker, access_log off, client_body_buffer_size 128k`,
);

const started = [];
const stopAll = async () => {
  for (const s of started.splice(0).reverse()) await s.stop();
};

try {
  const backends = {};
  for (const t of TARGETS) {
    const b = await startTarget(t);
    started.push(b);
    backends[t.name] = b;
  }
  const nginx = await startFront(
    'nginx',
    TARGETS.map((t) => ({
      prefix: `/${t.name}/`,
      kind: t.kind,
      backend: backends[t.name].address,
      keepConn: t.kind === 'fastcgi',
    })),
    NGINX,
  );
  started.push(nginx);
  const url = (t, path) => nginx.url(`/${t.name}/${path}`);

  for (const [key, w] of Object.entries(WORKLOADS)) {
    if (!want(key)) continue;
    out(`\n## ${w.title}`);
    // Correct first: the body each target answers, and the app headers side by side.
    const seen = {};
    for (const t of TARGETS) {
      const r = await fetchOnce(url(t, w.path), {
        method: w.method ?? 'GET',
        body: w.method === 'POST' ? Buffer.alloc(ECHO_BYTES, 0x61) : undefined,
        headers: w.method === 'POST' ? { 'Content-Type': 'application/octet-stream' } : {},
      });
      if (r.status !== 200 || !r.body.equals(EXPECTED[key])) {
        throw new Error(
          `${t.name} ${w.path}: ${r.status} ${JSON.stringify(r.body.toString().slice(0, 200))}`,
        );
      }
      seen[t.name] = {
        headers: appHeaders(r.headers),
        framing: ['content-length', 'transfer-encoding']
          .filter((k) => r.headers[k] !== undefined)
          .map((k) => `${k}: ${r.headers[k]}`),
      };
    }
    json.checks[key] = seen;
    for (const fw of ['hono', 'express']) {
      const a = seen[`${fw}-tsgi`];
      const b = seen[`${fw}-native`];
      const same = JSON.stringify(a.headers) === JSON.stringify(b.headers);
      out(
        `check ${fw}: same status and body bytes; app headers ${same ? 'identical' : 'differ'} (tsgi: ${a.headers.join(', ')} | ${a.framing.join(', ')}; native: ${same ? 'same' : b.headers.join(', ')} | ${b.framing.join(', ')})`,
      );
    }

    const script = w.script?.();
    const errors = Object.fromEntries(TARGETS.map((t) => [t.name, 0]));
    const lat = Object.fromEntries(TARGETS.map((t) => [t.name, { p50: [], p99: [] }]));
    const results = await timeRounds(
      TARGETS,
      opts,
      async (t, duration, counted) => {
        const r = await wrk(url(t, w.path), {
          connections: opts.connections,
          duration,
          script,
          latency: true,
        });
        if (counted) {
          errors[t.name] += r.errors;
          lat[t.name].p50.push(r.p50);
          lat[t.name].p99.push(r.p99);
        }
        return r.okRps;
      },
      out,
    );
    json.workloads[key] = { results, errors, latency: lat };
    out('');
    out('| target | median req/s | min | max | p50 ms | p99 ms | tsgi / native | errors |');
    out('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const t of TARGETS) {
      const xs = results[t.name].filter(Number.isFinite);
      const native = results[`${t.framework}-native`];
      const r = t.kind === 'fastcgi' ? `**${fmt(ratio(results[t.name], native), 2)}x**` : '';
      out(
        `| ${t.name} | ${fmt(median(xs))} | ${fmt(Math.min(...xs))} | ${fmt(Math.max(...xs))} | ${fmt(median(lat[t.name].p50), 2)} | ${fmt(median(lat[t.name].p99), 2)} | ${r} | ${errors[t.name]} |`,
      );
    }
  }

  json.machineAtEnd = machine();
  out(`\nmachine at end: ${json.machineAtEnd}`);
  out('\n## Ratios tsgi / native (median of the per-round ratios)');
  for (const [key, w] of Object.entries(json.workloads)) {
    out(
      `- ${WORKLOADS[key].title}: hono ${fmt(ratio(w.results['hono-tsgi'], w.results['hono-native']), 2)}x, express ${fmt(ratio(w.results['express-tsgi'], w.results['express-native']), 2)}x`,
    );
  }
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify({ ...json, report }, null, 2)}\n`);
} finally {
  await stopAll();
}
