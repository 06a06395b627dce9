import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
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

const KiB = 1024;
describe("upload and download round trip", () => {
  it.each([0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 5 * 1024 * KiB + 17])("returns exactly the %i bytes sent", async (size) => {
    const { id, content } = await uploadWith(t, key, size);
    const { res, body, error } = await download(t, key, id);
    expect(error).toBeUndefined();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(size));
    expect(res.headers.get("content-type")).toBe("application/pdf");
    expect(res.headers.get("content-disposition")).toContain("filename*=UTF-8''l%C3%B8n%202026%20%E2%80%93%20Carl.pdf");
    expect(body.equals(content)).toBe(true);
  });
});

describe("range requests", () => {
  const size = 3 * 64 * 1024 + 100;
  let id: string;
  let content: Buffer;
  beforeAll(async () => {
    ({ id, content } = await uploadWith(t, key, size));
  });

  it.each([
    ["bytes=0-0", 0, 0],
    ["bytes=10-20", 10, 20],
    ["bytes=65530-65545", 65530, 65545],
    ["bytes=131072-", 131072, size - 1],
    ["bytes=-100", size - 100, size - 1],
    ["bytes=0-999999999", 0, size - 1],
  ])("serves %s as 206 with Content-Range", async (range, start, end) => {
    const { res, body, error } = await download(t, key, id, { range });
    expect(error).toBeUndefined();
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end}/${size}`);
    expect(res.headers.get("content-length")).toBe(String(end - start + 1));
    expect(body.equals(content.subarray(start, end + 1))).toBe(true);
  });

  it.each(["bytes=5-1", "bytes=-", "bytes=abc-def", "bytes 0-5"])("answers 416 to the malformed range %s", async (range) => {
    const { res } = await download(t, key, id, { range });
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe(`bytes */${size}`);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
  });

  it("answers 416 when the range starts past the end", async () => {
    const { res } = await download(t, key, id, { range: `bytes=${size}-` });
    expect(res.status).toBe(416);
  });

  it("advertises byte ranges", async () => {
    const { res } = await download(t, key, id);
    expect(res.headers.get("accept-ranges")).toBe("bytes");
  });
});
