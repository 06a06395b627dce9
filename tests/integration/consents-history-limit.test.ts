/**
 * One history (a subject and a purpose) keeps a bounded number of events, because its clock document lists them all
 * and a Cosmos document holds at most 2 MB: a grant beyond MAX_HISTORY_GRANTS is refused with 409, a withdrawal is
 * still recorded (GDPR Art. 7(3): withdrawing must stay as easy as giving), and a refused recording leaves no event
 * behind. The full list is set up by writing the clock directly (recording thousands of events would take minutes).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { MAX_HISTORY_EVENTS, MAX_HISTORY_GRANTS } from "../../shared/domain/consent";
import { clockId } from "../../shared/stores/consent-store";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant("Busy History Co");
  await purposeWithNotice(t, tenant.apiKey, "ads");
  await purposeWithNotice(t, tenant.apiKey, "news");
});
afterAll(async () => {
  await t?.stop();
});

async function eventsOf(subjectId: string): Promise<number> {
  const { resources } = await t.raw.containers.consents.items
    .query({ query: "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @t AND c.type = 'consent-event' AND c.subjectId = @s", parameters: [{ name: "@t", value: tenant.tenantId }, { name: "@s", value: subjectId }] })
    .fetchAll();
  return resources[0] as number;
}

describe("a history's size", () => {
  it("refuses a grant once the history holds the most it keeps, records a withdrawal, and leaves no event of a refused one", async () => {
    const email = "busy.person@subject.example";
    const first = await recordDecision(t, tenant.apiKey, { email, purpose: "ads", decision: "granted", noticeVersion: 1 });
    const subjectId = first.subjectId as string;
    // The history's clock as if it listed MAX_HISTORY_GRANTS events.
    const id = clockId(subjectId, "ads");
    const { resource: clock } = await t.raw.containers.consents.item(id, tenant.tenantId).read();
    const fact = clock.facts[0];
    clock.facts = Array.from({ length: MAX_HISTORY_GRANTS }, (_, i) => ({ ...fact, id: i === 0 ? fact.id : `ce-${String(i).padStart(16, "a")}` }));
    await t.raw.containers.consents.item(id, tenant.tenantId).replace(clock);
    const before = await eventsOf(subjectId);

    const grant = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: { method: "click", requestOrigin: "banner", email, purpose: "ads", decision: "granted", noticeVersion: 1 } });
    expect(grant.status).toBe(409);
    expect(((await grant.json()) as { detail: string }).detail).toContain("a withdrawal or denial is still recorded");
    expect(await eventsOf(subjectId), "the refused grant left no event").toBe(before);

    const withdrawal = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: { method: "click", requestOrigin: "banner", email, purpose: "ads", decision: "withdrawn", noticeVersion: 1 } });
    expect(withdrawal.status).toBe(201);
    expect(await eventsOf(subjectId)).toBe(before + 1);
  });

  it("withdraws `all` for a person one of whose histories is full and withdrawn: the others are withdrawn (Art. 7(3))", async () => {
    const email = "full.history@subject.example";
    const withdrawn = await recordDecision(t, tenant.apiKey, { email, purpose: "ads", decision: "withdrawn", noticeVersion: 1 });
    await recordDecision(t, tenant.apiKey, { email, purpose: "news", decision: "granted", noticeVersion: 1 });
    // The "ads" history full to its bound, its newest event the real withdrawal.
    const id = clockId(withdrawn.subjectId as string, "ads");
    const { resource: clock } = await t.raw.containers.consents.item(id, tenant.tenantId).read();
    const fact = clock.facts.at(-1);
    clock.facts = [...Array.from({ length: MAX_HISTORY_EVENTS - 1 }, (_, i) => ({ ...fact, id: `ce-${String(i).padStart(16, "b")}` })), fact];
    await t.raw.containers.consents.item(id, tenant.tenantId).replace(clock);

    const res = await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email, purpose: "all", method: "click", requestOrigin: "api" } });
    expect(res.status, await res.clone().text()).toBe(201);
    const state = await stateOf(t, tenant.apiKey, email);
    expect(state.states.find((x) => x.purpose === "news")?.decision, "the other consent is withdrawn").toBe("withdrawn");
    expect(state.states.find((x) => x.purpose === "ads")?.decision).toBe("withdrawn");
  });

  it("never answers a withdrawal on a full history with an event that is not the decision in force", async () => {
    const email = "backdated.history@subject.example";
    const grant = await recordDecision(t, tenant.apiKey, { email, purpose: "ads", decision: "granted", noticeVersion: 1 });
    // Full of withdrawals dated before the grant: the grant, recorded first, is still the decision in force.
    const id = clockId(grant.subjectId as string, "ads");
    const { resource: clock } = await t.raw.containers.consents.item(id, tenant.tenantId).read();
    const fact = clock.facts[0];
    const old = "2025-01-01T00:00:00.000Z";
    clock.facts = [fact, ...Array.from({ length: MAX_HISTORY_EVENTS - 1 }, (_, i) => ({ ...fact, id: `ce-${String(i).padStart(16, "c")}`, decision: "withdrawn", givenAt: old }))];
    await t.raw.containers.consents.item(id, tenant.tenantId).replace(clock);

    const res = await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email, purpose: "ads", method: "click", requestOrigin: "api" } });
    expect(res.status, "no success that changes nothing").toBe(409);
    expect((await stateOf(t, tenant.apiKey, email)).states.find((x) => x.purpose === "ads")?.decision).toBe("granted");
  });
});
