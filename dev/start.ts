/**
 * `npm start`: the service on this machine with no Azure account. Starts embedded Azurite + Cosmos (in a child
 * process), creates the databases, containers and queues, starts the local Functions runtime on
 * http://127.0.0.1:7071/api serving functions/index, seeds a demo tenant, and prints what is running.
 * Ctrl-C stops everything.
 */
import { fork, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseSettings, SettingsError, type Settings } from "../shared/config/settings";
import { base32 } from "../shared/domain/tenant";
import { services } from "../shared/services";
import { createTenant } from "../shared/usecases/tenants";
import { LOCAL_ONLY_BLOB_CONTAINERS } from "../shared/config/resources";
import { OutboxEmailSender } from "../shared/email/outbox-email-sender";
import { lineLog } from "../shared/observability";
import { applyLocalStoragePorts, ensureLocalSettings, portOf, storagePortInUse } from "./local-settings";
import { emlWriter, LOCAL_OUTBOX_DIR } from "./outbox-eml";
import { provisionLocal } from "./provision";
import { LocalFunctionsHost } from "./runtime/host";
import { readHostJson } from "./runtime/host-config";

const root = path.resolve(__dirname, "../..");
const started = Date.now();

function fail(message: string): never {
  console.error(`safedata: ${message}`);
  process.exit(1);
}

function startStorage(settings: Settings): Promise<ChildProcess> {
  const cs = settings.storage.connectionString ?? fail("SafeDataStorage must be a connection string locally");
  const cosmosCs = settings.cosmos.kind === "connectionString" ? settings.cosmos.connectionString : fail("CosmosDb must be a connection string locally");
  const ports = { blob: portOf(cs, "BlobEndpoint"), queue: portOf(cs, "QueueEndpoint"), cosmos: portOf(cosmosCs, "AccountEndpoint") };
  const child = fork(path.join(__dirname, "storage-main.js"), [ports.blob, ports.queue, ports.cosmos].map(String), { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return new Promise((resolve, reject) => {
    child.once("message", (m: { ready: boolean; error?: string; inUse?: boolean }) =>
      m.ready ? resolve(child) : reject(new Error(m.inUse ? storagePortInUse(m.error ?? "", ports) : m.error)),
    );
    child.once("exit", (code) => reject(new Error(`embedded storage exited with code ${code}`)));
  });
}

/** The endpoint `key` of a connection string (its URL), or "?" when it has none. */
function endpointOf(connectionString: string | undefined, key: string): string {
  return new RegExp(`${key}=(https?://[^;]+)`, "i").exec(connectionString ?? "")?.[1] ?? "?";
}

/** The demo tenant's id and key derive from LOCAL_MASTER_KEY, so they stay the same across restarts. */
function demoKeys(masterKey: Buffer) {
  const derive = (label: string) => createHmac("sha256", masterKey).update(`safedata/demo/${label}`).digest();
  const tenantId = "tn-" + base32(derive("tenant-id").subarray(0, 10));
  return {
    tenantId: () => tenantId,
    keyId: () => "key-" + base32(derive("key-id").subarray(0, 5)),
    apiKey: (id: string) => `sdk_${id}_${derive("api-key").toString("base64url")}`,
  };
}

async function main(): Promise<void> {
  // SAFEDATA_LOCAL_SETTINGS lets a second copy (or a smoke test) keep its own settings file and demo key.
  const settingsPath = path.resolve(process.env.SAFEDATA_LOCAL_SETTINGS ?? path.join(root, "local.settings.json"));
  const localDir = path.join(path.dirname(settingsPath), ".local");
  const { settings: local, created } = ensureLocalSettings(path.join(root, "local.settings.sample.json"), settingsPath);
  // As func start does: values from local.settings.json, unless the environment already sets them.
  for (const [k, v] of Object.entries(local.Values)) if (process.env[k] === undefined) process.env[k] = v;
  // LOCAL_BLOB_PORT, LOCAL_QUEUE_PORT, LOCAL_COSMOS_PORT move the embedded storage (and the connection strings to it).
  try {
    applyLocalStoragePorts(process.env);
  } catch (err) {
    fail((err as Error).message);
  }

  let settings: Settings;
  try {
    settings = parseSettings(process.env);
  } catch (err) {
    if (err instanceof SettingsError) fail(`${err.message} (in local.settings.json or the environment)`);
    throw err;
  }
  if (settings.keys.provider !== "local" || settings.email.provider !== "outbox") {
    console.warn("safedata: note: npm start uses the key provider and e-mail sender from settings; locally that is usually local + outbox");
  }

  const storage = await startStorage(settings).catch((err: Error) => fail(`embedded storage did not start: ${err.message}`));
  const running: { host?: LocalFunctionsHost } = {};
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log("\nsafedata: stopping...");
    await running.host?.stop(5_000).catch(() => undefined);
    storage.kill("SIGTERM");
    await new Promise((r) => (storage.exitCode === null ? storage.once("exit", r) : r(null)));
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  storage.once("exit", () => {
    if (!stopping) {
      console.error("safedata: embedded storage stopped unexpectedly");
      void stop(1);
    }
  });

  await provisionLocal(settings);
  const port = Number(process.env.PORT ?? local.Host?.LocalHttpPort ?? 7071);
  const host = await LocalFunctionsHost.start({
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    load: () => require("../functions/index.js"),
    config: readHostJson(path.join(root, "host.json")),
    env: process.env,
    port,
    masterKey: local.Host?.MasterKey,
    // The app's idle limit for request bodies (UPLOAD_IDLE_SECONDS) is the host's for clients that stop reading too.
    idleTimeoutMs: settings.uploadIdleSeconds * 1000,
  }).catch((err: Error & { code?: string }) =>
    fail(err.code === "EADDRINUSE" ? `port ${port} is in use; set PORT or Host.LocalHttpPort in local.settings.json` : err.message),
  );
  running.host = host;

  // Every e-mail the outbox receives is also an .eml file a mail client opens (local only: addresses in clear).
  const outboxDir = path.resolve(path.dirname(settingsPath), process.env[LOCAL_OUTBOX_DIR] ?? path.join(".local", "outbox"));
  const email = services().email;
  if (email instanceof OutboxEmailSender) email.onStored(emlWriter(outboxDir), lineLog((line) => process.stderr.write(`${line}\n`)));

  // Demo tenant (local only).
  const masterKey = settings.keys.provider === "local" ? settings.keys.masterKey : undefined;
  let demo: { tenantId: string; apiKey: string } | undefined;
  if (masterKey) {
    const keys = demoKeys(masterKey);
    const existing = await services().tenants.get(keys.tenantId());
    if (!existing) {
      const r = await createTenant(
        services(),
        { name: "Demo Controller ApS", contactEmail: "dpo@demo-controller.example", supervisoryAuthority: { country: "DK" } },
        { actor: "system:npm-start", requestId: "npm-start-seed" },
        keys,
      );
      demo = { tenantId: r.tenant.id, apiKey: r.apiKey };
    } else {
      demo = { tenantId: keys.tenantId(), apiKey: keys.apiKey(keys.tenantId()) };
    }
    mkdirSync(localDir, { recursive: true });
    writeFileSync(path.join(localDir, "demo-tenant.json"), JSON.stringify(demo, null, 2) + "\n", { mode: 0o600 });
  }

  const fns = host.functions();
  const out: string[] = [];
  out.push("");
  out.push(`safedata is running (ready in ${((Date.now() - started) / 1000).toFixed(1)} s)${created ? " — created local.settings.json with fresh secrets" : ""}`);
  out.push("");
  out.push(`HTTP routes on ${host.apiUrl}:`);
  const catchAll = (r = "") => r.includes("{*");
  const routes = fns
    .filter((x) => x.trigger === "http")
    .sort((a, b) => Number(catchAll(a.route)) - Number(catchAll(b.route)) || (a.route ?? "").localeCompare(b.route ?? ""));
  for (const f of routes) {
    const methods = catchAll(f.route) ? "*" : (f.methods ?? []).join(",");
    out.push(`  ${methods.padEnd(7)} ${host.url}${f.route}   (${f.name})`);
  }
  const timers = fns.filter((x) => x.trigger === "timer");
  out.push("");
  out.push("Timers (NCRONTAB, UTC):");
  if (timers.length === 0) out.push("  (none yet)");
  // The host's admin endpoints need its master key, as in Azure: every command below carries it.
  const hostKey = `-H 'x-functions-key: ${host.masterKey}'`;
  for (const f of timers) out.push(`  ${f.name.padEnd(24)} ${f.schedule?.padEnd(16)} next run ${f.nextRun}   run now: curl -X POST ${hostKey} '${host.url}/admin/functions/${f.name}?wait=true'`);
  const queues = fns.filter((x) => x.trigger === "queue");
  out.push("");
  out.push("Queue triggers:");
  if (queues.length === 0) out.push("  (none yet)");
  for (const f of queues) out.push(`  ${f.name.padEnd(24)} queue ${f.queueName} (poison: ${f.queueName}-poison)`);
  out.push("");
  out.push(`Admin key:   ADMIN_API_KEY in ${settingsPath}`);
  out.push(`Host admin:  the runtime's master key is Host.MasterKey in ${settingsPath}; send it as x-functions-key, e.g.`);
  out.push(`  curl ${hostKey} ${host.url}/admin/functions`);
  if (demo) {
    out.push(`Demo tenant: ${demo.tenantId}, API key in ${path.join(localDir, "demo-tenant.json")}`);
    out.push(`  try: curl -H "Authorization: Bearer ${demo.apiKey}" ${host.apiUrl}/v1/audit`);
  }
  out.push(`OpenAPI:     ${host.apiUrl}/v1/openapi.json     Health: ${host.apiUrl}/health`);
  if (email instanceof OutboxEmailSender) {
    out.push(`E-mails:     nothing is sent; each is written as an .eml file to ${outboxDir} (open it in any mail client)`);
    out.push(`             and to blob container '${LOCAL_ONLY_BLOB_CONTAINERS.outbox.name}'. These files hold addresses and codes in clear: local use only.`);
  }
  out.push(`Data:        in memory (Azurite and the local Cosmos server, storage pid ${storage.pid}); it does not survive a restart.`);
  out.push(`Storage:     blob ${endpointOf(settings.storage.connectionString, "BlobEndpoint")}, queue ${endpointOf(settings.storage.connectionString, "QueueEndpoint")}, Cosmos ${endpointOf(settings.cosmos.kind === "connectionString" ? settings.cosmos.connectionString : undefined, "AccountEndpoint")}`);
  out.push(`             (the connection strings, with these ports, are the environment's SafeDataStorage and CosmosDb; local.settings.json keeps its own ports)`);
  out.push("Press Ctrl-C to stop.");
  console.log(out.join("\n"));
}

main().catch((err: Error) => fail(err.message));
