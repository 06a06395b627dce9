/**
 * The OpenAPI 3.1 document, generated from the same endpoint specs and zod schemas that validate requests
 * (see endpoint.ts), so the document cannot drift from what the service accepts.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";
import { endpoints, type AnyEndpointSpec } from "./endpoint";
import { PROBLEM_TYPES, problemUri, type ProblemType } from "./problem";
import { problemSchema } from "./schemas";

const problemContent = { "application/problem+json": { schema: problemSchema } };

function problemResponses(spec: AnyEndpointSpec): RouteConfig["responses"] {
  const out: RouteConfig["responses"] = {};
  const add = (status: number, types: ProblemType[]) => {
    out[status] = { description: types.map((t) => `${problemUri(t)}: ${PROBLEM_TYPES[t].title}`).join("; "), content: problemContent };
  };
  const bad: ProblemType[] = [];
  if (spec.query) bad.push("invalid-parameter");
  if (spec.body) bad.push("invalid-json");
  if (bad.length > 0) add(400, bad);
  if (spec.auth !== "none") {
    add(401, ["unauthenticated"]);
    add(403, spec.auth === "tenant" ? ["tenant-suspended", "forbidden"] : ["forbidden"]);
  }
  if (spec.params) add(404, ["not-found"]);
  if (spec.idempotency) add(409, ["idempotency-in-progress", "conflict"]);
  if (spec.body || spec.rawBody) {
    add(413, ["payload-too-large"]);
    add(415, ["unsupported-media-type"]);
  }
  const unprocessable: ProblemType[] = [];
  if (spec.body) unprocessable.push("validation-failed");
  if (spec.idempotency) unprocessable.push("idempotency-key-reused");
  if (unprocessable.length > 0) add(422, unprocessable);
  add(500, ["internal-error"]);
  return out;
}

export function openApiDocument(info: { version: string; serverUrl?: string }): object {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "tenantKey", {
    type: "http",
    scheme: "bearer",
    description: "A tenant API key (sdk_...). It decides the tenant; no parameter can name another tenant.",
  });
  registry.registerComponent("securitySchemes", "adminKey", { type: "http", scheme: "bearer", description: "The operator's admin key (ADMIN_API_KEY)." });

  // The catch-all route (unknown paths answer 404/405) is not an operation a client calls.
  for (const spec of endpoints().filter((e) => !e.route.includes("{*"))) {
    const responses: RouteConfig["responses"] = { ...problemResponses(spec) };
    for (const [status, r] of Object.entries(spec.responses)) {
      responses[Number(status)] = {
        description: r.description,
        ...(r.schema ? { content: { [r.contentType ?? "application/json"]: { schema: r.schema } } } : {}),
        ...(r.headers ? { headers: Object.fromEntries(Object.entries(r.headers).map(([h, d]) => [h, { description: d.description, schema: { type: "string" } }])) } : {}),
      };
    }
    let body: NonNullable<RouteConfig["request"]>["body"];
    if (spec.body) body = { required: true, content: { "application/json": { schema: spec.body } } };
    else if (spec.rawBody) {
      body = {
        required: true,
        description: spec.rawBody.description,
        content: Object.fromEntries(spec.rawBody.contentTypes.map((ct) => [ct, { schema: z.string().meta({ format: "binary" }) }])),
      };
    }
    registry.registerPath({
      method: spec.method.toLowerCase() as RouteConfig["method"],
      path: `/api/${spec.route}`,
      operationId: spec.name,
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      tags: spec.tags,
      security: spec.auth === "tenant" ? [{ tenantKey: [] }] : spec.auth === "admin" ? [{ adminKey: [] }] : [],
      request: {
        ...(spec.params ? { params: spec.params } : {}),
        ...(spec.query ? { query: spec.query } : {}),
        ...(spec.idempotency
          ? {
              headers: z.object({
                "Idempotency-Key": z.string().max(255).optional().describe("Retry-safe key: the same key and request return the first result"),
              }),
            }
          : {}),
        ...(body ? { body } : {}),
      },
      responses,
    });
  }

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "safedata API",
      version: info.version,
      description:
        "GDPR data-processor backend: encrypted transfers with a 32-day life, deadlines kept by timers, a tamper-evident audit log. " +
        "Every error is RFC 9457 application/problem+json; every response carries x-request-id.",
    },
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
  });
}
