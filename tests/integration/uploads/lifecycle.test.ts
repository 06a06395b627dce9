/** An upload's life: metadata, listing, download limits, expiry by the clock, deletion, audit, notification. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { BLOB_CONTAINERS, LOCAL_ONLY_BLOB_CONTAINERS } from "../../../shared/config/resources";
import { startTestApp, type TestApp } from "../../helpers/app";
import { eventually } from "../../helpers/eventually";
import { baseUpload, createUpload, download, putContent, uploadWith } from "../../helpers/uploads";

let t: TestApp;
let key: string;
let tenantId: string;
beforeAll(async () => {
  t = await startTestApp();
  ({ apiKey: key, tenantId } = await t.createTenant());
});
afterAll(async () => {
  await t?.stop();
});

type Audit = { items: Array<{ action: string; target: { id: string } | null; requestId: string | null; details: Record<string, unknown> }> };
async function auditFor(id: string) {
  const res = await t.call("GET", "v1/audit?limit=200", { key });
  return ((await res.json()) as Audit).items.filter((e) => e.target?.id === id);
}

describe("creating and reading", () => {
  it("returns the id, a 32-day expiry and where to send the content", async () => {
    const res = await t.call("POST", "v1/uploads", { key, json: { ...baseUpload, size: 10 } });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string; expiresAt: string; status: string; upload: { method: string; url: string } };
    expect(body.status).toBe("awaiting-content");
    expect(Date.parse(body.expiresAt) - t.clock.now().getTime()).toBe(32 * 86_400_000);
    expect(body.upload).toEqual({ method: "PUT", url: `/api/v1/uploads/${body.id}/content`, contentType: "application/pdf", size: 10 });
    expect(res.headers.get("location")).toBe(`/api/v1/uploads/${body.id}`);
  });

  it("takes a shorter life when asked", async () => {
    const { expiresAt } = await createUpload(t, key, { expiresInDays: 7 });
    expect(Date.parse(expiresAt) - t.clock.now().getTime()).toBe(7 * 86_400_000);
  });

  it("shows metadata with masked addresses and no content, and stores no address in clear", async () => {
    const { id } = await uploadWith(t, key, 100);
    const res = await t.call("GET", `v1/uploads/${id}`, { key });
    const text = await res.text();
    const meta = JSON.parse(text) as { recipients: { count: number; masked: string[] }; dataSubjects: { count: number }; fileName: string; status: string };
    expect(meta.status).toBe("available");
    expect(meta.recipients).toEqual({ count: 2, masked: ["a***@recipient.example", "b***@recipient.example"] });
    expect(meta.dataSubjects).toEqual({ count: 1 });
    expect(meta.fileName).toBe(baseUpload.fileName);
    for (const address of [...baseUpload.recipients, ...baseUpload.dataSubjects]) expect(text).not.toContain(address);
    const stored = JSON.stringify(await t.services.uploads.get(tenantId, id));
    for (const secret of [...baseUpload.recipients, ...baseUpload.dataSubjects, baseUpload.fileName, baseUpload.senderReference]) {
      expect(stored).not.toContain(secret);
    }
  });

  it("lists uploads newest first, filtered by status, in pages", async () => {
    const other = await t.createTenant();
    const a = await createUpload(t, other.apiKey);
    t.clock.advance({ seconds: 1 });
    const b = await uploadWith(t, other.apiKey, 5);
    const all = (await (await t.call("GET", "v1/uploads", { key: other.apiKey })).json()) as { items: Array<{ id: string; status: string }> };
    expect(all.items.map((i) => i.id)).toEqual([b.id, a.id]);
    const waiting = (await (await t.call("GET", "v1/uploads?status=awaiting-content", { key: other.apiKey })).json()) as { items: Array<{ id: string }> };
    expect(waiting.items.map((i) => i.id)).toEqual([a.id]);
    const page = (await (await t.call("GET", "v1/uploads?limit=1", { key: other.apiKey })).json()) as { items: unknown[]; nextCursor: string };
    expect(page.items).toHaveLength(1);
    const next = (await (await t.call("GET", `v1/uploads?limit=1&cursor=${page.nextCursor}`, { key: other.apiKey })).json()) as { items: Array<{ id: string }> };
    expect(next.items.map((i) => i.id)).toEqual([a.id]);
  });

  it("creates one upload for a retried POST with the same Idempotency-Key", async () => {
    const headers = { "idempotency-key": "upload-once-1" };
    const first = await t.call("POST", "v1/uploads", { key, json: { ...baseUpload, size: 1 }, headers });
    const second = await t.call("POST", "v1/uploads", { key, json: { ...baseUpload, size: 1 }, headers });
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(((await second.json()) as { id: string }).id).toBe(((await first.json()) as { id: string }).id);
  });
});

describe("content", () => {
  it("may be sent once: a second PUT is 409", async () => {
    const { id } = await uploadWith(t, key, 10);
    const again = await putContent(t, key, id, Buffer.alloc(10));
    expect(again.status).toBe(409);
  });

  it("is not downloadable before it was sent", async () => {
    const { id } = await createUpload(t, key, { size: 5 });
    expect((await download(t, key, id)).res.status).toBe(409);
  });
});

describe("download limits", () => {
  it("answers 410 download-limit-reached past maxDownloads", async () => {
    const { id } = await uploadWith(t, key, 1000, { maxDownloads: 2 });
    expect((await download(t, key, id)).res.status).toBe(200);
    expect((await download(t, key, id, { range: "bytes=0-9" })).res.status).toBe(206);
    const third = await download(t, key, id);
    expect(third.res.status).toBe(410);
    expect(JSON.parse(third.body.toString()).type).toBe("urn:safedata:problem:download-limit-reached");
  });

  it("lets exactly maxDownloads of many parallel downloads through", async () => {
    const { id } = await uploadWith(t, key, 1000, { maxDownloads: 3 });
    const results = await Promise.all(Array.from({ length: 10 }, () => download(t, key, id)));
    const statuses = results.map((r) => r.res.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.every((s) => s === 200 || s === 410 || s === 409)).toBe(true);
  });
});

describe("expiry", () => {
  it("is readable one second before 32 days and gone at 32 days, before any purge runs", async () => {
    const { id, content } = await uploadWith(t, key, 500);
    const created = t.clock.now().getTime();
    t.clock.set(created + 32 * 86_400_000 - 1000);
    const before = await download(t, key, id);
    expect(before.res.status).toBe(200);
    expect(before.body.equals(content)).toBe(true);
    t.clock.set(created + 32 * 86_400_000);
    const after = await download(t, key, id);
    expect(after.res.status).toBe(410);
    expect(JSON.parse(after.body.toString()).type).toBe("urn:safedata:problem:upload-expired");
    t.clock.set(created);
  });

  it("refuses content for an expired upload", async () => {
    const { id } = await createUpload(t, key, { size: 3, expiresInDays: 1 });
    t.clock.advance({ days: 1 });
    const res = await putContent(t, key, id, Buffer.from("abc"));
    expect(res.status).toBe(410);
    t.clock.advance({ days: -1 });
  });
});

describe("deletion", () => {
  it("shreds the key, deletes the blob, leaves a tombstone and answers 410 upload-deleted", async () => {
    const { id } = await uploadWith(t, key, 2000);
    const before = await t.services.uploads.get(tenantId, id);
    const blobName = before!.content!.blobName;
    const del = await t.call("DELETE", `v1/uploads/${id}`, { key, headers: { "x-request-id": "0d7e1e6a-5b2c-4f0e-9a1d-3c4b5a6f7e80" } });
    expect(del.status).toBe(204);

    const doc = await t.services.uploads.get(tenantId, id);
    expect(doc).toMatchObject({ status: "deleted", dataKey: null, personal: null, lookups: { subjects: [], recipients: [] } });
    expect(doc!.deletion).toMatchObject({ reason: "sender-request", requestId: "0d7e1e6a-5b2c-4f0e-9a1d-3c4b5a6f7e80" });
    expect(doc!.deletion!.completedAt).not.toBeNull();
    expect(await t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlobClient(blobName).exists()).toBe(false);

    const got = await download(t, key, id);
    expect(got.res.status).toBe(410);
    expect(JSON.parse(got.body.toString()).type).toBe("urn:safedata:problem:upload-deleted");
    const meta = (await (await t.call("GET", `v1/uploads/${id}`, { key })).json()) as Record<string, unknown>;
    expect(meta).toMatchObject({ status: "deleted", deletion: { reason: "sender-request", completed: true } });
    expect(meta.fileName).toBeUndefined();
    expect(meta.senderReference).toBeUndefined();

    expect((await t.call("DELETE", `v1/uploads/${id}`, { key })).status).toBe(204);
    expect((await auditFor(id)).filter((e) => e.action === "upload.deleted")).toHaveLength(1);
  });

  it("deletes an upload whose content never came", async () => {
    const { id } = await createUpload(t, key, { size: 5 });
    expect((await t.call("DELETE", `v1/uploads/${id}`, { key })).status).toBe(204);
    expect((await putContent(t, key, id, Buffer.alloc(5))).status).toBe(410);
  });
});

describe("audit", () => {
  it("records creation, content, every download with bytes and request id, and deletion", async () => {
    const { id } = await uploadWith(t, key, 3000);
    await download(t, key, id, { "x-request-id": "0d7e1e6a-5b2c-4f0e-9a1d-3c4b5a6f7e81" });
    await download(t, key, id, { "x-request-id": "0d7e1e6a-5b2c-4f0e-9a1d-3c4b5a6f7e82", range: "bytes=100-199" });
    await t.call("DELETE", `v1/uploads/${id}`, { key });
    const entries = await auditFor(id);
    expect(entries.map((e) => e.action)).toEqual([
      "upload.created",
      "upload.content-stored",
      // The PUT answered with the decrypted view.
      "upload.read",
      "upload.download-started",
      "upload.download-ended",
      "upload.download-started",
      "upload.download-ended",
      "upload.deleted",
    ]);
    expect(entries[3]).toMatchObject({ requestId: "0d7e1e6a-5b2c-4f0e-9a1d-3c4b5a6f7e81", details: { bytes: 3000 } });
    expect(entries[4]).toMatchObject({ requestId: "0d7e1e6a-5b2c-4f0e-9a1d-3c4b5a6f7e81", details: { bytes: 3000, completed: true } });
    expect(entries[5]).toMatchObject({ requestId: "0d7e1e6a-5b2c-4f0e-9a1d-3c4b5a6f7e82", details: { bytes: 100, range: "100-199" } });
    expect(JSON.stringify(entries)).not.toMatch(/@/);
    const verify = (await (await t.call("GET", "v1/audit/verify", { key })).json()) as { valid: boolean };
    expect(verify.valid).toBe(true);
  });
});

describe("first-download notification", () => {
  it("e-mails the sender once, through the queue, on the first download only", async () => {
    const { id } = await uploadWith(t, key, 50, { notifyOnFirstDownload: "sender@tenant.example" });
    await download(t, key, id);
    await download(t, key, id);
    t.host.pokeQueues();
    const outbox = t.raw.blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name);
    const mails: Array<{ to: string[]; subject: string; text: string }> = [];
    await eventually(async () => {
      mails.length = 0;
      for await (const b of outbox.listBlobsFlat()) {
        if (!b.name.endsWith(`first-download-${id}.json`)) continue;
        mails.push(JSON.parse((await outbox.getBlobClient(b.name).downloadToBuffer()).toString()));
      }
      expect(mails).toHaveLength(1);
      expect((await t.services.uploads.get(tenantId, id))?.senderNotifiedAt).not.toBeNull();
    }, 60_000);
    expect(mails[0]!.to).toEqual(["sender@tenant.example"]);
    expect(mails[0]!.text).toContain(id);
    expect(mails[0]!.text).not.toContain(baseUpload.fileName);
    await eventually(async () => expect((await auditFor(id)).filter((e) => e.action === "upload.first-download-notified")).toHaveLength(1), 60_000);
    expect(t.logs.map((l) => l.message).join("\n")).not.toContain("sender@tenant.example");
  });
});
