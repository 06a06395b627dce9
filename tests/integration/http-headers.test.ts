/**
 * Header syntax as the RFCs define it, not as one narrow spelling: the Authorization scheme is case-insensitive with
 * one or more spaces before the credentials (RFC 9110 §11.1 and §11.4, RFC 6750 §2.1); every GET route answers HEAD
 * (RFC 9110 §9.1, §9.3.2), and a 405's Allow names HEAD wherever GET is allowed (§10.2.1).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { endpoints } from "../../shared/http/endpoint";
import { startTestApp, type TestApp } from "../helpers/app";
import { createUpload } from "../helpers/uploads";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let uploadId: string;
beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant();
  uploadId = (await createUpload(t, tenant.apiKey, { size: 3 })).id;
});
afterAll(async () => {
  await t?.stop();
});

const get = (route: string, authorization: string) => t.call("GET", route, { headers: { authorization } });

describe("Authorization", () => {
  it("accepts the Bearer scheme in any case (RFC 9110 §11.1)", async () => {
    for (const scheme of ["bearer", "BEARER", "bEaReR"]) {
      expect((await get("v1/audit", `${scheme} ${tenant.apiKey}`)).status, scheme).toBe(200);
      expect((await get("v1/admin/tenants", `${scheme} ${t.env.ADMIN_API_KEY}`)).status, `admin ${scheme}`).toBe(200);
    }
  });

  it("accepts one or more spaces between scheme and key (RFC 6750 §2.1: 1*SP)", async () => {
    expect((await get("v1/audit", `Bearer   ${tenant.apiKey}`)).status).toBe(200);
    expect((await get("v1/admin/tenants", `bearer  ${t.env.ADMIN_API_KEY}`)).status).toBe(200);
  });

  it("still refuses other schemes, a missing key, a tab instead of a space, and two credentials", async () => {
    for (const value of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer\t" + tenant.apiKey, `Bearer ${tenant.apiKey} ${tenant.apiKey}`, `Bearerx ${tenant.apiKey}`]) {
      const res = await get("v1/audit", value);
      expect(res.status, JSON.stringify(value.slice(0, 12))).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
  });
});

/** A concrete path for a GET route template, with ids that exist. */
function pathOf(route: string): string {
  return route.replace("{tenantId}", tenant.tenantId).replace("{id}", uploadId);
}

describe("HEAD", () => {
  // The content route's HEAD is a metadata read with rules of its own (see the uploads tests).
  const own = () => endpoints().filter((e) => e.method === "GET" && !e.route.includes("{*") && e.name !== "uploads-get-content");

  it("answers every GET route with the GET's status and headers and no body (RFC 9110 §9.3.2)", async () => {
    expect(own().length).toBeGreaterThan(5);
    for (const e of own()) {
      const path = pathOf(e.route);
      const auth = e.auth === "admin" ? `Bearer ${t.env.ADMIN_API_KEY}` : `Bearer ${tenant.apiKey}`;
      const g = await t.call("GET", path, { headers: { authorization: auth } });
      const getBody = Buffer.from(await g.arrayBuffer());
      const h = await t.call("HEAD", path, { headers: { authorization: auth } });
      const headBody = Buffer.from(await h.arrayBuffer());
      expect(h.status, `HEAD ${path}`).toBe(g.status);
      expect(h.headers.get("content-type"), `HEAD ${path}`).toBe(g.headers.get("content-type"));
      expect(headBody.length, `HEAD ${path}`).toBe(0);
      expect(h.headers.get("content-length"), `HEAD ${path}`).toBe(String(getBody.length));
      expect(h.headers.get("x-request-id")).toBeTruthy();
    }
  });

  it("answers errors to HEAD with the status and headers only", async () => {
    const unauthenticated = await t.call("HEAD", "v1/audit");
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get("content-type")).toContain("application/problem+json");
    expect(unauthenticated.headers.get("www-authenticate")).toContain("Bearer");
    expect((await unauthenticated.arrayBuffer()).byteLength).toBe(0);
    const unknown = await t.call("HEAD", "v1/no-such-route");
    expect(unknown.status).toBe(404);
    expect((await unknown.arrayBuffer()).byteLength).toBe(0);
  });

  it("is listed in Allow wherever GET is (RFC 9110 §10.2.1)", async () => {
    const verify = await t.call("DELETE", "v1/audit/verify", { key: tenant.apiKey });
    expect(verify.status).toBe(405);
    expect(verify.headers.get("allow")).toBe("GET, HEAD");
    const upload = await t.call("PUT", `v1/uploads/${uploadId}`, { key: tenant.apiKey });
    expect(upload.status).toBe(405);
    expect(upload.headers.get("allow")).toBe("GET, HEAD, DELETE");
    const create = await t.call("DELETE", "v1/uploads", { key: tenant.apiKey });
    expect(create.headers.get("allow")).toBe("GET, HEAD, POST");
    const content = await t.call("POST", `v1/uploads/${uploadId}/content`, { key: tenant.apiKey });
    expect(content.headers.get("allow")).toBe("GET, HEAD, PUT");
  });
});

describe("Content-Type of JSON bodies", () => {
  const tenantBody = (n: string) => JSON.stringify({ name: `CT ${n}`, contactEmail: `dpo-${n}@ct.example`, supervisoryAuthority: { country: "DK" } });
  const post = (contentType: string, n: string) =>
    t.call("POST", "v1/admin/tenants", { headers: { authorization: `Bearer ${t.env.ADMIN_API_KEY}`, "content-type": contentType }, body: tenantBody(n) });

  it("parses the media type and its parameters as RFC 9110 §8.3.1 writes them", async () => {
    expect((await post('Application/JSON; Charset="UTF-8"', "a")).status).toBe(201);
    expect((await post('application/json; profile="a;b"; charset=utf-8', "b")).status).toBe(201);
    expect((await post("application/json;charset=utf-8", "c")).status).toBe(201);
  });

  it("refuses a charset other than UTF-8 however it is spelled", async () => {
    for (const ct of ["application/json; charset = latin1", 'application/json; charset="ISO-8859-1"', "application/json; CHARSET=utf-16", "application/json, text/plain"]) {
      expect((await post(ct, "x")).status, ct).toBe(415);
    }
  });
});

describe("Idempotency-Key", () => {
  it("takes the quoted form the header's specification uses (a structured-field string) as the same key", async () => {
    const body = { name: "Quoted Key ApS", contactEmail: "dpo@quoted.example", supervisoryAuthority: { country: "DK" } };
    const first = await t.admin("POST", "v1/admin/tenants", body, { "idempotency-key": '"quoted-key-1"' });
    expect(first.status).toBe(201);
    const again = await t.admin("POST", "v1/admin/tenants", body, { "idempotency-key": "quoted-key-1" });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const escaped = await t.admin("POST", "v1/admin/tenants", { ...body, name: "Escaped" }, { "idempotency-key": '"a\\"b"' });
    expect(escaped.status).toBe(201);
    const escapedAgain = await t.admin("POST", "v1/admin/tenants", { ...body, name: "Escaped" }, { "idempotency-key": 'a"b' });
    expect(escapedAgain.headers.get("idempotent-replayed")).toBe("true");
    expect((await t.admin("POST", "v1/admin/tenants", body, { "idempotency-key": '""' })).status).toBe(400);
    expect((await t.admin("POST", "v1/admin/tenants", body, { "idempotency-key": '"unterminated' })).status).toBe(400);
  });
});

describe("X-Request-Id", () => {
  it("is taken from the caller only when it is a UUID, so no free text reaches the audit log", async () => {
    const uuid = "0b5e1f5c-3d8a-4c1e-9f3a-7c2d1e0a9b84";
    const ok = await t.call("GET", "v1/audit", { key: tenant.apiKey, headers: { "x-request-id": uuid } });
    expect(ok.headers.get("x-request-id")).toBe(uuid);
    const upper = await t.call("GET", "v1/audit", { key: tenant.apiKey, headers: { "x-request-id": uuid.toUpperCase() } });
    expect(upper.headers.get("x-request-id")).toBe(uuid);
    for (const text of ["Jane-Doe-test-result", "client-req-123", `${uuid}x`, `{${uuid}}`, "urn:uuid:" + uuid]) {
      const res = await t.call("GET", "v1/audit", { key: tenant.apiKey, headers: { "x-request-id": text } });
      const id = res.headers.get("x-request-id")!;
      expect(id, text).not.toBe(text);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
  });

  it("never puts the caller's free text into an audit entry", async () => {
    const res = await t.admin("POST", "v1/admin/tenants", { name: "Traced", contactEmail: "dpo@traced.example", supervisoryAuthority: { country: "DE" } }, {
      "x-request-id": "Jane.Doe-HIV-test",
    });
    expect(res.status).toBe(201);
    const { apiKey } = (await res.json()) as { apiKey: string };
    const audit = (await (await t.call("GET", "v1/audit", { key: apiKey })).json()) as { items: Array<{ requestId: string }> };
    expect(audit.items[0]!.requestId).toBe(res.headers.get("x-request-id"));
    expect(JSON.stringify(audit)).not.toContain("Jane");
  });
});
