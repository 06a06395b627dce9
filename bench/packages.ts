/**
 * Access packages through the local runtime (as `npm start` runs it, in its own process): the time from vouching for
 * the person to the request showing `completed` (the package built as a zip stream into encrypted storage, the
 * e-mails sent), and the runtime's peak memory meanwhile, for
 *
 * - a person named in 1,000 uploads without content (metadata only), against reading the same 1,000 uploads'
 *   metadata through the API (`GET /v1/uploads/{id}`, 8 at a time) in the same run;
 * - a person who is the data subject of 100 uploads of 1 MiB (content included), against downloading the same 100
 *   contents through the API (`GET /v1/uploads/{id}/content`, one after another) in the same run;
 * - the same with 10 uploads of 1 MiB, to show that memory does not grow with the number and size of uploads.
 *
 * Rounds alternate the package and its baseline, so drift on the machine hits both alike.
 */
import { randomBytes } from "node:crypto";
import { startRuntime, type RuntimeProcess } from "./runtime-process";
import { memoryOf, RssSampler } from "./proc";
import { machineLine, withSection } from "./report";
import { summarize, type Summary } from "./stats";

export interface PackageCase {
  name: string;
  uploads: number;
  bytesEach: number;
  /** Milliseconds from vouching to `completed`, per round. */
  packageMs: number[];
  /** Milliseconds of the baseline (the same content read through the API), per round. */
  baselineMs: number[];
  baseline: string;
  /** Whether the ratio has a goal (the two cases). */
  goal: boolean;
  /** Runtime peak RSS sampled while the package was built, bytes, per round. */
  peakRss: number[];
  /** Runtime RSS just before, bytes, per round. */
  rssBefore: number[];
  /** The zip's size, bytes. */
  zipBytes: number;
}

export interface PackageBenchResult {
  rounds: number;
  cases: PackageCase[];
  startRss: number;
}

const privacyTexts = { purposes: "p", categories: "c", recipients: "r", retention: "d", rights: "e", complaint: "f", source: "g", automatedDecisions: "h" };

async function ok<T>(res: Response, status = 200): Promise<T> {
  if (res.status !== status) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Runs `n` calls `concurrency` at a time. */
async function pool(n: number, concurrency: number, call: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < n; i = next++) await call(i);
  }));
}

export async function benchPackages(opts: { root: string; log: (line: string) => void; rounds?: number }): Promise<PackageBenchResult> {
  const rounds = opts.rounds ?? 2;
  const rt: RuntimeProcess = await startRuntime({ root: opts.root });
  try {
    const created = await ok<{ tenant: { id: string }; apiKey: string }>(
      await fetch(`${rt.apiUrl}/v1/admin/tenants`, {
        method: "POST",
        headers: { authorization: `Bearer ${rt.adminKey}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "Package bench", contactEmail: "dpo@bench.example", supervisoryAuthority: { country: "DK" } }),
      }),
      201,
    );
    const headers = { authorization: `Bearer ${created.apiKey}`, "content-type": "application/json" };
    const call = (method: string, route: string, body?: unknown) => fetch(`${rt.apiUrl}/${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    await ok(await call("PUT", "v1/privacy-information", { en: privacyTexts, da: privacyTexts }), 201);
    const startRss = memoryOf(rt.pid).rss;

    /** Uploads naming `email`, with `bytes` of content each (none when 0). */
    async function uploadsFor(email: string, count: number, bytes: number): Promise<string[]> {
      const ids: string[] = new Array<string>(count);
      await pool(count, 8, async (i) => {
        const up = await ok<{ id: string }>(
          await call("POST", "v1/uploads", { senderReference: `bench-${i}`, recipients: ["r@bench.example"], dataSubjects: [email], categories: ["contact"], fileName: `file-${i}.bin`, contentType: "application/octet-stream", size: bytes }),
          201,
        );
        ids[i] = up.id;
        if (bytes > 0) {
          const res = await fetch(`${rt.apiUrl}/v1/uploads/${up.id}/content`, { method: "PUT", headers: { authorization: headers.authorization, "content-type": "application/octet-stream" }, body: randomBytes(bytes) });
          if (res.status !== 200) throw new Error(`put ${res.status} ${await res.text()}`);
          await res.arrayBuffer();
        }
      });
      return ids;
    }

    /** One access request for `email`, vouched for; ms until completed, the runtime's peak RSS meanwhile, the zip's size. */
    async function packageOnce(email: string): Promise<{ ms: number; peak: number; before: number; zipBytes: number }> {
      // The last round's request releases its open-request mark as it closes: until then the same request comes back (200).
      let r: { id: string } | undefined;
      for (let tries = 0; !r; tries++) {
        const res = await call("POST", "v1/subject-requests", { type: "access", subjectEmail: email });
        if (res.status === 201) r = (await res.json()) as { id: string };
        else if (res.status !== 200 || tries > 200) throw new Error(`create ${res.status} ${await res.text()}`);
        else await new Promise((done) => setTimeout(done, 25));
      }
      const before = memoryOf(rt.pid).rss;
      const sampler = new RssSampler(rt.pid).start();
      const t0 = performance.now();
      await ok(await call("POST", `v1/subject-requests/${r.id}/vouch`, { statement: "bench" }));
      for (;;) {
        const doc = await ok<{ status: string; attention: { reason: string } | null }>(await call("GET", `v1/subject-requests/${r.id}`));
        if (doc.status === "completed") break;
        if (doc.status === "needs-attention") throw new Error(`the request needs attention: ${doc.attention?.reason}`);
        await new Promise((res) => setTimeout(res, 25));
      }
      const ms = performance.now() - t0;
      const { max } = sampler.stop();
      const pkg = await ok<{ size: number }>(await call("GET", `v1/subject-requests/${r.id}/package`));
      return { ms, peak: max, before, zipBytes: pkg.size };
    }

    const cases: PackageCase[] = [];
    const specs = [
      { name: "1,000 uploads, metadata only", uploads: 1000, bytesEach: 0, baseline: "GET metadata of the same 1,000 uploads, 8 at a time", goal: true },
      { name: "100 uploads of 1 MiB, with content", uploads: 100, bytesEach: 2 ** 20, baseline: "GET content of the same 100 uploads, one after another", goal: true },
      { name: "10 uploads of 1 MiB, with content", uploads: 10, bytesEach: 2 ** 20, baseline: "GET content of the same 10 uploads, one after another", goal: false },
    ];
    for (const spec of specs) {
      const email = `bench.${spec.uploads}.${spec.bytesEach}@bench.example`;
      opts.log(`packages: ${spec.name}: creating the uploads`);
      const ids = await uploadsFor(email, spec.uploads, spec.bytesEach);
      const c: PackageCase = { ...spec, packageMs: [], baselineMs: [], peakRss: [], rssBefore: [], zipBytes: 0 };
      const baselineOnce = async () => {
        const t0 = performance.now();
        if (spec.bytesEach === 0) {
          await pool(ids.length, 8, async (i) => void (await ok(await call("GET", `v1/uploads/${ids[i]}`))));
        } else {
          for (const id of ids) {
            const res = await call("GET", `v1/uploads/${id}/content`);
            if (res.status !== 200) throw new Error(`download ${res.status}`);
            await res.arrayBuffer();
          }
        }
        return performance.now() - t0;
      };
      for (let round = 0; round < rounds; round++) {
        const first = round % 2 === 0;
        if (!first) c.baselineMs.push(await baselineOnce());
        const p = await packageOnce(email);
        c.packageMs.push(p.ms);
        c.peakRss.push(p.peak);
        c.rssBefore.push(p.before);
        c.zipBytes = p.zipBytes;
        if (first) c.baselineMs.push(await baselineOnce());
        opts.log(`packages: ${spec.name}: package ${p.ms.toFixed(0)} ms (peak RSS ${(p.peak / 1e6).toFixed(0)} MB), baseline ${c.baselineMs.at(-1)!.toFixed(0)} ms`);
      }
      cases.push(c);
    }
    return { rounds, cases, startRss };
  } catch (err) {
    opts.log(`packages: failed; the runtime's last output lines:\n${rt.output().split("\n").filter((l) => /error|fail|warn/i.test(l)).slice(-15).join("\n")}`);
    throw err;
  } finally {
    await rt.stop();
  }
}

const fmt = (s: Summary, digits = 0) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}, n=${s.n})`;
const mb = (bytes: number) => (bytes / 1e6).toFixed(0);
/** How much the runtime's RSS rose above what it held just before, per round. */
const growth = (c: PackageCase) => c.peakRss.map((p, i) => Math.max(0, p - c.rssBefore[i]!));

/** The access-package section of bench/RESULTS.md. */
export function renderPackageResults(r: PackageBenchResult, info: { startedAt: Date; durationSeconds: number }): string {
  const met = (ok: boolean) => (ok ? "met" : "**missed**");
  const rows = r.cases.map((c) => {
    const pkg = summarize(c.packageMs);
    const base = summarize(c.baselineMs);
    const ratio = pkg.median / base.median;
    const goal = c.goal ? `| ≤ 2 | ${met(ratio <= 2)}` : "| none (memory) |";
    return `| ${c.name} | ${fmt(pkg)} | ${c.baseline}: ${fmt(base)} | ${ratio.toFixed(2)} ${goal} | ${mb(Math.max(...growth(c)))} (${mb(Math.max(...c.peakRss))}) | ${(c.zipBytes / 1e6).toFixed(1)} |`;
  });
  const worst = Math.max(...r.cases.flatMap(growth));
  const lines = [
    "## Access packages: time to completed and memory, against reading the same content through the API",
    "",
    `- Date: ${info.startedAt.toISOString()} (this part took ${info.durationSeconds.toFixed(0)} s), in a fresh service`,
    `- Machine: ${machineLine()}`,
    "",
    "Each round records an access request, vouches for the person, and polls the request every 25 ms until it shows",
    "`completed`: the work queue's check, the zip (data.json, index.html, files/) streamed through the encryptor into",
    "Blob Storage, the e-mails to the person and the tenant. The baseline, in the same round (alternating which goes",
    "first), reads the same uploads through the API. Memory is the runtime process's RSS, sampled every 20 ms while",
    `the package was built, as its rise above the RSS just before (the runtime held ${mb(r.startRss)} MB once the tenant existed).`,
    "",
    "| person | ms to completed | baseline, ms | ratio | goal | | runtime RSS growth (peak), MB | zip, MB |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `Memory flat in the number and size of uploads: while a package was built the runtime's RSS rose at most ${mb(worst)} MB above what it held just`,
    `before (${met(worst < 50e6)}: goal < 50 MB whatever went in, from 1,000 metadata entries to 100 MiB of content; the zip is never held whole).`,
    "The 10-upload case is there for memory; its time is mostly the queue hops of the request's five steps, which do",
    "not grow with the package (the goal of at most twice the download time is the issue's, for the two large cases).",
    "",
    "Every sample, in the order taken:",
    "",
    ...r.cases.map((c) => `- ${c.name}: package ms ${c.packageMs.map((x) => x.toFixed(0)).join(", ")}; baseline ms ${c.baselineMs.map((x) => x.toFixed(0)).join(", ")}; peak RSS MB ${c.peakRss.map(mb).join(", ")}`),
    "",
  ];
  return lines.join("\n");
}

const HEADING = "## Access packages";

/** `markdown` with the access-package section (to the next level-2 heading, or the end) replaced, or appended. */
export function withPackageSection(markdown: string, section: string): string {
  return withSection(markdown, HEADING, section);
}
