/**
 * Review B's consent findings over HTTP against the real local services: a withdrawal after a grant dated ahead of
 * the clock takes effect, by the API and by the person's link, and uploads then are refused (#1); givenAt before 2000
 * (#8); a 6to4 address stored as its /40 (#7); concurrent POSTs of one withdrawal link each get a page (#11); the
 * confirmation page when no consent is in force (#14).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { decisionOf, purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { baseUpload } from "../helpers/uploads";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  t.clock.set("2026-11-30T08:00:00.000Z");
  tenant = await t.createTenant("Review Consent Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
  await purposeWithNotice(t, tenant.apiKey, "offers");
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `review.person.${++n}@subject.example`;
const ahead = (ms: number) => new Date(t.clock.now().getTime() + ms).toISOString();
const open = (path: string, method = "GET") => fetch(`${t.api.replace(/\/api$/, "")}${path}`, { method, redirect: "manual" });
async function link(email: string, purpose: string): Promise<{ path: string }> {
  const res = await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email, purpose } });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as { path: string };
}

describe("#1 a withdrawal after a grant dated ahead of the clock", () => {
  it("by the API: the state is withdrawn and an upload naming the purpose is refused", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", givenAt: ahead(290_000) });
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("granted");
    t.clock.advance({ seconds: 10 });
    const w = await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email, purpose: "newsletter" } });
    expect(w.status).toBe(201);
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("withdrawn");
    const up = await t.call("POST", "v1/uploads", { key: tenant.apiKey, json: { ...baseUpload, size: 1, dataSubjects: [email], consentPurpose: "newsletter" } });
    expect(up.status).toBe(403);
  });

  it("by the person's link: withdrawn, also for 'all'", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", givenAt: ahead(299_000) });
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted", givenAt: ahead(120_000) });
    const l = await link(email, "all");
    t.clock.advance({ seconds: 5 });
    expect((await open(l.path, "POST")).status).toBe(200);
    const states = (await stateOf(t, tenant.apiKey, email)).states;
    expect(states.map((s) => [s.purpose, s.decision])).toEqual([
      ["newsletter", "withdrawn"],
      ["offers", "withdrawn"],
    ]);
  });
});

describe("#8 givenAt has a lower bound", () => {
  it("0001-01-01 and 1999-12-31 are refused with 422 naming givenAt; 2000-01-01 is accepted", async () => {
    for (const givenAt of ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z"]) {
      const res = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: { email: person(), purpose: "newsletter", noticeVersion: 1, decision: "granted", method: "import", requestOrigin: "import", givenAt } });
      expect(res.status, givenAt).toBe(422);
      expect(((await res.json()) as { errors: Array<{ path: string }> }).errors[0]!.path).toBe("givenAt");
    }
    await recordDecision(t, tenant.apiKey, { email: person(), purpose: "newsletter", noticeVersion: 1, decision: "granted", method: "import", requestOrigin: "import", givenAt: "2000-01-01T00:00:00Z" });
  });
});

describe("#7 a 6to4 address is stored as the /24 of its embedded IPv4 address", () => {
  it("2002:cb00:714d::1 is kept and shown as 2002:cb00:7100::/40", async () => {
    const email = person();
    const ev = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", ipAddress: "2002:cb00:714d::1" });
    expect(ev.ipAddress).toBe("2002:cb00:7100::/40");
    const raw = (await t.raw.containers.consents.item(ev.id, tenant.tenantId).read<Record<string, unknown>>()).resource!;
    expect(JSON.stringify(raw)).not.toContain("cb00:714d");
  });
});

describe("the withdrawal page", () => {
  it("#11: ten concurrent POSTs (a double click) each get a page, never a problem document; one withdrawal", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const l = await link(email, "newsletter");
    const answers = await Promise.all(Array.from({ length: 10 }, () => open(l.path, "POST")));
    for (const res of answers) {
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(await res.text()).toMatch(/Your consent is withdrawn|Your withdrawal is being recorded/);
    }
    const history = (await stateOf(t, tenant.apiKey, email)).history.filter((e) => e.decision === "withdrawn");
    expect(history).toHaveLength(1);
  });

  it("#14: says 'you gave your consent' only while it is in force", async () => {
    const granted = person();
    await recordDecision(t, tenant.apiKey, { email: granted, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const given = await (await open((await link(granted, "newsletter")).path)).text();
    expect(given).toContain("You gave Review Consent Co your consent to");

    const withdrawn = person();
    await recordDecision(t, tenant.apiKey, { email: withdrawn, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email: withdrawn, purpose: "newsletter" } });
    const page = await (await open((await link(withdrawn, "newsletter")).path)).text();
    expect(page).not.toContain("You gave");
    expect(page).toContain("has no consent of yours in force");
    // Another instance: denied, and a link for every purpose of a person with nothing granted.
    const denied = person();
    await recordDecision(t, tenant.apiKey, { email: denied, purpose: "offers", noticeVersion: 1, decision: "denied" });
    for (const purpose of ["offers", "all"]) {
      const html = await (await open((await link(denied, purpose)).path)).text();
      expect(html, purpose).not.toContain("You gave");
    }
  });
});
