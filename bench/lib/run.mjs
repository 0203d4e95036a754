// The parts every bench shares: check that each target answers the workload correctly
// before timing it, time workloads round by round, and measure RSS during a slow upload.
import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { frontBinary, startFront } from './fronts.mjs';
import { fetchOnce, streamUpload, wrk, wrkPostScript } from './load.mjs';
import { cpuSeconds, mb, resetPeak, rssOf, sampleRss, startBackend } from './proc.mjs';
import { fmt, interleave, median, ratio, table } from './report.mjs';

/** Workloads: how wrk drives them and what a correct answer is. */
export const WORKLOADS = {
  hello: {
    title: 'Hello world (`Hello, World!\\n`, Content-Length 14)',
    path: 'hello',
    check: async (url) => {
      const r = await fetchOnce(url);
      if (
        r.status !== 200 ||
        r.body.toString() !== 'Hello, World!\n' ||
        r.headers['content-length'] !== '14'
      )
        throw new Error(
          `GET ${url}: ${r.status} ${JSON.stringify(r.headers)} ${JSON.stringify(r.body.toString().slice(0, 200))}`,
        );
    },
  },
  big: {
    title: '1 MiB response (GET, Content-Length 1048576)',
    path: 'big',
    check: async (url) => {
      const r = await fetchOnce(url);
      if (r.status !== 200 || r.body.length !== 1048576 || r.body.some((b) => b !== 0x62))
        throw new Error(`GET ${url}: ${r.status}, ${r.body.length} bytes`);
    },
  },
  upload: {
    title: '1 MiB upload (POST with Content-Length, the app reads it all and answers its size)',
    path: 'upload',
    script: () => wrkPostScript(1048576),
    check: async (url) => {
      const r = await fetchOnce(url, { method: 'POST', body: Buffer.alloc(1048576, 0x61) });
      if (r.status !== 200 || r.body.toString() !== '1048576\n')
        throw new Error(
          `POST ${url}: ${r.status} ${JSON.stringify(r.body.toString().slice(0, 200))}`,
        );
    },
  },
};

const TSGI_BACKEND = fileURLToPath(new URL('./backends/tsgi.mjs', import.meta.url));

/**
 * tsgiBackend: a start function for bench/lib/backends/tsgi.mjs serving `protocol` (fastcgi,
 * scgi), with `env` (BENCH_READ_RATE, ...) in its environment.
 */
export function tsgiBackend(name, protocol, env) {
  return () => startBackend(name, TSGI_BACKEND, ['--protocol', protocol], { env });
}

/**
 * tsgiVariants: the other tsgi backends of a bench, as { name: start }. With `baseline` (a
 * DIR): NAME@baseline, the adapter loaded from DIR/PROTOCOL/dist/index.js (another build, e.g.
 * of an earlier commit) for a before/after comparison in the same rounds. Always, for the
 * memory test only (marked `memoryOnly`): NAME (for await), whose slow reader iterates
 * tsgi.input (chunks as they come) instead of read(64 KiB).
 */
export function tsgiVariants(name, protocol, env, baseline) {
  const base = `${name}@baseline`;
  const iterate = `${name} (for await)`;
  const forAwait = tsgiBackend(iterate, protocol, { ...env, BENCH_SLOW_READ: 'iterate' });
  forAwait.memoryOnly = true; // startBackends leaves it out
  return {
    ...(baseline && {
      [base]: tsgiBackend(base, protocol, {
        ...env,
        BENCH_TSGI_MODULE: resolve(baseline, protocol, 'dist', 'index.js'),
      }),
    }),
    [iterate]: forAwait,
  };
}

/**
 * requireTools: exits with status 2 (nothing measured) unless wrk and every front server in
 * `fronts` are installed; `bench` names the bench in the message.
 */
export function requireTools(bench, fronts = []) {
  if (spawnSync('sh', ['-c', 'command -v wrk']).status !== 0) {
    console.error(`bench/${bench}: wrk is not installed (apt-get install wrk); nothing measured`);
    process.exit(2);
  }
  for (const f of fronts) {
    if (!frontBinary(f)) {
      console.error(`bench/${bench}: ${f} is not installed; nothing measured`);
      process.exit(2);
    }
  }
}

/**
 * timeRounds: the round loop. `measure(target, seconds, counted)` resolves to req/s; each target
 * is first warmed up once for min(2, opts.duration) s (counted false), then `opts.rounds`
 * interleaved rounds of `opts.duration` s (counted true) follow. Resolves as interleave().
 */
export async function timeRounds(targets, opts, measure, log = console.log) {
  for (const t of targets) await measure(t, Math.min(2, opts.duration), false);
  return interleave(targets, opts.rounds, (t) => measure(t, opts.duration, true), log);
}

/**
 * measureWorkload: `targets` are { name, url(path), backendPid?, frontPid? }; checks each
 * once, warms each up for 2 s, then runs `rounds` interleaved wrk rounds. Resolves to
 * { results: { name: req/s[] }, errors: { name: count }, cpu: { name: { backend: us[],
 * front: us[] } } }. req/s counts successful responses only: non-2xx/3xx answers are
 * subtracted (and counted in `errors`, with socket errors). `cpu` is the CPU time (user +
 * system, all threads; the front with its workers) each process spent per request during
 * each round, in microseconds: less sensitive than req/s to other load on the machine, as
 * it counts what a request costs rather than how much CPU was left for it.
 */
export async function measureWorkload(key, targets, opts, log = console.log) {
  const w = WORKLOADS[key];
  const script = w.script?.();
  for (const t of targets) await w.check(t.url(w.path));
  const errors = Object.fromEntries(targets.map((t) => [t.name, 0]));
  const cpu = Object.fromEntries(targets.map((t) => [t.name, { backend: [], front: [] }]));
  const run = async (t, duration, count) => {
    const b0 = t.backendPid ? cpuSeconds(t.backendPid) : Number.NaN;
    const f0 = t.frontPid ? cpuSeconds(t.frontPid) : Number.NaN;
    const r = await wrk(t.url(w.path), { connections: opts.connections, duration, script });
    if (count) {
      errors[t.name] += r.errors;
      const per = (a, b) => (r.requests > 0 ? ((b - a) / r.requests) * 1e6 : Number.NaN);
      cpu[t.name].backend.push(per(b0, t.backendPid ? cpuSeconds(t.backendPid) : Number.NaN));
      cpu[t.name].front.push(per(f0, t.frontPid ? cpuSeconds(t.frontPid) : Number.NaN));
    }
    return r.okRps;
  };
  const results = await timeRounds(targets, opts, run, log);
  for (const [n, e] of Object.entries(errors)) {
    if (e > 0)
      log(
        `  ${n}: ${e} errors over the rounds (non-2xx answers and socket errors; excluded from req/s)`,
      );
  }
  return { results, errors, cpu };
}

/**
 * startBackends: starts the backends of `backends` ({ name: start }) for the throughput
 * workloads, one after the other: all but the memory-only ones (tsgiVariants). Each started one
 * is pushed on `started`, each skipped one reported with `out` as `SKIP name: reason`.
 * Resolves to { name: backend } of those that started.
 */
export async function startBackends(backends, started, out) {
  const running = {};
  for (const [name, start] of Object.entries(backends)) {
    if (start.memoryOnly) continue;
    const b = await start();
    if (b.skipped) {
      out(`SKIP ${name}: ${b.skipped}`);
      continue;
    }
    started.push(b);
    running[name] = b;
  }
  return running;
}

/**
 * frontRoutes: a front's routes to `backends` ({ name: backend }): each under `prefix[name]`,
 * with `settings(name)` (kind, keepConn, ...; see bench/lib/fronts.mjs).
 */
export function frontRoutes(backends, prefix, settings) {
  return Object.entries(backends).map(([name, b]) => ({
    prefix: prefix[name],
    backend: b.address,
    ...settings(name),
  }));
}

/** frontTargets: measureWorkload's targets: each of `backends` through `front`. */
export function frontTargets(front, backends, prefix) {
  return Object.keys(backends).map((name) => ({
    name,
    url: (p) => front.url(`${prefix[name]}${p}`),
    backendPid: backends[name].pid,
    frontPid: front.pid,
  }));
}

/**
 * vsBaseline: `NAME / NAME@baseline: Rx req/s, Cx backend CPU per request` when the results of
 * measureWorkload hold NAME@baseline, else undefined.
 */
export function vsBaseline(name, results, cpu) {
  const base = `${name}@baseline`;
  if (!results[base]) return undefined;
  return `${name} / ${base}: ${fmt(ratio(results[name], results[base]), 2)}x req/s, ${fmt(ratio(cpu[name].backend, cpu[base].backend), 2)}x backend CPU per request`;
}

/** workloadTables: the req/s table (title, vs `reference`), a blank line and the CPU table. */
export function workloadTables(title, { results, errors, cpu }, reference) {
  return [...table(title, results, reference, errors), '', ...cpuTable(cpu, reference)];
}

/**
 * cpuTable: markdown lines for `cpu` (from measureWorkload): per target, the median CPU
 * microseconds per request of the backend and of the front, and the backend's ratio to
 * `reference` (median of per-round ratios).
 */
export function cpuTable(cpu, reference) {
  const lines = [
    '| target | backend CPU (us/request) | front CPU (us/request) | backend CPU vs ' +
      `${reference} |`,
    '|---|---:|---:|---:|',
  ];
  const ref = cpu[reference]?.backend ?? [];
  for (const [name, c] of Object.entries(cpu)) {
    const r = name === reference ? 1 : ratio(c.backend, ref);
    lines.push(
      `| ${name} | ${fmt(median(c.backend), 1)} | ${fmt(median(c.front), 1)} | ${fmt(r, 2)}x |`,
    );
  }
  return lines;
}

/** established: TCP connections in ESTABLISHED state with local port `port` (ss). */
export function established(port) {
  try {
    const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], {
      encoding: 'utf8',
    });
    return out.split('\n').filter((l) => l.trim()).length;
  } catch {
    return Number.NaN;
  }
}

/**
 * memoryProbe: with `backend` (from startBackend) idle after one warm-up request, resets its
 * peak RSS and streams `total` bytes to `url` (chunked, or with Content-Length) while the app
 * reads slowly. Resolves to { idleMb, peakMb, growthMb, seconds, ok, answer }.
 */
export async function memoryProbe(backend, url, { total, contentLength = false, warmUrl }) {
  if (warmUrl) await fetchOnce(warmUrl);
  global.gc?.();
  await new Promise((r) => setTimeout(r, 500));
  const idle = rssOf(backend.pid).rss;
  const hwmReset = resetPeak(backend.pid);
  const sampler = sampleRss(backend.pid, 20);
  let res;
  let error;
  try {
    res = await streamUpload(url, { total, contentLength });
  } catch (e) {
    error = e;
  }
  const s = sampler.stop();
  const peak = hwmReset && Number.isFinite(s.hwm) ? Math.max(s.peak, s.hwm) : s.peak;
  return {
    idleMb: mb(idle),
    peakMb: mb(peak),
    growthMb: mb(peak - idle),
    seconds: res?.seconds ?? Number.NaN,
    ok: !error && res.status === 200 && res.body === `${total}\n`,
    answer: error
      ? `error: ${error.message}`
      : `${res.status} ${JSON.stringify(res.body.slice(0, 100))}`,
    peakSource: hwmReset
      ? 'VmHWM (reset before the upload) and 20 ms VmRSS samples'
      : '20 ms VmRSS samples',
  };
}

/**
 * memoryThrough: memoryProbe of one backend behind a front of its own. Starts the backend
 * (`start()`, a startBackend), then `server` with `route` ({ prefix, kind, ... }) to it, probes
 * PREFIXslow (warm-up PREFIXhello; `probe`: memoryProbe's other options) and stops both.
 * Resolves to { skipped } or { m (memoryProbe's result), cells (the row's columns from idle RSS
 * to answer ok, with the closing `|`), errorLog (when the answer was wrong: the last 5 lines of
 * the front's error log) }.
 */
export async function memoryThrough(start, server, route, probe, frontOptions) {
  const started = [];
  try {
    const b = await start();
    if (b.skipped) return { skipped: b.skipped };
    started.push(b);
    const front = await startFront(server, [{ ...route, backend: b.address }], frontOptions);
    started.push(front);
    const m = await memoryProbe(b, front.url(`${route.prefix}slow`), {
      ...probe,
      warmUrl: front.url(`${route.prefix}hello`),
    });
    return {
      m,
      cells: `${fmt(m.idleMb, 1)} | ${fmt(m.peakMb, 1)} | ${fmt(m.growthMb, 1)} | ${fmt(m.seconds, 1)} | ${m.ok ? 'yes' : `NO (${m.answer})`} |`,
      errorLog: m.ok ? undefined : (await front.errorLog()).split('\n').slice(-5).join(' | '),
    };
  } finally {
    for (const s of started.reverse()) await s.stop();
  }
}
