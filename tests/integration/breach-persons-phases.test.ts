/**
 * A new phase of a breach (Art. 33(4)) whose notices the tenant instructs while the earlier version's are still being
 * sent: what the earlier notices came to is kept and shown, and the new version reaches first the persons who have
 * heard nothing yet (those told of the earlier version wait until the others are told). The clock is moved, never
 * slept; the test works the breach-jobs queue itself.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach, type Json } from "../helpers/breaches";
import { drainBreachJobs, outboxRecipients, uploadNaming, personsOf as personsOfBreach } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ queues: false, settings: { EMAIL_SENDS_PER_MINUTE: "5", EMAIL_SENDS_PER_HOUR: "10", BREACH_NOTICE_MAX_HOURS: "72" } });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

const personsOf = (apiKey: string, id: string): Promise<Json> => personsOfBreach(t, apiKey, id);

describe("notices of a later version", () => {
  it("keep what an earlier version's notices came to, and tell first of a new version those who heard nothing yet", async () => {
    t.clock.set("2026-09-07T08:00:10.000Z");
    const ctl = await t.createTenant("Second Phase Controller");
    const up = await uploadNaming(t, ctl.apiKey, Array.from({ length: 60 }, (_, j) => `ph${j}@subjects.example`), ["rph@recipients.example"]);
    const reg = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const tag = reg.id.replace(/^br-/, "");
    const toldV1 = new Set((await outboxRecipients(t, "bpn-")).filter((m) => m.messageId.startsWith(`bpn-${tag}-v1-`)).map((m) => m.to));
    expect(toldV1.size).toBe(5);
    // Version 2 of the part, and the tenant instructs its notices: version 1's 55 others are not told of version 1.
    const res = await t.admin("PATCH", `v1/admin/breaches/${reg.id}`, { measuresTaken: "Every key rotated and the access logs reviewed." }, { "if-match": reg.etag });
    expect(res.status).toBe(200);
    await drainBreachJobs(t);
    t.clock.advance({ hours: 1 });
    expect((await t.call("POST", `v1/breaches/${reg.id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const view = await personsOf(ctl.apiKey, reg.id);
    expect(view.version).toBe(2);
    expect(view.earlier).toEqual([expect.objectContaining({ version: 1, sent: 5, failed: 0, unreachable: 0, notTold: 55, reason: "replaced" })]);
    // Version 2's first notices (this minute's 5) went to persons who had heard nothing of version 1.
    const toldV2 = (await outboxRecipients(t, "bpn-")).filter((m) => m.messageId.startsWith(`bpn-${tag}-v2-`)).map((m) => m.to);
    expect(toldV2).toHaveLength(5);
    expect(toldV2.filter((x) => toldV1.has(x)), "none of those told of version 1 goes first").toEqual([]);
  });
});
