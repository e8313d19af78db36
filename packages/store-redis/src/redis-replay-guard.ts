import type { RedisClient } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';

/**
 * The replay check of signed requests, shared by all nodes. `apps/server`'s in-process
 * `ReplayGuard.firstUse` is synchronous; a shared guard needs a round trip, so the authenticator
 * is to accept this shape (docs/SCALE-OUT.md describes the wiring).
 */
export interface AsyncReplayGuard {
  /** True the first time a signature is seen within the window; false for a replay. */
  firstUse(signature: string): Promise<boolean>;
}

export interface RedisReplayGuardOptions {
  /** Prefix of every key (default `vigil:`). */
  keyPrefix?: string;
  /**
   * How long a signature is remembered, ms (default 600,000: the ±300 s a timestamp may be off,
   * so a request cannot be replayed while its timestamp is still accepted).
   */
  windowMs?: number;
}

/**
 * Signed-request nonces in Redis: `SET <prefix>nonce:<signature> 1 NX PX <window>`, one command
 * per signed request; the first node to set it wins, every later use on any node is a replay.
 * Fails with {@link RedisUnavailableError} when Redis does not answer in the client's command
 * timeout; the caller decides whether to fall back to its local guard.
 */
export class RedisReplayGuard implements AsyncReplayGuard {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #windowMs: number;

  constructor(client: RedisClient, options: RedisReplayGuardOptions = {}) {
    this.#client = client;
    this.#prefix = `${options.keyPrefix ?? 'vigil:'}nonce:`;
    this.#windowMs = options.windowMs ?? 600_000;
  }

  firstUse(signature: string): Promise<boolean> {
    return this.#client
      .set(this.#prefix + signature, '1', 'PX', this.#windowMs, 'NX')
      .then(isFirst, unavailable);
  }
}

function isFirst(reply: string | null): boolean {
  return reply === 'OK';
}

function unavailable(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  throw new RedisUnavailableError(`Redis replay guard: ${message}`, { cause: error });
}
