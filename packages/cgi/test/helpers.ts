// Helpers for tests that run a real CGI process: bundle a script from the adapter's
// sources (so the test exercises src/, not a possibly stale dist/), and start it with an
// environment of raw bytes, as a server does.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
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

/** RunResult: what a CGI process produced. */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** RunOptions for runProcess. */
export interface ProcessOptions {
  /** The whole environment (nothing is inherited). Values may be raw bytes. */
  env: Record<string, string | Uint8Array>;
  /** Bytes for stdin, then EOF. Default: nothing (EOF at once). */
  stdin?: Uint8Array | string;
  /** Write stdin only after this many ms (exercises reads that find nothing yet). */
  stdinDelayMs?: number;
  /** Read stdout only after this many ms (a slow server: the pipe fills up). */
  stdoutDelayMs?: number;
  /** Close our end of stdout after this many bytes arrived (the server went away). */
  closeStdoutAfter?: number;
  args?: string[];
  timeoutMs?: number;
  /** Send this signal to the process once its first stdout bytes arrived (a server giving up). */
  signalOnOutput?: NodeJS.Signals;
}

/** shellBytes: a POSIX `printf` format producing exactly `bytes` (every byte as an octal escape). */
function shellBytes(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += `\\${b.toString(8).padStart(3, '0')}`;
  return s;
}

/**
 * runProcess: runs `command` with exactly `env` as its environment. Node's spawn() only
 * takes strings (it would encode 0xE9 as UTF-8), so the variables are put in place by a
 * shell: each value is produced byte for byte by printf, then `exec env -i` starts the
 * command with nothing else in its environment.
 */
export function runProcess(command: string, options: ProcessOptions): Promise<ProcessResult> {
  const lines: string[] = [];
  const assigns: string[] = [];
  let i = 0;
  for (const [name, value] of Object.entries(options.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad variable name ${name}`);
    const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    // The trailing "x" survives $(...), which strips trailing newlines; it is cut off after.
    lines.push(`v${i}="$(printf '${shellBytes(bytes)}x')"; v${i}="\${v${i}%x}"`);
    assigns.push(`"${name}=$v${i}"`);
    i++;
  }
  const args = (options.args ?? []).map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  lines.push(
    `exec /usr/bin/env -i ${assigns.join(' ')} '${command.replace(/'/g, `'\\''`)}' ${args}`,
  );
  const child = spawn('/bin/sh', ['-c', lines.join('\n')], { stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    let received = 0;
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} timed out; stderr: ${err}`));
    }, options.timeoutMs ?? 20_000);
    const startReading = () => {
      child.stdout.on('data', (d: Buffer) => {
        if (received === 0 && options.signalOnOutput) child.kill(options.signalOnOutput);
        out.push(d);
        received += d.length;
        if (options.closeStdoutAfter !== undefined && received >= options.closeStdoutAfter) {
          child.stdout.destroy();
        }
      });
      // An explicitly paused stream stays paused when a 'data' listener is added.
      child.stdout.resume();
    };
    if (options.stdoutDelayMs) {
      child.stdout.pause();
      setTimeout(startReading, options.stdoutDelayMs);
    } else {
      startReading();
    }
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString('utf8');
    });
    child.stdin.on('error', () => undefined);
    const feed = () => {
      if (options.stdin !== undefined) child.stdin.end(options.stdin);
      else child.stdin.end();
    };
    if (options.stdinDelayMs) setTimeout(feed, options.stdinDelayMs);
    else feed();
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

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
