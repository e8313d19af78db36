import { readFileSync } from 'node:fs';
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument, type Scalar } from 'yaml';

/** A policy as written in a configuration file, plus how to publish it. */
export interface FilePolicy {
  body: Record<string, unknown>;
  /** `true` (default): publish fully; a number: publish as a canary for that percent; `false`: keep as draft. */
  publish: boolean | number;
}

/** A configuration file: event types and policies of one tenant, keyed by event type. */
export interface ConfigFile {
  path: string;
  eventTypes: Map<string, Record<string, unknown>>;
  policies: Map<string, FilePolicy>;
  /** Where in the file a rule's `when` text starts, to place compile errors. */
  whereIs(
    eventType: string,
    ruleId: string,
    line: number,
    column: number,
  ): { line: number; column: number } | undefined;
}

export class ConfigFileError extends Error {}

export function readConfigFile(path: string): ConfigFile {
  const text = readFileSync(path, 'utf8');
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: true });
  if (document.errors.length > 0) {
    throw new ConfigFileError(document.errors.map((error) => `${path}: ${error.message}`).join('\n'));
  }
  const root = document.toJS() as Record<string, unknown> | null;
  if (root === null || typeof root !== 'object' || Array.isArray(root)) {
    throw new ConfigFileError(`${path}: expected a map with 'event_types' and/or 'policies'`);
  }
  for (const key of Object.keys(root)) {
    if (key !== 'event_types' && key !== 'policies')
      throw new ConfigFileError(`${path}: unknown top-level key '${key}'`);
  }
  const eventTypes = new Map(
    Object.entries((root.event_types ?? {}) as Record<string, Record<string, unknown>>),
  );
  const policies = new Map<string, FilePolicy>();
  for (const [type, value] of Object.entries(
    (root.policies ?? {}) as Record<string, Record<string, unknown>>,
  )) {
    const { publish = true, ...body } = value;
    if (typeof publish !== 'boolean' && typeof publish !== 'number') {
      throw new ConfigFileError(`${path}: policies.${type}.publish must be true, false or a canary percent`);
    }
    policies.set(type, { body, publish });
  }
  return {
    path,
    eventTypes,
    policies,
    whereIs: (eventType, ruleId, line, column) =>
      locate(document, lineCounter, eventType, ruleId, line, column),
  };
}

/** Maps a position inside a rule's `when` text to a position in the file. */
function locate(
  document: Document,
  lineCounter: LineCounter,
  eventType: string,
  ruleId: string,
  line: number,
  column: number,
): { line: number; column: number } | undefined {
  const rules = document.getIn(['policies', eventType, 'rules'], true);
  if (!isSeq(rules)) return undefined;
  for (const item of rules.items) {
    if (!isMap(item) || item.get('id') !== ruleId) continue;
    const when = item.get('when', true) as Scalar | undefined;
    if (!isScalar(when) || when.range === undefined || when.range === null) return undefined;
    const start = lineCounter.linePos(when.range[0]);
    if (when.type === 'BLOCK_LITERAL' || when.type === 'BLOCK_FOLDED') {
      // Block scalars start on the line after the indicator; their indent is the first line's.
      const firstLine = lineCounter.linePos(when.range[0]).line + 1;
      const lineText = document.toString().split('\n')[firstLine - 1] ?? '';
      const indent = lineText.length - lineText.trimStart().length;
      return { line: firstLine + line - 1, column: indent + column };
    }
    const quoted = when.type === 'QUOTE_DOUBLE' || when.type === 'QUOTE_SINGLE' ? 1 : 0;
    return line === 1
      ? { line: start.line, column: start.col + quoted + column - 1 }
      : { line: start.line + line - 1, column };
  }
  return undefined;
}
