import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url));

// Unit and conformance tests import the packages' sources; tests that spawn the
// `tsgi` command use the built dist (the root `test` script builds first).
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@tsgi\/core\/testing$/, replacement: src('core/src/testing.ts') },
      { find: /^@tsgi\/core$/, replacement: src('core/src/index.ts') },
      { find: /^@tsgi\/fastcgi$/, replacement: src('fastcgi/src/index.ts') },
      { find: /^@tsgi\/scgi$/, replacement: src('scgi/src/index.ts') },
      { find: /^@tsgi\/cgi\/entry$/, replacement: src('cgi/src/entry.ts') },
      { find: /^@tsgi\/cgi\/httpoxy$/, replacement: src('cgi/src/httpoxy.ts') },
      { find: /^@tsgi\/cgi$/, replacement: src('cgi/src/index.ts') },
      { find: /^@tsgi\/http$/, replacement: src('http/src/index.ts') },
      { find: /^@tsgi\/bridges$/, replacement: src('bridges/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
