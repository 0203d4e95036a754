// The conformance Target for a real front server: the suite's requests go to the server's
// port under the /app mount, over a plain HTTP/1.1 client (test/harness/clients.ts).
import { httpRequest } from '../harness/clients.js';
import { runConformance, type Target } from './suite.js';

type FrontKind = Exclude<Target['kind'], 'memory' | 'http'>;

/** frontTarget: a Target named `kind/id` that sends each case through the server on `port()`. */
export function frontTarget(
  kind: FrontKind,
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

/** runFrontConformance: the conformance suite (`conformance: kind/id`) through `front()`. */
export function runFrontConformance(
  kind: FrontKind,
  spec: { id: string; server: Target['server'] },
  front: () => { port: number },
): void {
  runConformance(`${kind}/${spec.id}`, () => frontTarget(kind, spec, () => front().port));
}
