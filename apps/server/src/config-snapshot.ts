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

  /** Writes what is pending, then closes the store. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    this.#cancelTimer();
    await this.#inner.close();
  }

  async #changed(write: Promise<void>): Promise<void> {
    await write;
    if (this.#closed) return;
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
    this.#writing = (async () => {
      try {
        await writeConfigSnapshot(this.#path, await this.#inner.load());
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
  /** Opens the configuration store; may throw (a corrupt file, an unreachable server). */
  open: () => ConfigStore;
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
    store = options.open();
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
