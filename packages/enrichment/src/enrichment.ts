import { isDisposableEmail } from './disposable-email.js';
import type { IpInfo, RuleServices } from './engine-types.js';
import { IpDatabase, type IpDatabaseFiles } from './ip-database.js';
import { createIpInfo, isPrivateAddress } from './ip-info.js';
import { phoneCountry } from './phone-country.js';
import { createUserAgentParser } from './user-agent.js';

/** The enrichment half of the engine's `RuleServices`; the host adds `inList` from its list store. */
export type EnrichmentServices = Required<Omit<RuleServices, 'inList'>>;

/** What {@link createEnrichment} returns: the services, and whether the IP database has arrived. */
export interface Enrichment extends EnrichmentServices {
  /**
   * Whether `ipInfo` answers from the IP database. False while a database given as a promise is still
   * loading, and for good when that promise rejected.
   */
  ipDatabaseReady(): boolean;
}

/** Options of {@link createEnrichment}. */
export interface EnrichmentOptions {
  /**
   * A database already loaded (to share one between several service objects), or one still loading
   * (`loadIpDatabaseInWorker()`): until it arrives `ipInfo` only says whether an address is private.
   * Loaded here, synchronously, when absent.
   */
  readonly ipDatabase?: IpDatabase | Promise<IpDatabase>;
  /** Data files to load when `ipDatabase` is absent; default the files of the npm packages. */
  readonly ipDatabaseFiles?: IpDatabaseFiles;
  /** Bound of the parsed-user-agent LRU cache (entries). */
  readonly userAgentCacheSize?: number;
}

/**
 * `ipInfo` while the database is not there: `{ private: true }` for private and reserved addresses
 * (known without data), undefined otherwise, so a rule reading `country` or `asn` fails as missing and
 * the policy's `on_missing` applies.
 */
function ipInfoWithoutDatabase(ip: string): IpInfo | undefined {
  return isPrivateAddress(ip) === true ? { private: true } : undefined;
}

/**
 * Builds the enrichment services from packaged data: call this once at startup, in the composition root,
 * and reuse the result for every evaluation. Give `ipDatabase: loadIpDatabaseInWorker()` to keep the
 * load (1–3 s, docs/adr/0004-enrichment-data.md) off the event loop; without `ipDatabase` it is loaded
 * here, synchronously.
 */
export function createEnrichment(options: EnrichmentOptions = {}): Enrichment {
  const given = options.ipDatabase ?? IpDatabase.load(options.ipDatabaseFiles);
  let lookup: (ip: string) => IpInfo | undefined = ipInfoWithoutDatabase;
  let ready = false;
  const arrive = (database: IpDatabase) => {
    lookup = createIpInfo(database);
    ready = true;
  };
  if ('then' in given) {
    // The caller owns the promise and reports its failure; this only keeps serving without IP data.
    given.then(arrive, () => {});
  } else {
    arrive(given);
  }
  const userAgentOptions =
    options.userAgentCacheSize === undefined ? {} : { cacheSize: options.userAgentCacheSize };
  return {
    ipInfo: (ip) => lookup(ip),
    isDisposableEmail,
    phoneCountry,
    userAgent: createUserAgentParser(userAgentOptions),
    ipDatabaseReady: () => ready,
  };
}
