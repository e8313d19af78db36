import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import type { ConfigRegistry } from '@vigil/engine';
import { type Scope, VigilError } from '@vigil/protocol';
import { digestsEqual, type SecretBox, sha256 } from './secrets.js';

/** Who is calling: the platform operator, or one tenant's API key. */
export type Principal =
  | { kind: 'admin' }
  | { kind: 'key'; tenantId: string; keyId: string; scopes: readonly Scope[] };

/** How far a signed request's timestamp may be from the node's clock, either way. */
export const signatureWindowSeconds = 300;

/**
 * Remembers the signatures seen in the signature window, so a signed request cannot be replayed.
 * Insertion order is time order, so expiry only looks at the front.
 */
export class ReplayGuard {
  readonly #seen = new Map<string, number>();

  constructor(
    private readonly maxEntries = 2_000_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** True the first time a signature is seen within the window; false for a replay. */
  firstUse(signature: string): boolean {
    const now = this.now();
    for (const [seen, expiresAt] of this.#seen) {
      if (expiresAt > now && this.#seen.size < this.maxEntries) break;
      this.#seen.delete(seen);
    }
    if (this.#seen.has(signature)) return false;
    this.#seen.set(signature, now + 2 * signatureWindowSeconds * 1000);
    return true;
  }
}

/** Remembers signatures used in the signature window; a shared one answers asynchronously. */
export interface SignatureReplays {
  firstUse(signature: string): boolean | Promise<boolean>;
}

/**
 * A shared replay guard (Redis) with this node's own in front: a replay to this node is refused
 * without a round trip, and while the shared store is unreachable the node still refuses replays
 * it saw itself (a replay to another node then passes; docs/SCALE-OUT.md).
 */
export class LayeredReplayGuard implements SignatureReplays {
  constructor(
    private readonly local: ReplayGuard,
    private readonly shared: { firstUse(signature: string): Promise<boolean> },
    private readonly onSharedFailure: (error: unknown) => void = () => {},
  ) {}

  firstUse(signature: string): boolean | Promise<boolean> {
    if (!this.local.firstUse(signature)) return false;
    return this.shared.firstUse(signature).catch((error: unknown) => {
      this.onSharedFailure(error);
      return true;
    });
  }
}

export class Authenticator {
  readonly #unsealed = new Map<string, string>();
  readonly #hashes = new Map<string, { hex: string; bytes: Buffer }>();

  constructor(
    private readonly registry: ConfigRegistry,
    private readonly adminTokenHash: string,
    private readonly secrets: SecretBox,
    private readonly replays: SignatureReplays,
    private readonly now: () => number = Date.now,
  ) {}

  /** Checks an `Authorization` header value for the admin token. */
  admin(authorization: string | undefined): Principal {
    const token = bearerToken(authorization);
    if (!digestsEqual(sha256(token), this.adminTokenHash)) throw new VigilError('invalid_credentials');
    return { kind: 'admin' };
  }

  /** Checks an `Authorization: Bearer <key_id>.<secret>` header for an active API key. */
  bearer(authorization: string | undefined): Principal {
    const token = bearerToken(authorization);
    const dot = token.indexOf('.');
    const key = dot > 0 ? this.registry.activeKey(token.slice(0, dot)) : undefined;
    // Hash even when the key is unknown, so timing does not tell which key ids exist.
    // The one-shot hash's hex output, then decoded: about 0.95 µs, against 1.7 µs for its 'buffer'
    // output, which allocates through a slower path in Node 20.
    const presented = Buffer.from(hash('sha256', token.slice(dot + 1)), 'hex');
    if (key === undefined || !digestBytesEqual(presented, this.#storedHash(key.id, key.secretHash)))
      throw new VigilError('invalid_credentials');
    return { kind: 'key', tenantId: key.tenantId, keyId: key.id, scopes: key.scopes };
  }

  /** Checks a signed request: key id, timestamp within the window, HMAC over `timestamp.body`, first use. */
  signed(
    keyId: string,
    timestamp: string | undefined,
    signature: string | undefined,
    body: Buffer,
  ): Principal | Promise<Principal> {
    const key = this.registry.activeKey(keyId);
    if (key === undefined || timestamp === undefined || signature === undefined) {
      throw new VigilError('invalid_credentials');
    }
    const seconds = /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : Number.NaN;
    if (!(Math.abs(this.now() / 1000 - seconds) <= signatureWindowSeconds))
      throw new VigilError('signature_expired');
    let secret = this.#unsealed.get(key.id);
    if (secret === undefined) {
      secret = this.secrets.open(key.sealedSecret);
      this.#unsealed.set(key.id, secret);
    }
    const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
    const presented = /^[0-9a-fA-F]{64}$/.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      throw new VigilError('invalid_credentials');
    }
    const principal: Principal = { kind: 'key', tenantId: key.tenantId, keyId: key.id, scopes: key.scopes };
    const first = this.replays.firstUse(`${key.id}:${signature.toLowerCase()}`);
    if (first === true) return principal;
    if (first === false) throw new VigilError('signature_replayed');
    return first.then((isFirst) => {
      if (!isFirst) throw new VigilError('signature_replayed');
      return principal;
    });
  }

  /** Forgets a cached secret when its key changes. */
  forget(keyId: string): void {
    this.#unsealed.delete(keyId);
    this.#hashes.delete(keyId);
  }

  /** A key's stored SHA-256 as bytes, decoded once per key rather than per request. */
  #storedHash(keyId: string, hex: string): Buffer {
    let hash = this.#hashes.get(keyId);
    if (hash === undefined || hash.hex !== hex) {
      hash = { hex, bytes: Buffer.from(hex, 'hex') };
      this.#hashes.set(keyId, hash);
    }
    return hash.bytes;
  }
}

/** Constant-time equality of two SHA-256 digests. */
function digestBytesEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

function bearerToken(authorization: string | undefined): string {
  if (authorization === undefined) throw new VigilError('missing_credentials');
  const match = /^Bearer +(\S{1,512})$/i.exec(authorization);
  if (match === null) throw new VigilError('invalid_credentials');
  return match[1] as string;
}

export function requireScope(principal: Principal, scope: Scope): void {
  if (principal.kind === 'key' && !principal.scopes.includes(scope)) {
    throw new VigilError('insufficient_scope', { message: `This route needs the '${scope}' scope.` });
  }
}
