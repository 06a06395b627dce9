/**
 * A queue message that can never succeed is not retried: one that fails its schema (forged, damaged, not JSON) is
 * moved to `<queue>-poison` on its first delivery, kept as it arrived for an operator to inspect, and logged once
 * without its content (shared/queue-handler.ts); one that is not base64 goes there at once too, as the host's queue
 * extension moves it (dev/runtime/queues.ts). A valid message naming records that do not exist completes quietly.
 * Nothing is lost: when the poison queue cannot be written, the message stays on its queue and is retried.
 *
 * Messages are sent with the test's own queue client, as anyone with access to the storage account could.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { eventually } from "../helpers/eventually";
import { startTestApp, type TestApp } from "../helpers/app";
import { QUEUES } from "../../shared/config/resources";
import { newBreachId } from "../../shared/domain/breaches";
import { newRequestId } from "../../shared/domain/subject-requests";
import { newTenantId } from "../../shared/domain/tenant";
import { newUploadId } from "../../shared/domain/uploads";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const queue = (name: string) => t.raw.queues.getQueueClient(name);
const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const QUEUE_NAMES = Object.values(QUEUES).map((q) => q.name);

/** Sends `text` base64-encoded, as the app's own sender does; answers the message's id. */
async function sendText(name: string, text: string): Promise<string> {
  const r = await queue(name).sendMessage(base64(text));
  t.host.pokeQueues();
  return r.messageId;
}

/** The texts in `<name>-poison`, decoded as the host and the local runtime decode them. */
async function poisonTexts(name: string): Promise<string[]> {
  const peeked = await queue(`${name}-poison`).peekMessages({ numberOfMessages: 32 });
  return peeked.peekedMessageItems.map((m) => Buffer.from(m.messageText, "base64").toString("utf8"));
}

/** Messages on the queue, visible or not (a message being retried is invisible for a while). */
async function countOn(name: string): Promise<number> {
  return (await queue(name).getProperties()).approximateMessagesCount ?? 0;
}

type Fields = Record<string, unknown>;
/** The app's structured log lines with this event, parsed. */
function events(event: string): Fields[] {
  return t.logs
    .filter((l) => l.message.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l.message.slice(l.message.indexOf("{"))) as Fields);
}

describe("a queue message that fails its schema", () => {
  it("is moved to <queue>-poison on its first delivery on every queue, verbatim, and logged once without its content", async () => {
    const marker = `forged-${randomUUID()}`;
    const sent: { queue: string; id: string; text: string }[] = [];
    for (const name of QUEUE_NAMES) {
      // JSON of the wrong shape (an id a store would refuse), and text that is not JSON at all.
      const forged = JSON.stringify({ tenantId: `../../${marker}`, sweepId: 7, kind: "nothing", note: marker });
      const notJson = `not json: ${marker} {`;
      sent.push({ queue: name, id: await sendText(name, forged), text: forged });
      sent.push({ queue: name, id: await sendText(name, notJson), text: notJson });
    }
    for (const name of QUEUE_NAMES) {
      const mine = sent.filter((m) => m.queue === name).map((m) => m.text);
      await eventually(async () => expect(await poisonTexts(name), `${name}-poison holds both forged messages`).toEqual(expect.arrayContaining(mine)), 30_000);
      await eventually(async () => expect(await countOn(name), `${name} is empty`).toBe(0), 30_000);
    }
    for (const m of sent) {
      const lines = events("queue.invalid-message").filter((l) => l.messageId === m.id);
      expect(lines, `${m.queue}: one invalid-message line for ${m.text}`).toHaveLength(1);
      expect(lines[0], m.queue).toMatchObject({ queue: m.queue, dequeueCount: 1, movedTo: `${m.queue}-poison` });
      expect(typeof lines[0]!.issues, m.queue).toBe("string");
      expect((await poisonTexts(m.queue)).filter((text) => text === m.text), `${m.queue}: copied once`).toHaveLength(1);
    }
    // Moved by the handler, not by the host after exhausting its retries; and no line anywhere carries the content.
    expect(t.logs.filter((l) => l.message.includes("moved to"))).toEqual([]);
    expect(t.logs.filter((l) => l.message.includes(marker))).toEqual([]);
  });

  it("names the fields that failed and their codes, never their values", async () => {
    const marker = `value-${randomUUID()}`;
    const text = JSON.stringify({ kind: "first-download", tenantId: marker, uploadId: newUploadId() });
    const id = await sendText(QUEUES.notifications.name, text);
    await eventually(() => expect(events("queue.invalid-message").filter((l) => l.messageId === id)).toHaveLength(1), 30_000);
    const line = events("queue.invalid-message").find((l) => l.messageId === id)!;
    expect(line.issues).toBe("tenantId: invalid_format");
    expect(JSON.stringify(line)).not.toContain(marker);
  });
});

describe("a queue message that is not base64", () => {
  it("goes to <queue>-poison at once, as it arrived, as the host's queue extension moves it", async () => {
    const name = QUEUES.deadlines.name;
    const raw = `not base64! ${randomUUID()}`;
    const { messageId } = await queue(name).sendMessage(raw);
    t.host.pokeQueues();
    await eventually(async () => {
      const peeked = await queue(`${name}-poison`).peekMessages({ numberOfMessages: 32 });
      expect(peeked.peekedMessageItems.map((m) => m.messageText)).toContain(raw);
    }, 30_000);
    await eventually(async () => expect(await countOn(name)).toBe(0), 30_000);
    const moves = t.logs.filter((l) => l.message.includes(`message ${messageId} moved to ${name}-poison`));
    expect(moves).toHaveLength(1);
    expect(moves[0]!.message).toContain("on its first delivery");
    expect(t.logs.filter((l) => l.message.includes(raw))).toEqual([]);
  });
});

describe("a valid queue message", () => {
  it("naming records that do not exist completes on its first delivery on every queue, with nothing poisoned", async () => {
    const tenantId = newTenantId();
    const messages: Record<string, unknown> = {
      [QUEUES.purge.name]: { sweepId: `sweep-${randomUUID()}`, batch: 0, class: "safedata" },
      [QUEUES.rewrap.name]: { tenantId },
      [QUEUES.notifications.name]: { kind: "first-download", tenantId, uploadId: newUploadId() },
      [QUEUES.deadlines.name]: { tenantId, milestoneId: `dl-${randomBytes(20).toString("hex")}` },
      [QUEUES.subjectRequests.name]: { tenantId, requestId: newRequestId(), step: "verify", seq: 1 },
      [QUEUES.breaches.name]: { kind: "sync-tenant", tenantId, breachId: newBreachId() },
      [QUEUES.webhooks.name]: { tenantId, deliveryId: `msg_${randomBytes(20).toString("base64url").slice(0, 26)}`, attempt: 1 },
    };
    expect(Object.keys(messages).sort()).toEqual([...QUEUE_NAMES].sort());
    const ids = new Map<string, string>();
    for (const [name, msg] of Object.entries(messages)) ids.set(await sendText(name, JSON.stringify(msg)), name);
    // Each handler logs its outcome when it completes; the one for the purge names its sweep, the others the tenant.
    const done = () =>
      t.logs.filter((l) => l.source === "function" && (l.message.includes(tenantId) || l.message.includes((messages[QUEUES.purge.name] as { sweepId: string }).sweepId)));
    await eventually(async () => {
      for (const name of QUEUE_NAMES) expect(await countOn(name), `${name} is empty`).toBe(0);
    }, 30_000);
    const outcomes = ["retention.batch", "key.rewrap-batch", "notification.processed", "deadline.notice", "dsr.step", "breach.sync", "webhook.attempt"];
    await eventually(() => {
      for (const event of outcomes) expect(done().some((l) => l.message.includes(`"event":"${event}"`)), event).toBe(true);
    }, 30_000);
    expect(done().filter((l) => l.level === "error" || l.level === "warning").map((l) => l.message)).toEqual([
      expect.stringContaining("retention.batch-unknown"),
    ]);
    for (const name of QUEUE_NAMES) expect((await poisonTexts(name)).filter((text) => text.includes(tenantId)), name).toEqual([]);
    expect(events("queue.invalid-message").filter((l) => ids.has(l.messageId as string))).toEqual([]);
  });

  it("for a tenant that exists runs its work", async () => {
    const { tenantId } = await t.createTenant();
    await sendText(QUEUES.rewrap.name, JSON.stringify({ tenantId, final: true }));
    await eventually(() => {
      const line = events("key.rewrap-batch").find((l) => l.tenantId === tenantId);
      expect(line).toMatchObject({ remaining: false, final: true, version: expect.any(String) });
    }, 30_000);
    expect(events("queue.invalid-message").filter((l) => JSON.stringify(l).includes(tenantId))).toEqual([]);
  });
});

describe("when the poison queue cannot be written", () => {
  it("the message stays on its queue and is retried, not lost", async () => {
    const name = QUEUES.notifications.name;
    // The poison queue gone (as if deleted by mistake): the copy cannot be written, so the message must not be deleted.
    await queue(`${name}-poison`).delete();
    const text = JSON.stringify({ forged: randomUUID() });
    const id = await sendText(name, text);
    await eventually(() => {
      const failed = events("queue.invalid-message").filter((l) => l.messageId === id && l.movedTo === undefined);
      expect(failed.map((l) => l.dequeueCount)).toEqual(expect.arrayContaining([1, 2]));
    }, 30_000);
    await queue(`${name}-poison`).createIfNotExists();
    await eventually(async () => expect((await poisonTexts(name)).filter((x) => x === text)).toHaveLength(1), 30_000);
    await eventually(async () => expect(await countOn(name)).toBe(0), 30_000);
  });
});
