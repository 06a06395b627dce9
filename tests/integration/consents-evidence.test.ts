/**
 * Consent evidence files over HTTP against the real local services: a file per recorded event, sent once, streamed
 * in encrypted and back out decrypted (audited), its SHA-256 in the audit log and the proof; refusals by declared
 * type, by what the first bytes are (magic bytes, not the Content-Type), by size (CONSENT_EVIDENCE_MAX_BYTES, set
 * low here) and by event; erasure with the event's history; a claim a dead request left is cleared by the sweep.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { purposeWithNotice, recordDecision } from "../helpers/consents";
import { bodyOf, rawRequest, statusOf } from "../helpers/raw-http";
import { sweep } from "../helpers/sweep";
import { eventually } from "../helpers/eventually";
import { BLOB_CONTAINERS } from "../../shared/config/resources";

const MAX = 64 * 1024;
const T0 = Date.parse("2026-06-01T08:00:00.000Z");

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };
let other: { tenantId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp({ settings: { CONSENT_EVIDENCE_MAX_BYTES: String(MAX) } });
  t.clock.set(T0);
  tenant = await t.createTenant("Evidence Co");
  other = await t.createTenant("Other Co");
  await purposeWithNotice(t, tenant.apiKey, "newsletter");
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = () => `shown.person.${++n}@subject.example`;
const grant = async (email = person()) => recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "granted" });

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const png = (bytes: number) => Buffer.concat([PNG_SIGNATURE, randomBytes(bytes - PNG_SIGNATURE.length)]);
const pdf = () => Buffer.concat([Buffer.from("%PDF-1.7\n"), randomBytes(3000)]);
const html = () => Buffer.from("<!DOCTYPE html>\n<html><body><p>We send you news about newsletter.</p><script>alert(1)</script></body></html>\n", "utf8");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const put = (eventId: string, body: Buffer, type: string, key = tenant.apiKey) =>
  t.call("PUT", `v1/consents/${eventId}/evidence`, { key, headers: { "content-type": type }, body: new Uint8Array(body) });
const problem = async (res: Response) => ({ status: res.status, ...((await res.json()) as { type: string; detail: string }) });

const evidenceContainer = () => t.raw.blobs.getContainerClient(BLOB_CONTAINERS.consentEvidence.name);
const blobsOf = async (eventId: string) => {
  const names: string[] = [];
  for await (const b of evidenceContainer().listBlobsFlat({ prefix: `${tenant.tenantId}/${eventId}/`, includeUncommitedBlobs: true })) names.push(b.name);
  return names;
};
const evidenceDoc = async (eventId: string) => {
  const { resources } = await t.raw.containers.consents.items
    .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.id = @id", parameters: [{ name: "@t", value: tenant.tenantId }, { name: "@id", value: `evidence:${eventId}` }] })
    .fetchAll();
  return resources[0] as { receiving: unknown; content: unknown } | undefined;
};
const auditOf = async (action: string, eventId: string) =>
  (
    await t.raw.containers.audit.items
      .query({
        query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = @a AND c.target.id = @id ORDER BY c.seq ASC",
        parameters: [
          { name: "@t", value: tenant.tenantId },
          { name: "@a", value: action },
          { name: "@id", value: eventId },
        ],
      })
      .fetchAll()
  ).resources as Array<{ seq: number; hash: string; details: Record<string, unknown> }>;

describe("evidence round trip", () => {
  it("stores a screenshot encrypted, bound to the event, gives it back byte for byte, and audits both", async () => {
    const email = person();
    const event = await grant(email);
    const file = png(40_000);
    const res = await put(event.id, file, "image/png");
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/api/v1/consents/${event.id}/evidence`);
    const stored = (await res.json()) as { sha256: string; bytes: number; contentType: string; audit: { seq: number; hash: string } };
    expect(stored).toMatchObject({ sha256: sha256(file), bytes: file.length, contentType: "image/png" });

    // What storage holds is ciphertext: neither the signature nor any stretch of the file is in it.
    const [name, ...more] = await blobsOf(event.id);
    expect(more).toEqual([]);
    const raw = await evidenceContainer().getBlobClient(name!).downloadToBuffer();
    expect(raw.includes(PNG_SIGNATURE)).toBe(false);
    expect(raw.includes(file.subarray(1000, 1032))).toBe(false);

    const [entry] = await auditOf("consent.evidence-stored", event.id);
    expect(entry).toMatchObject({ seq: stored.audit.seq, hash: stored.audit.hash, details: { sha256: sha256(file), bytes: file.length, contentType: "image/png" } });
    expect(JSON.stringify(entry)).not.toContain(email);

    const head = await t.call("HEAD", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(file.length));
    expect(await auditOf("consent.evidence-read", event.id), "HEAD reads nothing").toEqual([]);

    const got = await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("image/png");
    expect(got.headers.get("content-disposition")).toBe(`attachment; filename="${event.id}.png"`);
    expect(got.headers.get("content-security-policy")).toBe("sandbox");
    expect(got.headers.get("x-content-type-options")).toBe("nosniff");
    expect(got.headers.get("repr-digest")).toBe(`sha-256=:${createHash("sha256").update(file).digest("base64")}:`);
    expect(Buffer.from(await got.arrayBuffer()).equals(file)).toBe(true);
    expect(await auditOf("consent.evidence-read", event.id)).toHaveLength(1);

    // The proof names the file by its SHA-256 and shows the audit entry that recorded it.
    const proof = (await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter" } })).json()) as {
      events: Array<{ eventId: string; evidenceFile: { sha256: string; url: string; audit: { seq: number; entry: { details: { sha256: string } } } } | null }>;
    };
    const shown = proof.events.find((e) => e.eventId === event.id)!;
    expect(shown.evidenceFile).toMatchObject({ sha256: sha256(file), url: `/api/v1/consents/${event.id}/evidence`, audit: { seq: stored.audit.seq } });
    expect(shown.evidenceFile!.audit.entry.details.sha256).toBe(sha256(file));
    const printed = await (await t.call("POST", "v1/consents/proof", { key: tenant.apiKey, json: { email, purpose: "newsletter", format: "html" } })).text();
    expect(printed).toContain(sha256(file));
    expect(printed).toContain(`#${stored.audit.seq}`);
  });

  it("keeps an HTML notice as sent and serves it as an attachment that cannot run", async () => {
    const event = await grant();
    const file = html();
    expect((await put(event.id, file, "text/html; charset=utf-8")).status).toBe(201);
    const got = await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey });
    expect(got.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(got.headers.get("content-disposition")).toMatch(/^attachment;/);
    expect(got.headers.get("content-security-policy")).toBe("sandbox");
    expect(Buffer.from(await got.arrayBuffer()).equals(file)).toBe(true);
  });

  it("takes a file once: a second PUT is a conflict and the first file stays", async () => {
    const event = await grant();
    const first = pdf();
    expect((await put(event.id, first, "application/pdf")).status).toBe(201);
    const again = await problem(await put(event.id, pdf(), "application/pdf"));
    expect(again).toMatchObject({ status: 409, type: "urn:safedata:problem:conflict" });
    const got = await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey });
    expect(Buffer.from(await got.arrayBuffer()).equals(first)).toBe(true);
    expect(await blobsOf(event.id)).toHaveLength(1);
  });
});

describe("refusals", () => {
  /** After a refusal nothing of it is kept, and the right file can still be sent. */
  const nothingKept = async (eventId: string) => {
    expect(await blobsOf(eventId), "no blob or staged block").toEqual([]);
    expect(await evidenceDoc(eventId), "no record").toBeUndefined();
    expect(await auditOf("consent.evidence-stored", eventId)).toEqual([]);
    expect((await t.call("GET", `v1/consents/${eventId}/evidence`, { key: tenant.apiKey })).status).toBe(404);
  };

  it("refuses a file whose first bytes are not the declared type (415), keeping nothing", async () => {
    const event = await grant();
    const cases: Array<[string, Buffer, RegExp]> = [
      ["image/png", html(), /is text\/html, not image\/png/],
      ["application/pdf", png(2000), /is image\/png, not application\/pdf/],
      ["image/jpeg", Buffer.from("GIF89a" + "x".repeat(100)), /does not begin as a image\/jpeg/],
      ["text/html", Buffer.from("<div>not a page</div>"), /does not begin as a text\/html/],
      ["image/webp", Buffer.concat([Buffer.from("RIFF\x10\x00\x00\x00WAVE", "latin1"), randomBytes(100)]), /does not begin/],
      ["text/html", Buffer.concat([Buffer.from("<html>"), Buffer.from([0]), Buffer.from("binary")]), /does not begin/],
    ];
    for (const [type, body, detail] of cases) {
      const p = await problem(await put(event.id, body, type));
      expect(p, type).toMatchObject({ status: 415, type: "urn:safedata:problem:unsupported-media-type" });
      expect(p.detail, type).toMatch(detail);
      await nothingKept(event.id);
    }
    // A type that evidence may not have, or a charset other than UTF-8 for HTML, is refused before the body.
    for (const type of ["image/gif", "application/octet-stream", "text/html; charset=iso-8859-1", "image/png; q=1", "text/plain"]) {
      expect((await problem(await put(event.id, png(100), type))).status, type).toBe(415);
    }
    expect((await put(event.id, png(100), "image/png")).status).toBe(201);
  });

  it("refuses a file over CONSENT_EVIDENCE_MAX_BYTES (413) and an empty one (400), keeping nothing", async () => {
    const event = await grant();
    const big = await problem(await put(event.id, png(MAX + 1), "image/png"));
    expect(big).toMatchObject({ status: 413, type: "urn:safedata:problem:payload-too-large" });
    expect(big.detail).toContain(String(MAX));
    await nothingKept(event.id);
    expect((await problem(await put(event.id, Buffer.alloc(0), "image/png"))).status).toBe(400);
    await nothingKept(event.id);
    expect((await put(event.id, png(MAX), "image/png")).status, "exactly the limit").toBe(201);
  });

  it("refuses a body longer than its Content-Length claims only after reading past it, and a body cut short, keeping nothing", async () => {
    const event = await grant();
    // Cut short: the client declares 5,000 bytes, sends 1,000 and goes away.
    const cut = rawRequest(t.api, "PUT", `/api/v1/consents/${event.id}/evidence`, { authorization: `Bearer ${tenant.apiKey}`, "content-type": "image/png", "content-length": "5000" }, png(1000));
    await cut.sent;
    // The service has taken the attempt (its claim is stored) before the client goes: waited for, not assumed after a
    // pause, or a late claim would be taken for one already gone.
    await eventually(async () => expect(await evidenceDoc(event.id), "the attempt's claim").toBeDefined(), 30_000, 50);
    cut.destroy();
    await cut.closed;
    // The attempt's blocks and claim go once the service sees the client gone.
    await eventually(async () => expect(await evidenceDoc(event.id), "the claim released").toBeUndefined(), 30_000, 50);
    await nothingKept(event.id);
  });

  it("answers 404 for an unknown event, another tenant's event and an event id that is not one", async () => {
    const event = await grant();
    const mine = await problem(await put("ce-aaaaaaaaaaaaaaaa", png(100), "image/png"));
    expect(mine.status).toBe(404);
    const theirs = await problem(await put(event.id, png(100), "image/png", other.apiKey));
    expect(theirs).toMatchObject({ status: 404, detail: mine.detail });
    expect((await t.call("GET", `v1/consents/${event.id}/evidence`, { key: other.apiKey })).status).toBe(404);
    // A malformed id names nothing, as everywhere in the API.
    expect(await problem(await put("not-an-event", png(100), "image/png"))).toMatchObject({ status: 404 });
    await nothingKept(event.id);
    // An event with no file yet has none to read.
    expect((await t.call("GET", `v1/consents/${event.id}/evidence`, { key: tenant.apiKey })).status).toBe(404);
  });

  it("requires a Content-Length (a chunked body is refused with 411 or 400, keeping nothing)", async () => {
    const event = await grant();
    const body = png(500);
    const ex = rawRequest(
      t.api,
      "PUT",
      `/api/v1/consents/${event.id}/evidence`,
      { authorization: `Bearer ${tenant.apiKey}`, "content-type": "image/png", "transfer-encoding": "chunked" },
      Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from("\r\n0\r\n\r\n")]),
    );
    await ex.answered;
    const status = statusOf(ex.received());
    ex.destroy();
    expect([400, 411], bodyOf(ex.received())).toContain(status);
    await nothingKept(event.id);
  });
});

describe("erasure", () => {
  it("erases the file with its event when the history's retention ends, and an erased event's file is gone", async () => {
    t.clock.set(T0);
    const email = person();
    const denied = await recordDecision(t, tenant.apiKey, { email, purpose: "newsletter", noticeVersion: 1, decision: "denied" });
    expect((await put(denied.id, png(3000), "image/png")).status).toBe(201);
    expect(await blobsOf(denied.id)).toHaveLength(1);

    // Three years after the consent ended (a denial ends it at once) the sweep erases the history, file included.
    t.clock.set(Date.parse("2029-06-02T09:00:00.000Z"));
    await sweep(t);
    expect(await blobsOf(denied.id)).toEqual([]);
    expect(await evidenceDoc(denied.id)).toBeUndefined();
    expect((await t.call("GET", `v1/consents/${denied.id}/evidence`, { key: tenant.apiKey })).status).toBe(404);
    // The erasure's own entry names the event; the file's entry (its SHA-256) stays in the chain.
    const erased = (
      await t.raw.containers.audit.items
        .query({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.action = 'consent.evidence-erased'", parameters: [{ name: "@t", value: tenant.tenantId }] })
        .fetchAll()
    ).resources as Array<{ details: { eventIdsHash: string } }>;
    expect(erased.map((e) => e.details.eventIdsHash)).toContain(createHash("sha256").update(denied.id).digest("hex"));
    expect(await auditOf("consent.evidence-stored", denied.id)).toHaveLength(1);
    // And nothing more can be attached to it.
    expect((await put(denied.id, png(100), "image/png")).status).toBe(404);
    t.clock.set(T0);
  });

  it("clears a claim a dead request left (its staged blocks too) after the lease, so the file can be sent again", async () => {
    t.clock.set(T0);
    const event = await grant();
    // As a request that claimed the record, staged a block and died would leave them.
    await t.raw.containers.consents.items.create({
      id: `evidence:${event.id}`,
      tenantId: tenant.tenantId,
      type: "consent-evidence",
      eventId: event.id,
      subjectId: event.subjectId,
      purposeKey: "newsletter",
      contentType: "image/png",
      size: 5000,
      receiving: { attemptId: "0123456789abcdef", since: new Date(T0).toISOString() },
      content: null,
      audit: null,
      createdAt: new Date(T0).toISOString(),
    });
    const staged = evidenceContainer().getBlockBlobClient(`${tenant.tenantId}/${event.id}/0123456789abcdef`);
    await staged.stageBlock(Buffer.from("block-000000").toString("base64"), randomBytes(1000), 1000);
    expect((await put(event.id, png(100), "image/png")).status, "held by the claim").toBe(409);

    t.clock.set(T0 + 36 * 60_000);
    await sweep(t);
    expect(await evidenceDoc(event.id)).toBeUndefined();
    expect(await blobsOf(event.id)).toEqual([]);
    expect((await put(event.id, png(100), "image/png")).status).toBe(201);
    t.clock.set(T0);
  });
});
