/**
 * The application's error vocabulary, for every layer: a use case, a store or a rule that refuses something throws
 * an `AppError` naming one of these kinds, with a detail a caller can act on. Nothing here knows about HTTP;
 * shared/http/problem.ts maps each kind to an RFC 9457 problem type and status, in one place, and queue and timer
 * code reads the kind to decide what to do.
 *
 * Details never carry personal data, secrets or stack traces (they are shown to callers and written to logs).
 */

export const ERROR_KINDS = [
  /** The request cannot be understood as sent (a body of the wrong length, a broken header). */
  "malformed-request",
  "invalid-json",
  /** A query parameter, cursor or header value is not acceptable. */
  "invalid-parameter",
  "unauthenticated",
  "forbidden",
  "tenant-suspended",
  /** Processing that rests on consent was asked for a data subject whose latest decision for the purpose is not `granted`. */
  "consent-not-granted",
  /**
   * The data subject's processing is restricted (GDPR Art. 18) or they objected to it for the purpose (Art. 21): the
   * detail says which, never who.
   */
  "processing-restricted",
  "not-found",
  "method-not-allowed",
  /** None of the media types the caller accepts can be given (Accept, RFC 9110 §12.5.1, §15.5.7). */
  "not-acceptable",
  /** The request conflicts with the record's current state (already sent, being changed, offboarded...). */
  "conflict",
  /** A request body stopped arriving. */
  "request-timeout",
  "idempotency-in-progress",
  "upload-expired",
  "upload-deleted",
  "download-limit-reached",
  /** If-Match names a version that is no longer the current one (RFC 9110 §13.1.1, §15.5.13). */
  "precondition-failed",
  /** A change that must name the version it changes came without If-Match (RFC 6585 §3). */
  "precondition-required",
  "payload-too-large",
  "unsupported-media-type",
  "range-not-satisfiable",
  "validation-failed",
  "idempotency-key-reused",
  /** A data subject's one-time code or link did not verify them (wrong, expired, or the tries are used up). */
  "verification-failed",
  /** Too many requests for one thing (a withdrawal link) in a window; `retryAfterSeconds` says when to try again. */
  "too-many-requests",
  "internal-error",
  /** Stored data failed an authentication check (tampering, truncation, a missing blob). */
  "integrity-error",
  "unavailable",
] as const;

export type ErrorKind = (typeof ERROR_KINDS)[number];

export interface FieldError {
  /** Dotted path into the request, e.g. "recipients.0". Never the offending value. */
  path: string;
  message: string;
}

export interface AppErrorExtra {
  /** Which fields are wrong (validation). */
  errors?: FieldError[];
  /** The size of the content a range was asked of (range-not-satisfiable), so the caller can ask again. */
  contentSize?: number;
  /** When trying again may succeed, in seconds. */
  retryAfterSeconds?: number;
}

/** The one error type for anything a caller should be told. */
export class AppError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly detail: string,
    readonly extra: AppErrorExtra = {},
  ) {
    super(detail);
    this.name = "AppError";
  }
}

export const isAppError = (err: unknown, kind?: ErrorKind): err is AppError => err instanceof AppError && (kind === undefined || err.kind === kind);
