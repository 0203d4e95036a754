// The conformance suite (Plack::Test::Suite's idea): one named list of cases, each a
// request, an app and an expectation, run against every target: the in-memory
// transport, the HTTP front, and each adapter behind each real server. Every app is
// wrapped in the core's validator.
//
// A case's app is chosen by the `X-Tsgi-Case` request header, so one module
// (`conformanceApp`) serves every case, in-process or as a CGI script.
import { Buffer } from 'node:buffer';
import type { Application, HeaderList } from '@tsgi/core';
import { validator } from '@tsgi/core';
import { describe, expect, test } from 'vitest';
import { cases } from './cases.js';

/** A request as a case describes it; `target` is relative to the target's mount point. */
export interface ConformanceRequest {
  method?: string;
  /** Path and query under the mount point, raw (percent-encoded as on the wire). */
  target: string;
  headers?: HeaderList;
  body?: Buffer;
  /** Send the body with Transfer-Encoding: chunked (no Content-Length). */
  chunked?: boolean;
}

/** A response as every target reports it. */
export interface ConformanceResponse {
  status: number;
  /** Headers in wire order, names as received. */
  headers: HeaderList;
  body: Buffer;
}

/** Where a case runs. */
export interface Target {
  /** e.g. `memory`, `http`, `fastcgi/nginx`, `cgi/apache-event`. */
  name: string;
  kind: 'memory' | 'http' | 'cgi' | 'fastcgi' | 'scgi';
  /** The front server in between, if any. */
  server: 'none' | 'nginx' | 'lighttpd' | 'apache';
  /** The mount prefix (SCRIPT_NAME the app should see); '' for the root. */
  mount: string;
  request(req: ConformanceRequest): Promise<ConformanceResponse>;
}

/** A conformance case. `rules` are docs/SPEC.md rule numbers the case covers. */
export interface Case {
  name: string;
  rules: string[];
  app: Application;
  request: ConformanceRequest | ((t: Target) => ConformanceRequest);
  check(res: ConformanceResponse, t: Target): void | Promise<void>;
  /** Returns a reason to skip on this target (a documented server limitation), or undefined. */
  skip?(t: Target): string | undefined;
}

/** header: all values of `name` in a response, joined with ", ", or undefined. */
export function header(res: ConformanceResponse, name: string): string | undefined {
  const l = name.toLowerCase();
  const vs = res.headers.filter(([k]) => k.toLowerCase() === l).map(([, v]) => v);
  return vs.length === 0 ? undefined : vs.join(', ');
}

/** headerValues: every value of `name`, one entry per header line. */
export function headerValues(res: ConformanceResponse, name: string): string[] {
  const l = name.toLowerCase();
  return res.headers.filter(([k]) => k.toLowerCase() === l).map(([, v]) => v);
}

/** json: the body parsed as JSON (the environ-dump cases answer with JSON). */
export function json(res: ConformanceResponse): any {
  return JSON.parse(res.body.toString('utf8'));
}

const byName = new Map<string, Application>();
for (const c of cases) {
  if (byName.has(c.name)) throw new Error(`duplicate conformance case ${c.name}`);
  byName.set(c.name, validator(c.app));
}

/**
 * conformanceApp: serves every case; the `X-Tsgi-Case` header names it. This is the
 * module a CGI script or an out-of-process server loads.
 */
export const conformanceApp: Application = (environ, startResponse) => {
  const name = String(environ.HTTP_X_TSGI_CASE ?? '');
  const app = byName.get(name);
  if (!app) {
    return {
      status: '404 Not Found',
      headers: [['Content-Type', 'text/plain']],
      body: `no case ${name}\n`,
    };
  }
  return app(environ, startResponse);
};

/** runConformance: registers one vitest test per case against the target `get()` returns. */
export function runConformance(
  title: string,
  get: () => Target,
  only?: (c: Case) => boolean,
): void {
  describe(`conformance: ${title}`, () => {
    for (const c of cases) {
      if (only && !only(c)) continue;
      test(`${c.name} [${c.rules.join(', ')}]`, async (ctx) => {
        const t = get();
        const reason = c.skip?.(t);
        if (reason) {
          console.warn(`SKIP ${c.name} on ${t.name}: ${reason}`);
          ctx.skip();
          return;
        }
        const req = typeof c.request === 'function' ? c.request(t) : c.request;
        const headers: HeaderList = [['X-Tsgi-Case', c.name], ...(req.headers ?? [])];
        const res = await t.request({ ...req, headers });
        await c.check(res, t);
      });
    }
  });
}

export { Buffer, expect };
