/**
 * Notices to persons that must stop: a tenant taken out of the breach's scope tells nobody more, gets no delay alert
 * and shows what was not told; batches of a stopped run, or of a version a later instruction replaced, are closed,
 * so the sweep's catch-up for lost batches (the oldest due first, a page at a time) is never filled with batches that
 * will never be worked. The clock is moved, never slept; the test works the breach-jobs queue itself.
 */
import { afterAll, beforeAll, describe, it, jest } from "@jest/globals";
import { BreachStore } from "../../shared/stores/breach-store";
import { runBreachSweep } from "../../shared/usecases/breach-notices";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { drainBreachJobs, outboxMessageIds, runBreachJob, uploadNaming, personsOf as personsOfBreach } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";

const OPERATOR = "security@processor.example";
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({
    queues: false,
    settings: { EMAIL_SENDS_PER_MINUTE: "5", EMAIL_SENDS_PER_HOUR: "10", BREACH_NOTICE_MAX_HOURS: "72", OPERATOR_CONTACT_EMAIL: OPERATOR },
  });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

const personsOf = (apiKey: string, id: string): Promise<Json> => personsOfBreach(t, apiKey, id);

async function batchesOf(tenantId: string): Promise<Array<{ version: number; state: string }>> {
  const { resources } = await t.raw.containers.breaches.items
    .query({ query: "SELECT c.version, c.state FROM c WHERE c.tenantId = @t AND c.type = 'breach-person-batch'", parameters: [{ name: "@t", value: tenantId }] })
    .fetchAll();
  return resources;
}

const noticesTo = async (id: string) => (await outboxMessageIds(t, "bpn-")).filter((m) => m.includes(id.replace(/^br-/, "")));

describe("notices to persons that stop", () => {
  it("stop for a tenant taken out of the scope: nobody more is told, no delay alert, the view says who was not told", async () => {
    t.clock.set("2026-05-04T09:00:30.000Z");
    const out = await t.createTenant("Withdrawn Controller");
    const kept = await t.createTenant("Kept Controller");
    const a = await uploadNaming(t, out.apiKey, Array.from({ length: 30 }, (_, j) => `w${j}@subjects.example`), ["rw@recipients.example"]);
    const b = await uploadNaming(t, kept.apiKey, ["k1@subjects.example"], ["rk@recipients.example"]);
    const reg = await registerBreach(
      t,
      breachBody(t, {
        scope: [
          { tenantId: out.tenantId, uploads: [a], personCategories: ["data-subjects"], categories: [] },
          { tenantId: kept.tenantId, uploads: [b], personCategories: ["data-subjects"], categories: [] },
        ],
      }),
    );
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: out.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const before = await personsOf(out.apiKey, reg.id);
    expect(before.notices).toMatchObject({ sent: 5, pending: 25, stoppedAt: null, notTold: 0, delayAlert: null });
    expect(before.notices.estimatedCompletionAt).not.toBeNull();

    // The operator takes the tenant out of the scope.
    const res = await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { removeFromScope: [out.tenantId] }, { "if-match": reg.etag });
    expect(res.status).toBe(200);
    await drainBreachJobs(t);
    // Three days on: every minute's and hour's budget would have allowed the rest, and the estimate's bound is past.
    for (let h = 0; h < 75; h += 5) {
      t.clock.advance({ hours: 5 });
      await runBreachSweep(t.services);
      await drainBreachJobs(t);
    }
    expect(await noticesTo(reg.id), "nobody more was told").toHaveLength(5);
    expect((await outboxMessageIds(t, "bpd-")).filter((m) => m.includes(reg.id.replace(/^br-/, ""))), "no delay alert").toEqual([]);
    const after = await personsOf(out.apiKey, reg.id);
    expect(after.notices).toMatchObject({ sent: 5, pending: 0, notTold: 25, estimatedCompletionAt: null, estimateBreaksDeadline: false, delayAlert: null });
    expect(after.notices.stoppedAt).not.toBeNull();
    // The operator's view says the same (counts and times only).
    const admin = (await (await t.admin("GET", `v1/admin/breaches/${reg.id}`)).json()) as Json;
    const part = (admin.tenants as Json[]).find((x) => x.tenantId === out.tenantId)!.part;
    expect(part.persons.notices).toMatchObject({ sent: 5, pending: 0, notTold: 25, stoppedAt: after.notices.stoppedAt, estimatedCompletionAt: null });
    expect((await batchesOf(out.tenantId)).every((x) => x.state !== "pending"), "no batch of the stopped run left to pick").toBe(true);
  }, 120_000);

  it("close the batches of a version a later instruction replaced, so the sweep's catch-up never picks them again", async () => {
    const ctl = await t.createTenant("Phased Controller");
    const ups: string[] = [];
    for (let u = 0; u < 3; u++) ups.push(await uploadNaming(t, ctl.apiKey, Array.from({ length: 90 }, (_, j) => `v${u}-${j}@subjects.example`), [`r${u}@recipients.example`]));
    const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: ups, personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    expect((await batchesOf(ctl.tenantId)).filter((x) => x.version === 1 && x.state === "pending").length).toBeGreaterThan(0);

    // A new phase of information (Art. 33(4)): version 2 of the tenant's part, whose notices the tenant instructs.
    const res = await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { measuresTaken: "Every key rotated; the storage account's access logs reviewed." }, { "if-match": reg.etag });
    expect(res.status).toBe(200);
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    t.clock.advance({ minutes: 10 });
    await runBreachSweep(t.services);
    const seen = await drainBreachJobs(t);
    expect(seen["person-batch:stopped"], "the replaced version's batches closed").toBeGreaterThan(0);
    const v1 = (await batchesOf(ctl.tenantId)).filter((x) => x.version === 1);
    expect(v1.every((x) => x.state !== "pending"), "no batch of version 1 left to pick").toBe(true);
    // The sweep's catch-up finds only batches that will be worked: version 2's.
    const due = await t.services.breaches.findDueBatchesAcrossTenants(new Date(t.clock.now().getTime() + 3_600_000), t.clock.now(), 500);
    expect(due.filter((d) => d.tenantId === ctl.tenantId).every((d) => d.version === 2)).toBe(true);
  }, 120_000);

  it("let a batch woken with no budget left wait for the next window without reading its persons", async () => {
    t.clock.set("2026-07-01T10:00:10.000Z");
    const ctl = await t.createTenant("Waiting Controller");
    const up = await uploadNaming(t, ctl.apiKey, Array.from({ length: 90 }, (_, j) => `q${j}@subjects.example`), ["rq@recipients.example"]);
    const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    expect((await personsOf(ctl.apiKey, reg.id)).notices.sent).toBe(5);
    // The next minute: another batch (of any breach) took the whole minute's budget first.
    t.clock.advance({ minutes: 1 });
    const rate = await t.services.breaches.getSendRate();
    const minuteStart = new Date(Math.floor(t.clock.now().getTime() / 60_000) * 60_000).toISOString();
    expect(await t.services.breaches.saveSendRate({ ...rate!.state, minuteStart, minuteCount: 5 }, rate!.etag)).toBe(true);
    const reads = jest.spyOn(BreachStore.prototype, "getPerson");
    const outcome = await runBreachJob(t.services, { kind: "person-batch", breachId: reg.id, tenantId: ctl.tenantId, version: 1, batch: "0.0" });
    const personReads = reads.mock.calls.length;
    reads.mockRestore();
    expect(outcome).toBe("waiting-for-budget");
    expect(personReads, "no person read for a batch that cannot send").toBe(0);
    // Its due time moved to the next window: a duplicate message ends at once, and the sweep's catch-up leaves it.
    const batch = await t.services.breaches.getBatch(ctl.tenantId, reg.id, 1, "0.0");
    expect(Date.parse(batch!.nextAttemptAt)).toBeGreaterThan(t.clock.now().getTime());
    expect(await runBreachJob(t.services, { kind: "person-batch", breachId: reg.id, tenantId: ctl.tenantId, version: 1, batch: "0.0" })).toBe("waiting");
    const due = await t.services.breaches.findDueBatchesAcrossTenants(t.clock.now(), t.clock.now(), 500);
    expect(due.filter((d) => d.tenantId === ctl.tenantId)).toEqual([]);
  });

  it("estimate a breach's last notice behind its share of the notices pending across breaches (one send budget), never a small one behind all", async () => {
    t.clock.set("2026-08-03T10:00:10.000Z");
    const big = await t.createTenant("Big Backlog Controller");
    const second = await t.createTenant("Second Backlog Controller");
    const tiny = await t.createTenant("Tiny Backlog Controller");
    const breachOf = async (ctl: { tenantId: string; apiKey: string }, n: number, tag: string) => {
      const up = await uploadNaming(t, ctl.apiKey, Array.from({ length: n }, (_, j) => `${tag}${j}@subjects.example`), [`r${tag}@recipients.example`]);
      return (await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }))).id;
    };
    const first = await breachOf(big, 30, "big");
    const other = await breachOf(second, 20, "sec");
    const small = await breachOf(tiny, 1, "tiny");
    await drainBreachJobs(t);
    for (const [id, ctl] of [[first, big], [other, second], [small, tiny]] as const) {
      expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
      await drainBreachJobs(t);
    }
    const alone = await personsOf(second.apiKey, other);
    expect(alone.notices).toMatchObject({ sent: 0, pending: 20 });
    // The sweep counts what is pending across every breach (25 + 20 + 1 in three runs) at 5 a minute and 10 an hour:
    // the second waits behind its share (20 × 3, at most the 46 in all), later than its own 20 alone; the one-person
    // breach behind 3 at most, so not hours away.
    await runBreachSweep(t.services);
    const behind = await personsOf(second.apiKey, other);
    expect(Date.parse(behind.notices.estimatedCompletionAt) - Date.parse(alone.notices.estimatedCompletionAt), "behind the others' notices").toBeGreaterThanOrEqual(3_600_000);
    const one = await personsOf(tiny.apiKey, small);
    expect(Date.parse(one.notices.estimatedCompletionAt), "one notice is not estimated behind all of them").toBeLessThan(Date.parse("2026-08-03T11:01:00Z"));
    expect(JSON.stringify(behind), "no other tenant's number or name").not.toContain(big.tenantId);
  });

  it("leave batches of persons resolved but never instructed out of the sweep's catch-up for lost batches", async () => {
    const ctl = await t.createTenant("Never Instructing Controller");
    const up = await uploadNaming(t, ctl.apiKey, Array.from({ length: 50 }, (_, j) => `ni${j}@subjects.example`), ["rni@recipients.example"]);
    await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await batchesOf(ctl.tenantId)).map((b) => b.state)).toEqual(["resolved"]);
    t.clock.advance({ hours: 2 });
    const due = await t.services.breaches.findDueBatchesAcrossTenants(t.clock.now(), t.clock.now(), 500);
    expect(due.filter((d) => d.tenantId === ctl.tenantId), "a batch nobody instructed is never due").toEqual([]);
  });

  it("spend no send budget on persons found without an address", async () => {
    t.clock.set("2026-10-05T09:00:10.000Z");
    const ctl = await t.createTenant("Deleted Records Controller");
    const gone = await uploadNaming(t, ctl.apiKey, Array.from({ length: 20 }, (_, j) => `gone${j}@subjects.example`), ["rgone@recipients.example"]);
    await uploadNaming(t, ctl.apiKey, ["kept@subjects.example"], ["rkept@recipients.example"]);
    const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, window: { from: "2026-10-05T08:00:00Z", to: "2026-10-05T09:30:00Z" }, personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await personsOf(ctl.apiKey, reg.id)).resolution.persons).toBe(21);
    expect((await t.call("DELETE", `v1/uploads/${gone}`, { key: ctl.apiKey })).status).toBe(204);
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    // One pass within one minute's budget of 5: the 20 without an address are unreachable, and the one with an address is told.
    expect((await personsOf(ctl.apiKey, reg.id)).notices).toMatchObject({ sent: 1, unreachable: 20, pending: 0 });
  });

  it("never counts a part's own notices, as the sweep last saw them, as another breach's load", async () => {
    t.clock.set("2026-11-02T09:00:10.000Z");
    const ctl = await t.createTenant("Alone Controller");
    const up = await uploadNaming(t, ctl.apiKey, Array.from({ length: 40 }, (_, j) => `al${j}@subjects.example`), ["ral@recipients.example"]);
    const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    // The sweep's last count named this part with far more pending than it has now (it has sent since).
    await t.services.breaches.saveSendBacklog({ [`${ctl.tenantId}/${reg.id}`]: 5000 }, t.clock.now());
    const stale = (await personsOf(ctl.apiKey, reg.id)).notices.estimatedCompletionAt;
    await t.services.breaches.saveSendBacklog({}, t.clock.now());
    const alone = (await personsOf(ctl.apiKey, reg.id)).notices.estimatedCompletionAt;
    expect(stale).toBe(alone);
  });
});
