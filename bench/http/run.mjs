#!/usr/bin/env node
// Requests per second of examples/hello.mjs served by `tsgi http`, against a plain node:http
// hello world in the same run: both keep-alive, the same response bytes (checked before
// anything is timed), the same load tool (wrk), rounds interleaved so that drift (CPU
// frequency, other load on the machine) hits both; medians and the median per-round ratio.
//
//   pnpm run build && node bench/http/run.mjs [--rounds 7] [--duration 5] [--connections 32] [--no-pin]
//
// On a machine with 2+ CPUs the servers are pinned to CPU 0 and wrk to CPU 1 (taskset),
// so the load tool does not steal the servers' CPU. Besides requests/s it reports the
// server's CPU time per request (user + system, from /proc/PID/stat, Linux only): on a
// machine shared with other work, throughput swings from round to round, CPU per request
// much less. Results and the command: docs/bench/http.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = new Map();
const flags = new Set();
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--no-pin') flags.add(a);
  else args.set(a, process.argv[++i]);
}
const ROUNDS = Number(args.get('--rounds') ?? 15);
const DURATION = Number(args.get('--duration') ?? 3);
const CONNECTIONS = Number(args.get('--connections') ?? 32);

const which = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
if (!which('wrk')) {
  console.error('bench/http: wrk is not installed (apt-get install wrk); nothing measured');
  process.exit(2);
}
const bin = join(root, 'packages/cli/dist/bin.js');
if (!existsSync(bin)) {
  console.error('bench/http: packages/cli/dist/bin.js is missing; run `pnpm run build` first');
  process.exit(2);
}
const pin = !flags.has('--no-pin') && os.cpus().length >= 2 && which('taskset');
const onCpu = (cpu, cmd, argv) =>
  pin ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv];

/** The baseline: node:http's hello world, sending exactly the bytes the tsgi front sends. */
const PLAIN = `
const http = require('node:http');
const body = Buffer.from('Hello, World!\\n');
const server = http.createServer((req, res) => {
  res.sendDate = false;
  res.writeHead(200, [['Content-Type', 'text/plain'], ['Content-Length', '14']]);
  res.end(body);
});
server.listen(0, '127.0.0.1', () => console.log('listening on http://127.0.0.1:' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
`;

function start(name, cmd, argv) {
  const [c, a] = onCpu(0, cmd, argv);
  const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ name, child, url: `${m[1]}/` });
    });
    child.on('exit', (code) => reject(new Error(`${name} exited (${code}) before listening`)));
    setTimeout(() => reject(new Error(`${name} did not start`)), 10_000).unref();
  });
}

function rawGet(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: hostname, port: Number(port) }, () =>
      s.write(`GET / HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`),
    );
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', reject);
  });
}

/** CPU time (user + system) of a process in ms, or undefined off Linux. */
function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 (utime, stime) are at 11 and 12 after the command name
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

/** One wrk run against server `s`: requests/s and the server's CPU µs per request. */
function measure(s, seconds) {
  const c0 = cpuMs(s.child.pid);
  const { rps, requests } = wrk(s.url, seconds);
  const c1 = cpuMs(s.child.pid);
  const us = c0 === undefined || c1 === undefined ? undefined : ((c1 - c0) * 1000) / requests;
  return { rps, us };
}

function wrk(url, seconds) {
  const [c, a] = onCpu(1, 'wrk', [
    '-t1',
    `-c${CONNECTIONS}`,
    `-d${seconds}s`,
    '-H',
    'Connection: keep-alive',
    url,
  ]);
  const out = execFileSync(c, a, { encoding: 'utf8' });
  const rps = /Requests\/sec:\s+([0-9.]+)/.exec(out);
  const total = /([0-9]+) requests in/.exec(out);
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(out);
  if (!rps) throw new Error(`cannot read wrk's output:\n${out}`);
  if (errors) console.warn(`  wrk reported: ${errors[0]}`);
  return { rps: Number(rps[1]), requests: Number(total?.[1] ?? 0) };
}

const fmtUs = (us) => (us === undefined ? '' : ` (${us.toFixed(1).padStart(5)} us CPU/req)`);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const servers = [];
try {
  const tsgi = await start('tsgi http examples/hello.mjs', process.execPath, [
    bin,
    'http',
    '--listen',
    '127.0.0.1:0',
    '--log-level',
    'warn',
    join(root, 'examples/hello.mjs'),
  ]);
  servers.push(tsgi);
  const plain = await start('plain node:http hello world', process.execPath, ['-e', PLAIN]);
  servers.push(plain);

  // Same bytes on the wire, or the comparison means nothing.
  const [a, b] = [await rawGet(tsgi.url), await rawGet(plain.url)];
  if (a !== b) {
    console.error(`bench/http: the responses differ:\n--- tsgi\n${a}\n--- plain\n${b}`);
    process.exit(1);
  }

  console.log(
    `wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${ROUNDS} interleaved rounds, ${pin ? 'servers on CPU 0, wrk on CPU 1' : 'no CPU pinning'}`,
  );
  console.log(
    `node ${process.version}, ${os.platform()} ${os.arch()}, ${os.cpus()[0]?.model}, ${os.cpus().length} CPUs`,
  );
  console.log('response (both):', JSON.stringify(a));
  for (const s of servers) wrk(s.url, 2); // warm-up: JIT, connection setup
  const results = { tsgi: [], plain: [] };
  const cpu = { tsgi: [], plain: [] };
  const ratios = [];
  const cpuRatios = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [tsgi, plain] : [plain, tsgi];
    const got = {};
    for (const s of order) got[s === tsgi ? 'tsgi' : 'plain'] = measure(s, DURATION);
    results.tsgi.push(got.tsgi.rps);
    results.plain.push(got.plain.rps);
    ratios.push(got.tsgi.rps / got.plain.rps);
    if (got.tsgi.us !== undefined && got.plain.us !== undefined) {
      cpu.tsgi.push(got.tsgi.us);
      cpu.plain.push(got.plain.us);
      cpuRatios.push(got.plain.us / got.tsgi.us);
    }
    console.log(
      `round ${String(r + 1).padStart(2)}: tsgi ${got.tsgi.rps.toFixed(0).padStart(6)} req/s${fmtUs(got.tsgi.us)}, plain ${got.plain.rps.toFixed(0).padStart(6)} req/s${fmtUs(got.plain.us)}, ratio ${(got.tsgi.rps / got.plain.rps).toFixed(3)}`,
    );
  }
  const row = (name, xs, us) =>
    `${name.padEnd(34)}${median(xs).toFixed(0).padStart(9)}${Math.min(...xs)
      .toFixed(0)
      .padStart(9)}${Math.max(...xs)
      .toFixed(0)
      .padStart(9)}${us.length ? median(us).toFixed(1).padStart(14) : ''}`;
  console.log(
    `\n${'target'.padEnd(34)}${'median'.padStart(9)}${'min'.padStart(9)}${'max'.padStart(9)}  (req/s)${cpu.tsgi.length ? '  CPU us/req (median)' : ''}`,
  );
  console.log(row(tsgi.name, results.tsgi, cpu.tsgi));
  console.log(row(plain.name, results.plain, cpu.plain));
  const ratio = median(ratios);
  console.log(
    `\nratio tsgi/plain, requests/s: ${ratio.toFixed(3)} (median of per-round ratios; min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)}); target >= 0.8: ${ratio >= 0.8 ? 'met' : 'NOT met'}`,
  );
  if (cpuRatios.length) {
    console.log(
      `ratio plain/tsgi, CPU per request: ${median(cpuRatios).toFixed(3)} (median of per-round ratios; min ${Math.min(...cpuRatios).toFixed(3)}, max ${Math.max(...cpuRatios).toFixed(3)}); tsgi costs ${(median(cpu.tsgi) - median(cpu.plain)).toFixed(1)} us more per request`,
    );
  }
} finally {
  for (const s of servers) s.child.kill('SIGTERM');
}
