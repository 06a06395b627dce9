/**
 * Rectification requests (GDPR Art. 16, 19): the person's e-mail address is corrected wherever the service stores it
 * for the tenant (uploads' recipients, data subjects and first-download address; consent subjects; requests; their
 * restriction and objection records), keyed hashes included, so the old address (and its keyed hash) remains nowhere in
 * the live raw documents; the recipients are listed for Art. 19; another tenant's data with the same address is
 * untouched; a field the service does not store is answered as such.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { createRequest, json, waitForRequest } from "../helpers/subject-requests";
import { download, uploadWith } from "../helpers/uploads";
import { purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { lookupHash, normaliseEmail } from "../../shared/crypto";
import { maskEmail } from "../../shared/domain/uploads";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
let b: { tenantId: string; apiKey: string };

beforeAll(async () => {
  t = await startTestApp();
  a = await t.createTenant("Rectify A ApS");
  b = await t.createTenant("Rectify B ApS");
});
afterAll(async () => {
  await t?.stop();
});

const call = (method: string, route: string, body?: unknown, key = a.apiKey) => t.call(method, route, { key, json: body });

async function completed(type: string, email: string, details?: Record<string, unknown>) {
  const r = await createRequest(t, a.apiKey, { type, subjectEmail: email, ...(details ? { details } : {}) });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect((await call("POST", `v1/subject-requests/${r.body.id}/vouch`, { statement: "Known customer." })).status).toBe(200);
  return waitForRequest(t, a.tenantId, r.body.id, (d) => d.status === "completed" || d.status === "needs-attention", type);
}

/** Every live raw document of the tenant in the containers the service keeps people's data in, as JSON text. */
async function rawDocs(tenantId: string): Promise<Array<{ container: string; id: string; type: string; text: string }>> {
  const out: Array<{ container: string; id: string; type: string; text: string }> = [];
  for (const name of ["uploads", "consents", "subjectRequests"] as const) {
    const { resources } = await t.raw.containers[name].items.query({ query: "SELECT * FROM c" }, { partitionKey: tenantId }).fetchAll();
    for (const d of resources as Array<{ id: string; type: string }>) out.push({ container: name, id: d.id, type: d.type, text: JSON.stringify(d) });
  }
  return out;
}

describe("a rectification of the e-mail address", () => {
  it("leaves the old address and its keyed hash nowhere in the live raw documents", async () => {
    const stamp = Date.now();
    const old = `Olga.Old.${stamp}@Example.com`;
    const fresh = `olga.new.${stamp}@example.org`;
    const secretA = await t.services.keys.lookupSecret(a.tenantId);
    const oldHash = lookupHash(secretA, normaliseEmail(old));
    const newHash = lookupHash(secretA, normaliseEmail(fresh));

    const asSubject = await uploadWith(t, a.apiKey, 16, { dataSubjects: [old, "x@subject.example"] });
    const asRecipient = await uploadWith(t, a.apiKey, 16, { recipients: [old.toLowerCase(), "r@recipient.example"], notifyOnFirstDownload: old });
    await purposeWithNotice(t, a.apiKey, "letters");
    await recordDecision(t, a.apiKey, { email: old, purpose: "letters", noticeVersion: 1, decision: "granted" });
    const objection = await completed("objection", old, { purposes: ["profiling"] });
    expect(objection.status).toBe("completed");
    // The same address at another tenant.
    const elsewhere = await uploadWith(t, b.apiKey, 16, { dataSubjects: [old] });
    const bBefore = (await t.raw.containers.uploads.item(elsewhere.id, b.tenantId).read()).resource as { lookups: unknown; personal: unknown };

    const before = await rawDocs(a.tenantId);
    expect(before.some((d) => d.text.includes(oldHash)), "the old hash is stored before").toBe(true);

    const done = await completed("rectification", old, { field: "email", value: fresh });
    expect(done.status, JSON.stringify(done.attention)).toBe("completed");

    // Nowhere in the live documents: neither the address (any case) nor its keyed hash. The one exception is each
    // consent event's subjectHash, covered by the event's digest held in the audit chain (README, Known limits).
    for (const d of await rawDocs(a.tenantId)) {
      expect(d.text.toLowerCase().includes(old.toLowerCase()), `${d.container}/${d.id}`).toBe(false);
      const text = d.type === "consent-event" ? d.text.replace(`"subjectHash":"${oldHash}"`, "") : d.text;
      expect(text.includes(oldHash), `${d.container}/${d.type}/${d.id} holds the old keyed hash`).toBe(false);
    }
    // The new address is found everywhere the old one was.
    const up = (await t.raw.containers.uploads.item(asSubject.id, a.tenantId).read()).resource as { lookups: { subjects: string[] } };
    expect(up.lookups.subjects).toContain(newHash);
    const view = await json<{ recipients: { masked: string[] } }>(await call("GET", `v1/uploads/${asRecipient.id}`));
    expect(view.recipients.masked).toContain(maskEmail(fresh));
    expect((await stateOf(t, a.apiKey, fresh)).states.find((s) => s.purpose === "letters")?.decision).toBe("granted");
    expect((await stateOf(t, a.apiKey, old)).subjectId).toBeNull();
    const req = await json<{ subjectEmail: string }>(await call("GET", `v1/subject-requests/${objection.id}`));
    expect(req.subjectEmail).toBe(maskEmail(fresh));
    // Its objection follows the person to the new address.
    const refused = await call("POST", "v1/uploads", { senderReference: "r", recipients: ["r@recipient.example"], dataSubjects: [fresh], categories: ["financial"], fileName: "f.pdf", contentType: "application/pdf", size: 0, purpose: "profiling" });
    expect(refused.status).toBe(403);
    // Downloads still work (the content was not touched).
    expect((await download(t, a.apiKey, asSubject.id)).body.equals(asSubject.content)).toBe(true);

    // The record: counts and hashes; the recipients for Art. 19 (as stored, without the person).
    const cert = await json<{ kind: string; record: { corrected: boolean; places: Array<{ place: string; count: number }> }; recipients: string[] }>(await call("GET", `v1/subject-requests/${done.id}/certificate`));
    expect(cert.kind).toBe("rectification");
    expect(cert.record.corrected).toBe(true);
    expect(cert.record.places.find((p) => p.place === "uploads")?.count).toBe(2);
    expect(cert.record.places.find((p) => p.place === "requests")?.count).toBe(2);
    expect(cert.record.places.find((p) => p.place === "consent-records")?.count).toBe(1);
    expect(cert.recipients.sort()).toEqual(["anna@recipient.example", "bo@recipient.example", "r@recipient.example"]);
    const audit = await json<{ items: Array<{ action: string; target: { id: string } | null }> }>(await call("GET", "v1/audit?limit=200"));
    expect(audit.items.filter((e) => e.action === "subject-request.rectified" && e.target?.id === done.id)).toHaveLength(1);

    // Another tenant: untouched.
    const bAfter = (await t.raw.containers.uploads.item(elsewhere.id, b.tenantId).read()).resource as { lookups: unknown; personal: unknown };
    expect(bAfter.lookups).toEqual(bBefore.lookups);
    expect(bAfter.personal).toEqual(bBefore.personal);
  });

  it("of a field the service does not store is answered as not stored; a value that is not an address needs attention", async () => {
    const email = `pia.${Date.now()}@example.com`;
    await uploadWith(t, a.apiKey, 8, { dataSubjects: [email] });
    const name = await completed("rectification", email, { field: "name", value: "Pia Hansen" });
    expect(name.status).toBe("completed");
    const cert = await json<{ record: { corrected: boolean; note: string } }>(await call("GET", `v1/subject-requests/${name.id}/certificate`));
    expect(cert.record.corrected).toBe(false);
    expect(cert.record.note).toContain("only the e-mail address");
    const bad = await completed("rectification", email, { field: "email", value: "not an address" });
    expect(bad.status).toBe("needs-attention");
    expect(bad.attention?.reason).toContain("must be an e-mail address");
  });
});
