// node-fastcgi 2.0.0 (root devDependency), as its README shows it:
// fcgi.createServer((req, res) => ...).listen(). Same workload as the other backends.
import { createRequire } from 'node:module';
import { announce, listenArg, nodeListener } from '../lib/backends/workload.mjs';

const require = createRequire(import.meta.url);
const fcgi = require('node-fastcgi');

const server = fcgi.createServer(nodeListener());
const l = listenArg();
server.listen(l.path ?? l.port, l.path ? undefined : l.host, () => {
  const a = server.address();
  announce(typeof a === 'string' ? { socket: a } : { host: '127.0.0.1', port: a.port });
});
