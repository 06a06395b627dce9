/**
 * `npm run bench`: runs the benchmarks and rewrites bench/RESULTS.md.
 *
 * Options (environment variables), for investigating; a run with any of them set prints its results instead of
 * rewriting RESULTS.md:
 * - BENCH_SIZE_MIB: payload size (default 1024)
 * - BENCH_RUNS: uploads per path (default 4; keep it even, so that each path goes first equally often)
 * - BENCH_DOWNLOADS: downloads per path after each upload (default 2)
 * - BENCH_CPU_PROF: a directory; the runtime process runs with --cpu-prof and writes its profile there on exit
 * - BENCH_QUIET_WAIT_S: at most this many seconds to wait for a quiet machine before each upload-path transfer
 *   (default 60; lower it to iterate on memory while other work runs, and read the throughput figures as disturbed)
 * - BENCH_RUNTIME_NODE_ARGS: extra node options for the upload path's runtime process, space-separated (e.g. a V8
 *   heap flag to try; `npm start` runs it without any; the embedded storage, forked by it, inherits them)
 * - BENCH_PURGE_ITEMS: comma-separated purge sizes (default 1000,10000); "0" skips the purge benchmark
 * - BENCH_ONLY=consents: runs only the consent benchmark and replaces only its section of RESULTS.md (the others
 *   stay as their last run left them); the breach notices to persons alone: `node dist/bench/breach-persons.js`
 * - BENCH_ONLY=upload: runs only the upload path (about 3 minutes) and replaces only the top of RESULTS.md, up to the
 *   purge section (with the other options at their defaults; otherwise it prints its results)
 * - BENCH_BREACH_PERSONS: comma-separated numbers of persons for the breach notices (default 10000,100000; about
 *   half an hour at 100,000, most of it sending through the local outbox)
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { benchBreachPersons, breachPersonSizes, renderBreachPersonResults, withBreachPersonsSection } from "./breach-persons";
import { benchConsents, renderConsentResults } from "./consents";
import { benchErasure, renderErasureResults, withErasureSection } from "./erasure";
import { benchPackages, renderPackageResults, withPackageSection } from "./packages";
import { benchPurge, type PurgeRun } from "./purge";
import { renderResults, withSection, withUploadSection } from "./report";
import { benchUploadPath } from "./upload-path";

const root = path.resolve(__dirname, "../..");
const resultsPath = path.join(root, "bench/RESULTS.md");
const CONSENT_HEADING = "## Consent records";

function intOption(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

async function main(): Promise<void> {
  const sizeMiB = intOption("BENCH_SIZE_MIB", 1024);
  const runs = intOption("BENCH_RUNS", 4);
  const downloadsPerRun = intOption("BENCH_DOWNLOADS", 2);
  const runtimeNodeArgs = (process.env.BENCH_RUNTIME_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const profileDir = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
  const standard = sizeMiB === 1024 && runs === 4 && downloadsPerRun === 2 && !profileDir && process.env.BENCH_PURGE_ITEMS === undefined && process.env.BENCH_BREACH_PERSONS === undefined && process.env.BENCH_QUIET_WAIT_S === undefined && runtimeNodeArgs.length === 0;

  const startedAt = new Date();
  const log = (line: string) => console.log(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  if (process.env.BENCH_ONLY === "consents") {
    const section = renderConsentResults(await benchConsents({ root, log }), { startedAt, durationSeconds: (Date.now() - startedAt.getTime()) / 1000 });
    writeFileSync(resultsPath, withSection(readFileSync(resultsPath, "utf8"), CONSENT_HEADING, section));
    log(`replaced the consent section of ${path.relative(process.cwd(), resultsPath)}`);
    console.log("\n" + section);
    return;
  }
  const uploadOnly = process.env.BENCH_ONLY === "upload";
  if (process.env.BENCH_ONLY !== undefined && process.env.BENCH_ONLY !== "" && !uploadOnly) throw new Error("BENCH_ONLY must be consents or upload");
  log(`upload path: ${sizeMiB} MiB, ${runs} uploads and ${runs * downloadsPerRun} downloads per path`);
  const result = await benchUploadPath({
    root,
    sizeBytes: sizeMiB * 2 ** 20,
    runs,
    downloadsPerRun,
    nodeArgs: [...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []), ...runtimeNodeArgs],
    quietWaitMs: process.env.BENCH_QUIET_WAIT_S ? intOption("BENCH_QUIET_WAIT_S", 60) * 1000 : undefined,
    log,
  });
  if (uploadOnly) {
    const command = "npm run build && BENCH_ONLY=upload node dist/bench/run.js";
    const section = renderResults(result, { startedAt, durationSeconds: (Date.now() - startedAt.getTime()) / 1000, command });
    if (standard) {
      writeFileSync(resultsPath, withUploadSection(readFileSync(resultsPath, "utf8"), section));
      log(`replaced the upload section of ${path.relative(process.cwd(), resultsPath)}`);
    } else {
      log(`non-standard options: ${path.relative(process.cwd(), resultsPath)} left as it was`);
    }
    if (profileDir) log(`CPU profiles of each run's runtime and embedded storage processes are in ${profileDir}`);
    console.log("\n" + section);
    return;
  }
  const purgeSizes = (process.env.BENCH_PURGE_ITEMS ?? "1000,10000")
    .split(",")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  const purge: PurgeRun[] = [];
  for (const items of purgeSizes) purge.push(await benchPurge({ root, items, log }));
  // Access and portability packages against reading the same uploads through the API (bench/packages.ts).
  const packagesStarted = new Date();
  const packageSection = renderPackageResults(await benchPackages({ root, log }), { startedAt: packagesStarted, durationSeconds: (Date.now() - packagesStarted.getTime()) / 1000 });
  // Data-subject erasure of one person with 1,000 uploads against the purge of 1,000 expired uploads (bench/erasure.ts).
  const erasureStarted = new Date();
  const erasure = await benchErasure({ root, uploads: 1000, rounds: 3, log });
  const erasureSection = renderErasureResults(erasure, { startedAt: erasureStarted, durationSeconds: (Date.now() - erasureStarted.getTime()) / 1000 });
  const consentsStarted = new Date();
  const consents = await benchConsents({ root, log });
  const consentSection = renderConsentResults(consents, { startedAt: consentsStarted, durationSeconds: (Date.now() - consentsStarted.getTime()) / 1000 });
  // Breach notices to persons: resolution and fan-out for 10,000 and 100,000 persons (bench/breach-persons.ts).
  const breachStarted = new Date();
  const breachRuns = await benchBreachPersons({ root, sizes: breachPersonSizes(), log });
  const breachSection = renderBreachPersonResults(breachRuns, { startedAt: breachStarted, durationSeconds: (Date.now() - breachStarted.getTime()) / 1000 });
  const base = renderResults(result, { startedAt, durationSeconds: (Date.now() - startedAt.getTime()) / 1000, command: "npm run bench" }, purge);
  const markdown = withBreachPersonsSection(withPackageSection(withErasureSection(withSection(base, CONSENT_HEADING, consentSection), erasureSection), packageSection), breachSection);
  if (standard) {
    writeFileSync(resultsPath, markdown);
    log(`wrote ${path.relative(process.cwd(), resultsPath)}`);
  } else {
    log(`non-standard options: ${path.relative(process.cwd(), resultsPath)} left as it was`);
  }
  if (profileDir) log(`CPU profiles of each run's runtime and embedded storage processes are in ${profileDir}`);
  console.log("\n" + markdown);
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
