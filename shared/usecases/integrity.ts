/**
 * Integrity failures name the record they happened on. Every use case that unwraps a data key or decrypts a field
 * runs it through here, so an IntegrityError (shared/crypto) leaves with the tenant, the record and the field
 * attached, ids only, whoever catches it: the HTTP endpoint (answers integrity-error and logs `integrity.failure`),
 * the queue wrapper (logs the same line), or a job that skips the record and logs it itself.
 */
import { IntegrityError, type IntegrityContext } from "../crypto";
import type { LogFields } from "../observability";

/** The ids of an upload's record (and one of its encrypted fields). */
export function uploadRecord(tenantId: string, uploadId: string, field?: string): IntegrityContext {
  return { tenantId, target: `upload:${uploadId}`, ...(field !== undefined ? { field } : {}) };
}

/** The ids of a tenant's record (and one of its encrypted fields). */
export function tenantRecord(tenantId: string, field?: string): IntegrityContext {
  return { tenantId, target: `tenant:${tenantId}`, ...(field !== undefined ? { field } : {}) };
}

/** Runs synchronous crypto; an IntegrityError it throws leaves with `context` attached (what it knew stays). */
export function withIntegrityContext<T>(context: IntegrityContext, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof IntegrityError) err.context = { ...context, ...err.context };
    throw err;
  }
}

/** What the `integrity.failure` log line carries: where the check failed and the record's ids, nothing else. */
export function integrityLogFields(err: IntegrityError): LogFields {
  return { failure: err.failure, segment: err.segmentIndex, ...err.context };
}
