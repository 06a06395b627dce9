/**
 * Damage to stored ciphertext (flipped bytes, truncation, dropped, reordered or foreign segments) must stop the
 * download with no plaintext of the damaged part sent: the client gets the verified segments before the damage,
 * then an aborted response.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { BLOB_CONTAINERS } from "../../../shared/config/resources";
import { HEADER_SIZE, TAG_SIZE } from "../../../shared/crypto";
import { startTestApp, type TestApp } from "../../helpers/app";
import { download, uploadWith } from "../../helpers/uploads";

let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await startTestApp();
  key = (await t.createTenant()).apiKey;
});
afterAll(async () => {
  await t?.stop();
});

const SEG = 64 * 1024;
const SEALED = SEG + TAG_SIZE;
const SIZE = 4 * SEG + 1000; // five segments, the last one short

async function blobOf(id: string) {
  const doc = await t.services.uploads.get((await t.raw.containers.uploads.items.query({ query: "SELECT c.tenantId FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: id }] }).fetchAll()).resources[0].tenantId, id);
  return t.raw.blobs.getContainerClient(BLOB_CONTAINERS.payloads.name).getBlockBlobClient(doc!.content!.blobName);
}

async function rewrite(id: string, change: (b: Buffer) => Buffer): Promise<void> {
  const blob = await blobOf(id);
  const bytes = change(await blob.downloadToBuffer());
  await blob.upload(bytes, bytes.length);
}

const segment = (b: Buffer, i: number) => b.subarray(HEADER_SIZE + i * SEALED, HEADER_SIZE + (i + 1) * SEALED);

/**
 * The download must fail, and whatever arrived must be verified plaintext from before the damage. Damage found
 * before the response starts gives a 500 integrity problem; damage found later aborts the response (which of the
 * two a client sees depends on how far the response got when the damaged segment was reached).
 */
async function expectAbortedAfter(id: string, content: Buffer, intactSegments: number) {
  const { res, body, error } = await download(t, key, id);
  if (res.status === 500) {
    // Found before the response started: a problem document from the app, or (if the failure came while the
    // response was being handed over) the host's empty 500 for a failed invocation. Never content.
    if (body.length > 0) expect(JSON.parse(body.toString()).type).toBe("urn:safedata:problem:integrity-error");
  } else {
    expect(intactSegments, "only damage after the first segment can start a response").toBeGreaterThan(0);
    expect(res.status).toBe(200);
    expect(error, "the response must be aborted").toBeDefined();
    expect(body.length).toBeLessThanOrEqual(intactSegments * SEG);
    expect(body.equals(content.subarray(0, body.length))).toBe(true);
  }
  expect(t.logs.some((l) => l.message.includes("upload.integrity-failure") && l.message.includes(id))).toBe(true);
}

describe("tampered content", () => {
  it("flipping a byte in the third segment stops the stream before that segment", async () => {
    const { id, content } = await uploadWith(t, key, SIZE);
    await rewrite(id, (b) => {
      b[HEADER_SIZE + 2 * SEALED + 10]! ^= 0x01;
      return b;
    });
    await expectAbortedAfter(id, content, 2);
  });

  it("flipping a byte in the header sends nothing", async () => {
    const { id, content } = await uploadWith(t, key, SIZE);
    await rewrite(id, (b) => {
      b[20]! ^= 0x80;
      return b;
    });
    await expectAbortedAfter(id, content, 0);
  });

  it("truncation (the last segment missing) is detected", async () => {
    const { id, content } = await uploadWith(t, key, SIZE);
    await rewrite(id, (b) => b.subarray(0, HEADER_SIZE + 4 * SEALED));
    await expectAbortedAfter(id, content, 4);
  });

  it("truncation inside a segment is detected", async () => {
    const { id, content } = await uploadWith(t, key, SIZE);
    await rewrite(id, (b) => b.subarray(0, HEADER_SIZE + 3 * SEALED - 7));
    await expectAbortedAfter(id, content, 2);
  });

  it("a dropped segment is detected", async () => {
    const { id, content } = await uploadWith(t, key, SIZE);
    await rewrite(id, (b) => Buffer.concat([b.subarray(0, HEADER_SIZE + SEALED), b.subarray(HEADER_SIZE + 2 * SEALED)]));
    await expectAbortedAfter(id, content, 1);
  });

  it("reordered segments are detected", async () => {
    const { id, content } = await uploadWith(t, key, SIZE);
    await rewrite(id, (b) => Buffer.concat([b.subarray(0, HEADER_SIZE), segment(b, 0), segment(b, 2), segment(b, 1), b.subarray(HEADER_SIZE + 3 * SEALED)]));
    await expectAbortedAfter(id, content, 1);
  });

  it("a segment swapped in from another upload of the same tenant is detected", async () => {
    const a = await uploadWith(t, key, SIZE);
    const b = await uploadWith(t, key, SIZE);
    const other = await (await blobOf(b.id)).downloadToBuffer();
    await rewrite(a.id, (buf) => Buffer.concat([buf.subarray(0, HEADER_SIZE + SEALED), segment(other, 1), buf.subarray(HEADER_SIZE + 2 * SEALED)]));
    await expectAbortedAfter(a.id, a.content, 1);
  });

  it("a whole blob copied over another upload's blob is refused at once", async () => {
    const a = await uploadWith(t, key, SIZE);
    const b = await uploadWith(t, key, SIZE);
    const other = await (await blobOf(b.id)).downloadToBuffer();
    await rewrite(a.id, () => other);
    await expectAbortedAfter(a.id, a.content, 0);
  });

  it("a range read over a damaged segment is aborted too", async () => {
    const { id } = await uploadWith(t, key, SIZE);
    await rewrite(id, (b) => {
      b[HEADER_SIZE + SEALED + 5]! ^= 0x01;
      return b;
    });
    const { res, body } = await download(t, key, id, { range: `bytes=${SEG + 10}-${SEG + 20}` });
    expect(res.status).toBe(500);
    expect(JSON.parse(body.toString()).type).toBe("urn:safedata:problem:integrity-error");
  });

  it("a missing blob is a 500 integrity problem, logged", async () => {
    const { id } = await uploadWith(t, key, 10);
    await (await blobOf(id)).delete();
    const { res, body } = await download(t, key, id);
    expect(res.status).toBe(500);
    expect(JSON.parse(body.toString()).type).toBe("urn:safedata:problem:integrity-error");
  });
});
