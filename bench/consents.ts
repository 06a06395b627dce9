/**
 * Consent records through the local runtime (as `npm start` runs it, in its own process):
 *
 * 1. Recording: 50 concurrent clients each POST /v1/consents one after another (a new subject each time, with IP
 *    address, user agent and page URL), all into one tenant, and spread over 50 tenants (one per client). The
 *    baseline, measured in the same run from the same 50 clients in the benchmark's process: a plain Cosmos upsert of
 *    a document the size of a stored consent event into the same embedded Cosmos server. Each round runs the baseline
 *    first, then the two recordings, which take turns going first (the container grows as they record). Requests per second over the round's wall
 *    time, each request's latency (p50, p99), and the CPU time the service, the embedded storage and the clients
 *    used per request (what bounds the rate on a 2-core machine).
 * 2. Scaling (in a fresh service of its own): one subject's state (POST /consents/search) and proof (POST
 *    /consents/proof) timed with no other events in its tenant, then again after 10,000 events of other subjects were
 *    added to the same tenant (copies of a recorded event, each with its own subject id, written straight to Cosmos:
 *    the event documents a subject's reads must not touch), beside a query that matches nothing (what the local
 *    Cosmos server's scan alone costs).
 */
import { randomBytes, randomUUID } from "node:crypto";
import path from "node:path";
import { CosmosClient, type Container } from "@azure/cosmos";
import { startRuntime, type RuntimeProcess } from "./runtime-process";
import { cpuSecondsOf } from "./proc";
import { machineLine } from "./report";
import { median, summarize, type Summary } from "./stats";

export interface LoadRun {
  requests: number;
  seconds: number;
  perSecond: number;
  latencyMs: number[];
  /** CPU seconds each process used during the run: the service (runtime), the embedded storage, and this benchmark's clients. */
  cpu?: { runtime: number; storage: number; clients: number };
}

export interface ConsentBenchResult {
  clients: number;
  requestsPerClient: number;
  rounds: number;
  /** Bytes of the JSON of a stored event (what the baseline upserts). */
  eventDocBytes: number;
  baseline: LoadRun[];
  oneTenant: LoadRun[];
  manyTenants: LoadRun[];
  otherEvents: number;
  /** Milliseconds per call, for the measured subject, before and after the other events were added. */
  state: { before: number[]; after: number[] };
  proof: { before: number[]; after: number[] };
  /** Milliseconds of one query of the tenant's partition that matches nothing, sent straight to Cosmos (what the local server's scan costs). */
  scan: { before: number[]; after: number[] };
}

const CLIENTS = 50;

async function json<T>(res: Response): Promise<T> {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** `run`, with the CPU seconds the service, the storage and this process used meanwhile. */
async function withCpu(rt: RuntimeProcess, run: () => Promise<LoadRun>): Promise<LoadRun> {
  const before = { runtime: cpuSecondsOf(rt.pid), storage: cpuSecondsOf(rt.storagePid), clients: process.cpuUsage() };
  const out = await run();
  const clients = process.cpuUsage(before.clients);
  return { ...out, cpu: { runtime: cpuSecondsOf(rt.pid) - before.runtime, storage: cpuSecondsOf(rt.storagePid) - before.storage, clients: (clients.user + clients.system) / 1e6 } };
}

/** Runs `clients` loops of `perClient` calls of `call(client, i)` at once; the wall time and every call's latency. */
async function load(clients: number, perClient: number, call: (client: number, i: number) => Promise<void>): Promise<LoadRun> {
  const latencyMs: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < perClient; i++) {
        const t0 = performance.now();
        await call(c, i);
        latencyMs.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { requests: clients * perClient, seconds, perSecond: (clients * perClient) / seconds, latencyMs };
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function timed(n: number, call: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    out.push(performance.now() - t0);
  }
  return out;
}

interface Tenant {
  id: string;
  key: string;
}

async function tenantWithPurpose(rt: RuntimeProcess, i: number): Promise<Tenant> {
  const admin = { authorization: `Bearer ${rt.adminKey}`, "content-type": "application/json" };
  const created = await json<{ tenant: { id: string }; apiKey: string }>(
    await fetch(`${rt.apiUrl}/v1/admin/tenants`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: `Consent bench ${i}`, contactEmail: `dpo${i}@bench.example`, supervisoryAuthority: { country: "DK" } }),
    }),
  );
  const headers = { authorization: `Bearer ${created.apiKey}`, "content-type": "application/json" };
  await json(await fetch(`${rt.apiUrl}/v1/purposes`, { method: "POST", headers, body: JSON.stringify({ key: "newsletter", description: "News by e-mail", legalBasis: "consent" }) }));
  await json(await fetch(`${rt.apiUrl}/v1/purposes/newsletter/notices`, { method: "POST", headers, body: JSON.stringify({ language: "en", text: "We send you news by e-mail." }) }));
  return { id: created.tenant.id, key: created.apiKey };
}

const recordBody = (email: string, decision = "granted") =>
  JSON.stringify({
    email,
    purpose: "newsletter",
    noticeVersion: 1,
    decision,
    method: "click",
    requestOrigin: "banner",
    propertyId: "www.bench.example",
    pageUrl: "https://www.bench.example/signup?utm_source=bench",
    language: "en",
    ipAddress: "80.62.117.1",
    userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
  });

async function record(rt: RuntimeProcess, tenant: Tenant, email: string, decision = "granted"): Promise<void> {
  const res = await fetch(`${rt.apiUrl}/v1/consents`, { method: "POST", headers: { authorization: `Bearer ${tenant.key}`, "content-type": "application/json" }, body: recordBody(email, decision) });
  if (res.status !== 201) throw new Error(`record: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/** Copies of `template` for `count` other subjects in the same tenant, written `CLIENTS` at a time. */
async function addOtherEvents(container: Container, template: Record<string, unknown>, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      for (let i = next++; i < count; i = next++) {
        await container.items.create({ ...template, id: `ce-bench${String(i).padStart(8, "0")}`, subjectId: `cs-bench${String(i).padStart(8, "0")}`, subjectHash: randomBytes(32).toString("hex") });
      }
    }),
  );
}

export async function benchConsents(opts: { root: string; log: (line: string) => void; requestsPerClient?: number; rounds?: number; otherEvents?: number }): Promise<ConsentBenchResult> {
  const perClient = opts.requestsPerClient ?? 10;
  const rounds = opts.rounds ?? 2;
  const otherEvents = opts.otherEvents ?? 10_000;
  const result: ConsentBenchResult = {
    clients: CLIENTS,
    requestsPerClient: perClient,
    rounds,
    eventDocBytes: 0,
    baseline: [],
    oneTenant: [],
    manyTenants: [],
    otherEvents,
    state: { before: [], after: [] },
    proof: { before: [], after: [] },
    scan: { before: [], after: [] },
  };
  // Each part in a fresh service: the local Cosmos server's queries cost more as a container grows (see the report).
  await withRuntime(opts, (rt, consents) => benchReads(rt, consents, result, opts.log));
  await withRuntime(opts, (rt, consents) => benchRecording(rt, consents, result, opts.log));
  return result;
}

async function withRuntime(opts: { root: string; log: (line: string) => void }, work: (rt: RuntimeProcess, consents: Container) => Promise<void>): Promise<void> {
  // BENCH_CPU_PROF (see run.ts): the service writes a CPU profile there when it stops, one per part.
  const profileDir = process.env.BENCH_CPU_PROF;
  const rt = await startRuntime({ root: opts.root, nodeArgs: profileDir ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(profileDir)}`] : undefined });
  const cosmos = new CosmosClient({ connectionString: rt.cosmosConnectionString, connectionPolicy: { enableEndpointDiscovery: false } });
  try {
    await work(rt, cosmos.database("safedata").container("consents"));
  } catch (err) {
    opts.log(`consents: failed; the runtime's last output lines:\n${rt.output().split("\n").filter((l) => /error|fail|warn/i.test(l)).slice(-15).join("\n")}`);
    throw err;
  } finally {
    cosmos.dispose();
    await rt.stop();
  }
}

/** One subject's state and proof, with no other events in its tenant and with `otherEvents` of other subjects. */
async function benchReads(rt: RuntimeProcess, consents: Container, result: ConsentBenchResult, log: (line: string) => void): Promise<void> {
  const measured = await tenantWithPurpose(rt, 0);
  const email = "measured.subject@bench.example";
  await record(rt, measured, email, "granted");
  await record(rt, measured, email, "withdrawn");
  await record(rt, measured, email, "granted");
  const headers = { authorization: `Bearer ${measured.key}`, "content-type": "application/json" };
  const search = async () => void (await json(await fetch(`${rt.apiUrl}/v1/consents/search`, { method: "POST", headers, body: JSON.stringify({ email }) })));
  const proof = async () => void (await json(await fetch(`${rt.apiUrl}/v1/consents/proof`, { method: "POST", headers, body: JSON.stringify({ email, purpose: "newsletter" }) })));
  const scan = async () =>
    void (await consents.items
      .query({ query: "SELECT c.id FROM c WHERE c.tenantId = @t AND c.type = 'consent-event' AND c.subjectId = 'cs-none'", parameters: [{ name: "@t", value: measured.id }] }, { partitionKey: measured.id })
      .fetchAll());
  const SAMPLES = 10;
  await timed(3, search);
  await timed(3, proof);
  result.state.before = await timed(SAMPLES, search);
  result.proof.before = await timed(SAMPLES, proof);
  result.scan.before = await timed(SAMPLES, scan);
  log(`consents: state ${median(result.state.before).toFixed(1)} ms, proof ${median(result.proof.before).toFixed(1)} ms; adding ${result.otherEvents} events of other subjects`);
  const { resources } = await consents.items.query({ query: "SELECT TOP 1 * FROM c WHERE c.type = 'consent-event' AND c.tenantId = @t", parameters: [{ name: "@t", value: measured.id }] }).fetchAll();
  const template = Object.fromEntries(Object.entries(resources[0] as Record<string, unknown>).filter(([k]) => !k.startsWith("_")));
  await addOtherEvents(consents, template, result.otherEvents);
  await timed(1, search);
  result.state.after = await timed(SAMPLES, search);
  result.proof.after = await timed(SAMPLES, proof);
  result.scan.after = await timed(SAMPLES, scan);
  log(`consents: with ${result.otherEvents} other events: state ${median(result.state.after).toFixed(1)} ms, proof ${median(result.proof.after).toFixed(1)} ms`);
}

/** Recording from 50 clients into one tenant and into 50, against the baseline upsert. */
async function benchRecording(rt: RuntimeProcess, consents: Container, result: ConsentBenchResult, log: (line: string) => void): Promise<void> {
  log(`consents: creating ${CLIENTS} tenants`);
  const tenants: Tenant[] = [];
  for (let i = 0; i < CLIENTS; i++) tenants.push(await tenantWithPurpose(rt, i));
  // Warm-up (connections, JIT, first-time key and setting reads), and the stored event's size for the baseline.
  await load(CLIENTS, 1, (c, i) => record(rt, tenants[c]!, `warm.${c}.${i}@bench.example`));
  const { resources } = await consents.items.query({ query: "SELECT TOP 1 * FROM c WHERE c.type = 'consent-event' AND c.tenantId = @t", parameters: [{ name: "@t", value: tenants[0]!.id }] }).fetchAll();
  result.eventDocBytes = Buffer.byteLength(JSON.stringify(Object.fromEntries(Object.entries(resources[0] as Record<string, unknown>).filter(([k]) => !k.startsWith("_")))));
  const filler = "x".repeat(Math.max(0, result.eventDocBytes - 120));
  const baselineTenant = `bench-baseline-${randomUUID()}`;
  for (let round = 0; round < result.rounds; round++) {
    const base = await withCpu(rt, () =>
      load(CLIENTS, result.requestsPerClient, async () => {
        await consents.items.upsert({ id: randomUUID(), tenantId: baselineTenant, type: "bench-baseline", filler });
      }),
    );
    result.baseline.push(base);
    log(`consents round ${round + 1}: baseline upsert ${base.perSecond.toFixed(0)}/s`);
    // Every recording adds to the container, and the local Cosmos server's queries slow down as it grows, so the
    // two take turns going first.
    const one = async () => {
      const run = await withCpu(rt, () => load(CLIENTS, result.requestsPerClient, (c, i) => record(rt, tenants[0]!, `one.${round}.${c}.${i}@bench.example`)));
      result.oneTenant.push(run);
      log(`consents round ${round + 1}: one tenant ${run.perSecond.toFixed(0)}/s`);
    };
    const many = async () => {
      const run = await withCpu(rt, () => load(CLIENTS, result.requestsPerClient, (c, i) => record(rt, tenants[c]!, `many.${round}.${c}.${i}@bench.example`)));
      result.manyTenants.push(run);
      log(`consents round ${round + 1}: ${CLIENTS} tenants ${run.perSecond.toFixed(0)}/s`);
    };
    if (round % 2 === 0) {
      await one();
      await many();
    } else {
      await many();
      await one();
    }
  }
}

const cpuText = (x: LoadRun) => (x.cpu ? `${x.cpu.runtime.toFixed(1)} / ${x.cpu.storage.toFixed(1)} / ${x.cpu.clients.toFixed(1)}` : "—");
const fmt = (s: Summary, digits = 0) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}, n=${s.n})`;
const all = (runs: LoadRun[]) => runs.flatMap((r) => r.latencyMs);

/** The consent section of bench/RESULTS.md. */
export function renderConsentResults(r: ConsentBenchResult, info: { startedAt: Date; durationSeconds: number }): string {
  const rate = { base: summarize(r.baseline.map((x) => x.perSecond)), one: summarize(r.oneTenant.map((x) => x.perSecond)), many: summarize(r.manyTenants.map((x) => x.perSecond)) };
  const lat = (runs: LoadRun[]) => `${percentile(all(runs), 50).toFixed(1)} / ${percentile(all(runs), 99).toFixed(1)}`;
  const ratioOne = rate.one.median / rate.base.median;
  const ratioMany = rate.many.median / rate.base.median;
  const state = { before: summarize(r.state.before), after: summarize(r.state.after) };
  const proof = { before: summarize(r.proof.before), after: summarize(r.proof.after) };
  const scan = { before: summarize(r.scan.before), after: summarize(r.scan.after) };
  const met = (ok: boolean) => (ok ? "met" : "**missed**");
  const cpuMs = (runs: LoadRun[], part: "runtime" | "storage" | "clients") => {
    const withCpuRuns = runs.filter((x) => x.cpu);
    const requests = withCpuRuns.reduce((n, x) => n + x.requests, 0);
    return requests === 0 ? "—" : ((withCpuRuns.reduce((n, x) => n + x.cpu![part], 0) * 1000) / requests).toFixed(2);
  };
  const cpuRow = (label: string, runs: LoadRun[]) => {
    const total = (["runtime", "storage", "clients"] as const).map((p) => Number(cpuMs(runs, p))).reduce((a, b) => a + b, 0);
    return `| ${label} | ${cpuMs(runs, "runtime")} | ${cpuMs(runs, "storage")} | ${cpuMs(runs, "clients")} | ${total.toFixed(2)} | ${Number.isFinite(total) && total > 0 ? (2000 / total).toFixed(0) : "—"} |`;
  };
  const lines = [
    "## Consent records: recording under load, and one subject's reads in a large tenant",
    "",
    `- Date: ${info.startedAt.toISOString()} (this part took ${info.durationSeconds.toFixed(0)} s), in a fresh service`,
    `- Machine: ${machineLine()}`,
    "",
    `${r.clients} concurrent clients, each sending ${r.requestsPerClient} requests one after another per round, ${r.rounds} rounds; each round`,
    "runs the baseline, then recording into one tenant and recording spread over 50 tenants (one per client), which take turns going first. A",
    "recording is `POST /api/v1/consents` for a new subject with IP address, user agent and page URL: a keyed hash, a",
    "new subject key wrapped by the tenant's KEK, three encrypted fields, the event, its audit entry (the tenant's",
    `hash chain), the evidence clock. The baseline is a plain Cosmos \`upsert\` of a ${r.eventDocBytes}-byte document (the size of a stored`,
    "event) from the same 50 clients into the same embedded Cosmos server. Latency is per request, p50 / p99 over",
    "every request of every round.",
    "",
    "The local Cosmos server (`@vercel/cosmosdb-server`, in memory) keeps no indexes: every query reads every document",
    "of its container. A recording sends no query: it reads and writes by id (the purpose, the subject by its keyed",
    "hash, the settings, the event, the history's clock, which lists its events, the audit entry and the chain's head),",
    "about 11 to 14 point operations where the baseline makes one. Read the ratios as what this machine gives, not as",
    "what Azure would.",
    "",
    "| figure | requests/s | latency p50 / p99, ms | ratio to the baseline | goal | |",
    "|---|---|---|---|---|---|",
    `| plain Cosmos upsert (baseline) | ${fmt(rate.base)} | ${lat(r.baseline)} | 1 | | |`,
    `| recording, one tenant | ${fmt(rate.one)} | ${lat(r.oneTenant)} | ${ratioOne.toFixed(2)} | ≥ 0.50 | ${met(ratioOne >= 0.5)} |`,
    `| recording, 50 tenants | ${fmt(rate.many)} | ${lat(r.manyTenants)} | ${ratioMany.toFixed(2)} | ≥ 0.50 | ${met(ratioMany >= 0.5)} |`,
    "",
    "Where the time goes: CPU milliseconds per request of each process over every round (the service with its local",
    "Functions host; the embedded storage, Cosmos server and Azurite; this benchmark's 50 clients), and the requests per",
    "second the machine's 2 cores would allow if that CPU were all that limits them (2,000 ms / total).",
    "",
    "| figure | service | storage | clients | total | 2 cores allow, /s |",
    "|---|---|---|---|---|---|",
    cpuRow("plain Cosmos upsert (baseline)", r.baseline),
    cpuRow("recording, one tenant", r.oneTenant),
    cpuRow("recording, 50 tenants", r.manyTenants),
    "",
    `One subject (3 events) in a tenant of its own, in a fresh service: its state (\`POST /consents/search\`) and proof`,
    `(\`POST /consents/proof\`), ${r.state.before.length} calls each, before and after ${r.otherEvents.toLocaleString("en-US")} events of other subjects were added to the`,
    "same tenant (copies of one of its recorded events with other subject ids, written straight to Cosmos). The",
    "recording figures above come from another fresh service.",
    "",
    "| read | ms, no other events | ms, with other events | ratio | goal | |",
    "|---|---|---|---|---|---|",
    `| state | ${fmt(state.before, 1)} | ${fmt(state.after, 1)} | ${(state.after.median / state.before.median).toFixed(2)} | the same time (≤ 1.25) | ${met(state.after.median / state.before.median <= 1.25)} |`,
    `| proof | ${fmt(proof.before, 1)} | ${fmt(proof.after, 1)} | ${(proof.after.median / proof.before.median).toFixed(2)} | the same time (≤ 1.25) | ${met(proof.after.median / proof.before.median <= 1.25)} |`,
    `| context: one query of the tenant's partition matching nothing, straight to Cosmos | ${fmt(scan.before, 1)} | ${fmt(scan.after, 1)} | ${(scan.after.median / scan.before.median).toFixed(2)} | | |`,
    "",
    "The context row is what the local Cosmos server alone adds to every query once the other events are there. The",
    "state and the proof send none: the subject (by its keyed hash) lists its purposes, each purpose's clock its events,",
    "and those are read by id, so neither depends on the other subjects' events (a history of more than 100 events is",
    "read by one query instead).",
    "",
    "Every sample, in the order taken:",
    "",
    `- requests/s: baseline ${r.baseline.map((x) => x.perSecond.toFixed(0)).join(", ")}; one tenant ${r.oneTenant.map((x) => x.perSecond.toFixed(0)).join(", ")}; 50 tenants ${r.manyTenants.map((x) => x.perSecond.toFixed(0)).join(", ")}`,
    `- CPU seconds per run (service / storage / clients): baseline ${r.baseline.map(cpuText).join("; ")}; one tenant ${r.oneTenant.map(cpuText).join("; ")}; 50 tenants ${r.manyTenants.map(cpuText).join("; ")}`,
    `- state, ms: before ${r.state.before.map((x) => x.toFixed(1)).join(", ")}; after ${r.state.after.map((x) => x.toFixed(1)).join(", ")}`,
    `- proof, ms: before ${r.proof.before.map((x) => x.toFixed(1)).join(", ")}; after ${r.proof.after.map((x) => x.toFixed(1)).join(", ")}`,
    `- query matching nothing, ms: before ${r.scan.before.map((x) => x.toFixed(1)).join(", ")}; after ${r.scan.after.map((x) => x.toFixed(1)).join(", ")}`,
    "",
  ];
  return lines.join("\n");
}
