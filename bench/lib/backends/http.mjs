// The reference: a plain node:http server (what a Node backend does behind nginx's
// proxy_pass with upstream keepalive). Same workload as the other backends (workload.mjs).
import http from 'node:http';
import { announce, listenArg, nodeListener } from './workload.mjs';

const server = http.createServer(nodeListener({ sendDate: false }));
server.keepAliveTimeout = 60_000;
const l = listenArg();
server.listen(l.path ?? { host: l.host, port: l.port }, () => {
  const a = server.address();
  announce(typeof a === 'string' ? { socket: a } : { host: '127.0.0.1', port: a.port });
});
