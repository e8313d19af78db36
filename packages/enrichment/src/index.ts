export { isDisposableEmail } from './disposable-email.js';
export type { IpInfo, RuleServices, UserAgentInfo } from './engine-types.js';
export {
  createEnrichment,
  type Enrichment,
  type EnrichmentOptions,
  type EnrichmentServices,
} from './enrichment.js';
export { HOSTING_ASNS, isHostingAsn } from './hosting-asns.js';
export { type AddressWords, IpDatabase, type IpDatabaseFiles } from './ip-database.js';
export { type LoadIpDatabaseOptions, loadIpDatabaseInWorker } from './ip-database-loader.js';
export { createIpInfo, isPrivateAddress } from './ip-info.js';
export { phoneCountry } from './phone-country.js';
export {
  BOT_USER_AGENT_PATTERN,
  createUserAgentParser,
  DEFAULT_USER_AGENT_CACHE_SIZE,
  isBotUserAgent,
  type UserAgentParserOptions,
} from './user-agent.js';
