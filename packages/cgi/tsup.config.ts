import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';

const lazyFsPromises = fileURLToPath(new URL('./src/lazy-fs-promises.ts', import.meta.url));

/**
 * builtinFacade: an ES module re-exporting a Node built-in's plain values (the names are
 * read from the built-in at build time) over `process.getBuiltinModule()`. Accessors (like
 * `fs.promises`, which loads `fs/promises`) are left out: reading them would load them.
 */
async function builtinFacade(name: string): Promise<string> {
  const mod = (await import(`node:${name}`)) as Record<string, unknown>;
  const names = Object.entries(Object.getOwnPropertyDescriptors(mod.default ?? mod))
    .filter(([k, d]) => 'value' in d && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) && k !== 'default')
    .map(([k]) => k);
  return [
    `const m = process.getBuiltinModule(${JSON.stringify(`node:${name}`)});`,
    ...names.map((n) => `export const ${n} = /* @__PURE__ */ (() => m.${n})();`),
  ].join('\n');
}

// tsup.config: explicit entries only; everything else under src/ stays private.
export default defineConfig([
  {
    // `@tsgi/cgi` and `@tsgi/cgi/httpoxy`: the library build; @tsgi/core stays an import
    // (one copy of the core for the whole application).
    entry: { index: 'src/index.ts', httpoxy: 'src/httpoxy.ts' },
    format: ['esm'],
    dts: true,
    target: 'node20',
    platform: 'node',
    // Not `clean: true`: the two builds run at once, and tsup's declaration step of this
    // one then deleted every .d.ts in dist/, entry.d.ts included when the other build had
    // written it first (a failed check-exports in CI). package.json's build empties dist/.
    clean: false,
    sourcemap: false,
    splitting: false,
    treeshake: true,
  },
  {
    // `@tsgi/cgi/entry`: the cold-start build for CGI scripts, which start a new process
    // for every request. One file with the core inside, and nothing loaded that a request
    // does not use (bench/cgi measures the effect; docs/bench/cgi.md):
    // - what CGI does not use (compression and its zlib, the validator) is tree-shaken away;
    // - `node:fs/promises` (the core's file wrapper) is loaded on first use;
    // - Node built-ins are taken with `process.getBuiltinModule()` instead of `import`: on
    //   Node 20 each `import ... from 'node:fs'` in an ES module builds a module facade over
    //   every export of the built-in, a few milliseconds in all at every start.
    entry: { entry: 'src/entry.ts' },
    format: ['esm'],
    dts: { entry: { entry: 'src/entry.ts' } },
    target: 'node20',
    platform: 'node',
    clean: false,
    sourcemap: false,
    splitting: false,
    treeshake: true,
    noExternal: ['@tsgi/core'],
    // Keep `node:` specifiers for the plugin below (tsup would strip and externalize them first).
    removeNodeProtocol: false,
    esbuildPlugins: [
      {
        name: 'tsgi-cgi-cold-start',
        setup(build) {
          build.onResolve({ filter: /^(node:)?fs\/promises$/ }, (args) =>
            args.importer.includes('core') ? { path: lazyFsPromises } : undefined,
          );
          build.onResolve({ filter: /^(node:)?(buffer|fs|module|path|url|util)$/ }, (args) => ({
            path: args.path.replace(/^node:/, ''),
            namespace: 'tsgi-builtin',
          }));
          build.onLoad({ filter: /.*/, namespace: 'tsgi-builtin' }, async (args) => ({
            contents: await builtinFacade(args.path),
            loader: 'js',
          }));
          // The core's compression module runs `promisify(gzip)` at load time, which keeps
          // `node:zlib` in any bundle that includes the core. Marked pure, the unused calls
          // (and with them the zlib import) are dropped; a CGI request never compresses.
          build.onLoad(
            { filter: /[\\/]core[\\/](dist[\\/]index\.js|src[\\/]compress\.ts)$/ },
            async (args) => {
              const source = await readFile(args.path, 'utf8');
              return {
                contents: source.replace(/\bpromisify\(/g, '/* @__PURE__ */ promisify('),
                loader: args.path.endsWith('.ts') ? 'ts' : 'js',
              };
            },
          );
        },
      },
    ],
  },
]);
