/**
 * Tampering with a wrapped data key or an encrypted field is an integrity failure like a damaged stream: every route
 * that reads one answers 500 integrity-error (never a generic internal-error), and the log line names the tenant and
 * the record (and the field), ids only. Queue steps, which answer no one, log the same ids.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { QUEUES } from "../../shared/config/resources";
import type { UploadDoc } from "../../shared/stores/upload-store";
import type { TenantDoc } from "../../shared/stores/tenant-store";
import { startTestApp, type TestApp } from "../helpers/app";
import { eventually } from "../helpers/eventually";
import { createUpload, download, putContent, uploadWith } from "../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

/** Changes one character in the middle of an encoded value, keeping it well-formed (so only authentication can tell). */
function flip(encoded: string): string {
  const i = Math.floor(encoded.length / 2);
  return encoded.slice(0, i) + (encoded[i] === "A" ? "B" : "A") + encoded.slice(i + 1);
}

/** Flips one character of the field's ciphertext part (after "v1.<iv>."). */
function flipField(sealed: string): string {
  const at = sealed.lastIndexOf(".") + 1;
  return sealed.slice(0, at) + flip(sealed.slice(at));
}

async function changeUpload(tenantId: string, id: string, change: (d: UploadDoc) => UploadDoc): Promise<void> {
  const { _etag, ...doc } = (await t.services.uploads.get(tenantId, id))!;
  expect(await t.services.uploads.replaceIfUnchanged(change(doc), _etag)).toBeTruthy();
}

async function changeTenant(tenantId: string, change: (d: TenantDoc) => TenantDoc): Promise<void> {
  const { _etag, ...doc } = (await t.services.tenants.get(tenantId))!;
  expect(await t.services.tenants.replace(change(doc), _etag)).toBe(true);
}

type Fields = Record<string, unknown>;
/** The `integrity.failure` log lines naming `target`, parsed. */
function integrityLines(target: string): Fields[] {
  return t.logs
    .filter((l) => l.message.includes("integrity.failure") && l.message.includes(target))
    .map((l) => JSON.parse(l.message.slice(l.message.indexOf("{"))) as Fields);
}

async function expectIntegrityError(res: Response, what: string): Promise<void> {
  expect(res.status, what).toBe(500);
  const body = (await res.json()) as { type: string };
  expect(body.type, what).toBe("urn:safedata:problem:integrity-error");
}

describe("a tampered wrapped data key", () => {
  it("answers integrity-error and logs the tenant and upload on every route that unwraps it", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const stored = await uploadWith(t, apiKey, 100);
    const empty = await createUpload(t, apiKey, { size: 10 });
    for (const id of [stored.id, empty.id]) {
      await changeUpload(tenantId, id, (d) => ({ ...d, dataKey: { ...d.dataKey!, wrapped: flip(d.dataKey!.wrapped) } }));
    }

    const routes: Array<[string, string, () => Promise<Response>]> = [
      ["GET metadata", stored.id, () => t.call("GET", `v1/uploads/${stored.id}`, { key: apiKey })],
      ["GET content", stored.id, () => t.call("GET", `v1/uploads/${stored.id}/content`, { key: apiKey })],
      ["PUT content", empty.id, () => putContent(t, apiKey, empty.id, Buffer.alloc(10))],
    ];
    for (const [what, id, send] of routes) {
      const before = integrityLines(`upload:${id}`).length;
      await expectIntegrityError(await send(), what);
      const lines = integrityLines(`upload:${id}`);
      expect(lines.length, `${what}: one integrity.failure line naming the upload`).toBe(before + 1);
      expect(lines.at(-1), what).toMatchObject({ tenantId, target: `upload:${id}`, failure: "wrapped-key" });
    }
    // Nothing was counted as downloaded and the content was not lost: a failed PUT leaves the upload as it was.
    expect((await t.services.uploads.get(tenantId, stored.id))!.downloads).toBe(0);
    expect((await t.services.uploads.get(tenantId, empty.id))!.status).toBe("awaiting-content");
  });
});

describe("a tampered encrypted field of an upload", () => {
  it.each(["fileName", "senderReference", "recipients"] as const)("%s: integrity-error, and the log names the upload and the field", async (field) => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id } = await uploadWith(t, apiKey, 100);
    await changeUpload(tenantId, id, (d) => ({ ...d, personal: { ...d.personal!, [field]: flipField(d.personal![field]) } }));
    await expectIntegrityError(await t.call("GET", `v1/uploads/${id}`, { key: apiKey }), `GET metadata with ${field} tampered`);
    expect(integrityLines(`upload:${id}`).at(-1)).toMatchObject({ tenantId, target: `upload:${id}`, failure: "field", field });
  });

  it("fileName is read by the download too: integrity-error before anything is counted", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id } = await uploadWith(t, apiKey, 100);
    await changeUpload(tenantId, id, (d) => ({ ...d, personal: { ...d.personal!, fileName: flipField(d.personal!.fileName) } }));
    await expectIntegrityError(await t.call("GET", `v1/uploads/${id}/content`, { key: apiKey }), "GET content with fileName tampered");
    expect(integrityLines(`upload:${id}`).at(-1)).toMatchObject({ tenantId, target: `upload:${id}`, field: "fileName" });
    expect((await t.services.uploads.get(tenantId, id))!.downloads).toBe(0);
  });

  it("a PUT of content with a field tampered: integrity-error before anything is stored, claimed or logged as stored", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id } = await createUpload(t, apiKey, { size: 10 });
    await changeUpload(tenantId, id, (d) => ({ ...d, personal: { ...d.personal!, recipients: flipField(d.personal!.recipients) } }));
    await expectIntegrityError(await putContent(t, apiKey, id, Buffer.alloc(10)), "PUT content with recipients tampered");
    const after = (await t.services.uploads.get(tenantId, id))!;
    expect(after).toMatchObject({ status: "awaiting-content", content: null, receiving: null });
    const blobs: string[] = [];
    for await (const b of t.raw.blobs.getContainerClient("payloads").listBlobsFlat({ prefix: `${tenantId}/${id}/`, includeUncommitedBlobs: true })) blobs.push(b.name);
    expect(blobs).toEqual([]);
    const actions = ((await (await t.call("GET", "v1/audit?limit=200", { key: apiKey })).json()) as { items: Array<{ action: string }> }).items.map((e) => e.action);
    expect(actions).not.toContain("upload.content-stored");
  });

  it("notifyEmail, read by the notifications queue worker: the worker's log names the upload and the field", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const { id } = await uploadWith(t, apiKey, 100, { notifyOnFirstDownload: "sender@tenant.example" });
    await changeUpload(tenantId, id, (d) => ({ ...d, personal: { ...d.personal!, notifyEmail: flipField(d.personal!.notifyEmail!) } }));
    expect((await download(t, apiKey, id)).res.status).toBe(200);
    t.host.pokeQueues();
    await eventually(() => expect(integrityLines(`upload:${id}`).length).toBeGreaterThan(0), 30_000);
    expect(integrityLines(`upload:${id}`)[0]).toMatchObject({ tenantId, target: `upload:${id}`, failure: "field", field: "notifyEmail", queue: QUEUES.notifications.name });
    expect((await t.services.uploads.get(tenantId, id))!.senderNotifiedAt).toBeNull();
  });
});

describe("a tampered contact address of a tenant", () => {
  it("GET /admin/tenants/{id}: integrity-error, the log names the tenant and the field, and no read is audited", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    await changeTenant(tenantId, (d) => ({ ...d, contactEmail: { ...d.contactEmail!, value: flipField(d.contactEmail!.value) } }));
    await expectIntegrityError(await t.admin("GET", `v1/admin/tenants/${tenantId}`), "GET tenant");
    expect(integrityLines(`tenant:${tenantId}`).at(-1)).toMatchObject({ tenantId, target: `tenant:${tenantId}`, failure: "field", field: "contactEmail" });
    const audit = (await (await t.call("GET", "v1/audit", { key: apiKey })).json()) as { items: Array<{ action: string }> };
    expect(audit.items.map((e) => e.action)).not.toContain("tenant.read");
  });
});

describe("the key re-wrap job meeting tampered keys", () => {
  it("logs the ids of what it could not re-wrap and re-wraps everything else", async () => {
    const { tenantId, apiKey } = await t.createTenant();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await uploadWith(t, apiKey, 10)).id);
    const bad = ids[1]!;
    await changeUpload(tenantId, bad, (d) => ({ ...d, dataKey: { ...d.dataKey!, wrapped: flip(d.dataKey!.wrapped) } }));
    await changeTenant(tenantId, (d) => ({ ...d, contactEmail: { ...d.contactEmail!, value: flipField(d.contactEmail!.value) } }));

    expect((await t.admin("POST", `v1/admin/tenants/${tenantId}/kek/rotate`)).status).toBe(202);
    t.host.pokeQueues();
    await eventually(async () => {
      for (const id of ids.filter((i) => i !== bad)) expect((await t.services.uploads.get(tenantId, id))!.dataKey!.kekVersion).toBe("2");
      expect(integrityLines(`upload:${bad}`).length).toBeGreaterThan(0);
      expect(integrityLines(`tenant:${tenantId}`).length).toBeGreaterThan(0);
    }, 30_000);
    expect(integrityLines(`upload:${bad}`)[0]).toMatchObject({ tenantId, target: `upload:${bad}`, failure: "wrapped-key" });
    expect(integrityLines(`tenant:${tenantId}`)[0]).toMatchObject({ tenantId, target: `tenant:${tenantId}`, field: "contactEmail" });
    // The damaged one stays on its old version, visibly.
    const status = (await (await t.admin("GET", `v1/admin/tenants/${tenantId}/kek`)).json()) as { uploadsOnOlderVersions: number };
    expect(status.uploadsOnOlderVersions).toBe(1);
  });
});
