/**
 * The breach register end to end, with a test clock: an operator registers a breach affecting two tenants; each is
 * told in its language and sees only its own part (never another tenant, nor how many there are); PATCH adds
 * versions under If-Match (428 without it, 412 when stale), kept in order; both clocks of each tenant; the tenant's
 * acknowledgement, decision and authority notification, a late one refused without reasons; bad input refused.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, outbox, partOf, registerBreach, type Json } from "../helpers/breaches";
import { eventually } from "../helpers/eventually";
import { expect } from "../helpers/expect";
import { uploadWith } from "../helpers/uploads";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
let b: { tenantId: string; apiKey: string };
let c: { tenantId: string; apiKey: string };
const HOUR = 3_600_000;

beforeAll(async () => {
  t = await startTestApp({ settings: { OPERATOR_CONTACT_EMAIL: "security@processor.example" } });
  a = await t.createTenant("Dansk Kontrol ApS");
  b = await t.createTenant("English Controller Ltd");
  c = await t.createTenant("Unaffected Co");
  expect((await t.admin("PATCH", `v1/admin/tenants/${a.tenantId}`, { language: "da" })).status).toBe(200);
});
afterAll(async () => {
  await t?.stop();
});

async function json(res: Response): Promise<Json> {
  return res.json();
}

async function auditOf(apiKey: string): Promise<Array<{ action: string; target: { id: string } | null; details: Record<string, unknown> }>> {
  return (await json(await t.call("GET", "v1/audit?limit=200", { key: apiKey }))).items;
}

describe("registering a breach", () => {
  let id: string;
  let uploadId: string;

  it("tells each affected tenant in its language, with both clocks, and shows each only its own part", async () => {
    uploadId = (await uploadWith(t, a.apiKey, 20, { categories: ["health", "contact"], dataSubjects: ["ida@subject.example", "jens@subject.example"] })).id;
    const awareAt = new Date(t.clock.now().getTime() - 2 * HOUR).toISOString();
    const reg = await registerBreach(
      t,
      breachBody(t, {
        awareAt,
        scope: [
          { tenantId: a.tenantId, uploads: [uploadId], note: "Only the one transfer of March." },
          { tenantId: b.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-05T00:00:00Z" }, categories: ["financial"], approximatePersons: 40, approximateRecords: 12 },
        ],
      }),
    );
    id = reg.id;
    expect(reg.etag).toBe('"v1"');
    expect(reg.body).toMatchObject({ status: "open", version: 1, current: { awareAt } });
    // The 201 already shows each tenant's clocks, from awareAt.
    for (const x of reg.body.tenants as Json[]) {
      expect(x.clocks.controllerNotice).toMatchObject({ targetAt: new Date(Date.parse(awareAt) + 24 * HOUR).toISOString(), limitAt: new Date(Date.parse(awareAt) + 72 * HOUR).toISOString() });
      expect(x.clocks.authority.productTargetAt).toBe(new Date(Date.parse(awareAt) + 72 * HOUR).toISOString());
    }
    const assessments = reg.body.assessments as Array<{ tenantId: string; resolved: Record<string, unknown>; severity: { band: string } }>;
    expect(assessments.find((x) => x.tenantId === a.tenantId)).toMatchObject({ resolved: { categories: ["contact", "health"], approximatePersons: 4, approximateRecords: 1, uploadsFound: 1 }, severity: { band: "very-high" } });

    const viewA = await partOf(t, a.apiKey, id);
    const viewB = await partOf(t, b.apiKey, id);
    // Each sees its own scope, and nothing that names or counts the other.
    expect(viewA.current.scope).toMatchObject({ tenantId: a.tenantId, uploads: [uploadId] });
    expect(viewB.current.scope).toMatchObject({ tenantId: b.tenantId, categories: ["financial"] });
    for (const [view, other] of [
      [viewA, b],
      [viewB, a],
    ] as const) {
      const text = JSON.stringify(view);
      expect(text).not.toContain(other.tenantId);
      expect(text).not.toMatch(/"tenants"|everTenants|assessments/);
    }
    expect(JSON.stringify(viewB)).not.toContain("Only the one transfer of March.");
    // Clocks: the processor's target and limit from awareAt; the authority's 72 hours from when the tenant was told.
    const told = viewA.clocks.controllerNotice.notifiedAt as string;
    expect(viewA.controllerNotifiedVia).toBe("email");
    expect(viewA.clocks.controllerNotice).toMatchObject({ targetAt: new Date(Date.parse(awareAt) + 24 * HOUR).toISOString(), limitAt: new Date(Date.parse(awareAt) + 72 * HOUR).toISOString(), status: "on-target" });
    expect(viewA.clocks.authority).toMatchObject({ deadlineAt: new Date(Date.parse(told) + 72 * HOUR).toISOString(), productTargetAt: new Date(Date.parse(awareAt) + 72 * HOUR).toISOString(), status: "open" });
    expect(viewA.severity.factors.dataProcessingContext.value).toBe(4);
    expect(viewA.proposal.notifyPersons).toMatchObject({ proposed: true, highRisk: true });

    // The notices: in the tenant's language, to its contact.
    await eventually(async () => expect((await outbox(t, `breach-${id}`)).length).toBe(2));
    const mails = await outbox(t, `breach-${id}`);
    const toA = mails.find((m) => m.to.includes("dpo1@controller.example"))!;
    const toB = mails.find((m) => m.to.includes("dpo2@controller.example"))!;
    expect(toA.subject).toBe(`Brud på persondatasikkerheden ${id} hos Dansk Kontrol ApS`);
    expect(toA.text).toContain("Only the one transfer of March.");
    expect(toA.html).toContain('lang="da"');
    expect(toB.subject).toBe(`Personal-data breach ${id} affecting English Controller Ltd`);
    expect(toB.text).not.toContain("Only the one transfer of March.");
    expect(toB.text).toContain("security@processor.example");
    for (const m of mails) expect(m.text).not.toMatch(/ida@subject|jens@subject/);
  });

  it("lets a tenant that is not affected see nothing of it", async () => {
    expect((await t.call("GET", `v1/breaches/${id}`, { key: c.apiKey })).status).toBe(404);
    expect((await json(await t.call("GET", "v1/breaches", { key: c.apiKey }))).items).toEqual([]);
    for (const action of ["acknowledge", "decision", "authority-notification", "no-authority-notification"]) {
      const res = await t.call("POST", `v1/breaches/${id}/${action}`, { key: c.apiKey, json: action === "acknowledge" ? undefined : { reason: "x", reasons: "x", notifyAuthority: true, notifyPersons: false, notifiedAt: t.clock.now().toISOString(), method: "e-mail" } });
      expect([404, 422], action).toContain(res.status);
    }
    expect((await t.call("GET", `v1/breaches/${id}/report`, { key: c.apiKey })).status).toBe(404);
    const list = await json(await t.call("GET", "v1/breaches", { key: a.apiKey }));
    expect(list.items).toEqual([expect.objectContaining({ id, version: 1, band: "very-high", controllerNotice: "on-target" })]);
    expect(JSON.stringify(list)).not.toContain(b.tenantId);
  });

  it("audits each step in each tenant's own chain, naming no other tenant", async () => {
    await eventually(async () => {
      const actions = (await auditOf(a.apiKey)).map((e) => e.action);
      expect(actions).toEqual(expect.arrayContaining(["breach.registered", "breach.notice-sent", "breach.controller-notified"]));
    });
    const entries = (await auditOf(a.apiKey)).filter((e) => e.action.startsWith("breach."));
    expect(JSON.stringify(entries)).not.toContain(b.tenantId);
    expect(entries.find((e) => e.action === "breach.registered")).toMatchObject({ target: { id: `${id}.v1` }, details: { breachId: id, version: 1, band: "very-high" } });
  });

  it("adds versions only with If-Match naming the current one, keeps them in order, and gives each tenant its own numbering", async () => {
    const patch = (body: unknown, ifMatch?: string) => t.admin("PATCH", `v1/admin/breaches/${id}`, body, ifMatch === undefined ? {} : { "if-match": ifMatch });
    const missing = await patch({ measuresTaken: "Keys rotated; the repository was taken down." });
    expect(missing.status).toBe(428);
    expect((await json(missing)).type).toBe("urn:safedata:problem:precondition-required");
    for (const stale of ['"v0"', 'W/"v1"', "v1", "garbage", '"v2"']) {
      const res = await patch({ measuresTaken: "Keys rotated; the repository was taken down." }, stale);
      expect(res.status, stale).toBe(412);
      expect((await json(res)).type).toBe("urn:safedata:problem:precondition-failed");
    }
    const second = await patch({ measuresTaken: "Keys rotated; the repository was taken down.", followUp: { missing: "The access logs of the storage account.", expectedBy: "2026-01-09T12:00:00Z" } }, '"v1"');
    expect(second.status).toBe(200);
    expect(second.headers.get("etag")).toBe('"v2"');
    // A change to B's scope only is version 3 of the register, and no new version of A's part.
    const third = await patch({ scope: [{ tenantId: b.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-05T00:00:00Z" }, categories: ["financial"], approximatePersons: 55, approximateRecords: 12 }] }, 'W/"x", "v2"');
    expect(third.status).toBe(200);
    expect(third.headers.get("etag")).toBe('"v3"');
    expect((await patch({ malicious: false }, '"v2"')).status).toBe(412);
    // A change that changes nothing makes no version.
    expect((await patch({ malicious: true }, "*")).headers.get("etag")).toBe('"v3"');

    const viewB = await partOf(t, b.apiKey, id, (v) => v.version === 3 && v.notices.at(-1).emailAcceptedAt !== null);
    expect(viewB.versions.map((v: { version: number; changes: string[] }) => [v.version, v.changes])).toEqual([
      [1, expect.arrayContaining(["awareAt", "scope"])],
      [2, ["followUp", "measuresTaken"]],
      [3, ["resolved", "scope"]],
    ]);
    expect(viewB.current.resolved.approximatePersons).toBe(55);
    const viewA = await partOf(t, a.apiKey, id, (v) => v.version === 2 && v.notices.at(-1).emailAcceptedAt !== null);
    expect(viewA.versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
    expect(viewA.versions[0].content.measuresTaken).toBe("The key was revoked and every other key rotated within the hour.");
    expect(viewA.current.measuresTaken).toBe("Keys rotated; the repository was taken down.");
    expect(viewA.notices.map((n: { eventType: string }) => n.eventType)).toEqual(["breach.notified", "breach.updated"]);

    const register = await json(await t.admin("GET", `v1/admin/breaches/${id}`));
    expect(register.versions.map((v: { version: number; changes: string[] }) => [v.version, v.changes])).toEqual([
      [1, expect.any(Array)],
      [2, ["followUp", "measuresTaken"]],
      [3, ["scope"]],
    ]);
    const v1 = await t.admin("GET", `v1/admin/breaches/${id}/versions/1`);
    expect(v1.headers.get("etag")).toBe('"v1"');
    expect((await json(v1)).fields.measuresTaken).toBe("The key was revoked and every other key rotated within the hour.");
    expect((await t.admin("GET", `v1/admin/breaches/${id}/versions/9`)).status).toBe(404);
    await eventually(async () => expect((await outbox(t, `breach-${id}`)).filter((m) => m.subject.startsWith("Opdatering 2:"))).toHaveLength(1));
  });

  it("tells a tenant taken out of the scope, and closes its part", async () => {
    const res = await t.admin("PATCH", `v1/admin/breaches/${id}`, { removeFromScope: [b.tenantId] }, { "if-match": '"v3"' });
    expect(res.status).toBe(200);
    const viewB = await partOf(t, b.apiKey, id, (v) => v.status === "withdrawn" && v.notices.at(-1).emailAcceptedAt !== null);
    expect(viewB.versions.at(-1)).toMatchObject({ version: 4, content: null, changes: ["scope"] });
    const mail = (await outbox(t, `breach-${id}`)).find((m) => m.subject.startsWith("Update 4:"))!;
    expect(mail.text).toContain("no longer within the scope");
    expect((await t.call("POST", `v1/breaches/${id}/decision`, { key: b.apiKey, json: { notifyAuthority: false, notifyPersons: false, reasons: "Not affected." } })).status).toBe(409);
    // A's part did not move.
    expect((await partOf(t, a.apiKey, id)).version).toBe(2);
  });

  it("records the tenant's acknowledgement and decision, and refuses a late authority notification without reasons", async () => {
    const ack = await json(await t.call("POST", `v1/breaches/${id}/acknowledge`, { key: a.apiKey }));
    expect(ack.acknowledgedAt).toBe(t.clock.now().toISOString());
    expect((await json(await t.call("POST", `v1/breaches/${id}/acknowledge`, { key: a.apiKey }))).acknowledgedAt).toBe(ack.acknowledgedAt);
    const decided = await t.call("POST", `v1/breaches/${id}/decision`, { key: a.apiKey, json: { notifyAuthority: true, notifyPersons: false, exemption: "a", reasons: "Only ciphertext left the service." } });
    expect(decided.status).toBe(200);
    expect((await json(decided)).decision).toMatchObject({ notifyAuthority: true, notifyPersons: false, exemption: "a", version: 2 });

    const told = Date.parse(ack.clocks.controllerNotice.notifiedAt);
    t.clock.moveTo(new Date(told + 80 * HOUR));
    const lateAt = new Date(told + 73 * HOUR).toISOString();
    const refused = await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: a.apiKey, json: { notifiedAt: lateAt, method: "online-form", reference: "2026-431-0042" } });
    expect(refused.status).toBe(422);
    expect((await json(refused)).errors).toEqual([expect.objectContaining({ path: "delayReason" })]);
    expect((await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: a.apiKey, json: { notifiedAt: new Date(t.clock.now().getTime() + 1000).toISOString(), method: "e-mail" } })).status).toBe(422);
    const late = await t.call("POST", `v1/breaches/${id}/authority-notification`, {
      key: a.apiKey,
      json: { notifiedAt: lateAt, method: "online-form", reference: "2026-431-0042", delayReason: "The logs needed to judge the risk came from the hosting provider only on day 3." },
    });
    expect(late.status).toBe(200);
    const view = await json(late);
    expect(view.clocks.authority).toMatchObject({ status: "notified-late", notifiedAt: lateAt });
    expect(view.authorityNotifications).toEqual([expect.objectContaining({ late: true, reference: "2026-431-0042" })]);
    // A supplementary notification (Art. 33(4)) needs no delay reason; deciding not to notify is too late now.
    expect((await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: a.apiKey, json: { notifiedAt: t.clock.now().toISOString(), method: "e-mail" } })).status).toBe(200);
    expect((await t.call("POST", `v1/breaches/${id}/no-authority-notification`, { key: a.apiKey, json: { reason: "Unlikely to result in a risk." } })).status).toBe(409);
    const actions = (await auditOf(a.apiKey)).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["breach.acknowledged", "breach.decision-recorded", "breach.authority-notified"]));
  });

  it("accepts an on-time notification without reasons, and a reasoned decision not to notify", async () => {
    const other = await registerBreach(t, breachBody(t, { scope: [{ tenantId: c.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }] }));
    const view = await partOf(t, c.apiKey, other.id);
    const ok = await t.call("POST", `v1/breaches/${other.id}/authority-notification`, { key: c.apiKey, json: { notifiedAt: t.clock.now().toISOString(), method: "online-form" } });
    expect(ok.status).toBe(200);
    expect((await json(ok)).clocks.authority.status).toBe("notified");
    expect(view.clocks.authority.status).toBe("open");

    const third = await registerBreach(t, breachBody(t, { scope: [{ tenantId: c.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }] }));
    await partOf(t, c.apiKey, third.id);
    const no = await t.call("POST", `v1/breaches/${third.id}/no-authority-notification`, { key: c.apiKey, json: { reason: "Only a test address book with no real persons." } });
    expect(no.status).toBe(200);
    expect((await json(no)).clocks.authority.status).toBe("not-notified");
    expect((await t.call("POST", `v1/breaches/${third.id}/no-authority-notification`, { key: c.apiKey, json: { reason: "Again." } })).status).toBe(409);
  });
});

describe("what a breach must be", () => {
  it("refuses bad input with 422 naming the field, and writes nothing", async () => {
    const before = (await json(await t.admin("GET", "v1/admin/breaches?limit=200"))).items.length;
    const scope = [{ tenantId: a.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }];
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ awareAt: new Date(t.clock.now().getTime() + 60_000).toISOString(), scope }, "awareAt"],
      [{ description: "Write to anna.hansen@example.dk for details", scope }, "description"],
      [{ cause: "the CPR 010190-1234 leaked", scope }, "cause"],
      [{ scope: [{ tenantId: "tn-aaaaaaaaaaaaaaaa", window: scope[0]!.window, categories: [] }] }, "scope.0.tenantId"],
      [{ scope: [{ tenantId: a.tenantId, uploads: ["up-aaaaaaaaaaaaaaaaaaaaaaaaaa"] }] }, "scope.0.uploads.0"],
      [{ scope: [{ tenantId: a.tenantId, categories: [] }] }, "scope.0"],
      [{ scope: [...scope, ...scope] }, "scope"],
      [{ nature: { confidentiality: "not-affected", integrity: "not-affected", availability: "not-affected" }, scope }, "nature"],
      [{ awareAt: new Date(t.clock.now().getTime() - 25 * HOUR).toISOString(), scope }, "controllerNoticeDelayReason"],
      [{ occurredFrom: new Date(t.clock.now().getTime() - HOUR).toISOString(), scope }, "occurredFrom"],
    ];
    for (const [over, path] of cases) {
      const res = await t.admin("POST", "v1/admin/breaches", breachBody(t, over));
      const body = await json(res);
      expect(res.status, `${path}: ${JSON.stringify(body)}`).toBe(422);
      expect(body.errors.map((e: { path: string }) => e.path), path).toContain(path);
      expect(JSON.stringify(body)).not.toMatch(/anna\.hansen|010190/);
    }
    // An upload of another tenant is not one of this tenant's.
    const bUpload = (await uploadWith(t, b.apiKey, 4)).id;
    expect((await t.admin("POST", "v1/admin/breaches", breachBody(t, { scope: [{ tenantId: a.tenantId, uploads: [bUpload] }] }))).status).toBe(422);
    expect((await json(await t.admin("GET", "v1/admin/breaches?limit=200"))).items.length).toBe(before);
    // With the reason for the delay, a breach registered a day late is accepted.
    const late = await t.admin("POST", "v1/admin/breaches", breachBody(t, { awareAt: new Date(t.clock.now().getTime() - 25 * HOUR).toISOString(), controllerNoticeDelayReason: "The incident was first reported to us through a weekend mailbox.", scope }));
    expect(late.status).toBe(201);
    expect((await t.admin("PATCH", "v1/admin/breaches/br-00000000000000000000", { malicious: false }, { "if-match": "*" })).status).toBe(404);
    expect((await t.call("POST", "v1/admin/breaches", { key: a.apiKey, json: breachBody(t, { scope }) })).status).toBe(401);
  });
});
