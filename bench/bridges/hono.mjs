// The Hono app of bench/bridges: the same module is run by `tsgi fastcgi` (fromFetch) and by
// @hono/node-server (`node hono.mjs`, the native target). Routes live under $BENCH_BASE
// (default /app): nginx hands both targets the full path.
//   GET  BASE/hello  "hello, world" (text/plain)
//   GET  BASE/json   a 1 KiB JSON document
//   POST BASE/echo   reads the body, answers its length as JSON

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Hono } from 'hono';
import { DOC } from './doc.mjs';

const app = new Hono().basePath(process.env.BENCH_BASE || '/app');
app.get('/hello', (c) => c.text('hello, world'));
app.get('/json', (c) => c.json(DOC));
app.post('/echo', async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
export default app;

// Run directly: the native deployment, @hono/node-server on 127.0.0.1 (port from $PORT, 0 by default).
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { serve } = await import('@hono/node-server');
  const server = serve(
    { fetch: app.fetch, hostname: '127.0.0.1', port: Number(process.env.PORT || 0) },
    (info) => {
      console.log(`LISTENING ${JSON.stringify({ host: '127.0.0.1', port: info.port })}`);
    },
  );
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
