/**
 * Telling the persons of a breach (GDPR Art. 34): the scope resolved into persons over several steps (a person named
 * by records in two steps is one person with both records' categories), the unreachable counted from the records
 * whose keyed hashes were cleared, and 1,001 persons each e-mailed exactly once although the worker dies after some
 * sends (one of them sent but not recorded) and a new one takes over; another tenant's persons untouched. The queue
 * is worked by the test (the host does not poll it), with the test's clock.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { EmailMessage, EmailSendResult } from "../../shared/email/email-sender";
import type { Services } from "../../shared/services";
import { runBreachSweep } from "../../shared/usecases/breach-notices";
import { breachNoticesOfPerson } from "../../shared/usecases/breach-persons";
import { lookupHash, normaliseEmail } from "../../shared/crypto";
import { exportSections } from "../../shared/usecases/export-sections";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { drainBreachJobs, outboxMessageIds, outboxRecipients, uploadNaming } from "../helpers/breach-persons";
import { purposeWithNotice, recordDecision } from "../helpers/consents";
import { createRequest, packageRecord } from "../helpers/subject-requests";
import { expect } from "../helpers/expect";

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ queues: false, settings: { EMAIL_SENDS_PER_MINUTE: "1000000", EMAIL_SENDS_PER_HOUR: "100000000" } });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

async function json(res: Response): Promise<Json> {
  return res.json();
}

const personsOf = async (apiKey: string, id: string): Promise<Json> => json(await t.call("GET", `v1/breaches/${id}/persons`, { key: apiKey }));

describe("notices to persons", () => {
  it("e-mails each of 1,001 persons exactly once, also when the worker dies after 250 sends and another takes over; never another tenant's", async () => {
    const a = await t.createTenant("Controller A");
    const b = await t.createTenant("Controller B");
    // 40 uploads (two resolution steps of 20): 24 own subjects and an own recipient each, and one person in all of them.
    const ids: string[] = [];
    for (let i = 0; i < 40; i += 8) {
      ids.push(
        ...(await Promise.all(
          Array.from({ length: 8 }, (_, k) => {
            const u = i + k;
            return uploadNaming(t, a.apiKey, [...Array.from({ length: 24 }, (_, j) => `p${u}-${j}@subjects.example`), "everyone@subjects.example"], [`r${u}@recipients.example`], u === 39 ? ["health"] : ["contact"]);
          }),
        )),
      );
    }
    // Tenant B holds the shared person and one of its own; it is not in the breach's scope.
    await uploadNaming(t, b.apiKey, ["everyone@subjects.example", "b-only@subjects.example"], ["r0@recipients.example"]);

    const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: a.tenantId, uploads: ids, categories: ["financial"] }] }));
    await drainBreachJobs(t);
    const resolved = await personsOf(a.apiKey, id);
    expect(resolved.resolution).toMatchObject({ status: "done", records: 40, persons: 1001, unreachable: 0, page: 2 });
    expect(resolved.resolution.categories).toEqual(["contact", "financial", "health"]);
    expect(resolved.notices).toBeNull();

    // The instruction: 202, and the same again answers 200.
    const first = await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: a.apiKey });
    expect(first.status).toBe(202);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: a.apiKey })).status).toBe(200);

    // The e-mail service takes the 251st notice, then the worker process dies before recording it (and sends nothing more).
    // The dying worker has services of its own (as a process would): its e-mail sender hangs for good once it died.
    // Every request to the e-mail service is noted (the outbox keeps one message per id: a repeat is not delivered again).
    const outboxSend = t.services.email.send.bind(t.services.email);
    const requests: EmailMessage[] = [];
    const real = (m: EmailMessage) => {
      requests.push(m);
      return outboxSend(m);
    };
    t.services.email.send = real;
    let personSends = 0;
    let kill!: () => void;
    const killed = new Promise<void>((resolve) => (kill = resolve));
    const dying: Services = {
      ...t.services,
      email: {
        send: async (m: EmailMessage): Promise<EmailSendResult> => {
          if (!m.messageId.startsWith("bpn-")) return real(m);
          personSends++;
          if (personSends <= 250) return real(m);
          if (personSends === 251) {
            await real(m);
            kill();
          }
          return new Promise<EmailSendResult>(() => undefined);
        },
      },
    };
    await drainBreachJobs(t, dying, killed);
    expect(await outboxMessageIds(t, "bpn-")).toHaveLength(251);
    const during = await personsOf(a.apiKey, id);
    expect(during.notices.sent).toBeLessThanOrEqual(250);
    expect(during.notices.pending).toBe(1001 - during.notices.sent);

    // Another worker: the dead one's leases run out, the sweep queues its batches again.
    t.clock.advance({ minutes: 10 });
    await runBreachSweep(t.services);
    await drainBreachJobs(t);
    t.services.email.send = outboxSend;
    // 1,001 messages delivered, one per person; the e-mail service was asked twice for one of them only: the one
    // sent but not recorded when the worker died, under the same message id.
    expect(await outboxMessageIds(t, "bpn-")).toHaveLength(1001);
    const asked = requests.filter((m) => m.messageId.startsWith("bpn-"));
    const byId = new Map<string, EmailMessage[]>();
    for (const m of asked) byId.set(m.messageId, [...(byId.get(m.messageId) ?? []), m]);
    expect(byId.size).toBe(1001);
    expect([...byId.values()].filter((ms) => ms.length > 1)).toHaveLength(1);
    expect([...byId.values()].filter((ms) => ms.length > 1)[0]!.every((m) => m.to[0] === asked[250]!.to[0])).toBe(true);
    const to = [...byId.values()].map((ms) => ms[0]!.to[0]!);
    expect(new Set(to).size).toBe(1001);
    expect(to.filter((x) => x === "everyone@subjects.example")).toHaveLength(1);
    expect(to).not.toContain("b-only@subjects.example");
    const mails = [...byId.values()].map((ms) => ({ to: ms[0]!.to[0]!, text: ms[0]!.text }));
    const done = await personsOf(a.apiKey, id);
    expect(done.notices).toMatchObject({ sent: 1001, pending: 0, failed: 0, unreachable: 0, estimatedCompletionAt: null, estimateBreaksDeadline: false, delayAlert: null });

    // What each person is told: their own categories (the scope's added), in the tenant's language, with the contact point.
    const everyone = mails.find((m) => m.to === "everyone@subjects.example")!;
    expect(everyone.text).toContain("health");
    expect(everyone.text).toContain("Controller A");
    expect(everyone.text).toContain("dpo");
    const plain = mails.find((m) => m.to === "p0-0@subjects.example")!;
    expect(plain.text).not.toContain("health");
    expect(plain.text).toContain("financial");
    expect(plain.text).toContain("Identity fraud and phishing");

    // Tenant B: no person of its partition was made or told.
    const { resources } = await t.raw.containers.breaches.items.query({ query: "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: b.tenantId }] }).fetchAll();
    expect(resources[0]).toBe(0);

    // For an access request: the notice to a person of A, found by A's keyed hash; B's hash of the same address finds nothing.
    const hashIn = async (tenantId: string) => lookupHash(await t.services.keys.lookupSecret(tenantId), normaliseEmail("everyone@subjects.example"));
    expect(await breachNoticesOfPerson(t.services, a.tenantId, await hashIn(a.tenantId))).toEqual([
      expect.objectContaining({ breachId: id, version: 1, state: "sent", roles: ["data-subject"], categories: ["contact", "financial", "health"] }),
    ]);
    expect(await breachNoticesOfPerson(t.services, b.tenantId, await hashIn(b.tenantId))).toEqual([]);
    // ... and as the access package's section (issue 18's registry) yields it: A's notice for A; nothing for B.
    const section = exportSections("access").find((x) => x.name === "breachNotices")!;
    expect(exportSections("portability").map((x) => x.name)).not.toContain("breachNotices");
    const itemsFor = async (tenantId: string) => {
      const out: Json[] = [];
      const ctx = { tenantId, requestId: "dsr-test", subjectHash: await hashIn(tenantId), scope: "access" as const, language: "da" as const, timeZone: "Europe/Copenhagen", includedContent: new Set<string>() };
      for await (const item of section.items(t.services, ctx)) out.push(item);
      return out;
    };
    const items = await itemsFor(a.tenantId);
    expect(items.map((i) => i.data)).toEqual([expect.objectContaining({ breachId: id, version: 1, roles: ["data-subject"], categories: ["contact", "financial", "health"] })]);
    expect(items[0].rows.map((r: Json) => r.label)).toContain("Sendt");
    expect(await itemsFor(b.tenantId)).toEqual([]);

    // The audit: the instruction once, every batch's sends (counts only), the resolution once; no address anywhere.
    const audit = ((await json(await t.call("GET", "v1/audit?limit=200", { key: a.apiKey }))).items as Array<{ action: string; details: Json }>).filter((e) => e.action.startsWith("breach."));
    expect(audit.filter((e) => e.action === "breach.persons-notify-requested")).toHaveLength(1);
    expect(audit.filter((e) => e.action === "breach.persons-resolved")).toHaveLength(1);
    const read = audit.filter((e) => e.action === "breach.person-addresses-read").reduce((n, e) => n + (e.details.persons as number), 0);
    expect(read).toBeGreaterThanOrEqual(1001);
    expect(JSON.stringify(audit)).not.toMatch(/@subjects\.example|@recipients\.example/);
  }, 120_000);

  it("counts the persons of deleted records as unreachable, from their counts; adds the consent subjects and package requesters of the window; a record deleted after the resolution leaves its persons unreachable, not failed", async () => {
    const c = await t.createTenant("Controller C");
    t.clock.advance({ days: 1 });
    const from = t.clock.now().toISOString();
    const kept = await uploadNaming(t, c.apiKey, ["kept1@subjects.example", "kept2@subjects.example"], ["kr@recipients.example"]);
    const gone = await uploadNaming(t, c.apiKey, ["gone1@subjects.example", "gone2@subjects.example", "gone3@subjects.example"], ["gr@recipients.example"]);
    const later = await uploadNaming(t, c.apiKey, ["later@subjects.example"], ["lr@recipients.example"]);
    expect((await t.call("DELETE", `v1/uploads/${gone}`, { key: c.apiKey })).status).toBe(204);
    // Consent evidence recorded in the window: one person also named by an upload, one known from consent only.
    await purposeWithNotice(t, c.apiKey, "news");
    await recordDecision(t, c.apiKey, { email: "kept1@subjects.example", purpose: "news", noticeVersion: 1, decision: "granted", givenAt: from });
    await recordDecision(t, c.apiKey, { email: "Consent.Only@Subjects.example", purpose: "news", noticeVersion: 1, decision: "granted", givenAt: from });
    await recordDecision(t, c.apiKey, { email: "consent.only@subjects.example", purpose: "news", decision: "withdrawn", method: "email", requestOrigin: "email", givenAt: from });
    // An access package made in the window (its record as the package build writes it; the build itself is issue 18's).
    const request = await createRequest(t, c.apiKey, { type: "access", subjectEmail: "asked@subjects.example" });
    expect(request.status).toBe(201);
    const now = t.clock.now().toISOString();
    expect(
      await t.services.packages.create(packageRecord(c.tenantId, request.body.id, now)),
    ).toBe(true);
    t.clock.advance({ minutes: 1 });
    const to = t.clock.now().toISOString();

    const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: c.tenantId, window: { from, to }, categories: [] }] }));
    await drainBreachJobs(t);
    const view = await personsOf(c.apiKey, id);
    // 3 subjects and a recipient of the deleted upload cannot be reached; their count comes from its record. The 3
    // consent events add one person (the other is an upload's subject too), the package its requester.
    expect(view.resolution).toMatchObject({ status: "done", phase: "packages", records: 7, persons: 7, unreachable: 4, unreachableRecords: 1 });
    const tenantView = await json(await t.call("GET", `v1/breaches/${id}`, { key: c.apiKey }));
    expect(tenantView.persons.resolution.unreachable).toBe(4);

    // Deleted after the resolution: its persons are found unreachable when their notices are due.
    expect((await t.call("DELETE", `v1/uploads/${later}`, { key: c.apiKey })).status).toBe(204);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: c.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const done = await personsOf(c.apiKey, id);
    expect(done.notices).toMatchObject({ sent: 5, unreachable: 2, failed: 0, pending: 0 });
    const mails = (await outboxRecipients(t, "bpn-")).map((m) => m.to);
    expect(mails).toEqual(expect.arrayContaining(["kept1@subjects.example", "kept2@subjects.example", "kr@recipients.example", "consent.only@subjects.example", "asked@subjects.example"]));
    expect(mails.filter((m) => m === "kept1@subjects.example")).toHaveLength(1);
    expect(mails).not.toContain("later@subjects.example");
    expect(kept).toMatch(/^up-/);
  }, 60_000);

  it("refuses the instruction for a breach that is not the tenant's (404) and answers 404 for its persons", async () => {
    const d = await t.createTenant();
    const e = await t.createTenant();
    const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: d.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: e.apiKey })).status).toBe(404);
    expect((await t.call("GET", `v1/breaches/${id}/persons`, { key: e.apiKey })).status).toBe(404);
    expect((await t.call("POST", `v1/breaches/${id}/public-communication`, { key: e.apiKey, json: { text: "x", where: "y", publishedAt: t.clock.now().toISOString() } })).status).toBe(404);
  });
});
