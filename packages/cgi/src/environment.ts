import { readFileSync } from 'node:fs';
import { removedProxyValue } from './proxyenv.js';

/** RawEnvironment: environment variables as `[name, value bytes]` pairs, in block order. */
export type RawEnvironment = Array<[string, Uint8Array]>;

/**
 * parseEnvironBlock: splits a raw environment block (`NAME=value` entries separated by
 * NUL bytes, as in `/proc/self/environ`) into pairs. Values stay bytes, so a latin-1 or
 * otherwise non-UTF-8 value (a `%E9` decoded into PATH_INFO, a raw 0xE9 in a header) is
 * not replaced by U+FFFD as `process.env` does. Entries without `=` or with an empty name
 * are skipped; repeats are kept, in order (lighttpd can send a header twice as two
 * HTTP_X_FOO variables; `buildEnviron` then drops both, SPEC rule 1.5).
 */
export function parseEnvironBlock(block: Uint8Array): RawEnvironment {
  const out: RawEnvironment = [];
  const n = block.length;
  let start = 0;
  while (start < n) {
    let end = block.indexOf(0, start);
    if (end < 0) end = n;
    const eq = block.indexOf(0x3d /* = */, start);
    if (eq > start && eq < end) {
      let name = '';
      for (let i = start; i < eq; i++) name += String.fromCharCode(block[i]!);
      out.push([name, block.subarray(eq + 1, end)]);
    }
    start = end + 1;
  }
  return out;
}

/**
 * readCgiEnvironment: the request's CGI meta-variables (RFC 3875 section 4.1) as the
 * server put them in this process's environment. On Linux they are read as bytes from
 * `/proc/self/environ`, the block the process was started with (so a later change to
 * `process.env`, such as `deleteProxyEnv`, does not show there; HTTP_PROXY stays in the
 * environ as the request header it is). Elsewhere, or when that file cannot be read, it
 * falls back to `process.env`, whose values Node has already decoded as UTF-8 (non-UTF-8
 * bytes become U+FFFD there: nothing better is available on those systems), with the
 * HTTP_PROXY that `deleteProxyEnv` removed put back.
 */
export function readCgiEnvironment(): RawEnvironment | Record<string, string | undefined> {
  if (process.platform === 'linux') {
    try {
      return parseEnvironBlock(readFileSync('/proc/self/environ'));
    } catch {
      // /proc not mounted (some containers, chroots): fall through.
    }
  }
  const env: Record<string, string | undefined> = { ...process.env };
  const proxy = removedProxyValue();
  if (proxy !== undefined && env.HTTP_PROXY === undefined) env.HTTP_PROXY = proxy;
  return env;
}
