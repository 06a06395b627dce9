/**
 * Restriction (GDPR Art. 18), objection (Art. 21) and consent withdrawal (Art. 7(3)) requests: a restricted person's
 * uploads are stored but not downloaded (403 processing-restricted, without the address) until the restriction is
 * lifted, and it is lifted only after the person was told (Art. 18(3)); an objection refuses new uploads about the
 * person for the purposes named and is confirmed to the person; a withdrawal goes through the consent register and is
 * confirmed to the person.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { createRequest, json, mails, replaceRequest, settledRequest, waitForMails, waitForRequest } from "../helpers/subject-requests";
import { baseUpload, createUpload, download, putContent, uploadWith } from "../helpers/uploads";
import { purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import type { RequestDoc } from "../../shared/stores/subject-request-store";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let other: { tenantId: string; apiKey: string };

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant("Restrict ApS");
  other = await t.createTenant("Other ApS");
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `Rita.${++n}.${Date.now()}@Example.com`;
const call = (method: string, route: string, body?: unknown, key = tenant.apiKey) => t.call(method, route, { key, json: body });

async function expectProblem(res: Response, status: number, type: string, what = "") {
  const text = await res.text();
  expect(res.status, `${what} ${text}`).toBe(status);
  expect(res.headers.get("content-type"), what).toContain("application/problem+json");
  expect(JSON.parse(text).type, what).toBe(`urn:safedata:problem:${type}`);
  return JSON.parse(text) as { detail: string };
}

async function completed(type: string, email: string, details?: Record<string, unknown>, key = tenant.apiKey, tenantId = tenant.tenantId) {
  const r = await createRequest(t, key, { type, subjectEmail: email, ...(details ? { details } : {}) });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect((await call("POST", `v1/subject-requests/${r.body.id}/vouch`, { statement: "Known customer." }, key)).status).toBe(200);
  const doc = await waitForRequest(t, tenantId, r.body.id, (d) => d.status === "completed" || d.status === "needs-attention", type);
  expect(doc.status, JSON.stringify(doc.attention)).toBe("completed");
  return doc;
}

async function restrictionDoc(hashOf: RequestDoc) {
  const { resources } = await t.raw.containers.subjectRequests.items
    .query({ query: "SELECT * FROM c WHERE c.type = 'dsr-restriction' AND c.subjectHash = @h", parameters: [{ name: "@h", value: hashOf.subjectHash }] }, { partitionKey: tenant.tenantId })
    .fetchAll();
  return resources[0] as { lift: { noticeSentAt: string | null } | null } | undefined;
}

describe("restriction", () => {
  it("keeps the person's uploads stored but refuses downloads with processing-restricted until lifted, and lifts only after telling the person", async () => {
    const email = person();
    const mine = await uploadWith(t, tenant.apiKey, 32, { dataSubjects: [email] });
    const unrelated = await uploadWith(t, tenant.apiKey, 32);
    const elsewhere = await uploadWith(t, other.apiKey, 32, { dataSubjects: [email] });
    const req = await completed("restriction", email, { purposes: ["analytics"] });

    for (const method of ["GET", "HEAD"]) {
      const res = await t.call(method, `v1/uploads/${mine.id}/content`, { key: tenant.apiKey });
      expect(res.status, method).toBe(403);
      if (method === "GET") {
        const p = await expectProblem(res, 403, "processing-restricted", method);
        expect(p.detail).toContain("Art. 18");
        expect(p.detail.toLowerCase()).not.toContain(email.toLowerCase());
        expect(p.detail, "the restriction request's id would say who").not.toContain(req.id);
      }
    }
    // Storage goes on: a new upload about the person is accepted and its content stored, but not served.
    const fresh = await createUpload(t, tenant.apiKey, { dataSubjects: [email.toUpperCase()], size: 3 });
    expect((await putContent(t, tenant.apiKey, fresh.id, Buffer.from("abc"))).status).toBe(200);
    await expectProblem(await call("GET", `v1/uploads/${fresh.id}/content`), 403, "processing-restricted", "a new upload");
    // Others: untouched (another person; the same address at another tenant).
    expect((await download(t, tenant.apiKey, unrelated.id)).res.status).toBe(200);
    expect((await download(t, other.apiKey, elsewhere.id)).res.status).toBe(200);

    const record = await json<{ kind: string; record: { purposes: string[] } }>(await call("GET", `v1/subject-requests/${req.id}/certificate`));
    expect(record).toMatchObject({ kind: "restriction", record: { purposes: ["analytics"] } });
    const page = await t.call("GET", `v1/subject-requests/${req.id}/certificate`, { key: tenant.apiKey, headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("analytics");

    // Lifting: the person is told, then it is lifted.
    const lift = await call("POST", `v1/subject-requests/${req.id}/lift-restriction`);
    expect(lift.status).toBe(202);
    const [mail] = await waitForMails(t, `dsr-restriction-lifting-${req.id}`);
    expect(mail!.to.map((a) => a.toLowerCase())).toEqual([email.toLowerCase()]);
    expect(mail!.text).toContain("18(3)");
    let state: { restricted: boolean; personToldAt: string | null } = { restricted: true, personToldAt: null };
    // Polled against a generous deadline, not a count of short pauses that a busy machine's queue can outlast.
    const until = Date.now() + 60_000;
    while (state.restricted && Date.now() < until) {
      t.host.pokeQueues();
      state = await json(await call("POST", `v1/subject-requests/${req.id}/lift-restriction`));
      if (state.restricted) await new Promise((r) => setTimeout(r, 50));
    }
    // Lifted: asking again is a conflict, and downloads work.
    await expectProblem(await call("POST", `v1/subject-requests/${req.id}/lift-restriction`), 409, "conflict", "lifted already");
    expect((await download(t, tenant.apiKey, mine.id)).body.equals(mine.content)).toBe(true);
    const audit = await json<{ items: Array<{ seq: number; action: string; at: string; target: { id: string } | null; details: Record<string, unknown> }> }>(await call("GET", "v1/audit?limit=200"));
    const mine2 = audit.items.filter((e) => e.target?.id === req.id);
    const told = mine2.find((e) => e.action === "subject-request.notified" && e.details.notice === "restriction-lifting")!;
    const lifted = mine2.find((e) => e.action === "subject-request.restriction-lifted")!;
    expect(told.seq, "told before lifted").toBeLessThan(lifted.seq);
  });

  it("is not lifted while the person cannot be told", async () => {
    const email = person();
    const mine = await uploadWith(t, tenant.apiKey, 16, { dataSubjects: [email] });
    const req = await completed("restriction", email);
    // The request's sealed address is damaged: the e-mail cannot be written, so the restriction must stay.
    const raw = await settledRequest(t, tenant.tenantId, req.id);
    await replaceRequest(t, raw, { ...raw, personal: { ...raw.personal!, email: raw.personal!.details ?? raw.personal!.externalId ?? "v1.AAAA" } });
    expect((await call("POST", `v1/subject-requests/${req.id}/lift-restriction`)).status).toBe(202);
    await waitForRequest(t, tenant.tenantId, req.id, (d) => d.status === "needs-attention", "the lift step parked");
    expect(await mails(t, `dsr-restriction-lifting-${req.id}`)).toHaveLength(0);
    expect((await restrictionDoc(req))?.lift?.noticeSentAt ?? null).toBeNull();
    await expectProblem(await call("GET", `v1/uploads/${mine.id}/content`), 403, "processing-restricted", "still restricted");
  });

  it("lift-restriction answers 409 for a request of another type and 404 for another tenant's id", async () => {
    const req = await completed("objection", person(), { purposes: ["profiling"] });
    await expectProblem(await call("POST", `v1/subject-requests/${req.id}/lift-restriction`), 409, "conflict", "not a restriction");
    await expectProblem(await call("POST", `v1/subject-requests/${req.id}/lift-restriction`, undefined, other.apiKey), 404, "not-found", "another tenant");
  });
});

describe("objection", () => {
  it("refuses new uploads about the person for the purposes named, and confirms to the person", async () => {
    const email = person();
    const req = await completed("objection", email, { purposes: ["direct-marketing", "profiling"] });
    const [mail] = await waitForMails(t, `dsr-objection-confirmed-${req.id}`);
    expect(mail!.text).toContain("direct-marketing");
    const record = await json<{ record: { purposes: Array<{ purpose: string; mustStop: string }> } }>(await call("GET", `v1/subject-requests/${req.id}/certificate`));
    expect(record.record.purposes.find((p) => p.purpose === "direct-marketing")!.mustStop).toContain("absolute");
    expect(record.record.purposes.find((p) => p.purpose === "profiling")!.mustStop).toContain("compelling legitimate grounds");
    const page = await t.call("GET", `v1/subject-requests/${req.id}/certificate`, { key: tenant.apiKey, headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("absolute");

    const about = { dataSubjects: ["someone.else@example.com", email.toLowerCase()], size: 0 };
    for (const purpose of ["direct-marketing", "Direct-Marketing", "profiling"]) {
      const p = await expectProblem(await call("POST", "v1/uploads", { ...(await baseBody()), ...about, purpose }), 403, "processing-restricted", purpose);
      expect(p.detail).toContain("Art. 21");
      expect(p.detail.toLowerCase()).not.toContain(email.toLowerCase());
    }
    // Other purposes, no purpose, another person, another tenant: accepted.
    expect((await call("POST", "v1/uploads", { ...(await baseBody()), ...about, purpose: "billing" })).status).toBe(201);
    expect((await call("POST", "v1/uploads", { ...(await baseBody()), ...about })).status).toBe(201);
    expect((await call("POST", "v1/uploads", { ...(await baseBody()), size: 0, dataSubjects: [person()], purpose: "direct-marketing" })).status).toBe(201);
    expect((await call("POST", "v1/uploads", { ...(await baseBody()), ...about, purpose: "direct-marketing" }, other.apiKey)).status).toBe(201);
  });

  it("applies to an upload's consent purpose too", async () => {
    const email = person();
    await purposeWithNotice(t, tenant.apiKey, "offers");
    await recordDecision(t, tenant.apiKey, { email, purpose: "offers", noticeVersion: 1, decision: "granted" });
    expect((await call("POST", "v1/uploads", { ...(await baseBody()), size: 0, dataSubjects: [email], consentPurpose: "offers" })).status).toBe(201);
    await completed("objection", email, { purposes: ["offers"] });
    await expectProblem(await call("POST", "v1/uploads", { ...(await baseBody()), size: 0, dataSubjects: [email], consentPurpose: "offers" }), 403, "processing-restricted", "consentPurpose");
  });
});

describe("withdraw-consent", () => {
  it("withdraws the purposes named through the consent register and confirms to the person; unknown purposes are listed", async () => {
    const email = person();
    await purposeWithNotice(t, tenant.apiKey, "news");
    await purposeWithNotice(t, tenant.apiKey, "surveys");
    await recordDecision(t, tenant.apiKey, { email, purpose: "news", noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "surveys", noticeVersion: 1, decision: "granted" });
    const req = await completed("withdraw-consent", email, { purposes: ["news", "no-such-purpose"] });
    const state = await stateOf(t, tenant.apiKey, email);
    expect(state.states.find((s) => s.purpose === "news")?.decision).toBe("withdrawn");
    expect(state.states.find((s) => s.purpose === "surveys")?.decision).toBe("granted");
    const withdrawal = state.history.filter((e) => e.purpose === "news" && e.decision === "withdrawn");
    expect(withdrawal).toHaveLength(1);
    const [mail] = await waitForMails(t, `dsr-consent-withdrawn-${req.id}`);
    expect(mail!.text).toContain("news");
    const record = await json<{ record: { format: string; purposes: Array<{ purpose: string }>; unknownPurposes: string[] } }>(await call("GET", `v1/subject-requests/${req.id}/certificate`));
    expect(record.record.format, "a withdrawal record is not an objection record").toBe("safedata.consent-withdrawal-record.v1");
    expect(record.record.purposes.map((p) => p.purpose)).toEqual(["news"]);
    expect(record.record.unknownPurposes).toEqual(["no-such-purpose"]);
    // Processing on that consent is refused from now on (the register's own check).
    await expectProblem(await call("POST", "v1/uploads", { ...(await baseBody()), size: 0, dataSubjects: [email], consentPurpose: "news" }), 403, "consent-not-granted", "withdrawn");
  });
});

const baseBody = async () => ({ ...baseUpload });
