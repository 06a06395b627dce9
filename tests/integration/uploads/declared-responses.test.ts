/**
 * The OpenAPI document declares every status the upload routes can answer, each problem status with the problem
 * types it carries listed in `x-problem-types` (and named in its description). Checked both ways: the document lists
 * what the routes are known to return, and statuses provoked here from the content route are all in it.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import { startTestApp, type TestApp } from "../../helpers/app";
import { createUpload, download, uploadWith } from "../../helpers/uploads";

let t: TestApp;
let key: string;
type Response_ = { description: string; content?: Record<string, unknown>; headers?: Record<string, { required?: boolean }>; "x-problem-types"?: string[] };
type Operation = { operationId: string; responses: Record<string, Response_> };
let operations: Map<string, Operation>;
beforeAll(async () => {
  t = await startTestApp();
  key = (await t.createTenant()).apiKey;
  const doc = (await (await t.call("GET", "v1/openapi.json")).json()) as { paths: Record<string, Record<string, Operation>> };
  operations = new Map(Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((op) => [op.operationId, op] as const)));
});
afterAll(async () => {
  await t?.stop();
});

const common = { 400: ["invalid-parameter"], 401: ["unauthenticated"], 403: ["tenant-suspended"], 500: ["internal-error"] };
const EXPECTED: Record<string, Record<number, string[]>> = {
  "uploads-create": {
    ...common,
    201: [],
    400: ["invalid-json", "invalid-parameter"],
    408: ["request-timeout"],
    409: ["idempotency-in-progress"],
    413: ["payload-too-large"],
    415: ["unsupported-media-type"],
    422: ["validation-failed", "idempotency-key-reused"],
  },
  "uploads-put-content": {
    ...common,
    200: [],
    400: ["malformed-request", "invalid-parameter"],
    404: ["not-found"],
    408: ["request-timeout"],
    409: ["conflict"],
    410: ["upload-expired", "upload-deleted"],
    413: ["payload-too-large"],
    415: ["unsupported-media-type"],
    500: ["internal-error", "integrity-error"],
  },
  "uploads-get": { ...common, 200: [], 404: ["not-found"], 500: ["internal-error", "integrity-error"] },
  "uploads-get-content": {
    ...common,
    200: [],
    206: [],
    304: [],
    404: ["not-found"],
    409: ["conflict"],
    410: ["upload-expired", "upload-deleted", "download-limit-reached"],
    416: ["range-not-satisfiable"],
    500: ["internal-error", "integrity-error"],
  },
  "uploads-list": { ...common, 200: [] },
  "uploads-delete": { ...common, 204: [], 404: ["not-found"], 409: ["conflict"] },
};

describe("the upload routes' declared responses", () => {
  it.each(Object.keys(EXPECTED))("%s declares every status it can answer, naming the problem types", (operationId) => {
    const op = operations.get(operationId);
    expect(op, operationId).toBeDefined();
    for (const [status, types] of Object.entries(EXPECTED[operationId]!)) {
      const declared = op!.responses[status];
      expect(declared, `${operationId} ${status}`).toBeDefined();
      for (const type of types) {
        expect(declared!["x-problem-types"], `${operationId} ${status}`).toContain(`urn:safedata:problem:${type}`);
        expect(declared!.description, `${operationId} ${status}`).toContain(`urn:safedata:problem:${type}`);
      }
      if (types.length > 0) expect(Object.keys(declared!.content ?? {}), `${operationId} ${status}`).toEqual(["application/problem+json"]);
      else expect(declared!["x-problem-types"], `${operationId} ${status}`).toBeUndefined();
    }
  });

  it("declares the headers that carry meaning: Content-Range on 206 and 416, ETag on 200, 206 and 304", () => {
    const op = operations.get("uploads-get-content")!;
    expect(op.responses["206"]!.headers!["Content-Range"]!.required, "206 always has Content-Range").toBe(true);
    expect(op.responses["416"]!.headers!["Content-Range"]!.required, "416 always has Content-Range").toBe(true);
    expect(Object.keys(op.responses["206"]!.headers ?? {})).toEqual(expect.arrayContaining(["Content-Range", "ETag"]));
    expect(Object.keys(op.responses["416"]!.headers ?? {})).toContain("Content-Range");
    expect(Object.keys(op.responses["304"]!.headers ?? {})).toContain("ETag");
    expect(Object.keys(op.responses["200"]!.headers ?? {})).toEqual(expect.arrayContaining(["ETag", "Content-Disposition"]));
  });

  it("every status provoked from the content route is declared", async () => {
    const declared = Object.keys(operations.get("uploads-get-content")!.responses);
    const { id } = await uploadWith(t, key, 100, { maxDownloads: 1 });
    const etag = (await t.call("HEAD", `v1/uploads/${id}/content`, { key })).headers.get("etag")!;
    const waiting = await createUpload(t, key, { size: 1 });
    const statuses = [
      (await download(t, key, id, { "if-none-match": etag })).res.status,
      (await download(t, key, id, { range: "bytes=500-" })).res.status,
      (await download(t, key, id, { range: "bytes=0-9" })).res.status,
      (await download(t, key, id)).res.status,
      (await download(t, key, waiting.id)).res.status,
      (await download(t, key, "up-aaaaaaaaaaaaaaaaaaaaaaaaaa")).res.status,
      (await t.call("GET", `v1/uploads/${id}/content?a=1&a=2`, { key })).status,
      (await t.call("GET", `v1/uploads/${id}/content`)).status,
    ];
    expect(statuses).toEqual([304, 416, 206, 410, 409, 404, 400, 401]);
    for (const status of statuses) expect(declared, String(status)).toContain(String(status));
  });
});
