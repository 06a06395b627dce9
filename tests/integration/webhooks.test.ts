/**
 * Signed webhooks end to end: a tenant sets its endpoint (a receiver on 127.0.0.1, allowed by
 * ALLOW_LOOPBACK_WEBHOOKS), deliveries are signed per Standard Webhooks and verified here with the library's own
 * verifier, failed attempts are retried with back-off for 24 hours, and a rotated secret keeps signing for 24 hours.
 */
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, it } from "@jest/globals";
import { Webhook } from "standardwebhooks";
import { isAllowedAddress, HttpWebhookSender } from "../../shared/webhooks/http-sender";
import { nextAttemptAt, webhookUrlProblem } from "../../shared/domain/webhooks";
import { attemptDelivery, requeueOverdueDeliveries } from "../../shared/usecases/webhooks";
import { serveFake } from "../fakes/serve";
import { startTestApp, type TestApp } from "../helpers/app";
import { eventually } from "../helpers/eventually";
import { sweep } from "../helpers/sweep";
import { expect } from "../helpers/expect";

interface Received {
  headers: Record<string, string>;
  body: string;
}

let t: TestApp;
let receiver: { url: string; stop(): Promise<void> };
const received: Received[] = [];
/** Statuses the receiver answers with, in turn; 200 when the list is empty. */
let answers: number[] = [];

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

beforeAll(async () => {
  receiver = await serveFake(async (req, res) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    received.push({ headers, body: await readBody(req) });
    res.writeHead(answers.shift() ?? 200);
    res.end("ok");
  });
  t = await startTestApp({ settings: { ALLOW_LOOPBACK_WEBHOOKS: "true" } });
});
afterAll(async () => {
  await t?.stop();
  await receiver?.stop();
});
beforeEach(() => {
  received.length = 0;
  answers = [];
});

async function tenantWithEndpoint(): Promise<{ tenantId: string; apiKey: string; secret: string }> {
  const { tenantId, apiKey } = await t.createTenant();
  const res = await t.call("PUT", "v1/webhook", { key: apiKey, json: { url: `${receiver.url}/hooks/${tenantId}` } });
  expect(res.status).toBe(201);
  const { secret } = (await res.json()) as { secret: string };
  return { tenantId, apiKey, secret };
}

const forTenant = (tenantId: string) => received.filter((r) => JSON.parse(r.body).data.tenantId === tenantId);

describe("webhook endpoint", () => {
  it("is set once with a secret shown once, read back without it, changed and removed", async () => {
    const { tenantId, apiKey, secret } = await tenantWithEndpoint();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const view = (await (await t.call("GET", "v1/webhook", { key: apiKey })).json()) as Record<string, unknown>;
    expect(JSON.stringify(view)).not.toContain(secret.slice(6));
    expect(view).toMatchObject({ url: `${receiver.url}/hooks/${tenantId}`, deliveries: { pending: 0, delivered: 0, failed: 0 } });
    const again = await t.call("PUT", "v1/webhook", { key: apiKey, json: { url: `${receiver.url}/other` } });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ url: `${receiver.url}/other`, secret: null });
    expect((await t.call("DELETE", "v1/webhook", { key: apiKey })).status).toBe(204);
    expect((await t.call("GET", "v1/webhook", { key: apiKey })).status).toBe(404);
    expect((await t.call("DELETE", "v1/webhook", { key: apiKey })).status).toBe(404);
    const actions = ((await (await t.call("GET", "v1/audit", { key: apiKey })).json()) as { items: Array<{ action: string }> }).items.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["webhook.endpoint-set", "webhook.endpoint-deleted"]));
  });

  it.each([
    ["http on a public host", "http://hooks.example.com/x"],
    ["an IP address", "https://203.0.113.7/x"],
    ["a local name", "https://printer.local/x"],
    ["credentials in the URL", "https://user:pw@hooks.example.com/x"],
    ["not a URL", "hooks"],
  ])("refuses %s with 422", async (_what, url) => {
    const { apiKey } = await t.createTenant();
    const res = await t.call("PUT", "v1/webhook", { key: apiKey, json: { url } });
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toMatch(/problem\+json/);
  });
});

describe("deliveries", () => {
  it("are signed per Standard Webhooks, verified by the library, and carry ids only", async () => {
    const { tenantId, apiKey, secret } = await tenantWithEndpoint();
    const res = await t.call("POST", "v1/webhook/test", { key: apiKey });
    expect(res.status).toBe(202);
    const { deliveryId } = (await res.json()) as { deliveryId: string };
    await eventually(() => expect(forTenant(tenantId)).toHaveLength(1));
    const [got] = forTenant(tenantId);
    const payload = new Webhook(secret).verify(got!.body, got!.headers) as { type: string; data: Record<string, unknown> };
    expect(payload.type).toBe("webhook.test");
    expect(got!.headers["webhook-id"]).toBe(deliveryId);
    expect(Object.keys(payload.data).sort()).toEqual(["requestId", "tenantId"]);
    // A different secret does not verify it, nor does a changed body.
    expect(() => new Webhook("whsec_" + Buffer.alloc(32, 1).toString("base64")).verify(got!.body, got!.headers)).toThrow();
    expect(() => new Webhook(secret).verify(got!.body.replace("webhook.test", "webhook.tesT"), got!.headers)).toThrow();
    // A receiver rejects the same message replayed more than five minutes later.
    const old = { ...got!.headers, "webhook-timestamp": String(Math.floor(Date.now() / 1000) - 301) };
    expect(() => new Webhook(secret).verify(got!.body, old)).toThrow(/too old/);
    await eventually(async () => {
      const list = (await (await t.call("GET", "v1/webhook/deliveries", { key: apiKey })).json()) as { items: Array<{ id: string; status: string; attempts: unknown[] }> };
      expect(list.items[0]).toMatchObject({ id: deliveryId, status: "delivered", attempts: [{ n: 1, status: 200 }] });
    });
  });

  it("are retried with back-off when the receiver fails, each attempt recorded, then delivered", async () => {
    const { tenantId, apiKey } = await tenantWithEndpoint();
    answers = [500, 503];
    const { deliveryId } = (await (await t.call("POST", "v1/webhook/test", { key: apiKey })).json()) as { deliveryId: string };
    await eventually(() => expect(forTenant(tenantId)).toHaveLength(1));
    await eventually(async () => expect((await t.services.webhooks.getDelivery(tenantId, deliveryId))?.attempts).toHaveLength(1));
    const first = (await t.services.webhooks.getDelivery(tenantId, deliveryId))!;
    expect(first).toMatchObject({ status: "pending", attempts: [{ n: 1, status: 500 }] });
    expect(Date.parse(first.nextAttemptAt!) - Date.parse(first.attempts[0]!.at)).toBe(30_000);

    // Too early: the stored state says attempt 2 is not due yet, whatever the message says.
    expect(await attemptDelivery(t.services, { tenantId, deliveryId, attempt: 2 })).toBe("skipped");
    t.clock.advance({ seconds: 30 });
    // A forged or stale attempt number does nothing.
    expect(await attemptDelivery(t.services, { tenantId, deliveryId, attempt: 5 })).toBe("skipped");
    expect(await attemptDelivery(t.services, { tenantId, deliveryId, attempt: 2 })).toBe("retry-queued");
    const second = (await t.services.webhooks.getDelivery(tenantId, deliveryId))!;
    expect(Date.parse(second.nextAttemptAt!) - Date.parse(second.attempts[1]!.at)).toBe(60_000);
    // Its queue message is due in a minute; the sweep re-queues a due attempt whose message did not come.
    t.clock.advance({ minutes: 4 });
    expect(await requeueOverdueDeliveries(t.services)).toBeGreaterThanOrEqual(1);
    await eventually(async () => expect((await t.services.webhooks.getDelivery(tenantId, deliveryId))?.status).toBe("delivered"));
    const done = (await t.services.webhooks.getDelivery(tenantId, deliveryId))!;
    expect(done.attempts.map((a) => a.status)).toEqual([500, 503, 200]);
    expect(forTenant(tenantId).map((r) => r.headers["webhook-id"])).toEqual([deliveryId, deliveryId, deliveryId]);
    const stats = (await (await t.call("GET", "v1/webhook", { key: apiKey })).json()) as { deliveries: Record<string, unknown> };
    expect(stats.deliveries).toMatchObject({ delivered: 1, pending: 0, failed: 0 });
  });

  it("send an attempt once when its message is delivered twice at the same time", async () => {
    const { tenantId, apiKey } = await tenantWithEndpoint();
    answers = [500];
    const { deliveryId } = (await (await t.call("POST", "v1/webhook/test", { key: apiKey })).json()) as { deliveryId: string };
    await eventually(async () => expect((await t.services.webhooks.getDelivery(tenantId, deliveryId))?.attempts).toHaveLength(1));
    t.clock.advance({ seconds: 31 });
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => attemptDelivery(t.services, { tenantId, deliveryId, attempt: 2 })));
    expect(outcomes.filter((o) => o !== "skipped")).toHaveLength(1);
    expect(forTenant(tenantId)).toHaveLength(2);
  });

  it("fail for good after 24 hours of failed attempts, visibly and in the audit log", async () => {
    const { tenantId, apiKey } = await tenantWithEndpoint();
    answers = Array.from({ length: 40 }, () => 500);
    const { deliveryId } = (await (await t.call("POST", "v1/webhook/test", { key: apiKey })).json()) as { deliveryId: string };
    await eventually(async () => expect((await t.services.webhooks.getDelivery(tenantId, deliveryId))?.attempts).toHaveLength(1));
    let outcome = "retry-queued";
    for (let attempt = 2; outcome === "retry-queued" && attempt < 40; attempt++) {
      const doc = (await t.services.webhooks.getDelivery(tenantId, deliveryId))!;
      t.clock.set(doc.nextAttemptAt!);
      outcome = await attemptDelivery(t.services, { tenantId, deliveryId, attempt });
    }
    expect(outcome).toBe("failed");
    const failed = (await t.services.webhooks.getDelivery(tenantId, deliveryId))!;
    expect(failed).toMatchObject({ status: "failed", failure: "retries-exhausted" });
    expect(Date.parse(failed.attempts.at(-1)!.at) - Date.parse(failed.createdAt)).toBeLessThanOrEqual(24 * 3_600_000);
    expect(failed.attempts.length).toBeGreaterThan(8);
    const list = (await (await t.call("GET", "v1/webhook/deliveries?status=failed", { key: apiKey })).json()) as { items: Array<{ id: string }> };
    expect(list.items.map((d) => d.id)).toEqual([deliveryId]);
    const audit = ((await (await t.call("GET", "v1/audit", { key: apiKey })).json()) as { items: Array<{ action: string; target: { id: string } | null }> }).items;
    expect(audit.filter((e) => e.action === "webhook.delivery-failed").map((e) => e.target?.id)).toEqual([deliveryId]);
  });
});

describe("secret rotation", () => {
  it("signs with the old and the new secret for 24 hours, then with the new one only", async () => {
    const { tenantId, apiKey, secret: old } = await tenantWithEndpoint();
    const rotated = await t.call("POST", "v1/webhook/rotate-secret", { key: apiKey });
    expect(rotated.status).toBe(200);
    const { secret: fresh, previousRetiresAt } = (await rotated.json()) as { secret: string; previousRetiresAt: string };
    expect(fresh).not.toBe(old);
    expect(Date.parse(previousRetiresAt) - t.clock.now().getTime()).toBe(24 * 3_600_000);

    await t.call("POST", "v1/webhook/test", { key: apiKey });
    await eventually(() => expect(forTenant(tenantId)).toHaveLength(1));
    const during = forTenant(tenantId)[0]!;
    expect(during.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(() => new Webhook(old).verify(during.body, during.headers)).not.toThrow();
    expect(() => new Webhook(fresh).verify(during.body, during.headers)).not.toThrow();

    t.clock.advance({ hours: 24, seconds: 1 });
    await t.call("POST", "v1/webhook/test", { key: apiKey });
    await eventually(() => expect(forTenant(tenantId)).toHaveLength(2));
    const after = forTenant(tenantId)[1]!;
    expect(after.headers["webhook-signature"]!.split(" ")).toHaveLength(1);
    expect(() => new Webhook(fresh).verify(after.body, after.headers)).not.toThrow();
    expect(() => new Webhook(old).verify(after.body, after.headers)).toThrow();
    const view = (await (await t.call("GET", "v1/webhook", { key: apiKey })).json()) as { secrets: unknown[] };
    expect(view.secrets).toHaveLength(1);
  });

  it("does not give the secret again on a replayed rotation", async () => {
    const { apiKey } = await tenantWithEndpoint();
    const first = await t.call("POST", "v1/webhook/rotate-secret", { key: apiKey, headers: { "idempotency-key": "rot-1" } });
    const replay = await t.call("POST", "v1/webhook/rotate-secret", { key: apiKey, headers: { "idempotency-key": "rot-1" } });
    expect(((await first.json()) as { secret: string | null }).secret).toMatch(/^whsec_/);
    expect(((await replay.json()) as { secret: string | null }).secret).toBeNull();
  });
});

describe("the endpoint over the tenant's life", () => {
  it("has its signing secrets re-sealed when the tenant's key-encryption key rotates, and they still sign the same", async () => {
    const { tenantId, apiKey, secret } = await tenantWithEndpoint();
    const before = (await t.services.webhooks.getEndpoint(tenantId))!.secrets[0]!.sealed;
    const rotated = (await (await t.admin("POST", `v1/admin/tenants/${tenantId}/kek/rotate`)).json()) as { version: string };
    t.host.pokeQueues();
    await eventually(async () => expect((await t.services.webhooks.getEndpoint(tenantId))!.secrets[0]!.sealed.kekVersion).toBe(rotated.version));
    expect((await t.services.webhooks.getEndpoint(tenantId))!.secrets[0]!.sealed.value).not.toBe(before.value);
    await t.call("POST", "v1/webhook/test", { key: apiKey });
    await eventually(() => expect(forTenant(tenantId)).toHaveLength(1));
    const got = forTenant(tenantId)[0]!;
    expect(() => new Webhook(secret).verify(got.body, got.headers)).not.toThrow();
  });

  it("is removed when the tenant is offboarded", async () => {
    const { tenantId } = await tenantWithEndpoint();
    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/suspend`)).status).toBe(200);
    t.clock.advance({ days: 31 });
    await sweep(t);
    await eventually(async () => expect((await t.services.tenants.get(tenantId))?.offboardedAt).not.toBeNull());
    expect(await t.services.webhooks.getEndpoint(tenantId)).toBeUndefined();
  });
});

describe("where deliveries may go", () => {
  it("refuses loopback, private, link-local and other non-public addresses unless loopback is allowed", () => {
    for (const a of ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1", "fc00::1", "fe80::1", "224.0.0.1"]) {
      expect(isAllowedAddress(a, false), a).toBe(false);
    }
    for (const a of ["8.8.8.8", "2001:4860:4860::8888"]) expect(isAllowedAddress(a, false), a).toBe(true);
    expect(isAllowedAddress("127.0.0.1", true)).toBe(true);
    expect(isAllowedAddress("10.0.0.1", true)).toBe(false);
  });

  it("does not connect to a name that resolves to loopback, or to a loopback address, without the local setting", async () => {
    const sender = new HttpWebhookSender({ allowLoopback: false, timeoutMs: 2000 });
    const port = new URL(receiver.url).port;
    for (const url of [`http://localhost:${port}/x`, `http://127.0.0.1:${port}/x`, `http://[::ffff:127.0.0.1]:${port}/x`]) {
      const r = await sender.send({ url, headers: {}, body: "{}" });
      expect(r, url).toMatchObject({ status: null, failure: "blocked-address" });
    }
    expect(received).toHaveLength(0);
  });

  it("accepts http only on loopback and only with the local setting", () => {
    expect(webhookUrlProblem("http://127.0.0.1:9/x", { allowLoopback: true })).toBeUndefined();
    expect(webhookUrlProblem("http://127.0.0.1:9/x", { allowLoopback: false })).toBeDefined();
    expect(webhookUrlProblem("http://hooks.example.com/x", { allowLoopback: true })).toBeDefined();
    expect(webhookUrlProblem("https://hooks.example.com/x#frag", { allowLoopback: false })).toBeDefined();
  });

  it("backs off exponentially and stops at 24 hours", () => {
    const created = new Date("2026-01-01T00:00:00Z");
    const delays: number[] = [];
    let at = created;
    for (let n = 1; ; n++) {
      const next = nextAttemptAt(created, n, at);
      if (!next) break;
      delays.push(next.getTime() - at.getTime());
      at = next;
    }
    expect(delays.slice(0, 4)).toEqual([30_000, 60_000, 120_000, 240_000]);
    expect(Math.max(...delays)).toBe(4 * 3_600_000);
    expect(at.getTime() - created.getTime()).toBeLessThanOrEqual(24 * 3_600_000);
  });
});
