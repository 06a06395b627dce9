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

  it("takes an entry whose create was written but whose answer was lost (a 409 on the retry) as its own, not as another writer's", async () => {
    const tenantId = "tn-lostanswer00001";
    const real = t.raw.containers.audit;
    let lose = true;
    // The container as the SDK sees it when the create's answer is lost and the retry meets the entry it wrote.
    const lossy = new Proxy(real, {
      get(target, prop) {
        if (prop !== "items") {
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        }
        return new Proxy(target.items, {
          get(items, p) {
            if (p === "create") {
              return async (doc: { type?: string }, opts?: unknown) => {
                const written = await items.create(doc as never, opts as never);
                if (lose && doc.type === "audit-entry") {
                  lose = false;
                  throw Object.assign(new Error("Entity with the specified id already exists in the system."), { code: 409 });
                }
                return written;
              };
            }
            const v = Reflect.get(items, p) as unknown;
            return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(items) : v;
          },
        });
      },
    });
    const store = new AuditStore(lossy, t.clock);
    const entry = await store.append({ tenantId, actor: "system", action: "tenant.created", target: { type: "tenant", id: tenantId }, details: {} });
    expect(entry.seq).toBe(1);
    expect(await entriesOf(tenantId), "one entry, not two").toEqual([1]);
    expect(await t.services.audit.verify(tenantId)).toMatchObject({ valid: true, lastSeq: 1 });
  });
});
