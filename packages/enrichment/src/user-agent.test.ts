import { describe, expect, it } from 'vitest';
import { createUserAgentParser, isBotUserAgent } from './user-agent.js';

const CHROME_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const SAFARI_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const SAFARI_IPAD =
  'Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1';
const FIREFOX_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0';
const CHROME_ANDROID_CUBOT =
  'Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const HEADLESS_CHROME =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36';

describe('userAgent', () => {
  const userAgent = createUserAgentParser();

  it('parses a desktop Chrome', () => {
    expect(userAgent(CHROME_WINDOWS)).toEqual({
      browser: 'Chrome',
      os: 'Windows',
      device: 'desktop',
      bot: false,
    });
  });

  it('parses a desktop Firefox on macOS', () => {
    expect(userAgent(FIREFOX_MAC)).toEqual({
      browser: 'Firefox',
      os: 'Mac OS',
      device: 'desktop',
      bot: false,
    });
  });

  it('parses Safari on an iPhone and an iPad', () => {
    expect(userAgent(SAFARI_IPHONE)).toEqual({
      browser: 'Mobile Safari',
      os: 'iOS',
      device: 'mobile',
      bot: false,
    });
    expect(userAgent(SAFARI_IPAD)).toMatchObject({ os: 'iOS', device: 'tablet', bot: false });
  });

  it('does not take the Cubot phone brand for a bot', () => {
    expect(userAgent(CHROME_ANDROID_CUBOT)).toMatchObject({ os: 'Android', device: 'mobile', bot: false });
  });

  it('flags Googlebot', () => {
    expect(userAgent(GOOGLEBOT)).toEqual({ device: 'bot', bot: true });
  });

  it('flags command-line and library clients', () => {
    expect(userAgent('curl/8.5.0')).toEqual({ device: 'bot', bot: true });
    expect(userAgent('python-requests/2.31.0')).toMatchObject({ bot: true });
    expect(userAgent('Go-http-client/2.0')).toMatchObject({ bot: true });
  });

  it('flags headless Chrome while still naming it', () => {
    expect(userAgent(HEADLESS_CHROME)).toEqual({
      browser: 'Chrome Headless',
      os: 'Linux',
      device: 'bot',
      bot: true,
    });
  });

  it('knows nothing about an empty user agent', () => {
    expect(userAgent('')).toBeUndefined();
    expect(userAgent('   ')).toBeUndefined();
  });

  it('never throws on odd input', () => {
    expect(userAgent('\u0000\uffff'.repeat(5_000))).toMatchObject({ bot: false });
    expect(userAgent(undefined as unknown as string)).toBeUndefined();
  });

  it('answers repeated user agents from its cache with the same result', () => {
    const parser = createUserAgentParser({ cacheSize: 2 });
    const first = parser(CHROME_WINDOWS);
    expect(parser(CHROME_WINDOWS)).toBe(first);
    parser(SAFARI_IPHONE);
    parser(GOOGLEBOT);
    // Evicted, parsed again: equal, not the same object.
    const again = parser(CHROME_WINDOWS);
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });
});

describe('isBotUserAgent', () => {
  it.each([
    'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
    'Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)',
    'Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)',
    'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)',
    'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)',
    'Wget/1.21.4',
    'Scrapy/2.11 (+https://scrapy.org)',
    'okhttp/4.12.0',
  ])('flags %s', (text) => {
    expect(isBotUserAgent(text)).toBe(true);
  });

  it.each([CHROME_WINDOWS, SAFARI_IPHONE, SAFARI_IPAD, FIREFOX_MAC, CHROME_ANDROID_CUBOT])(
    'passes %s',
    (text) => {
      expect(isBotUserAgent(text)).toBe(false);
    },
  );
});
