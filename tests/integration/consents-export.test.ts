/**
 * Exports of consent events for audits, over HTTP against the real local services: every recorded event of a period
 * (from inclusive, to exclusive) in the audit log's order, subjects as keyed hashes, as paged JSON with sealed cursors
 * or, with Accept: text/csv, as RFC 4180 CSV whose cells cannot run as spreadsheet formulas (a property test over
 * arbitrary stored text); each export audited; the tenant's own events only.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import fc from "fast-check";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice, recordDecision } from "../helpers/consents";
import { readCsv } from "../helpers/csv";
import { EXPORT_CSV_COLUMNS } from "../../shared/usecases/consent-export";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let other: { tenantId: string; apiKey: string };
const FROM = "2026-06-01T00:00:00.000Z";
const TO = "2026-06-02T00:00:00.000Z";
/** Events recorded in the period, in the order they were recorded. */
const inPeriod: string[] = [];
const emails: string[] = [];

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant("Export Co");
  other = await t.createTenant("Other Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
  await purposeWithNotice(t, other.apiKey, "newsletter");
  t.clock.set("2026-05-31T23:59:59.999Z");
  await recordDecision(t, tenant.apiKey, { email: "before@subject.example", purpose: "newsletter", noticeVersion: 1, decision: "granted" });
  t.clock.set(FROM);
  for (let i = 0; i < 7; i++) {
    const email = `exported.${i}@subject.example`;
    emails.push(email);
    const e = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: i % 3 === 2 ? "denied" : "granted", ipAddress: "80.62.117.1", gpc: i === 4 });
    inPeriod.push(e.id);
    await recordDecision(t, other.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    t.clock.advance({ hours: 3 });
  }
  t.clock.set(TO);
  await recordDecision(t, tenant.apiKey, { email: "after@subject.example", purpose: "newsletter", noticeVersion: 1, decision: "granted" });
});
afterAll(async () => {
  await t?.stop();
});

const exportUrl = (q: Record<string, string>) => `v1/consents/export?${new URLSearchParams({ from: FROM, to: TO, ...q }).toString()}`;
interface Page {
  items: Array<{ id: string; subjectId: string; subjectHash: string; decision: string; country: { country: string } | null; conflictsWithGpc: boolean; audit: { seq: number } }>;
  nextCursor?: string;
}
const exportedAudit = async () =>
  (
    await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = 'consent.exported' ORDER BY c.seq ASC", parameters: [{ name: "@t", value: tenant.tenantId }] })
      .fetchAll()
  ).resources as Array<{ details: Record<string, unknown> }>;

describe("JSON export", () => {
  it("pages through every event of the period in the audit log's order, subjects as keyed hashes, each page audited", async () => {
    const seen: Page["items"] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await t.call("GET", exportUrl({ limit: "3", ...(cursor ? { cursor } : {}) }), { key: tenant.apiKey });
      expect(res.status).toBe(200);
      const page = (await res.json()) as Page;
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen.map((e) => e.id)).toEqual(inPeriod);
    const seqs = seen.map((e) => e.audit.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    for (const e of seen) expect(e.subjectHash).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(seen.map((e) => e.subjectHash)).size).toBe(7);
    expect(seen[0]!.country).toMatchObject({ country: "DK" });
    expect(seen[4]!.conflictsWithGpc).toBe(true);
    const text = JSON.stringify(seen);
    for (const email of emails) expect(text).not.toContain(email);
    const audited = await exportedAudit();
    expect(audited.filter((a) => a.details.format === "json").map((a) => a.details.events)).toEqual([3, 3, 1]);
  });

  it("refuses a period that ends before it starts, a cursor not its own, and a cursor used with another period", async () => {
    expect((await t.call("GET", exportUrl({ from: TO, to: FROM }), { key: tenant.apiKey })).status).toBe(400);
    expect((await t.call("GET", exportUrl({ from: FROM, to: FROM }), { key: tenant.apiKey })).status).toBe(400);
    expect((await t.call("GET", exportUrl({ cursor: "abc" }), { key: tenant.apiKey })).status).toBe(400);
    expect((await t.call("GET", "v1/consents/export?from=yesterday&to=today", { key: tenant.apiKey })).status).toBe(400);
    expect((await t.call("GET", `v1/consents/export?to=${TO}`, { key: tenant.apiKey })).status).toBe(400);
    const first = (await (await t.call("GET", exportUrl({ limit: "2" }), { key: tenant.apiKey })).json()) as Page;
    expect((await t.call("GET", exportUrl({ limit: "2", cursor: first.nextCursor!, to: "2026-06-03T00:00:00.000Z" }), { key: tenant.apiKey })).status).toBe(400);
    // Another tenant's cursor is not one of ours.
    expect((await t.call("GET", exportUrl({ limit: "2", cursor: first.nextCursor! }), { key: other.apiKey })).status).toBe(400);
  });

  it("shows another tenant only its own events", async () => {
    const page = (await (await t.call("GET", exportUrl({ limit: "200" }), { key: other.apiKey })).json()) as Page;
    expect(page.items).toHaveLength(7);
    expect(page.items.some((e) => inPeriod.includes(e.id))).toBe(false);
  });
});

describe("CSV export", () => {
  it("gives the whole period as RFC 4180 CSV with a header record when Accept prefers text/csv; 406 when neither is acceptable", async () => {
    const res = await t.call("GET", exportUrl({}), { key: tenant.apiKey, headers: { accept: "text/csv, application/json;q=0.5" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv; charset=utf-8/);
    expect(res.headers.get("content-disposition")).toMatch(/^attachment/);
    const rows = readCsv(await res.text());
    expect(rows[0]).toEqual([...EXPORT_CSV_COLUMNS]);
    const col = (name: (typeof EXPORT_CSV_COLUMNS)[number]) => EXPORT_CSV_COLUMNS.indexOf(name);
    expect(rows.slice(1).map((r) => r[col("eventId")])).toEqual(inPeriod);
    expect(rows[1]![col("country")]).toBe("DK");
    expect(rows[1]![col("countrySource")]).toBe("derived");
    expect(rows[5]![col("conflictsWithGpc")]).toBe("true");
    for (const r of rows.slice(1)) expect(r[col("subjectHash")]).toMatch(/^[0-9a-f]{64}$/);
    expect((await exportedAudit()).some((a) => a.details.format === "csv")).toBe(true);
    // JSON stays the default; an Accept that allows neither is 406.
    expect((await t.call("GET", exportUrl({}), { key: tenant.apiKey, headers: { accept: "*/*" } })).headers.get("content-type")).toMatch(/^application\/json/);
    expect((await t.call("GET", exportUrl({}), { key: tenant.apiKey, headers: { accept: "application/xml" } })).status).toBe(406);
  });

  it("property: any stored text comes back from the CSV as written, except that a formula start is neutralised by a leading quote", async () => {
    // Stored values the API would refuse today (a damaged or older record, or a later change of the rules) are
    // exactly the ones the writer must still make safe: copies of a real event with arbitrary text in its fields.
    const { resources } = await t.raw.containers.consents.items.query({ query: "SELECT * FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: inPeriod[0]! }] }).fetchAll();
    const template = Object.fromEntries(Object.entries(resources[0] as Record<string, unknown>).filter(([k]) => !k.startsWith("_")));
    const FROM2 = "2026-07-01T00:00:00.000Z";
    const fixed = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", 'a"b,c\r\nd', "'already", " =x", ""];
    const text = fc.string({ unit: fc.constantFrom("=", "+", "-", "@", "\t", "\r", "\n", '"', ",", "'", "a", "1", " ", "é", "😀"), maxLength: 12 });
    const values = [...fixed, ...fc.sample(text, { numRuns: 60, seed: 16 })];
    let seq = 1_000_000;
    for (const [i, value] of values.entries()) {
      await t.raw.containers.consents.items.create({
        ...template,
        id: `ce-${String(i).padStart(16, "a").replace(/[0-9]/g, (d) => "abcdefghij"[Number(d)]!)}`,
        propertyId: value,
        language: value,
        recordedAt: new Date(Date.parse(FROM2) + i * 1000).toISOString(),
        audit: { ...(template.audit as object), seq: ++seq },
      });
    }
    const res = await t.call("GET", `v1/consents/export?from=${FROM2}&to=2026-07-02T00:00:00.000Z`, { key: tenant.apiKey, headers: { accept: "text/csv" } });
    const rows = readCsv(await res.text()).slice(1);
    expect(rows).toHaveLength(values.length);
    const neutral = (v: string) => (/^[=+\-@\t\r]/.test(v) ? `'${v}` : v);
    for (const [i, value] of values.entries()) {
      const row = rows[i]!;
      expect(row[EXPORT_CSV_COLUMNS.indexOf("propertyId")], JSON.stringify(value)).toBe(neutral(value));
      expect(row[EXPORT_CSV_COLUMNS.indexOf("language")], JSON.stringify(value)).toBe(neutral(value));
      // No cell of any row starts a formula.
      for (const cell of row) expect(cell, JSON.stringify(row)).not.toMatch(/^[=+\-@\t\r]/);
    }
  });
});
