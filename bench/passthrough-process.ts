/**
 * Starts bench/passthrough-server.ts in its own process, as runtime-process.ts starts the runtime, so that its CPU
 * and memory can be read from /proc apart from the benchmark's.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

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
  const child: ChildProcess = spawn(process.execPath, [path.join(options.root, "dist/bench/passthrough-server.js")], {
    cwd: options.root,
    env: { ...process.env, PASSTHROUGH_STORAGE: options.storageConnectionString },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const until = Date.now() + (options.timeoutMs ?? 30_000);
  let port: number | undefined;
  while (port === undefined && child.exitCode === null && Date.now() < until) {
    const m = /passthrough listening on (\d+)/.exec(output);
    if (m) port = Number(m[1]);
    else await new Promise((r) => setTimeout(r, 20));
  }
  if (port === undefined || child.pid === undefined) {
    child.kill("SIGKILL");
    throw new Error(`the pass-through proxy did not start:\n${output.slice(-4000)}`);
  }
  const pid = child.pid;

  return {
    pid,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000).unref())]);
        if (!stopped) child.kill("SIGKILL");
      }
    },
  };
}
