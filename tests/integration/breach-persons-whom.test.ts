/**
 * What each person is told, and that a person still named by a live record is reached: a recipient of a transfer is
 * told of their own data in it (their address), never of its data subjects' categories (health data is the
 * subjects', not the recipient's); a person whose records kept by the resolution (at most five) were all deleted
 * since, but whom a sixth live record names, is still e-mailed, not counted unreachable.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, registerBreach } from "../helpers/breaches";
import { drainBreachJobs, outboxRecipients, uploadNaming } from "../helpers/breach-persons";
import { expect } from "../helpers/expect";
import { bodyOf, rawRequest, statusOf, within } from "../helpers/raw-http";

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ queues: false, settings: { EMAIL_SENDS_PER_MINUTE: "100000", EMAIL_SENDS_PER_HOUR: "1000000" } });
}, 60_000);
afterAll(async () => {
  await t?.stop();
});

describe("whom the notices reach, and what they say", () => {
  it("tells a recipient of their address only, and the data subject of the transfer's categories", async () => {
    const ctl = await t.createTenant("Clinic Controller");
    const up = await uploadNaming(t, ctl.apiKey, ["patient@subjects.example"], ["courier@recipients.example"], ["health"]);
    const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects", "recipients"], categories: [] }] }));
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const mails = (await outboxRecipients(t, "bpn-")).filter((m) => m.messageId.includes(id.replace(/^br-/, "")));
    const courier = mails.find((m) => m.to === "courier@recipients.example")!;
    const patient = mails.find((m) => m.to === "patient@subjects.example")!;
    expect(patient.text).toMatch(/health/i);
    expect(courier.text, "the recipient is not told the subjects' health data is theirs").not.toMatch(/health/i);
    const { resources } = await t.raw.containers.breaches.items
      .query({ query: "SELECT c.roles, c.categories FROM c WHERE c.tenantId = @t AND c.type = 'breach-person'", parameters: [{ name: "@t", value: ctl.tenantId }] })
      .fetchAll();
    expect(resources).toEqual(expect.arrayContaining([{ roles: ["recipient"], categories: ["contact"] }, { roles: ["data-subject"], categories: ["health"] }]));
  });

  it("reaches a person whose five kept records were deleted through a sixth live record that names them", async () => {
    const ctl = await t.createTenant("Many Records Controller");
    const ups: string[] = [];
    for (let i = 0; i < 6; i++) ups.push(await uploadNaming(t, ctl.apiKey, ["multi@subjects.example"], [`r${i}@recipients.example`]));
    const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: ups, personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    const { resources } = await t.raw.containers.breaches.items
      .query({ query: "SELECT c.sources FROM c WHERE c.tenantId = @t AND c.type = 'breach-person' AND ARRAY_LENGTH(c.sources) = 5", parameters: [{ name: "@t", value: ctl.tenantId }] })
      .fetchAll();
    expect(resources).toHaveLength(1);
    const kept = (resources[0].sources as Array<{ id: string }>).map((x) => x.id);
    for (const upload of kept) expect((await t.call("DELETE", `v1/uploads/${upload}`, { key: ctl.apiKey })).status).toBe(204);
    await drainBreachJobs(t);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey })).status).toBe(202);
    await drainBreachJobs(t);
    const to = (await outboxRecipients(t, "bpn-")).filter((m) => m.messageId.includes(id.replace(/^br-/, ""))).map((m) => m.to);
    expect(to, "the person a live record still names is told").toContain("multi@subjects.example");
    const view = (await (await t.call("GET", `v1/breaches/${id}/persons`, { key: ctl.apiKey })).json()) as { notices: unknown };
    expect(view.notices).toMatchObject({ sent: 1, unreachable: 0, pending: 0 });
  });

  it("refuses a body on the instruction, which takes none, rather than ignore it (and on every other operation that takes none)", async () => {
    const ctl = await t.createTenant("Body Controller");
    const up = await uploadNaming(t, ctl.apiKey, ["body@subjects.example"], ["rb@recipients.example"]);
    const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: ctl.tenantId, uploads: [up], personCategories: ["data-subjects"], categories: [] }] }));
    await drainBreachJobs(t);
    const big = await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey, headers: { "content-type": "application/json" }, body: JSON.stringify({ pad: "x".repeat(3_000_000) }) });
    expect(big.status).toBe(413);
    const some = await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey, json: { onlyVersion: 3 } });
    expect(some.status).toBe(422);
    expect(((await some.json()) as { detail: string }).detail).toContain("takes no body");
    expect((await t.call("GET", `v1/breaches/${id}/persons`, { key: ctl.apiKey }).then((r) => r.json()) as { notices: unknown }).notices, "nothing was instructed").toBeNull();
    const bytes = await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey, headers: { "content-type": "application/octet-stream" }, body: Buffer.from([0x80]) });
    expect(bytes.status, "bytes that are not UTF-8 are a body too").toBe(422);
    // A DELETE whose body comes in chunks reaches the operation framed as sent: refused as a body, not lost.
    const upload = await uploadNaming(t, ctl.apiKey, ["chunked@subjects.example"], ["rc@recipients.example"]);
    const chunked = rawRequest(t.api, "DELETE", `/api/v1/uploads/${upload}`, { authorization: `Bearer ${ctl.apiKey}`, "content-type": "application/json", "transfer-encoding": "chunked", connection: "close" }, '10\r\n{"reason":"xyz"}\r\n0\r\n\r\n');
    await within(chunked.answered, 10_000);
    expect(statusOf(chunked.received()), bodyOf(chunked.received())).toBe(422);
    chunked.destroy();
    expect((await t.call("GET", `v1/uploads/${upload}`, { key: ctl.apiKey })).status, "nothing was deleted").toBe(200);
    // Another operation that takes no body: an upload's DELETE.
    expect((await t.call("DELETE", `v1/uploads/${up}`, { key: ctl.apiKey, json: { reason: "x" } })).status).toBe(422);
    // A body that says nothing is no body: `{ }` as `{}`, and JSON null.
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey, headers: { "content-type": "application/json" }, body: "{ \n }" })).status).toBe(202);
    expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: ctl.apiKey, headers: { "content-type": "application/json" }, body: "null" })).status).toBe(200);
  });
});
