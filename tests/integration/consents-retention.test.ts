/**
 * Consent evidence over time: kept while the consent is in force, then CONSENT_EVIDENCE_YEARS (3) after it ended,
 * then erased by the retention sweep with a receipt (and the subject's key with its last history); recordings a
 * crash left half-done are finished or undone by the sweep; a KEK rotation re-wraps subject keys and link secrets.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { decisionOf, purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { eventually } from "../helpers/eventually";
import { sweep } from "../helpers/sweep";
import { refreshClock } from "../../shared/usecases/consents";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
const T0 = Date.parse("2026-06-01T08:00:00.000Z");
const YEAR3 = Date.parse("2029-06-01T08:00:00.000Z") - T0;

beforeAll(async () => {
  t = await startTestApp();
  t.clock.set(T0);
  tenant = await t.createTenant("Retention Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
  await purposeWithNotice(t, tenant.apiKey, "offers");
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `kept.person.${++n}@subject.example`;

const docsOf = async (type: string, where = "") =>
  (
    await t.raw.containers.consents.items
      .query({ query: `SELECT * FROM c WHERE c.tenantId = @t AND c.type = @type ${where}`, parameters: [{ name: "@t", value: tenant.tenantId }, { name: "@type", value: type }] })
      .fetchAll()
  ).resources as Array<Record<string, unknown> & { id: string; subjectId?: string; purposeKey?: string }>;

/** A stored document without the fields Cosmos DB adds, to create a copy of it. */
const withoutSystemFields = (d: Record<string, unknown>) => Object.fromEntries(Object.entries(d).filter(([k]) => !k.startsWith("_")));

const auditOf = async (action: string) =>
  (
    await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = @a ORDER BY c.seq ASC", parameters: [{ name: "@t", value: tenant.tenantId }, { name: "@a", value: action }] })
      .fetchAll()
  ).resources as Array<{ seq: number; target: { id: string }; details: Record<string, unknown> }>;

describe("consent evidence retention", () => {
  it("keeps a history while the consent is in force, and 3 years after it ended; then erases it with a receipt", async () => {
    t.clock.set(T0);
    const ended = person();
    const inForce = person();
    const both = person();
    const regranted = person();
    await recordDecision(t, tenant.apiKey, { email: ended, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email: inForce, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    for (const purpose of ["newsletter", "offers"]) await recordDecision(t, tenant.apiKey, { email: both, purpose, noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email: regranted, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const endedSubject = (await stateOf(t, tenant.apiKey, ended)).subjectId!;
    const bothSubject = (await stateOf(t, tenant.apiKey, both)).subjectId!;
    const linkRes = await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email: ended, purpose: "newsletter" } });
    const link = (await linkRes.json()) as { path: string };

    const T1 = T0 + 86_400_000;
    t.clock.set(T1);
    expect((await fetch(`${t.api.replace(/\/api$/, "")}${link.path}`, { method: "POST" })).status).toBe(200);
    await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email: both, purpose: "offers" } });
    await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email: regranted, purpose: "newsletter" } });
    // A new grant two years on stops the clock again.
    t.clock.set(T1 + 2 * 365 * 86_400_000);
    await recordDecision(t, tenant.apiKey, { email: regranted, purpose: "newsletter", noticeVersion: 1, decision: "granted" });

    // A day before the end of the evidence period: nothing goes.
    t.clock.set(T1 + YEAR3 - 86_400_000);
    await sweep(t);
    expect(await decisionOf(t, tenant.apiKey, ended, "newsletter")).toBe("withdrawn");
    expect((await stateOf(t, tenant.apiKey, both)).states).toHaveLength(2);

    t.clock.set(T1 + YEAR3 + 60_000);
    await sweep(t);
    // The ended history is gone, and with it the subject (its key and address) and its link records.
    expect(await stateOf(t, tenant.apiKey, ended)).toEqual({ subjectId: null, states: [], history: [] });
    expect((await docsOf("consent-event")).filter((e) => e.subjectId === endedSubject)).toEqual([]);
    expect((await docsOf("consent-subject")).filter((x) => x.subjectId === endedSubject)).toEqual([]);
    expect((await docsOf("consent-link-use")).filter((x) => x.subjectId === endedSubject)).toEqual([]);
    // A subject with another history in force keeps it, and its key; only the ended purpose goes.
    const bothNow = await stateOf(t, tenant.apiKey, both);
    expect(bothNow.subjectId).toBe(bothSubject);
    expect(bothNow.states.map((x) => [x.purpose, x.decision])).toEqual([["newsletter", "granted"]]);
    // In force: kept, however long.
    expect(await decisionOf(t, tenant.apiKey, inForce, "newsletter")).toBe("granted");
    expect(await decisionOf(t, tenant.apiKey, regranted, "newsletter")).toBe("granted");
    expect((await stateOf(t, tenant.apiKey, regranted)).history).toHaveLength(3);

    const erased = await auditOf("consent.evidence-erased");
    expect(erased.map((e) => [e.target.id, e.details.purposeKey, e.details.events])).toEqual(
      expect.arrayContaining([
        [endedSubject, "newsletter", 2],
        [bothSubject, "offers", 2],
      ]),
    );
    expect(erased).toHaveLength(2);
    const receipts = (await auditOf("retention.receipt")).filter((r) => r.details.class === "consent-evidence");
    expect(receipts).toHaveLength(1);
    expect(receipts[0]!.details).toMatchObject({ count: 4, histories: 2, idsTruncated: false });
    // The retention view shows the class and the receipt.
    const view = (await (await t.call("GET", "v1/retention", { key: tenant.apiKey })).json()) as { policies: Array<{ class: string }>; receipts: Array<{ count: number }> };
    expect(view.policies.map((p) => p.class)).toContain("consent-evidence");
    // The audit log, which stays, still verifies.
    expect(((await (await t.call("GET", "v1/audit/verify", { key: tenant.apiKey })).json()) as { valid: boolean }).valid).toBe(true);

    // A later sweep erases nothing more, and writes no second receipt.
    t.clock.set(T1 + YEAR3 + 2 * 3_600_000);
    await sweep(t);
    expect(await auditOf("consent.evidence-erased")).toHaveLength(2);
    t.clock.set(T0);
  });
});

describe("what a crash leaves", () => {
  it("an event whose audit entry was written but not noted is finished; one never logged is removed", async () => {
    t.clock.set(T0);
    const email = person();
    const e = await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted" });
    // The request died after the audit entry, before noting it on the event.
    await t.raw.containers.consents.item(e.id, tenant.tenantId).patch([{ op: "set", path: "/audit", value: null }]);
    // Another died before its entry: a copy of the event under another id, never logged.
    const { resource } = await t.raw.containers.consents.item(e.id, tenant.tenantId).read<Record<string, unknown>>();
    const orphanId = "ce-orphanorphanorph";
    await t.raw.containers.consents.items.create({ ...withoutSystemFields(resource!), id: orphanId, decision: "denied" });
    // A third died after its history's clock counted it, before its entry: the clock is left with nothing recorded.
    const lonelyId = "ce-lonelylonelylone";
    await t.raw.containers.consents.items.create({ ...withoutSystemFields(resource!), id: lonelyId, purposeKey: "newsletter", decision: "denied" });
    await refreshClock(t.services, tenant.tenantId, e.subjectId, "newsletter");
    expect((await stateOf(t, tenant.apiKey, email)).history, "none counts until settled").toHaveLength(0);

    t.clock.set(T0 + 30 * 60_000);
    await sweep(t);
    expect((await stateOf(t, tenant.apiKey, email)).history, "left alone for an hour").toHaveLength(0);

    t.clock.set(T0 + 2 * 3_600_000);
    await sweep(t);
    const s = await stateOf(t, tenant.apiKey, email);
    expect(s.history.map((x) => [x.id, x.audit.seq])).toEqual([[e.id, e.audit.seq]]);
    expect(s.states[0]!.decision).toBe("granted");
    expect((await docsOf("consent-event")).map((x) => x.id)).not.toContain(orphanId);
    expect((await docsOf("consent-event")).map((x) => x.id)).not.toContain(lonelyId);
    // Its clock, left with no event, goes at the next sweep, with nothing to erase and nothing in the log.
    await sweep(t);
    expect((await docsOf("consent-clock")).filter((c) => c.subjectId === e.subjectId).map((c) => c.purposeKey)).toEqual(["offers"]);
    expect((await auditOf("consent.evidence-erased")).filter((x) => x.target.id === e.subjectId)).toEqual([]);
    expect(await decisionOf(t, tenant.apiKey, email, "offers")).toBe("granted");
    t.clock.set(T0);
  });

  it("a subject whose first recording died is removed an hour on; one with events is kept", async () => {
    t.clock.set(T0);
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted" });
    const subjects = await docsOf("consent-subject");
    await t.raw.containers.consents.items.create({ ...withoutSystemFields(subjects[0]!), id: `subject:${"f".repeat(64)}`, lookup: "f".repeat(64), subjectId: "cs-unconfirmedabcde", unconfirmedSince: new Date(T0).toISOString() });
    // A real subject marked unconfirmed (its clearing failed) keeps everything.
    const real = (await stateOf(t, tenant.apiKey, email)).subjectId!;
    const realDoc = subjects.find((x) => x.subjectId === real)!;
    await t.raw.containers.consents.item(realDoc.id, tenant.tenantId).patch([{ op: "set", path: "/unconfirmedSince", value: new Date(T0).toISOString() }]);

    t.clock.set(T0 + 2 * 3_600_000);
    await sweep(t);
    const after = await docsOf("consent-subject");
    expect(after.map((x) => x.subjectId)).not.toContain("cs-unconfirmedabcde");
    expect(after.find((x) => x.subjectId === real)).toMatchObject({ unconfirmedSince: null, erasing: null });
    expect(await decisionOf(t, tenant.apiKey, email, "offers")).toBe("granted");
    t.clock.set(T0);
  });
});

describe("a subject being removed", () => {
  it("keeps its key and history when a new decision arrives while it is marked: the recording clears the mark", async () => {
    t.clock.set(T0);
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "denied" });
    const subjectId = (await stateOf(t, tenant.apiKey, email)).subjectId!;
    const doc = (await docsOf("consent-subject")).find((x) => x.subjectId === subjectId)!;
    // The sweep marked it (its last history is due) and was about to check it has no events.
    await t.raw.containers.consents.item(doc.id, tenant.tenantId).patch([{ op: "set", path: "/erasing", value: { since: new Date(T0).toISOString() } }]);
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const after = (await docsOf("consent-subject")).find((x) => x.subjectId === subjectId);
    expect(after, "the same subject, with the same key").toMatchObject({ erasing: null, dataKey: doc.dataKey });
    t.clock.set(T0 + 2 * 3_600_000);
    await sweep(t);
    expect((await stateOf(t, tenant.apiKey, email)).subjectId).toBe(subjectId);
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("granted");
    t.clock.set(T0);
  });
});

describe("key rotation", () => {
  it("re-wraps subject keys and link secrets onto the new KEK; proofs and links keep working", async () => {
    t.clock.set(T0);
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", userAgent: "UA/rotation" });
    const link = (await (await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email, purpose: "newsletter" } })).json()) as { path: string };
    const rotated = await t.admin("POST", `v1/admin/tenants/${tenant.tenantId}/kek/rotate`);
    expect(rotated.status).toBe(202);
    const { version } = (await rotated.json()) as { version: string };
    t.host.pokeQueues();
    await eventually(async () => {
      const subjects = await docsOf("consent-subject");
      expect(subjects.every((x) => (x.dataKey as { kekVersion: string }).kekVersion === version)).toBe(true);
      const [secrets] = await docsOf("consent-link-secrets");
      expect((secrets!.secrets as Array<{ sealed: { kekVersion: string } }>).every((x) => x.sealed.kekVersion === version)).toBe(true);
    }, 30_000);
    const proof = (await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" } })).json()) as { events: Array<{ evidence: { userAgent: string } }> };
    expect(proof.events[0]!.evidence.userAgent).toBe("UA/rotation");
    expect((await fetch(`${t.api.replace(/\/api$/, "")}${link.path}`, { method: "POST" })).status).toBe(200);
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("withdrawn");
    const rewrapped = await auditOf("key.rewrapped");
    expect(rewrapped.reduce((sum, e) => sum + Number(e.details.consentSubjects ?? 0), 0)).toBeGreaterThan(0);
  });
});
