/** The tenant's audit log: read it, and verify its hash chain. */
import { app } from "@azure/functions";
import { z } from "zod";
import { AUDIT_ACTIONS } from "../shared/domain/audit-chain";
import { httpEndpoint } from "../shared/http/endpoint";
import { AppError } from "../shared/http/problem";
import { isoDateTime, pageOf, pagingQuery } from "../shared/http/schemas";

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
  handler: async ({ services, principal, query }) => {
    const from = query.from ? new Date(query.from) : undefined;
    const to = query.to ? new Date(query.to) : undefined;
    if (from && to && from > to) throw new AppError("invalid-parameter", "from must not be after to");
    const page = await services.audit.list(principal.tenantId, { from, to, limit: query.limit, cursor: query.cursor });
    return {
      status: 200,
      json: { items: page.items.map(({ tenantId: _t, ...e }) => e), nextCursor: page.cursor },
    };
  },
});
app.http(list.name, list.options);

const verify = httpEndpoint({
  name: "audit-verify",
  method: "GET",
  route: "v1/audit/verify",
  auth: "tenant",
  tags,
  summary: "Check the whole hash chain and report the first broken link",
  responses: {
    200: {
      description: "The verification result (valid or not)",
      schema: z.object({
        valid: z.boolean(),
        entriesChecked: z.number().int(),
        lastSeq: z.number().int(),
        lastHash: z.string(),
        firstBroken: z.object({ seq: z.number().int(), entryId: z.string(), reason: z.string(), detail: z.string() }).optional(),
      }),
    },
  },
  handler: async ({ services, principal }) => ({ status: 200, json: await services.audit.verify(principal.tenantId) }),
});
app.http(verify.name, verify.options);
