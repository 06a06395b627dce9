/**
 * The OpenAPI 3.1 document, generated from the same endpoint specs and zod schemas that validate requests
 * (see endpoint.ts), so the document cannot drift from what the service accepts.
 *
 * Every status an operation can answer is declared: what its spec lists (its outcomes and its use case's problems)
 * and what the endpoint wrapper itself answers for such a spec (`wrapperProblems`). A problem status names its
 * problem types machine-readably: `x-problem-types` on the response (the `urn:safedata:problem:<kind>` URIs) and an
 * enum on the problem body's `type`. Every GET has its HEAD (RFC 9110 §9.3.2: same statuses and headers, no body).
 * What no operation matches is declared once, in `components.responses`: `RouteNotFound` (404) for an unknown path,
 * `MethodNotAllowed` (405, with `Allow`) for a known path with another method, and for either
 * `RepeatedQueryParameter` (400), as every request's query is read before anything else.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";
import { endpoints, type AnyEndpointSpec, type ResponseHeaderSpec, type ResponseSpec } from "./endpoint";
import { PROBLEM_TYPES, problemUri, statusOfProblem, type ProblemType } from "./problem";
import { problemSchema } from "./schemas";
import { jsonSchemaPattern } from "./json-schema-pattern";

/** The extension naming a response's problem types (an array of problem type URIs). */
export const PROBLEM_TYPES_EXTENSION = "x-problem-types";

/** A status as this module assembles it before rendering: a problem status keeps its types in a set to merge them. */
interface Declared {
  description?: string;
  schema?: z.ZodType;
  contentType?: string;
  alternatives?: Record<string, z.ZodType>;
  headers: Record<string, ResponseHeaderSpec>;
  problems?: Set<ProblemType>;
}

const retryAfter = { "Retry-After": { description: "Seconds to wait before sending the request again (idempotency-in-progress)" } };
const acceptEncoding = { "Accept-Encoding": { description: "identity: on a refusal of content sent with a Content-Encoding" } };
const wwwAuthenticate = { "WWW-Authenticate": { description: "Bearer, with error=invalid_request or invalid_token when a credential was sent", required: true } };

/**
 * The problems the endpoint wrapper (endpoint.ts `answer`) can answer for `spec` before or around its handler:
 * - every operation: 400 invalid-parameter (a query parameter given twice, unknown or invalid; a cursor not ours),
 *   400 malformed-request (a path with malformed percent-encoding), 500 internal-error;
 * - its auth: 401 unauthenticated (with WWW-Authenticate); a tenant key also 403 tenant-suspended;
 * - path parameters: 404 not-found (a malformed id names nothing, as an unknown one);
 * - a JSON body: 400 invalid-json or malformed-request (it ended before its Content-Length), 408 request-timeout
 *   (idle for UPLOAD_IDLE_SECONDS), 413 payload-too-large, 415 unsupported-media-type, 422 validation-failed;
 * - no body (a POST, PUT, PATCH or DELETE that takes none): 408, 413 and 422 for a body that is not empty or {};
 * - any content (every method but GET): 415 unsupported-media-type for a Content-Encoding other than identity;
 * - Idempotency-Key: 400 invalid-parameter (its syntax), 409 idempotency-in-progress, 422 idempotency-key-reused,
 *   500 integrity-error (a stored answer that fails to decrypt).
 */
export function wrapperProblems(spec: AnyEndpointSpec): Map<number, { types: ProblemType[]; headers?: Record<string, ResponseHeaderSpec> }> {
  const types: ProblemType[] = ["invalid-parameter", "malformed-request", "internal-error"];
  if (spec.auth !== "none") types.push("unauthenticated");
  if (spec.auth === "tenant") types.push("tenant-suspended");
  if (spec.params) types.push("not-found");
  if (spec.body) types.push("invalid-json", "request-timeout", "payload-too-large", "unsupported-media-type", "validation-failed");
  // An operation that takes no body refuses one (anything but nothing or {}).
  else if (!spec.rawBody && spec.method !== "GET") types.push("request-timeout", "payload-too-large", "validation-failed");
  if (spec.method !== "GET" && !types.includes("unsupported-media-type")) types.push("unsupported-media-type");
  if (spec.idempotency) types.push("idempotency-in-progress", "idempotency-key-reused", "integrity-error");
  const out = new Map<number, { types: ProblemType[]; headers?: Record<string, ResponseHeaderSpec> }>();
  for (const t of types) {
    const status = statusOfProblem(t);
    const entry = out.get(status) ?? { types: [] };
    entry.types.push(t);
    if (t === "unauthenticated") entry.headers = wwwAuthenticate;
    if (t === "idempotency-in-progress") entry.headers = retryAfter;
    if (t === "unsupported-media-type") entry.headers = acceptEncoding;
    out.set(status, entry);
  }
  return out;
}

/** The operation's declared statuses: the wrapper's problems merged with the spec's responses. */
function declaredResponses(spec: AnyEndpointSpec): Map<number, Declared> {
  const out = new Map<number, Declared>();
  for (const [status, { types, headers }] of wrapperProblems(spec)) out.set(status, { headers: { ...headers }, problems: new Set(types) });
  for (const [key, r] of Object.entries(spec.responses) as Array<[string, ResponseSpec]>) {
    const status = Number(key);
    const have = out.get(status);
    if (r.problems) {
      for (const t of r.problems) {
        if (statusOfProblem(t) !== status) throw new Error(`${spec.name}: problem ${t} is answered with ${statusOfProblem(t)}, not ${status}`);
      }
      if (have && !have.problems) throw new Error(`${spec.name}: status ${status} is declared both as a problem and as an outcome`);
      out.set(status, { headers: { ...have?.headers, ...r.headers }, problems: new Set([...(have?.problems ?? []), ...r.problems]) });
    } else {
      if (have) {
        throw new Error(`${spec.name}: status ${status} is declared as an outcome, but the endpoint wrapper answers it with a problem: declare it with problems([...]) (shared/http/endpoint.ts)`);
      }
      out.set(status, { description: r.description, schema: r.schema, contentType: r.contentType, alternatives: r.alternatives, headers: { ...r.headers } });
    }
  }
  return out;
}

/** A problem body whose `type` is one of `types` and whose `status` is theirs. */
function problemBodySchema(types: ProblemType[], status: number): z.ZodType {
  const uris = types.map(problemUri) as [string, ...string[]];
  return problemSchema.extend({
    type: z.enum(uris).describe("Stable problem type URI: one of those this status carries here"),
    status: z.literal(status),
  });
}

const headerObject = (h: ResponseHeaderSpec) => ({ description: h.description, ...(h.required ? { required: true } : {}), schema: { type: "string" as const } });

/** One response of the document; `head` leaves the body out (a HEAD answer has none) and keeps status and headers. */
function renderResponse(status: number, d: Declared, head: boolean): ResponseConfig {
  const headers: ResponseConfig = Object.keys(d.headers).length > 0 ? { headers: Object.fromEntries(Object.entries(d.headers).map(([name, h]) => [name, headerObject(h)])) } : {};
  if (d.problems) {
    const types = [...d.problems].sort((a, b) => Object.keys(PROBLEM_TYPES).indexOf(a) - Object.keys(PROBLEM_TYPES).indexOf(b));
    const response: ResponseConfig = {
      description: types.map((t) => `${problemUri(t)}: ${PROBLEM_TYPES[t].title}`).join("; ") + (head ? " (no body: HEAD)" : ""),
      ...(head ? {} : { content: { "application/problem+json": { schema: problemBodySchema(types, status) } } }),
      ...headers,
    };
    // A specification extension (OpenAPI 3.1 §4.9): the generator copies it as it is.
    return Object.assign(response, { [PROBLEM_TYPES_EXTENSION]: types.map(problemUri) });
  }
  return {
    description: d.description ?? "",
    ...(d.schema && !head
      ? { content: { [d.contentType ?? "application/json"]: { schema: d.schema }, ...Object.fromEntries(Object.entries(d.alternatives ?? {}).map(([type, schema]) => [type, { schema }])) } }
      : {}),
    ...headers,
  };
}

const requestIdHeader = {
  "X-Request-Id": z
    .string()
    .optional()
    .meta({ format: "uuid", examples: ["8e03978e-40d5-43e8-bc93-6894a57f9324"] })
    .describe("Your id for this request, echoed in x-request-id and recorded in audit entries when it is a UUID; anything else is replaced by a new one"),
};

const idempotencyKeyHeader = {
  "Idempotency-Key": z
    .string()
    .regex(/^(?:[\x21\x23-\x7e][\x21-\x7e]{0,254}|"(?:[\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}")$/)
    .optional()
    .meta({ examples: ["create-acme-2026-01", '"8e03978e-40d5-43e8-bc93-6894a57f9324"'] })
    .describe("Retry-safe key (1-255 visible ASCII, bare or as a quoted string): the same key and request return the first result"),
};

/** The request headers an operation reads: X-Request-Id everywhere, Idempotency-Key on POSTs that honour it, its own. */
function requestHeaders(spec: AnyEndpointSpec): z.ZodObject {
  const own = Object.fromEntries(
    Object.entries(spec.requestHeaders ?? {}).map(([name, h]) => [name, h.schema.optional().meta(h.examples ? { examples: h.examples } : {}).describe(h.description)]),
  );
  return z.object({ ...requestIdHeader, ...(spec.idempotency ? idempotencyKeyHeader : {}), ...own });
}

/** Problem responses of `components.responses`, for requests no operation matches. */
function unmatchedResponses(registry: OpenAPIRegistry): void {
  const schemaComponent = (name: string, schema: z.ZodType) => {
    const { $schema: _dialect, ...json } = z.toJSONSchema(schema);
    registry.registerComponent("schemas", name, json as Record<string, unknown>);
  };
  schemaComponent("RouteNotFoundProblem", problemBodySchema(["not-found"], 404));
  schemaComponent("MethodNotAllowedProblem", problemBodySchema(["method-not-allowed"], 405));
  schemaComponent("RepeatedQueryParameterProblem", problemBodySchema(["invalid-parameter"], 400));
  registry.registerComponent("responses", "RouteNotFound", {
    description: `${problemUri("not-found")}: no operation has this path`,
    content: { "application/problem+json": { schema: { $ref: "#/components/schemas/RouteNotFoundProblem" } } },
    [PROBLEM_TYPES_EXTENSION]: [problemUri("not-found")],
  });
  registry.registerComponent("responses", "RepeatedQueryParameter", {
    description: `${problemUri("invalid-parameter")}: a query parameter is given twice (checked before the path is looked up)`,
    content: { "application/problem+json": { schema: { $ref: "#/components/schemas/RepeatedQueryParameterProblem" } } },
    [PROBLEM_TYPES_EXTENSION]: [problemUri("invalid-parameter")],
  });
  registry.registerComponent("responses", "MethodNotAllowed", {
    description: `${problemUri("method-not-allowed")}: the path has operations, none with this method (HEAD is allowed wherever GET is)`,
    headers: { Allow: { description: "The path's methods, HEAD wherever GET is", required: true, schema: { type: "string" } } },
    content: { "application/problem+json": { schema: { $ref: "#/components/schemas/MethodNotAllowedProblem" } } },
    [PROBLEM_TYPES_EXTENSION]: [problemUri("method-not-allowed")],
  });
}

/** Every `pattern` in the document as JSON Schema reads it (no regex flags: see json-schema-pattern.ts). */
function fixPatterns(node: unknown): void {
  if (Array.isArray(node)) node.forEach(fixPatterns);
  else if (node !== null && typeof node === "object") {
    const o = node as Record<string, unknown>;
    if (typeof o.pattern === "string" && (o.type === "string" || Array.isArray(o.type))) o.pattern = jsonSchemaPattern(o.pattern);
    for (const v of Object.values(o)) fixPatterns(v);
  }
}

export function openApiDocument(info: { version: string; serverUrl?: string }): object {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "tenantKey", {
    type: "http",
    scheme: "bearer",
    description: "A tenant API key (sdk_...). It decides the tenant; no parameter can name another tenant.",
  });
  registry.registerComponent("securitySchemes", "adminKey", { type: "http", scheme: "bearer", description: "The operator's admin key (ADMIN_API_KEY)." });
  unmatchedResponses(registry);

  // The catch-all route (unknown paths answer 404/405) is not an operation a client calls: components.responses.
  for (const spec of endpoints().filter((e) => !e.route.includes("{*"))) {
    const declared = [...declaredResponses(spec)].sort(([a], [b]) => a - b);
    let body: NonNullable<RouteConfig["request"]>["body"];
    if (spec.body) body = { required: true, content: { "application/json": { schema: spec.body } } };
    else if (spec.rawBody) {
      body = {
        required: true,
        description: spec.rawBody.description,
        content: Object.fromEntries(spec.rawBody.contentTypes.map((ct) => [ct, { schema: z.string().meta({ format: "binary" }) }])),
      };
    }
    const common = {
      path: `/api/${spec.route}`,
      ...(spec.description ? { description: spec.description } : {}),
      tags: spec.tags,
      security: spec.auth === "tenant" ? [{ tenantKey: [] }] : spec.auth === "admin" ? [{ adminKey: [] }] : [],
    };
    const request = {
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { query: spec.query } : {}),
      headers: requestHeaders(spec),
    };
    registry.registerPath({
      ...common,
      method: spec.method.toLowerCase() as RouteConfig["method"],
      operationId: spec.name,
      summary: spec.summary,
      request: { ...request, ...(body ? { body } : {}) },
      responses: Object.fromEntries(declared.map(([status, d]) => [status, renderResponse(status, d, false)])),
    });
    if (spec.method === "GET") {
      // RFC 9110 §9.1, §9.3.2: the GET's status and headers, without the body (endpoint.ts answers it so).
      registry.registerPath({
        ...common,
        method: "head",
        operationId: `${spec.name}-head`,
        summary: `Headers only: ${spec.summary}`,
        request,
        responses: Object.fromEntries(declared.map(([status, d]) => [status, renderResponse(status, d, true)])),
      });
    }
  }

  const doc = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "safedata API",
      version: info.version,
      description:
        "GDPR data-processor backend: encrypted transfers with a 32-day life, deadlines kept by timers, a tamper-evident audit log. " +
        "Every error is RFC 9457 application/problem+json; every response carries x-request-id. Each operation declares every status it " +
        `can answer; a problem status lists its problem type URIs in ${PROBLEM_TYPES_EXTENSION}. A path no operation has answers ` +
        "components.responses.RouteNotFound; a method a path does not have, components.responses.MethodNotAllowed; either, with a " +
        "query parameter given twice, components.responses.RepeatedQueryParameter.",
    },
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
  });
  fixPatterns(doc);
  return doc;
}
