import type { DecisionResponse } from '@vigil/protocol';

/** The two id spaces of event ids: decisions (`/v1/decisions`) and reported events (`/v1/events`). */
export type IdempotencyKind = 'decision' | 'event';

/**
 * What {@link IdempotencyStore.claim} found:
 * - `claimed`: nobody held the id; this caller now holds it (a pending marker) and decides.
 * - `pending`: another caller (another node) holds it and has not completed yet.
 * - `done`: the id was completed; `response` is the first answer (null for a reported event).
 */
export type IdempotencyClaim =
  | { readonly state: 'claimed' }
  | { readonly state: 'pending' }
  | { readonly state: 'done'; readonly response: DecisionResponse | null };

/**
 * Event ids seen per tenant, shared by every node that serves the tenant, so that the same event
 * id is decided once whichever node gets it (SPEC §3: "The same `id` of the same tenant within
 * 24 h returns the first decision again and is not counted twice").
 *
 * Protocol: `claim` first. `claimed`: decide, make the record durable, then `complete` with the
 * answer (the caller need not wait for it: the record is already in the decision log); if the
 * decision fails, `release`. `pending`: another caller is deciding; ask again (`claim`) until
 * `done`, or `claimed` if the other caller released or its marker expired.
 *
 * Methods reject when the store cannot answer (network, timeout); callers fall back to what they
 * know locally. Keys are per tenant, kind and event id: tenants and kinds never see each other's.
 */
export interface IdempotencyStore {
  /**
   * One round trip: takes the id if nobody holds it, with a pending marker that lives `pendingTtlMs`
   * (so a caller that dies while deciding blocks the id only that long), or says who has it.
   */
  claim(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    pendingTtlMs: number,
  ): Promise<IdempotencyClaim>;
  /**
   * Stores the answer for `ttlMs` (the idempotency window), replacing the pending marker. Written
   * whether or not this caller still holds the marker: the answer is the decision's, made once.
   */
  complete(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    response: DecisionResponse | null,
    ttlMs: number,
  ): Promise<void>;
  /** Gives up a claim whose decision failed: removes this caller's pending marker, nothing else. */
  release(tenantId: string, kind: IdempotencyKind, eventId: string): Promise<void>;
}
