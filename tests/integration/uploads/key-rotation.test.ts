/** KEK rotation: new uploads use the new key at once, old ones stay readable, the queue job re-wraps them. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { BLOB_CONTAINERS } from "../../../shared/config/resources";
import { startTestApp, type TestApp } from "../../helpers/app";
import { eventually } from "../../helpers/eventually";
import { download, uploadWith } from "../../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

describe("key-encryption key rotation", () => {
  it("wraps new keys with the new version, keeps old uploads readable, and re-wraps them without touching blobs", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const old = [];
    for (let i = 0; i < 5; i++) old.push(await uploadWith(t, apiKey, 1000 + i));
    const etags = new Map<string, string>();
    for (const u of old) {
      const doc = await t.services.uploads.get(tenantId, u.id);
      expect(doc!.dataKey!.kekVersion).toBe("1");
      const props = await t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlobClient(doc!.content!.blobName).getProperties();
      etags.set(u.id, props.etag!);
    }

    const rotated = await t.admin("POST", `v1/admin/tenants/${tenantId}/kek/rotate`);
    expect(rotated.status).toBe(202);
    expect(await rotated.json()).toEqual({ previousVersion: "1", version: "2" });

    const fresh = await uploadWith(t, apiKey, 10);
    expect((await t.services.uploads.get(tenantId, fresh.id))!.dataKey!.kekVersion).toBe("2");
    for (const u of old) expect((await download(t, apiKey, u.id)).body.equals(u.content)).toBe(true);

    t.host.pokeQueues();
    await eventually(async () => {
      const status = (await (await t.admin("GET", `v1/admin/tenants/${tenantId}/kek`)).json()) as { currentVersion: string; uploadsOnOlderVersions: number };
      expect(status).toEqual({ currentVersion: "2", uploadsOnOlderVersions: 0 });
    }, 60_000);
    for (const u of old) {
      const doc = await t.services.uploads.get(tenantId, u.id);
      expect(doc!.dataKey!.kekVersion).toBe("2");
      const props = await t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlobClient(doc!.content!.blobName).getProperties();
      expect(props.etag).toBe(etags.get(u.id));
      expect((await download(t, apiKey, u.id)).body.equals(u.content)).toBe(true);
    }
    const tenant = await t.services.tenants.get(tenantId);
    expect(tenant!.contactEmail!.kekVersion).toBe("2");
    const detail = (await (await t.admin("GET", `v1/admin/tenants/${tenantId}`)).json()) as { contactEmail: string };
    expect(detail.contactEmail).toMatch(/@controller\.example$/);

    const audit = (await (await t.call("GET", "v1/audit?limit=200", { key: apiKey })).json()) as { items: Array<{ action: string; details: Record<string, unknown> }> };
    expect(audit.items.find((e) => e.action === "key.rotated")?.details).toEqual({ previousVersion: "1", version: "2" });
    expect(audit.items.filter((e) => e.action === "key.rewrapped").reduce((n, e) => n + (e.details.uploads as number), 0)).toBe(5);
  });

  it("re-wraps in batches: a job with more uploads than one batch continues through the queue", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { rewrapBatch } = await import("../../../shared/usecases/key-rotation.js");
    for (let i = 0; i < 7; i++) await uploadWith(t, apiKey, 1);
    // Rotate without queuing the job, so the batches below are the only ones that run.
    const next = await t.services.keys.rotateKek(tenantId);
    const tenant = (await t.services.tenants.get(tenantId))!;
    const { _etag, ...doc } = tenant;
    await t.services.tenants.replace({ ...doc, kekVersion: next.version }, _etag);
    const first = await rewrapBatch(t.services, tenantId, 3);
    expect(first).toMatchObject({ rewrapped: 3, remaining: true });
    await rewrapBatch(t.services, tenantId, 3);
    const last = await rewrapBatch(t.services, tenantId, 3);
    expect(last).toMatchObject({ rewrapped: 1, remaining: false });
    expect(await rewrapBatch(t.services, tenantId, 3)).toMatchObject({ rewrapped: 0, remaining: false });
  });

  it("answers 404 for an unknown tenant", async () => {
    expect((await t.admin("POST", "v1/admin/tenants/tn-aaaaaaaaaaaaaaaa/kek/rotate")).status).toBe(404);
  });
});
