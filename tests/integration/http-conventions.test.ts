/** Conventions every route shares: problem+json errors, request ids, content types, unknown routes, health, OpenAPI. */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { endpoints } from "../../shared/http/endpoint";
import { startTestApp, type TestApp } from "../helpers/app";

let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await startTestApp();
  key = (await t.createTenant()).apiKey;
});
afterAll(async () => {
  await t?.stop();
});

async function expectProblem(res: Response, status: number, type: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/problem+json");
  const body = (await res.json()) as { type: string; title: string; status: number; detail: string; requestId: string };
  expect(body.type).toBe(`urn:safedata:problem:${type}`);
  expect(body.status).toBe(status);
  expect(body.detail.length).toBeGreaterThan(0);
  expect(body.requestId).toBe(res.headers.get("x-request-id"));
  expect(JSON.stringify(body)).not.toMatch(/at .*\.(ts|js):\d+/);
  return body;
}

describe("errors", () => {
  it("answers unknown routes with a problem+json 404", async () => {
    await expectProblem(await t.call("GET", "v1/nothing-here"), 404, "not-found");
    await expectProblem(await t.call("DELETE", "no/such/thing"), 404, "not-found");
  });

  it("answers a known path with the wrong method with 405 and Allow", async () => {
    const res = await t.call("DELETE", "v1/audit/verify", { key });
    await expectProblem(res, 405, "method-not-allowed");
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });

  it("distinguishes missing, malformed and wrong credentials, with WWW-Authenticate", async () => {
    const missing = await t.call("GET", "v1/audit");
    await expectProblem(missing, 401, "unauthenticated");
    expect(missing.headers.get("www-authenticate")).toContain("Bearer");
    await expectProblem(await t.call("GET", "v1/audit", { headers: { authorization: "Basic abc" } }), 401, "unauthenticated");
    await expectProblem(await t.call("GET", "v1/audit", { key: "sdk_tn-aaaaaaaaaaaaaaaa_" + "A".repeat(43) }), 401, "unauthenticated");
    const forged = key.slice(0, -4) + (key.endsWith("AAAA") ? "BBBB" : "AAAA");
    await expectProblem(await t.call("GET", "v1/audit", { key: forged }), 401, "unauthenticated");
  });

  it("rejects JSON bodies that are not JSON, too large, the wrong type, or not UTF-8", async () => {
    const route = "v1/admin/tenants";
    const admin = { authorization: `Bearer ${t.env.ADMIN_API_KEY}` };
    await expectProblem(await t.call("POST", route, { headers: { ...admin, "content-type": "application/json" }, body: "{not json" }), 400, "invalid-json");
    await expectProblem(await t.call("POST", route, { headers: { ...admin, "content-type": "application/json" }, body: "" }), 400, "invalid-json");
    await expectProblem(await t.call("POST", route, { headers: { ...admin, "content-type": "text/plain" }, body: "{}" }), 415, "unsupported-media-type");
    await expectProblem(await t.call("POST", route, { headers: admin, body: "{}" }), 415, "unsupported-media-type");
    await expectProblem(
      await t.call("POST", route, { headers: { ...admin, "content-type": "application/json; charset=latin1" }, body: "{}" }),
      415,
      "unsupported-media-type",
    );
    const huge = JSON.stringify({ name: "x".repeat(400 * 1024) });
    await expectProblem(await t.call("POST", route, { headers: { ...admin, "content-type": "application/json" }, body: huge }), 413, "payload-too-large");
    await expectProblem(
      await t.call("POST", route, { headers: { ...admin, "content-type": "application/json" }, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }),
      400,
      "invalid-json",
    );
    await expectProblem(await t.call("POST", route, { headers: { ...admin, "content-type": "application/json" }, body: "[1,2]" }), 422, "validation-failed");
    const loneSurrogate = '{"name":"a\\ud800b","contactEmail":"dpo@x.example","supervisoryAuthority":{"country":"DK"}}';
    await expectProblem(await t.call("POST", route, { headers: { ...admin, "content-type": "application/json" }, body: loneSurrogate }), 400, "invalid-json");
  });

  it("rejects unknown and repeated query parameters", async () => {
    await expectProblem(await t.call("GET", "v1/audit?limt=5", { key }), 400, "invalid-parameter");
    await expectProblem(await t.call("GET", "v1/audit?limit=5&limit=6", { key }), 400, "invalid-parameter");
    await expectProblem(await t.call("GET", "v1/audit?limit=0", { key }), 400, "invalid-parameter");
  });
});

describe("request ids", () => {
  it("echoes a UUID x-request-id and replaces anything else", async () => {
    const ok = await t.call("GET", "v1/audit", { key, headers: { "x-request-id": "6f1c2a4e-8b0d-4f3a-9e21-5d7c3b9a0e12" } });
    expect(ok.headers.get("x-request-id")).toBe("6f1c2a4e-8b0d-4f3a-9e21-5d7c3b9a0e12");
    const bad = await t.call("GET", "v1/audit", { key, headers: { "x-request-id": "<script>" } });
    expect(bad.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const none = await t.call("GET", "health");
    expect(none.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("records the request id in the audit entry it causes", async () => {
    const res = await t.admin("POST", "v1/admin/tenants", { name: "Traced", contactEmail: "dpo@traced.example", supervisoryAuthority: { country: "DE" } }, {
      "x-request-id": "d2b0c7e4-1a3f-4e6b-8c9d-0f1e2a3b4c5d",
    });
    const { apiKey } = (await res.json()) as { apiKey: string };
    const audit = (await (await t.call("GET", "v1/audit", { key: apiKey })).json()) as { items: Array<{ requestId: string }> };
    expect(audit.items[0]!.requestId).toBe("d2b0c7e4-1a3f-4e6b-8c9d-0f1e2a3b4c5d");
  });

  it("marks responses as not cacheable", async () => {
    const res = await t.call("GET", "v1/audit", { key });
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });
});

describe("health", () => {
  it("reports storage reachable", async () => {
    const res = await t.admin("GET", "health");
    const body = (await res.json()) as { status: string; checks: Record<string, { status: string }>; sweeps: unknown[] };
    expect(body.checks).toMatchObject({ cosmos: { status: "up" }, blob: { status: "up" }, queue: { status: "up" } });
    expect(res.status).toBe(body.status === "healthy" ? 200 : 503);
  });
});

describe("idempotency", () => {
  it("is honoured by every POST endpoint", () => {
    const posts = endpoints().filter((e) => e.method === "POST");
    expect(posts.length).toBeGreaterThan(0);
    expect(posts.filter((e) => !e.idempotency).map((e) => e.name)).toEqual([]);
  });
});

describe("OpenAPI", () => {
  it("documents every endpoint with its method, security and responses", async () => {
    const res = await t.call("GET", "v1/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { operationId: string; security: unknown[]; responses: Record<string, unknown> }>> };
    expect(doc.openapi).toBe("3.1.0");
    for (const e of endpoints()) {
      if (e.name === "not-found") continue;
      const op = doc.paths[`/api/${e.route}`]?.[e.method.toLowerCase()];
      expect(op, `${e.method} /api/${e.route}`).toBeDefined();
      expect(op!.operationId).toBe(e.name);
      expect(Object.keys(op!.responses)).toEqual(expect.arrayContaining(Object.keys(e.responses)));
      if (e.auth !== "none") expect(op!.responses["401"]).toBeDefined();
    }
  });
});

describe("logs", () => {
  it("never contain e-mail addresses, keys or bodies, even for bad input", async () => {
    const email = "jane.private@person.example";
    await t.admin("POST", "v1/admin/tenants", { name: "Log Check", contactEmail: email, supervisoryAuthority: { country: "AT" } });
    await t.admin("POST", "v1/admin/tenants", { name: 5, contactEmail: email, supervisoryAuthority: { country: "XX" } });
    await t.call("POST", "v1/admin/tenants", { headers: { "content-type": "application/json", authorization: `Bearer ${email}` }, body: `{"contactEmail":"${email}"` });
    const lines = t.logs.map((l) => l.message).join("\n");
    expect(lines).not.toContain(email);
    expect(lines).not.toContain(key);
    expect(lines).not.toContain(t.env.ADMIN_API_KEY);
  });
});
