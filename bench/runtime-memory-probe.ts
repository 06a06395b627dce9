/**
 * What the runtime's memory consists of, measured from inside it. Loaded into the runtime process with `--require`:
 *
 *   BENCH_MEMORY_PROBE=/tmp/probe.jsonl BENCH_RUNTIME_NODE_ARGS="--require ./dist/bench/runtime-memory-probe.js" \
 *     BENCH_ONLY=upload node dist/bench/run.js
 *
 * It samples `process.memoryUsage()` every 20 ms and, when the process exits, appends one JSON line to the file
 * BENCH_MEMORY_PROBE names: the largest value of each component over the process's life (MB), the components at the
 * moment of the largest RSS, V8's heap spaces at exit (size and used, MB), and how many garbage collections of each
 * kind ran (minor = scavenge, major = mark-compact). The embedded storage, forked by the runtime, inherits the
 * `--require` too; it is told apart by its script name and left alone. Sampling costs the runtime a few MB of its own.
 * For investigating only: no figure of RESULTS.md depends on it.
 */
import { appendFileSync } from "node:fs";
import { constants, PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";

const out = process.env.BENCH_MEMORY_PROBE;
const isRuntime = (process.argv[1] ?? "").endsWith("start.js");

if (out && isRuntime) {
  const MB = (n: number) => Math.round(n / 1e4) / 100;
  const peak: Record<string, number> = {};
  let atPeakRss: NodeJS.MemoryUsage | undefined;
  const sample = () => {
    const m = process.memoryUsage();
    for (const [k, v] of Object.entries(m)) peak[k] = Math.max(peak[k] ?? 0, v as number);
    if (!atPeakRss || m.rss > atPeakRss.rss) atPeakRss = m;
  };
  setInterval(sample, 20).unref();

  const kinds: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
    [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weak callbacks",
  };
  const collections: Record<string, number> = {};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      const kind = kinds[e.detail?.kind ?? -1] ?? "other";
      collections[kind] = (collections[kind] ?? 0) + 1;
    }
  }).observe({ entryTypes: ["gc"] });

  process.on("exit", () => {
    sample();
    const mb = (m: object) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, MB(v as number)]));
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: MB(s.space_size), used: MB(s.space_used_size) }]));
    appendFileSync(out, JSON.stringify({ pid: process.pid, peak: mb(peak), atPeakRss: mb(atPeakRss ?? {}), spaces, collections }) + "\n");
  });
}
