/**
 * Content sent with a content coding (Content-Encoding: gzip, …) is refused with 415 and `Accept-Encoding: identity`
 * (RFC 9110 §8.4.1, §15.5.16) by every operation that can take content, before anything is read or written: no
 * operation decodes one, so gzip bytes were otherwise parsed as JSON (400), stored as an upload's content, or ignored
 * on an operation that takes no body. `identity` is no coding and is accepted.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { gzipSync } from "node:zlib";
import { startTestApp, type TestApp } from "../helpers/app";
import { expect } from "../helpers/expect";
import { rawRequest, statusOf } from "../helpers/raw-http";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant("Coding Co");
});
afterAll(async () => {
  await t?.stop();
});

const uploadBody = { senderReference: "s", recipients: ["r@example.com"], dataSubjects: ["d@example.com"], categories: ["contact"], fileName: "a.txt", contentType: "text/plain", size: 3 };

async function expect415(res: Response, what: string): Promise<void> {
  expect(res.status, what).toBe(415);
  expect(res.headers.get("content-type"), what).toMatch(/^application\/problem\+json/);
  expect(res.headers.get("accept-encoding"), what).toBe("identity");
  const problem = (await res.json()) as { type: string; detail: string };
  expect(problem.type, what).toBe("urn:safedata:problem:unsupported-media-type");
  expect(problem.detail, what).toContain("Content-Encoding");
}

describe("a request with a content coding", () => {
  it("is refused by a JSON operation, and nothing is created", async () => {
    const before = (await (await t.call("GET", "v1/uploads", { key: tenant.apiKey })).json()) as { items: unknown[] };
    for (const coding of ["gzip", "GZIP", "deflate", "br", "identity, gzip", "x-unknown"]) {
      const res = await t.call("POST", "v1/uploads", {
        key: tenant.apiKey,
        headers: { "content-type": "application/json", "content-encoding": coding },
        body: gzipSync(JSON.stringify(uploadBody)),
      });
      await expect415(res, coding);
    }
    const after = (await (await t.call("GET", "v1/uploads", { key: tenant.apiKey })).json()) as { items: unknown[] };
    expect(after.items).toHaveLength(before.items.length);
  });

  it("is refused for an upload's content, which stays unsent", async () => {
    const created = (await (await t.call("POST", "v1/uploads", { key: tenant.apiKey, json: uploadBody })).json()) as { id: string };
    const res = await t.call("PUT", `v1/uploads/${created.id}/content`, { key: tenant.apiKey, headers: { "content-type": "text/plain", "content-encoding": "gzip" }, body: gzipSync("abc") });
    await expect415(res, "PUT content");
    const view = (await (await t.call("GET", `v1/uploads/${created.id}`, { key: tenant.apiKey })).json()) as { status: string };
    expect(view.status).toBe("awaiting-content");
    const ok = await t.call("PUT", `v1/uploads/${created.id}/content`, { key: tenant.apiKey, headers: { "content-type": "text/plain", "content-encoding": "identity" }, body: "abc" });
    expect(ok.status, "identity is no coding").toBe(200);
  });

  it("is refused by an operation that takes no body, with or without one", async () => {
    const created = (await (await t.call("POST", "v1/uploads", { key: tenant.apiKey, json: uploadBody })).json()) as { id: string };
    await expect415(await t.call("DELETE", `v1/uploads/${created.id}`, { key: tenant.apiKey, headers: { "content-encoding": "gzip" }, body: gzipSync("{}") }), "DELETE with a body");
    await expect415(await t.call("DELETE", `v1/uploads/${created.id}`, { key: tenant.apiKey, headers: { "content-encoding": "gzip" } }), "DELETE without a body");
    const view = (await (await t.call("GET", `v1/uploads/${created.id}`, { key: tenant.apiKey })).json()) as { status: string };
    expect(view.status, "not deleted").toBe("awaiting-content");
  });

  it("does not matter on a GET, which carries no content", async () => {
    expect((await t.call("GET", "v1/uploads", { key: tenant.apiKey, headers: { "content-encoding": "gzip" } })).status).toBe(200);
  });
});

describe("a transfer coding other than chunked", () => {
  it("is refused for an upload's content (gzip, chunked), which stays unsent; chunked alone is accepted", async () => {
    const created = (await (await t.call("POST", "v1/uploads", { key: tenant.apiKey, json: uploadBody })).json()) as { id: string };
    const gz = gzipSync("abc");
    const framed = Buffer.concat([Buffer.from(`${gz.length.toString(16)}\r\n`), gz, Buffer.from("\r\n0\r\n\r\n")]);
    const headers = { authorization: `Bearer ${tenant.apiKey}`, "content-type": "text/plain", connection: "close" };
    const refused = rawRequest(t.api, "PUT", `/api/v1/uploads/${created.id}/content`, { ...headers, "transfer-encoding": "gzip, chunked" }, framed);
    await refused.answered;
    expect(statusOf(refused.received())).toBe(415);
    expect(refused.received().toString("latin1").toLowerCase()).toContain("accept-encoding: identity");
    const view = (await (await t.call("GET", `v1/uploads/${created.id}`, { key: tenant.apiKey })).json()) as { status: string };
    expect(view.status).toBe("awaiting-content");
    const plain = rawRequest(t.api, "PUT", `/api/v1/uploads/${created.id}/content`, { ...headers, "transfer-encoding": "chunked" }, "3\r\nabc\r\n0\r\n\r\n");
    await plain.answered;
    expect(statusOf(plain.received())).toBe(200);
  });
});
