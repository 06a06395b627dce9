import { expect } from "@jest/globals";
import { QUEUES } from "../../shared/config/resources";
import type { ActiveRetentionClass, PurgeBatchMessage } from "../../shared/usecases/messages";
import { BATCH_CLAIM_MS } from "../../shared/usecases/retention";
import type { TestApp } from "./app";
import { eventually } from "./eventually";

/** Waits until the purge queue is empty and every sweep has written its receipts. */
export async function drainPurge(t: TestApp, timeoutMs = 60_000): Promise<void> {
  t.host.pokeQueues();
  await eventually(
    async () => {
      expect((await t.raw.queues.getQueueClient(QUEUES.purge.name).getProperties()).approximateMessagesCount).toBe(0);
      const { resources } = await t.raw.containers.operations.items
        .query({ query: "SELECT VALUE COUNT(1) FROM c WHERE c.type = 'sweep' AND IS_NULL(c.receiptsAt)" })
        .fetchAll();
      expect(resources[0]).toBe(0);
    },
    timeoutMs,
    100,
  );
}

/** Runs the retention timer function now through the runtime, then lets the workers finish what it queued. */
export async function sweep(t: TestApp): Promise<void> {
  await t.host.invoke("retention-sweep");
  await drainPurge(t);
}

/**
 * Records a sweep with one batch of `items`, as the retention timer does before it queues a message, and returns the
 * message naming it (for tests that run a batch themselves, e.g. to kill it half-way).
 */
export async function recordedBatch(
  t: TestApp,
  sweepId: string,
  cls: ActiveRetentionClass,
  items: Array<{ tenantId: string; id: string }>,
): Promise<PurgeBatchMessage> {
  const started = t.clock.now();
  await t.services.sweeps.create(
    { sweepId, startedAt: started.toISOString(), pastDue: false, items: items.length, claimUntil: new Date(started.getTime() + BATCH_CLAIM_MS).toISOString() },
    [{ class: cls, items }],
  );
  return { sweepId, batch: 0, class: cls };
}
