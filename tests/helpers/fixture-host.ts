/**
 * The local Functions host running the small fixture app (tests/fixtures/runtime-app.ts) over embedded storage, with
 * no timers and no queue polling: for tests of the host's own HTTP behaviour (limits, stalled clients).
 */
import { startEmbeddedStorage, type EmbeddedStorage } from "../../dev/embedded-storage";
import { parseHostJson } from "../../dev/runtime/host-config";
import { LocalFunctionsHost, type LocalHostOptions } from "../../dev/runtime/host";

export interface FixtureHost {
  storage: EmbeddedStorage;
  host: LocalFunctionsHost;
  stop(): Promise<void>;
}

/** Starts storage and the host; `limits` are the host's timing options (idle, request timeout) and its log. */
export async function startFixtureHost(limits: Pick<LocalHostOptions, "idleTimeoutMs" | "requestTimeoutMs" | "log">): Promise<FixtureHost> {
  const storage = await startEmbeddedStorage();
  const host = await LocalFunctionsHost.start({
    load: () => import("../fixtures/runtime-app.js"),
    config: parseHostJson({ version: "2.0" }),
    env: { AzureWebJobsStorage: storage.storageConnectionString, TestStorage: storage.storageConnectionString },
    port: 0,
    enableTimers: false,
    enableQueues: false,
    ...limits,
  });
  return {
    storage,
    host,
    stop: async () => {
      await host.stop(1_000);
      await storage.stop();
    },
  };
}
