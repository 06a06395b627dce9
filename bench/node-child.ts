/**
 * A Node script of the benchmark's own (the runtime, the pass-through proxy) run as a child process, so its CPU and
 * memory can be read from /proc apart from the benchmark's: its output is kept (the tail) for diagnosing failures,
 * and it can be waited for and stopped.
 */
import { spawn, type ChildProcess } from "node:child_process";

export interface NodeChild {
  readonly child: ChildProcess;
  /** Its output so far (stdout and stderr, the last 100-200 kB). */
  output(): string;
  /** Stops it with `signal` and waits until it has gone; after `graceMs`, kills it. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<void>;
}

export function spawnNode(script: string, options: { cwd: string; env: NodeJS.ProcessEnv; nodeArgs?: string[] }): NodeChild {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script], { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  // Keep the tail only: a long run logs every invocation.
  let output = "";
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    output: () => output,
    stop: async (signal, graceMs) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs).unref())]);
      if (!stopped) child.kill("SIGKILL");
    },
  };
}

/** Polls `done` until it holds (true) or `timeoutMs` passes (false). */
export async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
