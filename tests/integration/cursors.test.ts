/**
 * Page cursors are opaque and verified: an HMAC over their content binds each to the tenant, the route and the query
 * it was made for, under a key derived from a secret the service already has. Whatever a caller puts in `cursor`, the
 * answer is the next page (for a cursor we made for exactly this request) or a 400, never a 500, and nothing a
 * caller wrote reaches the database's continuation header.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { endpoints } from "../../shared/http/endpoint";
import { startTestApp, type TestApp } from "../helpers/app";
import { createUpload } from "../helpers/uploads";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
let b: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  a = await t.createTenant();
  b = await t.createTenant();
  await t.createTenant();
  for (let i = 0; i < 5; i++) {
    await createUpload(t, a.apiKey, { size: 1 });
    await createUpload(t, b.apiKey, { size: 1 });
  }
});
afterAll(async () => {
  await t?.stop();
});

type Page = { items: Array<{ id?: string; seq?: number }>; nextCursor?: string };

const PAGED = [
  { route: "v1/uploads", auth: () => a.apiKey },
  { route: "v1/audit", auth: () => a.apiKey },
  { route: "v1/admin/tenants", auth: () => t.env.ADMIN_API_KEY! },
];

async function page(route: string, key: string, query: string): Promise<Response> {
  return t.call("GET", `${route}?${query}`, { headers: { authorization: `Bearer ${key}` } });
}

async function nextCursor(route: string, key: string, query = "limit=2"): Promise<string> {
  const res = await page(route, key, query);
  expect(res.status).toBe(200);
  const body = (await res.json()) as Page;
  expect(body.nextCursor, route).toBeDefined();
  return body.nextCursor!;
}

async function expect400(res: Response, what: string): Promise<void> {
  const text = await res.text();
  expect(res.status, `${what}: ${text.slice(0, 200)}`).toBe(400);
  expect((JSON.parse(text) as { type: string }).type).toBe("urn:safedata:problem:invalid-parameter");
}

/** Every operation whose query takes a cursor, as the app registered them. */
function pagedRoutes(): Array<{ route: string; auth: () => string }> {
  return endpoints()
    .filter((e) => (e.query as { shape?: Record<string, unknown> } | undefined)?.shape?.cursor !== undefined)
    .map((e) => ({ route: e.route, auth: () => (e.auth === "admin" ? t.env.ADMIN_API_KEY! : a.apiKey) }));
}

describe("made-up cursors", () => {
  it("answer 400 on every paged route, the NUL-byte example included", async () => {
    expect(pagedRoutes().map((p) => p.route)).toEqual(expect.arrayContaining(PAGED.map((p) => p.route)));
    for (const p of pagedRoutes()) {
      for (const cursor of ["c2RjMToA", "c2RjMTp7fQ", "AAAA", "A", "_-_-", Buffer.from("sdc1:" + "\u0001".repeat(10)).toString("base64url")]) {
        await expect400(await page(p.route, p.auth(), `cursor=${cursor}`), `${p.route} cursor=${cursor}`);
      }
    }
  });

  it("answer 400, never 5xx, whatever their bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PAGED), fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), async (p, bytes, prefixed) => {
        const raw = prefixed ? Buffer.concat([Buffer.from("sdc1:"), bytes]) : Buffer.from(bytes);
        await expect400(await page(p.route, p.auth(), `cursor=${raw.toString("base64url")}`), p.route);
      }),
      { numRuns: 60 },
    );
  });
});

describe("real cursors", () => {
  it("page through every item once", async () => {
    for (const p of PAGED) {
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let n = 0; n < 50; n++) {
        const res = await page(p.route, p.auth(), `limit=2${cursor ? `&cursor=${cursor}` : ""}`);
        expect(res.status, p.route).toBe(200);
        const body = (await res.json()) as Page;
        seen.push(...body.items.map((i) => String(i.id ?? i.seq)));
        cursor = body.nextCursor;
        if (!cursor) break;
        expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      }
      expect(cursor, p.route).toBeUndefined();
      expect(new Set(seen).size, p.route).toBe(seen.length);
      expect(seen.length, p.route).toBeGreaterThan(2);
    }
  });

  it("work only for the tenant they were made for", async () => {
    const cursor = await nextCursor("v1/uploads", a.apiKey);
    expect((await page("v1/uploads", a.apiKey, `limit=2&cursor=${cursor}`)).status).toBe(200);
    await expect400(await page("v1/uploads", b.apiKey, `limit=2&cursor=${cursor}`), "another tenant");
    const auditCursor = await nextCursor("v1/audit", a.apiKey);
    await expect400(await page("v1/audit", b.apiKey, `limit=2&cursor=${auditCursor}`), "another tenant's audit cursor");
  });

  it("work only on the route and with the filters they were made for", async () => {
    const uploads = await nextCursor("v1/uploads", a.apiKey);
    await expect400(await page("v1/audit", a.apiKey, `cursor=${uploads}`), "an uploads cursor on the audit log");
    const tenants = await nextCursor("v1/admin/tenants", t.env.ADMIN_API_KEY!, "limit=1");
    await expect400(await page("v1/uploads", a.apiKey, `cursor=${tenants}`), "the operators' cursor on a tenant route");
    const filtered = await nextCursor("v1/uploads", a.apiKey, "limit=2&status=awaiting-content");
    expect((await page("v1/uploads", a.apiKey, `limit=2&status=awaiting-content&cursor=${filtered}`)).status).toBe(200);
    await expect400(await page("v1/uploads", a.apiKey, `limit=2&status=deleted&cursor=${filtered}`), "another status filter");
    await expect400(await page("v1/uploads", a.apiKey, `limit=2&cursor=${filtered}`), "no status filter");
    // The page size may change between pages.
    expect((await page("v1/uploads", a.apiKey, `limit=3&status=awaiting-content&cursor=${filtered}`)).status).toBe(200);
  });

  it("refuse any change to their text", async () => {
    const cursor = await nextCursor("v1/audit", a.apiKey);
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
    for (const i of [0, 5, Math.floor(cursor.length / 2), cursor.length - 1]) {
      await expect400(await page("v1/audit", a.apiKey, `cursor=${flip(cursor, i)}`), `flipped at ${i}`);
    }
    await expect400(await page("v1/audit", a.apiKey, `cursor=${cursor.slice(0, -3)}`), "cut short");
    await expect400(await page("v1/audit", a.apiKey, `cursor=${cursor}AAAA`), "lengthened");
  });
});
