/** The 32-day purge, run by the timer through the local runtime, with the clock moved instead of waited for. */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { BLOB_CONTAINERS } from "../../../shared/config/resources";
import { BATCH_CLAIM_MS, purgeBatch } from "../../../shared/usecases/retention";
import { startTestApp, type TestApp } from "../../helpers/app";
import { recordedBatch, sweep } from "../../helpers/sweep";
import { createUpload, download, uploadWith } from "../../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const DAY = 86_400_000;

type Entry = { action: string; target: { id: string } | null; details: Record<string, unknown> };
async function audit(key: string): Promise<Entry[]> {
  const out: Entry[] = [];
  let cursor: string | undefined;
  do {
    const page = (await (await t.call("GET", `v1/audit?limit=200${cursor ? `&cursor=${cursor}` : ""}`, { key })).json()) as { items: Entry[]; nextCursor?: string };
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

describe("the 32-day purge", () => {
  it("keeps an upload readable until 32 days and purges it with the first sweep after", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const start = t.clock.now().getTime();
    const { id, content } = await uploadWith(t, apiKey, 70_000);
    const blobName = (await t.services.uploads.get(tenantId, id))!.content!.blobName;

    t.clock.set(start + 32 * DAY - 1000);
    await sweep(t);
    expect((await download(t, apiKey, id)).body.equals(content)).toBe(true);
    expect((await t.services.uploads.get(tenantId, id))!.status).toBe("available");

    t.clock.set(start + 32 * DAY);
    await sweep(t);
    const doc = await t.services.uploads.get(tenantId, id);
    expect(doc).toMatchObject({ status: "expired", dataKey: null, personal: null, content: { blobName } });
    expect(doc!.deletion).toMatchObject({ reason: "expired" });
    expect(await t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlobClient(blobName).exists()).toBe(false);
    const res = await download(t, apiKey, id);
    expect(res.res.status).toBe(410);
    expect(JSON.parse(res.body.toString()).type).toBe("urn:safedata:problem:upload-expired");

    const entries = await audit(apiKey);
    expect(entries.filter((e) => e.action === "upload.purged" && e.target?.id === id)).toHaveLength(1);
    const receipt = entries.find((e) => e.action === "retention.receipt");
    expect(receipt?.details).toMatchObject({ count: 1, ids: [id], expired: 1 });
    expect(JSON.stringify(doc)).not.toMatch(/@|user-4711/);
    t.clock.set(start);
  });

  it("purges uploads that never got content, and finishes deletions a crash left half done", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const start = t.clock.now().getTime();
    const { id: empty } = await createUpload(t, apiKey, { size: 10, expiresInDays: 1 });
    t.clock.set(start + DAY + 1);
    await sweep(t);
    expect((await t.services.uploads.get(tenantId, empty))!.status).toBe("expired");
    t.clock.set(start);
  });

  it.each(["shred", "blobs", "audit"] as const)("finishes exactly once when a run dies after the %s step", async (step) => {
    const { tenantId, apiKey } = await t.createTenant();
    const start = t.clock.now().getTime();
    const items = [];
    for (let i = 0; i < 3; i++) items.push((await uploadWith(t, apiKey, 100 + i, { expiresInDays: 2 })).id);
    t.clock.set(start + 2 * DAY);
    const msg = await recordedBatch(t, `crash-${step}`, "safedata", items.map((id) => ({ tenantId, id })));
    const kill = {
      after: (s: string) => {
        if (s === step) throw new Error(`killed after ${step}`);
      },
    };
    await expect(purgeBatch(t.services, msg, kill)).rejects.toThrow(/killed/);
    // Delivered again, the message leaves the item the crashed run holds a lease on, and dies on the next one.
    await expect(purgeBatch(t.services, msg, kill)).rejects.toThrow(/killed/);
    // Every delivery died (the message ends in the poison queue): once the batch's claim is over, a sweep queues
    // the items again and finishes them, the interrupted ones included, each exactly once.
    t.clock.advance({ ms: BATCH_CLAIM_MS + 15 * 60_000 });
    await sweep(t);
    for (const id of items) expect((await t.services.uploads.get(tenantId, id))!.status).toBe("expired");
    const entries = await audit(apiKey);
    for (const id of items) expect(entries.filter((e) => e.action === "upload.purged" && e.target?.id === id), id).toHaveLength(1);
    const receipted = entries.filter((e) => e.action === "retention.receipt").flatMap((e) => e.details.ids as string[]);
    expect([...receipted].sort()).toEqual([...items].sort());
    t.clock.set(start);
  });

  it("never purges an item twice when batches run concurrently or are delivered twice", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const start = t.clock.now().getTime();
    const items = [];
    for (let i = 0; i < 6; i++) items.push((await uploadWith(t, apiKey, 10, { expiresInDays: 1 })).id);
    t.clock.set(start + DAY);
    const msg = await recordedBatch(t, "twice", "safedata", items.map((id) => ({ tenantId, id })));
    const results = await Promise.all([purgeBatch(t.services, msg), purgeBatch(t.services, msg), purgeBatch(t.services, msg)]);
    expect(results.reduce((n, r) => n + r.purged, 0)).toBe(6);
    // Delivered once more after it was done (and its sweep closed): nothing happens.
    expect(await purgeBatch(t.services, msg)).toMatchObject({ purged: 0, skipped: 0, busy: 0, ignored: "unknown-batch" });
    await sweep(t);
    const entries = await audit(apiKey);
    for (const id of items) expect(entries.filter((e) => e.action === "upload.purged" && e.target?.id === id)).toHaveLength(1);
    t.clock.set(start);
  });
});

describe("sweep health", () => {
  it("turns unhealthy when sweeps stop and healthy again after a catch-up", async () => {
    const start = t.clock.now().getTime();
    await sweep(t);
    const health = async () => (await (await t.admin("GET", "health")).json()) as { status: string; sweeps: Array<{ name: string; healthy: boolean; reason: string }> };
    expect((await health()).sweeps.find((s) => s.name === "retention")).toMatchObject({ healthy: true });
    t.clock.set(start + 31 * 60_000);
    const stale = await health();
    expect(stale.status).toBe("unhealthy");
    expect(stale.sweeps.find((s) => s.name === "retention")).toMatchObject({ healthy: false });
    expect((await t.call("GET", "health")).status).toBe(503);
    await t.host.invokeTimerPastDue("retention-sweep");
    // Other timers (declared by other capabilities) did not run here; the retention sweep has caught up.
    expect((await health()).sweeps.find((s) => s.name === "retention")).toMatchObject({ healthy: true, reason: "keeping up" });
    expect(t.logs.some((l) => l.message.includes("retention.sweep-past-due"))).toBe(true);
    const hb = await t.services.heartbeats.get("retention");
    expect(hb?.lastPastDue).toBe(true);
    t.clock.set(start);
  });
});

describe("GET /api/v1/retention", () => {
  it("shows what is due per day and the receipts of what was purged", async () => {
    const { apiKey } = await t.createTenant();
    const start = t.clock.now().getTime();
    await createUpload(t, apiKey, { expiresInDays: 3 });
    await createUpload(t, apiKey, { expiresInDays: 3 });
    const { id } = await createUpload(t, apiKey, { expiresInDays: 1 });
    const view = (await (await t.call("GET", "v1/retention", { key: apiKey })).json()) as {
      policies: Array<{ class: string }>;
      uploads: { overdue: number; dueByDay: Array<{ date: string; count: number }> };
      receipts: unknown[];
    };
    expect(view.policies.map((p) => p.class)).toEqual(expect.arrayContaining(["safedata", "suspended-tenant", "closed-request", "breach-record"]));
    expect(view.uploads.dueByDay[1]!.count).toBe(1);
    expect(view.uploads.dueByDay[3]!.count).toBe(2);
    expect(view.uploads.dueByDay).toHaveLength(33);
    t.clock.set(start + DAY + 1);
    expect(((await (await t.call("GET", "v1/retention", { key: apiKey })).json()) as typeof view).uploads.overdue).toBe(1);
    await sweep(t);
    const after = (await (await t.call("GET", "v1/retention", { key: apiKey })).json()) as { receipts: Array<{ ids: string[]; count: number }> };
    expect(after.receipts[0]).toMatchObject({ count: 1, ids: [id] });
    t.clock.set(start);
  });
});
