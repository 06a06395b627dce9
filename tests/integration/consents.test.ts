/**
 * Consent records over HTTP against the real local services: purposes and notice versions, recording decisions, the
 * state as a projection of the events, bad input (each a 4xx problem), search and summary, the proof document and its
 * digests verified from the outside, what is stored (no address or full IP in clear), and the upload check.
 */
import { createHash, createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { decisionOf, purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { baseUpload } from "../helpers/uploads";
import { canonicalJson } from "../../shared/domain/audit-chain";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let other: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  t.clock.set("2026-06-01T08:00:00.000Z");
  tenant = await t.createTenant("Consent Co");
  other = await t.createTenant("Other Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
  await purposeWithNotice(t, tenant.apiKey, "profiling");
  await purposeWithNotice(t, other.apiKey, "others-only");
});
afterAll(async () => {
  await t?.stop();
});

const problem = async (res: Response) => ({ status: res.status, ...((await res.json()) as { type: string; detail: string; errors?: Array<{ path: string; message: string }> }) });
let n = 0;
const person = () => `person.${++n}@subject.example`;

describe("purposes and notice versions", () => {
  it("numbers notice versions, never reuses them, and keeps the text's SHA-256", async () => {
    await purposeWithNotice(t, tenant.apiKey, "versions");
    const url = await t.call("POST", "v1/purposes/versions/notices", {
      key: tenant.apiKey,
      json: { language: "da", url: "https://example.com/privacy/v2", sha256: "AB".repeat(32) },
    });
    expect(url.status).toBe(201);
    expect(await url.json()).toMatchObject({ version: 2, language: "da", text: null, url: "https://example.com/privacy/v2", sha256: "ab".repeat(32) });
    const got = (await (await t.call("GET", "v1/purposes/versions", { key: tenant.apiKey })).json()) as { notices: Array<{ version: number; sha256: string; text: string | null }> };
    expect(got.notices.map((x) => x.version)).toEqual([1, 2]);
    expect(got.notices[0]!.sha256).toBe(createHash("sha256").update(got.notices[0]!.text!, "utf8").digest("hex"));
    // Concurrent additions each get their own number.
    const many = await Promise.all([0, 1, 2, 3].map((i) => t.call("POST", "v1/purposes/versions/notices", { key: tenant.apiKey, json: { language: "en", text: `text ${i}` } })));
    const versions = await Promise.all(many.map(async (r) => ((await r.json()) as { version: number }).version));
    expect(new Set(versions).size).toBe(4);
    expect(Math.min(...versions)).toBe(3);
  });

  it("refuses a key 'all', capitals, a legal basis that is not consent, a repeated key", async () => {
    const create = (body: unknown) => t.call("POST", "v1/purposes", { key: tenant.apiKey, json: body });
    for (const key of ["all", "Newsletter", "news letter", "-x"]) {
      const p = await problem(await create({ key, description: "d", legalBasis: "consent" }));
      expect(p, key).toMatchObject({ status: 422, type: "urn:safedata:problem:validation-failed" });
      expect(p.errors?.[0]?.path).toBe("key");
    }
    for (const basis of ["legitimate-interest", "contract", "Consent"]) {
      const p = await problem(await create({ key: "basis-test", description: "d", legalBasis: basis }));
      expect(p, basis).toMatchObject({ status: 422 });
      expect(p.errors?.[0]).toMatchObject({ path: "legalBasis" });
      expect(p.errors?.[0]?.message).toMatch(/records consent/);
    }
    expect((await create({ key: "explicit", description: "Health data", legalBasis: "explicit-consent" })).status).toBe(201);
    expect((await problem(await create({ key: "explicit", description: "again", legalBasis: "consent" }))).status).toBe(409);
  });

  it("answers another tenant's purpose as an unknown one", async () => {
    const mine = await problem(await t.call("GET", "v1/purposes/no-such-purpose", { key: tenant.apiKey }));
    const theirs = await problem(await t.call("GET", "v1/purposes/others-only", { key: tenant.apiKey }));
    expect(theirs).toMatchObject({ status: 404, type: mine.type, detail: mine.detail });
    const note = await problem(await t.call("POST", "v1/purposes/others-only/notices", { key: tenant.apiKey, json: { language: "en", text: "x" } }));
    expect(note.status).toBe(404);
  });
});

describe("recording decisions; the state is a projection of the events", () => {
  it("grant, withdraw, grant again", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", givenAt: "2026-01-01T10:00:00Z" });
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("granted");
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", decision: "withdrawn", method: "email", requestOrigin: "email", givenAt: "2026-02-01T10:00:00Z" });
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("withdrawn");
    await recordDecision(t, tenant.apiKey, { email: email.toUpperCase(), purpose: "newsletter", noticeVersion: 1, decision: "granted", givenAt: "2026-03-01T10:00:00Z" });
    const s = await stateOf(t, tenant.apiKey, email.toUpperCase());
    expect(s.states).toEqual([expect.objectContaining({ purpose: "newsletter", decision: "granted", since: "2026-03-01T10:00:00.000Z", events: 3 })]);
    expect(s.history.map((e) => e.decision)).toEqual(["granted", "withdrawn", "granted"]);
    // One subject, however the address is written.
    expect(new Set(s.history.map((e) => e.subjectId)).size).toBe(1);
  });

  it("denied then granted; and purposes are apart", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "profiling", noticeVersion: 1, decision: "denied" });
    expect(await decisionOf(t, tenant.apiKey, email, "profiling")).toBe("denied");
    await recordDecision(t, tenant.apiKey, { email, purpose: "profiling", noticeVersion: 1, decision: "granted" });
    expect(await decisionOf(t, tenant.apiKey, email, "profiling")).toBe("granted");
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("no-record");
  });

  it("a withdrawal of all purposes is one call, recorded even for purposes never consented to", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const res = await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email, purpose: "all" } });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { eventIds: string[] };
    const purposes = ((await (await t.call("GET", "v1/purposes", { key: tenant.apiKey })).json()) as { items: unknown[] }).items.length;
    expect(body.eventIds).toHaveLength(purposes);
    const s = await stateOf(t, tenant.apiKey, email);
    expect(s.states.every((x) => x.decision === "withdrawn")).toBe(true);
    expect(s.states.map((x) => x.purpose)).toContain("profiling");
    const one = await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email: person(), purpose: "profiling" } });
    expect(one.status).toBe(201);
  });

  it("is honoured once per Idempotency-Key", async () => {
    const email = person();
    const body = { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", method: "form", requestOrigin: "form" };
    const first = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: body, headers: { "idempotency-key": `consent-${email}` } });
    const again = await t.call("POST", "v1/consents", { key: tenant.apiKey, json: body, headers: { "idempotency-key": `consent-${email}` } });
    expect(first.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as { id: string }).id).toBe(((await first.json()) as { id: string }).id);
    expect((await stateOf(t, tenant.apiKey, email)).history).toHaveLength(1);
  });

  it("shows one event by id, and not another tenant's", async () => {
    const e = await recordDecision(t, tenant.apiKey, { email: person(), purpose: "newsletter", noticeVersion: 1, decision: "granted", ipAddress: "203.0.113.77" });
    const got = await t.call("GET", `v1/consents/${e.id}`, { key: tenant.apiKey });
    expect(await got.json()).toMatchObject({ id: e.id, ipAddress: "203.0.113.0/24", decision: "granted", audit: e.audit });
    expect((await t.call("GET", `v1/consents/${e.id}`, { key: other.apiKey })).status).toBe(404);
  });
});

describe("bad input: each a 4xx problem saying what is wrong", () => {
  const good = () => ({ email: person(), purpose: "newsletter", noticeVersion: 1, decision: "granted", method: "click", requestOrigin: "banner" });
  const post = (body: unknown) => t.call("POST", "v1/consents", { key: tenant.apiKey, json: body });

  it("an unknown purpose, another tenant's purpose (the same answer), unknown notice versions", async () => {
    const unknown = await problem(await post({ ...good(), purpose: "no-such-purpose" }));
    const theirs = await problem(await post({ ...good(), purpose: "others-only" }));
    expect(unknown).toMatchObject({ status: 422, type: "urn:safedata:problem:validation-failed" });
    expect(theirs.detail).toBe(unknown.detail);
    expect(theirs.errors).toEqual(unknown.errors);
    expect(await problem(await post({ ...good(), noticeVersion: 99 }))).toMatchObject({ status: 422, errors: [expect.objectContaining({ path: "noticeVersion" })] });
    // A version another purpose has but this one has not.
    await purposeWithNotice(t, tenant.apiKey, "one-version");
    const v2 = await t.call("POST", "v1/purposes/newsletter/notices", { key: tenant.apiKey, json: { language: "en", text: "v2" } });
    expect(v2.status).toBe(201);
    expect(await problem(await post({ ...good(), purpose: "one-version", noticeVersion: 2 }))).toMatchObject({ status: 422, errors: [expect.objectContaining({ path: "noticeVersion" })] });
    expect(await problem(await post({ ...good(), noticeVersion: undefined }))).toMatchObject({ status: 422, errors: [expect.objectContaining({ path: "noticeVersion" })] });
  });

  it("givenAt more than 5 minutes ahead", async () => {
    const ahead = (ms: number) => new Date(t.clock.now().getTime() + ms).toISOString();
    expect((await post({ ...good(), givenAt: ahead(5 * 60_000) })).status).toBe(201);
    expect(await problem(await post({ ...good(), givenAt: ahead(5 * 60_000 + 1000) }))).toMatchObject({ status: 422, errors: [expect.objectContaining({ path: "givenAt" })] });
  });

  it("invalid IP addresses", async () => {
    for (const ip of ["999.1.1.1", "10.0.0", "2001:db8::g", "not-an-ip", "010.1.1.1", "fe80::1%eth0"]) {
      const p = await problem(await post({ ...good(), ipAddress: ip }));
      expect(p, ip).toMatchObject({ status: 422, type: "urn:safedata:problem:validation-failed", errors: [expect.objectContaining({ path: "ipAddress" })] });
      expect(JSON.stringify(p), "the address is not echoed").not.toContain(ip === "not-an-ip" ? "not-an-ip" : ip);
    }
  });

  it("a method or origin only the service uses, gpc granting, unknown fields", async () => {
    expect((await post({ ...good(), method: "withdrawal-link" })).status).toBe(422);
    expect((await post({ ...good(), requestOrigin: "withdrawal-link" })).status).toBe(422);
    expect(await problem(await post({ ...good(), method: "gpc" }))).toMatchObject({ status: 422, errors: [expect.objectContaining({ path: "method" })] });
    expect((await post({ ...good(), decision: "denied", method: "gpc", gpc: true })).status).toBe(201);
    expect((await post({ ...good(), extra: 1 })).status).toBe(422);
    expect((await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email: person(), purpose: "Newsletter" } })).status).toBe(422);
  });
});

describe("what is stored", () => {
  it("holds no e-mail address and no full IP address in clear; the full IP only encrypted, only when the tenant opted in", async () => {
    const email = "Stored.Person+tag@subject.example";
    const ipv4 = "198.51.100.234";
    const ipv6 = "2001:db8:abcd:12:3456:789a:bcde:f012";
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", ipAddress: ipv4, userAgent: "Mozilla/5.0 (secret agent)", pageUrl: "https://shop.example/checkout?user=stored.person" });
    expect((await t.call("PUT", "v1/consents/settings", { key: tenant.apiKey, json: { storeFullIp: true } })).status).toBe(200);
    const withIp = await recordDecision(t, tenant.apiKey, { email, purpose: "profiling", noticeVersion: 1, decision: "granted", ipAddress: ipv6 });
    expect(withIp.ipAddress).toBe("2001:db8:abcd::/48");
    await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email, purpose: "all" } });
    await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" } });
    expect((await t.call("PUT", "v1/consents/settings", { key: tenant.apiKey, json: { storeFullIp: false } })).status).toBe(200);

    const { resources } = await t.raw.containers.consents.items.query({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenant.tenantId }] }).fetchAll();
    const raw = JSON.stringify(resources).toLowerCase();
    for (const secret of [email.toLowerCase(), "stored.person", ipv4, ipv6, "2001:db8:abcd:12:", "secret agent", "shop.example/checkout"]) {
      expect(raw.includes(secret.toLowerCase()), `stored in clear: ${secret}`).toBe(false);
    }
    expect(raw).toContain("198.51.100.0/24");
    const events = resources.filter((d: { type: string; subjectId?: string }) => d.type === "consent-event") as Array<{ personal: { ipAddress: string | null }; purposeKey: string; subjectId: string }>;
    const mine = events.filter((e) => e.subjectId === withIp.subjectId);
    expect(mine.find((e) => e.purposeKey === "newsletter")!.personal.ipAddress, "not opted in: no full IP at all").toBeNull();
    expect(mine.find((e) => e.purposeKey === "profiling")!.personal.ipAddress).toMatch(/^v1\./);
    // Nor in the audit log, which is never erased.
    const audit = await t.raw.containers.audit.items.query({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenant.tenantId }] }).fetchAll();
    const log = JSON.stringify(audit.resources).toLowerCase();
    for (const secret of [email.toLowerCase(), ipv4, ipv6, "198.51.100.0", "secret agent"]) expect(log.includes(secret), `in the audit log: ${secret}`).toBe(false);
  });
});

describe("search and summary", () => {
  it("search is audited; an unknown address finds nothing", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const s = await stateOf(t, tenant.apiKey, email);
    const entries = await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = 'consent.searched' AND c.target.id = @s", parameters: [{ name: "@t", value: tenant.tenantId }, { name: "@s", value: s.subjectId! }] })
      .fetchAll();
    expect(entries.resources.length).toBeGreaterThan(0);
    expect(await stateOf(t, tenant.apiKey, person())).toEqual({ subjectId: null, states: [], history: [] });
    expect(await stateOf(t, other.apiKey, email)).toEqual({ subjectId: null, states: [], history: [] });
  });

  it("counts events and current decisions per notice version and decision", async () => {
    await purposeWithNotice(t, tenant.apiKey, "counted");
    const a = person();
    const b = person();
    await recordDecision(t, tenant.apiKey, { email: a, purpose: "counted", noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email: b, purpose: "counted", noticeVersion: 1, decision: "denied" });
    await t.call("POST", "v1/purposes/counted/notices", { key: tenant.apiKey, json: { language: "en", text: "v2" } });
    await recordDecision(t, tenant.apiKey, { email: b, purpose: "counted", noticeVersion: 2, decision: "granted" });
    const res = await t.call("GET", "v1/purposes/counted/consents/summary", { key: tenant.apiKey });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { events: Array<Record<string, number | null>>; current: Array<Record<string, number | null>> };
    expect(body.events).toEqual([
      { noticeVersion: 1, granted: 1, denied: 1, withdrawn: 0 },
      { noticeVersion: 2, granted: 1, denied: 0, withdrawn: 0 },
    ]);
    expect(body.current).toEqual([
      { noticeVersion: 1, granted: 1, denied: 0, withdrawn: 0 },
      { noticeVersion: 2, granted: 1, denied: 0, withdrawn: 0 },
    ]);
    expect((await t.call("GET", "v1/purposes/others-only/consents/summary", { key: tenant.apiKey })).status).toBe(404);
  });
});

interface ProofEvent {
  eventId: string;
  decision: string;
  notice: { version: number; text: string | null; sha256: string } | null;
  evidence: { pageUrl: string | null; userAgent: string | null; fullIpAddress: string | null };
  digest: { key: string; content: Record<string, unknown>; canonical: string; value: string };
  audit: { seq: number; hash: string; entry: Record<string, unknown> & { details: { digest: string }; prevHash: string; hash: string; target: { id: string } } };
}

describe("the proof document", () => {
  it("lists every event oldest first with its notice, and its digests and audit entries verify from the outside", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "profiling", noticeVersion: 1, decision: "granted", givenAt: "2026-01-01T09:00:00Z", ipAddress: "203.0.113.9", pageUrl: "https://shop.example/p", userAgent: "UA/1", propertyId: "shop.example", language: "da", gpc: false });
    await recordDecision(t, tenant.apiKey, { email, purpose: "profiling", decision: "withdrawn", givenAt: "2026-02-01T09:00:00Z", method: "form", requestOrigin: "form" });
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const res = await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "profiling" } });
    expect(res.status).toBe(200);
    const proof = (await res.json()) as { currentState: { decision: string }; events: ProofEvent[]; verification: { auditVerify: string[]; steps: string[] } };
    expect(proof.currentState.decision).toBe("withdrawn");
    expect(proof.events.map((e) => e.decision)).toEqual(["granted", "withdrawn"]);
    expect(proof.events[0]!.notice).toMatchObject({ version: 1, text: "We send you news about profiling." });
    expect(proof.events[0]!.evidence).toEqual({ pageUrl: "https://shop.example/p", userAgent: "UA/1", fullIpAddress: null });

    for (const [i, e] of proof.events.entries()) {
      // 1. The digest: HMAC-SHA256 under the event's own key over the canonical JSON of the content shown.
      expect(canonicalJson(e.digest.content)).toBe(e.digest.canonical);
      expect(createHmac("sha256", Buffer.from(e.digest.key, "hex")).update(e.digest.canonical, "utf8").digest("hex")).toBe(e.digest.value);
      expect(e.digest.canonical).not.toContain(email);
      // 2. The audit entry carries it and names the event.
      expect(e.audit.entry.details.digest).toBe(e.digest.value);
      expect(e.audit.entry.target.id).toBe(e.eventId);
      // 3. The entry's hash.
      const { hash, ...content } = e.audit.entry;
      expect(createHash("sha256").update("safedata.audit.v1\n").update(canonicalJson(content)).digest("hex")).toBe(hash);
      expect(hash).toBe(e.audit.hash);
      // 4. The chain holds it.
      const verify = (await (await t.call("GET", proof.verification.auditVerify[i]!.replace(/^\/api\//, ""), { key: tenant.apiKey })).json()) as { valid: boolean; lastHash: string };
      expect(verify).toMatchObject({ valid: true, lastHash: e.audit.hash });
    }
    // A changed content no longer matches its digest.
    const e0 = proof.events[0]!;
    const forged = canonicalJson({ ...e0.digest.content, decision: "denied" });
    expect(createHmac("sha256", Buffer.from(e0.digest.key, "hex")).update(forged).digest("hex")).not.toBe(e0.digest.value);
    // One event's key does not open another's digest.
    const e1 = proof.events[1]!;
    expect(createHmac("sha256", Buffer.from(e0.digest.key, "hex")).update(e1.digest.canonical).digest("hex")).not.toBe(e1.digest.value);

    const issued = await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = 'consent.proof-issued'", parameters: [{ name: "@t", value: tenant.tenantId }] })
      .fetchAll();
    expect(issued.resources.some((r: { details: { fields: string[] } }) => r.details.fields.includes("pageUrl"))).toBe(true);
  });

  it("prints as escaped HTML without scripts, with a strict Content-Security-Policy, in the tenant's language", async () => {
    const email = person();
    const nasty = '<script>alert("x")</script><img src=x onerror=alert(1)>';
    await t.call("POST", "v1/purposes", { key: tenant.apiKey, json: { key: "html-test", description: nasty, legalBasis: "consent" } });
    await t.call("POST", "v1/purposes/html-test/notices", { key: tenant.apiKey, json: { language: "en", text: nasty } });
    await recordDecision(t, tenant.apiKey, { email, purpose: "html-test", noticeVersion: 1, decision: "granted", userAgent: nasty, pageUrl: "javascript:alert(1)" });
    const res = await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "html-test", format: "html" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/script-src|unsafe-eval/);
    const html = await res.text();
    expect(html).not.toMatch(/<script|<img|onerror=/i);
    expect(html).toContain("&lt;script&gt;");
    expect(html).toContain("Proof of consent");
    await t.admin("PATCH", `v1/admin/tenants/${tenant.tenantId}`, { language: "da" });
    const da = await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "html-test", format: "html" } })).text();
    expect(da).toContain("Dokumentation for samtykke");
    await t.admin("PATCH", `v1/admin/tenants/${tenant.tenantId}`, { language: "en" });
  });

  it("a replayed proof request shows no decrypted evidence; an unknown subject or purpose is a 4xx", async () => {
    const email = person();
    await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted", userAgent: "UA/replay" });
    const headers = { "idempotency-key": `proof-${email}` };
    const first = (await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" }, headers })).json()) as { events: ProofEvent[] };
    expect(first.events[0]!.evidence.userAgent).toBe("UA/replay");
    const replay = await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" }, headers });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(((await replay.json()) as { events: ProofEvent[] }).events[0]!.evidence.userAgent).toBeNull();
    expect((await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email: person(), purpose: "newsletter" } })).status).toBe(404);
    expect((await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "others-only" } })).status).toBe(422);
  });

  it("refuses to issue a proof whose event was changed in storage", async () => {
    const email = person();
    const e = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    const item = t.raw.containers.consents.item(e.id, tenant.tenantId);
    const { resource } = await item.read<Record<string, unknown>>();
    await item.replace({ ...resource!, decision: "denied" });
    const res = await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" } });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { type: string }).type).toBe("urn:safedata:problem:integrity-error");
  });
});

describe("uploads that name a consent purpose", () => {
  const upload = (key: string, body: Record<string, unknown>) => t.call("POST", "v1/uploads", { key, json: { ...baseUpload, size: 1, ...body } });

  it("are refused with 403 consent-not-granted unless every data subject's latest decision is granted", async () => {
    const granted = person();
    const withdrawn = person();
    const denied = person();
    await recordDecision(t, tenant.apiKey, { email: granted, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await recordDecision(t, tenant.apiKey, { email: withdrawn, purpose: "newsletter", noticeVersion: 1, decision: "granted" });
    await t.call("POST", "v1/consents/withdraw", { key: tenant.apiKey, json: { email: withdrawn, purpose: "newsletter" } });
    await recordDecision(t, tenant.apiKey, { email: denied, purpose: "newsletter", noticeVersion: 1, decision: "denied" });

    expect((await upload(tenant.apiKey, { dataSubjects: [granted], consentPurpose: "newsletter" })).status).toBe(201);
    for (const [who, state] of [
      [withdrawn, "withdrawn"],
      [denied, "denied"],
      [person(), "no-record"],
    ] as const) {
      const p = await problem(await upload(tenant.apiKey, { dataSubjects: [granted, who], consentPurpose: "newsletter" }));
      expect(p, state).toMatchObject({ status: 403, type: "urn:safedata:problem:consent-not-granted" });
      expect(p.detail).toContain("newsletter");
      expect(p.detail).toContain(state);
      expect(p.detail).not.toContain("@");
    }
    // Another purpose's consent does not count; nor does another tenant's.
    expect((await upload(tenant.apiKey, { dataSubjects: [granted], consentPurpose: "profiling" })).status).toBe(403);
    expect((await upload(tenant.apiKey, { dataSubjects: [granted], consentPurpose: "others-only" })).status).toBe(422);
    // Without the field, uploads are as before.
    expect((await upload(tenant.apiKey, { dataSubjects: [withdrawn] })).status).toBe(201);
  });
});
