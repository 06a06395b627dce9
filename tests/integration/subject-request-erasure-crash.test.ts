/**
 * An erasure whose worker dies between any two of its steps (after a step did its work, before the queue recorded it),
 * or in the middle of deleting an upload, finishes once when the step runs again: each upload's key destroyed at once
 * and the upload deleted and audited once (one whose own deletion died under a live lease is finished by the retention
 * sweep's worker, as any interrupted deletion is),
 * one certificate and one certificate entry, counts right, the chain intact. The queue is driven by hand here (no
 * queue worker), so the test decides where each attempt dies.
 */
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { startTestApp, type TestApp } from "../helpers/app";
import { createRequest, json, rawRequest } from "../helpers/subject-requests";
import { uploadWith } from "../helpers/uploads";
import { runStep } from "../../shared/usecases/subject-request-steps";
import { certifyErasure, eraseRecords, eraseUploads, planErasure } from "../../shared/usecases/subject-request-erasure";
import { deleteUpload } from "../../shared/usecases/upload-deletion";
import type { StoredRequest } from "../../shared/stores/subject-request-store";
import type { Services } from "../../shared/services";

let t: TestApp;
let tenant: { tenantId: string; apiKey: string };

beforeAll(async () => {
  t = await startTestApp({ queues: false });
  tenant = await t.createTenant("Crash ApS");
});
afterAll(async () => {
  await t?.stop();
});

type Crash = (s: Services, req: StoredRequest) => Promise<unknown>;
const STEPS: Record<string, Crash> = { plan: planErasure, uploads: eraseUploads, records: eraseRecords, certificate: certifyErasure };

/** Runs the request's pending steps as the queue would; before `crashAt` runs for real, `crash` runs and "dies". */
async function drive(id: string, crashAt: string, crash: Crash): Promise<StoredRequest> {
  let crashed = false;
  for (let i = 0; i < 60; i++) {
    const doc = await rawRequest(t, tenant.tenantId, id);
    const step = doc.steps.find((st) => !st.parked);
    if (!step) return doc;
    if (step.name === `work:${crashAt}` && !crashed) {
      crashed = true;
      await crash(t.services, doc).catch(() => undefined);
    }
    await runStep(t.services, { tenantId: tenant.tenantId, requestId: id, step: step.name, seq: step.seq });
  }
  throw new Error("the request's steps did not finish");
}

async function audit() {
  const all: Array<{ action: string; target: { id: string } | null; details: Record<string, unknown> }> = [];
  let cursor: string | undefined;
  do {
    const page = await json<{ items: typeof all; nextCursor?: string }>(await t.call("GET", `v1/audit?limit=200${cursor ? `&cursor=${cursor}` : ""}`, { key: tenant.apiKey }));
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

let n = 0;
async function erasureWithUploads(count: number) {
  const email = `crash.${++n}.${Date.now()}@example.com`;
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await uploadWith(t, tenant.apiKey, 16, { dataSubjects: [email] })).id);
  const r = await createRequest(t, tenant.apiKey, { type: "erasure", subjectEmail: email });
  expect((await t.call("POST", `v1/subject-requests/${r.body.id}/vouch`, { key: tenant.apiKey, json: { statement: "Known." } })).status).toBe(200);
  return { id: r.body.id, ids };
}

describe("an erasure interrupted", () => {
  const cases: Array<[string, string, Crash]> = [
    ["after planning", "plan", STEPS.plan!],
    ["after deleting the uploads", "uploads", STEPS.uploads!],
    ["after erasing the other records", "records", STEPS.records!],
    ["after storing and signing the certificate", "certificate", STEPS.certificate!],
    [
      "in the middle of deleting the uploads (one key destroyed, one upload deleted)",
      "uploads",
      async (s, req) => {
        const doc = await s.subjectRequests.outcomes.getOutcome(req.tenantId, req.id);
        const [first, second] = doc!.plan.ids.uploads!;
        await deleteUpload(s, req.tenantId, first!, "subject-request", { actor: "system:subject-requests", requestId: req.id }, { after: (st) => { if (st === "shred") throw new Error("died"); } }).catch(() => undefined);
        await deleteUpload(s, req.tenantId, second!, "subject-request", { actor: "system:subject-requests", requestId: req.id });
        throw new Error("died");
      },
    ],
  ];

  it.each(cases)("%s finishes once", async (_what, crashAt, crash) => {
    const { id, ids } = await erasureWithUploads(3);
    const done = await drive(id, crashAt, crash);
    expect(done.status).toBe("completed");
    expect(done.outcome).toBe("fulfilled");
    // A deletion that died after destroying its key holds its lease for five minutes; then the retention sweep's
    // worker finishes it (with its own reason, subject-request), as it does any interrupted deletion.
    t.clock.advance({ minutes: 6 });
    for (const uploadId of ids) await deleteUpload(t.services, tenant.tenantId, uploadId, "expired", { actor: "system:retention" });
    const entries = await audit();
    expect(entries.filter((e) => e.action === "subject-request.erasure-certified" && e.target?.id === id)).toHaveLength(1);
    for (const uploadId of ids) {
      const deleted = entries.filter((e) => e.action === "upload.deleted" && e.target?.id === uploadId && e.details.reason === "subject-request");
      expect(deleted, uploadId).toHaveLength(1);
      const raw = (await t.raw.containers.uploads.item(uploadId, tenant.tenantId).read<{ status: string; dataKey: unknown }>()).resource!;
      expect(raw).toMatchObject({ status: "deleted", dataKey: null });
    }
    const cert = await json<{ record: { erased: Array<{ place: string; count: number }> } }>(await t.call("GET", `v1/subject-requests/${id}/certificate`, { key: tenant.apiKey }));
    expect(cert.record.erased.find((p) => p.place === "uploads")?.count).toBe(3);
    expect((await json<{ valid: boolean }>(await t.call("GET", "v1/audit/verify", { key: tenant.apiKey }))).valid).toBe(true);
  });
});
