// The reference: a plain node:http server (what a Node backend does behind nginx's
// proxy_pass with upstream keepalive). Same workload as the other backends (workload.mjs).
import http from 'node:http';
import { announce, BIG, HELLO, listenArg, pacer, route } from './workload.mjs';

const text = (res, s) => {
  const b = Buffer.from(s);
  res.writeHead(200, [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(b.length)],
  ]);
  res.end(b);
};

const server = http.createServer((req, res) => {
  res.sendDate = false;
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
      // Reads slowly: pauses the request stream whenever it is ahead of READ_RATE.
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
});
server.keepAliveTimeout = 60_000;
const l = listenArg();
server.listen(l.path ?? { host: l.host, port: l.port }, () => {
  const a = server.address();
  announce(typeof a === 'string' ? { socket: a } : { host: '127.0.0.1', port: a.port });
});
