/**
 * The local Functions runtime, proven through its own HTTP server, timers and queue polling against real
 * Azurite, with a small app registered through the real @azure/functions API (tests/fixtures/runtime-app.ts).
 */
import { BlobServiceClient } from "@azure/storage-blob";
import { QueueServiceClient } from "@azure/storage-queue";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startEmbeddedStorage, type EmbeddedStorage } from "../../dev/embedded-storage";
import { parseHostJson } from "../../dev/runtime/host-config";
import { installCoreApi } from "../../dev/runtime/core-api";
import { KEEP_ALIVE_TIMEOUT_MS, LocalFunctionsHost, type HostLogLine } from "../../dev/runtime/host";
import { rawRequest, within } from "../helpers/raw-http";
import { abortedUpload } from "../helpers/abort-upload";
import { eventually } from "../helpers/eventually";

let storage: EmbeddedStorage;
let host: LocalFunctionsHost;
let calls: typeof import("../fixtures/runtime-app.js").calls;
const logs: HostLogLine[] = [];

const config = parseHostJson({
  version: "2.0",
  extensions: { queues: { maxPollingInterval: "00:00:00.200", visibilityTimeout: "00:00:00", batchSize: 4, maxDequeueCount: 3 } },
});

beforeAll(async () => {
  storage = await startEmbeddedStorage();
  // A timer whose saved schedule says a run was due an hour ago: the host must catch up with isPastDue.
  const blobs = BlobServiceClient.fromConnectionString(storage.storageConnectionString);
  const hosts = blobs.getContainerClient("azure-webjobs-hosts");
  await hosts.createIfNotExists();
  const status = JSON.stringify({
    Last: new Date(Date.now() - 2 * 3600_000).toISOString(),
    Next: new Date(Date.now() - 3600_000).toISOString(),
    LastUpdated: new Date(Date.now() - 2 * 3600_000).toISOString(),
  });
  await hosts.getBlockBlobClient("timers/runtime-test/tick/status").upload(status, status.length);
  await QueueServiceClient.fromConnectionString(storage.storageConnectionString).getQueueClient("flaky-work").createIfNotExists();

  host = await LocalFunctionsHost.start({
    load: async () => {
      calls = (await import("../fixtures/runtime-app.js")).calls;
    },
    config,
    env: { AzureWebJobsStorage: storage.storageConnectionString, TestStorage: storage.storageConnectionString },
    port: 0,
    hostId: "runtime-test",
    log: (l) => { logs.push(l); if (process.env.DEBUG_HOST) console.log(l.level, l.functionName ?? "", l.message); },
  });
});

const adminKey = () => ({ "x-functions-key": host.masterKey });

afterAll(async () => {
  await host?.stop();
  await storage?.stop();
});

describe("local runtime: registrations under Jest", () => {
  it("receives the app's own app.http/timer/storageQueue registrations, not the library's test mode", async () => {
    // Jest resolves modules itself; jest.config.js maps @azure/functions-core to the runtime's stand-in. Were it not
    // mapped, the library would print "Switching to test mode" and register nothing.
    const core = (await import("@azure/functions-core" as string)) as { registrations?: unknown };
    expect(core.registrations).toBe(installCoreApi().registrations);
    expect(logs.some((l) => /test mode/i.test(l.message))).toBe(false);
    const names = host.functions().map((f) => `${f.trigger}:${f.name}`);
    expect(names).toEqual(expect.arrayContaining(["http:echo", "timer:tick", "queue:flaky"]));
    const echo = host.functions().find((f) => f.name === "echo");
    expect(echo).toMatchObject({ methods: ["POST", "PUT"], route: "/api/echo/{name}" });
  });
});

describe("local runtime: HTTP", () => {
  it("serves registered routes with params, query and methods, streaming bodies both ways", async () => {
    const payload = Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a);
    const res = await fetch(`${host.apiUrl}/echo/alice?q=1`, { method: "PUT", body: payload });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-name")).toBe("alice");
    expect(res.headers.get("x-query")).toBe("1");
    expect(res.headers.get("x-bytes")).toBe(String(payload.length));
    expect(Buffer.from(await res.arrayBuffer()).equals(payload)).toBe(true);
    expect(logs.some((l) => l.source === "function" && l.functionName === "echo" && l.message.includes(`${payload.length} bytes`))).toBe(true);
  });

  it("streams a large response without buffering it", async () => {
    const res = await fetch(`${host.apiUrl}/zeros/64`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(64 * 1024 * 1024));
    let total = 0;
    for await (const chunk of res.body!) total += (chunk as Uint8Array).byteLength;
    expect(total).toBe(64 * 1024 * 1024);
  });

  it("prefers literal segments over parameters and parameters over the catch-all", async () => {
    expect(await (await fetch(`${host.apiUrl}/items/special`)).json()).toEqual({ which: "literal" });
    expect(await (await fetch(`${host.apiUrl}/items/42`)).json()).toEqual({ which: "param", id: "42" });
    const miss = await fetch(`${host.apiUrl}/nothing/here`);
    expect(miss.status).toBe(404);
    expect(await miss.json()).toEqual({ which: "catch-all", rest: "nothing/here" });
  });

  it("honours route constraints and methods", async () => {
    const res = await fetch(`${host.apiUrl}/zeros/abc`);
    expect((await res.json()) as unknown).toMatchObject({ which: "catch-all" });
    const wrongMethod = await fetch(`${host.apiUrl}/echo/x`, { method: "GET" });
    expect(await wrongMethod.json()).toMatchObject({ which: "catch-all" });
  });

  it("answers 500 without a body when a handler throws, and keeps serving", async () => {
    const res = await fetch(`${host.apiUrl}/throws`);
    expect(res.status).toBe(500);
    expect(await res.text()).toBe("");
    expect((await fetch(`${host.apiUrl}/items/1`)).status).toBe(200);
  });

  it("keeps an idle keep-alive connection open as the Functions host does (130 s), not Node's 5 s", async () => {
    // A client pools a connection for the server's announced timeout less a margin; with 5 s announced, a request sent
    // on a busy machine just as the server closed the connection was reset (ECONNRESET) instead of answered.
    const x = rawRequest(host.url, "GET", "/api/items/7", {});
    await within(x.answered, 30_000);
    const head = x.received().toString("latin1").split("\r\n\r\n")[0]!.toLowerCase();
    x.destroy();
    expect(head).toContain("connection: keep-alive");
    expect(head).toContain(`keep-alive: timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}`);
    expect(KEEP_ALIVE_TIMEOUT_MS).toBe(130_000);
  });

  it("answers 404 outside the route prefix", async () => {
    expect((await fetch(`${host.url}/elsewhere`)).status).toBe(404);
  });

  it("lets a client abort an upload without disturbing the host", async () => {
    await abortedUpload(`${host.apiUrl}/count`, { method: "POST", headers: { "content-length": String(10 * 1024 * 1024) }, sendBytes: 1024 * 1024 });
    const ok = await fetch(`${host.apiUrl}/count`, { method: "POST", body: "abc" });
    expect(await ok.json()).toEqual({ bytes: 3 });
  });
});

describe("local runtime: timers", () => {
  it("catches up a run missed while stopped, with isPastDue", async () => {
    await eventually(() => expect(calls.timer.some((c) => c.isPastDue)).toBe(true));
  });

  it("runs a timer at once through the admin endpoint and records its schedule status", async () => {
    const before = calls.timer.length;
    const ranFrom = Date.now();
    const res = await fetch(`${host.url}/admin/functions/tick?wait=true`, { method: "POST", body: "{}", headers: adminKey() });
    expect(await res.json()).toMatchObject({ status: "Succeeded" });
    expect(calls.timer.length).toBe(before + 1);
    const last = calls.timer.at(-1)!;
    expect(last.isPastDue).toBe(false);
    // After the run began (not after now: a five-minute mark passing since would make a right answer look stale).
    expect(new Date(last.next).getTime()).toBeGreaterThan(ranFrom);
    const summary = host.functions().find((f) => f.name === "tick")!;
    expect(summary).toMatchObject({ trigger: "timer", schedule: "0 */5 * * * *" });
    expect(summary.nextRun).toBeDefined();
  });

  it("answers 202 for an asynchronous admin run and 404 for unknown functions", async () => {
    expect((await fetch(`${host.url}/admin/functions/tick`, { method: "POST", headers: adminKey() })).status).toBe(202);
    expect((await fetch(`${host.url}/admin/functions/nope`, { method: "POST", headers: adminKey() })).status).toBe(404);
  });

  it("requires the host's master key on every admin endpoint, as x-functions-key, like the real host", async () => {
    const before = calls.timer.length;
    const attempts: Array<[string, string, Record<string, string>]> = [
      ["POST", "/admin/functions/tick?wait=true", {}],
      ["POST", "/admin/functions/tick", { "x-functions-key": "wrong" }],
      ["POST", "/admin/functions/tick", { "x-functions-key": host.masterKey.slice(0, -1) }],
      ["POST", "/admin/functions/tick", { authorization: `Bearer ${host.masterKey}` }],
      ["POST", `/admin/functions/tick?code=${host.masterKey}`, {}],
      ["GET", "/admin/functions", {}],
      ["GET", "/admin/host/status", {}],
      ["POST", "/admin/functions/nope", {}],
    ];
    for (const [method, path, headers] of attempts) {
      const res = await fetch(`${host.url}${path}`, { method, headers });
      expect(res.status).toBe(401);
    }
    expect(calls.timer.length).toBe(before);
    expect((await fetch(`${host.url}/admin/functions`, { headers: adminKey() })).status).toBe(200);
    expect((await fetch(`${host.url}/admin/host/status`, { headers: adminKey() })).status).toBe(200);
  });
});

describe("local runtime: queues", () => {
  const queues = () => QueueServiceClient.fromConnectionString(storage.storageConnectionString);

  it("delivers base64 messages, parsed, with dequeueCount", async () => {
    calls.flakyFailuresLeft = 0;
    const text = JSON.stringify({ job: "a" });
    await queues().getQueueClient("flaky-work").sendMessage(Buffer.from(text).toString("base64"));
    host.pokeQueues();
    await eventually(() => expect(calls.queue.some((c) => (c.message as { job?: string }).job === "a")).toBe(true));
    const call = calls.queue.find((c) => (c.message as { job?: string }).job === "a")!;
    expect(call.dequeueCount).toBe(1);
    expect(typeof call.id).toBe("string");
  });

  it("retries a failing message and delivers it on a later attempt", async () => {
    calls.flakyFailuresLeft = 2;
    const text = JSON.stringify({ job: "b" });
    await queues().getQueueClient("flaky-work").sendMessage(Buffer.from(text).toString("base64"));
    host.pokeQueues();
    await eventually(() => {
      const attempts = calls.queue.filter((c) => (c.message as { job?: string }).job === "b");
      expect(attempts.map((a) => a.dequeueCount)).toEqual([1, 2, 3]);
    }, 45_000);
    const peek = await queues().getQueueClient("flaky-work").peekMessages();
    expect(peek.peekedMessageItems).toHaveLength(0);
  });

  it("moves a message to <queue>-poison after maxDequeueCount failures and logs it", async () => {
    calls.flakyFailuresLeft = 100;
    const text = JSON.stringify({ job: "c" });
    await queues().getQueueClient("flaky-work").sendMessage(Buffer.from(text).toString("base64"));
    host.pokeQueues();
    const poison = queues().getQueueClient("flaky-work-poison");
    await eventually(async () => {
      expect(await poison.exists()).toBe(true);
      const peeked = await poison.peekMessages();
      expect(peeked.peekedMessageItems.map((m) => Buffer.from(m.messageText, "base64").toString())).toContain(text);
    }, 45_000);
    expect(calls.queue.filter((c) => (c.message as { job?: string }).job === "c")).toHaveLength(3);
    await eventually(() => expect(logs.some((l) => l.level === "error" && l.message.includes("moved to flaky-work-poison"))).toBe(true));
    calls.flakyFailuresLeft = 0;
  });

  it("sends a message that is not base64 to the poison queue instead of losing it", async () => {
    await queues().getQueueClient("flaky-work").sendMessage("this is not base64!");
    host.pokeQueues();
    const poison = queues().getQueueClient("flaky-work-poison");
    await eventually(async () => {
      const peeked = await poison.peekMessages({ numberOfMessages: 32 });
      expect(peeked.peekedMessageItems.map((m) => m.messageText)).toContain("this is not base64!");
    }, 45_000);
  });
});
