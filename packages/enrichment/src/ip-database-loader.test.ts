import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { IpDatabase } from './ip-database.js';
import { loadIpDatabaseInWorker } from './ip-database-loader.js';
import { createIpInfo } from './ip-info.js';

// Runs the worker from dist/ (built by `npm test`), with the packaged data: a few seconds in all.
let fromWorker: IpDatabase;
let fromMainThread: IpDatabase;
beforeAll(async () => {
  const loading = loadIpDatabaseInWorker();
  fromMainThread = IpDatabase.load();
  fromWorker = await loading;
});

describe('loadIpDatabaseInWorker', () => {
  it('answers like the synchronous load', () => {
    expect(fromWorker).toBeInstanceOf(IpDatabase);
    expect(fromWorker.rangeCount).toBe(fromMainThread.rangeCount);
    expect(fromWorker.rangeCount).toBeGreaterThan(500_000);
    const worker = createIpInfo(fromWorker);
    const mainThread = createIpInfo(fromMainThread);
    const addresses = [
      '8.8.8.8',
      '1.1.1.1',
      '81.2.69.160',
      '2001:4860:4860::8888',
      '2606:4700:4700::1111',
      '::ffff:8.8.8.8',
      '10.0.0.1',
      'fd00::1',
      'not an ip',
    ];
    for (const address of addresses) expect(worker(address), address).toEqual(mainThread(address));
    expect(worker('8.8.8.8')).toEqual({ country: 'US', asn: 15169, datacenter: true, private: false });
    expect(worker('2001:4860:4860::8888')).toMatchObject({ country: 'US', asn: 15169 });
    expect(worker('10.0.0.1')).toEqual({ private: true });
  });

  it('rejects when a data file is malformed or missing, naming the problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigil-ipdb-'));
    try {
      const broken = join(dir, 'broken.csv');
      writeFileSync(broken, '1,2,US\n3,4\n');
      await expect(loadIpDatabaseInWorker({ countryIpv4: broken })).rejects.toThrow(/line 2/);
      await expect(loadIpDatabaseInWorker({ asnIpv6: join(dir, 'absent.csv') })).rejects.toThrow(/ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops the worker and rejects with the reason when aborted', async () => {
    const controller = new AbortController();
    const loading = loadIpDatabaseInWorker({}, { signal: controller.signal });
    const reason = new Error('node closing');
    controller.abort(reason);
    await expect(loading).rejects.toBe(reason);
    await expect(loadIpDatabaseInWorker({}, { signal: controller.signal })).rejects.toBe(reason);
  });
});
