import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Application, TsgiError } from '@tsgi/core';
import { deleteProxyEnv } from './proxyenv.js';
import {
  type CgiOptions,
  describeError,
  EXIT_NO_APP,
  flushStderr,
  respondWithError,
  runCgi,
  stderrSink,
} from './run.js';

/** AppSpec: a `MODULE[:EXPORT]` argument split in two. */
export interface AppSpec {
  specifier: string;
  exportName: string | undefined;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * parseAppSpec: splits `MODULE[:EXPORT]` (gunicorn's `module:app`) at the last colon when
 * what follows is a JavaScript identifier, so `C:\app.mjs` and `file:///srv/app.mjs` stay
 * whole and `file:///srv/app.mjs:handler` names the export `handler`.
 */
export function parseAppSpec(arg: string): AppSpec {
  const i = arg.lastIndexOf(':');
  if (i > 0) {
    const name = arg.slice(i + 1);
    if (IDENT.test(name)) return { specifier: arg.slice(0, i), exportName: name };
  }
  return { specifier: arg, exportName: undefined };
}

/**
 * resolveModule: the URL to `import()` for a module argument: a URL (`file:`, `data:`)
 * as given; a path (absolute, `./x`, or any file that exists) relative to the current
 * directory (a CGI server starts the script in its own directory); anything else as a
 * package name, resolved from the current directory.
 */
export function resolveModule(specifier: string | URL): string {
  if (specifier instanceof URL) return specifier.href;
  // Two or more letters before the colon: a URL scheme, not a Windows drive.
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(specifier)) return specifier;
  const path = resolve(specifier);
  if (
    isAbsolute(specifier) ||
    specifier.startsWith('.') ||
    /^[A-Za-z]:[\\/]/.test(specifier) ||
    existsSync(path)
  ) {
    return pathToFileURL(path).href;
  }
  try {
    return pathToFileURL(createRequire(resolve('index.js')).resolve(specifier)).href;
  } catch {
    // ESM-only packages have no require condition: let import() resolve it from here.
    return specifier;
  }
}

/**
 * pickApp: the application among a module's exports: `exportName` if given, else
 * `default`, `app` or `application`, the first that is a function. A CommonJS module's
 * `module.exports` arrives as `default`, so its properties are looked at as well.
 */
export function pickApp(
  mod: Record<string, unknown>,
  exportName?: string,
  where = 'module',
): Application {
  const names = exportName !== undefined ? [exportName] : ['default', 'app', 'application'];
  const cjs = mod.default as Record<string, unknown> | undefined;
  for (const name of names) {
    let v = mod[name];
    if (typeof v !== 'function' && cjs !== null && typeof cjs === 'object') v = cjs[name];
    if (typeof v === 'function') return v as Application;
  }
  const available = Object.keys(mod).join(', ') || 'none';
  throw new TsgiError(
    'ERR_CGI_NO_APP',
    exportName !== undefined
      ? `cgi: ${where} has no function export ${JSON.stringify(exportName)} (exports: ${available})`
      : `cgi: ${where} has no default, app or application function export (exports: ${available})`,
  );
}

/**
 * loadApp: imports a module and picks the application from it (see `resolveModule` and
 * `pickApp`). Call `deleteProxyEnv()` first; `runCgiModule` does.
 */
export async function loadApp(specifier: string | URL, exportName?: string): Promise<Application> {
  const url = resolveModule(specifier);
  const mod = (await import(url)) as Record<string, unknown>;
  return pickApp(mod, exportName, String(specifier));
}

/**
 * runCgiModule: what `tsgi cgi MODULE[:EXPORT]` does. Removes HTTP_PROXY from
 * `process.env` (httpoxy), then imports the module (so nothing in it can see the
 * variable), picks the app and runs one request with `runCgi`. Resolves with the exit
 * code; a module that cannot be loaded gets a fixed 500 on stdout, the reason on stderr,
 * and `EXIT_NO_APP` (2). Does not exit the process (see `runCgi`).
 */
export async function runCgiModule(
  specifier: string | URL,
  exportName?: string,
  options: CgiOptions = {},
): Promise<number> {
  deleteProxyEnv();
  let app: Application;
  try {
    app = await loadApp(specifier, exportName);
  } catch (e) {
    const log = options.errors ?? stderrSink;
    log(`cgi: cannot load the application from ${String(specifier)}: ${describeError(e)}`, 'error');
    const code = await respondWithError(options.stdout);
    await flushStderr();
    return code;
  }
  return runCgi(app, options);
}

/**
 * cgiMain: the body of a CGI command line, `ARGS = [MODULE[:EXPORT]]`: runs the request,
 * waits for stdout and stderr to reach the kernel, and exits the process with the exit
 * code (promptly, even if the app left a timer or a socket open: the server waits for the
 * end of the output). A missing argument is a usage error: 500 on stdout, exit 2.
 */
export async function cgiMain(args: readonly string[]): Promise<never> {
  let code: number;
  if (args.length !== 1 || args[0] === '') {
    stderrSink('cgi: usage: tsgi cgi MODULE[:EXPORT]', 'error');
    deleteProxyEnv();
    code = await respondWithError(undefined, EXIT_NO_APP);
  } else {
    const { specifier, exportName } = parseAppSpec(args[0]!);
    code = await runCgiModule(specifier, exportName);
  }
  await flushStderr();
  process.exit(code);
}
