import { defineConfig } from 'tsup';

// tsup.config: explicit entries only; everything else under src/ stays private.
export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm'],
  dts: true,
  target: 'node20',
  platform: 'node',
  clean: true,
  sourcemap: false,
  splitting: false,
  treeshake: true,
});
