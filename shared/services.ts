/**
 * The composition root for outside systems. Functions ask for `services()`; the first call builds every client
 * from settings (no I/O happens until a client is used). Tests and the local runtime install their own with
 * `useServices()`, built the same way but with a clock they control.
 */
import type { CosmosClient, Database } from "@azure/cosmos";
import type { BlobServiceClient } from "@azure/storage-blob";
import type { QueueServiceClient } from "@azure/storage-queue";
import type { Settings } from "./config/settings";
import { systemClock, type Clock } from "./domain/clock";
import type { EmailSender } from "./email/email-sender";
import type { KeyProvider } from "./keys/key-provider";
import { createTelemetry, type Telemetry } from "./observability";
import { BLOB_CONTAINERS } from "./config/resources";
import { AnchorStore } from "./stores/anchor-store";
import { AuditStore } from "./stores/audit-store";
import { containersOf, createCosmosClient, type Containers } from "./stores/cosmos";
import { HeartbeatStore } from "./stores/heartbeat-store";
import { IdempotencyStore } from "./stores/idempotency-store";
import { createBlobServiceClient, createQueueServiceClient, QueueSender } from "./stores/storage";
import { TenantStore } from "./stores/tenant-store";
import { UploadStore } from "./stores/upload-store";

export interface Services {
  readonly settings: Settings;
  readonly clock: Clock;
  readonly cosmos: CosmosClient;
  readonly database: Database;
  readonly containers: Containers;
  readonly blobs: BlobServiceClient;
  readonly queueService: QueueServiceClient;
  readonly queues: QueueSender;
  readonly keys: KeyProvider;
  readonly email: EmailSender;
  readonly telemetry: Telemetry;
  readonly tenants: TenantStore;
  readonly audit: AuditStore;
  /** The audit chain heads anchored outside the database (WORM blobs in Azure). */
  readonly anchors: AnchorStore;
  readonly idempotency: IdempotencyStore;
  readonly heartbeats: HeartbeatStore;
  readonly uploads: UploadStore;
  /** When these services were built: health gives a new instance time for its sweeps' first runs. */
  readonly startedAt: Date;
}

export interface ServiceOverrides {
  clock?: Clock;
  telemetry?: Telemetry;
}

/** Builds the key provider and the e-mail sender; see shared/adapters.ts for the settings-driven choice. */
export type AdapterFactory = (settings: Settings, blobs: BlobServiceClient) => { keys: KeyProvider; email: EmailSender };

export function createServices(settings: Settings, adapters: AdapterFactory, overrides: ServiceOverrides = {}): Services {
  const clock = overrides.clock ?? systemClock;
  const cosmos = createCosmosClient(settings.cosmos);
  const database = cosmos.database(settings.cosmos.database);
  const containers = containersOf(database);
  const blobs = createBlobServiceClient(settings.storage);
  const queueService = createQueueServiceClient(settings.storage);
  const { keys, email } = adapters(settings, blobs);
  return {
    settings,
    clock,
    cosmos,
    database,
    containers,
    blobs,
    queueService,
    queues: new QueueSender(queueService),
    keys,
    email,
    telemetry: overrides.telemetry ?? createTelemetry(settings.telemetry),
    tenants: new TenantStore(containers.tenants),
    audit: new AuditStore(containers.audit, clock),
    anchors: new AnchorStore(blobs.getContainerClient(BLOB_CONTAINERS.auditAnchors.name)),
    idempotency: new IdempotencyStore(containers.idempotency, clock),
    heartbeats: new HeartbeatStore(containers.operations),
    uploads: new UploadStore(containers.uploads),
    startedAt: clock.now(),
  };
}

let current: Services | undefined;
let factory: (() => Services) | undefined;

/** Called once by the app's entry point: how to build services when first needed. */
export function configureServices(build: () => Services): void {
  factory = build;
}

/** Installs ready-made services (tests, the local runtime's seeding). */
export function useServices(services: Services): void {
  current = services;
}

export function services(): Services {
  if (!current) {
    if (!factory) throw new Error("services are not configured: the app entry point did not run");
    current = factory();
  }
  return current;
}
