/**
 * Data-subject requests over HTTP, against the real local storage: intake (the clock starts at receipt; late requests;
 * duplicates; external ids), identity verification (codes, links, vouching, resends, their limits), the tenant's
 * decisions (extend, reject, cancel), the list and its CSV, and every bad input the issue names, each a 4xx
 * problem+json. What the person is sent is read from the local outbox; what is stored, from the raw documents.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { eventually } from "../helpers/eventually";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { createRequest, json, mails, rawRequest, verificationOf, waitForMails, waitForRequest } from "../helpers/subject-requests";
import { uploadWith } from "../helpers/uploads";
import { ManualClock } from "../../shared/domain/clock";
import { daysBetween, dueAtFor } from "../../shared/domain/subject-requests";
import { localDate } from "../../shared/domain/time";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let other: { tenantId: string; apiKey: string };

beforeAll(async () => {
  // 1 March 2027, 10:00 UTC (11:00 in Copenhagen).
  t = await startTestApp({ clock: new ManualClock("2027-03-01T10:00:00.000Z"), settings: { ALLOW_LOOPBACK_WEBHOOKS: "true" } });
  tenant = await t.createTenant("Acme ApS");
  other = await t.createTenant("Other A/S");
  expect((await t.call("PUT", "v1/webhook", { key: tenant.apiKey, json: { url: "http://127.0.0.1:9/hook" } })).status).toBe(201);
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `person${++n}.${Date.now()}@example.com`;
const call = (method: string, route: string, body?: unknown, key = tenant.apiKey) => t.call(method, route, { key, json: body });
const problemType = async (res: Response) => ((await res.json()) as { type: string }).type;

async function expectProblem(res: Response, status: number, type: string, what = "") {
  const text = await res.text();
  expect(res.status, `${what} ${text}`).toBe(status);
  expect(res.headers.get("content-type"), what).toContain("application/problem+json");
  expect(JSON.parse(text).type, what).toBe(`urn:safedata:problem:${type}`);
}

/** A new request and its verification e-mail. */
async function requested(body: Record<string, unknown> = {}, key = tenant.apiKey) {
  const email = (body.subjectEmail as string | undefined) ?? person();
  const r = await createRequest(t, key, { subjectEmail: email, ...body });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const [mail] = await waitForMails(t, `dsr-verification-${r.body.id}-`);
  return { id: r.body.id, email, body: r.body, mail: mail!, ...verificationOf(mail!) };
}

describe("intake", () => {
  it("records a request with its deadlines from receipt, e-mails the person a code and a link, and stores no address in clear", async () => {
    const email = person();
    const r = await createRequest(t, tenant.apiKey, { type: "access", subjectEmail: email, receivedAt: "2027-02-27T23:30:00Z" });
    expect(r.status).toBe(201);
    expect(r.body.id).toMatch(/^dsr-[a-z2-7]{26}$/);
    // 23:30 UTC on 27 February is 28 February in Copenhagen: due 28 March (end of day, summer time), legal 28 March is a Sunday → 29 March.
    expect(r.body).toMatchObject({ status: "awaiting-verification", dueAt: "2027-03-28T21:59:59.999Z", legalDueAt: "2027-03-29T21:59:59.999Z", overdue: false, late: false, daysLeft: 27 });
    const [mail] = await waitForMails(t, `dsr-verification-${r.body.id}-`);
    expect(mail!.to).toEqual([email]);
    expect(mail!.subject).toBe("Confirm your request to Acme ApS");
    const { code, path } = verificationOf(mail!);
    expect(code).toMatch(/^\d{6}$/);
    expect(path).toMatch(/^\/api\/public\/subject-request-verification\/tn-/);
    expect(mail!.html).toContain(`<strong>${code}</strong>`);
    const raw = JSON.stringify(await rawRequest(t, tenant.tenantId, r.body.id));
    expect(raw).not.toContain(email);
    expect(raw).not.toContain(email.split("@")[0]);
    expect(raw).not.toContain(code);
    expect(raw).not.toContain(verificationOf(mail!).token.split(".")[2]);
    // The audit log has the creation and the e-mail, by ids only.
    // (The send's audit entry follows its e-mail by a moment: read until it is there.)
    let audit = { items: [] as Array<{ action: string; target: { id: string } | null; details: Record<string, unknown> }> };
    await eventually(async () => {
      audit = await json<typeof audit>(await call("GET", "v1/audit?limit=200"));
      const mine = audit.items.filter((e) => e.target?.id === r.body.id).map((e) => e.action);
      expect(mine).toEqual(expect.arrayContaining(["subject-request.created", "subject-request.verification-sent"]));
    }, 30_000, 50);
    expect(JSON.stringify(audit.items)).not.toContain(email);
    // And the tenant's webhook got the event (ids only).
    const deliveries = await t.services.webhooks.listDeliveries(tenant.tenantId, { limit: 200 });
    const created = deliveries.items.find((d) => d.eventType === "subject-request.created" && d.body.includes(r.body.id));
    expect(created).toBeDefined();
    expect(created!.body).not.toContain(email);
  });

  it("accepts a request received so long ago that it is overdue, only with a lateReason, and flags it at once", async () => {
    const receivedAt = "2027-01-20T09:00:00Z";
    await expectProblem(await call("POST", "v1/subject-requests", { type: "erasure", subjectEmail: person(), receivedAt }), 422, "validation-failed", "no lateReason");
    const r = await createRequest(t, tenant.apiKey, { type: "erasure", subjectEmail: person(), receivedAt, lateReason: "It was found in a mailbox nobody watched." });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ overdue: true, late: true, dueAt: "2027-02-17T22:59:59.999Z" });
    expect(r.body.daysLeft).toBeLessThan(0);
    // A lateReason for a request that is not late is refused (nothing unneeded is stored).
    await expectProblem(await call("POST", "v1/subject-requests", { subjectEmail: person(), lateReason: "x" }), 422, "validation-failed");
  });

  it("returns an identical open request instead of a second one; a failed verification never blocks a new one", async () => {
    const email = person();
    const first = await createRequest(t, tenant.apiKey, { subjectEmail: email });
    expect(first.status).toBe(201);
    const again = await createRequest(t, tenant.apiKey, { subjectEmail: email.toUpperCase() });
    expect([again.status, again.body.id]).toEqual([200, first.body.id]);
    // Another type, or other details, are other requests.
    expect((await createRequest(t, tenant.apiKey, { type: "erasure", subjectEmail: email })).status).toBe(201);
    expect((await createRequest(t, tenant.apiKey, { type: "objection", subjectEmail: email, details: { purposes: ["marketing"] } })).status).toBe(201);
    // Five wrong codes (someone guessing): the next request of the person is a new one, not blocked by this.
    for (let i = 0; i < 5; i++) await call("POST", `v1/subject-requests/${first.body.id}/verify`, { code: "000000" });
    expect((await rawRequest(t, tenant.tenantId, first.body.id)).status).toBe("verification-failed");
    const fresh = await createRequest(t, tenant.apiKey, { subjectEmail: email });
    expect(fresh.status).toBe(201);
    expect(fresh.body.id).not.toBe(first.body.id);
    // A verified request is returned for the same subject and type (an unverified duplicate never replaces it).
    // (A rectification whose correct value is not an address: verified, then waiting for the tenant, so it stays open.)
    await uploadWith(t, tenant.apiKey, 10, { dataSubjects: [email] });
    const details = { field: "email", value: "not an address" };
    const open = await createRequest(t, tenant.apiKey, { type: "rectification", subjectEmail: email, details });
    await call("POST", `v1/subject-requests/${open.body.id}/vouch`, { statement: "Checked the person's ID at the counter." });
    await waitForRequest(t, tenant.tenantId, open.body.id, (d) => d.status === "needs-attention");
    const dup = await createRequest(t, tenant.apiKey, { type: "rectification", subjectEmail: email, details });
    expect([dup.status, dup.body.id, dup.body.status]).toEqual([200, open.body.id, "needs-attention"]);
  });

  it("treats the same externalId with the same body as the same request, and with another body as a conflict", async () => {
    const body = { subjectEmail: person(), externalId: "ticket-4711", receivedAt: "2027-02-28T10:00:00Z" };
    const first = await createRequest(t, tenant.apiKey, body);
    expect(first.status).toBe(201);
    const again = await createRequest(t, tenant.apiKey, body);
    expect([again.status, again.body.id]).toEqual([200, first.body.id]);
    await expectProblem(await call("POST", "v1/subject-requests", { ...body, type: "erasure" }), 409, "conflict", "another body");
    // Another tenant's external ids are its own.
    expect((await createRequest(t, other.apiKey, body)).status).toBe(201);
  });

  it("refuses bad input with a 4xx problem", async () => {
    const cases: Array<[string, unknown, number, string]> = [
      ["unknown type", { type: "deletion", subjectEmail: person() }, 422, "validation-failed"],
      ["invalid e-mail", { type: "access", subjectEmail: "not an address" }, 422, "validation-failed"],
      ["receivedAt in the future", { type: "access", subjectEmail: person(), receivedAt: "2027-03-01T10:05:00Z" }, 422, "validation-failed"],
      ["receivedAt not a time", { type: "access", subjectEmail: person(), receivedAt: "yesterday" }, 422, "validation-failed"],
      ["rectification without a field", { type: "rectification", subjectEmail: person(), details: { value: "new" } }, 422, "validation-failed"],
      ["rectification without a value", { type: "rectification", subjectEmail: person(), details: { field: "name" } }, 422, "validation-failed"],
      ["purposes on an access request", { type: "access", subjectEmail: person(), details: { purposes: ["x"] } }, 422, "validation-failed"],
      ["an unknown field", { type: "access", subjectEmail: person(), name: "Carl" }, 422, "validation-failed"],
    ];
    for (const [what, body, status, type] of cases) await expectProblem(await call("POST", "v1/subject-requests", body), status, type, what);
    const rect = await createRequest(t, tenant.apiKey, { type: "rectification", subjectEmail: person(), details: { field: "name", value: "Carl Hansen" } });
    expect(rect.status).toBe(201);
  });
});

describe("identity verification", () => {
  it("a code the tenant relays verifies; wrong ones are counted and the fifth fails the request; a used code is refused", async () => {
    const r = await requested();
    for (let i = 4; i >= 1; i--) {
      const res = await call("POST", `v1/subject-requests/${r.id}/verify`, { code: r.code === "111111" ? "222222" : "111111" });
      expect(res.status).toBe(422);
      const body = (await res.json()) as { type: string; detail: string };
      expect(body.type).toBe("urn:safedata:problem:verification-failed");
      expect(body.detail).toContain(`${i} ${i === 1 ? "try" : "tries"} left`);
    }
    const ok = await call("POST", `v1/subject-requests/${r.id}/verify`, { code: r.code });
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ status: "verified", verification: { method: "code" } });
    // Used: the request is not waiting for a code any more.
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/verify`, { code: r.code }), 409, "conflict", "reused code");

    const failing = await requested();
    for (let i = 0; i < 4; i++) await call("POST", `v1/subject-requests/${failing.id}/verify`, { code: failing.code === "333333" ? "444444" : "333333" });
    await expectProblem(await call("POST", `v1/subject-requests/${failing.id}/verify`, { code: failing.code === "333333" ? "444444" : "333333" }), 422, "verification-failed", "fifth");
    expect((await rawRequest(t, tenant.tenantId, failing.id)).status).toBe("verification-failed");
    // The right code no longer helps; the tenant may still vouch or reject.
    await expectProblem(await call("POST", `v1/subject-requests/${failing.id}/verify`, { code: failing.code }), 409, "conflict", "after failing");
    await expectProblem(await call("POST", `v1/subject-requests/${failing.id}/verify`, { code: "12345" }), 422, "validation-failed", "five digits");
  });

  it("a code expires after DSR_CODE_TTL_MINUTES without counting as a wrong try; a resend sends a new one, at most three times", async () => {
    const r = await requested();
    t.clock.advance({ minutes: 61 });
    const expired = await call("POST", `v1/subject-requests/${r.id}/verify`, { code: r.code });
    expect(expired.status).toBe(422);
    expect(((await expired.json()) as { detail: string }).detail).toContain("expired");
    expect((await rawRequest(t, tenant.tenantId, r.id)).verification.wrongTries).toBe(0);
    for (let i = 1; i <= 3; i++) {
      expect((await call("POST", `v1/subject-requests/${r.id}/resend`)).status).toBe(200);
      await waitForMails(t, `dsr-verification-${r.id}-`, i + 1);
    }
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/resend`), 409, "conflict", "fourth resend");
    const all = await mails(t, `dsr-verification-${r.id}-`);
    expect(all).toHaveLength(4);
    const newest = verificationOf(all.at(-1)!);
    expect(newest.code === r.code && newest.token === r.token).toBe(false);
    expect((await call("POST", `v1/subject-requests/${r.id}/verify`, { code: newest.code })).status).toBe(200);
  });

  it("the link's page shows what is asked and a button; one POST confirms; used, forged and expired links get a page that says so", async () => {
    const r = await requested({ type: "erasure" });
    const page = await fetch(`${t.api.replace(/\/api$/, "")}${r.path}`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = page.headers.get("content-security-policy")!;
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/form-action 'self'/);
    expect(csp).toMatch(/style-src 'sha256-[A-Za-z0-9+/]+=*'/);
    expect(csp).not.toMatch(/script|unsafe/);
    expect(page.headers.get("cache-control")).toBe("no-store");
    const html = await page.text();
    expect(html).toContain('<form method="post">');
    expect(html).toContain("erasure of your personal data");
    expect(html).not.toMatch(/<script/i);
    // Opening the page confirmed nothing.
    expect((await rawRequest(t, tenant.tenantId, r.id)).status).toBe("awaiting-verification");
    const done = await fetch(`${t.api.replace(/\/api$/, "")}${r.path}`, { method: "POST" });
    expect(done.status).toBe(200);
    expect(await done.text()).toContain("your request is confirmed");
    // Verified by the link (and then, holding nothing about the person, answered as such).
    expect(await rawRequest(t, tenant.tenantId, r.id)).toMatchObject({ verification: { method: "link" }, history: expect.arrayContaining([expect.objectContaining({ to: "verified", by: "subject" })]) });
    // Used: gone, with a page that says so.
    const again = await fetch(`${t.api.replace(/\/api$/, "")}${r.path}`, { method: "POST" });
    expect(again.status).toBe(410);
    const againHtml = await again.text();
    expect(againHtml).toContain("This link was already used");
    expect(againHtml).not.toContain("erasure");

    const forgedTokens = [
      r.token.slice(0, -2) + (r.token.endsWith("AA") ? "BB" : "AA"),
      `${other.tenantId}.${r.id}.${r.token.split(".")[2]}`,
      "not-a-token",
      `tn-aaaaaaaaaaaaaaaa.${r.id}.${r.token.split(".")[2]}`,
    ];
    for (const token of forgedTokens) {
      for (const method of ["GET", "POST"]) {
        const res = await fetch(`${t.api}/public/subject-request-verification/${encodeURIComponent(token)}`, { method });
        expect(res.status, `${method} ${token}`).toBe(403);
        const body = await res.text();
        expect(body).toContain("This link does not work");
        expect(body).not.toContain(r.id);
        expect(body).not.toContain("Acme");
      }
    }
  });

  it("the tenant may vouch with a statement, recorded as its own in the audit log (a digest, never the text)", async () => {
    const r = await requested();
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/vouch`, {}), 422, "validation-failed", "no statement");
    const res = await call("POST", `v1/subject-requests/${r.id}/vouch`, { statement: "Met Carl in person; passport checked." });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: "verified", verification: { method: "vouch" } });
    const audit = await json<{ items: Array<{ action: string; actor: string; target: { id: string } | null; details: Record<string, unknown> }> }>(await call("GET", "v1/audit?limit=200"));
    const entry = audit.items.find((e) => e.action === "subject-request.verified" && e.target?.id === r.id)!;
    expect(entry.actor).toMatch(/^key:/);
    expect(entry.details.statementDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(audit.items)).not.toContain("passport");
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/vouch`, { statement: "again" }), 409, "conflict", "vouch twice");
    // The link of a request verified otherwise says so; it confirms nothing more.
    const page = await fetch(`${t.api.replace(/\/api$/, "")}${r.path}`);
    expect([page.status, (await page.text()).includes("already used")]).toEqual([410, true]);
  });
});

describe("deadlines and decisions", () => {
  it("extends once, before the due date, to at most two months after the legal due date; the person is told, with the reason", async () => {
    const r = await requested({ receivedAt: "2027-02-27T12:00:00Z" });
    // Due 27 March; legal due 27 March 2027 is a Saturday → Monday 29 March; limit 29 May 2027.
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/extend`, {}), 422, "validation-failed", "no reason");
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/extend`, { reason: "Many requests at once", until: "2027-05-30" }), 422, "validation-failed", "beyond the limit");
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/extend`, { reason: "Many requests at once", until: "2027-02-30" }), 422, "validation-failed", "no such date");
    const ok = await call("POST", `v1/subject-requests/${r.id}/extend`, { reason: "Many requests at once; yours is complex." });
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ extended: true, dueAt: "2027-05-29T21:59:59.999Z", originalDueAt: "2027-03-27T22:59:59.999Z" });
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/extend`, { reason: "again" }), 409, "conflict", "twice");
    const [mail] = await waitForMails(t, `dsr-extended-${r.id}`);
    expect(mail!.to).toEqual([r.email]);
    expect(mail!.text).toContain("Many requests at once; yours is complex.");
    expect(mail!.text).toContain("29 May 2027");
    expect(mail!.text).toContain("27 March 2027");

    // After the due date: too late to extend.
    const late = await requested({ receivedAt: "2027-02-02T12:00:00Z" });
    t.clock.advance({ days: 2 });
    await expectProblem(await call("POST", `v1/subject-requests/${late.id}/extend`, { reason: "too late" }), 409, "conflict", "after dueAt");
  });

  it("rejects with a reason and tells the person of the right to complain; a closed request cannot be decided again", async () => {
    const r = await requested();
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/reject`, { ground: "excessive" }), 422, "validation-failed", "no reason");
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/reject`, { ground: "bored", reason: "x" }), 422, "validation-failed", "unknown ground");
    const res = await call("POST", `v1/subject-requests/${r.id}/reject`, { ground: "manifestly-unfounded", reason: "The same request came 40 times this week." });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: "rejected", daysLeft: null });
    const [mail] = await waitForMails(t, `dsr-rejected-${r.id}`);
    expect(mail!.text).toContain("The same request came 40 times this week.");
    expect(mail!.text).toContain("Datatilsynet");
    expect(mail!.text).toContain("judicial remedy");
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/reject`, { ground: "excessive", reason: "again" }), 409, "conflict", "reject twice");
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/cancel`, { reason: "x" }), 409, "conflict", "cancel after reject");
    await expectProblem(await call("POST", `v1/subject-requests/${r.id}/extend`, { reason: "x" }), 409, "conflict", "extend after reject");
    // The person's link of a closed unverified request no longer works.
    const page = await fetch(`${t.api.replace(/\/api$/, "")}${r.path}`);
    expect(page.status).toBe(410);
  });

  it("cancels with a reason; GET shows the decrypted details (address masked) and audits the read", async () => {
    const r = await requested({ type: "rectification", details: { field: "surname", value: "Hansen-Berg" }, externalId: "case-9" });
    expect((await call("POST", `v1/subject-requests/${r.id}/cancel`, { reason: "The person withdrew it by phone." })).status).toBe(200);
    const view = await json<Record<string, unknown>>(await call("GET", `v1/subject-requests/${r.id}`));
    expect(view).toMatchObject({
      status: "cancelled",
      details: { field: "surname", value: "Hansen-Berg" },
      externalId: "case-9",
      cancellation: { reason: "The person withdrew it by phone." },
      subjectEmail: `${r.email[0]}***@example.com`,
    });
    const audit = await json<{ items: Array<{ action: string; target: { id: string } | null; details: Record<string, unknown> }> }>(await call("GET", "v1/audit?limit=200"));
    const read = audit.items.find((e) => e.action === "subject-request.read" && e.target?.id === r.id);
    expect(read?.details.fields).toEqual(expect.arrayContaining(["email", "details", "externalId", "cancellationReason"]));
  });

  it("lists soonest due first with daysLeft, filters, and exports the same list as formula-safe CSV", async () => {
    const key = (await t.createTenant("Lister")).apiKey;
    const a = await createRequest(t, key, { subjectEmail: person(), receivedAt: "2027-02-20T10:00:00Z" });
    const b = await createRequest(t, key, { subjectEmail: person(), receivedAt: "2027-02-10T10:00:00Z" });
    const c = await createRequest(t, key, { subjectEmail: person(), receivedAt: "2027-01-01T10:00:00Z", lateReason: "found late" });
    const list = await json<{ items: Array<{ id: string; daysLeft: number; overdue: boolean }> }>(await t.call("GET", "v1/subject-requests", { key }));
    expect(list.items.map((i) => i.id)).toEqual([c.body.id, b.body.id, a.body.id]);
    const today = localDate(t.clock.now(), "Europe/Copenhagen");
    const left = (received: string) => daysBetween(today, localDate(dueAtFor(new Date(received), "Europe/Copenhagen"), "Europe/Copenhagen"));
    expect(list.items.map((i) => i.daysLeft)).toEqual([left("2027-01-01T10:00:00Z"), left("2027-02-10T10:00:00Z"), left("2027-02-20T10:00:00Z")]);
    expect(list.items[0]!.daysLeft).toBeLessThan(0);
    const overdue = await json<{ items: Array<{ id: string }> }>(await t.call("GET", "v1/subject-requests?overdue=true", { key }));
    expect(overdue.items.map((i) => i.id)).toEqual([c.body.id]);
    const due = await json<{ items: Array<{ id: string }> }>(await t.call("GET", `v1/subject-requests?dueBefore=${encodeURIComponent("2027-03-15T00:00:00Z")}`, { key }));
    expect(due.items.map((i) => i.id)).toEqual([c.body.id, b.body.id]);
    const page1 = await json<{ items: unknown[]; nextCursor?: string }>(await t.call("GET", "v1/subject-requests?limit=2", { key }));
    expect(page1.items).toHaveLength(2);
    const page2 = await json<{ items: Array<{ id: string }> }>(await t.call("GET", `v1/subject-requests?limit=2&cursor=${page1.nextCursor}`, { key }));
    expect(page2.items.map((i) => i.id)).toEqual([a.body.id]);
    await expectProblem(await t.call("GET", "v1/subject-requests?status=open", { key }), 400, "invalid-parameter", "unknown status");
    await expectProblem(await t.call("GET", "v1/subject-requests?overdue=yes", { key }), 400, "invalid-parameter", "overdue=yes");

    const csv = await t.call("GET", "v1/subject-requests", { key, headers: { accept: "text/csv" } });
    expect(csv.headers.get("content-type")).toContain("text/csv");
    const lines = (await csv.text()).split("\r\n");
    expect(lines[0]).toBe("id,received,type,status,due,extended,completed,outcome");
    expect(lines.slice(1, 4).map((l) => l.split(",")[0])).toEqual([c.body.id, b.body.id, a.body.id]);
    expect(lines[1]).toBe(`${c.body.id},2027-01-01T10:00:00.000Z,access,awaiting-verification,2027-01-29T22:59:59.999Z,no,,`);
    // Accept is read as RFC 9110 writes it: q-values decide; nothing acceptable is 406.
    expect((await t.call("GET", "v1/subject-requests", { key, headers: { accept: "text/csv;q=0.4, application/json" } })).headers.get("content-type")).toContain("application/json");
    expect((await t.call("GET", "v1/subject-requests", { key, headers: { accept: "TEXT/CSV" } })).headers.get("content-type")).toContain("text/csv");
    await expectProblem(await t.call("GET", "v1/subject-requests", { key, headers: { accept: "image/png" } }), 406, "not-acceptable", "image/png");
  });

  it("answers 404 for another tenant's request, exactly as for one never issued", async () => {
    const r = await requested();
    const never = "dsr-aaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (const id of [r.id, never, "not-an-id"]) {
      for (const [method, route, body] of [
        ["GET", "", undefined],
        ["POST", "/verify", { code: r.code }],
        ["POST", "/vouch", { statement: "x" }],
        ["POST", "/resend", undefined],
        ["POST", "/extend", { reason: "x" }],
        ["POST", "/reject", { ground: "excessive", reason: "x" }],
        ["POST", "/cancel", { reason: "x" }],
        ["POST", "/retry", undefined],
      ] as const) {
        const res = await call(method, `v1/subject-requests/${id}${route}`, body, other.apiKey);
        expect([res.status, await problemType(res)], `${method} ${route} ${id}`).toEqual([404, "urn:safedata:problem:not-found"]);
      }
    }
    expect((await rawRequest(t, tenant.tenantId, r.id)).status).toBe("awaiting-verification");
  });
});

describe("no personal data held", () => {
  it("completes an access request about a subject held nowhere here, the same whether the address is known at another tenant", async () => {
    const email = person();
    // The address is a data subject at the other tenant: that changes nothing here.
    await uploadWith(t, other.apiKey, 10, { dataSubjects: [email] });
    const r = await requested({ subjectEmail: email });
    expect((await call("POST", `v1/subject-requests/${r.id}/verify`, { code: r.code })).status).toBe(200);
    const done = await waitForRequest(t, tenant.tenantId, r.id, (d) => d.status === "completed");
    expect(done.outcome).toBe("no-personal-data");
    const [mail] = await waitForMails(t, `dsr-completed-no-data-${r.id}`);
    expect(mail!.subject).toBe("Answer to your request to Acme ApS: no personal data held");

    // A subject of one of this tenant's uploads: something is held, so the access request is worked; this tenant has
    // saved no privacy information (Art. 15(1)), so it needs attention for that (the package is part 2's).
    const held = person();
    await uploadWith(t, tenant.apiKey, 10, { dataSubjects: [held] });
    const w = await requested({ subjectEmail: held });
    expect((await call("POST", `v1/subject-requests/${w.id}/verify`, { code: w.code })).status).toBe(200);
    await waitForRequest(t, tenant.tenantId, w.id, (d) => d.status === "needs-attention");
    const view = await json<{ status: string; attention: { reason: string } | null }>(await call("GET", `v1/subject-requests/${w.id}`));
    expect(view.status).toBe("needs-attention");
    expect(view.attention?.reason).toMatch(/^privacy-information-missing/);
  });
});
