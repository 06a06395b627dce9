/**
 * A streamed answer that was sent whole is a succeeded invocation: neither the host's log nor the function's says it
 * failed. (In Azure a failed invocation counts against the app's health and alerts; a download the client received
 * completely must never be one.) Every route that streams a paced body is covered: content (whole, one range, a
 * header of several ranges answered whole, a HEAD), and the consent export as CSV.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { download, uploadWith } from "../helpers/uploads";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  a = await t.createTenant();
});
afterAll(async () => {
  await t?.stop();
});

/** Log lines that say an invocation or its response failed, since `from`. */
const failures = (from: number) =>
  t.logs.slice(from).filter((l) => l.level === "error" || /fail|closed before/i.test(l.message)).map((l) => `${l.functionName ?? ""}: ${l.message}`);

/** Lets the invocation finish and its outcome be logged after the client has the whole body. */
const settle = () => new Promise((r) => setTimeout(r, 400));

describe("a streamed answer sent whole", () => {
  it.each([
    ["the whole content", {}, 200, 300_000],
    ["one range", { range: "bytes=0-3" }, 206, 4],
    ["a range at the end", { range: "bytes=-10" }, 206, 10],
    ["several ranges, answered whole", { range: "bytes=0-3,10-20" }, 200, 300_000],
    ["an unknown range unit, answered whole", { range: "items=0-3" }, 200, 300_000],
  ])("%s: the download is not logged as a failed invocation", async (_what, headers: Record<string, string>, status, bytes) => {
    const { id } = await uploadWith(t, a.apiKey, 300_000, { maxDownloads: 10 });
    const from = t.logs.length;
    const got = await download(t, a.apiKey, id, headers);
    expect(got.res.status).toBe(status);
    expect(got.error).toBeUndefined();
    expect(got.body.length).toBe(bytes);
    await settle();
    expect(failures(from)).toEqual([]);
  });

  it("HEAD on the content is not logged as a failed invocation", async () => {
    const { id } = await uploadWith(t, a.apiKey, 1000);
    const from = t.logs.length;
    const res = await t.call("HEAD", `v1/uploads/${id}/content`, { key: a.apiKey });
    expect(res.status).toBe(200);
    await settle();
    expect(failures(from)).toEqual([]);
  });

  it("the consent export as CSV is not logged as a failed invocation", async () => {
    const from = t.logs.length;
    const now = t.clock.now();
    const query = `from=${encodeURIComponent(new Date(now.getTime() - 86_400_000).toISOString())}&to=${encodeURIComponent(new Date(now.getTime() + 86_400_000).toISOString())}`;
    const res = await t.call("GET", `v1/consents/export?${query}`, { key: a.apiKey, headers: { accept: "text/csv" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("\r\n");
    await settle();
    expect(failures(from)).toEqual([]);
  });
});
