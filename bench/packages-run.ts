/**
 * The access-package benchmark alone (bench/packages.ts): `npm run build && node dist/bench/packages-run.js`. Replaces
 * only the "Access packages" section of bench/RESULTS.md (the others stay as their last run left them). Option:
 * BENCH_PACKAGE_ROUNDS (default 2; keep it even, so that the package and its baseline each go first equally often);
 * another value prints the results instead of writing them.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { benchPackages, renderPackageResults, withPackageSection } from "./packages";

const root = path.resolve(__dirname, "../..");
const resultsPath = path.join(root, "bench/RESULTS.md");

async function main(): Promise<void> {
  const rounds = Number(process.env.BENCH_PACKAGE_ROUNDS ?? "2");
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error("BENCH_PACKAGE_ROUNDS must be a positive integer");
  const startedAt = new Date();
  const log = (line: string) => console.log(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const result = await benchPackages({ root, rounds, log });
  const section = renderPackageResults(result, { startedAt, durationSeconds: (Date.now() - startedAt.getTime()) / 1000 });
  if (rounds === 2) {
    writeFileSync(resultsPath, withPackageSection(readFileSync(resultsPath, "utf8"), section));
    log(`replaced the access-package section of ${path.relative(process.cwd(), resultsPath)}`);
  }
  console.log("\n" + section);
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
