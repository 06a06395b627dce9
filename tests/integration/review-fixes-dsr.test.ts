/**
 * Review B's data-subject request findings over HTTP against the real local services: the ground
 * identity-not-verified only for an unverified request (#4), resends while the first e-mail is still on its way (#5),
 * receivedAt and the recipients' `at` before 2000 (#6), and codes whose e-mail was never sent (#12).
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { EmailMessage } from "../../shared/email/email-sender";
import { startTestApp, type TestApp } from "../helpers/app";
import { expect } from "../helpers/expect";
import { createRequest, rawRequest, verificationOf, waitForMails } from "../helpers/subject-requests";
import { eventually } from "../helpers/eventually";
import { baseUpload } from "../helpers/uploads";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
/** Sends to addresses that start with this fail (the e-mail service is outside the product); each failed message is kept. */
let failFor: string | undefined;
const failed: EmailMessage[] = [];

beforeAll(async () => {
  t = await startTestApp();
  t.clock.set("2026-11-30T08:00:00.000Z");
  tenant = await t.createTenant("Review Requests ApS");
  const send = t.services.email.send.bind(t.services.email);
  t.services.email.send = async (m: EmailMessage) => {
    if (failFor && m.to.some((a) => a.startsWith(failFor!))) {
      failed.push(m);
      throw new Error("the e-mail service is down");
    }
    return send(m);
  };
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `review.dsr.${++n}.${Date.now()}@example.com`;
const call = (method: string, route: string, body?: unknown) => t.call(method, route, { key: tenant.apiKey, json: body });
const json = async <T = Record<string, unknown>>(res: Response): Promise<T> => (await res.json()) as T;

/** A request about a person the tenant holds an upload about (so the work waits for the tenant, not answered at once). */
async function requested() {
  const email = person();
  expect((await call("POST", "v1/uploads", { ...baseUpload, size: 1, dataSubjects: [email] })).status).toBe(201);
  const r = await createRequest(t, tenant.apiKey, { subjectEmail: email });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const [mail] = await waitForMails(t, `dsr-verification-${r.body.id}-`);
  return { id: r.body.id, email, ...verificationOf(mail!) };
}

describe("#4 rejecting on identity-not-verified", () => {
  it("is refused (422, ground) for a verified request, by code or by vouching; other grounds are not", async () => {
    const byCode = await requested();
    expect((await call("POST", `v1/subject-requests/${byCode.id}/verify`, { code: byCode.code })).status).toBe(200);
    const refused = await call("POST", `v1/subject-requests/${byCode.id}/reject`, { ground: "identity-not-verified", reason: "We could not confirm who you are." });
    expect(refused.status).toBe(422);
    expect((await json<{ errors: Array<{ path: string }> }>(refused)).errors[0]!.path).toBe("ground");
    expect((await rawRequest(t, tenant.tenantId, byCode.id)).status).not.toBe("rejected");

    const vouched = await requested();
    expect((await call("POST", `v1/subject-requests/${vouched.id}/vouch`, { statement: "Checked the passport at the counter." })).status).toBe(200);
    expect((await call("POST", `v1/subject-requests/${vouched.id}/reject`, { ground: "identity-not-verified", reason: "x" })).status).toBe(422);
    expect((await call("POST", `v1/subject-requests/${vouched.id}/reject`, { ground: "excessive", reason: "The fifth identical request this month." })).status).toBe(200);
  });

  it("is allowed for a request not verified", async () => {
    const r = await requested();
    expect((await call("POST", `v1/subject-requests/${r.id}/reject`, { ground: "identity-not-verified", reason: "The person did not answer." })).status).toBe(200);
  });
});

describe("#6 receivedAt and the recipients' time have a lower bound", () => {
  it("receivedAt 0001-01-01 and 1582-10-10 are refused with 422, never a due date in 1901", async () => {
    for (const receivedAt of ["0001-01-01T00:00:00Z", "1582-10-10T00:00:00Z", "1999-12-31T00:00:00Z"]) {
      const r = await createRequest(t, tenant.apiKey, { subjectEmail: person(), receivedAt, lateReason: "Found in an old mailbox." });
      expect(r.status, receivedAt).toBe(422);
      expect(JSON.stringify(r.body)).toContain("receivedAt");
    }
  });
  it("the recipients-notified `at` before 2000 is refused", async () => {
    const r = await call("POST", "v1/subject-requests/dsr-aaaaaaaaaaaaaaaaaaaaaaaaaa/recipients-notified", { at: "0001-01-01T00:00:00Z" });
    expect(r.status).toBe(422);
  });
});

describe("#5/#12 verification e-mails that have not gone out", () => {
  it("resends while the first e-mail is on its way neither count nor use up the resends", async () => {
    const email = person();
    failFor = email;
    try {
      const r = await createRequest(t, tenant.apiKey, { subjectEmail: email });
      expect(r.status).toBe(201);
      for (let i = 0; i < 3; i++) expect((await call("POST", `v1/subject-requests/${r.body.id}/resend`)).status).toBe(200);
      const doc = await rawRequest(t, tenant.tenantId, r.body.id);
      expect(doc.verification).toMatchObject({ resends: 0, requested: 1 });
      failFor = undefined;
      t.host.pokeQueues();
      await eventually(async () => {
        const d = await rawRequest(t, tenant.tenantId, r.body.id);
        if (d.status === "needs-attention") expect((await call("POST", `v1/subject-requests/${r.body.id}/retry`)).status).toBe(200);
        expect(d.verification.sent).toBe(1);
      }, 60_000, 200);
      // Now a resend counts and sends.
      expect((await call("POST", `v1/subject-requests/${r.body.id}/resend`)).status).toBe(200);
      await waitForMails(t, `dsr-verification-${r.body.id}-`, 2);
      expect((await rawRequest(t, tenant.tenantId, r.body.id)).verification).toMatchObject({ resends: 1, requested: 2, sent: 2 });
    } finally {
      failFor = undefined;
    }
  });

  it("a code whose e-mail failed to send is not accepted; the one that was sent is", async () => {
    const email = person();
    failFor = email;
    let id = "";
    try {
      const r = await createRequest(t, tenant.apiKey, { subjectEmail: email });
      id = r.body.id;
      t.host.pokeQueues();
      await eventually(async () => expect(failed.some((m) => m.to.includes(email))).toBe(true), 30_000, 50);
    } finally {
      failFor = undefined;
    }
    const unsent = verificationOf({ ...failed.find((m) => m.to.includes(email))!, messageId: "", html: null } as never);
    t.host.pokeQueues();
    await eventually(async () => {
      const d = await rawRequest(t, tenant.tenantId, id);
      if (d.status === "needs-attention") expect((await call("POST", `v1/subject-requests/${id}/retry`)).status).toBe(200);
      expect(d.verification.sent).toBe(1);
    }, 60_000, 200);
    const [mail] = await waitForMails(t, `dsr-verification-${id}-`);
    const sent = verificationOf(mail!);
    if (unsent.code !== sent.code) {
      const res = await call("POST", `v1/subject-requests/${id}/verify`, { code: unsent.code });
      expect(res.status).toBe(422);
      expect((await rawRequest(t, tenant.tenantId, id)).verification.wrongTries).toBe(1);
    }
    // The unsent link does not work either.
    const page = await fetch(`${t.api.replace(/\/api$/, "")}${unsent.path}`, { method: "POST" });
    expect(page.status).toBe(403);
    expect((await call("POST", `v1/subject-requests/${id}/verify`, { code: sent.code })).status).toBe(200);
  });
});
