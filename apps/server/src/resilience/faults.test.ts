import { describe, expect, it } from 'vitest';
import { FaultInjector, faultView, parseFaultsSetting } from './faults.js';

function clock(start = Date.parse('2026-11-24T12:00:00Z')) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('fault injector', () => {
  it('is inactive until a fault is added, and applies a fault to its component only', () => {
    const injector = new FaultInjector();
    expect(injector.active).toBe(false);
    expect(injector.check('counter_store', 't_a')).toBeUndefined();
    const fault = injector.add({ component: 'counter_store', kind: 'outage', duration_seconds: 60 });
    expect(injector.active).toBe(true);
    expect(injector.check('counter_store', 't_a')).toBe(fault);
    expect(injector.check('counter_store', null)).toBe(fault);
    expect(injector.check('list_store', 't_a')).toBeUndefined();
  });

  it('scopes a fault to one tenant; calls of no tenant see only global faults', () => {
    const injector = new FaultInjector();
    injector.add({ component: 'list_store', kind: 'error', tenant: 't_a', duration_seconds: 60 });
    expect(injector.check('list_store', 't_a')?.kind).toBe('error');
    expect(injector.check('list_store', 't_b')).toBeUndefined();
    expect(injector.check('list_store', null)).toBeUndefined();
  });

  it('expires faults by time, without timers, and becomes inactive again', () => {
    const time = clock();
    const injector = new FaultInjector({ now: time.now });
    injector.add({ component: 'config_store', kind: 'outage', duration_seconds: 1 });
    const longer = injector.add({ component: 'decision_log', kind: 'outage', duration_seconds: 5 });
    time.advance(999);
    expect(injector.check('config_store', null)).toBeDefined();
    time.advance(1);
    expect(injector.check('config_store', null)).toBeUndefined();
    expect(injector.list()).toEqual([longer]);
    expect(injector.active).toBe(true);
    time.advance(4000);
    expect(injector.count('decision_log')).toBe(0);
    expect(injector.active).toBe(false);
  });

  it('affects the given share of calls', () => {
    const draws = [0.1, 0.6, 0.29, 0.3];
    const injector = new FaultInjector({ random: () => draws.shift() ?? 1 });
    injector.add({ component: 'external_data', kind: 'error', rate: 0.3, duration_seconds: 60 });
    const affected = [0, 1, 2, 3].map(() => injector.check('external_data', 't_a') !== undefined);
    expect(affected).toEqual([true, false, true, false]);
  });

  it('removes a fault by id once', () => {
    const injector = new FaultInjector();
    const fault = injector.add({
      component: 'counter_store',
      kind: 'latency',
      latency_ms: 50,
      duration_seconds: 60,
    });
    expect(injector.remove('flt_unknown')).toBeUndefined();
    expect(injector.remove(fault.id)).toBe(fault);
    expect(injector.remove(fault.id)).toBeUndefined();
    expect(injector.active).toBe(false);
  });

  it('shows a fault with its fields, creation and expiry', () => {
    const time = clock();
    const injector = new FaultInjector({ now: time.now });
    const fault = injector.add({
      component: 'counter_store',
      kind: 'latency',
      latency_ms: 250,
      rate: 0.5,
      tenant: 't_a',
      duration_seconds: 90,
    });
    expect(fault.id).toMatch(/^flt_[A-Za-z0-9]+$/);
    expect(faultView(fault)).toEqual({
      id: fault.id,
      component: 'counter_store',
      kind: 'latency',
      latency_ms: 250,
      rate: 0.5,
      tenant: 't_a',
      duration_seconds: 90,
      created_at: '2026-11-24T12:00:00.000Z',
      expires_at: '2026-11-24T12:01:30.000Z',
    });
  });
});

describe('VIGIL_FAULTS', () => {
  it('parses an array of fault bodies', () => {
    expect(parseFaultsSetting('[]')).toEqual([]);
    expect(
      parseFaultsSetting(
        '[{"component":"list_store","kind":"latency","latency_ms":5,"duration_seconds":30}]',
      ),
    ).toEqual([{ component: 'list_store', kind: 'latency', latency_ms: 5, duration_seconds: 30 }]);
  });

  it('refuses what is not JSON, not an array, or not valid fault bodies, naming the setting', () => {
    expect(() => parseFaultsSetting('[{')).toThrow(/VIGIL_FAULTS is not JSON/);
    expect(() => parseFaultsSetting('{"component":"list_store"}')).toThrow(
      /VIGIL_FAULTS must be a JSON array/,
    );
    expect(() => parseFaultsSetting('[{"component":"disk","kind":"outage","duration_seconds":5}]')).toThrow(
      /VIGIL_FAULTS \[0\]\.component/,
    );
    expect(() => parseFaultsSetting('[{"component":"list_store","kind":"outage"}]')).toThrow(
      /duration_seconds/,
    );
    expect(() =>
      parseFaultsSetting('[{"component":"list_store","kind":"latency","duration_seconds":5}]'),
    ).toThrow(/\[0\]\.latency_ms is required for a latency fault/);
  });
});
