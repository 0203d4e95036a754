// Helpers for tests that run a real CGI process: bundle a script from the adapter's
// sources (so the test exercises src/, not a possibly stale dist/), and start it with an
// environment of raw bytes, as a server does (runProcess, from test/harness/run.ts).
import { Buffer } from 'node:buffer';
import { chmod, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** REPO_ROOT: the monorepo's root directory (with a trailing slash). */
export const REPO_ROOT = root;

/** SOURCE_ALIASES: bare specifiers mapped to the packages' sources, as vitest.config.ts does. */
export const SOURCE_ALIASES: Record<string, string> = {
  '@tsgi/core': join(root, 'packages/core/src/index.ts'),
  '@tsgi/core/testing': join(root, 'packages/core/src/testing.ts'),
  '@tsgi/cgi': join(root, 'packages/cgi/src/index.ts'),
};

/** The part of esbuild's API used here (its types are not resolvable from the repository root). */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<{ errors: unknown[]; warnings: unknown[] }>;
}
let esbuild: Esbuild | undefined;

/**
 * loadEsbuild: esbuild is not a direct dependency of the repository; tsup depends on it,
 * so it is resolved from tsup's own location.
 */
export function loadEsbuild(): Esbuild {
  if (esbuild) return esbuild;
  const req = createRequire(join(root, 'package.json'));
  const fromTsup = createRequire(req.resolve('tsup'));
  esbuild = fromTsup(fromTsup.resolve('esbuild')) as Esbuild;
  return esbuild;
}

/**
 * bundleScript: bundles `source` (TypeScript, may import @tsgi/cgi and @tsgi/core) into
 * one executable ES module at `outfile`, with a `#!` line naming this Node, so a server
 * can exec it directly as a CGI script.
 */
export async function bundleScript(
  source: string,
  outfile: string,
  options: { resolveDir?: string; alias?: Record<string, string> } = {},
): Promise<string> {
  const result = await loadEsbuild().build({
    stdin: {
      contents: source,
      resolveDir: options.resolveDir ?? root,
      loader: 'ts',
      sourcefile: 'cgi-script.ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    alias: { ...SOURCE_ALIASES, ...options.alias },
    banner: { js: `#!${process.execPath}` },
    logLevel: 'silent',
    write: true,
  });
  if (result.errors.length) throw new Error(`bundle failed: ${JSON.stringify(result.errors)}`);
  await chmod(outfile, 0o755);
  return outfile;
}

/**
 * bundleFile: like bundleScript, for an entry file (its imports resolve from its directory).
 */
export async function bundleFile(
  entry: string,
  outfile: string,
  alias: Record<string, string> = {},
): Promise<string> {
  const result = await loadEsbuild().build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    alias: { ...SOURCE_ALIASES, ...alias },
    banner: { js: `#!${process.execPath}` },
    logLevel: 'silent',
    write: true,
  });
  if (result.errors.length) throw new Error(`bundle failed: ${JSON.stringify(result.errors)}`);
  await chmod(outfile, 0o755);
  return outfile;
}

/** writeExecutable: writes `text` to `path` with mode 0755. */
export async function writeExecutable(path: string, text: string): Promise<string> {
  await writeFile(path, text);
  await chmod(path, 0o755);
  return path;
}

// runProcess: a CGI process with an environment of raw bytes (shared with the root tests).
export {
  type ProcessOptions,
  type ProcessResult,
  runProcess,
} from '../../../test/harness/run.js';

/** cgiEnv: a CGI request's environment as Apache's mod_cgi would set it, plus `extra`. */
export function cgiEnv(
  extra: Record<string, string | Uint8Array> = {},
): Record<string, string | Uint8Array> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'test',
    SERVER_NAME: '127.0.0.1',
    SERVER_PORT: '8080',
    REMOTE_ADDR: '127.0.0.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: '/app',
    PATH_INFO: '/hello',
    QUERY_STRING: '',
    REQUEST_URI: '/app/hello',
    HTTP_HOST: '127.0.0.1:8080',
    ...extra,
  };
}

/** split: a CGI response split at the first blank line into head text and body bytes. */
export function splitResponse(stdout: Buffer): { head: string; body: Buffer } {
  const i = stdout.indexOf('\r\n\r\n');
  if (i < 0) return { head: stdout.toString('latin1'), body: Buffer.alloc(0) };
  return { head: stdout.subarray(0, i + 2).toString('latin1'), body: stdout.subarray(i + 4) };
}
