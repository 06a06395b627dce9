/**
 * Withdrawal links end to end: a tenant issues a signed link, the person opens the page (no key) and withdraws with
 * one POST, exactly once however often it is sent; expired, forged and tampered links get a page that says so and
 * nothing about the person; a link for one subject never touches another; a rotated secret keeps older links
 * working for their lifetime; each link is rate limited with stored counters; the pages are escaped, scriptless,
 * under a strict Content-Security-Policy, in the tenant's language; the tenant's webhook hears of the withdrawal.
 */
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { decisionOf, purposeWithNotice, recordDecision, stateOf } from "../helpers/consents";
import { eventually } from "../helpers/eventually";
import { serveFake } from "../fakes/serve";
import { LINK_RATE_LIMIT } from "../../shared/domain/consent";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let receiver: { url: string; stop(): Promise<void> };
const received: string[] = [];

beforeAll(async () => {
  receiver = await serveFake(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    received.push(Buffer.concat(chunks).toString("utf8"));
    res.writeHead(200);
    res.end();
  });
  t = await startTestApp({ settings: { ALLOW_LOOPBACK_WEBHOOKS: "true", CONSENT_LINK_DAYS: "30" } });
  t.clock.set("2026-06-01T08:00:00.000Z");
  tenant = await t.createTenant("Link Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
  await purposeWithNotice(t, tenant.apiKey, "offers");
});
afterAll(async () => {
  await t?.stop();
  await receiver?.stop();
});

let n = 0;
const person = () => `link.person.${++n}@subject.example`;

async function granted(email: string, purposes = ["newsletter", "offers"]): Promise<void> {
  for (const purpose of purposes) await recordDecision(t, tenant.apiKey, { email, purpose, noticeVersion: 1, decision: "granted" });
}

async function link(email: string, purpose: string): Promise<{ path: string; url: string; token: string; linkId: string; subjectId: string; expiresAt: string }> {
  const res = await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email, purpose } });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as { path: string; url: string; token: string; linkId: string; subjectId: string; expiresAt: string };
}

/** The public page, with no credentials at all. */
const open = (path: string, method = "GET") => fetch(`${t.api.replace(/\/api$/, "")}${path}`, { method, redirect: "manual" });

function expectPageHeaders(res: Response): void {
  expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
  const csp = res.headers.get("content-security-policy")!;
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("form-action 'self'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toMatch(/script-src|unsafe-eval/);
  expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  expect(res.headers.get("cache-control")).toBe("no-store");
}

describe("a withdrawal link", () => {
  it("shows a confirmation page (opening withdraws nothing), then one POST withdraws, exactly once", async () => {
    const email = person();
    await granted(email);
    const l = await link(email, "newsletter");
    expect(l.url.endsWith(l.path)).toBe(true);
    expect(l.token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(l.token, "base64url").toString("latin1")).not.toContain(email);

    const page = await open(l.path);
    expect(page.status).toBe(200);
    expectPageHeaders(page);
    const html = await page.text();
    expect(html).toContain('<form method="post">');
    expect(html).toContain("Link Co");
    expect(html).toContain("Consent for newsletter");
    expect(html).not.toContain(email);
    expect(html).not.toMatch(/<script/i);
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("granted");

    const results = await Promise.all([open(l.path, "POST"), open(l.path, "POST"), open(l.path, "POST")]);
    const statuses = results.map((r) => r.status).sort();
    // One withdraws; one sent at the same moment is told to reload (409) or that it is done (200).
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
    for (let i = 0; i < 3; i++) {
      const again = await open(l.path, "POST");
      expect(again.status).toBe(200);
      expect(await again.text()).toContain("This link was used to withdraw your consent");
    }
    const s = await stateOf(t, tenant.apiKey, email);
    expect(s.states.find((x) => x.purpose === "newsletter")?.decision).toBe("withdrawn");
    expect(s.states.find((x) => x.purpose === "offers")?.decision, "another purpose is untouched").toBe("granted");
    const withdrawals = s.history.filter((e) => e.decision === "withdrawn");
    expect(withdrawals).toHaveLength(1);
    expect(withdrawals[0]).toMatchObject({ method: "withdrawal-link", requestOrigin: "withdrawal-link", recordedBy: "subject", linkId: l.linkId });

    // Audited as the subject's own withdrawal, not as a key.
    const { resources } = await t.raw.containers.audit.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = 'consent.recorded' AND c.target.id = @e", parameters: [{ name: "@t", value: tenant.tenantId }, { name: "@e", value: withdrawals[0]!.id }] })
      .fetchAll();
    expect(resources).toHaveLength(1);
    expect(resources[0].actor).toBe("subject");
  });

  it("for all purposes withdraws each, in the tenant's language", async () => {
    await t.admin("PATCH", `v1/admin/tenants/${tenant.tenantId}`, { language: "da" });
    try {
      const email = person();
      await granted(email);
      const l = await link(email, "all");
      const page = await (await open(l.path)).text();
      expect(page).toContain('lang="da"');
      expect(page).toContain("Træk mit samtykke tilbage");
      const done = await open(l.path, "POST");
      expect(done.status).toBe(200);
      expect(await done.text()).toContain("Dit samtykke er trukket tilbage");
      const s = await stateOf(t, tenant.apiKey, email);
      expect(s.states.map((x) => [x.purpose, x.decision])).toEqual([
        ["newsletter", "withdrawn"],
        ["offers", "withdrawn"],
      ]);
    } finally {
      await t.admin("PATCH", `v1/admin/tenants/${tenant.tenantId}`, { language: "en" });
    }
  });

  it("for one subject never touches another, and cannot be turned into one for another", async () => {
    const a = person();
    const b = person();
    await granted(a);
    await granted(b);
    const la = await link(a, "newsletter");
    const lb = await link(b, "newsletter");
    expect((await open(la.path, "POST")).status).toBe(200);
    expect(await decisionOf(t, tenant.apiKey, a, "newsletter")).toBe("withdrawn");
    expect(await decisionOf(t, tenant.apiKey, b, "newsletter")).toBe("granted");
    // B's claims with A's signature (or any mix) do not verify.
    const ba = Buffer.from(lb.token, "base64url");
    const aa = Buffer.from(la.token, "base64url");
    const spliced = Buffer.concat([ba.subarray(0, ba.length - 32), aa.subarray(aa.length - 32)]).toString("base64url");
    const res = await open(`/api/public/consent-withdrawal/${spliced}`, "POST");
    expect(res.status).toBe(403);
    expect(await decisionOf(t, tenant.apiKey, b, "newsletter")).toBe("granted");
  });

  it("forged, changed or malformed: a page that says so (403), about nobody, and nothing happens", async () => {
    const email = person();
    await granted(email);
    const l = await link(email, "newsletter");
    const bytes = Buffer.from(l.token, "base64url");
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 1] = flipped[bytes.length - 1]! ^ 1;
    const forgedAtStart = Buffer.from(bytes);
    forgedAtStart[10] = forgedAtStart[10]! ^ 1;
    for (const token of [flipped.toString("base64url"), forgedAtStart.toString("base64url"), l.token.slice(0, -5), "AAAA", "not-a-token", "x".repeat(900)]) {
      for (const method of ["GET", "POST"]) {
        const res = await open(`/api/public/consent-withdrawal/${token}`, method);
        expect(res.status, `${method} ${token.slice(0, 20)}`).toBe(403);
        expectPageHeaders(res);
        const html = await res.text();
        expect(html).toContain("This link does not work");
        expect(html).not.toContain("Link Co");
        expect(html).not.toContain("newsletter");
        expect(html).not.toContain(l.subjectId);
      }
    }
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("granted");
  });

  it("expires after CONSENT_LINK_DAYS: a page that says so (410); nothing happens", async () => {
    const email = person();
    await granted(email);
    const l = await link(email, "newsletter");
    const start = t.clock.now().getTime();
    expect(Date.parse(l.expiresAt)).toBe(Math.floor((start + 30 * 86_400_000) / 1000) * 1000);
    t.clock.set(start + 30 * 86_400_000 - 60_000);
    expect((await open(l.path)).status).toBe(200);
    t.clock.set(start + 30 * 86_400_000 + 1000);
    try {
      for (const method of ["GET", "POST"]) {
        const res = await open(l.path, method);
        expect(res.status).toBe(410);
        expectPageHeaders(res);
        const html = await res.text();
        expect(html).toContain("This link has expired");
        expect(html).not.toContain("Link Co");
      }
      expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("granted");
    } finally {
      t.clock.set(start);
    }
  });

  it("keeps working after the secret is rotated (for the links' lifetime), and only then stops", async () => {
    const email = person();
    await granted(email);
    const before = await link(email, "newsletter");
    const rotated = await t.call("POST", "v1/consents/withdrawal-links/rotate-secret", { key: tenant.apiKey });
    expect(rotated.status).toBe(200);
    const r = (await rotated.json()) as { secretVersion: number; previousVersion: number; previousRetiresAt: string };
    expect(r.secretVersion).toBe(r.previousVersion + 1);
    const after = await link(email, "offers");
    expect(Buffer.from(after.token, "base64url").equals(Buffer.from(before.token, "base64url"))).toBe(false);
    expect((await open(before.path)).status).toBe(200);
    expect((await open(before.path, "POST")).status).toBe(200);
    expect((await open(after.path, "POST")).status).toBe(200);
    expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("withdrawn");
    expect(await decisionOf(t, tenant.apiKey, email, "offers")).toBe("withdrawn");
    // A link signed just before a rotation works until its own expiry, 29 days on; by then the old secret has
    // retired, and the next rotation drops it.
    const other = person();
    await granted(other);
    const old = await link(other, "newsletter");
    const start = t.clock.now().getTime();
    const again = (await (await t.call("POST", "v1/consents/withdrawal-links/rotate-secret", { key: tenant.apiKey })).json()) as { previousVersion: number; previousRetiresAt: string };
    expect(Date.parse(again.previousRetiresAt)).toBeGreaterThanOrEqual(Date.parse(old.expiresAt));
    try {
      t.clock.set(start + 29 * 86_400_000);
      expect((await open(old.path)).status).toBe(200);
      expect((await open(old.path, "POST")).status).toBe(200);
      expect(await decisionOf(t, tenant.apiKey, other, "newsletter")).toBe("withdrawn");
      t.clock.set(Date.parse(again.previousRetiresAt) + 1000);
      expect((await open(old.path)).status).toBe(410);
      expect((await t.call("POST", "v1/consents/withdrawal-links/rotate-secret", { key: tenant.apiKey })).status).toBe(200);
      const doc = await t.services.consents.getLinkSecrets(tenant.tenantId);
      expect(doc!.secrets.map((x) => x.version)).not.toContain(again.previousVersion);
      expect((await open(old.path)).status, "a token naming a dropped secret does not verify").toBe(403);
    } finally {
      t.clock.set(start);
    }
  });

  it("is rate limited per link with stored counters: 20 an hour, then 429 with Retry-After", async () => {
    const email = person();
    await granted(email);
    const l = await link(email, "newsletter");
    const other = await link(email, "offers");
    const start = t.clock.now().getTime();
    try {
      for (let i = 0; i < LINK_RATE_LIMIT; i++) expect((await open(l.path)).status).toBe(200);
      const limited = await open(l.path, "POST");
      expect(limited.status).toBe(429);
      expect(limited.headers.get("content-type")).toContain("application/problem+json");
      expect(((await limited.json()) as { type: string }).type).toBe("urn:safedata:problem:too-many-requests");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("granted");
      // Another link is counted apart; the counter is stored, not kept in this instance's memory.
      expect((await open(other.path)).status).toBe(200);
      const { resources } = await t.raw.containers.consents.items
        .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'consent-link-rate'", parameters: [{ name: "@t", value: tenant.tenantId }] })
        .fetchAll();
      expect(resources.some((d: { count: number; ttl: number }) => d.count === LINK_RATE_LIMIT && d.ttl > 0)).toBe(true);
      t.clock.set(start + 3_600_000 + 1000);
      expect((await open(l.path, "POST")).status).toBe(200);
      expect(await decisionOf(t, tenant.apiKey, email, "newsletter")).toBe("withdrawn");
    } finally {
      t.clock.set(start);
    }
  });

  it("tells the tenant's webhook, with ids only", async () => {
    expect((await t.call("PUT", "v1/webhook", { key: tenant.apiKey, json: { url: `${receiver.url}/hooks` } })).status).toBe(201);
    const email = person();
    await granted(email);
    const l = await link(email, "offers");
    expect((await open(l.path, "POST")).status).toBe(200);
    await eventually(() => expect(received.some((b) => b.includes('"consent.withdrawn"') && b.includes(l.linkId))).toBe(true), 20_000);
    const body = received.find((b) => b.includes(l.linkId))!;
    expect(body).not.toContain(email);
    expect(JSON.parse(body)).toMatchObject({ type: "consent.withdrawn", data: { subjectId: l.subjectId, purpose: "offers", linkId: l.linkId, events: 1 } });
    await t.call("DELETE", "v1/webhook", { key: tenant.apiKey });
  });

  it("cannot be issued for an address without records or for an unknown purpose", async () => {
    expect((await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email: person(), purpose: "all" } })).status).toBe(422);
    const email = person();
    await granted(email, ["newsletter"]);
    expect((await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email, purpose: "nope" } })).status).toBe(422);
    expect((await t.call("POST", "v1/consents/withdrawal-links", { key: tenant.apiKey, json: { email, purpose: "All" } })).status).toBe(422);
  });

  it("stores its secret only encrypted, and the link use only by the token's hash", async () => {
    const { resources } = await t.raw.containers.consents.items
      .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND (c.type = 'consent-link-secrets' OR c.type = 'consent-link-use')", parameters: [{ name: "@t", value: tenant.tenantId }] })
      .fetchAll();
    const secrets = resources.find((d: { type: string }) => d.type === "consent-link-secrets") as { secrets: Array<{ sealed: { value: string } }> };
    expect(secrets.secrets.every((x) => x.sealed.value.startsWith("v1."))).toBe(true);
    const uses = resources.filter((d: { type: string }) => d.type === "consent-link-use") as Array<{ id: string; usedAt: string | null }>;
    expect(uses.length).toBeGreaterThan(0);
    expect(uses.every((u) => /^link-use:[0-9a-f]{64}$/.test(u.id) && u.usedAt !== null)).toBe(true);
  });
});
