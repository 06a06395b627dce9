/**
 * The content route reads its request headers as RFC 9110 writes them: range units are case-insensitive (§14.1), a
 * unit the server does not know and a header with several ranges are ignored (§14.2: the whole content, 200), a
 * malformed single range is refused (416 with `Content-Range: bytes *\/size`). Stored content never changes, so it
 * has a strong ETag, and If-Range (§13.1.5) and If-None-Match (§13.1.2) are honoured; a 304 is not a download. HEAD
 * answers what GET would, without a body (§9.3.2): it reads metadata (audited as such) and never counts as a download.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { startTestApp, type TestApp } from "../../helpers/app";
import { baseUpload, download, uploadWith } from "../../helpers/uploads";

let t: TestApp;
let key: string;
let tenantId: string;
const size = 3 * 64 * 1024 + 100;
let id: string;
let content: Buffer;
let etag: string;
beforeAll(async () => {
  t = await startTestApp();
  ({ apiKey: key, tenantId } = await t.createTenant());
  ({ id, content } = await uploadWith(t, key, size));
  etag = (await download(t, key, id)).res.headers.get("etag")!;
});
afterAll(async () => {
  await t?.stop();
});

type Entry = { action: string; target: { id: string } | null; details: Record<string, unknown> };
async function entriesOf(uploadId: string): Promise<Entry[]> {
  const res = await t.call("GET", "v1/audit?limit=200", { key });
  return ((await res.json()) as { items: Entry[] }).items.filter((e) => e.target?.id === uploadId);
}
const downloads = async (uploadId: string) => (await t.services.uploads.get(tenantId, uploadId))!.downloads;

describe("Range", () => {
  it.each(["Bytes=0-3", "BYTES=0-3", "bytes=0-3", " bytes=0-3 ", "bytes=0-3,", "bytes=0-3 , "])("reads %j as the first four bytes (206)", async (range) => {
    const { res, body } = await download(t, key, id, { range });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes 0-3/${size}`);
    expect(body.equals(content.subarray(0, 4))).toBe(true);
  });

  it.each(["items=0-5", "pages=1", "x-units=0-0"])("ignores the unit it does not know in %j: the whole content, 200", async (range) => {
    const { res, body } = await download(t, key, id, { range });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-range")).toBeNull();
    expect(body.equals(content)).toBe(true);
  });

  it.each(["bytes=0-5,10-20", "bytes=0-0,-1", "bytes=0-5, 100-"])("ignores several ranges in %j: the whole content, 200", async (range) => {
    const { res, body } = await download(t, key, id, { range });
    expect(res.status).toBe(200);
    expect(body.equals(content)).toBe(true);
  });

  it.each(["bytes=5-1", "bytes=-", "bytes=abc-def", "bytes 0-5", "bytes=1x-5", "bytes=", "bytes=0x10-20", "=0-5", "bytes=--5"])(
    "refuses the malformed single range %j with 416 and the content's size",
    async (range) => {
      const { res } = await download(t, key, id, { range });
      expect(res.status).toBe(416);
      expect(res.headers.get("content-range")).toBe(`bytes */${size}`);
    },
  );
});

describe("ETag and conditional requests", () => {
  it("sends a strong ETag that stays the same and differs between uploads, with nothing personal in it", async () => {
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{16,64}"$/);
    const again = await download(t, key, id, { range: "bytes=0-0" });
    expect(again.res.headers.get("etag")).toBe(etag);
    const other = await uploadWith(t, key, 10);
    expect((await download(t, key, other.id)).res.headers.get("etag")).not.toBe(etag);
    for (const part of [id, tenantId, baseUpload.fileName]) expect(etag).not.toContain(part);
  });

  it("honours If-Range with the current ETag: the range (206)", async () => {
    const { res, body } = await download(t, key, id, { range: "bytes=10-19", "if-range": etag });
    expect(res.status).toBe(206);
    expect(body.equals(content.subarray(10, 20))).toBe(true);
  });

  it.each([
    ["another entity tag", '"not-this-one"'],
    ["the weak form of the ETag (If-Range compares strongly)", "W/ETAG"],
    ["a date (no Last-Modified is sent, so none matches)", "Tue, 01 Dec 2026 10:00:00 GMT"],
  ])("ignores the Range when If-Range is %s: the whole content, 200", async (_what, value) => {
    const { res, body } = await download(t, key, id, { range: "bytes=10-19", "if-range": value.replace("ETAG", etag) });
    expect(res.status).toBe(200);
    expect(body.equals(content)).toBe(true);
  });

  it.each([
    ["the ETag", "ETAG"],
    ["a list holding it", '"x", ETAG'],
    ["its weak form (If-None-Match compares weakly)", "W/ETAG"],
    ["*", "*"],
  ])("answers If-None-Match with %s 304, which is not a download", async (_what, value) => {
    const { id: fresh } = await uploadWith(t, key, 50, { maxDownloads: 1 });
    const freshTag = (await t.call("HEAD", `v1/uploads/${fresh}/content`, { key })).headers.get("etag")!;
    const res = await t.call("GET", `v1/uploads/${fresh}/content`, { key, headers: { "if-none-match": value.replace("ETAG", freshTag) } });
    expect(res.status).toBe(304);
    expect(res.headers.get("etag")).toBe(freshTag);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
    expect(await downloads(fresh)).toBe(0);
    expect((await entriesOf(fresh)).filter((e) => e.action.startsWith("upload.download"))).toEqual([]);
    expect((await download(t, key, fresh)).res.status, "the one download allowed is still there").toBe(200);
  });

  it("answers If-None-Match with another tag with the content", async () => {
    const { res, body } = await download(t, key, id, { "if-none-match": '"something-else"' });
    expect(res.status).toBe(200);
    expect(body.equals(content)).toBe(true);
  });
});

describe("HEAD on content", () => {
  it("answers the headers a GET would, without a body; audited as a metadata read, never counted as a download", async () => {
    const { id: fresh } = await uploadWith(t, key, 5000, { maxDownloads: 1 });
    const get = await download(t, key, id);
    const head = await t.call("HEAD", `v1/uploads/${fresh}/content`, { key });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("5000");
    expect(head.headers.get("content-type")).toBe("application/pdf");
    expect(head.headers.get("accept-ranges")).toBe("bytes");
    expect(head.headers.get("content-disposition")).toBe(get.res.headers.get("content-disposition"));
    expect(head.headers.get("etag")).toMatch(/^"/);
    expect((await head.arrayBuffer()).byteLength).toBe(0);

    const ranged = await t.call("HEAD", `v1/uploads/${fresh}/content`, { key, headers: { range: "bytes=100-199" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe("bytes 100-199/5000");
    expect(ranged.headers.get("content-length")).toBe("100");

    expect(await downloads(fresh)).toBe(0);
    const entries = await entriesOf(fresh);
    expect(entries.filter((e) => e.action.startsWith("upload.download"))).toEqual([]);
    const reads = entries.filter((e) => e.action === "upload.read" && e.details.via === "head-content");
    expect(reads).toHaveLength(2);
    expect(reads[0]!.details.fields).toEqual(["fileName", "contentType"]);
    expect((await download(t, key, fresh)).res.status).toBe(200);
    expect((await t.call("HEAD", `v1/uploads/${fresh}/content`, { key })).status, "past the limit HEAD answers as GET would").toBe(410);
  });

  it("answers a malformed range with 416 and a matching If-None-Match with 304, as GET would", async () => {
    const bad = await t.call("HEAD", `v1/uploads/${id}/content`, { key, headers: { range: "bytes=9-1" } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe(`bytes */${size}`);
    expect((await t.call("HEAD", `v1/uploads/${id}/content`, { key, headers: { "if-none-match": etag } })).status).toBe(304);
  });
});
