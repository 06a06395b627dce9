/** The HTTP status an Azure SDK error carries (Cosmos puts it in `code`, the core REST pipeline in `statusCode`). For adapters only. */
export function statusOf(err: unknown): number | undefined {
  if (typeof err === "object" && err !== null) {
    const e = err as { code?: unknown; statusCode?: unknown };
    if (typeof e.statusCode === "number") return e.statusCode;
    if (typeof e.code === "number") return e.code;
  }
  return undefined;
}

export const isNotFound = (err: unknown) => statusOf(err) === 404;
export const isConflict = (err: unknown) => statusOf(err) === 409;
export const isPreconditionFailed = (err: unknown) => statusOf(err) === 412;
