/**
 * Erasure of one person with N uploads (a data-subject request of type erasure, GDPR Art. 17) against the retention
 * sweep's purge of N expired uploads, in the same runtime process (as `npm start` runs it), one after the other:
 *
 * - erasure: N uploads naming the person as a data subject (two recipients each; one in ten with content, as the purge
 *   benchmark's), created through the API; then the request is recorded and vouched for, and the time is measured from
 *   the vouching (the request turns verified and its work is queued) until GET /subject-requests/{id} says
 *   `completed`: planning (each upload's recipients decrypted for Art. 19), every upload crypto-shredded and deleted
 *   with its audit entry, the person's other records, the signed certificate;
 * - purge: N expired uploads of another tenant written straight to Cosmos (one in ten with a blob), as bench/purge.ts
 *   does, and the time from triggering the retention timer until none is left and its receipts are written.
 *
 * Several rounds, each with a new person and new expired uploads, alternating which of the two goes first (so drift on
 * a shared machine hits both alike); the medians are compared.
 *
 * The goal (issue 19): the erasure within 1.5 times the purge.
 */
import { CosmosClient } from "@azure/cosmos";
import { BlobServiceClient } from "@azure/storage-blob";
import { seedUploadRecord, writeSeedUploads } from "../dev/seed-uploads";
import { machineLine, withSection } from "./report";
import { median } from "./stats";
import { startRuntime } from "./runtime-process";

export interface ErasureBenchResult {
  uploads: number;
  rounds: number;
  /** Seconds from vouching to completed, per round. */
  erasures: number[];
  /** Seconds the retention sweep took to purge as many expired uploads, per round. */
  purges: number[];
  /** Medians. */
  erasureSeconds: number;
  purgeSeconds: number;
  /** erasureSeconds / purgeSeconds. */
  ratio: number;
  /** Work steps that failed and were retried (0 expected). */
  failedStepAttempts: number;
}

const DAY = 86_400_000;
const ERASURE_HEADING = "## Data-subject erasure";

async function json<T>(res: Response): Promise<T> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function inParallel(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

export async function benchErasure(opts: { root: string; uploads: number; rounds: number; log: (line: string) => void }): Promise<ErasureBenchResult> {
  const rt = await startRuntime({ root: opts.root });
  const cosmos = new CosmosClient({ connectionString: rt.cosmosConnectionString, connectionPolicy: { enableEndpointDiscovery: false } });
  try {
    const admin = { authorization: `Bearer ${rt.adminKey}`, "content-type": "application/json" };
    const tenant = async (name: string) =>
      json<{ tenant: { id: string }; apiKey: string }>(
        await fetch(`${rt.apiUrl}/v1/admin/tenants`, { method: "POST", headers: admin, body: JSON.stringify({ name, contactEmail: "dpo@bench.example", supervisoryAuthority: { country: "DK" } }) }),
      );
    const erasing = await tenant("Erasure bench");
    const purging = await tenant("Purge bench");
    const api = (method: string, route: string, body?: unknown, headers: Record<string, string> = {}) =>
      fetch(`${rt.apiUrl}/${route}`, {
        method,
        headers: { authorization: `Bearer ${erasing.apiKey}`, ...(body !== undefined && !(body instanceof Buffer) ? { "content-type": "application/json" } : {}), ...headers },
        body: body === undefined ? undefined : body instanceof Buffer ? body : JSON.stringify(body),
      });

    const container = cosmos.database("safedata").container("uploads");
    const payloads = BlobServiceClient.fromConnectionString(rt.storageConnectionString).getContainerClient("payloads");
    const operations = cosmos.database("safedata").container("operations");

    /** N uploads about a new person, created through the API. */
    const prepareErasure = async (round: number) => {
      const person = `bench.person.${round}@example.com`;
      opts.log(`round ${round}: creating ${opts.uploads} uploads about one person`);
      await inParallel(opts.uploads, Number(process.env.BENCH_ERASURE_CONCURRENCY ?? "4"), async (i) => {
        const withContent = i % 10 === 0;
        const created = await json<{ id: string }>(
          await api("POST", "v1/uploads", {
            senderReference: `bench-${round}-${i}`,
            recipients: [`r${i % 7}@recipient.example`, "office@recipient.example"],
            dataSubjects: [person],
            categories: ["contact"],
            fileName: `file-${i}.bin`,
            contentType: "application/octet-stream",
            size: withContent ? 32 : 0,
          }),
        );
        if (withContent) await json(await api("PUT", `v1/uploads/${created.id}/content`, Buffer.alloc(32, 7), { "content-type": "application/octet-stream" }));
      });
      return person;
    };
    /** Seconds from vouching for the person's erasure request until it reads completed. */
    const erase = async (person: string) => {
      const req = await json<{ id: string }>(await api("POST", "v1/subject-requests", { type: "erasure", subjectEmail: person }));
      const started = Date.now();
      await json(await api("POST", `v1/subject-requests/${req.id}/vouch`, { statement: "Benchmark." }));
      for (let status = ""; status !== "completed"; ) {
        const view = await json<{ status: string; attention: { reason: string } | null }>(await api("GET", `v1/subject-requests/${req.id}`));
        status = view.status;
        if (status === "needs-attention") throw new Error(`the erasure needs attention: ${view.attention?.reason}`);
        if (Date.now() - started > 15 * 60_000) throw new Error("the erasure did not complete in 15 minutes");
        if (status !== "completed") await new Promise((r) => setTimeout(r, 50));
      }
      return (Date.now() - started) / 1000;
    };
    /** N expired uploads of the purge tenant, seeded straight into Cosmos (as bench/purge.ts). */
    const preparePurge = async () => {
      const now = Date.now();
      await writeSeedUploads(container, payloads, Array.from({ length: opts.uploads }, (_, i) => seedUploadRecord(purging.tenant.id, new Date(now - (33 + (i % 28)) * DAY - i * 1000), 32, i % 10 === 0)));
    };
    const remaining = async () =>
      (
        await container.items
          .query<number>({ query: "SELECT VALUE COUNT(1) FROM c WHERE c.type = 'upload' AND c.tenantId = @t AND c.status != 'expired'", parameters: [{ name: "@t", value: purging.tenant.id }] })
          .fetchAll()
      ).resources[0] ?? 0;
    const openSweeps = async () => (await operations.items.query<number>("SELECT VALUE COUNT(1) FROM c WHERE c.type = 'sweep' AND IS_NULL(c.receiptsAt)").fetchAll()).resources[0] ?? 0;
    /** Seconds from triggering the retention timer until none of them is left and the receipts are written. */
    const purge = async () => {
      const started = Date.now();
      for (let sweeps = 0; (await remaining()) > 0; sweeps++) {
        if (sweeps >= 20) throw new Error("the purge did not finish in 20 sweeps");
        await json(await fetch(`${rt.apiUrl.replace(/\/api$/, "")}/admin/functions/retention-sweep?wait=true`, { method: "POST", body: "{}", headers: { "x-functions-key": rt.masterKey } }));
        while ((await openSweeps()) > 0) await new Promise((r) => setTimeout(r, 100));
      }
      return (Date.now() - started) / 1000;
    };

    // Rounds alternate which goes first, so drift on the machine hits both alike.
    const erasures: number[] = [];
    const purges: number[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      const person = await prepareErasure(round);
      await preparePurge();
      const order = round % 2 === 1 ? ["erasure", "purge"] : ["purge", "erasure"];
      for (const what of order) {
        if (what === "erasure") {
          erasures.push(await erase(person));
          opts.log(`round ${round}: erasure of ${opts.uploads} uploads in ${erasures.at(-1)!.toFixed(1)} s`);
        } else {
          purges.push(await purge());
          opts.log(`round ${round}: purge of ${opts.uploads} uploads in ${purges.at(-1)!.toFixed(1)} s`);
        }
      }
    }
    const failed = rt.output().match(/dsr\.step-failed[^\n]*/g) ?? [];
    if (failed.length > 0) opts.log(`${failed.length} failed step attempt(s), e.g. ${failed[0]!.slice(0, 300)}`);
    const erasureSeconds = median(erasures);
    const purgeSeconds = median(purges);
    return { uploads: opts.uploads, rounds: opts.rounds, erasures, purges, erasureSeconds, purgeSeconds, ratio: erasureSeconds / purgeSeconds, failedStepAttempts: failed.length };
  } catch (err) {
    opts.log(`the runtime's last output:\n${rt.output().slice(-3000)}`);
    throw err;
  } finally {
    cosmos.dispose();
    await rt.stop();
  }
}

/** The RESULTS.md section. */
export function renderErasureResults(r: ErasureBenchResult, info: { startedAt: Date; durationSeconds: number }): string {
  const lines = [
    `${ERASURE_HEADING}: one person with many uploads`,
    "",
    "- Command: `npm run bench` (this section alone: `npm run build && node dist/bench/erasure-run.js`)",
    `- Run: ${info.startedAt.toISOString()}, ${info.durationSeconds.toFixed(0)} s in all`,
    `- Machine: ${machineLine()}`,
    `- Erasure: ${r.uploads.toLocaleString("en")} uploads naming one person (two recipients each; one in ten with content), created through the API; ` +
      "timed from vouching for the request until it reads `completed` (planning with each upload's recipients decrypted for Art. 19, every upload " +
      "crypto-shredded, its blobs deleted, audited and tombstoned, the signed certificate), through the work queue of the local runtime.",
    `- Purge: ${r.uploads.toLocaleString("en")} expired uploads of another tenant (one in ten with a blob), in the same runtime, timed from ` +
      "triggering the retention timer until none is left and its receipts are written (as bench/purge.ts).",
    `- Rounds: ${r.rounds}, alternating which goes first; medians below. Work steps that failed and were retried: ${r.failedStepAttempts}.`,
    "",
    "| What | Items | Seconds (median) | Items/s | Each round (s) |",
    "| --- | ---: | ---: | ---: | --- |",
    `| Erasure of one person | ${r.uploads} | ${r.erasureSeconds.toFixed(1)} | ${(r.uploads / r.erasureSeconds).toFixed(0)} | ${r.erasures.map((x) => x.toFixed(1)).join(", ")} |`,
    `| Purge of expired uploads | ${r.uploads} | ${r.purgeSeconds.toFixed(1)} | ${(r.uploads / r.purgeSeconds).toFixed(0)} | ${r.purges.map((x) => x.toFixed(1)).join(", ")} |`,
    "",
    `Erasure / purge (medians): **${r.ratio.toFixed(2)}** (goal: at most 1.5).`,
    "",
  ];
  return lines.join("\n");
}

/** `markdown` with the erasure section (to the next level-2 heading, or the end) replaced, or appended. */
export function withErasureSection(markdown: string, section: string): string {
  return withSection(markdown, ERASURE_HEADING, section);
}
