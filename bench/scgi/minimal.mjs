// The floor for SCGI in Node: a minimal hand-written responder (no validation, no limits,
// no environ), answering the bench workload (../lib/backends/workload.mjs) with the bytes
// tsgi's SCGI adapter sends. `node minimal.mjs [--listen HOST:PORT]`.
import net from 'node:net';
import { announce, BIG, HELLO, listenArg, pacer, route } from '../lib/backends/workload.mjs';

const head = (type, len) =>
  Buffer.from(
    `Status: 200 OK\r\nContent-Type: ${type}\r\nContent-Length: ${len}\r\n\r\n`,
    'latin1',
  );
const HELLO_RESPONSE = Buffer.concat([head('text/plain', 14), HELLO]);
const BIG_HEAD = head('application/octet-stream', BIG.length);
const text = (s) => Buffer.concat([head('text/plain', Buffer.byteLength(s)), Buffer.from(s)]);

const server = net.createServer({ noDelay: true }, (sock) => {
  let buf = null; // header bytes until the netstring is complete
  let left = -1; // body bytes still to come
  let got = 0;
  let kind;
  let wait;
  sock.on('error', () => {});
  const finish = () => {
    if (kind === 'hello') sock.end(HELLO_RESPONSE);
    else if (kind === 'big') {
      sock.write(BIG_HEAD);
      sock.end(BIG);
    } else sock.end(text(`${got}\n`));
  };
  const body = (chunk) => {
    const n = Math.min(chunk.length, left);
    left -= n;
    got += n;
    if (kind === 'slow' && n > 0) {
      const ms = wait(n);
      if (ms > 0 && left > 0) {
        sock.pause();
        setTimeout(() => sock.resume(), ms);
      }
    }
    if (left === 0) finish();
  };
  sock.on('data', (d) => {
    if (left >= 0) return body(d);
    buf = buf ? Buffer.concat([buf, d]) : d;
    const colon = buf.indexOf(0x3a);
    if (colon < 0) return;
    const len = Number(buf.toString('latin1', 0, colon));
    const end = colon + 1 + len; // index of the ','
    if (buf.length <= end) return;
    const h = buf.toString('latin1', colon + 1, end).split('\0');
    let uri = '';
    for (let i = 0; i + 1 < h.length; i += 2) {
      if (h[i] === 'CONTENT_LENGTH') left = Number(h[i + 1]);
      else if (h[i] === 'REQUEST_URI') uri = h[i + 1];
    }
    kind = route(uri);
    wait = pacer();
    const rest = buf.subarray(end + 1);
    buf = null;
    if (left === 0) finish();
    else if (rest.length) body(rest);
  });
});
const l = listenArg();
server.listen(l.path ?? { host: l.host, port: l.port }, () => {
  const a = server.address();
  announce(typeof a === 'string' ? { socket: a } : { host: '127.0.0.1', port: a.port });
});
