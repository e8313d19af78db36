import type { AuditEntry } from '@vigil/engine';

/** An audit entry for a change made now: who, what, and the diff (never secrets). */
export function auditEntry(
  actor: string,
  tenantId: string | null,
  action: string,
  target: string,
  before: unknown,
  after: unknown,
): AuditEntry {
  return { at: new Date().toISOString(), actor, tenantId, action, target, diff: { before, after } };
}
