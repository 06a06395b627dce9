/**
 * The served OpenAPI document as a contract a test can check an answer against: which operation a request reaches
 * (as the host routes it: literal segments before parameters, the method first), whether the answer's status is one
 * the operation declares, whether a problem's `type` is one the status declares (`x-problem-types`), whether the
 * declared required headers are there. A 5xx passes only when the operation declares it as an outcome, not as a
 * problem (health's 503 "unhealthy" is an answer; a 500 internal-error is a bug even though it is declared).
 * A request no operation matches is checked against components.responses: MethodNotAllowed (405) when its path has
 * operations with other methods, RouteNotFound (404) otherwise, or RepeatedQueryParameter (400) for either.
 */

export type JsonSchema = {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
  default?: unknown;
  examples?: unknown[];
  description?: string;
};

export interface Parameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  schema?: JsonSchema;
}

export interface DeclaredResponse {
  description: string;
  headers?: Record<string, { required?: boolean }>;
  content?: Record<string, { schema?: JsonSchema }>;
  "x-problem-types"?: string[];
}

export interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema?: JsonSchema }> };
  responses: Record<string, DeclaredResponse>;
  security?: Array<Record<string, string[]>>;
}

export const METHODS = ["get", "head", "post", "put", "patch", "delete"] as const;
export type Method = (typeof METHODS)[number];

export interface OpenApiDocument {
  paths: Record<string, Partial<Record<Method, Operation>>>;
  components?: { responses?: Record<string, DeclaredResponse>; schemas?: Record<string, JsonSchema> };
}

export interface OperationRef {
  path: string;
  method: Method;
  op: Operation;
}

export function operationsOf(doc: OpenApiDocument): OperationRef[] {
  return Object.entries(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((method) => ({ path, method, op: item[method]! })));
}

/**
 * The match score of a template against a path's segments, as the host ranks routes (dev/runtime/routing.ts): per
 * segment 3 for a literal, 2 for a parameter, compared segment by segment; undefined when it does not match.
 */
function score(template: string, segments: string[]): number[] | undefined {
  const parts = template.split("/").filter((s) => s !== "");
  if (parts.length !== segments.length) return undefined;
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (/^\{[^}]+\}$/.test(part)) {
      if (segments[i] === "") return undefined;
      out.push(2);
    } else if (part.toLowerCase() === segments[i]!.toLowerCase()) out.push(3);
    else return undefined;
  }
  return out;
}

const better = (a: number[], b: number[]) => {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? -1) !== (b[i] ?? -1)) return (a[i] ?? -1) > (b[i] ?? -1);
  return false;
};

/**
 * The path's segments as the host routes them: decoded first, so an encoded "/" (%2F) separates segments too; empty
 * segments inside the path count (`a//b` has three), only the slashes at its ends are dropped.
 */
function segmentsOf(pathname: string): string[] {
  return pathname
    .split("/")
    .map((s) => decodeURIComponent(s))
    .join("/")
    .replace(/^\/+|\/+$/g, "")
    .split("/");
}

/** The operation `method` `pathname` reaches, or what answers it when none does. */
export type Target = { kind: "operation"; ref: OperationRef } | { kind: "unmatched"; status: 404 | 405; response: DeclaredResponse | undefined; allow: Method[] };

export function targetOf(doc: OpenApiDocument, method: string, pathname: string): Target {
  const segments = segmentsOf(pathname);
  const m = method.toLowerCase();
  let best: { ref: OperationRef; score: number[] } | undefined;
  const allow = new Set<Method>();
  for (const ref of operationsOf(doc)) {
    const s = score(ref.path, segments);
    if (s === undefined) continue;
    allow.add(ref.method);
    if (ref.method === m && (!best || better(s, best.score))) best = { ref, score: s };
  }
  if (best) return { kind: "operation", ref: best.ref };
  const responses = doc.components?.responses ?? {};
  return allow.size > 0
    ? { kind: "unmatched", status: 405, response: responses.MethodNotAllowed, allow: [...allow] }
    : { kind: "unmatched", status: 404, response: responses.RouteNotFound, allow: [] };
}

export interface Exchange {
  method: string;
  url: URL;
  status: number;
  headers: Headers;
  body: string;
}

/** Whether a declared response is a problem (problem+json with declared types), not an answer of another kind. */
export const isProblem = (r: DeclaredResponse) => Array.isArray(r["x-problem-types"]);

/** The response the document declares for the status of `ex` where it was sent, if any. */
export function declaredFor(doc: OpenApiDocument, ex: Pick<Exchange, "method" | "url" | "status">): DeclaredResponse | undefined {
  const target = targetOf(doc, ex.method, ex.url.pathname);
  if (target.kind === "operation") return target.ref.op.responses[String(ex.status)] ?? target.ref.op.responses.default;
  return ex.status === target.status ? target.response : ex.status === 400 ? doc.components?.responses?.RepeatedQueryParameter : undefined;
}

/** What in `ex` breaks the document's contract; empty when nothing does. */
export function contractViolations(doc: OpenApiDocument, ex: Exchange): string[] {
  const out: string[] = [];
  const target = targetOf(doc, ex.method, ex.url.pathname);
  const label = `${ex.method} ${ex.url.pathname}${ex.url.search.slice(0, 200)} (${target.kind === "operation" ? target.ref.op.operationId : `no operation: ${target.status}`}) -> ${ex.status}`;
  const fail = (what: string) => out.push(`${label}: ${what}; body ${ex.body.slice(0, 300)}`);

  if (!ex.headers.get("x-request-id")) fail("no x-request-id");
  if (target.kind === "unmatched" && target.response === undefined) fail(`components.responses has no declaration for ${target.status}`);
  const declared = declaredFor(doc, ex);
  if (declared === undefined) {
    fail("status not declared");
    return out;
  }
  if (ex.status >= 500 && isProblem(declared)) fail("a server error");
  for (const [name, h] of Object.entries(declared.headers ?? {})) {
    if (h.required && ex.headers.get(name) === null) fail(`declared header ${name} missing`);
  }
  if (target.kind === "unmatched" && target.status === 405 && ex.status === 405) {
    const allow = (ex.headers.get("allow") ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean).sort();
    if (allow.join(",") !== [...target.allow].sort().join(",")) fail(`Allow ${ex.headers.get("allow")} is not the path's methods ${target.allow.join(", ")}`);
  }
  const head = ex.method.toUpperCase() === "HEAD";
  if (head) {
    if (ex.body !== "") fail("a HEAD answer with a body");
    return out;
  }
  if (isProblem(declared)) {
    if (!(ex.headers.get("content-type") ?? "").startsWith("application/problem+json")) fail("a problem status without application/problem+json");
    let problem: { type?: unknown; status?: unknown } | undefined;
    try {
      problem = JSON.parse(ex.body) as { type?: unknown; status?: unknown };
    } catch {
      fail("a problem body that is not JSON");
      return out;
    }
    if (!declared["x-problem-types"]!.includes(String(problem.type))) fail(`problem type ${String(problem.type)} not declared (declared: ${declared["x-problem-types"]!.join(", ")})`);
    if (problem.status !== ex.status) fail(`problem status ${String(problem.status)}`);
  } else if (
    declared.content?.["application/json"] &&
    ex.body !== "" &&
    // Another media type the status declares (content negotiation) is as good.
    !Object.keys(declared.content).some((type) => (ex.headers.get("content-type") ?? "").startsWith(type))
  ) {
    fail(`declared JSON, sent ${ex.headers.get("content-type")}`);
  }
  return out;
}

/** Every string in a JSON value (for harvesting ids an answer names). */
export function stringsIn(value: unknown, into: Set<string>, limit = 2000): void {
  if (into.size >= limit) return;
  if (typeof value === "string") into.add(value);
  else if (Array.isArray(value)) for (const v of value) stringsIn(v, into, limit);
  else if (value !== null && typeof value === "object") for (const v of Object.values(value)) stringsIn(v, into, limit);
}
