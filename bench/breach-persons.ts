/**
 * Breach notices to persons (issue 21): scope resolution and fan-out for N persons in the runtime process as
 * `npm start` runs it, with the send rate unlimited (EMAIL_SENDS_PER_MINUTE and EMAIL_SENDS_PER_HOUR set very high),
 * against a plain enumeration of the same uploads in the same run.
 *
 * For each size (default 10,000 and 100,000 persons; BENCH_BREACH_PERSONS, comma-separated): a tenant with N/100
 * uploads created through the API, each naming 99 data subjects and one recipient (all distinct); then
 * - baseline: the same uploads enumerated straight from Cosmos by the benchmark's own process (id and keyed hashes,
 *   pages of 20 by continuation token, the hashes collected in a set);
 * - resolution: from registering a breach whose scope is the uploads' time window until the part says the resolution
 *   is done (every person a document, every batch named; read from the part every 100 ms);
 * - fan-out: from POST .../notify-persons until every batch message is queued (`queuedAt`), and until every person's
 *   e-mail is in the outbox (sent = N, from GET .../persons every 5 s): e-mails per second;
 * - memory: the runtime's peak resident set size while it resolved and sent (sampled every 100 ms), beside its size
 *   after the uploads were created: flat in N is the goal.
 *
 * Run alone: `npm run build && node dist/bench/breach-persons.js` (replaces the section "Breach notices to persons"
 * of bench/RESULTS.md; with BENCH_BREACH_PERSONS set it prints the section instead).
 */
import { CosmosClient } from "@azure/cosmos";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { memoryOf, RssSampler } from "./proc";
import { machineLine, withSection } from "./report";
import { startRuntime } from "./runtime-process";

export interface BreachPersonsRun {
  persons: number;
  uploads: number;
  createSeconds: number;
  /** The plain enumeration of the same uploads (seconds) and the distinct hashes it found. */
  enumerateSeconds: number;
  enumerated: number;
  resolveSeconds: number;
  resolvedPersons: number;
  batches: number;
  queuedSeconds: number;
  sendSeconds: number;
  sent: number;
  failed: number;
  mailsPerSecond: number;
  /** Runtime RSS after the uploads were created, and its peak while resolving and sending (bytes). */
  rssBefore: number;
  rssPeak: number;
  /** Breach-job queue steps that failed and were retried during this size's run (0 expected). */
  failedSteps: number;
}

/** Queue steps of the breach-jobs queue the runtime logged as failed (each is retried). */
function failedStepsIn(output: string): number {
  return (output.match(/"event":"queue\.handler-failed","queue":"breach-jobs"/g) ?? []).length;
}

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 500)}`);
    await sleep(everyMs);
  }
}

type StoredPart = { persons: null | { resolution: { status: string; persons: number; batches: number }; notify: null | { queuedAt: string | null } } };

type PersonsView = {
  resolution: { status: string; persons: number; batches: number };
  notices: null | { queuedAt: string | null; sent: number; pending: number; failed: number; unreachable: number };
};

export async function benchBreachPersons(opts: { root: string; sizes: number[]; log: (line: string) => void }): Promise<BreachPersonsRun[]> {
  // The send rate unlimited: the benchmark measures the service, not the e-mail service's budget.
  process.env.EMAIL_SENDS_PER_MINUTE = "1000000000";
  process.env.EMAIL_SENDS_PER_HOUR = "1000000000";
  const rt = await startRuntime({ root: opts.root, timeoutMs: 120_000 });
  const cosmos = new CosmosClient({ connectionString: rt.cosmosConnectionString, connectionPolicy: { enableEndpointDiscovery: false } });
  const runs: BreachPersonsRun[] = [];
  try {
    const admin = { authorization: `Bearer ${rt.adminKey}`, "content-type": "application/json" };
    for (const persons of opts.sizes) {
      const uploads = Math.ceil(persons / 100);
      const tenant = await json<{ tenant: { id: string }; apiKey: string }>(
        await fetch(`${rt.apiUrl}/v1/admin/tenants`, { method: "POST", headers: admin, body: JSON.stringify({ name: `Breach bench ${persons}`, contactEmail: "dpo@bench.example", supervisoryAuthority: { country: "DK" } }) }),
      );
      const api = (method: string, route: string, body?: unknown) =>
        fetch(`${rt.apiUrl}/${route}`, { method, headers: { authorization: `Bearer ${tenant.apiKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });

      opts.log(`breach persons ${persons}: creating ${uploads} uploads of 100 persons each`);
      const from = new Date(Date.now() - 1000).toISOString();
      const t0 = Date.now();
      await inParallel(uploads, 8, async (u) => {
        await json(
          await api("POST", "v1/uploads", {
            senderReference: `bench-${u}`,
            recipients: [`r${u}@recipients.bench.example`],
            dataSubjects: Array.from({ length: 99 }, (_, j) => `s${u}-${j}@subjects.bench.example`),
            categories: ["contact", "financial"],
            fileName: `file-${u}.bin`,
            contentType: "application/octet-stream",
            size: 0,
          }),
        );
      });
      const createSeconds = (Date.now() - t0) / 1000;
      await sleep(1100);
      const to = new Date().toISOString();
      const rssBefore = memoryOf(rt.pid).rss;
      const failedBefore = failedStepsIn(rt.output());

      // Baseline: the same uploads, enumerated straight from Cosmos.
      const e0 = Date.now();
      const hashes = new Set<string>();
      let continuationToken: string | undefined;
      const container = cosmos.database("safedata").container("uploads");
      do {
        const page = await container.items
          .query<{ id: string; lookups: { subjects: string[]; recipients: string[] } }>(
            { query: "SELECT c.id, c.lookups FROM c WHERE c.tenantId = @t AND c.type = 'upload' AND c.createdAt >= @from AND c.createdAt <= @to", parameters: [{ name: "@t", value: tenant.tenant.id }, { name: "@from", value: from }, { name: "@to", value: to }] },
            { partitionKey: tenant.tenant.id, maxItemCount: 20, continuationToken },
          )
          .fetchNext();
        for (const r of page.resources) for (const h of [...r.lookups.subjects, ...r.lookups.recipients]) hashes.add(h);
        continuationToken = page.continuationToken;
      } while (continuationToken);
      const enumerateSeconds = (Date.now() - e0) / 1000;

      const sampler = new RssSampler(rt.pid, 100).start();
      opts.log(`breach persons ${persons}: resolving`);
      const r0 = Date.now();
      const awareAt = new Date(Date.now() - 3_600_000).toISOString();
      const breach = await json<{ id: string }>(
        await fetch(`${rt.apiUrl}/v1/admin/breaches`, {
          method: "POST",
          headers: admin,
          body: JSON.stringify({
            awareAt,
            nature: { confidentiality: "unknown-recipients", integrity: "not-affected", availability: "not-affected" },
            malicious: true,
            description: "Benchmark: transfer records read by an unknown party.",
            cause: "Benchmark.",
            likelyConsequences: "Phishing.",
            measuresTaken: "Keys rotated.",
            scope: [{ tenantId: tenant.tenant.id, window: { from, to }, categories: [] }],
          }),
        }),
      );
      // Progress is read from the part itself (a point read, every 100 ms); the counts of sent notices from the API
      // every 5 s (it sums the batches: a query over the partition, which the local Cosmos server answers by a scan).
      const breaches = cosmos.database("safedata").container("breaches");
      const part = async (): Promise<StoredPart | undefined> => (await breaches.item(breach.id, tenant.tenant.id).read<StoredPart>()).resource;
      const read = async () => {
        const res = await api("GET", `v1/breaches/${breach.id}/persons`);
        return res.status === 404 ? null : json<PersonsView>(res);
      };
      const resolvedPart = await until("the resolution", part, (v) => v?.persons?.resolution.status === "done", 3_600_000);
      const resolveSeconds = (Date.now() - r0) / 1000;
      const resolved = resolvedPart!.persons!;
      opts.log(`breach persons ${persons}: resolved ${resolved.resolution.persons} in ${resolveSeconds.toFixed(1)} s (enumeration ${enumerateSeconds.toFixed(2)} s); notifying`);

      const n0 = Date.now();
      await json(await api("POST", `v1/breaches/${breach.id}/notify-persons`));
      await until("the fan-out", part, (v) => v?.persons?.notify?.queuedAt != null, 3_600_000);
      const queuedSeconds = (Date.now() - n0) / 1000;
      opts.log(`breach persons ${persons}: all ${resolved.resolution.batches} batches queued in ${queuedSeconds.toFixed(1)} s; sending`);
      const last = await until("every notice", read, (v) => v !== null && v.notices !== null && v.notices.pending === 0, 3 * 3_600_000, 5000);
      const sendSeconds = (Date.now() - n0) / 1000;
      const mem = sampler.stop();
      const rssPeak = Math.max(mem.max, 0);
      const run: BreachPersonsRun = {
        persons,
        uploads,
        createSeconds,
        enumerateSeconds,
        enumerated: hashes.size,
        resolveSeconds,
        resolvedPersons: resolved.resolution.persons,
        batches: resolved.resolution.batches,
        queuedSeconds,
        sendSeconds,
        sent: last!.notices!.sent,
        failed: last!.notices!.failed,
        mailsPerSecond: last!.notices!.sent / sendSeconds,
        rssBefore,
        rssPeak,
        failedSteps: failedStepsIn(rt.output()) - failedBefore,
      };
      opts.log(`breach persons ${persons}: ${JSON.stringify(run)}`);
      runs.push(run);
    }
  } catch (err) {
    opts.log(`failed; the runtime's last output:\n${rt.output().slice(-6000)}`);
    throw err;
  } finally {
    // The runtime's whole output, for looking into a slow or failed run afterwards.
    const logPath = path.join(os.tmpdir(), "safedata-bench-breach-persons-runtime.log");
    writeFileSync(logPath, rt.output());
    opts.log(`the runtime's output is in ${logPath}`);
    cosmos.dispose();
    await rt.stop();
  }
  return runs;
}

const MB = 1e6;

export function renderBreachPersonResults(runs: BreachPersonsRun[], info: { startedAt: Date; durationSeconds: number }): string {
  const rows = runs.map(
    (r) =>
      `| ${r.persons.toLocaleString("en")} | ${r.uploads} | ${r.enumerateSeconds.toFixed(2)} | ${r.resolveSeconds.toFixed(1)} | ${(r.resolveSeconds / r.enumerateSeconds).toFixed(0)} | ` +
      `${r.queuedSeconds.toFixed(1)} | ${r.sendSeconds.toFixed(0)} | ${r.mailsPerSecond.toFixed(0)} | ${r.sent.toLocaleString("en")} / ${r.failed} | ${(r.rssBefore / MB).toFixed(0)} | ${(r.rssPeak / MB).toFixed(0)} | ${r.failedSteps} |`,
  );
  return [
    "## Breach notices to persons",
    "",
    "Produced by `node dist/bench/breach-persons.js` (after `npm run build`); issue 21. One runtime as `npm start` runs it",
    "(its own process; embedded storage in a child process), the send rate unlimited (`EMAIL_SENDS_PER_MINUTE` and",
    "`EMAIL_SENDS_PER_HOUR` set to 10^9). Per size: N/100 uploads created through the API, each naming 99 data subjects and",
    "one recipient (all distinct); a breach scoped to their time window; then `POST .../notify-persons`. The baseline is a",
    "plain enumeration of the same uploads (id and keyed hashes, pages of 20 by continuation token) by the benchmark's own",
    "process against the same Cosmos server, in the same run. Times are wall-clock seconds from the API call until the",
    "part shows the resolution done or every batch queued (read every 100 ms), or GET .../persons shows nothing pending",
    "(every 5 s); memory is the runtime process's resident set size; failed steps are breach-jobs queue steps that failed and",
    "were retried (the runtime's whole output is left in the temporary folder, safedata-bench-breach-persons-runtime.log).",
    "",
    `- Date: ${info.startedAt.toISOString()} (the benchmark took ${info.durationSeconds.toFixed(0)} s)`,
    `- ${machineLine()}`,
    "",
    "| persons | uploads | plain enumeration, s | resolution, s | ratio | all notices queued, s | all e-mails in the outbox, s | e-mails/s | sent / failed | RSS before, MB | peak RSS, MB | failed steps |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    "The resolution reads the uploads a page of 20 at a time (one queue message each), writes one document per person",
    "and one per batch of 100; the fan-out queues one message per batch; each batch's worker reads its persons, decrypts",
    "their records' addresses, and for each person renders the notice, writes it to the outbox (two blobs, and the .eml",
    "file `npm start` writes) and records it sent. The ratio compares the resolution with reading the same uploads once.",
    "",
  ].join("\n");
}

/** RESULTS.md with the section replaced (from its heading to the next level-2 heading, or the end), or appended. */
export function withBreachPersonsSection(markdown: string, section: string): string {
  return withSection(markdown, "## Breach notices to persons", section);
}

/** The numbers of persons to run (BENCH_BREACH_PERSONS, comma-separated; default 10,000 and 100,000). */
export function breachPersonSizes(): number[] {
  return (process.env.BENCH_BREACH_PERSONS ?? "10000,100000").split(",").map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

async function main(): Promise<void> {
  const root = path.resolve(__dirname, "../..");
  const resultsPath = path.join(root, "bench/RESULTS.md");
  const custom = process.env.BENCH_BREACH_PERSONS;
  const sizes = breachPersonSizes();
  const startedAt = new Date();
  const log = (line: string) => console.log(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1).padStart(6)} s] ${line}`);
  const runs = await benchBreachPersons({ root, sizes, log });
  const section = renderBreachPersonResults(runs, { startedAt, durationSeconds: (Date.now() - startedAt.getTime()) / 1000 });
  if (custom === undefined) {
    writeFileSync(resultsPath, withBreachPersonsSection(readFileSync(resultsPath, "utf8"), section));
    log(`replaced the breach-persons section of ${path.relative(process.cwd(), resultsPath)}`);
  }
  console.log("\n" + section);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
