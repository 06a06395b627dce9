/**
 * The tenant's cancellation of its instruction to tell the persons of a breach (DELETE /v1/breaches/{id}/notify-persons,
 * GDPR Art. 34; e.g. instructed by mistake, or a public communication decided instead, Art. 34(3)(c)): nobody more is
 * told however far the clock moves, a batch step already sending ends after the group of sends it started, the
 * counts add up, the cancellation is idempotent and audited once, another tenant's part of the same breach goes on,
 * the persons view, the operator view and the authority report (JSON and HTML) say why the notices stopped, the
 * same version cannot be instructed again while a newer version can, no delay alert is sent and the breach sweep does
 * not count the cancelled run. The clock is moved, never slept; the test works the breach-jobs queue itself.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { EmailMessage, EmailSendResult } from "../../shared/email/email-sender";
import { authorityReportSchema } from "../../shared/http/breach-report-schema";
import type { Services } from "../../shared/services";
import { runBreachSweep } from "../../shared/usecases/breach-notices";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { cancelNotices, drainBreachJobs, newBreachVersion, instructNotices, noticesInOutbox, outboxMessageIds, personsOf as personsOfBreach, subjectAddresses, runBreachJob, uploadNaming } from "../helpers/breach-persons";
import { QUEUES } from "../../shared/config/resources";
import { breachJobMessage } from "../../shared/usecases/messages";
import { expect } from "../helpers/expect";
import { contractViolations, targetOf, type OpenApiDocument } from "../helpers/openapi-contract";

const OPERATOR = "security@processor.example";
let t: TestApp;

beforeAll(async () => {
  // 5 notices a minute: a run of 30 persons cannot finish at once. A bound of 1 hour for "without undue delay": at
  // 10 an hour, 30 persons break it, so a run that is not cancelled gets its delay alert.
  t = await startTestApp({
    queues: false,
    settings: { EMAIL_SENDS_PER_MINUTE: "5", EMAIL_SENDS_PER_HOUR: "10", BREACH_NOTICE_MAX_HOURS: "1", OPERATOR_CONTACT_EMAIL: OPERATOR },
  });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

type Tenant = { tenantId: string; apiKey: string };

const personsOf = (apiKey: string, id: string): Promise<Json> => personsOfBreach(t, apiKey, id);
const short = (id: string) => id.replace(/^br-/, "");
const noticesOf = (id: string, version?: number) => noticesInOutbox(t, id, version);
/** The delay alerts of the tenant's part of breach `id` in the outbox. */
const alertsOf = async (id: string, tenantId: string) =>
  (await outboxMessageIds(t, `bpd-${short(id)}-`)).filter((m) => m.includes(tenantId.slice(0, 40).replace(/[^A-Za-z0-9._-]/g, "-"))).length;
const cancel = (apiKey: string, id: string) => cancelNotices(t, apiKey, id);
const instruct = (apiKey: string, id: string) => instructNotices(t, apiKey, id);
const subjects = subjectAddresses;

async function auditOf(tenant: Tenant, action: string): Promise<Array<{ action: string; target: { id: string }; details: Json }>> {
  const res = await t.call("GET", "v1/audit?limit=200", { key: tenant.apiKey });
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: Array<{ action: string; target: { id: string }; details: Json }> }).items.filter((e) => e.action === action);
}

/** A DELETE's problem answer, and what in it breaks the served OpenAPI document's contract (none expected). */
async function problemOf(res: Response): Promise<{ status: number; type: string; detail: string; contentType: string | null; violations: string[] }> {
  const text = await res.text();
  const body = JSON.parse(text) as { type: string; detail: string };
  const doc = (await (await t.call("GET", "v1/openapi.json")).json()) as OpenApiDocument;
  const violations = contractViolations(doc, { method: "DELETE", url: new URL(res.url), status: res.status, headers: res.headers, body: text });
  return { status: res.status, type: body.type, detail: body.detail, contentType: res.headers.get("content-type"), violations };
}

/** A breach of one upload per tenant, each naming `n[i]` data subjects; resolved (not instructed). */
async function breachOf(tenants: Tenant[], n: number[], tag: string): Promise<{ id: string; etag: string }> {
  const scope = [];
  for (const [i, ctl] of tenants.entries()) {
    const up = await uploadNaming(t, ctl.apiKey, subjects(`${tag}${i}-`, n[i]!), [`r${tag}${i}@recipients.example`]);
    scope.push({ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] });
  }
  const reg = await registerBreach(t, breachBody(t, { scope }));
  await drainBreachJobs(t);
  return reg;
}

/** Moves the clock on by `hours` in steps, running the breach sweep and the queue after each. */
async function runFor(hours: number, stepMinutes = 30): Promise<void> {
  for (let m = 0; m < hours * 60; m += stepMinutes) {
    t.clock.advance({ minutes: stepMinutes });
    await runBreachSweep(t.services);
    await drainBreachJobs(t);
  }
}

/** Works one message of the breach-jobs queue (one step: a sync, or one resolution page); its kind, or undefined when none. */
async function workOne(): Promise<string | undefined> {
  const queue = t.raw.queues.getQueueClient(QUEUES.breaches.name);
  const { receivedMessageItems: [m] } = await queue.receiveMessages({ numberOfMessages: 1, visibilityTimeout: 300 });
  if (!m) return undefined;
  const msg = breachJobMessage.parse(JSON.parse(Buffer.from(m.messageText, "base64").toString("utf8")));
  await runBreachJob(t.services, msg);
  await queue.deleteMessage(m.messageId, m.popReceipt);
  return msg.kind;
}

describe("cancelling the notices to the persons", () => {
  it("tells nobody more after a cancellation half-way, however far the clock moves; the counts add up; a repeat answers the same and is audited once; another tenant's part goes on", async () => {
    t.clock.set("2026-03-02T09:00:10.000Z");
    const a = await t.createTenant("Cancelling Controller");
    const b = await t.createTenant("Going-On Controller");
    const reg = await breachOf([a, b], [30, 12], "half");
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    await drainBreachJobs(t);
    expect((await instruct(b.apiKey, reg.id)).status).toBe(202);
    await drainBreachJobs(t);
    // Half-way: a few minutes of the budget (5 a minute, shared by both parts).
    for (let m = 0; m < 2; m++) {
      t.clock.advance({ minutes: 1 });
      await runBreachSweep(t.services);
      await drainBreachJobs(t);
    }
    const before = await personsOf(a.apiKey, reg.id);
    expect(before.notices.sent, "some of A's persons told").toBeGreaterThan(0);
    expect(before.notices.pending, "some of A's persons still pending").toBeGreaterThan(0);

    const res = await cancel(a.apiKey, reg.id);
    expect(res.status).toBe(200);
    const cancelled = (await res.json()) as Json;
    const sentAtCancel = cancelled.notices.sent as number;
    expect(sentAtCancel).toBe(before.notices.sent);
    expect(cancelled.notices).toMatchObject({ stoppedReason: "cancelled", stoppedBy: expect.stringMatching(/^key:/), pending: 0, notTold: 30 - sentAtCancel, estimatedCompletionAt: null, estimateBreaksDeadline: false });
    expect(cancelled.notices.stoppedAt).toBe(t.clock.now().toISOString());
    const told = await noticesOf(reg.id);

    // A repeat answers the same, and the cancellation is audited once.
    const again = await cancel(a.apiKey, reg.id);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(cancelled);

    // Three days on: the budget would have allowed every notice many times over.
    await runFor(72, 240);
    const bAfter = await personsOf(b.apiKey, reg.id);
    expect(bAfter.notices, "the other tenant's part went on").toMatchObject({ sent: 12, pending: 0, stoppedAt: null, stoppedReason: null, notTold: 0 });
    const after = await personsOf(a.apiKey, reg.id);
    expect(after.notices, "nobody more of A's persons was told").toMatchObject({ sent: sentAtCancel, pending: 0, notTold: 30 - sentAtCancel, stoppedReason: "cancelled" });
    expect(after.notices.sent + after.notices.notTold + after.notices.failed + after.notices.unreachable, "the counts add up to the persons").toBe(after.resolution.persons);
    expect(after.resolution.persons).toBe(30);
    expect(told, "A's and B's notices before the cancellation").toBeGreaterThanOrEqual(sentAtCancel);
    expect(await noticesOf(reg.id), "after the cancellation, only the other tenant's notices went").toBe(sentAtCancel + 12);
    expect(await cancel(a.apiKey, reg.id).then((r) => r.json()), "still the same after the clock moved").toEqual(cancelled);
    const audit = await auditOf(a, "breach.persons-notify-cancelled");
    expect(audit, "audited once").toHaveLength(1);
    // No counts in the permanent entry: a step still sending records its counts after its loop (they settle in the view).
    expect(audit[0]!.details).toEqual({ breachId: reg.id, version: 1, stoppedAt: cancelled.notices.stoppedAt });
    expect(await auditOf(b, "breach.persons-notify-cancelled"), "nothing in the other tenant's chain").toEqual([]);

    // The batches of the cancelled run are closed; the sweep's catch-up never picks them again.
    const due = await t.services.breaches.findDueBatchesAcrossTenants(new Date(t.clock.now().getTime() + 3_600_000), t.clock.now(), 500);
    expect(due.filter((d) => d.tenantId === a.tenantId && d.breachId === reg.id)).toEqual([]);

    // The operator's view says why (counts, times and states only).
    const admin = (await (await t.admin("GET", `v1/admin/breaches/${reg.id}`)).json()) as Json;
    const part = (admin.tenants as Json[]).find((x) => x.tenantId === a.tenantId)!.part;
    expect(part.persons.notices).toMatchObject({ sent: sentAtCancel, pending: 0, notTold: 30 - sentAtCancel, stoppedAt: cancelled.notices.stoppedAt, stoppedReason: "cancelled" });
  }, 180_000);

  it("stops a batch step already sending after the group of sends it started (at most 8), and every later step sends nothing", async () => {
    t.clock.set("2026-03-09T09:00:10.000Z");
    const a = await t.createTenant("Mid-Step Controller");
    const reg = await breachOf([a], [40], "mid");
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    // A worker with a budget of its own (as a larger ACS resource would allow): its whole batch of 40 may go in one
    // step. On its third notice, the tenant cancels (the cancellation is stored before that send returns).
    const outbox = t.services.email;
    let personSends = 0;
    let cancelStatus = 0;
    const worker: Services = {
      ...t.services,
      settings: { ...t.services.settings, emailSendsPerMinute: 1000, emailSendsPerHour: 100_000 },
      email: {
        send: async (m: EmailMessage): Promise<EmailSendResult> => {
          if (m.messageId.startsWith(`bpn-${short(reg.id)}`) && ++personSends === 3) cancelStatus = (await cancel(a.apiKey, reg.id)).status;
          return outbox.send(m);
        },
      },
    };
    const seen = await drainBreachJobs(t, worker);
    expect(cancelStatus).toBe(200);
    expect(seen["person-batch:stopped"], "the step ended as stopped").toBe(1);
    expect(personSends, "the group of 8 started before the stop was stored, nothing after").toBeLessThanOrEqual(8);
    expect(await noticesOf(reg.id)).toBe(personSends);
    // However far the clock moves, nothing more.
    t.clock.advance({ hours: 6 });
    await runBreachSweep(t.services);
    await drainBreachJobs(t, worker);
    expect(await noticesOf(reg.id)).toBe(personSends);
    const view = await personsOf(a.apiKey, reg.id);
    expect(view.notices).toMatchObject({ sent: personSends, notTold: 40 - personSends, pending: 0, stoppedReason: "cancelled" });
  }, 120_000);

  it("lets the resolution of a run cancelled while it was resolving finish, telling nobody, so the count not told is exact", async () => {
    t.clock.set("2026-03-12T09:00:10.000Z");
    const a = await t.createTenant("Cancelled While Resolving Controller");
    // 25 uploads of one person each: the resolution reads 20 a step, so it takes two.
    const ups: string[] = [];
    for (let u = 0; u < 25; u++) ups.push(await uploadNaming(t, a.apiKey, [`res${u}@subjects.example`], [`rres${u}@recipients.example`]));
    const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: a.tenantId, uploads: ups, personCategories: ["data-subjects"], categories: [] }] }));
    // The sync makes the part; the first resolution step reads 20 uploads.
    const page = async () => (await t.services.breaches.getPart(a.tenantId, reg.id))?.persons?.resolution.page ?? 0;
    for (let i = 0; i < 10 && (await page()) < 1; i++) await workOne();
    const resolving = await personsOf(a.apiKey, reg.id);
    expect(resolving.resolution).toMatchObject({ status: "running", persons: 20 });
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    const res = await cancel(a.apiKey, reg.id);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Json).notices).toMatchObject({ stoppedReason: "cancelled", sent: 0, notTold: 20 });
    // The queue and a day of sweeps: the resolution finishes (a lost step is queued again by the sweep), nobody is told.
    await drainBreachJobs(t);
    await runFor(24, 240);
    const view = await personsOf(a.apiKey, reg.id);
    expect(view.resolution).toMatchObject({ status: "done", persons: 25 });
    expect(view.notices).toMatchObject({ sent: 0, failed: 0, unreachable: 0, pending: 0, notTold: 25, queuedAt: null, batchesQueued: 0 });
    expect(await noticesOf(reg.id), "nobody told").toBe(0);
  }, 120_000);

  it("cancels notices of an earlier version still going on through a later one, after which the later version's instruction works", async () => {
    t.clock.set("2026-03-14T09:00:10.000Z");
    const a = await t.createTenant("Earlier Version Controller");
    const reg = await breachOf([a], [30], "older");
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    await drainBreachJobs(t);
    // Version 2 of the part: the notices of version 1 go on (nobody instructed version 2 yet).
    await newBreachVersion(t, reg);
    expect(await personsOf(a.apiKey, reg.id)).toMatchObject({ version: 1, notices: { sent: 5, pending: 25 } });
    const res = await cancel(a.apiKey, reg.id);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ version: 1, notices: { sent: 5, notTold: 25, stoppedReason: "cancelled" } });
    await runFor(3, 30);
    expect(await noticesOf(reg.id, 1), "nobody more told of version 1").toBe(5);
    // Version 2 is newer: its instruction works, and reaches first the 25 who heard nothing.
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    await runFor(4, 30);
    const v2 = await personsOf(a.apiKey, reg.id);
    expect(v2).toMatchObject({ version: 2, notices: { sent: 30, pending: 0, stoppedReason: null } });
    expect(v2.earlier).toEqual([expect.objectContaining({ version: 1, sent: 5, notTold: 25, reason: "cancelled" })]);
  }, 120_000);

  it("answers 409 when there is nothing to cancel, 404 for a breach that does not affect the caller, never a 500", async () => {
    t.clock.set("2026-03-16T09:00:10.000Z");
    const a = await t.createTenant("Nothing-To-Cancel Controller");
    const other = await t.createTenant("Unaffected Controller");
    const out = await t.createTenant("Taken-Out Controller");
    const reg = await breachOf([a, out], [3, 30], "none");

    // Not instructed: nothing to cancel.
    const notInstructed = await problemOf(await cancel(a.apiKey, reg.id));
    expect(notInstructed).toMatchObject({ status: 409, type: "urn:safedata:problem:conflict", contentType: expect.stringContaining("application/problem+json"), violations: [] });
    // The operation is in the OpenAPI document, with its answers.
    const doc = (await (await t.call("GET", "v1/openapi.json")).json()) as OpenApiDocument;
    const target = targetOf(doc, "DELETE", `/api/v1/breaches/${reg.id}/notify-persons`);
    expect(target.kind === "operation" ? Object.keys(target.ref.op.responses).filter((k) => ["200", "404", "409"].includes(k)).sort() : target).toEqual(["200", "404", "409"]);
    expect(notInstructed.detail).toMatch(/no notices .* instructed/);
    // Every notice done (3 persons, within the minute's budget): nothing to cancel.
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    await drainBreachJobs(t);
    expect((await personsOf(a.apiKey, reg.id)).notices).toMatchObject({ sent: 3, pending: 0 });
    const done = await problemOf(await cancel(a.apiKey, reg.id));
    expect(done).toMatchObject({ status: 409, type: "urn:safedata:problem:conflict" });
    expect(done.detail).toMatch(/done already/);
    expect(await auditOf(a, "breach.persons-notify-cancelled")).toEqual([]);

    // Another tenant's breach, an unknown id: 404 (nothing tells whether it exists).
    expect(await problemOf(await cancel(other.apiKey, reg.id))).toMatchObject({ status: 404, violations: [] });
    expect(await problemOf(await cancel(a.apiKey, "br-0123456789abcdef0123"))).toMatchObject({ status: 404, violations: [] });
    expect((await cancel(a.apiKey, "not-a-breach-id")).status).toBeLessThan(500);

    // Taken out of the scope while its notices were going: they stopped then, nothing to cancel.
    expect((await instruct(out.apiKey, reg.id)).status).toBe(202);
    await drainBreachJobs(t);
    expect((await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { removeFromScope: [out.tenantId] }, { "if-match": reg.etag })).status).toBe(200);
    await drainBreachJobs(t);
    const withdrawn = await problemOf(await cancel(out.apiKey, reg.id));
    expect(withdrawn).toMatchObject({ status: 409, type: "urn:safedata:problem:conflict", violations: [] });
    expect(withdrawn.detail).toMatch(/scope/);
    expect((await personsOf(out.apiKey, reg.id)).notices).toMatchObject({ stoppedReason: "withdrawn", stoppedBy: null });
  }, 120_000);

  it("sends no delay alert for a cancelled run and leaves it out of the sweep's count, where the same run not cancelled gets both", async () => {
    t.clock.set("2026-03-23T09:00:10.000Z");
    const a = await t.createTenant("Cancelled Early Controller");
    const kept = await t.createTenant("Alerted Controller");
    const reg = await breachOf([a, kept], [30, 30], "alert");
    // Both instruct; A cancels before anything was queued (the instruction by mistake).
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    expect((await instruct(kept.apiKey, reg.id)).status).toBe(202);
    expect((await cancel(a.apiKey, reg.id)).status).toBe(200);
    await drainBreachJobs(t);
    await runBreachSweep(t.services);
    await drainBreachJobs(t);
    const backlog = await t.services.breaches.getSendBacklog();
    expect(Object.keys(backlog!.runs), "the sweep counts the part still sending").toContain(`${kept.tenantId}/${reg.id}`);
    expect(Object.keys(backlog!.runs), "not the cancelled one").not.toContain(`${a.tenantId}/${reg.id}`);
    await runFor(2, 60);
    // 30 persons at 10 an hour break the 1-hour bound: the part still sending is alerted, the cancelled one never.
    expect(await alertsOf(reg.id, kept.tenantId), "the run not cancelled is alerted").toBeGreaterThan(0);
    expect(await alertsOf(reg.id, a.tenantId), "no alert for the cancelled run").toBe(0);
    const view = await personsOf(a.apiKey, reg.id);
    expect(view.notices).toMatchObject({ sent: 0, notTold: 30, delayAlert: null, estimatedCompletionAt: null, stoppedReason: "cancelled" });
    expect(await noticesOf(reg.id), "none of A's persons told").toBe((await personsOf(kept.apiKey, reg.id)).notices.sent);
    expect(await auditOf(a, "breach.persons-delay-alert")).toEqual([]);
  }, 120_000);

  it("refuses the same version's instruction after a cancellation, tells the persons again of a newer version, and the report says cancelled in JSON and HTML (en, da)", async () => {
    t.clock.set("2026-03-30T09:00:10.000Z");
    const a = await t.createTenant("Re-Instructing Controller");
    expect((await t.admin("PATCH", `v1/admin/tenants/${a.tenantId}`, { language: "da" })).status).toBe(200);
    const en = await t.createTenant("English Controller");
    const reg = await breachOf([a, en], [20, 20], "again");
    for (const ctl of [a, en]) {
      expect((await instruct(ctl.apiKey, reg.id)).status).toBe(202);
      await drainBreachJobs(t);
      t.clock.advance({ minutes: 1 });
      await runBreachSweep(t.services);
      await drainBreachJobs(t);
      expect((await cancel(ctl.apiKey, reg.id)).status).toBe(200);
    }
    const sentV1 = await noticesOf(reg.id, 1);

    // The same version again: refused, saying why and what would tell them again.
    const refused = await problemOf(await instruct(a.apiKey, reg.id));
    expect(refused).toMatchObject({ status: 409, type: "urn:safedata:problem:conflict" });
    expect(refused.detail).toMatch(/cancelled/);
    expect(refused.detail).toMatch(/newer version/);
    await runFor(1, 30);
    expect(await noticesOf(reg.id, 1), "nobody told of version 1 since").toBe(sentV1);

    // A decision not to tell them, with a public communication instead (Art. 34(3)(c)), is what was done now.
    const decided = await t.call("POST", `v1/breaches/${reg.id}/decision`, { key: en.apiKey, json: { notifyAuthority: true, notifyPersons: false, exemption: "c", reasons: "A public notice on the website instead." } });
    expect(decided.status).toBe(200);

    // The report says the notices were cancelled, in JSON and in the page of each language.
    for (const [ctl, words] of [
      [en, "(cancelled by the controller)"],
      [a, "(annulleret af den dataansvarlige)"],
    ] as const) {
      const res = await t.call("GET", `v1/breaches/${reg.id}/report`, { key: ctl.apiKey });
      expect(res.status).toBe(200);
      const report = (await res.json()) as Json;
      expect(authorityReportSchema.parse(report), "the report holds only fields its OpenAPI schema describes").toEqual(report);
      expect(report.personsInformed.notices).toMatchObject({ version: 1, stoppedReason: "cancelled", pending: 0 });
      expect(report.personsInformed.notices.notTold).toBe(20 - report.personsInformed.notices.sent);
      if (ctl === en) expect(report.personsInformed.conflicts.map((c: Json) => c.code), "cancelled before the decision not to tell: no contradiction").not.toContain("decided-not-told-but-instructed");
      const html = await (await t.call("GET", `v1/breaches/${reg.id}/report`, { key: ctl.apiKey, headers: { accept: "text/html" } })).text();
      expect(html).toContain(words);
      expect(html).not.toMatch(/taken out of the scope|taget ud af omfanget/);
    }

    // A newer version of the breach: its instruction tells the persons again (those not told of version 1 first).
    const patched = await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { measuresTaken: "Every key rotated; the access logs reviewed." }, { "if-match": reg.etag });
    expect(patched.status).toBe(200);
    await drainBreachJobs(t);
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    await runFor(5, 30);
    const v2 = await personsOf(a.apiKey, reg.id);
    expect(v2.version).toBe(2);
    expect(v2.notices).toMatchObject({ sent: 20, pending: 0, stoppedAt: null, stoppedReason: null });
    expect(v2.earlier).toEqual([expect.objectContaining({ version: 1, reason: "cancelled", by: expect.stringMatching(/^key:/), notTold: 20 - (v2.earlier[0].sent as number) })]);
    expect(await noticesOf(reg.id, 2), "version 2 told to this tenant's persons only").toBe(20);
    // The report's earlier notices say why they ended (not who), in JSON and HTML.
    const report = (await (await t.call("GET", `v1/breaches/${reg.id}/report`, { key: a.apiKey })).json()) as Json;
    expect(authorityReportSchema.parse(report)).toEqual(report);
    expect(report.personsInformed.earlierNotices).toEqual([expect.objectContaining({ version: 1, reason: "cancelled" })]);
    expect(report.personsInformed.earlierNotices[0].by, "the report names no key").toBeUndefined();
    const html = await (await t.call("GET", `v1/breaches/${reg.id}/report`, { key: a.apiKey, headers: { accept: "text/html" } })).text();
    expect(html).toContain("(annulleret af den dataansvarlige)");
    // The other tenant, which did not instruct version 2: its version 2 is resolved (nobody told), its cancelled
    // notices of version 1 kept as they ended.
    const other = await personsOf(en.apiKey, reg.id);
    expect(other).toMatchObject({ version: 2, notices: null });
    expect(other.earlier).toEqual([expect.objectContaining({ version: 1, reason: "cancelled" })]);
  }, 180_000);
});
