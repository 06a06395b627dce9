/**
 * Query and body parsing exactly as the README's conventions say: numeric query parameters are decimal digits only;
 * a parameter is refused when repeated or unknown, whatever its name (`constructor` and `__proto__` are names like any
 * other); a JSON object with the same key twice, at any depth, is refused (RFC 8259 §4 leaves duplicates undefined,
 * I-JSON, RFC 7493 §2.3, forbids them, and a gateway in front of a tenant may read the first where we read the last).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { z } from "zod";
import { expect } from "../helpers/expect";
import { endpoints } from "../../shared/http/endpoint";
import { startTestApp, type TestApp } from "../helpers/app";
import { createUpload } from "../helpers/uploads";

let t: TestApp;
let key: string;
let uploadId: string;
beforeAll(async () => {
  t = await startTestApp();
  key = (await t.createTenant()).apiKey;
  uploadId = (await createUpload(t, key, { size: 4 })).id;
});
afterAll(async () => {
  await t?.stop();
});

async function problemOf(res: Response): Promise<{ status: number; type: string; detail: string; errors?: Array<{ path: string; message: string }> }> {
  const body = (await res.json()) as { type: string; detail: string; errors?: Array<{ path: string; message: string }> };
  return { status: res.status, ...body };
}

const authFor = (auth: string) => (auth === "admin" ? `Bearer ${t.env.ADMIN_API_KEY}` : `Bearer ${key}`);

/** Every (endpoint, parameter) whose query schema reads a number. */
function numericParameters(): Array<{ route: string; auth: string; name: string }> {
  const out: Array<{ route: string; auth: string; name: string }> = [];
  for (const e of endpoints()) {
    const shape = (e.query as z.ZodObject<z.ZodRawShape> | undefined)?.shape;
    if (!shape) continue;
    for (const [name, schema] of Object.entries(shape)) {
      const r = (schema as z.ZodType).safeParse("7");
      if (r.success && typeof r.data === "number") out.push({ route: e.route, auth: e.auth, name });
    }
  }
  return out;
}

describe("numeric query parameters", () => {
  it("accept decimal digits", async () => {
    expect((await t.call("GET", "v1/audit?limit=7", { key })).status).toBe(200);
    expect((await t.call("GET", "v1/audit?limit=007", { key })).status).toBe(200);
    expect((await t.call("GET", "v1/audit/verify?fromSeq=1&maxEntries=10", { key })).status).toBe(200);
  });

  it("refuse hexadecimal, exponents, signs, spaces, fractions and empty values on every route", async () => {
    const params = numericParameters();
    expect(params.map((p) => `${p.route}:${p.name}`)).toEqual(expect.arrayContaining(["v1/audit:limit", "v1/audit/verify:fromSeq", "v1/audit/verify:maxEntries", "v1/uploads:limit", "v1/admin/tenants:limit"]));
    for (const p of params) {
      for (const value of ["0x10", "1e1", " 5", "5 ", "+5", "5.0", "", "0b11", "1_0", "Infinity", "٣"]) {
        const res = await t.call("GET", `${p.route}?${p.name}=${encodeURIComponent(value)}`, { headers: { authorization: authFor(p.auth) } });
        const problem = await problemOf(res);
        expect(problem.status, `${p.route}?${p.name}=${JSON.stringify(value)}`).toBe(400);
        expect(problem.type).toBe("urn:safedata:problem:invalid-parameter");
      }
    }
  });
});

describe("parameter names", () => {
  it("are never mistaken for repeats because they name something an object has", async () => {
    for (const name of ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf"]) {
      // Routes without query parameters ignore unknown ones...
      expect((await t.call("GET", `v1/uploads/${uploadId}?${name}=1`, { key })).status, name).toBe(200);
      // ...and routes with some refuse them as unknown, not as given twice.
      const problem = await problemOf(await t.call("GET", `v1/audit?${name}=1`, { key }));
      expect(problem.status, name).toBe(400);
      expect(JSON.stringify(problem), name).not.toContain("more than once");
      expect(JSON.stringify(problem.errors), name).toContain("unknown");
    }
  });

  it("refuses a real repeat, whatever the name", async () => {
    for (const name of ["limit", "constructor", "__proto__"]) {
      const problem = await problemOf(await t.call("GET", `v1/audit?${name}=1&${name}=2`, { key }));
      expect(problem.status, name).toBe(400);
      expect(problem.detail, name).toContain("more than once");
    }
  });
});

describe("JSON objects with a key twice", () => {
  const admin = () => ({ authorization: `Bearer ${t.env.ADMIN_API_KEY}`, "content-type": "application/json" });
  const post = (body: string) => t.call("POST", "v1/admin/tenants", { headers: admin(), body });

  it("are refused at the top level, in nested objects and in objects inside arrays", async () => {
    const cases = [
      '{"name":"First","name":"Second","contactEmail":"dpo@dup.example","supervisoryAuthority":{"country":"DK"}}',
      '{"name":"Nested","contactEmail":"dpo@dup.example","supervisoryAuthority":{"country":"DK","country":"SE"}}',
      // The same key spelled with an escape is the same key.
      '{"name":"Escaped","n\\u0061me":"Other","contactEmail":"dpo@dup.example","supervisoryAuthority":{"country":"DK"}}',
    ];
    for (const body of cases) {
      const problem = await problemOf(await post(body));
      expect(problem.status, body).toBe(400);
      expect(problem.type).toBe("urn:safedata:problem:invalid-json");
      expect(problem.detail).toContain("twice");
    }
    const upload = await t.call("POST", "v1/uploads", {
      key,
      headers: { "content-type": "application/json" },
      body: '{"senderReference":"r","recipients":["a@x.example"],"dataSubjects":["b@x.example"],"categories":["financial"],"fileName":"a.pdf","contentType":"application/pdf","size":1,"size":2}',
    });
    expect((await problemOf(upload)).status).toBe(400);
  });

  it("do not name a key that looks like personal data", async () => {
    const problem = await problemOf(await post('{"jane@person.example":1,"jane@person.example":2}'));
    expect(problem.status).toBe(400);
    expect(JSON.stringify(problem)).not.toContain("jane");
  });

  it("are told apart from equal values, equal keys in sibling objects and keys that only look alike", async () => {
    // Not duplicates: the same key in two different objects, and keys that differ in case.
    const ok = await post('{"name":"Siblings","contactEmail":"dpo@siblings.example","supervisoryAuthority":{"country":"DK","name":"Datatilsynet"}}');
    expect(ok.status).toBe(201);
    const caseOnly = await problemOf(await post('{"name":"Case","Name":"Other","contactEmail":"dpo@case.example","supervisoryAuthority":{"country":"DK"}}'));
    expect(caseOnly.status).toBe(422);
  });
});
