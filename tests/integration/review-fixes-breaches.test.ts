/**
 * Review B's breach and audit findings over HTTP and the timers, against the real local services: the authority
 * notification's lower bound and a claim recorded after the deadline (#2), a reported time before 2000 (#6), the
 * anchor timer verifying what it anchors (#10), an alarm's draft telling the tenant nothing meant for the operator
 * (#13), and the notice e-mail when the breach's times are not known (#15).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { entryId } from "../../shared/stores/audit-store";
import { runAnchorSweep } from "../../shared/usecases/audit-anchoring";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, outbox, partOf, registerBreach, type Json } from "../helpers/breaches";
import { expect } from "../helpers/expect";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
const HOUR = 3_600_000;
const json = async (res: Response): Promise<Json> => res.json();
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

beforeAll(async () => {
  t = await startTestApp({ settings: { OPERATOR_CONTACT_EMAIL: "security@processor.example" } });
  t.clock.set("2026-11-30T08:00:00.000Z");
  a = await t.createTenant("Review Breach Co");
});
afterAll(async () => {
  await t?.stop();
});

const scope = () => [{ tenantId: a.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }];
const notify = (id: string, body: Record<string, unknown>) => t.call("POST", `v1/breaches/${id}/authority-notification`, { key: a.apiKey, json: { method: "online-form", ...body } });

describe("#2 the notification to the authority", () => {
  it("is refused before the breach became known or before the controller was told (2020-01-01, awareAt + 1 min)", async () => {
    const { id } = await registerBreach(t, breachBody(t, { scope: scope() }));
    const part = await partOf(t, a.apiKey, id);
    const told = part.clocks.controllerNotice.notifiedAt as string;
    const way = await notify(id, { notifiedAt: "2020-01-01T00:00:00Z" });
    expect(way.status).toBe(422);
    expect((await json(way)).errors).toEqual([expect.objectContaining({ path: "notifiedAt", message: expect.stringContaining("must not be before") })]);
    const beforeTold = await notify(id, { notifiedAt: new Date(Date.parse(told) - 60_000).toISOString() });
    expect(beforeTold.status).toBe(422);
    expect((await json(beforeTold)).errors[0].message).toMatch(/before you were told/);
    // Nothing was written.
    expect((await json(await t.call("GET", `v1/breaches/${id}`, { key: a.apiKey }))).authorityNotifications).toEqual([]);
    expect((await notify(id, { notifiedAt: told })).status).toBe(200);
  });

  it("claimed in time but recorded after the deadline passed: needs a reason and is kept flagged", async () => {
    const start = t.clock.now().getTime();
    const { id } = await registerBreach(t, breachBody(t, { scope: scope() }));
    const part = await partOf(t, a.apiKey, id);
    const told = Date.parse(part.clocks.controllerNotice.notifiedAt);
    try {
      t.clock.moveTo(new Date(told + 80 * HOUR));
      const claimed = new Date(told + 71 * HOUR).toISOString();
      const bare = await notify(id, { notifiedAt: claimed });
      expect(bare.status).toBe(422);
      expect((await json(bare)).errors).toEqual([expect.objectContaining({ path: "delayReason" })]);
      const ok = await notify(id, { notifiedAt: claimed, delayReason: "Filed by telephone on time; the record here was made only after the case number arrived." });
      expect(ok.status).toBe(200);
      const view = await json(ok);
      expect(view.authorityNotifications).toEqual([expect.objectContaining({ late: false, recordedAfterDeadline: true, notifiedAt: claimed })]);
      expect(view.clocks.authority.status).toBe("notified");
    } finally {
      t.clock.set(Math.max(start, t.clock.now().getTime()));
    }
  });

  it("#6: a breach's awareAt before 2000 is refused", async () => {
    const delay = { controllerNoticeDelayReason: "The incident was found in an old backup only now." };
    const res = await t.admin("POST", "v1/admin/breaches", breachBody(t, { awareAt: "0001-01-01T00:00:00Z", occurredFrom: null, occurredTo: null, scope: scope(), ...delay }));
    expect(res.status).toBe(422);
    expect((await json(res)).errors).toEqual([expect.objectContaining({ path: "awareAt", message: expect.stringContaining("2000-01-01") })]);
    const sane = await t.admin("POST", "v1/admin/breaches", breachBody(t, { awareAt: "2001-01-01T00:00:00Z", occurredFrom: null, occurredTo: null, scope: scope(), ...delay }));
    expect(sane.status).toBe(201);
  });
});

describe("#15 the notice when the breach's times are not known", () => {
  it("says so once, never 'from not yet known to not yet known' (en, and da)", async () => {
    const b = await t.createTenant("Dansk Brud ApS");
    expect((await t.admin("PATCH", `v1/admin/tenants/${b.tenantId}`, { language: "da" })).status).toBe(200);
    const { id } = await registerBreach(
      t,
      breachBody(t, { occurredFrom: null, occurredTo: null, scope: [...scope(), { tenantId: b.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }] }),
    );
    await partOf(t, a.apiKey, id);
    await partOf(t, b.apiKey, id);
    const mails = (await outbox(t)).filter((m) => m.text.includes(id));
    expect(mails.length).toBeGreaterThanOrEqual(2);
    for (const m of mails) {
      expect(m.text).not.toMatch(/from not yet known to not yet known/i);
      expect(m.text).not.toMatch(/fra endnu ikke kendt til endnu ikke kendt/i);
    }
    expect(mails.some((m) => m.text.includes("It happened at a time not yet known"))).toBe(true);
    expect(mails.some((m) => m.text.includes("Bruddet fandt sted på et tidspunkt, der endnu ikke kendes"))).toBe(true);
  });
});

describe("#10/#13 the anchor timer and an alarm's draft", () => {
  async function anchoredTenant(): Promise<{ tenantId: string; apiKey: string; anchoredSeq: number }> {
    const tenant = await t.createTenant();
    for (let i = 0; i < 4; i++) await t.services.audit.append({ tenantId: tenant.tenantId, actor: "system:test", action: "upload.deleted", target: { type: "upload", id: `u-${i}` } });
    await runAnchorSweep(t.services, { log: quiet });
    const anchoredSeq = (await t.services.anchors.read(tenant.tenantId)).anchor!.seq;
    return { ...tenant, anchoredSeq };
  }

  /** Changes an entry's content (its actor) and leaves its stored hash as it was. */
  async function rewriteContent(tenantId: string, seq: number): Promise<void> {
    const item = t.raw.containers.audit.item(entryId(seq), tenantId);
    const doc = (await item.read<Record<string, unknown>>()).resource!;
    await t.raw.containers.audit.items.upsert({ ...doc, actor: "system:someone-else" });
  }

  const drafts = async (tenantId: string) =>
    ((await json(await t.admin("GET", "v1/admin/breaches?limit=200"))).items as Array<{ id: string; status: string; origin: { alarmTenantId?: string; reason?: string } }>).filter(
      (x) => x.origin.alarmTenantId === tenantId,
    );

  it("the anchored entry's content changed, its hash kept: alarm, a draft, and no anchor over it", async () => {
    const { tenantId, anchoredSeq } = await anchoredTenant();
    await rewriteContent(tenantId, anchoredSeq);
    for (let i = 0; i < 3; i++) await t.services.audit.append({ tenantId, actor: "system:test", action: "upload.deleted", target: { type: "upload", id: `v-${i}` } });
    const counts = await runAnchorSweep(t.services, { log: quiet });
    expect(counts.alarms).toBeGreaterThanOrEqual(1);
    expect((await t.services.anchors.read(tenantId)).anchor!.seq).toBe(anchoredSeq);
    const found = await drafts(tenantId);
    expect(found).toHaveLength(1);
    expect(found[0]!.origin.reason).toBe("chain-broken-since-anchor");
  });

  it("an entry written since the anchor changed: the same; the draft's description holds no instruction for the operator", async () => {
    const { tenantId, apiKey, anchoredSeq } = await anchoredTenant();
    for (let i = 0; i < 3; i++) await t.services.audit.append({ tenantId, actor: "system:test", action: "upload.deleted", target: { type: "upload", id: `w-${i}` } });
    await rewriteContent(tenantId, anchoredSeq + 2);
    await runAnchorSweep(t.services, { log: quiet });
    expect((await t.services.anchors.read(tenantId)).anchor!.seq).toBe(anchoredSeq);
    const [draft] = await drafts(tenantId);
    expect(draft).toBeDefined();
    const view = await json(await t.admin("GET", `v1/admin/breaches/${draft!.id}`));
    expect(view.current.description).not.toMatch(/confirm it|dismiss it/i);
    // Confirmed, the tenant reads the description: nothing meant for the operator.
    t.clock.advance({ minutes: 30 });
    expect((await t.admin("POST", `v1/admin/breaches/${draft!.id}/confirm`, { reason: "The database's access log shows a write from an unknown identity." })).status).toBe(200);
    const part = await partOf(t, apiKey, draft!.id);
    expect(part.current.description).not.toMatch(/Opened automatically|confirm it|dismiss it/i);
  });

  it("an intact chain is still anchored", async () => {
    const { tenantId, anchoredSeq } = await anchoredTenant();
    await t.services.audit.append({ tenantId, actor: "system:test", action: "upload.deleted", target: { type: "upload", id: "x" } });
    await runAnchorSweep(t.services, { log: quiet });
    expect((await t.services.anchors.read(tenantId)).anchor!.seq).toBe(anchoredSeq + 1);
    expect(await drafts(tenantId)).toHaveLength(0);
  });
});
