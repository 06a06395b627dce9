/**
 * The progress of the notices to persons (sent / pending / failed / unreachable) comes from counters the batch
 * workers keep, so reading it costs the same few point reads however many persons and batches there are (reading
 * every batch on each request timed out at 100,000 persons). The counters stay exact when workers of many batches
 * write them at once, when a worker dies between recording its counts and its batch, and an instruction stored
 * before the counters existed is still counted from its batches.
 */
import { afterAll, afterEach, beforeAll, describe, it, jest } from "@jest/globals";
import { Item, Items } from "@azure/cosmos";
import { PROGRESS_SHARDS } from "../../shared/domain/breach-persons";
import { runBreachSweep } from "../../shared/usecases/breach-notices";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { drainBreachJobs, outboxMessageIds, uploadNaming, personsOf as personsOfBreach } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";
import type { Services } from "../../shared/services";

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ queues: false, settings: { EMAIL_SENDS_PER_MINUTE: "100000", EMAIL_SENDS_PER_HOUR: "1000000" } });
}, 60_000);
afterEach(() => {
  jest.restoreAllMocks();
});
afterAll(async () => {
  await t?.stop();
});

const personsOf = (apiKey: string, id: string): Promise<Json> => personsOfBreach(t, apiKey, id);

/** A tenant with `uploads` uploads naming 99 subjects and a recipient each, a breach of them resolved; its id. */
async function resolvedBreach(name: string, uploads: number): Promise<{ tenantId: string; apiKey: string; id: string; persons: number }> {
  const tenant = await t.createTenant(name);
  const ids: string[] = [];
  for (let u = 0; u < uploads; u++) {
    ids.push(await uploadNaming(t, tenant.apiKey, Array.from({ length: 99 }, (_, j) => `${name.replace(/\W/g, "")}-${u}-${j}@subjects.example`), [`r-${u}@recipients.example`]));
  }
  const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: tenant.tenantId, uploads: ids, personCategories: ["data-subjects", "recipients"], categories: [] }] }));
  await drainBreachJobs(t);
  const view = await personsOf(tenant.apiKey, id);
  expect(view.resolution).toMatchObject({ status: "done", persons: uploads * 100 });
  return { ...tenant, id, persons: uploads * 100 };
}

/** The Cosmos calls made while `f` runs: query texts and point reads (spied on, the calls go through unchanged). */
async function cosmosCallsDuring(f: () => Promise<unknown>): Promise<{ queries: string[]; reads: number }> {
  const query = jest.spyOn(Items.prototype, "query");
  const read = jest.spyOn(Item.prototype, "read");
  await f();
  const queries = query.mock.calls.map(([q]) => (typeof q === "string" ? q : q.query));
  const reads = read.mock.calls.length;
  jest.restoreAllMocks();
  return { queries, reads };
}

describe("the notices' progress", () => {
  it("is read with the same point reads and no query of the persons or batches, with 3 batches as with 30", async () => {
    const small = await resolvedBreach("Small Controller", 3);
    const large = await resolvedBreach("Large Controller", 30);
    const costs: Array<{ queries: string[]; reads: number }> = [];
    for (const b of [small, large]) {
      expect((await t.call("POST", `v1/breaches/${b.id}/notify-persons`, { key: b.apiKey })).status).toBe(202);
      await drainBreachJobs(t);
      const cost = await cosmosCallsDuring(async () => {
        const view = await personsOf(b.apiKey, b.id);
        expect(view.notices, "every person told, counted exactly").toMatchObject({ sent: b.persons, pending: 0, failed: 0, unreachable: 0 });
      });
      costs.push(cost);
    }
    for (const c of costs) {
      expect(c.queries.filter((q) => q.includes("breach-person")), "no query of persons or batches").toEqual([]);
      expect(c.reads).toBeLessThanOrEqual(PROGRESS_SHARDS + 8);
    }
    expect(costs[1]!.reads, "as many reads for 30 batches as for 3").toBe(costs[0]!.reads);
    expect(costs[1]!.queries.length).toBe(costs[0]!.queries.length);
    // The sweep marks both complete from the same counters.
    await runBreachSweep(t.services);
    for (const b of [small, large]) expect((await personsOf(b.apiKey, b.id)).notices.completedAt).not.toBeNull();
  }, 360_000);

  it("counts a batch once when its worker died after recording its counts and before its batch", async () => {
    const b = await resolvedBreach("Crashing Controller", 2);
    expect((await t.call("POST", `v1/breaches/${b.id}/notify-persons`, { key: b.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    expect((await personsOf(b.apiKey, b.id)).notices).toMatchObject({ sent: 200, pending: 0 });
    // What a worker that died between the two writes leaves: its batch still pending with its old counts, and its
    // lease run out. The sweep queues it again; the next worker finds every person told.
    const batches = t.raw.containers.breaches;
    const { resources } = await batches.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'breach-person-batch'", parameters: [{ name: "@t", value: b.tenantId }] })
      .fetchAll();
    expect(resources).toHaveLength(2);
    const now = t.clock.now();
    for (const doc of resources) {
      await batches.item(doc.id, b.tenantId).replace({ ...doc, state: "pending", sent: 0, failed: 0, unreachable: 0, nextAttemptAt: new Date(now.getTime() - 120_000).toISOString(), leaseUntil: null });
    }
    t.clock.advance({ minutes: 5 });
    await runBreachSweep(t.services);
    const seen = await drainBreachJobs(t);
    expect(seen["person-batch:done"], "both batches worked again").toBe(2);
    expect((await personsOf(b.apiKey, b.id)).notices, "counted once").toMatchObject({ sent: 200, pending: 0, failed: 0, unreachable: 0 });
    expect((await outboxMessageIds(t, "bpn-")).filter((m) => m.includes(b.id.replace(/^br-/, "")))).toHaveLength(200);
  }, 120_000);

  it("counts an instruction stored before the counters existed from its batches", async () => {
    const b = await resolvedBreach("Older Controller", 2);
    expect((await t.call("POST", `v1/breaches/${b.id}/notify-persons`, { key: b.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    // The part as it was stored before: no `progress` on the instruction, and no counter documents.
    const parts = t.raw.containers.breaches;
    const { resource: part } = await parts.item(b.id, b.tenantId).read();
    delete part.persons.notify.progress;
    await parts.item(b.id, b.tenantId).replace(part);
    const { resources: counters } = await parts.items
      .query({ query: "SELECT c.id FROM c WHERE c.tenantId = @t AND c.type = 'breach-person-progress'", parameters: [{ name: "@t", value: b.tenantId }] })
      .fetchAll();
    expect(counters.length).toBeGreaterThan(0);
    for (const c of counters) await parts.item(c.id, b.tenantId).delete();
    expect((await personsOf(b.apiKey, b.id)).notices).toMatchObject({ sent: 200, pending: 0, failed: 0, unreachable: 0 });
  }, 120_000);

  it("gives a batch's lease back when its step fails half-way, so it is worked again at once and each person told once", async () => {
    const b = await resolvedBreach("Failing Controller", 1);
    // The store answers one person's write with a timeout, as Cosmos may under load; everything else is the real store.
    let writes = 0;
    const real = t.services.breaches;
    const flaky = new Proxy(real, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop === "replacePerson") {
          return async (...args: Parameters<typeof real.replacePerson>) => {
            if (++writes === 40) throw Object.assign(new Error("Timeout Error! Request took more than 60000 ms"), { name: "TimeoutError" });
            return real.replacePerson(...args);
          };
        }
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const failing: Services = { ...t.services, breaches: flaky };
    expect((await t.call("POST", `v1/breaches/${b.id}/notify-persons`, { key: b.apiKey })).status).toBe(202);
    await expect(drainBreachJobs(t, failing)).rejects.toThrow("Timeout Error");
    const sentBefore = (await personsOf(b.apiKey, b.id)).notices.sent as number;
    expect(sentBefore).toBeGreaterThanOrEqual(39);
    expect(sentBefore).toBeLessThan(100);
    const { resources } = await t.raw.containers.breaches.items
      .query({ query: "SELECT c.leaseUntil, c.state FROM c WHERE c.tenantId = @t AND c.type = 'breach-person-batch'", parameters: [{ name: "@t", value: b.tenantId }] })
      .fetchAll();
    expect(resources, "the lease given back, the batch still to do").toEqual([{ leaseUntil: null, state: "pending" }]);
    // Two minutes on (the lease would have held it for five): the sweep finds it due, and a worker finishes it.
    t.clock.advance({ minutes: 2 });
    await runBreachSweep(t.services);
    await drainBreachJobs(t);
    expect((await personsOf(b.apiKey, b.id)).notices).toMatchObject({ sent: 100, pending: 0, failed: 0 });
    const ids = (await outboxMessageIds(t, "bpn-")).filter((m) => m.includes(b.id.replace(/^br-/, "")));
    expect(ids, "each person's notice delivered once").toHaveLength(100);
  }, 120_000);
});
