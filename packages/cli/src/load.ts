// Loading MODULE[:EXPORT]: a file path or an installed package, resolved from the current
// directory (not from where tsgi is installed), and its default or named export.

import { EventEmitter } from 'node:events';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Application, type ErrorSink, isTsgiError, TsgiError } from '@tsgi/core';
import { fs, nodeModule } from './builtins.js';
import type { AppInterface } from './command.js';

/** ModuleSpec: MODULE[:EXPORT] split in two. */
export interface ModuleSpec {
  module: string;
  /** The export to use; `default` when none was named. */
  exportName: string;
}

/**
 * parseModuleSpec: splits `MODULE[:EXPORT]` at the last colon when what follows is a
 * JavaScript identifier (`app.mjs:handler`); `node:`-style and Windows drive colons stay.
 */
export function parseModuleSpec(spec: string): ModuleSpec {
  const m = /^(.+):([A-Za-z_$][A-Za-z0-9_$]*)$/.exec(spec);
  if (m !== null && !/^[A-Za-z]$/.test(m[1] as string)) {
    return { module: m[1] as string, exportName: m[2] as string };
  }
  return { module: spec, exportName: 'default' };
}

function loadError(message: string, cause?: unknown): TsgiError {
  return new TsgiError('ERR_CLI_LOAD', `cli: ${message}`, { cause });
}

const looksLikePath = (s: string) =>
  s.startsWith('.') || isAbsolute(s) || /\.(m|c)?js$/.test(s) || s.includes('\\');

/** resolveModule: a file URL for MODULE, a path or a package name, relative to `cwd`. */
export function resolveModule(module: string, cwd: string): string {
  if (looksLikePath(module)) {
    const file = resolve(cwd, module);
    if (!fs.existsSync(file)) {
      throw loadError(
        `cannot find ${module} (looked for ${file}); give the path of a .js or .mjs file, or an installed package name`,
      );
    }
    if (fs.statSync(file).isDirectory()) {
      throw loadError(`${module} is a directory; give the app's .js or .mjs file`);
    }
    return pathToFileURL(file).href;
  }
  const require = nodeModule.createRequire(join(cwd, 'noop.js'));
  try {
    return pathToFileURL(require.resolve(module)).href;
  } catch (e) {
    // An ESM-only package ("exports" with only an "import" condition) is not visible to
    // require.resolve; look its entry point up by hand.
    const file = resolveImportOnly(module, cwd);
    if (file !== undefined) return pathToFileURL(file).href;
    throw loadError(
      `cannot find module or package ${JSON.stringify(module)} from ${cwd}; give a file path (./app.mjs) or install the package`,
      e,
    );
  }
}

function resolveImportOnly(name: string, cwd: string): string | undefined {
  const parts = name.split('/');
  const pkgName = name.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
  const sub = name.slice(pkgName.length);
  for (let dir = cwd; ; dir = dirname(dir)) {
    const root = join(dir, 'node_modules', pkgName);
    const pj = join(root, 'package.json');
    if (fs.existsSync(pj)) {
      const pkg = JSON.parse(fs.readFileSync(pj, 'utf8')) as { exports?: unknown };
      const target = exportTarget(pkg.exports, `.${sub}`);
      return target === undefined ? undefined : join(root, target);
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function exportTarget(exports: unknown, key: string): string | undefined {
  if (exports === undefined || exports === null) return undefined;
  if (typeof exports === 'string') return key === '.' ? exports : undefined;
  if (typeof exports !== 'object') return undefined;
  const rec = exports as Record<string, unknown>;
  const keyed = Object.keys(rec).some((k) => k.startsWith('.'));
  const entry = keyed ? rec[key] : key === '.' ? rec : undefined;
  return pickCondition(entry);
}

function pickCondition(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) {
    for (const e of entry) {
      const t = pickCondition(e);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (entry === null || typeof entry !== 'object') return undefined;
  const rec = entry as Record<string, unknown>;
  for (const c of ['node', 'import', 'default']) {
    if (c in rec) {
      const t = pickCondition(rec[c]);
      if (t !== undefined) return t;
    }
  }
  return undefined;
}

/** LoadOptions: how `loadApp` turns the export into a tsgi Application. */
export interface LoadOptions {
  /** `--interface`: what the export is; undefined to detect it (`@tsgi/bridges`' detectInterface). */
  interface?: AppInterface;
  /** `--strip-mount`: a bridged app's URL leaves SCRIPT_NAME out. */
  stripMount?: boolean;
  /** Where a warning goes (`--strip-mount` for a tsgi app). */
  log?: ErrorSink;
}

/**
 * isPlainTsgi: a function that `detectInterface` of @tsgi/bridges would call a tsgi app
 * (no `fetch` method, not an Express/Connect app, not an http.Server): it is used as it
 * is, without loading the bridges (and node:http with them).
 */
function isPlainTsgi(v: unknown): v is Application {
  if (typeof v !== 'function') return false;
  const f = v as unknown as Record<string, unknown>;
  return (
    typeof f.fetch !== 'function' &&
    !(typeof f.handle === 'function' && typeof f.use === 'function') &&
    !(v instanceof EventEmitter)
  );
}

/** What an export is, for an error message: `object with keys [status]`, `string`. */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object);
    const name = (v as object).constructor?.name;
    const what = name && name !== 'Object' ? `a ${name} object` : 'an object';
    return keys.length === 0
      ? `${what} with no own keys`
      : `${what} with keys [${keys.slice(0, 8).join(', ')}${keys.length > 8 ? ', ...' : ''}]`;
  }
  if (typeof v === 'function') return `a function of ${(v as () => void).length} parameter(s)`;
  return `a ${typeof v}`;
}

/**
 * loadApp: imports MODULE and returns its default export, or the export named EXPORT, as
 * the application. A tsgi application (a function `(environ, startResponse)`) is used as
 * it is; a Fetch app (an object with `fetch`, such as Hono) or a Node listener (Express,
 * Koa, Connect, an http.Server) is detected, or named by `options.interface`, and bridged
 * with `@tsgi/bridges` (imported only then). Throws TsgiError `ERR_CLI_LOAD` with a
 * one-line message that says what to do: module not found, failed to evaluate, export
 * missing, export not an application (the message says what was found).
 */
export async function loadApp(
  spec: string,
  cwd: string = process.cwd(),
  options: LoadOptions = {},
): Promise<Application> {
  const { module, exportName } = parseModuleSpec(spec);
  const url = resolveModule(module, cwd);
  let ns: Record<string, unknown>;
  try {
    ns = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    const first = (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split('\n')[0];
    throw loadError(
      `${module} failed to load: ${first}; fix the module (or run it with node to see the stack)`,
      e,
    );
  }
  const names = Object.keys(ns).filter((k) => k !== 'module.exports');
  const listed = names.length === 0 ? 'it exports nothing' : `its exports: ${names.join(', ')}`;
  if (!(exportName in ns) || ns[exportName] === undefined) {
    throw loadError(
      exportName === 'default'
        ? `${module} has no default export (${listed}); export the app as default or name it with ${module}:EXPORT`
        : `${module} has no export ${JSON.stringify(exportName)} (${listed}); name an existing one with ${module}:EXPORT`,
    );
  }
  const app = ns[exportName];
  const where = `${module}:${exportName}`;
  const iface = options.interface;
  if ((iface === undefined || iface === 'tsgi') && isPlainTsgi(app)) {
    if (options.stripMount) {
      options.log?.(
        `tsgi: --strip-mount is for fetch and node apps; ${where} is a tsgi app, which reads SCRIPT_NAME and PATH_INFO itself`,
        'warn',
      );
    }
    return app;
  }
  if (
    iface === 'tsgi' ||
    (iface === undefined && (app === null || typeof app !== 'object') && typeof app !== 'function')
  ) {
    throw loadError(
      `${where} is ${app === null ? 'null' : typeof app}, not an application (${iface === undefined ? 'a function (environ, startResponse), a Fetch app or a Node listener' : 'a function (environ, startResponse)'}); name the app with ${module}:EXPORT`,
    );
  }
  const bridges = await import('@tsgi/bridges');
  const kind = iface ?? bridges.detectInterface(app);
  if (kind === undefined) {
    throw loadError(
      `${where} is ${typeof app}, not an application: found ${describe(app)}; expected a tsgi app (environ, startResponse), an object with fetch() (Hono), or an Express, Koa or Connect app; name the app with ${module}:EXPORT or pass --interface tsgi|fetch|node`,
    );
  }
  try {
    return bridges.toApplication(app, kind, { stripMount: options.stripMount === true });
  } catch (e) {
    const msg = isTsgiError(e) ? e.message.replace(/^bridges: /, '') : String(e);
    throw loadError(`${where}: ${msg}; name the app with ${module}:EXPORT`, e);
  }
}
