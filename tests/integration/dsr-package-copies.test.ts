/**
 * Copies of personal data in access and portability packages, and what part 3's requests do to them and to the
 * person's other records: every destruction of an upload's content (a person's erasure, the sender's DELETE, the
 * 32-day expiry purge) purges every package holding a copy of it (GDPR Art. 17(1), 5(1)(e)), and the erasure
 * certificate counts those packages; a restricted person's content stays out of packages (Art. 18(2)); an erasure
 * keeps objections as a suppression record and withdraws consents in force (Art. 17(1)(b), 21(3)); a rectification
 * purges the person's built packages (Art. 16); active content is never placed in a zip where it would run.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { GppModel } from "@iabgpp/cmpapi";
import Ajv2020 from "ajv/dist/2020";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { sweep } from "../helpers/sweep";
import { createRequest, json, waitForMails, waitForRequest } from "../helpers/subject-requests";
import { purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { baseUpload, uploadWith } from "../helpers/uploads";
import { ManualClock } from "../../shared/domain/clock";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
let dir: string;

const texts = { purposes: "P", categories: "C", recipients: "R", retention: "T", rights: "Rights", complaint: "Complaint", source: "S", automatedDecisions: "None" };

beforeAll(async () => {
  t = await startTestApp({ clock: new ManualClock("2027-06-07T09:00:00.000Z") });
  a = await t.createTenant("Copies ApS");
  expect((await t.call("PUT", "v1/privacy-information", { key: a.apiKey, json: { en: texts, da: texts } })).status).toBe(201);
  dir = mkdtempSync(path.join(os.tmpdir(), "dsr-copies-"));
});
afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const person = (tag: string) => `${tag}${++n}.${Date.now()}@example.com`;

/** Records a request, vouches for the person, and waits until it is completed or needs attention. */
async function answered(body: Record<string, unknown>) {
  const r = await createRequest(t, a.apiKey, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect((await t.call("POST", `v1/subject-requests/${r.body.id}/vouch`, { key: a.apiKey, json: { statement: "ID checked." } })).status).toBe(200);
  return waitForRequest(t, a.tenantId, r.body.id, (d) => d.status === "completed" || d.status === "needs-attention" || (d.workState?.waitingFor ?? null) !== null, `the ${String(body.type)} request`);
}

/** An access request for `email` whose content decision includes `include` (uploads naming others too), built. */
async function builtAccess(email: string, include: string[] = []): Promise<string> {
  const r = await createRequest(t, a.apiKey, { type: "access", subjectEmail: email });
  expect(r.status).toBe(201);
  if (include.length > 0) {
    const d = await t.call("POST", `v1/subject-requests/${r.body.id}/include-content`, { key: a.apiKey, json: { uploadIds: include, reason: "The co-subject agreed." } });
    expect(d.status, await d.clone().text()).toBe(200);
  }
  expect((await t.call("POST", `v1/subject-requests/${r.body.id}/vouch`, { key: a.apiKey, json: { statement: "ID checked." } })).status).toBe(200);
  const done = await waitForRequest(t, a.tenantId, r.body.id, (d) => d.status === "completed" || d.status === "needs-attention", "the access request");
  expect(done.status, JSON.stringify(done.attention)).toBe("completed");
  expect((await t.services.packages.get(a.tenantId, r.body.id))?.state).toBe("ready");
  return r.body.id;
}

async function zipOf(requestId: string): Promise<{ names: string[]; read(entry: string): Buffer }> {
  const res = await t.call("GET", `v1/subject-requests/${requestId}/package/content`, { key: a.apiKey });
  expect(res.status, await res.clone().text().catch(() => "")).toBe(200);
  const file = path.join(dir, `${requestId}.zip`);
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  const names = execFileSync("unzip", ["-Z1", file], { encoding: "utf8" }).trim().split("\n");
  return { names, read: (entry) => execFileSync("unzip", ["-p", file, entry]) };
}

const packageBlobs = async (requestId: string) => {
  const names: string[] = [];
  for await (const x of t.raw.blobs.getContainerClient("payloads").listBlobsFlat({ prefix: `${a.tenantId}/${requestId}/`, includeUncommitedBlobs: true })) names.push(x.name);
  return names;
};

/** The package is purged for the named reason: key gone, blobs gone, the tenant's download refused saying why. */
async function expectPurgedForUpload(requestId: string, uploadId: string): Promise<void> {
  const pkg = await t.services.packages.get(a.tenantId, requestId);
  expect(pkg, "the package holding a copy").toMatchObject({ state: "purged", dataKey: null, content: null });
  expect(pkg?.purge).toMatchObject({ reason: "upload-deleted", uploadId });
  expect(await packageBlobs(requestId)).toEqual([]);
  const res = await t.call("GET", `v1/subject-requests/${requestId}/package/content`, { key: a.apiKey });
  expect(res.status).toBe(409);
  expect(JSON.stringify(await res.json())).toContain("upload");
  const view = await json<{ state: string; purgedReason: string | null }>(await t.call("GET", `v1/subject-requests/${requestId}/package`, { key: a.apiKey }));
  expect(view).toMatchObject({ state: "purged", purgedReason: "upload-deleted" });
}

describe("a package holding a copy of an upload's content", () => {
  it("is purged when a co-subject's erasure destroys the upload, and the certificate counts it", async () => {
    const jay = person("jay");
    const kim = person("kim");
    const shared = await uploadWith(t, a.apiKey, 40, { dataSubjects: [jay, kim], fileName: "jk.txt" });
    const jays = await builtAccess(jay, [shared.id]);
    const zip = await zipOf(jays);
    expect(zip.names.some((x) => x.startsWith(`files/${shared.id}/`))).toBe(true);

    const erasure = await answered({ type: "erasure", subjectEmail: kim });
    expect(erasure.status, JSON.stringify(erasure.attention)).toBe("completed");
    await expectPurgedForUpload(jays, shared.id);
    const cert = await json<{ record: { erased: Array<{ place: string; count: number }> } }>(await t.call("GET", `v1/subject-requests/${erasure.id}/certificate`, { key: a.apiKey }));
    expect(cert.record.erased.find((p) => p.place === "access-packages")?.count, "jay's package counted").toBe(1);
    const audit = await json<{ items: Array<{ action: string; target: { id: string }; details: Record<string, unknown> }> }>(await t.call("GET", "v1/audit?limit=200", { key: a.apiKey }));
    expect(audit.items.filter((e) => e.action === "subject-request.package-purged" && e.target.id === jays)).toHaveLength(1);
  });

  it("is purged when the sender deletes the upload", async () => {
    const eve = person("eve");
    const up = await uploadWith(t, a.apiKey, 40, { dataSubjects: [eve], fileName: "e.txt" });
    const gus = person("gus");
    await uploadWith(t, a.apiKey, 40, { dataSubjects: [gus] });
    const eves = await builtAccess(eve);
    const unrelatedPkg = await builtAccess(gus);
    expect((await t.call("DELETE", `v1/uploads/${up.id}`, { key: a.apiKey })).status).toBe(204);
    await expectPurgedForUpload(eves, up.id);
    // A package without a copy of it stays.
    expect((await t.services.packages.get(a.tenantId, unrelatedPkg))?.state).toBe("ready");
  });

  it("is purged when the upload expires, though the package's own download window is still open", async () => {
    const fay = person("fay");
    const up = await uploadWith(t, a.apiKey, 40, { dataSubjects: [fay], fileName: "f.txt", expiresInDays: 1 });
    const fays = await builtAccess(fay);
    t.clock.advance({ days: 1, minutes: 5 });
    await sweep(t);
    expect((await t.services.uploads.get(a.tenantId, up.id))?.status).toBe("expired");
    await expectPurgedForUpload(fays, up.id);
  });
});

describe("a restricted person's content (Art. 18(2))", () => {
  it("stays out of their own package and a co-subject's, its metadata listed with the reason", async () => {
    const rae = person("rae");
    const sam = person("sam");
    const own = await uploadWith(t, a.apiKey, 40, { dataSubjects: [rae], fileName: "rae.txt" });
    const shared = await uploadWith(t, a.apiKey, 40, { dataSubjects: [rae, sam], fileName: "rs.txt" });
    const free = await uploadWith(t, a.apiKey, 40, { dataSubjects: [sam], fileName: "sam.txt" });
    const restriction = await answered({ type: "restriction", subjectEmail: rae });
    expect(restriction.status, JSON.stringify(restriction.attention)).toBe("completed");

    for (const [who, include, expected] of [
      [rae, [shared.id], [own.id, shared.id]],
      [sam, [shared.id], [shared.id]],
    ] as const) {
      const id = await builtAccess(who, [...include]);
      const zip = await zipOf(id);
      const data = JSON.parse(zip.read("data.json").toString("utf8")) as { sections: { uploads: Array<{ id: string; content: { included: boolean; withheld: string | null } }> } };
      for (const upId of expected) {
        expect(data.sections.uploads.find((u) => u.id === upId)?.content, `${upId} in ${who}'s package`).toEqual({ included: false, path: null, withheld: "processing-restricted" });
        expect(zip.names.some((x) => x.startsWith(`files/${upId}/`)), `${upId} copied`).toBe(false);
      }
      expect(zip.read("index.html").toString("utf8")).toContain("Art. 18");
      if (who === sam) expect(zip.names.some((x) => x.startsWith(`files/${free.id}/`)), "an unrestricted upload's content is copied").toBe(true);
    }
  });
});

describe("an erasure and the person's objections and consents", () => {
  it("keeps objections as a suppression record, withdraws consents in force first, and says so on the certificate", async () => {
    const dave = person("dave");
    await purposeWithNotice(t, a.apiKey, "letters");
    await recordDecision(t, a.apiKey, { email: dave, purpose: "letters", noticeVersion: 1, decision: "granted" });
    const objection = await answered({ type: "objection", subjectEmail: dave, details: { purposes: ["direct-marketing"] } });
    expect(objection.status).toBe("completed");
    const refusedUpload = (extra: Record<string, unknown>) => t.call("POST", "v1/uploads", { key: a.apiKey, json: { ...baseUpload, size: 0, dataSubjects: [dave], ...extra } });
    expect((await refusedUpload({ purpose: "direct-marketing" })).status).toBe(403);
    expect((await refusedUpload({ consentPurpose: "letters" })).status).toBe(201);

    const erasure = await answered({ type: "erasure", subjectEmail: dave });
    expect(erasure.status, JSON.stringify(erasure.attention)).toBe("completed");
    // The objection still holds; the consent no longer does.
    expect((await refusedUpload({ purpose: "direct-marketing" })).status, "the objection survives the erasure").toBe(403);
    expect((await refusedUpload({ consentPurpose: "letters" })).status, "the consent was withdrawn by the erasure").toBe(403);
    const state = await stateOf(t, a.apiKey, dave);
    expect(state.states.find((x) => x.purpose === "letters")?.decision).toBe("withdrawn");
    // The suppression record: the keyed hash and the purposes only.
    const { resources } = await t.raw.containers.subjectRequests.items.query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'dsr-objection'", parameters: [{ name: "@t", value: a.tenantId }] }).fetchAll();
    const suppression = resources.find((d: { purposes: Array<{ purpose: string }> }) => d.purposes.some((p) => p.purpose === "direct-marketing"));
    expect(suppression.purposes).toEqual([{ purpose: "direct-marketing", requestId: null, since: null }]);
    const cert = await json<{ record: { consentsWithdrawn: string[]; erased: Array<{ place: string; count: number }>; kept: Array<{ kind: string; ground: string; groundText: string }> } }>(
      await t.call("GET", `v1/subject-requests/${erasure.id}/certificate`, { key: a.apiKey }),
    );
    expect(cert.record.consentsWithdrawn).toEqual(["letters"]);
    const page = await (await t.call("GET", `v1/subject-requests/${erasure.id}/certificate`, { key: a.apiKey, headers: { accept: "text/html" } })).text();
    expect(page).toContain("Art. 17(1)(b)");
    expect(page).toContain("letters");
    expect(cert.record.kept.find((k) => k.kind === "objection-suppression")).toMatchObject({ ground: "objection-suppression" });
    expect(cert.record.kept.find((k) => k.kind === "consent-history")?.groundText).toContain("withdrawn by this erasure");
    // Webhook deliveries are kept (ids only), listed as kept, not as erased.
    expect(cert.record.erased.map((p) => p.place)).not.toContain("webhook-deliveries");
    expect(cert.record.kept.map((k) => k.kind)).toContain("webhook-deliveries");
  });
});

describe("the consent records in a package", () => {
  it("carry the country with its source and database, the GPC conflict, the TCF and GPP strings with their headers, and the evidence file's metadata; data.json validates", async () => {
    const lea = person("lea");
    await purposeWithNotice(t, a.apiKey, "ads");
    const g = new GppModel();
    g.setFieldValue("uspv1", "Notice", "Y");
    g.setFieldValue("uspv1", "OptOutSale", "N");
    const gpp = g.encode();
    const rec = await t.call("POST", "v1/consents", {
      key: a.apiKey,
      json: { email: lea, method: "click", requestOrigin: "banner", purpose: "ads", noticeVersion: 1, decision: "granted", ipAddress: "80.62.117.1", gpc: true, gppString: gpp },
    });
    expect(rec.status, await rec.clone().text()).toBe(201);
    const event = (await rec.json()) as { id: string };
    const notice = Buffer.from("<html><body>Notice<script>alert(1)</script></body></html>");
    const put = await t.call("PUT", `v1/consents/${event.id}/evidence`, { key: a.apiKey, headers: { "content-type": "text/html" }, body: new Uint8Array(notice) });
    expect(put.status, await put.clone().text()).toBeLessThan(300);
    // An upload whose name would run when opened.
    const page = await uploadWith(t, a.apiKey, 30, { dataSubjects: [lea], fileName: "invoice.HTML" });

    const id = await builtAccess(lea);
    const zip = await zipOf(id);
    const data = JSON.parse(zip.read("data.json").toString("utf8")) as {
      sections: { consentRecords: Array<Record<string, unknown>>; uploads: Array<{ id: string; content: { path: string | null } }> };
    };
    const schema = (await (await t.call("GET", "v1/subject-package.schema.json")).json()) as object;
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    ajv.addFormat("date-time", (v: string) => !Number.isNaN(Date.parse(v)));
    expect(ajv.validate(schema, data), JSON.stringify(ajv.errors)).toBe(true);
    const c = data.sections.consentRecords[0]!;
    expect(c.country).toEqual({ country: "DK", source: "derived", database: t.services.ipCountry.database });
    expect(c.gpc).toBe(true);
    expect(c.conflictsWithGpc).toBe(true);
    expect(c.signals).toMatchObject({ tcf: null, gpp: { string: gpp, header: { sections: expect.arrayContaining(["uspv1"]) } } });
    expect(c.evidence).toMatchObject({ contentType: "text/html", size: notice.length, path: `files/consent-evidence/${event.id}.html.txt`, audit: { seq: expect.any(Number) } });
    // Nothing that runs when opened: the evidence page and the upload named .HTML are placed as text.
    expect(zip.names).toContain(`files/consent-evidence/${event.id}.html.txt`);
    expect(zip.names.filter((x) => x !== "index.html" && /\.(html?|svg|js)$/i.test(x))).toEqual([]);
    const up = data.sections.uploads.find((u) => u.id === page.id)!;
    expect(up.content.path).toBe(`files/${page.id}/invoice.HTML.txt`);
    expect(zip.read(up.content.path!).equals(page.content)).toBe(true);
    const index = zip.read("index.html").toString("utf8");
    expect(index).toContain(".html.txt");
    expect(index).toContain(gpp);
  });
});

describe("a rectification", () => {
  it("purges the person's built packages, which hold the old address, and lists them on its record", async () => {
    const old = person("old");
    const corrected = person("new");
    await uploadWith(t, a.apiKey, 30, { dataSubjects: [old] });
    const pkgId = await builtAccess(old);
    expect((await zipOf(pkgId)).read("data.json").toString("utf8")).toContain(old);
    const r = await answered({ type: "rectification", subjectEmail: old, details: { field: "email", value: corrected } });
    expect(r.status, JSON.stringify(r.attention)).toBe("completed");
    const pkg = await t.services.packages.get(a.tenantId, pkgId);
    expect(pkg).toMatchObject({ state: "purged", dataKey: null, content: null, purge: { reason: "rectification" } });
    expect(await packageBlobs(pkgId)).toEqual([]);
    const record = await json<{ record: { places: Array<{ place: string; count: number }> } }>(await t.call("GET", `v1/subject-requests/${r.id}/certificate`, { key: a.apiKey }));
    expect(record.record.places.find((p) => p.place === "access-packages")?.count).toBe(1);
  });
});

describe("answers that say what is so", () => {
  it("recipients-notified is refused when there was nobody to tell; a certificate of an access request says it has none; an expired package not yet purged is not called purged", async () => {
    const ola = person("ola");
    await uploadWith(t, a.apiKey, 30, { dataSubjects: [ola] });
    const pkgId = await builtAccess(ola);
    const cert = await t.call("GET", `v1/subject-requests/${pkgId}/certificate`, { key: a.apiKey });
    expect(cert.status).toBe(409);
    expect(JSON.stringify(await cert.json())).toContain("package");

    // The package's window ends; before the sweep purges it, the tenant is told it is over, not that it was purged.
    t.clock.advance({ days: 7, minutes: 1 });
    const late = await t.call("GET", `v1/subject-requests/${pkgId}/package/content`, { key: a.apiKey });
    expect(late.status).toBe(409);
    const detail = JSON.stringify(await late.json());
    expect(detail).toContain("next retention sweep");
    expect(detail).not.toContain("it was purged");

    // An erasure of a person whose uploads had no other recipient than themselves: nobody to tell.
    const pia = person("pia");
    await uploadWith(t, a.apiKey, 30, { dataSubjects: [pia], recipients: [pia] });
    const erasure = await answered({ type: "erasure", subjectEmail: pia });
    expect(erasure.status).toBe("completed");
    const told = await t.call("POST", `v1/subject-requests/${erasure.id}/recipients-notified`, { key: a.apiKey, json: {} });
    expect(told.status).toBe(409);
    expect(JSON.stringify(await told.json())).toContain("nobody to tell");
  });
});

describe("an objection", () => {
  it("to a consent purpose says that withdrawal applies, and the tenant is e-mailed what it must stop", async () => {
    const una = person("una");
    await purposeWithNotice(t, a.apiKey, "tips");
    const r = await answered({ type: "objection", subjectEmail: una, details: { purposes: ["tips", "profiling"] } });
    expect(r.status).toBe("completed");
    const rec = await json<{ record: { purposes: Array<{ purpose: string; mustStop: string }> } }>(await t.call("GET", `v1/subject-requests/${r.id}/certificate`, { key: a.apiKey }));
    expect(rec.record.purposes.find((p) => p.purpose === "tips")?.mustStop).toContain("Art. 7(3)");
    expect(rec.record.purposes.find((p) => p.purpose === "profiling")?.mustStop).not.toContain("Art. 7(3)");
    const [mail] = await waitForMails(t, `dsr-tenant-must-stop-${r.id}`);
    expect(mail!.text).toContain("tips");
    expect(mail!.text).toContain("profiling");
    expect(mail!.text).not.toContain(una);
  });
});
