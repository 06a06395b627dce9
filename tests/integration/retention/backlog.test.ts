/**
 * A backlog of 2,500 expired uploads across 5 tenants is purged completely by repeated sweeps (each taking at most 600),
 * with none purged early. Records are written straight to Cosmos (creating them through the API would only test the
 * API again); one in ten has a payload blob, so blob deletion is exercised too. Volume (10,000 and more) is measured by
 * `npm run bench` (bench/purge.ts), not here: this test proves the catch-up across sweeps, not the speed.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { BLOB_CONTAINERS } from "../../../shared/config/resources";
import { seedUploadRecord, writeSeedUploads } from "../../../dev/seed-uploads";
import type { UploadDoc } from "../../../shared/stores/upload-store";
import { runRetentionSweep } from "../../../shared/usecases/retention";
import { startTestApp, type TestApp } from "../../helpers/app";
import { drainPurge } from "../../helpers/sweep";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const DAY = 86_400_000;
const EXPIRED = 2_500;
const PER_TENANT = EXPIRED / 5;

describe("a large backlog", () => {
  it("purges 2,500 expired uploads across 5 tenants with repeated sweeps, none early, none left", async () => {
    const tenants = [];
    for (let i = 0; i < 5; i++) tenants.push(await t.createTenant(`Backlog ${i}`));
    const now = t.clock.now();
    const expired: UploadDoc[] = [];
    const notYet: UploadDoc[] = [];
    for (let i = 0; i < EXPIRED; i++) {
      const tenant = tenants[i % 5]!;
      // Created 33 to 60 days ago: all past their 32 days, oldest first in various orders across tenants.
      expired.push(seedUploadRecord(tenant.tenantId, new Date(now.getTime() - (33 + (i % 28)) * DAY - i * 1000), 32, i % 10 === 0));
    }
    for (let i = 0; i < 250; i++) notYet.push(seedUploadRecord(tenants[i % 5]!.tenantId, new Date(now.getTime() - 31 * DAY), 32, false));
    const payloads = t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name);
    await writeSeedUploads(t.raw.containers.uploads, payloads, [...expired, ...notYet]);

    let sweeps = 0;
    for (;;) {
      const r = await runRetentionSweep(t.services, { maxItems: 600 });
      sweeps++;
      if (r.due === 0) break;
      await drainPurge(t, 240_000);
      expect(sweeps).toBeLessThan(10);
    }
    expect(sweeps).toBeGreaterThanOrEqual(4);

    const count = async (where: string) =>
      (await t.raw.containers.uploads.items.query({ query: `SELECT VALUE COUNT(1) FROM c WHERE c.type = 'upload' AND ${where}` }).fetchAll()).resources[0];
    expect(await count("c.status = 'expired'")).toBe(EXPIRED);
    expect(await count("c.status = 'available'")).toBe(250);
    for (const d of notYet.slice(0, 20)) expect((await t.services.uploads.get(d.tenantId, d.id))?.dataKey).not.toBeNull();
    let blobs = 0;
    for await (const b of payloads.listBlobsFlat()) if (b.name.endsWith("/seed")) blobs++;
    expect(blobs).toBe(0);

    // Each tenant: one purge entry per upload, receipts covering exactly its ids, and an intact chain.
    for (const tenant of tenants) {
      const { resources: purgedEntries } = await t.raw.containers.audit.items
        .query({ query: "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @t AND c.action = 'upload.purged'", parameters: [{ name: "@t", value: tenant.tenantId }] })
        .fetchAll();
      expect(purgedEntries[0]).toBe(PER_TENANT);
      const { resources: receipts } = await t.raw.containers.audit.items
        .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = 'retention.receipt'", parameters: [{ name: "@t", value: tenant.tenantId }] })
        .fetchAll();
      expect(receipts.reduce((n: number, r: { details: { count: number } }) => n + r.details.count, 0)).toBe(PER_TENANT);
      const verify = (await (await t.call("GET", "v1/audit/verify", { key: tenant.apiKey })).json()) as { valid: boolean; entriesChecked: number };
      expect(verify.valid).toBe(true);
    }
  }, 600_000);
});
