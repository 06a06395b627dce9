/**
 * RFC 9457 problem details. Every error the API returns is one of these types; the `type` URIs are stable
 * and listed in README.md (API conventions). Details say what is wrong in words a caller can act on and never contain
 * personal data, secrets or stack traces.
 */

export const PROBLEM_TYPES = {
  "malformed-request": { status: 400, title: "The request is malformed" },
  "invalid-json": { status: 400, title: "The body is not valid JSON" },
  "invalid-parameter": { status: 400, title: "A query parameter or header is invalid" },
  unauthenticated: { status: 401, title: "Authentication is required" },
  forbidden: { status: 403, title: "This credential may not do that" },
  "tenant-suspended": { status: 403, title: "The tenant is suspended" },
  "not-found": { status: 404, title: "Not found" },
  "method-not-allowed": { status: 405, title: "Method not allowed" },
  conflict: { status: 409, title: "The request conflicts with the current state" },
  "request-timeout": { status: 408, title: "The request body stopped arriving" },
  "idempotency-in-progress": { status: 409, title: "A request with this Idempotency-Key is still being processed" },
  "upload-expired": { status: 410, title: "The upload has expired and was deleted" },
  "upload-deleted": { status: 410, title: "The upload was deleted" },
  "download-limit-reached": { status: 410, title: "The upload's download limit is reached" },
  "payload-too-large": { status: 413, title: "The body is too large" },
  "unsupported-media-type": { status: 415, title: "Unsupported content type" },
  "range-not-satisfiable": { status: 416, title: "The requested range cannot be served" },
  "validation-failed": { status: 422, title: "The request body is invalid" },
  "idempotency-key-reused": { status: 422, title: "The Idempotency-Key was used with a different request" },
  "internal-error": { status: 500, title: "Internal error" },
  "integrity-error": { status: 500, title: "Stored data failed its integrity check" },
  unavailable: { status: 503, title: "A dependency is unavailable" },
} as const;

export type ProblemType = keyof typeof PROBLEM_TYPES;

export const PROBLEM_URI_PREFIX = "urn:safedata:problem:";

export function problemUri(type: ProblemType): string {
  return PROBLEM_URI_PREFIX + type;
}

export interface FieldError {
  /** Dotted path into the request, e.g. "recipients.0". Never the offending value. */
  path: string;
  message: string;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  errors?: FieldError[];
}

/** The one error type the code throws for anything a caller should see. Mapped to problem+json in one place. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly problem: ProblemType,
    readonly detail: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = "AppError";
    this.status = PROBLEM_TYPES[problem].status;
  }
}

export function problemBody(problem: ProblemType, detail: string, requestId?: string, errors?: FieldError[]): ProblemBody {
  const def = PROBLEM_TYPES[problem];
  const body: ProblemBody = { type: problemUri(problem), title: def.title, status: def.status, detail };
  if (requestId) body.requestId = requestId;
  if (errors && errors.length > 0) body.errors = errors;
  return body;
}
