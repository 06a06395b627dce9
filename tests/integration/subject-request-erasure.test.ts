/**
 * Erasure requests end to end (GDPR Art. 17, 19): every upload naming the person (as a data subject or a recipient) is
 * crypto-shredded and deleted with reason subject-request, their other closed requests lose their fields, consent proof
 * is kept on Art. 17(3)(e) and listed, the certificate (JSON and printable HTML) counts and hashes what was erased,
 * lists what was kept and why and is signed by the audit entry that records it, the chain stays intact, the recipients
 * are listed for Art. 19 and recipients-notified records the tenant told them; the person's access packages are purged;
 * another tenant's data about the same address is untouched.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { createRequest, json, rawRequest, waitForRequest } from "../helpers/subject-requests";
import { download, uploadWith } from "../helpers/uploads";
import { purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { canonicalJson } from "../../shared/domain/audit-chain";
import type { UploadDoc } from "../../shared/stores/upload-store";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
let b: { tenantId: string; apiKey: string };

beforeAll(async () => {
  t = await startTestApp();
  a = await t.createTenant("Erase A ApS");
  b = await t.createTenant("Erase B ApS");
});
afterAll(async () => {
  await t?.stop();
});

const rawUpload = async (tenantId: string, id: string) => (await t.raw.containers.uploads.item(id, tenantId).read<UploadDoc>()).resource!;
const blobsOf = async (tenantId: string, id: string) => {
  const names: string[] = [];
  for await (const x of t.raw.blobs.getContainerClient("payloads").listBlobsFlat({ prefix: `${tenantId}/${id}/`, includeUncommitedBlobs: true })) names.push(x.name);
  return names;
};
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

async function erasureOf(key: string, tenantId: string, email: string, details?: Record<string, unknown>) {
  const r = await createRequest(t, key, { type: "erasure", subjectEmail: email, ...(details ? { details } : {}) });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect((await t.call("POST", `v1/subject-requests/${r.body.id}/vouch`, { key, json: { statement: "ID checked in person." } })).status).toBe(200);
  return waitForRequest(t, tenantId, r.body.id, (d) => d.status === "completed" || d.status === "needs-attention", "the erasure");
}

describe("an erasure request", () => {
  it("erases every upload naming the person, keeps consent proof with its ground, and certifies it signed by the audit chain", async () => {
    const person = `Pat.Erase.${Date.now()}@Example.com`;
    const asSubject = await uploadWith(t, a.apiKey, 64, { dataSubjects: [person, "other@subject.example"] });
    const asRecipient = await uploadWith(t, a.apiKey, 64, { recipients: ["dora@recipient.example", person.toLowerCase()], dataSubjects: ["someone@subject.example"] });
    const unrelated = await uploadWith(t, a.apiKey, 64);
    const elsewhere = await uploadWith(t, b.apiKey, 64, { dataSubjects: [person] });
    await purposeWithNotice(t, a.apiKey, "newsletter");
    await recordDecision(t, a.apiKey, { email: person, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    // An earlier request of the person, closed: its fields go with the erasure.
    const earlier = await createRequest(t, a.apiKey, { type: "objection", subjectEmail: person, details: { purposes: ["profiling"] } });
    expect((await t.call("POST", `v1/subject-requests/${earlier.body.id}/cancel`, { key: a.apiKey, json: { reason: "Asked again later." } })).status).toBe(200);

    const done = await erasureOf(a.apiKey, a.tenantId, person);
    expect(done.status, JSON.stringify(done.attention)).toBe("completed");
    expect(done.outcome).toBe("fulfilled");

    // Content unreadable and gone; fields and keyed hashes gone; a tombstone with the reason stays.
    for (const id of [asSubject.id, asRecipient.id]) {
      const raw = await rawUpload(a.tenantId, id);
      expect(raw, id).toMatchObject({ status: "deleted", dataKey: null, personal: null, lookups: { subjects: [], recipients: [] } });
      expect(raw.deletion?.reason).toBe("subject-request");
      expect(await blobsOf(a.tenantId, id), id).toEqual([]);
      const d = await download(t, a.apiKey, id);
      expect(d.res.status).toBe(410);
    }
    expect((await download(t, a.apiKey, unrelated.id)).body.equals(unrelated.content)).toBe(true);
    // The same address at another tenant: untouched.
    const other = await rawUpload(b.tenantId, elsewhere.id);
    expect(other.status).toBe("available");
    expect(other.lookups.subjects).toHaveLength(1);
    expect((await download(t, b.apiKey, elsewhere.id)).body.equals(elsewhere.content)).toBe(true);

    // The earlier request's fields are erased; its anonymous record stays.
    const earlierRaw = await rawRequest(t, a.tenantId, earlier.body.id);
    expect(earlierRaw).toMatchObject({ personal: null, dataKey: null, subjectHash: null, status: "cancelled" });
    expect(earlierRaw.erasedAt).not.toBeNull();

    // The certificate.
    const res = await t.call("GET", `v1/subject-requests/${done.id}/certificate`, { key: a.apiKey });
    expect(res.status).toBe(200);
    const cert = await json<{
      kind: string;
      record: { erased: Array<{ place: string; count: number; idsSha256: string }>; kept: Array<{ kind: string; ground: string; groundText: string; until: string | null }>; recipientCount: number; erasedAt: string };
      recordSha256: string;
      signedBy: { auditSeq: number; auditHash: string };
      recipients: string[];
      recipientsNotified: unknown;
    }>(res);
    expect(cert.kind).toBe("erasure");
    const uploads = cert.record.erased.find((p) => p.place === "uploads")!;
    expect(uploads.count).toBe(2);
    expect(uploads.idsSha256).toBe(sha256([asSubject.id, asRecipient.id].sort().join("\n")));
    expect(cert.record.erased.find((p) => p.place === "requests")).toMatchObject({ count: 1, idsSha256: sha256(earlier.body.id) });
    const consentKept = cert.record.kept.filter((k) => k.kind === "consent-history");
    expect(consentKept, "consent proof is kept").toHaveLength(1);
    expect(consentKept[0]!.ground).toBe("legal-claims-consent-proof");
    expect(consentKept[0]!.groundText).toContain("Art. 17(3)(e)");
    expect(cert.record.kept.map((k) => k.kind)).toEqual(expect.arrayContaining(["audit-chain", "request", "tombstones"]));
    // Art. 19: the recipients as stored, never the person.
    expect(cert.recipients.sort()).toEqual(["anna@recipient.example", "bo@recipient.example", "dora@recipient.example"]);
    expect(cert.record.recipientCount).toBe(3);
    expect(JSON.stringify(cert.record)).not.toContain("@");
    // Signed by the audit chain: the entry names the record's SHA-256, and the chain verifies.
    expect(cert.recordSha256).toBe(sha256(canonicalJson(cert.record)));
    const audit = await json<{ items: Array<{ seq: number; action: string; hash: string; details: Record<string, unknown> }> }>(await t.call("GET", "v1/audit?limit=200", { key: a.apiKey }));
    const entry = audit.items.find((e) => e.seq === cert.signedBy.auditSeq)!;
    expect(entry.action).toBe("subject-request.erasure-certified");
    expect(entry.details.recordSha256).toBe(cert.recordSha256);
    expect(entry.hash).toBe(cert.signedBy.auditHash);
    expect(audit.items.filter((e) => e.action === "subject-request.erasure-certified")).toHaveLength(1);
    expect(audit.items.filter((e) => e.action === "upload.deleted" && e.details.reason === "subject-request")).toHaveLength(2);
    expect(JSON.stringify(audit.items)).not.toContain(person.toLowerCase());
    const verify = await json<{ valid: boolean }>(await t.call("GET", "v1/audit/verify", { key: a.apiKey }));
    expect(verify.valid).toBe(true);

    // Printable HTML, negotiated.
    const page = await t.call("GET", `v1/subject-requests/${done.id}/certificate`, { key: a.apiKey, headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain(uploads.idsSha256);
    expect(html).toContain("dora@recipient.example");
    expect(html).not.toContain("<script");
    expect((await t.call("GET", `v1/subject-requests/${done.id}/certificate`, { key: a.apiKey, headers: { accept: "image/png" } })).status).toBe(406);
    // Another tenant's key: 404.
    expect((await t.call("GET", `v1/subject-requests/${done.id}/certificate`, { key: b.apiKey })).status).toBe(404);

    // Art. 19: the tenant records that it told the recipients, once.
    const toldAt = new Date(done.receivedAt).toISOString();
    const told = await t.call("POST", `v1/subject-requests/${done.id}/recipients-notified`, { key: a.apiKey, json: { at: toldAt } });
    expect(told.status, await told.clone().text()).toBe(200);
    expect(await json(told)).toMatchObject({ recipientCount: 3, recipientsNotified: { at: toldAt } });
    const again = await t.call("POST", `v1/subject-requests/${done.id}/recipients-notified`, { key: a.apiKey, json: {} });
    expect(await json(again)).toMatchObject({ recipientsNotified: { at: toldAt } });
    const future = await t.call("POST", `v1/subject-requests/${done.id}/recipients-notified`, { key: a.apiKey, json: { at: "2999-01-01T00:00:00Z" } });
    expect(future.status).toBe(422);
  });

  it("purges the person's access packages (their key first, then the zip) and counts them in the certificate", async () => {
    const person = `Paula.${Date.now()}@example.com`;
    const texts = { purposes: "P", categories: "C", recipients: "R", retention: "T", rights: "Rights", complaint: "Complaint", source: "S", automatedDecisions: "None" };
    expect([200, 201]).toContain((await t.call("PUT", "v1/privacy-information", { key: a.apiKey, json: { en: texts, da: texts } })).status);
    await uploadWith(t, a.apiKey, 32, { dataSubjects: [person] });
    const access = await createRequest(t, a.apiKey, { type: "access", subjectEmail: person });
    expect((await t.call("POST", `v1/subject-requests/${access.body.id}/vouch`, { key: a.apiKey, json: { statement: "ID checked." } })).status).toBe(200);
    const answered = await waitForRequest(t, a.tenantId, access.body.id, (d) => d.status === "completed" || d.status === "needs-attention", "the access request");
    expect(answered.status, JSON.stringify(answered.attention)).toBe("completed");
    const pkg = await t.services.packages.get(a.tenantId, access.body.id);
    expect(pkg?.state).toBe("ready");
    expect(await blobsOf(a.tenantId, access.body.id)).not.toEqual([]);

    const done = await erasureOf(a.apiKey, a.tenantId, person);
    expect(done.status, JSON.stringify(done.attention)).toBe("completed");
    const purged = await t.services.packages.get(a.tenantId, access.body.id);
    expect(purged).toMatchObject({ state: "purged", dataKey: null, content: null });
    expect(await blobsOf(a.tenantId, access.body.id)).toEqual([]);
    expect((await t.call("GET", `v1/subject-requests/${access.body.id}/package/content`, { key: a.apiKey })).status).not.toBe(200);
    const cert = await json<{ record: { erased: Array<{ place: string; count: number; idsSha256: string }> } }>(await t.call("GET", `v1/subject-requests/${done.id}/certificate`, { key: a.apiKey }));
    expect(cert.record.erased.find((p) => p.place === "access-packages")).toMatchObject({ count: 1, idsSha256: sha256(access.body.id) });
    // The access request itself was closed: its fields are erased too.
    expect((await rawRequest(t, a.tenantId, access.body.id)).personal).toBeNull();
  });

  it("erases consent proof too when the tenant says so (details.consentProof: erase), and lists nothing of it as kept", async () => {
    const person = `Carla.${Date.now()}@example.com`;
    await purposeWithNotice(t, a.apiKey, "promotions");
    await recordDecision(t, a.apiKey, { email: person, purpose: "promotions", noticeVersion: 1, decision: "granted" });
    const before = await stateOf(t, a.apiKey, person);
    expect(before.subjectId).not.toBeNull();
    const eventIds = before.history.map((e) => e.id);

    const done = await erasureOf(a.apiKey, a.tenantId, person, { consentProof: "erase" });
    expect(done.status, JSON.stringify(done.attention)).toBe("completed");
    expect((await stateOf(t, a.apiKey, person)).subjectId).toBeNull();
    for (const id of eventIds) expect((await t.call("GET", `v1/consents/${id}`, { key: a.apiKey })).status, id).toBe(404);
    const cert = await json<{ record: { erased: Array<{ place: string; count: number }>; kept: Array<{ kind: string }> } }>(await t.call("GET", `v1/subject-requests/${done.id}/certificate`, { key: a.apiKey }));
    expect(cert.record.erased.find((p) => p.place === "consent-records")?.count).toBe(1);
    expect(cert.record.kept.filter((k) => k.kind === "consent-history")).toEqual([]);
    // Only an erasure may say it.
    const wrong = await createRequest(t, a.apiKey, { type: "access", subjectEmail: person, details: { consentProof: "erase" } });
    expect(wrong.status).toBe(422);
  });

  it("of a person the tenant holds nothing about completes as no personal data held, and has no certificate", async () => {
    const r = await erasureOf(a.apiKey, a.tenantId, `nobody.${Date.now()}@example.com`);
    expect(r.outcome).toBe("no-personal-data");
    const res = await t.call("GET", `v1/subject-requests/${r.id}/certificate`, { key: a.apiKey });
    expect(res.status).toBe(409);
    expect((await t.call("POST", `v1/subject-requests/${r.id}/recipients-notified`, { key: a.apiKey, json: {} })).status).toBe(409);
  });
});
