import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@vigil/protocol': src('protocol'),
      '@vigil/engine/testing': fileURLToPath(
        new URL('./packages/engine/src/testing/index.ts', import.meta.url),
      ),
      '@vigil/engine': src('engine'),
      '@vigil/enrichment': src('enrichment'),
      '@vigil/store-sqlite': src('store-sqlite'),
      '@vigil/store-redis/testing': fileURLToPath(
        new URL('./packages/store-redis/src/testing/redis-processes.ts', import.meta.url),
      ),
      '@vigil/store-redis': src('store-redis'),
      '@vigil/store-postgres': src('store-postgres'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'apps/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
