import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type {
  ApiKeyRecord,
  AuditEntry,
  ConfigSnapshot,
  ConfigStore,
  EventTypeRecord,
  FeatureRecord,
  ListDefinition,
  ListEntry,
  ListQuery,
  ListStore,
  ListWriteResult,
  Logger,
  PolicyState,
  PolicyVersionRecord,
  TenantRecord,
} from '@vigil/engine';
import { VigilError } from '@vigil/protocol';

/** The file, in the data dir, holding the last configuration the store returned. */
export const configSnapshotFile = 'config-snapshot.json';

const snapshotFormat = 1;

/** The snapshot file's content. */
interface SnapshotFile {
  format: typeof snapshotFormat;
  /** When it was written, ISO 8601. */
  written_at: string;
  /** What `ConfigStore.load()` returned: key hashes and sealed secrets, never a plaintext secret. */
  config: ConfigSnapshot;
}

/** A snapshot read back, with when it was written. */
export interface LoadedSnapshot {
  config: ConfigSnapshot;
  writtenAt: string;
}

/**
 * Reads the last good configuration; undefined when there is none. Throws when the file exists
 * but cannot be read or is not a snapshot (it is written atomically, so that means damage).
 */
export async function readConfigSnapshot(path: string): Promise<LoadedSnapshot | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const file = JSON.parse(text) as Partial<SnapshotFile> | null;
  const config = file?.config;
  if (
    file?.format !== snapshotFormat ||
    typeof file.written_at !== 'string' ||
    config === undefined ||
    !Array.isArray(config.tenants) ||
    !Array.isArray(config.keys) ||
    !Array.isArray(config.eventTypes) ||
    !Array.isArray(config.policyVersions) ||
    !Array.isArray(config.policyStates)
  ) {
    throw new Error(`${path} is not a configuration snapshot of format ${snapshotFormat}`);
  }
  return { config, writtenAt: file.written_at };
}

/**
 * Writes a snapshot atomically: a temporary file beside it (mode 0600), flushed to disk, renamed
 * over the old one, then the directory flushed so the rename survives a power loss. A reader
 * sees the old snapshot or the new one, never a part.
 */
export async function writeConfigSnapshot(
  path: string,
  config: ConfigSnapshot,
  at = new Date(),
): Promise<void> {
  const body: SnapshotFile = { format: snapshotFormat, written_at: at.toISOString(), config };
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const file = await open(temporary, 'w', 0o600);
  try {
    await file.writeFile(JSON.stringify(body));
    await file.sync();
  } catch (error) {
    await file.close();
    await unlink(temporary).catch(() => {});
    throw error;
  }
  await file.close();
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
  const directory = await open(dirname(path), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

export interface SnapshottingOptions {
  /** Where the snapshot is written. */
  path: string;
  logger: Logger;
  /** How long after a change the snapshot is written, so a burst of changes writes once. */
  debounceMs?: number;
  /** How long after a failed write it is tried again. */
  retryMs?: number;
}

/**
 * The configuration store with the last good configuration kept on disk (SPEC §4): after every
 * successful change, a snapshot of what `load()` returns is written to the data dir, at most
 * once per `debounceMs` however many changes a burst brings. A failed write is logged and tried
 * again; it never fails the change, which is already durable in the store.
 */
export class SnapshottingConfigStore implements ConfigStore {
  readonly #inner: ConfigStore;
  readonly #path: string;
  readonly #logger: Logger;
  readonly #debounceMs: number;
  readonly #retryMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** The write in progress, if any. */
  #writing: Promise<void> | undefined;
  /** A change arrived since the last write started. */
  #dirty = false;
  #closed = false;
  /**
   * The configuration to write next, when a follower applied one from another node; undefined
   * when the store must be read (a change here came after it).
   */
  #provided: ConfigSnapshot | undefined;
  #writesInFlight = 0;
  #writeGeneration = 0;

  constructor(inner: ConfigStore, options: SnapshottingOptions) {
    this.#inner = inner;
    this.#path = options.path;
    this.#logger = options.logger;
    this.#debounceMs = options.debounceMs ?? 200;
    this.#retryMs = options.retryMs ?? 5000;
  }

  load(): Promise<ConfigSnapshot> {
    return this.#inner.load();
  }

  putTenant(tenant: TenantRecord, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.putTenant(tenant, audit));
  }

  deleteTenant(tenantId: string, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.deleteTenant(tenantId, audit));
  }

  putKey(key: ApiKeyRecord, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.putKey(key, audit));
  }

  putEventType(eventType: EventTypeRecord, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.putEventType(eventType, audit));
  }

  putPolicyVersion(version: PolicyVersionRecord, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.putPolicyVersion(version, audit));
  }

  putPolicyState(state: PolicyState, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.putPolicyState(state, audit));
  }

  putFeature(feature: FeatureRecord, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.putFeature(feature, audit));
  }

  deleteFeature(tenantId: string, name: string, audit: AuditEntry): Promise<void> {
    return this.#changed(this.#inner.deleteFeature(tenantId, name, audit));
  }

  /** Audit entries of list changes: lists live in their own store, not in the snapshot. */
  appendAudit(audit: AuditEntry): Promise<void> {
    return this.#inner.appendAudit(audit);
  }

  listAudit(query: { tenantId?: string; limit: number; before?: number }): Promise<AuditEntry[]> {
    return this.#inner.listAudit(query);
  }

  /**
   * Writes a pending snapshot now, after the one in progress, and waits for it. A write that fails
   * is logged and tried again later, not here.
   */
  async flush(): Promise<void> {
    if (this.#writing !== undefined) await this.#writing;
    this.#cancelTimer();
    if (this.#dirty) {
      this.#write();
      await this.#writing;
    }
  }

  /** Schedules a snapshot in `delayMs` (for a write that failed elsewhere, such as at start). */
  snapshotLater(delayMs = this.#retryMs): void {
    this.#dirty = true;
    this.#schedule(delayMs);
  }

  /**
   * Moves whenever a change through this store starts or ends. A follower that reads the store
   * applies what it read only when this did not move meanwhile (and no change is in flight), so a
   * read taken before a local change never undoes it in memory.
   */
  get writeGeneration(): number {
    return this.#writeGeneration;
  }

  /** Changes through this store still waiting for the store. */
  get writesInFlight(): number {
    return this.#writesInFlight;
  }

  /**
   * Schedules a snapshot of `config`, a configuration read from the store and applied (a change
   * made by another node), without reading the store again. A change here after it makes the
   * write read the store instead.
   */
  snapshotOf(config: ConfigSnapshot): void {
    if (this.#closed) return;
    this.#provided = config;
    this.snapshotLater(this.#debounceMs);
  }

  /** Writes what is pending, then closes the store. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    this.#cancelTimer();
    await this.#inner.close();
  }

  async #changed(write: Promise<void>): Promise<void> {
    this.#writesInFlight += 1;
    this.#writeGeneration += 1;
    try {
      await write;
    } finally {
      this.#writesInFlight -= 1;
      this.#writeGeneration += 1;
    }
    if (this.#closed) return;
    this.#provided = undefined;
    this.snapshotLater(this.#debounceMs);
  }

  #cancelTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#writing !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#write();
    }, delayMs);
    this.#timer.unref();
  }

  /** Starts a write of what the store holds now; a change during it schedules another. */
  #write(): void {
    this.#dirty = false;
    const provided = this.#provided;
    this.#provided = undefined;
    this.#writing = (async () => {
      try {
        await writeConfigSnapshot(this.#path, provided ?? (await this.#inner.load()));
      } catch (error) {
        this.#dirty = true;
        this.#logger.error(
          { err: error, path: this.#path },
          'last good configuration not written; trying again later',
        );
        return 'failed' as const;
      }
      return 'written' as const;
    })().then((outcome) => {
      this.#writing = undefined;
      if (this.#dirty && !this.#closed)
        this.#schedule(outcome === 'failed' ? this.#retryMs : this.#debounceMs);
    });
  }
}

function unavailable(): never {
  throw new VigilError('config_unavailable');
}

/**
 * Stands in for a configuration store that could not be read at start: the node serves the last
 * good configuration, and every change or audit read is refused with `config_unavailable` (503)
 * until the node restarts with a working store.
 */
export class UnavailableConfigStore implements ConfigStore {
  constructor(private readonly snapshot: ConfigSnapshot) {}

  async load(): Promise<ConfigSnapshot> {
    return this.snapshot;
  }

  async putTenant(): Promise<void> {
    unavailable();
  }

  async deleteTenant(): Promise<void> {
    unavailable();
  }

  async putKey(): Promise<void> {
    unavailable();
  }

  async putEventType(): Promise<void> {
    unavailable();
  }

  async putPolicyVersion(): Promise<void> {
    unavailable();
  }

  async putPolicyState(): Promise<void> {
    unavailable();
  }

  async putFeature(): Promise<void> {
    unavailable();
  }

  async deleteFeature(): Promise<void> {
    unavailable();
  }

  async appendAudit(): Promise<void> {
    unavailable();
  }

  async listAudit(): Promise<AuditEntry[]> {
    unavailable();
  }

  async close(): Promise<void> {}
}

/**
 * The list store as the control plane sees it while the configuration store is unavailable:
 * lists still answer, but a change is refused before it is made, since its audit entry could not
 * be written. Decisions read the lists through the store itself, unaffected.
 */
export class ReadOnlyListStore implements ListStore {
  constructor(private readonly inner: ListStore) {}

  lists(tenantId: string): Promise<ListDefinition[]> {
    return this.inner.lists(tenantId);
  }

  list(tenantId: string, name: string): Promise<ListDefinition | undefined> {
    return this.inner.list(tenantId, name);
  }

  entries(tenantId: string, name: string, page: { after?: string; limit: number }): Promise<ListEntry[]> {
    return this.inner.entries(tenantId, name, page);
  }

  lookup(tenantId: string, queries: readonly ListQuery[]): Promise<boolean[]> {
    return this.inner.lookup(tenantId, queries);
  }

  size(tenantId: string, name: string): Promise<number> {
    return this.inner.size(tenantId, name);
  }

  async putList(): Promise<void> {
    unavailable();
  }

  async deleteList(): Promise<boolean> {
    unavailable();
  }

  async putEntries(): Promise<ListWriteResult> {
    unavailable();
  }

  async deleteEntry(): Promise<boolean> {
    unavailable();
  }

  async deleteTenant(): Promise<void> {
    unavailable();
  }

  /** The inner store is closed by its owner. */
  async close(): Promise<void> {}
}

/** The configuration a node starts with, and the store changes go to. */
export interface OpenedConfiguration {
  store: ConfigStore;
  config: ConfigSnapshot;
  /** True when the store could not be read and the node serves the last good configuration. */
  fromSnapshot: boolean;
}

export interface OpenConfigurationOptions {
  dataDir: string;
  /** Opens the configuration store; may throw or reject (a corrupt file, an unreachable server). */
  open: () => ConfigStore | Promise<ConfigStore>;
  logger: Logger;
  debounceMs?: number;
}

/**
 * Opens the configuration store and loads it, keeping its snapshot on disk from then on. When the
 * store cannot be opened or read, the node starts from the last good configuration instead and
 * refuses changes; with no usable snapshot either, it refuses to start, naming both problems.
 *
 * A store that reads as empty while the snapshot has tenants is taken as lost too (a deleted or
 * replaced database file), rather than silently starting empty and overwriting the snapshot.
 */
export async function openConfiguration(options: OpenConfigurationOptions): Promise<OpenedConfiguration> {
  const path = join(options.dataDir, configSnapshotFile);
  let store: ConfigStore | undefined;
  let failure: unknown;
  let config: ConfigSnapshot | undefined;
  try {
    store = await options.open();
    config = await store.load();
  } catch (error) {
    failure = error;
  }
  if (config !== undefined && store !== undefined && config.tenants.length > 0) {
    return started(store, config, path, options);
  }
  let snapshot: LoadedSnapshot | undefined;
  let snapshotFailure: unknown;
  try {
    snapshot = await readConfigSnapshot(path);
  } catch (error) {
    snapshotFailure = error;
  }
  if (config !== undefined && store !== undefined) {
    // An empty store: a new installation, unless the snapshot says there was configuration.
    if (snapshot === undefined || snapshot.config.tenants.length === 0) {
      return started(store, config, path, options);
    }
    failure = new Error(
      `the configuration store is empty but the last good configuration (${snapshot.writtenAt}) has ${snapshot.config.tenants.length} tenants`,
    );
  }
  await store?.close().catch(() => {});
  if (snapshot === undefined) {
    const reason =
      snapshotFailure === undefined
        ? `there is no ${path}`
        : `${path} is unusable: ${message(snapshotFailure)}`;
    throw new Error(
      `The configuration store cannot be read (${message(failure)}) and ${reason}; refusing to start without a configuration. Repair or restore the store (config.db in the data dir).`,
      { cause: failure },
    );
  }
  options.logger.error(
    { err: failure, snapshot: path, written_at: snapshot.writtenAt },
    'configuration store unavailable: serving the last good configuration from disk; configuration changes are refused (503 config_unavailable) until a restart with a working store',
  );
  return { store: new UnavailableConfigStore(snapshot.config), config: snapshot.config, fromSnapshot: true };
}

async function started(
  store: ConfigStore,
  config: ConfigSnapshot,
  path: string,
  options: OpenConfigurationOptions,
): Promise<OpenedConfiguration> {
  const snapshotting = new SnapshottingConfigStore(store, {
    path,
    logger: options.logger,
    ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
  });
  try {
    await writeConfigSnapshot(path, config);
  } catch (error) {
    options.logger.error(
      { err: error, path },
      'last good configuration not written at start; trying again later',
    );
    snapshotting.snapshotLater();
  }
  return { store: snapshotting, config, fromSnapshot: false };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A configuration store several nodes share, which tells each about every committed change. */
export interface SharedConfigSource {
  /** The configuration and the version it is at, read together. */
  loadWithVersion(): Promise<{ snapshot: ConfigSnapshot; version: number }>;
  /** Calls `onChange` with the new version after each change by any node, in increasing order. */
  watch(
    onChange: (version: number) => void,
    options: { checkIntervalMs?: number; onError?: (error: Error) => void },
  ): Promise<{ close(): Promise<void> }>;
}

export interface ConfigFollowerOptions {
  source: SharedConfigSource;
  /** The node's own store: its changes, and the last good configuration on disk. */
  store: Pick<SnapshottingConfigStore, 'writeGeneration' | 'writesInFlight' | 'snapshotOf'>;
  /**
   * Makes the node serve `config`; returns whether anything differed from what it served (a
   * node's own change comes back announced too, and then nothing differs).
   */
  apply: (config: ConfigSnapshot, version: number) => boolean;
  logger: Logger;
  /** Backstop version check, for announcements lost while disconnected (default 1 000 ms). */
  checkIntervalMs?: number;
  /** Wait before reading again after a failed read (default 1 000 ms). */
  retryMs?: number;
}

/** After a read overlapped a change made here: the wait before reading again, and between looks. */
const overlapWaitMs = 20;

/**
 * Keeps a node serving the configuration other nodes change (SPEC §4: within 1 s, no restart).
 * On each announced version it reads the whole configuration with its version and applies it;
 * announcements that arrive during a read are folded into one more read. A read that overlapped
 * a change made through this node is thrown away and done again, so it never undoes that change
 * in memory. What was applied is written to disk as the last good configuration. A failed read is
 * logged and retried; the node meanwhile serves what it has.
 */
export class ConfigFollower {
  readonly #options: ConfigFollowerOptions;
  readonly #retryMs: number;
  #watch: { close(): Promise<void> } | undefined;
  /** The version applied last; -1 before the first read. */
  #applied = -1;
  #reading: Promise<void> | undefined;
  #again = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: ConfigFollowerOptions) {
    this.#options = options;
    this.#retryMs = options.retryMs ?? 1000;
  }

  /**
   * Starts watching, then reads once at once: a change committed between the node's first read
   * and the start of the watch was announced to nobody here. Never rejects: a watch that cannot
   * start (the store went away since the node read it) is tried again every `retryMs`.
   */
  static async start(options: ConfigFollowerOptions): Promise<ConfigFollower> {
    const follower = new ConfigFollower(options);
    await follower.#startWatch();
    return follower;
  }

  async #startWatch(): Promise<void> {
    const { source, logger } = this.#options;
    this.#watchTimer = undefined;
    try {
      const watch = await source.watch(() => this.changed(), {
        checkIntervalMs: this.#options.checkIntervalMs ?? 1000,
        onError: (error) =>
          logger.warn({ err: error }, 'configuration change notifications interrupted; reconnecting'),
      });
      if (this.#closed) {
        await watch.close();
        return;
      }
      this.#watch = watch;
    } catch (error) {
      if (this.#closed) return;
      logger.warn(
        { err: error, retry_ms: this.#retryMs },
        'cannot watch for configuration changes; trying again',
      );
      this.#watchTimer = setTimeout(() => void this.#startWatch(), this.#retryMs);
      this.#watchTimer.unref();
      return;
    }
    this.changed();
  }

  /** The configuration version this node serves; -1 until the first read. */
  get version(): number {
    return this.#applied;
  }

  /** A change was announced: read it now, or once more after the read in progress. */
  changed(): void {
    if (this.#closed) return;
    if (this.#reading !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#reading = this.#follow().finally(() => {
      this.#reading = undefined;
    });
  }

  /** Resolves once every read started so far is done (for an orderly close and for tests). */
  async settled(): Promise<void> {
    while (this.#reading !== undefined) await this.#reading;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#watchTimer);
    await this.#watch?.close();
    await this.settled();
  }

  async #follow(): Promise<void> {
    const { source, store, logger } = this.#options;
    do {
      this.#again = false;
      const generation = store.writeGeneration;
      let read: { snapshot: ConfigSnapshot; version: number };
      try {
        read = await source.loadWithVersion();
      } catch (error) {
        logger.warn(
          { err: error, retry_ms: this.#retryMs },
          'configuration change not read; serving the configuration held until it is',
        );
        this.#retryLater();
        return;
      }
      if (this.#closed) return;
      if (store.writeGeneration !== generation || store.writesInFlight > 0) {
        // Read before a change made here was stored and served: applying it would undo that
        // change in memory until the next announcement. Read again once the change is in.
        this.#again = true;
        do await new Promise((resolve) => setTimeout(resolve, overlapWaitMs));
        while (store.writesInFlight > 0 && !this.#closed);
        continue;
      }
      if (read.version <= this.#applied) continue;
      let changed: boolean;
      try {
        changed = this.#options.apply(read.snapshot, read.version);
      } catch (error) {
        logger.error({ err: error, version: read.version }, 'configuration change not applied');
        this.#retryLater();
        return;
      }
      if (changed) {
        logger.info({ version: read.version }, 'configuration changed by another node applied');
        store.snapshotOf(read.snapshot);
      }
      this.#applied = read.version;
    } while (this.#again && !this.#closed);
  }

  #retryLater(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.changed();
    }, this.#retryMs);
    this.#retryTimer.unref();
  }
}
