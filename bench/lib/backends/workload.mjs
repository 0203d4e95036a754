// What every bench backend answers, by the last segment of the request path:
//   /hello   `Hello, World!\n`, Content-Type text/plain, Content-Length 14
//   /big     1 MiB (Content-Length 1048576), application/octet-stream
//   /upload  reads the whole request body, answers `N\n` (the byte count)
//   /slow    reads the body slowly: never faster than BENCH_READ_RATE MB/s (default 20),
//            64 KiB at a time where the API has a size; answers `N\n`
// Dispatching on the path's end costs the same on every backend.
export const HELLO = Buffer.from('Hello, World!\n');
export const BIG = Buffer.alloc(1024 * 1024, 0x62);
export const READ_CHUNK = 65536;
export const READ_RATE = Number(process.env.BENCH_READ_RATE ?? 20) * 1e6; // bytes per second

/**
 * pacer: for a slow reader. Call it with the byte count of each chunk read; it returns how
 * many ms to wait before reading on so the total stays at or under READ_RATE (0: go on).
 * The same pacing whatever the chunk sizes a backend's API hands out.
 */
export function pacer() {
  const start = performance.now();
  let total = 0;
  return (n) => {
    total += n;
    const due = start + (total / READ_RATE) * 1000;
    return Math.max(0, due - performance.now());
  };
}

/** route: 'hello' | 'big' | 'upload' | 'slow' | undefined, from a request target. */
export function route(target) {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const s = path.slice(path.lastIndexOf('/') + 1);
  return s === 'hello' || s === 'big' || s === 'upload' || s === 'slow' ? s : undefined;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * nodeListener: the workload as a `(req, res)` listener, for servers whose request and response
 * are node:http's (node:http itself, node-fastcgi, whose response is an http.ServerResponse).
 * The slow reader pauses the request stream whenever it is ahead of READ_RATE. `sendDate:
 * false` drops the Date header such a response sends by default.
 */
export function nodeListener({ sendDate = true } = {}) {
  const text = (res, s) => {
    const b = Buffer.from(s);
    res.writeHead(200, [
      ['Content-Type', 'text/plain'],
      ['Content-Length', String(b.length)],
    ]);
    res.end(b);
  };
  return (req, res) => {
    if (!sendDate) res.sendDate = false;
    switch (route(req.url)) {
      case 'hello':
        res.writeHead(200, [
          ['Content-Type', 'text/plain'],
          ['Content-Length', '14'],
        ]);
        res.end(HELLO);
        return;
      case 'big':
        res.writeHead(200, [
          ['Content-Type', 'application/octet-stream'],
          ['Content-Length', String(BIG.length)],
        ]);
        res.end(BIG);
        return;
      case 'upload': {
        let n = 0;
        req.on('data', (c) => {
          n += c.length;
        });
        req.on('end', () => text(res, `${n}\n`));
        return;
      }
      case 'slow': {
        let n = 0;
        const wait = pacer();
        req.on('data', (c) => {
          n += c.length;
          const ms = wait(c.length);
          if (ms > 0) {
            req.pause();
            setTimeout(() => req.resume(), ms);
          }
        });
        req.on('end', () => text(res, `${n}\n`));
        return;
      }
      default:
        res.writeHead(404, [['Content-Length', '0']]);
        res.end();
    }
  };
}

/** announce: tell bench/lib/proc.mjs where we listen. */
export function announce(address) {
  process.stdout.write(`LISTENING ${JSON.stringify(address)}\n`);
}

/** skip: tell bench/lib/proc.mjs this backend cannot run, and why. */
export function skip(reason) {
  process.stdout.write(`SKIP ${reason}\n`);
  process.exit(0);
}

/** argv: `--listen HOST:PORT | /path.sock` -> { host, port } | { path } (default 127.0.0.1:0). */
export function listenArg() {
  const i = process.argv.indexOf('--listen');
  const v = i >= 0 ? process.argv[i + 1] : '127.0.0.1:0';
  if (v.startsWith('/')) return { path: v };
  const c = v.lastIndexOf(':');
  return { host: v.slice(0, c), port: Number(v.slice(c + 1)) };
}

process.on('SIGTERM', () => process.exit(0));

// BENCH_MEMLOG=MS: print process.memoryUsage() (MB) to stderr every MS milliseconds.
if (process.env.BENCH_MEMLOG) {
  const mb = (n) => (n / 1048576).toFixed(1);
  setInterval(() => {
    const m = process.memoryUsage();
    process.stderr.write(
      `mem rss ${mb(m.rss)} heapUsed ${mb(m.heapUsed)} heapTotal ${mb(m.heapTotal)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)}\n`,
    );
  }, Number(process.env.BENCH_MEMLOG)).unref();
}
