import UAParser from 'ua-parser-js';
import type { UserAgentInfo } from './engine-types.js';
import { LruCache } from './lru-cache.js';

/**
 * User agents of crawlers, monitoring probes, HTTP libraries and headless or automated browsers.
 * ua-parser-js 1.x does not flag bots, so this pattern does. It matches case-insensitively anywhere in
 * the string and is a plain alternation (no nested quantifiers), so it runs in linear time:
 * - `bot` ending a word (Googlebot, bingbot, Applebot, AhrefsBot, GPTBot, DuckDuckBot, ...), except the
 *   Cubot phone brand; `crawl`, `spider` (Baiduspider), `slurp` (Yahoo), `scrap`(er), `fetcher`;
 * - named crawlers without those words: `facebookexternalhit`, `mediapartners-google`,
 *   `google-inspectiontool`, `bingpreview`, `ia_archiver`;
 * - HTTP clients and tools: `curl/`, `wget/`, `python-requests`, `python-urllib`, `aiohttp`, `httpx`,
 *   `go-http-client`, `java/`, `okhttp`, `apache-httpclient`, `libwww-perl`, `node-fetch`, `axios/`,
 *   `undici`, `postmanruntime`, `insomnia`, `httpie`, `scrapy`;
 * - headless and automated browsers and probes: `headlesschrome`, `phantomjs`, `puppeteer`,
 *   `playwright`, `selenium`, `webdriver`, `lighthouse`, `pingdom`, `uptimerobot`, `statuscake`.
 * Tests check it against common desktop and mobile browser strings. For broader coverage, the `isbot`
 * package (Unlicense) maintains a much larger pattern.
 */
export const BOT_USER_AGENT_PATTERN =
  /(?<!cu)bot\b|crawl|spider|slurp|scrap|fetcher|facebookexternalhit|mediapartners-google|google-inspectiontool|bingpreview|ia_archiver|curl\/|wget\/|python-requests|python-urllib|aiohttp|httpx|go-http-client|java\/|okhttp|apache-httpclient|libwww-perl|node-fetch|axios\/|undici|postmanruntime|insomnia|httpie|headlesschrome|phantomjs|puppeteer|playwright|selenium|webdriver|lighthouse|pingdom|uptimerobot|statuscake/i;

/** Whether a user agent looks like a bot, crawler, HTTP library or headless browser. */
export function isBotUserAgent(userAgent: string): boolean {
  return BOT_USER_AGENT_PATTERN.test(userAgent);
}

/**
 * Default bound of the parsed-user-agent cache: 10,000 entries. ua-parser-js reads at most 500 characters,
 * so an entry costs well under 1 KB and the cache stays under ~10 MB even when filled with distinct
 * strings; real traffic repeats a few thousand user agents.
 */
export const DEFAULT_USER_AGENT_CACHE_SIZE = 10_000;

/** ua-parser-js only reads this many characters (its UA_MAX_LENGTH); longer keys would only waste cache. */
const PARSED_LENGTH = 500;

const DESKTOP_OPERATING_SYSTEMS: ReadonlySet<string> = new Set([
  'Windows',
  'Mac OS',
  'macOS',
  'Linux',
  'Ubuntu',
  'Debian',
  'Fedora',
  'Chromium OS',
  'Chrome OS',
  'FreeBSD',
  'OpenBSD',
  'NetBSD',
]);

function parse(text: string): UserAgentInfo | undefined {
  if (text.trim().length === 0) return undefined;
  const result = new UAParser(text).getResult();
  const bot = isBotUserAgent(text);
  const info: { browser?: string; os?: string; device?: string; bot: boolean } = { bot };
  if (result.browser.name !== undefined) info.browser = result.browser.name;
  if (result.os.name !== undefined) info.os = result.os.name;
  if (bot) {
    info.device = 'bot';
  } else if (result.device.type !== undefined) {
    info.device = result.device.type;
  } else if (result.os.name !== undefined && DESKTOP_OPERATING_SYSTEMS.has(result.os.name)) {
    // ua-parser-js leaves the device type empty for desktops.
    info.device = 'desktop';
  }
  return info;
}

/** Options of {@link createUserAgentParser}. */
export interface UserAgentParserOptions {
  /** Entries kept in the LRU cache of parsed user agents; default {@link DEFAULT_USER_AGENT_CACHE_SIZE}. */
  readonly cacheSize?: number;
}

/**
 * Builds `userAgent(text)`: browser and OS names as ua-parser-js 1.x reports them (`Chrome`,
 * `Mobile Safari`, `Windows`, `iOS`, ...), device `mobile`, `tablet`, `smarttv`, `wearable`, `console`,
 * `embedded`, `desktop` or `bot`, and the {@link isBotUserAgent} flag. Undefined for an empty string.
 * Never throws. Results are cached in a bounded LRU since user agents repeat a lot.
 */
export function createUserAgentParser(
  options: UserAgentParserOptions = {},
): (userAgent: string) => UserAgentInfo | undefined {
  const cache = new LruCache<string, UserAgentInfo | null>(
    options.cacheSize ?? DEFAULT_USER_AGENT_CACHE_SIZE,
  );
  return (userAgent) => {
    if (typeof userAgent !== 'string') return undefined;
    const key = userAgent.length > PARSED_LENGTH ? userAgent.slice(0, PARSED_LENGTH) : userAgent;
    const cached = cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const info = parse(key);
    cache.set(key, info ?? null);
    return info;
  };
}
