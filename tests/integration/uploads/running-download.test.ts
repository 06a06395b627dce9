/**
 * Access is checked while a download runs, not only when it starts. On the instance where it happens, a download
 * stops within at most 1 MiB (or one second) after its upload is deleted or expires, its tenant is suspended (or
 * offboarded) or the tenant's keys are destroyed; a change made on another instance is seen within one second,
 * when the running download re-reads the stored upload and tenant.
 *
 * The download's body is read here in-process from the use case (no HTTP buffers in between), so the bytes that
 * arrive after the change are counted exactly; one test also goes through HTTP.
 */
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import type { Log } from "../../../shared/observability";
import { openContent } from "../../../shared/usecases/uploads";
import { startTestApp, type TestApp } from "../../helpers/app";
import { eventually } from "../../helpers/eventually";
import { uploadWith } from "../../helpers/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const MiB = 1024 * 1024;
const SIZE = 12 * MiB;
const silent: Log = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A tenant with one 12 MiB upload, and its download opened in-process. */
async function runningDownload(overrides: Record<string, unknown> = {}) {
  const tenant = await t.createTenant();
  const { id } = await uploadWith(t, tenant.apiKey, SIZE, overrides);
  const stored = await t.services.tenants.get(tenant.tenantId);
  const caller = { tenantId: tenant.tenantId, actor: "key:test", requestId: randomUUID(), kekVersion: stored!.kekVersion };
  const opened = await openContent(t.services, caller, id, { method: "GET", range: null, ifRange: null, ifNoneMatch: null }, silent);
  if (opened.kind !== "content" || !opened.body) throw new Error("no body");
  return { ...tenant, id, body: opened.body, reader: opened.body[Symbol.asyncIterator]() as AsyncIterator<Buffer> };
}

async function read(reader: AsyncIterator<Buffer>, atLeast: number): Promise<number> {
  let n = 0;
  while (n < atLeast) {
    const r = await reader.next();
    if (r.done) break;
    n += r.value.length;
  }
  return n;
}

/** Reads to the end; the bytes that came, and whether the stream failed. */
async function rest(reader: AsyncIterator<Buffer>): Promise<{ bytes: number; failed: boolean }> {
  let bytes = 0;
  try {
    for (let r = await reader.next(); !r.done; r = await reader.next()) bytes += r.value.length;
    return { bytes, failed: false };
  } catch {
    return { bytes, failed: true };
  }
}

async function endedEntry(apiKey: string, id: string) {
  let entry: { details: Record<string, unknown> } | undefined;
  await eventually(async () => {
    const res = await t.call("GET", "v1/audit?limit=200", { key: apiKey });
    const items = ((await res.json()) as { items: Array<{ action: string; target: { id: string } | null; details: Record<string, unknown> }> }).items;
    entry = items.find((e) => e.action === "upload.download-ended" && e.target?.id === id);
    expect(entry).toBeDefined();
  });
  return entry!;
}

function expectStoppedWithin(after: { bytes: number; failed: boolean }, limit: number, what: string) {
  expect(after.failed, `${what}: the download is stopped`).toBe(true);
  expect(after.bytes, `${what}: bytes after it`).toBeLessThanOrEqual(limit);
}

describe("on the instance where it happens", () => {
  it("DELETE stops a running download within 1 MiB", async () => {
    const d = await runningDownload();
    await read(d.reader, 2 * MiB);
    expect((await t.call("DELETE", `v1/uploads/${d.id}`, { key: d.apiKey })).status).toBe(204);
    expectStoppedWithin(await rest(d.reader), MiB, "deleted");
    expect((await endedEntry(d.apiKey, d.id)).details).toMatchObject({ completed: false, reason: "upload-deleted" });
  });

  it("suspending the tenant stops a running download within 1 MiB", async () => {
    const d = await runningDownload();
    await read(d.reader, 2 * MiB);
    expect((await t.admin("POST", `v1/admin/tenants/${d.tenantId}/suspend`)).status).toBe(200);
    expectStoppedWithin(await rest(d.reader), MiB, "suspended");
  });

  it("the end of the upload's life stops a running download within 1 MiB", async () => {
    const d = await runningDownload({ expiresInDays: 1 });
    await read(d.reader, 2 * MiB);
    const back = t.clock.now().getTime();
    t.clock.advance({ days: 1 });
    try {
      expectStoppedWithin(await rest(d.reader), MiB, "expired");
    } finally {
      t.clock.set(back);
    }
  });

  it("destroying the tenant's keys stops a running download within 1 MiB", async () => {
    const d = await runningDownload();
    await read(d.reader, 2 * MiB);
    await t.services.keys.deleteTenantKeys(d.tenantId);
    expectStoppedWithin(await rest(d.reader), MiB, "keys destroyed");
  });

  it("a download that is left alone runs to the end", async () => {
    const d = await runningDownload();
    const all = await rest(d.reader);
    expect(all).toEqual({ bytes: SIZE, failed: false });
  });
});

describe("made on another instance (the stored state changes, no signal here)", () => {
  it("a deletion is seen within one second", async () => {
    const d = await runningDownload();
    await read(d.reader, MiB);
    // What another instance's deletion leaves in the record once the key is destroyed.
    const doc = (await t.services.uploads.get(d.tenantId, d.id))!;
    const { _etag, ...plain } = doc;
    const now = t.clock.now().toISOString();
    await t.raw.containers.uploads.item(d.id, d.tenantId).replace({
      ...plain,
      status: "deleting",
      dataKey: null,
      personal: null,
      deletion: { reason: "sender-request", requestedAt: now, by: "key:other", requestId: null, keyDestroyedAt: now, blobsDeletedAt: null, auditSeq: null, completedAt: null, leaseUntil: now, sweepId: null },
    });
    expect(_etag).toBeDefined();
    // Within the second, this instance has not looked yet.
    await read(d.reader, 2 * MiB);
    t.clock.advance({ seconds: 1 });
    expectStoppedWithin(await rest(d.reader), MiB, "deleted elsewhere");
  });

  it("a suspension is seen within one second", async () => {
    const d = await runningDownload();
    await read(d.reader, MiB);
    const item = t.raw.containers.tenants.item(d.tenantId, d.tenantId);
    const { resource } = await item.read<Record<string, unknown>>();
    await item.replace({ ...resource!, status: "suspended", suspendedAt: t.clock.now().toISOString() });
    t.clock.advance({ seconds: 1 });
    expectStoppedWithin(await rest(d.reader), MiB, "suspended elsewhere");
  });
});

describe("over HTTP", () => {
  it("a DELETE during a download cuts the response off; the client never gets the whole content", async () => {
    const tenant = await t.createTenant();
    const size = 40 * MiB;
    const { id } = await uploadWith(t, tenant.apiKey, size);
    const res = await fetch(`${t.api}/v1/uploads/${id}/content`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });
    expect(res.status).toBe(200);
    const reader = (res.body as unknown as Readable)[Symbol.asyncIterator]
      ? ((res.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]() as AsyncIterator<Buffer>)
      : (() => {
          throw new Error("no async iterator");
        })();
    await read(reader, MiB);
    expect((await t.call("DELETE", `v1/uploads/${id}`, { key: tenant.apiKey })).status).toBe(204);
    const after = await rest(reader);
    expect(after.failed).toBe(true);
    expect(MiB + after.bytes).toBeLessThan(size);
    expect((await endedEntry(tenant.apiKey, id)).details).toMatchObject({ completed: false, reason: "upload-deleted" });
  });
});
