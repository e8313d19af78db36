import { describe, expect, it } from 'vitest';
import { createEnrichment } from './enrichment.js';
import { IpDatabase } from './ip-database.js';

describe('createEnrichment', () => {
  // A tiny database keeps this test fast; ip-info.test.ts covers the packaged data.
  const ipDatabase = IpDatabase.fromCsv({
    countryIpv4: '134744064,134744319,US',
    asnIpv4: '134744064,134744319,15169,Google LLC',
    countryIpv6: '',
    asnIpv6: '',
  });

  it('provides every enrichment service of the engine', () => {
    const services = createEnrichment({ ipDatabase, userAgentCacheSize: 10 });
    expect(services.ipInfo('8.8.8.8')).toEqual({
      country: 'US',
      asn: 15169,
      datacenter: true,
      private: false,
    });
    expect(services.isDisposableEmail('x@mailinator.com')).toBe(true);
    expect(services.phoneCountry('+4915123456789')).toBe('DE');
    expect(services.userAgent('curl/8.5.0')).toMatchObject({ bot: true });
  });

  it('answers only "private" until a database given as a promise arrives', async () => {
    let arrive: (database: IpDatabase) => void = () => {};
    const services = createEnrichment({
      ipDatabase: new Promise<IpDatabase>((resolve) => (arrive = resolve)),
    });
    expect(services.ipDatabaseReady()).toBe(false);
    expect(services.ipInfo('8.8.8.8')).toBeUndefined();
    expect(services.ipInfo('10.0.0.1')).toEqual({ private: true });
    expect(services.ipInfo('fd00::1')).toEqual({ private: true });
    expect(services.ipInfo('not an ip')).toBeUndefined();
    expect(services.isDisposableEmail('x@mailinator.com')).toBe(true);
    arrive(ipDatabase);
    await Promise.resolve();
    expect(services.ipDatabaseReady()).toBe(true);
    expect(services.ipInfo('8.8.8.8')).toMatchObject({ country: 'US', asn: 15169, private: false });
    expect(services.ipInfo('10.0.0.1')).toEqual({ private: true });
  });

  it('keeps serving without IP data when the database promise rejects', async () => {
    const failed = Promise.reject(new Error('no data'));
    const services = createEnrichment({ ipDatabase: failed });
    await expect(failed).rejects.toThrow('no data');
    await Promise.resolve();
    expect(services.ipDatabaseReady()).toBe(false);
    expect(services.ipInfo('8.8.8.8')).toBeUndefined();
    expect(services.ipInfo('192.168.1.1')).toEqual({ private: true });
  });

  it('is ready at once with a loaded database', () => {
    expect(createEnrichment({ ipDatabase }).ipDatabaseReady()).toBe(true);
  });

  it('combines with a list lookup into the engine services', () => {
    const services = { inList: () => false, ...createEnrichment({ ipDatabase }) };
    expect(services.inList()).toBe(false);
    expect(services.ipInfo('10.0.0.1')).toEqual({ private: true });
  });
});
