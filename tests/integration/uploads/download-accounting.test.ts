/**
 * A download is counted (toward maxDownloads) only once its first authenticated bytes are ready to send, and the
 * audit log tells the truth about it: an entry when it begins (before the first byte) and one when it ends, with the
 * bytes sent and whether it completed. A failure before the first byte uses up nothing and is never logged as a
 * download; a first-download notice that cannot be queued does not fail the download (the retention sweep queues it
 * later).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { BLOB_CONTAINERS, LOCAL_ONLY_BLOB_CONTAINERS, QUEUES } from "../../../shared/config/resources";
import { HEADER_SIZE } from "../../../shared/crypto";
import { startTestApp, type TestApp } from "../../helpers/app";
import { eventually } from "../../helpers/eventually";
import { sweep } from "../../helpers/sweep";
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

type Entry = { action: string; target: { id: string } | null; requestId: string | null; details: Record<string, unknown> };
async function auditOf(apiKey: string, id: string): Promise<Entry[]> {
  const res = await t.call("GET", "v1/audit?limit=200", { key: apiKey });
  return ((await res.json()) as { items: Entry[] }).items.filter((e) => e.target?.id === id);
}
const downloadEntries = (entries: Entry[]) => entries.filter((e) => e.action.startsWith("upload.download"));

async function blobOf(tid: string, id: string) {
  const doc = await t.services.uploads.get(tid, id);
  return t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlockBlobClient(doc!.content!.blobName);
}

describe("a download that fails before its first byte", () => {
  it("whose blob is missing uses up nothing and is not logged as a download", async () => {
    const { id } = await uploadWith(t, key, 100, { maxDownloads: 1 });
    await (await blobOf(tenantId, id)).delete();
    const { res, body } = await download(t, key, id);
    expect(res.status).toBe(500);
    expect(JSON.parse(body.toString()).type).toBe("urn:safedata:problem:integrity-error");
    const doc = await t.services.uploads.get(tenantId, id);
    expect(doc!.downloads, "not counted").toBe(0);
    expect(doc!.firstDownloadAt).toBeNull();
    expect(downloadEntries(await auditOf(key, id)), "nothing logged as downloaded").toEqual([]);
  });

  it("whose first segment fails authentication uses up nothing and is not logged as a download", async () => {
    const { id } = await uploadWith(t, key, 1000, { maxDownloads: 1 });
    const blob = await blobOf(tenantId, id);
    const bytes = await blob.downloadToBuffer();
    bytes[HEADER_SIZE + 3]! ^= 0x01;
    await blob.upload(bytes, bytes.length);
    expect((await download(t, key, id)).res.status).toBe(500);
    expect((await t.services.uploads.get(tenantId, id))!.downloads).toBe(0);
    expect(downloadEntries(await auditOf(key, id))).toEqual([]);
  });

  it("because its audit entry cannot be written, releases the count it took", async () => {
    const other = await t.createTenant();
    const { id, content } = await uploadWith(t, other.apiKey, 100, { maxDownloads: 1 });
    // Damage the tenant's audit head so the next append fails.
    const head = t.raw.containers.audit.item("head", other.tenantId);
    const { resource } = await head.read<Record<string, unknown>>();
    await head.replace({ ...resource!, seq: "broken" });
    const failed = await download(t, other.apiKey, id);
    expect(failed.res.status).toBe(500);
    expect(failed.body.includes(content), "no content was sent").toBe(false);
    expect((await t.services.uploads.get(other.tenantId, id))!.downloads, "the count was released").toBe(0);
    await head.replace(resource!);
    const again = await download(t, other.apiKey, id);
    expect(again.res.status, "the one allowed download is still there").toBe(200);
    expect(again.body.equals(content)).toBe(true);
  });
});

describe("a first-download notice that cannot be queued", () => {
  it("does not fail the download; the download counts once and the retention sweep queues the notice later", async () => {
    const queue = t.raw.queues.getQueueClient(QUEUES.notifications.name);
    const { id, content } = await uploadWith(t, key, 500, { notifyOnFirstDownload: "sender@tenant.example" });
    await queue.delete();
    try {
      const got = await download(t, key, id);
      expect(got.res.status).toBe(200);
      expect(got.body.equals(content)).toBe(true);
    } finally {
      await queue.createIfNotExists();
    }
    const doc = await t.services.uploads.get(tenantId, id);
    expect(doc!.downloads).toBe(1);
    expect(doc!.firstDownloadAt).not.toBeNull();
    expect(t.logs.some((l) => l.message.includes("upload.first-download-notice-not-queued") && l.message.includes(id))).toBe(true);

    t.clock.advance({ minutes: 11 });
    await sweep(t);
    t.host.pokeQueues();
    const outbox = t.raw.blobs.getContainerClient(LOCAL_ONLY_BLOB_CONTAINERS.outbox.name);
    await eventually(async () => {
      let mails = 0;
      for await (const b of outbox.listBlobsFlat()) if (b.name.endsWith(`first-download-${id}.json`)) mails++;
      expect(mails).toBe(1);
    }, 60_000);
  });
});

describe("the audit log of a download", () => {
  it("records its start before the first byte and its end with the bytes sent", async () => {
    const { id } = await uploadWith(t, key, 3000);
    const [first, second] = [randomUUID(), randomUUID()];
    await download(t, key, id, { "x-request-id": first });
    await download(t, key, id, { "x-request-id": second, range: "bytes=100-199" });
    await eventually(async () => expect(downloadEntries(await auditOf(key, id))).toHaveLength(4));
    const entries = downloadEntries(await auditOf(key, id));
    expect(entries[0]).toMatchObject({ action: "upload.download-started", requestId: first, details: { bytes: 3000, download: 1 } });
    expect(entries[1]).toMatchObject({ action: "upload.download-ended", requestId: first, details: { bytes: 3000, completed: true } });
    expect(entries[2]).toMatchObject({ action: "upload.download-started", requestId: second, details: { bytes: 100, range: "100-199", download: 2 } });
    expect(entries[3]).toMatchObject({ action: "upload.download-ended", requestId: second, details: { bytes: 100, completed: true } });
    expect((await auditOf(key, id)).map((e) => e.action)).not.toContain("upload.downloaded");
  });

  it("records a download the client broke off as not completed, with the bytes sent before", async () => {
    // Larger than what the connections between the client, the host and the worker buffer.
    const size = 40 * 1024 * 1024;
    const { id } = await uploadWith(t, key, size);
    const abort = new AbortController();
    const requestId = randomUUID();
    const res = await fetch(`${t.api}/v1/uploads/${id}/content`, { headers: { authorization: `Bearer ${key}`, "x-request-id": requestId }, signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.cancel().catch(() => undefined);
    await eventually(async () => expect(downloadEntries(await auditOf(key, id)).map((e) => e.action)).toEqual(["upload.download-started", "upload.download-ended"]));
    const ended = downloadEntries(await auditOf(key, id))[1]!;
    expect(ended).toMatchObject({ requestId, details: { completed: false, reason: "closed-by-client" } });
    expect(ended.details.bytes as number).toBeGreaterThan(0);
    expect(ended.details.bytes as number).toBeLessThan(size);
    // It began, so it counts.
    expect((await t.services.uploads.get(tenantId, id))!.downloads).toBe(1);
  });

  it("counts nothing for a request that is refused", async () => {
    const { id } = await createUpload(t, key, { size: 5 });
    expect((await download(t, key, id)).res.status).toBe(409);
    expect((await putContent(t, key, id, Buffer.from("hello"))).status).toBe(200);
    expect((await download(t, key, id, { range: "bytes=10-" })).res.status).toBe(416);
    expect((await t.services.uploads.get(tenantId, id))!.downloads).toBe(0);
    expect(downloadEntries(await auditOf(key, id))).toEqual([]);
  });
});

describe("the same kind elsewhere", () => {
  it("POST: when the creation cannot be logged, no upload is left behind (a retry would make a second one)", async () => {
    const other = await t.createTenant();
    const head = t.raw.containers.audit.item("head", other.tenantId);
    const { resource } = await head.read<Record<string, unknown>>();
    await head.replace({ ...resource!, seq: "broken" });
    try {
      const res = await t.call("POST", "v1/uploads", { key: other.apiKey, json: { ...baseUpload, size: 1 } });
      expect(res.status).toBe(500);
    } finally {
      await head.replace(resource!);
    }
    expect((await t.services.uploads.list(other.tenantId, { limit: 10 })).items).toEqual([]);
  });

  it("PUT content: when the audit entry cannot be written, the upload is not left available with content nobody logged", async () => {
    const other = await t.createTenant();
    const { id } = await createUpload(t, other.apiKey, { size: 5 });
    const head = t.raw.containers.audit.item("head", other.tenantId);
    const { resource } = await head.read<Record<string, unknown>>();
    await head.replace({ ...resource!, seq: "broken" });
    const failed = await putContent(t, other.apiKey, id, Buffer.from("hello"));
    expect(failed.status).toBe(500);
    const doc = await t.services.uploads.get(other.tenantId, id);
    expect(doc!.status, "the content was not kept").toBe("awaiting-content");
    const blobs: string[] = [];
    for await (const b of t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).listBlobsFlat({ prefix: `${other.tenantId}/${id}/`, includeUncommitedBlobs: true })) blobs.push(b.name);
    expect(blobs).toEqual([]);
    await head.replace(resource!);
    expect((await putContent(t, other.apiKey, id, Buffer.from("hello"))).status, "it can be sent again").toBe(200);
    expect((await auditOf(other.apiKey, id)).filter((e) => e.action === "upload.content-stored")).toHaveLength(1);
  });

  it("DELETE: once the key is destroyed the answer is 204 even if removing the blob fails; the sweep finishes the rest", async () => {
    const { id } = await uploadWith(t, key, 100);
    const blob = await blobOf(tenantId, id);
    // A lease on the blob makes deleting it fail (412), as a storage outage would.
    const lease = blob.getBlobLeaseClient();
    await lease.acquireLease(-1);
    const res = await t.call("DELETE", `v1/uploads/${id}`, { key });
    expect(res.status).toBe(204);
    const doc = await t.services.uploads.get(tenantId, id);
    expect(doc).toMatchObject({ status: "deleting", dataKey: null, personal: null });
    expect(Date.parse(doc!.deletion!.leaseUntil!), "the next sweep may take it over at once").toBeLessThanOrEqual(t.clock.now().getTime());
    expect((await download(t, key, id)).res.status).toBe(410);
    await lease.releaseLease();
    await sweep(t);
    expect((await t.services.uploads.get(tenantId, id))!.status).toBe("deleted");
    expect(await blob.exists()).toBe(false);
  });
});
