/** Memory and CPU of other processes, read from /proc (Linux). */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export interface MemoryStatus {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size since the process started ("high water mark"), bytes. It cannot be reset. */
  hwm: number;
}

function kib(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (!m) throw new Error(`/proc status has no ${field}`);
  return Number(m[1]) * 1024;
}

export function memoryOf(pid: number): MemoryStatus {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return { rss: kib(status, "VmRSS"), hwm: kib(status, "VmHWM") };
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU time the process has used so far, in seconds (its own threads, not its children). */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; the fields after it are counted from the closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicks();
}

/** Samples a process's resident set size at a fixed interval and keeps the largest value seen. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  max = 0;
  samples = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 20,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  stop(): { max: number; samples: number } {
    clearInterval(this.timer);
    this.sample();
    return { max: this.max, samples: this.samples };
  }

  private sample(): void {
    try {
      const { rss } = memoryOf(this.pid);
      this.samples += 1;
      if (rss > this.max) this.max = rss;
    } catch {
      // The process has gone; the caller finds out from its own requests.
    }
  }
}

/** CPU seconds the whole machine has spent busy (all CPUs, everything but idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return (total - idle) / clockTicks();
}

/**
 * Waits until the whole machine has been nearly idle (below `maxCores` busy) for a short window, or until
 * `timeoutMs` has passed. Returns how long it waited. Other work on a shared machine distorts a transfer's figures.
 */
export async function waitForQuietMachine(timeoutMs = 60_000, maxCores = 0.2, windowMs = 500): Promise<number> {
  const started = Date.now();
  for (;;) {
    const before = machineBusySeconds();
    await new Promise((r) => setTimeout(r, windowMs));
    const busy = (machineBusySeconds() - before) / (windowMs / 1000);
    if (busy < maxCores || Date.now() - started >= timeoutMs) return Date.now() - started - windowMs;
  }
}

/**
 * CPU seconds used by several processes over an interval, by this process (`bench`), and by everything else on
 * the machine (`other`: busy time of all CPUs minus the processes named).
 */
export class CpuMeter {
  private readonly start: Map<string, number>;
  private readonly selfStart = process.cpuUsage();
  private readonly machineStart = machineBusySeconds();

  constructor(private readonly pids: Record<string, number>) {
    this.start = new Map(Object.entries(pids).map(([name, pid]) => [name, cpuSecondsOf(pid)]));
  }

  /** CPU seconds used since construction, by name, plus `bench` and `other`. */
  read(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) out[name] = cpuSecondsOf(pid) - (this.start.get(name) ?? 0);
    const self = process.cpuUsage(this.selfStart);
    out.bench = (self.user + self.system) / 1e6;
    const ours = Object.values(out).reduce((a, b) => a + b, 0);
    out.other = Math.max(0, machineBusySeconds() - this.machineStart - ours);
    return out;
  }
}
