// The reference policy of Vigil's benchmarks: 30 fraud rules for a `payment` event, written in CEL
// (SPEC §2), with the event type's schema, the features the rules read, and a seeded generator of
// realistic events. `bench/rules.mjs` runs the rules with several engines; `bench/run.mjs` publishes
// the rules that read no feature to a live server, and, in its full configuration, all 30 rules with
// the features and lists below (`fullHttpPolicy`).
//
// The schema is a superset of the one `bench/run.mjs` uses without a policy, so that a body which
// carries every field the rules read can still be of the same size.

/** The `payment` event type (`PUT /v1/manage/event-types/payment`). */
export const eventTypeSchema = {
  fields: {
    account_id: { type: 'string', required: true },
    amount: { type: 'number', required: true },
    currency: { type: 'string', required: true },
    ip: { type: 'ip', required: true },
    device_id: { type: 'string', required: true },
    email: { type: 'email', required: true },
    country: { type: 'string', required: true },
    bin_country: { type: 'string', required: true },
    channel: { type: 'enum', values: ['web', 'app', 'pos'], required: true },
    account_age_days: { type: 'integer', required: true },
    is_new_device: { type: 'boolean', required: true },
    failed_logins_1h: { type: 'integer', required: true },
    email_verified: { type: 'boolean', required: true },
    merchant_category: { type: 'string', required: true },
    recent_countries: { type: 'string_list', required: true },
    user_agent: { type: 'string', required: true },
    // Optional: rules test them with has().
    shipping_country: { type: 'string' },
    phone: { type: 'phone' },
    // Carried, not read by any rule.
    card_bin: { type: 'string' },
    // A token of the card (the processor's PAN fingerprint): the card key of the card features.
    card_id: { type: 'string' },
    merchant_id: { type: 'string' },
    session_id: { type: 'string' },
  },
};

/** Features the rules read, by CEL type (`features.<name>`); defined in `featureDefinitions`. */
export const featureTypes = {
  txn_count_1h: 'int',
  txn_count_24h: 'int',
  amount_sum_24h: 'double',
  distinct_cards_24h: 'int',
};

const rule = (id, when, outcome) => ({ id, name: id.replaceAll('-', ' '), when, ...outcome });

/**
 * The 30 rules. Every field they read is present in every generated event except `shipping_country`
 * and `phone`, which are only read under `has()`. `velocity-per-account-day` divides by
 * `account_age_days`, which is 0 for some events: it then errors, unless the `||` to its right is
 * true (CEL's commutative logic absorbs the error).
 */
export const rules = [
  rule('amount-very-high', 'event.amount >= 10000.0', { verdict: 'review', score: 30 }),
  rule('new-account-high-amount', 'event.account_age_days < 7 && event.amount > 1000.0', {
    verdict: 'reject',
    score: 50,
  }),
  rule('bin-country-mismatch', 'event.bin_country != event.country', { score: 15 }),
  rule('high-risk-country', "event.country in ['NG', 'GH', 'PK', 'VN', 'ID', 'RO', 'UA']", { score: 20 }),
  rule(
    'sanctioned-country',
    "event.country in ['KP', 'IR', 'SY', 'CU'] || event.bin_country in ['KP', 'IR', 'SY', 'CU']",
    { verdict: 'reject', score: 100, tags: ['sanctions'] },
  ),
  rule(
    'disposable-email',
    "event.email.endsWith('@mailinator.com') || event.email.endsWith('@yopmail.com') || event.email.endsWith('@guerrillamail.com') || event.email.endsWith('@10minutemail.com')",
    { verdict: 'review', score: 30, tags: ['email'] },
  ),
  rule('plus-alias-new-account', "event.email.contains('+') && event.account_age_days < 30", { score: 10 }),
  rule('unverified-email-amount', '!event.email_verified && event.amount > 300.0', {
    verdict: 'challenge',
    score: 15,
    tags: ['otp'],
  }),
  rule('new-device-amount', 'event.is_new_device && event.amount > 500.0', {
    verdict: 'challenge',
    score: 20,
    tags: ['3ds'],
  }),
  rule('failed-logins-burst', 'event.failed_logins_1h >= 5', { verdict: 'reject', score: 60, tags: ['ato'] }),
  rule('failed-logins-new-device', 'event.failed_logins_1h >= 2 && event.is_new_device', {
    verdict: 'review',
    score: 25,
    tags: ['ato'],
  }),
  rule('tor-exit-ip', "event.ip.startsWith('185.220.') || event.ip.startsWith('171.25.193.')", {
    verdict: 'review',
    score: 30,
    tags: ['anonymizer'],
  }),
  rule('crypto-currency', "event.currency in ['BTC', 'ETH', 'USDT']", { verdict: 'review', score: 20 }),
  rule(
    'currency-country-mismatch',
    "(event.country == 'US' && event.currency != 'USD') || (event.country in ['FR', 'DE', 'ES', 'IT', 'NL'] && event.currency != 'EUR') || (event.country == 'GB' && event.currency != 'GBP')",
    { score: 10 },
  ),
  rule(
    'gambling-new-account',
    "event.merchant_category in ['7995', '7800', '7801', '7802'] && event.account_age_days < 30",
    { verdict: 'review', score: 25 },
  ),
  rule(
    'money-transfer-foreign-card',
    "event.merchant_category in ['4829', '6051'] && event.bin_country != event.country",
    { verdict: 'review', score: 25 },
  ),
  rule(
    'headless-browser',
    "event.channel == 'web' && (event.user_agent.contains('HeadlessChrome') || event.user_agent.contains('PhantomJS') || size(event.user_agent) == 0)",
    { verdict: 'reject', score: 70, tags: ['bot'] },
  ),
  rule('pos-foreign-card', "event.channel == 'pos' && event.bin_country != event.country", {
    verdict: 'challenge',
    score: 15,
    tags: ['pin'],
  }),
  rule(
    'round-amount',
    'event.amount >= 500.0 && double(int(event.amount)) == event.amount && int(event.amount) % 100 == 0',
    { score: 10 },
  ),
  rule(
    'channel-amount-threshold',
    "event.amount > (event.channel == 'app' ? 1500.0 : 4000.0) && event.account_age_days < 90",
    { verdict: 'review', score: 20 },
  ),
  rule('emulator-device', "event.device_id.startsWith('emu-') || size(event.device_id) < 8", {
    verdict: 'review',
    score: 35,
    tags: ['device'],
  }),
  rule(
    'shipping-mismatch',
    'has(event.shipping_country) && event.shipping_country != event.country && event.amount > 200.0',
    { score: 15 },
  ),
  rule('no-phone-high-amount', '!has(event.phone) && event.amount > 1000.0', {
    verdict: 'challenge',
    score: 10,
    tags: ['otp'],
  }),
  rule('risky-recent-country', "event.recent_countries.exists(c, c in ['NG', 'KP', 'IR', 'RU'])", {
    score: 20,
  }),
  rule(
    'country-hopping',
    'size(event.recent_countries) >= 3 && !event.recent_countries.exists(c, c == event.country)',
    { verdict: 'review', score: 30 },
  ),
  // Rules that read features.
  rule('velocity-1h', 'features.txn_count_1h > 10', { verdict: 'review', score: 30, tags: ['velocity'] }),
  rule('card-testing', 'features.distinct_cards_24h >= 4 && event.amount < 5.0', {
    verdict: 'reject',
    score: 80,
    tags: ['card_testing'],
  }),
  rule('spend-24h', 'features.amount_sum_24h + event.amount > 10000.0 && event.account_age_days < 180', {
    verdict: 'review',
    score: 25,
  }),
  rule(
    'amount-spike',
    'features.txn_count_24h >= 3 && event.amount > 4.0 * (features.amount_sum_24h / double(features.txn_count_24h))',
    { score: 20 },
  ),
  rule(
    'velocity-per-account-day',
    'features.txn_count_24h / event.account_age_days >= 5 || features.txn_count_1h * 2 + event.failed_logins_1h * 3 > 30',
    { verdict: 'review', score: 25, tags: ['velocity'] },
  ),
];

/** True when a rule reads `features.*`. */
export const readsFeatures = (candidate) => /\bfeatures\./.test(candidate.when);

/** The policy of the in-process benchmark (all 30 rules). */
export const referencePolicy = { strategy: 'worst', on_missing: 'not_hit', rules };

/** The policy of the HTTP run without features or lists: the rules that read no feature. */
export const httpPolicy = {
  strategy: 'worst',
  on_missing: 'not_hit',
  rules: rules.filter((candidate) => !readsFeatures(candidate)),
};

// ---------------------------------------------------------------------------------------------
// The full reference configuration of the HTTP benchmark (issue 4): 8 features, 3 lists, and the
// 30 rules plus the 2 rules that read the lists.

/**
 * The 8 features of the `payment` event type (`PUT /v1/manage/features/:name`), keyed by account,
 * card, IP and device, over windows from 1 min to 24 h. The first four are the ones the rules read
 * (`featureTypes`: count and distinct are CEL ints, sum a double). The other four are read by no
 * rule, as is common for features kept for explanations and backtests; the server updates and reads
 * every feature of an event type whether or not a policy reads it (docs/FEATURES.md).
 */
export const featureDefinitions = {
  txn_count_1h: {
    aggregation: 'count',
    by: ['account_id'],
    window: '1h',
    event_types: ['payment'],
    description: 'Payments of the account in the last hour, this one included',
  },
  txn_count_24h: {
    aggregation: 'count',
    by: ['account_id'],
    window: '24h',
    event_types: ['payment'],
    description: 'Payments of the account in the last 24 hours',
  },
  amount_sum_24h: {
    aggregation: 'sum',
    field: 'amount',
    by: ['account_id'],
    window: '24h',
    event_types: ['payment'],
    description: 'Amount the account paid in the last 24 hours',
  },
  distinct_cards_24h: {
    aggregation: 'distinct',
    field: 'card_id',
    by: ['account_id'],
    window: '24h',
    event_types: ['payment'],
    description: 'Cards the account paid with in the last 24 hours (card testing)',
  },
  card_txn_count_10m: {
    aggregation: 'count',
    by: ['card_id'],
    window: '10m',
    event_types: ['payment'],
    description: 'Payments with the card in the last 10 minutes',
  },
  ip_txn_count_1m: {
    aggregation: 'count',
    by: ['ip'],
    window: '1m',
    event_types: ['payment'],
    description: 'Payments from the IP address in the last minute',
  },
  accounts_per_ip_1h: {
    aggregation: 'distinct',
    field: 'account_id',
    by: ['ip'],
    window: '1h',
    event_types: ['payment'],
    description: 'Accounts that paid from the IP address in the last hour',
  },
  accounts_per_device_24h: {
    aggregation: 'distinct',
    field: 'account_id',
    by: ['device_id'],
    window: '24h',
    event_types: ['payment'],
    description: 'Accounts that paid from the device in the last 24 hours (account farming)',
  },
};

/** The 3 lists (`PUT /v1/manage/lists/:name`); `bench/run.mjs` fills them through the bulk import. */
export const listDefinitions = {
  blocked_ips: {
    kind: 'block',
    type: 'ip',
    description: 'Addresses and CIDR ranges of known fraud: proxies, Tor exits, hosting ranges',
  },
  blocked_devices_emails: {
    kind: 'block',
    type: 'string',
    description: 'Device ids and e-mail addresses of confirmed fraud',
  },
  allowed_accounts: {
    kind: 'allow',
    type: 'account',
    description: 'Vetted accounts (corporate, VIP) that the block lists do not stop',
  },
};

/** The rules that read the lists: a block list hit rejects, unless the account is allow-listed. */
export const listRules = [
  rule('blocked-ip', "in_list('blocked_ips', event.ip) && !in_list('allowed_accounts', event.account_id)", {
    verdict: 'reject',
    score: 90,
    tags: ['blocklist'],
  }),
  rule(
    'blocked-device-or-email',
    "(in_list('blocked_devices_emails', event.device_id) || in_list('blocked_devices_emails', event.email)) && !in_list('allowed_accounts', event.account_id)",
    { verdict: 'reject', score: 90, tags: ['blocklist'] },
  ),
];

/** The policy of the full HTTP configuration: the 30 rules, then the 2 list rules. */
export const fullHttpPolicy = { strategy: 'worst', on_missing: 'not_hit', rules: [...rules, ...listRules] };

// ---------------------------------------------------------------------------------------------
// Events

/** mulberry32: a small, fast, seeded PRNG; `next()` is uniform in [0, 1). */
export function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A weighted choice: `table` is [[value, weight], ...]. */
function weighted(random, table) {
  const total = table.reduce((sum, [, weight]) => sum + weight, 0);
  let pick = random() * total;
  for (const [value, weight] of table) {
    pick -= weight;
    if (pick < 0) return value;
  }
  return table[table.length - 1][0];
}

const countries = [
  ['US', 30],
  ['GB', 10],
  ['FR', 8],
  ['DE', 8],
  ['ES', 4],
  ['IT', 4],
  ['NL', 3],
  ['CA', 3],
  ['BR', 5],
  ['IN', 5],
  ['JP', 2],
  ['CN', 2],
  ['NG', 3],
  ['GH', 1],
  ['PK', 2],
  ['VN', 2],
  ['ID', 2],
  ['RO', 2],
  ['UA', 2],
  ['RU', 2],
  ['IR', 0.3],
  ['KP', 0.1],
  ['CU', 0.1],
];
const localCurrency = { US: 'USD', GB: 'GBP', CA: 'CAD', BR: 'BRL', IN: 'INR', JP: 'JPY', CN: 'CNY' };
const euro = new Set(['FR', 'DE', 'ES', 'IT', 'NL']);
const currencies = ['USD', 'EUR', 'GBP', 'CAD', 'BRL', 'INR', 'JPY', 'CNY', 'NGN', 'RUB'];
const emailDomains = [
  ['gmail.com', 40],
  ['yahoo.com', 12],
  ['outlook.com', 12],
  ['icloud.com', 8],
  ['proton.me', 3],
  ['example.org', 15],
  ['mailinator.com', 1.5],
  ['yopmail.com', 1],
  ['guerrillamail.com', 0.5],
  ['10minutemail.com', 0.5],
];
const merchantCategories = [
  ['5411', 25],
  ['5812', 15],
  ['5999', 15],
  ['5732', 10],
  ['4121', 8],
  ['5311', 8],
  ['4829', 3],
  ['6051', 2],
  ['7995', 3],
  ['7800', 0.5],
  ['7801', 0.5],
  ['7802', 0.5],
  ['5967', 2],
];
const userAgents = [
  [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    40,
  ],
  [
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    30,
  ],
  ['Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0', 20],
  ['VigilShopApp/4.2.1 (Android 14; Pixel 8)', 6],
  [
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.71 Safari/537.36',
    2,
  ],
  [
    'Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/534.34 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/534.34',
    0.5,
  ],
  ['', 1],
];
const hex = (random, length) => {
  let text = '';
  for (let index = 0; index < length; index += 1) text += Math.floor(random() * 16).toString(16);
  return text;
};
const int = (random, low, high) => low + Math.floor(random() * (high - low + 1));
/** Standard normal (Box–Muller). */
const normal = (random) => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
const cents = (value) => Math.round(value * 100) / 100;

/**
 * `count` payment events from `seed`, each `{ id, fields, features }` with JSON-like values (ints as
 * JS numbers, as a server gets them from a body). The same seed gives the same events.
 */
export function generateEvents(count, seed = 20261125) {
  const random = prng(seed);
  const chance = (p) => random() < p;
  const events = [];
  for (let index = 0; index < count; index += 1) {
    const country = weighted(random, countries);
    const binCountry = chance(0.86) ? country : weighted(random, countries);
    const currency = chance(0.012)
      ? weighted(random, [
          ['BTC', 1],
          ['ETH', 1],
          ['USDT', 2],
        ])
      : chance(0.06)
        ? currencies[int(random, 0, currencies.length - 1)]
        : euro.has(country)
          ? 'EUR'
          : (localCurrency[country] ?? 'USD');
    // Amounts: mostly everyday, a tail of large ones, a few tiny card tests and round figures.
    const kind = random();
    const amount =
      kind < 0.03
        ? cents(0.5 + random() * 4.49)
        : kind < 0.08
          ? int(random, 1, 60) * 100
          : kind < 0.9
            ? cents(Math.exp(3.8 + 1.1 * normal(random)))
            : cents(Math.min(60000, Math.exp(6.6 + 1.3 * normal(random))));
    const ageKind = random();
    const accountAgeDays =
      ageKind < 0.02
        ? 0
        : ageKind < 0.1
          ? int(random, 1, 6)
          : ageKind < 0.25
            ? int(random, 7, 89)
            : int(random, 90, 3650);
    const failedKind = random();
    const failedLogins1h =
      failedKind < 0.8
        ? 0
        : failedKind < 0.92
          ? 1
          : failedKind < 0.97
            ? int(random, 2, 4)
            : int(random, 5, 12);
    const isNewDevice = chance(0.12);
    const channel = weighted(random, [
      ['web', 55],
      ['app', 40],
      ['pos', 5],
    ]);
    const localPart = `${['jane', 'li', 'omar', 'ana', 'k', 'mike', 'sofia'][int(random, 0, 6)]}.${hex(random, 4)}`;
    const email = `${localPart}${chance(0.05) ? `+${hex(random, 3)}` : ''}@${weighted(random, emailDomains)}`;
    const ipKind = random();
    const ip =
      ipKind < 0.015
        ? `185.220.${int(random, 100, 103)}.${int(random, 1, 254)}`
        : ipKind < 0.02
          ? `171.25.193.${int(random, 1, 254)}`
          : `${int(random, 11, 223)}.${int(random, 0, 255)}.${int(random, 0, 255)}.${int(random, 1, 254)}`;
    const deviceKind = random();
    const deviceId =
      deviceKind < 0.02
        ? `emu-${hex(random, 12)}`
        : deviceKind < 0.03
          ? `d-${hex(random, 3)}`
          : `dev-${hex(random, 20)}`;
    const recentCountries = [];
    const recentCount = weighted(random, [
      [0, 15],
      [1, 45],
      [2, 20],
      [3, 12],
      [4, 5],
      [5, 3],
    ]);
    for (let item = 0; item < recentCount; item += 1) {
      const recent = item === 0 && chance(0.7) ? country : weighted(random, countries);
      if (!recentCountries.includes(recent)) recentCountries.push(recent);
    }
    const fields = {
      account_id: `acct-${String(int(random, 1, 2_000_000)).padStart(10, '0')}`,
      amount,
      currency,
      ip,
      device_id: deviceId,
      email,
      country,
      bin_country: binCountry,
      channel,
      account_age_days: accountAgeDays,
      is_new_device: isNewDevice,
      failed_logins_1h: failedLogins1h,
      email_verified: chance(0.85),
      merchant_category: weighted(random, merchantCategories),
      recent_countries: recentCountries,
      user_agent:
        channel === 'app' && chance(0.5) ? 'VigilShopApp/4.2.1 (iOS 17.5)' : weighted(random, userAgents),
      card_bin: String(int(random, 400000, 559999)),
      merchant_id: `m-${int(random, 1000, 9999)}`,
      session_id: `sess-${hex(random, 32)}`,
    };
    if (chance(0.6)) fields.shipping_country = chance(0.85) ? country : weighted(random, countries);
    if (chance(0.7)) fields.phone = `+${int(random, 1, 9)}${int(random, 100000000, 999999999)}`;
    // Features: mostly quiet accounts, a few bursts and card-testing runs.
    const burst = chance(0.04);
    const txnCount1h = burst
      ? int(random, 8, 30)
      : weighted(random, [
          [0, 50],
          [1, 30],
          [2, 12],
          [3, 8],
        ]);
    const txnCount24h = txnCount1h + (burst ? int(random, 0, 40) : int(random, 0, 8));
    let amountSum24h = 0;
    for (let item = 0; item < Math.min(txnCount24h, 12); item += 1) {
      amountSum24h += Math.exp(3.8 + 1.1 * normal(random));
    }
    amountSum24h = cents(amountSum24h * Math.max(1, txnCount24h / 12) + (chance(0.03) ? 9000 * random() : 0));
    const features = {
      txn_count_1h: txnCount1h,
      txn_count_24h: txnCount24h,
      amount_sum_24h: amountSum24h,
      // Card testing: many cards behind tiny amounts.
      distinct_cards_24h: chance(amount < 5 ? 0.3 : 0.04) ? int(random, 3, 8) : chance(0.2) ? 2 : 1,
    };
    events.push({ id: `evt-${String(index).padStart(6, '0')}`, fields, features });
  }
  return events;
}
