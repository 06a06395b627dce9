/** Renders bench/RESULTS.md from a run's measurements. */
import os from "node:os";
import { median, summarize, type Summary } from "./stats";
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

/** Median CPU use of each process during one kind of transfer, in cores (CPU seconds per wall second). */
function cores(samples: CpuSample[], name: string): string {
  const values = samples.map((s) => (s.cpuSeconds[name] ?? 0) / s.wallSeconds);
  return values.length ? median(values).toFixed(2) : "–";
}

export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus.length} CPUs (${cpus[0]?.model.trim() ?? "unknown"}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

export function renderResults(r: UploadPathResult, info: RunInfo): string {
  const size = sizeLabel(r.sizeBytes);
  const up = { service: summarize(r.uploadMBps.service), raw: summarize(r.uploadMBps.raw) };
  const down = { service: summarize(r.downloadMBps.service), raw: summarize(r.downloadMBps.raw) };
  const ttfb = { service: summarize(r.ttfbMs.service), raw: summarize(r.ttfbMs.raw) };
  const upRatio = up.service.median / up.raw.median;
  const downRatio = down.service.median / down.raw.median;
  const m = r.memory;
  const peak = Math.max(m.maxRssDuringUploads, m.hwmAfterFirstUpload);
  const block = `${(r.bufferBytes / 2 ** 20).toFixed(0)} MiB × ${r.concurrency}`;

  const lines: string[] = [];
  lines.push("# Benchmark results");
  lines.push("");
  lines.push(`Produced by \`${info.command}\`; each run replaces this file (the runtime is started in its own process on`);
  lines.push("free ports with its own embedded Azurite and Cosmos server, as `npm start` does, and stopped at the end).");
  lines.push("");
  lines.push("How to read it: figures are medians with (min–max, number of samples). MB is 10^6 bytes. Each baseline is");
  lines.push("the same work done directly with `@azure/storage-blob` against the same embedded Azurite, in the benchmark's");
  lines.push("own process; the ratio is safedata's median over the baseline's median (higher is better for MB/s). Service");
  lines.push("and baseline runs alternate so that drift on the machine hits both alike. Every download is compared byte for");
  lines.push("byte with what was sent. Memory is the runtime process only (the embedded storage runs in a child process).");
  lines.push("The numbers depend on the machine; compare runs on the same one.");
  lines.push("");
  lines.push(`- Date: ${info.startedAt.toISOString()} (run took ${info.durationSeconds.toFixed(0)} s)`);
  lines.push(`- Machine: ${machineLine()}`);
  lines.push(
    `- Payload: ${size} (${mb(r.sizeBytes)} MB) of random bytes, streamed from a generator; ${r.runs} uploads and ${r.runs * r.downloadsPerRun} downloads per path`,
  );
  lines.push(`- Upload settings (the service's, used for the baseline too): uploadStream buffer ${block}`);
  lines.push("");
  lines.push(`## Upload path: ${size} through the local runtime`);
  lines.push("");
  lines.push("| # | figure | safedata | baseline | ratio | goal | |");
  lines.push("|---|---|---|---|---|---|---|");
  lines.push(
    `| 1 | encrypted upload (PUT content), MB/s | ${fmt(up.service)} | raw \`uploadStream\`: ${fmt(up.raw)} | ${upRatio.toFixed(2)} | ratio ≥ 0.80 | ${met(upRatio >= 0.8)} |`,
  );
  lines.push(
    `| 2 | download + decrypt (GET content), MB/s | ${fmt(down.service)} | raw blob \`download\`: ${fmt(down.raw)} | ${downRatio.toFixed(2)} | ratio ≥ 0.80 | ${met(downRatio >= 0.8)} |`,
  );
  lines.push(
    `| 3 | runtime peak RSS during the upload, MB | ${mb(peak)} | idle after start-up (VmHWM before): ${mb(m.hwmBefore)} | ${(peak / m.hwmBefore).toFixed(2)} | < 200 MB | ${met(peak < 200e6)} |`,
  );
  lines.push(
    `| 4 | time to first byte of a ${size} download, ms | ${fmt(ttfb.service, 1)} | raw blob \`download\`: ${fmt(ttfb.raw, 1)} | ${(ttfb.service.median / ttfb.raw.median).toFixed(1)} | < 100 ms | ${met(ttfb.service.median < 100)} |`,
  );
  lines.push("");
  lines.push("Figure 3 is the larger of the highest VmRSS sampled every 20 ms during all uploads and the VmHWM right after");
  lines.push("the first one (VmHWM cannot be reset, so only the first upload has a clean high-water mark).");
  lines.push("");
  lines.push("### Details");
  lines.push("");
  lines.push("| runtime memory | MB |");
  lines.push("|---|---|");
  lines.push(`| VmHWM before the first upload (after start-up and a small warm-up) | ${mb(m.hwmBefore)} |`);
  lines.push(`| VmHWM after the first upload | ${mb(m.hwmAfterFirstUpload)} |`);
  lines.push(`| highest VmRSS sampled during the uploads (${m.samplesDuringUploads} samples) | ${mb(m.maxRssDuringUploads)} |`);
  lines.push(`| highest VmRSS sampled during the downloads | ${mb(m.maxRssDuringDownloads)} |`);
  lines.push(`| VmHWM at the end of the run | ${mb(m.hwmAtEnd)} |`);
  lines.push(`| embedded storage process VmRSS at the end (for reference; blobs live in its memory) | ${mb(m.storageRssAtEnd)} |`);
  lines.push("");
  lines.push(`CPU use during the transfers, in cores (CPU seconds per second of the transfer, median; the machine has`);
  lines.push(`${os.cpus().length}). A process near 1.0 is bound by its JavaScript thread; the sum across processes near the core count means the`);
  lines.push("machine itself is the limit. \"Other processes\" is everything else that ran on the machine meanwhile: when it is");
  lines.push("well above zero, the run shared the machine and its figures are less trustworthy.");
  lines.push("");
  lines.push("| transfer | runtime | embedded storage | benchmark client | other processes | total |");
  lines.push("|---|---|---|---|---|---|");
  const row = (label: string, samples: CpuSample[]) => {
    const total = samples.length
      ? median(samples.map((s) => Object.values(s.cpuSeconds).reduce((a, b) => a + b, 0) / s.wallSeconds)).toFixed(2)
      : "–";
    lines.push(
      `| ${label} | ${cores(samples, "runtime")} | ${cores(samples, "storage")} | ${cores(samples, "bench")} | ${cores(samples, "other")} | ${total} |`,
    );
  };
  row("safedata upload", r.cpu.serviceUpload);
  row("raw uploadStream", r.cpu.rawUpload);
  row("safedata download", r.cpu.serviceDownload);
  row("raw download", r.cpu.rawDownload);
  lines.push("");
  return lines.join("\n");
}
