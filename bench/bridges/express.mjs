// The Express 5 app of bench/bridges: run by `tsgi fastcgi` (fromNodeListener) and by its
// own `app.listen()` (`node express.mjs`, the native target). Routes as in hono.mjs, under
// $BENCH_BASE (default /app).

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { DOC } from './doc.mjs';

const app = express();
const r = express.Router();
r.get('/hello', (_req, res) => {
  res.type('text/plain').send('hello, world');
});
r.get('/json', (_req, res) => {
  res.json(DOC);
});
r.post('/echo', express.raw({ type: () => true, limit: '1mb' }), (req, res) => {
  res.json({ bytes: req.body.length });
});
app.use(process.env.BENCH_BASE || '/app', r);
export default app;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    console.log(`LISTENING ${JSON.stringify({ host: '127.0.0.1', port: server.address().port })}`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
