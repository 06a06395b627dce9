/**
 * Content is staged into Blob Storage block by block and committed at the end, so an interrupted PUT leaves staged
 * (uncommitted) blocks behind unless the service discards them. They are ciphertext of personal data: after a failed
 * PUT, and after DELETE or the purge, no block of the upload may remain, committed or not.
 *
 * Azurite lists blobs that have only uncommitted blocks when asked to (`includeUncommitedBlobs`), as Azure does.
 * Asked for the block list of a blob that has none left, Azure answers 404 where Azurite may answer an empty list:
 * both count as "nothing left".
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { BLOB_CONTAINERS } from "../../../shared/config/resources";
import { abortedUpload, stalledUpload } from "../../helpers/abort-upload";
import { startTestApp, type TestApp } from "../../helpers/app";
import { eventually } from "../../helpers/eventually";
import { sweep } from "../../helpers/sweep";
import { createUpload, uploadWith } from "../../helpers/uploads";

let t: TestApp;
let key: string;
let tenantId: string;
beforeAll(async () => {
  t = await startTestApp({ settings: { UPLOAD_IDLE_SECONDS: "1" } });
  ({ apiKey: key, tenantId } = await t.createTenant());
});
afterAll(async () => {
  await t?.stop();
});

const MiB = 1024 * 1024;
const payloads = () => t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name);

/** Every blob under the upload's prefix, committed or holding uncommitted blocks only. */
async function everyBlobOf(id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const b of payloads().listBlobsFlat({ prefix: `${tenantId}/${id}/`, includeUncommitedBlobs: true })) out.push(b.name);
  return out;
}

/** The uncommitted blocks a blob still has; a 404 (Azure, once nothing is left) is none. */
async function uncommittedBlocks(blobName: string): Promise<number> {
  try {
    return (await payloads().getBlockBlobClient(blobName).getBlockList("uncommitted")).uncommittedBlocks?.length ?? 0;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return 0;
    throw err;
  }
}

/** Blocks staged under the upload's prefix by a content attempt whose instance died before it could clean up. */
async function strandedAttempt(id: string): Promise<string> {
  const name = `${tenantId}/${id}/deadbeefdeadbeef`;
  const blob = payloads().getBlockBlobClient(name);
  for (let i = 0; i < 2; i++) await blob.stageBlock(Buffer.from(`block-${i}`).toString("base64"), Buffer.alloc(64 * 1024, i), 64 * 1024);
  expect(await uncommittedBlocks(name)).toBe(2);
  return name;
}

describe("a PUT that fails", () => {
  it("leaves no staged block when the client disconnects after several blocks", async () => {
    const size = 12 * MiB;
    const { id } = await createUpload(t, key, { size });
    const from = t.logs.length;
    await abortedUpload(`${t.api}/v1/uploads/${id}/content`, {
      headers: { authorization: `Bearer ${key}`, "content-type": "application/pdf", "content-length": String(size) },
      sendBytes: 9 * MiB,
    });
    // Waited for: the service having seen the client gone (logged after the attempt is released), not the status
    // "awaiting-content", which the upload had before the attempt began too.
    await eventually(() => expect(t.logs.slice(from).some((l) => /upload\.content-(interrupted|stalled)/.test(l.message) && l.message.includes(id))).toBe(true));
    expect((await t.services.uploads.get(tenantId, id))?.status).toBe("awaiting-content");
    await eventually(async () => expect(await everyBlobOf(id), "no blob, committed or staged, of the interrupted attempt").toEqual([]), 30_000);
  });

  it("leaves no staged block when the body stalls", async () => {
    const size = 6 * MiB;
    const { id } = await createUpload(t, key, { size });
    const res = await stalledUpload(`${t.api}/v1/uploads/${id}/content`, {
      headers: { authorization: `Bearer ${key}`, "content-type": "application/pdf", "content-length": String(size) },
      sendBytes: 5 * MiB,
    });
    expect(res.status).toBe(408);
    expect(await everyBlobOf(id)).toEqual([]);
  });

  it("leaves no staged block when the body runs past the declared size", async () => {
    const { id } = await createUpload(t, key, { size: 5 * MiB });
    // Sent chunked, so the overflow is found only after blocks were staged.
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 6; i++) c.enqueue(new Uint8Array(MiB));
        c.close();
      },
    });
    const res = await fetch(`${t.api}/v1/uploads/${id}/content`, {
      method: "PUT",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/pdf" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await everyBlobOf(id)).toEqual([]);
  });
});

describe("deletion", () => {
  it("DELETE removes blocks staged by an attempt that never finished", async () => {
    const { id } = await createUpload(t, key, { size: 10 });
    const name = await strandedAttempt(id);
    expect((await t.call("DELETE", `v1/uploads/${id}`, { key })).status).toBe(204);
    expect(await everyBlobOf(id)).toEqual([]);
    expect(await uncommittedBlocks(name)).toBe(0);
  });

  it("DELETE of stored content also removes another attempt's staged blocks", async () => {
    const { id } = await uploadWith(t, key, 1000);
    const name = await strandedAttempt(id);
    expect((await t.call("DELETE", `v1/uploads/${id}`, { key })).status).toBe(204);
    expect(await everyBlobOf(id)).toEqual([]);
    expect(await uncommittedBlocks(name)).toBe(0);
  });

  it("the purge at the end of an upload's life removes staged blocks too", async () => {
    const { id } = await createUpload(t, key, { size: 10, expiresInDays: 1 });
    const name = await strandedAttempt(id);
    t.clock.advance({ days: 1, minutes: 1 });
    await sweep(t);
    expect((await t.services.uploads.get(tenantId, id))?.status).toBe("expired");
    expect(await everyBlobOf(id)).toEqual([]);
    expect(await uncommittedBlocks(name)).toBe(0);
  });
});
