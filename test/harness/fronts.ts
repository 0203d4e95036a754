/**
 * The configurations the real-server suites (test/{cgi,fastcgi,scgi}/servers.test.ts) run
 * behind: a FrontSpec names one nginx, lighttpd or Apache setup, describeFronts gives each its
 * block (skipped, or failing under TSGI_REQUIRE_SERVERS=1, when its binaries are missing), and
 * useSpecFronts starts the fronts a block needs.
 */
import { describeWithServer, type ToolName } from './availability.js';
import { useFront } from './servers.js';
import type { Backend, FrontHandle, FrontOptions, FrontProtocol, FrontServer } from './types.js';

export interface FrontSpec {
  /** The conformance target is `PROTOCOL/id`; also the column in the observation tables. */
  id: string;
  label: string;
  server: FrontServer;
  /** What the block needs installed. */
  tools: ToolName[];
  /** The setup: FrontOptions beyond server, protocol, backend and prefix. */
  options: Partial<FrontOptions>;
  /** The same front with the server's compression on (nginx gzip, lighttpd/Apache mod_deflate). */
  compression: Partial<FrontOptions>;
}

/**
 * frontSpec: a FrontSpec whose `compression` is `options` plus the server's compression;
 * `tools` defaults to the server alone.
 */
export function frontSpec(
  id: string,
  label: string,
  server: FrontServer,
  options: Partial<FrontOptions> = {},
  tools: ToolName[] = [server],
): FrontSpec {
  const compress = server === 'nginx' ? { gzip: true } : { deflate: true };
  return { id, label, server, tools, options, compression: { ...options, ...compress } };
}

/**
 * describeFronts: for each spec, `describe('PROTOCOL behind LABEL')` through describeWithServer:
 * with spec.tools missing, a visible SKIP line, or under TSGI_REQUIRE_SERVERS=1 one failing test.
 */
export function describeFronts<S extends FrontSpec>(
  protocol: FrontProtocol,
  specs: readonly S[],
  fn: (spec: S) => void,
): void {
  for (const spec of specs) {
    describeWithServer(spec.tools, `${protocol} behind ${spec.label}`, () => fn(spec));
  }
}

export interface SpecFronts {
  front: () => FrontHandle;
  /** With spec.compression. */
  compressed: () => FrontHandle;
  /** lighttpd, when asked for: the front with server.stream-response-body = 2; else `front`. */
  streaming: () => FrontHandle;
}

/**
 * useSpecFronts: in a describe block, the fronts of `spec` (started in beforeAll, stopped in
 * afterAll: see useFront) in front of `backend()`, mounted at /app. `backend` is called when
 * they start, after the block's earlier beforeAll hooks. With `streaming`, lighttpd gets a
 * third front that streams responses (it buffers a backend's whole response by default).
 */
export function useSpecFronts(
  protocol: FrontProtocol,
  spec: FrontSpec,
  backend: () => Backend,
  opts: { streaming?: boolean } = {},
): SpecFronts {
  const base = (): FrontOptions => ({
    server: spec.server,
    protocol,
    backend: backend(),
    prefix: '/app',
    ...spec.options,
  });
  const front = useFront(base);
  const compressed = useFront(() => ({ ...base(), ...spec.compression }));
  const streaming =
    opts.streaming && spec.server === 'lighttpd'
      ? useFront(() => ({ ...base(), extraConfig: 'server.stream-response-body = 2' }))
      : front;
  return { front, compressed, streaming };
}

/**
 * errorLogWith: the front's error log once it includes `text` (servers write it a moment after
 * the response), polled every 100 ms; after `timeoutMs` the log as it is.
 */
export async function errorLogWith(
  front: FrontHandle,
  text: string,
  timeoutMs = 3000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = await front.errorLog();
    if (log.includes(text) || Date.now() >= deadline) return log;
    await new Promise((r) => setTimeout(r, 100));
  }
}
