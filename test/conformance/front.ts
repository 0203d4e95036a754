// The conformance Target for a real front server: the suite's requests go to the server's
// port under the /app mount, over a plain HTTP/1.1 client (test/harness/clients.ts).
import { httpRequest } from '../harness/clients.js';
import type { Target } from './suite.js';

/** frontTarget: a Target named `kind/id` that sends each case through the server on `port()`. */
export function frontTarget(
  kind: Exclude<Target['kind'], 'memory' | 'http'>,
  spec: { id: string; server: Target['server'] },
  port: () => number,
): Target {
  return {
    name: `${kind}/${spec.id}`,
    kind,
    server: spec.server,
    mount: '/app',
    async request(req) {
      const r = await httpRequest({
        port: port(),
        method: req.method,
        path: `/app${req.target}`,
        headers: req.headers as [string, string][],
        body: req.body,
        chunked: req.chunked,
      });
      return { status: r.status, headers: r.rawHeaders, body: r.body };
    },
  };
}
