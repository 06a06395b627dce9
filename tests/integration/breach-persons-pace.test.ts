/**
 * The pace of the notices to persons: the e-mail service's budgets per minute and per hour are honoured across
 * batches and breaches, the breach shows sent / pending / failed and the estimated completion, the estimate that
 * breaks BREACH_NOTICE_MAX_HOURS alerts the tenant and the operator once (pointing to Art. 34(3)(c)), the public
 * communication is recorded; and a 429 answer's Retry-After from Azure Communication Services (its local fake, through
 * the real ACS adapter) stops all sending until it has passed. The clock is moved, never slept; the test works the
 * queue itself.
 */
import type { TokenCredential } from "@azure/core-auth";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { AcsEmailSender } from "../../shared/email/acs-email-sender";
import type { Services } from "../../shared/services";
import { runBreachSweep } from "../../shared/usecases/breach-notices";
import { startAcsEmailFake, type AcsEmailFake } from "../fakes/acs-email-fake";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { drainBreachJobs, outboxRecipients, uploadNaming } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";

const OPERATOR = "security@processor.example";
let t: TestApp;
let fake: AcsEmailFake;

beforeAll(async () => {
  fake = await startAcsEmailFake({ runningPolls: 0 });
  t = await startTestApp({
    queues: false,
    settings: { EMAIL_SENDS_PER_MINUTE: "10", EMAIL_SENDS_PER_HOUR: "25", BREACH_NOTICE_MAX_HOURS: "1", OPERATOR_CONTACT_EMAIL: OPERATOR },
  });
}, 60_000);
afterAll(async () => {
  await t?.stop();
  await fake?.stop();
});

async function json(res: Response): Promise<Json> {
  return res.json();
}

const personsOf = async (apiKey: string, id: string): Promise<Json> => json(await t.call("GET", `v1/breaches/${id}/persons`, { key: apiKey }));

/** Moves the clock, lets the sweep find what is due, and works the queue. */
async function after(minutes: number, s: Services = t.services): Promise<void> {
  t.clock.advance({ minutes });
  await runBreachSweep(t.services);
  await drainBreachJobs(t, s);
}

/** The most e-mails to persons the outbox shows in any one minute and any one hour (by the service's clock). */
function peaks(sentAt: string[]): { minute: number; hour: number } {
  const count = (key: (s: string) => string) => Math.max(0, ...Object.values(sentAt.reduce<Record<string, number>>((m, s) => ({ ...m, [key(s)]: (m[key(s)] ?? 0) + 1 }), {})));
  return { minute: count((s) => s.slice(0, 16)), hour: count((s) => s.slice(0, 13)) };
}

describe("the pace of the notices", () => {
  it("sends at most 10 a minute and 25 an hour, shows the estimate, alerts once when it breaks the bound, and records a public communication", async () => {
    t.clock.set("2026-03-02T09:00:00.000Z");
    // When each notice reached the e-mail service, by the service's clock.
    const sentAt = new Map<string, string>();
    const send = t.services.email.send.bind(t.services.email);
    t.services.email.send = (m) => {
      if (m.messageId.startsWith("bpn-") && !sentAt.has(m.messageId)) sentAt.set(m.messageId, t.clock.now().toISOString());
      return send(m);
    };
    const { tenantId, apiKey } = await t.createTenant("Paced Controller");
    const ids = [
      await uploadNaming(t, apiKey, Array.from({ length: 30 }, (_, j) => `a${j}@subjects.example`), ["ra@recipients.example"]),
      await uploadNaming(t, apiKey, Array.from({ length: 30 }, (_, j) => `b${j}@subjects.example`), ["rb@recipients.example"]),
    ];
    const { id, etag } = await registerBreach(t, breachBody(t, { scope: [{ tenantId, uploads: ids, personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    // A later version (phased information) does not stop the notices the tenant instructed.
    const patched = await t.admin("PATCH", `v1/admin/breaches/${id}`, { measuresProposed: "Every affected person is offered a credit-monitoring service." }, { "if-match": etag });
    expect(patched.status).toBe(200);
    await drainBreachJobs(t);
    expect((await json(await t.call("GET", `v1/breaches/${id}`, { key: apiKey }))).version).toBe(2);
    expect((await personsOf(apiKey, id)).version).toBe(1);

    // 09:00: the minute's 10.
    let view = await personsOf(apiKey, id);
    expect(view.notices).toMatchObject({ sent: 10, pending: 50, failed: 0, limits: { perMinute: 10, perHour: 25 } });
    // 10 more at 09:01, 5 at 09:02 (the hour's 25 used), 25 in the hour from 10:00, the last 10 at 11:00.
    expect(view.notices.estimatedCompletionAt).toBe("2026-03-02T11:00:00.000Z");
    expect(view.notices.deadlineAt).toBe("2026-03-02T10:00:00.000Z");
    expect(view.notices.estimateBreaksDeadline).toBe(true);
    expect(view.notices.delayAlert).toMatchObject({ at: "2026-03-02T09:00:00.000Z", estimateAt: "2026-03-02T11:00:00.000Z" });
    const alerts = await outboxRecipients(t, "bpd-");
    expect(alerts.map((m) => m.to).sort()).toEqual([OPERATOR, expect.stringMatching(/^dpo\d+@controller\.example$/)].sort());
    expect(alerts.find((m) => m.to === OPERATOR)!.text).toContain("Art. 34(3)(c)");
    expect(alerts[0]!.text).toContain(`POST /api/v1/breaches/${id}/public-communication`);
    const tenantView = await json(await t.call("GET", `v1/breaches/${id}`, { key: apiKey }));
    expect(tenantView.persons.notices).toMatchObject({ sent: 10, pending: 50 });

    // Two minutes on (the sweep's grace for a batch whose delayed message is still on the queue), and so on.
    await after(2);
    expect((await personsOf(apiKey, id)).notices.sent).toBe(20);
    await after(2);
    expect((await personsOf(apiKey, id)).notices.sent).toBe(25);
    await after(2);
    await after(30);
    view = await personsOf(apiKey, id);
    expect(view.notices).toMatchObject({ sent: 25, pending: 35, completedAt: null });
    // The hour's budget is used: the next notices wait for 10:00.
    expect(view.notices.estimatedCompletionAt).toBe("2026-03-02T11:00:00.000Z");
    t.clock.set("2026-03-02T10:01:00.000Z");
    await after(0);
    for (let i = 0; i < 6; i++) await after(2);
    expect((await personsOf(apiKey, id)).notices.sent).toBe(50);
    t.clock.set("2026-03-02T11:01:00.000Z");
    await after(0);
    await after(2);
    view = await personsOf(apiKey, id);
    // The last sweep, which checks the estimate of each fan-out still sending, found nothing pending: it stops checking.
    expect(view.notices).toMatchObject({ sent: 60, pending: 0, failed: 0, estimatedCompletionAt: null, completedAt: "2026-03-02T11:03:00.000Z" });

    const mails = await outboxRecipients(t, "bpn-");
    expect(new Set(mails.map((m) => m.to)).size).toBe(60);
    expect(sentAt.size).toBe(60);
    expect(peaks([...sentAt.values()])).toEqual({ minute: 10, hour: 25 });
    t.services.email.send = send;
    // The alert went once.
    expect(await outboxRecipients(t, "bpd-")).toHaveLength(2);

    // Art. 34(3)(c): the public communication, recorded on the breach; one published in the future is refused.
    const bad = await t.call("POST", `v1/breaches/${id}/public-communication`, { key: apiKey, json: { text: "Notice", where: "https://controller.example/notice", publishedAt: "2027-01-01T00:00:00Z" } });
    expect(bad.status).toBe(422);
    const text = "On 2 March we learnt that transfer records were read by an unknown party. What happened, which data, what we do, whom to contact.";
    const ok = await t.call("POST", `v1/breaches/${id}/public-communication`, { key: apiKey, json: { text, where: "https://controller.example/breach-notice and Politiken, 3 March", publishedAt: t.clock.now().toISOString() } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Json).publicCommunications).toEqual([expect.objectContaining({ text, where: "https://controller.example/breach-notice and Politiken, 3 March", version: 2 })]);
    const audit = ((await json(await t.call("GET", "v1/audit?limit=200", { key: apiKey }))).items as Array<{ action: string }>).map((e) => e.action);
    expect(audit.filter((a) => a === "breach.persons-delay-alert")).toHaveLength(1);
    expect(audit.filter((a) => a === "breach.public-communication")).toHaveLength(1);
  }, 120_000);

  it("honours Azure Communication Services' 429 Retry-After: nothing is sent until it has passed", async () => {
    t.clock.set("2026-03-03T09:00:00.000Z");
    const credential: TokenCredential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const acs: Services = {
      ...t.services,
      email: new AcsEmailSender(fake.url, credential, "DoNotReply@notify.safedata.example", { pollIntervalMs: 1, clientOptions: { tlsOptions: { ca: fake.ca }, retryOptions: { maxRetries: 0 } } }),
    };
    const { tenantId, apiKey } = await t.createTenant("Throttled Controller");
    const upload = await uploadNaming(t, apiKey, ["x1@subjects.example", "x2@subjects.example", "x3@subjects.example"], ["xr@recipients.example"]);
    const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId, uploads: [upload], categories: [] }] }));
    await drainBreachJobs(t, acs);
    fake.reset();
    // The service throttles the first notice and asks for 5 minutes.
    fake.rejectNextSend(429, "TooManyRequests", 300);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: apiKey })).status).toBe(202);
    await drainBreachJobs(t, acs);
    const sends = () => fake.requests.filter((r) => r.method === "POST").length;
    const throttled = sends();
    expect(fake.requests.filter((r) => r.status === 429)).toHaveLength(1);
    let view = await personsOf(apiKey, id);
    expect(view.notices.sent + view.notices.pending).toBe(4);
    expect(view.notices.pending).toBeGreaterThanOrEqual(1);
    expect(view.notices.failed).toBe(0);
    // Not before 09:05: the estimate waits for it, and the sweep finds nothing to send at 09:04.
    expect(view.notices.estimatedCompletionAt).toBe("2026-03-03T09:05:00.000Z");
    await after(4, acs);
    expect(sends()).toBe(throttled);
    // Past it (and the sweep's grace): the rest go, each once.
    await after(3, acs);
    view = await personsOf(apiKey, id);
    expect(view.notices).toMatchObject({ sent: 4, pending: 0, failed: 0 });
    expect(new Set(fake.delivered.map((m) => m.to[0])).size).toBe(4);
    expect(fake.delivered.filter((m) => m.subject.includes("Throttled Controller"))).toHaveLength(4);
  }, 60_000);
});
