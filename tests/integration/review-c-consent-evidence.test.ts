/**
 * Review C's findings on consent evidence, over HTTP against the real local services:
 * - 6: an event's `conflictsWithGpc` follows one rule everywhere (the 201 answer, GET of the event, the search
 *   history, the proof as JSON and HTML, the JSON and CSV export): a grant with a GPC signal on it or on an earlier
 *   recorded event of the same subject and purpose;
 * - 7: a file whose signature says PNG, JPEG, WebP or PDF but which carries HTML or script markup near its start
 *   (a polyglot) is refused 415 and nothing is kept;
 * - 9: the country of an IPv6 address that carries an IPv4 one (6to4, NAT64, Teredo, IPv4-compatible) is derived
 *   from the IPv4 address, as for an IPv4-mapped one;
 * - 15: a binary download whose type the Accept header excludes answers 406 problem+json (evidence, upload
 *   content, package content), before anything is read, counted or audited.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice, recordDecision } from "../helpers/consents";
import { readCsv } from "../helpers/csv";
import { download, uploadWith } from "../helpers/uploads";
import { EXPORT_CSV_COLUMNS } from "../../shared/usecases/consent-export";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  t.clock.set("2026-06-01T08:00:00.000Z");
  tenant = await t.createTenant("Review C Co");
  await purposeWithNotice(t, tenant.apiKey, "ads");
  await purposeWithNotice(t, tenant.apiKey, "news");
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `reviewed.person.${++n}@subject.example`;
const record = async (body: Record<string, unknown>) => {
  const res = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: { method: "click", requestOrigin: "banner", purpose: "ads", noticeVersion: 1, decision: "granted", ...body } });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as { id: string; decision: string; gpc: boolean | null; conflictsWithGpc: boolean; country: { country: string; source: string } | null };
};
const problemOf = async (res: Response) => ({ status: res.status, contentType: res.headers.get("content-type"), ...((await res.json()) as { type: string; detail: string }) });

describe("finding 6: an event's GPC conflict is the same rule in every answer", () => {
  it("flags a grant without GPC recorded after a GPC denial of the same purpose, in the 201, the event, search, proof (JSON, HTML) and both exports", async () => {
    const from = t.clock.now().toISOString();
    const email = person();
    const signal = await recordDecision(t, tenant.apiKey, { email, purpose: "ads", noticeVersion: 1, decision: "denied", method: "gpc" });
    t.clock.advance({ minutes: 1 });
    const grant = await record({ email, gpc: false });
    expect(grant.conflictsWithGpc, "the 201 answer").toBe(true);
    // Another purpose of the same person has no GPC in its history: no conflict there.
    const otherPurpose = await record({ email, purpose: "news", gpc: false });
    expect(otherPurpose.conflictsWithGpc, "another purpose's grant").toBe(false);

    const one = (await (await t.call("GET", `v1/consents/${grant.id}`, { key: tenant.apiKey })).json()) as { conflictsWithGpc: boolean };
    expect(one.conflictsWithGpc, "GET of the event").toBe(true);

    const search = (await (await t.call("POST", "v1/consents/search", { key: tenant.apiKey, json: { email } })).json()) as {
      states: Array<{ purpose: string; conflictsWithGpc: boolean }>;
      history: Array<{ id: string; conflictsWithGpc: boolean }>;
    };
    expect(search.history.find((e) => e.id === grant.id)?.conflictsWithGpc, "search history").toBe(true);
    expect(search.history.find((e) => e.id === signal.id)?.conflictsWithGpc, "the denial itself").toBe(false);
    expect(search.history.find((e) => e.id === otherPurpose.id)?.conflictsWithGpc).toBe(false);
    expect(search.states.find((s) => s.purpose === "ads")?.conflictsWithGpc, "state").toBe(true);

    const proof = (await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "ads" } })).json()) as {
      events: Array<{ eventId: string; conflictsWithGpc: boolean }>;
    };
    expect(proof.events.find((e) => e.eventId === grant.id)?.conflictsWithGpc, "proof JSON").toBe(true);
    const html = await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "ads", format: "html" } })).text();
    const grantSection = html.slice(html.indexOf(grant.id));
    expect(grantSection.slice(0, grantSection.indexOf("</section>")), "proof HTML").toContain("a grant that conflicts with a GPC signal");

    const to = new Date(t.clock.now().getTime() + 60_000).toISOString();
    const page = (await (await t.call("GET", `v1/consents/export?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&limit=100`, { key: tenant.apiKey })).json()) as {
      items: Array<{ id: string; conflictsWithGpc: boolean }>;
    };
    expect(page.items.find((e) => e.id === grant.id)?.conflictsWithGpc, "JSON export").toBe(true);
    expect(page.items.find((e) => e.id === otherPurpose.id)?.conflictsWithGpc).toBe(false);
    const csv = readCsv(await (await t.call("GET", `v1/consents/export?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, { key: tenant.apiKey, headers: { accept: "text/csv" } })).text());
    const col = (name: (typeof EXPORT_CSV_COLUMNS)[number]) => EXPORT_CSV_COLUMNS.indexOf(name);
    const row = csv.find((r) => r[col("eventId")] === grant.id);
    expect(row?.[col("conflictsWithGpc")], "CSV export").toBe("true");
  });

  it("flags it in the JSON export even when the GPC event is on an earlier page or before the period", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "ads", noticeVersion: 1, decision: "denied", method: "gpc" });
    t.clock.advance({ minutes: 5 });
    const from = t.clock.now().toISOString();
    const grant = await record({ email });
    const to = new Date(t.clock.now().getTime() + 60_000).toISOString();
    const page = (await (await t.call("GET", `v1/consents/export?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&limit=100`, { key: tenant.apiKey })).json()) as {
      items: Array<{ id: string; conflictsWithGpc: boolean }>;
    };
    expect(page.items.map((e) => e.id)).toEqual([grant.id]);
    expect(page.items[0]!.conflictsWithGpc).toBe(true);
  });
});

describe("finding 7: polyglot evidence is refused", () => {
  const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const cases: Array<[string, string, Buffer]> = [
    ["a PNG followed by <html><script>", "image/png", Buffer.concat([PNG, Buffer.from("<html><script>alert(1)</script></html>")])],
    ["a JPEG carrying <svg onload>", "image/jpeg", Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(200).map((b) => (b === 0x3c ? 0x20 : b)), Buffer.from("<svg onload=alert(1)>")])],
    ["a PDF with a doctype after 2 KiB", "application/pdf", Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(2048, 0x20), Buffer.from("<!DOCTYPE html><p>hi</p>")])],
    ["a WebP with <SCRIPT in capitals", "image/webp", Buffer.concat([Buffer.from("RIFF\x10\x00\x00\x00WEBPVP8 ", "latin1"), Buffer.from("<SCRIPT src=//x.example/a.js></SCRIPT>")])],
  ];
  for (const [what, type, body] of cases) {
    it(`refuses ${what} with 415 and keeps nothing`, async () => {
      const event = await record({ email: person() });
      const res = await t.call("PUT", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey, headers: { "content-type": type }, body: new Uint8Array(body) });
      const p = await problemOf(res);
      expect(p.status, p.detail).toBe(415);
      expect(p.detail).toMatch(/HTML|script/i);
      expect((await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey })).status).toBe(404);
    });
  }

  it("still accepts a PNG and a PDF whose bytes hold no markup", async () => {
    const event = await record({ email: person() });
    const res = await t.call("PUT", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey, headers: { "content-type": "application/pdf" }, body: new Uint8Array(Buffer.concat([Buffer.from("%PDF-1.7\n<< /Type /Catalog >>\n"), Buffer.alloc(5000, 0x41)])) });
    expect(res.status, await res.text()).toBe(201);
  });
});

describe("finding 9: the country of an IPv6 address that carries an IPv4 one", () => {
  // 8.8.8.8 is registered in the US in the GeoLite2 data (as ::ffff:8.8.8.8 already showed).
  for (const ipAddress of ["2002:0808:0808::1", "64:ff9b::808:808", "64:ff9b::8.8.8.8", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"]) {
    it(`derives the embedded address's country for ${ipAddress}`, async () => {
      const mapped = await record({ email: person(), ipAddress: "::ffff:8.8.8.8" });
      const event = await record({ email: person(), ipAddress });
      expect(event.country).toMatchObject({ country: mapped.country!.country, source: "derived" });
    });
  }
});

describe("finding 15: binary downloads honour Accept", () => {
  it("answers 406 problem+json for evidence whose stored type the Accept header excludes, and audits no read", async () => {
    const event = await record({ email: person() });
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100, 1)]);
    expect((await t.call("PUT", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey, headers: { "content-type": "image/png" }, body: new Uint8Array(png) })).status).toBe(201);
    const refused = await problemOf(await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey, headers: { accept: "application/json" } }));
    expect(refused).toMatchObject({ status: 406, contentType: expect.stringMatching(/^application\/problem\+json/) });
    expect(refused.detail).toContain("image/png");
    expect((await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey, headers: { accept: "text/html, application/pdf" } })).status).toBe(406);
    const { resources } = await t.raw.containers.audit.items
      .query({
        query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = 'consent.evidence-read' AND c.target.id = @id",
        parameters: [
          { name: "@t", value: tenant.tenantId },
          { name: "@id", value: event.id },
        ],
      })
      .fetchAll();
    expect(resources).toHaveLength(0);
    for (const accept of ["image/png", "image/*", "*/*", "application/json, image/*;q=0.1"]) {
      const res = await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey, headers: { accept } });
      expect(res.status, accept).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(png)).toBe(true);
    }
  });

  it("answers 406 for upload content whose declared type the Accept header excludes, before it is counted", async () => {
    const { id, content } = await uploadWith(t, tenant.apiKey, 300, { maxDownloads: 1 });
    const refused = await problemOf(await t.call("GET", `v1/uploads/${id}/content`, { key: tenant.apiKey, headers: { accept: "application/json" } }));
    expect(refused).toMatchObject({ status: 406, contentType: expect.stringMatching(/^application\/problem\+json/) });
    expect(refused.detail).toContain("application/pdf");
    expect((await t.call("HEAD", `v1/uploads/${id}/content`, { key: tenant.apiKey, headers: { accept: "text/html" } })).status).toBe(406);
    const ok = await download(t, tenant.apiKey, id, { accept: "application/pdf" });
    expect(ok.res.status).toBe(200);
    expect(ok.body.equals(content)).toBe(true);
    // maxDownloads 1: the refused requests were not counted, this one was.
    expect((await download(t, tenant.apiKey, id)).res.status).toBe(410);
  });

  it("answers 406 for package content when the Accept header excludes application/zip", async () => {
    const refused = await problemOf(await t.call("GET", "v1/subject-requests/dsr-aaaaaaaaaaaaaaaaaaaaaaaaaa/package/content", { key: tenant.apiKey, headers: { accept: "application/json" } }));
    expect(refused).toMatchObject({ status: 406, contentType: expect.stringMatching(/^application\/problem\+json/) });
  });
});
