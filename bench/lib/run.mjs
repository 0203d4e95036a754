// The parts every bench shares: check that each target answers the workload correctly
// before timing it, time workloads round by round, and measure RSS during a slow upload.
import { execFileSync } from 'node:child_process';
import { fetchOnce, streamUpload, wrk, wrkPostScript } from './load.mjs';
import { cpuSeconds, mb, resetPeak, rssOf, sampleRss } from './proc.mjs';
import { fmt, interleave, median, ratio } from './report.mjs';

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
    return r.requests > 0 ? r.rps * (1 - r.non2xx / r.requests) : 0;
  };
  for (const t of targets) await run(t, Math.min(2, opts.duration), false);
  const results = await interleave(targets, opts.rounds, (t) => run(t, opts.duration, true), log);
  for (const [n, e] of Object.entries(errors)) {
    if (e > 0)
      log(
        `  ${n}: ${e} errors over the rounds (non-2xx answers and socket errors; excluded from req/s)`,
      );
  }
  return { results, errors, cpu };
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
