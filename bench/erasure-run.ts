/**
 * The erasure benchmark alone (bench/erasure.ts): `npm run build && node dist/bench/erasure-run.js`. Replaces only the
 * "Data-subject erasure" section of bench/RESULTS.md (the others stay as their last run left them). Option:
 * BENCH_ERASURE_UPLOADS (default 1000) and BENCH_ERASURE_ROUNDS (default 3); other values print the results instead of
 * writing them.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { benchErasure, renderErasureResults, withErasureSection } from "./erasure";

const root = path.resolve(__dirname, "../..");
const resultsPath = path.join(root, "bench/RESULTS.md");
async function main(): Promise<void> {
  const uploads = Number(process.env.BENCH_ERASURE_UPLOADS ?? "1000");
  if (!Number.isInteger(uploads) || uploads < 1) throw new Error("BENCH_ERASURE_UPLOADS must be a positive integer");
  const startedAt = new Date();
  const log = (line: string) => console.log(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const rounds = Number(process.env.BENCH_ERASURE_ROUNDS ?? "3");
  const result = await benchErasure({ root, uploads, rounds, log });
  const section = renderErasureResults(result, { startedAt, durationSeconds: (Date.now() - startedAt.getTime()) / 1000 });
  if (uploads === 1000 && rounds === 3) {
    writeFileSync(resultsPath, withErasureSection(readFileSync(resultsPath, "utf8"), section));
    log(`replaced the erasure section of ${path.relative(process.cwd(), resultsPath)}`);
  }
  console.log("\n" + section);
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
