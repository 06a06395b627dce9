/**
 * Access and portability packages end to end: the privacy information a package needs (and the attention an access
 * request needs without it); what goes in for a person who is a data subject, a recipient, both, and neither; content
 * naming several data subjects waiting for the tenant's decision (Art. 15(4)); portability's narrower scope; the zip
 * opens with the standard unzip tool and data.json validates against its published schema; index.html escapes
 * everything; the tenant's and the person's downloads are counted and audited; the link expires and the retention
 * sweep purges the package with a receipt; nothing of another tenant's data, even for the same address.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import Ajv2020 from "ajv/dist/2020";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice, recordDecision } from "../helpers/consents";
import { sweep } from "../helpers/sweep";
import { createRequest, json, waitForMails, waitForRequest, type Mail } from "../helpers/subject-requests";
import { uploadWith } from "../helpers/uploads";
import { ManualClock } from "../../shared/domain/clock";

let t: TestApp;
let a: { tenantId: string; apiKey: string };
let b: { tenantId: string; apiKey: string };
let dir: string;

const texts = (lang: string) => ({
  purposes: `${lang}: to send the files you asked for`,
  categories: `${lang}: contact details, payslips`,
  recipients: `${lang}: the people you named`,
  retention: `${lang}: 32 days`,
  rights: `${lang}: you may ask for rectification, erasure, restriction, or object`,
  complaint: `${lang}: Datatilsynet`,
  source: `${lang}: you, or your employer`,
  automatedDecisions: `${lang}: none`,
});
const privacy = { en: texts("en"), da: texts("da") };

beforeAll(async () => {
  t = await startTestApp({ clock: new ManualClock("2027-05-03T09:00:00.000Z") });
  a = await t.createTenant("Acme <ApS> & Co");
  b = await t.createTenant("Other A/S");
  dir = mkdtempSync(path.join(os.tmpdir(), "dsr-package-"));
  expect((await t.call("PUT", "v1/privacy-information", { key: a.apiKey, json: privacy })).status).toBe(201);
  await purposeWithNotice(t, a.apiKey, "newsletter");
});
afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const person = (tag: string) => `${tag}${++n}.${Date.now()}@example.com`;

/** Records a request, vouches for the person, and returns its id. */
async function vouched(key: string, body: Record<string, unknown>): Promise<string> {
  const r = await createRequest(t, key, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect((await t.call("POST", `v1/subject-requests/${r.body.id}/vouch`, { key, json: { statement: "Checked the passport" } })).status).toBe(200);
  return r.body.id;
}

/** Downloads a zip from `res`, checks it with `unzip -t`, and returns its entries' names and a reader. */
async function unzipped(res: Response, name: string): Promise<{ names: string[]; read(entry: string): Buffer; file: string }> {
  expect(res.status, await res.clone().text().catch(() => "")).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/zip");
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(Number(res.headers.get("content-length"))).toBe(bytes.length);
  const file = path.join(dir, `${name}.zip`);
  writeFileSync(file, bytes);
  // The standard tool tests every entry's CRC.
  expect(execFileSync("unzip", ["-t", file], { encoding: "utf8" })).toMatch(/No errors detected/);
  const names = execFileSync("unzip", ["-Z1", file], { encoding: "utf8" }).trim().split("\n");
  return { names, file, read: (entry) => execFileSync("unzip", ["-p", file, entry], { maxBuffer: 64 * 1024 * 1024 }) };
}

interface DataJson {
  schemaVersion: number;
  scope: string;
  subject: { email: string };
  privacyInformation: Record<string, string> | null;
  sections: {
    uploads: Array<{ id: string; role: { dataSubject: boolean; recipient: boolean }; fileName: string | null; content: { included: boolean; path: string | null; withheld: string | null }; otherDataSubjects?: number }>;
    consentRecords: Array<{ purpose: string; decision: string; ipAddress: string | null; proof: { digest: string }; evidence: { path: string; contentType: string } | null }>;
    earlierRequests: Array<{ id: string; status: string }>;
  };
}

let schema: object;
async function validate(data: unknown): Promise<void> {
  schema ??= (await (await t.call("GET", "v1/subject-package.schema.json")).json()) as object;
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  ajv.addFormat("date-time", (v: string) => !Number.isNaN(Date.parse(v)));
  const ok = ajv.validate(schema, data);
  expect(ok, JSON.stringify(ajv.errors)).toBe(true);
}

const linkOf = (mail: Mail) => {
  const m = /(https?:\/\/\S+\/api\/public\/subject-request-packages\/(\S+))/.exec(mail.text);
  if (!m) throw new Error("no package link in the e-mail");
  return { url: m[1]!, token: m[2]! };
};

interface AuditItem {
  action: string;
  actor: string;
  details: Record<string, unknown>;
}
/** Every audit entry of the tenant with this action, oldest first. */
async function auditOf(key: string, action: string): Promise<AuditItem[]> {
  const out: AuditItem[] = [];
  for (let cursor: string | undefined; ; ) {
    const page = await json<{ items: AuditItem[]; nextCursor?: string }>(await t.call("GET", `v1/audit?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key }));
    out.push(...page.items.filter((x) => x.action === action));
    if (!page.nextCursor) return out;
    cursor = page.nextCursor;
  }
}

describe("an access package", () => {
  const email = person("both");
  const files: Record<string, Buffer> = {};
  const ids = { alone: "", recipient: "", shared: "", own: "" };
  let requestId: string;
  let earlier: string;
  let evidence: Buffer;
  let eventId: string;

  const other = person("someone-else");

  beforeAll(async () => {
    // The person is the one data subject; a recipient only; one of two data subjects; provided it themselves.
    const alone = await uploadWith(t, a.apiKey, 3000, { dataSubjects: [email], fileName: "<b>payslip</b> & \"notes\".pdf" });
    const recipient = await uploadWith(t, a.apiKey, 500, { dataSubjects: [other], recipients: [email.toUpperCase()], fileName: "for-you.pdf" });
    const shared = await uploadWith(t, a.apiKey, 700, { dataSubjects: [email, other], fileName: "../../etc/shared.pdf" });
    const own = await uploadWith(t, a.apiKey, 900, { dataSubjects: [email], fileName: "cv.pdf", providedBySubject: true });
    Object.assign(ids, { alone: alone.id, recipient: recipient.id, shared: shared.id, own: own.id });
    Object.assign(files, { alone: alone.content, recipient: recipient.content, shared: shared.content, own: own.content });
    const event = await recordDecision(t, a.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", ipAddress: "203.0.113.77", givenAt: "2027-05-01T10:00:00Z" });
    // The evidence the controller kept for it: a screenshot.
    evidence = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(600, 7)]);
    eventId = event.id;
    const put = await t.call("PUT", `v1/consents/${event.id}/evidence`, { key: a.apiKey, headers: { "content-type": "image/png" }, body: new Uint8Array(evidence) });
    expect(put.status, await put.clone().text()).toBe(201);
    // An earlier request of the person, cancelled.
    const e = await createRequest(t, a.apiKey, { type: "erasure", subjectEmail: email });
    earlier = e.body.id;
    expect((await t.call("POST", `v1/subject-requests/${earlier}/cancel`, { key: a.apiKey, json: { reason: "withdrawn by the person" } })).status).toBe(200);
    requestId = await vouched(a.apiKey, { type: "access", subjectEmail: email });
  });

  it("waits for the tenant's decision on content that names other data subjects too (Art. 15(4))", async () => {
    const doc = await waitForRequest(t, a.tenantId, requestId, (d) => d.workState.waitingFor === "content-decision", "waiting for the decision");
    expect(doc.status).toBe("in-progress");
    const view = await json<{ state: string; awaitingDecision: string[] }>(await t.call("GET", `v1/subject-requests/${requestId}/package`, { key: a.apiKey }));
    expect(view).toMatchObject({ state: "open", awaitingDecision: [ids.shared] });
    // Only such uploads can be named.
    const bad = await t.call("POST", `v1/subject-requests/${requestId}/include-content`, { key: a.apiKey, json: { uploadIds: [ids.alone], reason: "x" } });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { errors: Array<{ path: string }> }).errors[0]!.path).toBe("uploadIds.0");
    const decided = await t.call("POST", `v1/subject-requests/${requestId}/include-content`, { key: a.apiKey, json: { uploadIds: [ids.shared], reason: "The other person agreed" } });
    expect(decided.status).toBe(200);
    expect(await decided.json()).toMatchObject({ awaitingDecision: [], contentDecision: { included: [ids.shared] } });
    const entry = (await auditOf(a.apiKey, "subject-request.content-decided"))[0];
    expect(entry?.details).toMatchObject({ included: [ids.shared], withheld: 0 });
    expect(JSON.stringify(entry)).not.toContain("The other person agreed");
  });

  it("completes, e-mails the person a link and the tenant a notice, and holds everything about the person", async () => {
    await waitForRequest(t, a.tenantId, requestId, (d) => d.status === "completed", "completed");
    const [mail] = await waitForMails(t, `dsr-package-ready-${requestId}`);
    expect(mail!.to).toEqual([email]);
    await waitForMails(t, `dsr-package-ready-tenant-${requestId}`);
    const view = await json<{ state: string; counts: Record<string, number>; downloads: Record<string, number> }>(await t.call("GET", `v1/subject-requests/${requestId}/package`, { key: a.apiKey }));
    expect(view).toMatchObject({ state: "ready", counts: { uploads: 4, consentRecords: 1, earlierRequests: 1, files: 4, withheldContent: 0 } });

    const zip = await unzipped(await t.call("GET", `v1/subject-requests/${requestId}/package/content`, { key: a.apiKey }), "access");
    const data = JSON.parse(zip.read("data.json").toString("utf8")) as DataJson;
    await validate(data);
    expect(data).toMatchObject({ schemaVersion: 2, scope: "access", subject: { email } });
    expect(data.privacyInformation).toMatchObject({ purposes: "en: to send the files you asked for", complaint: "en: Datatilsynet" });
    const byId = new Map(data.sections.uploads.map((u) => [u.id, u]));
    expect(byId.get(ids.alone)).toMatchObject({ role: { dataSubject: true, recipient: false }, content: { included: true, withheld: null } });
    expect(byId.get(ids.recipient)).toMatchObject({ role: { dataSubject: false, recipient: true }, content: { included: false, withheld: "recipient-only" } });
    expect(byId.get(ids.recipient)).not.toHaveProperty("recipients");
    expect(byId.get(ids.shared)).toMatchObject({ role: { dataSubject: true }, otherDataSubjects: 1, content: { included: true } });
    // Copies of the content, byte for byte, under safe names.
    for (const k of ["alone", "shared", "own"]) {
      const p = byId.get(ids[k as keyof typeof ids])!.content.path!;
      expect(p.startsWith(`files/${ids[k as keyof typeof ids]}/`), p).toBe(true);
      expect(p).not.toContain("..");
      expect(zip.read(p).equals(files[k]!), k).toBe(true);
    }
    expect(zip.names.filter((x) => x.startsWith("files/") && !x.startsWith("files/consent-evidence/"))).toHaveLength(3);
    expect(data.sections.consentRecords).toMatchObject([{ purpose: "newsletter", decision: "granted", evidence: { path: `files/consent-evidence/${eventId}.png`, contentType: "image/png" } }]);
    expect(zip.read(`files/consent-evidence/${eventId}.png`).equals(evidence)).toBe(true);
    expect(data.sections.consentRecords[0]!.proof.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(data.sections.earlierRequests).toMatchObject([{ id: earlier, status: "cancelled" }]);

    const html = zip.read("index.html").toString("utf8");
    expect(html).toContain("&lt;b&gt;payslip&lt;&#x2F;b&gt; &amp; &quot;notes&quot;.pdf");
    expect(html).toContain("Acme &lt;ApS&gt; &amp; Co");
    expect(html).not.toMatch(/<script|<b>payslip/i);
    expect(html).toContain("en: Datatilsynet");
    // The other data subject of the shared file, and the recipients' full addresses, appear nowhere.
    for (const text of [html, zip.read("data.json").toString("utf8")]) {
      expect(text).not.toContain(other);
      expect(text).not.toContain("anna@recipient.example");
    }
  });

  it("is downloadable by the person through the link, each download counted and audited", async () => {
    const [mail] = await waitForMails(t, `dsr-package-ready-${requestId}`);
    const link = linkOf(mail!);
    // HEAD answers the headers a download would, and is not a download.
    const head = await fetch(link.url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("application/zip");
    expect(Number(head.headers.get("content-length"))).toBeGreaterThan(0);
    expect((await t.call("HEAD", `v1/subject-requests/${requestId}/package/content`, { key: a.apiKey })).status).toBe(200);
    const first = await unzipped(await fetch(link.url), "person");
    expect(first.names).toContain("data.json");
    expect((await fetch(link.url)).status).toBe(200);
    const view = await json<{ downloads: { tenant: number; subject: number } }>(await t.call("GET", `v1/subject-requests/${requestId}/package`, { key: a.apiKey }));
    expect(view.downloads).toEqual({ tenant: 1, subject: 2 });
    const mine = await auditOf(a.apiKey, "subject-request.package-downloaded");
    expect(mine.map((x) => x.details.by).sort()).toEqual(["subject", "subject", "tenant"]);
    // A changed token, or one of another request, does not work.
    const forged = link.url.slice(0, -3) + (link.url.endsWith("AAA") ? "BBB" : "AAA");
    const page = await fetch(forged);
    expect(page.status).toBe(403);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(await page.text()).not.toContain(email);
  });

  it("expires after DSR_EXPORT_DAYS and is purged by the retention sweep, with a receipt", async () => {
    const [mail] = await waitForMails(t, `dsr-package-ready-${requestId}`);
    const link = linkOf(mail!);
    t.clock.advance({ days: 7, minutes: 1 });
    expect((await fetch(link.url)).status).toBe(410);
    expect((await t.call("GET", `v1/subject-requests/${requestId}/package/content`, { key: a.apiKey })).status).toBe(409);
    await sweep(t);
    const view = await json<{ state: string; size: number | null }>(await t.call("GET", `v1/subject-requests/${requestId}/package`, { key: a.apiKey }));
    expect(view).toMatchObject({ state: "purged", size: null });
    const blobs: string[] = [];
    for await (const x of t.raw.blobs.getContainerClient("payloads").listBlobsFlat({ prefix: `${a.tenantId}/${requestId}/`, includeUncommitedBlobs: true })) blobs.push(x.name);
    expect(blobs).toEqual([]);
    const receipt = (await auditOf(a.apiKey, "retention.receipt")).find((x) => x.details.class === "dsr-export");
    expect(receipt?.details).toMatchObject({ count: 1, ids: [requestId] });
    expect((await fetch(link.url)).status).toBe(410);
  });
});

describe("a portability package", () => {
  it("holds only what the person provided: consent events and uploads marked providedBySubject (Art. 20(1))", async () => {
    const email = person("port");
    const own = await uploadWith(t, a.apiKey, 400, { dataSubjects: [email], fileName: "mine.txt", providedBySubject: true });
    await uploadWith(t, a.apiKey, 400, { dataSubjects: [email], fileName: "about-me.txt" });
    await recordDecision(t, a.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "denied" });
    const id = await vouched(a.apiKey, { type: "portability", subjectEmail: email });
    await waitForRequest(t, a.tenantId, id, (d) => d.status === "completed", "completed");
    const zip = await unzipped(await t.call("GET", `v1/subject-requests/${id}/package/content`, { key: a.apiKey }), "portability");
    const data = JSON.parse(zip.read("data.json").toString("utf8")) as DataJson;
    await validate(data);
    expect(data.scope).toBe("portability");
    expect(data.privacyInformation).toBeNull();
    expect(data.sections.uploads.map((u) => u.id)).toEqual([own.id]);
    expect(zip.read(data.sections.uploads[0]!.content.path!).equals(own.content)).toBe(true);
    expect(data.sections.consentRecords.map((c) => c.decision)).toEqual(["denied"]);
    expect(data.sections.earlierRequests).toEqual([]);
  });
});

describe("without the tenant's privacy information", () => {
  it("an access request needs attention with that reason until it is saved and the request retried", async () => {
    const email = person("noinfo");
    await uploadWith(t, b.apiKey, 100, { dataSubjects: [email] });
    const id = await vouched(b.apiKey, { type: "access", subjectEmail: email });
    const doc = await waitForRequest(t, b.tenantId, id, (d) => d.status === "needs-attention", "needs attention");
    expect(doc.attention?.reason).toMatch(/^privacy-information-missing/);
    expect((await t.call("GET", "v1/privacy-information", { key: b.apiKey })).status).toBe(404);
    // Both languages are required.
    expect((await t.call("PUT", "v1/privacy-information", { key: b.apiKey, json: { en: privacy.en } })).status).toBe(422);
    expect((await t.call("PUT", "v1/privacy-information", { key: b.apiKey, json: { ...privacy, en: { ...privacy.en, purposes: "" } } })).status).toBe(422);
    expect((await t.call("PUT", "v1/privacy-information", { key: b.apiKey, json: privacy })).status).toBe(201);
    const again = await t.call("PUT", "v1/privacy-information", { key: b.apiKey, json: privacy });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ version: 2 });
    expect((await t.call("POST", `v1/subject-requests/${id}/retry`, { key: b.apiKey })).status).toBe(200);
    await waitForRequest(t, b.tenantId, id, (d) => d.status === "completed", "completed");
  });
});

describe("tenants and people", () => {
  it("holds nothing of another tenant's data for the same address, and a person held nothing about gets no package", async () => {
    const email = person("shared-address");
    const atA = await uploadWith(t, a.apiKey, 100, { dataSubjects: [email], fileName: "a-only.pdf" });
    const atB = await uploadWith(t, b.apiKey, 100, { dataSubjects: [email], fileName: "b-only.pdf" });
    const id = await vouched(b.apiKey, { type: "access", subjectEmail: email });
    await waitForRequest(t, b.tenantId, id, (d) => d.status === "completed", "completed");
    const zip = await unzipped(await t.call("GET", `v1/subject-requests/${id}/package/content`, { key: b.apiKey }), "tenant-b");
    const data = JSON.parse(zip.read("data.json").toString("utf8")) as DataJson;
    expect(data.sections.uploads.map((u) => u.id)).toEqual([atB.id]);
    expect(zip.read("data.json").toString()).not.toContain(atA.id);
    // Another tenant's request id is not found.
    expect((await t.call("GET", `v1/subject-requests/${id}/package`, { key: a.apiKey })).status).toBe(404);
    expect((await t.call("GET", `v1/subject-requests/${id}/package/content`, { key: a.apiKey })).status).toBe(404);

    const nobody = await vouched(b.apiKey, { type: "access", subjectEmail: person("nobody") });
    const done = await waitForRequest(t, b.tenantId, nobody, (d) => d.status === "completed", "completed");
    expect(done.outcome).toBe("no-personal-data");
    expect(await json(await t.call("GET", `v1/subject-requests/${nobody}/package`, { key: b.apiKey }))).toMatchObject({ state: "open", contentUrl: null });
  });

  it("leaves out content naming others too when the tenant includes none, listing its metadata", async () => {
    const email = person("withheld");
    const shared = await uploadWith(t, a.apiKey, 100, { dataSubjects: [email, person("third")] });
    const id = await vouched(a.apiKey, { type: "access", subjectEmail: email });
    await waitForRequest(t, a.tenantId, id, (d) => d.workState.waitingFor === "content-decision", "waiting");
    expect((await t.call("POST", `v1/subject-requests/${id}/include-content`, { key: a.apiKey, json: { uploadIds: [], reason: "Would disclose a colleague's salary" } })).status).toBe(200);
    await waitForRequest(t, a.tenantId, id, (d) => d.status === "completed", "completed");
    const zip = await unzipped(await t.call("GET", `v1/subject-requests/${id}/package/content`, { key: a.apiKey }), "withheld");
    const data = JSON.parse(zip.read("data.json").toString("utf8")) as DataJson;
    expect(data.sections.uploads).toMatchObject([{ id: shared.id, content: { included: false, path: null, withheld: "other-data-subjects" } }]);
    expect(zip.names.some((x) => x.startsWith("files/"))).toBe(false);
    // Decided and built: no more decisions.
    expect((await t.call("POST", `v1/subject-requests/${id}/include-content`, { key: a.apiKey, json: { uploadIds: [shared.id], reason: "changed my mind" } })).status).toBe(409);
    expect(readFileSync(zip.file).length).toBeGreaterThan(0);
  });
});
