// Loading MODULE[:EXPORT]: a file path or an installed package, resolved from the current
// directory (not from where tsgi is installed), and its default or named export.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Application, TsgiError } from '@tsgi/core';

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
    if (!existsSync(file)) {
      throw loadError(
        `cannot find ${module} (looked for ${file}); give the path of a .js or .mjs file, or an installed package name`,
      );
    }
    if (statSync(file).isDirectory()) {
      throw loadError(`${module} is a directory; give the app's .js or .mjs file`);
    }
    return pathToFileURL(file).href;
  }
  const require = createRequire(join(cwd, 'noop.js'));
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
    if (existsSync(pj)) {
      const pkg = JSON.parse(readFileSync(pj, 'utf8')) as { exports?: unknown };
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

/**
 * loadApp: imports MODULE and returns its default export, or the export named EXPORT, as
 * the application. Throws TsgiError `ERR_CLI_LOAD` with a one-line message that says what
 * to do: module not found, failed to evaluate, export missing, export not a function.
 */
export async function loadApp(spec: string, cwd: string = process.cwd()): Promise<Application> {
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
  if (typeof app !== 'function') {
    throw loadError(
      `${module}:${exportName} is ${app === null ? 'null' : typeof app}, not an application (a function (environ, startResponse)); name the app with ${module}:EXPORT`,
    );
  }
  return app as Application;
}
