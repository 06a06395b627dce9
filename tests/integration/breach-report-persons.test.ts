/**
 * The authority report's item (10), "whether and how the persons were told, or why not" (GDPR Art. 33(3), 34), says
 * what was done beside what was decided: the notices the tenant instructed (when, for which version, sent / pending /
 * failed / unreachable) and every public communication recorded (Art. 34(3)(c)). A decision that the stored facts
 * contradict is refused (not telling the persons of a version whose notices were instructed; not notifying the
 * authority after it was notified), and where the facts came after the decision the report names the contradiction
 * instead of repeating the decision. Item (11) says when a notification was recorded only after the deadline, and
 * that an earlier decision not to notify was followed by a notification. The clock is moved, never slept; the test
 * works the breach-jobs queue itself.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { z } from "zod";
import { authorityReportSchema } from "../../shared/http/breach-report-schema";
import type { AuthorityReport } from "../../shared/usecases/breach-report";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { drainBreachJobs, uploadNaming } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";

const HOUR = 3_600_000;
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ queues: false, settings: { EMAIL_SENDS_PER_MINUTE: "1000", EMAIL_SENDS_PER_HOUR: "10000" } });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

async function json(res: Response): Promise<Json> {
  return res.json();
}

// The report's type fits the schema the OpenAPI document gives for it.
const fits: (r: AuthorityReport) => z.input<typeof authorityReportSchema> = (r) => r;
void fits;

/** The JSON report; every field in it is one the OpenAPI schema describes (parsing strips none). */
async function report(apiKey: string, id: string): Promise<Json> {
  const res = await t.call("GET", `v1/breaches/${id}/report`, { key: apiKey });
  expect(res.status).toBe(200);
  const body = await json(res);
  expect(authorityReportSchema.parse(body), "the report holds only fields its OpenAPI schema describes").toEqual(body);
  return body;
}

async function reportHtml(apiKey: string, id: string): Promise<string> {
  const res = await t.call("GET", `v1/breaches/${id}/report`, { key: apiKey, headers: { accept: "text/html" } });
  expect(res.status).toBe(200);
  return res.text();
}

/** The HTML page's item (10): from its heading to item (11)'s. */
function item10(html: string): string {
  return html.slice(html.indexOf("<h2>10."), html.indexOf("<h2>11."));
}

function decide(apiKey: string, id: string, body: Record<string, unknown>): Promise<Response> {
  return t.call("POST", `v1/breaches/${id}/decision`, { key: apiKey, json: body });
}

describe("the authority report says what was done for the persons, and refuses decisions the facts contradict", () => {
  let told: { tenantId: string; apiKey: string };
  let exempt: { tenantId: string; apiKey: string };
  let decidedOnly: { tenantId: string; apiKey: string };
  let id: string;
  let persons: number;

  beforeAll(async () => {
    t.clock.set("2026-05-04T09:00:00.000Z");
    told = await t.createTenant("Told Controller");
    exempt = await t.createTenant("Exempt Controller");
    decidedOnly = await t.createTenant("Decided Controller");
    const a = await uploadNaming(t, told.apiKey, ["t1@subjects.example", "t2@subjects.example", "t3@subjects.example"], ["rt@recipients.example"]);
    const b = await uploadNaming(t, exempt.apiKey, ["e1@subjects.example", "e2@subjects.example"], ["re@recipients.example"]);
    const c = await uploadNaming(t, decidedOnly.apiKey, ["d1@subjects.example"], ["rd@recipients.example"]);
    ({ id } = await registerBreach(
      t,
      breachBody(t, {
        scope: [
          { tenantId: told.tenantId, uploads: [a], personCategories: ["data-subjects"], categories: [] },
          { tenantId: exempt.tenantId, uploads: [b], personCategories: ["data-subjects"], categories: [] },
          { tenantId: decidedOnly.tenantId, uploads: [c], personCategories: ["data-subjects"], categories: [] },
        ],
      }),
    ));
    await drainBreachJobs(t);
    persons = (await json(await t.call("GET", `v1/breaches/${id}/persons`, { key: told.apiKey }))).resolution.persons as number;
    expect(persons).toBe(3);
  }, 60_000);

  it("reports the notices sent without a decision as what happened, not as 'not decided'", async () => {
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: told.apiKey })).status).toBe(202);
    const instructedAt = t.clock.now().toISOString();
    await drainBreachJobs(t);
    const r = await report(told.apiKey, id);
    expect(r.personsInformed, "the report gives the instruction and the counts").toMatchObject({
      decided: false,
      notices: { version: 1, requestedAt: instructedAt, sent: persons, pending: 0, failed: 0, unreachable: 0 },
      publicCommunications: [],
      conflicts: [],
    });
    const html = item10(await reportHtml(told.apiKey, id));
    expect(html).not.toContain("<p>Not decided yet.</p>");
    expect(html).toContain(`${persons} sent, 0 pending, 0 failed, 0 unreachable`);
    expect(html).toContain("No decision is recorded");
  });

  it("refuses a decision not to tell the persons of a version whose notices were instructed, with 409 problem+json saying why", async () => {
    const refused = await decide(told.apiKey, id, { notifyAuthority: true, notifyPersons: false, exemption: "c", reasons: "Too many persons to e-mail." });
    expect(refused.status, "a 'not told' decision after the instruction is refused").toBe(409);
    expect(refused.headers.get("content-type")).toContain("application/problem+json");
    const problem = await json(refused);
    expect(problem.detail).toContain("notices to the persons of version 1 were instructed");
    // Nothing was written: the report still has no decision.
    expect((await report(told.apiKey, id)).personsInformed.decided).toBe(false);
    // Without an exemption too (another instance of the same statement).
    expect((await decide(told.apiKey, id, { notifyAuthority: false, notifyPersons: false, reasons: "Low risk after all." })).status).toBe(409);
    // A decision that agrees with what was done is recorded as before.
    expect((await decide(told.apiKey, id, { notifyAuthority: true, notifyPersons: true, reasons: "High risk: identity fraud." })).status).toBe(200);
    const r = await report(told.apiKey, id);
    expect(r.personsInformed).toMatchObject({ decided: true, notifyPersons: true, decision: { version: 1 }, notices: { sent: persons }, conflicts: [] });
  });

  it("lists every public communication recorded (Art. 34(3)(c)) in JSON and HTML", async () => {
    const publishedAt = new Date(t.clock.now().getTime() - 60_000).toISOString();
    const text = "We lost control of transfer records on 3 May; see <our page> for what to do.";
    const res = await t.call("POST", `v1/breaches/${id}/public-communication`, { key: told.apiKey, json: { text, where: "https://told.example/notice and Politiken", publishedAt } });
    expect(res.status).toBe(200);
    const r = await report(told.apiKey, id);
    expect(r.personsInformed.publicCommunications).toEqual([{ publishedAt, where: "https://told.example/notice and Politiken", text, version: 1 }]);
    const html = item10(await reportHtml(told.apiKey, id));
    expect(html).toContain("https:&#x2F;&#x2F;told.example&#x2F;notice and Politiken");
    expect(html).toContain("see &lt;our page&gt; for what to do.");
    expect(JSON.stringify(r)).not.toContain("subjects.example");
  });

  it("names an exemption (c) without a public communication, and notices instructed after a 'not told' decision, as contradictions", async () => {
    const decided = await decide(exempt.apiKey, id, { notifyAuthority: true, notifyPersons: false, exemption: "c", reasons: "A public notice reaches them sooner." });
    expect(decided.status).toBe(200);
    let r = await report(exempt.apiKey, id);
    expect(r.personsInformed).toMatchObject({ decided: true, notifyPersons: false, exemption: "Art. 34(3)(c)", notices: null, publicCommunications: [] });
    expect(r.personsInformed.conflicts.map((c: Json) => c.code)).toEqual(["exemption-c-without-public-communication"]);
    expect(item10(await reportHtml(exempt.apiKey, id))).toContain("no public communication is recorded");

    // The tenant then instructs the notices after all: the report does not say the persons were not told.
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: exempt.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    r = await report(exempt.apiKey, id);
    expect(r.personsInformed.notices).toMatchObject({ version: 1, sent: 2, pending: 0 });
    expect(r.personsInformed.conflicts.map((c: Json) => c.code)).toEqual(expect.arrayContaining(["decided-not-told-but-instructed"]));
    const html = item10(await reportHtml(exempt.apiKey, id));
    expect(html).toContain("2 sent, 0 pending");
    expect(html).toContain("but notices to them were instructed");
  });

  it("does not say the persons are told by e-mail when the decision says so but no notice was instructed", async () => {
    expect((await decide(decidedOnly.apiKey, id, { notifyAuthority: true, notifyPersons: true, reasons: "High risk." })).status).toBe(200);
    const r = await report(decidedOnly.apiKey, id);
    expect(r.personsInformed).toMatchObject({ decided: true, notifyPersons: true, notices: null });
    expect(r.personsInformed.conflicts.map((c: Json) => c.code)).toEqual(["decided-told-not-instructed"]);
    const html = item10(await reportHtml(decidedOnly.apiKey, id));
    expect(html).not.toContain("They are told by e-mail.");
    expect(html).toContain("no notice to them has been instructed");
    // In Danish, the same, and the JSON's sentence is in the report's language.
    expect((await t.admin("PATCH", `v1/admin/tenants/${decidedOnly.tenantId}`, { language: "da" })).status).toBe(200);
    const da = await report(decidedOnly.apiKey, id);
    expect(da.personsInformed.conflicts[0].message).toContain("der er ikke bestilt nogen underretning af dem");
    const daHtml = await reportHtml(decidedOnly.apiKey, id);
    expect(daHtml).not.toContain("De underrettes via e-mail.");
    expect(daHtml).toContain("Der er ikke bestilt nogen underretning af personerne.");
    expect(daHtml).toContain("<strong>Modstrid:</strong>");
  });
});

describe("notices stopped when the tenant was taken out of the scope", () => {
  it("reports when they stopped and how many persons were not told, in JSON and HTML", async () => {
    t.clock.set("2026-05-20T09:00:00.000Z");
    const out = await t.createTenant("Removed Controller");
    const stays = await t.createTenant("Staying Controller");
    const uo = await uploadNaming(t, out.apiKey, ["o1@subjects.example", "o2@subjects.example"], ["ro@recipients.example"]);
    const us = await uploadNaming(t, stays.apiKey, ["s1@subjects.example"], ["rs@recipients.example"]);
    const reg = await registerBreach(
      t,
      breachBody(t, {
        scope: [
          { tenantId: out.tenantId, uploads: [uo], personCategories: ["data-subjects"], categories: [] },
          { tenantId: stays.tenantId, uploads: [us], personCategories: ["data-subjects"], categories: [] },
        ],
      }),
    );
    await drainBreachJobs(t);
    // Instructed, then taken out of the scope before any notice went (the queue is not worked in between).
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: out.apiKey })).status).toBe(202);
    expect((await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { removeFromScope: [out.tenantId] }, { "if-match": reg.etag })).status).toBe(200);
    await drainBreachJobs(t);
    const r = await report(out.apiKey, reg.id);
    expect(r.personsInformed.notices).toMatchObject({ version: 1, sent: 0, pending: 0, notTold: 2, stoppedAt: expect.any(String) });
    expect(item10(await reportHtml(out.apiKey, reg.id))).toContain("(taken out of the scope), 2 not told");
  });
});

describe("item (11) says what the stored notification facts say", () => {
  let a: { tenantId: string; apiKey: string };
  let b: { tenantId: string; apiKey: string };
  let id: string;
  let ackAt: number;

  beforeAll(async () => {
    t.clock.set("2026-06-01T09:00:00.000Z");
    a = await t.createTenant("Late Recorder");
    b = await t.createTenant("Changed Mind");
    const ua = await uploadNaming(t, a.apiKey, ["l1@subjects.example"], ["rl@recipients.example"]);
    const ub = await uploadNaming(t, b.apiKey, ["m1@subjects.example"], ["rm@recipients.example"]);
    ({ id } = await registerBreach(
      t,
      breachBody(t, {
        scope: [
          { tenantId: a.tenantId, uploads: [ua], personCategories: ["data-subjects"], categories: [] },
          { tenantId: b.tenantId, uploads: [ub], personCategories: ["data-subjects"], categories: [] },
        ],
      }),
    ));
    await drainBreachJobs(t);
    for (const k of [a, b]) expect((await t.call("POST", `v1/breaches/${id}/acknowledge`, { key: k.apiKey })).status).toBe(200);
    ackAt = t.clock.now().getTime();
  }, 60_000);

  it("shows an earlier decision not to notify as followed by the notification, not as standing beside it", async () => {
    expect((await t.call("POST", `v1/breaches/${id}/no-authority-notification`, { key: b.apiKey, json: { reason: "Unlikely to result in a risk." } })).status).toBe(200);
    expect((await report(b.apiKey, id)).notification).toMatchObject({ notNotifiedReason: "Unlikely to result in a risk.", notNotifiedSuperseded: false });
    expect(await reportHtml(b.apiKey, id)).toContain("<p>Not notified: Unlikely to result in a risk.</p>");
    t.clock.advance({ hours: 1 });
    // Notifying after all is allowed: the report must say both, in order.
    expect((await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: b.apiKey, json: { notifiedAt: t.clock.now().toISOString(), method: "online-form" } })).status).toBe(200);
    expect((await report(b.apiKey, id)).notification).toMatchObject({ notNotifiedReason: "Unlikely to result in a risk.", notNotifiedSuperseded: true });
    const html = await reportHtml(b.apiKey, id);
    expect(html).not.toContain("<p>Not notified:");
    expect(html).toContain("was followed by the notification above");
  });

  it("says a notification claiming a time within the 72 hours was recorded only after they passed", async () => {
    t.clock.moveTo(new Date(ackAt + 80 * HOUR));
    const claimed = new Date(ackAt + 10 * HOUR).toISOString();
    expect((await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: a.apiKey, json: { notifiedAt: claimed, method: "e-mail", delayReason: "The form's receipt was filed only now." } })).status).toBe(200);
    const ra = await report(a.apiKey, id);
    expect(ra.notification.notifications).toEqual([expect.objectContaining({ notifiedAt: claimed, late: false, recordedAfterDeadline: true, recordedAt: t.clock.now().toISOString() })]);
    expect(ra.notification.notNotifiedSuperseded).toBe(false);
    expect(await reportHtml(a.apiKey, id)).toContain("recorded only on");
  });

  it("refuses a decision not to notify the authority once a notification is recorded", async () => {
    const refused = await decide(a.apiKey, id, { notifyAuthority: false, notifyPersons: false, reasons: "No risk." });
    expect(refused.status).toBe(409);
    expect(refused.headers.get("content-type")).toContain("application/problem+json");
    expect((await json(refused)).detail).toContain("the authority was notified");
    expect((await report(a.apiKey, id)).personsInformed.decided).toBe(false);
    // Deciding to notify it (what was done) is recorded as before.
    expect((await decide(a.apiKey, id, { notifyAuthority: true, notifyPersons: false, reasons: "Risk, not a high one." })).status).toBe(200);
  });
});

describe("notices of an earlier version", () => {
  it("are reported beside the newest version's, as they stood when that run replaced theirs", async () => {
    t.clock.set("2026-06-10T09:00:00.000Z");
    const ctl = await t.createTenant("Two Phase Controller");
    const up = await uploadNaming(t, ctl.apiKey, ["e1@subjects.example", "e2@subjects.example"], ["re@recipients.example"]);
    const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const first = await report(ctl.apiKey, reg.id);
    expect(first.personsInformed.notices).toMatchObject({ version: 1, sent: 2 });
    expect(first.personsInformed.earlierNotices).toEqual([]);
    // Version 2 of the part, whose notices the tenant instructs: its run replaces version 1's.
    expect((await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { measuresTaken: "The keys were rotated." }, { "if-match": reg.etag })).status).toBe(200);
    await drainBreachJobs(t);
    t.clock.advance({ hours: 1 });
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const r = await report(ctl.apiKey, reg.id);
    expect(r.personsInformed.notices).toMatchObject({ version: 2, sent: 2 });
    expect(r.personsInformed.earlierNotices).toEqual([expect.objectContaining({ version: 1, sent: 2, failed: 0, notTold: 0, reason: "replaced" })]);
    const html = item10(await reportHtml(ctl.apiKey, reg.id));
    expect(html).toContain("for version 2: 2 sent");
    expect(html).toContain("Earlier, notices by e-mail instructed");
    expect(html).toContain("for version 1: 2 sent, 0 failed, 0 unreachable, 0 not told of that version");
  });
});
