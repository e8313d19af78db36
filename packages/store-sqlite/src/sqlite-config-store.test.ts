import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configStoreContract } from '@vigil/engine/testing';
import { SqliteConfigStore } from './sqlite-config-store.js';

configStoreContract('SqliteConfigStore', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'vigil-config-')), 'config.db');
  return { store: new SqliteConfigStore(path), reopen: async () => new SqliteConfigStore(path) };
});
