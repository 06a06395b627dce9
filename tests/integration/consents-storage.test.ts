/**
 * How consent records are stored and read: a history's clock lists its events, so a recording, a subject's state and
 * a proof read by id and send no query (the local Cosmos server answers every query by reading its whole container;
 * Azure by the index, still a round trip more). Every path that deletes events keeps the list true; a clock or a
 * subject stored before the lists were kept is filled by one query the first time.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import fc from "fast-check";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { projectStates, decisionOrder, type Decision } from "../../shared/domain/consent";
import { faultyAudit } from "../helpers/audit-faults";
import { clockId, type EventDoc } from "../../shared/stores/consent-store";
import { LISTED_READ_LIMIT, recordConsent, refreshClock, subjectLookup } from "../../shared/usecases/consents";
import { sweep } from "../helpers/sweep";
import { eraseHistoryOnRequest } from "../../shared/usecases/consent-retention";
import type { Services } from "../../shared/services";
import type { TenantCaller } from "../../shared/usecases/audit-trail";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let caller: TenantCaller;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant("Storage Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
  await purposeWithNotice(t, tenant.apiKey, "offers");
  const stored = await t.services.tenants.get(tenant.tenantId);
  caller = { tenantId: tenant.tenantId, actor: "key:test", kekVersion: stored!.kekVersion, requestId: "req-storage-test" };
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `stored.person.${++n}@subject.example`;
const queries = () => t.services.consents.queriesSent;
const subjectOf = async (tenantId: string, email: string) => t.services.consents.getSubjectByLookup(tenantId, (await subjectLookup(t.services, tenantId, email)).lookup);

interface RawEvent {
  id: string;
  subjectId: string;
  purposeKey: string;
  decision: Decision;
  givenAt: string;
  recordedAt: string;
  noticeVersion: number | null;
  audit: { seq: number } | null;
}
interface RawClock {
  id: string;
  subjectId: string;
  purposeKey: string;
  latest: { decision: string } | null;
  evidenceUntil: string | null;
  facts?: Array<{ id: string }>;
  erasure: { erasedAt: string | null } | null;
}

const eventsOf = async (tenantId: string, subjectId: string, purposeKey: string) =>
  (
    await t.raw.containers.consents.items
      .query({
        query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'consent-event' AND c.subjectId = @s AND c.purposeKey = @p",
        parameters: [
          { name: "@t", value: tenantId },
          { name: "@s", value: subjectId },
          { name: "@p", value: purposeKey },
        ],
      })
      .fetchAll()
  ).resources as RawEvent[];

const clocksOf = async (tenantId: string) =>
  (
    await t.raw.containers.consents.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'consent-clock'", parameters: [{ name: "@t", value: tenantId }] })
      .fetchAll()
  ).resources as RawClock[];

/** Every clock of the tenant lists exactly the events its history has, and its latest decision is theirs. */
async function expectListsTrue(tenantId: string): Promise<void> {
  for (const clock of await clocksOf(tenantId)) {
    // A clock as stored before the list was kept is filled when next used.
    if (clock.facts === undefined) continue;
    const events = await eventsOf(tenantId, clock.subjectId, clock.purposeKey);
    expect((clock.facts ?? []).map((f) => f.id).sort(), `the list of ${clock.id}`).toEqual(events.map((e) => e.id).sort());
    if (events.length > 0) {
      const latest = [...events].sort((a, b) => decisionOrder({ ...a, seq: a.audit?.seq ?? null }, { ...b, seq: b.audit?.seq ?? null })).at(-1)!;
      expect(clock.latest?.decision, `the latest decision of ${clock.id}`).toBe(latest.decision);
    } else {
      // A tombstone, or a history whose only events were never recorded: due at once (the sweep removes the clock).
      expect(clock.erasure?.erasedAt ?? clock.evidenceUntil, `${clock.id} has no events left`).not.toBeNull();
    }
  }
}

/** Services whose audit log cannot be written: every append fails, nothing is written (reads still work). */
const withBrokenAudit = (): Services => ({ ...t.services, audit: faultyAudit(t.raw.containers.audit, t.clock, "unwritable") });

describe("a recording reads and writes by id", () => {
  it("sends no query: a new subject, a known one, a withdrawal with and without a notice version, all purposes", async () => {
    const email = person();
    const before = queries();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", gpc: true });
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "denied" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted" });
    const w = await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email, purpose: "newsletter" } });
    expect(w.status).toBe(201);
    expect(queries() - before, "queries sent by four recordings").toBe(0);
    await expectListsTrue(tenant.tenantId);
    const subject = await subjectOf(tenant.tenantId, email);
    expect(subject!.unconfirmedSince, "confirmed by its first recorded event").toBeNull();
    expect(subject!.purposes).toEqual(["newsletter", "offers"]);
  });

  it("a subject left unconfirmed whose history has a clock (a first recording died after it) still gets its next event listed", async () => {
    const email = person();
    const first = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const subject = (await subjectOf(tenant.tenantId, email))!;
    await t.raw.containers.consents.item(subject.id, tenant.tenantId).patch([{ op: "set", path: "/unconfirmedSince", value: new Date().toISOString() }]);
    const second = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", decision: "withdrawn" });
    const { resource } = await t.raw.containers.consents.item(clockId(first.subjectId, "newsletter"), tenant.tenantId).read<RawClock>();
    expect(resource!.facts!.map((f) => f.id)).toEqual([first.id, second.id]);
    expect((await subjectOf(tenant.tenantId, email))!.unconfirmedSince).toBeNull();
  });

  it("the 201's GPC conflict comes from the list: a grant after a GPC signal of the same purpose is flagged", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "denied", method: "gpc", gpc: true });
    const before = queries();
    const res = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: { email, purpose: "offers", noticeVersion: 1, decision: "granted", method: "click", requestOrigin: "banner" } });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { conflictsWithGpc: boolean }).conflictsWithGpc).toBe(true);
    expect(queries() - before).toBe(0);
    const other = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", method: "click", requestOrigin: "banner" } });
    expect(((await other.json()) as { conflictsWithGpc: boolean }).conflictsWithGpc, "another purpose's signal does not count").toBe(false);
  });
});

describe("a subject's state and proof read by id", () => {
  it("send no query for a subject with a few events (state: the subject's purposes, their clocks, their events)", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", decision: "withdrawn" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted", gpc: true });
    const before = queries();
    const state = await stateOf(t, tenant.apiKey, email);
    const proof = await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" } });
    expect(proof.status).toBe(200);
    expect(queries() - before, "queries sent by a state and a proof").toBe(0);
    expect(state.states.map((x) => [x.purpose, x.decision])).toEqual([
      ["newsletter", "withdrawn"],
      ["offers", "granted"],
    ]);
    expect(state.history).toHaveLength(3);
    expect(((await proof.json()) as { events: Array<{ decision: string }> }).events.map((e) => e.decision)).toEqual(["granted", "withdrawn"]);
    const unknown = queries();
    expect((await stateOf(t, tenant.apiKey, person())).states).toEqual([]);
    expect(queries() - unknown, "nor for an unknown address").toBe(0);
  });

  it("a subject stored before it listed its purposes is read by one query, and lists them from then on", async () => {
    const email = person();
    const e = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "denied" });
    const subject = (await subjectOf(tenant.tenantId, email))!;
    const { resource } = await t.raw.containers.consents.item(subject.id, tenant.tenantId).read<Record<string, unknown>>();
    const { purposes: _purposes, ...old } = resource!;
    await t.raw.containers.consents.item(subject.id, tenant.tenantId).replace(old);

    let before = queries();
    expect((await stateOf(t, tenant.apiKey, email)).states.map((x) => x.decision)).toEqual(["granted", "denied"]);
    expect(queries() - before).toBe(1);
    expect((await subjectOf(tenant.tenantId, email))!.purposes).toEqual(["newsletter", "offers"]);
    before = queries();
    expect((await stateOf(t, tenant.apiKey, email)).history.map((x) => x.id)).toContain(e.id);
    expect(queries() - before).toBe(0);

    // A recording for such a subject lists its purposes too (one query), a new purpose included.
    await t.raw.containers.consents.item(subject.id, tenant.tenantId).replace(old);
    const third = await t.call("POST", "v1/purposes", { key: tenant.apiKey, json: { key: "calls", description: "Calls", legalBasis: "consent" } });
    expect([201, 409]).toContain(third.status);
    await recordDecision(t, tenant.apiKey, { email, purpose: "calls", decision: "withdrawn" });
    expect((await subjectOf(tenant.tenantId, email))!.purposes).toEqual(["calls", "newsletter", "offers"]);
    expect((await stateOf(t, tenant.apiKey, email)).states.map((x) => x.purpose)).toEqual(["calls", "newsletter", "offers"]);
  });

  it("a clock stored before the list was kept is read by one query and filled", async () => {
    const email = person();
    const e = await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted" });
    const id = clockId(e.subjectId, "offers");
    const { resource } = await t.raw.containers.consents.item(id, tenant.tenantId).read<Record<string, unknown>>();
    const { facts: _facts, ...old } = resource!;
    await t.raw.containers.consents.item(id, tenant.tenantId).replace(old);
    let before = queries();
    const proof = await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "offers" } });
    expect(((await proof.json()) as { events: Array<{ eventId: string }> }).events.map((x) => x.eventId)).toEqual([e.id]);
    expect(queries() - before).toBe(1);
    const { resource: filled } = await t.raw.containers.consents.item(id, tenant.tenantId).read<RawClock>();
    expect(filled!.facts!.map((f) => f.id)).toEqual([e.id]);
    before = queries();
    expect((await stateOf(t, tenant.apiKey, email)).history.map((x) => x.id)).toEqual([e.id]);
    expect(queries() - before).toBe(0);
  });

  it(`a history of more than ${LISTED_READ_LIMIT} events is read by one query instead of one read per event`, async () => {
    const email = person();
    for (let i = 0; i <= LISTED_READ_LIMIT; i++) {
      await recordConsent(t.services, caller, { email, purpose: "newsletter", decision: i % 2 === 0 ? "granted" : "withdrawn", noticeVersion: 1, method: "click", requestOrigin: "banner" });
    }
    const before = queries();
    const state = await stateOf(t, tenant.apiKey, email);
    expect(queries() - before).toBe(1);
    expect(state.history).toHaveLength(LISTED_READ_LIMIT + 1);
    expect(state.states.map((x) => x.decision)).toEqual(["granted"]);
  }, 60_000);
});

describe("clocks stored before the list was kept", () => {
  it("are filled by one query at the next recording; state, proof and the clock are right", async () => {
    const email = person();
    const first = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const second = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", decision: "withdrawn" });
    // As stored before: no list.
    const id = clockId(first.subjectId, "newsletter");
    const { resource } = await t.raw.containers.consents.item(id, tenant.tenantId).read<Record<string, unknown>>();
    const { facts: _facts, ...old } = resource!;
    await t.raw.containers.consents.item(id, tenant.tenantId).replace(old);

    const before = queries();
    const third = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    expect(queries() - before, "one query fills the list").toBe(1);
    const { resource: filled } = await t.raw.containers.consents.item(id, tenant.tenantId).read<RawClock>();
    expect(filled!.facts!.map((f) => f.id)).toEqual([first.id, second.id, third.id]);
    expect(filled!.latest!.decision).toBe("granted");

    const again = queries();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", decision: "withdrawn" });
    expect(queries() - again, "and none after").toBe(0);
    const state = await stateOf(t, tenant.apiKey, email);
    expect(state.history.map((e) => e.decision)).toEqual(["granted", "withdrawn", "granted", "withdrawn"]);
    expect(state.states).toEqual([expect.objectContaining({ purpose: "newsletter", decision: "withdrawn" })]);
    const proof = await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" } });
    expect(proof.status).toBe(200);
    expect(((await proof.json()) as { events: unknown[] }).events).toHaveLength(4);
  });
});

describe("every path that deletes events keeps the list true", () => {
  it("a recording whose audit entry cannot be written leaves the list before its event goes", async () => {
    const email = person();
    const kept = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await expect(recordConsent(withBrokenAudit(), caller, { email, purpose: "newsletter", decision: "withdrawn", method: "api", requestOrigin: "api" })).rejects.toThrow();
    expect((await eventsOf(tenant.tenantId, kept.subjectId, "newsletter")).map((e) => e.id)).toEqual([kept.id]);
    await expectListsTrue(tenant.tenantId);
    expect(await stateOf(t, tenant.apiKey, email)).toEqual(expect.objectContaining({ states: [expect.objectContaining({ decision: "granted" })] }));
  });

  it("an erasure takes the erased events out and leaves a tombstone; a new recording makes the history live again", async () => {
    const email = person();
    const e = await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", decision: "withdrawn" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    expect(await eraseHistoryOnRequest(t.services, tenant.tenantId, clockId(e.subjectId, "offers"), "dsr-storage-test", { actor: "system:test" })).toBe("purged");
    const { resource } = await t.raw.containers.consents.item(clockId(e.subjectId, "offers"), tenant.tenantId).read<RawClock>();
    expect(resource!.facts).toEqual([]);
    expect(resource!.erasure!.erasedAt).not.toBeNull();
    await expectListsTrue(tenant.tenantId);
    const back = await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "denied" });
    const { resource: live } = await t.raw.containers.consents.item(clockId(e.subjectId, "offers"), tenant.tenantId).read<RawClock>();
    expect(live!.facts!.map((f) => f.id)).toEqual([back.id]);
    expect(live!.erasure).toBeNull();
    await expectListsTrue(tenant.tenantId);
  });
});

describe("the list stays true over any sequence of recordings, failed recordings, erasures and old-shaped clocks", () => {
  it("holds for random sequences (property)", async () => {
    const own = await t.createTenant("Storage property Co");
    await purposeWithNotice(t, own.apiKey, "newsletter");
    await purposeWithNotice(t, own.apiKey, "offers");
    const ownCaller: TenantCaller = { ...caller, tenantId: own.tenantId, kekVersion: (await t.services.tenants.get(own.tenantId))!.kekVersion };
    const purpose = fc.constantFrom("newsletter", "offers");
    const step = fc.oneof(
      fc.record({ op: fc.constant("record" as const), purpose, decision: fc.constantFrom<Decision>("granted", "denied", "withdrawn"), gpc: fc.boolean() }),
      fc.record({ op: fc.constant("fail" as const), purpose }),
      fc.record({ op: fc.constant("erase" as const), purpose }),
      fc.record({ op: fc.constant("old" as const), purpose }),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 7 }), async (steps) => {
        const email = `property.${++run}.${n++}@subject.example`;
        for (const st of steps) {
          const subject = await subjectOf(own.tenantId, email);
          if (st.op === "record") {
            await recordConsent(t.services, ownCaller, {
              email,
              purpose: st.purpose,
              decision: st.decision,
              ...(st.decision === "withdrawn" ? {} : { noticeVersion: 1 }),
              method: "click",
              requestOrigin: "banner",
              gpc: st.decision === "granted" ? false : st.gpc,
            });
          } else if (st.op === "fail") {
            await expect(recordConsent(withBrokenAudit(), ownCaller, { email, purpose: st.purpose, decision: "withdrawn", method: "api", requestOrigin: "api" })).rejects.toThrow();
          } else if (subject) {
            const id = clockId(subject.subjectId, st.purpose);
            if (st.op === "erase") await eraseHistoryOnRequest(t.services, own.tenantId, id, `dsr-property-${run}`, { actor: "system:test" });
            else {
              const { resource } = await t.raw.containers.consents.item(id, own.tenantId).read<Record<string, unknown>>();
              if (resource) {
                const { facts: _facts, ...old } = resource;
                await t.raw.containers.consents.item(id, own.tenantId).replace(old);
              }
            }
          }
        }
        await expectListsTrue(own.tenantId);
        // The state read by id is the projection of the recorded events.
        const subject = await subjectOf(own.tenantId, email);
        const state = await stateOf(t, own.apiKey, email);
        if (!subject) {
          expect(state.states).toEqual([]);
          return;
        }
        const recorded = [...(await eventsOf(own.tenantId, subject.subjectId, "newsletter")), ...(await eventsOf(own.tenantId, subject.subjectId, "offers"))].filter((e) => e.audit !== null);
        const expected = projectStates(recorded.map((e) => ({ ...e, seq: e.audit!.seq }))).map((x) => ({ purpose: x.purposeKey, decision: x.decision }));
        expect(state.states.map((x) => ({ purpose: x.purpose, decision: x.decision }))).toEqual(expected);
        expect(state.history.map((e) => e.id).sort()).toEqual(recorded.map((e) => e.id).sort());
      }),
      { numRuns: 12 },
    );
  }, 120_000);
});

describe("the audit entry of a recording", () => {
  it("a once-entry's hash comes with its position, and its marker repeats it; a marker without one gives none", async () => {
    const event = { tenantId: tenant.tenantId, actor: "system:test", action: "consent.recorded" as const, target: { type: "consent-event", id: "ce-oncehashoncehash" } };
    const first = await t.services.audit.appendOnceAt(event, "storage-test:once");
    expect(first!.hash).toBe(await t.services.audit.entryHash(tenant.tenantId, first!.seq));
    expect(await t.services.audit.appendOnceAt(event, "storage-test:once")).toEqual(first);
    expect(await t.services.audit.appendOnce(event, "storage-test:once")).toBe(first!.seq);
    // A marker written before the hash was kept.
    const { resources } = await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'audit-once' AND c.seq = @s", parameters: [{ name: "@t", value: tenant.tenantId }, { name: "@s", value: first!.seq }] })
      .fetchAll();
    const { hash: _hash, ...old } = resources[0] as Record<string, unknown> & { id: string };
    await t.raw.containers.audit.item(old.id, tenant.tenantId).replace(old);
    expect(await t.services.audit.appendOnceAt(event, "storage-test:once")).toEqual({ seq: first!.seq, hash: undefined });
  });

  it("a crashed recording (plain append) is settled by the retention repair once: finished with its entry, or removed; never logged twice", async () => {
    const own = await t.createTenant("Storage crash Co");
    await purposeWithNotice(t, own.apiKey, "newsletter");
    const email = person();
    const recordedOf = async (id: string) =>
      (
        await t.raw.containers.audit.items
          .query({ query: "SELECT c.seq FROM c WHERE c.tenantId = @t AND c.type = 'audit-entry' AND c.action = 'consent.recorded' AND c.target.id = @id", parameters: [{ name: "@t", value: own.tenantId }, { name: "@id", value: id }] })
          .fetchAll()
      ).resources as Array<{ seq: number }>;
    // Died after its entry was appended, before the entry was noted on the event.
    const noted = await recordDecision(t, own.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await t.raw.containers.consents.item(noted.id, own.tenantId).patch([{ op: "set", path: "/audit", value: null }]);
    // Died after its event was listed, before its entry: listed, unaudited, nothing in the log.
    const { resource } = await t.raw.containers.consents.item(noted.id, own.tenantId).read<Record<string, unknown>>();
    const lost = { ...Object.fromEntries(Object.entries(resource!).filter(([k]) => !k.startsWith("_"))), id: "ce-crashedcrashedcr", decision: "withdrawn", audit: null };
    await t.raw.containers.consents.items.create(lost);
    await refreshClock(t.services, own.tenantId, noted.subjectId, "newsletter", { add: lost as unknown as EventDoc });
    expect((await stateOf(t, own.apiKey, email)).history, "neither is part of the record yet").toEqual([]);

    const start = t.clock.now().getTime();
    try {
      t.clock.set(start + 2 * 3_600_000);
      await sweep(t);
      await sweep(t);
      const state = await stateOf(t, own.apiKey, email);
      expect(state.history.map((e) => [e.id, e.audit.seq])).toEqual([[noted.id, noted.audit.seq]]);
      expect(state.states.map((x) => x.decision)).toEqual(["granted"]);
      expect(await recordedOf(noted.id), "its one entry, not a second").toEqual([{ seq: noted.audit.seq }]);
      expect(await recordedOf(lost.id)).toEqual([]);
      await expectListsTrue(own.tenantId);
    } finally {
      t.clock.set(start);
    }
  });
});

describe("notice versions kept in memory", () => {
  it("a version not yet written is read again once written (only versions found are kept)", async () => {
    const email = person();
    const res = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: { email, purpose: "offers", noticeVersion: 2, decision: "granted", method: "click", requestOrigin: "banner" } });
    expect(res.status).toBe(422);
    const added = await t.call("POST", "v1/purposes/offers/notices", { key: tenant.apiKey, json: { language: "en", text: "Offers, second version." } });
    expect(((await added.json()) as { version: number }).version).toBe(2);
    const e = await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 2, decision: "granted" });
    expect(e.noticeVersion).toBe(2);
    const proof = (await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "offers" } })).json()) as { events: Array<{ notice: { text: string } }> };
    expect(proof.events.map((x) => x.notice.text)).toEqual(["Offers, second version."]);
  });
});
