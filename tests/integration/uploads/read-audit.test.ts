/**
 * Access to personal data is logged, not only changes ("change and access to master data must be logged": the
 * data-processing agreement, Appendix C.h): every request that decrypts a personal field of an upload writes one
 * audit entry naming the record and the fields it showed. Requests that show nothing personal write none.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { startTestApp, type TestApp } from "../../helpers/app";
import { baseUpload, createUpload, putContent, uploadWith } from "../../helpers/uploads";

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

type Entry = { action: string; target: { type: string; id: string } | null; requestId: string | null; details: Record<string, unknown> };
/** The upload's `upload.read` entries, but for the one its PUT wrote (uploadWith sends the content). */
async function reads(apiKey: string, id: string): Promise<Entry[]> {
  const res = await t.call("GET", "v1/audit?limit=200", { key: apiKey });
  return ((await res.json()) as { items: Entry[] }).items.filter((e) => e.target?.id === id && e.action === "upload.read" && e.details.via !== "content-stored");
}

describe("reading an upload's personal fields", () => {
  it("GET metadata writes one entry naming the upload and the fields shown", async () => {
    const { id } = await uploadWith(t, key, 10);
    const requestId = randomUUID();
    const res = await t.call("GET", `v1/uploads/${id}`, { key, headers: { "x-request-id": requestId } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { fileName: string }).fileName).toBe(baseUpload.fileName);
    const entries = await reads(key, id);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ target: { type: "upload", id }, requestId, details: { via: "metadata" } });
    expect(entries[0]!.details.fields).toEqual(expect.arrayContaining(["fileName", "senderReference", "recipients", "contentType"]));
  });

  it("HEAD on metadata is a read too", async () => {
    const { id } = await uploadWith(t, key, 10);
    const res = await t.call("HEAD", `v1/uploads/${id}`, { key });
    expect(res.status).toBe(200);
    expect(await reads(key, id)).toHaveLength(1);
  });

  it("PUT content answers with the decrypted view, and logs that read", async () => {
    const { id } = await createUpload(t, key, { size: 3 });
    const requestId = randomUUID();
    const res = await putContent(t, key, id, Buffer.from("abc"), "application/pdf", { "x-request-id": requestId });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { fileName: string }).fileName).toBe(baseUpload.fileName);
    const audit = ((await (await t.call("GET", "v1/audit?limit=200", { key })).json()) as { items: Entry[] }).items;
    const entries = audit.filter((e) => e.requestId === requestId && e.action === "upload.read");
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ target: { id }, details: { via: "content-stored" } });
  });

  it("a request that shows nothing personal writes no read entry", async () => {
    const { id } = await uploadWith(t, key, 10);
    expect((await t.call("GET", "v1/uploads", { key })).status).toBe(200);
    expect((await t.call("DELETE", `v1/uploads/${id}`, { key })).status).toBe(204);
    const tombstone = await t.call("GET", `v1/uploads/${id}`, { key });
    expect(tombstone.status).toBe(200);
    expect(((await tombstone.json()) as { fileName?: string }).fileName).toBeUndefined();
    expect(await reads(key, id)).toEqual([]);
  });

  it("shows nothing when the read cannot be logged", async () => {
    const other = await t.createTenant();
    const { id } = await uploadWith(t, other.apiKey, 10);
    const head = t.raw.containers.audit.item("head", other.tenantId);
    const { resource } = await head.read<Record<string, unknown>>();
    await head.replace({ ...resource!, seq: "broken" });
    try {
      const res = await t.call("GET", `v1/uploads/${id}`, { key: other.apiKey });
      expect(res.status).toBe(500);
      expect(await res.text()).not.toContain(baseUpload.fileName);
    } finally {
      await head.replace(resource!);
    }
    expect(tenantId).not.toBe(other.tenantId);
  });
});
