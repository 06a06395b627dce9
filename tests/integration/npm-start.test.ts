/**
 * Smoke test of `npm start`: the compiled start script boots embedded storage in a child process and the local
 * runtime, seeds the demo tenant, serves a first authenticated request, and leaves no process behind on Ctrl-C.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { storageConnectionString, cosmosConnectionString } from "../../dev/embedded-storage";
import { eventually } from "../helpers/eventually";
import { freePort, processAlive } from "../../dev/processes";

const root = path.resolve(__dirname, "../..");
let child: ChildProcess;
let output = "";
let api = "";
let ports: { blob: number; queue: number; cosmos: number };
let dir = "";

beforeAll(async () => {
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], { cwd: root });
  // The ports were free a moment ago; a test file running beside this one may take one of them before the child
  // binds it (its own servers and clients take free ports too). Then the start is tried again on other ports.
  for (let attempt = 1; ; attempt++) {
    const [port, blob, queue, cosmos] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    dir = mkdtempSync(path.join(os.tmpdir(), "safedata-start-"));
    ports = { blob, queue, cosmos };
    const storage = storageConnectionString("127.0.0.1", blob, queue);
    output = "";
    child = spawn(process.execPath, [path.join(root, "dist/dev/start.js")], {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(port),
        SAFEDATA_LOCAL_SETTINGS: path.join(dir, "local.settings.json"),
        AzureWebJobsStorage: storage,
        SafeDataStorage: storage,
        CosmosDb: cosmosConnectionString("127.0.0.1", cosmos),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const started = child;
    await eventually(() => expect(output.includes("safedata is running") || started.exitCode !== null).toBe(true), 90_000, 100);
    if (output.includes("safedata is running")) {
      api = `http://127.0.0.1:${port}/api`;
      break;
    }
    if (started.exitCode === null) started.kill("SIGKILL");
    if (attempt === 3 || !/EADDRINUSE|in use/i.test(output)) throw new Error(`npm start did not start:\n${output}`);
  }
}, 240_000);

afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
});

describe("npm start", () => {
  it("prints routes, timers, queues and where the keys are", () => {
    expect(output).toMatch(/HTTP routes on http:\/\/127\.0\.0\.1:\d+\/api/);
    expect(output).toContain("/api/v1/audit");
    expect(output).toContain("Timers (NCRONTAB, UTC)");
    expect(output).toContain("Queue triggers");
    expect(output).toContain("Demo tenant:");
    expect(output).toContain("does not survive a restart");
    expect(output).toMatch(/each is written as an \.eml file to \S+outbox/);
    expect(output).toContain("local use only");
    // Where the storage is, with the ports it runs on (a tool or a test can reach the queues there).
    expect(output).toMatch(new RegExp(`Storage: +blob http://127\\.0\\.0\\.1:${ports.blob}\\S*, queue http://127\\.0\\.0\\.1:${ports.queue}\\S*, Cosmos https?://127\\.0\\.0\\.1:${ports.cosmos}`));
  });

  it("serves a first authenticated request with the demo key", async () => {
    const demo = JSON.parse(readFileSync(path.join(dir, ".local", "demo-tenant.json"), "utf8")) as { apiKey: string };
    const res = await fetch(`${api}/v1/audit`, { headers: { authorization: `Bearer ${demo.apiKey}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: Array<{ action: string }> }).items[0]?.action).toBe("tenant.created");
    expect((await fetch(`${api}/health`)).status).toBe(200);
  });

  it("generates the host's master key into local.settings.json and guards the admin endpoints with it", async () => {
    const settings = JSON.parse(readFileSync(path.join(dir, "local.settings.json"), "utf8")) as { Host: { MasterKey: string } };
    const key = settings.Host.MasterKey;
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const host = api.replace(/\/api$/, "");
    expect((await fetch(`${host}/admin/functions`)).status).toBe(401);
    expect((await fetch(`${host}/admin/functions/audit-anchor?wait=true`, { method: "POST" })).status).toBe(401);
    const listed = await fetch(`${host}/admin/functions`, { headers: { "x-functions-key": key } });
    expect(listed.status).toBe(200);
    // The banner shows a command that works as printed.
    expect(output).toContain(`curl -H 'x-functions-key: ${key}' ${host}/admin/functions`);
    expect(output).toMatch(/run now: curl -X POST -H 'x-functions-key: [A-Za-z0-9_-]{43}' 'http:\/\/127\.0\.0\.1:\d+\/admin\/functions\/[a-z-]+\?wait=true'/);
  });

  it("stops cleanly on Ctrl-C with no process left behind", async () => {
    const storagePid = Number(/storage pid (\d+)/.exec(output)?.[1] ?? NaN);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    if (!Number.isNaN(storagePid)) await eventually(() => expect(processAlive(storagePid)).toBe(false), 20_000);
    expect(Number.isNaN(storagePid)).toBe(false);
  }, 45_000);
});
