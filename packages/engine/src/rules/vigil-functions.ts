import { type FunctionDeclaration, overload } from './function-registry.js';
import {
  cidrContains,
  isPrivateAddress,
  type ParsedCidr,
  parseAddress,
  parseCidr,
} from './network-address.js';
import { floorDiv, zoneOffsetSeconds } from './time.js';
import { BOOL, DOUBLE, DYN, INT, objectType, STRING, TIMESTAMP } from './types.js';
import { CelError, type CelTimestamp } from './values.js';

/** Enrichment of an IP address, as returned by {@link RuleServices.ipInfo}. */
export interface IpInfo {
  /** ISO 3166-1 alpha-2 country code. */
  readonly country?: string;
  /** Autonomous system number. */
  readonly asn?: number;
  /** Whether the address belongs to a data centre or hosting provider. */
  readonly datacenter?: boolean;
  /** Whether the address is private or reserved; computed by Vigil when absent. */
  readonly private?: boolean;
}

/** A parsed user agent, as returned by {@link RuleServices.userAgent}. */
export interface UserAgentInfo {
  readonly browser?: string;
  readonly os?: string;
  /** `desktop`, `mobile`, `tablet`, `bot`, ... */
  readonly device?: string;
  readonly bot?: boolean;
}

/**
 * The services a rule's functions call at evaluation time, injected by the host. Build one object per
 * tenant (or per process) and pass it to every evaluation; functions must be synchronous and fast.
 */
export interface RuleServices {
  /** Whether a value is in a named list of the tenant (`in_list`). */
  inList(listName: string, value: unknown): boolean;
  /** Enrichment of an IP (`ip_info`); undefined when nothing is known. */
  ipInfo?(ip: string): IpInfo | undefined;
  /** Whether the email's domain is a disposable-mail provider (`is_disposable_email`). */
  isDisposableEmail?(email: string): boolean;
  /** ISO country code of a phone number (`phone_country`); undefined when unknown. */
  phoneCountry?(phone: string): string | undefined;
  /** A parsed user agent (`ua`). */
  userAgent?(userAgent: string): UserAgentInfo | undefined;
}

/** Services that know nothing: every list is empty and enrichment finds no data. */
export const EMPTY_RULE_SERVICES: RuleServices = { inList: () => false };

/** The type of `ip_info(ip)`: a map with these keys (a missing key is an error, test it with `has`). */
export const IP_INFO_TYPE = objectType('vigil.IpInfo', {
  country: STRING,
  asn: INT,
  datacenter: BOOL,
  private: BOOL,
});
/** The type of `ua(user_agent)`. */
export const USER_AGENT_TYPE = objectType('vigil.UserAgent', {
  browser: STRING,
  os: STRING,
  device: STRING,
  bot: BOOL,
});

const cidrCache = new Map<string, ParsedCidr | undefined>();

function cachedCidr(text: string): ParsedCidr | undefined {
  if (cidrCache.has(text)) return cidrCache.get(text);
  const parsed = parseCidr(text);
  // Bounded: CIDR texts may come from event data.
  if (cidrCache.size >= 10_000) cidrCache.clear();
  cidrCache.set(text, parsed);
  return parsed;
}

function cidrMatch(ip: string, cidr: string): boolean | CelError {
  const range = cachedCidr(cidr);
  if (range === undefined) return new CelError(`invalid CIDR '${cidr}'`);
  const address = parseAddress(ip);
  if (address === undefined) return new CelError(`invalid IP address '${ip}'`);
  return cidrContains(range, address);
}

function ipInfo(ip: string, services: RuleServices): Record<string, unknown> | CelError {
  const address = parseAddress(ip);
  if (address === undefined) return new CelError(`invalid IP address '${ip}'`);
  const info = services.ipInfo?.(ip);
  const result: Record<string, unknown> = { private: info?.private ?? isPrivateAddress(address) };
  if (info?.country !== undefined) result.country = info.country;
  if (info?.asn !== undefined) result.asn = BigInt(Math.trunc(info.asn));
  if (info?.datacenter !== undefined) result.datacenter = info.datacenter;
  return result;
}

function userAgent(text: string, services: RuleServices): Record<string, unknown> {
  const info = services.userAgent?.(text);
  const result: Record<string, unknown> = {};
  if (info?.browser !== undefined) result.browser = info.browser;
  if (info?.os !== undefined) result.os = info.os;
  if (info?.device !== undefined) result.device = info.device;
  if (info?.bot !== undefined) result.bot = info.bot;
  return result;
}

function emailDomain(email: string): string | CelError {
  const at = email.lastIndexOf('@');
  if (at < 1 || at === email.length - 1) return new CelError(`invalid email '${email}'`);
  return email.slice(at + 1).toLowerCase();
}

const HOURS = Array.from({ length: 24 }, (_, hour) => BigInt(hour));

/** The hour (0-23) of a timestamp in a zone, without building the whole calendar date. */
function hourOfDay(timestamp: CelTimestamp, zone: string): bigint | CelError {
  const seconds = Number(floorDiv(timestamp.nanos, 1_000_000_000n));
  const offset = zoneOffsetSeconds(zone, seconds);
  if (offset === undefined) return new CelError(`unknown time zone '${zone}'`);
  const secondOfDay = (((seconds + offset) % 86400) + 86400) % 86400;
  return HOURS[Math.floor(secondOfDay / 3600)] as bigint;
}

const EARTH_RADIUS_KM = 6371.0088;

/** Great-circle distance in kilometres between two points given in degrees. */
export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const toRadians = Math.PI / 180;
  const deltaLat = (lat2 - lat1) * toRadians;
  const deltaLon = (lon2 - lon1) * toRadians;
  const a =
    Math.sin(deltaLat / 2) ** 2 +
    Math.cos(lat1 * toRadians) * Math.cos(lat2 * toRadians) * Math.sin(deltaLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/**
 * Vigil's functions (SPEC §2). `in_list`, `ip_info`, `is_disposable_email`, `phone_country` and `ua`
 * call the {@link RuleServices} given to each evaluation.
 */
export function vigilFunctions(): FunctionDeclaration[] {
  return [
    {
      name: 'in_list',
      overloads: [
        overload(
          'in_list_string_dyn',
          [STRING, DYN],
          BOOL,
          (listName: string, value: unknown, services: RuleServices) => services.inList(listName, value),
          {
            usesServices: true,
            validate: ([listName], lists) =>
              typeof listName === 'string' && !lists.has(listName) ? `unknown list '${listName}'` : undefined,
          },
        ),
      ],
    },
    {
      name: 'cidr_match',
      overloads: [
        overload('cidr_match_string_string', [STRING, STRING], BOOL, cidrMatch, {
          validate: ([, cidr]) =>
            typeof cidr === 'string' && cachedCidr(cidr) === undefined ? `invalid CIDR '${cidr}'` : undefined,
        }),
      ],
    },
    {
      name: 'ip_info',
      overloads: [overload('ip_info_string', [STRING], IP_INFO_TYPE, ipInfo, { usesServices: true })],
    },
    { name: 'email_domain', overloads: [overload('email_domain_string', [STRING], STRING, emailDomain)] },
    {
      name: 'is_disposable_email',
      overloads: [
        overload(
          'is_disposable_email_string',
          [STRING],
          BOOL,
          (email: string, services: RuleServices) => services.isDisposableEmail?.(email) ?? false,
          { usesServices: true },
        ),
      ],
    },
    {
      name: 'phone_country',
      overloads: [
        overload(
          'phone_country_string',
          [STRING],
          STRING,
          (phone: string, services: RuleServices) => services.phoneCountry?.(phone) ?? '',
          { usesServices: true },
        ),
      ],
    },
    {
      name: 'ua',
      overloads: [overload('ua_string', [STRING], USER_AGENT_TYPE, userAgent, { usesServices: true })],
    },
    {
      name: 'hour_of_day',
      overloads: [overload('hour_of_day_timestamp_string', [TIMESTAMP, STRING], INT, hourOfDay)],
    },
    {
      name: 'haversine_km',
      overloads: [overload('haversine_km_double', [DOUBLE, DOUBLE, DOUBLE, DOUBLE], DOUBLE, haversineKm)],
    },
  ];
}
