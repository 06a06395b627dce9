/**
 * Answers given before the request's body was read, with the local host set up as `npm start` sets it (the host's idle
 * limit equals the app's, UPLOAD_IDLE_SECONDS):
 * - a body that stops arriving, whatever the route and however much of it came (none, part of valid JSON, part of
 *   invalid JSON, part of an upload's content): the app's 408 request-timeout at the idle limit, nothing stored (a
 *   body shorter than its Content-Length is never taken as complete);
 * - every early answer (the app's 408, 413 and 401, the host's 404, 401 and 413) says `Connection: close` and reaches
 *   the client whole: the connection is closed after it, not reset while the client is still sending;
 * - a path with malformed percent-encoding: a problem+json 400 with a request id from the app (the host's admin
 *   endpoints: a 400), never a 500 or a bare answer.
 * Socket timers cannot be driven by a ManualClock, so the idle limit is a real 3 s here.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { rawRequest, bodyOf, statusOf, within } from "../helpers/raw-http";

const IDLE_S = 3;
/**
 * How long after the idle limit the answer may come (the app's timer, the host's watch period, a busy machine). The
 * host itself cuts a silent body off at twice the idle limit without an answer, so any 408 is the app's; the slack
 * stays below that and is as wide as it can be there (a 2 s limit left 1.8 s, which a loaded 2-core machine's late
 * timers came near).
 */
const SLACK_MS = 2_700;
let t: TestApp;
let a: { tenantId: string; apiKey: string };
beforeAll(async () => {
  // No hostIdleTimeoutMs: the host's idle limit is the app's, as under npm start.
  t = await startTestApp({ settings: { UPLOAD_IDLE_SECONDS: String(IDLE_S) } });
  a = await t.createTenant();
});
afterAll(async () => {
  await t?.stop();
});

/** Sends `sent` of a body declared `declared` bytes long, then nothing; returns the status, problem type and time taken. */
async function stall(method: string, path: string, headers: Record<string, string>, sent: string, declared: number) {
  const started = Date.now();
  const x = rawRequest(t.host.url, method, path, { ...headers, "content-length": String(declared) }, sent);
  const answered = await within(x.answered, IDLE_S * 1000 + SLACK_MS + 3_000);
  const ms = Date.now() - started;
  const received = x.received();
  x.destroy();
  const status = statusOf(received);
  let type: string | undefined;
  try {
    type = (JSON.parse(bodyOf(received)) as { type?: string }).type;
  } catch {
    type = undefined;
  }
  return { answered, status, type, ms, head: received.toString("latin1").split("\r\n\r\n")[0] ?? "" };
}

function expectTimely408(r: Awaited<ReturnType<typeof stall>>, what: string) {
  expect(r.answered, `${what}: an answer came`).toBe(true);
  expect(r.status, `${what}: status`).toBe(408);
  expect(r.type, `${what}: problem type`).toBe("urn:safedata:problem:request-timeout");
  expect(r.ms, `${what}: not before the idle limit`).toBeGreaterThanOrEqual(IDLE_S * 1000 - 200);
  expect(r.ms, `${what}: at the idle limit, not long after`).toBeLessThan(IDLE_S * 1000 + SLACK_MS);
  // An early answer: the rest of the body never came, so the connection cannot carry another request.
  expect(r.head.toLowerCase(), `${what}: connection closed`).toContain("connection: close");
}

describe("a JSON body that stops arriving (host idle = app idle)", () => {
  it("part of a valid body, shorter than its Content-Length: 408 and the purpose is not created", async () => {
    const body = JSON.stringify({ key: "truncated-body", description: "x", legalBasis: "consent" });
    const r = await stall("POST", "/api/v1/purposes", { authorization: `Bearer ${a.apiKey}`, "content-type": "application/json" }, body, body.length + 100);
    expectTimely408(r, "POST /v1/purposes");
    expect((await t.call("GET", "v1/purposes/truncated-body", { key: a.apiKey })).status).toBe(404);
  });

  it("part of an invalid body on another route: 408, not 400 invalid-json, and no tenant is created", async () => {
    const before = ((await (await t.call("GET", "v1/admin/tenants", { key: t.env.ADMIN_API_KEY })).json()) as { items: unknown[] }).items.length;
    const r = await stall("POST", "/api/v1/admin/tenants", { authorization: `Bearer ${t.env.ADMIN_API_KEY}`, "content-type": "application/json" }, '{"a":', 100);
    expectTimely408(r, "POST /v1/admin/tenants");
    const after = ((await (await t.call("GET", "v1/admin/tenants", { key: t.env.ADMIN_API_KEY })).json()) as { items: unknown[] }).items.length;
    expect(after).toBe(before);
  });

  it("no byte of the body at all: 408, not a closed connection", async () => {
    const r = await stall("POST", "/api/v1/uploads", { authorization: `Bearer ${a.apiKey}`, "content-type": "application/json" }, "", 100);
    expectTimely408(r, "POST /v1/uploads, zero bytes");
    expect(((await (await t.call("GET", "v1/uploads", { key: a.apiKey })).json()) as { items: unknown[] }).items).toHaveLength(0);
  });
});

describe("an upload's content that stops arriving (host idle = app idle)", () => {
  it("is answered 408 at the idle limit, and the upload stays awaiting its content", async () => {
    const created = await t.call("POST", "v1/uploads", {
      key: a.apiKey,
      json: {
        senderReference: "stall-content",
        recipients: ["r@stall.example"],
        dataSubjects: ["s@stall.example"],
        categories: ["financial"],
        fileName: "a.pdf",
        contentType: "application/pdf",
        size: 1000,
      },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const r = await stall("PUT", `/api/v1/uploads/${id}/content`, { authorization: `Bearer ${a.apiKey}`, "content-type": "application/pdf" }, "%PDF-", 1000);
    expectTimely408(r, "PUT content");
    const after = (await (await t.call("GET", `v1/uploads/${id}`, { key: a.apiKey })).json()) as { status: string };
    expect(after.status).toBe("awaiting-content");
  });
});

/** Whether `text` (latin1) holds one whole answer, framed by Content-Length or chunked; its length if so. */
function wholeAnswer(text: string): number | undefined {
  const at = text.indexOf("\r\n\r\n");
  if (at < 0) return undefined;
  const head = text.slice(0, at);
  const length = /^content-length:\s*(\d+)/im.exec(head);
  if (length) return text.length - (at + 4) >= Number(length[1]) ? at + 4 + Number(length[1]) : undefined;
  if (/^transfer-encoding:\s*chunked/im.test(head)) {
    const end = text.indexOf("\r\n0\r\n\r\n", at);
    return end < 0 ? undefined : end + 7;
  }
  return at + 4;
}

/**
 * Sends a whole request on a fresh connection, as a client sending a large body does (in pieces, while the answer may
 * already be coming), then, as `curl --next` does, a second request on the same connection when the first answer did
 * not close it. Returns both answers' heads and statuses, and whether the connection was reset at any point.
 */
function exchange(method: string, path: string, headers: Record<string, string>, body: Buffer | string = "") {
  const url = new URL(t.host.url);
  const bytes = Buffer.from(body);
  return new Promise<{ status: number | undefined; head: string; next?: number; reset: boolean }>((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let received = "";
    let first: { status: number | undefined; head: string } | undefined;
    let reset = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const next = first && received.length > 0 ? statusOf(Buffer.from(received, "latin1")) : undefined;
      resolve({ status: first?.status ?? statusOf(Buffer.from(received, "latin1")), head: first?.head ?? received.split("\r\n\r\n")[0] ?? "", next, reset });
    };
    socket.on("data", (c: Buffer) => {
      received += c.toString("latin1");
      if (first) {
        if (wholeAnswer(received) !== undefined) finish();
        return;
      }
      const end = wholeAnswer(received);
      if (end === undefined) return;
      const head = received.split("\r\n\r\n")[0] ?? "";
      first = { status: statusOf(Buffer.from(received, "latin1")), head };
      received = received.slice(end);
      if (!/^connection:\s*close/im.test(head)) {
        // Kept open: the server read the whole body, so the connection carries the next request.
        socket.write(`GET /api/health HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET" || err.code === "EPIPE") reset = true;
    });
    const timer = setTimeout(() => socket.destroy(), 15_000);
    socket.on("close", finish);
    socket.once("connect", () => {
      const head = [`${method} ${path} HTTP/1.1`, `Host: ${url.host}`, `Content-Length: ${bytes.length}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), "", ""].join("\r\n");
      socket.write(Buffer.from(head, "latin1"));
      const piece = 64 * 1024;
      for (let i = 0; i < bytes.length; i += piece) socket.write(bytes.subarray(i, i + piece));
    });
  });
}

describe("answers given before the whole body was read", () => {
  const huge = JSON.stringify({ name: "x".repeat(400 * 1024) });

  it.each([
    ["the app's 413 (admin tenants)", "POST", "/api/v1/admin/tenants", "admin", huge, 413],
    ["the app's 413 (uploads)", "POST", "/api/v1/uploads", "tenant", huge, 413],
    ["the app's 401 (a wrong key, the body unread)", "POST", "/api/v1/uploads", "wrong", huge, 401],
    ["the host's 404 (outside the route prefix)", "POST", "/elsewhere", "none", huge, 404],
    ["the host's 401 (admin endpoint without the master key)", "POST", "/admin/functions/x", "none", huge, 401],
    ["the host's 413 (admin endpoint body too large)", "POST", "/admin/functions/deadline-watch", "master", huge, 413],
  ])("%s: the answer arrives whole; the connection is closed (Connection: close) or carries the next request, never reset", async (_what, method, path, auth, body, status) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (auth === "admin") headers.authorization = `Bearer ${t.env.ADMIN_API_KEY}`;
    if (auth === "tenant") headers.authorization = `Bearer ${a.apiKey}`;
    if (auth === "wrong") headers.authorization = `Bearer ${a.apiKey.slice(0, -4)}AAAA`;
    if (auth === "master") headers["x-functions-key"] = t.host.masterKey;
    const r = await exchange(method, path, headers, body);
    expect(r.status).toBe(status);
    expect(r.reset, "the connection was reset instead of closed").toBe(false);
    // Either the answer closed the connection, or the whole body had been read and the next request is answered.
    if (!r.head.toLowerCase().includes("connection: close")) expect(r.next, "the next request on the kept connection").toBe(200);
  });

  it("a request read whole is answered on a connection that stays open for the next", async () => {
    const r = await exchange("POST", "/api/v1/admin/tenants", { authorization: `Bearer ${t.env.ADMIN_API_KEY}`, "content-type": "application/json" }, "[1]");
    expect(r.status).toBe(422);
    expect(r.head.toLowerCase()).not.toContain("connection: close");
    expect(r.next).toBe(200);
    expect(r.reset).toBe(false);
  });
});

describe("a path with malformed percent-encoding", () => {
  it.each([
    ["/api/v1/uploads/up-%ff", "tenant"],
    ["/api/v1/uploads/up-%E0%A4%A", "tenant"],
    ["/api/v1/breaches/%", "tenant"],
    ["/api/v1/no-such-route/%zz", "none"],
  ])("GET %s: 400 malformed-request as problem+json with a request id", async (path, auth) => {
    const res = await fetch(`${t.host.url}${path}`, { headers: auth === "tenant" ? { authorization: `Bearer ${a.apiKey}` } : {} });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const body = (await res.json()) as { type: string; requestId: string };
    expect(body.type).toBe("urn:safedata:problem:malformed-request");
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.requestId).toBe(res.headers.get("x-request-id"));
  });

  it("POST /admin/functions/%E0%A4%A with the master key: 400, not 500", async () => {
    const res = await fetch(`${t.host.url}/admin/functions/%E0%A4%A`, { method: "POST", headers: { "x-functions-key": t.host.masterKey } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toContain("percent-encoding");
  });
});
