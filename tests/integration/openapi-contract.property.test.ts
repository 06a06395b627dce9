/**
 * Property: the served OpenAPI document is a true contract. Requests built from the document itself (every
 * operation it lists, HEAD included, so routes added later are checked without editing this file) with valid values
 * from its schemas and real ids, and with invalid ones (wrong types, crossed bounds, missing and unknown fields,
 * duplicate JSON keys, broken JSON, wrong media types, repeated and unknown query keys, made-up cursors, bad
 * headers and credentials, other methods, unknown paths), are answered only with statuses the operation declares,
 * problems only with `type`s the status declares (x-problem-types), the headers it declares as always present, and
 * never with a 5xx it does not declare as an answer (health's 503 is one; a 500 is a bug). See
 * tests/helpers/openapi-contract.ts for the checks and tests/helpers/schema-arbitrary.ts for the values.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { createUpload, uploadWith } from "../helpers/uploads";
import { breachBody } from "../helpers/breaches";
import { syncTenantPart } from "../../shared/usecases/breach-notices";
import { OffsetClock } from "../../shared/domain/clock";
import { contractViolations, operationsOf, stringsIn, type JsonSchema, type OpenApiDocument, type Operation, type OperationRef, type Parameter } from "../helpers/openapi-contract";
import { validValue, wrongValue, type SchemaContext } from "../helpers/schema-arbitrary";

/** The idle limit of request bodies here (seconds): short, so the stalled-body check takes a moment. */
const IDLE_SECONDS = 2;

let t: TestApp;
let doc: OpenApiDocument;
let ops: OperationRef[];
let ctx: SchemaContext;
const caller = { tenantId: "", apiKey: "" };
let suspendedKey = "";
/** Strings the service has answered with (ids, mostly): candidates for path parameters that match their schema. */
const seen = new Set<string>();
/** Ids a request must not name in a path: the caller's own tenant (suspending it or rotating its key would end the run). */
const protectedIds = new Set<string>();
/** nextCursor values each operation returned, to page on with. */
const cursors = new Map<string, string[]>();
/** Per operation, how often each status was answered (for the coverage check and failure reports). */
const answered = new Map<string, Map<number, number>>();

beforeAll(async () => {
  t = await startTestApp({ settings: { LOCAL_CLOCK_CONTROL: "true", UPLOAD_IDLE_SECONDS: String(IDLE_SECONDS) }, serviceClock: new OffsetClock(), queues: false });
  Object.assign(caller, await t.createTenant());
  protectedIds.add(caller.tenantId);
  const victim = await t.createTenant();
  seen.add(victim.tenantId);
  const suspended = await t.createTenant();
  protectedIds.add(suspended.tenantId);
  suspendedKey = suspended.apiKey;
  expect((await t.admin("POST", `v1/admin/tenants/${suspended.tenantId}/suspend`)).status).toBe(200);
  expect((await t.call("PUT", "v1/webhook", { key: caller.apiKey, json: { url: "https://hooks.example.com/safedata" } })).status).toBe(201);
  for (let i = 0; i < 3; i++) seen.add((await uploadWith(t, caller.apiKey, 8 + i, { contentType: "application/octet-stream" })).id);
  for (let i = 0; i < 4; i++) seen.add((await createUpload(t, caller.apiKey, { size: i, contentType: "application/octet-stream" })).id);
  // A breach affecting the caller, its part made by the queue job's own step (queues are off here).
  const scope = [{ tenantId: caller.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }];
  const breach = await t.admin("POST", "v1/admin/breaches", breachBody(t, { awareAt: new Date(Date.now() - 3_600_000).toISOString(), occurredFrom: null, occurredTo: null, scope }));
  expect(breach.status).toBe(201);
  const breachId = ((await breach.json()) as { id: string }).id;
  seen.add(breachId);
  await syncTenantPart(t.services, breachId, caller.tenantId);
  // Data-subject requests of the caller, so their routes are reached with real ids.
  for (const type of ["access", "erasure"]) {
    const dsr = await t.call("POST", "v1/subject-requests", { key: caller.apiKey, json: { type, subjectEmail: `contract-${type}@example.com` } });
    expect(dsr.status).toBe(201);
    seen.add(((await dsr.json()) as { id: string }).id);
  }
  const res = await t.call("GET", "v1/openapi.json");
  expect(res.status).toBe(200);
  doc = (await res.json()) as OpenApiDocument;
  ops = operationsOf(doc);
  ctx = {
    resolve: (ref) => {
      const name = ref.replace(/^#\/components\/schemas\//, "");
      const s = doc.components?.schemas?.[name];
      if (!s) throw new Error(`unresolved ${ref}`);
      return s;
    },
  };
});
afterAll(async () => {
  await t?.stop();
});

/** A path parameter's value: one the service named (the n-th that fits), a well-formed made-up one, or garbage. */
type PathValue = { kind: "known"; n: number; fallback: string } | { kind: "literal"; value: string };
type Credential = "valid" | "valid-lowercase-scheme" | "none" | "other-kind" | "forged" | "malformed" | "suspended";
type QueryValue = string | { kind: "cursor"; n: number };

interface Plan {
  method: string;
  /** The path template (with {name}) or, for an unknown path, the path itself. */
  path: string;
  pathValues: Record<string, PathValue>;
  query: Array<[string, QueryValue]>;
  headers: Record<string, string>;
  credential: Credential;
  /** The operation whose security decides what a valid credential is (the one reached, or one on the same path). */
  securityOf?: Operation;
  body?: { contentType?: string; data: string | Uint8Array };
}

const printable = (max: number) => fc.string({ maxLength: max }).map((s) => s.replace(/[^\x20-\x7e]/g, ""));

const schemaOf = (p: Parameter): JsonSchema => p.schema ?? { type: "string" };

function pathValue(p: Parameter): fc.Arbitrary<PathValue> {
  const wellFormed = validValue(schemaOf(p), ctx).map(String);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant("known" as const), n: fc.nat(), fallback: wellFormed }) },
    { weight: 2, arbitrary: wellFormed.map((value) => ({ kind: "literal" as const, value })) },
    { weight: 1, arbitrary: fc.oneof(printable(30), fc.string({ unit: "grapheme", maxLength: 10 })).map((value) => ({ kind: "literal" as const, value: value || "x" })) },
  );
}

/** A query parameter's value as sent: valid, or what a number or pattern must refuse. */
function queryValue(p: Parameter, valid: boolean): fc.Arbitrary<QueryValue> {
  const s = schemaOf(p);
  // A valid cursor is one the list returned (it is opaque: the schema's pattern is not enough).
  if (p.name === "cursor" && valid) return fc.record({ kind: fc.constant("cursor" as const), n: fc.nat() });
  if (valid) return validValue(s, ctx).map(String);
  const numeric = s.type === "integer" || s.type === "number";
  return fc.oneof(
    wrongValue(s, ctx).map((v) => (typeof v === "string" ? v : JSON.stringify(v) ?? "")),
    numeric ? fc.constantFrom("0x10", "1e1", "+5", " 5", "5.0", "", "-1", "1_000", "９") : fc.constantFrom("", "c2RjMToA", "%00", "x".repeat(5000)),
  );
}

function queryPlan(params: Parameter[]): fc.Arbitrary<Array<[string, QueryValue]>> {
  const valid = fc.tuple(...params.map((p) => fc.option(queryValue(p, true), { nil: undefined, freq: 2 }))).map((values) =>
    values.flatMap((v, i): Array<[string, QueryValue]> => (v === undefined ? [] : [[params[i]!.name, v]])),
  );
  if (params.length === 0) {
    const none: Array<[string, QueryValue]> = [];
    return fc.oneof({ weight: 4, arbitrary: fc.constant(none) }, { weight: 1, arbitrary: fc.constantFrom<Array<[string, QueryValue]>>([["a", "1"], ["a", "2"]], [["unknown", "1"]], [["constructor", "x"], ["constructor", "y"]]) });
  }
  const mutation = fc.oneof(
    fc.constantFrom(...params).chain((p) => queryValue(p, false).map((v): ["replace", string, QueryValue] => ["replace", p.name, v])),
    fc.constantFrom(...params).map((p): ["repeat", string, QueryValue] => ["repeat", p.name, "1"]),
    fc.constantFrom("unknown", "__proto__", "constructor", "toString").map((n): ["add", string, QueryValue] => ["add", n, "1"]),
  );
  return fc.tuple(valid, fc.option(mutation, { nil: undefined, freq: 4 })).map(([q, m]) => {
    if (!m) return q;
    const [kind, name, value] = m;
    if (kind === "replace") return [...q.filter(([k]) => k !== name), [name, value]];
    if (kind === "repeat") return [...q, [name, value], [name, value]];
    return [...q, [name, value]];
  });
}

function headerPlan(params: Parameter[]): fc.Arbitrary<Record<string, string>> {
  return fc
    .tuple(
      ...params.map((p) =>
        fc.option(
          fc.oneof(
            { weight: 4, arbitrary: validValue(schemaOf(p), ctx).map(String) },
            { weight: 1, arbitrary: printable(40) },
            { weight: 1, arbitrary: fc.constantFrom("k-1", "k-2", '"k-1"', '"unterminated', "bytes=5-1", "bytes=0-0,2-3", "items=0-1", "W/\"x\"", "*") },
          ),
          { nil: undefined, freq: 2 },
        ),
      ),
    )
    .map((values) => Object.fromEntries(values.flatMap((v, i) => (v === undefined ? [] : [[params[i]!.name, v.trim() === "" ? "x" : v]]))));
}

const credential = fc.oneof(
  { weight: 10, arbitrary: fc.constant<Credential>("valid") },
  { weight: 1, arbitrary: fc.constantFrom<Credential>("valid-lowercase-scheme", "none", "other-kind", "forged", "malformed", "suspended") },
);

/** A JSON text with its first key written twice (RFC 8259 leaves it undefined; the service refuses it). */
function duplicateFirstKey(text: string): string {
  const m = /^\{("(?:[^"\\]|\\.)*"):/.exec(text);
  return m ? `{${m[1]}:null,${text.slice(1)}` : '{"a":1,"a":2}';
}

function bodyPlan(op: Operation): fc.Arbitrary<Plan["body"]> {
  const content = op.requestBody?.content ?? {};
  const json = content["application/json"];
  if (json?.schema) {
    const schema = json.schema;
    const valid = validValue(schema, ctx).map((v) => JSON.stringify(v));
    const asJson = (data: fc.Arbitrary<string>, contentType = "application/json") => data.map((d) => ({ contentType, data: d }));
    return fc.oneof(
      { weight: 8, arbitrary: asJson(valid) },
      { weight: 3, arbitrary: asJson(wrongValue(schema, ctx).map((v) => JSON.stringify(v) ?? "")) },
      { weight: 1, arbitrary: asJson(fc.constantFrom("{", "[1,", '{"a":}', "nul", "\u0000", "", " ", '"\\ud800"', "[".repeat(40) + "]".repeat(40))) },
      { weight: 1, arbitrary: asJson(valid.map(duplicateFirstKey)) },
      {
        weight: 1,
        arbitrary: fc.tuple(valid, fc.constantFrom("text/plain", "application/json; charset=utf-16", "application/x-www-form-urlencoded", "Application/JSON; Charset=\"UTF-8\"", "application/merge-patch+json")).map(
          ([data, contentType]) => ({ contentType, data }),
        ),
      },
      { weight: 1, arbitrary: valid.map((data) => ({ data })) },
      { weight: 1, arbitrary: asJson(fc.constant(JSON.stringify({ padding: "x".repeat(300 * 1024) }))) },
    );
  }
  const types = Object.keys(content);
  if (types.length > 0) {
    const contentType = fc.constantFrom(...types.map((ct) => (ct.includes("*") ? "application/octet-stream" : ct)), "application/pdf", "text/plain; charset=utf-8");
    return fc.record({ contentType, data: fc.uint8Array({ maxLength: 16 }) });
  }
  return fc.option(fc.record({ contentType: fc.constant("application/json"), data: fc.constant("{}") }), { nil: undefined, freq: 6 });
}

function operationPlan(ref: OperationRef): fc.Arbitrary<Plan> {
  const params = ref.op.parameters ?? [];
  const inPath = params.filter((p) => p.in === "path");
  return fc.record({
    method: fc.constant(ref.method.toUpperCase()),
    path: fc.constant(ref.path),
    pathValues: fc.record(Object.fromEntries(inPath.map((p) => [p.name, pathValue(p)]))) as fc.Arbitrary<Record<string, PathValue>>,
    query: queryPlan(params.filter((p) => p.in === "query")),
    headers: headerPlan(params.filter((p) => p.in === "header")),
    credential,
    securityOf: fc.constant(ref.op),
    body: ref.method === "get" || ref.method === "head" ? fc.constant(undefined) : bodyPlan(ref.op),
  });
}

/** A method the path has no operation for (OPTIONS always qualifies), with valid ids and credentials. */
function otherMethodPlan(): fc.Arbitrary<Plan> {
  return fc.constantFrom(...Object.keys(doc.paths)).chain((path) => {
    const item = doc.paths[path]!;
    const have = Object.keys(item).map((m) => m.toUpperCase());
    const missing = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].filter((m) => !have.includes(m));
    const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    return fc.record({
      method: fc.constantFrom(...missing),
      path: fc.constant(path),
      pathValues: fc.record(Object.fromEntries(names.map((n) => [n, fc.record({ kind: fc.constant("known" as const), n: fc.nat(), fallback: fc.constant("x") })]))) as fc.Arbitrary<Record<string, PathValue>>,
      query: fc.constantFrom<Array<[string, QueryValue]>>([], [], [["a", "1"], ["a", "2"]]),
      headers: fc.constant({}),
      credential: fc.constant<Credential>("valid"),
      securityOf: fc.constant(Object.values(item)[0]),
      body: fc.constant(undefined),
    });
  });
}

function unknownPathPlan(): fc.Arbitrary<Plan> {
  return fc.record({
    method: fc.constantFrom("GET", "POST", "DELETE", "HEAD"),
    path: fc.oneof(fc.constantFrom("/api/v1/nothing-here", "/api/v2/uploads", "/api/v1/uploads/x/y/z", "/api/v1"), printable(20).map((s) => `/api/v1/${encodeURIComponent(s || "x")}/zz`)),
    pathValues: fc.constant({}),
    query: fc.constantFrom<Array<[string, QueryValue]>>([], [], [["a", "1"], ["a", "2"]]),
    headers: fc.constant({}),
    credential: fc.constant<Credential>("none"),
    body: fc.constant(undefined),
  });
}

function authorization(plan: Plan): string | undefined {
  const schemes = (plan.securityOf?.security ?? []).flatMap((r) => Object.keys(r));
  const scheme = schemes[0];
  const own = scheme === "adminKey" ? t.env.ADMIN_API_KEY! : caller.apiKey;
  switch (plan.credential) {
    case "valid":
      return scheme ? `Bearer ${own}` : undefined;
    case "valid-lowercase-scheme":
      return scheme ? `bearer   ${own}` : undefined;
    case "none":
      return undefined;
    case "other-kind":
      return `Bearer ${scheme === "adminKey" ? caller.apiKey : t.env.ADMIN_API_KEY}`;
    case "forged":
      return `Bearer ${own.slice(0, -2)}${own.endsWith("AA") ? "BB" : "AA"}`;
    case "malformed":
      return "Basic dXNlcjpwYXNz";
    case "suspended":
      return `Bearer ${suspendedKey}`;
  }
}

/** The path with its parameters filled in: a known value that fits the parameter's schema, else the fallback. */
function concretePath(plan: Plan): string {
  const op = plan.securityOf;
  return plan.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const v = plan.pathValues[name];
    if (!v) return "x";
    if (v.kind === "literal") return encodeURIComponent(v.value);
    const schema = op?.parameters?.find((p) => p.in === "path" && p.name === name)?.schema;
    const pattern = schema?.pattern ? new RegExp(schema.pattern) : undefined;
    const fits = [...seen].filter((s) => !protectedIds.has(s) && (pattern ? pattern.test(s) : false));
    return encodeURIComponent(fits.length > 0 ? fits[v.n % fits.length]! : v.fallback);
  });
}

async function send(plan: Plan): Promise<{ url: URL; res: Response; body: string; operationId: string | undefined }> {
  const url = new URL(t.api.replace(/\/api\/?$/, "") + concretePath(plan));
  const ref = ops.find((o) => o.path === plan.path && o.method.toUpperCase() === plan.method);
  for (const [name, value] of plan.query) {
    if (typeof value === "string") url.searchParams.append(name, value);
    else {
      // The HEAD of a list pages as its GET does.
      const list = cursors.get(ref?.op.operationId.replace(/-head$/, "") ?? "") ?? [];
      if (list.length > 0) url.searchParams.append(name, list[value.n % list.length]!);
    }
  }
  const headers: Record<string, string> = { ...plan.headers };
  const auth = authorization(plan);
  if (auth) headers.authorization = auth;
  if (plan.body?.contentType) headers["content-type"] = plan.body.contentType;
  const res = await fetch(url, { method: plan.method, headers, body: plan.body?.data, redirect: "manual", signal: AbortSignal.timeout(30_000) });
  const body = await res.text();
  return { url, res, body, operationId: ref?.op.operationId };
}

/** Remembers ids and cursors from a successful JSON answer. */
function harvest(operationId: string | undefined, res: Response, body: string): void {
  if (res.status >= 300 || !(res.headers.get("content-type") ?? "").startsWith("application/json")) return;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return;
  }
  stringsIn(json, seen);
  const next = (json as { nextCursor?: unknown }).nextCursor;
  if (operationId && typeof next === "string") cursors.set(operationId, [...(cursors.get(operationId) ?? []), next].slice(-5));
}

function record(operationId: string, status: number): void {
  const m = answered.get(operationId) ?? new Map<number, number>();
  m.set(status, (m.get(status) ?? 0) + 1);
  answered.set(operationId, m);
}

/** Sends the request and checks the answer against the document. */
async function exchange(plan: Plan): Promise<void> {
  const { url, res, body, operationId } = await send(plan);
  record(operationId ?? `(${plan.method} no operation)`, res.status);
  harvest(operationId, res, body);
  const violations = contractViolations(doc, { method: plan.method, url, status: res.status, headers: res.headers, body });
  expect(violations, describePlan(plan)).toEqual([]);
}

const describePlan = (p: Plan) => JSON.stringify({ ...p, securityOf: p.securityOf?.operationId, body: p.body && { contentType: p.body.contentType, data: typeof p.body.data === "string" ? p.body.data.slice(0, 300) : `${p.body.data.length} bytes` } });

describe("the served OpenAPI document is what every operation answers", () => {
  it("valid and invalid requests to every operation get only declared statuses, problem types and headers, and no undeclared 5xx", async () => {
    const requests = fc.oneof(
      { weight: 12, arbitrary: fc.constantFrom(...ops).chain(operationPlan) },
      { weight: 1, arbitrary: otherMethodPlan() },
      { weight: 1, arbitrary: unknownPathPlan() },
    );
    await fc.assert(fc.asyncProperty(requests, exchange), { numRuns: Math.min(500, Math.max(300, ops.length * 6)), endOnFailure: true });
  }, 120_000);

  it("every operation, however many there are, gets requests of its own", async () => {
    // The random mix above may miss an operation when there are many; two requests each make sure none is left out.
    for (const ref of ops) for (const plan of fc.sample(operationPlan(ref), 2)) await exchange(plan);
  }, 60_000);

  it("a JSON or content body that stops arriving is answered with a declared status (408 from the wrapper for JSON)", async () => {
    const withBody = ops.filter((o) => o.op.requestBody);
    expect(withBody.length).toBeGreaterThan(0);
    await Promise.all(
      withBody.map(async (ref) => {
        const types = Object.keys(ref.op.requestBody!.content);
        const json = types.includes("application/json");
        const names = [...ref.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
        const pathValues = Object.fromEntries(names.map((n) => [n, { kind: "known" as const, n: 0, fallback: "x" }]));
        const url = new URL(t.api.replace(/\/api\/?$/, "") + concretePath({ method: "", path: ref.path, pathValues, query: [], headers: {}, credential: "valid", securityOf: ref.op }));
        const stalled = new ReadableStream<Uint8Array>({
          start: (c) => c.enqueue(new TextEncoder().encode(json ? '{"a":' : "ab")),
        });
        const auth = authorization({ method: "", path: "", pathValues: {}, query: [], headers: {}, credential: "valid", securityOf: ref.op });
        const res = await fetch(url, {
          method: ref.method.toUpperCase(),
          headers: { ...(auth ? { authorization: auth } : {}), "content-type": json ? "application/json" : "application/octet-stream" },
          body: stalled,
          duplex: "half",
          // Generous: every operation's stalled body at once, on a machine that may be busy (the point is the status).
          signal: AbortSignal.timeout(40_000),
        } as RequestInit);
        const body = await res.text();
        expect(contractViolations(doc, { method: ref.method.toUpperCase(), url, status: res.status, headers: res.headers, body }), ref.op.operationId).toEqual([]);
        if (json) expect(res.status, `${ref.op.operationId}: ${body}`).toBe(408);
      }),
    );
  }, 60_000);

  it("reached every operation of the document", () => {
    const missed = ops.map((o) => o.op.operationId).filter((id) => !answered.has(id));
    const table = [...answered].map(([id, m]) => `${id}: ${[...m].map(([s, n]) => `${s}×${n}`).join(" ")}`).join("\n");
    expect(missed, `operations never called; statuses seen:\n${table}`).toEqual([]);
    if (process.env.SHOW_CONTRACT_COVERAGE) console.log(table);
  });
});
