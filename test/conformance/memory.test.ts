// The conformance suite on the in-memory target: buildEnviron + runApp with no sockets.
import { Buffer } from 'node:buffer';
import { request } from '@tsgi/core/testing';
import { conformanceApp, runConformance, type Target } from './suite.js';

const memory: Target = {
  name: 'memory',
  kind: 'memory',
  server: 'none',
  mount: '/app',
  async request(req) {
    const res = await request(conformanceApp, {
      method: req.method,
      target: `/app${req.target}`,
      mount: '/app',
      headers: req.headers,
      body: req.body,
      chunked: req.chunked,
    });
    // The in-memory transport drops nothing: a HEAD body is what the app produced.
    return { status: res.status, headers: res.headers, body: Buffer.from(res.body) };
  },
};

runConformance('memory', () => memory);
