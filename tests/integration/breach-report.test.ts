/**
 * The report a controller files with its supervisory authority: JSON, or HTML by Accept (406 when neither is
 * acceptable), structured as Datatilsynet's form; it names the controller's contact point and holds no identifier
 * of any affected person (the test seeds data subjects and recipients and searches the report for every address and
 * local part); the HTML is escaped, runs no script under a strict Content-Security-Policy and is not cached; each
 * read is audited.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { startTestApp, type TestApp } from "../helpers/app";
import { breachBody, partOf, registerBreach, type Json } from "../helpers/breaches";
import { expect } from "../helpers/expect";
import { contractViolations, type OpenApiDocument } from "../helpers/openapi-contract";
import { uploadWith } from "../helpers/uploads";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let id: string;
const people: string[] = [];

beforeAll(async () => {
  t = await startTestApp({ settings: { OPERATOR_CONTACT_EMAIL: "security@processor.example" } });
  tenant = await t.createTenant("Sundhedsklinikken ApS");
  expect((await t.admin("PATCH", `v1/admin/tenants/${tenant.tenantId}`, { language: "da" })).status).toBe(200);
  const uploads: string[] = [];
  for (let i = 0; i < 4; i++) {
    const subjects = [`mette.sorensen${i}@borger.example`, `Jens-Ole.Hansen${i}@Post.example`];
    const recipients = [`klinik.modtager${i}@sundhed.example`];
    people.push(...subjects, ...recipients);
    uploads.push((await uploadWith(t, tenant.apiKey, 16, { dataSubjects: subjects, recipients, categories: ["health", "contact"], notifyOnFirstDownload: `afsender${i}@klinik.example` })).id);
    people.push(`afsender${i}@klinik.example`);
  }
  ({ id } = await registerBreach(
    t,
    breachBody(t, {
      description: 'A misdirected export <script>alert("x")</script> & the "patients" list.',
      consequences: "None seen so far.",
      measuresLimiting: "The recipient confirmed deletion in writing.",
      followUp: { missing: "The hosting provider's access logs.", expectedBy: "2026-01-12T12:00:00Z" },
      scope: [{ tenantId: tenant.tenantId, uploads }],
    }),
  ));
  await partOf(t, tenant.apiKey, id);
  expect((await t.call("POST", `v1/breaches/${id}/decision`, { key: tenant.apiKey, json: { notifyAuthority: true, notifyPersons: true, reasons: "Health data of identifiable patients." } })).status).toBe(200);
  expect((await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: tenant.apiKey, json: { notifiedAt: t.clock.now().toISOString(), method: "online-form", reference: "2026-7320-1234" } })).status).toBe(200);
});
afterAll(async () => {
  await t?.stop();
});

/** Every address and its local part, in the case it was given and in lower case. */
function identifiers(): string[] {
  return people.flatMap((p) => [p, p.toLowerCase(), p.split("@")[0]!, p.split("@")[0]!.toLowerCase()]);
}

describe("the authority report", () => {
  it("is JSON by default, structured as the authority's form, naming the contact point and no affected person", async () => {
    const res = await t.call("GET", `v1/breaches/${id}/report`, { key: tenant.apiKey });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const text = await res.text();
    const report = JSON.parse(text) as Json;
    expect(report).toMatchObject({
      breachId: id,
      language: "da",
      contactPoint: { controller: "Sundhedsklinikken ApS", email: "dpo1@controller.example", supervisoryAuthority: { country: "DK", name: "Datatilsynet" }, processorEmail: "security@processor.example" },
      description: { malicious: true, nature: [{ kind: "confidentiality", level: "unknown-recipients" }] },
      persons: { categories: ["data-subjects", "recipients"], approximateNumber: 12 },
      records: { categories: ["contact", "health"], approximateNumber: 4 },
      consequences: "None seen so far.",
      measures: { limitingEffects: "The recipient confirmed deletion in writing.", inPlaceBefore: expect.stringContaining("AES-256-GCM") },
      personsInformed: { decided: true, notifyPersons: true },
      notification: { notifications: [expect.objectContaining({ reference: "2026-7320-1234", late: false })] },
      followUp: { missing: "The hosting provider's access logs." },
    });
    for (const x of identifiers()) expect(text, x).not.toContain(x);
  });

  it("is an escaped HTML page with Accept: text/html, in the controller's language, with no scripts allowed", async () => {
    const res = await t.call("GET", `v1/breaches/${id}/report`, { key: tenant.apiKey, headers: { accept: "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).not.toMatch(/script-src|unsafe-inline|unsafe-eval/);
    const html = await res.text();
    expect(html).toContain('<html lang="da">');
    expect(html).toContain("1. Kontaktpunkt");
    expect(html).toContain("12. Hvornår manglende oplysninger følger");
    expect(html).toContain("dpo1@controller.example");
    expect(html).not.toContain("<script");
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2F;script&gt; &amp; the &quot;patients&quot; list.");
    // The page's one style sheet is the only thing the policy lets apply, by its hash.
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    expect(csp).toContain(`style-src 'sha256-${createHash("sha256").update(style).digest("base64")}'`);
    for (const x of identifiers()) expect(html, x).not.toContain(x);
  });

  it("answers 406 when neither JSON nor HTML is acceptable, and negotiates wildcards", async () => {
    const refused = await t.call("GET", `v1/breaches/${id}/report`, { key: tenant.apiKey, headers: { accept: "application/pdf, text/csv" } });
    expect(refused.status).toBe(406);
    expect(((await refused.json()) as Json).type).toBe("urn:safedata:problem:not-acceptable");
    const html = await t.call("GET", `v1/breaches/${id}/report`, { key: tenant.apiKey, headers: { accept: "text/*" } });
    expect(html.headers.get("content-type")).toMatch(/^text\/html/);
    const json = await t.call("GET", `v1/breaches/${id}/report`, { key: tenant.apiKey, headers: { accept: "*/*" } });
    expect(json.headers.get("content-type")).toMatch(/^application\/json/);
    const head = await t.call("HEAD", `v1/breaches/${id}/report`, { key: tenant.apiKey, headers: { accept: "text/html" } });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("is declared in the OpenAPI document with both media types and the 406", async () => {
    const doc = (await (await t.call("GET", "v1/openapi.json")).json()) as OpenApiDocument;
    const op = doc.paths["/api/v1/breaches/{id}/report"]!.get!;
    expect(Object.keys(op.responses["200"]!.content!)).toEqual(["application/json", "text/html"]);
    expect(op.responses["406"]!["x-problem-types"]).toEqual(["urn:safedata:problem:not-acceptable"]);
    for (const accept of ["text/html", "application/json", "image/png"]) {
      const url = new URL(`${t.api}/v1/breaches/${id}/report`);
      const res = await fetch(url, { headers: { authorization: `Bearer ${tenant.apiKey}`, accept } });
      expect(contractViolations(doc, { method: "GET", url, status: res.status, headers: res.headers, body: await res.text() }), accept).toEqual([]);
    }
  });

  it("records each read in the controller's audit log, without the address it shows", async () => {
    const before = ((await (await t.call("GET", "v1/audit?limit=200", { key: tenant.apiKey })).json()) as Json).items.filter((e: Json) => e.action === "breach.report-read").length;
    await t.call("GET", `v1/breaches/${id}/report`, { key: tenant.apiKey });
    const entries = ((await (await t.call("GET", "v1/audit?limit=200", { key: tenant.apiKey })).json()) as Json).items.filter((e: Json) => e.action === "breach.report-read");
    expect(entries).toHaveLength(before + 1);
    expect(entries.at(-1)).toMatchObject({ target: { type: "breach", id }, details: { breachId: id, format: "json", fields: ["contactEmail"] } });
    expect(JSON.stringify(entries)).not.toContain("dpo1@controller.example");
  });
});

describe("the report is of one instant", () => {
  it("shows the authority deadline's state at the time it says it was generated, however long the making of it takes", async () => {
    // A second breach of the same tenant, its controller notice sent and the authority not yet told: its clock is
    // "open" until the deadline and "overdue" after it.
    const window = { from: new Date(t.clock.now().getTime() - 86_400_000).toISOString(), to: t.clock.now().toISOString() };
    const other = await registerBreach(t, breachBody(t, { scope: [{ tenantId: tenant.tenantId, window, categories: ["contact"] }] }));
    const view = await partOf(t, tenant.apiKey, other.id);
    const deadline = Date.parse(view.clocks.authority.deadlineAt as string);
    expect(Number.isFinite(deadline)).toBe(true);
    const resume = t.clock.now();
    // Every read of the service clock moves it ten minutes on (a report made slowly, in steps): starting at each of
    // two dozen points before the deadline, the deadline falls between some two reads of the clock while the report
    // is made. What the report says of the deadline must be what held at its `generatedAt`.
    const read = t.clock.now.bind(t.clock);
    const STEP = 10 * 60_000;
    t.clock.now = () => {
      const at = read();
      t.clock.set(at.getTime() + STEP);
      return at;
    };
    const seen: Array<{ from: number; generatedAt: string; status: string }> = [];
    try {
      for (let k = 1; k <= 24; k++) {
        t.clock.set(deadline - k * STEP + STEP / 2);
        const res = await t.call("GET", `v1/breaches/${other.id}/report`, { key: tenant.apiKey });
        expect(res.status).toBe(200);
        const report = (await res.json()) as Json;
        seen.push({ from: k, generatedAt: report.generatedAt, status: report.notification.clock.status });
      }
    } finally {
      t.clock.now = read;
      t.clock.set(resume);
    }
    const wrong = seen.filter((r) => r.status !== (Date.parse(r.generatedAt) > deadline ? "overdue" : "open"));
    expect(wrong, `deadline ${new Date(deadline).toISOString()}`).toEqual([]);
    // Both states were reached, so the deadline did fall inside some report's making.
    expect(new Set(seen.map((r) => r.status))).toEqual(new Set(["open", "overdue"]));
  });
});
