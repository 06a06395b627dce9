/**
 * Starts bench/passthrough-server.ts in its own process, as runtime-process.ts starts the runtime, so that its CPU
 * and memory can be read from /proc apart from the benchmark's.
 */
import path from "node:path";
import { spawnNode, waitUntil } from "./node-child";

export interface PassthroughProcess {
  readonly pid: number;
  /** e.g. http://127.0.0.1:PORT; GET `${url}/<container>/<blob>` downloads a blob. */
  readonly url: string;
  /** Its output so far (for diagnosing failures). */
  output(): string;
  /** Stops it and waits until it has gone. */
  stop(): Promise<void>;
}

export async function startPassthrough(options: { root: string; storageConnectionString: string; timeoutMs?: number }): Promise<PassthroughProcess> {
  const proc = spawnNode(path.join(options.root, "dist/bench/passthrough-server.js"), {
    cwd: options.root,
    env: { ...process.env, PASSTHROUGH_STORAGE: options.storageConnectionString },
  });
  const listening = () => /passthrough listening on (\d+)/.exec(proc.output());
  await waitUntil(() => listening() !== null || proc.child.exitCode !== null, options.timeoutMs ?? 30_000);
  const port = Number(listening()?.[1] ?? NaN);
  if (Number.isNaN(port) || proc.child.pid === undefined) {
    proc.child.kill("SIGKILL");
    throw new Error(`the pass-through proxy did not start:\n${proc.output().slice(-4000)}`);
  }
  return {
    pid: proc.child.pid,
    url: `http://127.0.0.1:${port}`,
    output: proc.output,
    stop: () => proc.stop("SIGTERM", 5_000),
  };
}
