/** The tenant's audit log: read it, verify its hash chain, and anchor the chain heads outside the database hourly. */
import { app, type Timer } from "@azure/functions";
import { z } from "zod";
import { AUDIT_ACTIONS } from "../shared/domain/audit-chain";
import { httpEndpoint } from "../shared/http/endpoint";
import { AppError } from "../shared/errors";
import { isoDateTime, pageOf, pagingQuery, queryInteger } from "../shared/http/schemas";
import { invocationLog } from "../shared/observability";
import { services } from "../shared/services";

import { ANCHOR_SCHEDULE, runAnchorSweep } from "../shared/usecases/audit-anchoring";
import { listAuditEntries, MAX_VERIFY_ENTRIES, verifyAudit } from "../shared/usecases/audit-log";

const tags = ["Audit"];

const auditEntry = z.object({
  seq: z.number().int(),
  at: z.string(),
  actor: z.string().describe("key:<apiKeyId>, admin, or system:<function>"),
  action: z.enum(AUDIT_ACTIONS),
  target: z.object({ type: z.string(), id: z.string() }).nullable(),
  requestId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});

const list = httpEndpoint({
  name: "audit-list",
  method: "GET",
  route: "v1/audit",
  auth: "tenant",
  tags,
  summary: "Read the audit log, oldest first, optionally within a time range",
  query: pagingQuery.extend({
    from: isoDateTime.optional().describe("Entries at or after this time"),
    to: isoDateTime.optional().describe("Entries before this time"),
  }),
  responses: { 200: { description: "A page of entries", schema: pageOf(auditEntry) } },
  handler: async ({ services, principal, query }) => ({
    status: 200,
    json: await listAuditEntries(services, principal.tenantId, {
      from: query.from ? new Date(query.from) : undefined,
      to: query.to ? new Date(query.to) : undefined,
      limit: query.limit,
      cursor: query.cursor,
    }),
  }),
});
app.http(list.name, list.options);

const verify = httpEndpoint({
  name: "audit-verify",
  method: "GET",
  route: "v1/audit/verify",
  auth: "tenant",
  tags,
  summary: "Check the hash chain and report the first broken link",
  description:
    `Checks at most ${MAX_VERIFY_ENTRIES} entries per call. When complete is false, call again with fromSeq and prevHash from next: ` +
    "the caller keeps the last verified hash, so a later part is checked against it, not against anything stored. " +
    "Each part is also checked against the chain heads anchored hourly outside the database, in append-only storage: every anchored " +
    "entry in the part must have the anchored hash, and the part that reaches the end must reach the newest anchor.",
  query: z.strictObject({
    fromSeq: queryInteger(1).optional().describe("Start at this entry (default 1)"),
    prevHash: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex characters").optional().describe("Hash of the entry before fromSeq"),
    maxEntries: queryInteger(1)
      .transform((n) => Math.min(n, MAX_VERIFY_ENTRIES))
      .optional()
      .describe(`Entries to check in this call; more than ${MAX_VERIFY_ENTRIES} counts as ${MAX_VERIFY_ENTRIES}`),
  }),
  responses: {
    200: {
      description: "The verification result (valid or not)",
      schema: z.object({
        valid: z.boolean(),
        complete: z.boolean(),
        fromSeq: z.number().int(),
        entriesChecked: z.number().int(),
        lastSeq: z.number().int(),
        lastHash: z.string(),
        firstBroken: z.object({ seq: z.number().int(), entryId: z.string(), reason: z.string(), detail: z.string() }).optional(),
        next: z.object({ fromSeq: z.number().int(), prevHash: z.string() }).optional(),
        anchor: z
          .object({
            status: z.enum(["matches", "broken", "none", "not-checked"]),
            checked: z.number().int().describe("Anchors compared with an entry in this part"),
            latest: z.object({ seq: z.number().int(), anchoredAt: z.string() }).optional().describe("The newest anchor"),
          })
          .describe(
            "The check against the chain heads anchored outside the database: matches, broken (see firstBroken), none (no anchor yet), " +
              "or not-checked (the chain part is already broken, or checked no entry)",
          ),
      }),
    },
  },
  handler: async ({ services, principal, query }) => {
    const fromSeq = query.fromSeq ?? 1;
    if ((fromSeq > 1) !== (query.prevHash !== undefined)) {
      throw new AppError("invalid-parameter", "give prevHash (the hash of entry fromSeq - 1) exactly when fromSeq is above 1");
    }
    const from = query.prevHash ? { seq: fromSeq, prevHash: query.prevHash } : undefined;
    return { status: 200, json: await verifyAudit(services, principal.tenantId, { from, maxEntries: query.maxEntries }) };
  },
});
app.http(verify.name, verify.options);

app.timer("audit-anchor", {
  schedule: ANCHOR_SCHEDULE,
  handler: async (timer: Timer, context) => {
    await runAnchorSweep(services(), { pastDue: timer.isPastDue, log: invocationLog(context) });
  },
});
