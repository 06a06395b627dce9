/** Schemas several endpoints share: paging, problem bodies. */
import { z } from "zod";
import { beforeEarliestFactTime, EARLIEST_FACT_TIME_MESSAGE } from "../domain/time";

/** Decimal digits only: no sign, no spaces, no "0x", exponent, fraction or "_" (which Number() would all accept). */
const DECIMAL_DIGITS = /^[0-9]{1,15}$/;

/**
 * A whole-number query parameter between `min` and `max`, written in decimal digits only (leading zeros allowed).
 * Anything else a number parser would take (`0x10`, `1e1`, ` 5`, `+5`, `5.0`, an empty value) is refused.
 * The OpenAPI document shows it as an integer with its bounds.
 */
export const queryInteger = (min: number, max: number = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(DECIMAL_DIGITS, "must be a whole number in decimal digits")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .meta({ type: "integer", minimum: min, ...(max < Number.MAX_SAFE_INTEGER ? { maximum: max } : {}) });

/** queryInteger with a value for when the parameter is absent (shown as the default in the OpenAPI document). */
export const queryIntegerOr = (fallback: number, min: number, max?: number) =>
  queryInteger(min, max)
    .default(fallback)
    .meta({ type: "integer", minimum: min, ...(max !== undefined ? { maximum: max } : {}), default: fallback });

export const pagingQuery = z.strictObject({
  limit: queryIntegerOr(50, 1, 200).describe("Items per page (1-200, default 50)"),
  cursor: z
    .string()
    .max(4096)
    .regex(/^[A-Za-z0-9_-]+$/, "must be a cursor returned by a previous page")
    .optional()
    .describe("Opaque cursor from the previous page's nextCursor"),
});

export const problemSchema = z.object({
  type: z.string().describe("Stable problem type URI (urn:safedata:problem:...)"),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  requestId: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().optional().describe("Absent on the last page") });

export const isoDateTime = z.iso.datetime({ offset: true });

/**
 * The time of a fact the caller reports (givenAt, receivedAt, awareAt, at): ISO 8601 with an offset, not before
 * EARLIEST_FACT_TIME (shared/domain/time.ts). Filters (from, to, dueBefore) keep isoDateTime: an early bound there
 * harms nothing.
 */
export const factDateTime = isoDateTime.refine((v) => !beforeEarliestFactTime(v), EARLIEST_FACT_TIME_MESSAGE);

/** A one-line human string: no control characters, trimmed, bounded. */
export const singleLine = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((v) => ![...v].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f), "must not contain control characters");
