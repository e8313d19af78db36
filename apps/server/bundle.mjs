// Bundles the built server (`dist/`, from `tsc -b`) into `bundle/`: the node `npm start` runs.
// Start-up is mostly module loading: about 1,600 files opened and 6,300 stat calls for the
// workspace packages and their dependencies (TypeBox alone is some 250 files), each a system call
// that is slow on a virtual machine. One file per entry point starts the node in about three
// quarters of the time (docs/adr/0011-bundled-server.md). Run: `node apps/server/bundle.mjs`
// (`npm run build` does it after `tsc -b`).
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const server = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const outdir = `${server}bundle`;

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  // The node, and the two worker threads it starts by URL next to its own module
  // (`./sqlite-log-writer.js`, `./ip-database-worker.js`): bundled beside it under those names.
  entryPoints: {
    main: 'apps/server/dist/main.js',
    'sqlite-log-writer': 'packages/store-sqlite/dist/sqlite-log-writer.js',
    'ip-database-worker': 'packages/enrichment/dist/ip-database-worker.js',
  },
  outdir,
  bundle: true,
  // Modules the node imports only when configured (the Redis and PostgreSQL stores and their
  // drivers) stay in chunks of their own, loaded by that import, not at start.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  // Stack traces name the original files and lines; their text stays in dist/, not in the map.
  sourcesContent: false,
  logLevel: 'warning',
  external: [
    // Native add-ons and the drivers loaded only when configured: resolved from node_modules.
    'better-sqlite3',
    'pg',
    'pg-native',
    'ioredis',
    // Serves its static files from its own directory (`__dirname`), which a bundle does not have.
    '@fastify/swagger-ui',
  ],
  // Bundled CommonJS modules call `require` for Node's built-ins; an ES module has none of its own.
  banner: {
    js: "import { createRequire as __vigilRequire } from 'node:module'; const require = __vigilRequire(import.meta.url);",
  },
});
