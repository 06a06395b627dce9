/**
 * The package work's steps under faults: a step run again does nothing twice (one build, one audit entry, one e-mail
 * each); a build that died half-way is started again once its lease is over, and the record names only a finished
 * zip; content that went missing from storage fails the build until the request needs attention, leaving no blob
 * behind; forged step messages do nothing; a person named only as a recipient gets metadata and no files; nothing
 * personal in the package record or the audit entries.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { createRequest, json, mails, packageRecord, waitForMails, waitForRequest } from "../helpers/subject-requests";
import { uploadWith } from "../helpers/uploads";
import { ManualClock } from "../../shared/domain/clock";
import { packageIdOf } from "../../shared/stores/package-store";
import { runStep, workFor } from "../../shared/usecases/subject-request-steps";

let t: TestApp;
let a: { tenantId: string; apiKey: string };

const texts = { purposes: "p", categories: "c", recipients: "r", retention: "d", rights: "e", complaint: "f", source: "g", automatedDecisions: "h" };

beforeAll(async () => {
  t = await startTestApp({ clock: new ManualClock("2027-06-01T08:00:00.000Z") });
  a = await t.createTenant("Faults ApS");
  expect((await t.call("PUT", "v1/privacy-information", { key: a.apiKey, json: { en: texts, da: texts } })).status).toBe(201);
});
afterAll(async () => {
  await t?.stop();
});

let n = 0;
const person = (tag: string) => `${tag}${++n}.${Date.now()}@example.com`;

async function requested(body: Record<string, unknown>): Promise<string> {
  const r = await createRequest(t, a.apiKey, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id;
}
const vouch = async (id: string) => expect((await t.call("POST", `v1/subject-requests/${id}/vouch`, { key: a.apiKey, json: { statement: "Known customer" } })).status).toBe(200);

async function blobsUnder(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const b of t.raw.blobs.getContainerClient("payloads").listBlobsFlat({ prefix, includeUncommitedBlobs: true })) out.push(b.name);
  return out;
}

async function auditOfRequest(id: string): Promise<Array<{ action: string; details: Record<string, unknown> }>> {
  const out: Array<{ action: string; target: { id: string } | null; details: Record<string, unknown> }> = [];
  for (let cursor: string | undefined; ; ) {
    const page = await json<{ items: typeof out; nextCursor?: string }>(await t.call("GET", `v1/audit?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key: a.apiKey }));
    out.push(...page.items);
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return out.filter((e) => e.target?.id === id);
}

describe("the package steps", () => {
  it("run again, do nothing twice: one zip, one audit entry, one e-mail each", async () => {
    const email = person("again");
    await uploadWith(t, a.apiKey, 2000, { dataSubjects: [email], fileName: "Secret salary of Dora.pdf" });
    const id = await requested({ type: "access", subjectEmail: email });
    await vouch(id);
    const done = await waitForRequest(t, a.tenantId, id, (d) => d.status === "completed" && d.steps.length === 0, "completed");
    await waitForMails(t, `dsr-package-ready-${id}`);
    const before = await t.services.packages.get(a.tenantId, id);
    const work = workFor("access")!;
    expect(await work.steps.build!(t.services, done)).toEqual({ next: "notify" });
    expect(await work.steps.notify!(t.services, done)).toEqual({ complete: "fulfilled" });
    expect(await work.steps.check!(t.services, done)).toEqual({ next: "notify" });
    const after = await t.services.packages.get(a.tenantId, id);
    expect(after?.content).toEqual(before?.content);
    expect(await blobsUnder(`${a.tenantId}/${id}/`)).toEqual([before!.content!.blobName]);
    const actions = (await auditOfRequest(id)).map((e) => e.action);
    expect(actions.filter((x) => x === "subject-request.package-built")).toHaveLength(1);
    expect((await mails(t, `dsr-package-ready-${id}`)).length).toBe(1);
    // Forged and stale messages for its steps do nothing.
    for (const msg of [
      { tenantId: a.tenantId, requestId: id, step: "work:build", seq: 999 },
      { tenantId: a.tenantId, requestId: id, step: "work:notify", seq: 1 },
    ]) {
      expect(await runStep(t.services, msg)).toBe("skipped");
    }
    // Nothing personal in the record or the audit entries: ids, counts, hashes and dates only.
    const raw = JSON.stringify(await t.raw.containers.subjectRequests.item(packageIdOf(id), a.tenantId).read().then((r) => r.resource));
    const audit = JSON.stringify(await auditOfRequest(id));
    for (const text of [raw, audit]) {
      expect(text).not.toContain(email);
      expect(text).not.toContain("Dora");
    }
  });

  it("start a build again when one died half-way, once its lease is over; the record names a finished zip only", async () => {
    const email = person("crashed");
    const up = await uploadWith(t, a.apiKey, 1500, { dataSubjects: [email] });
    const id = await requested({ type: "access", subjectEmail: email });
    // A worker took the build 31 minutes ago, staged part of a zip, and died.
    const since = new Date(t.clock.now().getTime() - 31 * 60_000).toISOString();
    const dead = packageRecord(a.tenantId, id, since, { state: "building", building: { attemptId: "a-dead", since }, builtAt: null });
    expect(await t.services.packages.create(dead)).toBe(true);
    await t.raw.blobs.getContainerClient("payloads").getBlockBlobClient(`${a.tenantId}/${id}/a-dead`).stageBlock(Buffer.from("AAAA").toString("base64"), Buffer.alloc(10), 10);
    await vouch(id);
    await waitForRequest(t, a.tenantId, id, (d) => d.status === "completed", "completed");
    const pkg = await t.services.packages.get(a.tenantId, id);
    expect(pkg).toMatchObject({ state: "ready", building: null, counts: { files: 1, uploads: 1 } });
    expect(pkg!.content!.blobName).not.toContain("a-dead");
    const res = await t.call("GET", `v1/subject-requests/${id}/package/content`, { key: a.apiKey });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).includes(up.content.subarray(0, 64))).toBe(true);
  });

  it("give a failed build's claim back at once, so the retry builds without waiting out the lease", async () => {
    const email = person("transient");
    await uploadWith(t, a.apiKey, 700, { dataSubjects: [email] });
    const id = await requested({ type: "access", subjectEmail: email });
    await vouch(id);
    const done = await waitForRequest(t, a.tenantId, id, (d) => d.status === "completed" && d.steps.length === 0, "completed");
    // The package as before its build (the request's step ran once more after a crash).
    const stored = (await t.services.packages.get(a.tenantId, id))!;
    const { _etag: _e, ...rest } = stored;
    expect(await t.services.packages.replace({ ...rest, state: "open", building: null, dataKey: null, content: null, builtAt: null, expiresAt: null }, stored._etag)).toBeTruthy();
    // Storage answers the zip's write with a timeout once; everything else is the real service.
    const failing = { ...t.services, packageBlobs: Object.assign(Object.create(t.services.packageBlobs) as typeof t.services.packageBlobs, {
      write: async () => {
        throw Object.assign(new Error("Timeout Error! Request took more than 60000 ms"), { name: "TimeoutError" });
      },
    }) };
    const work = workFor("access")!;
    await expect(work.steps.build!(failing, done)).rejects.toThrow("Timeout Error");
    expect(await t.services.packages.get(a.tenantId, id), "the claim given back").toMatchObject({ state: "open", building: null });
    // The retry, seconds later (the clock not moved): it builds.
    expect(await work.steps.build!(t.services, done)).toEqual({ next: "notify" });
    expect(await t.services.packages.get(a.tenantId, id)).toMatchObject({ state: "ready", building: null });
  });

  it("need attention when stored content went missing, and leave no blob of the failed attempts", async () => {
    const email = person("missing");
    const up = await uploadWith(t, a.apiKey, 800, { dataSubjects: [email] });
    for (const name of await blobsUnder(`${a.tenantId}/${up.id}/`)) await t.raw.blobs.getContainerClient("payloads").deleteBlob(name);
    const id = await requested({ type: "access", subjectEmail: email });
    await vouch(id);
    const stuck = await waitForRequest(t, a.tenantId, id, (d) => d.status === "needs-attention", "needs attention");
    expect(stuck.attention).toMatchObject({ step: "work:build", resumeTo: "in-progress" });
    expect(stuck.attention!.reason).not.toContain(email);
    expect(await blobsUnder(`${a.tenantId}/${id}/`)).toEqual([]);
    expect((await t.services.packages.get(a.tenantId, id))?.content).toBeNull();
    expect(t.logs.map((l) => JSON.stringify(l)).join("\n")).not.toContain(email);
  });

  it("give a person named only as a recipient the metadata, and no files", async () => {
    const email = person("recipient");
    await uploadWith(t, a.apiKey, 300, { dataSubjects: [person("other")], recipients: [email] });
    const id = await requested({ type: "access", subjectEmail: email });
    await vouch(id);
    await waitForRequest(t, a.tenantId, id, (d) => d.status === "completed", "completed");
    const view = await json<{ counts: Record<string, number> }>(await t.call("GET", `v1/subject-requests/${id}/package`, { key: a.apiKey }));
    expect(view.counts).toMatchObject({ uploads: 1, files: 0, fileBytes: 0 });
  });
});
