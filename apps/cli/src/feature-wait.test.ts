import { describe, expect, it } from 'vitest';
import { featureLine } from './feature-wait.js';

describe('featureLine', () => {
  it('draws a bar with the share and the events replayed while backfilling', () => {
    expect(
      featureLine(
        { name: 'logins_1h', status: 'backfilling', backfill: { progress: 0.5, events_replayed: 1200 } },
        10,
      ),
    ).toBe('logins_1h: backfilling [#####.....] 50.0% (1200 events)');
  });

  it('shows the status alone once the backfill is over', () => {
    expect(featureLine({ name: 'logins_1h', status: 'ready' })).toBe('logins_1h: ready');
    expect(featureLine({ name: 'logins_1h', status: 'failed' })).toBe('logins_1h: failed');
  });
});
