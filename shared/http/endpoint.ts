/**
 * One HTTP endpoint = one spec: method, route, who may call it, zod schemas for its parameters, query and body,
 * its responses, and a handler. `httpEndpoint()` turns a spec into the options for `app.http()` and records it
 * for the OpenAPI document, so routes are declared once.
 *
 * The wrapper does, in order: request id, authentication, path/query/body validation, Idempotency-Key, the
 * handler, and maps every failure to problem+json in one place. Bad input never reaches a handler unvalidated,
 * and nothing a caller sends can turn into a 500.
 */
import type { HttpFunctionOptions, HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import { randomUUID } from "node:crypto";
import { parse as parseContentType } from "content-type";
import { z } from "zod";
import { errorFields, invocationLog, type Log } from "../observability";
import { services as getServices, type Services } from "../services";
import { idempotencyKeySchema, type StoredResponse } from "../stores/idempotency-store";
import { authenticateAdmin, authenticateTenant, type AuthMode, type PrincipalFor } from "./auth";
import { IntegrityError } from "../crypto";
import { AppError, type FieldError } from "../errors";
import { HttpError, PROBLEM_TYPES, problemBody, problemHeaders, problemUri, statusOfProblem, type ProblemType } from "./problem";
import { openCursor, sealCursor, type CursorBinding } from "./cursors";
import { proxyResponseOf } from "./streamed-response";
import { scopeKey, scopeLabel, type KeyScope } from "./scope-keys";

export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

/** A response header as the OpenAPI document declares it; `required` when every answer with this status carries it. */
export interface ResponseHeaderSpec {
  description: string;
  required?: boolean;
}

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** Defaults to application/json when a schema is given. */
  contentType?: string;
  /** Further media types the same status is answered with, chosen by the request's Accept (RFC 9110 §12.5.1). */
  alternatives?: Record<string, z.ZodType>;
  headers?: Record<string, ResponseHeaderSpec>;
  /**
   * The problem types answered with this status (shared/http/problem.ts): the answer is RFC 9457 problem+json and its
   * `type` is one of these. The OpenAPI document lists them machine-readably (`x-problem-types`, and an enum on the
   * problem's `type`). Build such a response with `problems()`.
   */
  problems?: readonly ProblemType[];
}

/**
 * A request header an operation reads (beyond Authorization, Content-Type and the ones every route or every POST
 * reads, which openapi.ts declares itself: X-Request-Id, Idempotency-Key). For the OpenAPI document only: the handler
 * parses the header itself, as the RFCs say (a value it cannot use is ignored or refused there, never here).
 */
export interface RequestHeaderSpec {
  description: string;
  /** A string schema of the values the handler acts on (others may be ignored, as the description says). */
  schema: z.ZodType<string>;
  /** Sample values, for readers and for tests that build requests from the document. */
  examples?: string[];
}

/**
 * A problem answer as the OpenAPI document declares it: problem+json whose `type` is one of `types`, all with the
 * status problem.ts gives them (a mix of statuses is a mistake and throws).
 */
export function problems(types: readonly ProblemType[], headers?: Record<string, ResponseHeaderSpec>): ResponseSpec {
  const statuses = new Set(types.map(statusOfProblem));
  if (statuses.size !== 1) throw new Error(`problem types of one response must share a status: ${types.join(", ")}`);
  return {
    description: types.map((t) => `${problemUri(t)}: ${PROBLEM_TYPES[t].title}`).join("; "),
    problems: types,
    ...(headers ? { headers } : {}),
  };
}

type AnyObject = z.ZodObject<z.ZodRawShape>;
type Infer<T> = T extends z.ZodType ? z.output<T> : undefined;

export interface EndpointInput<A extends AuthMode, P, Q, B> {
  request: HttpRequest;
  /**
   * A HEAD request on a GET route (RFC 9110 §9.3.2): the handler runs as for GET and the wrapper sends its status
   * and headers without the body. A handler whose GET has side effects (a counted download) checks this.
   */
  isHead: boolean;
  context: InvocationContext;
  services: Services;
  requestId: string;
  principal: PrincipalFor<A>;
  params: Infer<P>;
  query: Infer<Q>;
  body: Infer<B>;
  log: Log;
}

export interface EndpointResult {
  status: number;
  /** Serialized as application/json. */
  json?: unknown;
  /** A raw or streamed body; set content-type in headers. */
  body?: HttpResponseInit["body"];
  headers?: Record<string, string>;
}

export interface EndpointSpec<A extends AuthMode, P extends AnyObject | undefined, Q extends AnyObject | undefined, B extends z.ZodType | undefined> {
  /** Function name in Azure: unique, stable, kebab-case. */
  name: string;
  method: HttpMethod;
  /** Route under the /api prefix, e.g. "v1/uploads/{id}". */
  route: string;
  auth: A;
  summary: string;
  description?: string;
  tags: string[];
  params?: P;
  query?: Q;
  /** A JSON body validated with this schema. */
  body?: B;
  /** A raw body the handler streams itself (content types it accepts, for the OpenAPI document). */
  rawBody?: { contentTypes: string[]; description: string };
  /**
   * What this operation answers besides what the wrapper itself can (openapi.ts adds those: 400 for a repeated query
   * key, 401/403 of its auth, 404 for a malformed path parameter, the JSON body's 400/408/413/415/422, the
   * idempotency 400/409/422, 500): its outcomes and every problem its use case can raise, each with `problems()`.
   */
  responses: Record<number, ResponseSpec>;
  /** Request headers the handler reads (Range, If-None-Match, ...), declared in the OpenAPI document. */
  requestHeaders?: Record<string, RequestHeaderSpec>;
  /** POSTs: honour Idempotency-Key; `redact` removes secrets from what is stored for replays. */
  idempotency?: { redact?: (json: unknown) => unknown };
  handler: (input: EndpointInput<A, P, Q, B>) => Promise<EndpointResult>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyEndpointSpec = EndpointSpec<AuthMode, any, any, any>;

const registry: AnyEndpointSpec[] = [];

/** Every endpoint declared so far, in declaration order (for the OpenAPI document and the not-found handler). */
export function endpoints(): readonly AnyEndpointSpec[] {
  return registry;
}

export const MAX_JSON_BODY_BYTES = 256 * 1024;
/** A UUID in its canonical text form (RFC 9562 §4): 8-4-4-4-12 hexadecimal digits, either case. */
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The request's id: the caller's `X-Request-Id` when it is a UUID (in lower case, as RFC 9562 §4 writes them),
 * otherwise a new random UUID. Request ids go into audit entries, which are never erased, so no free text a caller
 * chose (a name, a reference) may become one.
 */
export function pickRequestId(header: string | null): string {
  return header !== null && UUID_TEXT.test(header) ? header.toLowerCase() : randomUUID();
}

const baseHeaders = (requestId: string): Record<string, string> => ({
  "x-request-id": requestId,
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
});

export function problemResponse(err: AppError, requestId: string): HttpResponseInit {
  return {
    status: statusOfProblem(err.kind),
    headers: { ...baseHeaders(requestId), "content-type": "application/problem+json", ...problemHeaders(err) },
    body: JSON.stringify(problemBody(err.kind, err.detail, requestId, err.extra.errors)),
  };
}

/**
 * Field names the caller chose are echoed only when they look like field names: a key such as an e-mail address is
 * personal data and never comes back in an error.
 */
const SHOWABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,40}$/;
function showName(name: string): string {
  return SHOWABLE_NAME.test(name) ? name : "(a name not shown)";
}

export function zodFieldErrors(error: z.ZodError, prefix = ""): FieldError[] {
  return error.issues.slice(0, 20).map((i) => ({
    path: [prefix, ...i.path.map((seg) => (typeof seg === "number" ? String(seg) : showName(String(seg))))].filter((s) => s !== "").join(".") || "(body)",
    message:
      i.code === "unrecognized_keys"
        ? `unknown field${i.keys.length === 1 ? "" : "s"} ${i.keys.slice(0, 10).map((k) => `'${showName(k)}'`).join(", ")}: not accepted here`
        : i.message,
  }));
}

/**
 * `application/json` or an `application/<name>+json` type; a charset parameter, if any, must name UTF-8 (RFC 8259
 * §8.1). Type, subtype and parameter names are case-insensitive and parameter values may be quoted strings
 * (RFC 9110 §8.3.1, §5.6.6), so the header is parsed with jshttp's `content-type`, not matched as one spelling.
 */
function isJsonContentType(value: string | null): boolean {
  if (value === null) return false;
  let parsed: ReturnType<typeof parseContentType>;
  try {
    parsed = parseContentType(value);
  } catch {
    return false;
  }
  if (parsed.type !== "application/json" && !/^application\/[a-z0-9.+-]+\+json$/.test(parsed.type)) return false;
  const charset = parsed.parameters.charset;
  return charset === undefined || charset.toLowerCase() === "utf-8";
}

/**
 * The next chunk of a body, or a 408 `request-timeout` when none comes for `idleMs` (the caller has stopped sending:
 * its request must not hold an invocation, a connection and memory for as long as it likes). The read is cancelled
 * after the timeout has decided the outcome: cancelling settles a pending read as the end of the body (WHATWG
 * Streams, ReadableStreamCancel), which must never pass for a body that was complete.
 */
async function readWithin<T>(reader: ReadableStreamDefaultReader<T>, idleMs: number): Promise<Awaited<ReturnType<ReadableStreamDefaultReader<T>["read"]>>> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const timeout = () =>
    new AppError("request-timeout", `the body stopped arriving: no bytes came for ${Math.round(idleMs / 1000)} s; nothing was stored, send it again`);
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(timeout());
      reader.cancel().catch(() => undefined);
    }, idleMs);
  });
  try {
    const result = await Promise.race([reader.read(), idle]);
    if (timedOut) throw timeout();
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Refuses a request whose content is sent with a content coding (`Content-Encoding: gzip`, …) or a transfer coding
 * other than chunked (`Transfer-Encoding: gzip, chunked`): no operation decodes one, so its bytes would be read (or
 * stored, for an upload) as if they were the content itself. 415 with `Accept-Encoding: identity` (RFC 9110 §8.4.1,
 * §15.5.16; RFC 9112 §6.1); `identity` alone is no coding and is accepted. GET and HEAD carry no content.
 */
function refuseContentCoding(request: HttpRequest): void {
  if (request.method === "GET" || request.method === "HEAD") return;
  const codings = (name: string) =>
    (request.headers.get(name) ?? "")
      .split(",")
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c !== "");
  if (!codings("content-encoding").every((c) => c === "identity")) {
    throw new HttpError("unsupported-media-type", "content codings are not accepted: send the content as it is, without Content-Encoding", { "accept-encoding": "identity" });
  }
  // A transfer coding is framing, and chunked is the only one undone before the content reaches the app: another
  // (`Transfer-Encoding: gzip, chunked`) would leave its bytes in the content (RFC 9112 §6.1).
  if (!codings("transfer-encoding").every((c) => c === "chunked")) {
    throw new HttpError("unsupported-media-type", "transfer codings other than chunked are not accepted: send the content as it is", { "accept-encoding": "identity" });
  }
}

/** What an operation that takes no body reads of one before it refuses it. */
const NO_BODY_LIMIT = 1024;

/** Whether a body says nothing: empty, whitespace, JSON null or an empty JSON object (`{ }` too). */
function isEmptyBody(text: string): boolean {
  if (text.trim() === "") return true;
  try {
    const v: unknown = JSON.parse(text);
    return v === null || (typeof v === "object" && !Array.isArray(v) && Object.keys(v as object).length === 0);
  } catch {
    return false;
  }
}

/**
 * Reads at most `limit` bytes of the body; past that, stops reading and answers 413. A body that sends nothing for
 * `idleMs` (UPLOAD_IDLE_SECONDS, the limit content uploads have) is answered 408. A body that ends before its declared
 * Content-Length (the connection was cut, RFC 9112 §8) is incomplete and refused with 400, never parsed.
 */
export async function readBodyText(request: HttpRequest, limit: number, idleMs: number): Promise<string> {
  const header = request.headers.get("content-length");
  const declared = header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
  if (declared !== undefined && declared > limit) {
    throw new AppError("payload-too-large", `the JSON body may be at most ${limit} bytes`);
  }
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await readWithin(reader, idleMs);
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new AppError("payload-too-large", `the JSON body may be at most ${limit} bytes`);
    }
    chunks.push(Buffer.from(value));
  }
  if (declared !== undefined && total < declared) {
    throw new AppError("malformed-request", `the body ended after ${total} of the declared ${declared} bytes; nothing was stored, send it again`);
  }
  const bytes = Buffer.concat(chunks);
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  return text;
}

/**
 * Whether the path of `url` has a segment whose percent-encoding is malformed (`%`, `%f`, `%zz`) or decodes to bytes
 * that are not UTF-8 (`%ff`, `%E0%A4%A`): such a path names nothing and is answered 400, before anything else.
 */
export function hasMalformedPath(url: string): boolean {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return true;
  }
  return path.split("/").some((segment) => {
    try {
      decodeURIComponent(segment);
      return false;
    } catch {
      return true;
    }
  });
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Deeper JSON than any of the API's shapes is refused (and never walked recursively, so it cannot exhaust the stack). */
const MAX_JSON_DEPTH = 32;

/**
 * JSON escapes can spell strings that are not Unicode text (lone surrogates); nothing downstream can store them.
 * Returns what is wrong with the parsed body, or undefined when it is fine.
 */
function jsonProblem(value: unknown): string | undefined {
  const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (typeof v === "string") {
      if (LONE_SURROGATE.test(v)) return "the body contains a string with an unpaired UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode";
    } else if (v !== null && typeof v === "object") {
      if (depth >= MAX_JSON_DEPTH) return `the body nests objects or arrays more than ${MAX_JSON_DEPTH} levels deep`;
      for (const [k, child] of Object.entries(v)) {
        if (LONE_SURROGATE.test(k)) return "the body contains a key with an unpaired UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode";
        stack.push({ v: child, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

/**
 * A key that appears twice in one JSON object, at any depth. RFC 8259 §4 leaves what such an object means undefined
 * (JSON.parse keeps the last; a tenant's gateway may keep the first and check something else than we store) and
 * I-JSON (RFC 7493 §2.3) forbids it, so it is refused. Keys are compared after unescaping ("n\u0061me" is "name").
 * `text` must already be valid JSON (JSON.parse accepted it): this scan only tells keys from values.
 */
export function duplicateKeyProblem(text: string): string | undefined {
  /** Per open container: the keys seen (objects) or null (arrays). */
  const open: Array<Set<string> | null> = [];
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const keys = open[open.length - 1];
      if (keyNext && keys) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (keys.has(key)) {
          return `the body has the key '${showName(key)}' twice in one object; send each key once (RFC 8259 §4, RFC 7493 §2.3)`;
        }
        keys.add(key);
        keyNext = false;
      }
      i = end;
    } else if (c === "{") {
      open.push(new Set());
      keyNext = true;
    } else if (c === "[") {
      open.push(null);
      keyNext = false;
    } else if (c === "}" || c === "]") {
      open.pop();
      keyNext = false;
    } else if (c === ",") {
      keyNext = open[open.length - 1] !== null && open.length > 0;
    }
  }
  return undefined;
}

async function parseJsonBody<B extends z.ZodType>(request: HttpRequest, schema: B, idleMs: number): Promise<{ value: z.output<B>; text: string }> {
  if (!isJsonContentType(request.headers.get("content-type"))) {
    throw new AppError("unsupported-media-type", "send the body as JSON with 'Content-Type: application/json'");
  }
  let text: string;
  try {
    text = await readBodyText(request, MAX_JSON_BODY_BYTES, idleMs);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError("invalid-json", "the body is not valid UTF-8");
  }
  if (text.trim() === "") throw new AppError("invalid-json", "the body is empty; send a JSON object");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new AppError("invalid-json", "the body is not valid JSON");
  }
  const problem = jsonProblem(raw) ?? duplicateKeyProblem(text);
  if (problem) throw new AppError("invalid-json", problem);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new AppError("validation-failed", "the body does not match the expected shape; see errors", { errors: zodFieldErrors(parsed.error) });
  }
  return { value: parsed.data, text };
}

/**
 * The query as one value per name. A name given twice is refused (which one would count is not defined anywhere).
 * Names are kept in a Map, so `constructor`, `toString` or `__proto__` are names like any other: never mistaken for
 * a repeat because a plain object already has them, and never able to change an object's prototype.
 */
function searchParamsObject(request: HttpRequest): Record<string, string> {
  const seen = new Map<string, string>();
  for (const [k, v] of request.query.entries()) {
    if (seen.has(k)) throw new AppError("invalid-parameter", `query parameter '${showName(k)}' is given more than once`);
    seen.set(k, v);
  }
  // fromEntries defines own properties (even for "__proto__"), which the strict query schemas then see as unknown.
  return Object.fromEntries(seen) as Record<string, string>;
}

/** An RFC 8941 §3.3.3 sf-string: DQUOTE *( unescaped / "\\" ( DQUOTE / "\\" ) ) DQUOTE. */
const SF_STRING = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/;

/**
 * The key an Idempotency-Key header names. The header's specification (draft-ietf-httpapi-idempotency-key-header §2)
 * makes it a structured-field string, `"8e03978e-..."`; many clients send the bare value. Both name the same key, so
 * the quotes and escapes of the string form are removed. A value that opens a quote without a valid string is refused.
 */
export function idempotencyKeyOf(header: string): string | undefined {
  if (!header.startsWith('"')) return header;
  const m = SF_STRING.exec(header);
  return m ? m[1]!.replace(/\\(["\\])/g, "$1") : undefined;
}

/**
 * Cursors of a paged operation (one whose query has `cursor`): the caller's cursor is opened before the handler sees
 * the query, and the `nextCursor` of the JSON the handler returns is sealed (cursors.ts), bound to the caller's scope,
 * the operation and the query's other parameters (not `limit`: the page size may change between pages).
 */
class Paging {
  private key: Buffer | undefined;
  private readonly binding: CursorBinding;

  constructor(
    endpoint: string,
    private readonly services: Services,
    private readonly scope: KeyScope,
    private readonly query: Record<string, unknown>,
  ) {
    const { cursor: _cursor, limit: _limit, ...filters } = query;
    this.binding = { endpoint, filters };
  }

  private async cursorKey(): Promise<Buffer> {
    this.key ??= await scopeKey(this.services, this.scope, "cursor");
    return this.key;
  }

  /** The query with the store's own cursor in place of the caller's. Throws invalid-parameter for a cursor not ours. */
  async openQuery(): Promise<Record<string, unknown>> {
    const cursor = this.query.cursor;
    if (typeof cursor !== "string") return this.query;
    return { ...this.query, cursor: openCursor(await this.cursorKey(), this.binding, cursor) };
  }

  async sealResult(result: EndpointResult): Promise<EndpointResult> {
    const json = result.json as { nextCursor?: unknown } | undefined;
    if (!json || typeof json !== "object" || typeof json.nextCursor !== "string") return result;
    return { ...result, json: { ...json, nextCursor: sealCursor(await this.cursorKey(), this.binding, json.nextCursor) } };
  }
}

/** The key scope of an authenticated caller: its tenant, or the operators' for the admin key and anonymous routes. */
function scopeOf(principal: unknown): KeyScope {
  const p = principal as { kind?: string; tenantId?: string } | undefined;
  return p?.kind === "tenant" && typeof p.tenantId === "string" ? { kind: "tenant", tenantId: p.tenantId } : { kind: "operators" };
}

async function authenticate<A extends AuthMode>(mode: A, request: HttpRequest, services: Services, requestId: string): Promise<PrincipalFor<A>> {
  if (mode === "tenant") return (await authenticateTenant(request, services, requestId)) as PrincipalFor<A>;
  if (mode === "admin") return authenticateAdmin(request, services, requestId) as PrincipalFor<A>;
  return undefined as PrincipalFor<A>;
}

/** What the Fetch Headers class (and so the Functions library) accepts as a header value: bytes, no CR, LF or NUL. */
const HEADER_VALUE = /^[^\r\n\0\u0100-\uffff]*$/;

function toResponse(result: EndpointResult, requestId: string): HttpResponseInit {
  const headers: Record<string, string> = { ...baseHeaders(requestId), ...(result.headers ?? {}) };
  const invalid = Object.keys(headers).find((k) => !HEADER_VALUE.test(headers[k]!));
  if (invalid !== undefined) {
    // A bug of ours, not the caller's: the library would fail after the handler returned, leaving a stream body
    // open. Release it and answer with a problem instead.
    const body = result.body as { destroy?: () => void } | undefined;
    if (body && typeof body.destroy === "function") body.destroy();
    throw new Error(`response header ${invalid} has a value that cannot be sent`);
  }
  if (result.json !== undefined) {
    headers["content-type"] ??= "application/json; charset=utf-8";
    return { status: result.status, headers, body: JSON.stringify(result.json) };
  }
  return { status: result.status, headers, body: result.body };
}

/**
 * The answer to a HEAD: the GET's status and headers, no body (RFC 9110 §9.3.2). A JSON body's length is kept as
 * Content-Length; a streamed body is released unread.
 */
function withoutBody(response: HttpResponseInit): HttpResponseInit {
  const headers = { ...(response.headers as Record<string, string>) };
  const body = response.body as unknown;
  if (typeof body === "string") headers["content-length"] ??= String(Buffer.byteLength(body));
  else if (body && typeof (body as { destroy?: unknown }).destroy === "function") (body as { destroy(): void }).destroy();
  return { status: response.status, headers };
}

/**
 * Ends a streamed answer whose client has stopped reading: bytes wait in the response for it and none has left for
 * `idleMs` (UPLOAD_IDLE_SECONDS, the limit request bodies have). The response is destroyed, which ends the body it
 * was being paced by (streamed-response.ts) and so the work and the memory behind it. Without the library's proxy
 * response (not streaming) there is nothing to watch.
 */
function watchStalledReader(invocationId: string, idleMs: number, onStall: () => void): void {
  const response = proxyResponseOf(invocationId);
  if (!response) return;
  let progress = "";
  let since = Date.now();
  const timer = setInterval(
    () => {
      if (response.destroyed || response.writableFinished) return clearInterval(timer);
      const socket = response.socket;
      const waiting = response.writableLength + (socket?.writableLength ?? 0) > 0;
      const now = `${socket?.bytesWritten ?? 0}/${socket?.writableLength ?? 0}/${response.writableLength}`;
      if (!waiting || now !== progress) {
        progress = now;
        since = Date.now();
      } else if (Date.now() - since >= idleMs) {
        clearInterval(timer);
        onStall();
        response.destroy();
      }
    },
    Math.max(50, Math.min(1000, Math.floor(idleMs / 4))),
  );
  timer.unref();
  response.once("close", () => clearInterval(timer));
}

function fromStored(stored: StoredResponse, requestId: string): HttpResponseInit {
  return toResponse({ status: stored.status, json: stored.body, headers: { ...stored.headers, "idempotent-replayed": "true" } }, requestId);
}

export function httpEndpoint<A extends AuthMode, P extends AnyObject | undefined, Q extends AnyObject | undefined, B extends z.ZodType | undefined>(
  spec: EndpointSpec<A, P, Q, B>,
): { name: string; options: HttpFunctionOptions } {
  if (registry.some((e) => e.name === spec.name)) throw new Error(`endpoint ${spec.name} is declared twice`);
  registry.push(spec as AnyEndpointSpec);

  const handler = async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const response = await answer(request, context);
    // A HEAD gets exactly what its GET would, errors included, without the body (RFC 9110 §9.3.2).
    return request.method === "HEAD" ? withoutBody(response) : response;
  };

  const answer = async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const requestId = pickRequestId(request.headers.get("x-request-id"));
    const log = invocationLog(context);
    try {
      if (hasMalformedPath(request.url)) {
        throw new AppError("malformed-request", "the path has malformed percent-encoding: every % must start %XX with two hex digits, and the bytes must be UTF-8 (RFC 3986 §2.1)");
      }
      const services = getServices();
      const principal = await authenticate(spec.auth, request, services, requestId);

      let params = undefined as Infer<P>;
      if (spec.params) {
        const r = spec.params.safeParse(request.params);
        // A malformed id names nothing that exists: answer exactly as for an unknown one.
        if (!r.success) throw new AppError("not-found", "no such resource");
        params = r.data as Infer<P>;
      }
      let query = undefined as Infer<Q>;
      const rawQuery = searchParamsObject(request);
      if (spec.query) {
        const r = spec.query.safeParse(rawQuery);
        if (!r.success) {
          throw new AppError("invalid-parameter", "a query parameter is invalid; see errors", { errors: zodFieldErrors(r.error, "query") });
        }
        query = r.data as Infer<Q>;
      }
      const paging = spec.query && "cursor" in spec.query.shape ? new Paging(spec.name, services, scopeOf(principal), query as Record<string, unknown>) : undefined;
      if (paging) query = (await paging.openQuery()) as Infer<Q>;
      refuseContentCoding(request);
      let body = undefined as Infer<B>;
      let bodyText = "";
      if (spec.body) {
        const parsed = await parseJsonBody(request, spec.body, services.settings.uploadIdleSeconds * 1000);
        body = parsed.value as Infer<B>;
        bodyText = parsed.text;
      } else if (!spec.rawBody && spec.method !== "GET") {
        // An operation that takes no body refuses one, rather than ignore what the caller may think it sent.
        const text = await readBodyText(request, NO_BODY_LIMIT, services.settings.uploadIdleSeconds * 1000).catch((err: unknown) => {
          if (err instanceof AppError && err.kind === "payload-too-large") throw new AppError("payload-too-large", "this operation takes no body: send none (or {})");
          if (err instanceof AppError) throw err;
          return "\u0000"; // bytes that are not UTF-8: a body all the same
        });
        if (!isEmptyBody(text)) throw new AppError("validation-failed", "this operation takes no body: send none (or {})");
      }

      const isHead = request.method === "HEAD";
      const input: EndpointInput<A, P, Q, B> = { request, isHead, context, services, requestId, principal, params, query, body, log };

      const keyHeader = request.headers.get("idempotency-key");
      if (spec.idempotency && keyHeader !== null) {
        const key = idempotencyKeySchema.safeParse(idempotencyKeyOf(keyHeader));
        if (!key.success) throw new AppError("invalid-parameter", "the Idempotency-Key header must be 1-255 visible ASCII characters, bare or as a quoted string");
        const scope = scopeOf(principal);
        const secret = await scopeKey(services, scope, "idempotency");
        const reservation = await services.idempotency.reserve(scopeLabel(scope), secret, key.data, {
          method: spec.method,
          route: spec.route + JSON.stringify(params ?? {}),
          body: bodyText,
        });
        if (reservation.kind === "replay") return fromStored(reservation.response, requestId);
        let result: EndpointResult;
        try {
          result = await spec.handler(input);
        } catch (err) {
          await reservation.abandon().catch(() => undefined);
          throw err;
        }
        if (result.status < 300 && result.json !== undefined) {
          const stored = spec.idempotency.redact ? spec.idempotency.redact(result.json) : result.json;
          await reservation.complete({ status: result.status, headers: result.headers ?? {}, body: stored });
        } else {
          await reservation.abandon();
        }
        return toResponse(result, requestId);
      }

      const result = await spec.handler(input);
      const response = toResponse(paging ? await paging.sealResult(result) : result, requestId);
      if (response.body !== undefined && typeof response.body !== "string") {
        const idleMs = services.settings.uploadIdleSeconds * 1000;
        watchStalledReader(context.invocationId, idleMs, () =>
          log.warn("response.stalled", { requestId, function: spec.name, idleSeconds: services.settings.uploadIdleSeconds }),
        );
      }
      return response;
    } catch (err) {
      if (err instanceof AppError) {
        if (statusOfProblem(err.kind) >= 500) log.error("request.failed", { requestId, function: spec.name, problem: err.kind });
        return problemResponse(err, requestId);
      }
      if (err instanceof IntegrityError) {
        // Tampered or damaged ciphertext anywhere (a stream, a wrapped key, an encrypted field): one answer, one log line.
        log.error("integrity.failure", { requestId, function: spec.name, failure: err.failure, segment: err.segmentIndex, ...err.context });
        return problemResponse(new AppError("integrity-error", "stored data failed its integrity check; nothing was sent and the incident was logged"), requestId);
      }
      log.error("request.error", { requestId, function: spec.name, ...errorFields(err) });
      return problemResponse(new AppError("internal-error", `the request could not be completed; quote request id ${requestId} when reporting it`), requestId);
    }
  };

  // Every GET route answers HEAD too (RFC 9110 §9.1: a server that supports GET must support HEAD).
  const methods: HttpMethod[] = spec.method === "GET" ? ["GET", "HEAD"] : [spec.method];
  return { name: spec.name, options: { methods, route: spec.route, authLevel: "anonymous", handler } };
}
