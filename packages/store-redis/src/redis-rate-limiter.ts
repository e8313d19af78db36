import type { RedisClient } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';

export interface RedisRateLimiterOptions {
  /** Prefix of every key (default `vigil:`); must not contain `{` or `}`. */
  keyPrefix?: string;
  /** Wall clock sent to the script, ms since the epoch (default `Date.now`); tests inject one. */
  now?: () => number;
}

/** What one {@link RedisRateLimiter.take} got. */
export interface RateGrant {
  /** Whole tokens taken from the tenant's shared bucket, 0..want. */
  readonly granted: number;
  /** Tokens left in the shared bucket after the take (fractional). */
  readonly remaining: number;
}

/**
 * A token bucket per tenant: `t` tokens as of `a` (ms). It refills at `rps` from the newest time any
 * node sent, so a node whose clock runs behind adds nothing and none adds twice; it grants whole
 * tokens only, up to `want`, and never goes below zero. The key lives until a full refill.
 */
const takeScript = `
local rps = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rps / 1000)
  at = now
end
local granted = math.floor(math.min(want, tokens))
if granted < 0 then granted = 0 end
tokens = tokens - granted
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rps) + 1000)
return {granted, tostring(tokens)}`;

type TakeCommand = (
  key: string,
  rps: number,
  burst: number,
  want: number,
  now: number,
) => Promise<[number, string]>;

/**
 * Per-tenant rate limits shared by every node (docs/SCALE-OUT.md, "Rate limits"): one token bucket
 * per tenant in Redis, in the key `<prefix>rate:{t<tenant>}` (its own hash tag), taken from by a Lua
 * script. Nodes do not call it per request: they lease tokens in small batches and admit from their
 * local share (`SharedRateLimit` in apps/server). Failures reject with {@link RedisUnavailableError}.
 */
export class RedisRateLimiter {
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #take: TakeCommand;

  constructor(client: RedisClient, options: RedisRateLimiterOptions = {}) {
    this.#prefix = `${options.keyPrefix ?? 'vigil:'}rate:`;
    this.#now = options.now ?? Date.now;
    const commands = client as unknown as Record<string, unknown>;
    if (typeof commands.vigilRateTake !== 'function')
      client.defineCommand('vigilRateTake', { numberOfKeys: 1, lua: takeScript });
    this.#take = (commands.vigilRateTake as TakeCommand).bind(client);
  }

  /** Takes up to `want` whole tokens from the tenant's bucket of `rps` per second and size `burst`. */
  take(tenantId: string, rps: number, burst: number, want: number): Promise<RateGrant> {
    if (!(rps > 0)) return Promise.resolve({ granted: want, remaining: burst });
    return this.#take(
      `${this.#prefix}{t${tenantId}}`,
      rps,
      burst,
      Math.max(0, Math.floor(want)),
      this.#now(),
    ).then(
      ([granted, remaining]) => ({ granted: Number(granted), remaining: Number(remaining) }),
      unavailable,
    );
  }
}

function unavailable(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  throw new RedisUnavailableError(`Redis rate limiter: ${message}`, { cause: error });
}
