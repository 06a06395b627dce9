/**
 * How a breach reaches each controller, with a test clock: the notice's e-mail is retried until the e-mail service
 * accepts it and the webhook by its own machinery; `controllerNotifiedAt` is the first of the two to arrive; a
 * duplicated or forged job does nothing; the deadline watch e-mails the tenant and the operator contact 24, 12 and
 * 2 hours before each deadline and when it passes, each once, and stops when the step is done; an audit-anchor
 * tamper alarm opens one draft integrity breach per alarm, for the operator to confirm or dismiss.
 */
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, it } from "@jest/globals";
import { Webhook } from "standardwebhooks";
import { QUEUES } from "../../shared/config/resources";
import type { EmailMessage } from "../../shared/email/email-sender";
import { entryId } from "../../shared/stores/audit-store";
import { runAnchorSweep } from "../../shared/usecases/audit-anchoring";
import { runBreachSweep, syncTenantPart } from "../../shared/usecases/breach-notices";
import { runDeadlineWatch } from "../../shared/usecases/deadlines";
import { breachJobMessage } from "../../shared/usecases/messages";
import { serveFake } from "../fakes/serve";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, outbox, partOf, registerBreach, type Json } from "../helpers/breaches";
import { eventually } from "../helpers/eventually";
import { expect } from "../helpers/expect";

const HOUR = 3_600_000;
const OPERATOR = "security@processor.example";
let t: TestApp;
let receiver: { url: string; stop(): Promise<void> };
const received: Array<{ headers: Record<string, string>; body: string }> = [];
/** Message ids the e-mail service refuses while they match (an outage, for these messages only). */
let refuse: ((messageId: string) => boolean) | undefined;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

class EmailServiceDown extends Error {
  constructor() {
    super("the e-mail service answered 503");
    this.name = "EmailServiceDown";
  }
}

beforeAll(async () => {
  receiver = await serveFake(async (req, res) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    received.push({ headers, body: await readBody(req) });
    res.writeHead(200);
    res.end("ok");
  });
  t = await startTestApp({ settings: { ALLOW_LOOPBACK_WEBHOOKS: "true", OPERATOR_CONTACT_EMAIL: OPERATOR } });
  // The e-mail service is outside the product: a fault is injected in front of its local adapter.
  const send = t.services.email.send.bind(t.services.email);
  t.services.email.send = async (m: EmailMessage) => {
    if (refuse?.(m.messageId)) throw new EmailServiceDown();
    return send(m);
  };
});
afterAll(async () => {
  await t?.stop();
  await receiver?.stop();
});
beforeEach(() => {
  refuse = undefined;
});

const scopeOf = (tenantId: string) => [{ tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact", "health"] }];
const isNotice = (id: string) => (messageId: string) => messageId.startsWith(`breach-${id}-`);

async function json(res: Response): Promise<Json> {
  return res.json();
}

describe("the controller notice", () => {
  it("counts as given when the webhook arrives first, and the e-mail is retried until accepted", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const put = await t.call("PUT", "v1/webhook", { key: apiKey, json: { url: `${receiver.url}/hooks/${tenantId}` } });
    const { secret } = await json(put);
    const pending = await registerBreach(t, breachBody(t, { awareAt: t.clock.now().toISOString(), scope: [] }));
    refuse = isNotice(pending.id);
    // The breach gets its tenant in version 2; the e-mail service is down for its notices.
    const patched = await t.admin("PATCH", `v1/admin/breaches/${pending.id}`, { scope: scopeOf(tenantId) }, { "if-match": pending.etag });
    expect(patched.status).toBe(200);
    const id = pending.id;

    const view = await partOf(t, apiKey, id);
    expect(view.controllerNotifiedVia).toBe("webhook");
    const hook = received.find((r) => r.body.includes(id))!;
    const verified = new Webhook(secret).verify(hook.body, hook.headers) as Json;
    expect(verified).toMatchObject({ type: "breach.notified", data: { tenantId, breachId: id, version: 1, band: "very-high" } });
    expect(view.clocks.controllerNotice.notifiedAt).toBe(view.notices[0].webhookDeliveredAt);
    await eventually(async () => {
      const admin = await json(await t.admin("GET", `v1/admin/breaches/${id}`));
      expect(admin.tenants[0].part.notice).toMatchObject({ emailAcceptedAt: null, pending: true, emailLastFailure: "EmailServiceDown" });
      expect(admin.tenants[0].part.notice.emailAttempts).toBeGreaterThanOrEqual(1);
    });
    expect(await outbox(t, `breach-${id}`)).toEqual([]);

    // The service is back; the retry's message waits on the queue (wall time), the sweep finds the attempt due.
    refuse = undefined;
    t.clock.advance({ hours: 2 });
    expect((await runBreachSweep(t.services)).requeued).toBeGreaterThanOrEqual(1);
    const after = await partOf(t, apiKey, id, (v) => v.notices[0].emailAcceptedAt !== null);
    // The first channel to arrive decided when the controller was told.
    expect(after.clocks.controllerNotice.notifiedAt).toBe(view.clocks.controllerNotice.notifiedAt);
    expect(after.controllerNotifiedVia).toBe("webhook");
    expect(await outbox(t, `breach-${id}`)).toHaveLength(1);
    const actions = ((await json(await t.call("GET", "v1/audit?limit=200", { key: apiKey }))).items as Array<{ action: string; details: Json }>).filter((e) => e.action.startsWith("breach."));
    expect(actions.filter((e) => e.action === "breach.controller-notified")).toEqual([expect.objectContaining({ details: expect.objectContaining({ via: "webhook" }) })]);
    expect(actions.filter((e) => e.action === "breach.notice-sent")).toHaveLength(1);
  });

  it("does nothing more for a duplicated job, and nothing at all for a forged one", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const other = await t.createTenant();
    const { id } = await registerBreach(t, breachBody(t, { scope: scopeOf(tenantId) }));
    await partOf(t, apiKey, id);
    const mails = (await outbox(t)).length;
    const outcomes = await Promise.all([1, 2, 3].map(() => syncTenantPart(t.services, id, tenantId)));
    expect(outcomes).toEqual(["synced", "synced", "synced"]);
    expect(await syncTenantPart(t.services, "br-00000000000000000000", tenantId)).toBe("skipped");
    expect(await syncTenantPart(t.services, id, other.tenantId)).toBe("skipped");
    await t.services.queues.send(QUEUES.breaches.name, breachJobMessage, { kind: "sync-tenant", breachId: id, tenantId: other.tenantId });
    t.host.pokeQueues();
    await eventually(() => expect(t.logs.some((l) => l.message.includes("breach.sync") && l.message.includes(other.tenantId) && l.message.includes("skipped"))).toBe(true));
    expect((await outbox(t)).length).toBe(mails);
    expect(await t.services.breaches.getPart(other.tenantId, id)).toBeUndefined();
    expect((await partOf(t, apiKey, id)).versions).toHaveLength(1);
  });
});

describe("the deadline watch", () => {
  it("e-mails the tenant and the operator 24, 12 and 2 hours before each deadline and when it passes, once each, until the step is done", async () => {
    const { tenantId, apiKey } = await t.createTenant("Watched Controller");
    const start = t.clock.now().getTime();
    const { id } = await registerBreach(t, breachBody(t, { awareAt: new Date(start).toISOString(), scope: scopeOf(tenantId) }));
    // The notice cannot be delivered: no webhook, and the e-mail service refuses it.
    refuse = isNotice(id);
    await eventually(async () => expect((await json(await t.admin("GET", `v1/admin/breaches/${id}`))).tenants[0].part?.notice?.emailAttempts).toBeGreaterThanOrEqual(1));
    const deadlineMail = async () => (await outbox(t, `breach-deadline-${id}`)).map((m) => ({ to: m.to[0], subject: m.subject }));
    const watch = async (expected: number) => {
      await runDeadlineWatch(t.services);
      await runDeadlineWatch(t.services);
      t.host.pokeQueues();
      await eventually(async () => expect(await deadlineMail()).toHaveLength(expected));
    };

    // awareAt + 12 h: 12 hours before the processor's target (24 h). The 24-hour mark was due at once: never sent.
    t.clock.moveTo(new Date(start + 12 * HOUR));
    await watch(2);
    expect(await deadlineMail()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ to: OPERATOR, subject: `[breach ${id}] 12 h left for tenant ${tenantId}` }),
        expect.objectContaining({ subject: `12 hours left: personal-data breach ${id}` }),
      ]),
    );
    // Again: nothing new.
    await watch(2);
    // awareAt + 24 h: the 2-hour mark and the target itself.
    t.clock.moveTo(new Date(start + 24 * HOUR));
    await watch(6);
    expect((await deadlineMail()).filter((m) => m.subject === `Deadline passed: personal-data breach ${id}`)).toHaveLength(1);

    // The notice gets through: the controller-notice deadlines stop, the authority's begins (72 h from now).
    refuse = undefined;
    t.clock.advance({ minutes: 30 });
    await runBreachSweep(t.services);
    const told = await partOf(t, apiKey, id);
    expect(told.clocks.controllerNotice.status).toBe("within-limit");
    const toldAt = Date.parse(told.clocks.controllerNotice.notifiedAt);
    expect(told.clocks.authority.deadlineAt).toBe(new Date(toldAt + 72 * HOUR).toISOString());
    // awareAt + 48 h: the agreement's limit (72 h) is not reminded any more; the product's target for the
    // authority (awareAt + 72 h) is, 24 hours ahead.
    t.clock.moveTo(new Date(start + 48 * HOUR));
    await watch(8);
    const latest = (await outbox(t, `breach-deadline-${id}`)).slice(-2);
    expect(latest.map((m) => m.subject)).toEqual(expect.arrayContaining([`24 hours left: personal-data breach ${id}`]));
    expect(latest.find((m) => m.to[0] !== OPERATOR)!.text).toContain("the target for your notification to the supervisory authority");

    // The tenant notifies the authority: nothing more is said about it.
    expect((await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: apiKey, json: { notifiedAt: t.clock.now().toISOString(), method: "online-form" } })).status).toBe(200);
    t.clock.moveTo(new Date(start + 200 * HOUR));
    await runDeadlineWatch(t.services);
    await runDeadlineWatch(t.services);
    t.host.pokeQueues();
    await eventually(async () => expect(await t.services.queues.approximateCount(QUEUES.deadlines.name)).toBe(0));
    expect(await deadlineMail()).toHaveLength(8);
    const audit = ((await json(await t.call("GET", "v1/audit?limit=200", { key: apiKey }))).items as Array<{ action: string; details: Json }>).filter((e) => e.action === "breach.deadline-notice");
    expect(audit.map((e) => `${e.details.deadline}/${e.details.stage}`).sort()).toEqual(["authority-target/reminder-24h", "controller-target/overdue", "controller-target/reminder-12h", "controller-target/reminder-2h"]);
  });
});

describe("an audit-anchor tamper alarm", () => {
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

  async function tamperedTenant(): Promise<{ tenantId: string; apiKey: string }> {
    const tenant = await t.createTenant();
    for (let i = 0; i < 4; i++) await t.services.audit.append({ tenantId: tenant.tenantId, actor: "system:test", action: "upload.deleted", target: { type: "upload", id: `u-${i}` } });
    await runAnchorSweep(t.services, { log: quiet });
    // Someone with database access removes the newest entry and rewinds the head.
    const head = (await t.services.audit.head(tenant.tenantId))!;
    await t.raw.containers.audit.item(entryId(head.seq), tenant.tenantId).delete();
    const prev = (await t.raw.containers.audit.item(entryId(head.seq - 1), tenant.tenantId).read<{ hash: string }>()).resource!;
    await t.raw.containers.audit.items.upsert({ id: "head", tenantId: tenant.tenantId, type: "audit-head", seq: head.seq - 1, hash: prev.hash });
    return tenant;
  }

  const drafts = async (tenantId: string) =>
    ((await json(await t.admin("GET", "v1/admin/breaches?limit=200"))).items as Array<{ id: string; status: string; origin: { alarmTenantId?: string } }>).filter((b) => b.origin.alarmTenantId === tenantId);

  it("opens one draft per alarm, however many runs find it, which the operator confirms and the tenant is then told of", async () => {
    const { tenantId, apiKey } = await tamperedTenant();
    const alarmedAt = t.clock.now().toISOString();
    await runAnchorSweep(t.services, { log: quiet });
    await runAnchorSweep(t.services, { log: quiet });
    const [draft] = await drafts(tenantId);
    expect(await drafts(tenantId)).toHaveLength(1);
    expect(draft).toMatchObject({ status: "draft" });
    // A draft is not a breach yet: the tenant sees nothing and is told nothing.
    expect((await t.call("GET", `v1/breaches/${draft!.id}`, { key: apiKey })).status).toBe(404);

    const view = await json(await t.admin("GET", `v1/admin/breaches/${draft!.id}`));
    expect(view).toMatchObject({ origin: { kind: "anchor-alarm", alarmTenantId: tenantId }, current: { nature: { integrity: "altered-no-evidence-of-misuse" } } });
    t.clock.advance({ hours: 1 });
    const confirmed = await t.admin("POST", `v1/admin/breaches/${draft!.id}/confirm`, { reason: "The database's access log shows a write from an unknown identity." });
    expect(confirmed.status).toBe(200);
    expect(await json(confirmed)).toMatchObject({ status: "open", version: 2, confirmation: { reason: "The database's access log shows a write from an unknown identity." }, current: { awareAt: alarmedAt } });
    const part = await partOf(t, apiKey, draft!.id);
    expect(part.current.awareAt).toBe(alarmedAt);
    expect((await t.admin("POST", `v1/admin/breaches/${draft!.id}/confirm`, { reason: "again" })).status).toBe(409);

    // The chain grows over the break (the breach's own entries): later runs still name the same alarm.
    await runAnchorSweep(t.services, { log: quiet });
    expect(await drafts(tenantId)).toHaveLength(1);
  });

  it("can be dismissed with a reason, which the register keeps", async () => {
    const { tenantId, apiKey } = await tamperedTenant();
    await runAnchorSweep(t.services, { log: quiet });
    const [draft] = await drafts(tenantId);
    const res = await t.admin("POST", `v1/admin/breaches/${draft!.id}/dismiss`, { reason: "A restore drill on the test account rewound the head; no personal data was involved." });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: "dismissed", dismissal: { reason: expect.stringContaining("restore drill") } });
    expect((await t.admin("PATCH", `v1/admin/breaches/${draft!.id}`, { malicious: true }, { "if-match": "*" })).status).toBe(409);
    expect((await t.admin("POST", `v1/admin/breaches/${draft!.id}/confirm`, { reason: "x" })).status).toBe(409);
    await runAnchorSweep(t.services, { log: quiet });
    expect(await drafts(tenantId)).toHaveLength(1);
    expect((await json(await t.call("GET", "v1/breaches", { key: apiKey }))).items).toEqual([]);
  });
});
