/**
 * The service as `npm start` runs it, in its own process: `node dist/dev/start.js` on free ports with its own
 * settings file, so its memory and CPU can be read from /proc apart from the benchmark's. Embedded storage runs in
 * a child process of it (its memory does not count as the runtime's).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { cosmosConnectionString, storageConnectionString } from "../dev/embedded-storage";
import { freePort, processAlive } from "../dev/processes";
import { spawnNode, waitUntil } from "./node-child";

export interface RuntimeProcess {
  /** The runtime's process id (the local Functions host and the app). */
  readonly pid: number;
  /** The embedded storage's process id (Azurite and the Cosmos server). */
  readonly storagePid: number;
  /** e.g. http://127.0.0.1:PORT/api */
  readonly apiUrl: string;
  readonly adminKey: string;
  /** The local host's master key, for its admin endpoints (`x-functions-key`). */
  readonly masterKey: string;
  /** Connection string of the same embedded Azurite the service uses. */
  readonly storageConnectionString: string;
  /** Connection string of the same embedded Cosmos server the service uses. */
  readonly cosmosConnectionString: string;
  /** The runtime's output so far (for diagnosing failures). */
  output(): string;
  /** Stops it as Ctrl-C does, and waits until it and the storage process have gone. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** The repository root (holds dist/ and local.settings.sample.json). */
  root: string;
  /** Extra node options for the runtime process, e.g. ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"]. */
  nodeArgs?: string[];
  timeoutMs?: number;
}

export async function startRuntime(options: StartOptions): Promise<RuntimeProcess> {
  const [port, blob, queue, cosmos] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const dir = mkdtempSync(path.join(os.tmpdir(), "safedata-bench-"));
  const settingsPath = path.join(dir, "local.settings.json");
  const storage = storageConnectionString("127.0.0.1", blob, queue);
  const cosmosCs = cosmosConnectionString("127.0.0.1", cosmos);
  const proc = spawnNode(path.join(options.root, "dist/dev/start.js"), {
    cwd: options.root,
    nodeArgs: options.nodeArgs,
    env: {
      ...process.env,
      PORT: String(port),
      SAFEDATA_LOCAL_SETTINGS: settingsPath,
      AzureWebJobsStorage: storage,
      SafeDataStorage: storage,
      CosmosDb: cosmosCs,
      // Telemetry would add its own work (and exit delays) to what is measured.
      APPLICATIONINSIGHTS_CONNECTION_STRING: "",
    },
  });
  const { child, output } = proc;

  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  const ready = await waitUntil(() => output().includes("safedata is running") || child.exitCode !== null, options.timeoutMs ?? 60_000);
  if (!ready || child.exitCode !== null) {
    child.kill("SIGKILL");
    cleanUp();
    throw new Error(`the runtime did not start:\n${output().slice(-4000)}`);
  }
  const storagePid = Number(/storage pid (\d+)/.exec(output())?.[1] ?? NaN);
  const settings = JSON.parse(readFileSync(settingsPath, "utf8")) as { Values: Record<string, string>; Host?: { MasterKey?: string } };
  const adminKey = settings.Values.ADMIN_API_KEY;
  const masterKey = settings.Host?.MasterKey;
  if (!adminKey || !masterKey || Number.isNaN(storagePid) || child.pid === undefined) {
    child.kill("SIGKILL");
    cleanUp();
    throw new Error(`the runtime started without an admin key or a storage pid:\n${output().slice(-4000)}`);
  }
  const pid = child.pid;

  return {
    pid,
    storagePid,
    apiUrl: `http://127.0.0.1:${port}/api`,
    adminKey,
    masterKey,
    storageConnectionString: storage,
    cosmosConnectionString: cosmosCs,
    output,
    stop: async () => {
      // As Ctrl-C does.
      await proc.stop("SIGINT", 20_000);
      if (!(await waitUntil(() => !processAlive(storagePid), 5_000))) process.kill(storagePid, "SIGKILL");
      cleanUp();
    },
  };
}
