/** Retention classes beyond SafeData: a suspended tenant after its notice period, and idempotency records. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { TenantKeysDeletedError } from "../../../shared/keys/key-provider";
import { startTestApp, type TestApp } from "../../helpers/app";
import { eventually } from "../../helpers/eventually";
import { sweep } from "../../helpers/sweep";
import { download, uploadWith } from "../../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ settings: { SUSPENDED_TENANT_NOTICE_DAYS: "30" } });
});
afterAll(async () => {
  await t?.stop();
});

describe("a suspended tenant after its notice period", () => {
  it("keeps everything during the notice period, then deletes uploads, contact details and keys", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const bystander = await t.createTenant();
    const kept = await uploadWith(t, bystander.apiKey, 100, { expiresInDays: 32 });
    const start = t.clock.now().getTime();
    const uploads = [];
    for (let i = 0; i < 3; i++) uploads.push((await uploadWith(t, apiKey, 100 + i, { expiresInDays: 32 })).id);
    await t.admin("POST", `v1/admin/tenants/${tenantId}/suspend`);

    t.clock.set(start + 29 * 86_400_000);
    await sweep(t);
    for (const id of uploads) expect((await t.services.uploads.get(tenantId, id))!.status).toBe("available");

    t.clock.set(start + 30 * 86_400_000 + 1000);
    // Once the notice period is over the tenant cannot come back, even before the sweep has run.
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/reactivate`)).status).toBe(409);
    await sweep(t);
    for (const id of uploads) {
      const doc = await t.services.uploads.get(tenantId, id);
      expect(doc).toMatchObject({ status: "deleted", dataKey: null, deletion: { reason: "tenant-offboarded" } });
    }
    const tenant = await t.services.tenants.get(tenantId);
    expect(tenant).toMatchObject({ status: "suspended", contactEmail: null, webhookUrl: null });
    expect(tenant!.offboardedAt).not.toBeNull();
    await expect(t.services.keys.currentKek(tenantId)).rejects.toBeInstanceOf(Error);
    await expect(t.services.keys.ensureTenantKeys(tenantId)).rejects.toBeInstanceOf(TenantKeysDeletedError);
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/reactivate`)).status).toBe(409);

    const { resources } = await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'audit-entry'", parameters: [{ name: "@t", value: tenantId }] })
      .fetchAll();
    const actions = resources.map((r: { action: string }) => r.action);
    expect(actions.filter((a) => a === "tenant.offboarded")).toHaveLength(1);
    const receipt = resources.find((r: { action: string }) => r.action === "retention.receipt") as { details: { offboarded: number } } | undefined;
    expect(receipt?.details.offboarded).toBe(3);

    // Another tenant's data is untouched.
    expect((await download(t, bystander.apiKey, kept.id)).body.equals(kept.content)).toBe(true);
    t.clock.set(start);
  });
});

describe("idempotency records", () => {
  it("are deleted by the sweep after 24 hours (Cosmos TTL is only a backstop)", async () => {
    const { apiKey, tenantId } = await t.createTenant();
    const headers = { "idempotency-key": "short-lived" };
    await t.call("POST", "v1/uploads", {
      key: apiKey,
      headers,
      json: { senderReference: "x", recipients: ["a@b.example"], dataSubjects: ["c@d.example"], categories: ["contact"], fileName: "f", contentType: "text/plain", size: 1 },
    });
    const count = async () =>
      (await t.raw.containers.idempotency.items.query({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenantId }] }).fetchAll()).resources.length;
    expect(await count()).toBe(1);
    const start = t.clock.now().getTime();
    t.clock.set(start + 23 * 3_600_000);
    await sweep(t);
    expect(await count()).toBe(1);
    t.clock.set(start + 24 * 3_600_000 + 1000);
    await sweep(t);
    expect(await count()).toBe(0);
    t.clock.set(start);
  });
});

describe("first-download notices whose message was lost", () => {
  it("are queued again by the sweep and sent once", async () => {
    const { apiKey, tenantId } = await t.createTenant();
    const { id } = await uploadWith(t, apiKey, 10, { notifyOnFirstDownload: "told@sender.example" });
    // A download was counted but its request failed before the notice was queued.
    const doc = (await t.services.uploads.get(tenantId, id))!;
    const { _etag, ...rest } = doc;
    await t.services.uploads.replaceIfUnchanged({ ...rest, downloads: 1, firstDownloadAt: t.clock.now().toISOString() }, _etag);
    const start = t.clock.now().getTime();
    t.clock.set(start + 11 * 60_000);
    await sweep(t);
    await sweep(t);
    await eventually(async () => expect((await t.services.uploads.get(tenantId, id))?.senderNotifiedAt).not.toBeNull());
    const outbox = t.raw.blobs.getContainerClient("email-outbox");
    let mails = 0;
    for await (const b of outbox.listBlobsFlat()) if (b.name.endsWith(`first-download-${id}.json`)) mails++;
    expect(mails).toBe(1);
    t.clock.set(start);
  });
});
