/**
 * Tenant isolation, route by route. Every tenant-authenticated endpoint must have a case here: the test fails
 * when a new route appears without one. Each case lets tenant B own something, then proves tenant A, with its
 * own valid key, can neither see nor touch it.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { endpoints } from "../../shared/http/endpoint";
import { startTestApp, type TestApp } from "../helpers/app";
import { createUpload, download, putContent, uploadWith } from "../helpers/uploads";
import { breachBody, partOf, registerBreach } from "../helpers/breaches";

interface Tenant {
  tenantId: string;
  apiKey: string;
}

interface IsolationCase {
  /** Proves A cannot read, list, change or delete B's data through this route. */
  check(t: TestApp, a: Tenant, b: Tenant): Promise<void>;
}

const json = async <T>(res: Response) => (await res.json()) as T;

/** B's upload with content, for the upload routes. */
async function bUpload(t: TestApp, b: Tenant) {
  return uploadWith(t, b.apiKey, 100);
}

async function expectNotFound(res: Response) {
  expect(res.status).toBe(404);
  expect(((await res.json()) as { type: string }).type).toBe("urn:safedata:problem:not-found");
}

export const ISOLATION_CASES: Record<string, IsolationCase> = {
  "retention-get": {
    async check(t, a, b) {
      const before = await json<{ uploads: { dueByDay: Array<{ count: number }> } }>(await t.call("GET", "v1/retention", { key: a.apiKey }));
      await bUpload(t, b);
      const after = await json<{ uploads: { dueByDay: Array<{ count: number }> }; receipts: unknown[] }>(await t.call("GET", "v1/retention", { key: a.apiKey }));
      const total = (v: typeof before) => v.uploads.dueByDay.reduce((n, d) => n + d.count, 0);
      expect(total(after)).toBe(total(before));
    },
  },
  "uploads-create": {
    // Creation cannot target another tenant: the key decides where the record goes.
    async check(t, a, b) {
      const { id } = await createUpload(t, a.apiKey);
      expect(await t.services.uploads.get(a.tenantId, id)).toBeDefined();
      expect(await t.services.uploads.get(b.tenantId, id)).toBeUndefined();
    },
  },
  "uploads-put-content": {
    async check(t, a, b) {
      const { id } = await createUpload(t, b.apiKey, { size: 3 });
      await expectNotFound(await putContent(t, a.apiKey, id, Buffer.from("abc")));
      expect((await t.services.uploads.get(b.tenantId, id))?.status).toBe("awaiting-content");
    },
  },
  "uploads-get": {
    async check(t, a, b) {
      const { id } = await bUpload(t, b);
      await expectNotFound(await t.call("GET", `v1/uploads/${id}`, { key: a.apiKey }));
    },
  },
  "uploads-get-content": {
    async check(t, a, b) {
      const { id } = await bUpload(t, b);
      const { res, body } = await download(t, a.apiKey, id);
      expect(res.status).toBe(404);
      expect(JSON.parse(body.toString()).type).toBe("urn:safedata:problem:not-found");
      expect((await t.services.uploads.get(b.tenantId, id))?.downloads).toBe(0);
    },
  },
  "uploads-list": {
    async check(t, a, b) {
      const { id } = await bUpload(t, b);
      const res = await t.call("GET", "v1/uploads?limit=200", { key: a.apiKey });
      const items = ((await res.json()) as { items: Array<{ id: string }> }).items;
      expect(items.map((i) => i.id)).not.toContain(id);
    },
  },
  "uploads-delete": {
    async check(t, a, b) {
      const { id, content } = await bUpload(t, b);
      await expectNotFound(await t.call("DELETE", `v1/uploads/${id}`, { key: a.apiKey }));
      expect((await download(t, b.apiKey, id)).body.equals(content)).toBe(true);
    },
  },
  "audit-list": {
    async check(t, a, b) {
      await t.services.audit.append({ tenantId: b.tenantId, actor: "system:test", action: "upload.deleted", target: { type: "upload", id: "b-secret-upload" } });
      const res = await t.call("GET", "v1/audit?limit=200", { key: a.apiKey });
      expect(res.status).toBe(200);
      const body = await json<{ items: Array<{ target: { id: string } | null }> }>(res);
      expect(body.items.every((i) => i.target?.id !== "b-secret-upload" && i.target?.id !== b.tenantId)).toBe(true);
    },
  },
  "audit-verify": {
    async check(t, a, b) {
      const before = await json<{ entriesChecked: number }>(await t.call("GET", "v1/audit/verify", { key: a.apiKey }));
      await t.services.audit.append({ tenantId: b.tenantId, actor: "system:test", action: "upload.deleted" });
      const after = await json<{ entriesChecked: number }>(await t.call("GET", "v1/audit/verify", { key: a.apiKey }));
      expect(after.entriesChecked).toBe(before.entriesChecked);
    },
  },
  // Webhooks: each tenant has one endpoint, found by its own key only.
  "webhook-put": {
    async check(t, a, b) {
      await bWebhook(t, b);
      expect((await t.call("PUT", "v1/webhook", { key: a.apiKey, json: { url: "http://127.0.0.1:9/a" } })).status).toBeLessThan(300);
      expect((await t.services.webhooks.getEndpoint(b.tenantId))?.url).toBe("http://127.0.0.1:9/b");
      await t.call("DELETE", "v1/webhook", { key: a.apiKey });
    },
  },
  "webhook-get": {
    async check(t, a, b) {
      await bWebhook(t, b);
      await expectNotFound(await t.call("GET", "v1/webhook", { key: a.apiKey }));
    },
  },
  "webhook-delete": {
    async check(t, a, b) {
      await bWebhook(t, b);
      await expectNotFound(await t.call("DELETE", "v1/webhook", { key: a.apiKey }));
      expect(await t.services.webhooks.getEndpoint(b.tenantId)).toBeDefined();
    },
  },
  "webhook-rotate-secret": {
    async check(t, a, b) {
      await bWebhook(t, b);
      const before = (await t.services.webhooks.getEndpoint(b.tenantId))!.secrets.map((x) => x.id);
      await expectNotFound(await t.call("POST", "v1/webhook/rotate-secret", { key: a.apiKey }));
      expect((await t.services.webhooks.getEndpoint(b.tenantId))!.secrets.map((x) => x.id)).toEqual(before);
    },
  },
  "webhook-test": {
    async check(t, a, b) {
      await bWebhook(t, b);
      await expectNotFound(await t.call("POST", "v1/webhook/test", { key: a.apiKey }));
      expect((await t.services.webhooks.deliveryStats(b.tenantId)).pending).toBe(0);
    },
  },
  "webhook-deliveries": {
    async check(t, a, b) {
      await bWebhook(t, b);
      const { deliveryId } = await json<{ deliveryId: string }>(await t.call("POST", "v1/webhook/test", { key: b.apiKey }));
      const list = await json<{ items: Array<{ id: string }> }>(await t.call("GET", "v1/webhook/deliveries?limit=200", { key: a.apiKey }));
      expect(list.items.map((d) => d.id)).not.toContain(deliveryId);
    },
  },
  // Consent records: purposes, subjects, events, links and settings are each tenant's own; the same purpose key or
  // address at another tenant names nothing of theirs.
  "consent-purposes-create": {
    async check(t, a, b) {
      // A may use a key B uses: it makes A's own purpose and leaves B's as it was.
      expect((await t.call("POST", "v1/purposes", { key: b.apiKey, json: { key: "iso-same-key", description: "B's", legalBasis: "consent" } })).status).toBe(201);
      expect((await t.call("POST", "v1/purposes", { key: a.apiKey, json: { key: "iso-same-key", description: "A's own", legalBasis: "consent" } })).status).toBe(201);
      expect(await json<{ description: string }>(await t.call("GET", "v1/purposes/iso-same-key", { key: b.apiKey }))).toMatchObject({ description: "B's" });
    },
  },
  "consent-purposes-list": {
    async check(t, a, b) {
      const { purpose } = await bConsent(t, b);
      const list = await json<{ items: Array<{ key: string; description: string }> }>(await t.call("GET", "v1/purposes", { key: a.apiKey }));
      expect(list.items.filter((p) => p.key === purpose && p.description === "B's purpose")).toEqual([]);
    },
  },
  "consent-purposes-get": {
    async check(t, a, b) {
      await bConsent(t, b);
      await expectNotFound(await t.call("GET", "v1/purposes/iso-b-only", { key: a.apiKey }));
    },
  },
  "consent-notices-create": {
    async check(t, a, b) {
      await bConsent(t, b);
      await expectNotFound(await t.call("POST", "v1/purposes/iso-b-only/notices", { key: a.apiKey, json: { language: "en", text: "A's text" } }));
      const got = await json<{ notices: unknown[] }>(await t.call("GET", "v1/purposes/iso-b-only", { key: b.apiKey }));
      expect(got.notices).toHaveLength(1);
    },
  },
  "consent-summary": {
    async check(t, a, b) {
      await bConsent(t, b);
      await expectNotFound(await t.call("GET", "v1/purposes/iso-b-only/consents/summary", { key: a.apiKey }));
    },
  },
  "consents-record": {
    async check(t, a, b) {
      const { email } = await bConsent(t, b);
      const res = await t.call("POST", "v1/consents", { key: a.apiKey, json: { email, purpose: "iso-b-only", noticeVersion: 1, decision: "denied", method: "click", requestOrigin: "banner" } });
      expect(res.status).toBe(422);
      expect(await bDecision(t, b, email)).toBe("granted");
    },
  },
  "consents-withdraw": {
    async check(t, a, b) {
      const { email } = await bConsent(t, b);
      await ensurePurpose(t, a, "iso-a-only");
      expect((await t.call("POST", "v1/consents/withdraw", { key: a.apiKey, json: { email, purpose: "all" } })).status).toBe(201);
      expect(await bDecision(t, b, email)).toBe("granted");
    },
  },
  "consents-search": {
    async check(t, a, b) {
      const { email } = await bConsent(t, b);
      expect(await json(await t.call("POST", "v1/consents/search", { key: a.apiKey, json: { email } }))).toEqual({ subjectId: null, states: [], history: [] });
    },
  },
  "consents-get": {
    async check(t, a, b) {
      const { eventId } = await bConsent(t, b);
      await expectNotFound(await t.call("GET", `v1/consents/${eventId}`, { key: a.apiKey }));
    },
  },
  "consents-evidence-put": {
    async check(t, a, b) {
      const { eventId } = await bConsent(t, b);
      const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100)]);
      await expectNotFound(await t.call("PUT", `v1/consents/${eventId}/evidence`, { key: a.apiKey, headers: { "content-type": "image/png" }, body: new Uint8Array(png) }));
      expect(await t.services.consents.getEvidence(b.tenantId, eventId)).toBeUndefined();
      expect(await t.services.consents.getEvidence(a.tenantId, eventId)).toBeUndefined();
    },
  },
  "consents-evidence-get": {
    async check(t, a, b) {
      const { eventId } = await bConsent(t, b);
      const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100)]);
      expect((await t.call("PUT", `v1/consents/${eventId}/evidence`, { key: b.apiKey, headers: { "content-type": "image/png" }, body: new Uint8Array(png) })).status).toBe(201);
      await expectNotFound(await t.call("GET", `v1/consents/${eventId}/evidence`, { key: a.apiKey }));
    },
  },
  "consents-export": {
    async check(t, a, b) {
      const { eventId } = await bConsent(t, b);
      const period = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
      const page = await json<{ items: Array<{ id: string }> }>(await t.call("GET", `v1/consents/export?${period}&limit=200`, { key: a.apiKey }));
      expect(page.items.map((e) => e.id)).not.toContain(eventId);
      const csv = await (await t.call("GET", `v1/consents/export?${period}`, { key: a.apiKey, headers: { accept: "text/csv" } })).text();
      expect(csv).not.toContain(eventId);
    },
  },
  "consents-proof": {
    async check(t, a, b) {
      const { email } = await bConsent(t, b);
      expect((await t.call("POST", "v1/consents/proof", { key: a.apiKey, json: { email, purpose: "iso-b-only" } })).status).toBe(422);
      await ensurePurpose(t, a, "iso-a-only");
      await expectNotFound(await t.call("POST", "v1/consents/proof", { key: a.apiKey, json: { email, purpose: "iso-a-only" } }));
    },
  },
  "consent-settings-get": {
    async check(t, a, b) {
      await t.call("PUT", "v1/consents/settings", { key: b.apiKey, json: { storeFullIp: true } });
      expect(await json(await t.call("GET", "v1/consents/settings", { key: a.apiKey }))).toMatchObject({ storeFullIp: false });
      await t.call("PUT", "v1/consents/settings", { key: b.apiKey, json: { storeFullIp: false } });
    },
  },
  "consent-settings-put": {
    async check(t, a, b) {
      expect((await t.call("PUT", "v1/consents/settings", { key: a.apiKey, json: { storeFullIp: true } })).status).toBe(200);
      expect(await json(await t.call("GET", "v1/consents/settings", { key: b.apiKey }))).toMatchObject({ storeFullIp: false });
      await t.call("PUT", "v1/consents/settings", { key: a.apiKey, json: { storeFullIp: false } });
    },
  },
  "consent-links-create": {
    async check(t, a, b) {
      const { email } = await bConsent(t, b);
      // A has no record of B's subject, and B's purpose is not A's.
      expect((await t.call("POST", "v1/consents/withdrawal-links", { key: a.apiKey, json: { email, purpose: "all" } })).status).toBe(422);
      expect((await t.call("POST", "v1/consents/withdrawal-links", { key: a.apiKey, json: { email, purpose: "iso-b-only" } })).status).toBe(422);
      // A link A made for its own subject names A's subject, and works on nothing of B's.
      await ensurePurpose(t, a, "iso-a-only");
      await t.call("POST", "v1/consents", { key: a.apiKey, json: { email, purpose: "iso-a-only", noticeVersion: 1, decision: "granted", method: "click", requestOrigin: "banner" } });
      const link = await json<{ path: string }>(await t.call("POST", "v1/consents/withdrawal-links", { key: a.apiKey, json: { email, purpose: "all" } }));
      expect((await t.call("POST", link.path.replace(/^\/api\//, ""))).status).toBe(200);
      expect(await bDecision(t, b, email)).toBe("granted");
    },
  },
  "consent-links-rotate-secret": {
    async check(t, a, b) {
      const { email } = await bConsent(t, b);
      const link = await json<{ path: string }>(await t.call("POST", "v1/consents/withdrawal-links", { key: b.apiKey, json: { email, purpose: "iso-b-only" } }));
      for (let i = 0; i < 2; i++) expect((await t.call("POST", "v1/consents/withdrawal-links/rotate-secret", { key: a.apiKey })).status).toBe(200);
      // B's link is still signed with B's current secret: B's page still offers to withdraw.
      const page = await t.call("GET", link.path.replace(/^\/api\//, ""));
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("<form");
    },
  },
  // Breaches: a tenant reaches only its own part. B's breach is not A's; in a breach affecting both, A's part holds
  // nothing of B's (its id, its scope, its note) and nothing that counts the tenants.
  "breaches-list": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      const list = await json<{ items: Array<{ id: string }> }>(await t.call("GET", "v1/breaches?limit=200", { key: a.apiKey }));
      expect(list.items.map((x) => x.id)).not.toContain(id);
    },
  },
  "breaches-get": {
    async check(t, a, b) {
      await expectNotFound(await t.call("GET", `v1/breaches/${await bBreach(t, b)}`, { key: a.apiKey }));
      const shared = await sharedBreach(t, a, b);
      const text = JSON.stringify(await json(await t.call("GET", `v1/breaches/${shared}`, { key: a.apiKey })));
      expect(text).not.toContain(b.tenantId);
      expect(text).not.toContain("B's own note");
      expect(text).not.toMatch(/"tenants"|everTenants|assessments/);
    },
  },
  "breaches-acknowledge": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      await expectNotFound(await t.call("POST", `v1/breaches/${id}/acknowledge`, { key: a.apiKey }));
      expect((await t.services.breaches.getPart(b.tenantId, id))?.acknowledgedAt).toBeNull();
    },
  },
  "breaches-decision": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      await expectNotFound(await t.call("POST", `v1/breaches/${id}/decision`, { key: a.apiKey, json: { notifyAuthority: false, notifyPersons: false, reasons: "A decides for B" } }));
      expect((await t.services.breaches.getPart(b.tenantId, id))?.decisions).toEqual([]);
    },
  },
  "breaches-authority-notification": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      await expectNotFound(await t.call("POST", `v1/breaches/${id}/authority-notification`, { key: a.apiKey, json: { notifiedAt: t.clock.now().toISOString(), method: "e-mail" } }));
      expect((await t.services.breaches.getPart(b.tenantId, id))?.authorityNotifications).toEqual([]);
    },
  },
  "breaches-no-authority-notification": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      await expectNotFound(await t.call("POST", `v1/breaches/${id}/no-authority-notification`, { key: a.apiKey, json: { reason: "A decides for B" } }));
      expect((await t.services.breaches.getPart(b.tenantId, id))?.noAuthorityNotification).toBeNull();
    },
  },
  "breaches-report": {
    async check(t, a, b) {
      await expectNotFound(await t.call("GET", `v1/breaches/${await bBreach(t, b)}/report`, { key: a.apiKey }));
      const shared = await sharedBreach(t, a, b);
      for (const accept of ["application/json", "text/html"]) {
        const res = await t.call("GET", `v1/breaches/${shared}/report`, { key: a.apiKey, headers: { accept } });
        expect(res.status).toBe(200);
        const text = await res.text();
        expect(text).not.toContain(b.tenantId);
        expect(text).not.toContain("Tenant B");
        expect(text).not.toContain("B's own note");
      }
    },
  },
  // Breaches, part 2: A can neither instruct notices to B's persons, nor read their progress, nor record B's public
  // communication; in a shared breach, A's persons view counts A's persons only.
  "breaches-notify-persons": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      await expectNotFound(await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: a.apiKey }));
      expect((await t.services.breaches.getPart(b.tenantId, id))?.persons?.notify ?? null).toBeNull();
    },
  },
  "breaches-notify-persons-cancel": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      expect((await t.call("POST", `v1/breaches/${id}/notify-persons`, { key: b.apiKey })).status).toBeLessThan(300);
      await expectNotFound(await t.call("DELETE", `v1/breaches/${id}/notify-persons`, { key: a.apiKey }));
      expect((await t.services.breaches.getPart(b.tenantId, id))?.persons?.stopped ?? null).toBeNull();
    },
  },
  "breaches-persons": {
    async check(t, a, b) {
      await expectNotFound(await t.call("GET", `v1/breaches/${await bBreach(t, b)}/persons`, { key: a.apiKey }));
      const shared = await sharedBreach(t, a, b);
      const text = JSON.stringify(await json(await t.call("GET", `v1/breaches/${shared}/persons`, { key: a.apiKey })));
      expect(text).not.toContain(b.tenantId);
    },
  },
  "breaches-public-communication": {
    async check(t, a, b) {
      const id = await bBreach(t, b);
      await expectNotFound(await t.call("POST", `v1/breaches/${id}/public-communication`, { key: a.apiKey, json: { text: "A speaks for B", where: "https://a.example", publishedAt: t.clock.now().toISOString() } }));
      expect((await t.services.breaches.getPart(b.tenantId, id))?.publicCommunications).toEqual([]);
    },
  },
  // Data-subject requests: B's requests are found, listed, verified and decided on with B's key only (404 for A, as
  // for an id never issued), and a request A records for the same address is A's own.
  "subject-requests-create": {
    async check(t, a, b) {
      const first = await bRequest(t, b);
      const res = await t.call("POST", "v1/subject-requests", { key: a.apiKey, json: { type: "access", subjectEmail: first.email, externalId: "iso-shared-id" } });
      expect(res.status).toBe(201);
      expect(((await res.json()) as { id: string }).id).not.toBe(first.id);
    },
  },
  "subject-requests-list": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      const list = await json<{ items: Array<{ id: string }> }>(await t.call("GET", "v1/subject-requests?limit=200", { key: a.apiKey }));
      expect(list.items.map((x) => x.id)).not.toContain(id);
      const csv = await (await t.call("GET", "v1/subject-requests", { key: a.apiKey, headers: { accept: "text/csv" } })).text();
      expect(csv).not.toContain(id);
    },
  },
  "subject-requests-get": {
    async check(t, a, b) {
      await expectNotFound(await t.call("GET", `v1/subject-requests/${(await bRequest(t, b)).id}`, { key: a.apiKey }));
    },
  },
  "subject-requests-verify": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/verify`, { key: a.apiKey, json: { code: "123456" } }));
      expect((await t.services.subjectRequests.get(b.tenantId, id))?.verification.wrongTries).toBe(0);
    },
  },
  "subject-requests-vouch": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/vouch`, { key: a.apiKey, json: { statement: "A vouches for B's subject" } }));
      expect((await t.services.subjectRequests.get(b.tenantId, id))?.status).toBe("awaiting-verification");
    },
  },
  "subject-requests-resend": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/resend`, { key: a.apiKey }));
      expect((await t.services.subjectRequests.get(b.tenantId, id))?.verification.resends).toBe(0);
    },
  },
  "subject-requests-extend": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/extend`, { key: a.apiKey, json: { reason: "A extends B's request" } }));
      expect((await t.services.subjectRequests.get(b.tenantId, id))?.extendedAt).toBeNull();
    },
  },
  "subject-requests-reject": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/reject`, { key: a.apiKey, json: { ground: "excessive", reason: "A rejects B's request" } }));
      expect((await t.services.subjectRequests.get(b.tenantId, id))?.status).toBe("awaiting-verification");
    },
  },
  "subject-requests-cancel": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/cancel`, { key: a.apiKey, json: { reason: "A cancels B's request" } }));
      expect((await t.services.subjectRequests.get(b.tenantId, id))?.status).toBe("awaiting-verification");
    },
  },
  "subject-requests-retry": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/retry`, { key: a.apiKey }));
    },
  },
  // Part 3: a record, the recipients' notification and the lifting of a restriction are B's alone.
  "subject-requests-certificate": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b, "restriction");
      await expectNotFound(await t.call("GET", `v1/subject-requests/${id}/certificate`, { key: a.apiKey }));
      await expectNotFound(await t.call("GET", `v1/subject-requests/${id}/certificate`, { key: a.apiKey, headers: { accept: "text/html" } }));
    },
  },
  "subject-requests-recipients-notified": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b);
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/recipients-notified`, { key: a.apiKey, json: {} }));
      expect((await t.services.subjectRequests.outcomes.getOutcome(b.tenantId, id))?.recipientsNotified ?? null).toBeNull();
    },
  },
  "subject-requests-lift-restriction": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b, "restriction");
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/lift-restriction`, { key: a.apiKey }));
    },
  },
  "subject-request-package-get": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b, "access");
      expect((await t.call("GET", `v1/subject-requests/${id}/package`, { key: b.apiKey })).status).toBe(200);
      await expectNotFound(await t.call("GET", `v1/subject-requests/${id}/package`, { key: a.apiKey }));
    },
  },
  "subject-request-package-content": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b, "access");
      await expectNotFound(await t.call("GET", `v1/subject-requests/${id}/package/content`, { key: a.apiKey }));
    },
  },
  "subject-request-include-content": {
    async check(t, a, b) {
      const { id } = await bRequest(t, b, "access");
      await expectNotFound(await t.call("POST", `v1/subject-requests/${id}/include-content`, { key: a.apiKey, json: { uploadIds: [], reason: "A decides on B's request" } }));
      expect(await t.services.packages.get(b.tenantId, id)).toBeUndefined();
    },
  },
  "privacy-information-put": {
    async check(t, a, b) {
      const texts = (who: string) => ({ purposes: who, categories: who, recipients: who, retention: who, rights: who, complaint: who, source: who, automatedDecisions: who });
      expect([200, 201]).toContain((await t.call("PUT", "v1/privacy-information", { key: b.apiKey, json: { en: texts("B's own"), da: texts("B's own") } })).status);
      expect([200, 201]).toContain((await t.call("PUT", "v1/privacy-information", { key: a.apiKey, json: { en: texts("A's own"), da: texts("A's own") } })).status);
      expect((await t.services.packages.getPrivacyInformation(b.tenantId))?.document.en.purposes).toBe("B's own");
    },
  },
  "privacy-information-get": {
    async check(t, a, b) {
      const texts = { purposes: "B only", categories: "B only", recipients: "B only", retention: "B only", rights: "B only", complaint: "B only", source: "B only", automatedDecisions: "B only" };
      expect([200, 201]).toContain((await t.call("PUT", "v1/privacy-information", { key: b.apiKey, json: { en: texts, da: texts } })).status);
      const res = await t.call("GET", "v1/privacy-information", { key: a.apiKey });
      expect([200, 404]).toContain(res.status);
      expect(await res.text()).not.toContain("B only");
    },
  },
};

let requestN = 0;
/** A request B recorded (its subject an address A may know too). */
async function bRequest(t: TestApp, b: Tenant, type = "erasure"): Promise<{ id: string; email: string }> {
  const email = `iso-subject-${++requestN}@example.com`;
  const res = await t.call("POST", "v1/subject-requests", { key: b.apiKey, json: { type, subjectEmail: email, externalId: "iso-shared-id" + requestN } });
  expect(res.status).toBe(201);
  return { id: ((await res.json()) as { id: string }).id, email };
}

/** A breach affecting B only, B's part made and notified. */
async function bBreach(t: TestApp, b: Tenant): Promise<string> {
  const { id } = await registerBreach(t, breachBody(t, { scope: [{ tenantId: b.tenantId, window: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" }, categories: ["contact"] }] }));
  await partOf(t, b.apiKey, id);
  return id;
}

/** A breach affecting A and B, with a note for B only; both parts made. */
async function sharedBreach(t: TestApp, a: Tenant, b: Tenant): Promise<string> {
  const window = { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" };
  const { id } = await registerBreach(
    t,
    breachBody(t, { scope: [{ tenantId: a.tenantId, window, categories: ["contact"] }, { tenantId: b.tenantId, window, categories: ["health"], note: "B's own note" }] }),
  );
  await partOf(t, a.apiKey, id);
  await partOf(t, b.apiKey, id);
  return id;
}

/** A purpose of `tenant` with one notice, if it has none of that key yet. */
async function ensurePurpose(t: TestApp, tenant: Tenant, key: string): Promise<void> {
  const res = await t.call("POST", "v1/purposes", { key: tenant.apiKey, json: { key, description: key === "iso-b-only" ? "B's purpose" : "A's purpose", legalBasis: "consent" } });
  if (res.status === 201) await t.call("POST", `v1/purposes/${key}/notices`, { key: tenant.apiKey, json: { language: "en", text: `${key} v1` } });
}

let consentN = 0;
/** B's purpose (iso-b-only, one notice) and a new subject of B's with consent granted for it. */
async function bConsent(t: TestApp, b: Tenant): Promise<{ purpose: string; email: string; eventId: string }> {
  await ensurePurpose(t, b, "iso-b-only");
  const email = `iso-subject-${++consentN}@subject.example`;
  const res = await t.call("POST", "v1/consents", { key: b.apiKey, json: { email, purpose: "iso-b-only", noticeVersion: 1, decision: "granted", method: "click", requestOrigin: "banner" } });
  expect(res.status).toBe(201);
  return { purpose: "iso-b-only", email, eventId: (await json<{ id: string }>(res)).id };
}

async function bDecision(t: TestApp, b: Tenant, email: string): Promise<string | undefined> {
  const s = await json<{ states: Array<{ purpose: string; decision: string }> }>(await t.call("POST", "v1/consents/search", { key: b.apiKey, json: { email } }));
  return s.states.find((x) => x.purpose === "iso-b-only")?.decision;
}

/** B's webhook endpoint (a loopback URL nothing listens on; ALLOW_LOOPBACK_WEBHOOKS is on in this file). */
async function bWebhook(t: TestApp, b: Tenant): Promise<void> {
  const res = await t.call("PUT", "v1/webhook", { key: b.apiKey, json: { url: "http://127.0.0.1:9/b" } });
  expect(res.status).toBeLessThan(300);
}

let t: TestApp;
let a: Tenant;
let b: Tenant;
beforeAll(async () => {
  t = await startTestApp({ settings: { ALLOW_LOOPBACK_WEBHOOKS: "true" } });
  a = await t.createTenant("Tenant A");
  b = await t.createTenant("Tenant B");
});
afterAll(async () => {
  await t?.stop();
});

describe("tenant isolation", () => {
  it("has a case for every tenant route the app registers", () => {
    const tenantRoutes = endpoints()
      .filter((e) => e.auth === "tenant")
      .map((e) => e.name);
    expect(tenantRoutes.length).toBeGreaterThan(0);
    expect(tenantRoutes.filter((n) => !(n in ISOLATION_CASES)), "tenant routes without an isolation case").toEqual([]);
    expect(Object.keys(ISOLATION_CASES).filter((n) => !tenantRoutes.includes(n)), "cases for routes that no longer exist").toEqual([]);
  });

  it("every tenant route is registered with the runtime too", () => {
    const served = new Set(t.host.functions().map((f) => f.name));
    for (const name of Object.keys(ISOLATION_CASES)) expect(served.has(name), name).toBe(true);
  });

  for (const [name, c] of Object.entries(ISOLATION_CASES)) {
    it(`${name}: tenant A cannot reach tenant B's data`, async () => {
      await c.check(t, a, b);
    });
  }

  it("no route accepts a tenant id from the request", () => {
    for (const e of endpoints().filter((x) => x.auth === "tenant")) {
      expect(e.route, e.name).not.toMatch(/tenant/i);
      const queryKeys = e.query ? Object.keys(e.query.shape) : [];
      expect(queryKeys.filter((k) => /tenant/i.test(k)), e.name).toEqual([]);
    }
  });
});
