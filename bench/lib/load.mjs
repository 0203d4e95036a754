// Load generation: wrk for throughput (parsed req/s, errors counted), a Node client for
// single checked requests and for one big streamed upload.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const scriptDir = mkdtempSync(join(tmpdir(), 'tsgi-bench-wrk-'));
let scripts = 0;

/** wrkPostScript: a wrk Lua script that POSTs `bytes` bytes (wrk adds Content-Length). */
export function wrkPostScript(bytes) {
  const path = join(scriptDir, `post-${bytes}-${scripts++}.lua`);
  writeFileSync(
    path,
    `wrk.method = "POST"\nwrk.body = string.rep("a", ${bytes})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`,
  );
  return path;
}

/**
 * wrk: `wrk -t1 -cN -dSs --timeout T [--latency] [-s script] url`. Resolves to { rps, okRps,
 * requests, non2xx, errors, p50, p99, raw, argv } where errors counts socket errors and
 * non-2xx/3xx responses (a run with errors is reported, and its req/s is still returned: the
 * caller decides); okRps counts the successful answers only (non-2xx/3xx subtracted); p50 and
 * p99 (ms) are measured with `latency: true` only (NaN otherwise).
 */
export function wrk(
  url,
  { connections = 32, duration = 10, threads = 1, script, timeout = '10s', latency = false } = {},
) {
  const argv = [`-t${threads}`, `-c${connections}`, `-d${duration}s`, `--timeout`, timeout];
  if (latency) argv.push('--latency');
  if (script) argv.push('-s', script);
  argv.push(url);
  return new Promise((resolve, reject) => {
    execFile('wrk', argv, { encoding: 'utf8', maxBuffer: 1 << 20 }, (err, out, errOut) => {
      if (err)
        return reject(new Error(`wrk ${argv.join(' ')} failed: ${err.message}\n${out}${errOut}`));
      const rps = /Requests\/sec:\s+([0-9.]+)/.exec(out);
      if (!rps) return reject(new Error(`cannot read wrk's output:\n${out}`));
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      let errors = non2xx;
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      if (sock) errors += Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]);
      const ms = (q) => {
        const m = new RegExp(`^\\s+${q}%\\s+([0-9.]+)(us|ms|s)\\s*$`, 'm').exec(out);
        if (!m) return Number.NaN;
        return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
      };
      resolve({
        rps: Number(rps[1]),
        okRps: requests > 0 ? Number(rps[1]) * (1 - non2xx / requests) : 0,
        requests,
        non2xx,
        errors,
        p50: ms(50),
        p99: ms(99),
        raw: out,
        argv: ['wrk', ...argv],
      });
    });
  });
}

const agent = new http.Agent({ keepAlive: false });

/** fetchOnce: one request (body: a Buffer), resolves to { status, headers, body }. */
export function fetchOnce(url, { method = 'GET', body, headers = {}, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * streamUpload: POST `total` bytes in `chunkSize` pieces as fast as the server takes them
 * (write backpressure honoured), chunked unless `contentLength` is true. Resolves to
 * { status, body, seconds }.
 */
export function streamUpload(
  url,
  { total, chunkSize = 65536, contentLength = false, timeoutMs = 600000 },
) {
  const headers = { 'Content-Type': 'application/octet-stream' };
  if (contentLength) headers['Content-Length'] = String(total);
  else headers['Transfer-Encoding'] = 'chunked';
  const piece = Buffer.alloc(chunkSize, 0x61);
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          body: Buffer.concat(chunks).toString('latin1'),
          seconds: Number(process.hrtime.bigint() - started) / 1e9,
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`upload to ${url} timed out`)));
    req.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunkSize, total - sent);
        sent += n;
        if (!req.write(n === chunkSize ? piece : piece.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}
