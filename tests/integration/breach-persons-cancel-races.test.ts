/**
 * The cancellation of the notices to the persons (DELETE /v1/breaches/{id}/notify-persons) against what runs beside
 * it: a batch step still in its send loop (its counts are recorded after the loop, so counts read at the stop lag),
 * an instruction for a newer version racing it, two instructions at once, a repeated cancellation after a newer
 * version, and a decision to tell the persons after (or before) the notices were cancelled. Races are made
 * deterministic by running the other request between a use case's read and its write (the store's own method,
 * called first); nothing of the code under test is replaced.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { EmailMessage, EmailSendResult } from "../../shared/email/email-sender";
import { authorityReportSchema } from "../../shared/http/breach-report-schema";
import type { Services } from "../../shared/services";
import type { TenantCaller } from "../../shared/usecases/audit-trail";
import { requestPersonNotices } from "../../shared/usecases/breach-persons";
import { runBreachSweep } from "../../shared/usecases/breach-notices";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { cancelNotices, drainBreachJobs, newBreachVersion, instructNotices, noticesInOutbox, personsOf as personsOfBreach, subjectAddresses, uploadNaming } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ queues: false, settings: { EMAIL_SENDS_PER_MINUTE: "5", EMAIL_SENDS_PER_HOUR: "100", BREACH_NOTICE_MAX_HOURS: "72" } });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

type Tenant = { tenantId: string; apiKey: string };
const personsOf = (apiKey: string, id: string): Promise<Json> => personsOfBreach(t, apiKey, id);
const short = (id: string) => id.replace(/^br-/, "");
const noticesOf = (id: string, version?: number) => noticesInOutbox(t, id, version);
const cancel = (apiKey: string, id: string) => cancelNotices(t, apiKey, id);
const instruct = (apiKey: string, id: string) => instructNotices(t, apiKey, id);
const subjects = subjectAddresses;
const callerOf = (tenant: Tenant): TenantCaller => ({ actor: "key:race-test", tenantId: tenant.tenantId, kekVersion: "1", requestId: "race-test" });

async function auditOf(tenant: Tenant, action: string): Promise<Array<{ action: string; details: Json }>> {
  const res = await t.call("GET", "v1/audit?limit=200", { key: tenant.apiKey });
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: Array<{ action: string; details: Json }> }).items.filter((e) => e.action === action);
}

async function breachOf(tenant: Tenant, n: number, tag: string): Promise<{ id: string; etag: string }> {
  const up = await uploadNaming(t, tenant.apiKey, subjects(tag, n), [`r${tag}@recipients.example`]);
  const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: tenant.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }));
  await drainBreachJobs(t);
  return reg;
}

/** Services whose breach store runs `between` once, just before the first part update (after the use case's reads). */
function withBetween(between: () => Promise<unknown>): Services {
  const store = t.services.breaches;
  const breaches = Object.create(store) as typeof store;
  let done = false;
  breaches.updatePart = async (tenantId, breachId, change) => {
    if (!done) {
      done = true;
      await between();
    }
    return store.updatePart(tenantId, breachId, change);
  };
  return { ...t.services, breaches };
}

/** Services whose breach store's first part update loses its first write to `rival` (run after the callback saw the part). */
function losingFirstWrite(rival: () => Promise<unknown>): Services {
  const store = t.services.breaches;
  const breaches = Object.create(store) as typeof store;
  let done = false;
  breaches.updatePart = async (tenantId, breachId, change) => {
    if (!done) {
      done = true;
      // The callback runs on the part as read, then another request writes first: the store reads again and
      // runs the callback again (as updatePart does on an ETag conflict).
      const seen = await store.getPart(tenantId, breachId);
      if (seen) change(seen);
      await rival();
    }
    return store.updatePart(tenantId, breachId, change);
  };
  return { ...t.services, breaches };
}

/** A worker whose budget lets a batch of 40 go in one step; on its `at`-th person notice it runs `during` first. */
function workerWith(id: string, at: number, during: () => Promise<unknown>): { worker: Services; sends: () => number } {
  const outbox = t.services.email;
  let sends = 0;
  const worker: Services = {
    ...t.services,
    settings: { ...t.services.settings, emailSendsPerMinute: 1000, emailSendsPerHour: 100_000 },
    email: {
      send: async (m: EmailMessage): Promise<EmailSendResult> => {
        if (m.messageId.startsWith(`bpn-${short(id)}`) && ++sends === at) await during();
        return outbox.send(m);
      },
    },
  };
  return { worker, sends: () => sends };
}

describe("the cancellation of the notices beside what runs at the same time", () => {
  it("F4: the audit entry of a cancellation during a step's send loop holds no counts that are not settled; the view's counts settle when the step ends", async () => {
    t.clock.set("2026-05-04T09:00:10.000Z");
    const a = await t.createTenant("Mid-Loop Audit Controller");
    const reg = await breachOf(a, 40, "midaudit");
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    let answer: Json = null;
    const { worker, sends } = workerWith(reg.id, 3, async () => {
      const res = await cancel(a.apiKey, reg.id);
      expect(res.status).toBe(200);
      answer = await res.json();
    });
    await drainBreachJobs(t, worker);
    // Two told before the stop was stored, the group begun sent too: the step's counts were not recorded yet.
    expect(sends()).toBeGreaterThan(2);
    expect(answer.notices.sent, "the answer's counts stood as recorded then").toBeLessThan(sends());
    const [entry, ...more] = await auditOf(a, "breach.persons-notify-cancelled");
    expect(more).toEqual([]);
    expect(entry!.details, "ids, version and the stop time only").toEqual({ breachId: reg.id, version: 1, stoppedAt: answer.notices.stoppedAt });
    const settled = await personsOf(a.apiKey, reg.id);
    expect(settled.notices).toMatchObject({ sent: sends(), notTold: 40 - sends(), pending: 0 });
    expect(await noticesOf(reg.id)).toBe(sends());
  }, 120_000);

  it("F9: an earlier run's counts are read from its version's counters, so a step still sending when the run was replaced is counted once it ends", async () => {
    t.clock.set("2026-05-05T09:00:10.000Z");
    const a = await t.createTenant("Replaced Mid-Loop Controller");
    const reg = await breachOf(a, 40, "midrepl");
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    // On the third notice the tenant cancels, the breach gets a version 2 and the sync replaces the cancelled run
    // by version 2's: the earlier run's snapshot is taken while the step is still sending.
    const { worker, sends } = workerWith(reg.id, 3, async () => {
      expect((await cancel(a.apiKey, reg.id)).status).toBe(200);
      await newBreachVersion(t, reg);
    });
    await drainBreachJobs(t, worker);
    const view = await personsOf(a.apiKey, reg.id);
    expect(view.version).toBe(2);
    expect(view.earlier).toEqual([expect.objectContaining({ version: 1, reason: "cancelled", sent: sends(), notTold: 40 - sends() })]);
    const report = (await (await t.call("GET", `v1/breaches/${reg.id}/report`, { key: a.apiKey })).json()) as Json;
    expect(authorityReportSchema.parse(report)).toEqual(report);
    expect(report.personsInformed.earlierNotices).toEqual([expect.objectContaining({ version: 1, sent: sends(), notTold: 40 - sends() })]);
    // The send budget: what the stopped step took and did not use was given back (F9).
    const rate = await t.services.breaches.getSendRate();
    expect(rate?.state.minuteCount, "the budget holds only the notices that went").toBe(sends());
  }, 120_000);

  it("F3: a cancellation stored between an instruction's read and its write is kept as a cancellation (reason, by, at) in the earlier notices", async () => {
    t.clock.set("2026-05-06T09:00:10.000Z");
    const a = await t.createTenant("Racing Cancel Controller");
    const reg = await breachOf(a, 30, "race");
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    await drainBreachJobs(t);
    await newBreachVersion(t, reg);
    let cancelled: Json = null;
    const s = withBetween(async () => {
      const res = await cancel(a.apiKey, reg.id);
      expect(res.status).toBe(200);
      cancelled = await res.json();
    });
    const r = await requestPersonNotices(s, callerOf(a), reg.id);
    expect(r.created).toBe(true);
    expect(r.view.version).toBe(2);
    expect(r.view.earlier).toEqual([
      expect.objectContaining({ version: 1, reason: "cancelled", by: expect.stringMatching(/^key:/), endedAt: cancelled.notices.stoppedAt }),
    ]);
    expect((await personsOf(a.apiKey, reg.id)).earlier).toEqual([expect.objectContaining({ version: 1, reason: "cancelled" })]);
  }, 120_000);

  it("F7: of two instructions at once, one answers 202 (created) and the other 200", async () => {
    t.clock.set("2026-05-07T09:00:10.000Z");
    const a = await t.createTenant("Twice At Once Controller");
    const reg = await breachOf(a, 10, "twice");
    let rival = 0;
    const s = losingFirstWrite(async () => {
      rival = (await instruct(a.apiKey, reg.id)).status;
    });
    const r = await requestPersonNotices(s, callerOf(a), reg.id);
    expect(rival, "the other request was first").toBe(202);
    expect(r.created, "this one found the instruction made").toBe(false);
    expect(await auditOf(a, "breach.persons-notify-requested")).toHaveLength(1);
  }, 120_000);

  it("F8: a cancellation repeated after a newer version replaced the cancelled run says what is true", async () => {
    t.clock.set("2026-05-08T09:00:10.000Z");
    const a = await t.createTenant("Repeated Cancel Controller");
    const reg = await breachOf(a, 30, "repeat");
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    await drainBreachJobs(t);
    const first = await cancel(a.apiKey, reg.id);
    expect(first.status).toBe(200);
    const stoppedAt = ((await first.json()) as Json).notices.stoppedAt as string;
    await newBreachVersion(t, reg);
    const again = await cancel(a.apiKey, reg.id);
    expect(again.status).toBe(409);
    const detail = ((await again.json()) as Json).detail as string;
    expect(detail).not.toMatch(/no notices to the persons were instructed/);
    expect(detail).toContain(`version 1`);
    expect(detail).toContain(stoppedAt);
    expect(detail).toMatch(/version 2/);
    // Once version 2 is instructed, its notices are what a cancellation stops.
    expect((await instruct(a.apiKey, reg.id)).status).toBe(202);
    expect((await cancel(a.apiKey, reg.id)).status).toBe(200);
  }, 120_000);

  it("F2: a decision to tell the persons of a version whose notices were cancelled is named a contradiction, whether made after or before the cancellation", async () => {
    t.clock.set("2026-05-11T09:00:10.000Z");
    const after = await t.createTenant("Decided After Cancel Controller");
    const before = await t.createTenant("Decided Before Cancel Controller");
    expect((await t.admin("PATCH", `v1/admin/tenants/${before.tenantId}`, { language: "da" })).status).toBe(200);
    const decide = (ctl: Tenant, id: string) =>
      t.call("POST", `v1/breaches/${id}/decision`, { key: ctl.apiKey, json: { notifyAuthority: true, notifyPersons: true, reasons: "High risk to the persons." } });
    for (const [ctl, first] of [
      [after, "cancel"],
      [before, "decide"],
    ] as const) {
      const reg = await breachOf(ctl, 20, `dec${first}`);
      expect((await instruct(ctl.apiKey, reg.id)).status).toBe(202);
      await drainBreachJobs(t);
      t.clock.advance({ minutes: 1 });
      await runBreachSweep(t.services);
      await drainBreachJobs(t);
      if (first === "decide") expect((await decide(ctl, reg.id)).status).toBe(200);
      expect((await cancel(ctl.apiKey, reg.id)).status).toBe(200);
      t.clock.advance({ minutes: 1 });
      if (first === "cancel") expect((await decide(ctl, reg.id)).status).toBe(200);
      const report = (await (await t.call("GET", `v1/breaches/${reg.id}/report`, { key: ctl.apiKey })).json()) as Json;
      expect(authorityReportSchema.parse(report)).toEqual(report);
      const conflicts = report.personsInformed.conflicts as Array<{ code: string; message: string }>;
      expect(conflicts.map((c) => c.code), first).toEqual(["decided-told-but-cancelled"]);
      expect(conflicts[0]!.message).toContain(String(report.personsInformed.notices.notTold));
      const html = await (await t.call("GET", `v1/breaches/${reg.id}/report`, { key: ctl.apiKey, headers: { accept: "text/html" } })).text();
      expect(html).toMatch(first === "cancel" ? /were cancelled/ : /blev annulleret/);
      // A newer version, not instructed: the cancelled notices are still what the decision is weighed against (review
      // J1: the report said no notice had ever been instructed).
      await newBreachVersion(t, reg);
      const later = (await (await t.call("GET", `v1/breaches/${reg.id}/report`, { key: ctl.apiKey })).json()) as Json;
      expect(later.personsInformed.notices, first).toBeNull();
      expect((later.personsInformed.conflicts as Array<{ code: string }>).map((c) => c.code), first).toEqual(["decided-told-but-cancelled"]);
    }
  }, 180_000);
});
