/**
 * Answers that the OpenAPI document once left out, provoked one by one on routes other than uploads (those are in
 * uploads/declared-responses.test.ts) and checked against the served document with the same contract check as the
 * property test (tests/helpers/openapi-contract.ts): status declared for the operation, problem type declared for the
 * status (x-problem-types), required headers present, no 5xx unless declared as an answer. Also: the request headers
 * and HEAD operations the document lists, and health's 503, which is an answer and not a failure.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { contractViolations, operationsOf, type OpenApiDocument } from "../helpers/openapi-contract";
import { sweep } from "../helpers/sweep";

let t: TestApp;
let doc: OpenApiDocument;
let tenant: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant();
  doc = (await (await t.call("GET", "v1/openapi.json")).json()) as OpenApiDocument;
});
afterAll(async () => {
  await t?.stop();
});

/** Sends the request and returns the status and what breaks the document's contract. */
async function check(method: string, route: string, init: { key?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; type?: string; violations: string[] }> {
  const res = await t.call(method, route, init);
  const body = await res.text();
  const url = new URL(res.url);
  let type: string | undefined;
  try {
    type = (JSON.parse(body) as { type?: string }).type;
  } catch {
    type = undefined;
  }
  return { status: res.status, type, violations: contractViolations(doc, { method, url, status: res.status, headers: res.headers, body }) };
}

const admin = () => t.env.ADMIN_API_KEY!;

describe("answers the document declares now", () => {
  it("health: 401 for a key that is not the admin key, 400 for a repeated query key, on GET and HEAD", async () => {
    for (const method of ["GET", "HEAD"]) {
      const wrongKey = await check(method, "health", { key: tenant.apiKey });
      expect(wrongKey.status, method).toBe(401);
      expect(wrongKey.violations, method).toEqual([]);
      const repeated = await check(method, "health?a=1&a=2");
      expect(repeated.status, method).toBe(400);
      expect(repeated.violations, method).toEqual([]);
    }
  });

  it("webhook routes without an endpoint: 404 not-found", async () => {
    const { apiKey } = await t.createTenant();
    for (const [method, route] of [
      ["GET", "v1/webhook"],
      ["HEAD", "v1/webhook"],
      ["DELETE", "v1/webhook"],
      ["POST", "v1/webhook/rotate-secret"],
      ["POST", "v1/webhook/test"],
    ] as const) {
      const r = await check(method, route, { key: apiKey });
      expect(r.status, `${method} ${route}`).toBe(404);
      expect(r.violations, `${method} ${route}`).toEqual([]);
    }
  });

  it("tenant state changes that conflict: 409 conflict on suspend and reactivate", async () => {
    const { tenantId } = await t.createTenant();
    const reactivateActive = await check("POST", `v1/admin/tenants/${tenantId}/reactivate`, { key: admin() });
    expect([reactivateActive.status, reactivateActive.type]).toEqual([409, "urn:safedata:problem:conflict"]);
    expect(reactivateActive.violations).toEqual([]);
    expect((await check("POST", `v1/admin/tenants/${tenantId}/suspend`, { key: admin() })).status).toBe(200);
    const again = await check("POST", `v1/admin/tenants/${tenantId}/suspend`, { key: admin() });
    expect([again.status, again.type]).toEqual([409, "urn:safedata:problem:conflict"]);
    expect(again.violations).toEqual([]);
  });

  it("an Idempotency-Key that is not one, and a repeated query key, on POSTs without a body: 400 invalid-parameter", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    for (const [route, key] of [
      [`v1/admin/tenants/${tenantId}/api-key`, admin()],
      [`v1/admin/tenants/${tenantId}/kek/rotate`, admin()],
      ["v1/webhook/rotate-secret", apiKey],
    ] as const) {
      const badKey = await check("POST", route, { key, headers: { "idempotency-key": '"unterminated' } });
      expect([badKey.status, badKey.type], route).toEqual([400, "urn:safedata:problem:invalid-parameter"]);
      expect(badKey.violations, route).toEqual([]);
      const repeated = await check("POST", `${route}?x=1&x=2`, { key });
      expect(repeated.status, route).toBe(400);
      expect(repeated.violations, route).toEqual([]);
    }
  });

  it("JSON bodies: a repeated query key is 400 invalid-parameter beside invalid-json", async () => {
    const { tenantId } = await t.createTenant();
    for (const [method, route] of [
      ["POST", "v1/admin/tenants"],
      ["PATCH", `v1/admin/tenants/${tenantId}`],
      ["PUT", "v1/webhook"],
    ] as const) {
      const key = route.startsWith("v1/admin") ? admin() : tenant.apiKey;
      const r = await check(method, `${route}?x=1&x=2`, { key, json: {} });
      expect([r.status, r.type], route).toEqual([400, "urn:safedata:problem:invalid-parameter"]);
      expect(r.violations, route).toEqual([]);
    }
  });

  it("other methods and unknown paths: components.responses MethodNotAllowed (with Allow), RouteNotFound, RepeatedQueryParameter", async () => {
    for (const [method, route, status] of [
      ["OPTIONS", "v1/retention", 405],
      ["DELETE", "v1/audit", 405],
      ["HEAD", "v1/webhook/test", 405],
      ["GET", "v1/nothing/here", 404],
      ["GET", "v1/nothing/here?a=1&a=2", 400],
      ["OPTIONS", "v1/retention?a=1&a=2", 400],
    ] as const) {
      const r = await check(method, route, { key: tenant.apiKey });
      expect(r.status, `${method} ${route}`).toBe(status);
      expect(r.violations, `${method} ${route}`).toEqual([]);
    }
  });

  it("health's 503 (a sweep is behind) is a declared answer, not a failure; a 500 or an undeclared 5xx is one", async () => {
    await sweep(t);
    const start = t.clock.now().getTime();
    t.clock.set(start + 31 * 60_000);
    try {
      for (const method of ["GET", "HEAD"]) {
        const r = await check(method, "health");
        expect(r.status, method).toBe(503);
        expect(r.violations, method).toEqual([]);
      }
    } finally {
      t.clock.set(start);
    }
    const url = new URL(`${t.api}/health`);
    const headers = (contentType: string) => new Headers({ "x-request-id": "8e03978e-40d5-43e8-bc93-6894a57f9324", "content-type": contentType });
    const internal = JSON.stringify({ type: "urn:safedata:problem:internal-error", title: "Internal error", status: 500, detail: "x" });
    expect(contractViolations(doc, { method: "GET", url, status: 500, headers: headers("application/problem+json"), body: internal }).join()).toMatch(/a server error/);
    expect(contractViolations(doc, { method: "GET", url, status: 502, headers: headers("text/plain"), body: "" }).join()).toMatch(/status not declared/);
  });
});

describe("what the document declares about requests", () => {
  it("every GET has its HEAD, with the same statuses", () => {
    const ops = operationsOf(doc);
    for (const get of ops.filter((o) => o.method === "get")) {
      const head = ops.find((o) => o.method === "head" && o.path === get.path);
      expect(head, `HEAD ${get.path}`).toBeDefined();
      expect(Object.keys(head!.op.responses).sort(), `HEAD ${get.path}`).toEqual(Object.keys(get.op.responses).sort());
    }
  });

  it("request headers: X-Request-Id everywhere, Idempotency-Key on every POST that honours it, Range and its conditions on downloads", () => {
    const headersOf = (method: "get" | "post", path: string) => (doc.paths[path]?.[method]?.parameters ?? []).filter((p) => p.in === "header").map((p) => p.name);
    for (const { op } of operationsOf(doc)) {
      expect((op.parameters ?? []).some((p) => p.in === "header" && p.name === "X-Request-Id"), op.operationId).toBe(true);
    }
    for (const path of ["/api/v1/uploads", "/api/v1/admin/tenants", "/api/v1/admin/tenants/{tenantId}/api-key", "/api/v1/admin/tenants/{tenantId}/suspend", "/api/v1/admin/tenants/{tenantId}/kek/rotate", "/api/v1/webhook/test"]) {
      expect(headersOf("post", path), path).toContain("Idempotency-Key");
    }
    expect(headersOf("get", "/api/v1/uploads/{id}/content")).toEqual(expect.arrayContaining(["Range", "If-Range", "If-None-Match"]));
  });
});
