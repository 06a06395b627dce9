/**
 * Embedded local storage: Azurite (blob + queue) and the Cosmos DB REST server, in this process, on loopback.
 * Used by `npm start` (in a child process, see dev/storage-main.ts) and by the integration tests (in-process,
 * on free ports). Data lives in memory and is gone when the process stops.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createHttpServer } from "@vercel/cosmosdb-server";

/** The development account every Azurite accepts; public, documented, and useless outside loopback. */
export const DEV_ACCOUNT = "devstoreaccount1";
export const DEV_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/** Any base64 works for the local Cosmos server; this is the Cosmos emulator's well-known key. */
export const DEV_COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

export interface EmbeddedStorageOptions {
  host?: string;
  blobPort?: number;
  queuePort?: number;
  cosmosPort?: number;
}

export interface EmbeddedStorage {
  readonly blobPort: number;
  readonly queuePort: number;
  readonly cosmosPort: number;
  readonly storageConnectionString: string;
  readonly cosmosConnectionString: string;
  stop(): Promise<void>;
}

export function storageConnectionString(host: string, blobPort: number, queuePort: number): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_ACCOUNT_KEY};` +
    `BlobEndpoint=http://${host}:${blobPort}/${DEV_ACCOUNT};QueueEndpoint=http://${host}:${queuePort}/${DEV_ACCOUNT};`
  );
}

export function cosmosConnectionString(host: string, port: number): string {
  return `AccountEndpoint=http://${host}:${port}/;AccountKey=${DEV_COSMOS_KEY};`;
}

interface AzuriteServer {
  start(): Promise<void>;
  close(): Promise<void>;
  clean(): Promise<void>;
  getHttpServerAddress(): string;
}

type AzuriteConfigCtor = new (...args: unknown[]) => unknown;
type AzuriteServerCtor = new (config: unknown) => AzuriteServer;

function loadAzurite(kind: "blob" | "queue"): { Server: AzuriteServerCtor; Configuration: AzuriteConfigCtor } {
  // require("azurite") itself pulls in VS Code bindings; the server classes load on their own.
  const prefix = kind === "blob" ? "azurite/dist/src/blob/Blob" : "azurite/dist/src/queue/Queue";
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const server = require(`${prefix}Server`) as { default: AzuriteServerCtor };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const config = require(`${prefix}Configuration`) as { default: AzuriteConfigCtor };
  return { Server: server.default, Configuration: config.default };
}

async function startAzurite(kind: "blob" | "queue", host: string, port: number): Promise<{ server: AzuriteServer; port: number }> {
  const { Server, Configuration } = loadAzurite(kind);
  // Positional constructor: host, port, keepAliveTimeout, metadataDBPath, extentDBPath, persistencePathArray,
  // enableAccessLog, accessLogWriteStream, enableDebugLog, debugLogFilePath, loose, skipApiVersionCheck,
  // cert, key, pwd, oauth, disableProductStyleUrl, isMemoryPersistence.
  const config = new Configuration(
    host,
    port,
    undefined,
    `${kind}-metadata.json`,
    `${kind}-extents.json`,
    undefined,
    false,
    undefined,
    false,
    undefined,
    false,
    true, // skipApiVersionCheck: the SDKs send newer API versions than azurite 3.35 knows
    "",
    "",
    "",
    undefined,
    false,
    true, // in memory
  );
  const server = new Server(config);
  await server.start();
  const address = server.getHttpServerAddress(); // "http://127.0.0.1:PORT"
  const actualPort = Number(new URL(address).port);
  return { server, port: actualPort };
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startEmbeddedStorage(options: EmbeddedStorageOptions = {}): Promise<EmbeddedStorage> {
  const host = options.host ?? "127.0.0.1";
  const started: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of started.reverse()) await s().catch(() => undefined);
  };
  try {
    const blob = await startAzurite("blob", host, options.blobPort ?? 0);
    started.push(async () => {
      await blob.server.close();
      await blob.server.clean();
    });
    const queue = await startAzurite("queue", host, options.queuePort ?? 0);
    started.push(async () => {
      await queue.server.close();
      await queue.server.clean();
    });
    const cosmos = createHttpServer({ keepAlive: true } as Parameters<typeof createHttpServer>[0]);
    const cosmosPort = await listen(cosmos, host, options.cosmosPort ?? 0);
    started.push(
      () =>
        new Promise<void>((resolve) => {
          cosmos.close(() => resolve());
          cosmos.closeAllConnections();
        }),
    );
    return {
      blobPort: blob.port,
      queuePort: queue.port,
      cosmosPort,
      storageConnectionString: storageConnectionString(host, blob.port, queue.port),
      cosmosConnectionString: cosmosConnectionString(host, cosmosPort),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
