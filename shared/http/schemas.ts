/** Schemas several endpoints share: paging, problem bodies. */
import { z } from "zod";

export const pagingQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50).describe("Items per page (1-200, default 50)"),
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

/** A one-line human string: no control characters, trimmed, bounded. */
export const singleLine = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((v) => ![...v].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f), "must not contain control characters");
