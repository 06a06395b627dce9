/** Renders bench/RESULTS.md from a run's measurements. */
import os from "node:os";
import { median, summarize, type Summary } from "./stats";
import type { PurgeRun } from "./purge";
import type { CpuSample, UploadPathResult } from "./upload-path";

export interface RunInfo {
  startedAt: Date;
  durationSeconds: number;
  command: string;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(0);
const fmt = (s: Summary, digits = 0) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}, n=${s.n})`;
const met = (ok: boolean) => (ok ? "met" : "**missed**");

function sizeLabel(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return Number.isInteger(gib) ? `${gib} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/**
 * `markdown` (RESULTS.md) with the section that starts with `heading` (a level-2 heading, or its start) replaced by
 * `section`, up to the next level-2 heading or the end; appended when there is none. Each benchmark writes its own
 * section this way, so running one leaves the others as their last run left them.
 */
export function withSection(markdown: string, heading: string, section: string): string {
  const start = markdown.indexOf(heading);
  if (start < 0) return markdown.trimEnd() + "\n\n" + section;
  const next = markdown.indexOf("\n## ", start + 3);
  return markdown.slice(0, start) + section + (next < 0 ? "" : "\n" + markdown.slice(next + 1));
}

/** The heading of the first section after the upload path's (renderResults writes the purge section there). */
const PURGE_HEADING = "## Purge throughput";

/**
 * `markdown` (RESULTS.md) with its top, the introduction and the upload path's section (everything before the purge
 * section), replaced by `uploadSection` (renderResults without purge runs); the sections after it stay as they were.
 */
export function withUploadSection(markdown: string, uploadSection: string): string {
  const next = markdown.indexOf(`\n${PURGE_HEADING}`);
  return uploadSection.trimEnd() + "\n" + (next < 0 ? "" : markdown.slice(next));
}

export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus.length} CPUs (${cpus[0]?.model.trim() ?? "unknown"}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

export function renderResults(r: UploadPathResult, info: RunInfo, purge: PurgeRun[] = []): string {
  const size = sizeLabel(r.sizeBytes);
  const up = { service: summarize(r.uploadMBps.service), raw: summarize(r.uploadMBps.raw) };
  const down = {
    service: summarize(r.downloadMBps.service),
    raw: summarize(r.downloadMBps.raw),
    passthrough: summarize(r.downloadMBps.passthrough),
  };
  const ttfb = { service: summarize(r.ttfbMs.service), raw: summarize(r.ttfbMs.raw), passthrough: summarize(r.ttfbMs.passthrough) };
  const upRatio = up.service.median / up.raw.median;
  const downRatio = down.service.median / down.raw.median;
  const downVsProxy = down.service.median / down.passthrough.median;
  const proxyVsRaw = down.passthrough.median / down.raw.median;
  const peaks = r.memory.map((m) => Math.max(m.uploadMaxRss, m.hwmAfterUpload));
  const peak = Math.max(...peaks);
  const small = median(r.memory.map((m) => m.hwmBefore));
  const block = `${(r.bufferBytes / 2 ** 20).toFixed(0)} MiB × ${r.concurrency}`;

  const lines: string[] = [];
  const add = (...more: string[]) => lines.push(...more);
  add("# Benchmark results", "");
  const alone = info.command === "npm run bench" ? "each run replaces this file" : "the upload path alone, which replaces only this part of the file";
  add(`Produced by \`${info.command}\`; ${alone}. Each of the ${r.runs} runs starts the service afresh as`);
  add("`npm start` does (the runtime in its own process on free ports, with its own embedded Azurite and Cosmos server in a");
  add("child process), uploads through the service and directly to the same Azurite, downloads both, and stops it.");
  add("");
  add("How to read it: figures are medians with (min–max, number of samples). MB is 10^6 bytes. Each baseline is the same");
  add("work done directly with `@azure/storage-blob` against the same embedded Azurite, from the benchmark's own process");
  add("(except 2b, through a pass-through proxy; see below); the ratio is safedata's median over the baseline's. Service");
  add("and baseline transfers alternate so that drift on the machine hits both alike; in particular the first upload into a");
  add("fresh Azurite is the fastest, so each path goes first in half the runs. Every download is compared byte for byte");
  add("with what was sent. Memory is the runtime process only. The numbers depend on the machine and on what else runs on it (see \"other processes\" below);");
  add("compare runs on the same machine.");
  add("");
  add(`- Date: ${info.startedAt.toISOString()} (the benchmark took ${info.durationSeconds.toFixed(0)} s)`);
  add(`- Machine: ${machineLine()}`);
  add(
    `- Payload: ${size} (${mb(r.sizeBytes)} MB) of random bytes streamed from a generator; ${r.runs} uploads and ` +
      `${r.runs * r.downloadsPerRun} downloads per path`,
  );
  add(`- Upload settings (the service's, used for the baseline too): \`uploadStream\` with ${block} buffers`);
  add(
    `- Before each timed transfer the benchmark waited until the machine was idle (at most 60 s each): ` +
      `${r.waitedForQuietSeconds.toFixed(0)} s in all`,
  );
  add("");
  add(`## Upload path: ${size} through the local runtime`, "");
  add("| # | figure | safedata | baseline | ratio | goal | |");
  add("|---|---|---|---|---|---|---|");
  add(
    `| 1 | encrypted upload (PUT content), MB/s | ${fmt(up.service)} | raw \`uploadStream\`: ${fmt(up.raw)} | ` +
      `${upRatio.toFixed(2)} | ratio ≥ 0.80 | ${met(upRatio >= 0.8)} |`,
  );
  add(
    `| 2 | download + decrypt (GET content), MB/s | ${fmt(down.service)} | raw blob \`download\`: ${fmt(down.raw)} | ` +
      `${downRatio.toFixed(2)} | ratio ≥ 0.80 | ${met(downRatio >= 0.8)} |`,
  );
  add(
    `| 2b | download through a plain pass-through proxy (no decryption), MB/s | download + decrypt: ${fmt(down.service)} | ` +
      `pass-through: ${fmt(down.passthrough)} (${proxyVsRaw.toFixed(2)} of raw) | ${downVsProxy.toFixed(2)} | none (context for #2) | |`,
  );
  add(
    `| 3 | runtime peak RSS during the upload, MB | ${mb(peak)} (runs: ${peaks.map(mb).join(", ")}) | ` +
      `after a 32 MiB upload: ${mb(small)} | ${(peak / small).toFixed(2)} | < 200 MB | ${met(peak < 200e6)} |`,
  );
  add(
    `| 4 | time to first byte of a ${size} download, ms | ${fmt(ttfb.service, 1)} | raw blob \`download\`: ` +
      `${fmt(ttfb.raw, 1)} | ${(ttfb.service.median / ttfb.raw.median).toFixed(1)} | < 100 ms | ${met(ttfb.service.median < 100)} |`,
  );
  add("");
  add("Figure 3 is the highest of the runs' peaks; a run's peak is the larger of the highest VmRSS sampled every 20 ms");
  add("during its upload and the VmHWM right after it (only start-up and a 32 MiB warm-up upload ran before). Its");
  add("baseline is the VmHWM after that small upload: memory that does not grow with the size of the upload shows that");
  add("the content streams. Figure 4 is measured from sending the request to the first body byte.");

  add("The download's goal is the upload's (\"likewise\" in the brief). Locally one process runs both the Functions host's");
  add("side and the worker's side of the HTTP streaming proxy, so the runtime's single JavaScript thread carries every hop;");
  add("see its CPU seconds per GB below against what storage download plus decryption alone costs.");
  add("");
  add("Figure 2b is a second download baseline: the same raw blob fetched through a plain pass-through proxy, a separate");
  add("Node process that does a blob `download` with the service's options and pipes the body into its HTTP response (no");
  add("decryption, no auth, no Functions host). It is the least any HTTP service in front of the same Azurite must do on");
  add("this machine, where storage, service and client share the cores, so it shows what the extra hop alone costs.");
  add("Download ratios (medians):", "");
  add(`- safedata / raw: ${downRatio.toFixed(2)} (figure 2, the goal)`);
  add(`- pass-through / raw: ${proxyVsRaw.toFixed(2)} (the extra HTTP hop alone)`);
  add(`- safedata / pass-through: ${downVsProxy.toFixed(2)} (the fair comparison for a service in front of storage)`);
  add(`- time to first byte through the pass-through proxy: ${fmt(ttfb.passthrough, 1)} ms`);
  add("");
  add("### Details", "");
  add(`| runtime memory, MB | ${r.memory.map((_, i) => `run ${i + 1}`).join(" | ")} |`);
  add(`|---|${r.memory.map(() => "---|").join("")}`);
  const memRow = (label: string, pick: (m: UploadPathResult["memory"][number]) => number) =>
    add(`| ${label} | ${r.memory.map((m) => mb(pick(m))).join(" | ")} |`);
  memRow("VmHWM once started, before any transfer", (m) => m.hwmAtStart);
  memRow("VmHWM after the 32 MiB warm-up upload, before the large upload", (m) => m.hwmBefore);
  memRow("highest VmRSS sampled during the upload", (m) => m.uploadMaxRss);
  memRow("VmHWM right after the upload", (m) => m.hwmAfterUpload);
  memRow("highest VmRSS sampled during the downloads", (m) => m.downloadMaxRss);
  memRow("embedded storage process VmRSS at the end (Azurite keeps every blob in memory)", (m) => m.storageRss);
  memRow("pass-through proxy process VmHWM at the end", (m) => m.passthroughHwm);
  add("");
  add(`CPU use during the transfers, in cores (CPU seconds per second of transfer, median; the machine has ${os.cpus().length}).`);
  add("A process near 1.0 is bound by its JavaScript thread; a total near the core count means the machine itself is the");
  add("limit. \"Other processes\" is everything else that ran on the machine meanwhile; well above zero, the run shared the");
  add("machine and its figures are less trustworthy. The last two columns are work per byte (CPU seconds per GB moved),");
  add("which depends less on the machine's load than MB/s does. On the pass-through row the \"service\" columns are the");
  add("pass-through proxy's process; on every other row they are the runtime's (the idle one's few ticks count in \"total\").");
  add("");
  add("| transfer | service process | embedded storage | benchmark client | other processes | total | service CPU s/GB | storage CPU s/GB |");
  add("|---|---|---|---|---|---|---|---|");
  const cores = (samples: CpuSample[], pick: (s: CpuSample) => number) => (samples.length ? median(samples.map(pick)).toFixed(2) : "–");
  const row = (label: string, samples: CpuSample[], front = "runtime") => {
    const perSecond = (name: string) => cores(samples, (s) => (s.cpuSeconds[name] ?? 0) / s.wallSeconds);
    const perGB = (name: string) => cores(samples, (s) => (s.cpuSeconds[name] ?? 0) / (r.sizeBytes / 1e9));
    const total = cores(samples, (s) => Object.values(s.cpuSeconds).reduce((a, b) => a + b, 0) / s.wallSeconds);
    add(
      `| ${label} | ${perSecond(front)} | ${perSecond("storage")} | ${perSecond("bench")} | ${perSecond("other")} | ${total} | ` +
        `${perGB(front)} | ${perGB("storage")} |`,
    );
  };
  row("safedata upload", r.cpu.serviceUpload);
  row("raw uploadStream", r.cpu.rawUpload);
  row("safedata download", r.cpu.serviceDownload);
  row("raw download", r.cpu.rawDownload);
  row("download through the pass-through proxy", r.cpu.passthroughDownload, "passthrough");
  add("");
  add("Every sample, in the order taken (odd runs upload through the service first, even runs directly first; the");
  add("pass-through downloads take turns with both, see bench/upload-path.ts):", "");
  const list = (values: number[], digits = 0) => values.map((v) => v.toFixed(digits)).join(", ");
  add(`- upload MB/s: safedata ${list(r.uploadMBps.service)}; raw ${list(r.uploadMBps.raw)}`);
  add(
    `- download MB/s: safedata ${list(r.downloadMBps.service)}; raw ${list(r.downloadMBps.raw)}; ` +
      `pass-through ${list(r.downloadMBps.passthrough)}`,
  );
  add(
    `- time to first byte, ms: safedata ${list(r.ttfbMs.service, 1)}; raw ${list(r.ttfbMs.raw, 1)}; ` +
      `pass-through ${list(r.ttfbMs.passthrough, 1)}`,
  );
  add("");
  if (purge.length > 0) {
    const [small, large] = [purge[0]!, purge[purge.length - 1]!];
    add("## Purge throughput: the retention sweep", "");
    add("Expired small uploads across 5 tenants (one in ten with a payload blob), written straight to the service's Cosmos");
    add("server; then the `retention-sweep` timer is run through the runtime's admin endpoint and the `purge-batch` queue");
    add("workers purge everything (shred the key, delete the blob, audit entry, tombstone) and write the deletion receipts.");
    add("Timed from triggering the sweep until the last receipt is written. Each size runs in a fresh service.");
    add("");
    add("| expired uploads | seconds | items/s | sweeps |");
    add("|---|---|---|---|");
    for (const p of purge) add(`| ${p.items.toLocaleString("en")} | ${p.seconds.toFixed(1)} | ${p.itemsPerSecond.toFixed(0)} | ${p.sweeps} |`);
    add("");
    add(
      `Scaling from ${small.items.toLocaleString("en")} to ${large.items.toLocaleString("en")}: ${(large.items / small.items).toFixed(0)}× the items took ` +
        `${(large.seconds / small.seconds).toFixed(1)}× the time (throughput ratio ${(large.itemsPerSecond / small.itemsPerSecond).toFixed(2)}; 1.00 is linear).`,
    );
    add("Each purged item costs six Cosmos round trips and a blob listing; locally the Cosmos server and Azurite share the");
    add("machine's two cores with the runtime, so the figure is a floor for what the same code does against Azure.");
    add("");
  }
  return lines.join("\n");
}
