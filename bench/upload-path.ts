/**
 * The upload path, end to end through the local runtime, against raw @azure/storage-blob calls to the same
 * embedded Azurite:
 *
 * - encrypted upload (POST /api/v1/uploads, then PUT the content streamed) vs `uploadStream` of the same bytes with
 *   the buffer size and concurrency the service uses;
 * - download + decrypt (GET .../content) vs a plain blob download, and vs the same blob downloaded through a plain
 *   pass-through proxy (passthrough-server.ts, its own process: the least any HTTP service in front of the same
 *   storage must do, with no decryption, no auth and no Functions host);
 * - the runtime process's resident memory during the uploads (it must stream, not buffer);
 * - time to the first body byte of a download, for both.
 *
 * Each run starts the service afresh (its own runtime process and embedded storage): Azurite keeps the blobs it was
 * sent in memory (deleted ones until its clean-up, every 10 minutes) and slows down as it fills, and a fresh process
 * gives each run's upload a clean memory high-water mark. Within a run both paths use the same Azurite. The first upload into a fresh Azurite
 * is the fastest, so the paths take turns going first (use an even number of runs). The three download paths take
 * turns in rounds: service and raw go in the order of that run's uploads, the pass-through's slot moves on one each run
 * (last, first, middle, last, ...), and every second round is the mirror image of the one before, e.g. service, raw,
 * pass-through, then pass-through, raw, service. So service and raw keep their ABBA order, and within a run each
 * path's mean position is the same (use an even number of downloads per run). Every download is checked against what
 * was sent.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { BlobServiceClient, type BlockBlobClient } from "@azure/storage-blob";
import { getStream, putStream, requestJson } from "./http-client";
import { startPassthrough, type PassthroughProcess } from "./passthrough-process";
import { Payload } from "./payload";
import { CpuMeter, memoryOf, RssSampler, waitForQuietMachine } from "./proc";
import { startRuntime, type RuntimeProcess } from "./runtime-process";
import { mbPerSecond } from "./stats";

export interface UploadPathOptions {
  root: string;
  sizeBytes: number;
  /** Uploads per path. */
  runs: number;
  /** Downloads per path after each upload. */
  downloadsPerRun: number;
  /** Extra node options for the runtime process (profiling). */
  nodeArgs?: string[];
  /** At most this long to wait for a quiet machine before each transfer (default 60 s). */
  quietWaitMs?: number;
  log: (line: string) => void;
}

/** CPU seconds used by each process during one transfer, and the transfer's wall time. */
export interface CpuSample {
  wallSeconds: number;
  cpuSeconds: Record<string, number>;
}

export interface UploadPathResult {
  sizeBytes: number;
  runs: number;
  downloadsPerRun: number;
  bufferBytes: number;
  concurrency: number;
  uploadMBps: { service: number[]; raw: number[] };
  /** `passthrough`: the raw blob downloaded through the plain pass-through proxy. */
  downloadMBps: { service: number[]; raw: number[]; passthrough: number[] };
  ttfbMs: { service: number[]; raw: number[]; passthrough: number[] };
  /** The runtime process's memory, one entry per run (a fresh process each run). */
  memory: RunMemory[];
  /** CPU seconds are keyed `runtime`, `storage`, `passthrough` (the proxy's process), `bench` and `other`. */
  cpu: {
    serviceUpload: CpuSample[];
    rawUpload: CpuSample[];
    serviceDownload: CpuSample[];
    rawDownload: CpuSample[];
    passthroughDownload: CpuSample[];
  };
  /** Time spent before transfers waiting for other work on the machine to finish. */
  waitedForQuietSeconds: number;
}

export interface RunMemory {
  /** VmHWM once the service has started, before any transfer. */
  hwmAtStart: number;
  /** VmHWM after a small warm-up upload, before the large upload. */
  hwmBefore: number;
  /** Largest VmRSS sampled (every 20 ms) during the large upload. */
  uploadMaxRss: number;
  uploadSamples: number;
  /** VmHWM right after the large upload (before any download). */
  hwmAfterUpload: number;
  /** Largest VmRSS sampled during the service downloads. */
  downloadMaxRss: number;
  /** The embedded storage process's VmRSS at the end of the run (Azurite keeps blobs in memory). */
  storageRss: number;
  /** The pass-through proxy process's VmHWM at the end of the run. */
  passthroughHwm: number;
}

/** The service's block size and concurrency for uploadStream, read from its source so the baseline cannot drift. */
export function serviceUploadSettings(root: string): { bufferBytes: number; concurrency: number } {
  const source = readFileSync(path.join(root, "shared/stores/payload-store.ts"), "utf8");
  const constant = (name: string): number => {
    const m = new RegExp(`const ${name}\\s*=\\s*([0-9_\\s*]+);`).exec(source);
    if (!m) throw new Error(`shared/stores/payload-store.ts no longer defines ${name} as a product of integers; update the benchmark`);
    return m[1]!
      .split("*")
      .map((f) => Number(f.replace(/[_\s]/g, "")))
      .reduce((a, b) => a * b, 1);
  };
  return { bufferBytes: constant("UPLOAD_BUFFER_BYTES"), concurrency: constant("UPLOAD_CONCURRENCY") };
}

const CONTENT_TYPE = "application/octet-stream";

class Paths {
  private readonly blobs: BlobServiceClient;
  private readonly container;

  constructor(
    private readonly rt: RuntimeProcess,
    private readonly proxy: PassthroughProcess,
    private readonly tenantKey: string,
    private readonly settings: { bufferBytes: number; concurrency: number },
  ) {
    this.blobs = BlobServiceClient.fromConnectionString(rt.storageConnectionString);
    this.container = this.blobs.getContainerClient("bench-raw");
  }

  async prepare(): Promise<void> {
    await this.container.createIfNotExists();
  }

  /** Creates an upload and PUTs the payload; returns its id and the PUT's duration. */
  async serviceUpload(payload: Payload): Promise<{ id: string; ms: number }> {
    const created = await requestJson("POST", `${this.rt.apiUrl}/v1/uploads`, this.tenantKey, {
      senderReference: "bench",
      recipients: ["recipient@bench.example"],
      dataSubjects: ["subject@bench.example"],
      categories: ["financial"],
      fileName: "bench.bin",
      contentType: CONTENT_TYPE,
      size: payload.size,
    });
    if (created.status !== 201) throw new Error(`creating the upload failed: ${created.status} ${created.text}`);
    const id = (created.body as { id: string }).id;
    const put = await putStream(
      `${this.rt.apiUrl}/v1/uploads/${id}/content`,
      { authorization: `Bearer ${this.tenantKey}`, "content-type": CONTENT_TYPE },
      payload.size,
      payload.chunks(),
    );
    if (put.status !== 200) throw new Error(`the PUT failed: ${put.status} ${put.text}`);
    return { id, ms: put.ms };
  }

  async serviceDownload(payload: Payload, id: string): Promise<{ ms: number; ttfbMs: number }> {
    const verifier = payload.verifier();
    const res = await getStream(`${this.rt.apiUrl}/v1/uploads/${id}/content`, { authorization: `Bearer ${this.tenantKey}` }, (c) => verifier.update(c));
    if (res.status !== 200) throw new Error(`the download failed: ${res.status}`);
    verifier.check("service download");
    return { ms: res.ms, ttfbMs: res.ttfbMs };
  }

  rawBlob(name: string): BlockBlobClient {
    return this.container.getBlockBlobClient(name);
  }

  /** uploadStream with the service's settings and the same conditions, headers and metadata it sends. */
  async rawUpload(payload: Payload, name: string): Promise<{ ms: number }> {
    const started = performance.now();
    await this.rawBlob(name).uploadStream(payload.readable(), this.settings.bufferBytes, this.settings.concurrency, {
      conditions: { ifNoneMatch: "*" },
      blobHTTPHeaders: { blobContentType: CONTENT_TYPE },
      metadata: { format: "raw", upload: name },
    });
    return { ms: performance.now() - started };
  }

  /** A whole-blob download with the options the service passes, timed from the call to the first and last byte. */
  async rawDownload(payload: Payload, name: string): Promise<{ ms: number; ttfbMs: number }> {
    const verifier = payload.verifier();
    const started = performance.now();
    const res = await this.rawBlob(name).download(0, undefined, { maxRetryRequests: 3 });
    let ttfbMs = -1;
    // 'data' events, as for the service's response: an async iterator would concatenate buffered chunks.
    await new Promise<void>((resolve, reject) => {
      const body = res.readableStreamBody!;
      body.on("data", (chunk: Buffer) => {
        if (ttfbMs < 0) ttfbMs = performance.now() - started;
        verifier.update(chunk);
      });
      body.once("end", resolve);
      body.once("error", reject);
    });
    const ms = performance.now() - started;
    verifier.check("raw download");
    return { ms, ttfbMs };
  }

  /** The raw blob `name`, downloaded through the pass-through proxy with the client the service's downloads use. */
  async passthroughDownload(payload: Payload, name: string): Promise<{ ms: number; ttfbMs: number }> {
    const verifier = payload.verifier();
    const url = `${this.proxy.url}/${this.container.containerName}/${encodeURIComponent(name)}`;
    const res = await getStream(url, {}, (c) => verifier.update(c));
    if (res.status !== 200) throw new Error(`the pass-through download failed: ${res.status}`);
    verifier.check("pass-through download");
    return { ms: res.ms, ttfbMs: res.ttfbMs };
  }

  async rawDelete(name: string): Promise<void> {
    await this.rawBlob(name).delete();
  }
}

async function createTenant(rt: RuntimeProcess): Promise<string> {
  const res = await requestJson(
    "POST",
    `${rt.apiUrl}/v1/admin/tenants`,
    rt.adminKey,
    { name: "Bench ApS", contactEmail: "dpo@bench.example", supervisoryAuthority: { country: "DK" } },
    { "idempotency-key": `bench-${Date.now()}` },
  );
  const apiKey = (res.body as { apiKey?: string } | undefined)?.apiKey;
  if (res.status !== 201 || !apiKey) throw new Error(`creating the tenant failed: ${res.status} ${res.text}`);
  return apiKey;
}

export async function benchUploadPath(options: UploadPathOptions): Promise<UploadPathResult> {
  const { log } = options;
  const settings = serviceUploadSettings(options.root);
  const payload = new Payload(options.sizeBytes);
  const small = new Payload(Math.min(options.sizeBytes, 32 * 1024 * 1024));
  const result: UploadPathResult = {
    sizeBytes: options.sizeBytes,
    runs: options.runs,
    downloadsPerRun: options.downloadsPerRun,
    ...settings,
    uploadMBps: { service: [], raw: [] },
    downloadMBps: { service: [], raw: [], passthrough: [] },
    ttfbMs: { service: [], raw: [], passthrough: [] },
    memory: [],
    cpu: { serviceUpload: [], rawUpload: [], serviceDownload: [], rawDownload: [], passthroughDownload: [] },
    waitedForQuietSeconds: 0,
  };
  const mb = (ms: number) => mbPerSecond(options.sizeBytes, ms).toFixed(0);

  for (let run = 0; run < options.runs; run++) {
    const tag = `run ${run + 1}/${options.runs}:`;
    const rt = await startRuntime({ root: options.root, nodeArgs: options.nodeArgs });
    let proxy: PassthroughProcess | undefined;
    try {
      const hwmAtStart = memoryOf(rt.pid).hwm;
      proxy = await startPassthrough({ root: options.root, storageConnectionString: rt.storageConnectionString });
      log(`${tag} runtime pid ${rt.pid}, embedded storage pid ${rt.storagePid}, ${rt.apiUrl}; pass-through proxy pid ${proxy.pid}, ${proxy.url}`);
      const paths = new Paths(rt, proxy, await createTenant(rt), settings);
      await paths.prepare();
      const pids = { runtime: rt.pid, storage: rt.storagePid, passthrough: proxy.pid };
      const proxyPid = proxy.pid;
      const timed = async <T extends { ms: number }>(work: () => Promise<T>): Promise<T & { cpu: CpuSample }> => {
        const waited = await waitForQuietMachine(options.quietWaitMs);
        if (waited > 1000) log(`${tag} waited ${(waited / 1000).toFixed(0)} s for other work on the machine to finish`);
        result.waitedForQuietSeconds += Math.max(0, waited) / 1000;
        const meter = new CpuMeter(pids);
        const r = await work();
        return { ...r, cpu: { wallSeconds: r.ms / 1000, cpuSeconds: meter.read() } };
      };

      // Warm-up with a small payload (JIT, connections, containers), not recorded. The service download is warmed
      // up only after the large upload, so that the upload's memory figures owe nothing to a download.
      const warm = await paths.serviceUpload(small);
      await paths.rawUpload(small, "warm-up");
      await paths.rawDownload(small, "warm-up");
      await paths.passthroughDownload(small, "warm-up");
      await paths.rawDelete("warm-up");
      const memory: RunMemory = {
        hwmAtStart,
        hwmBefore: memoryOf(rt.pid).hwm,
        uploadMaxRss: 0,
        uploadSamples: 0,
        hwmAfterUpload: 0,
        downloadMaxRss: 0,
        storageRss: 0,
        passthroughHwm: 0,
      };

      const serviceFirst = run % 2 === 0;
      const rawName = `raw-${run}`;
      let uploadId = "";
      const uploadService = async () => {
        const sampler = new RssSampler(rt.pid).start();
        const r = await timed(() => paths.serviceUpload(payload));
        const sampled = sampler.stop();
        memory.uploadMaxRss = sampled.max;
        memory.uploadSamples = sampled.samples;
        memory.hwmAfterUpload = memoryOf(rt.pid).hwm;
        uploadId = r.id;
        result.uploadMBps.service.push(mbPerSecond(options.sizeBytes, r.ms));
        result.cpu.serviceUpload.push(r.cpu);
        log(`${tag} service upload ${mb(r.ms)} MB/s, runtime RSS up to ${(sampled.max / 1e6).toFixed(0)} MB`);
      };
      const uploadRaw = async () => {
        const r = await timed(() => paths.rawUpload(payload, rawName));
        result.uploadMBps.raw.push(mbPerSecond(options.sizeBytes, r.ms));
        result.cpu.rawUpload.push(r.cpu);
        log(`${tag} raw upload     ${mb(r.ms)} MB/s`);
      };
      /** One timed download along a path, recorded under that path. */
      const timedDownload = async (path: "service" | "raw" | "passthrough", label: string, work: () => Promise<{ ms: number; ttfbMs: number }>) => {
        const r = await timed(work);
        result.downloadMBps[path].push(mbPerSecond(options.sizeBytes, r.ms));
        result.ttfbMs[path].push(r.ttfbMs);
        result.cpu[`${path}Download`].push(r.cpu);
        log(`${tag} ${label} ${mb(r.ms)} MB/s, first byte after ${r.ttfbMs.toFixed(1)} ms`);
      };
      const downloadService = async () => {
        const sampler = new RssSampler(rt.pid).start();
        try {
          await timedDownload("service", "service download", () => paths.serviceDownload(payload, uploadId));
        } finally {
          memory.downloadMaxRss = Math.max(memory.downloadMaxRss, sampler.stop().max);
        }
      };
      const downloadRaw = () => timedDownload("raw", "raw download    ", () => paths.rawDownload(payload, rawName));
      const downloadPassthrough = () => timedDownload("passthrough", "pass-through download", () => paths.passthroughDownload(payload, rawName));

      for (const step of serviceFirst ? [uploadService, uploadRaw] : [uploadRaw, uploadService]) await step();
      await paths.serviceDownload(small, warm.id);
      // Rounds: service and raw in the order of the uploads, with the pass-through in a slot that moves on one each
      // run (last, first, middle, ...); every second round is the mirror image, so ABBA within the run too.
      const first = serviceFirst ? [downloadService, downloadRaw] : [downloadRaw, downloadService];
      first.splice((run + 2) % 3, 0, downloadPassthrough);
      for (let d = 0; d < options.downloadsPerRun; d++) {
        for (const step of d % 2 === 0 ? first : [...first].reverse()) await step();
      }
      memory.storageRss = memoryOf(rt.storagePid).rss;
      memory.passthroughHwm = memoryOf(proxyPid).hwm;
      result.memory.push(memory);
    } catch (err) {
      log(`runtime output (tail):\n${rt.output().slice(-4000)}`);
      if (proxy) log(`pass-through proxy output (tail):\n${proxy.output().slice(-4000)}`);
      throw err;
    } finally {
      await proxy?.stop();
      await rt.stop();
    }
  }
  return result;
}
