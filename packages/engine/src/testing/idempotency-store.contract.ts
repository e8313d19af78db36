import type { DecisionResponse } from '@vigil/protocol';
import { describe, expect, it, vi } from 'vitest';
import type { IdempotencyStore } from '../ports/idempotency-store.js';

/** Two handles on the same ids, each holding claims of its own (two nodes on one store). */
export interface IdempotencyStorePair {
  readonly a: IdempotencyStore;
  readonly b: IdempotencyStore;
  /** Releases what the pair holds (a network adapter's keys); nothing by default. */
  readonly close?: () => Promise<void>;
}

const day = 24 * 60 * 60 * 1000;
/** Long enough that no marker expires during a test that does not wait for it. */
const pendingMs = 60_000;

/** A decision answer as the service stores it. */
export function sampleResponse(eventId: string, decisionId = `dec-${eventId}`): DecisionResponse {
  return {
    decision_id: decisionId,
    event_id: eventId,
    verdict: 'review',
    score: 55,
    rules: [
      { id: 'r-new-device', name: 'New device ✓ «ünïcode»', verdict: 'review', score: 30, reason: 'new' },
    ],
    tags: ['new_device'],
    policy_version: 7,
    degraded: [],
    errors: [],
    latency_ms: 0.812,
  };
}

/**
 * The contract every `IdempotencyStore` adapter must meet (the port's TSDoc). `open` returns two
 * fresh handles on one empty store. Expiry is checked on the store's own clock, with short TTLs
 * waited out (a TTL in Redis runs on the server's clock), never by asserting how long it took.
 */
export function idempotencyStoreContract(name: string, open: () => Promise<IdempotencyStorePair>): void {
  const withPair = async (test: (pair: IdempotencyStorePair) => Promise<void>) => {
    const pair = await open();
    try {
      await test(pair);
    } finally {
      await pair.close?.();
    }
  };

  describe(`IdempotencyStore contract: ${name}`, () => {
    it('lets one caller claim an id; every other claim sees it pending', () =>
      withPair(async ({ a, b }) => {
        expect(await a.claim('t1', 'decision', 'e1', pendingMs)).toEqual({ state: 'claimed' });
        expect(await a.claim('t1', 'decision', 'e1', pendingMs)).toEqual({ state: 'pending' });
        expect(await b.claim('t1', 'decision', 'e1', pendingMs)).toEqual({ state: 'pending' });
      }));

    it('answers a completed id with the first answer, exactly, on every handle', () =>
      withPair(async ({ a, b }) => {
        await a.claim('t1', 'decision', 'e1', pendingMs);
        const response = sampleResponse('e1');
        await a.complete('t1', 'decision', 'e1', response, day);
        for (const handle of [a, b]) {
          const claim = await handle.claim('t1', 'decision', 'e1', pendingMs);
          expect(claim).toEqual({ state: 'done', response });
        }
        // A second completion (a duplicate decided while the store was away) replaces nothing that matters:
        // the id stays done.
        await b.complete('t1', 'decision', 'e1', sampleResponse('e1', 'dec-other'), day);
        expect((await a.claim('t1', 'decision', 'e1', pendingMs)).state).toBe('done');
      }));

    it('completes a reported event with no answer', () =>
      withPair(async ({ a, b }) => {
        expect(await a.claim('t1', 'event', 'e1', pendingMs)).toEqual({ state: 'claimed' });
        await a.complete('t1', 'event', 'e1', null, day);
        expect(await b.claim('t1', 'event', 'e1', pendingMs)).toEqual({ state: 'done', response: null });
      }));

    it('keeps tenants and kinds apart', () =>
      withPair(async ({ a, b }) => {
        await a.claim('t1', 'decision', 'e1', pendingMs);
        await a.complete('t1', 'decision', 'e1', sampleResponse('e1'), day);
        expect(await b.claim('t2', 'decision', 'e1', pendingMs)).toEqual({ state: 'claimed' });
        expect(await b.claim('t1', 'event', 'e1', pendingMs)).toEqual({ state: 'claimed' });
        // Ids that would collide if keys were joined naively.
        expect(await a.claim('t1', 'decision', 'x:y', pendingMs)).toEqual({ state: 'claimed' });
        expect(await a.claim('t1:x', 'decision', 'y', pendingMs)).toEqual({ state: 'claimed' });
      }));

    it('keeps ids with any characters apart and intact', () =>
      withPair(async ({ a, b }) => {
        const ids = ['{tag}', '}{', 'a\u0000b', 'a', 'é✓🙂', 'x'.repeat(256), ' ', 'e1:decision'];
        for (const id of ids)
          expect(await a.claim('t1', 'decision', id, pendingMs)).toEqual({ state: 'claimed' });
        for (const id of ids) await a.complete('t1', 'decision', id, sampleResponse(id), day);
        for (const id of ids)
          expect(await b.claim('t1', 'decision', id, pendingMs)).toEqual({
            state: 'done',
            response: sampleResponse(id),
          });
      }));

    it('gives exactly one of many concurrent claims on two handles', () =>
      withPair(async ({ a, b }) => {
        const claims = await Promise.all(
          Array.from({ length: 20 }, (_, index) =>
            (index % 2 === 0 ? a : b).claim('t1', 'decision', 'race', pendingMs),
          ),
        );
        expect(claims.filter((claim) => claim.state === 'claimed')).toHaveLength(1);
        expect(claims.filter((claim) => claim.state === 'pending')).toHaveLength(19);
      }));

    it('releases only the holder’s pending marker, never an answer', () =>
      withPair(async ({ a, b }) => {
        await a.claim('t1', 'decision', 'e1', pendingMs);
        await b.release('t1', 'decision', 'e1');
        expect(await b.claim('t1', 'decision', 'e1', pendingMs)).toEqual({ state: 'pending' });
        await a.release('t1', 'decision', 'e1');
        expect(await b.claim('t1', 'decision', 'e1', pendingMs)).toEqual({ state: 'claimed' });
        await b.complete('t1', 'decision', 'e1', sampleResponse('e1'), day);
        await b.release('t1', 'decision', 'e1');
        expect((await a.claim('t1', 'decision', 'e1', pendingMs)).state).toBe('done');
        // Releasing an id nobody holds is harmless.
        await a.release('t1', 'decision', 'never-claimed');
      }));

    it('lets another caller claim an id whose pending marker expired', () =>
      withPair(async ({ a, b }) => {
        expect(await a.claim('t1', 'decision', 'dies', 30)).toEqual({ state: 'claimed' });
        await vi.waitFor(
          async () =>
            expect(await b.claim('t1', 'decision', 'dies', pendingMs)).toEqual({ state: 'claimed' }),
          { timeout: 5000, interval: 20 },
        );
        // The first holder's late release does not free the new holder's claim.
        await a.release('t1', 'decision', 'dies');
        expect(await a.claim('t1', 'decision', 'dies', pendingMs)).toEqual({ state: 'pending' });
      }));

    it('forgets an answer after its time to live', () =>
      withPair(async ({ a }) => {
        await a.claim('t1', 'decision', 'old', pendingMs);
        await a.complete('t1', 'decision', 'old', sampleResponse('old'), 40);
        await vi.waitFor(
          async () => expect(await a.claim('t1', 'decision', 'old', pendingMs)).toEqual({ state: 'claimed' }),
          { timeout: 5000, interval: 20 },
        );
      }));
  });
}
