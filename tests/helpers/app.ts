/**
 * Starts the whole app for a test file the way `npm start` does: embedded Azurite + Cosmos on free ports,
 * local provisioning, and the local Functions runtime serving functions/index.ts over HTTP. The only difference
 * is the clock: services are built with a ManualClock the test moves.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { startEmbeddedStorage, type EmbeddedStorage } from "../../dev/embedded-storage";
import { LocalFunctionsHost, type HostLogLine } from "../../dev/runtime/host";
import { emlWriter, LOCAL_OUTBOX_DIR } from "../../dev/outbox-eml";
import { OutboxEmailSender } from "../../shared/email/outbox-email-sender";
import { lineLog } from "../../shared/observability";
import { readHostJson } from "../../dev/runtime/host-config";
import { provisionLocal } from "../../dev/provision";
import { adaptersFromSettings } from "../../shared/adapters";
import { parseSettings } from "../../shared/config/settings";
import { ManualClock, type Clock } from "../../shared/domain/clock";
import { createServices, useServices, type ServiceOverrides, type Services } from "../../shared/services";
import { containersOf, createCosmosClient, type Containers } from "../../shared/stores/cosmos";
import { BlobServiceClient } from "@azure/storage-blob";
import { QueueServiceClient } from "@azure/storage-queue";

export const ADMIN_KEY = "test-admin-key-" + "x".repeat(40);

/**
 * The test's own clients of the same embedded storage, to look at or damage what the service stored (the service's
 * own stores expose named methods only).
 */
export interface RawStorage {
  containers: Containers;
  blobs: BlobServiceClient;
  queues: QueueServiceClient;
}

export interface TestApp {
  host: LocalFunctionsHost;
  api: string;
  services: Services;
  raw: RawStorage;
  clock: ManualClock;
  storage: EmbeddedStorage;
  logs: HostLogLine[];
  env: Record<string, string>;
  /** fetch against the API with optional bearer key and JSON body. */
  call(method: string, route: string, init?: { key?: string; json?: unknown; headers?: Record<string, string>; body?: RequestInit["body"] }): Promise<Response>;
  admin(method: string, route: string, json?: unknown, headers?: Record<string, string>): Promise<Response>;
  createTenant(name?: string): Promise<{ tenantId: string; apiKey: string }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  clock?: ManualClock;
  /** The services' clock when a test needs another kind (the OffsetClock of LOCAL_CLOCK_CONTROL); `t.clock` is then unused. */
  serviceClock?: Clock;
  settings?: Record<string, string>;
  timers?: boolean;
  queues?: boolean;
  overrides?: Omit<ServiceOverrides, "clock">;
  /** The local host's idle limit for clients; default: the app's own (UPLOAD_IDLE_SECONDS), as under npm start. */
  hostIdleTimeoutMs?: number;
}

export async function startTestApp(options: StartOptions = {}): Promise<TestApp> {
  const storage = await startEmbeddedStorage();
  const env: Record<string, string> = {
    FUNCTIONS_WORKER_RUNTIME: "node",
    AzureWebJobsStorage: storage.storageConnectionString,
    SafeDataStorage: storage.storageConnectionString,
    CosmosDb: storage.cosmosConnectionString,
    COSMOS_DATABASE_NAME: "safedata",
    KEY_PROVIDER: "local",
    LOCAL_MASTER_KEY: randomBytes(32).toString("base64"),
    EMAIL_PROVIDER: "outbox",
    EMAIL_SENDER_ADDRESS: "DoNotReply@safedata.test",
    ADMIN_API_KEY: ADMIN_KEY,
    ...options.settings,
  };
  Object.assign(process.env, env);
  const settings = parseSettings(env);
  await provisionLocal(settings);
  const clock = options.clock ?? new ManualClock();
  const services = createServices(settings, adaptersFromSettings, { clock: options.serviceClock ?? clock, ...options.overrides });
  useServices(services);
  // As npm start does, when the test names a folder: every e-mail the outbox stores is also an .eml file there.
  if (env[LOCAL_OUTBOX_DIR] && services.email instanceof OutboxEmailSender) services.email.onStored(emlWriter(env[LOCAL_OUTBOX_DIR]), lineLog((line) => process.stderr.write(`${line}\n`)));

  const logs: HostLogLine[] = [];
  const config = readHostJson(path.join(__dirname, "../../host.json"));
  const host = await LocalFunctionsHost.start({
    load: () => import("../../functions/index.js"),
    config: { ...config, queues: { ...config.queues, maxPollingIntervalMs: 200, visibilityTimeoutMs: 0 } },
    env,
    port: 0,
    // As npm start: the host's idle limit for clients is the app's own (UPLOAD_IDLE_SECONDS).
    idleTimeoutMs: options.hostIdleTimeoutMs ?? settings.uploadIdleSeconds * 1000,
    enableTimers: options.timers ?? false,
    enableQueues: options.queues ?? true,
    log: (l) => {
      logs.push(l);
      if (process.env.DEBUG_HOST) console.log(l.level, l.functionName ?? "", l.message);
    },
  });

  const rawCosmos = createCosmosClient(settings.cosmos);
  const raw: RawStorage = {
    containers: containersOf(rawCosmos.database(settings.cosmos.database)),
    blobs: BlobServiceClient.fromConnectionString(storage.storageConnectionString),
    queues: QueueServiceClient.fromConnectionString(storage.storageConnectionString),
  };

  const api = host.apiUrl;
  const call: TestApp["call"] = (method, route, init = {}) => {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (init.key) headers.authorization = `Bearer ${init.key}`;
    let body = init.body;
    if (init.json !== undefined) {
      headers["content-type"] ??= "application/json";
      body = JSON.stringify(init.json);
    }
    return fetch(`${api}/${route.replace(/^\//, "")}`, { method, headers, body });
  };
  const admin: TestApp["admin"] = (method, route, json, headers) => call(method, route, { key: ADMIN_KEY, json, headers });

  let n = 0;
  const createTenant: TestApp["createTenant"] = async (name) => {
    n++;
    const res = await admin("POST", "v1/admin/tenants", {
      name: name ?? `Controller ${n}`,
      contactEmail: `dpo${n}@controller.example`,
      supervisoryAuthority: { country: "DK" },
    });
    if (res.status !== 201) throw new Error(`tenant creation failed: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { tenant: { id: string }; apiKey: string };
    return { tenantId: body.tenant.id, apiKey: body.apiKey };
  };

  return {
    host,
    api,
    services,
    raw,
    clock,
    storage,
    logs,
    env,
    call,
    admin,
    createTenant,
    stop: async () => {
      await host.stop();
      services.dispose();
      rawCosmos.dispose();
      await storage.stop();
    },
  };
}
