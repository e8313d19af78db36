import type {
  ConfigStore,
  DecisionContext,
  DecisionLog,
  DecisionRecord,
  DecisionStage,
  ListStore,
  LocalListIndex,
} from '@vigil/engine';
import type { EnrichmentServices } from '@vigil/enrichment';
import type { ComponentGuard } from './component-guard.js';

type Method = (...args: unknown[]) => unknown;

/** Every method of an object, own and inherited (classes keep theirs on the prototype). */
function methodsOf(target: object): Map<string, Method> {
  const methods = new Map<string, Method>();
  for (let source: object | null = target; source !== null && source !== Object.prototype; ) {
    for (const name of Object.getOwnPropertyNames(source)) {
      const descriptor = Object.getOwnPropertyDescriptor(source, name);
      if (name !== 'constructor' && !methods.has(name) && typeof descriptor?.value === 'function')
        methods.set(name, descriptor.value as Method);
    }
    source = Object.getPrototypeOf(source) as object | null;
  }
  return methods;
}

/**
 * The tenant a port call belongs to: a first argument that is a string (the ports take `tenantId`
 * first), else the `tenantId` of an object argument (a definition, a query, an audit entry).
 */
function tenantOfCall(args: readonly unknown[]): string | null {
  if (typeof args[0] === 'string') return args[0];
  for (const arg of args) {
    if (typeof arg === 'object' && arg !== null) {
      const tenantId = (arg as { tenantId?: unknown }).tenantId;
      if (typeof tenantId === 'string') return tenantId;
    }
  }
  return null;
}

/**
 * A decorator of `port` implementing the same interface: the methods `guarded` selects go through
 * `guard` (fault injection and the breaker), `overrides` replace methods, and every other method
 * is the port's own, bound. A plain object built once, so calls cost a property read as usual.
 */
function decorate<T extends object>(
  port: T,
  guard: ComponentGuard,
  guarded: (name: string) => boolean,
  overrides: Partial<Record<string, Method>> = {},
): T {
  const decorated: Record<string, Method> = {};
  for (const [name, method] of methodsOf(port)) {
    const override = overrides[name];
    if (override !== undefined) decorated[name] = override;
    else if (guarded(name))
      decorated[name] = (...args: unknown[]) =>
        guard.run(tenantOfCall(args), () => method.apply(port, args) as Promise<unknown>);
    else decorated[name] = method.bind(port);
  }
  return decorated as unknown as T;
}

/** Every `ConfigStore` method is asynchronous and guarded, `close` excepted. */
export function guardConfigStore(store: ConfigStore, guard: ComponentGuard): ConfigStore {
  return decorate(store, guard, (name) => name !== 'close');
}

/** The list store's asynchronous methods: those that reach the store itself. */
export const guardedListMethods = new Set<string>([
  'lists',
  'list',
  'putList',
  'deleteList',
  'putEntries',
  'deleteEntry',
  'entries',
  'lookup',
  'size',
  'deleteTenant',
] satisfies (keyof ListStore)[]);

/**
 * The list store with its asynchronous methods guarded (fault injection and the breaker), and
 * `contains`, the synchronous in-memory index the decision path reads, under injected faults only:
 * it cannot wait, so any injected fault, latency included, makes it throw; the rule's `in_list`
 * then errors, the policy's `on_missing` applies, and {@link DegradationTrackingStage} names
 * `list_store`. The breaker does not gate it: the index is in this process (a mirror, for a
 * networked store), so a failing store, which opens the breaker through failed writes, leaves the
 * lists answering as they were last known.
 */
export function guardListStore(
  lists: ListStore & LocalListIndex,
  guard: ComponentGuard,
): ListStore & LocalListIndex {
  return decorate(lists, guard, (name) => guardedListMethods.has(name), {
    contains: ((tenantId: string, list: string, value: unknown) => {
      if (guard.injector.active) guard.checkLocal(tenantId);
      return lists.contains(tenantId, list, value);
    }) as Method,
  });
}

/** Decision log calls that reach its store (an append goes to the local journal first). */
export const guardedLogMethods = new Set<string>([
  'get',
  'search',
  'recordShadows',
  'addFeedback',
  'listFeedback',
  'deleteTenant',
] satisfies (keyof DecisionLog)[]);

/**
 * The decision log with its reads and secondary writes guarded. `append` is never failed by a
 * fault (an answered decision must be durable, and a failing append would turn into a 5xx), nor is
 * `findByEventId` (idempotency on the hot path); `decision_log` faults reach the log's background
 * writes to its store through {@link storeWriteGuard}. `onDegraded` sees each decision answered
 * with degraded components, once, as it is appended.
 */
export function guardDecisionLog(
  log: DecisionLog,
  guard: ComponentGuard,
  onDegraded: (tenantId: string, components: readonly string[]) => void,
): DecisionLog {
  return decorate(log, guard, (name) => guardedLogMethods.has(name), {
    append: ((record: DecisionRecord, responseJson?: string) => {
      const degraded = record.response?.degraded;
      if (degraded !== undefined && degraded.length > 0) onDegraded(record.tenantId, degraded);
      return log.append(record, responseJson);
    }) as Method,
  });
}

/**
 * What a decision log may call around each background write to its store (SQLite here, a network
 * database elsewhere): `write` runs under the `decision_log` breaker and injected faults, and the
 * returned promise rejects when the write must not be attempted now. The log then keeps the batch
 * in its local journal (the spool) and retries later. Passed as the log's `storeWriteGuard` option.
 */
export type StoreWriteGuard = <T>(write: () => Promise<T>) => Promise<T>;

export function storeWriteGuard(guard: ComponentGuard): StoreWriteGuard {
  return (write) => guard.run(null, write);
}

/**
 * Enrichment (`external_data`) with each service guarded. They are synchronous, called inside rule
 * evaluation, so an open breaker or any injected fault makes them throw at once: the rule errors,
 * `on_missing` applies, and {@link DegradationTrackingStage} names `external_data`. The tenant of a
 * call is the one the tracking stage is evaluating for.
 */
export function guardEnrichment<T extends EnrichmentServices>(services: T, guard: ComponentGuard): T {
  const wrap =
    <A, R>(service: (argument: A) => R) =>
    (argument: A): R => {
      if (guard.quiet) return service(argument);
      const ticket = guard.enterSync(guard.currentTenant);
      const result = service(argument);
      guard.succeeded(ticket);
      return result;
    };
  const guarded: T = {
    ...services,
    ipInfo: wrap(services.ipInfo),
    isDisposableEmail: wrap(services.isDisposableEmail),
    phoneCountry: wrap(services.phoneCountry),
    userAgent: wrap(services.userAgent),
  };
  return guarded;
}

/**
 * Wraps the stage that evaluates rules so that a decision whose `in_list` or enrichment calls
 * failed names `list_store` or `external_data` in `degraded`. Those calls are synchronous inside
 * the stage's synchronous run, so the guards' failure counts before and after belong to this
 * decision alone. When nothing is injected and both breakers are closed it adds two reads.
 */
export class DegradationTrackingStage implements DecisionStage {
  readonly name: string;
  readonly budgetShare: number | undefined;

  constructor(
    private readonly inner: DecisionStage,
    private readonly lists: ComponentGuard,
    private readonly externalData: ComponentGuard,
  ) {
    this.name = inner.name;
    this.budgetShare = inner.budgetShare;
  }

  run(context: DecisionContext): void | Promise<void> {
    const lists = this.lists;
    const externalData = this.externalData;
    if (lists.quiet && externalData.quiet) return this.inner.run(context);
    const listFailures = lists.syncFailures;
    const externalFailures = externalData.syncFailures;
    externalData.currentTenant = context.tenantId;
    let result: void | Promise<void>;
    try {
      result = this.inner.run(context);
    } finally {
      externalData.currentTenant = null;
    }
    const conclude = () => {
      if (lists.syncFailures !== listFailures) context.markDegraded(lists.component);
      if (externalData.syncFailures !== externalFailures) context.markDegraded(externalData.component);
    };
    // Should the stage become asynchronous, failures of other decisions in the meantime may be
    // counted too, and enrichment calls after its first await see no tenant (global faults only).
    if (result !== undefined) return result.then(conclude);
    conclude();
  }
}
