/**
 * The persons of a breach, seen from the other sides: the delay alert also goes to the tenant's webhook endpoint as a
 * signed `breach.persons-delayed` event (once per version), the operator's view of the breach shows each tenant part's
 * persons progress (counts only), and the authority report gives the number of persons the resolution found (and the
 * unreachable) beside the register's approximate number, saying which is which. The clock is moved, never slept; the
 * test works the breach-jobs queue itself (the webhook queue is not worked: the deliveries are read as stored).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { runBreachSweep } from "../../shared/usecases/breach-notices";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { drainBreachJobs, uploadNaming } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";

const OPERATOR = "security@processor.example";
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({
    queues: false,
    settings: { EMAIL_SENDS_PER_MINUTE: "10", EMAIL_SENDS_PER_HOUR: "25", BREACH_NOTICE_MAX_HOURS: "1", OPERATOR_CONTACT_EMAIL: OPERATOR, ALLOW_LOOPBACK_WEBHOOKS: "true" },
  });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

async function json(res: Response): Promise<Json> {
  return res.json();
}

async function deliveriesOf(apiKey: string, eventType: string): Promise<Json[]> {
  const res = await t.call("GET", "v1/webhook/deliveries?limit=100", { key: apiKey });
  expect(res.status).toBe(200);
  return ((await json(res)).items as Json[]).filter((d) => d.eventType === eventType);
}

describe("the persons of a breach, seen by the tenant's endpoint, the operator and the authority", () => {
  let delayed: { tenantId: string; apiKey: string };
  let quiet: { tenantId: string; apiKey: string };
  let id: string;
  let resolvedDelayed: number;
  const partOf = (v: Json, tenantId: string) => (v.tenants as Json[]).find((x) => x.tenantId === tenantId)!.part;

  beforeAll(async () => {
    t.clock.set("2026-04-06T09:00:00.000Z");
    delayed = await t.createTenant("Delayed Controller");
    quiet = await t.createTenant("Quiet Controller");
    expect((await t.call("PUT", "v1/webhook", { key: delayed.apiKey, json: { url: `http://127.0.0.1:9/hooks/${delayed.tenantId}` } })).status).toBeLessThan(300);
    const subjects = Array.from({ length: 40 }, (_, j) => `p${j}@subjects.example`);
    const a = await uploadNaming(t, delayed.apiKey, subjects, ["ra@recipients.example"]);
    const b = await uploadNaming(t, quiet.apiKey, ["q1@subjects.example", "q2@subjects.example"], ["rq@recipients.example"]);
    ({ id } = await registerBreach(
      t,
      breachBody(t, {
        scope: [
          { tenantId: delayed.tenantId, uploads: [a], personCategories: ["data-subjects"], categories: [] },
          { tenantId: quiet.tenantId, uploads: [b], personCategories: ["data-subjects"], categories: [] },
        ],
      }),
    ));
    await drainBreachJobs(t);
    resolvedDelayed = (await json(await t.call("GET", `v1/breaches/${id}/persons`, { key: delayed.apiKey }))).resolution.persons as number;
    expect(resolvedDelayed).toBeGreaterThanOrEqual(40);
  }, 60_000);

  it("shows the operator each part's resolution counts before any notice", async () => {

    // (2) Resolved, nothing instructed yet: the operator sees the counts, no notices.
    const admin = await json(await t.admin("GET", `v1/admin/breaches/${id}`));
    expect(partOf(admin, delayed.tenantId).persons, "the operator sees the resolution").toMatchObject({ version: 1, resolution: { status: "done", resolved: resolvedDelayed, unreachable: 0 }, notices: null });
    expect(partOf(admin, quiet.tenantId).persons).toMatchObject({ resolution: { status: "done", resolved: expect.any(Number) }, notices: null });
  });

  it("reports the resolved number of persons and the unreachable beside the approximate one, in JSON and HTML", async () => {
    // (3) The report gives the resolved number beside the approximate one.
    const report = await json(await t.call("GET", `v1/breaches/${id}/report`, { key: delayed.apiKey }));
    expect(report.persons, "the authority report names the resolved number").toMatchObject({ resolved: { version: 1, persons: resolvedDelayed, unreachable: 0 } });
    expect(report.persons).toHaveProperty("approximateNumber");
    const html = await (await t.call("GET", `v1/breaches/${id}/report`, { key: delayed.apiKey, headers: { accept: "text/html" } })).text();
    expect(html).toContain(`Resolved from the records (version 1): ${resolvedDelayed} persons`);
    expect(html).toContain("(estimate)");
  });

  it("emits the delay alert as a signed webhook event to the tenant, once", async () => {
    // (1) The notices break the bound (10 a minute, 25 an hour, 1 hour allowed): the tenant's endpoint is told once.
    expect(await deliveriesOf(delayed.apiKey, "breach.persons-delayed")).toHaveLength(0);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: delayed.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const events = await deliveriesOf(delayed.apiKey, "breach.persons-delayed");
    expect(events, "the delay alert is a webhook event").toHaveLength(1);
    const stored = await t.services.webhooks.getDelivery(delayed.tenantId, events[0]!.id as string);
    const body = JSON.parse(stored!.body) as Json;
    expect(body).toMatchObject({ type: "breach.persons-delayed", data: { tenantId: delayed.tenantId, breachId: id, version: 1, pending: expect.any(Number), estimateAt: expect.any(String), deadlineAt: "2026-04-06T10:00:00.000Z" } });
    expect(stored!.body).not.toContain("@");
    // The sweep checks the estimate again while notices are pending: no second event.
    for (let i = 0; i < 3; i++) {
      t.clock.advance({ minutes: 2 });
      await runBreachSweep(t.services);
      await drainBreachJobs(t);
    }
    expect(await deliveriesOf(delayed.apiKey, "breach.persons-delayed")).toHaveLength(1);
  });

  it("shows the operator sent / pending / failed and the estimate, and nothing personal", async () => {
    // (2) The operator sees sent / pending / failed and the estimate, and nothing personal.
    const admin = await json(await t.admin("GET", `v1/admin/breaches/${id}`));
    const persons = partOf(admin, delayed.tenantId).persons;
    expect(persons.notices).toMatchObject({ sent: 25, pending: resolvedDelayed - 25, failed: 0, unreachable: 0, estimateBreaksDeadline: true, deadlineAt: "2026-04-06T10:00:00.000Z", delayAlertAt: "2026-04-06T09:00:00.000Z" });
    expect(persons.notices.estimatedCompletionAt).toEqual(expect.any(String));
    expect(partOf(admin, quiet.tenantId).persons.notices).toBeNull();
    expect(JSON.stringify(admin)).not.toContain("subjects.example");
  });
});
