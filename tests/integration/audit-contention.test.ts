/**
 * The audit chain under contention: one tenant's chain takes entries in one order, so concurrent writers race for
 * each position. Many requests of one tenant at once, in one instance and across two (two stores on the same
 * container, as two Functions instances would have), must all be written: never a 500 for a lost race, no position
 * given twice, no gap, and the chain verifies. Found by the consent benchmark (50 clients recording into one tenant).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice } from "../helpers/consents";
import { AuditStore } from "../../shared/stores/audit-store";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  t.clock.set("2026-06-01T08:00:00.000Z");
});
afterAll(async () => {
  await t?.stop();
});

const entriesOf = async (tenantId: string) =>
  (
    await t.raw.containers.audit.items
      .query({ query: "SELECT c.seq FROM c WHERE c.tenantId = @t AND c.type = 'audit-entry' ORDER BY c.seq ASC", parameters: [{ name: "@t", value: tenantId }] })
      .fetchAll()
  ).resources.map((r: { seq: number }) => r.seq);

describe("one tenant's chain under many writers", () => {
  it("writes 150 concurrent appends from two instances, each position once, and the chain verifies", async () => {
    const tenantId = "tn-contention000001";
    const other = new AuditStore(t.raw.containers.audit, t.clock);
    const appends = Array.from({ length: 150 }, (_, i) =>
      (i % 3 === 0 ? other : t.services.audit).append({ tenantId, actor: "system", action: "tenant.created", target: { type: "tenant", id: tenantId }, details: { i } }),
    );
    const results = await Promise.allSettled(appends);
    const failed = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason));
    expect(failed, failed[0]).toEqual([]);
    const seqs = await entriesOf(tenantId);
    expect(seqs).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    const verified = await t.services.audit.verify(tenantId);
    expect(verified).toMatchObject({ valid: true, complete: true, lastSeq: 150 });
  });

  it("records 100 consents into one tenant at once over HTTP: every one 201", async () => {
    const tenant = await t.createTenant("Busy Co");
    await purposeWithNotice(t, tenant.apiKey, "newsletter");
    const statuses = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await t.call("POST", "v1/consents", {
          key: tenant.apiKey,
          json: { email: `busy.${i}@subject.example`, purpose: "newsletter", noticeVersion: 1, decision: "granted", method: "click", requestOrigin: "banner" },
        });
        await res.arrayBuffer();
        return res.status;
      }),
    );
    expect(statuses.filter((s) => s !== 201)).toEqual([]);
  });
});
