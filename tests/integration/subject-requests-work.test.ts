/**
 * The life of data-subject requests after intake, with the test clock: the deadline watch's reminders, escalation and
 * overdue mark (each once; new ones after an extension); the sweep closing unverified requests and re-queuing lost
 * steps; the work queue (a forged, repeated or stale message does nothing; a crash mid-step loses and duplicates
 * nothing; a step that keeps failing needs attention until retried); the per-type work registry (a type without work
 * waits in verified; registered later, the sweep starts it); the key re-wrap job; closed-request retention.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, ADMIN_KEY, type TestApp } from "../helpers/app";
import { eventually } from "../helpers/eventually";
import { sweep } from "../helpers/sweep";
import { createRequest, json, mails, rawRequest, replaceRequest, settledRequest, verificationOf, waitForMails, waitForRequest } from "../helpers/subject-requests";
import { ManualClock } from "../../shared/domain/clock";
import { runDeadlineWatch } from "../../shared/usecases/deadlines";
import { registerRequestWork, runStep, STEP_MAX_ATTEMPTS, unregisterRequestWork } from "../../shared/usecases/subject-request-steps";
import { runSubjectRequestSweep } from "../../shared/usecases/subject-requests";
import { milestoneId } from "../../shared/stores/deadline-store";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };

beforeAll(async () => {
  t = await startTestApp({ clock: new ManualClock("2027-03-01T10:00:00.000Z"), settings: { ALLOW_LOOPBACK_WEBHOOKS: "true" } });
  tenant = await t.createTenant("Acme ApS");
  expect((await t.call("PUT", "v1/webhook", { key: tenant.apiKey, json: { url: "http://127.0.0.1:9/hook" } })).status).toBe(201);
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const used: string[] = [];
const person = () => {
  const email = `worker${++n}.${Date.now()}@example.com`;
  used.push(email);
  return email;
};
const call = (method: string, route: string, body?: unknown) => t.call(method, route, { key: tenant.apiKey, json: body });

async function requested(body: Record<string, unknown> = {}) {
  const email = person();
  const r = await createRequest(t, tenant.apiKey, { subjectEmail: email, ...body });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const [mail] = await waitForMails(t, `dsr-verification-${r.body.id}-`);
  return { id: r.body.id, email, body: r.body, ...verificationOf(mail!) };
}

async function verified(body: Record<string, unknown> = {}) {
  const r = await requested(body);
  expect((await call("POST", `v1/subject-requests/${r.id}/verify`, { code: r.code })).status).toBe(200);
  return r;
}

/** Runs the deadline watch now and lets the notices it queued be sent. */
async function watch() {
  const r = await runDeadlineWatch(t.services);
  t.host.pokeQueues();
  return r;
}

async function auditOf(id: string) {
  const body = await json<{ items: Array<{ action: string; target: { id: string } | null; details: Record<string, unknown> }> }>(await call("GET", "v1/audit?limit=200"));
  return body.items.filter((e) => e.target?.id === id);
}

describe("the deadline watch", () => {
  it("reminds the tenant 7 and 2 days before the due date and marks it overdue when it passes, each once", async () => {
    const r = await requested();
    const dueAt = Date.parse(r.body.dueAt as string);
    await watch();
    expect(await mails(t, `dsr-reminder-${r.id}`)).toHaveLength(0);
    t.clock.set(dueAt - 7 * 86_400_000 + 60_000);
    await watch();
    const [reminder] = await waitForMails(t, `dsr-reminder-${r.id}`);
    expect(reminder!.to).toEqual(["dpo1@controller.example"]);
    expect(reminder!.subject).toBe(`Data-subject request ${r.id} is due on 29 March 2027`);
    expect(reminder!.text).toContain("7 days from now");
    t.clock.set(dueAt - 2 * 86_400_000 + 60_000);
    await watch();
    await waitForMails(t, `dsr-escalation-${r.id}`);
    t.clock.set(dueAt + 60_000);
    await Promise.all([watch(), watch()]);
    const [overdue] = await waitForMails(t, `dsr-overdue-${r.id}`);
    expect(overdue!.subject).toBe(`Overdue: data-subject request ${r.id} was due on 29 March 2027`);
    const list = await json<{ items: Array<{ id: string }> }>(await call("GET", "v1/subject-requests?overdue=true&limit=200"));
    expect(list.items.map((i) => i.id)).toContain(r.id);
    await eventually(async () => expect((await auditOf(r.id)).filter((e) => e.action === "subject-request.overdue")).toHaveLength(1));
    const deliveries = await t.services.webhooks.listDeliveries(tenant.tenantId, { limit: 200 });
    expect(deliveries.items.filter((d) => d.eventType === "subject-request.overdue" && d.body.includes(r.id))).toHaveLength(1);
    // Nothing more, however often the watch runs.
    t.clock.advance({ hours: 1 });
    await watch();
    await watch();
    for (const stage of ["reminder", "escalation", "overdue"]) expect(await mails(t, `dsr-${stage}-${r.id}`), stage).toHaveLength(1);
    // Closing it ends the clock.
    expect((await call("POST", `v1/subject-requests/${r.id}/reject`, { ground: "identity-not-verified", reason: "Never confirmed." })).status).toBe(200);
    await waitForRequest(t, tenant.tenantId, r.id, (d) => d.announced === d.history.length);
  });

  it("after an extension the reminders count down to the new date; a request recorded late gets the overdue mark only", async () => {
    const r = await requested();
    expect((await call("POST", `v1/subject-requests/${r.id}/extend`, { reason: "Complex", until: "2027-05-20" })).status).toBe(200);
    await waitForRequest(t, tenant.tenantId, r.id, (d) => d.announced === d.history.length);
    const base = await t.services.deadlines.get(tenant.tenantId, milestoneId("dsr", r.id, "reminder"));
    expect(base?.status).toBe("cancelled");
    t.clock.set(Date.parse("2027-05-13T22:00:00Z"));
    await watch();
    const [mail] = await waitForMails(t, `dsr-reminder-${r.id}-extended`);
    expect(mail!.text).toContain("20 May 2027");
    expect(mail!.text).toContain("already been extended once");

    const late = await createRequest(t, tenant.apiKey, { subjectEmail: person(), receivedAt: "2027-03-01T10:00:00Z", lateReason: "Lost in a shared inbox." });
    expect(late.status).toBe(201);
    await waitForRequest(t, tenant.tenantId, late.body.id, (d) => d.announced === d.history.length);
    await watch();
    await waitForMails(t, `dsr-overdue-${late.body.id}`);
    expect(await mails(t, `dsr-reminder-${late.body.id}`)).toHaveLength(0);
    expect(await mails(t, `dsr-escalation-${late.body.id}`)).toHaveLength(0);
  });
});

describe("the request sweep", () => {
  it("closes requests unverified after DSR_VERIFY_DAYS (failed ones too) and tells the person; their links then say expired", async () => {
    // Requests of earlier tests whose window is over close first.
    await runSubjectRequestSweep(t.services);
    const r = await requested();
    const failed = await requested();
    for (let i = 0; i < 5; i++) await call("POST", `v1/subject-requests/${failed.id}/verify`, { code: failed.code === "000001" ? "000002" : "000001" });
    t.clock.advance({ days: 13 });
    expect((await runSubjectRequestSweep(t.services)).closed).toBe(0);
    t.clock.advance({ days: 1, minutes: 1 });
    expect((await runSubjectRequestSweep(t.services)).closed).toBeGreaterThanOrEqual(2);
    for (const id of [r.id, failed.id]) {
      const [mail] = await waitForMails(t, `dsr-closed-unverified-${id}`);
      expect(mail!.text).toContain("not confirmed within 14 days");
      expect((await rawRequest(t, tenant.tenantId, id)).status).toBe("closed-unverified");
    }
    const page = await fetch(`${t.api.replace(/\/api$/, "")}${r.path}`);
    expect(page.status).toBe(410);
    expect(await page.text()).toContain("This link no longer works");
    // A second run finds nothing more; health reports the sweep.
    expect((await runSubjectRequestSweep(t.services)).closed).toBe(0);
    const health = await json<{ sweeps: Array<{ name: string; lastFinishedAt: string | null }> }>(await t.call("GET", "health", { key: ADMIN_KEY }));
    expect(health.sweeps.find((s) => s.name === "subject-requests")?.lastFinishedAt).not.toBeNull();
  });

  it("re-queues a step whose message was lost; a crash after storing a code's hash sends a fresh code, and both work", async () => {
    const r = await requested();
    // A resend whose worker died after storing the new code's hash and before the e-mail (and whose message is gone).
    const doc = await settledRequest(t, tenant.tenantId, r.id);
    const lostGen = { ...doc.verification.issued[0]!, gen: 2, codeHash: randomBytes(32).toString("hex"), tokenHash: randomBytes(32).toString("hex"), sentAt: null };
    const step = { name: "verification-email", seq: doc.stepSeq + 1, queuedAt: t.clock.now().toISOString(), attempts: 0, leaseUntil: null, lastError: null, parked: false };
    await replaceRequest(t, doc, {
      ...doc,
      verification: { ...doc.verification, requested: 2, resends: 1, issued: [...doc.verification.issued, lostGen] },
      steps: [step],
      stepSeq: step.seq,
      stepsCheckAt: step.queuedAt,
    });
    expect((await runSubjectRequestSweep(t.services)).requeued).toBe(0);
    t.clock.advance({ minutes: 11 });
    expect((await runSubjectRequestSweep(t.services)).requeued).toBe(1);
    const sent = await waitForMails(t, `dsr-verification-${r.id}-`, 2);
    expect(sent.map((m) => m.messageId)).toEqual([`dsr-verification-${r.id}-1`, `dsr-verification-${r.id}-3`]);
    // The repeated message of a step already done does nothing.
    expect(await runStep(t.services, { tenantId: tenant.tenantId, requestId: r.id, step: "verification-email", seq: step.seq })).toBe("skipped");
    expect(await mails(t, `dsr-verification-${r.id}-`)).toHaveLength(2);
    // The first e-mail's code still works (11 minutes old), as does the fresh one's.
    expect((await call("POST", `v1/subject-requests/${r.id}/verify`, { code: r.code })).status).toBe(200);
  });

  it("a forged message (unknown step, wrong number, another request) does nothing", async () => {
    const r = await requested();
    const before = await waitForRequest(t, tenant.tenantId, r.id, (d) => d.steps.length === 0 && d.announced === d.history.length);
    for (const msg of [
      { tenantId: tenant.tenantId, requestId: r.id, step: "start", seq: 1 },
      { tenantId: tenant.tenantId, requestId: r.id, step: "verification-email", seq: 99 },
      { tenantId: tenant.tenantId, requestId: "dsr-aaaaaaaaaaaaaaaaaaaaaaaaaa", step: "start", seq: 1 },
      { tenantId: "tn-aaaaaaaaaaaaaaaa", requestId: r.id, step: "announce", seq: 1 },
    ]) {
      expect(await runStep(t.services, msg), JSON.stringify(msg)).toBe("skipped");
    }
    const after = await rawRequest(t, tenant.tenantId, r.id);
    expect(after._etag).toBe(before._etag);
  });
});

describe("steps that keep failing", () => {
  it("after STEP_MAX_ATTEMPTS the request needs attention, with the reason, in the overdue view; retry resumes it", async () => {
    const r = await requested();
    const doc = await settledRequest(t, tenant.tenantId, r.id);
    // The request's wrapped data key is damaged in storage: every step that needs it fails.
    const good = doc.dataKey!;
    const bytes = Buffer.from(good.wrapped, "base64");
    bytes[bytes.length - 1]! ^= 1;
    await replaceRequest(t, doc, { ...doc, dataKey: { ...good, wrapped: bytes.toString("base64") } });
    expect((await call("POST", `v1/subject-requests/${r.id}/resend`)).status).toBe(200);
    const stuck = await waitForRequest(t, tenant.tenantId, r.id, (d) => d.status === "needs-attention" && d.announced === d.history.length && d.steps.every((st) => st.parked));
    expect(stuck.attention).toMatchObject({ step: "verification-email", resumeTo: "awaiting-verification" });
    expect(stuck.attention!.reason).toContain(`failed ${STEP_MAX_ATTEMPTS} times (integrity-error)`);
    expect(stuck.steps).toEqual([expect.objectContaining({ name: "verification-email", attempts: STEP_MAX_ATTEMPTS, parked: true })]);
    const overdue = await json<{ items: Array<{ id: string; attention: { reason: string } | null }> }>(await call("GET", "v1/subject-requests?overdue=true&limit=200"));
    expect(overdue.items.find((i) => i.id === r.id)?.attention?.reason).toContain("integrity-error");
    // A parked step is not queued again by the sweep.
    t.clock.advance({ minutes: 30 });
    expect((await runSubjectRequestSweep(t.services)).requeued).toBe(0);
    // Repaired, and retried: it resumes where it was and the e-mail goes out.
    const now = await rawRequest(t, tenant.tenantId, r.id);
    await replaceRequest(t, now, { ...now, dataKey: good });
    const retried = await call("POST", `v1/subject-requests/${r.id}/retry`);
    expect(retried.status).toBe(200);
    expect(await json(retried)).toMatchObject({ status: "awaiting-verification", attention: null });
    await waitForMails(t, `dsr-verification-${r.id}-`, 2);
    expect((await call("POST", `v1/subject-requests/${r.id}/retry`)).status).toBe(409);
    const actions = (await auditOf(r.id)).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["subject-request.needs-attention", "subject-request.resumed"]));
  });
});

describe("the work of each type", () => {
  let failRestriction = true;
  const ran: string[] = [];
  beforeAll(() => {
    registerRequestWork({
      type: "objection",
      first: "record",
      steps: {
        record: async (_s, req) => {
          ran.push(`record:${req.id}`);
          return { next: "finish" };
        },
        finish: async (_s, req) => {
          ran.push(`finish:${req.id}`);
          return { complete: "fulfilled" };
        },
      },
    });
    registerRequestWork({
      type: "restriction",
      first: "mark",
      steps: {
        mark: async () => {
          if (failRestriction) throw new Error("the restriction register is unreachable");
          return { complete: "fulfilled" };
        },
      },
    });
  });

  it("runs a registered type's steps in order, once each, to completed", async () => {
    const r = await verified({ type: "objection", details: { purposes: ["direct-marketing"] } });
    const done = await waitForRequest(t, tenant.tenantId, r.id, (d) => d.status === "completed");
    expect(done.outcome).toBe("fulfilled");
    expect(ran.filter((x) => x.endsWith(r.id))).toEqual([`record:${r.id}`, `finish:${r.id}`]);
    const statuses = done.history.map((h) => h.to);
    expect(statuses).toEqual(["awaiting-verification", "verified", "in-progress", "completed"]);
    await waitForRequest(t, tenant.tenantId, r.id, (d) => d.announced === d.history.length && d.steps.length === 0);
    expect((await auditOf(r.id)).map((e) => e.action)).toEqual(
      expect.arrayContaining(["subject-request.created", "subject-request.verified", "subject-request.in-progress", "subject-request.completed"]),
    );
  });

  it("a module's step that keeps failing needs attention; retry runs it again", async () => {
    const r = await verified({ type: "restriction" });
    const stuck = await waitForRequest(t, tenant.tenantId, r.id, (d) => d.status === "needs-attention");
    expect(stuck.attention).toMatchObject({ step: "work:mark", resumeTo: "in-progress" });
    failRestriction = false;
    expect((await call("POST", `v1/subject-requests/${r.id}/retry`)).status).toBe(200);
    await waitForRequest(t, tenant.tenantId, r.id, (d) => d.status === "completed");
  });

  it("a type without work waits in verified, its deadline running, and starts once its work is registered", async () => {
    // Every type has its work now: this one is taken away for the test, as it was before its work existed.
    const real = unregisterRequestWork("withdraw-consent");
    try {
      const r = await verified({ type: "withdraw-consent" });
      await waitForRequest(t, tenant.tenantId, r.id, (d) => d.steps.length === 0);
      expect(await json(await call("GET", `v1/subject-requests/${r.id}`))).toMatchObject({ status: "verified", waitingFor: "type-support", overdue: false });
      expect((await runSubjectRequestSweep(t.services)).started).toBe(0);
      registerRequestWork({ type: "withdraw-consent", first: "withdraw", steps: { withdraw: async () => ({ complete: "fulfilled" }) } });
      expect((await runSubjectRequestSweep(t.services)).started).toBeGreaterThanOrEqual(1);
      await waitForRequest(t, tenant.tenantId, r.id, (d) => d.status === "completed");
    } finally {
      if (real) registerRequestWork(real);
    }
  });
});

describe("keys and retention", () => {
  it("the key re-wrap job moves request keys to the new KEK version; the fields stay readable", async () => {
    const r = await requested({ type: "erasure", externalId: "rewrap-1" });
    const before = (await rawRequest(t, tenant.tenantId, r.id)).dataKey!.kekVersion;
    const rotated = await json<{ version: string }>(await t.admin("POST", `v1/admin/tenants/${tenant.tenantId}/kek/rotate`));
    expect(rotated.version).not.toBe(before);
    await waitForRequest(t, tenant.tenantId, r.id, (d) => d.dataKey?.kekVersion === rotated.version, "re-wrapped");
    expect(await json(await call("GET", `v1/subject-requests/${r.id}`))).toMatchObject({ externalId: "rewrap-1" });
  });

  it("erases a closed request's personal fields EVIDENCE_RETENTION_YEARS after it closed, keeping the anonymous record", async () => {
    const r = await requested({ type: "rectification", details: { field: "name", value: "Carl" }, externalId: "erase-me" });
    expect((await call("POST", `v1/subject-requests/${r.id}/cancel`, { reason: "Withdrawn by the person." })).status).toBe(200);
    t.clock.advance({ days: 365 * 5 - 10 });
    await sweep(t);
    expect((await rawRequest(t, tenant.tenantId, r.id)).erasedAt).toBeNull();
    t.clock.advance({ days: 12 });
    await sweep(t);
    const erased = await rawRequest(t, tenant.tenantId, r.id);
    expect(erased).toMatchObject({ status: "cancelled", dataKey: null, personal: null, subjectHash: null, externalIdHash: null });
    expect(erased.erasedAt).not.toBeNull();
    const view = await json<Record<string, unknown>>(await call("GET", `v1/subject-requests/${r.id}`));
    expect(view).toMatchObject({ status: "cancelled", subjectEmail: null, details: null, externalId: null, cancellation: { reason: null } });
    expect((await auditOf(r.id)).map((e) => e.action)).toContain("subject-request.erased");
    // The external id is free again; the erased request is not found by it.
    const again = await createRequest(t, tenant.apiKey, { subjectEmail: person(), externalId: "erase-me" });
    expect(again.status).toBe(201);
  });
});

describe("logs", () => {
  it("hold no address of any person a request was about, whatever happened to the requests", () => {
    const text = JSON.stringify(t.logs);
    expect(t.logs.length).toBeGreaterThan(0);
    for (const email of used) expect(text.includes(email), email).toBe(false);
    expect(text).toContain("dsr.step");
  });
});
