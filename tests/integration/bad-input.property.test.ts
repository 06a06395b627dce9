/**
 * Property: whatever a caller sends to whichever route (malformed JSON, wrong types, huge or unicode strings,
 * wrong content types, missing, forged or wrong-kind credentials), the answer is one the served OpenAPI document
 * declares for that operation (tests/helpers/openapi-contract.ts): never a 5xx it does not declare as an answer
 * (health's 503 "unhealthy" is one; a probe can time out on a loaded machine), and every error declared as a problem
 * is problem+json with a stable, declared type and a request id.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { endpoints } from "../../shared/http/endpoint";
import { startTestApp, type TestApp } from "../helpers/app";
import { contractViolations, declaredFor, isProblem, type OpenApiDocument } from "../helpers/openapi-contract";

let t: TestApp;
let tenantKey: string;
let otherTenantId: string;
let doc: OpenApiDocument;
beforeAll(async () => {
  t = await startTestApp();
  tenantKey = (await t.createTenant()).apiKey;
  otherTenantId = (await t.createTenant()).tenantId;
  doc = (await (await t.call("GET", "v1/openapi.json")).json()) as OpenApiDocument;
});
afterAll(async () => {
  await t?.stop();
});

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", " ", "..", "%00", "null", "-1", "1e309", "tn-aaaaaaaaaaaaaaaa", "../../etc/passwd", "a".repeat(5000)),
);

const jsonBody = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.object().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom("{", "[]", "null", "true", '{"name":', "\u0000", '{"__proto__":{"x":1}}', JSON.stringify({ name: "x".repeat(300_000) })),
  fc.record({
    name: text,
    contactEmail: fc.oneof(text, fc.emailAddress()),
    supervisoryAuthority: fc.oneof(fc.record({ country: fc.oneof(text, fc.constantFrom("DK", "SE")) }), text),
    webhookUrl: fc.oneof(text, fc.webUrl()),
  }).map((v) => JSON.stringify(v)),
);

// Built once the app has registered its endpoints.
const requests = () => fc.record({
  endpoint: fc.constantFrom(...endpoints()),
  methodOverride: fc.option(fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE"), { nil: undefined }),
  param: text,
  query: fc.dictionary(fc.constantFrom("limit", "cursor", "from", "to", "status", "x", "tenantId"), text, { maxKeys: 3 }),
  body: fc.option(fc.oneof(jsonBody, fc.uint8Array({ maxLength: 300 })), { nil: undefined }),
  contentType: fc.option(
    fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream", "application/json; charset=utf-16", "multipart/form-data; boundary=x", "application/merge-patch+json"),
    { nil: undefined },
  ),
  auth: fc.constantFrom("none", "tenant", "admin", "forged-tenant", "garbage", "basic", "other-tenant-id"),
  idempotencyKey: fc.option(fc.oneof(fc.string({ maxLength: 300 }), fc.constant("k1")), { nil: undefined }),
});

function authHeader(kind: string): string | undefined {
  switch (kind) {
    case "tenant":
      return `Bearer ${tenantKey}`;
    case "admin":
      return `Bearer ${t.env.ADMIN_API_KEY}`;
    case "forged-tenant":
      return `Bearer ${tenantKey.slice(0, -1)}${tenantKey.endsWith("A") ? "B" : "A"}`;
    case "other-tenant-id":
      return `Bearer sdk_${otherTenantId}_${"A".repeat(43)}`;
    case "garbage":
      return "Bearer \u00ff\u00fe";
    case "basic":
      return "Basic dXNlcjpwYXNz";
    default:
      return undefined;
  }
}

const asciiHeader = (s: string) => [...s].filter((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) < 0x7f).join("");

describe("bad input at every route", () => {
  it("gets only answers the document declares (no undeclared 5xx) and a problem+json for errors", async () => {
    await fc.assert(
      fc.asyncProperty(requests(), async (r) => {
        const route = r.endpoint.route.replace(/\{\*?([A-Za-z]+)[^}]*\}/g, () => encodeURIComponent(r.param) || "x");
        const qs = new URLSearchParams(r.query).toString();
        const method = r.methodOverride ?? r.endpoint.method;
        const headers: Record<string, string> = {};
        const auth = authHeader(r.auth);
        if (auth) headers.authorization = asciiHeader(auth) || "Bearer";
        if (r.contentType) headers["content-type"] = r.contentType;
        if (r.idempotencyKey !== undefined) headers["idempotency-key"] = asciiHeader(r.idempotencyKey);
        const body = method === "GET" || method === "DELETE" ? undefined : r.body;
        const url = new URL(`${t.api}/${route}${qs ? `?${qs}` : ""}`);
        // Dot segments can walk a URL out of /api, where the API does not answer; those are not API requests.
        fc.pre(url.pathname.startsWith("/api/"));
        const res = await fetch(url, { method, headers, body });
        const text = await res.text();
        expect(contractViolations(doc, { method, url, status: res.status, headers: res.headers, body: text })).toEqual([]);
        expect(res.headers.get("x-request-id")).toBeTruthy();
        // Errors are problems, except answers the document declares as something else (health's 503 reports; a page
        // a link opens answers in HTML): those are left to the contract check above.
        const declared = declaredFor(doc, { method, url, status: res.status });
        if (res.status >= 400 && declared !== undefined && isProblem(declared)) {
          expect(res.headers.get("content-type")).toContain("application/problem+json");
          const problem = JSON.parse(text) as { type: string; status: number };
          expect(problem.type).toMatch(/^urn:safedata:problem:[a-z-]+$/);
          expect(problem.status).toBe(res.status);
        }
      }),
      { numRuns: 300 },
    );
  }, 120_000);
});
