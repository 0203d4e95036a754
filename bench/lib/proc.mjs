// Child processes for the benches: backends (one Node process each, so RSS is per backend
// and the load generator never shares their event loop) and front servers, each in its own
// process group, all killed when the bench exits (normally, on an error or on Ctrl-C).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const groups = new Set();

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

let hooked = false;
function hook() {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const g of groups) killGroup(g, 'SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      for (const g of groups) killGroup(g, 'SIGKILL');
      process.exit(130);
    });
  }
}

/**
 * spawnGroup: spawn `cmd argv` as the leader of a new process group. Output is kept (the
 * last 64 KiB) for error messages; `onLine` sees stdout line by line.
 */
export function spawnGroup(cmd, argv, { cwd, env, onLine } = {}) {
  hook();
  const child = spawn(cmd, argv, {
    cwd,
    env: env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  groups.add(child.pid);
  let out = '';
  let lineBuf = '';
  const keep = (d) => {
    out += d;
    if (out.length > 65536) out = out.slice(-65536);
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    keep(d);
    if (!onLine) return;
    lineBuf += d;
    let i;
    while ((i = lineBuf.indexOf('\n')) >= 0) {
      const line = lineBuf.slice(0, i);
      lineBuf = lineBuf.slice(i + 1);
      onLine(line);
    }
  });
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      groups.delete(child.pid);
      resolve({ code, signal });
    });
  });
  let stopping;
  return {
    child,
    pid: child.pid,
    exited,
    output: () => out,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        killGroup(child.pid, 'SIGTERM');
        const t = setTimeout(() => killGroup(child.pid, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
        killGroup(child.pid, 'SIGKILL'); // leftovers (nginx workers)
      })();
      return stopping;
    },
  };
}

/** freePort: a TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** waitForPort: resolves once 127.0.0.1:port accepts, rejects if `proc` exits first. */
export async function waitForPort(port, proc, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  proc?.exited.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited)
      throw new Error(`exited before listening on ${port}:\n${proc.output().slice(-4000)}`);
    const ok = await new Promise((resolve) => {
      const s = connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(
        `nothing listening on ${port} after ${timeoutMs} ms:\n${proc?.output().slice(-4000) ?? ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * startBackend: run `node script ...argv`. The script prints one line
 * `LISTENING {"port":N}` (or `{"socket":"/path"}`) when ready, or `SKIP reason` and exits:
 * then this resolves to `{ skipped: reason }`.
 */
export function startBackend(
  name,
  script,
  argv = [],
  { env, timeoutMs = 15000, nodeArgs = [] } = {},
) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const proc = spawnGroup(process.execPath, [...nodeArgs, script, ...argv], {
      env: { ...process.env, ...env },
      onLine(line) {
        if (settled) return;
        if (line.startsWith('LISTENING ')) {
          settled = true;
          clearTimeout(timer);
          const address = JSON.parse(line.slice(10));
          resolve({
            name,
            proc,
            pid: proc.pid,
            address,
            stop: () => proc.stop(),
            output: proc.output,
          });
        } else if (line.startsWith('SKIP ')) {
          settled = true;
          clearTimeout(timer);
          resolve({ name, skipped: line.slice(5) });
        }
      },
    });
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      void proc.stop();
      reject(
        new Error(`${name} did not start within ${timeoutMs} ms:\n${proc.output().slice(-4000)}`),
      );
    }, timeoutMs);
    proc.exited.then(({ code, signal }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(
        new Error(
          `${name} exited (${code ?? signal}) before listening:\n${proc.output().slice(-4000)}`,
        ),
      );
    });
  });
}

/** rssOf: VmRSS and VmHWM (peak) of a process, in KiB, from /proc/PID/status. */
export function rssOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

/** resetPeak: reset VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`, Linux >= 4.0). */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * sampleRss: polls VmRSS every `intervalMs`; `stop()` returns the largest sample and the
 * kernel's own peak (VmHWM, which catches spikes between samples) in KiB.
 */
export function sampleRss(pid, intervalMs = 20) {
  let peak = 0;
  let samples = 0;
  const tick = () => {
    try {
      const { rss } = rssOf(pid);
      samples++;
      if (rss > peak) peak = rss;
    } catch {
      // process gone
    }
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      let hwm = Number.NaN;
      try {
        hwm = rssOf(pid).hwm;
      } catch {
        // gone
      }
      return { peak, hwm, samples };
    },
  };
}

export const mb = (kib) => kib / 1024;

const CLK_TCK = 100;

/**
 * cpuSeconds: user + system CPU time (s) of a process: all its threads and, recursively,
 * its child processes (an nginx master's workers), from /proc/PID/task/TID/stat. NaN when
 * the process is gone or /proc is not there. Clock-tick resolution (10 ms): measure over
 * seconds, not single requests.
 */
export function cpuSeconds(pid) {
  let ticks = 0;
  const visit = (p) => {
    for (const tid of readdirSync(`/proc/${p}/task`)) {
      const stat = readFileSync(`/proc/${p}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        // no children file (old kernel): the process alone
      }
      for (const k of kids.split(/\s+/)) if (k) visit(Number(k));
    }
  };
  try {
    visit(pid);
  } catch {
    return Number.NaN;
  }
  return ticks / CLK_TCK;
}
