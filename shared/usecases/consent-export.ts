/**
 * Exports of a tenant's consent events for a period, for audits: every recorded event (one whose audit entry is
 * written) recorded in [from, to), in the audit log's order, with its subject as the opaque id and the keyed hash of
 * the address (HMAC-SHA256 under the tenant's lookup secret, never the address), the IP address truncated, and the
 * IAB strings' headers (the strings stay encrypted). Nothing is decrypted, so nothing personal in clear leaves.
 *
 * As paged JSON (the caller's cursor is the last audit sequence number of the page before, sealed by the HTTP layer)
 * or as rows for CSV, read from storage a page at a time as the caller takes them. Each export (each JSON page, each
 * CSV) is written to the audit log (`consent.exported`) before its answer.
 */
import { eventConflictsWithGpc, type FirstGpcSeqs } from "../domain/consent-signals";
import { AppError } from "../errors";
import type { Services } from "../services";
import type { EventDoc } from "../stores/consent-store";
import { recordAudit, type TenantCaller } from "./audit-trail";
import { eventView, gpcHistoryOf, type ConsentEventView } from "./consents";

/** How many events one CSV read takes from storage at a time. */
const CSV_READ_PAGE = 500;

export interface ExportPeriod {
  from: string;
  to: string;
}

/** An exported event: the API's event view with the subject's keyed hash. */
export type ExportedEvent = ConsentEventView & { subjectHash: string };

const exported = (e: EventDoc, firstGpc: FirstGpcSeqs): ExportedEvent => ({ ...eventView({ ...e, audit: e.audit! }, firstGpc), subjectHash: e.subjectHash });

function periodOf(input: ExportPeriod): { from: Date; to: Date } {
  const from = new Date(input.from);
  const to = new Date(input.to);
  if (!(from.getTime() < to.getTime())) {
    throw new AppError("invalid-parameter", "'to' must be later than 'from'", { errors: [{ path: "query.to", message: "must be later than from" }] });
  }
  return { from, to };
}

/** The store's own cursor: the audit sequence number of the last event of the page before. */
function afterSeqOf(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  if (!/^[1-9][0-9]{0,15}$/.test(cursor)) throw new AppError("invalid-parameter", "the cursor is not one this list gave");
  return Number(cursor);
}

/** GET /consents/export (JSON): one page of the period's events, oldest recorded first. Errors: invalid-parameter. */
export async function exportConsentPage(
  s: Services,
  caller: TenantCaller,
  input: ExportPeriod & { limit: number; cursor?: string },
): Promise<{ items: ExportedEvent[]; nextCursor?: string }> {
  const { from, to } = periodOf(input);
  const afterSeq = afterSeqOf(input.cursor);
  const page = await s.consents.recordedEventsBetween(caller.tenantId, from, to, afterSeq, input.limit + 1);
  const items = page.slice(0, input.limit);
  await recordAudit(s, caller.tenantId, caller, "consent.exported", { type: "tenant", id: caller.tenantId }, {
    format: "json",
    from: from.toISOString(),
    to: to.toISOString(),
    afterSeq,
    events: items.length,
  });
  const last = items.at(-1);
  const firstGpc = await gpcHistoryOf(s, caller.tenantId, items);
  return { items: items.map((e) => exported(e, firstGpc)), ...(page.length > input.limit && last ? { nextCursor: String(last.audit!.seq) } : {}) };
}

/** The CSV's columns, in order (a header record names them). */
export const EXPORT_CSV_COLUMNS = [
  "eventId",
  "recordedAt",
  "givenAt",
  "subjectId",
  "subjectHash",
  "purpose",
  "noticeVersion",
  "noticeSha256",
  "decision",
  "method",
  "requestOrigin",
  "propertyId",
  "language",
  "ipAddress",
  "country",
  "countrySource",
  "countryDatabase",
  "gpc",
  "conflictsWithGpc",
  "tcfCmpId",
  "tcfCmpVersion",
  "tcfVendorListVersion",
  "tcfPolicyVersion",
  "tcfCreated",
  "tcfLastUpdated",
  "gppSections",
  "recordedBy",
  "digestScheme",
  "digest",
  "auditSeq",
  "auditHash",
] as const;

type Cell = string | number | boolean | null;

function csvRow(e: EventDoc, firstGpc: FirstGpcSeqs): Cell[] {
  const tcf = e.signals.tcf?.header ?? null;
  return [
    e.id,
    e.recordedAt,
    e.givenAt,
    e.subjectId,
    e.subjectHash,
    e.purposeKey,
    e.noticeVersion,
    e.noticeSha256,
    e.decision,
    e.method,
    e.requestOrigin,
    e.propertyId,
    e.language,
    e.ipTruncated,
    e.location?.country ?? null,
    e.location?.source ?? null,
    e.location?.database ?? null,
    e.gpc,
    eventConflictsWithGpc(e, firstGpc),
    tcf?.cmpId ?? null,
    tcf?.cmpVersion ?? null,
    tcf?.vendorListVersion ?? null,
    tcf?.policyVersion ?? null,
    tcf?.created ?? null,
    tcf?.lastUpdated ?? null,
    e.signals.gpp ? e.signals.gpp.header.sections.join(" ") : null,
    e.actor,
    e.digestScheme,
    e.digest,
    e.audit!.seq,
    e.audit!.hash,
  ];
}

/**
 * GET /consents/export with Accept: text/csv: every event of the period after `cursor` (if given), as rows in the
 * order of EXPORT_CSV_COLUMNS, read from storage CSV_READ_PAGE at a time as the caller takes them (no limit on the
 * count; a storage failure part-way ends the stream with an error, so the answer is cut off, never quietly short).
 * The export is audited before the first row. Errors: invalid-parameter.
 */
export async function exportConsentRows(s: Services, caller: TenantCaller, input: ExportPeriod & { cursor?: string }): Promise<AsyncIterable<Cell[]>> {
  const { from, to } = periodOf(input);
  const start = afterSeqOf(input.cursor);
  await recordAudit(s, caller.tenantId, caller, "consent.exported", { type: "tenant", id: caller.tenantId }, {
    format: "csv",
    from: from.toISOString(),
    to: to.toISOString(),
    afterSeq: start,
  });
  return (async function* () {
    for (let afterSeq = start; ; ) {
      const page = await s.consents.recordedEventsBetween(caller.tenantId, from, to, afterSeq, CSV_READ_PAGE);
      const firstGpc = await gpcHistoryOf(s, caller.tenantId, page);
      for (const e of page) yield csvRow(e, firstGpc);
      if (page.length < CSV_READ_PAGE) return;
      afterSeq = page.at(-1)!.audit!.seq;
    }
  })();
}
