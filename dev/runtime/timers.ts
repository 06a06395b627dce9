/**
 * Timer triggers. Schedules are honoured in wall-clock time (UTC). As in Azure, each timer keeps a schedule
 * status (last, next, last updated) in the host storage account (container azure-webjobs-hosts); on start, a
 * `next` that has already passed means a run was missed while the host was down, and the function runs at once
 * with `isPastDue: true`. A tick that fires late (the process was suspended) is also past due. Runs of one timer
 * never overlap.
 */
import type { ContainerClient } from "@azure/storage-blob";
import { z } from "zod";
import { isNotFound } from "../../shared/stores/sdk-errors";
import { parseSchedule, type Schedule } from "./schedule";

const statusSchema = z.object({ Last: z.string(), Next: z.string(), LastUpdated: z.string() });
export type ScheduleStatus = z.infer<typeof statusSchema>;

export interface TimerStatusStore {
  read(functionName: string): Promise<ScheduleStatus | undefined>;
  write(functionName: string, status: ScheduleStatus): Promise<void>;
}

/** Schedule status in blobs, at the path the Functions host uses: timers/<hostId>/<function>/status. */
export function blobTimerStatusStore(container: ContainerClient, hostId: string): TimerStatusStore {
  const blob = (fn: string) => container.getBlockBlobClient(`timers/${hostId}/${fn}/status`);
  return {
    async read(fn) {
      try {
        const buf = await blob(fn).downloadToBuffer();
        const parsed = statusSchema.safeParse(JSON.parse(buf.toString("utf8")));
        return parsed.success ? parsed.data : undefined;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async write(fn, status) {
      const body = JSON.stringify(status);
      const put = () => blob(fn).upload(body, Buffer.byteLength(body), { blobHTTPHeaders: { blobContentType: "application/json" } });
      try {
        await put();
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await container.createIfNotExists();
        await put();
      }
    },
  };
}

export interface TimerRunInfo {
  isPastDue: boolean;
  status: ScheduleStatus;
}

export interface TimerSpec {
  name: string;
  schedule: string;
  runOnStartup: boolean;
  useMonitor: boolean;
}

/** How late a tick may fire before it counts as past due. */
const LATE_TOLERANCE_MS = 5_000;
/** setTimeout cannot wait longer than ~24.8 days; longer waits are done in hops. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class TimerScheduler {
  private readonly schedule: Schedule;
  private handle: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private last: Date | undefined;
  nextRun: Date | undefined;

  constructor(
    readonly spec: TimerSpec,
    private readonly store: TimerStatusStore,
    private readonly run: (info: TimerRunInfo) => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.schedule = parseSchedule(spec.schedule);
  }

  async start(): Promise<void> {
    const now = this.now();
    const saved = this.spec.useMonitor ? await this.store.read(this.spec.name) : undefined;
    if (saved) this.last = new Date(saved.Last);
    if (saved && new Date(saved.Next) < now) {
      // Missed while stopped: catch up now.
      this.fire(new Date(saved.Next), true);
    } else if (this.spec.runOnStartup) {
      this.fire(now, false);
    }
    this.arm(this.schedule.next(now));
  }

  private arm(at: Date): void {
    if (this.stopped) return;
    this.nextRun = at;
    const wait = Math.max(0, at.getTime() - this.now().getTime());
    this.handle = setTimeout(
      () => {
        if (at.getTime() > this.now().getTime()) return this.arm(at); // a long wait done in hops
        const late = this.now().getTime() - at.getTime() > LATE_TOLERANCE_MS;
        this.fire(at, late);
        this.arm(this.schedule.next(this.now()));
      },
      Math.min(wait, MAX_TIMEOUT_MS),
    );
    this.handle.unref?.();
  }

  /** Runs now unless a run is in progress (runs never overlap; a tick during a run is skipped, as in Azure). */
  private fire(scheduledAt: Date, isPastDue: boolean): void {
    if (this.running || this.stopped) return;
    this.exclusive(scheduledAt, isPastDue).catch(this.onError);
  }

  /** Runs the function once, now, outside the schedule (admin endpoint, tests). Waits for it and rethrows its error. */
  async trigger(isPastDue = false): Promise<void> {
    while (this.running) await this.running;
    await this.exclusive(this.now(), isPastDue);
  }

  private exclusive(scheduledAt: Date, isPastDue: boolean): Promise<void> {
    const run = this.runOnce(scheduledAt, isPastDue);
    const settled: Promise<void> = run.then(
      () => undefined,
      () => undefined,
    );
    this.running = settled;
    void settled.then(() => {
      if (this.running === settled) this.running = undefined;
    });
    return run;
  }

  private async runOnce(scheduledAt: Date, isPastDue: boolean): Promise<void> {
    const now = this.now();
    const next = this.schedule.next(now);
    const status: ScheduleStatus = {
      Last: (this.last ?? scheduledAt).toISOString(),
      Next: next.toISOString(),
      LastUpdated: now.toISOString(),
    };
    try {
      await this.run({ isPastDue, status });
    } finally {
      this.last = scheduledAt;
      if (this.spec.useMonitor) {
        await this.store
          .write(this.spec.name, { Last: scheduledAt.toISOString(), Next: next.toISOString(), LastUpdated: this.now().toISOString() })
          .catch(this.onError);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.handle) clearTimeout(this.handle);
    await this.running;
  }
}
