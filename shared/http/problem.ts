/**
 * RFC 9457 problem details: how each application error kind (shared/errors.ts) is answered over HTTP. The `type`
 * URIs are stable and listed in README.md (API conventions). This is the only place that knows the statuses.
 */
import { AppError, type AppErrorExtra, type ErrorKind, type FieldError } from "../errors";

export const PROBLEM_TYPES = {
  "malformed-request": { status: 400, title: "The request is malformed" },
  "invalid-json": { status: 400, title: "The body is not valid JSON" },
  "invalid-parameter": { status: 400, title: "A query parameter or header is invalid" },
  unauthenticated: { status: 401, title: "Authentication is required" },
  forbidden: { status: 403, title: "This credential may not do that" },
  "tenant-suspended": { status: 403, title: "The tenant is suspended" },
  "consent-not-granted": { status: 403, title: "A data subject's consent for this purpose is not in force" },
  "processing-restricted": { status: 403, title: "A data subject's processing is restricted or objected to" },
  "not-found": { status: 404, title: "Not found" },
  "method-not-allowed": { status: 405, title: "Method not allowed" },
  "not-acceptable": { status: 406, title: "None of the accepted media types can be given" },
  conflict: { status: 409, title: "The request conflicts with the current state" },
  "request-timeout": { status: 408, title: "The request body stopped arriving" },
  "idempotency-in-progress": { status: 409, title: "A request with this Idempotency-Key is still being processed" },
  "upload-expired": { status: 410, title: "The upload has expired and was deleted" },
  "upload-deleted": { status: 410, title: "The upload was deleted" },
  "download-limit-reached": { status: 410, title: "The upload's download limit is reached" },
  "precondition-failed": { status: 412, title: "The record has changed since the version If-Match names" },
  "precondition-required": { status: 428, title: "This change needs If-Match naming the current version" },
  "payload-too-large": { status: 413, title: "The body is too large" },
  "unsupported-media-type": { status: 415, title: "Unsupported content type" },
  "range-not-satisfiable": { status: 416, title: "The requested range cannot be served" },
  "validation-failed": { status: 422, title: "The request body is invalid" },
  "idempotency-key-reused": { status: 422, title: "The Idempotency-Key was used with a different request" },
  "verification-failed": { status: 422, title: "The data subject's identity was not verified" },
  "too-many-requests": { status: 429, title: "Too many requests; try again later" },
  "internal-error": { status: 500, title: "Internal error" },
  "integrity-error": { status: 500, title: "Stored data failed its integrity check" },
  unavailable: { status: 503, title: "A dependency is unavailable" },
} as const satisfies Record<ErrorKind, { status: number; title: string }>;

export type ProblemType = ErrorKind;

export const PROBLEM_URI_PREFIX = "urn:safedata:problem:";

export function problemUri(type: ProblemType): string {
  return PROBLEM_URI_PREFIX + type;
}

export const statusOfProblem = (kind: ErrorKind): number => PROBLEM_TYPES[kind].status;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  errors?: FieldError[];
}

/**
 * An error only the HTTP layer raises, with response headers that belong to it (`WWW-Authenticate` on 401, `Allow`
 * on 405).
 */
export class HttpError extends AppError {
  constructor(
    kind: ErrorKind,
    detail: string,
    readonly headers: Record<string, string>,
    extra: AppErrorExtra = {},
  ) {
    super(kind, detail, extra);
    this.name = "HttpError";
  }
}

/** The headers an error's answer carries beyond the usual ones (RFC 9110 §14.4: a 416 names the content's size). */
export function problemHeaders(err: AppError): Record<string, string> {
  const headers: Record<string, string> = err instanceof HttpError ? { ...err.headers } : {};
  if (err.kind === "range-not-satisfiable" && err.extra.contentSize !== undefined) headers["content-range"] = `bytes */${err.extra.contentSize}`;
  if (err.extra.retryAfterSeconds !== undefined) headers["retry-after"] = String(err.extra.retryAfterSeconds);
  return headers;
}

export function problemBody(problem: ProblemType, detail: string, requestId?: string, errors?: FieldError[]): ProblemBody {
  const def = PROBLEM_TYPES[problem];
  const body: ProblemBody = { type: problemUri(problem), title: def.title, status: def.status, detail };
  if (requestId) body.requestId = requestId;
  if (errors && errors.length > 0) body.errors = errors;
  return body;
}
