// The conformance suite against the HTTP front over real sockets (serveHttp on 127.0.0.1,
// mount point /app), three ways:
// - http: node:http's client, a fresh connection per request;
// - http-keepalive: node:http's client on one keep-alive connection, reused case after case
//   (a case that breaks its connection, as a cut-off body must, gets a new one);
// - http-pipelined: a raw socket sending the `hello` case's request and the case's request
//   in one write; both responses are parsed off the wire, in order.
import http from 'node:http';
import { type HttpServer, serveHttp } from '@tsgi/http';
import { afterAll, beforeAll, expect } from 'vitest';
import { conformanceApp, runConformance, type Target } from '../conformance/suite.js';
import { httpRequest } from '../harness/clients.js';
import { pipelined } from './wire.js';

let front: HttpServer;
const logs: string[] = [];
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

beforeAll(async () => {
  front = await serveHttp(conformanceApp, {
    port: 0,
    mount: '/app',
    log: (text, level) => logs.push(`${level}: ${text}`),
  });
});
afterAll(async () => {
  keepAlive.destroy();
  await front?.close(false);
});

const viaNodeClient =
  (agent?: http.Agent): Target['request'] =>
  async (req) => {
    const send = () =>
      httpRequest({
        port: front.port,
        method: req.method,
        path: `/app${req.target}`,
        headers: req.headers as [string, string][],
        body: req.body,
        chunked: req.chunked,
        agent,
      });
    let r: Awaited<ReturnType<typeof httpRequest>>;
    try {
      r = await send();
    } catch (e) {
      // A server closes a keep-alive connection after a response it had to cut off (a body
      // longer than its Content-Length: the client already has all it announced). A request
      // sent on that connection in the meantime fails without an answer; clients retry it on
      // a new one (RFC 9112 section 9.3.1), and so does this target, once.
      if (agent === undefined || !/socket hang up|ECONNRESET/.test(String(e))) throw e;
      r = await send();
    }
    return { status: r.status, headers: r.rawHeaders, body: r.body };
  };

const target = (name: string, request: Target['request']): Target => ({
  name,
  kind: 'http',
  server: 'none',
  mount: '/app',
  request,
});

runConformance('http', () => target('http', viaNodeClient()));
runConformance('http-keepalive', () => target('http-keepalive', viaNodeClient(keepAlive)));
runConformance('http-pipelined', () =>
  target('http-pipelined', async (req) => {
    const [first, res] = await pipelined(front.port, [
      { path: '/app/hello', headers: [['X-Tsgi-Case', 'hello']] },
      {
        method: req.method,
        path: `/app${req.target}`,
        headers: req.headers as Array<[string, string]>,
        body: req.body,
        chunked: req.chunked,
      },
    ]);
    // The request in front of it was answered whole and first.
    expect(first?.status).toBe(200);
    expect(first?.body.toString('latin1')).toBe('Hello, World!\n');
    return res as NonNullable<typeof res>;
  }),
);
