/**
 * Writes whose answer is lost. A write whose audit entry is not confirmed: the use case undoes its write only when
 * the log shows no entry, so the log never names a record that is gone. Three faults of the audit store
 * (tests/helpers/audit-faults.ts): the entry written but its answer lost (the record stands and is answered), not
 * written (the record goes), the log unreadable (the record stays unrecorded until the retention repair, or its
 * expiry, can settle it). And the final write of content (an upload's, an evidence file's) applied with its answer
 * lost: the content stands and is the answer; its blob is never deleted under a record that names it.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { Services } from "../../shared/services";
import type { TenantCaller } from "../../shared/usecases/audit-trail";
import { putEvidence } from "../../shared/usecases/consent-evidence";
import { recordConsent } from "../../shared/usecases/consents";
import { createUpload, getUpload, putContent } from "../../shared/usecases/uploads";
import { lineLog } from "../../shared/observability";
import { Readable } from "node:stream";
import { startTestApp, type TestApp } from "../helpers/app";
import { faultyAudit, type AuditFault } from "../helpers/audit-faults";
import { purposeWithNotice, stateOf } from "../helpers/consents";
import { expect } from "../helpers/expect";
import { UploadStore, type UploadDoc } from "../../shared/stores/upload-store";
import { ConsentStore, type EvidenceDoc } from "../../shared/stores/consent-store";
import { sweep } from "../helpers/sweep";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let caller: TenantCaller;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.createTenant("Audit fault Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
  caller = { tenantId: tenant.tenantId, actor: "key:test", kekVersion: (await t.services.tenants.get(tenant.tenantId))!.kekVersion, requestId: "req-audit-fault" };
});
afterAll(async () => {
  await t?.stop();
});

const withAudit = (fault: AuditFault): Services => ({ ...t.services, audit: faultyAudit(t.raw.containers.audit, t.clock, fault) });
/** The log's entries naming `targetId`, as stored, in their order. */
const entriesFor = async (targetId: string) =>
  (
    await t.raw.containers.audit.items
      .query({
        query: "SELECT c.seq, c.action FROM c WHERE c.tenantId = @t AND c.type = 'audit-entry' AND c.target.id = @id ORDER BY c.seq",
        parameters: [
          { name: "@t", value: tenant.tenantId },
          { name: "@id", value: targetId },
        ],
      })
      .fetchAll()
  ).resources as Array<{ seq: number; action: string }>;
/** What the log says of an upload, its reads left out. */
const actionsOf = async (id: string) => (await entriesFor(id)).map((e) => e.action).filter((a) => a !== "upload.read" && a !== "upload.downloaded");
/** The log's entries of `action` naming `targetId`. */
const entriesOf = async (action: string, targetId: string) => (await entriesFor(targetId)).filter((e) => e.action === action).map(({ seq }) => ({ seq }));
const uploadIds = async () =>
  (
    await t.raw.containers.uploads.items
      .query({ query: "SELECT VALUE c.id FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: tenant.tenantId }] })
      .fetchAll()
  ).resources as string[];
const upload = { senderReference: "s", recipients: ["r@example.com"], dataSubjects: ["d@example.com"], categories: ["contact" as const], fileName: "a.txt", contentType: "text/plain", size: 1 };

describe("an upload whose creation entry is not confirmed", () => {
  it("written with its answer lost: the upload stands, is answered, and is logged once", async () => {
    const created = await createUpload(withAudit("answer-lost"), caller, upload);
    expect(await uploadIds()).toContain(created.id);
    expect(await entriesOf("upload.created", created.id)).toHaveLength(1);
  });

  it("not written: the upload goes, and the log names nothing", async () => {
    const before = await uploadIds();
    await expect(createUpload(withAudit("unwritable"), caller, upload)).rejects.toThrow();
    expect(await uploadIds()).toEqual(before);
  });

  it("the log unreadable: the record stays (it expires like any upload never sent); the caller is told it failed", async () => {
    const before = new Set(await uploadIds());
    await expect(createUpload(withAudit("unreachable"), caller, upload)).rejects.toThrow();
    const added = (await uploadIds()).filter((id) => !before.has(id));
    expect(added).toHaveLength(1);
    expect(await entriesOf("upload.created", added[0]!)).toEqual([]);
  });
});

describe("content whose stored entry is not confirmed", () => {
  const send = (s: Services, id: string) =>
    putContent(s, caller, id, { contentType: "text/plain", contentLength: 1, body: Readable.from([Buffer.from("x")]) }, lineLog(() => undefined));
  it("written with its answer lost: the attempt is thrown away and the log says so; the content can be sent again", async () => {
    const { id } = await createUpload(t.services, caller, upload);
    await expect(send(withAudit("answer-lost"), id)).rejects.toThrow();
    expect((await getUpload(t.services, caller, id)).status).toBe("awaiting-content");
    expect(await actionsOf(id)).toEqual(["upload.created", "upload.content-stored", "upload.content-discarded"]);
    expect((await send(t.services, id)).status).toBe("available");
  });

  it("not written: the attempt is thrown away (the log, unwritable, names neither)", async () => {
    const { id } = await createUpload(t.services, caller, upload);
    await expect(send(withAudit("unwritable"), id)).rejects.toThrow();
    expect((await getUpload(t.services, caller, id)).status).toBe("awaiting-content");
    expect(await actionsOf(id)).toEqual(["upload.created"]);
  });
});

describe("a consent recording whose entry is not confirmed", () => {
  let n = 0;
  const input = (email: string) => ({ email, purpose: "newsletter", decision: "granted" as const, noticeVersion: 1, method: "click" as const, requestOrigin: "banner" as const });

  it("written with its answer lost: the event is recorded, is the answer, and is logged once", async () => {
    const email = `lost.${++n}@subject.example`;
    const event = await recordConsent(withAudit("answer-lost"), caller, input(email));
    const entries = await entriesOf("consent.recorded", event.id);
    expect(entries).toEqual([{ seq: event.audit.seq }]);
    const state = await stateOf(t, tenant.apiKey, email);
    expect(state.history.map((e) => [e.id, e.audit.seq])).toEqual([[event.id, event.audit.seq]]);
    expect(state.states.map((s) => s.decision)).toEqual(["granted"]);
  });

  it("not written: nothing is recorded, and the log names nothing", async () => {
    const email = `unwritten.${++n}@subject.example`;
    await expect(recordConsent(withAudit("unwritable"), caller, input(email))).rejects.toThrow();
    expect((await stateOf(t, tenant.apiKey, email)).history).toEqual([]);
  });

  it("the log unreadable: the event is not part of the record, and the retention repair removes it once it can see no entry", async () => {
    const email = `unreadable.${++n}@subject.example`;
    await expect(recordConsent(withAudit("unreachable"), caller, input(email))).rejects.toThrow();
    expect((await stateOf(t, tenant.apiKey, email)).history).toEqual([]);
    const left = (
      await t.raw.containers.consents.items
        .query({ query: "SELECT VALUE c.id FROM c WHERE c.tenantId = @t AND c.type = 'consent-event' AND IS_NULL(c.audit)", parameters: [{ name: "@t", value: tenant.tenantId }] })
        .fetchAll()
    ).resources as string[];
    expect(left, "kept, unaudited, for the repair").toHaveLength(1);
    const start = t.clock.now().getTime();
    try {
      t.clock.set(start + 2 * 3_600_000);
      await sweep(t);
      const { resource } = await t.raw.containers.consents.item(left[0]!, tenant.tenantId).read();
      expect(resource, "removed by the repair: the log has no entry for it").toBeUndefined();
      expect(await entriesOf("consent.recorded", left[0]!)).toEqual([]);
    } finally {
      t.clock.set(start);
    }
  });
});

describe("consent evidence whose stored entry is not confirmed", () => {
  const pdf = Buffer.from("%PDF-1.7\nevidence\n");
  const send = (s: Services, eventId: string) =>
    putEvidence(s, caller, eventId, { type: "application/pdf", contentLength: pdf.length, body: Readable.from([pdf]) }, lineLog(() => undefined));

  it("written with its answer lost: the attempt is thrown away and the log says so; the file can be sent again", async () => {
    const event = await recordConsent(t.services, caller, { email: "evidence.lost@subject.example", purpose: "newsletter", decision: "granted", noticeVersion: 1, method: "click", requestOrigin: "banner" });
    await expect(send(withAudit("answer-lost"), event.id)).rejects.toThrow();
    expect((await entriesOf("consent.evidence-stored", event.id)).length).toBe(1);
    expect((await entriesOf("consent.evidence-discarded", event.id)).length).toBe(1);
    expect((await send(t.services, event.id)).sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

/** An upload store whose write making an upload available is applied and then answers with an error (its answer lost). */
class LostAvailableUploads extends UploadStore {
  override async replaceIfUnchanged(doc: UploadDoc, etag: string): Promise<string | undefined> {
    const etagAfter = await super.replaceIfUnchanged(doc, etag);
    if (doc.status === "available" && etagAfter) throw new Error("upload replace: no answer (request timed out)");
    return etagAfter;
  }
}

describe("content whose final write is applied but its answer lost", () => {
  it("is available: the answer is the stored upload, the blob is kept, and it downloads", async () => {
    const { id } = await createUpload(t.services, caller, upload);
    const lost: Services = { ...t.services, uploads: new LostAvailableUploads(t.raw.containers.uploads) };
    const view = await putContent(lost, caller, id, { contentType: "text/plain", contentLength: 1, body: Readable.from([Buffer.from("x")]) }, lineLog(() => undefined));
    expect(view.status).toBe("available");
    expect(await actionsOf(id)).toEqual(["upload.created", "upload.content-stored"]);
    const res = await t.call("GET", `v1/uploads/${id}/content`, { key: tenant.apiKey });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("x");
  });
});

/** A consent store whose save of an evidence file is applied and then reported as lost to a concurrent change. */
class LostEvidenceSave extends ConsentStore {
  override async saveEvidence(doc: EvidenceDoc, etag: string | undefined): Promise<boolean> {
    const saved = await super.saveEvidence(doc, etag);
    return doc.content ? false : saved;
  }
}

describe("evidence whose save is applied but answered as not applied", () => {
  it("is stored: the answer is the file, and it reads back", async () => {
    const event = await recordConsent(t.services, caller, { email: "evidence.saved@subject.example", purpose: "newsletter", decision: "granted", noticeVersion: 1, method: "click", requestOrigin: "banner" });
    const pdf = Buffer.from("%PDF-1.7\nsaved\n");
    const lost: Services = { ...t.services, consents: new LostEvidenceSave(t.raw.containers.consents) };
    const view = await putEvidence(lost, caller, event.id, { type: "application/pdf", contentLength: pdf.length, body: Readable.from([pdf]) }, lineLog(() => undefined));
    expect(view.sha256).toMatch(/^[0-9a-f]{64}$/);
    const res = await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(pdf)).toBe(true);
  });
});

/** An upload store whose write making an upload available fails without an answer and lands a moment later. */
class LateAvailableUploads extends UploadStore {
  late: Promise<unknown> = Promise.resolve();
  override async replaceIfUnchanged(doc: UploadDoc, etag: string): Promise<string | undefined> {
    if (doc.status !== "available") return super.replaceIfUnchanged(doc, etag);
    // The request is on its way when the caller gives up on it; it reaches the database after the caller's next steps.
    this.late = new Promise((r) => setImmediate(r)).then(() => super.replaceIfUnchanged(doc, etag));
    throw new Error("upload replace: no answer (request timed out)");
  }
}

describe("content whose final write fails and may land later", () => {
  it("never leaves a record naming a deleted blob: the claim is released before the blob goes, so the late write cannot apply", async () => {
    const { id } = await createUpload(t.services, caller, upload);
    const uploads = new LateAvailableUploads(t.raw.containers.uploads);
    const late: Services = { ...t.services, uploads };
    await expect(putContent(late, caller, id, { contentType: "text/plain", contentLength: 1, body: Readable.from([Buffer.from("x")]) }, lineLog(() => undefined))).rejects.toThrow();
    await uploads.late;
    const view = await getUpload(t.services, caller, id);
    if (view.status === "available") {
      const res = await t.call("GET", `v1/uploads/${id}/content`, { key: tenant.apiKey });
      expect(res.status, "a record that took the content still has its blob").toBe(200);
    } else {
      expect(view.status).toBe("awaiting-content");
    }
  });
});
