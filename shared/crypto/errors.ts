/**
 * What failed verification. The categories say where the check failed, not why: a flipped byte, a dropped
 * segment and a segment from another upload all look the same to AES-GCM ("segment").
 */
export type IntegrityFailure =
  /** The stream header is malformed (bad magic, unknown version, segment size out of range) or too short. */
  | "header"
  /** A segment failed authentication: altered, reordered, dropped, duplicated, foreign, or wrongly (not) last. */
  | "segment"
  /** The input ended before a complete segment (or header) could be read. */
  | "truncated"
  /** More ciphertext arrived than the decryption expected. */
  | "trailing-data"
  /** A wrapped data key failed to unwrap (wrong KEK, wrong associated data, altered or malformed). */
  | "wrapped-key"
  /** An encrypted field failed to decrypt (wrong key, wrong associated data, altered or malformed). */
  | "field";

/**
 * Ciphertext that failed authentication or is malformed. The message names only the failure and, for streams,
 * the segment index; it never carries key material, plaintext or ciphertext bytes.
 */
export class IntegrityError extends Error {
  override readonly name = "IntegrityError";
  /** Which record failed, as ids only (added by the code that knows them, for the incident log). */
  context: IntegrityContext = {};

  constructor(
    readonly failure: IntegrityFailure,
    /** Index of the segment that failed (streams only); null for header, wrapped-key and field failures. */
    readonly segmentIndex: number | null,
    message: string,
  ) {
    super(message);
  }
}

export interface IntegrityContext {
  tenantId?: string;
  /** e.g. "upload:up-…", "tenant:tn-…" */
  target?: string;
  /** The encrypted field, for field failures. */
  field?: string;
}

/** Runs `fn`; an IntegrityError it throws leaves with `context` attached (ids only), anything else unchanged. */
export async function inIntegrityContext<T>(context: IntegrityContext, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof IntegrityError) err.context = { ...context, ...err.context };
    throw err;
  }
}
