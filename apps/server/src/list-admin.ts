import {
  type ConfigRegistry,
  type ConfigStore,
  compilePolicy,
  type ListDefinition,
  type ListEntry,
  type ListKind,
  type ListStore,
  type ListValueType,
  normaliseListValue,
  PolicyCompileFailure,
  type RuleCompiler,
} from '@vigil/engine';
import { VigilError } from '@vigil/protocol';
import { auditEntry } from './audit.js';

/** A refused entry of a bulk write: its CSV line (1-based) or JSON index (0-based), value and why. */
export type RejectedEntry = ({ line: number } | { index: number }) & { value: unknown; message: string };

/** Receives each well-formed entry of a bulk write; `position` is its JSON index or CSV line. */
export type EntryVisitor = (
  position: number,
  value: unknown,
  ttlSeconds: number | undefined,
  note: string | undefined,
) => void;

/**
 * The body of a bulk write, read in one pass with no intermediate array: well-formed entries go to
 * the visitor, malformed ones into `rejected`.
 */
export interface EntryReader {
  readonly position: 'index' | 'line';
  read(visit: EntryVisitor, rejected: RejectedEntry[]): void;
}

const maxTtlSeconds = 10 * 365 * 24 * 3600;
const maxNoteLength = 1024;
/** Keys an entry may have in JSON: what is written, plus what an export adds (ignored on import). */
const entryKeys = new Set(['value', 'ttl_seconds', 'note', 'expires_at', 'updated_at']);

export function listView(definition: ListDefinition, size: number) {
  return {
    name: definition.name,
    kind: definition.kind,
    type: definition.type,
    description: definition.description,
    entries: size,
    created_at: definition.createdAt,
    updated_at: definition.updatedAt,
  };
}

/** An entry as exported; `ttl_seconds` is what is left, so an export can be imported again. */
export function entryView(entry: ListEntry, now: number) {
  return {
    value: entry.value,
    ttl_seconds: entry.expiresAt === null ? null : Math.max(1, Math.ceil((entry.expiresAt - now) / 1000)),
    expires_at: entry.expiresAt === null ? null : new Date(entry.expiresAt).toISOString(),
    note: entry.note,
    updated_at: new Date(entry.updatedAt).toISOString(),
  };
}

/** Entries of a JSON body: an array of `{ value, ttl_seconds?, note? }`. */
export function parseJsonEntries(body: unknown): EntryReader {
  if (!Array.isArray(body)) {
    throw new VigilError('invalid_request', {
      message: 'The body must be a JSON array of entries `[{ value, ttl_seconds, note }]`.',
      details: [{ path: '', message: 'must be an array' }],
    });
  }
  return { position: 'index', read: (visit, rejected) => readJson(body, visit, rejected) };
}

function readJson(body: unknown[], visit: EntryVisitor, rejected: RejectedEntry[]): void {
  for (let index = 0; index < body.length; index++) {
    const item = body[index] as unknown;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      rejected.push({ index, value: item, message: 'must be an object with a value' });
      continue;
    }
    const record = item as Record<string, unknown>;
    let unknownKey: string | undefined;
    for (const name in record) {
      if (!entryKeys.has(name)) {
        unknownKey = name;
        break;
      }
    }
    if (unknownKey !== undefined) {
      rejected.push({ index, value: record.value, message: `has an unknown property '${unknownKey}'` });
      continue;
    }
    const ttl = record.ttl_seconds;
    if (ttl !== undefined && ttl !== null && typeof ttl !== 'number') {
      rejected.push({ index, value: record.value, message: 'ttl_seconds must be a number' });
      continue;
    }
    const note = record.note;
    if (note !== undefined && note !== null && typeof note !== 'string') {
      rejected.push({ index, value: record.value, message: 'note must be a string' });
      continue;
    }
    visit(index, record.value, ttl ?? undefined, note ?? undefined);
  }
}

/**
 * Splits one CSV line (RFC 4180 quoting, no line breaks inside quotes) into fields; undefined
 * when a quote is not closed.
 */
function csvFields(line: string): string[] | undefined {
  if (!line.includes('"')) return line.split(',');
  const fields: string[] = [];
  let at = 0;
  while (at <= line.length) {
    if (line[at] === '"') {
      let field = '';
      let cursor = at + 1;
      for (;;) {
        const quote = line.indexOf('"', cursor);
        if (quote < 0) return undefined;
        field += line.slice(cursor, quote);
        if (line[quote + 1] === '"') {
          field += '"';
          cursor = quote + 2;
          continue;
        }
        cursor = quote + 1;
        break;
      }
      if (cursor < line.length && line[cursor] !== ',') return undefined;
      fields.push(field);
      at = cursor + 1;
      continue;
    }
    const comma = line.indexOf(',', at);
    const end = comma < 0 ? line.length : comma;
    fields.push(line.slice(at, end));
    at = end + 1;
  }
  return fields;
}

/** Entries of a CSV body: `value,ttl_seconds,note` per line, with an optional header line. */
export function parseCsvEntries(text: string): EntryReader {
  return { position: 'line', read: (visit, rejected) => readCsv(text, visit, rejected) };
}

function readCsv(text: string, visit: EntryVisitor, rejected: RejectedEntry[]): void {
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let line = 1; start < text.length; line++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const content = text.slice(start, text.charCodeAt(end - 1) === 13 ? end - 1 : end);
    start = end + 1;
    if (content.trim() === '') continue;
    const fields = csvFields(content);
    if (fields === undefined) {
      rejected.push({ line, value: content, message: 'has an unclosed quote' });
      continue;
    }
    if (line === 1 && fields[0]?.trim().toLowerCase() === 'value') continue;
    if (fields.length > 3) {
      rejected.push({ line, value: fields[0], message: 'has more than 3 fields (value,ttl_seconds,note)' });
      continue;
    }
    const [value, ttl = '', note = ''] = fields;
    let ttlSeconds: number | undefined;
    if (ttl.trim() !== '') {
      ttlSeconds = Number(ttl);
      if (!/^\s*\d+\s*$/.test(ttl)) {
        rejected.push({ line, value, message: 'ttl_seconds must be a positive integer' });
        continue;
      }
    }
    visit(line, value, ttlSeconds, note === '' ? undefined : note);
  }
}

/** The CSV form of an exported entry. */
export function csvLine(entry: ReturnType<typeof entryView>): string {
  const quote = (text: string) => (/[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text);
  return `${quote(entry.value)},${entry.ttl_seconds ?? ''},${quote(entry.note ?? '')}\n`;
}

/**
 * Lists and their entries for the control plane: checks input, writes through the list store
 * (live on this node when the call returns) and records each change in the audit trail.
 */
export class ListAdmin {
  constructor(
    private readonly lists: ListStore,
    private readonly config: ConfigStore,
    private readonly registry: ConfigRegistry,
    private readonly compiler: RuleCompiler,
    private readonly now: () => number = Date.now,
  ) {}

  #tenant(tenantId: string): void {
    if (this.registry.tenant(tenantId) === undefined) {
      throw new VigilError('not_found', { message: `No tenant '${tenantId}'.` });
    }
  }

  async all(tenantId: string) {
    this.#tenant(tenantId);
    const definitions = await this.lists.lists(tenantId);
    return Promise.all(
      definitions.map(async (definition) =>
        listView(definition, await this.lists.size(tenantId, definition.name)),
      ),
    );
  }

  async definition(tenantId: string, name: string): Promise<ListDefinition> {
    this.#tenant(tenantId);
    const definition = await this.lists.list(tenantId, name);
    if (definition === undefined) throw new VigilError('not_found', { message: `No list '${name}'.` });
    return definition;
  }

  async view(tenantId: string, name: string) {
    const definition = await this.definition(tenantId, name);
    return listView(definition, await this.lists.size(tenantId, name));
  }

  async put(
    actor: string,
    tenantId: string,
    name: string,
    input: { kind: ListKind; type?: ListValueType; description?: string },
  ): Promise<{ view: ReturnType<typeof listView>; created: boolean }> {
    this.#tenant(tenantId);
    const before = await this.lists.list(tenantId, name);
    const type = input.type ?? before?.type ?? 'string';
    if (before !== undefined && before.type !== type && (await this.lists.size(tenantId, name)) > 0) {
      throw new VigilError('invalid_state', {
        message: `List '${name}' holds ${before.type} values; empty it (delete and create it again) to change its type.`,
      });
    }
    const now = new Date(this.now()).toISOString();
    const definition: ListDefinition = {
      tenantId,
      name,
      kind: input.kind,
      type,
      description: input.description ?? null,
      createdAt: before?.createdAt ?? now,
      updatedAt: now,
    };
    await this.lists.putList(definition);
    await this.config.appendAudit(
      auditEntry(
        actor,
        tenantId,
        before === undefined ? 'list.create' : 'list.update',
        name,
        before ?? null,
        definition,
      ),
    );
    return {
      view: listView(definition, await this.lists.size(tenantId, name)),
      created: before === undefined,
    };
  }

  async delete(actor: string, tenantId: string, name: string): Promise<void> {
    const before = await this.definition(tenantId, name);
    this.#checkServingWithout(tenantId, name);
    await this.lists.deleteList(tenantId, name);
    await this.config.appendAudit(auditEntry(actor, tenantId, 'list.delete', name, before, null));
  }

  /** Upserts checked entries; every refused one is reported, the others are stored. */
  async addEntries(actor: string, tenantId: string, name: string, body: EntryReader) {
    const definition = await this.definition(tenantId, name);
    const rejected: RejectedEntry[] = [];
    const now = this.now();
    const byValue = new Map<string, ListEntry>();
    const reject = (position: number, value: unknown, message: string) =>
      rejected.push({ [body.position]: position, value, message } as RejectedEntry);
    body.read((position, value, ttl, note) => {
      const normalised = normaliseListValue(definition.type, value);
      if (!normalised.ok) {
        reject(position, value, `value ${normalised.message}`);
      } else if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1 || ttl > maxTtlSeconds)) {
        reject(position, value, `ttl_seconds must be an integer from 1 to ${maxTtlSeconds}`);
      } else if (note !== undefined && note.length > maxNoteLength) {
        reject(position, value, `note is longer than ${maxNoteLength} characters`);
      } else {
        byValue.set(normalised.value, {
          value: normalised.value,
          expiresAt: ttl === undefined ? null : now + ttl * 1000,
          note: note ?? null,
          updatedAt: now,
        });
      }
    }, rejected);
    const result = await this.lists.putEntries(tenantId, name, [...byValue.values()]);
    rejected.sort((a, b) => ('line' in a ? a.line : a.index) - ('line' in b ? b.line : b.index));
    const counts = { added: result.added, updated: result.updated, rejected: rejected.length };
    await this.config.appendAudit(auditEntry(actor, tenantId, 'list.entries.import', name, null, counts));
    return { added: result.added, updated: result.updated, rejected };
  }

  async deleteEntry(actor: string, tenantId: string, name: string, raw: string): Promise<void> {
    const definition = await this.definition(tenantId, name);
    const normalised = normaliseListValue(definition.type, raw);
    const removed = normalised.ok && (await this.lists.deleteEntry(tenantId, name, normalised.value));
    if (!removed) throw new VigilError('not_found', { message: `No entry '${raw}' in list '${name}'.` });
    await this.config.appendAudit(
      auditEntry(actor, tenantId, 'list.entry.delete', name, { value: normalised.value }, null),
    );
  }

  /** A page of live entries in value order; the cursor is the last value of the previous page. */
  async export(tenantId: string, name: string, page: { cursor?: string; limit: number }) {
    await this.definition(tenantId, name);
    let after: string | undefined;
    if (page.cursor !== undefined && page.cursor !== '') {
      after = Buffer.from(page.cursor, 'base64url').toString('utf8');
    }
    const entries = await this.lists.entries(tenantId, name, {
      ...(after !== undefined && { after }),
      limit: page.limit,
    });
    const now = this.now();
    const last = entries.at(-1);
    return {
      entries: entries.map((entry) => entryView(entry, now)),
      next_cursor:
        entries.length < page.limit || last === undefined
          ? null
          : Buffer.from(last.value, 'utf8').toString('base64url'),
    };
  }

  /** A serving policy version must keep compiling once the list is gone. */
  #checkServingWithout(tenantId: string, name: string): void {
    const names = this.registry.lists?.names(tenantId).filter((list) => list !== name) ?? [];
    for (const eventType of this.registry.eventTypesOf(tenantId)) {
      const state = this.registry.policyState(tenantId, eventType.record.name);
      if (state === null) continue;
      const serving = [state.published, state.canary?.version, ...state.shadows].filter(
        (version) => typeof version === 'number',
      );
      for (const version of serving) {
        const record = this.registry.policyVersion(tenantId, eventType.record.name, version);
        if (record === undefined) continue;
        try {
          compilePolicy(this.compiler, record, {
            ...this.registry.environment(eventType.record),
            lists: names,
          });
        } catch (error) {
          if (!(error instanceof PolicyCompileFailure)) throw error;
          throw new VigilError('invalid_state', {
            message: `List '${name}' is used by version ${version} of the '${eventType.record.name}' policy, which is serving.`,
            details: error.errors.map((problem) => ({
              path: `rules.${problem.rule}.when`,
              message: problem.message,
              rule: problem.rule,
              line: problem.line,
              column: problem.column,
            })),
          });
        }
      }
    }
  }
}
